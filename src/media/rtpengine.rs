//! rtpengine's ng control protocol: `COOKIE <bencoded dictionary>` over UDP,
//! answered by `COOKIE <bencoded dictionary>` with `result` = `ok` (or `pong`)
//! or `error` plus `error-reason`.
//!
//! Why this shape: `offer`, `answer` and `delete` carry the call's Call-ID and
//! tags the way OpenSIPS and Kamailio send them, so an operator's rtpengine
//! setup works unchanged. Bencode is done by `serde_bencode` (built here, small,
//! serde-driven; dictionary keys come out sorted as bencode requires) rather than
//! by hand. Each command uses its own ephemeral socket, so concurrent commands
//! never see each other's replies and no reply router is needed. Commands block
//! the caller for at most `timeout × tries`: the signaling core calls them
//! directly (an ng round trip on a local rtpengine is well under a millisecond)
//! and stops asking for a while after a timeout (see the engine's media code). A command is
//! resent with the same cookie when its reply is late: rtpengine remembers the
//! replies by cookie, so a resent `offer` is answered from that cache instead of
//! being applied twice.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use std::net::UdpSocket;
use std::time::Instant;

use super::config::MediaConfig;

/// Largest reply accepted (rtpengine answers with the SDP and some statistics).
const MAX_REPLY: usize = 65_536;

/// Why an ng command failed.
#[derive(Debug, thiserror::Error)]
pub enum NgError {
    /// The control socket failed (or nothing listens at the address).
    #[error("rtpengine control socket: {0}")]
    Io(#[from] std::io::Error),
    /// No reply after every try.
    #[error("rtpengine did not answer {tries} tries")]
    Timeout {
        /// How many times the command was sent.
        tries: u32,
    },
    /// rtpengine answered `result: error`.
    #[error("rtpengine refused: {0}")]
    Refused(String),
    /// The reply could not be read, or lacked what the command returns.
    #[error("rtpengine reply unreadable: {0}")]
    BadReply(String),
}

/// One ng command as sent. Fields left empty are not sent.
#[derive(Debug, Default, Serialize)]
pub struct Request<'a> {
    /// `ping`, `offer`, `answer`, `delete`.
    pub command: &'a str,
    /// The SIP Call-ID rtpengine files the call under.
    #[serde(rename = "call-id", skip_serializing_if = "Option::is_none")]
    pub call_id: Option<&'a str>,
    /// The caller's tag.
    #[serde(rename = "from-tag", skip_serializing_if = "Option::is_none")]
    pub from_tag: Option<&'a str>,
    /// The callee's tag (answer; delete of one branch).
    #[serde(rename = "to-tag", skip_serializing_if = "Option::is_none")]
    pub to_tag: Option<&'a str>,
    /// The SDP to rewrite.
    #[serde(with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub sdp: Option<&'a [u8]>,
    /// Plain flags, e.g. `trust-address`, `symmetric`, `strict-source`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub flags: &'a [&'a str],
    /// What in the SDP rtpengine replaces, e.g. `origin`, `session-connection`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub replace: &'a [&'a str],
    /// ICE handling: `remove`, `force`, ...
    #[serde(rename = "ICE", skip_serializing_if = "Option::is_none")]
    pub ice: Option<&'a str>,
    /// rtpengine interface names, from the offerer's side to the answerer's.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub direction: &'a [&'a str],
    /// rtcp-mux handling: `offer`, `demux`, `accept`, `reject`.
    #[serde(rename = "rtcp-mux", skip_serializing_if = "<[_]>::is_empty")]
    pub rtcp_mux: &'a [&'a str],
    /// Transport protocol to use toward the recipient, e.g. `RTP/AVP`.
    #[serde(rename = "transport-protocol", skip_serializing_if = "Option::is_none")]
    pub transport_protocol: Option<&'a str>,
}

/// The parts of a reply sipveil reads.
#[derive(Debug, Deserialize)]
pub struct Reply {
    /// `ok`, `pong`, `error` (or `load limit`).
    pub result: String,
    /// Why, with `result: error`.
    #[serde(rename = "error-reason")]
    pub error_reason: Option<String>,
    /// A non-fatal remark.
    pub warning: Option<String>,
    /// The rewritten SDP (offer, answer).
    #[serde(default, with = "serde_bytes")]
    pub sdp: Option<Vec<u8>>,
}

/// What an offer or answer says about the call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Session<'a> {
    /// The Call-ID rtpengine files the call under (sipveil uses the A leg's).
    pub call_id: &'a str,
    /// The A leg's from-tag.
    pub from_tag: &'a str,
    /// The to-tag (required in `answer`).
    pub to_tag: Option<&'a str>,
    /// The SDP body as received.
    pub sdp: &'a [u8],
    /// `replace` list, e.g. `["origin", "session-connection"]` for topology hiding.
    pub replace: &'a [&'a str],
    /// `ICE`, e.g. `Some("remove")`.
    pub ice: Option<&'a str>,
    /// Interface names, offerer side first (rtpengine `--interface=NAME/IP`).
    pub direction: &'a [&'a str],
    /// Extra flags.
    pub flags: &'a [&'a str],
    /// rtcp-mux handling.
    pub rtcp_mux: &'a [&'a str],
}

/// Writes `COOKIE <dict>`.
pub fn encode(cookie: &str, req: &Request<'_>) -> Result<Vec<u8>, NgError> {
    let body = serde_bencode::to_bytes(req).map_err(|e| NgError::BadReply(e.to_string()))?;
    let mut out = Vec::with_capacity(cookie.len() + 1 + body.len());
    out.extend_from_slice(cookie.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads `COOKIE <dict>`; `None` when the datagram is for another cookie.
pub fn decode(cookie: &str, datagram: &[u8]) -> Option<Result<Reply, NgError>> {
    let rest = datagram
        .strip_prefix(cookie.as_bytes())?
        .strip_prefix(b" ")?;
    Some(serde_bencode::from_bytes::<Reply>(rest).map_err(|e| NgError::BadReply(e.to_string())))
}

/// A client for one rtpengine. Cheap to clone; holds no socket between commands.
#[derive(Clone, Debug)]
pub struct NgClient {
    server: SocketAddr,
    timeout: Duration,
    tries: u32,
}

impl NgClient {
    /// A client for `server`, waiting `timeout` per try and sending at most `tries` times.
    pub fn new(server: SocketAddr, timeout: Duration, tries: u32) -> NgClient {
        NgClient {
            server,
            timeout,
            tries: tries.max(1),
        }
    }

    /// The client `[media]` asks for, if it names an rtpengine.
    pub fn from_config(cfg: &MediaConfig) -> Option<NgClient> {
        Some(NgClient::new(
            cfg.rtpengine?,
            cfg.rtpengine_timeout,
            cfg.rtpengine_tries,
        ))
    }

    /// Is rtpengine there? (`ping` → `pong`)
    pub fn ping(&self) -> Result<(), NgError> {
        let r = self.command(&Request {
            command: "ping",
            ..Request::default()
        })?;
        if r.result == "pong" {
            Ok(())
        } else {
            Err(NgError::BadReply(format!("ping answered `{}`", r.result)))
        }
    }

    /// Sends the offerer's SDP; returns the SDP for the answerer (rtpengine's
    /// addresses and ports).
    pub fn offer(&self, s: &Session<'_>) -> Result<Vec<u8>, NgError> {
        self.session("offer", s)
    }

    /// Sends the answerer's SDP (with its to-tag); returns the SDP for the offerer.
    pub fn answer(&self, s: &Session<'_>) -> Result<Vec<u8>, NgError> {
        if s.to_tag.is_none() {
            return Err(NgError::BadReply("answer needs a to-tag".into()));
        }
        self.session("answer", s)
    }

    /// Ends the call (or, with a to-tag, one branch of it) and frees its ports.
    pub fn delete(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
    ) -> Result<(), NgError> {
        self.command(&Request {
            command: "delete",
            call_id: Some(call_id),
            from_tag: Some(from_tag),
            to_tag,
            ..Request::default()
        })
        .map(|_| ())
    }

    fn session(&self, command: &str, s: &Session<'_>) -> Result<Vec<u8>, NgError> {
        let r = self.command(&Request {
            command,
            call_id: Some(s.call_id),
            from_tag: Some(s.from_tag),
            to_tag: s.to_tag,
            sdp: Some(s.sdp),
            flags: s.flags,
            replace: s.replace,
            ice: s.ice,
            direction: s.direction,
            rtcp_mux: s.rtcp_mux,
            transport_protocol: None,
        })?;
        r.sdp
            .ok_or_else(|| NgError::BadReply(format!("{command} reply without sdp")))
    }

    /// Sends one command until a reply with its cookie comes back.
    pub fn command(&self, req: &Request<'_>) -> Result<Reply, NgError> {
        let cookie = format!("{:016x}", fastrand::u64(..));
        let msg = encode(&cookie, req)?;
        let local: IpAddr = match self.server {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let sock = UdpSocket::bind((local, 0))?;
        sock.connect(self.server)?;
        let mut buf = vec![0u8; MAX_REPLY];
        for _ in 0..self.tries {
            sock.send(&msg)?;
            let deadline = Instant::now() + self.timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break; // this try timed out
                }
                sock.set_read_timeout(Some(left))?;
                let n = match sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e.into()),
                };
                // Replies of an earlier command on a reused port are skipped.
                let Some(reply) = decode(&cookie, buf.get(..n).unwrap_or_default()) else {
                    continue;
                };
                let reply = reply?;
                if let Some(w) = &reply.warning {
                    tracing::warn!(command = req.command, "rtpengine: {w}");
                }
                return match reply.result.as_str() {
                    "ok" | "pong" => Ok(reply),
                    _ => Err(NgError::Refused(reply.error_reason.unwrap_or(reply.result))),
                };
            }
        }
        Err(NgError::Timeout { tries: self.tries })
    }
}

#[cfg(test)]
mod tests;
