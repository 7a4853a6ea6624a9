//! Single logout across protocols: a user signed in to two OIDC clients (each with a back-channel logout URI
//! served here, every logout token verified against the JWKS: signature, `typ`, `iss`, `aud`, `events`, `sid`,
//! `sub`, no `nonce`) and a SAML SP. Logging out at fedgate's page, at `/oauth2/logout` with an `id_token_hint`, or
//! by the SAML SP's LogoutRequest reaches both OIDC clients and revokes their tokens.

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
        let html = r.text().await.unwrap();
        if place != "saml sp" {
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
