//! Number rewriting (`[[number]]`), what OpenSIPS calls dialplan: regex rules per
//! interface and direction that turn national or short numbers into E.164 on the
//! way in and back into national format on the way out. Each rule rewrites the user
//! part of the request-URI, To, From and P-Asserted-Identity of requests (or the
//! `targets` it names); for each URI the first rule whose `match` finds the user part
//! wins. A result that does not parse as a URI is not written (logged instead).

use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use super::load::Ctx;
use super::msgedit::{edit_lines, HeaderKey};
use super::uri_edit::{edit_name_addr, edit_uri, Edit};
use super::{pattern, Direction};
use crate::config::Seg::{Index as I, Key as K};
use crate::sip::{grammar, HeaderName, SipMessage};

/// `[[number]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNumber {
    name: Option<String>,
    interface: String,
    direction: Direction,
    #[serde(rename = "match")]
    pattern: String,
    replace: String,
    targets: Option<Vec<Target>>,
}

/// Which URIs a number rule rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Target {
    Ruri,
    To,
    From,
    Pai,
}

const ALL_TARGETS: [Target; 4] = [Target::Ruri, Target::To, Target::From, Target::Pai];

#[derive(Debug)]
struct NumberRule {
    label: String,
    re: Regex,
    replace: String,
    targets: Vec<Target>,
}

impl NumberRule {
    /// The rewritten user, when this rule matches it.
    fn rewrite(&self, user: &str) -> Option<String> {
        self.re
            .is_match(user)
            .then(|| self.re.replace(user, self.replace.as_str()).into_owned())
    }
}

/// Number rules of every interface and direction, in file order.
#[derive(Debug, Default)]
pub(crate) struct NumberTable {
    /// Index `iface * 2 + direction`.
    slots: Vec<Vec<Arc<NumberRule>>>,
    count: usize,
}

impl NumberTable {
    pub(crate) fn new(ifaces: usize) -> NumberTable {
        NumberTable {
            slots: vec![Vec::new(); ifaces * 2],
            count: 0,
        }
    }

    /// Rules loaded.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Checks `[[number]]` number `i` of a file and appends it to its slots.
    pub(crate) fn add(&mut self, ctx: &mut Ctx<'_, '_>, i: usize, raw: &RawNumber) {
        let here = match &raw.name {
            Some(n) => format!("[[number]] #{} ({n})", i + 1),
            None => format!("[[number]] #{}", i + 1),
        };
        let slots = ctx.interfaces(&[K("number"), I(i), K("interface")], &here, &raw.interface);
        let re = match pattern::compile(&raw.pattern) {
            Ok(re) => re,
            Err(e) => {
                ctx.add(
                    &[K("number"), I(i), K("match")],
                    format!("{here}: match: {e}"),
                );
                return;
            }
        };
        if let Err(e) = pattern::check_replacement(&re, &raw.replace) {
            ctx.add(
                &[K("number"), I(i), K("replace")],
                format!("{here}: replace: {e}"),
            );
            return;
        }
        let targets = match &raw.targets {
            Some(t) if t.is_empty() => {
                ctx.add(
                    &[K("number"), I(i), K("targets")],
                    format!("{here}: targets is empty; leave it out to rewrite all of ruri, to, from, pai"),
                );
                return;
            }
            Some(t) => t.clone(),
            None => ALL_TARGETS.to_vec(),
        };
        if slots.is_empty() {
            return;
        }
        let rule = Arc::new(NumberRule {
            label: format!("{} {here}", ctx.origin),
            re,
            replace: raw.replace.clone(),
            targets,
        });
        self.count += 1;
        for s in slots {
            if let Some(list) = self.slots.get_mut(s * 2 + raw.direction.slot()) {
                list.push(rule.clone());
            }
        }
    }

    /// Rewrites the URIs of a request by the rules of one interface and direction.
    pub(crate) fn apply(&self, iface: usize, dir: Direction, msg: &mut SipMessage) -> usize {
        let Some(rules) = self.slots.get(iface * 2 + dir.slot()) else {
            return 0;
        };
        if rules.is_empty() || !msg.is_request() {
            return 0;
        }
        let first_match = |target: Target, user: &str| -> Option<(String, &str)> {
            rules
                .iter()
                .filter(|r| r.targets.contains(&target))
                .find_map(|r| r.rewrite(user).map(|u| (u, r.label.as_str())))
        };
        let mut changed = 0;
        if let Some(uri) = msg.request_uri() {
            let mut label = "";
            let edit = edit_uri(uri, |u| {
                first_match(Target::Ruri, u).map(|(n, l)| {
                    label = l;
                    n
                })
            });
            match edit {
                Edit::Changed(new) => {
                    msg.set_request_uri(&new);
                    changed += 1;
                }
                Edit::Invalid(why) => {
                    tracing::warn!(rule = %label, "request-URI not rewritten: {why}")
                }
                Edit::Unchanged => {}
            }
        }
        for (target, name) in [
            (Target::To, HeaderName::To),
            (Target::From, HeaderName::From),
            (Target::Pai, HeaderName::PAssertedIdentity),
        ] {
            let key = HeaderKey::new(name.as_str());
            changed += edit_lines(msg, &key, |line| {
                let mut any = false;
                let values: Vec<String> = grammar::split_list(line)
                    .map(|v| {
                        let mut label = "";
                        let edit = edit_name_addr(v, |u| {
                            first_match(target, u).map(|(n, l)| {
                                label = l;
                                n
                            })
                        });
                        match edit {
                            Edit::Changed(new) => {
                                any = true;
                                new
                            }
                            Edit::Invalid(why) => {
                                tracing::warn!(rule = %label, "{} not rewritten: {why}", name.as_str());
                                v.to_string()
                            }
                            Edit::Unchanged => v.to_string(),
                        }
                    })
                    .collect();
                any.then(|| values.join(", "))
            });
        }
        changed
    }
}

#[cfg(test)]
#[path = "numbers_tests.rs"]
mod tests;
