//! Manipulation rules (`[[rule]]`), in the manner of Acme Packet HMR and AudioCodes
//! message manipulation: per interface and direction, ordered, each a set of
//! conditions (all must hold) and actions. Everything is compiled at load (regexes,
//! CIDRs, header names), so matching a message is a walk over a short list.
//!
//! Actions of one rule run in a fixed order: remove_header, replace_header,
//! rewrite_header, rewrite_user, add_header. No rule can touch the headers sipveil
//! builds each leg from (Via, Route, Record-Route, Contact, Call-ID, CSeq, From, To,
//! Max-Forwards, Content-Length; From/To user parts via `rewrite_user`), and every
//! result is checked: an action whose output would not parse is skipped, a rule that
//! leaves the message invalid is undone, both logged.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

use super::load::Ctx;
use super::msgedit::HeaderKey;
use super::{pattern, Direction};
use crate::config::Seg::{self, Index as I, Key as K};
use crate::sip::{Method, SipMessage};

mod apply;
mod check;

/// A string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum StrOrList {
    One(String),
    Many(Vec<String>),
}

impl StrOrList {
    fn items(&self) -> &[String] {
        match self {
            StrOrList::One(s) => std::slice::from_ref(s),
            StrOrList::Many(v) => v,
        }
    }
}

/// `[[rule]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: Option<String>,
    interface: String,
    direction: Direction,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    status: Vec<toml::Value>,
    header_present: Option<String>,
    header_absent: Option<String>,
    header_regex: Option<RawHeaderRegex>,
    ruri_regex: Option<String>,
    source_cidr: Option<StrOrList>,
    add_header: Option<RawNameValue>,
    remove_header: Option<StrOrList>,
    replace_header: Option<RawNameValue>,
    rewrite_header: Option<RawRewrite>,
    rewrite_user: Option<RawUserRewrite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderRegex {
    name: String,
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNameValue {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRewrite {
    name: String,
    pattern: String,
    replacement: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUserRewrite {
    target: UserTarget,
    pattern: String,
    replacement: String,
}

/// Whose user part `rewrite_user` edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum UserTarget {
    Ruri,
    From,
    To,
}

/// A `status` entry: one code, or a class (`"4xx"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusMatch {
    Code(u16),
    Class(u16),
}

impl StatusMatch {
    fn matches(self, code: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == code,
            StatusMatch::Class(c) => code / 100 == c,
        }
    }
}

#[derive(Debug)]
enum Action {
    Remove(Vec<HeaderKey>),
    Replace(HeaderKey, String),
    Rewrite(HeaderKey, Regex, String),
    RewriteUser(UserTarget, Regex, String),
    Add(HeaderKey, String),
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    /// `file [[rule]] #n (name)`, for logs.
    label: String,
    methods: Vec<Method>,
    status: Vec<StatusMatch>,
    present: Option<HeaderKey>,
    absent: Option<HeaderKey>,
    header_regex: Option<(HeaderKey, Regex)>,
    ruri_regex: Option<Regex>,
    sources: Vec<IpNet>,
    actions: Vec<Action>,
}

/// The rules of every interface and direction, in file and rule order.
#[derive(Debug, Default)]
pub(crate) struct RuleTable {
    /// Index `iface * 2 + direction`.
    slots: Vec<Vec<Arc<Rule>>>,
    count: usize,
}

impl RuleTable {
    pub(crate) fn new(ifaces: usize) -> RuleTable {
        RuleTable {
            slots: vec![Vec::new(); ifaces * 2],
            count: 0,
        }
    }

    /// Rules loaded.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Checks `[[rule]]` number `i` of a file and appends it to its slots.
    pub(crate) fn add(&mut self, ctx: &mut Ctx<'_, '_>, i: usize, raw: &RawRule) {
        let here = match &raw.name {
            Some(n) => format!("[[rule]] #{} ({n})", i + 1),
            None => format!("[[rule]] #{}", i + 1),
        };
        let targets = ctx.interfaces(&[K("rule"), I(i), K("interface")], &here, &raw.interface);
        let before = ctx.problem_count();
        let rule = compile(ctx, i, &here, raw);
        if ctx.problem_count() != before {
            return;
        }
        let rule = Arc::new(rule);
        self.count += 1;
        for t in targets {
            if let Some(s) = self.slots.get_mut(t * 2 + raw.direction.slot()) {
                s.push(rule.clone());
            }
        }
    }

    /// Whether any rule is set for one interface and direction.
    pub(crate) fn any(&self, iface: usize, dir: Direction) -> bool {
        self.slots
            .get(iface * 2 + dir.slot())
            .is_some_and(|r| !r.is_empty())
    }

    /// Runs the rules of one interface and direction over `msg`.
    pub(crate) fn apply(
        &self,
        iface: usize,
        dir: Direction,
        msg: &mut SipMessage,
        source: Option<IpAddr>,
    ) -> usize {
        let Some(rules) = self.slots.get(iface * 2 + dir.slot()) else {
            return 0;
        };
        let source = source.map(|ip| ip.to_canonical());
        let mut applied = 0;
        for rule in rules {
            if rule.matches(msg, source) {
                applied += rule.run(msg);
            }
        }
        applied
    }
}

/// Builds a rule from its raw form, reporting every problem to `ctx`.
fn compile(ctx: &mut Ctx<'_, '_>, i: usize, here: &str, raw: &RawRule) -> Rule {
    let at = |key: &'static str| -> [Seg<'static>; 3] { [K("rule"), I(i), K(key)] };
    let regex = |ctx: &mut Ctx<'_, '_>, key: &'static str, p: &str| {
        pattern::compile(p)
            .map_err(|e| ctx.add(&at(key), format!("{here}: {key}: {e}")))
            .ok()
    };
    let methods = check::methods(ctx, &at("methods"), here, &raw.methods);
    let status = check::status(ctx, &at("status"), here, &raw.status);
    let present = raw
        .header_present
        .as_deref()
        .and_then(|n| check::name(ctx, &at("header_present"), here, n, false));
    let absent = raw
        .header_absent
        .as_deref()
        .and_then(|n| check::name(ctx, &at("header_absent"), here, n, false));
    let header_regex = raw.header_regex.as_ref().and_then(|h| {
        let key = check::name(ctx, &at("header_regex"), here, &h.name, false);
        let re = regex(ctx, "header_regex", &h.pattern);
        key.zip(re)
    });
    let ruri_regex = raw
        .ruri_regex
        .as_deref()
        .and_then(|p| regex(ctx, "ruri_regex", p));
    let sources = match &raw.source_cidr {
        Some(s) => check::cidrs(ctx, &at("source_cidr"), here, raw.direction, s.items()),
        None => Vec::new(),
    };
    let mut actions = Vec::new();
    if let Some(r) = &raw.remove_header {
        let keys: Vec<HeaderKey> = r
            .items()
            .iter()
            .filter_map(|n| check::name(ctx, &at("remove_header"), here, n, true))
            .collect();
        actions.push(Action::Remove(keys));
    }
    if let Some(nv) = &raw.replace_header {
        if let Some(k) = check::name_value(
            ctx,
            &at("replace_header"),
            here,
            nv.name.as_str(),
            &nv.value,
        ) {
            actions.push(Action::Replace(k, nv.value.clone()));
        }
    }
    if let Some(rw) = &raw.rewrite_header {
        let key = check::name(ctx, &at("rewrite_header"), here, &rw.name, true);
        let re = regex(ctx, "rewrite_header", &rw.pattern).and_then(|re| {
            check::replacement(ctx, &at("rewrite_header"), here, re, &rw.replacement)
        });
        if let Some((k, re)) = key.zip(re) {
            actions.push(Action::Rewrite(k, re, rw.replacement.clone()));
        }
    }
    if let Some(ru) = &raw.rewrite_user {
        let re = regex(ctx, "rewrite_user", &ru.pattern)
            .and_then(|re| check::replacement(ctx, &at("rewrite_user"), here, re, &ru.replacement));
        if ru.target == UserTarget::Ruri && !raw.status.is_empty() {
            ctx.add(
                &at("rewrite_user"),
                format!("{here}: rewrite_user target \"ruri\": responses (`status`) have no request-URI"),
            );
        }
        if let Some(re) = re {
            actions.push(Action::RewriteUser(ru.target, re, ru.replacement.clone()));
        }
    }
    if let Some(nv) = &raw.add_header {
        if let Some(k) =
            check::name_value(ctx, &at("add_header"), here, nv.name.as_str(), &nv.value)
        {
            actions.push(Action::Add(k, nv.value.clone()));
        }
    }
    let has_action = raw.remove_header.is_some()
        || raw.replace_header.is_some()
        || raw.rewrite_header.is_some()
        || raw.rewrite_user.is_some()
        || raw.add_header.is_some();
    if !has_action {
        ctx.add(
            &[K("rule"), I(i)],
            format!(
                "{here}: has no action (add_header, remove_header, replace_header, \
                 rewrite_header or rewrite_user)"
            ),
        );
    }
    if raw.ruri_regex.is_some() && !raw.status.is_empty() {
        ctx.add(
            &at("ruri_regex"),
            format!("{here}: ruri_regex can never match: responses (`status`) have no request-URI"),
        );
    }
    Rule {
        label: format!("{} {here}", ctx.origin),
        methods,
        status,
        present,
        absent,
        header_regex,
        ruri_regex,
        sources,
        actions,
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
