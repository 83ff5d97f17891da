//! Regular expressions from policy files: compiled once at load under size limits
//! (a policy must not be able to make per-message matching expensive), and
//! replacement templates checked against the groups their pattern defines, since
//! the `regex` crate silently expands an unknown `$name` to nothing.

use regex::{Regex, RegexBuilder};

/// Longest pattern text accepted.
const MAX_PATTERN_LEN: usize = 2048;
/// Compiled program size limit per pattern.
const SIZE_LIMIT: usize = 1 << 20;
/// Lazy DFA cache limit per pattern.
const DFA_SIZE_LIMIT: usize = 2 << 20;

/// Compiles a policy pattern; the error says what is wrong, for a load problem.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "pattern is {} characters; the limit is {MAX_PATTERN_LEN}",
            pattern.len()
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => {
                "pattern compiles too large; simplify it (bounded repetitions multiply)".into()
            }
            other => format!("invalid pattern: {}", one_line(&other.to_string())),
        })
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The group references of a replacement template, as the `regex` crate reads them:
/// `$$` is a literal `$`, `${name}` names a group, `$name` takes the longest run of
/// letters, digits and `_` (so `$1a` is group "1a", not group 1 then "a").
fn references(template: &str) -> Vec<&str> {
    let mut refs = Vec::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        let after = rest.get(pos + 1..).unwrap_or("");
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
            continue;
        }
        if let Some(braced) = after.strip_prefix('{') {
            if let Some(end) = braced.find('}') {
                refs.push(braced.get(..end).unwrap_or(""));
                rest = braced.get(end + 1..).unwrap_or("");
                continue;
            }
            rest = braced;
            continue;
        }
        let len = after
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        if len > 0 {
            refs.push(after.get(..len).unwrap_or(""));
        }
        rest = after.get(len..).unwrap_or("");
    }
    refs
}

/// Checks that every group `template` refers to exists in `re`.
pub(crate) fn check_replacement(re: &Regex, template: &str) -> Result<(), String> {
    for r in references(template) {
        let known = match r.parse::<usize>() {
            Ok(n) => n < re.captures_len(),
            Err(_) => re.capture_names().flatten().any(|n| n == r),
        };
        if !known {
            let hint = match r.find(|c: char| !c.is_ascii_digit()) {
                Some(i) if i > 0 => format!(
                    " (to follow group {} with text, write ${{{}}}{})",
                    r.get(..i).unwrap_or(""),
                    r.get(..i).unwrap_or(""),
                    r.get(i..).unwrap_or("")
                ),
                _ => String::new(),
            };
            return Err(format!(
                "replacement refers to group `{r}`, which the pattern does not define{hint}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_the_regex_crate() {
        assert_eq!(references("+49$1"), vec!["1"]);
        assert_eq!(references("${1}a$$2$name"), vec!["1", "name"]);
        assert_eq!(references("$1a"), vec!["1a"]);
        assert!(references("cost: $$5").is_empty());
    }

    #[test]
    fn replacement_groups_checked() {
        let re = compile(r"^0(\d+)$").unwrap();
        assert!(check_replacement(&re, "+49$1").is_ok());
        assert!(check_replacement(&re, "+49${1}9").is_ok());
        let e = check_replacement(&re, "$1a").unwrap_err();
        assert!(e.contains("write ${1}a"), "{e}");
        assert!(check_replacement(&re, "$2").is_err());
        let named = compile(r"^(?P<n>\d+)$").unwrap();
        assert!(check_replacement(&named, "x$n").is_ok());
        assert!(check_replacement(&named, "x$m").is_err());
    }

    #[test]
    fn limits_and_syntax() {
        assert!(compile("(").unwrap_err().starts_with("invalid pattern"));
        assert!(compile(&"a".repeat(5000)).unwrap_err().contains("limit"));
        let e = compile(r"(\w{1000}){1000}").unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }
}
