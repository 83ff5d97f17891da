//! Codec policy on offers: which formats an interface accepts and in what order
//! it prefers them. Applied before the relay allocates ports, so a stream the
//! policy rejects never gets any.

use serde::{Deserialize, Serialize};

use super::error::SdpError;
use super::parse::{Limits, Role, Sdp};
use super::types::Media;

/// Allow, deny and preference lists of encoding names (`PCMU`, `opus`,
/// `telephone-event`, ...), compared case-insensitively.
///
/// - `deny` removes a format whatever else is said; for non-RTP streams it matches
///   the format token itself (`t38` denies fax).
/// - `allow`, when not empty, keeps only the RTP codecs it names. Companion formats
///   (telephone-event, CN, RED, RTX, ULPFEC, FlexFEC) need not be listed: they stay
///   with a kept codec of their clock rate (RTX with the codec its `apt=` names).
/// - `prefer` moves the named formats to the front of the `m=` list, in its order;
///   the others follow in the order offered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecPolicy {
    /// Codecs accepted; empty means all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Formats refused.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Preferred order.
    #[serde(default)]
    pub prefer: Vec<String>,
}

impl CodecPolicy {
    /// True if the policy changes nothing.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.prefer.is_empty()
    }

    fn denies(&self, name: &str) -> bool {
        self.deny.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    fn allows(&self, name: &str) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    fn rank(&self, name: Option<&str>) -> usize {
        name.and_then(|n| self.prefer.iter().position(|p| p.eq_ignore_ascii_case(n)))
            .unwrap_or(self.prefer.len())
    }
}

/// The encoding name and clock rate of a static RTP payload type (RFC 3551
/// tables 4 and 5), which offers may use without an `a=rtpmap`.
pub fn static_payload(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        25 => ("CelB", 90000),
        26 => ("JPEG", 90000),
        28 => ("nv", 90000),
        31 => ("H261", 90000),
        32 => ("MPV", 90000),
        33 => ("MP2T", 90000),
        34 => ("H263", 90000),
        _ => return None,
    })
}

impl Media {
    /// The encoding name and clock rate of a format: its `a=rtpmap`, else the
    /// static table; for non-RTP streams the token itself, without a rate.
    pub fn encoding<'a>(&'a self, format: &'a str) -> Option<(&'a str, Option<u32>)> {
        if !self.is_rtp() {
            return Some((format, None));
        }
        if let Some(map) = self.rtpmap(format) {
            return Some((map.encoding.as_str(), Some(map.clock_rate)));
        }
        let (name, rate) = static_payload(format.parse().ok()?)?;
        Some((name, Some(rate)))
    }
}

/// Formats that only make sense next to a real codec.
fn is_companion(name: &str) -> bool {
    ["telephone-event", "cn", "red", "rtx", "ulpfec"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name))
        || name.to_ascii_lowercase().starts_with("flexfec")
}

/// What the policy does to one section.
enum Outcome {
    Unchanged,
    Reject,
    Formats(Vec<String>),
}

fn decide(m: &Media, policy: &CodecPolicy) -> Outcome {
    let mut kept: Vec<&String> = Vec::new();
    let mut rates: Vec<Option<u32>> = Vec::new();
    for f in &m.formats {
        match m.encoding(f) {
            Some((name, _)) if policy.denies(name) => {}
            Some((name, _)) if m.is_rtp() && is_companion(name) => {}
            Some((name, rate)) if !m.is_rtp() || policy.allows(name) => {
                kept.push(f);
                rates.push(rate);
            }
            None if policy.allow.is_empty() => {
                kept.push(f);
                rates.push(None);
            }
            _ => {}
        }
    }
    if kept.is_empty() {
        return Outcome::Reject;
    }
    let companion_ok = |f: &String, name: &str, rate: Option<u32>| {
        if name.eq_ignore_ascii_case("rtx") {
            let apt = m.fmtp(f).and_then(|p| {
                p.params.split(';').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("apt")
                        .then(|| v.trim().to_owned())
                })
            });
            if let Some(apt) = apt {
                return kept.iter().any(|r| **r == apt);
            }
        }
        rate.is_none() || rates.iter().any(|r| r.is_none() || *r == rate)
    };
    let mut out: Vec<&String> = m
        .formats
        .iter()
        .filter(|f| match m.encoding(f) {
            Some((name, rate)) if m.is_rtp() && is_companion(name) => {
                !policy.denies(name) && companion_ok(f, name, rate)
            }
            _ => kept.contains(f),
        })
        .collect();
    out.sort_by_key(|f| policy.rank(m.encoding(f).map(|(n, _)| n)));
    if out
        .iter()
        .map(|f| f.as_str())
        .eq(m.formats.iter().map(String::as_str))
    {
        Outcome::Unchanged
    } else {
        Outcome::Formats(out.into_iter().cloned().collect())
    }
}

impl Sdp {
    /// Applies a codec policy to an offer and returns the filtered body, parsed.
    /// Removed formats lose their rtpmap/fmtp/rtcp-fb lines; a section left with no
    /// codec gets port 0 and is otherwise untouched. If no section is left active
    /// although some were, the answer is [`SdpError::NoAcceptableCodec`] (488).
    pub fn apply_codec_policy(&self, policy: &CodecPolicy) -> Result<Sdp, SdpError> {
        if policy.is_empty() {
            return Ok(self.clone());
        }
        let outcomes: Vec<Outcome> = self
            .media
            .iter()
            .map(|m| {
                if m.is_rejected() {
                    Outcome::Unchanged
                } else {
                    decide(m, policy)
                }
            })
            .collect();
        let active_before = self.media.iter().filter(|m| !m.is_rejected()).count();
        let active_after = self
            .media
            .iter()
            .zip(&outcomes)
            .filter(|(m, o)| !m.is_rejected() && !matches!(o, Outcome::Reject))
            .count();
        if active_before > 0 && active_after == 0 {
            return Err(SdpError::NoAcceptableCodec);
        }
        let mut out = Vec::with_capacity(self.raw.len());
        for line in &self.lines {
            let section = line
                .section
                .and_then(|i| Some((self.media.get(i)?, outcomes.get(i)?)));
            let text = self.text(line);
            match (&line.role, section) {
                (Role::Media, Some((m, Outcome::Reject))) => {
                    out.extend_from_slice(
                        self.raw
                            .get(line.text.start..m.port_span.start)
                            .unwrap_or_default(),
                    );
                    out.push(b'0');
                    out.extend_from_slice(
                        self.raw
                            .get(m.port_span.end..line.text.end)
                            .unwrap_or_default(),
                    );
                }
                (Role::Media, Some((m, Outcome::Formats(f)))) => {
                    out.extend_from_slice(
                        self.raw
                            .get(line.text.start..m.formats_at)
                            .unwrap_or_default(),
                    );
                    out.extend_from_slice(f.join(" ").as_bytes());
                }
                (Role::FormatAttr(fmt), Some((_, Outcome::Formats(f)))) if !f.contains(fmt) => {
                    continue
                }
                _ => out.extend_from_slice(text),
            }
            out.extend_from_slice(self.ending(line));
        }
        out.extend_from_slice(self.raw.get(self.tail.clone()).unwrap_or_default());
        Sdp::parse_with(&out, &Limits::UNBOUNDED)
    }
}
