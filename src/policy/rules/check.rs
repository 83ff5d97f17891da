//! Load-time checks of `[[rule]]` fields, and the value check every rewritten
//! header passes before it is written. Each check reports to the file's context
//! and returns what survived, so one run reports every mistake.

use ipnet::IpNet;
use regex::Regex;

use super::super::load::Ctx;
use super::super::msgedit::HeaderKey;
use super::super::{pattern, Direction};
use super::StatusMatch;
use crate::config::Seg;
use crate::sip::{grammar, HeaderName, Method, NameAddr, SessionExpires};

/// Headers no rule may change, and why.
fn protected(kind: HeaderName) -> Option<&'static str> {
    use HeaderName as H;
    Some(match kind {
        H::Via | H::Route | H::RecordRoute | H::Contact | H::CallId | H::CSeq => {
            "sipveil matches transactions and dialogs by it"
        }
        H::From | H::To => "sipveil matches dialogs by it (rewrite_user changes its user part)",
        H::MaxForwards => "it is what stops forwarding loops",
        H::ContentLength => "it is always recomputed from the body",
        _ => return None,
    })
}

/// `methods`: SIP method tokens, case-sensitive.
pub(super) fn methods(
    ctx: &mut Ctx<'_, '_>,
    path: &[Seg<'_>],
    here: &str,
    list: &[String],
) -> Vec<Method> {
    let mut out = Vec::new();
    for m in list {
        match Method::parse(m) {
            Some(Method::Extension(_))
                if !matches!(
                    Method::parse(&m.to_ascii_uppercase()),
                    Some(Method::Extension(_))
                ) =>
            {
                ctx.add(
                    path,
                    format!(
                        "{here}: methods: `{m}`: SIP methods are case-sensitive, write `{}`",
                        m.to_ascii_uppercase()
                    ),
                );
            }
            Some(method) => out.push(method),
            None => ctx.add(path, format!("{here}: methods: `{m}` is not a method name")),
        }
    }
    out
}

/// `status`: codes 100-699 or classes "1xx" to "6xx".
pub(super) fn status(
    ctx: &mut Ctx<'_, '_>,
    path: &[Seg<'_>],
    here: &str,
    list: &[toml::Value],
) -> Vec<StatusMatch> {
    let mut out = Vec::new();
    for v in list {
        let parsed = match v {
            toml::Value::Integer(n) => u16::try_from(*n)
                .ok()
                .filter(|c| (100..=699).contains(c))
                .map(StatusMatch::Code),
            toml::Value::String(s) => {
                let b = s.as_bytes();
                match b {
                    [d @ b'1'..=b'6', x, y]
                        if x.eq_ignore_ascii_case(&b'x') && y.eq_ignore_ascii_case(&b'x') =>
                    {
                        Some(StatusMatch::Class(u16::from(d - b'0')))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match parsed {
            Some(s) => out.push(s),
            None => ctx.add(
                path,
                format!("{here}: status: `{v}` is neither a code 100-699 nor a class like \"4xx\""),
            ),
        }
    }
    out
}

/// A header name; `for_action` refuses the headers no rule may change.
pub(super) fn name(
    ctx: &mut Ctx<'_, '_>,
    path: &[Seg<'_>],
    here: &str,
    name: &str,
    for_action: bool,
) -> Option<HeaderKey> {
    let key_name = path.last().map_or("", |s| match s {
        Seg::Key(k) => k,
        Seg::Index(_) => "",
    });
    if !grammar::is_token(name) {
        ctx.add(
            path,
            format!("{here}: {key_name}: `{name}` is not a header name"),
        );
        return None;
    }
    let key = HeaderKey::new(name);
    if for_action {
        if let Some(why) = protected(key.kind()) {
            ctx.add(
                path,
                format!("{here}: {key_name}: `{name}` cannot be changed by a rule: {why}"),
            );
            return None;
        }
    }
    Some(key)
}

/// A header name and the value an action writes.
pub(super) fn name_value(
    ctx: &mut Ctx<'_, '_>,
    path: &[Seg<'_>],
    here: &str,
    header: &str,
    v: &str,
) -> Option<HeaderKey> {
    let key = name(ctx, path, here, header, true)?;
    match value(key.kind(), v) {
        Ok(()) => Some(key),
        Err(e) => {
            let key_name = path.last().map_or("", |s| match s {
                Seg::Key(k) => k,
                Seg::Index(_) => "",
            });
            ctx.add(path, format!("{here}: {key_name}: value {v:?} {e}"));
            None
        }
    }
}

/// `source_cidr`: networks (or single addresses) the sender must be in.
pub(super) fn cidrs(
    ctx: &mut Ctx<'_, '_>,
    path: &[Seg<'_>],
    here: &str,
    dir: Direction,
    items: &[String],
) -> Vec<IpNet> {
    if dir == Direction::Out {
        ctx.add(
            path,
            format!("{here}: source_cidr needs direction = \"in\": what leaves has no sender but sipveil"),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for s in items {
        let net = s
            .parse::<IpNet>()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) => out.push(n.trunc()),
            None => ctx.add(
                path,
                format!("{here}: source_cidr: `{s}` is not a network like 192.0.2.0/24 or 2001:db8::/32"),
            ),
        }
    }
    out
}

/// A replacement template, checked against its pattern's groups.
pub(super) fn replacement(
    ctx: &mut Ctx<'_, '_>,
    path: &[Seg<'_>],
    here: &str,
    re: Regex,
    template: &str,
) -> Option<Regex> {
    match pattern::check_replacement(&re, template) {
        Ok(()) => Some(re),
        Err(e) => {
            ctx.add(path, format!("{here}: {e}"));
            None
        }
    }
}

/// Whether `v` can be written as a value of header `kind`: one line, no control
/// characters, and parseable where sipveil or a peer parses the header.
pub(crate) fn value(kind: HeaderName, v: &str) -> Result<(), String> {
    use HeaderName as H;
    if v.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
        return Err("contains a line break or control character".into());
    }
    let ok = match kind {
        H::PAssertedIdentity
        | H::PPreferredIdentity
        | H::RemotePartyId
        | H::ReferTo
        | H::ReferredBy => {
            let mut n = 0;
            let all = grammar::split_list(v).all(|a| {
                n += 1;
                NameAddr::parse(a).is_ok()
            });
            all && n > 0
        }
        H::Expires | H::MinExpires | H::RSeq => grammar::parse_u32(v).is_some(),
        H::SessionExpires => SessionExpires::parse(v).is_ok(),
        H::MinSe => v.split(';').next().and_then(grammar::parse_u32).is_some(),
        H::ContentType => v.contains('/'),
        H::Require | H::ProxyRequire | H::Supported | H::Unsupported | H::Allow => {
            grammar::split_list(v).all(grammar::is_token)
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("is not a valid {} value", kind.as_str()))
    }
}
