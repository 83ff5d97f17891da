//! Running compiled rules over a message: matching conditions, carrying out
//! actions, and the guards that keep a rule from putting an unparsable value or an
//! invalid message on the wire.

use std::net::IpAddr;

use super::super::msgedit::{edit_lines, HeaderKey};
use super::super::uri_edit::{edit_name_addr, edit_uri, Edit};
use super::{check, Action, Rule, UserTarget};
use crate::sip::{HeaderName, SipMessage};

impl Rule {
    /// Whether every condition of the rule holds for `msg`.
    pub(super) fn matches(&self, msg: &SipMessage, source: Option<IpAddr>) -> bool {
        if !self.methods.is_empty() {
            let cseq_method;
            let method = match msg.method() {
                Some(m) => Some(m),
                None => {
                    cseq_method = msg.cseq().ok().map(|c| c.method);
                    cseq_method.as_ref()
                }
            };
            if !method.is_some_and(|m| self.methods.contains(m)) {
                return false;
            }
        }
        if !self.status.is_empty()
            && !msg
                .status()
                .is_some_and(|c| self.status.iter().any(|s| s.matches(c)))
        {
            return false;
        }
        if let Some(k) = &self.present {
            if !msg.has_header_named(k.name()) {
                return false;
            }
        }
        if let Some(k) = &self.absent {
            if msg.has_header_named(k.name()) {
                return false;
            }
        }
        if let Some((k, re)) = &self.header_regex {
            if !msg.header_lines_named(k.name()).any(|v| re.is_match(v)) {
                return false;
            }
        }
        if let Some(re) = &self.ruri_regex {
            if !msg.request_uri().is_some_and(|u| re.is_match(u)) {
                return false;
            }
        }
        if !self.sources.is_empty()
            && !source.is_some_and(|ip| self.sources.iter().any(|n| n.contains(&ip)))
        {
            return false;
        }
        true
    }

    /// Runs the actions; undoes the whole rule if it leaves a valid message invalid.
    pub(super) fn run(&self, msg: &mut SipMessage) -> usize {
        let snapshot = msg.validate().is_ok().then(|| msg.clone());
        let mut changed = 0;
        for action in &self.actions {
            match action.run(msg) {
                Ok(n) => changed += n,
                Err(why) => tracing::warn!(rule = %self.label, "action skipped: {why}"),
            }
        }
        if let Some(before) = snapshot {
            if let Err(e) = msg.validate() {
                tracing::warn!(rule = %self.label, "rule undone, it left an invalid message: {e}");
                *msg = before;
                return 0;
            }
        }
        if changed > 0 {
            tracing::debug!(rule = %self.label, changed, "rule applied");
        }
        changed
    }
}

impl Action {
    /// Carries out one action; `Err` says why it was skipped (nothing changed).
    fn run(&self, msg: &mut SipMessage) -> Result<usize, String> {
        match self {
            Action::Remove(keys) => Ok(keys.iter().map(|k| msg.remove_named(k.name())).sum()),
            Action::Replace(k, v) => {
                if !msg.has_header_named(k.name()) {
                    return Ok(0);
                }
                msg.replace_named(k.name(), v);
                Ok(1)
            }
            Action::Add(k, v) => {
                msg.push_named(k.name(), v);
                Ok(1)
            }
            Action::Rewrite(k, re, repl) => {
                let rewrite = |v: &str| re.replace(v, repl.as_str()).into_owned();
                for v in msg.header_lines_named(k.name()) {
                    let new = rewrite(v);
                    if new != v {
                        check::value(k.kind(), &new)
                            .map_err(|e| format!("{}: `{new}` {e}", k.name()))?;
                    }
                }
                Ok(edit_lines(msg, k, |v| Some(rewrite(v))))
            }
            Action::RewriteUser(target, re, repl) => {
                let user = |u: &str| {
                    re.is_match(u)
                        .then(|| re.replace(u, repl.as_str()).into_owned())
                };
                rewrite_user(msg, *target, user)
            }
        }
    }
}

/// Applies a user-part edit to the request-URI, From or To.
fn rewrite_user(
    msg: &mut SipMessage,
    target: UserTarget,
    user: impl Fn(&str) -> Option<String>,
) -> Result<usize, String> {
    let name = match target {
        UserTarget::Ruri => {
            let Some(uri) = msg.request_uri() else {
                return Ok(0);
            };
            return match edit_uri(uri, user) {
                Edit::Changed(new) => {
                    msg.set_request_uri(&new);
                    Ok(1)
                }
                Edit::Unchanged => Ok(0),
                Edit::Invalid(why) => Err(format!("request-URI: {why}")),
            };
        }
        UserTarget::From => HeaderName::From,
        UserTarget::To => HeaderName::To,
    };
    let key = HeaderKey::new(name.as_str());
    let mut new_values = Vec::new();
    for v in msg.header_lines(name) {
        match edit_name_addr(v, &user) {
            Edit::Changed(n) => new_values.push(Some(n)),
            Edit::Unchanged => new_values.push(None),
            Edit::Invalid(why) => return Err(format!("{}: {why}", name.as_str())),
        }
    }
    let mut values = new_values.into_iter();
    Ok(edit_lines(msg, &key, |_| values.next().flatten()))
}
