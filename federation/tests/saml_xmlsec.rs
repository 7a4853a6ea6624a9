//! Every response type, checked by the independent XML-DSig verifier `xmlsec1` (Debian package `xmlsec1`):
//! assertion-only and response+assertion signatures, RSA-SHA256 and RSA-SHA1, awkward attribute values, and a
//! tampered copy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use federation::Principal;
use federation::saml::{Algorithm, IdentityProvider, SamlConfig, SpConfig};

fn principal(display: &str) -> Principal {
    Principal {
        subject: "4f9d2a1e-0000-4000-8000-000000000001".into(),
        username: "alice".into(),
        email: Some("alice@example.org".into()),
        display_name: Some(display.into()),
        given_name: Some("Alice".into()),
        family_name: Some("Liddell".into()),
        groups: vec!["ai-admins".into(), "staff".into()],
        group_paths: vec![],
        roles: vec!["admin".into()],
        claims: BTreeMap::new(),
        saml_persistent_nameids: Default::default(),
        auth_time: time::OffsetDateTime::now_utc(),
        authn: Default::default(),
    }
}

fn idp(dir: &Path, sign_response: bool) -> IdentityProvider {
    idp_with(dir, sign_response, Algorithm::RsaSha256)
}

fn idp_with(dir: &Path, sign_response: bool, signature_algorithm: Algorithm) -> IdentityProvider {
    let sp = SpConfig {
        signature_algorithm,
        name: "app".into(),
        entity_id: Some("https://app.example.com/saml".into()),
        acs_urls: vec!["https://app.example.com/saml/acs".into()],
        sign_response,
        attributes: BTreeMap::from([
            (
                "displayName".to_string(),
                federation::saml::AttributeConfig::Detailed {
                    value: "{display_name}".into(),
                    name_format: Some(federation::saml::AttributeNameFormat::Basic),
                    friendly_name: Some("Display <Name> & \"quoted\"".into()),
                },
            ),
            ("groups".to_string(), federation::saml::AttributeConfig::Template("{groups}".into())),
        ]),
        ..Default::default()
    };
    let cfg = SamlConfig { keys_dir: dir.join("keys"), service_providers: vec![sp], ..Default::default() };
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    IdentityProvider::new(cfg, &url::Url::parse("https://sso.example.com/").unwrap()).unwrap()
}

fn xmlsec1_verify(dir: &Path, xml: &str, node: &str) -> (bool, String) {
    assert!(
        Path::new("/usr/bin/xmlsec1").exists(),
        "xmlsec1 not found: apt-get install xmlsec1 (or run scripts/setup)"
    );
    let file = dir.join(format!("resp-{}.xml", node.len()));
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmlsec1")
        .args(["--verify", "--pubkey-cert-pem"])
        .arg(dir.join("keys/saml-signing.crt"))
        .args(["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"])
        .args(["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response"])
        .args(["--node-xpath", node])
        .arg(&file)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

const ASSERTION_SIG: &str = "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']";
const RESPONSE_SIG: &str = "/*[local-name()='Response']/*[local-name()='Signature']";

#[test]
fn xmlsec1_verifies_assertion_only_responses() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp(dir.path(), false);
    let sp = idp.by_name("app").unwrap();
    let r = idp.respond(sp, &principal("Alice Liddell"), None, time::OffsetDateTime::now_utc()).unwrap();
    let (ok, out) = xmlsec1_verify(dir.path(), &r.xml, ASSERTION_SIG);
    assert!(ok, "{out}\n{}", r.xml);
    assert!(!r.xml.contains(RESPONSE_SIG) && r.xml.matches("<ds:Signature xmlns").count() == 1);
}

#[test]
fn xmlsec1_verifies_both_signatures_when_the_response_is_signed_too() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp(dir.path(), true);
    let sp = idp.by_name("app").unwrap();
    let r = idp.respond(sp, &principal("Alice Liddell"), None, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(r.xml.matches("<ds:Signature xmlns").count(), 2);
    for node in [RESPONSE_SIG, ASSERTION_SIG] {
        let (ok, out) = xmlsec1_verify(dir.path(), &r.xml, node);
        assert!(ok, "{node}: {out}");
    }
}

#[test]
fn awkward_values_stay_one_escaped_value_and_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp(dir.path(), true);
    let sp = idp.by_name("app").unwrap();
    let evil = "R&D <Team> \"Ünïcødé\" 日本\tx</saml:AttributeValue></saml:Attribute><saml:Attribute Name=\"role\"><saml:AttributeValue>admin";
    let r = idp.respond(sp, &principal(evil), None, time::OffsetDateTime::now_utc()).unwrap();
    for node in [RESPONSE_SIG, ASSERTION_SIG] {
        let (ok, out) = xmlsec1_verify(dir.path(), &r.xml, node);
        assert!(ok, "{node}: {out}");
    }
    assert_eq!(r.xml.matches("<saml:Attribute ").count(), 2, "no injected attribute: {}", r.xml);
    assert!(r.xml.contains("R&amp;D &lt;Team&gt; \"Ünïcødé\" 日本\tx&lt;/saml:AttributeValue&gt;"));
}

#[test]
fn xmlsec1_rejects_a_tampered_response() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp(dir.path(), false);
    let sp = idp.by_name("app").unwrap();
    let r = idp.respond(sp, &principal("Alice Liddell"), None, time::OffsetDateTime::now_utc()).unwrap();
    let tampered = r.xml.replace(">alice<", ">mallory<");
    assert_ne!(tampered, r.xml);
    let (ok, out) = xmlsec1_verify(dir.path(), &tampered, ASSERTION_SIG);
    assert!(!ok, "a changed NameID must not verify: {out}");
}

#[test]
fn xmlsec1_verifies_rsa_sha1_responses_for_legacy_sps() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp_with(dir.path(), true, Algorithm::RsaSha1);
    let sp = idp.by_name("app").unwrap();
    let r = idp.respond(sp, &principal("Alice Liddell"), None, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(r.xml.matches("Algorithm=\"http://www.w3.org/2000/09/xmldsig#rsa-sha1\"").count(), 2);
    assert_eq!(r.xml.matches("Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"").count(), 2);
    for node in [RESPONSE_SIG, ASSERTION_SIG] {
        let (ok, out) = xmlsec1_verify(dir.path(), &r.xml, node);
        assert!(ok, "{node}: {out}");
    }
    let tampered = r.xml.replace(">alice<", ">mallory<");
    let (ok, _) = xmlsec1_verify(dir.path(), &tampered, ASSERTION_SIG);
    assert!(!ok, "a changed NameID must not verify");
}
