//! The IdP metadata document SPs import (Alibaba RAM included): entity ID, signing certificates (two during a
//! rotation), SingleLogoutService, NameID formats, and SingleSignOnService for HTTP-Redirect and HTTP-POST.

use base64::Engine as _;

use super::keys::SigningKeys;
use super::xml::{Element, ns};

/// The `md:EntityDescriptor` for this IdP.
pub fn document(
    entity_id: &str,
    sso_url: &str,
    slo_url: &str,
    keys: &SigningKeys,
    want_authn_requests_signed: bool,
) -> String {
    let mut idp = Element::new(ns::MD, "IDPSSODescriptor")
        .attr("WantAuthnRequestsSigned", if want_authn_requests_signed { "true" } else { "false" })
        .attr("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol");
    for der in std::iter::once(&keys.cert_der).chain(&keys.extra_certs_der) {
        idp = idp.child(Element::new(ns::MD, "KeyDescriptor").attr("use", "signing").child(
            Element::new(ns::DS, "KeyInfo").child(Element::new(ns::DS, "X509Data").child(
                Element::new(ns::DS, "X509Certificate").text(base64::engine::general_purpose::STANDARD.encode(der)),
            )),
        ));
    }
    for binding in
        ["urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"]
    {
        idp = idp.child(Element::new(ns::MD, "SingleLogoutService").attr("Binding", binding).attr("Location", slo_url));
    }
    for format in [
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    ] {
        idp = idp.child(Element::new(ns::MD, "NameIDFormat").text(format));
    }
    for binding in
        ["urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"]
    {
        idp = idp.child(Element::new(ns::MD, "SingleSignOnService").attr("Binding", binding).attr("Location", sso_url));
    }
    let doc = Element::new(ns::MD, "EntityDescriptor").attr("entityID", entity_id).child(idp);
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}", doc.to_canonical())
}
