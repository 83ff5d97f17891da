//! Replacing the user part of a URI, bare (request-URI) or inside a name-addr
//! (From, To, P-Asserted-Identity), leaving every other byte as written: display
//! name, tag, URI and header parameters. The result is parsed again before it is
//! used, so a rewrite can never put an unparsable URI on the wire.

use std::ops::Range;

use crate::sip::{NameAddr, Uri};

/// The outcome of a user-part edit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Edit {
    /// No rewrite applied (no match, or nothing to edit).
    Unchanged,
    /// The new text.
    Changed(String),
    /// The rewrite would produce something that does not parse; why.
    Invalid(String),
}

/// Where `inner` (a subslice of `outer`, as the parsers return) sits in `outer`.
fn offset_of(outer: &str, inner: &str) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

/// `text` with the user part of `uri` (parsed from `text`) replaced by what `f`
/// makes of it; `f` returns `None` to leave it. A sip: URI without a user part is
/// offered the empty string and gains `user@` when `f` returns one.
fn splice(text: &str, uri: &Uri<'_>, f: impl FnOnce(&str) -> Option<String>) -> (Edit, String) {
    let slot = match uri.user {
        Some(u) => offset_of(text, u).map(|r| (r, true)),
        None if uri.is_sip() => offset_of(text, uri.raw).and_then(|raw| {
            let colon = uri.raw.find(':')?;
            let at = raw.start + colon + 1;
            Some((at..at, false))
        }),
        None => None,
    };
    let Some((range, had_user)) = slot else {
        return (Edit::Unchanged, String::new());
    };
    let current = text.get(range.clone()).unwrap_or("");
    let Some(new_user) = f(current) else {
        return (Edit::Unchanged, String::new());
    };
    if new_user == current {
        return (Edit::Unchanged, String::new());
    }
    if new_user.is_empty() {
        return (
            Edit::Invalid("the rewrite leaves an empty user part".into()),
            new_user,
        );
    }
    let mut out = String::with_capacity(text.len() + new_user.len() + 1);
    out.push_str(text.get(..range.start).unwrap_or(""));
    out.push_str(&new_user);
    if !had_user {
        out.push('@');
    }
    out.push_str(text.get(range.end..).unwrap_or(""));
    (Edit::Changed(out), new_user)
}

/// Rewrites the user part of a bare URI (the request-URI).
pub(crate) fn edit_uri(text: &str, f: impl FnOnce(&str) -> Option<String>) -> Edit {
    let Ok(uri) = Uri::parse(text) else {
        return Edit::Unchanged;
    };
    match splice(text, &uri, f) {
        (Edit::Changed(out), user) => match Uri::parse(&out) {
            Ok(u) if u.user == Some(user.as_str()) => Edit::Changed(out),
            Ok(_) => Edit::Invalid(format!("`{user}` does not stay a user part in `{out}`")),
            Err(e) => Edit::Invalid(format!("`{out}` is not a valid URI ({})", e.reason)),
        },
        (other, _) => other,
    }
}

/// Rewrites the user part of the URI in a name-addr value (From, To, PAI).
pub(crate) fn edit_name_addr(text: &str, f: impl FnOnce(&str) -> Option<String>) -> Edit {
    let Ok(na) = NameAddr::parse(text) else {
        return Edit::Unchanged;
    };
    match splice(text, &na.uri, f) {
        (Edit::Changed(out), user) => match NameAddr::parse(&out) {
            Ok(n) if n.uri.user == Some(user.as_str()) => Edit::Changed(out),
            Ok(_) => Edit::Invalid(format!("`{user}` does not stay a user part in `{out}`")),
            Err(e) => Edit::Invalid(format!("`{out}` is not a valid address ({})", e.reason)),
        },
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(s: &str) -> impl FnOnce(&str) -> Option<String> + '_ {
        move |_| Some(s.to_string())
    }

    #[test]
    fn keeps_everything_but_the_user() {
        assert_eq!(
            edit_name_addr(
                r#""Al" <sip:0301234@pbx.example;user=phone>;tag=9"#,
                to("+49301234")
            ),
            Edit::Changed(r#""Al" <sip:+49301234@pbx.example;user=phone>;tag=9"#.into())
        );
        assert_eq!(
            edit_uri("sip:alice:pw@example.test:5060;transport=tcp", to("bob")),
            Edit::Changed("sip:bob:pw@example.test:5060;transport=tcp".into())
        );
        assert_eq!(
            edit_uri("tel:0301234;phone-context=+49", to("+49301234")),
            Edit::Changed("tel:+49301234;phone-context=+49".into())
        );
        assert_eq!(
            edit_name_addr("sip:0301234@gw;tag=1", to("+49301234")),
            Edit::Changed("sip:+49301234@gw;tag=1".into())
        );
    }

    #[test]
    fn user_added_to_a_uri_without_one() {
        assert_eq!(
            edit_uri("sip:gw.example", to("100")),
            Edit::Changed("sip:100@gw.example".into())
        );
        assert_eq!(edit_uri("sip:gw.example", |_| None), Edit::Unchanged);
    }

    #[test]
    fn invalid_results_refused() {
        assert!(matches!(edit_uri("sip:a@b", to("")), Edit::Invalid(_)));
        assert!(matches!(edit_uri("sip:a@b", to("x y")), Edit::Invalid(_)));
        assert!(matches!(edit_uri("sip:a@b", to("x@c")), Edit::Invalid(_)));
        assert!(matches!(
            edit_name_addr("<sip:a@b>", to("x>y")),
            Edit::Invalid(_)
        ));
        assert!(matches!(edit_uri("tel:123", to("12a#z")), Edit::Invalid(_)));
        assert_eq!(edit_uri("sip:a@b", to("a")), Edit::Unchanged);
        assert_eq!(edit_uri("not a uri", to("x")), Edit::Unchanged);
    }
}
