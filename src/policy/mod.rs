//! Boundary policy (DESIGN.md, `policy`; issue 5): what may cross between legs and
//! how messages are repaired and rewritten at the edge, loaded from the operator's
//! `*.toml` files in `[policy] dir`.
//!
//! A [`PolicySet`] is built once from every file, validated as a whole (every error
//! names file, line and what is wrong) and never changes afterwards: the engine holds
//! it as `Arc<PolicySet>`, and a reload (SIGHUP) builds a new one and swaps the `Arc`,
//! so a message is always handled by one consistent policy and the hot path takes no
//! lock. Per-interface work (header filters, rule lists) is precomputed at load so
//! the per-message cost is a lookup.
//!
//! Where each part runs in the engine's message flow, in order:
//! [`PolicySet::normalize_incoming`] on arrival, then [`PolicySet::apply_rules`]
//! with [`Direction::In`], [`PolicySet::rewrite_numbers`] with [`Direction::In`],
//! [`PolicySet::crossing`] to build the other leg's message, then
//! [`PolicySet::rewrite_numbers`] and [`PolicySet::apply_rules`] with
//! [`Direction::Out`] on the message about to leave.

pub mod headers;
pub mod identity;
mod load;
mod msgedit;
pub mod normalize;
pub mod numbers;
mod pattern;
pub mod rules;
mod uri_edit;

#[cfg(test)]
mod tests_examples;
#[cfg(test)]
mod tests_load;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sip::SipMessage;

pub use headers::HeaderFilter;
pub use normalize::{is_hold, Normalize, Reject};

/// Which way a message passes an interface: `in` arrived on it, `out` leaves by it.
/// Policy files name one of the two so a rule written for a peer applies to what
/// that peer sends, or to what it receives, never both by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Arriving on the interface (from its peer).
    In,
    /// Leaving by the interface (toward its peer).
    Out,
}

impl Direction {
    fn slot(self) -> usize {
        match self {
            Direction::In => 0,
            Direction::Out => 1,
        }
    }
}

/// The loaded, validated boundary policy. Immutable: reload builds a new one.
#[derive(Debug)]
pub struct PolicySet {
    /// Files loaded, in the order they were applied.
    files: Vec<PathBuf>,
    /// Interface names, in config order; index = position in per-interface tables.
    ifaces: Vec<String>,
    crossing: headers::CrossingTable,
    rules: rules::RuleTable,
    numbers: numbers::NumberTable,
    normalize: Vec<Normalize>,
    default_normalize: Normalize,
}

impl Default for PolicySet {
    /// Built-in behaviour only, for any interface: what sipveil does with an empty
    /// policy directory.
    fn default() -> Self {
        PolicySet {
            files: Vec::new(),
            ifaces: Vec::new(),
            crossing: headers::CrossingTable::default(),
            rules: rules::RuleTable::default(),
            numbers: numbers::NumberTable::default(),
            normalize: Vec::new(),
            default_normalize: Normalize::default(),
        }
    }
}

impl PolicySet {
    /// Loads every `*.toml` file directly in `dir` (sorted by file name; names
    /// starting with `.` are skipped, subdirectories are not read) for the given
    /// interfaces. A missing directory means built-in defaults only.
    pub fn load(dir: &Path, ifaces: &[String]) -> Result<PolicySet, PolicyError> {
        let files = load::policy_files(dir)?;
        let mut texts = Vec::with_capacity(files.len());
        let mut problems = Vec::new();
        for path in &files {
            match load::read_file(path) {
                Ok(t) => texts.push((path.display().to_string(), t)),
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError { problems });
        }
        let sources: Vec<(&str, &str)> = texts
            .iter()
            .map(|(o, t)| (o.as_str(), t.as_str()))
            .collect();
        let mut set = load::build(&sources, ifaces)?;
        set.files = files;
        Ok(set)
    }

    /// Loads the policy directory named by a validated config, for its interfaces:
    /// what `check`, `run` and SIGHUP use.
    pub fn load_for(cfg: &crate::config::Config) -> Result<PolicySet, PolicyError> {
        let names: Vec<String> = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
        PolicySet::load(&cfg.policy.dir, &names)
    }

    /// Builds a policy from in-memory texts, each `(origin, text)`, applied in the
    /// order given; `origin` names the text in errors.
    pub fn from_sources(
        sources: &[(&str, &str)],
        ifaces: &[String],
    ) -> Result<PolicySet, PolicyError> {
        load::build(sources, ifaces)
    }

    /// The files this policy was loaded from, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// One line for logs and `check`: how much policy is active.
    pub fn summary(&self) -> String {
        format!(
            "{} policy file(s): {} rule(s), {} number rule(s), {} header list(s)",
            self.files.len(),
            self.rules.len(),
            self.numbers.len(),
            self.crossing.entries()
        )
    }

    fn index(&self, iface: &str) -> Option<usize> {
        self.ifaces.iter().position(|n| n == iface)
    }

    /// The header filter for a message crossing from the leg on `from_iface` to the
    /// leg on `to_iface`. Precomputed at load; an interface the policy was not built
    /// for gets the built-in filter.
    pub fn crossing(&self, from_iface: &str, to_iface: &str) -> &HeaderFilter {
        match (self.index(from_iface), self.index(to_iface)) {
            (Some(f), Some(t)) => self.crossing.get(f, t),
            _ => self.crossing.builtin(),
        }
    }

    /// Applies the manipulation rules for `iface` and `dir` to `msg`, in file and
    /// rule order. `source` is the address the message came from (for `in`; rules
    /// with `source_cidr` never match without one). Returns how many actions took
    /// effect. An action whose result would not parse is skipped and logged; a rule
    /// that would leave an invalid message is undone.
    pub fn apply_rules(
        &self,
        iface: &str,
        dir: Direction,
        msg: &mut SipMessage,
        source: Option<IpAddr>,
    ) -> usize {
        match self.index(iface) {
            Some(i) => self.rules.apply(i, dir, msg, source),
            None => 0,
        }
    }

    /// Whether any manipulation rule is set for `iface` and `dir` (lets the engine
    /// skip work on the common path without rules).
    pub fn has_rules(&self, iface: &str, dir: Direction) -> bool {
        self.index(iface).is_some_and(|i| self.rules.any(i, dir))
    }

    /// Rewrites the user parts of request-URI, To, From and P-Asserted-Identity of a
    /// request by the `[[number]]` rules for `iface` and `dir` (first match wins per
    /// URI). Responses are left alone. Meant for dialog-creating and out-of-dialog
    /// requests: in-dialog From/To come from the leg's stored state and must stay
    /// as the dialog began. Returns how many request-URIs and header lines changed.
    pub fn rewrite_numbers(&self, iface: &str, dir: Direction, msg: &mut SipMessage) -> usize {
        match self.index(iface) {
            Some(i) => self.numbers.apply(i, dir, msg),
            None => 0,
        }
    }

    /// The normalization switches for messages arriving on `iface`.
    pub fn normalize(&self, iface: &str) -> &Normalize {
        self.index(iface)
            .and_then(|i| self.normalize.get(i))
            .unwrap_or(&self.default_normalize)
    }

    /// Repairs a message that arrived on `iface` (see [`Normalize::apply`]); an
    /// `Err` is the answer the engine sends instead of processing a request (a
    /// refused response is dropped: responses are not answered). Runs before the
    /// engine's own `validate`, so identical repeated headers are merged rather than
    /// refused.
    pub fn normalize_incoming(&self, iface: &str, msg: &mut SipMessage) -> Result<(), Reject> {
        self.normalize(iface).apply(msg)
    }
}

/// Why a policy could not be loaded: every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The problems, each with its file and line.
    pub problems: Vec<PolicyProblem>,
}

/// One thing wrong with a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The file (path as given, or a test label).
    pub file: String,
    /// 1-based line, when the problem has a place.
    pub line: Option<usize>,
    /// What is wrong, naming the key and section.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl fmt::Display for PolicyError {
    /// One `file:line: message` per line, the form editors and CI logs link to.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}
