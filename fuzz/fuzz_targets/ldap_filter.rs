//! Text that reaches LDAP from outside: the username typed on the login page goes into a search filter
//! (`ldap_mapper::filter::escape` / `and_equals`), and DNs the directory returns are split into RDNs and read for
//! group names (`ldap_mapper::dn::{split_rdns, first_value, check}`). AD logon names (`ad::LogonName`) and AD's bind
//! diagnostic messages (`ad::BindRefusal::parse`) are split and read.
//!
//! Checks: no panic; an escaped value has no `*`, `(`, `)` or NUL and every `\` starts a two-hex-digit escape (no
//! wildcard or clause injection), and the filter built around it passes the filter check; the RDNs of a DN
//! rejoin to the DN.
#![no_main]

use ldap_mapper::{ad, dn, filter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let escaped = filter::escape(text);
    assert!(!escaped.contains(['*', '(', ')', '\0']), "{escaped:?}");
    let b = escaped.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            assert!(b.len() >= i + 3 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit(), "{escaped:?}");
            i += 3;
        } else {
            i += 1;
        }
    }
    let f = filter::and_equals("(objectClass=inetOrgPerson)", "uid", text);
    assert_eq!(filter::check(&f), Ok(()), "{f:?}");

    let rdns = dn::split_rdns(text);
    assert_eq!(rdns.join(","), text);
    let _ = dn::first_value(text);
    let _ = dn::check(text);

    let _ = ad::BindRefusal::parse(text);
    match ad::LogonName::parse(text, Some("CORP")) {
        ad::LogonName::DownLevel(account) => assert!(text.ends_with(account) && !account.is_empty()),
        ad::LogonName::Account(name) | ad::LogonName::Principal(name) => assert_eq!(name, text),
        ad::LogonName::ForeignDomain => assert!(text.contains('\\')),
    }
});
