//! Just enough SDP reading to tell whether an offer puts a call on hold, whichever
//! way the client says it: RFC 3264 direction attributes (`a=sendonly`,
//! `a=inactive`), or the RFC 2543 idiom `c=IN IP4 0.0.0.0` older phones still send.
//! The SDP rewriter and the media relay use it to keep such a connection address
//! rather than replace it with a relay address the held party would stream to.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

struct Media {
    active: bool,
    zero: Option<bool>,
    dir: Option<Dir>,
}

/// Whether a connection line (`c=` value) names the unspecified address.
fn zero_address(c: &str) -> bool {
    c.split_whitespace()
        .nth(2)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_unspecified())
}

fn direction(attr: &str) -> Option<Dir> {
    Some(match attr {
        "sendrecv" => Dir::SendRecv,
        "sendonly" => Dir::SendOnly,
        "recvonly" => Dir::RecvOnly,
        "inactive" => Dir::Inactive,
        _ => return None,
    })
}

/// Whether `sdp` holds the call: it has at least one active stream (port not 0) and
/// every active stream is sendonly or inactive, or (when `zero_address` is on) has
/// the connection address 0.0.0.0 (media level, else session level).
pub(super) fn hold(sdp: &[u8], zero_address_is_hold: bool) -> bool {
    let text = String::from_utf8_lossy(sdp);
    let mut session_zero = false;
    let mut session_dir = None;
    let mut media: Vec<Media> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let port = m.split_whitespace().nth(1).unwrap_or("0");
            let port = port.split('/').next().unwrap_or("0");
            media.push(Media {
                active: port.parse::<u32>().is_ok_and(|p| p != 0),
                zero: None,
                dir: None,
            });
        } else if let Some(c) = line.strip_prefix("c=") {
            match media.last_mut() {
                Some(m) => m.zero = Some(zero_address(c)),
                None => session_zero = zero_address(c),
            }
        } else if let Some(d) = line.strip_prefix("a=").and_then(direction) {
            match media.last_mut() {
                Some(m) => m.dir = Some(d),
                None => session_dir = Some(d),
            }
        }
    }
    let mut active = media.iter().filter(|m| m.active).peekable();
    if active.peek().is_none() {
        return false;
    }
    active.all(|m| {
        let zero = zero_address_is_hold && m.zero.unwrap_or(session_zero);
        let dir = m.dir.or(session_dir).unwrap_or(Dir::SendRecv);
        zero || matches!(dir, Dir::SendOnly | Dir::Inactive)
    })
}

/// Whether an SDP body puts the call on hold (`a=sendonly`, `a=inactive`, or
/// `c=0.0.0.0`), with every normalization on. Interfaces that switch off
/// `hold_zero_address` use [`super::Normalize::is_hold`].
pub fn is_hold(sdp_body: &[u8]) -> bool {
    hold(sdp_body, true)
}
