//! The rewriter: writes the body sipveil sends on a leg from the body it received,
//! changing only the lines that carry the other side's addresses and ports (o=, c=,
//! m= ports, a=rtcp, ICE) and copying every other line byte for byte, in order,
//! with its own line ending.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::error::SdpError;
use super::parse::{Line, Role, Sdp};
use super::types::{Connection, Direction};

/// How a hold expressed as `c=0.0.0.0` (RFC 2543 style) is carried to the other leg.
/// Either way the other side learns it must not send; what differs is the wording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HoldMode {
    /// Keep the unspecified address (`0.0.0.0`, or `::` when the leg is IPv6): the
    /// peer sees the hold exactly as the holder wrote it. The default, because some
    /// older peers understand only this form.
    #[default]
    KeepZeroAddress,
    /// Replace it by sipveil's address and say the same with a direction attribute
    /// (sendrecv becomes sendonly, recvonly becomes inactive), adding `a=sendonly`
    /// to sections that had none. For peers that treat 0.0.0.0 as an error.
    AsDirection,
}

/// What the relay allocated for one media section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaPlan {
    /// sipveil's RTP port for this stream; 0 rejects the stream.
    pub port: u16,
    /// sipveil's RTCP port, written into `a=rtcp`; `None` means `port + 1`, or
    /// `port` itself when the section muxes RTCP and its a=rtcp named the RTP port.
    pub rtcp_port: Option<u16>,
}

impl MediaPlan {
    /// A stream on `port`, RTCP on `port + 1`.
    pub fn port(port: u16) -> MediaPlan {
        MediaPlan {
            port,
            rtcp_port: None,
        }
    }
}

/// Everything the rewriter changes, decided by the caller (dialog core + relay).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewritePlan {
    /// sipveil's media address on the egress interface: written into o=, every c=
    /// and every a=rtcp address.
    pub address: IpAddr,
    /// Per media section, by index: the ports. Every section with a non-zero port
    /// needs an entry; a section received with port 0 stays 0 whatever is planned.
    pub media: Vec<MediaPlan>,
    /// How a `c=0.0.0.0` hold is carried through.
    pub hold: HoldMode,
    /// Remove ICE attributes (candidates, ufrag, pwd, options, lite, mismatch,
    /// pacing, remote-candidates, end-of-candidates): they name the far side's
    /// addresses, and with media anchored at sipveil they would be wrong anyway.
    pub strip_ice: bool,
    /// Replaces the o= username (it can carry an inside user or host name).
    pub origin_username: Option<String>,
}

impl RewritePlan {
    /// A plan for anchoring at `address`: ICE stripped, holds kept as 0.0.0.0, no
    /// ports yet (add one [`MediaPlan`] per section).
    pub fn new(address: IpAddr) -> RewritePlan {
        RewritePlan {
            address,
            media: Vec::new(),
            hold: HoldMode::default(),
            strip_ice: true,
            origin_username: None,
        }
    }
}

/// The o= identifiers to write: the received ones, or a leg's own.
pub(crate) enum OriginIds {
    AsReceived,
    Leg { sess_id: u64, version: u64 },
}

/// A line to send: received bytes, new bytes, or the o= line (written last-minute
/// because its version may still change).
enum Piece<'s> {
    Bytes(&'s [u8]),
    Owned(Vec<u8>),
    Origin,
}

/// What becomes of one received line.
enum Edit {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

impl Sdp {
    /// Rewrites the body for sending: o= keeps the received sess-id and version (use
    /// [`Sdp::rewrite_for_leg`] to give a leg its own). Fails, writing nothing, if the
    /// plan has no port for an active stream.
    pub fn rewrite(&self, plan: &RewritePlan) -> Result<Vec<u8>, SdpError> {
        self.render(plan, OriginIds::AsReceived)
            .map(|(body, _)| body)
    }

    /// Renders the body; also returns where the o= sess-version digits are.
    pub(crate) fn render(
        &self,
        plan: &RewritePlan,
        ids: OriginIds,
    ) -> Result<(Vec<u8>, Option<Range<usize>>), SdpError> {
        let ctx = Ctx::new(self, plan)?;
        let mut edits: Vec<Edit> = Vec::with_capacity(self.lines.len());
        let mut first_c = vec![true; self.media.len() + 1];
        for line in &self.lines {
            let scope = line.section.map_or(0, |s| s + 1);
            let edit = match &line.role {
                Role::Origin => Edit::Keep, // written below, with the ids
                Role::Connection => match first_c.get_mut(scope) {
                    Some(first) if *first => {
                        *first = false;
                        let held = ctx.held_connection(self, line.section);
                        Edit::Replace(format!("c=IN {}", ctx.addr(held)).into_bytes())
                    }
                    _ => Edit::Drop,
                },
                Role::Media => ctx.media_line(self, line)?,
                Role::Rtcp => ctx.rtcp_line(self, line)?,
                Role::Ice if plan.strip_ice => Edit::Drop,
                Role::Direction => ctx.direction_line(self, line),
                _ => Edit::Keep,
            };
            edits.push(edit);
        }
        let inserts = ctx.direction_inserts(self);
        // (text, ending) of each line sent; endings are fixed up below so that an
        // added line never merges with its neighbour.
        let mut pieces: Vec<(Piece<'_>, &[u8], bool)> = Vec::with_capacity(self.lines.len() + 4);
        for (i, (line, edit)) in self.lines.iter().zip(edits).enumerate() {
            let piece = match edit {
                Edit::Drop => None,
                Edit::Keep if line.role == Role::Origin => Some(Piece::Origin),
                Edit::Keep => Some(Piece::Bytes(self.text(line))),
                Edit::Replace(text) => Some(Piece::Owned(text)),
            };
            if let Some(piece) = piece {
                pieces.push((piece, self.ending(line), false));
            }
            for (_, d) in inserts.iter().filter(|(after, _)| *after == i) {
                let text = format!("a={d}").into_bytes();
                pieces.push((Piece::Owned(text), self.eol_near(i), true));
            }
        }
        let last_ending = self.lines.last().map_or(&b""[..], |l| self.ending(l));
        let count = pieces.len();
        let mut out = Vec::with_capacity(self.raw.len() + 64);
        let mut version_span = None;
        for (n, (piece, ending, added)) in pieces.into_iter().enumerate() {
            match piece {
                Piece::Origin => version_span = Some(self.write_origin(&mut out, plan, &ids)),
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Owned(b) => out.extend_from_slice(&b),
            }
            // Received lines keep their ending; an added line is last only if it
            // follows the last received line, whose missing newline it inherits.
            // A line that ended the body in a bare CR is completed with just the
            // LF (not a second CR), so it reads back as the same line.
            let ending = match (n + 1 == count, added, ending.is_empty()) {
                (true, true, _) => last_ending,
                (false, _, true) if out.last() == Some(&b'\r') => &b"\n"[..],
                (false, _, true) => self.eol_near(self.lines.len()),
                _ => ending,
            };
            out.extend_from_slice(ending);
        }
        out.extend_from_slice(self.raw.get(self.tail.clone()).unwrap_or_default());
        Ok((out, version_span))
    }

    /// Writes the o= text (no ending); returns the byte range of the version.
    fn write_origin(&self, out: &mut Vec<u8>, plan: &RewritePlan, ids: &OriginIds) -> Range<usize> {
        let o = &self.origin;
        let user = plan.origin_username.as_deref().unwrap_or(&o.username);
        let (id, version) = match ids {
            OriginIds::AsReceived => (o.sess_id.clone(), o.sess_version.clone()),
            OriginIds::Leg { sess_id, version } => (sess_id.to_string(), version.to_string()),
        };
        out.extend_from_slice(format!("o={user} {id} ").as_bytes());
        let at = out.len();
        out.extend_from_slice(version.as_bytes());
        let span = at..out.len();
        out.extend_from_slice(format!(" IN {}", Ctx::family_addr(plan.address)).as_bytes());
        span
    }

    /// The line ending used near line `i`, for a line sipveil adds.
    fn eol_near(&self, i: usize) -> &[u8] {
        self.lines
            .iter()
            .take(i + 1)
            .rev()
            .map(|l| self.ending(l))
            .find(|e| !e.is_empty())
            .unwrap_or(b"\r\n")
    }
}

/// Decisions shared by the per-line edits.
struct Ctx<'a> {
    plan: &'a RewritePlan,
    session_hold: bool,
}

impl<'a> Ctx<'a> {
    fn new(sdp: &Sdp, plan: &'a RewritePlan) -> Result<Ctx<'a>, SdpError> {
        for (i, m) in sdp.media.iter().enumerate() {
            if !m.is_rejected() && plan.media.get(i).is_none() {
                return Err(SdpError::Plan(format!("no port for media section {i}")));
            }
        }
        if let Some(user) = &plan.origin_username {
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(SdpError::Plan(format!(
                    "o= username {user:?} is not a token"
                )));
            }
        }
        Ok(Ctx {
            plan,
            session_hold: sdp.session_connection().is_some_and(Connection::is_hold),
        })
    }

    /// `IP4 a.b.c.d` / `IP6 x::y` for sipveil's address.
    fn family_addr(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(a) => format!("IP4 {a}"),
            IpAddr::V6(a) => format!("IP6 {a}"),
        }
    }

    /// sipveil's address, or the unspecified address of its family for a kept hold.
    fn addr(&self, held: bool) -> String {
        let ip = match (
            held && self.plan.hold == HoldMode::KeepZeroAddress,
            self.plan.address,
        ) {
            (false, ip) => ip,
            (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Ctx::family_addr(ip)
    }

    /// Is the first c= of this scope (the only one written) a hold?
    fn held_connection(&self, sdp: &Sdp, section: Option<usize>) -> bool {
        match section {
            None => self.session_hold,
            Some(i) => sdp
                .media
                .get(i)
                .and_then(|m| m.connection())
                .is_some_and(Connection::is_hold),
        }
    }

    /// The planned port for section `i`; 0 if it was or becomes rejected.
    fn port(&self, sdp: &Sdp, i: usize) -> u16 {
        match sdp.media.get(i) {
            Some(m) if !m.is_rejected() => self.plan.media.get(i).map_or(0, |p| p.port),
            _ => 0,
        }
    }

    fn media_line(&self, sdp: &Sdp, line: &Line) -> Result<Edit, SdpError> {
        let Some((i, m)) = line.section.and_then(|i| Some((i, sdp.media.get(i)?))) else {
            return Ok(Edit::Keep);
        };
        if m.is_rejected() {
            return Ok(Edit::Keep);
        }
        let port = self.port(sdp, i);
        let mut text = Vec::with_capacity(line.text.len());
        text.extend_from_slice(
            sdp.raw
                .get(line.text.start..m.port_span.start)
                .unwrap_or_default(),
        );
        text.extend_from_slice(port.to_string().as_bytes());
        text.extend_from_slice(
            sdp.raw
                .get(m.port_span.end..line.text.end)
                .unwrap_or_default(),
        );
        Ok(Edit::Replace(text))
    }

    fn rtcp_line(&self, sdp: &Sdp, line: &Line) -> Result<Edit, SdpError> {
        let Some((i, m)) = line.section.and_then(|i| Some((i, sdp.media.get(i)?))) else {
            // A stray session-level a=rtcp: meaningless, and it could name the inside.
            return Ok(Edit::Drop);
        };
        let port = self.port(sdp, i);
        if port == 0 {
            // A rejected stream has no RTCP; its port would only name the inside.
            return Ok(Edit::Drop);
        }
        // With rtcp-mux, a=rtcp on the RTP port says "RTCP rides on RTP": keep saying it.
        let muxed = m.rtcp_mux && m.rtcp.as_ref().is_some_and(|r| r.port == m.port);
        let rtcp_port = match self.plan.media.get(i).and_then(|p| p.rtcp_port) {
            Some(p) => p,
            None if muxed => port,
            None => port.checked_add(1).ok_or_else(|| {
                SdpError::Plan(format!("no RTCP port above {port} for section {i}"))
            })?,
        };
        let mut text = format!("a=rtcp:{rtcp_port}");
        if let Some(c) = m.rtcp.as_ref().and_then(|r| r.connection.as_ref()) {
            text.push_str(" IN ");
            text.push_str(&self.addr(c.is_hold()));
        }
        Ok(Edit::Replace(text.into_bytes()))
    }

    /// True if section `i` is on hold by a zero address (its own c=, else the
    /// session's).
    fn section_held(&self, sdp: &Sdp, i: usize) -> bool {
        match sdp.media.get(i).and_then(|m| m.connection()) {
            Some(c) => c.is_hold(),
            None => self.session_hold,
        }
    }

    /// In [`HoldMode::AsDirection`], rewrites the direction of a held section.
    fn direction_line(&self, sdp: &Sdp, line: &Line) -> Edit {
        let Some(i) = line.section else {
            return Edit::Keep;
        };
        if self.plan.hold != HoldMode::AsDirection
            || self.port(sdp, i) == 0
            || !self.section_held(sdp, i)
        {
            return Edit::Keep;
        }
        // The name as the parser read it: up to a `:` (a direction attribute
        // takes no value, but one written with a value is still a direction).
        let text = sdp.text(line).get(2..).unwrap_or_default();
        let name = text.split(|&b| b == b':').next().unwrap_or_default();
        let written = Direction::from_attribute(
            &std::str::from_utf8(name)
                .unwrap_or_default()
                .to_ascii_lowercase(),
        );
        match written {
            Some(d) if d.without_recv() != d => {
                Edit::Replace(format!("a={}", d.without_recv()).into_bytes())
            }
            _ => Edit::Keep,
        }
    }

    /// In [`HoldMode::AsDirection`], the direction lines to add: (after line, what)
    /// for held sections that have no direction attribute of their own.
    fn direction_inserts(&self, sdp: &Sdp) -> Vec<(usize, Direction)> {
        if self.plan.hold != HoldMode::AsDirection {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, m) in sdp.media.iter().enumerate() {
            if m.direction.is_some() || self.port(sdp, i) == 0 || !self.section_held(sdp, i) {
                continue;
            }
            let inherited = sdp.direction_for(i);
            if inherited.without_recv() != inherited && m.lines.end > 0 {
                out.push((m.lines.end - 1, inherited.without_recv()));
            }
        }
        out
    }
}
