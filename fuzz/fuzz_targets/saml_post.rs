//! SAML HTTP-POST binding, as `POST /saml/sso` and `POST /saml/slo` read it: the form body → `SAMLRequest` →
//! bounded base64 → XML → AuthnRequest or LogoutRequest → SP lookup → enveloped XML-DSig check (bergshamra) with
//! the SP's certificate.
//!
//! Checks: no panic; a request accepted for an SP that wants signed requests carries a `Signature`, and so does a
//! LogoutRequest accepted for an SP with a certificate; an accepted AuthnRequest's ID is bounded.
#![no_main]

use federation::saml::authn_request::{self, MAX_ID, MAX_XML};
use fedgate_fuzz::{SP_SIGNED, idp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let idp = idp();
    // The gateway decodes the form body (axum `Form`, serde_urlencoded) and passes the SAMLRequest field on.
    let field = url::form_urlencoded::parse(data).find(|(k, _)| k == "SAMLRequest").map(|(_, v)| v.into_owned());
    let value = field.unwrap_or_else(|| String::from_utf8_lossy(data).into_owned());
    if let Ok((req, sp)) = idp.post_request(&value) {
        assert_eq!(sp.entity_id, req.issuer);
        assert!(sp.entity_id != SP_SIGNED || req.signed, "unsigned POST request accepted for {SP_SIGNED}");
        assert!(req.id.len() <= MAX_ID);
    }
    if let Ok((req, sp)) = idp.logout_post(&value) {
        assert_eq!(sp.entity_id, req.issuer);
        assert!(sp.certificate_der.is_none() || req.signed, "unsigned POST logout accepted for {}", sp.entity_id);
    }
    if let Ok(xml) = authn_request::post_xml(&value) {
        assert!(xml.len() <= MAX_XML);
    }
});
