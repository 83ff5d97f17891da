//! Reading policy files: which files are read, their TOML shape (serde, unknown keys
//! refused) and the checks of meaning, every problem located by file and line the
//! way `config` locates them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml_edit::ImDocument;

use super::{headers, normalize, numbers, rules, Normalize, PolicyError, PolicyProblem, PolicySet};
use crate::config::{line_at, Locator, Seg};

/// Largest policy file read; policy is configuration, not data.
const MAX_FILE_SIZE: u64 = 1 << 20;

/// The `*.toml` files directly in `dir`, sorted by file name. Hidden files (editor
/// locks such as `.#x.toml`) and subdirectories (where examples live) are not read.
pub(super) fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let unreadable = |why: String| PolicyError {
        problems: vec![PolicyProblem {
            file: dir.display().to_string(),
            line: None,
            message: why,
        }],
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| unreadable(format!("cannot read policy directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(format!("cannot read policy directory: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// A policy file's text, or why it cannot be read.
pub(super) fn read_file(path: &Path) -> Result<String, PolicyProblem> {
    let problem = |message: String| PolicyProblem {
        file: path.display().to_string(),
        line: None,
        message,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| problem(format!("cannot read: {e}")))?
        .len();
    if len > MAX_FILE_SIZE {
        return Err(problem(format!(
            "file is {len} bytes; policy files are limited to {MAX_FILE_SIZE}"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read: {e}")))
}

/// One policy file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    headers: Vec<headers::RawHeaders>,
    #[serde(default)]
    rule: Vec<rules::RawRule>,
    #[serde(default)]
    number: Vec<numbers::RawNumber>,
    normalize: Option<normalize::RawNormalize>,
}

/// What the per-section compilers need while checking one file: where to report,
/// and which interfaces exist.
pub(crate) struct Ctx<'a, 't> {
    /// The file (or label) being read.
    pub origin: &'a str,
    loc: &'a Locator<'t>,
    /// Interface names, in config order.
    pub ifaces: &'a [String],
    problems: &'a mut Vec<PolicyProblem>,
}

impl Ctx<'_, '_> {
    /// Records a problem at the line of `path`.
    pub fn add(&mut self, path: &[Seg<'_>], message: String) {
        self.problems.push(PolicyProblem {
            file: self.origin.to_string(),
            line: self.loc.line(path),
            message,
        });
    }

    /// Problems recorded so far (in every file), to tell whether a check added one.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// The interfaces an `interface = "..."` key names: one, or all for `"*"`. An
    /// unknown name is a problem (a typo would otherwise silently do nothing).
    pub fn interfaces(&mut self, path: &[Seg<'_>], here: &str, name: &str) -> Vec<usize> {
        if name == "*" {
            return (0..self.ifaces.len()).collect();
        }
        match self.ifaces.iter().position(|n| n == name) {
            Some(i) => vec![i],
            None => {
                let known = self.ifaces.join(", ");
                self.add(
                    path,
                    format!(
                        "{here}: interface = \"{name}\" names no [[interface]] of the config \
                         (have: {known}; \"*\" means all)"
                    ),
                );
                Vec::new()
            }
        }
    }
}

/// Compiles `(origin, text)` sources, applied in the order given, into a policy for
/// `ifaces`. Every problem of every file is reported, not just the first.
pub(super) fn build(sources: &[(&str, &str)], ifaces: &[String]) -> Result<PolicySet, PolicyError> {
    let n = ifaces.len();
    let mut problems = Vec::new();
    let mut parts = Parts {
        header_policy: headers::Builder::new(n),
        rule_table: rules::RuleTable::new(n),
        number_table: numbers::NumberTable::new(n),
        norm: normalize::Builder::new(n),
    };
    for (origin, text) in sources {
        let first_problem = problems.len();
        compile_file(origin, text, ifaces, &mut problems, &mut parts);
        // Reported in line order within a file, the order an editor walks them.
        if let Some(mine) = problems.get_mut(first_problem..) {
            mine.sort_by_key(|p| p.line);
        }
    }
    let Parts {
        header_policy,
        rule_table,
        number_table,
        norm,
    } = parts;
    if !problems.is_empty() {
        return Err(PolicyError { problems });
    }
    Ok(PolicySet {
        files: Vec::new(),
        ifaces: ifaces.to_vec(),
        crossing: header_policy.finish(),
        rules: rule_table,
        numbers: number_table,
        normalize: norm.finish(),
        default_normalize: Normalize::default(),
    })
}

/// What the files compile into, filled file by file.
struct Parts {
    header_policy: headers::Builder,
    rule_table: rules::RuleTable,
    number_table: numbers::NumberTable,
    norm: normalize::Builder,
}

/// Parses and checks one file, adding what it defines to `parts`.
fn compile_file(
    origin: &str,
    text: &str,
    ifaces: &[String],
    problems: &mut Vec<PolicyProblem>,
    parts: &mut Parts,
) {
    let doc = match ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(PolicyProblem {
                file: origin.to_string(),
                line: e.span().map(|s| line_at(text, s.start)),
                message: e.message().trim().replace('\n', "; "),
            });
            return;
        }
    };
    let loc = Locator { text, doc: &doc };
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let p = loc.serde_problem(&e);
            problems.push(PolicyProblem {
                file: origin.to_string(),
                line: p.line,
                message: p.message,
            });
            return;
        }
    };
    let mut ctx = Ctx {
        origin,
        loc: &loc,
        ifaces,
        problems,
    };
    for (i, h) in raw.headers.iter().enumerate() {
        parts.header_policy.add(&mut ctx, i, h);
    }
    for (i, r) in raw.rule.iter().enumerate() {
        parts.rule_table.add(&mut ctx, i, r);
    }
    for (i, r) in raw.number.iter().enumerate() {
        parts.number_table.add(&mut ctx, i, r);
    }
    if let Some(r) = &raw.normalize {
        parts.norm.add(&mut ctx, r);
    }
}
