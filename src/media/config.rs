//! `[media]`: how sipveil anchors media. The raw struct mirrors the file (serde,
//! unknown keys refused); [`MediaConfig`] is the validated form the relay takes.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// Who carries the media of a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// sipveil's own relay (the default: topology hiding is complete out of the box).
    #[default]
    Relay,
    /// SDP addresses pass untouched; media flows end to end (no hiding of media).
    Passthrough,
    /// An external rtpengine, driven over its ng control protocol.
    Rtpengine,
}

/// The validated `[media]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaConfig {
    /// Who relays media.
    pub mode: MediaMode,
    /// Lowest port the relay may bind (even; RTP of the first pair).
    pub port_min: u16,
    /// Highest port the relay may bind (the RTCP port of the last pair is at most this).
    pub port_max: u16,
    /// A call whose every stream was silent this long is reported by
    /// `silent_calls`; `None` (`media_timeout = 0`) disables the check.
    pub media_timeout: Option<Duration>,
    /// A latched source that stayed silent this long may be replaced by a new one
    /// (see the latching rules in `media::latch`).
    pub relatch_after: Duration,
    /// A released port pair is not handed out again for this long, so late
    /// packets of an ended call do not reach the next call on that port.
    pub port_quarantine: Duration,
    /// Forwarding threads (each takes a share of the streams).
    pub workers: usize,
    /// Most media streams one call may hold (each costs two port pairs).
    pub max_streams_per_call: usize,
    /// The rtpengine ng control address (`mode = "rtpengine"`).
    pub rtpengine: Option<SocketAddr>,
    /// How long one ng command waits for its reply before it is sent again.
    pub rtpengine_timeout: Duration,
    /// How many times an ng command is sent before giving up.
    pub rtpengine_tries: u32,
    /// The o= username written into anchored bodies (it can carry an inside
    /// user or host name); `None` keeps the received one.
    pub origin_username: Option<String>,
    /// Keep ICE attributes in anchored bodies (they name the far side's
    /// addresses: only for deployments that want ICE end to end).
    pub pass_ice: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        // Kept equal to `validate(&RawMedia::default())` by a test.
        MediaConfig {
            mode: MediaMode::Relay,
            port_min: 20000,
            port_max: 29999,
            media_timeout: Some(Duration::from_secs(60)),
            relatch_after: Duration::from_secs(2),
            port_quarantine: Duration::from_secs(5),
            workers: 1,
            max_streams_per_call: 8,
            rtpengine: None,
            rtpengine_timeout: Duration::from_millis(500),
            rtpengine_tries: 3,
            origin_username: Some("-".into()),
            pass_ice: false,
        }
    }
}

/// `[media]` as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMedia {
    /// `relay`, `passthrough` or `rtpengine`.
    pub mode: MediaMode,
    /// `"MIN-MAX"`, inclusive.
    pub port_range: String,
    /// Seconds; 0 disables.
    pub media_timeout: u64,
    /// Milliseconds of silence before a latched source may be replaced.
    pub relatch_after_ms: u64,
    /// Seconds a released pair rests before reuse.
    pub port_quarantine: u64,
    /// Forwarding threads.
    pub workers: usize,
    /// Streams per call.
    pub max_streams_per_call: usize,
    /// `IP:PORT` of rtpengine's ng listener.
    pub rtpengine: Option<String>,
    /// Milliseconds per ng try.
    pub rtpengine_timeout_ms: u64,
    /// ng tries.
    pub rtpengine_tries: u32,
    /// o= username; `""` keeps the received one.
    pub origin_username: String,
    /// Keep ICE attributes.
    pub pass_ice: bool,
}

impl Default for RawMedia {
    fn default() -> Self {
        RawMedia {
            mode: MediaMode::Relay,
            port_range: "20000-29999".into(),
            media_timeout: 60,
            relatch_after_ms: 2000,
            port_quarantine: 5,
            workers: 1,
            max_streams_per_call: 8,
            rtpengine: None,
            rtpengine_timeout_ms: 500,
            rtpengine_tries: 3,
            origin_username: "-".into(),
            pass_ice: false,
        }
    }
}

/// Parses `"20000-29999"` into an inclusive range holding at least one even/odd pair.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not MIN-MAX (like 20000-29999)"))?;
    let num = |t: &str| {
        t.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{}` in `{s}` is not a port number", t.trim()))
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if lo < 1024 {
        return Err(format!("`{s}`: ports below 1024 are reserved"));
    }
    // The first usable pair starts at the first even port.
    let first = lo + (lo % 2);
    if first >= hi {
        return Err(format!("`{s}` holds no even/odd port pair"));
    }
    Ok((lo, hi))
}

/// Checks `[media]`; each problem names its key so the caller can point at the line.
pub fn validate(raw: &RawMedia) -> Result<MediaConfig, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let (port_min, port_max) = match parse_port_range(&raw.port_range) {
        Ok(r) => r,
        Err(e) => {
            problems.push(("port_range", format!("[media] port_range: {e}")));
            (0, 0)
        }
    };
    if raw.workers == 0 || raw.workers > 64 {
        problems.push(("workers", "[media] workers must be 1..=64".to_string()));
    }
    if raw.max_streams_per_call == 0 {
        problems.push((
            "max_streams_per_call",
            "[media] max_streams_per_call must be at least 1".to_string(),
        ));
    }
    if raw.rtpengine_tries == 0 {
        problems.push((
            "rtpengine_tries",
            "[media] rtpengine_tries must be at least 1".to_string(),
        ));
    }
    let rtpengine = match raw.rtpengine.as_deref().map(str::parse::<SocketAddr>) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            problems.push((
                "rtpengine",
                "[media] rtpengine must be IP:PORT (like 127.0.0.1:2223)".to_string(),
            ));
            None
        }
    };
    if raw.mode == MediaMode::Rtpengine && raw.rtpengine.is_none() {
        problems.push((
            "rtpengine",
            "[media] mode = \"rtpengine\" needs rtpengine = \"IP:PORT\"".to_string(),
        ));
    }
    if !raw.origin_username.bytes().all(|b| b.is_ascii_graphic()) {
        problems.push((
            "origin_username",
            "[media] origin_username must be one token without spaces (\"-\" by default, \"\" keeps the received one)".to_string(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(MediaConfig {
        mode: raw.mode,
        port_min,
        port_max,
        media_timeout: (raw.media_timeout > 0).then(|| Duration::from_secs(raw.media_timeout)),
        relatch_after: Duration::from_millis(raw.relatch_after_ms),
        port_quarantine: Duration::from_secs(raw.port_quarantine),
        workers: raw.workers,
        max_streams_per_call: raw.max_streams_per_call,
        rtpengine,
        rtpengine_timeout: Duration::from_millis(raw.rtpengine_timeout_ms.max(1)),
        rtpengine_tries: raw.rtpengine_tries,
        origin_username: (!raw.origin_username.is_empty()).then(|| raw.origin_username.clone()),
        pass_ice: raw.pass_ice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = MediaConfig::default();
        assert_eq!(validate(&RawMedia::default()).unwrap(), c);
        assert_eq!((c.port_min, c.port_max), (20000, 29999));
        assert_eq!(c.media_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.mode, MediaMode::Relay);
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("20000-29999"), Ok((20000, 29999)));
        assert_eq!(parse_port_range(" 30001 - 30003 "), Ok((30001, 30003)));
        assert!(parse_port_range("30001-30002").is_err());
        assert!(parse_port_range("100-200").is_err());
        assert!(parse_port_range("20000").is_err());
        assert!(parse_port_range("a-b").is_err());
        assert!(parse_port_range("30000-20000").is_err());
    }

    #[test]
    fn rtpengine_mode_needs_an_address() {
        let raw = RawMedia {
            mode: MediaMode::Rtpengine,
            ..RawMedia::default()
        };
        let e = validate(&raw).unwrap_err();
        assert_eq!(e[0].0, "rtpengine");
        let raw = RawMedia {
            mode: MediaMode::Rtpengine,
            rtpengine: Some("127.0.0.1:2223".into()),
            media_timeout: 0,
            ..RawMedia::default()
        };
        let c = validate(&raw).unwrap();
        assert_eq!(c.rtpengine, Some("127.0.0.1:2223".parse().unwrap()));
        assert_eq!(c.media_timeout, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<RawMedia, _> = toml::from_str("port_rang = \"1-2\"");
        assert!(r.is_err());
        let r: RawMedia = toml::from_str("mode = \"passthrough\"").unwrap();
        assert_eq!(r.mode, MediaMode::Passthrough);
    }

    const BASE: &str = "[node]\nname = \"n\"\ndata_dir = \"/tmp/x\"\n\n[[interface]]\nname = \"access\"\nudp = \"127.0.0.1:5060\"\n";

    #[test]
    fn config_file_media_section() {
        let c = crate::config::Config::from_toml_str(BASE, "<test>").unwrap();
        assert_eq!(c.media, MediaConfig::default());
        let text = format!("{BASE}\n[media]\nport_range = \"40000-40099\"\nmedia_timeout = 0\n");
        let c = crate::config::Config::from_toml_str(&text, "<test>").unwrap();
        assert_eq!((c.media.port_min, c.media.port_max), (40000, 40099));
        assert_eq!(c.media.media_timeout, None);
        let text = format!("{BASE}\n[media]\nport_range = \"40000\"\n");
        let e = crate::config::Config::from_toml_str(&text, "<test>").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("port_range") && e.contains(":10:"), "{e}");
        let text = format!("{BASE}\n[media]\nport = 1\n");
        assert!(crate::config::Config::from_toml_str(&text, "<test>").is_err());
    }
}
