//! Number rewriting (`[[number]]`, policies/README.md) through the real binary
//! (issue 5): national numbers from the access side become E.164 toward the
//! core (`in`), E.164 numbers from the core become national toward access
//! (`out`), in the request-URI, To, From and P-Asserted-Identity. Access is a
//! trusted trunk here so its P-Asserted-Identity is believed. Layout in
//! tests/common/call.rs.

mod common;

use common::call::*;

const POLICY: &str = "\
[[number]]
name = \"national-in\"
interface = \"access\"
direction = \"in\"
match = '^0([1-9]\\d+)$'
replace = \"+49$1\"

[[number]]
name = \"national-out\"
interface = \"access\"
direction = \"out\"
match = '^\\+49([1-9]\\d+)$'
replace = \"0$1\"
";

#[test]
fn national_to_e164_in_and_back_out() {
    let edge = Edge::build("national_to_e164_in_and_back_out", Net(23))
        .access(|i| i.trusted(true))
        .policy("10-numbers.toml", POLICY)
        .start();

    // access -> core: national in, E.164 on the core leg.
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let text = Invite::new(&caller, "030123456")
        .from("\"Alice\" <sip:0301111@example.test>")
        .header("P-Asserted-Identity: <sip:0301111@example.test>")
        .text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(user_of(b.request_uri().unwrap_or_default()), "+4930123456");
    assert_eq!(user_of(value(b, "To")), "+4930123456");
    assert_eq!(user_of(value(b, "From")), "+49301111");
    assert!(value(b, "From").starts_with("\"Alice\" <"), "{}", b.raw);
    assert_eq!(
        b.header_all("P-Asserted-Identity"),
        ["<sip:+49301111@example.test>"]
    );
    // The caller's own dialog keeps its numbers.
    assert_eq!(value(&d.a_ok, "From"), value(&d.a_invite, "From"));

    // core -> access: E.164 from the core, national toward access; a foreign
    // number matches no rule and stays.
    let mut core_caller = edge.core_caller();
    let mut phone = edge.phone();
    let text = Invite::new(&core_caller, "+4940555")
        .from("<sip:+4930999@example.test>")
        .header("P-Asserted-Identity: <sip:+4930999@example.test>")
        .header("P-Asserted-Identity: <tel:+4930999>")
        .text(&core_caller);
    let (d, _) = call(&edge, &mut core_caller, &mut phone, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(user_of(b.request_uri().unwrap_or_default()), "040555");
    assert_eq!(user_of(value(b, "To")), "040555");
    assert_eq!(user_of(value(b, "From")), "030999");
    assert_eq!(
        b.header_all("P-Asserted-Identity"),
        ["<sip:030999@example.test>", "<tel:030999>"],
        "{}",
        b.raw
    );

    let text = Invite::new(&core_caller, "+442071234")
        .from("<sip:+4930999@example.test>")
        .text(&core_caller);
    let (d, _) = call(&edge, &mut core_caller, &mut phone, &text, &[]);
    assert_eq!(
        user_of(d.b_invite.request_uri().unwrap_or_default()),
        "+442071234"
    );
    assert_eq!(user_of(value(&d.b_invite, "From")), "030999");
}
