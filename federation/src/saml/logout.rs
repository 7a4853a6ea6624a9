//! Single Logout (SAML 2.0 profiles §4.4): an SP's `LogoutRequest` in (HTTP-Redirect or HTTP-POST, signatures
//! checked like AuthnRequests), a signed `LogoutResponse` out to the SP's SingleLogoutService by its binding
//! (HTTP-POST: enveloped signature; HTTP-Redirect: deflated, query signed). `now` is a parameter.

use std::io::Write as _;

use base64::Engine as _;
use time::OffsetDateTime;

use super::authn_request::read_message;
use super::error::SamlError;
use super::keys::SigningKeys;
use super::response::{instant, new_id};
use super::service_provider::SloBinding;
use super::signature::{Algorithm, sign_enveloped};
use super::xml::{Element, ns};

/// A SAML message on its way to an SP through the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// HTTP-POST binding: an auto-submitting form posting `field` (`SAMLRequest` or `SAMLResponse`) = `value`
    /// (base64 of the signed XML) and the RelayState to `url`.
    Post {
        /// The form's action.
        url: String,
        /// `SAMLRequest` or `SAMLResponse`.
        field: &'static str,
        /// Base64 of the XML.
        value: String,
        /// The signed XML (tests; never log it).
        xml: String,
    },
    /// HTTP-Redirect binding: send the browser to `url` (the message, RelayState, SigAlg and Signature in its query).
    Redirect {
        /// The full URL.
        url: String,
        /// The XML, unsigned (the query carries the signature).
        xml: String,
    },
}

/// Sends `message` (unsigned, with an `ID`) to `location` by `binding`, signed either way: an enveloped signature
/// after the Issuer for HTTP-POST; for HTTP-Redirect, the DEFLATE-encoded message in `field`, `RelayState` and
/// `SigAlg` signed as the bindings say (§3.4.4.1), the XML itself unsigned.
pub fn deliver(
    mut message: Element,
    binding: SloBinding,
    location: &str,
    field: &'static str,
    relay_state: Option<&str>,
    keys: &SigningKeys,
    alg: Algorithm,
) -> Result<Outbound, SamlError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match binding {
        SloBinding::Post => {
            sign_enveloped(&mut message, 1, keys, alg)?;
            let xml = message.to_canonical();
            Ok(Outbound::Post { url: location.to_string(), field, value: b64.encode(&xml), xml })
        }
        SloBinding::Redirect => {
            let xml = message.to_canonical();
            let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            deflater.write_all(xml.as_bytes()).map_err(SamlError::Deflate)?;
            let deflated = deflater.finish().map_err(SamlError::Deflate)?;
            let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let mut query = format!("{field}={}", enc(&b64.encode(deflated)));
            if let Some(r) = relay_state {
                query.push_str(&format!("&RelayState={}", enc(r)));
            }
            query.push_str(&format!("&SigAlg={}", enc(alg.uri())));
            let signature = keys.sign(alg, query.as_bytes())?;
            query.push_str(&format!("&Signature={}", enc(&b64.encode(signature))));
            let sep = if location.contains('?') { '&' } else { '?' };
            Ok(Outbound::Redirect { url: format!("{location}{sep}{query}"), xml })
        }
    }
}

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
    /// The SP asked for no LogoutResponse (`<aslo:Asynchronous/>` in `Extensions`, SAML 2.0 Asynchronous Single
    /// Logout Protocol Extension, as Shibboleth sends it).
    pub asynchronous: bool,
    /// `IssueInstant`, `NotOnOrAfter` and `Destination`: check them with [`super::Timing::check`].
    pub timing: super::Timing,
}

/// What we use from an SP's LogoutResponse (the answer to our LogoutRequest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    /// `InResponseTo`: our LogoutRequest's ID.
    pub in_response_to: Option<String>,
    /// `Issuer`: the SP's entity ID.
    pub issuer: String,
    /// Whether the top-level status is Success.
    pub success: bool,
    /// Whether the XML carries an enveloped `Signature`.
    pub signed: bool,
    /// The root `ID`.
    pub id: String,
}

/// Parses LogoutResponse XML.
pub fn parse_response(xml: &[u8]) -> Result<LogoutResponse, SamlError> {
    let m = read_message(xml, "LogoutResponse")?;
    let issuer = m.child("Issuer").unwrap_or_default().to_string();
    if issuer.is_empty() {
        return Err(SamlError::Malformed("LogoutResponse has no Issuer".into()));
    }
    let status = m.grandchildren.iter().find(|(parent, name, _)| parent == "Status" && name == "StatusCode");
    let success = status.is_some_and(|(_, _, attrs)| attrs.iter().any(|(k, v)| k == "Value" && v == SUCCESS));
    Ok(LogoutResponse {
        in_response_to: m.attr("InResponseTo").map(str::to_string),
        issuer,
        success,
        signed: m.signed,
        id: m.attr("ID").unwrap_or_default().to_string(),
    })
}

/// The (unsigned) LogoutRequest we send an SP for the NameID (`format`, `name_id`) and `session_index` it was
/// given (SAML core §3.7.1); [`deliver`] signs it. Returns the element and its ID.
pub fn request_element(
    issuer: &str,
    destination: &str,
    format: &str,
    name_id: &str,
    session_index: Option<&str>,
    now: OffsetDateTime,
) -> (Element, String) {
    let id = new_id();
    let mut request = Element::new(ns::SAMLP, "LogoutRequest")
        .attr("ID", id.clone())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .attr("NotOnOrAfter", instant(now + time::Duration::minutes(5)))
        .child(Element::new(ns::SAML, "Issuer").text(issuer))
        .child(Element::new(ns::SAML, "NameID").attr("Format", format).text(name_id));
    if let Some(index) = session_index {
        request = request.child(Element::new(ns::SAMLP, "SessionIndex").text(index));
    }
    (request, id)
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
        asynchronous: m
            .extensions
            .iter()
            .any(|(ns, name)| ns == super::authn_request::ASYNC_SLO_NS && name == "Asynchronous"),
        timing: super::Timing {
            issue_instant: m.attr("IssueInstant").map(str::to_string),
            not_on_or_after: m.attr("NotOnOrAfter").map(str::to_string),
            destination: m.attr("Destination").map(str::to_string),
        },
    })
}

/// The (unsigned) LogoutResponse to `destination` (the SP's SingleLogoutService); [`deliver`] signs it.
pub fn response_element(
    issuer: &str,
    destination: &str,
    in_response_to: &str,
    status: &str,
    now: OffsetDateTime,
) -> Element {
    Element::new(ns::SAMLP, "LogoutResponse")
        .attr("ID", new_id())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .attr("InResponseTo", in_response_to)
        .child(Element::new(ns::SAML, "Issuer").text(issuer))
        .child(Element::new(ns::SAMLP, "Status").child(Element::new(ns::SAMLP, "StatusCode").attr("Value", status)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
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
        assert!(!r.asynchronous);
        assert!(matches!(parse(b"<AuthnRequest ID=\"x\"/>"), Err(SamlError::Malformed(_))));
        assert!(matches!(parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><LogoutRequest/>"), Err(SamlError::Doctype)));
    }

    #[test]
    fn reads_the_asynchronous_extension() {
        let xml = br#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r2" Version="2.0"><saml:Issuer>https://sp</saml:Issuer><samlp:Extensions><aslo:Asynchronous xmlns:aslo="urn:oasis:names:tc:SAML:2.0:protocol:ext:async-slo"/></samlp:Extensions><saml:NameID>alice</saml:NameID></samlp:LogoutRequest>"#;
        let r = parse(xml).unwrap();
        assert!(r.asynchronous);
        assert_eq!(r.name_id.as_deref(), Some("alice"));
        // Only inside Extensions: the same element elsewhere means nothing.
        let elsewhere = br#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r3"><saml:Issuer>https://sp</saml:Issuer><x><Asynchronous/></x></samlp:LogoutRequest>"#;
        assert!(!parse(elsewhere).unwrap().asynchronous);
    }

    /// A LogoutRequest or LogoutResponse whose root, Issuer, NameID, SessionIndex or StatusCode is in another
    /// namespace is refused naming the element; an `Asynchronous` extension counts only in its own namespace.
    #[test]
    fn logout_messages_in_foreign_namespaces_are_refused() {
        let ok = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Version="2.0"><saml:Issuer>https://sp</saml:Issuer><saml:NameID>alice</saml:NameID><samlp:SessionIndex>_s</samlp:SessionIndex></samlp:LogoutRequest>"#;
        assert!(parse(ok.as_bytes()).is_ok());
        for (from, to, element) in [
            ("samlp:LogoutRequest", "evil:LogoutRequest", "LogoutRequest"),
            ("saml:Issuer", "evil:Issuer", "Issuer"),
            ("saml:NameID", "evil:NameID", "NameID"),
            ("samlp:SessionIndex", "evil:SessionIndex", "SessionIndex"),
        ] {
            let xml = ok.replace(from, to).replace(" ID=\"_r\"", " xmlns:evil=\"urn:x\" ID=\"_r\"");
            match parse(xml.as_bytes()) {
                Err(e @ SamlError::WrongNamespace { .. }) => {
                    assert!(e.to_string().contains(&format!("the {element} element is in urn:x")), "{e}")
                }
                other => panic!("{xml}: {other:?}"),
            }
        }
        let foreign_async = ok.replace(
            "<saml:NameID>",
            r#"<samlp:Extensions><x:Asynchronous xmlns:x="urn:x"/></samlp:Extensions><saml:NameID>"#,
        );
        assert!(!parse(foreign_async.as_bytes()).unwrap().asynchronous, "another extension of the same name");
        let response = r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:evil="urn:x" ID="_p" InResponseTo="_r"><saml:Issuer>https://sp</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#;
        assert!(parse_response(response.as_bytes()).is_ok());
        let foreign = response.replace("samlp:StatusCode", "evil:StatusCode");
        assert!(
            matches!(parse_response(foreign.as_bytes()), Err(SamlError::WrongNamespace { element, .. }) if element == "StatusCode")
        );
    }
}
