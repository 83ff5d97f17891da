//! Identity at the boundary (RFC 3325 P-Asserted-Identity, Remote-Party-ID,
//! P-Preferred-Identity, RFC 3323 Privacy): what identity a call carries across an
//! interface, from the interface's `trusted`, `send_identity` and `identity_header`
//! settings. Placeholder: the identity logic lands here separately.
