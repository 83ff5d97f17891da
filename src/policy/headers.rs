//! Header policy: the allow-list of headers that cross from one leg to the other.
//!
//! The built-in list is `dialog::crossing`'s; `[[headers]]` entries widen it
//! (`pass`) or narrow it (`block`) per interface and direction. For a message
//! crossing from interface F to interface T, a header crosses when it is on the
//! built-in list or passed by F's `in` or T's `out` entries, and blocked by neither
//! (narrowing wins: an operator hiding a header must not be undone by another file).
//! User-Agent and Server carry sipveil's own product token unless passed (then the
//! peer's value crosses) or blocked (then none is sent).

use serde::Deserialize;

use super::load::Ctx;
use super::Direction;
use crate::config::Seg::{Index as I, Key as K};
use crate::dialog::crossing::{copy_body, PASSED, PASSED_NAMED, PRODUCT, SUPPORTED_TAGS};
use crate::sip::{grammar, HeaderName, SipMessage};

/// `[[headers]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaders {
    interface: String,
    direction: Direction,
    #[serde(default)]
    pass: Vec<String>,
    #[serde(default)]
    block: Vec<String>,
}

/// What happens to User-Agent (requests) or Server (responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Product {
    /// sipveil's own product token.
    Ours,
    /// The peer's value crosses.
    Theirs,
    /// Nothing is sent.
    Omit,
}

/// Headers whose option tags are filtered to those sipveil relays.
const TAG_FILTERED: &[HeaderName] = &[
    HeaderName::Supported,
    HeaderName::Require,
    HeaderName::ProxyRequire,
];

/// Headers a policy can neither pass nor block, and why.
fn fixed(name: HeaderName) -> Option<&'static str> {
    use HeaderName as H;
    Some(match name {
        H::Via
        | H::Route
        | H::RecordRoute
        | H::Contact
        | H::CallId
        | H::From
        | H::To
        | H::CSeq
        | H::MaxForwards
        | H::ContentLength => "sipveil builds it from the target leg's own state",
        H::ContentType => "it travels with the body",
        H::PAssertedIdentity | H::PPreferredIdentity | H::RemotePartyId | H::Privacy => {
            "identity headers follow the identity policy (interface `trusted`, \
             `send_identity`, `identity_header`)"
        }
        H::ReferTo | H::ReferredBy => "the REFER logic builds it",
        _ => return None,
    })
}

/// A set of header names: known ones by kind, extension ones by text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct NameSet {
    known: Vec<HeaderName>,
    named: Vec<Box<str>>,
}

impl NameSet {
    fn insert(&mut self, name: &str) {
        match HeaderName::classify(name) {
            HeaderName::Other => {
                if !self.has_named(name) {
                    self.named.push(name.into());
                }
            }
            k => {
                if !self.known.contains(&k) {
                    self.known.push(k);
                }
            }
        }
    }

    fn has_named(&self, name: &str) -> bool {
        self.named.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    fn has(&self, kind: HeaderName, written: &str) -> bool {
        match kind {
            HeaderName::Other => self.has_named(written),
            k => self.known.contains(&k),
        }
    }

    fn union(&mut self, other: &NameSet) {
        for k in &other.known {
            if !self.known.contains(k) {
                self.known.push(*k);
            }
        }
        for n in &other.named {
            self.insert(n);
        }
    }

    fn subtract(&mut self, other: &NameSet) {
        self.known.retain(|k| !other.known.contains(k));
        self.named.retain(|n| !other.has_named(n));
    }
}

/// Which headers cross between one pair of interfaces, and what is said about the
/// product. Built at load, used per message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderFilter {
    copied: NameSet,
    tag_filtered: Vec<HeaderName>,
    user_agent: Product,
    server: Product,
}

impl HeaderFilter {
    /// The built-in filter, `dialog::crossing`'s list.
    fn builtin() -> HeaderFilter {
        let mut copied = NameSet::default();
        copied.known.extend_from_slice(PASSED);
        copied
            .named
            .extend(PASSED_NAMED.iter().map(|n| Box::<str>::from(*n)));
        HeaderFilter {
            copied,
            tag_filtered: vec![HeaderName::Supported, HeaderName::Require],
            user_agent: Product::Ours,
            server: Product::Ours,
        }
    }

    /// The filter once `pass` and `block` sets are applied (block wins).
    fn with(pass: &NameSet, block: &NameSet) -> HeaderFilter {
        let mut f = HeaderFilter::builtin();
        for (kind, slot) in [
            (HeaderName::UserAgent, &mut f.user_agent),
            (HeaderName::Server, &mut f.server),
        ] {
            if block.known.contains(&kind) {
                *slot = Product::Omit;
            } else if pass.known.contains(&kind) {
                *slot = Product::Theirs;
            }
        }
        let mut copied = pass.clone();
        copied.known.retain(|k| {
            !TAG_FILTERED.contains(k) && *k != HeaderName::UserAgent && *k != HeaderName::Server
        });
        f.copied.union(&copied);
        f.copied.subtract(block);
        for k in TAG_FILTERED {
            if pass.known.contains(k) && !f.tag_filtered.contains(k) {
                f.tag_filtered.push(*k);
            }
        }
        f.tag_filtered.retain(|k| !block.known.contains(k));
        f
    }

    /// Whether a header of this name crosses (User-Agent and Server: whether the
    /// peer's own value crosses).
    pub fn passes(&self, name: &str) -> bool {
        let kind = HeaderName::classify(name);
        match kind {
            HeaderName::UserAgent => self.user_agent == Product::Theirs,
            HeaderName::Server => self.server == Product::Theirs,
            k if TAG_FILTERED.contains(&k) => self.tag_filtered.contains(&k),
            k => self.copied.has(k, name),
        }
    }

    /// Copies what crosses from `src` to `dst` (a message being built for the other
    /// leg): the allowed headers, Supported/Require filtered to option tags sipveil
    /// relays, User-Agent (requests) or Server (responses) as the policy says, and
    /// the body with Content-Type. Replaces `crossing::copy_across` plus the
    /// engine's own User-Agent/Server line.
    pub fn copy_across(&self, src: &SipMessage, dst: &mut SipMessage) {
        for h in src.headers() {
            if h.name == HeaderName::Other {
                if self.copied.has_named(h.written_name) {
                    dst.push_named(h.written_name, h.value);
                }
            } else if self.copied.known.contains(&h.name) {
                dst.push(h.name, h.value);
            }
        }
        for name in &self.tag_filtered {
            let tags: Vec<&str> = src
                .header_values(*name)
                .filter(|t| SUPPORTED_TAGS.iter().any(|s| s.eq_ignore_ascii_case(t)))
                .collect();
            if !tags.is_empty() {
                dst.push(*name, &tags.join(", "));
            }
        }
        let (name, product) = if dst.is_request() {
            (HeaderName::UserAgent, self.user_agent)
        } else {
            (HeaderName::Server, self.server)
        };
        match product {
            Product::Ours => dst.push(name, PRODUCT),
            Product::Theirs => {
                for v in src.header_lines(name) {
                    dst.push(name, v);
                }
            }
            Product::Omit => {}
        }
        copy_body(src, dst);
    }
}

/// Pass and block sets per interface and direction, filled file by file.
pub(crate) struct Builder {
    /// Index `iface * 2 + direction`.
    pass: Vec<NameSet>,
    block: Vec<NameSet>,
    entries: usize,
}

impl Builder {
    pub(crate) fn new(ifaces: usize) -> Builder {
        Builder {
            pass: vec![NameSet::default(); ifaces * 2],
            block: vec![NameSet::default(); ifaces * 2],
            entries: 0,
        }
    }

    /// Checks one `[[headers]]` entry (number `i` in its file) and records it.
    pub(crate) fn add(&mut self, ctx: &mut Ctx<'_, '_>, i: usize, raw: &RawHeaders) {
        let here = format!("[[headers]] #{}", i + 1);
        let targets = ctx.interfaces(&[K("headers"), I(i), K("interface")], &here, &raw.interface);
        let mut ok = true;
        for (key, list) in [("pass", &raw.pass), ("block", &raw.block)] {
            for name in list {
                let path = [K("headers"), I(i), K(key)];
                if !grammar::is_token(name) {
                    ctx.add(
                        &path,
                        format!("{here}: {key}: `{name}` is not a header name"),
                    );
                    ok = false;
                } else if let Some(why) = fixed(HeaderName::classify(name)) {
                    ctx.add(
                        &path,
                        format!("{here}: {key}: `{name}` cannot be listed: {why}"),
                    );
                    ok = false;
                }
            }
        }
        if raw.pass.is_empty() && raw.block.is_empty() {
            ctx.add(
                &[K("headers"), I(i)],
                format!("{here}: names no header: give `pass`, `block` or both"),
            );
            ok = false;
        }
        if !ok {
            return;
        }
        self.entries += 1;
        for t in targets {
            let slot = t * 2 + raw.direction.slot();
            for name in &raw.pass {
                if let Some(s) = self.pass.get_mut(slot) {
                    s.insert(name);
                }
            }
            for name in &raw.block {
                if let Some(s) = self.block.get_mut(slot) {
                    s.insert(name);
                }
            }
        }
    }

    /// Precomputes the filter of every interface pair.
    pub(crate) fn finish(self) -> CrossingTable {
        let n = self.pass.len() / 2;
        let mut table = Vec::with_capacity(n * n);
        let empty = NameSet::default();
        for from in 0..n {
            for to in 0..n {
                let mut pass = self.pass.get(from * 2).cloned().unwrap_or_default();
                pass.union(self.pass.get(to * 2 + 1).unwrap_or(&empty));
                let mut block = self.block.get(from * 2).cloned().unwrap_or_default();
                block.union(self.block.get(to * 2 + 1).unwrap_or(&empty));
                table.push(HeaderFilter::with(&pass, &block));
            }
        }
        CrossingTable {
            n,
            table,
            builtin: HeaderFilter::builtin(),
            entries: self.entries,
        }
    }
}

/// The precomputed filters, one per (from, to) interface pair.
#[derive(Debug)]
pub(crate) struct CrossingTable {
    n: usize,
    table: Vec<HeaderFilter>,
    builtin: HeaderFilter,
    entries: usize,
}

impl Default for CrossingTable {
    fn default() -> Self {
        Builder::new(0).finish()
    }
}

impl CrossingTable {
    pub(crate) fn get(&self, from: usize, to: usize) -> &HeaderFilter {
        self.table.get(from * self.n + to).unwrap_or(&self.builtin)
    }

    pub(crate) fn builtin(&self) -> &HeaderFilter {
        &self.builtin
    }

    /// `[[headers]]` entries loaded.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
