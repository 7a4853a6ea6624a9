//! AuthnRequest and LogoutRequest reading (`federation::saml::{authn_request, logout}`), driven at the XML level:
//! the input (after one option byte) is the request XML, parsed directly and also carried through both bindings
//! as a client would send it (base64 for HTTP-POST; raw DEFLATE + base64 + URL encoding for HTTP-Redirect, at times
//! with a real query signature by the SP's key), then the enveloped-signature check with the SP's certificate.
//!
//! With the two top option bits set, the request's fields (ID, Issuer, ACS URL) are written again as an
//! AuthnRequest that the SP's key signs (enveloped), and sent by HTTP-POST.
//!
//! Checks: no panic; the two bindings agree with the direct parse; an SP that wants signed requests never accepts
//! an unsigned one; a request the SP really signed is accepted, with the fields it signed; and when a request is
//! accepted, the signed Response / LogoutResponse that echoes its `ID` is well-formed XML whose `InResponseTo` is
//! exactly that `ID` (no markup injection into a signed document).
#![no_main]

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use federation::saml::signature::sign_enveloped;
use federation::saml::xml::{Element, ns};
use federation::saml::{Algorithm, AuthnRequest, authn_request, logout};
use fedgate_fuzz::{SP_OPTIONAL, SP_SIGNED, idp, now, principal, sp_keys};
use libfuzzer_sys::fuzz_target;
use quick_xml::events::Event;

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Characters XML 1.0 can carry (the writer replaces the others).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The root element's local name and `InResponseTo`, after reading the whole document.
fn root_in_response_to(xml: &str) -> (String, Option<String>) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut root = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if root.is_none() => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut irt = None;
                for a in e.attributes() {
                    let a = a.expect("attribute of our own response");
                    if a.key.as_ref() == b"InResponseTo" {
                        irt = Some(a.unescape_value().expect("escaped value").into_owned());
                    }
                }
                root = Some((name, irt));
            }
            Ok(Event::Eof) => break,
            Ok(Event::DocType(_)) => panic!("a response with a DOCTYPE"),
            Ok(_) => {}
            Err(e) => panic!("our response is not well-formed XML: {e}\n{xml}"),
        }
    }
    root.expect("a root element")
}

fn check_echo(xml: &str, want_root: &str, id: &str) {
    let (root, irt) = root_in_response_to(xml);
    assert_eq!(root, want_root);
    if id.chars().all(xml_char) {
        assert_eq!(irt.as_deref(), Some(id), "InResponseTo differs from the request ID");
    }
}

/// The request as the SP would write and sign it.
fn resigned(req: &AuthnRequest) -> String {
    let mut e = Element::new(ns::SAMLP, "AuthnRequest")
        .attr("ID", req.id.clone())
        .attr("Version", "2.0")
        .attr("IssueInstant", "2027-01-15T08:00:00Z")
        .attr_opt("AssertionConsumerServiceURL", req.acs_url.clone())
        .child(Element::new(ns::SAML, "Issuer").text(req.issuer.clone()));
    sign_enveloped(&mut e, 1, sp_keys(), Algorithm::RsaSha256).unwrap();
    e.to_canonical()
}

fn ncname(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fuzz_target!(|data: &[u8]| {
    let Some((&opts, xml)) = data.split_first() else { return };
    let idp = idp();
    let authn = authn_request::parse(xml);
    let lr = logout::parse(xml);

    // HTTP-POST: base64 of the XML.
    let b64 = STANDARD.encode(xml);
    let post = idp.post_request(&b64);
    if let Ok((req, sp)) = &post {
        assert_eq!(Some(req), authn.as_ref().ok());
        assert!(sp.entity_id != SP_SIGNED || req.signed);
    }
    let post_logout = idp.logout_post(&b64);
    if let Ok((req, sp)) = &post_logout {
        assert_eq!(Some(req), lr.as_ref().ok());
        assert!(sp.certificate_der.is_none() || req.signed);
    }

    // HTTP-Redirect: raw DEFLATE + base64, URL-encoded, with optional RelayState and signature.
    if opts & 1 == 0 {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(xml).unwrap();
        let deflated = STANDARD.encode(e.finish().unwrap());
        let mut query = format!("SAMLRequest={}", enc(&deflated));
        if opts & 2 != 0 {
            query.push_str("&RelayState=");
            query.push_str(&enc("https://sp.example/deep?x=1&y=<2>"));
        }
        if opts & 0x1c == 0 {
            // A real signature by the SP's key (one input in eight: RSA signing is slow).
            let alg = if opts & 0x20 == 0 { Algorithm::RsaSha256 } else { Algorithm::RsaSha1 };
            query.push_str("&SigAlg=");
            query.push_str(&enc(alg.uri()));
            let sig = fedgate_fuzz::sp_keys().sign(alg, query.as_bytes()).unwrap();
            query.push_str("&Signature=");
            query.push_str(&enc(&STANDARD.encode(sig)));
        } else if opts & 0x1c == 4 {
            query.push_str("&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature=AAAA");
        }
        let signed = query.contains("&Signature=");
        if let Ok((req, sp)) = idp.redirect_request(&query) {
            assert_eq!(Some(&req), authn.as_ref().ok());
            assert!(sp.entity_id != SP_SIGNED || signed);
        }
        if let Ok((req, sp)) = idp.logout_redirect(&query) {
            assert_eq!(Some(&req), lr.as_ref().ok());
            assert!(sp.certificate_der.is_none() || signed);
        }
    }

    // What the SP really signed is accepted, with the fields it signed.
    if opts & 0xc0 == 0xc0
        && let Ok(req) = &authn
    {
        let xml = resigned(req);
        let result = idp.post_request(&STANDARD.encode(&xml));
        let known = req.issuer == SP_SIGNED || req.issuer == SP_OPTIONAL;
        let clean = |s: &str| s.chars().all(|c| xml_char(c) && (c == ' ' || !c.is_whitespace()));
        if known && ncname(&req.id) && clean(&req.issuer) && req.acs_url.as_deref().is_none_or(clean) {
            let (got, _) = result.unwrap_or_else(|e| panic!("a request the SP signed is refused: {e}\n{xml}"));
            assert_eq!((&got.id, &got.issuer, &got.acs_url), (&req.id, &req.issuer, &req.acs_url));
            assert!(got.signed);
        }
    }

    // The signature check on its own, against the SP certificate, whatever the issuer.
    if let Ok(req) = &authn
        && req.signed
        && let Some(cert) = idp.by_name("signed").ok().and_then(|sp| sp.certificate_der.as_deref())
    {
        let _ = authn_request::verify_post_signature(xml, &req.id, cert);
    }

    // The signed answers echo the request ID: it must stay an attribute value. RSA signing is slow, so only for
    // IDs that are not plain NCNames.
    let plain = |id: &str| id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if let Ok((req, sp)) = &post
        && !plain(&req.id)
        && let Ok(resp) = idp.respond(sp, &principal(), Some(req), now())
    {
        check_echo(&resp.xml, "Response", &req.id);
        assert_eq!(STANDARD.decode(&resp.saml_response).unwrap(), resp.xml.as_bytes());
    }
    if let Ok((req, sp)) = &post_logout
        && !plain(&req.id)
        && let Ok(
            federation::saml::Outbound::Post { xml, .. } | federation::saml::Outbound::Redirect { xml, .. },
        ) = idp.logout_response(sp, req, true, None, now())
    {
        check_echo(&xml, "LogoutResponse", &req.id);
    }
});
