//! Single logout across protocols: a user signed in to two OIDC clients (each with a back-channel logout URI
//! served here, every logout token verified against the JWKS: signature, `typ`, `iss`, `aud`, `events`, `sid`,
//! `sub`, no `nonce`) and a SAML SP. Logging out at fedgate's page, at `/oauth2/logout` with an `id_token_hint`, or
//! by the SAML SP's LogoutRequest reaches both OIDC clients and revokes their tokens; a logout started at fedgate
//! also reaches the SAML SP (a LogoutRequest through the browser). The SAML chain over several SPs is checked
//! on its own below.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use e2e::gateway::{Gateway, browser, csrf_from, demo_config, http};
use reqwest::StatusCode;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const SECRET: &str = "test-secret-0123456789abcdef";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SP_ENTITY: &str = "http://127.0.0.1:9/sp";

/// What the back-channel receiver got: (client in the path, `logout_token`).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A back-channel logout receiver on a free loopback port: `POST /bc/{client}` with a form `logout_token`.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/bc/{client}",
        axum::routing::post(
            move |axum::extract::Path(client): axum::extract::Path<String>,
                  axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().push((client, form.get("logout_token").cloned().unwrap_or_default()));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, got)
}

fn config(receiver: &str, keys: &std::path::Path) -> String {
    let client = |id: &str, extra: &str| {
        format!(
            "[[oidc.clients]]\nclient_id = \"{id}\"\nclient_secret = \"{SECRET}\"\nredirect_uris = [\"{REDIRECT}\"]\n\
             backchannel_logout_uri = \"{receiver}/bc/{id}\"\nbackchannel_logout_session_required = true\n{extra}"
        )
    };
    format!(
        "{}\n[oidc]\nkeys_dir = \"{}\"\n{}{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"app\"\n\
         entity_id = \"{SP_ENTITY}\"\nacs_urls = [\"http://127.0.0.1:9/acs\"]\nslo_url = \"http://127.0.0.1:9/slo\"\n",
        demo_config(),
        keys.join("oidc").display(),
        client("rp1", &format!("frontchannel_logout_uri = \"{receiver}/fc/rp1\"\n")),
        client("rp2", ""),
        keys.join("saml").display(),
    )
}

/// Signs `c` in to `client` (code flow with PKCE) and returns its token response.
async fn sign_in_to(gw: &Gateway, c: &reqwest::Client, client: &str) -> serde_json::Value {
    let r = c
        .get(gw.url(&format!(
            "/oauth2/authorize?response_type=code&client_id={client}&redirect_uri={REDIRECT}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256"
        )))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let code = url::Url::parse(&loc).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let r = http()
        .post(gw.url("/oauth2/token"))
        .basic_auth(client, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn payload(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Checks a logout token as an RP must (Back-Channel Logout 1.0 §2.6), against the gateway's JWKS.
async fn verify_logout_token(gw: &Gateway, token: &str, client: &str, id_token: &str) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet =
        http().get(gw.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the token's key is in the JWKS");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[client]);
    validation.set_issuer(&[gw.base.as_str()]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "exp"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap_or_else(|e| panic!("{client}: {e}"))
    .claims;
    let id = payload(id_token);
    assert_eq!(claims["events"], serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    assert!(id["sid"].is_string(), "the ID token carries sid: {id}");
    assert_eq!(claims["sid"], id["sid"], "{client}");
    assert_eq!(claims["sub"], id["sub"]);
    assert!(claims.get("nonce").is_none());
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
}

/// Waits until the receiver holds a token for each of `clients` and returns them.
async fn tokens_for(got: &Received, clients: &[&str]) -> Vec<(String, String)> {
    for _ in 0..100 {
        let seen = got.lock().unwrap().clone();
        if clients.iter().all(|c| seen.iter().any(|(k, _)| k == c)) {
            got.lock().unwrap().clear();
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no logout token for every one of {clients:?}: {:?}", got.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_anywhere_reaches_every_oidc_client_by_back_channel() {
    let (base, got) = receiver().await;
    let keys = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&base, keys.path())).await.unwrap();
    let discovery: serde_json::Value =
        http().get(gw.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    assert_eq!(discovery["frontchannel_logout_supported"], true);

    for place in ["logout page", "rp-initiated", "saml sp"] {
        let c = browser();
        let r = crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let rp1 = sign_in_to(&gw, &c, "rp1").await;
        let rp2 = sign_in_to(&gw, &c, "rp2").await;
        let r = c.get(gw.url("/saml/init/app")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let id1 = rp1["id_token"].as_str().unwrap().to_string();
        let id2 = rp2["id_token"].as_str().unwrap().to_string();
        assert_ne!(payload(&id1)["sid"], payload(&id2)["sid"]);

        let r = match place {
            "logout page" => {
                let html = c.get(gw.url("/logout")).send().await.unwrap().text().await.unwrap();
                let csrf = csrf_from(&html).unwrap();
                c.post(gw.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap()
            }
            "rp-initiated" => c.get(gw.url(&format!("/oauth2/logout?id_token_hint={id2}"))).send().await.unwrap(),
            _ => {
                let xml = format!(
                    r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>{SP_ENTITY}</saml:Issuer><saml:NameID>alice</saml:NameID></samlp:LogoutRequest>"#
                );
                let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut enc, xml.as_bytes()).unwrap();
                let value = base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap());
                let q =
                    url::form_urlencoded::Serializer::new(String::new()).append_pair("SAMLRequest", &value).finish();
                c.get(gw.url(&format!("/saml/slo?{q}"))).send().await.unwrap()
            }
        };
        assert_eq!(r.status(), StatusCode::OK, "{place}");
        let mut html = r.text().await.unwrap();
        if place != "saml sp" {
            // The SAML SP is asked first (a signed LogoutRequest through the browser); it answers Success.
            let request = form_field(&html, "SAMLRequest").unwrap_or_else(|| panic!("{place}: {html}"));
            let xml = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(request).unwrap()).unwrap();
            let id = xml.split(" ID=\"").nth(1).unwrap().split('"').next().unwrap();
            let response = format!(
                r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" InResponseTo="{id}"><saml:Issuer>{SP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#
            );
            let b64 = base64::engine::general_purpose::STANDARD.encode(response);
            let relay = form_field(&html, "RelayState").unwrap();
            let r = c
                .post(gw.url("/saml/slo"))
                .form(&[("SAMLResponse", b64.as_str()), ("RelayState", relay.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{place}");
            html = r.text().await.unwrap();
            assert!(!html.contains("could not be signed out"), "{place}: {html}");
            // Front-channel logout: rp1's page is loaded in an iframe with iss and sid.
            assert!(html.contains(&format!("<iframe src=\"{base}/fc/rp1?iss=")), "{place}: {html}");
        }
        assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER, "{place}: signed out");

        let tokens = tokens_for(&got, &["rp1", "rp2"]).await;
        for (client, token) in &tokens {
            let id_token = if client == "rp1" { &id1 } else { &id2 };
            verify_logout_token(&gw, token, client, id_token).await;
        }
        // The clients' tokens are revoked too.
        let at = rp1["access_token"].as_str().unwrap();
        let ui = http().get(gw.url("/oauth2/userinfo")).bearer_auth(at).send().await.unwrap();
        assert_eq!(ui.status(), StatusCode::UNAUTHORIZED, "{place}: rp1's access token revoked");
    }
}

/// The value of the hidden form field `name` in an auto-submitting page, and the form's action.
fn form_field(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let i = html.find(&key)? + key.len();
    Some(html[i..].split('"').next()?.replace("&amp;", "&").replace("&quot;", "\""))
}

/// Plays the SPs of a SAML logout chain: each hop is a LogoutRequest (HTTP-POST form or HTTP-Redirect) to one SP,
/// checked (signature, NameID and SessionIndex that SP was given) and answered with a LogoutResponse (Success,
/// or Responder from the SPs in `refuse`). Returns the SP entity IDs in the order they were asked, and the last
/// response (the end of the chain).
async fn play_chain(
    gw: &Gateway,
    c: &reqwest::Client,
    first: reqwest::Response,
    given: &std::collections::HashMap<String, (String, String)>,
    refuse: &[&str],
    cert: &std::path::Path,
) -> (Vec<String>, reqwest::Response) {
    let mut asked = Vec::new();
    let mut r = first;
    loop {
        let (xml, relay) = if r.status() == StatusCode::SEE_OTHER {
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            if !loc.contains("SAMLRequest=") {
                return (asked, r);
            }
            crate::saml::openssl_verifies_redirect(&loc, "SAMLRequest", cert);
            let relay =
                url::Url::parse(&loc).unwrap().query_pairs().find(|(k, _)| k == "RelayState").unwrap().1.into_owned();
            (crate::saml::redirect_xml(&loc, "SAMLRequest"), relay)
        } else {
            let html = r.text().await.unwrap();
            let Some(value) = form_field(&html, "SAMLRequest") else {
                return (asked, reqwest_like(html));
            };
            let xml = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(value).unwrap()).unwrap();
            crate::saml::xmlsec1_verifies(&xml, cert, "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest", None);
            (xml, form_field(&html, "RelayState").unwrap())
        };
        let attr =
            |name: &str| xml.split(&format!(" {name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
        let text = |el: &str| {
            xml.split(&format!("<{el}"))
                .nth(1)
                .unwrap()
                .split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_string()
        };
        let destination = attr("Destination");
        let entity = destination.rsplit_once('/').unwrap().0.to_string();
        let (name_id, index) = &given[&entity];
        assert_eq!(&text("saml:NameID"), name_id, "{entity}");
        assert_eq!(&text("samlp:SessionIndex"), index, "{entity}");
        let status = if refuse.contains(&entity.as_str()) { "Responder" } else { "Success" };
        let response = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{}" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" InResponseTo="{}"><saml:Issuer>{entity}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{status}"/></samlp:Status></samlp:LogoutResponse>"#,
            asked.len(),
            attr("ID")
        );
        asked.push(entity);
        let b64 = base64::engine::general_purpose::STANDARD.encode(response);
        r = c
            .post(gw.url("/saml/slo"))
            .form(&[("SAMLResponse", b64.as_str()), ("RelayState", relay.as_str())])
            .send()
            .await
            .unwrap();
        assert!(asked.len() < 10, "the chain ends");
    }
}

/// A finished page as a response stand-in (the chain helper already read its body).
fn reqwest_like(html: String) -> reqwest::Response {
    reqwest::Response::from(axum::http::Response::new(html))
}

/// SAML single logout through the browser: a logout at fedgate's page, or one SP's LogoutRequest, sends a signed
/// LogoutRequest to every other SP of the session (HTTP-POST or HTTP-Redirect, as each SP's SingleLogoutService
/// says) with the NameID and SessionIndex it was given; an SP that refuses does not stop the chain and is listed
/// on the final page; the SP that started it gets its LogoutResponse last.
#[tokio::test]
async fn saml_logout_chain_reaches_every_sp_and_lists_the_ones_that_failed() {
    let keys = tempfile::tempdir().unwrap();
    let sp = |name: &str, extra: &str| {
        format!(
            "[[saml.service_providers]]\nname = \"{name}\"\nentity_id = \"http://127.0.0.1:9/{name}\"\n\
             acs_urls = [\"http://127.0.0.1:9/{name}/acs\"]\nslo_url = \"http://127.0.0.1:9/{name}/slo\"\n{extra}"
        )
    };
    let cfg = format!(
        "{}\n[saml]\nkeys_dir = \"{}\"\n{}{}{}",
        demo_config(),
        keys.path().display(),
        sp("a", "nameid_format = \"transient\"\n"),
        sp("b", "slo_binding = \"redirect\"\n"),
        sp("c", "display_name = \"App C\"\n"),
    );
    let cert = keys.path().join("saml-signing.crt");
    let gw = Gateway::start(&cfg).await.unwrap();
    let sign_in_to_all = |c: reqwest::Client| {
        let gw = &gw;
        async move {
            let mut given = std::collections::HashMap::new();
            for name in ["a", "b", "c"] {
                let html = c.get(gw.url(&format!("/saml/init/{name}"))).send().await.unwrap().text().await.unwrap();
                let xml = String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(form_field(&html, "SAMLResponse").unwrap())
                        .unwrap(),
                )
                .unwrap();
                let name_id = xml
                    .split("<saml:NameID")
                    .nth(1)
                    .unwrap()
                    .split('>')
                    .nth(1)
                    .unwrap()
                    .split('<')
                    .next()
                    .unwrap()
                    .to_string();
                let index = xml.split("SessionIndex=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
                given.insert(format!("http://127.0.0.1:9/{name}"), (name_id, index));
            }
            (c, given)
        }
    };

    // Started at fedgate's logout page: every SP is asked, C refuses and is listed.
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
    let (c, given) = sign_in_to_all(c).await;
    let html = c.get(gw.url("/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let first = c.post(gw.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    let (mut asked, last) = play_chain(&gw, &c, first, &given, &["http://127.0.0.1:9/c"], &cert).await;
    asked.sort();
    assert_eq!(asked, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9/c"]);
    let page = last.text().await.unwrap();
    assert!(
        page.contains("Signed out") && page.contains("could not be signed out") && page.contains("App C"),
        "{page}"
    );
    assert!(!page.contains("<li>a</li>") && !page.contains("<li>b</li>"), "{page}");
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER);

    // Started by SP A's LogoutRequest (with the transient NameID it was given): B and C are asked, then A gets
    // its LogoutResponse.
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
    let (c, given) = sign_in_to_all(c).await;
    let (name_id, _) = &given["http://127.0.0.1:9/a"];
    let request = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_from-a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>http://127.0.0.1:9/a</saml:Issuer><saml:NameID>{name_id}</saml:NameID></samlp:LogoutRequest>"#
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(request);
    let first = c
        .post(gw.url("/saml/slo"))
        .form(&[("SAMLRequest", b64.as_str()), ("RelayState", "a-state")])
        .send()
        .await
        .unwrap();
    let (mut asked, last) = play_chain(&gw, &c, first, &given, &[], &cert).await;
    asked.sort();
    assert_eq!(asked, ["http://127.0.0.1:9/b", "http://127.0.0.1:9/c"]);
    let html = last.text().await.unwrap();
    assert!(html.contains("action=\"http://127.0.0.1:9/a/slo\""), "{html}");
    assert_eq!(form_field(&html, "RelayState").as_deref(), Some("a-state"));
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(form_field(&html, "SAMLResponse").unwrap()).unwrap(),
    )
    .unwrap();
    assert!(xml.contains("InResponseTo=\"_from-a\"") && xml.contains("status:Success"), "{xml}");
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER);
}
