//! The SAML IdP end to end: LDAP users from the real slapd sign in to Alibaba Cloud RAM presets (every field of the
//! spec's table checked on real responses), to an independent SP (pysaml2) in both flows, and bad input is refused
//! with a clear 4xx. Signatures are checked by xmlsec1 and by pysaml2.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use e2e::gateway::{Gateway, browser};
use e2e::slapd::Slapd;
use reqwest::StatusCode;

const ACCOUNT: &str = "1234567890123456";
const SP_ENTITY: &str = "http://127.0.0.1:9/sp";
const SP_ACS: &str = "http://127.0.0.1:9/acs";
const SP_SLO: &str = "http://127.0.0.1:9/slo";

fn saml_toml(keys: &Path) -> String {
    format!(
        r#"
[saml]
keys_dir = "{keys}"
[[saml.service_providers]]
name = "app"
entity_id = "{SP_ENTITY}"
acs_urls = ["{SP_ACS}"]
slo_url = "{SP_SLO}"
attributes = {{ mail = "{{email}}", groups = "{{groups}}" }}
[[saml.service_providers]]
name = "ram-user-cn"
preset = "aliyun-ram-user"
account_id = "{ACCOUNT}"
[[saml.service_providers]]
name = "ram-user-intl"
preset = "aliyun-ram-user"
site = "intl"
account_id = "{ACCOUNT}"
auxiliary_domain = "corp.example.com"
[[saml.service_providers]]
name = "ram-role-cn"
preset = "aliyun-ram-role"
account_id = "{ACCOUNT}"
provider_name = "fedgate"
session_duration = 3600
role_mapping = {{ ai-admins = "AdminRole", ai-researchers = "ResearchRole" }}
[[saml.service_providers]]
name = "ram-role-intl"
preset = "aliyun-ram-role"
site = "intl"
account_id = "{ACCOUNT}"
provider_name = "fedgate"
role_mapping = {{ ai-admins = "AdminRole", ai-researchers = "ResearchRole" }}
[[saml.service_providers]]
name = "admins-only"
entity_id = "http://127.0.0.1:9/admins"
acs_urls = ["http://127.0.0.1:9/admins/acs"]
allowed_groups = ["ai-admins"]
"#,
        keys = keys.display()
    )
}

struct Env {
    _slapd: Slapd,
    gw: Gateway,
    keys: tempfile::TempDir,
}

async fn env() -> Env {
    let slapd = Slapd::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[roles]\nadmin = [\"ai-admins\"]\nresearcher = [\"ai-researchers\"]\n{}{}",
        slapd.ldap_toml(""),
        saml_toml(keys.path())
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    Env { _slapd: slapd, gw, keys }
}

impl Env {
    fn cert(&self) -> PathBuf {
        self.keys.path().join("saml-signing.crt")
    }
}

/// The fields of the auto-submitting form: (action, SAMLResponse XML, RelayState).
pub(crate) fn posted(html: &str) -> (String, String, Option<String>) {
    let field = |name: &str| {
        let key = format!("name=\"{name}\" value=\"");
        html.find(&key).map(|i| {
            html[i + key.len()..].split('"').next().unwrap_or("").replace("&amp;", "&").replace("&quot;", "\"")
        })
    };
    let action = html.split("action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let xml =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(field("SAMLResponse").unwrap()).unwrap())
            .unwrap();
    (action, xml, field("RelayState"))
}

/// `attr` of the first `element` (prefixed name, e.g. `saml:Audience`) or its text when `attr` is empty.
pub(crate) fn get(xml: &str, element: &str, attr: &str) -> String {
    let start = [format!("<{element}>"), format!("<{element} ")]
        .iter()
        .filter_map(|p| xml.find(p.as_str()))
        .min()
        .unwrap_or_else(|| panic!("no {element} in the response"));
    let tag_end = start + xml[start..].find('>').unwrap();
    if attr.is_empty() {
        let close = xml[tag_end..].find(&format!("</{element}>")).unwrap();
        return xml[tag_end + 1..tag_end + close].to_string();
    }
    let tag = &xml[start..tag_end];
    let key = format!(" {attr}=\"");
    tag.find(&key).map(|i| tag[i + key.len()..].split('"').next().unwrap().to_string()).unwrap_or_default()
}

fn values(xml: &str, attribute: &str) -> Vec<String> {
    let Some(i) = xml.find(&format!("Name=\"{attribute}\"")) else { return Vec::new() };
    let block = &xml[i..xml[i..].find("</saml:Attribute>").map(|e| i + e).unwrap()];
    block
        .split("<saml:AttributeValue>")
        .skip(1)
        .map(|v| v.split("</saml:AttributeValue>").next().unwrap().to_string())
        .collect()
}

fn xmlsec1_verifies_assertion(xml: &str, cert: &Path) {
    xmlsec1_verifies(
        xml,
        cert,
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        Some("/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']"),
    );
}

/// `xmlsec1 --verify` with only our certificate, `ID` declared as the id attribute of `id_node`; the signature at
/// `node_xpath`, or the first one.
pub(crate) fn xmlsec1_verifies(xml: &str, cert: &Path, id_node: &str, node_xpath: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.xml");
    std::fs::write(&f, xml).unwrap();
    let mut cmd = Command::new("xmlsec1");
    cmd.args(["--verify", "--pubkey-cert-pem"]).arg(cert).args(["--id-attr:ID", id_node]);
    if let Some(x) = node_xpath {
        cmd.args(["--node-xpath", x]);
    }
    let out = cmd.arg(&f).output().expect("xmlsec1 not found: apt-get install xmlsec1");
    assert!(out.status.success(), "xmlsec1: {}", String::from_utf8_lossy(&out.stderr));
}

async fn idp_initiated(e: &Env, c: &reqwest::Client, sp: &str, user: &str) -> (String, String, Option<String>) {
    let r = c.get(e.gw.url(&format!("/saml/init/{sp}"))).send().await.unwrap();
    let mut html = String::new();
    if r.status() == StatusCode::SEE_OTHER {
        let rd = e2e::gateway::rd_of(&r).unwrap();
        let login = crate::login::login(c, &e.gw, user, &format!("{user}-password"), &rd).await;
        assert_eq!(login.status(), StatusCode::SEE_OTHER);
        let next = login.headers()["location"].to_str().unwrap().to_string();
        let r = c.get(e.gw.url(&next)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'sha256-") && csp.contains("form-action"), "{csp}");
        html = r.text().await.unwrap();
    } else {
        assert_eq!(r.status(), StatusCode::OK);
        html.push_str(&r.text().await.unwrap());
    }
    assert!(
        html.contains("<noscript>") && html.contains("<button type=\"submit\">Continue</button>"),
        "works without JS"
    );
    posted(&html)
}

fn check_window(xml: &str) {
    let parse = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    let issue = parse(&get(xml, "saml:Assertion", "IssueInstant"));
    let nb = parse(&get(xml, "saml:Conditions", "NotBefore"));
    let noa = parse(&get(xml, "saml:Conditions", "NotOnOrAfter"));
    assert_eq!((issue - nb).whole_seconds(), 60, "NotBefore = now − 60 s");
    assert_eq!((noa - issue).whole_seconds(), 300, "NotOnOrAfter = now + 300 s");
    assert_eq!(get(xml, "saml:SubjectConfirmationData", "NotOnOrAfter"), get(xml, "saml:Conditions", "NotOnOrAfter"));
    assert_eq!(get(xml, "saml:SubjectConfirmationData", "NotBefore"), "", "no NotBefore on SubjectConfirmationData");
    assert_eq!(get(xml, "saml:SubjectConfirmation", "Method"), "urn:oasis:names:tc:SAML:2.0:cm:bearer");
    assert!(get(xml, "saml:Assertion", "ID").starts_with('_'));
    assert_eq!(
        get(xml, "saml:AuthnContextClassRef", ""),
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    );
    assert_eq!(get(xml, "saml:AuthnStatement", "SessionIndex"), get(xml, "saml:Assertion", "ID"));
    // The assertion's signature sits right after its Issuer; the Response is not signed by default.
    let a = xml.find("<saml:Assertion").unwrap();
    let after_issuer = &xml[a..][xml[a..].find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len()..];
    assert!(after_issuer.starts_with("<ds:Signature"), "signature placement");
    assert_eq!(xml.matches("<ds:Signature xmlns").count(), 1);
    assert!(xml.contains("Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\""));
    assert!(xml.contains("Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\""));
}

#[tokio::test]
async fn aliyun_ram_user_sso_cn_and_intl_fields() {
    let e = env().await;
    let c = browser();
    let issuer = format!("{}/saml/metadata", e.gw.base);
    for (sp, host, nameid) in [
        ("ram-user-cn", "signin.aliyun.com", format!("alice@{ACCOUNT}.onaliyun.com")),
        ("ram-user-intl", "signin-intl.aliyun.com", "alice@corp.example.com".to_string()),
    ] {
        let (action, xml, relay) = idp_initiated(&e, &c, sp, "alice").await;
        let acs = format!("https://{host}/saml/SSO");
        assert_eq!(action, acs, "{sp}");
        assert_eq!(relay, None);
        assert_eq!(get(&xml, "samlp:Response", "Destination"), acs);
        assert_eq!(get(&xml, "samlp:Response", "InResponseTo"), "", "IdP-initiated: no InResponseTo");
        assert_eq!(get(&xml, "saml:SubjectConfirmationData", "Recipient"), acs);
        assert_eq!(get(&xml, "saml:Audience", ""), format!("https://{host}/{ACCOUNT}/saml/SSO"));
        assert_eq!(get(&xml, "saml:Issuer", ""), issuer);
        assert_eq!(get(&xml, "saml:NameID", ""), nameid, "{sp}");
        assert_eq!(get(&xml, "saml:NameID", "Format"), "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress");
        assert_eq!(get(&xml, "samlp:StatusCode", "Value"), "urn:oasis:names:tc:SAML:2.0:status:Success");
        check_window(&xml);
        xmlsec1_verifies_assertion(&xml, &e.cert());
    }
}

#[tokio::test]
async fn aliyun_ram_role_sso_cn_and_intl_fields() {
    let e = env().await;
    let c = browser();
    for (sp, audience, acs) in [
        ("ram-role-cn", "urn:alibaba:cloudcomputing", "https://signin.aliyun.com/saml-role/sso"),
        ("ram-role-intl", "urn:alibaba:cloudcomputing:international", "https://signin.alibabacloud.com/saml-role/sso"),
    ] {
        let (action, xml, _) = idp_initiated(&e, &c, sp, "alice").await;
        assert_eq!(action, acs);
        assert_eq!(get(&xml, "samlp:Response", "Destination"), acs);
        assert_eq!(get(&xml, "saml:SubjectConfirmationData", "Recipient"), acs);
        assert_eq!(get(&xml, "saml:Audience", ""), audience);
        assert_eq!(get(&xml, "saml:NameID", "Format"), "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent");
        assert_eq!(get(&xml, "saml:NameID", "").len(), 36, "the stable entryUUID");
        assert_eq!(
            values(&xml, "https://www.aliyun.com/SAML-Role/Attributes/Role"),
            vec![format!("acs:ram::{ACCOUNT}:role/AdminRole,acs:ram::{ACCOUNT}:saml-provider/fedgate")]
        );
        assert_eq!(values(&xml, "https://www.aliyun.com/SAML-Role/Attributes/RoleSessionName"), vec!["alice"]);
        let duration = values(&xml, "https://www.aliyun.com/SAML-Role/Attributes/SessionDuration");
        assert_eq!(duration, if sp == "ram-role-cn" { vec!["3600".to_string()] } else { vec![] });
        check_window(&xml);
        xmlsec1_verifies_assertion(&xml, &e.cert());
    }
    // A user whose groups map to no RAM role gets a clear page, not a response RAM would reject.
    let dave = browser();
    let r = dave.get(e.gw.url("/saml/init/ram-role-cn")).send().await.unwrap();
    let rd = r.headers()["location"].to_str().unwrap().split("rd=").nth(1).unwrap().to_string();
    let rd = percent_decode(&rd);
    let login = crate::login::login(&dave, &e.gw, "dave", "dave-password", &rd).await;
    let r = dave.get(e.gw.url(login.headers()["location"].to_str().unwrap())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(body.contains("ram-role-cn") && body.contains("role_mapping"), "{body}");
}

pub(crate) fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().unwrap().1.into_owned()
}

pub(crate) fn pysaml2(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(py.exists(), "{} missing: run scripts/setup (python venv with pysaml2)", py.display());
    let mut child = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("saml_sp.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "pysaml2 refused: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_accepts_sp_initiated_and_idp_initiated_responses() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("idp.xml");
    let metadata = e2e::gateway::http().get(e.gw.url("/saml/metadata")).send().await.unwrap();
    assert_eq!(metadata.headers()["content-type"], "application/samlmetadata+xml");
    std::fs::write(&md, metadata.text().await.unwrap()).unwrap();
    let md_s = md.to_str().unwrap().to_string();

    // SP-initiated: pysaml2 makes the AuthnRequest (HTTP-Redirect), we answer it after the login.
    let req = {
        let md_s = md_s.clone();
        tokio::task::spawn_blocking(move || pysaml2(&["request", &md_s, SP_ENTITY, SP_ACS], None)).await.unwrap()
    };
    let url = req["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/saml/sso?SAMLRequest=", e.gw.base)), "{url}");
    let c = browser();
    let r = c.get(&url).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let rd = percent_decode(loc.split("rd=").nth(1).unwrap());
    let login = crate::login::login(&c, &e.gw, "bob", "bob-password", &rd).await;
    let html =
        c.get(e.gw.url(login.headers()["location"].to_str().unwrap())).send().await.unwrap().text().await.unwrap();
    let (action, xml, relay) = posted(&html);
    assert_eq!(action, SP_ACS);
    assert_eq!(relay.as_deref(), Some("sp-relay-state"), "RelayState echoed");
    assert_eq!(get(&xml, "samlp:Response", "InResponseTo"), req["id"].as_str().unwrap());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let req_id = req["id"].as_str().unwrap().to_string();
    let seen = {
        let (md_s, b64) = (md_s.clone(), b64.clone());
        tokio::task::spawn_blocking(move || pysaml2(&["consume", &md_s, SP_ENTITY, SP_ACS, &req_id], Some(&b64)))
            .await
            .unwrap()
    };
    assert_eq!(seen["name_id"], "bob");
    assert_eq!(seen["in_response_to"], req["id"]);
    assert_eq!(seen["attributes"]["mail"], serde_json::json!(["bob@example.org"]));
    assert_eq!(seen["attributes"]["groups"], serde_json::json!(["ai-researchers", "staff"]));

    // IdP-initiated (the session from above is reused).
    let (_, xml, _) = idp_initiated(&e, &c, "app", "bob").await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let seen =
        tokio::task::spawn_blocking(move || pysaml2(&["consume", &md_s, SP_ENTITY, SP_ACS], Some(&b64))).await.unwrap();
    assert_eq!(seen["name_id"], "bob");
    assert_eq!(seen["issuer"], format!("{}/saml/metadata", e.gw.base));
}

pub(crate) fn deflate_b64(xml: &str) -> String {
    let mut enc = flate2_encoder();
    enc.write_all(xml.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap())
}

fn flate2_encoder() -> flate2::write::DeflateEncoder<Vec<u8>> {
    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default())
}

fn authn_request(issuer: &str, acs: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a2eg9c2gjji188814h7j2d7358fh3g9" Version="2.0" IssueInstant="2020-09-28T13:09:57.896Z" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">{issuer}</saml2:Issuer></samlp:AuthnRequest>"#
    )
}

#[tokio::test]
async fn aliyun_sp_initiated_request_gets_in_response_to_and_relay_state() {
    let e = env().await;
    let c = browser();
    crate::login::login(&c, &e.gw, "alice", "alice-password", "").await;
    let req = deflate_b64(&authn_request(
        &format!("https://signin.aliyun.com/{ACCOUNT}/saml/SSO"),
        "https://signin.aliyun.com/saml/SSO",
    ));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &req)
        .append_pair("RelayState", "https://homenew.console.aliyun.com/")
        .finish();
    let r = c.get(e.gw.url(&format!("/saml/sso?{q}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (action, xml, relay) = posted(&r.text().await.unwrap());
    assert_eq!(action, "https://signin.aliyun.com/saml/SSO");
    assert_eq!(relay.as_deref(), Some("https://homenew.console.aliyun.com/"));
    assert_eq!(get(&xml, "samlp:Response", "InResponseTo"), "a2eg9c2gjji188814h7j2d7358fh3g9");
    assert_eq!(get(&xml, "saml:SubjectConfirmationData", "InResponseTo"), "a2eg9c2gjji188814h7j2d7358fh3g9");
    xmlsec1_verifies_assertion(&xml, &e.cert());
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_page() {
    let e = env().await;
    let c = browser();
    crate::login::login(&c, &e.gw, "alice", "alice-password", "").await;
    let aliyun = format!("https://signin.aliyun.com/{ACCOUNT}/saml/SSO");
    let get_sso = |value: String| {
        let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("SAMLRequest", &value).finish();
        c.get(e.gw.url(&format!("/saml/sso?{q}"))).send()
    };
    let bomb = deflate_b64(&format!("<samlp:AuthnRequest ID=\"x\">{}</samlp:AuthnRequest>", " ".repeat(5_000_000)));
    let doctype = format!(
        "<!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}",
        authn_request(&aliyun, "https://signin.aliyun.com/saml/SSO")
    );
    for (value, status, says) in [
        (deflate_b64(&authn_request(&aliyun, "https://evil.example/acs")), 400, "is not registered"),
        (
            deflate_b64(&authn_request("https://unknown.example/sp", "https://x/acs")),
            400,
            "no service provider with entity ID",
        ),
        ("%%%not-base64".to_string(), 400, "not valid base64"),
        (base64::engine::general_purpose::STANDARD.encode("not deflate at all"), 400, "does not inflate"),
        (bomb, 400, "does not inflate"),
        (deflate_b64(&doctype), 400, "DOCTYPE"),
    ] {
        let r = get_sso(value).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "expected {says:?} in {body}");
    }
    // Oversized, by the POST binding (a URL that long never gets here).
    let r = c.post(e.gw.url("/saml/sso")).form(&[("SAMLRequest", "A".repeat(70_000))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("too large"));
    let r = c.get(e.gw.url("/saml/init/no-such-sp")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body = r.text().await.unwrap();
    assert!(body.contains("no service provider named &quot;no-such-sp&quot;"), "{body}");
    assert!(!body.contains("ram-user-cn"), "the configured SPs are not listed on the page");
    // Outside allowed_groups.
    let bob = browser();
    crate::login::login(&bob, &e.gw, "bob", "bob-password", "").await;
    let r = bob.get(e.gw.url("/saml/init/admins-only")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// An SP that signs its requests: its RSA key, PEM files of that key and its certificate, and a gateway (real
/// slapd) where it is configured as `name` with `want_authn_requests_signed`, with alice signed in on `browser`.
struct SigningSp {
    key: aws_lc_rs::rsa::KeyPair,
    cert_path: PathBuf,
    key_path: PathBuf,
    gw: Gateway,
    browser: reqwest::Client,
    _files: (tempfile::TempDir, tempfile::TempDir, Slapd),
}

async fn signing_sp(name: &str, entity: &str, acs: &str) -> SigningSp {
    signing_sp_with(name, entity, acs, true).await
}

/// [`signing_sp`], with `want_authn_requests_signed` as given (its certificate is configured either way).
async fn signing_sp_with(name: &str, entity: &str, acs: &str, want_signed: bool) -> SigningSp {
    use aws_lc_rs::encoding::AsDer as _;
    let dir = tempfile::tempdir().unwrap();
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(key.as_der().unwrap().as_ref().to_vec());
    let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&rc_key).unwrap();
    let (cert_path, key_path) = (dir.path().join("sp.crt"), dir.path().join("sp.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, rc_key.serialize_pem()).unwrap();
    let slapd = Slapd::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}{}\n[[saml.service_providers]]\nname = \"{name}\"\nentity_id = \"{entity}\"\nacs_urls = [\"{acs}\"]\nslo_url = \"{acs}/slo\"\ncertificate_file = \"{}\"\nwant_authn_requests_signed = {want_signed}\n",
        slapd.ldap_toml(""),
        saml_toml(keys.path()),
        cert_path.display()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let browser = browser();
    crate::login::login(&browser, &gw, "alice", "alice-password", "").await;
    SigningSp { key, cert_path, key_path, gw, browser, _files: (dir, keys, slapd) }
}

/// An SP that signs its HTTP-Redirect AuthnRequests: a good signature is accepted, a tampered or missing one gets a
/// clear 400.
#[tokio::test]
async fn redirect_binding_signatures_are_checked() {
    let sp = signing_sp("signed", "http://127.0.0.1:9/signed", "http://127.0.0.1:9/signed/acs").await;
    let (key, gw, c) = (&sp.key, &sp.gw, &sp.browser);

    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let req = deflate_b64(&authn_request("http://127.0.0.1:9/signed", "http://127.0.0.1:9/signed/acs"));
    let signed_part = format!(
        "SAMLRequest={}&RelayState={}&SigAlg={}",
        enc(&req),
        enc("state-1"),
        enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signed_part.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let signature = enc(&base64::engine::general_purpose::STANDARD.encode(&sig));

    let good = c.get(e2e_url(gw, &format!("{signed_part}&Signature={signature}"))).send().await.unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    let (action, xml, relay) = posted(&good.text().await.unwrap());
    assert_eq!(action, "http://127.0.0.1:9/signed/acs");
    assert_eq!(relay.as_deref(), Some("state-1"));
    assert!(xml.contains("InResponseTo=\"a2eg9c2gjji188814h7j2d7358fh3g9\""));

    let tampered = signed_part.replace("state-1", "state-2");
    let r = c.get(e2e_url(gw, &format!("{tampered}&Signature={signature}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("signature does not verify"));

    let r = c.get(e2e_url(gw, &signed_part)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not signed"));

    // The attack: a RelayState the signature does not cover, smuggled in beside the genuine signed query under a
    // name only a decoding reader sees (`Relay%53tate`), or as a second copy. The SP would redirect to it after
    // the login. Refused with a 400 naming the problem, never answered with the smuggled value.
    for smuggled in [
        format!("Relay%53tate={}&{signed_part}&Signature={signature}", enc("https://evil.example/")),
        format!("{signed_part}&Signature={signature}&Relay%53tate={}", enc("https://evil.example/")),
        format!("RelayState={}&{signed_part}&Signature={signature}", enc("https://evil.example/")),
        format!("{signed_part}&Signature={signature}&SAMLRequest={}", enc(&req)),
    ] {
        let r = c.get(e2e_url(gw, &smuggled)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{smuggled}");
        let body = r.text().await.unwrap();
        assert!(body.contains("ambiguous") && !body.contains("evil.example"), "{smuggled}: {body}");
    }
}

fn e2e_url(gw: &Gateway, query: &str) -> String {
    gw.url(&format!("/saml/sso?{query}"))
}

/// An SP configured only by its metadata file (the way Alibaba Cloud RAM hands it out).
#[tokio::test]
async fn an_sp_can_be_configured_from_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("sp.xml");
    std::fs::write(
        &md,
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://signin.aliyun.com/{ACCOUNT}/saml/SSO"><md:SPSSODescriptor WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService index="0" isDefault="true" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://signin.aliyun.com/saml/SSO"/></md:SPSSODescriptor></md:EntityDescriptor>"#
        ),
    )
    .unwrap();
    let slapd = Slapd::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"from-md\"\nmetadata_file = \"{}\"\nnameid_format = \"email\"\nnameid_template = \"{{username}}@example.org\"\n",
        slapd.ldap_toml(""),
        keys.path().display(),
        md.display()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "bob", "bob-password", "").await;
    let r = c.get(gw.url("/saml/init/from-md")).send().await.unwrap();
    let (action, xml, _) = posted(&r.text().await.unwrap());
    assert_eq!(action, "https://signin.aliyun.com/saml/SSO");
    assert_eq!(get(&xml, "saml:Audience", ""), format!("https://signin.aliyun.com/{ACCOUNT}/saml/SSO"));
    assert_eq!(get(&xml, "saml:NameID", ""), "bob@example.org");
}

/// An SP that signs its HTTP-POST AuthnRequests (pysaml2, enveloped RSA-SHA256): the genuine request is answered;
/// a tampered one, an unsigned one and a signature-wrapping attack (the SP's signature moved next to a forged root
/// it does not cover) get a clear 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_binding_signatures_are_checked_on_what_was_signed() {
    const POST_SP: &str = "http://127.0.0.1:9/posted";
    const POST_ACS: &str = "http://127.0.0.1:9/posted/acs";
    let sp = signing_sp("posted", POST_SP, POST_ACS).await;
    let (cert_path, key_path, gw) = (&sp.cert_path, &sp.key_path, &sp.gw);
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("idp.xml");
    let metadata = e2e::gateway::http().get(gw.url("/saml/metadata")).send().await.unwrap().text().await.unwrap();
    std::fs::write(&md, metadata).unwrap();
    let args: Vec<String> = ["post-request", md.to_str().unwrap(), POST_SP, POST_ACS]
        .iter()
        .map(|s| s.to_string())
        .chain([key_path.display().to_string(), cert_path.display().to_string()])
        .collect();
    let req = tokio::task::spawn_blocking(move || pysaml2(&args.iter().map(String::as_str).collect::<Vec<_>>(), None))
        .await
        .unwrap();
    let (id, xml) = (req["id"].as_str().unwrap().to_string(), req["xml"].as_str().unwrap().to_string());
    assert!(xml.contains("Signature") && xml.contains(&format!("URI=\"#{id}\"")), "pysaml2 signed it: {xml}");
    let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x);

    let c = sp.browser.clone();
    let send = |x: String| {
        let c = c.clone();
        let url = gw.url("/saml/sso");
        async move { c.post(url).form(&[("SAMLRequest", b64(&x)), ("RelayState", "rs-9".into())]).send().await.unwrap() }
    };

    let good = send(xml.clone()).await;
    assert_eq!(good.status(), StatusCode::OK, "{}", good.text().await.unwrap());
    let (action, response, relay) = posted(&good.text().await.unwrap());
    assert_eq!(action, POST_ACS);
    assert_eq!(relay.as_deref(), Some("rs-9"));
    assert!(response.contains(&format!("InResponseTo=\"{id}\"")), "{response}");

    // One character of the signed request changed.
    let at = xml.find("IssueInstant=\"").unwrap() + "IssueInstant=\"".len();
    let mut tampered = xml.clone();
    let digit = if &xml[at..at + 1] == "2" { "1" } else { "2" };
    tampered.replace_range(at..at + 1, digit);
    let r = send(tampered).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("does not verify"));

    // Signature wrapping: a forged root (new ID) carries the SP's Signature, which still references — and still
    // verifies over — the original request placed beside it.
    // Whatever prefix pysaml2 gave it: the Signature element is the parent of the first SignedInfo.
    let signed_info = xml[..xml.find("SignedInfo").unwrap()].rfind('<').unwrap();
    let sig_start = xml[..signed_info].rfind('<').unwrap();
    let tag = xml[sig_start + 1..].split([' ', '>']).next().unwrap().to_string();
    let sig_end = xml.find(&format!("</{tag}>")).unwrap() + tag.len() + 3;
    let signature = &xml[sig_start..sig_end];
    let original = xml[..sig_start].to_string() + &xml[sig_end..];
    let original = original.trim_start_matches(|c| c != '<').to_string();
    let original = match original.strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").unwrap() + 2..].trim_start().to_string(),
        None => original,
    };
    // The forged root copies the original's start tag (so its namespace declarations too) with a new ID, and its
    // Issuer.
    let tag_of = |at: usize| original[at + 1..].split([' ', '>']).next().unwrap().to_string();
    let root_tag = tag_of(0);
    let root_open = &original[..=original.find('>').unwrap()];
    let issuer_start = original[..original.find("Issuer").unwrap()].rfind('<').unwrap();
    let issuer_tag = tag_of(issuer_start);
    let issuer_end = original.find(&format!("</{issuer_tag}>")).unwrap() + issuer_tag.len() + 3;
    let forged = format!(
        "{}{}{signature}{original}</{root_tag}>",
        root_open.replace(&format!("ID=\"{id}\""), "ID=\"forged-1\""),
        &original[issuer_start..issuer_end],
    );
    let r = send(forged).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.unwrap();
    assert!(body.contains("not the AuthnRequest itself"), "{body}");

    // No signature at all, for an SP that requires one.
    let unsigned = xml[..sig_start].to_string() + &xml[sig_end..];
    let r = send(unsigned).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not signed"));
}

/// SP-initiated Single Logout with pysaml2 as the SP: a LogoutRequest for someone else ends nothing (Responder);
/// one for the signed-in user ends the session and gets a signed Success LogoutResponse posted to the SP's
/// SingleLogoutService, which pysaml2 and xmlsec1 accept. An SP without `slo_url` gets a clear 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_initiated_single_logout() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("idp.xml");
    let metadata = e2e::gateway::http().get(e.gw.url("/saml/metadata")).send().await.unwrap().text().await.unwrap();
    assert!(metadata.contains("SingleLogoutService"), "{metadata}");
    std::fs::write(&md, metadata).unwrap();
    let md_s = md.to_str().unwrap().to_string();
    let c = browser();
    idp_initiated(&e, &c, "app", "bob").await;
    let run = |args: Vec<String>, stdin: Option<String>| {
        tokio::task::spawn_blocking(move || {
            pysaml2(&args.iter().map(String::as_str).collect::<Vec<_>>(), stdin.as_deref())
        })
    };
    let args = |mode: &str, extra: &[&str]| {
        [mode, md_s.as_str(), SP_ENTITY, SP_ACS].iter().chain(extra).map(|s| s.to_string()).collect::<Vec<_>>()
    };

    // Someone else's NameID: bob stays signed in, the SP hears Responder.
    let req = run(args("logout-request", &["alice"]), None).await.unwrap();
    let r = c.get(req["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (action, xml, relay) = posted(&r.text().await.unwrap());
    assert_eq!(action, SP_SLO);
    assert_eq!(relay.as_deref(), Some("slo-relay"));
    assert!(xml.contains("status:Responder"), "{xml}");
    assert_eq!(c.get(e.gw.url("/")).send().await.unwrap().status(), StatusCode::OK, "still signed in");

    // Bob's own NameID: the session ends, the SP gets a signed Success in response to its request.
    let req = run(args("logout-request", &["bob"]), None).await.unwrap();
    let url = req["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/saml/slo?SAMLRequest=", e.gw.base)), "{url}");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get_all("set-cookie").iter().any(|v| v.to_str().unwrap().contains("Max-Age=0")));
    let (action, xml, _) = posted(&r.text().await.unwrap());
    assert_eq!(action, SP_SLO);
    xmlsec1_verifies(&xml, &e.cert(), "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse", None);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let seen = run(args("logout-consume", &[]), Some(b64)).await.unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["status"], "urn:oasis:names:tc:SAML:2.0:status:Success");
    assert_eq!(seen["in_response_to"], req["id"]);
    assert_eq!(seen["signed"], true);
    let r = c.get(e.gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the gateway session is gone");

    // An SP that registered no SingleLogoutService, for a browser that is not signed in there: nothing to
    // answer it with, and nothing ended.
    let other = browser();
    crate::login::login(&other, &e.gw, "alice", "alice-password", "").await;
    let logout = &format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l1" Version="2.0" IssueInstant="{}"><saml:Issuer>http://127.0.0.1:9/admins</saml:Issuer><saml:NameID>bob</saml:NameID></samlp:LogoutRequest>"#,
        saml_now()
    );
    let enc = url::form_urlencoded::byte_serialize(deflate_b64(logout).as_bytes()).collect::<String>();
    let r = other.get(e.gw.url(&format!("/saml/slo?SAMLRequest={enc}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("nothing was signed out"));
    assert_eq!(other.get(e.gw.url("/")).send().await.unwrap().status(), StatusCode::OK);
}

/// A second independent SP library, node-saml (the engine of passport-saml), accepts our IdP-initiated response:
/// signature against the IdP certificate only, audience, recipient, time window; and refuses a tampered copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_saml_accepts_our_responses() {
    let e = env().await;
    let c = browser();
    let (action, xml, _) = idp_initiated(&e, &c, "app", "alice").await;
    assert_eq!(action, SP_ACS);
    let cert = e.cert().display().to_string();
    let idp_entity = e.gw.url("/saml/metadata");
    let check = |xml: String| {
        let (cert, idp_entity) = (cert.clone(), idp_entity.clone());
        tokio::task::spawn_blocking(move || {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
            e2e::node::run(
                "saml-sp.mjs",
                &[
                    ("SAML_RESPONSE", &b64),
                    ("SP_ENTITY", SP_ENTITY),
                    ("SP_ACS", SP_ACS),
                    ("IDP_CERT", &cert),
                    ("IDP_ENTITY", &idp_entity),
                ],
                30,
            )
        })
    };
    let out = check(xml.clone()).await.unwrap().unwrap();
    let profile: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(profile["ok"], true);
    assert_eq!(profile["nameID"], "alice");
    assert_eq!(profile["issuer"], idp_entity);
    assert_eq!(profile["mail"], "alice@example.org");
    let tampered = xml.replace(">alice<", ">mallory<");
    let err = check(tampered).await.unwrap().unwrap_err().to_string();
    assert!(err.contains("node-saml refused"), "{err}");
}

/// `?SAMLRequest=…&RelayState=…&SigAlg=…&Signature=…` for `xml`, signed (HTTP-Redirect binding, RSA-SHA256) with
/// `key` when given.
pub fn redirect_query(xml: &str, key: Option<&aws_lc_rs::rsa::KeyPair>) -> String {
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let Some(key) = key else { return format!("SAMLRequest={}&RelayState=r", enc(&deflate_b64(xml))) };
    let signed_part = format!(
        "SAMLRequest={}&RelayState=r&SigAlg={}",
        enc(&deflate_b64(xml)),
        enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signed_part.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signed_part}&Signature={}", enc(&base64::engine::general_purpose::STANDARD.encode(&sig)))
}

fn logout_request(issuer: &str, name_id: Option<&str>) -> String {
    logout_request_for(issuer, name_id, None)
}

/// The current time as a SAML `dateTime` (IssueInstant), for messages the tests write.
pub fn saml_now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// An ID no other message of this test run has (fedgate refuses a message ID it has seen).
pub fn unique_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{n}", time::OffsetDateTime::now_utc().unix_timestamp_nanos())
}

pub fn logout_request_for(issuer: &str, name_id: Option<&str>, session_index: Option<&str>) -> String {
    let name_id = name_id.map(|n| format!("<saml:NameID>{n}</saml:NameID>")).unwrap_or_default();
    let index = session_index.map(|i| format!("<samlp:SessionIndex>{i}</samlp:SessionIndex>")).unwrap_or_default();
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_csrf{}" Version="2.0" IssueInstant="{}"><saml:Issuer>{issuer}</saml:Issuer>{name_id}{index}</samlp:LogoutRequest>"#,
        unique_id(),
        saml_now()
    )
}

/// Logout CSRF: any page can make the browser GET `/saml/slo` with a LogoutRequest it made up. An unsigned one from
/// an SP that has a certificate is refused; one that names nobody, someone else, or an SP this session never signed
/// in to ends nothing. Only the SP's signed request naming the signed-in user ends the session.
#[tokio::test]
async fn forged_logout_requests_end_no_session() {
    const ENTITY: &str = "http://127.0.0.1:9/signed";
    // The SP's certificate is configured, but it does not ask for signed AuthnRequests: LogoutRequests must still
    // be signed (anyone can make a browser send one).
    let sp = signing_sp_with("signed", ENTITY, "http://127.0.0.1:9/signed/acs", false).await;
    let (gw, c) = (&sp.gw, &sp.browser);
    let slo = |query: String| c.get(gw.url(&format!("/saml/slo?{query}")));
    let signed_in = || async { c.get(gw.url("/")).send().await.unwrap().status() == StatusCode::OK };
    // alice (signed in by the fixture) signs in to the SP, as a user would before the SP asks to log her out.
    let r = c.get(gw.url("/saml/init/signed")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let session_index = get(&posted(&r.text().await.unwrap()).1, "saml:AuthnStatement", "SessionIndex");
    assert!(!session_index.is_empty());

    // Unsigned, naming nobody: refused before anything else (this SP has a certificate).
    let r = slo(redirect_query(&logout_request(ENTITY, None), None)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not signed"));
    // Unsigned, naming alice: refused as well.
    let r = slo(redirect_query(&logout_request(ENTITY, Some("alice")), None)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The same by HTTP-POST (an auto-submitting form on any site): no enveloped signature, refused.
    let xml = logout_request(ENTITY, Some("alice"));
    let r = c
        .post(gw.url("/saml/slo"))
        .form(&[("SAMLRequest", base64::engine::general_purpose::STANDARD.encode(&xml))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not signed"));
    assert!(signed_in().await, "unsigned LogoutRequests end nothing");

    // From the SP without a certificate ("app"), which alice never signed in to: unsigned is allowed there, but a
    // request naming nobody, or even naming alice, ends nothing and the SP hears Responder.
    for name_id in [None, Some("alice")] {
        let r = slo(redirect_query(&logout_request(SP_ENTITY, name_id), None)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (_, xml, _) = posted(&r.text().await.unwrap());
        assert!(xml.contains("status:Responder"), "{name_id:?}: {xml}");
        assert!(signed_in().await, "{name_id:?}");
    }

    // Signed by the SP but naming nobody, or someone else: nothing ended.
    for name_id in [None, Some("bob")] {
        let r = slo(redirect_query(&logout_request(ENTITY, name_id), Some(&sp.key))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(posted(&r.text().await.unwrap()).1.contains("status:Responder"));
        assert!(signed_in().await, "{name_id:?}");
    }

    // Signed, naming alice, but a SessionIndex this session was never given (another of her sessions): nothing.
    let other = logout_request_for(ENTITY, Some("alice"), Some("_not-this-session"));
    let r = slo(redirect_query(&other, Some(&sp.key))).send().await.unwrap();
    assert!(posted(&r.text().await.unwrap()).1.contains("status:Responder"));
    assert!(signed_in().await, "another SessionIndex");

    // The SP's own signed request for alice and her SessionIndex: the session ends.
    let mine = logout_request_for(ENTITY, Some("alice"), Some(&session_index));
    let r = slo(redirect_query(&mine, Some(&sp.key))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (action, xml, _) = posted(&r.text().await.unwrap());
    assert_eq!(action, "http://127.0.0.1:9/signed/acs/slo");
    assert!(xml.contains("status:Success"), "{xml}");
    assert!(!signed_in().await);
}

fn authn_request_with_policy(issuer: &str, acs: &str, format: &str) -> String {
    authn_request(issuer, acs).replace(
        "</saml2:Issuer>",
        &format!(r#"</saml2:Issuer><samlp:NameIDPolicy Format="{format}" AllowCreate="true"/>"#),
    )
}

const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const SP2_ENTITY: &str = "http://127.0.0.1:9/sp2";
const SP2_ACS: &str = "http://127.0.0.1:9/sp2/acs";

/// The Response XML an SP-initiated HTTP-Redirect AuthnRequest from `issuer` asking for `format` gets, for the
/// signed-in browser `c`.
async fn response_for_policy(gw: &Gateway, c: &reqwest::Client, issuer: &str, acs: &str, format: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &deflate_b64(&authn_request_with_policy(issuer, acs, format)))
        .finish();
    let r = c.get(gw.url(&format!("/saml/sso?{q}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (action, xml, _) = posted(&r.text().await.unwrap());
    assert_eq!(action, acs);
    xml
}

/// `NameIDPolicy/@Format` is honoured: transient is a fresh opaque value per session (the same within one),
/// persistent a pairwise opaque value (the same for one user at one SP across a gateway restart, different at
/// another SP), emailAddress the user's mail; a format fedgate cannot issue gets a signed `InvalidNameIDPolicy`
/// status and no assertion; a RAM preset keeps the format RAM documents whatever is asked.
#[tokio::test]
async fn nameid_policy_is_honoured_or_refused_with_invalid_nameid_policy() {
    let slapd = Slapd::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}{}\n[[saml.service_providers]]\nname = \"app2\"\nentity_id = \"{SP2_ENTITY}\"\nacs_urls = [\"{SP2_ACS}\"]\n",
        slapd.ldap_toml(""),
        saml_toml(keys.path())
    );
    let cert = keys.path().join("saml-signing.crt");
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-password", "").await;

    // Transient: opaque, the same within this session.
    let xml = response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, TRANSIENT).await;
    xmlsec1_verifies_assertion(&xml, &cert);
    assert_eq!(get(&xml, "saml:NameID", "Format"), TRANSIENT);
    let transient = get(&xml, "saml:NameID", "");
    assert!(transient.len() >= 32 && !transient.contains("alice"), "{transient}");
    let again = response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, TRANSIENT).await;
    assert_eq!(get(&again, "saml:NameID", ""), transient, "one session, one transient NameID per SP");

    // Persistent: pairwise, opaque.
    let xml = response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, PERSISTENT).await;
    xmlsec1_verifies_assertion(&xml, &cert);
    assert_eq!(get(&xml, "saml:NameID", "Format"), PERSISTENT);
    let persistent = get(&xml, "saml:NameID", "");
    let xml2 = response_for_policy(&gw, &c, SP2_ENTITY, SP2_ACS, PERSISTENT).await;
    let persistent2 = get(&xml2, "saml:NameID", "");
    assert!(!persistent.contains("alice") && persistent.len() >= 32, "{persistent}");
    assert_ne!(persistent, persistent2, "pairwise: another SP gets another value");

    // emailAddress: the user's mail; unspecified: the SP's configured NameID.
    let xml = response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, EMAIL).await;
    assert_eq!(
        (get(&xml, "saml:NameID", "Format"), get(&xml, "saml:NameID", "")),
        (EMAIL.into(), "alice@example.org".into())
    );
    let xml =
        response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified").await;
    assert_eq!(get(&xml, "saml:NameID", ""), "alice");

    // A format fedgate cannot issue: a signed Requester/InvalidNameIDPolicy response, no assertion.
    let xml =
        response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
            .await;
    assert!(!xml.contains("Assertion"), "{xml}");
    assert!(xml.contains(r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy">"#), "{xml}");
    assert_eq!(get(&xml, "samlp:Response", "InResponseTo"), "a2eg9c2gjji188814h7j2d7358fh3g9");
    xmlsec1_verifies(&xml, &cert, "urn:oasis:names:tc:SAML:2.0:protocol:Response", None);

    // The RAM preset forces the format RAM documents.
    let ram = format!("https://signin.aliyun.com/{ACCOUNT}/saml/SSO");
    let xml = response_for_policy(&gw, &c, &ram, "https://signin.aliyun.com/saml/SSO", TRANSIENT).await;
    assert_eq!(get(&xml, "saml:NameID", "Format"), EMAIL);
    assert_eq!(get(&xml, "saml:NameID", ""), format!("alice@{ACCOUNT}.onaliyun.com"));

    // A restart (same keys directory): a new session gets a new transient NameID, the same persistent one.
    gw.stop().await.unwrap();
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-password", "").await;
    let xml = response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, PERSISTENT).await;
    assert_eq!(get(&xml, "saml:NameID", ""), persistent, "stable across a restart");
    let xml = response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, TRANSIENT).await;
    assert_ne!(get(&xml, "saml:NameID", ""), transient, "a new session, a new transient NameID");
    // Bob's persistent NameID at the same SP is his own.
    let b = browser();
    crate::login::login(&b, &gw, "bob", "bob-password", "").await;
    let xml = response_for_policy(&gw, &b, SP_ENTITY, SP_ACS, PERSISTENT).await;
    assert_ne!(get(&xml, "saml:NameID", ""), persistent);

    // The pairwise key is a secret of its own in keys_dir (mode 0600), not derived from the signing key: a new
    // signing key (rotation) keeps every persistent NameID.
    use std::os::unix::fs::PermissionsExt as _;
    let secret = keys.path().join("saml-persistent-nameid.secret");
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    gw.stop().await.unwrap();
    std::fs::remove_file(keys.path().join("saml-signing.key")).unwrap();
    std::fs::remove_file(&cert).unwrap();
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-password", "").await;
    let xml = response_for_policy(&gw, &c, SP_ENTITY, SP_ACS, PERSISTENT).await;
    xmlsec1_verifies_assertion(&xml, &cert);
    assert_eq!(get(&xml, "saml:NameID", ""), persistent, "stable across a signing key rotation");
}

/// Verifies an HTTP-Redirect binding signature on `url`'s query with the IdP certificate, by openssl.
pub(crate) fn openssl_verifies_redirect(url: &str, field: &str, cert: &Path) {
    let query = url.split_once('?').unwrap().1;
    let (signed, signature) = query.rsplit_once("&Signature=").unwrap();
    assert!(signed.starts_with(&format!("{field}=")) && signed.contains("&SigAlg="), "{signed}");
    let dir = tempfile::tempdir().unwrap();
    let sig = base64::engine::general_purpose::STANDARD.decode(percent_decode(signature)).unwrap();
    std::fs::write(dir.path().join("sig"), sig).unwrap();
    std::fs::write(dir.path().join("data"), signed).unwrap();
    let pubkey = Command::new("openssl").args(["x509", "-pubkey", "-noout", "-in"]).arg(cert).output().unwrap();
    std::fs::write(dir.path().join("pub.pem"), pubkey.stdout).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(dir.path().join("pub.pem"))
        .arg("-signature")
        .arg(dir.path().join("sig"))
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stdout));
}

/// The inflated XML of `field` in an HTTP-Redirect URL.
pub(crate) fn redirect_xml(url: &str, field: &str) -> String {
    let value = url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == field).unwrap().1.into_owned();
    let raw = base64::engine::general_purpose::STANDARD.decode(value).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut flate2::read::DeflateDecoder::new(raw.as_slice()), &mut xml).unwrap();
    xml
}

/// An SP whose metadata lists only an HTTP-Redirect SingleLogoutService (mod_auth_mellon, SimpleSAMLphp) completes
/// SP-initiated logout without `slo_url`: the LogoutResponse goes back by HTTP-Redirect, its query signed. A
/// LogoutRequest with `<aslo:Asynchronous/>` gets no response. An SP with no logout endpoint at all still ends
/// the session.
#[tokio::test]
async fn redirect_only_slo_metadata_asynchronous_and_no_endpoint() {
    let slapd = Slapd::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let md = keys.path().join("mellon.xml");
    std::fs::write(
        &md,
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="http://127.0.0.1:9/mellon"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="http://127.0.0.1:9/mellon/logout"/><md:AssertionConsumerService index="0" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="http://127.0.0.1:9/mellon/postResponse"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
    )
    .unwrap();
    let cfg = format!(
        "{}{}\n[[saml.service_providers]]\nname = \"mellon\"\nmetadata_file = \"{}\"\n",
        slapd.ldap_toml(""),
        saml_toml(keys.path()),
        md.display()
    );
    let cert = keys.path().join("saml-signing.crt");
    let gw = Gateway::start(&cfg).await.unwrap();
    let signed_in = |c: &reqwest::Client| {
        let r = c.get(gw.url("/"));
        async move { r.send().await.unwrap().status() == StatusCode::OK }
    };
    const MELLON: &str = "http://127.0.0.1:9/mellon";

    // Redirect binding both ways.
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-password", "").await;
    let r = c.get(gw.url("/saml/init/mellon")).send().await.unwrap();
    let name_id = get(&posted(&r.text().await.unwrap()).1, "saml:NameID", "");
    let r = c
        .get(gw.url(&format!("/saml/slo?{}", redirect_query(&logout_request(MELLON, Some(&name_id)), None))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("http://127.0.0.1:9/mellon/logout?SAMLResponse="), "{location}");
    assert!(location.contains("&RelayState=r&SigAlg="), "RelayState echoed inside the signed part: {location}");
    openssl_verifies_redirect(&location, "SAMLResponse", &cert);
    let xml = redirect_xml(&location, "SAMLResponse");
    assert!(xml.contains("status:Success") && xml.contains(r#"InResponseTo="_csrf"#), "{xml}");
    assert!(xml.contains(r#"Destination="http://127.0.0.1:9/mellon/logout""#), "{xml}");
    assert!(!xml.contains("Signature"), "the query carries the signature, not the XML");
    assert!(!signed_in(&c).await);

    // Asynchronous: the session ends, the SP gets no LogoutResponse.
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-password", "").await;
    c.get(gw.url("/saml/init/mellon")).send().await.unwrap();
    let asynchronous = logout_request(MELLON, Some("alice")).replace(
        "</saml:Issuer>",
        r#"</saml:Issuer><samlp:Extensions><aslo:Asynchronous xmlns:aslo="urn:oasis:names:tc:SAML:2.0:protocol:ext:async-slo"/></samlp:Extensions>"#,
    );
    let r = c.get(gw.url(&format!("/saml/slo?{}", redirect_query(&asynchronous, None)))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("Signed out") && !body.contains("SAMLResponse"), "{body}");
    assert!(!signed_in(&c).await);

    // No SingleLogoutService at all ("admins-only"): its own LogoutRequest still ends the session.
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-password", "").await;
    assert_eq!(c.get(gw.url("/saml/init/admins-only")).send().await.unwrap().status(), StatusCode::OK);
    let request = logout_request("http://127.0.0.1:9/admins", Some("alice"));
    let r = c.get(gw.url(&format!("/saml/slo?{}", redirect_query(&request, None)))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Signed out"));
    assert!(!signed_in(&c).await, "ended although the SP has no logout endpoint");
}

/// A captured signed LogoutRequest (no SessionIndex, so it names every session of the user) is taken only where,
/// when and as often as it was meant: one for another IdP's endpoint (`Destination`), one issued ten minutes ago,
/// one whose `NotOnOrAfter` passed, and the same request a second time are each refused with a 400 naming the
/// problem, and the session the attacker aimed at stays signed in. Before, each of them signed the user out.
#[tokio::test]
async fn a_captured_logout_request_is_refused_late_twice_or_for_another_idp() {
    const ENTITY: &str = "http://127.0.0.1:9/signed";
    let sp = signing_sp_with("signed", ENTITY, "http://127.0.0.1:9/signed/acs", false).await;
    let (gw, c) = (&sp.gw, &sp.browser);
    let signed_in = || async { c.get(gw.url("/")).send().await.unwrap().status() == StatusCode::OK };
    assert_eq!(c.get(gw.url("/saml/init/signed")).send().await.unwrap().status(), StatusCode::OK);
    let slo = |request: &str| c.get(gw.url(&format!("/saml/slo?{}", redirect_query(request, Some(&sp.key))))).send();
    let refused = |r: reqwest::Response, needle: &'static str| async move {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "expected {needle:?} in: {body}");
    };
    let with = |attribute: &str, value: &str| {
        logout_request(ENTITY, Some("alice")).replace("Version=", &format!(r#"{attribute}="{value}" Version="#))
    };

    // Meant for another IdP.
    refused(slo(&with("Destination", "https://other-idp.example.net/saml/slo")).await.unwrap(), "other-idp").await;
    assert!(signed_in().await, "a LogoutRequest for another IdP ended the session");

    // Issued ten minutes ago (captured, replayed later).
    let old = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let old = old.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap();
    let fresh = logout_request(ENTITY, Some("alice"));
    let start = fresh.find("IssueInstant=\"").unwrap() + "IssueInstant=\"".len();
    let end = start + fresh[start..].find('"').unwrap();
    let late = format!("{}{old}{}", &fresh[..start], &fresh[end..]);
    refused(slo(&late).await.unwrap(), "was issued").await;
    assert!(signed_in().await, "a ten-minute-old LogoutRequest ended the session");

    // Past its NotOnOrAfter.
    refused(slo(&with("NotOnOrAfter", &old)).await.unwrap(), "NotOnOrAfter").await;
    assert!(signed_in().await, "an expired LogoutRequest ended the session");

    // Fresh and for this endpoint: taken once.
    let good = with("Destination", &gw.url("/saml/slo"));
    assert_eq!(slo(&good).await.unwrap().status(), StatusCode::OK);
    assert!(!signed_in().await, "the SP's own fresh request ends the session");
    // Signed in again: the same request, replayed, ends nothing.
    crate::login::login(c, gw, "alice", "alice-password", "").await;
    assert_eq!(c.get(gw.url("/saml/init/signed")).send().await.unwrap().status(), StatusCode::OK);
    refused(slo(&good).await.unwrap(), "already used").await;
    assert!(signed_in().await, "a replayed LogoutRequest ended the new session");
}

/// `encrypt_assertions`: the signed assertion travels as an `EncryptedAssertion` (AES-256-GCM, key wrapped with
/// RSA-OAEP for the SP's certificate); pysaml2 decrypts it with the SP's key (by xmlsec1) and accepts the
/// signature, the NameID and the attributes inside. Nothing of the user is readable in the Response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_decrypts_encrypted_assertions() {
    use aws_lc_rs::encoding::AsDer as _;
    let dir = tempfile::tempdir().unwrap();
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(rsa.as_der().unwrap().as_ref().to_vec());
    let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&rc_key).unwrap();
    let (cert_path, key_path, md) = (dir.path().join("sp.crt"), dir.path().join("sp.key"), dir.path().join("idp.xml"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, rc_key.serialize_pem()).unwrap();
    // The SP's certificate_file is its encryption certificate too.
    let keys = tempfile::tempdir().unwrap();
    let slapd = Slapd::start().unwrap();
    let cfg = format!(
        "{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"app\"\nentity_id = \"{SP_ENTITY}\"\n\
         acs_urls = [\"{SP_ACS}\"]\ncertificate_file = \"{}\"\nencrypt_assertions = true\n\
         attributes = {{ mail = \"{{email}}\" }}\n",
        slapd.ldap_toml(""),
        keys.path().display(),
        cert_path.display()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let metadata = e2e::gateway::http().get(gw.url("/saml/metadata")).send().await.unwrap();
    std::fs::write(&md, metadata.text().await.unwrap()).unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "bob", "bob-password", "").await;
    let html = c.get(gw.url("/saml/init/app")).send().await.unwrap().text().await.unwrap();
    let (_, xml, _) = posted(&html);
    assert!(xml.contains("<saml:EncryptedAssertion") && !xml.contains("<saml:Assertion"), "{xml}");
    assert!(xml.contains("xmlenc11#aes256-gcm") && xml.contains("xmlenc#rsa-oaep-mgf1p"), "{xml}");
    assert!(!xml.contains("bob"), "nothing of the user in clear: {xml}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let (md_s, key, cert) = (md.display().to_string(), key_path.display().to_string(), cert_path.display().to_string());
    let seen = tokio::task::spawn_blocking(move || {
        pysaml2(&["consume-encrypted", &md_s, SP_ENTITY, SP_ACS, &key, &cert], Some(&b64))
    })
    .await
    .unwrap();
    // What pysaml2 read came out of the encrypted data only (the Response holds none of it in clear).
    assert_eq!(seen["assertion_signed"], true, "{seen}");
    assert_eq!(seen["name_id"], "bob");
    assert_eq!(seen["attributes"]["mail"], serde_json::json!(["bob@example.org"]));
}

/// Attribute `NameFormat` and `FriendlyName` as an independent SP reads them: pysaml2 maps a `uri` attribute named by
/// its OID (`urn:oid:0.9.2342.19200300.100.1.3`) to `mail` through its attribute map for that NameFormat, and a
/// `basic` one by its plain name; the FriendlyName travels beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_reads_attributes_by_their_name_format() {
    let keys = tempfile::tempdir().unwrap();
    let slapd = Slapd::start().unwrap();
    let cfg = format!(
        "{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"app\"\nentity_id = \"{SP_ENTITY}\"\n\
         acs_urls = [\"{SP_ACS}\"]\nattribute_name_format = \"uri\"\n\
         attributes = {{ \"urn:oid:0.9.2342.19200300.100.1.3\" = {{ value = \"{{email}}\", friendly_name = \"mail\" }}, \
         uid = {{ value = \"{{username}}\", name_format = \"basic\" }} }}\n",
        slapd.ldap_toml(""),
        keys.path().display(),
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let md = keys.path().join("idp.xml");
    let metadata = e2e::gateway::http().get(gw.url("/saml/metadata")).send().await.unwrap();
    std::fs::write(&md, metadata.text().await.unwrap()).unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "bob", "bob-password", "").await;
    let html = c.get(gw.url("/saml/init/app")).send().await.unwrap().text().await.unwrap();
    let (_, xml, _) = posted(&html);
    assert!(
        xml.contains(r#"<saml:Attribute FriendlyName="mail" Name="urn:oid:0.9.2342.19200300.100.1.3" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<saml:Attribute Name="uid" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">"#),
        "{xml}"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let md_s = md.display().to_string();
    let seen =
        tokio::task::spawn_blocking(move || pysaml2(&["consume", &md_s, SP_ENTITY, SP_ACS], Some(&b64))).await.unwrap();
    assert_eq!(seen["attributes"]["mail"], serde_json::json!(["bob@example.org"]), "{seen}");
    assert_eq!(seen["attributes"]["uid"], serde_json::json!(["bob"]), "{seen}");
}

/// SAML core §3.4.1: an IdP that cannot sign the user in without showing a page answers a passive AuthnRequest
/// (`IsPassive="true"`) with a Response of status `NoPassive`, as Keycloak does; the SP (pysaml2) gets its answer
/// at its ACS and can go on without a login. Before, fedgate showed its own 403 page and the SP heard nothing.
/// Once signed in, the same passive request gets the assertion.
#[tokio::test]
async fn a_passive_request_without_a_session_gets_no_passive_at_the_sp() {
    use e2e::saml_sp::{SamlSp, SloBinding, follow};
    let keys = tempfile::tempdir().unwrap();
    let sp = SamlSp::start(SloBinding::Redirect).unwrap();
    let md = sp.metadata_file(keys.path()).await.unwrap();
    let cfg = format!(
        "{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"py\"\nmetadata_file = \"{}\"\n",
        e2e::gateway::demo_config(),
        keys.path().display(),
        md.display()
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    sp.setup(&gw.url("/saml/metadata")).await.unwrap();
    for binding in ["", "&binding=post"] {
        let c = browser();
        let landed = follow(&c, c.get(sp.url(&format!("/login?passive=1{binding}")))).await;
        assert!(landed.url.starts_with(&sp.url("/acs")), "{binding}: the SP got no answer: {:?}", landed.trail);
        assert_eq!(landed.status, StatusCode::BAD_REQUEST, "{binding}: {}", landed.body);
        assert!(landed.body.contains("StatusNoPassive"), "{binding}: pysaml2 read {}", landed.body);
        crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
        let landed = follow(&c, c.get(sp.url(&format!("/login?passive=1{binding}")))).await;
        assert_eq!(landed.status, StatusCode::OK, "{binding}: {:?} {}", landed.trail, landed.body);
        let seen: serde_json::Value = serde_json::from_str(&landed.body).unwrap();
        assert_eq!(seen["name_id"], "alice", "{binding}: {seen}");
    }
}
