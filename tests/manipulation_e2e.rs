//! Manipulation rules (`[[rule]]`, policies/README.md) through the real binary
//! (issue 5): each action (remove_header, replace_header, rewrite_header,
//! rewrite_user on ruri/from/to, add_header) and each condition (methods,
//! status, header_present/absent, header_regex, ruri_regex, source_cidr), on
//! requests and responses, `in` and `out`. Layout in tests/common/call.rs.

mod common;

use common::call::*;

const NET: Net = Net(22);

/// Rules that tag what they matched with `X-Tag` (passed into the core), so one
/// call shows which conditions held and which did not, in rule order.
fn policy() -> String {
    let caller = NET.caller().ip();
    format!(
        "\
[[headers]]
interface = \"access\"
direction = \"in\"
pass = [\"X-Tag\", \"X-Debug\", \"X-Account\"]

[[headers]]
interface = \"core\"
direction = \"in\"
pass = [\"X-Cause\", \"X-Keep\"]

# --- access in: conditions on the caller's request ---
[[rule]]
name = \"by-method\"
interface = \"access\"
direction = \"in\"
methods = [\"INVITE\"]
add_header = {{ name = \"X-Tag\", value = \"invite\" }}

[[rule]]
name = \"other-method\"
interface = \"access\"
direction = \"in\"
methods = [\"MESSAGE\"]
add_header = {{ name = \"X-Tag\", value = \"message\" }}

[[rule]]
name = \"present\"
interface = \"access\"
direction = \"in\"
header_present = \"X-Trigger\"
add_header = {{ name = \"X-Tag\", value = \"trigger-present\" }}

[[rule]]
name = \"absent\"
interface = \"access\"
direction = \"in\"
header_absent = \"X-Trigger\"
add_header = {{ name = \"X-Tag\", value = \"trigger-absent\" }}

[[rule]]
name = \"phone-model\"
interface = \"access\"
direction = \"in\"
header_regex = {{ name = \"User-Agent\", pattern = '^Yealink' }}
add_header = {{ name = \"X-Tag\", value = \"yealink\" }}

[[rule]]
name = \"source\"
interface = \"access\"
direction = \"in\"
source_cidr = \"{caller}/32\"
add_header = {{ name = \"X-Tag\", value = \"from-caller\" }}

[[rule]]
name = \"other-source\"
interface = \"access\"
direction = \"in\"
source_cidr = [\"192.0.2.0/24\", \"2001:db8::/32\"]
add_header = {{ name = \"X-Tag\", value = \"never\" }}

[[rule]]
name = \"short-code\"
interface = \"access\"
direction = \"in\"
ruri_regex = '^sip:\\*98@'
rewrite_user = {{ target = \"ruri\", pattern = '^\\*98$', replacement = \"voicemail\" }}

[[rule]]
name = \"to-user\"
interface = \"access\"
direction = \"in\"
rewrite_user = {{ target = \"to\", pattern = '^\\*98$', replacement = \"voicemail\" }}

[[rule]]
name = \"from-user\"
interface = \"access\"
direction = \"in\"
rewrite_user = {{ target = \"from\", pattern = '^(alice)$', replacement = \"$1.desk\" }}

[[rule]]
name = \"strip-debug\"
interface = \"access\"
direction = \"in\"
remove_header = \"X-Debug\"

# --- core out: on the request built for the core ---
[[rule]]
name = \"subject\"
interface = \"core\"
direction = \"out\"
replace_header = {{ name = \"Subject\", value = \"call\" }}

[[rule]]
name = \"account\"
interface = \"core\"
direction = \"out\"
rewrite_header = {{ name = \"X-Account\", pattern = '^(\\d+)-.*$', replacement = \"$1\" }}

[[rule]]
name = \"stamp\"
interface = \"core\"
direction = \"out\"
add_header = {{ name = \"X-Edge\", value = \"sipveil-test\" }}

[[rule]]
name = \"responses-only\"
interface = \"core\"
direction = \"out\"
status = [200]
add_header = {{ name = \"X-Not-For-Requests\", value = \"1\" }}

# --- core in / access out: on responses ---
[[rule]]
name = \"drop-cause\"
interface = \"core\"
direction = \"in\"
status = [\"4xx\"]
remove_header = \"X-Cause\"

[[rule]]
name = \"answered\"
interface = \"access\"
direction = \"out\"
methods = [\"INVITE\"]
status = [200]
add_header = {{ name = \"X-Answered\", value = \"yes\" }}

[[rule]]
name = \"failed\"
interface = \"access\"
direction = \"out\"
status = [\"4xx\", 503]
add_header = {{ name = \"X-Failed\", value = \"yes\" }}
"
    )
}

/// One call with X-Trigger and a Yealink User-Agent to `*98`, one without to
/// `bob`: every condition decides as written, every action does what it says,
/// in both directions; and the caller's own dialog (From, To in its answers)
/// is not touched by rules that rewrite what crosses (RFC 3261 §8.2.6.2).
#[test]
fn every_action_and_condition() {
    let edge = Edge::build("every_action_and_condition", NET)
        .policy("30-rules.toml", &policy())
        .start();
    let mut caller = edge.caller();
    let mut callee = edge.callee();

    let mut inv = Invite::new(&caller, "*98")
        .header("X-Trigger: 1")
        .header("User-Agent: Yealink SIP-T46S 66.86.0.15")
        .header("X-Debug: internal state")
        .header("X-Account: 4711-project-x")
        .header("Subject: lunch");
    inv.to = format!("<sip:*98@{DOMAIN}>");
    let text = inv.text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(
        b.header_all("X-Tag"),
        ["invite", "trigger-present", "yealink", "from-caller"],
        "{}",
        b.raw
    );
    assert_eq!(user_of(b.request_uri().unwrap_or_default()), "voicemail");
    assert_eq!(user_of(value(b, "To")), "voicemail");
    assert_eq!(user_of(value(b, "From")), "alice.desk");
    assert_absent(b, "X-Debug");
    assert_eq!(b.header_all("X-Account"), ["4711"]);
    assert_eq!(b.header_all("Subject"), ["call"]);
    assert_eq!(b.header_all("X-Edge"), ["sipveil-test"]);
    assert_absent(b, "X-Not-For-Requests");
    // The caller's answer: tagged by the response rule, dialog headers as sent.
    let ok = &d.a_ok;
    assert_eq!(ok.header_all("X-Answered"), ["yes"], "{}", ok.raw);
    assert_absent(ok, "X-Failed");
    assert_eq!(
        value(ok, "From"),
        value(&d.a_invite, "From"),
        "the caller's From was changed in its own dialog"
    );
    assert_eq!(user_of(value(ok, "To")), "*98", "{}", ok.raw);

    // Without X-Trigger, another phone, a plain user: the other branches.
    let text = Invite::new(&caller, "bob")
        .header("User-Agent: Other/1")
        .text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(
        b.header_all("X-Tag"),
        ["invite", "trigger-absent", "from-caller"],
        "{}",
        b.raw
    );
    assert_eq!(user_of(b.request_uri().unwrap_or_default()), "bob");
    assert_absent(b, "Subject");

    // A 486 from the callee: core `in` status rule strips X-Cause (passed
    // otherwise), X-Keep crosses; access `out` tags the failure.
    let text = Invite::new(&caller, "bob").text(&caller);
    let (_, fin) = rejected_by_callee(
        &edge,
        &mut caller,
        &mut callee,
        &text,
        486,
        "Busy Here",
        &["X-Cause: user-busy@pbx-3", "X-Keep: k"],
    );
    assert_eq!(fin.status(), Some(486), "{}", fin.raw);
    assert_absent(&fin, "X-Cause");
    assert_eq!(fin.header_all("X-Keep"), ["k"], "{}", fin.raw);
    assert_eq!(fin.header_all("X-Failed"), ["yes"], "{}", fin.raw);
    assert_absent(&fin, "X-Answered");
}
