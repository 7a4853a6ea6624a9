//! Writes the seeds that need the fixture keys (signed SAML requests, JWTs) into `corpus/<target>/seed-*`.
//! The committed seeds were made with it; run it again only when a fixture key changes. `cargo run --example
//! make_seeds` works but builds every dependency a second time without the fuzzing flags; reusing the fuzz build
//! is quicker: add it as a `[[bin]]` for a moment, `cargo fuzz build make_seeds`, run
//! `target/x86_64-unknown-linux-gnu/release/make_seeds`, remove the `[[bin]]`. The other seeds are plain text,
//! written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use federation::saml::Algorithm;
use federation::saml::signature::sign_enveloped;
use federation::saml::xml::{Element, ns};
use fedgate_fuzz::{SP_OPTIONAL, SP_PLAIN, SP_SIGNED, idp, now, oidc, principal, sp_keys};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn deflate_b64(xml: &str) -> String {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(xml.as_bytes()).unwrap();
    STANDARD.encode(e.finish().unwrap())
}

fn authn(issuer: &str, acs: &str) -> Element {
    Element::new(ns::SAMLP, "AuthnRequest")
        .attr("ID", "_a2eg9c2gjji188814h7j2d7358fh3g9")
        .attr("Version", "2.0")
        .attr("IssueInstant", "2027-01-15T08:00:00Z")
        .attr("AssertionConsumerServiceURL", acs)
        .attr("ProtocolBinding", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
        .attr("ForceAuthn", "false")
        .child(Element::new(ns::SAML, "Issuer").text(issuer))
}

fn logout(issuer: &str) -> Element {
    Element::new(ns::SAMLP, "LogoutRequest")
        .attr("ID", "_lr-7f3e")
        .attr("Version", "2.0")
        .attr("IssueInstant", "2027-01-15T08:00:00Z")
        .child(Element::new(ns::SAML, "Issuer").text(issuer))
        .child(Element::new(ns::SAML, "NameID").text("alice@corp.example"))
        .child(Element::new(ns::SAMLP, "SessionIndex").text("_s-1"))
}

fn signed(mut e: Element) -> String {
    sign_enveloped(&mut e, 1, sp_keys(), Algorithm::RsaSha256).unwrap();
    e.to_canonical()
}

/// `SAMLRequest=…[&RelayState=…]`, with a query signature by the SP key when `sign`.
fn redirect_query(xml: &str, relay: Option<&str>, sign: bool) -> String {
    let mut q = format!("SAMLRequest={}", enc(&deflate_b64(xml)));
    if let Some(r) = relay {
        q.push_str(&format!("&RelayState={}", enc(r)));
    }
    if sign {
        q.push_str(&format!("&SigAlg={}", enc(Algorithm::RsaSha256.uri())));
        let sig = sp_keys().sign(Algorithm::RsaSha256, q.as_bytes()).unwrap();
        q.push_str(&format!("&Signature={}", enc(&STANDARD.encode(sig))));
    }
    q
}

fn main() {
    let plain = authn(SP_PLAIN, "https://sp.example/plain/acs").to_canonical();
    let signed_authn = signed(authn(SP_SIGNED, "https://sp.example/signed/acs"));
    let optional_authn = signed(authn(SP_OPTIONAL, "https://sp.example/optional/acs"));
    let plain_logout = logout(SP_PLAIN).to_canonical();
    let signed_logout = signed(logout(SP_SIGNED));

    // The seeds must be accepted, or they teach the fuzzer nothing.
    let idp = idp();
    for xml in [&signed_authn, &optional_authn, &plain] {
        idp.post_request(&STANDARD.encode(xml)).unwrap();
    }
    for xml in [&signed_logout, &plain_logout] {
        idp.logout_post(&STANDARD.encode(xml)).unwrap();
    }

    for (name, xml) in [
        ("authn-plain", &plain),
        ("authn-signed", &signed_authn),
        ("authn-optional-signed", &optional_authn),
        ("logout-plain", &plain_logout),
        ("logout-signed", &signed_logout),
    ] {
        // saml_xml: one option byte, then the XML (0 = redirect with a real query signature; 1 = POST only).
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(xml.as_bytes());
        write("saml_xml", name, &bytes);
        bytes[0] = 0x0b;
        write("saml_xml", &format!("{name}-relay"), &bytes);
        write("saml_post", name, format!("SAMLRequest={}&RelayState=rs-1", enc(&STANDARD.encode(xml))).as_bytes());
        write("saml_redirect", name, redirect_query(xml, Some("https://sp.example/deep?x=1"), false).as_bytes());
    }
    for (name, xml) in [("authn-signed-query", &authn(SP_SIGNED, "https://sp.example/signed/acs").to_canonical()), (
        "logout-signed-query",
        &logout(SP_SIGNED).to_canonical(),
    )] {
        let q = redirect_query(xml, Some("state-1"), true);
        if name.starts_with("authn") {
            idp.redirect_request(&q).unwrap();
        } else {
            idp.logout_redirect(&q).unwrap();
        }
        write("saml_redirect", name, q.as_bytes());
    }

    // JWTs: an access token without a session (verifies by itself), a real code-flow token response (its access
    // token needs the flow's token family, which a fresh process lacks; its ID token is a good id_token_hint).
    let provider = oidc();
    let ten_years = std::time::Duration::from_secs(10 * 365 * 86400);
    let at = provider.upstream_token(&principal(), "fedgate-proxy", ten_years, now()).unwrap();
    fedgate_fuzz::block_on(provider.verify_access_token(&at, now())).unwrap();
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(at.as_bytes());
    write("jwt_bearer", "access-token", &bytes);
    let flow = fedgate_fuzz::fresh_tokens();
    for (name, t) in [("flow-access-token", Some(flow.access_token)), ("flow-id-token", flow.id_token)] {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(t.unwrap().as_bytes());
        write("jwt_bearer", name, &bytes);
    }
    println!("seeds written");
}
