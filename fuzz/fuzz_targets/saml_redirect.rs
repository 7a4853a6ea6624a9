//! SAML HTTP-Redirect binding, as `GET /saml/sso` and `GET /saml/slo` read it: the raw query string (the signature
//! covers its exact bytes) → `SAMLRequest` URL-decoded → base64 → bounded raw-DEFLATE inflate → XML → AuthnRequest
//! or LogoutRequest → SP lookup → query-signature check with the SP's certificate.
//!
//! Checks: no panic; the inflate bound holds; a request accepted for an SP that wants signed requests carried a
//! `Signature` parameter, and so did a LogoutRequest accepted for an SP with a certificate; an accepted
//! AuthnRequest's ID is bounded; a RelayState passes the IdP's length check only within its limit.
#![no_main]

use federation::saml::authn_request::{self, MAX_ID, MAX_XML};
use fedgate_fuzz::{SP_SIGNED, idp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // An axum `RawQuery` is a `&str` from the request URI.
    let Ok(query) = std::str::from_utf8(data) else { return };
    let idp = idp();
    let signed = query.split('&').any(|p| p.starts_with("Signature="));
    if let Ok((req, sp)) = idp.redirect_request(query) {
        assert_eq!(sp.entity_id, req.issuer);
        assert!(sp.entity_id != SP_SIGNED || signed, "unsigned request accepted for {SP_SIGNED}");
        assert!(req.id.len() <= MAX_ID);
        let _ = idp.acs_for(sp, Some(&req));
    }
    if let Ok((req, sp)) = idp.logout_redirect(query) {
        assert_eq!(sp.entity_id, req.issuer);
        assert!(sp.certificate_der.is_none() || signed, "unsigned logout accepted for {}", sp.entity_id);
    }
    // The RelayState as the gateway reads it, and its bound.
    let relay = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "RelayState").map(|(_, v)| v);
    if idp.check_relay_state(relay.as_deref()).is_ok() {
        assert!(relay.is_none_or(|r| r.len() <= 80), "a RelayState over the default 80 bytes passed");
    }
    // The value on its own, without the IdP's SP checks.
    if let Some(v) = query.split('&').find_map(|p| p.strip_prefix("SAMLRequest=")) {
        if let Ok(xml) = authn_request::inflate(v) {
            assert!(xml.len() <= MAX_XML);
        }
    }
});
