//! The signed `samlp:Response` for one SP and one user (SAML 2.0 Web Browser SSO profile): Destination,
//! InResponseTo (SP-initiated only), Issuer, Status, and a signed Assertion with NameID, bearer
//! SubjectConfirmationData (Recipient, NotOnOrAfter), Conditions (NotBefore = now − skew, NotOnOrAfter,
//! Audience), AuthnStatement (SessionIndex, PasswordProtectedTransport) and attributes. `now` is a parameter.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::SamlError;
use super::keys::SigningKeys;
use super::service_provider::{IssuedNameId, ServiceProvider};
use super::signature::sign_enveloped;
use super::xml::{Element, ns};
use crate::Principal;

/// Timing of one response.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Issue time.
    pub now: OffsetDateTime,
    /// Validity after `now`.
    pub lifetime: std::time::Duration,
    /// Allowed skew before `now`.
    pub skew: std::time::Duration,
}

/// Inputs that vary per response.
#[derive(Debug, Clone)]
pub struct ResponseParams<'a> {
    /// IdP entity ID.
    pub issuer: &'a str,
    /// Where the response is posted (a registered ACS URL).
    pub acs_url: &'a str,
    /// The AuthnRequest ID, for SP-initiated SSO.
    pub in_response_to: Option<&'a str>,
    /// The assertion's `ID`, also its `SessionIndex` (a fresh [`new_id`]; the caller keeps it to match a later
    /// LogoutRequest).
    pub assertion_id: &'a str,
    /// Timing.
    pub window: Window,
}

/// A random XML ID: `_` + 160 random bits in hex (never starts with a digit).
pub fn new_id() -> String {
    let mut b = [0u8; 20];
    fedgate_types::random::fill(&mut b);
    format!("_{}", hex::encode(b))
}

/// SAML `dateTime` in UTC with milliseconds.
pub fn instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Top-level status of a request we could not answer with an assertion because of the request (SAML core §3.2.2.2).
pub const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
/// Top-level status of a request we could not answer with an assertion on our side (SAML core §3.2.2.2).
pub const RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
/// Second-level status: the request was passive (`IsPassive="true"`) and the user is not signed in (SAML core
/// §3.2.2.2, §3.4.1).
pub const NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
/// Second-level status: the requested NameID format cannot be issued (SAML core §3.2.2.2).
pub const INVALID_NAMEID_POLICY: &str = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";

/// A signed Response without an assertion: top-level status `top` ([`REQUESTER`] or [`RESPONDER`]) with the
/// second-level `status` (e.g. [`INVALID_NAMEID_POLICY`], [`NO_PASSIVE`]), to the ACS of the request it answers.
pub fn build_status(
    sp: &ServiceProvider,
    params: &ResponseParams<'_>,
    top: &str,
    status: &str,
    keys: &SigningKeys,
) -> Result<String, SamlError> {
    let mut response = Element::new(ns::SAMLP, "Response")
        .attr("ID", new_id())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(params.window.now))
        .attr("Destination", params.acs_url)
        .attr_opt("InResponseTo", params.in_response_to)
        .child(Element::new(ns::SAML, "Issuer").text(params.issuer))
        .child(
            Element::new(ns::SAMLP, "Status").child(
                Element::new(ns::SAMLP, "StatusCode")
                    .attr("Value", top)
                    .child(Element::new(ns::SAMLP, "StatusCode").attr("Value", status)),
            ),
        );
    sign_enveloped(&mut response, 1, keys, sp.config.signature_algorithm)?;
    Ok(response.to_canonical())
}

/// Builds and signs the response carrying `name_id`. Returns the XML (canonical, UTF-8, no declaration).
pub fn build(
    sp: &ServiceProvider,
    p: &Principal,
    name_id: &IssuedNameId,
    params: &ResponseParams<'_>,
    keys: &SigningKeys,
) -> Result<String, SamlError> {
    let attributes = sp.attributes(p)?;
    let w = params.window;
    let issue = instant(w.now);
    let not_before = instant(w.now - w.skew);
    let not_on_or_after = instant(w.now + w.lifetime);
    let assertion_id = params.assertion_id.to_string();

    let mut subject_confirmation_data = Element::new(ns::SAML, "SubjectConfirmationData")
        .attr("NotOnOrAfter", not_on_or_after.clone())
        .attr("Recipient", params.acs_url);
    if let Some(irt) = params.in_response_to {
        subject_confirmation_data = subject_confirmation_data.attr("InResponseTo", irt);
    }
    let mut assertion = Element::new(ns::SAML, "Assertion")
        .attr("ID", assertion_id.clone())
        .attr("IssueInstant", issue.clone())
        .attr("Version", "2.0")
        .child(Element::new(ns::SAML, "Issuer").text(params.issuer))
        .child(
            Element::new(ns::SAML, "Subject")
                .child(
                    Element::new(ns::SAML, "NameID").attr("Format", name_id.format.uri()).text(name_id.value.clone()),
                )
                .child(
                    Element::new(ns::SAML, "SubjectConfirmation")
                        .attr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
                        .child(subject_confirmation_data),
                ),
        )
        .child(
            Element::new(ns::SAML, "Conditions")
                .attr("NotBefore", not_before)
                .attr("NotOnOrAfter", not_on_or_after)
                .child(
                    Element::new(ns::SAML, "AudienceRestriction")
                        .child(Element::new(ns::SAML, "Audience").text(sp.entity_id.clone())),
                ),
        )
        .child(
            Element::new(ns::SAML, "AuthnStatement")
                .attr("AuthnInstant", instant(p.auth_time))
                .attr("SessionIndex", assertion_id.clone())
                .child(authn_context(&p.authn)),
        );
    if !attributes.is_empty() {
        let mut statement = Element::new(ns::SAML, "AttributeStatement");
        for a in attributes {
            let mut attr = Element::new(ns::SAML, "Attribute")
                .attr("Name", a.name)
                .attr("NameFormat", a.name_format.uri())
                .attr_opt("FriendlyName", a.friendly_name);
            for v in a.values {
                attr = attr.child(Element::new(ns::SAML, "AttributeValue").text(v));
            }
            statement = statement.child(attr);
        }
        assertion = assertion.child(statement);
    }
    let alg = sp.config.signature_algorithm;
    sign_enveloped(&mut assertion, 1, keys, alg)?;
    let assertion = match &sp.encryption_cert_der {
        Some(cert) => super::encrypt::encrypted_assertion(&assertion, cert)
            .map_err(|source| SamlError::Encrypt { sp: sp.name().to_string(), source })?,
        None => assertion,
    };

    let mut response =
        Element::new(ns::SAMLP, "Response")
            .attr("ID", new_id())
            .attr("Version", "2.0")
            .attr("IssueInstant", issue)
            .attr("Destination", params.acs_url)
            .attr_opt("InResponseTo", params.in_response_to)
            .child(Element::new(ns::SAML, "Issuer").text(params.issuer))
            .child(Element::new(ns::SAMLP, "Status").child(
                Element::new(ns::SAMLP, "StatusCode").attr("Value", "urn:oasis:names:tc:SAML:2.0:status:Success"),
            ))
            .child(assertion);
    if sp.config.sign_response {
        sign_enveloped(&mut response, 1, keys, alg)?;
    }
    Ok(response.to_canonical())
}

/// `AuthnContext`: the class, and for a federated login the upstream that authenticated the user.
fn authn_context(authn: &crate::principal::Authn) -> Element {
    let mut ctx = Element::new(ns::SAML, "AuthnContext")
        .child(Element::new(ns::SAML, "AuthnContextClassRef").text(authn.saml_class().to_string()));
    if let Some(issuer) = &authn.upstream_issuer {
        ctx = ctx.child(Element::new(ns::SAML, "AuthenticatingAuthority").text(issuer.clone()));
    }
    ctx
}
