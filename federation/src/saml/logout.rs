//! SP-initiated Single Logout (SAML 2.0 profiles §4.4): an SP's `LogoutRequest` in (HTTP-Redirect or HTTP-POST,
//! signatures checked like AuthnRequests), a signed `LogoutResponse` out to the SP's registered SingleLogoutService.
//! `now` is a parameter.

use time::OffsetDateTime;

use super::authn_request::read_message;
use super::error::SamlError;
use super::keys::SigningKeys;
use super::response::{instant, new_id};
use super::signature::{Algorithm, sign_enveloped};
use super::xml::{Element, ns};

/// Top-level status: the logout succeeded (or there was nothing to end).
pub const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// Top-level status: we could not do what was asked.
pub const RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";

/// What we use from a LogoutRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    /// `ID` (echoed as `InResponseTo`).
    pub id: String,
    /// `Issuer`: the SP's entity ID.
    pub issuer: String,
    /// `NameID`: who the SP is logging out.
    pub name_id: Option<String>,
    /// `SessionIndex`, if given.
    pub session_index: Option<String>,
    /// Whether the XML carries an enveloped `Signature`.
    pub signed: bool,
}

/// Parses LogoutRequest XML.
pub fn parse(xml: &[u8]) -> Result<LogoutRequest, SamlError> {
    let m = read_message(xml, "LogoutRequest")?;
    let id = m.attr("ID").ok_or_else(|| SamlError::Malformed("LogoutRequest has no ID".into()))?.to_string();
    let issuer = m.child("Issuer").unwrap_or_default().to_string();
    if issuer.is_empty() {
        return Err(SamlError::Malformed("LogoutRequest has no Issuer".into()));
    }
    Ok(LogoutRequest {
        id,
        issuer,
        name_id: m.child("NameID").map(str::to_string),
        session_index: m.child("SessionIndex").map(str::to_string),
        signed: m.signed,
    })
}

/// Builds and signs the LogoutResponse to `destination` (the SP's SingleLogoutService).
pub fn build_response(
    issuer: &str,
    destination: &str,
    in_response_to: &str,
    status: &str,
    now: OffsetDateTime,
    keys: &SigningKeys,
    alg: Algorithm,
) -> Result<String, SamlError> {
    let mut response = Element::new(ns::SAMLP, "LogoutResponse")
        .attr("ID", new_id())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .attr("InResponseTo", in_response_to)
        .child(Element::new(ns::SAML, "Issuer").text(issuer))
        .child(Element::new(ns::SAMLP, "Status").child(Element::new(ns::SAMLP, "StatusCode").attr("Value", status)));
    sign_enveloped(&mut response, 1, keys, alg)?;
    Ok(response.to_canonical())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_direct_children() {
        let xml = br#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0"><saml:Issuer>https://sp</saml:Issuer><saml:NameID>alice@example.org</saml:NameID><x><saml:NameID>mallory</saml:NameID></x><samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>"#;
        let r = parse(xml).unwrap();
        assert_eq!(r.id, "_r1");
        assert_eq!(r.issuer, "https://sp");
        assert_eq!(r.name_id.as_deref(), Some("alice@example.org"));
        assert_eq!(r.session_index.as_deref(), Some("_s1"));
        assert!(!r.signed);
        assert!(matches!(parse(b"<AuthnRequest ID=\"x\"/>"), Err(SamlError::Malformed(_))));
        assert!(matches!(parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><LogoutRequest/>"), Err(SamlError::Doctype)));
    }
}
