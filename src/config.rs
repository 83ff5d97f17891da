//! The operator's config file (DESIGN.md, "Operator contract"): TOML read with serde,
//! refused on unknown keys, then checked for meaning, every error naming file and line.
//!
//! Loading happens in two layers so that the runtime sees only checked, typed values:
//! private `Raw*` structs mirror the file exactly (serde, `deny_unknown_fields`), and
//! [`Config`] holds what survived validation (socket addresses parsed, route targets
//! resolved, durations typed). Line numbers come from a `toml_edit` parse of the same
//! text, so the public types carry no span noise.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml_edit::{ArrayOfTables, ImDocument, Item, TableLike, Value};

use crate::sip;

// `[admission]` and the `allow` / `rate` keys of `[[interface]]`.
mod admission;

// ---------------------------------------------------------------------------
// Public, validated configuration
// ---------------------------------------------------------------------------

/// The whole validated config; what `sipveil run` hands to the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file this was loaded from, kept so a reload (SIGHUP) can read it again.
    pub path: Option<PathBuf>,
    /// `[node]`: identity of this process and where its state lives.
    pub node: Node,
    /// `[[interface]]`, in file order; names are unique.
    pub interfaces: Vec<Interface>,
    /// `[[route]]`, in file order: the first route whose `from` matches wins.
    pub routes: Vec<Route>,
    /// `[registrar]`, when this node serves REGISTER.
    pub registrar: Option<Registrar>,
    /// `[policy]`: where boundary policy files are read from.
    pub policy: Policy,
    /// `[admin]`: the optional HTTP admin listener.
    pub admin: Admin,
    /// `[limits]`: message limits handed straight to the SIP parser.
    pub limits: sip::Limits,
    /// `[timers]`: RFC 3261 timer bases and the ring timeout.
    pub timers: Timers,
    /// `[admission]`: the admission pipeline (sanity, scanner, flood, rate,
    /// brute-force and overload defences) and the TCP connection bounds.
    pub admission: crate::admission::AdmissionConfig,
    /// `[media]`: who relays media, port range, media timeout.
    pub media: crate::media::MediaConfig,
}

/// `[node]`: who this process is and where it keeps its store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Node name, for logs, call records and shared stores with several nodes.
    pub name: String,
    /// Directory of the embedded store; relative paths are relative to the current
    /// directory of the process. Created by [`Config::ensure_data_dir`] at run time.
    pub data_dir: PathBuf,
}

/// The transports sipveil listens on and sends over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP with Content-Length framing.
    Tcp,
}

impl Transport {
    /// Every transport, in the order listeners are reported.
    pub const ALL: [Transport; 2] = [Transport::Udp, Transport::Tcp];

    /// The token in a Via header (`SIP/2.0/UDP`), upper case by convention.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// The value of a `;transport=` URI parameter, lower case.
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// Parses a `transport=` parameter value (case-insensitive); `None` for
    /// transports sipveil does not speak (yet): tls, sctp, ws, wss.
    pub fn from_param(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.uri_param())
    }
}

/// An owned host as sipveil writes it into SIP: a name or an IP address. Display
/// brackets IPv6 addresses (RFC 3261 §19.1.1, RFC 5118), so it can go into a URI,
/// Via or Contact as is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostAddr {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, as written in the config.
    Name(String),
}

impl HostAddr {
    /// Parses a host without port: a DNS name, an IPv4 address, or an IPv6 address
    /// with or without brackets. The error says what is wrong, for config messages.
    pub fn parse(s: &str) -> Result<HostAddr, String> {
        if let Ok(v6) = s.parse::<Ipv6Addr>() {
            return Ok(HostAddr::Ip(IpAddr::V6(v6)));
        }
        match sip::Host::parse(s) {
            Ok(sip::Host::Name(n)) => Ok(HostAddr::Name(n.to_string())),
            Ok(h) => h
                .ip()
                .map(HostAddr::Ip)
                .ok_or_else(|| format!("`{s}` is not a host")),
            Err(_) if s.contains(':') && !s.starts_with('[') => Err(format!(
                "`{s}` is not a host: give a host name or IP address without a port"
            )),
            Err(e) => Err(format!("`{s}` is not a valid host ({})", e.reason)),
        }
    }

    /// The address, when the host is an IP literal (no DNS lookup needed).
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            HostAddr::Ip(ip) => Some(*ip),
            HostAddr::Name(_) => None,
        }
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostAddr::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            HostAddr::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            HostAddr::Name(n) => f.write_str(n),
        }
    }
}

/// `[[interface]]`: one side of the SBC, with its listeners and what it tells peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Unique name that routes and the registrar refer to.
    pub name: String,
    /// UDP listen address, if this interface takes UDP.
    pub udp: Option<SocketAddr>,
    /// TCP listen address, if this interface takes TCP.
    pub tcp: Option<SocketAddr>,
    /// Host written into Via/Contact/SDP toward this side; `None` means the listen
    /// address (use [`Interface::advertised`] rather than reading this directly).
    pub advertise: Option<HostAddr>,
    /// Whether identity headers arriving here are believed (RFC 3325 trust domain).
    pub trusted: bool,
    /// `send_identity` (default true): whether P-Asserted-Identity and
    /// Remote-Party-ID may leave by this interface at all; false removes them always,
    /// for peers that must never learn the caller's asserted identity.
    pub send_identity: bool,
    /// `identity_header` (default "pai"): which identity header this interface's
    /// peers understand, for legacy gateways that speak only Remote-Party-ID.
    pub identity_header: IdentityHeader,
    /// `allow`: when not empty, out-of-dialog requests from sources outside these
    /// networks are dropped on this interface (peers-only interfaces).
    pub allow: Vec<ipnet::IpNet>,
    /// `rate = { invite = .., register = .., other = .., *_burst = .. }`: this
    /// interface's per-source budgets, replacing those of `[admission.rate]`.
    pub rate: crate::admission::RateOverride,
    /// `media_address`: the relay's address toward this side; default the
    /// advertised address (or the listen address when that is a name).
    pub media_address: Option<std::net::IpAddr>,
    /// `codecs = { allow = [..], deny = [..], prefer = [..] }`: codec policy for
    /// offers from and toward this side; an offer left with none gets 488.
    pub codecs: crate::sdp::CodecPolicy,
    /// `rtpengine_interface`: rtpengine's interface name facing this side.
    pub rtpengine_interface: Option<String>,
}

/// Which identity header an interface's peers expect (`identity_header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityHeader {
    /// P-Asserted-Identity (RFC 3325), the standard form.
    #[default]
    Pai,
    /// Remote-Party-ID (draft-ietf-sip-privacy), still spoken by older gateways.
    Rpid,
    /// Both headers, for peers in transition.
    Both,
}

impl Interface {
    /// The listen address for one transport, if this interface takes it.
    pub fn listen(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
        }
    }

    /// Every (transport, listen address) pair, UDP first: what the runtime binds.
    pub fn listeners(&self) -> impl Iterator<Item = (Transport, SocketAddr)> + '_ {
        Transport::ALL
            .into_iter()
            .filter_map(|t| self.listen(t).map(|a| (t, a)))
    }

    /// Whether this interface can send and receive over `transport`.
    pub fn has(&self, transport: Transport) -> bool {
        self.listen(transport).is_some()
    }

    /// The host this interface speaks with over `transport`: `advertise`, or else
    /// that listener's address. `None` if there is no listener for `transport`.
    pub fn advertised(&self, transport: Transport) -> Option<HostAddr> {
        let listen = self.listen(transport)?;
        Some(self.advertise.clone().unwrap_or(HostAddr::Ip(listen.ip())))
    }

    /// The advertised host in SIP form (IPv6 bracketed), for the interface's first
    /// listener (UDP, else TCP). A validated config always has a listener; for a
    /// hand-built interface without one this falls back to `advertise` or "".
    pub fn advertised_host(&self) -> String {
        self.listeners()
            .next()
            .and_then(|(t, _)| self.advertised(t))
            .or_else(|| self.advertise.clone())
            .map(|h| h.to_string())
            .unwrap_or_default()
    }

    /// `host:port` for a Via sent-by or a Contact over `transport` (IPv6 bracketed).
    pub fn sent_by(&self, transport: Transport) -> Option<String> {
        let listen = self.listen(transport)?;
        let host = self.advertised(transport)?;
        Some(format!("{host}:{}", listen.port()))
    }

    /// This interface's own SIP URI over `transport` (for Contact and Record-Route):
    /// `sip:host:port`, with `;transport=tcp` for TCP.
    pub fn uri(&self, transport: Transport) -> Option<String> {
        let sent_by = self.sent_by(transport)?;
        Some(match transport {
            Transport::Udp => format!("sip:{sent_by}"),
            Transport::Tcp => format!("sip:{sent_by};transport=tcp"),
        })
    }
}

/// `[[route]]`: where an out-of-dialog request arriving on `from` goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Name of the interface the request arrived on.
    pub from: String,
    /// Next hop, or the local registrar's bindings.
    pub to: RouteTarget,
    /// Name of the interface the B leg leaves from.
    pub egress: String,
}

impl Route {
    /// The static next hop, or `None` for a route to the registrar.
    pub fn next_hop(&self) -> Option<&NextHop> {
        match &self.to {
            RouteTarget::NextHop(h) => Some(h),
            RouteTarget::Registrar => None,
        }
    }
}

/// The `to` of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// `to = "registrar"`: deliver to the contacts registered for the R-URI user.
    Registrar,
    /// `to = "sip:host[:port][;transport=tcp]"`: a fixed next hop.
    NextHop(NextHop),
}

/// A resolved static next hop (from a route's `sip:` URI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The URI as written in the config.
    pub uri: String,
    /// Host to send to (DNS names are resolved by the runtime).
    pub host: HostAddr,
    /// Port; 5060 when the URI gives none.
    pub port: u16,
    /// Transport from `;transport=`; UDP when absent.
    pub transport: Transport,
}

impl NextHop {
    /// The socket address to send to, when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host.ip().map(|ip| SocketAddr::new(ip, self.port))
    }

    /// `host:port` (IPv6 bracketed), for the B leg's request-URI.
    pub fn hostport(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// `[registrar]`: REGISTER service for one domain on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registrar {
    /// Domain served (REGISTER request-URI host, digest realm).
    pub domain: String,
    /// Name of the interface REGISTER is accepted on.
    pub interface: String,
    /// Whether REGISTER and calls from subscribers are digest-challenged (default true:
    /// an edge open to the internet must not take unauthenticated registrations).
    pub auth: bool,
    /// Shortest accepted registration, seconds; shorter gets 423 (default 60).
    pub min_expires: u32,
    /// Longest granted registration, seconds; longer is cut down (default 3600).
    pub max_expires: u32,
    /// Registration time when the client names none, seconds (default 3600).
    pub default_expires: u32,
    /// Interval of keep-alives to NATed bindings; `None` sends none.
    pub nat_keepalive: Option<Duration>,
    /// How long a digest nonce is accepted; older ones get a challenge with
    /// `stale=true` (default 300 s).
    pub nonce_ttl: Duration,
    /// Digest algorithms challenged with, one challenge each in this order
    /// (default MD5 then SHA-256: RFC 8760 lets the server order by preference,
    /// and clients such as SIPp 3.6 read only the first challenge). Clients that
    /// fail on any unknown algorithm (baresip 1.0 / libre 1.x) need `["MD5"]`.
    pub digest_algorithms: Vec<crate::registrar::digest::Algorithm>,
}

/// `[policy]`: where boundary policy files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Directory of `*.toml` policy files (default `policies`, relative to the
    /// current directory). Missing or empty means built-in defaults only.
    pub dir: PathBuf,
}

/// `[admin]`: the operator's HTTP endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admin {
    /// HTTP listen address; `None` runs no HTTP admin listener.
    pub listen: Option<SocketAddr>,
}

/// `[timers]`: RFC 3261 §17 timer bases and the unanswered-call limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// T1, the round-trip estimate (`t1_ms`, default 500 ms).
    pub t1: Duration,
    /// T2, the cap on non-INVITE retransmit intervals (`t2_ms`, default 4 s).
    pub t2: Duration,
    /// T4, how long the network may hold a message (`t4_ms`, default 5 s).
    pub t4: Duration,
    /// A call unanswered this long is cancelled, 408 to the caller (`ring_timeout`,
    /// seconds, default 180).
    pub ring_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        let raw = RawTimers::default();
        Timers {
            t1: Duration::from_millis(raw.t1_ms),
            t2: Duration::from_millis(raw.t2_ms),
            t4: Duration::from_millis(raw.t4_ms),
            ring_timeout: Duration::from_secs(raw.ring_timeout),
        }
    }
}

impl Config {
    /// Reads and validates a config file. Errors name the file and the line.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::from_toml_str(&text, &path.display().to_string())?;
        cfg.path = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Validates config text; `origin` names it in errors (a path, or "<test>").
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        };
        let doc = ImDocument::parse(text).map_err(|e| {
            invalid(vec![Problem {
                line: e.span().map(|s| line_at(text, s.start)),
                message: e.message().trim().replace('\n', "; "),
            }])
        })?;
        let locator = Locator { text, doc: &doc };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(vec![locator.serde_problem(&e)]))?;
        validate(raw, &locator).map_err(invalid)
    }

    /// The interface called `name`.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// Position of the interface called `name` in [`Config::interfaces`], for
    /// runtimes that keep per-interface state in a vector.
    pub fn interface_index(&self, name: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == name)
    }

    /// Routes for requests arriving on interface `from`, in priority order.
    pub fn routes_from<'a>(&'a self, from: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.iter().filter(move |r| r.from == from)
    }

    /// The route an out-of-dialog request arriving on `from` takes (first match
    /// wins); `None` means 404.
    pub fn route_for(&self, from: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.from == from)
    }

    /// Creates `[node] data_dir` if it is missing (called at run time, not by check).
    pub fn ensure_data_dir(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.node.data_dir)
    }

    /// One line describing the config, for `check` and the start-up log.
    pub fn summary(&self) -> String {
        let ifaces: Vec<String> = self
            .interfaces
            .iter()
            .map(|i| {
                let listeners: Vec<String> =
                    i.listeners().map(|(t, a)| format!("{t} {a}")).collect();
                let trust = if i.trusted { ", trusted" } else { "" };
                format!(
                    "{} [{}; advertises {}{trust}]",
                    i.name,
                    listeners.join(", "),
                    i.advertised_host()
                )
            })
            .collect();
        let registrar = match &self.registrar {
            Some(r) => format!("registrar {} on {}", r.domain, r.interface),
            None => "no registrar".to_string(),
        };
        format!(
            "node {}: {} interface(s) {}, {} route(s), {registrar}, data_dir {}",
            self.node.name,
            self.interfaces.len(),
            ifaces.join(", "),
            self.routes.len(),
            self.node.data_dir.display()
        )
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a config could not be loaded. Display prints one `file:line: message` per
/// problem, the form editors and CI logs link to.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{}", render(origin, problems))]
    Invalid {
        /// The file (or test label) the text came from.
        origin: String,
        /// Every problem found; syntax and type errors stop at the first.
        problems: Vec<Problem>,
    },
}

/// One thing wrong with a config, located where possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when the problem has a place.
    pub line: Option<usize>,
    /// What is wrong, naming the key and section.
    pub message: String,
}

fn render(origin: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match p.line {
            Some(l) => format!("{origin}:{l}: {}", p.message),
            None => format!("{origin}: {}", p.message),
        })
        .collect();
    lines.join("\n")
}

pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let upto = text.get(..offset).unwrap_or(text);
    upto.bytes().filter(|&b| b == b'\n').count() + 1
}

// ---------------------------------------------------------------------------
// Locating keys and values in the text
// ---------------------------------------------------------------------------

/// One step of a path into the document: a key or an array index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Maps paths to lines and byte offsets back to paths, over a span-keeping parse.
/// Shared with `policy`, whose files are located the same way.
pub(crate) struct Locator<'t> {
    pub(crate) text: &'t str,
    pub(crate) doc: &'t ImDocument<&'t str>,
}

/// Where an offset landed: the enclosing table, and the key (hit on the key itself
/// or on its value) when it was inside one.
struct Hit<'a> {
    table: Vec<Seg<'a>>,
    key: Option<&'a str>,
}

fn covers(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.contains(&offset) || (s.is_empty() && s.start == offset))
}

impl<'t> Locator<'t> {
    /// The line of the value at `path`, or of the nearest enclosing thing that exists
    /// (a missing key is reported at its table's header).
    pub(crate) fn line(&self, path: &[Seg<'_>]) -> Option<usize> {
        let mut table: Option<&dyn TableLike> = Some(self.doc.as_table());
        let mut array: Option<&ArrayOfTables> = None;
        let mut best: Option<Range<usize>> = None;
        for seg in path {
            match *seg {
                Seg::Key(k) => {
                    let Some((key, item)) = table.and_then(|t| t.get_key_value(k)) else {
                        break;
                    };
                    best = item.span().or_else(|| key.span()).or(best);
                    table = item.as_table_like();
                    array = item.as_array_of_tables();
                }
                Seg::Index(i) => {
                    let Some(t) = array.and_then(|a| a.get(i)) else {
                        break;
                    };
                    best = t.span().or(best);
                    table = Some(t);
                    array = None;
                }
            }
        }
        best.map(|s| line_at(self.text, s.start))
    }

    /// Which table and key contains byte `offset`.
    fn at(&self, offset: usize) -> Option<Hit<'t>> {
        let root = self.doc.as_table() as &dyn TableLike;
        let mut path = Vec::new();
        walk(root, offset, &mut path)
    }

    /// The path of the table or array-of-tables element whose span is exactly `span`.
    fn table_spanning(&self, span: &Range<usize>) -> Option<Vec<Seg<'t>>> {
        fn find<'a>(
            t: &'a dyn TableLike,
            span: &Range<usize>,
            path: &mut Vec<Seg<'a>>,
        ) -> Option<Vec<Seg<'a>>> {
            for (k, item) in t.iter() {
                path.push(Seg::Key(k));
                let found = if let Some(a) = item.as_array_of_tables() {
                    a.iter().enumerate().find_map(|(i, sub)| {
                        path.push(Seg::Index(i));
                        let f = if sub.span().as_ref() == Some(span) {
                            Some(path.clone())
                        } else {
                            find(sub, span, path)
                        };
                        path.pop();
                        f
                    })
                } else if let Some(sub) = item.as_table_like() {
                    if item.span().as_ref() == Some(span) {
                        Some(path.clone())
                    } else {
                        find(sub, span, path)
                    }
                } else {
                    None
                };
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        find(self.doc.as_table(), span, &mut Vec::new())
    }

    /// A serde/toml error turned into a problem naming key, section and line.
    pub(crate) fn serde_problem(&self, e: &toml::de::Error) -> Problem {
        let msg = e.message().trim();
        let hit = if msg.starts_with("missing field") {
            // The span is the whole table the key is missing from; the root table
            // starts where the first table does, so match the span exactly.
            e.span().map(|s| Hit {
                table: self.table_spanning(&s).unwrap_or_default(),
                key: None,
            })
        } else {
            e.span().and_then(|s| self.at(s.start))
        };
        let line = e.span().map(|s| line_at(self.text, s.start));
        let (table, key) = match &hit {
            Some(h) => (h.table.as_slice(), h.key),
            None => (&[][..], None),
        };
        let place = self.describe(table);
        let place_in = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in {place}")
        };
        let message = if let Some(rest) = msg.strip_prefix("unknown field `") {
            let (name, tail) = rest.split_once('`').unwrap_or((rest, ""));
            let tail = tail.trim_start_matches(',').trim();
            if tail.is_empty() {
                format!("unknown key `{name}` {place_in}")
            } else {
                format!("unknown key `{name}` {place_in} ({tail})")
            }
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or(rest);
            if table.is_empty() {
                // Top-level sections: say which section is missing, not "line 1".
                return Problem {
                    line: None,
                    message: format!("missing [{name}] section"),
                };
            }
            format!("missing key `{name}` in {place}")
        } else if let Some(k) = key {
            format!("`{k}` {place_in}: {msg}")
        } else {
            format!("{place}: {msg}")
        };
        Problem { line, message }
    }

    /// A human name for a table path: `[node]`, `[[interface]] #2 (core)`.
    fn describe(&self, path: &[Seg<'_>]) -> String {
        match path {
            [] => "the top level".to_string(),
            [Seg::Key(k)] => format!("[{k}]"),
            [Seg::Key(k), Seg::Key(sub)] => format!("[{k}.{sub}]"),
            [Seg::Key(k), Seg::Index(i)] => {
                let name = self
                    .doc
                    .get(k)
                    .and_then(|a| a.as_array_of_tables())
                    .and_then(|a| a.get(*i))
                    .and_then(|t| t.get("name"))
                    .and_then(|n| n.as_str());
                match name {
                    Some(n) => format!("[[{k}]] #{} ({n})", i + 1),
                    None => format!("[[{k}]] #{}", i + 1),
                }
            }
            _ => {
                let parts: Vec<String> = path
                    .iter()
                    .map(|s| match s {
                        Seg::Key(k) => format!(".{k}"),
                        Seg::Index(i) => format!("[{i}]"),
                    })
                    .collect();
                format!("`{}`", parts.concat().trim_start_matches('.'))
            }
        }
    }
}

fn walk<'a>(table: &'a dyn TableLike, offset: usize, path: &mut Vec<Seg<'a>>) -> Option<Hit<'a>> {
    for (k, item) in table.iter() {
        let key_span = table.key(k).and_then(|key| key.span());
        if covers(key_span, offset) {
            return Some(Hit {
                table: path.clone(),
                key: Some(k),
            });
        }
        match item {
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    path.push(Seg::Key(k));
                    path.push(Seg::Index(i));
                    let found = walk(t, offset, path).or_else(|| {
                        covers(t.span(), offset).then(|| Hit {
                            table: path.clone(),
                            key: None,
                        })
                    });
                    path.truncate(path.len() - 2);
                    if found.is_some() {
                        return found;
                    }
                }
            }
            Item::Table(_) | Item::Value(Value::InlineTable(_)) => {
                if let Some(t) = item.as_table_like() {
                    path.push(Seg::Key(k));
                    let found = walk(t, offset, path);
                    path.pop();
                    if found.is_some() {
                        return found;
                    }
                }
                if covers(item.span(), offset) {
                    let mut table = path.clone();
                    table.push(Seg::Key(k));
                    return Some(Hit { table, key: None });
                }
            }
            _ => {
                if covers(item.span(), offset) {
                    return Some(Hit {
                        table: path.clone(),
                        key: Some(k),
                    });
                }
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The file as written (serde)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    #[serde(default)]
    interface: Vec<RawInterface>,
    #[serde(default)]
    route: Vec<RawRoute>,
    registrar: Option<RawRegistrar>,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    timers: RawTimers,
    #[serde(default)]
    admission: admission::RawAdmission,
    #[serde(default)]
    media: crate::media::RawMedia,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    data_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: String,
    udp: Option<String>,
    tcp: Option<String>,
    advertise: Option<String>,
    #[serde(default)]
    trusted: bool,
    #[serde(default = "default_true")]
    send_identity: bool,
    #[serde(default)]
    identity_header: IdentityHeader,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    rate: admission::RawRateOverride,
    media_address: Option<String>,
    #[serde(default)]
    codecs: crate::sdp::CodecPolicy,
    rtpengine_interface: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    from: String,
    to: String,
    egress: String,
}

fn default_true() -> bool {
    true
}
fn default_min_expires() -> u32 {
    60
}
fn default_max_expires() -> u32 {
    3600
}
fn default_default_expires() -> u32 {
    3600
}
fn default_nonce_ttl() -> u64 {
    crate::registrar::digest::DEFAULT_NONCE_TTL.as_secs()
}
fn default_digest_algorithms() -> Vec<String> {
    vec!["MD5".into(), "SHA-256".into()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistrar {
    domain: String,
    interface: String,
    #[serde(default = "default_true")]
    auth: bool,
    #[serde(default = "default_min_expires")]
    min_expires: u32,
    #[serde(default = "default_max_expires")]
    max_expires: u32,
    #[serde(default = "default_default_expires")]
    default_expires: u32,
    nat_keepalive: Option<u64>,
    #[serde(default = "default_nonce_ttl")]
    nonce_ttl: u64,
    #[serde(default = "default_digest_algorithms")]
    digest_algorithms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    dir: PathBuf,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            dir: PathBuf::from("policies"),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_message_size: usize,
    max_headers: usize,
    max_header_line: usize,
    max_via: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        let l = sip::Limits::default();
        RawLimits {
            max_message_size: l.max_message_size,
            max_headers: l.max_headers,
            max_header_line: l.max_header_line,
            max_via: l.max_via,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTimers {
    t1_ms: u64,
    t2_ms: u64,
    t4_ms: u64,
    ring_timeout: u64,
}

impl Default for RawTimers {
    fn default() -> Self {
        RawTimers {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            ring_timeout: 180,
        }
    }
}

// ---------------------------------------------------------------------------
// Validation: from the file as written to the typed config
// ---------------------------------------------------------------------------

/// Collects problems with their lines while validation goes on, so `check` reports
/// every mistake at once rather than one per run.
struct Problems<'l, 't> {
    loc: &'l Locator<'t>,
    list: Vec<Problem>,
}

impl Problems<'_, '_> {
    fn add(&mut self, path: &[Seg<'_>], message: String) {
        self.list.push(Problem {
            line: self.loc.line(path),
            message,
        });
    }
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!("`{s}` is not an IP address with port (like 192.0.2.1:5060 or [2001:db8::1]:5060)")
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "`{s}`: port 0 is not allowed; peers need a fixed port"
        ));
    }
    Ok(addr)
}

/// `media_address` and `codecs` of `[[interface]]` #`i`, checked: the address
/// must be a concrete IP (the relay binds to it), codec names must be tokens.
fn interface_media(
    i: usize,
    here: &str,
    ri: &RawInterface,
    p: &mut Problems<'_, '_>,
) -> Option<std::net::IpAddr> {
    use Seg::{Index as I, Key as K};
    for (key, names) in [
        ("allow", &ri.codecs.allow),
        ("deny", &ri.codecs.deny),
        ("prefer", &ri.codecs.prefer),
    ] {
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic()))
        {
            p.add(
                &[K("interface"), I(i), K("codecs"), K(key)],
                format!("{here}: codecs.{key}: `{bad}` is not a codec name (like PCMU, opus, telephone-event)"),
            );
        }
    }
    if ri
        .rtpengine_interface
        .as_deref()
        .is_some_and(|n| !valid_name(n))
    {
        p.add(
            &[K("interface"), I(i), K("rtpengine_interface")],
            format!("{here}: rtpengine_interface must be letters, digits, '-', '_' or '.'"),
        );
    }
    let text = ri.media_address.as_deref()?;
    match text.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) if !ip.is_unspecified() => Some(ip),
        _ => {
            p.add(
                &[K("interface"), I(i), K("media_address")],
                format!("{here}: media_address must be an IP address of this host (not a name, not 0.0.0.0), got `{text}`"),
            );
            None
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}

fn validate(raw: RawConfig, loc: &Locator<'_>) -> Result<Config, Vec<Problem>> {
    let mut p = Problems {
        loc,
        list: Vec::new(),
    };
    use Seg::{Index as I, Key as K};

    // [node]
    if raw.node.name.trim().is_empty() {
        p.add(&[K("node"), K("name")], "[node] name is empty".into());
    }
    if raw.node.data_dir.as_os_str().is_empty() {
        p.add(
            &[K("node"), K("data_dir")],
            "[node] data_dir is empty".into(),
        );
    }

    // [[interface]]
    if raw.interface.is_empty() {
        p.list.push(Problem {
            line: None,
            message: "no [[interface]]: sipveil needs at least one interface to listen on".into(),
        });
    }
    let mut interfaces: Vec<Interface> = Vec::new();
    for (i, ri) in raw.interface.iter().enumerate() {
        let here = format!("[[interface]] #{} ({})", i + 1, ri.name);
        if !valid_name(&ri.name) {
            p.add(
                &[K("interface"), I(i), K("name")],
                format!("{here}: name must be letters, digits, '-', '_' or '.'"),
            );
        }
        if let Some(first) = raw.interface.iter().position(|o| o.name == ri.name) {
            if first < i {
                p.add(
                    &[K("interface"), I(i), K("name")],
                    format!(
                        "{here}: duplicate interface name `{}` (also [[interface]] #{})",
                        ri.name,
                        first + 1
                    ),
                );
            }
        }
        let mut parse_listen = |key: &'static str, v: &Option<String>| {
            v.as_deref().and_then(|s| match socket_addr(s) {
                Ok(a) => Some(a),
                Err(e) => {
                    p.add(
                        &[K("interface"), I(i), K(key)],
                        format!("{here}: {key}: {e}"),
                    );
                    None
                }
            })
        };
        let udp = parse_listen("udp", &ri.udp);
        let tcp = parse_listen("tcp", &ri.tcp);
        if ri.udp.is_none() && ri.tcp.is_none() {
            p.add(
                &[K("interface"), I(i)],
                format!("{here}: needs a listen address: set `udp`, `tcp` or both"),
            );
        }
        let advertise = match ri.advertise.as_deref() {
            None => None,
            Some(s) => match HostAddr::parse(s) {
                Ok(HostAddr::Ip(ip)) if ip.is_unspecified() => {
                    p.add(
                        &[K("interface"), I(i), K("advertise")],
                        format!("{here}: advertise: `{s}` cannot be reached by peers"),
                    );
                    None
                }
                Ok(h) => Some(h),
                Err(e) => {
                    p.add(
                        &[K("interface"), I(i), K("advertise")],
                        format!("{here}: advertise: {e}"),
                    );
                    None
                }
            },
        };
        if ri.advertise.is_none() {
            for (key, addr) in [("udp", udp), ("tcp", tcp)] {
                if addr.is_some_and(|a| a.ip().is_unspecified()) {
                    p.add(
                        &[K("interface"), I(i), K(key)],
                        format!(
                            "{here}: {key} listens on the wildcard address {}; set `advertise` \
                             to the address peers reach this interface at",
                            addr.map(|a| a.ip().to_string()).unwrap_or_default()
                        ),
                    );
                }
            }
        }
        let (allow, rate) = admission::interface(i, &here, &ri.allow, &ri.rate, &mut p);
        let media_address = interface_media(i, &here, ri, &mut p);
        interfaces.push(Interface {
            name: ri.name.clone(),
            udp,
            tcp,
            advertise,
            trusted: ri.trusted,
            send_identity: ri.send_identity,
            identity_header: ri.identity_header,
            allow,
            rate,
            media_address,
            codecs: ri.codecs.clone(),
            rtpengine_interface: ri.rtpengine_interface.clone(),
        });
    }
    // Two listeners of one transport cannot share an address, nor a port when one
    // of them is the wildcard address of the same family.
    for (i, a) in interfaces.iter().enumerate() {
        for (j, b) in interfaces.iter().enumerate().take(i) {
            for t in Transport::ALL {
                let (Some(x), Some(y)) = (a.listen(t), b.listen(t)) else {
                    continue;
                };
                let clash = x == y
                    || (x.port() == y.port()
                        && x.is_ipv4() == y.is_ipv4()
                        && (x.ip().is_unspecified() || y.ip().is_unspecified()));
                if clash {
                    p.add(
                        &[K("interface"), I(i), K(t.uri_param())],
                        format!(
                            "[[interface]] #{} ({}): {t} {x} clashes with [[interface]] #{} ({}) {t} {y}",
                            i + 1,
                            a.name,
                            j + 1,
                            b.name
                        ),
                    );
                }
            }
        }
    }
    let find = |name: &str| interfaces.iter().find(|i| i.name == name);

    // [registrar]
    let registrar = raw.registrar.as_ref().map(|r| {
        if let Err(e) = HostAddr::parse(&r.domain) {
            p.add(
                &[K("registrar"), K("domain")],
                format!("[registrar] domain: {e}"),
            );
        }
        if find(&r.interface).is_none() {
            p.add(
                &[K("registrar"), K("interface")],
                format!(
                    "[registrar] interface = \"{}\" names no [[interface]]",
                    r.interface
                ),
            );
        }
        if r.min_expires == 0 {
            p.add(
                &[K("registrar"), K("min_expires")],
                "[registrar] min_expires must be at least 1".into(),
            );
        }
        if !(r.min_expires <= r.default_expires && r.default_expires <= r.max_expires) {
            p.add(
                &[K("registrar")],
                format!(
                    "[registrar] needs min_expires <= default_expires <= max_expires (have {} / {} / {})",
                    r.min_expires, r.default_expires, r.max_expires
                ),
            );
        }
        if r.nat_keepalive == Some(0) {
            p.add(
                &[K("registrar"), K("nat_keepalive")],
                "[registrar] nat_keepalive must be at least 1 second (leave it out for none)"
                    .into(),
            );
        }
        if r.nonce_ttl == 0 {
            p.add(
                &[K("registrar"), K("nonce_ttl")],
                "[registrar] nonce_ttl must be at least 1 second".into(),
            );
        }
        let mut digest_algorithms = Vec::new();
        for a in &r.digest_algorithms {
            match crate::registrar::digest::Algorithm::parse(a) {
                Some((alg, false)) if !digest_algorithms.contains(&alg) => {
                    digest_algorithms.push(alg)
                }
                Some((_, false)) => p.add(
                    &[K("registrar"), K("digest_algorithms")],
                    format!("[registrar] digest_algorithms names \"{a}\" twice"),
                ),
                _ => p.add(
                    &[K("registrar"), K("digest_algorithms")],
                    format!(
                        "[registrar] digest_algorithms: \"{a}\" is not one of \"MD5\", \"SHA-256\""
                    ),
                ),
            }
        }
        if r.digest_algorithms.is_empty() {
            p.add(
                &[K("registrar"), K("digest_algorithms")],
                "[registrar] digest_algorithms must name at least one algorithm".into(),
            );
        }
        Registrar {
            domain: r.domain.clone(),
            interface: r.interface.clone(),
            auth: r.auth,
            min_expires: r.min_expires,
            max_expires: r.max_expires,
            default_expires: r.default_expires,
            nat_keepalive: r.nat_keepalive.filter(|&s| s > 0).map(Duration::from_secs),
            nonce_ttl: Duration::from_secs(r.nonce_ttl.max(1)),
            digest_algorithms,
        }
    });

    // [[route]]
    let mut routes = Vec::new();
    for (i, rr) in raw.route.iter().enumerate() {
        let here = format!("[[route]] #{}", i + 1);
        for (key, name) in [("from", &rr.from), ("egress", &rr.egress)] {
            if find(name).is_none() {
                p.add(
                    &[K("route"), I(i), K(key)],
                    format!("{here}: {key} = \"{name}\" names no [[interface]]"),
                );
            }
        }
        let to = if rr.to == "registrar" {
            if registrar.is_none() {
                p.add(
                    &[K("route"), I(i), K("to")],
                    format!("{here}: to = \"registrar\" but there is no [registrar] section"),
                );
            }
            Some(RouteTarget::Registrar)
        } else {
            match next_hop(&rr.to) {
                Ok(h) => {
                    if let Some(eg) = find(&rr.egress) {
                        if !eg.has(h.transport) {
                            p.add(
                                &[K("route"), I(i), K("to")],
                                format!(
                                    "{here}: next hop {} is over {} but egress interface `{}` has no {} listener",
                                    rr.to, h.transport, eg.name, h.transport
                                ),
                            );
                        }
                    }
                    Some(RouteTarget::NextHop(h))
                }
                Err(e) => {
                    p.add(&[K("route"), I(i), K("to")], format!("{here}: to: {e}"));
                    None
                }
            }
        };
        if let Some(to) = to {
            routes.push(Route {
                from: rr.from.clone(),
                to,
                egress: rr.egress.clone(),
            });
        }
    }

    // [admin]
    let admin = Admin {
        listen: raw
            .admin
            .listen
            .as_deref()
            .and_then(|s| match socket_addr(s) {
                Ok(a) => Some(a),
                Err(e) => {
                    p.add(&[K("admin"), K("listen")], format!("[admin] listen: {e}"));
                    None
                }
            }),
    };

    // [limits]
    let l = &raw.limits;
    for (key, v) in [
        ("max_message_size", l.max_message_size),
        ("max_headers", l.max_headers),
        ("max_header_line", l.max_header_line),
        ("max_via", l.max_via),
    ] {
        if v == 0 {
            p.add(
                &[K("limits"), K(key)],
                format!("[limits] {key} must be at least 1"),
            );
        }
    }
    let limits = sip::Limits {
        max_message_size: l.max_message_size,
        max_headers: l.max_headers,
        max_header_line: l.max_header_line,
        max_via: l.max_via,
    };

    // [timers]
    let t = &raw.timers;
    for (key, v) in [
        ("t1_ms", t.t1_ms),
        ("t2_ms", t.t2_ms),
        ("t4_ms", t.t4_ms),
        ("ring_timeout", t.ring_timeout),
    ] {
        if v == 0 {
            p.add(
                &[K("timers"), K(key)],
                format!("[timers] {key} must be at least 1"),
            );
        }
    }
    if t.t2_ms < t.t1_ms {
        p.add(
            &[K("timers"), K("t2_ms")],
            format!("[timers] t2_ms ({}) is below t1_ms ({})", t.t2_ms, t.t1_ms),
        );
    }
    let timers = Timers {
        t1: Duration::from_millis(t.t1_ms),
        t2: Duration::from_millis(t.t2_ms),
        t4: Duration::from_millis(t.t4_ms),
        ring_timeout: Duration::from_secs(t.ring_timeout),
    };

    // [admission]
    let admission = admission::validate(&raw.admission, &mut p);
    // [media]
    let media = match crate::media::config::validate(&raw.media) {
        Ok(m) => m,
        Err(problems) => {
            for (key, message) in problems {
                p.add(&[K("media"), K(key)], message);
            }
            crate::media::MediaConfig::default()
        }
    };

    if !p.list.is_empty() {
        return Err(p.list);
    }
    Ok(Config {
        path: None,
        node: Node {
            name: raw.node.name,
            data_dir: raw.node.data_dir,
        },
        interfaces,
        routes,
        registrar,
        policy: Policy {
            dir: raw.policy.dir,
        },
        admin,
        limits,
        timers,
        admission,
        media,
    })
}

/// Resolves a route's `to` URI into a next hop, refusing what cannot be a next hop.
fn next_hop(s: &str) -> Result<NextHop, String> {
    let uri = sip::Uri::parse(s).map_err(|e| {
        format!(
            "`{s}` is neither \"registrar\" nor a valid sip: URI ({})",
            e.reason
        )
    })?;
    match uri.scheme {
        sip::Scheme::Sip => {}
        sip::Scheme::Sips => {
            return Err(format!(
                "`{s}`: sips: needs TLS, which sipveil does not speak yet"
            ))
        }
        _ => {
            return Err(format!(
                "`{s}` is neither \"registrar\" nor a sip: URI like sip:192.0.2.1:5060"
            ))
        }
    }
    if uri.user.is_some() {
        return Err(format!(
            "`{s}` has a user part; a route names a host (the request-URI user is kept)"
        ));
    }
    if uri.headers.is_some() {
        return Err(format!(
            "`{s}` has URI headers (`?...`), which a next hop cannot use"
        ));
    }
    let transport = match uri.transport() {
        None => Transport::Udp,
        Some(t) => Transport::from_param(t)
            .ok_or_else(|| format!("`{s}`: transport `{t}` is not supported (udp or tcp)"))?,
    };
    let host = match uri.host {
        sip::Host::Name(n) => HostAddr::Name(n.to_string()),
        h => h
            .ip()
            .map(HostAddr::Ip)
            .ok_or_else(|| format!("`{s}` has no host"))?,
    };
    if host.ip().is_some_and(|ip| ip.is_unspecified()) {
        return Err(format!("`{s}`: cannot send to the wildcard address"));
    }
    Ok(NextHop {
        uri: s.to_string(),
        host,
        port: uri.port.unwrap_or(5060),
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
name = "edge-1"
data_dir = "./data"

[[interface]]
name = "access"
udp = "127.0.0.10:5060"
tcp = "127.0.0.10:5060"
advertise = "sbc.example.net"

[[interface]]
name = "core"
udp = "[::1]:5070"
trusted = true

[registrar]
domain = "example.test"
interface = "access"

[[route]]
from = "access"
to = "sip:127.0.0.2:5090;transport=tcp"
egress = "access"

[[route]]
from = "core"
to = "registrar"
egress = "access"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml_str(text, "t.toml").map_err(|e| e.to_string())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("config was accepted:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn interface_media_keys() {
        let text = GOOD.replace(
            "advertise = \"sbc.example.net\"",
            "advertise = \"sbc.example.net\"\nmedia_address = \"127.0.0.11\"\n\
             codecs = { allow = [\"PCMA\", \"opus\"], prefer = [\"opus\"] }\n\
             rtpengine_interface = \"public\"",
        );
        let c = parse(&text).unwrap();
        let a = &c.interfaces[0];
        assert_eq!(a.media_address, Some("127.0.0.11".parse().unwrap()));
        assert_eq!(a.codecs.allow, vec!["PCMA", "opus"]);
        assert_eq!(a.codecs.prefer, vec!["opus"]);
        assert_eq!(a.rtpengine_interface.as_deref(), Some("public"));
        let bad = GOOD.replace(
            "advertise = \"sbc.example.net\"",
            "advertise = \"sbc.example.net\"\nmedia_address = \"0.0.0.0\"",
        );
        assert!(err(&bad).contains("media_address"), "{}", err(&bad));
        let bad = GOOD.replace(
            "advertise = \"sbc.example.net\"",
            "advertise = \"sbc.example.net\"\ncodecs = { allow = [\"PC MU\"] }",
        );
        assert!(err(&bad).contains("codecs.allow"), "{}", err(&bad));
        let bad = GOOD.replace(
            "advertise = \"sbc.example.net\"",
            "advertise = \"sbc.example.net\"\ncodecs = { permit = [\"PCMU\"] }",
        );
        assert!(err(&bad).contains("permit"), "{}", err(&bad));
    }

    #[test]
    fn good_config_and_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.node.name, "edge-1");
        assert_eq!(c.interfaces.len(), 2);
        let access = c.interface("access").unwrap();
        assert!(!access.trusted);
        assert_eq!(access.advertised_host(), "sbc.example.net");
        assert_eq!(
            access.sent_by(Transport::Tcp).as_deref(),
            Some("sbc.example.net:5060")
        );
        assert_eq!(
            access.uri(Transport::Tcp).as_deref(),
            Some("sip:sbc.example.net:5060;transport=tcp")
        );
        let core = c.interface("core").unwrap();
        assert!(core.trusted);
        assert_eq!(core.advertised_host(), "[::1]");
        assert_eq!(core.sent_by(Transport::Udp).as_deref(), Some("[::1]:5070"));
        assert_eq!(core.sent_by(Transport::Tcp), None);
        assert_eq!(c.interface_index("core"), Some(1));

        let r = c.route_for("access").unwrap();
        let hop = r.next_hop().unwrap();
        assert_eq!(hop.transport, Transport::Tcp);
        assert_eq!(hop.port, 5090);
        assert_eq!(hop.socket_addr(), "127.0.0.2:5090".parse().ok());
        assert_eq!(c.route_for("core").unwrap().to, RouteTarget::Registrar);

        let reg = c.registrar.as_ref().unwrap();
        assert!(reg.auth);
        assert_eq!(
            (reg.min_expires, reg.max_expires, reg.default_expires),
            (60, 3600, 3600)
        );
        assert_eq!(reg.nat_keepalive, None);
        assert_eq!(c.limits, sip::Limits::default());
        assert_eq!(c.limits.max_message_size, 65536);
        assert_eq!(c.timers, Timers::default());
        assert_eq!(c.timers.t1, Duration::from_millis(500));
        assert_eq!(c.timers.ring_timeout, Duration::from_secs(180));
        assert_eq!(c.policy.dir, PathBuf::from("policies"));
        assert_eq!(c.admin.listen, None);
        assert!(c.summary().starts_with("node edge-1: 2 interface(s)"));
    }

    #[test]
    fn next_hop_defaults_port_and_transport() {
        let h = next_hop("sip:gw.example.net").unwrap();
        assert_eq!(h.port, 5060);
        assert_eq!(h.transport, Transport::Udp);
        assert_eq!(h.hostport(), "gw.example.net:5060");
        assert_eq!(h.socket_addr(), None);
        let h = next_hop("sip:[2001:db8::1]:5080;transport=TCP").unwrap();
        assert_eq!(h.hostport(), "[2001:db8::1]:5080");
        assert_eq!(h.transport, Transport::Tcp);
        for bad in [
            "sips:gw.example.net",
            "tel:+15551234",
            "sip:alice@gw.example.net",
            "sip:gw.example.net;transport=sctp",
            "gw.example.net:5060",
            "sip:0.0.0.0",
        ] {
            assert!(next_hop(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn advertised_defaults_to_listen_address() {
        let c = parse(&GOOD.replace("advertise = \"sbc.example.net\"\n", "")).unwrap();
        let access = c.interface("access").unwrap();
        assert_eq!(access.advertised_host(), "127.0.0.10");
        assert_eq!(
            access.uri(Transport::Udp).as_deref(),
            Some("sip:127.0.0.10:5060")
        );
    }

    #[test]
    fn advertise_accepts_bare_and_bracketed_ipv6() {
        for v in ["2001:db8::5", "[2001:db8::5]"] {
            let text = GOOD.replace("sbc.example.net", v);
            let c = parse(&text).unwrap();
            assert_eq!(
                c.interface("access").unwrap().advertised_host(),
                "[2001:db8::5]"
            );
        }
        let e = err(&GOOD.replace("sbc.example.net", "sbc.example.net:5060"));
        assert!(e.contains("without a port"), "{e}");
    }

    #[test]
    fn unknown_key_names_key_section_and_line() {
        let text = GOOD.replace("udp = \"[::1]:5070\"", "udpp = \"[::1]:5070\"");
        let e = err(&text);
        let line = text.lines().position(|l| l.starts_with("udpp")).unwrap() + 1;
        assert!(
            e.starts_with(&format!(
                "t.toml:{line}: unknown key `udpp` in [[interface]] #2 (core)"
            )),
            "{e}"
        );
    }

    #[test]
    fn unknown_section_and_nested_key() {
        let e = err(&format!("{GOOD}\n[bogus]\nx = 1\n"));
        assert!(e.contains("unknown key `bogus` at the top level"), "{e}");
        let e = err(&format!("{GOOD}\n[timers]\nt1 = 5\n"));
        assert!(e.contains("unknown key `t1` in [timers]"), "{e}");
    }

    #[test]
    fn type_error_names_key_and_line() {
        let text = GOOD.replace("trusted = true", "trusted = \"yes\"");
        let e = err(&text);
        let line = text.lines().position(|l| l.starts_with("trusted")).unwrap() + 1;
        assert!(
            e.starts_with(&format!(
                "t.toml:{line}: `trusted` in [[interface]] #2 (core)"
            )),
            "{e}"
        );
    }

    #[test]
    fn missing_keys_and_sections() {
        let e = err("[[interface]]\nname = \"a\"\nudp = \"127.0.0.1:5060\"\n");
        assert_eq!(e, "t.toml: missing [node] section");
        let text = GOOD.replace("name = \"core\"\n", "");
        let e = err(&text);
        assert!(e.contains("missing key `name` in [[interface]] #2"), "{e}");
        assert!(e.starts_with("t.toml:"), "{e}");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[node]\nname = \"x\"\ndata_dir = \n");
        assert!(e.starts_with("t.toml:3: "), "{e}");
    }

    #[test]
    fn semantic_errors_with_lines() {
        let text = GOOD.replace("from = \"core\"", "from = \"cor\"");
        let e = err(&text);
        let line = text.lines().position(|l| l.contains("\"cor\"")).unwrap() + 1;
        assert_eq!(
            e,
            format!("t.toml:{line}: [[route]] #2: from = \"cor\" names no [[interface]]")
        );

        let e = err(&GOOD.replace("name = \"core\"", "name = \"access\""));
        assert!(e.contains("duplicate interface name `access`"), "{e}");

        let e = err(&GOOD.replace("to = \"registrar\"", "to = \"registrat\""));
        assert!(e.contains("neither \"registrar\" nor"), "{e}");

        let e = err(&GOOD.replace("interface = \"access\"", "interface = \"nowhere\""));
        assert!(e.contains("[registrar] interface = \"nowhere\""), "{e}");

        let e = err(&GOOD.replace("udp = \"[::1]:5070\"", "udp = \"127.0.0.10:5060\""));
        assert!(e.contains("clashes with [[interface]] #1 (access)"), "{e}");

        let e = err(&GOOD.replace("udp = \"[::1]:5070\"", "udp = \"127.0.0.10\""));
        assert!(e.contains("not an IP address with port"), "{e}");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = GOOD.replace("from = \"core\"", "from = \"cor\"").replace(
            "egress = \"access\"\n\n[[route]]",
            "egress = \"acc\"\n\n[[route]]",
        );
        let e = err(&text);
        assert_eq!(e.lines().count(), 2, "{e}");
    }

    #[test]
    fn interface_needs_a_listener_and_no_interfaces_is_an_error() {
        let e = err(&GOOD.replace("udp = \"[::1]:5070\"\n", ""));
        assert!(e.contains("needs a listen address"), "{e}");
        let e = err("[node]\nname = \"x\"\ndata_dir = \"d\"\n");
        assert!(e.contains("no [[interface]]"), "{e}");
    }

    #[test]
    fn wildcard_listen_needs_advertise_and_clashes() {
        let e = err(&GOOD.replace("udp = \"[::1]:5070\"", "udp = \"0.0.0.0:5070\""));
        assert!(e.contains("wildcard address"), "{e}");
        let e = err(&GOOD.replace(
            "udp = \"[::1]:5070\"",
            "udp = \"0.0.0.0:5060\"\nadvertise = \"192.0.2.1\"",
        ));
        assert!(e.contains("clashes"), "{e}");
    }

    #[test]
    fn route_transport_needs_egress_listener() {
        let text = GOOD.replace(
            "to = \"sip:127.0.0.2:5090;transport=tcp\"\negress = \"access\"",
            "to = \"sip:127.0.0.2:5090;transport=tcp\"\negress = \"core\"",
        );
        let e = err(&text);
        assert!(e.contains("has no tcp listener"), "{e}");
    }

    #[test]
    fn registrar_checks() {
        let e = err(&GOOD.replace(
            "interface = \"access\"\n",
            "interface = \"access\"\nmin_expires = 7200\n",
        ));
        assert!(e.contains("min_expires <= default_expires"), "{e}");
        let c = parse(&GOOD.replace(
            "interface = \"access\"\n",
            "interface = \"access\"\nauth = false\nnat_keepalive = 25\n",
        ))
        .unwrap();
        let r = c.registrar.unwrap();
        assert!(!r.auth);
        assert_eq!(r.nat_keepalive, Some(Duration::from_secs(25)));
        assert_eq!(r.nonce_ttl, Duration::from_secs(300));
        let c = parse(&GOOD.replace(
            "interface = \"access\"\n",
            "interface = \"access\"\nnonce_ttl = 5\n",
        ))
        .unwrap();
        assert_eq!(c.registrar.unwrap().nonce_ttl, Duration::from_secs(5));
        let e = err(&GOOD.replace(
            "interface = \"access\"\n",
            "interface = \"access\"\nnonce_ttl = 0\n",
        ));
        assert!(e.contains("nonce_ttl must be at least 1"), "{e}");
        use crate::registrar::digest::Algorithm;
        let reg = |extra: &str| {
            GOOD.replace(
                "interface = \"access\"\n",
                &format!("interface = \"access\"\n{extra}\n"),
            )
        };
        assert_eq!(
            parse(GOOD).unwrap().registrar.unwrap().digest_algorithms,
            [Algorithm::Md5, Algorithm::Sha256]
        );
        let c = parse(&reg("digest_algorithms = [\"sha-256\"]")).unwrap();
        assert_eq!(c.registrar.unwrap().digest_algorithms, [Algorithm::Sha256]);
        for (bad, why) in [
            ("digest_algorithms = []", "at least one"),
            ("digest_algorithms = [\"MD5\", \"md5\"]", "twice"),
            ("digest_algorithms = [\"MD5-sess\"]", "is not one of"),
            ("digest_algorithms = [\"SHA-512\"]", "is not one of"),
        ] {
            let e = err(&reg(bad));
            assert!(e.contains(why), "{bad}: {e}");
        }
        let no_reg = GOOD.replace(
            "[registrar]\ndomain = \"example.test\"\ninterface = \"access\"\n",
            "",
        );
        let e = err(&no_reg);
        assert!(e.contains("no [registrar] section"), "{e}");
    }

    #[test]
    fn limits_timers_admin_policy() {
        let text = format!(
            "{GOOD}\n[limits]\nmax_message_size = 4096\nmax_via = 8\n\
             [timers]\nt1_ms = 250\nring_timeout = 60\n\
             [admin]\nlisten = \"127.0.0.1:8080\"\n[policy]\ndir = \"/etc/sipveil/policies\"\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.limits.max_message_size, 4096);
        assert_eq!(c.limits.max_via, 8);
        assert_eq!(c.limits.max_headers, sip::Limits::default().max_headers);
        assert_eq!(c.timers.t1, Duration::from_millis(250));
        assert_eq!(c.timers.t2, Duration::from_millis(4000));
        assert_eq!(c.timers.ring_timeout, Duration::from_secs(60));
        assert_eq!(c.admin.listen, "127.0.0.1:8080".parse().ok());
        assert_eq!(c.policy.dir, PathBuf::from("/etc/sipveil/policies"));

        let e = err(&format!("{GOOD}\n[timers]\nt1_ms = 5000\nt2_ms = 4000\n"));
        assert!(e.contains("t2_ms (4000) is below t1_ms (5000)"), "{e}");
        let e = err(&format!("{GOOD}\n[limits]\nmax_via = -1\n"));
        assert!(e.contains("`max_via` in [limits]"), "{e}");
    }

    #[test]
    fn identity_options_default_and_parse() {
        let c = parse(GOOD).unwrap();
        let access = c.interface("access").unwrap();
        assert!(access.send_identity);
        assert_eq!(access.identity_header, IdentityHeader::Pai);
        let c = parse(&GOOD.replace(
            "trusted = true",
            "trusted = true\nsend_identity = false\nidentity_header = \"both\"",
        ))
        .unwrap();
        let core = c.interface("core").unwrap();
        assert!(!core.send_identity);
        assert_eq!(core.identity_header, IdentityHeader::Both);
        let text = GOOD.replace("trusted = true", "identity_header = \"pia\"");
        let e = err(&text);
        let line = text.lines().position(|l| l.contains("pia")).unwrap() + 1;
        assert!(
            e.starts_with(&format!(
                "t.toml:{line}: `identity_header` in [[interface]] #2 (core)"
            )),
            "{e}"
        );
        assert!(e.contains("rpid"), "{e}");
    }

    #[test]
    fn host_addr_display_brackets_ipv6() {
        assert_eq!(HostAddr::parse("::1").unwrap().to_string(), "[::1]");
        assert_eq!(HostAddr::parse("[::1]").unwrap().to_string(), "[::1]");
        assert_eq!(HostAddr::parse("10.0.0.1").unwrap().to_string(), "10.0.0.1");
        assert!(HostAddr::parse("bad host").is_err());
        assert!(HostAddr::parse("").is_err());
    }
}
