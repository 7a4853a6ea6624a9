//! Single logout across protocols: a user signed in to two OIDC clients (each with a back-channel logout URI
//! served here, every logout token verified against the JWKS: signature, `typ`, `iss`, `aud`, `events`, `sid`,
//! `sub`, no `nonce`) and two SAML SPs (pysaml2, running, with their own sessions). A logout started at fedgate's
//! page, at `/oauth2/logout` with an `id_token_hint`, or by either SP ends every one of those sessions; an SP that
//! is down is listed on the final page and holds up nobody. The SAML fan-out over several SPs (signatures,
//! NameID and SessionIndex per SP, refusals, silence) is checked on its own below.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use e2e::gateway::{Gateway, browser, csrf_from, demo_config, http};
use reqwest::StatusCode;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const SECRET: &str = "test-secret-0123456789abcdef";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// What the back-channel receiver got: (client in the path, `logout_token`).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A back-channel logout receiver on a free loopback port that acknowledges every logout token at once (see
/// [`back_channel_receiver`]); also the clients' post-logout page, `GET /bye`.
async fn receiver() -> (String, Received) {
    back_channel_receiver(|_| (StatusCode::OK, Duration::ZERO)).await
}

/// A back-channel logout endpoint on a free loopback port (`POST /bc/{client}` with a form `logout_token`) that
/// records each attempt and answers the `n`th (from 1) with `answer(n)`: a status, after a pause; and `GET /bye`.
async fn back_channel_receiver(answer: fn(usize) -> (StatusCode, Duration)) -> (String, Received) {
    let got: Received = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route("/bye", axum::routing::get(|| async { "bye from rp2" })).route(
        "/bc/{client}",
        axum::routing::post(
            move |axum::extract::Path(client): axum::extract::Path<String>,
                  axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let store = store.clone();
                async move {
                    let attempt = {
                        let mut got = store.lock().unwrap();
                        got.push((client, form.get("logout_token").cloned().unwrap_or_default()));
                        got.len()
                    };
                    let (status, pause) = answer(attempt);
                    tokio::time::sleep(pause).await;
                    status
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, got)
}

/// Two OIDC clients (rp1 also with a front-channel logout URI) whose back-channel logout URIs are the test's
/// receiver, and the SAML SPs `sps` (name, metadata file) configured from their metadata alone (no `slo_url`).
fn config(receiver: &str, keys: &std::path::Path, sps: &[(&str, &std::path::Path)]) -> String {
    let client = |id: &str, extra: &str| {
        format!(
            "[[oidc.clients]]\nclient_id = \"{id}\"\nclient_secret = \"{SECRET}\"\nredirect_uris = [\"{REDIRECT}\"]\n\
             backchannel_logout_uri = \"{receiver}/bc/{id}\"\nbackchannel_logout_session_required = true\n{extra}"
        )
    };
    let sps: String = sps
        .iter()
        .map(|(name, md)| {
            format!(
                "[[saml.service_providers]]\nname = \"{name}\"\ndisplay_name = \"SAML app {name}\"\nmetadata_file = \"{}\"\n",
                md.display()
            )
        })
        .collect();
    format!(
        "{}\n[oidc]\nkeys_dir = \"{}\"\n{}{}\n[saml]\nkeys_dir = \"{}\"\n{sps}",
        demo_config(),
        keys.join("oidc").display(),
        client("rp1", &format!("frontchannel_logout_uri = \"{receiver}/fc/rp1\"\n")),
        client("rp2", &format!("post_logout_redirect_uris = [\"{receiver}/bye\"]\n")),
        keys.join("saml").display(),
    )
}

/// Signs the browser `c` in at the gateway `base` as the demo user alice, with the login form.
async fn sign_in_alice(c: &reqwest::Client, base: &str) {
    let form = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&form).unwrap();
    let r = c
        .post(format!("{base}/login"))
        .form(&[("username", "alice"), ("password", "alice-demo"), ("csrf", csrf.as_str()), ("rd", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed in");
}

/// Signs `c` in to `client` (code flow with PKCE) and returns its token response.
async fn sign_in_to(base: &str, c: &reqwest::Client, client: &str) -> serde_json::Value {
    let r = c
        .get(format!(
            "{base}/oauth2/authorize?response_type=code&client_id={client}&redirect_uri={REDIRECT}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let code = url::Url::parse(&loc).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let r = http()
        .post(format!("{base}/oauth2/token"))
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
async fn verify_logout_token(base: &str, token: &str, client: &str, id_token: &str) {
    verify_logout_token_of(base, base, token, client, id_token).await;
}

/// [`verify_logout_token`] with the JWKS read from `jwks_base` and the issuer `issuer` (replicas share one issuer).
async fn verify_logout_token_of(jwks_base: &str, issuer: &str, token: &str, client: &str, id_token: &str) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet =
        http().get(format!("{jwks_base}/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the token's key is in the JWKS");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[client]);
    validation.set_issuer(&[issuer]);
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

/// Where a logout starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// fedgate's own logout page.
    LogoutPage,
    /// RP-initiated logout at `/oauth2/logout` with rp2's `id_token_hint`.
    RpInitiated,
    /// SAML SP A's own logout (pysaml2, a signed LogoutRequest by HTTP-Redirect).
    SpA,
    /// SAML SP B's own logout.
    SpB,
}

/// The whole matrix of the issue: a user signed in to two OIDC clients (back-channel logout URIs served here, each
/// logout token verified against the JWKS: signature, `typ`, `iss`, `aud`, `events`, `sid`, `sub`, no `nonce`) and
/// two SAML SPs (pysaml2, each keeping its own sessions; A's logout endpoint HTTP-POST, B's HTTP-Redirect, both
/// from their metadata, no `slo_url`). A logout started at each of the four places ends all four sessions and
/// fedgate's; the clients' tokens are revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_anywhere_ends_every_oidc_and_saml_session() {
    use e2e::saml_sp::{SamlSp, SloBinding, follow};
    let (base, got) = receiver().await;
    let keys = tempfile::tempdir().unwrap();
    let (sp_a, sp_b) = (SamlSp::start(SloBinding::Post).unwrap(), SamlSp::start(SloBinding::Redirect).unwrap());
    let md_a = sp_a.metadata_file(keys.path()).await.unwrap();
    let md_b = sp_b.metadata_file(keys.path()).await.unwrap();
    let gw = Gateway::start(&config(&base, keys.path(), &[("a", &md_a), ("b", &md_b)])).await.unwrap();
    for sp in [&sp_a, &sp_b] {
        sp.setup(&gw.url("/saml/metadata")).await.unwrap();
    }
    let discovery: serde_json::Value =
        http().get(gw.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    for key in [
        "backchannel_logout_supported",
        "backchannel_logout_session_supported",
        "frontchannel_logout_supported",
        "frontchannel_logout_session_supported",
    ] {
        assert_eq!(discovery[key], true, "{key}");
    }

    for start in [Start::LogoutPage, Start::RpInitiated, Start::SpA, Start::SpB] {
        let c = browser();
        let r = crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let rp1 = sign_in_to(&gw.base, &c, "rp1").await;
        let rp2 = sign_in_to(&gw.base, &c, "rp2").await;
        let id1 = rp1["id_token"].as_str().unwrap().to_string();
        let id2 = rp2["id_token"].as_str().unwrap().to_string();
        assert_ne!(payload(&id1)["sid"], payload(&id2)["sid"]);
        // SP-initiated SSO at both SPs; pysaml2 accepts the assertions and starts its sessions.
        let mut indexes = Vec::new();
        for sp in [&sp_a, &sp_b] {
            let landed = follow(&c, c.get(sp.url("/login"))).await;
            assert_eq!(landed.status, StatusCode::OK, "{start:?}: {landed:?}");
            let seen: serde_json::Value = serde_json::from_str(&landed.body).unwrap();
            indexes.push(seen["session_index"].as_str().unwrap().to_string());
            assert_eq!(c.get(sp.url("/whoami")).send().await.unwrap().status(), StatusCode::OK);
        }
        assert_ne!(indexes[0], indexes[1], "a SessionIndex per SP, like the pairwise sid per client");

        let landed = match start {
            Start::LogoutPage => {
                let html = c.get(gw.url("/logout")).send().await.unwrap().text().await.unwrap();
                let csrf = csrf_from(&html).unwrap();
                follow(&c, c.post(gw.url("/logout")).form(&[("csrf", csrf.as_str())])).await
            }
            Start::RpInitiated => {
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("id_token_hint", &id2)
                    .append_pair("post_logout_redirect_uri", &format!("{base}/bye"))
                    .finish();
                follow(&c, c.get(gw.url(&format!("/oauth2/logout?{q}")))).await
            }
            Start::SpA => follow(&c, c.get(sp_a.url("/logout"))).await,
            Start::SpB => follow(&c, c.get(sp_b.url("/logout"))).await,
        };
        assert_eq!(landed.status, StatusCode::OK, "{start:?}: {landed:?}");
        match start {
            // After the SPs, the client's post-logout redirect.
            Start::RpInitiated => assert_eq!(landed.body, "bye from rp2", "{start:?}: {landed:?}"),
            Start::LogoutPage => {
                assert!(landed.body.contains("Signed out"), "{start:?}: {landed:?}");
                assert!(!landed.body.contains("could not be signed out"), "{start:?}: {landed:?}");
            }
            // The SP that started it gets fedgate's LogoutResponse last; pysaml2 checks it.
            Start::SpA | Start::SpB => {
                let answer: serde_json::Value = serde_json::from_str(&landed.body).unwrap();
                assert_eq!(answer["logged_out"], true, "{start:?}: {answer} {:?}", landed.trail);
            }
        }
        // rp1's front-channel logout page was loaded (with iss and sid) on the way.
        assert!(
            landed.trail.iter().any(|u| u.starts_with(&format!("{base}/fc/rp1?iss="))),
            "{start:?}: {:?}",
            landed.trail
        );
        assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER, "{start:?}");
        for sp in [&sp_a, &sp_b] {
            assert_eq!(c.get(sp.url("/whoami")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{start:?}");
            assert_eq!(sp.active_sessions().await.unwrap(), 0, "{start:?}: {}", sp.base);
        }
        let tokens = tokens_for(&got, &["rp1", "rp2"]).await;
        for (client, token) in &tokens {
            let id_token = if client == "rp1" { &id1 } else { &id2 };
            verify_logout_token(&gw.base, token, client, id_token).await;
        }
        let at = rp1["access_token"].as_str().unwrap();
        let ui = http().get(gw.url("/oauth2/userinfo")).bearer_auth(at).send().await.unwrap();
        assert_eq!(ui.status(), StatusCode::UNAUTHORIZED, "{start:?}: rp1's access token revoked");
    }
}

/// An SP that is down when the user logs out does not hold up the others: the "Signing out" page moves on, the
/// other SP and both OIDC clients are signed out, and the final page names the SP that could not be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sp_is_listed_and_the_others_are_signed_out() {
    use e2e::saml_sp::{SamlSp, SloBinding, follow};
    let (base, got) = receiver().await;
    let keys = tempfile::tempdir().unwrap();
    let (sp_a, mut sp_b) = (SamlSp::start(SloBinding::Post).unwrap(), SamlSp::start(SloBinding::Redirect).unwrap());
    let md_a = sp_a.metadata_file(keys.path()).await.unwrap();
    let md_b = sp_b.metadata_file(keys.path()).await.unwrap();
    let gw = Gateway::start(&config(&base, keys.path(), &[("a", &md_a), ("b", &md_b)])).await.unwrap();
    for sp in [&sp_a, &sp_b] {
        sp.setup(&gw.url("/saml/metadata")).await.unwrap();
    }
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
    sign_in_to(&gw.base, &c, "rp1").await;
    sign_in_to(&gw.base, &c, "rp2").await;
    for sp in [&sp_a, &sp_b] {
        assert_eq!(follow(&c, c.get(sp.url("/login"))).await.status, StatusCode::OK);
    }
    sp_b.stop();
    let html = c.get(gw.url("/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let started = std::time::Instant::now();
    let landed = follow(&c, c.post(gw.url("/logout")).form(&[("csrf", csrf.as_str())])).await;
    assert!(started.elapsed() < Duration::from_secs(10), "the browser is not held up");
    assert_eq!(landed.status, StatusCode::OK, "{landed:?}");
    assert!(landed.body.contains("could not be signed out") && landed.body.contains("SAML app b"), "{landed:?}");
    assert!(!landed.body.contains("SAML app a"), "{landed:?}");
    assert_eq!(sp_a.active_sessions().await.unwrap(), 0);
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    tokens_for(&got, &["rp1", "rp2"]).await;
}

/// The value of the hidden form field `name` in an auto-submitting page, and the form's action.
fn form_field(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let i = html.find(&key)? + key.len();
    Some(html[i..].split('"').next()?.replace("&amp;", "&").replace("&quot;", "\""))
}

/// Plays the SPs of a SAML logout: `first` is the "Signing out" page; each of its fedgate iframes is a
/// LogoutRequest (HTTP-POST form or HTTP-Redirect) to one SP, checked (signature, NameID and SessionIndex that SP
/// was given) and answered with a LogoutResponse (Success, or Responder from the SPs in `refuse`; nothing from the
/// SPs in `silent`). Then the page's meta refresh. Returns the SP entity IDs in the order they were asked, and the
/// response at the end of the logout.
async fn play_chain(
    c: &reqwest::Client,
    first: reqwest::Response,
    given: &std::collections::HashMap<String, (String, String)>,
    refuse: &[&str],
    silent: &[&str],
    cert: &std::path::Path,
) -> (Vec<String>, reqwest::Response) {
    let page_url = first.url().clone();
    let page = first.text().await.unwrap();
    let frames = e2e::saml_sp::tag_attrs(&page, "iframe", "src");
    let mut asked = Vec::new();
    for src in frames.iter().filter(|s| s.starts_with("/saml/slo/frame")) {
        let r = c.get(page_url.join(src).unwrap()).send().await.unwrap();
        let (xml, relay) = if r.status() == StatusCode::SEE_OTHER {
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            crate::saml::openssl_verifies_redirect(&loc, "SAMLRequest", cert);
            let relay =
                url::Url::parse(&loc).unwrap().query_pairs().find(|(k, _)| k == "RelayState").unwrap().1.into_owned();
            (crate::saml::redirect_xml(&loc, "SAMLRequest"), relay)
        } else {
            assert_eq!(r.status(), StatusCode::OK);
            let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
            assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
            let html = r.text().await.unwrap();
            let value = form_field(&html, "SAMLRequest").unwrap_or_else(|| panic!("{html}"));
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
        asked.push(entity.clone());
        if silent.contains(&entity.as_str()) {
            continue;
        }
        let status = if refuse.contains(&entity.as_str()) { "Responder" } else { "Success" };
        let response = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{}" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" InResponseTo="{}"><saml:Issuer>{entity}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{status}"/></samlp:Status></samlp:LogoutResponse>"#,
            asked.len(),
            attr("ID")
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(response);
        let r = c
            .post(page_url.join("/saml/slo").unwrap())
            .form(&[("SAMLResponse", b64.as_str()), ("RelayState", relay.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{entity}");
    }
    let refresh = page.split("http-equiv=\"refresh\" content=\"").nth(1).unwrap().split('"').next().unwrap();
    let done = refresh.split_once("url=").unwrap().1.replace("&amp;", "&");
    (asked, c.get(page_url.join(&done).unwrap()).send().await.unwrap())
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
    let (mut asked, last) = play_chain(&c, first, &given, &["http://127.0.0.1:9/c"], &[], &cert).await;
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
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_from-a" Version="2.0" IssueInstant="{}"><saml:Issuer>http://127.0.0.1:9/a</saml:Issuer><saml:NameID>{name_id}</saml:NameID></samlp:LogoutRequest>"#,
        crate::saml::saml_now()
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(request);
    let first = c
        .post(gw.url("/saml/slo"))
        .form(&[("SAMLRequest", b64.as_str()), ("RelayState", "a-state")])
        .send()
        .await
        .unwrap();
    let (mut asked, last) = play_chain(&c, first, &given, &[], &["http://127.0.0.1:9/c"], &cert).await;
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

/// The back-channel POSTs never delay the browser: a client whose back-channel endpoint takes 30 s to answer (past
/// the 5 s timeout, so fedgate retries) still gets its logout token, and the logout page answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_back_channel_endpoint_does_not_delay_the_browser() {
    let (base, got) = back_channel_receiver(|_| (StatusCode::OK, Duration::from_secs(30))).await;
    let keys = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&base, keys.path(), &[])).await.unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
    let rp1 = sign_in_to(&gw.base, &c, "rp1").await;
    let html = c.get(gw.url("/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let started = std::time::Instant::now();
    let r = c.post(gw.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Signed out"));
    assert!(took < Duration::from_secs(1), "the logout page took {took:?}");
    let tokens = tokens_for(&got, &["rp1"]).await;
    verify_logout_token(&gw.base, &tokens[0].1, "rp1", rp1["id_token"].as_str().unwrap()).await;
}

/// The same fan-out in a real browser (Chromium): the "Signing out" page's iframes load through fedgate's CSP,
/// each SP's logout endpoint gets its LogoutRequest (HTTP-POST for A, HTTP-Redirect for B) and signs the user
/// out, the page moves on by itself; started at fedgate and at SP A (which gets its LogoutResponse last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_out_of_every_saml_sp() {
    use e2e::saml_sp::{SamlSp, SloBinding};
    e2e::node::chromium().unwrap();
    let (base, _got) = receiver().await;
    let keys = tempfile::tempdir().unwrap();
    let (sp_a, sp_b) = (SamlSp::start(SloBinding::Post).unwrap(), SamlSp::start(SloBinding::Redirect).unwrap());
    let md_a = sp_a.metadata_file(keys.path()).await.unwrap();
    let md_b = sp_b.metadata_file(keys.path()).await.unwrap();
    let gw = Gateway::start(&config(&base, keys.path(), &[("a", &md_a), ("b", &md_b)])).await.unwrap();
    for sp in [&sp_a, &sp_b] {
        sp.setup(&gw.url("/saml/metadata")).await.unwrap();
    }
    for start in ["fedgate".to_string(), sp_a.base.clone()] {
        let env = [
            ("BASE", gw.base.clone()),
            ("USER_NAME", "alice".to_string()),
            ("PASSWORD", "alice-demo".to_string()),
            ("SPS", format!("{},{}", sp_a.base, sp_b.base)),
            ("START", start.clone()),
        ];
        let out = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e2e::node::run("browser-slo.mjs", &env, 120)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e:#}"));
        let seen: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
        assert_eq!(seen["ok"], true, "{start}: {seen}");
        assert_eq!(seen["csp"], serde_json::json!([]), "{start}: {seen}");
        let text = seen["final_text"].as_str().unwrap();
        if start == "fedgate" {
            assert!(text.contains("You have been signed out") && !text.contains("could not"), "{seen}");
            let mut asked: Vec<&str> =
                seen["slo_requests"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
            asked.sort_unstable();
            let (post_a, get_b) = (format!("POST {}/slo", sp_a.base), format!("GET {}/slo", sp_b.base));
            let mut want = vec![post_a.as_str(), get_b.as_str()];
            want.sort_unstable();
            assert_eq!(asked, want, "both at once, each by its binding: {seen}");
        } else {
            assert!(text.contains("\"logged_out\": true"), "SP A accepted fedgate's LogoutResponse: {seen}");
        }
        for sp in [&sp_a, &sp_b] {
            assert_eq!(sp.active_sessions().await.unwrap(), 0, "{start}: {}", sp.base);
        }
    }
}

/// SP-initiated logout by HTTP-POST from an SP on another site (fedgate at `localhost`, the SP at `127.0.0.1`), in
/// Chromium: the browser does not send fedgate's `SameSite=Lax` session cookie with the SP's cross-site POST. Before,
/// fedgate then found no session, ended nothing and told the SP Success: the user believed they were signed out
/// everywhere while the fedgate session (and every other app's) lived on. Now the session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_logout_from_an_sp_ends_the_session() {
    use e2e::saml_sp::{SamlSp, SloBinding};
    e2e::node::chromium().unwrap();
    let (receiver_base, _got) = receiver().await;
    let keys = tempfile::tempdir().unwrap();
    let sp = SamlSp::start(SloBinding::Post).unwrap();
    let md = sp.metadata_file(keys.path()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let cfg = format!("[server]\npublic_url = \"{site}/\"\n{}", config(&receiver_base, keys.path(), &[("a", &md)]));
    let gw = Gateway::start_on(listener, &cfg).await.unwrap();
    sp.setup(&gw.url("/saml/metadata")).await.unwrap();
    let env = [
        ("BASE", site.clone()),
        ("USER_NAME", "alice".to_string()),
        ("PASSWORD", "alice-demo".to_string()),
        ("SPS", sp.base.clone()),
        ("START", sp.base.clone()),
        ("SP_LOGOUT_BINDING", "post".to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        e2e::node::run("browser-slo.mjs", &env, 120)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(seen["final_text"].as_str().unwrap().contains("\"logged_out\": true"), "the SP got Success: {seen}");
    assert_eq!(seen["csp"], serde_json::json!([]), "{seen}");
    // The session the browser had: fedgate must have ended it, not only told the SP so.
    let session = seen["session"].as_str().expect("the session cookie after login");
    let r = browser().get(gw.url("/")).header("cookie", format!("fedgate_session={session}")).send().await.unwrap();
    let r_location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(r_location.starts_with("/login"), "the session still opens the account page: {} {r_location}", r.status());
}

/// SSO by HTTP-POST from an SP on another site: the SP's page posts the AuthnRequest to fedgate cross-site, so
/// Chromium sends no `SameSite=Lax` session cookie, and fedgate took the signed-in user for a stranger: a passive
/// request (`IsPassive="true"`, "sign in only if already signed in") was refused with "you are not signed in",
/// and any other one went through the login page's redirect. fedgate posts the checked request once more from its
/// own page, with the cookie: the user lands at the SP's ACS signed in (browser-slo.mjs waits for the ACS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_authn_request_finds_the_session() {
    use e2e::saml_sp::{SamlSp, SloBinding};
    e2e::node::chromium().unwrap();
    let (receiver_base, _got) = receiver().await;
    let keys = tempfile::tempdir().unwrap();
    let sp = SamlSp::start(SloBinding::Post).unwrap();
    let md = sp.metadata_file(keys.path()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let cfg = format!("[server]\npublic_url = \"{site}/\"\n{}", config(&receiver_base, keys.path(), &[("a", &md)]));
    let gw = Gateway::start_on(listener, &cfg).await.unwrap();
    sp.setup(&gw.url("/saml/metadata")).await.unwrap();
    let env = [
        ("BASE", site.clone()),
        ("USER_NAME", "alice".to_string()),
        ("PASSWORD", "alice-demo".to_string()),
        ("SPS", sp.base.clone()),
        ("START", sp.base.clone()),
        ("SP_LOGOUT_BINDING", "post".to_string()),
        ("SP_LOGIN_QUERY", "binding=post&passive=1".to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        e2e::node::run("browser-slo.mjs", &env, 120)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    let signed_in = &seen["sp_sessions"][0];
    assert_eq!(signed_in["name_id"], "alice", "the SP got an assertion for alice: {seen}");
    assert_eq!(seen["csp"], serde_json::json!([]), "{seen}");
}

/// A shutdown waits for the back-channel logout deliveries still under way (within `server.shutdown_grace`): a
/// client whose endpoint answers 503 once gets the retry even though the gateway got SIGTERM right after the logout
/// page (an upgrade, a scale-down). It used to exit at once and drop the retry with the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_right_after_a_logout_still_delivers_the_back_channel_retry() {
    // The first attempt finds the client restarting; the retry is acknowledged.
    let (base, attempts) = back_channel_receiver(|attempt| {
        (if attempt == 1 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, Duration::ZERO)
    })
    .await;
    let keys = tempfile::tempdir().unwrap();
    let gw = e2e::gateway::GatewayProcess::start(&config(&base, keys.path(), &[]), &[], &[], false).await.unwrap();
    let url = |path: &str| format!("{}{path}", gw.base);
    let c = browser();
    sign_in_alice(&c, &gw.base).await;
    let r = c
        .get(url(&format!(
            "/oauth2/authorize?response_type=code&client_id=rp1&redirect_uri={REDIRECT}&scope=openid&state=s\
             &code_challenge={CHALLENGE}&code_challenge_method=S256"
        )))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(REDIRECT) && loc.contains("code="), "{loc}");
    let html = c.get(url("/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let r = c.post(url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(c);
    gw.stop_with("TERM").await.unwrap();
    let got = attempts.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "the back-channel retry was dropped with the process: {} attempt(s)", got.len());
    assert!(got.iter().all(|(client, token)| client == "rp1" && !token.is_empty()), "{got:?}");
}

/// A back-channel logout token is signed with fedgate's key too, but it is no ID token: as `id_token_hint` at the
/// end-session endpoint it is refused (it was taken as one, naming its client and user, so whoever held an RP's
/// logout token could sign that user out elsewhere without the confirmation page and be sent to the RP's URI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_token_is_no_id_token_hint() {
    let (base, got) = back_channel_receiver(|_| (StatusCode::OK, Duration::ZERO)).await;
    let keys = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&base, keys.path(), &[])).await.unwrap();
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
    let rp2 = sign_in_to(&gw.base, &c, "rp2").await;
    let html = c.get(gw.url("/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    assert_eq!(
        c.post(gw.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap().status(),
        StatusCode::OK
    );
    let logout_token = tokens_for(&got, &["rp2"]).await.remove(0).1;

    // Signed in again; the logout token offered as the hint.
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
    let bye = format!("{base}/bye");
    let url = |hint: &str| {
        let mut u = url::Url::parse(&gw.url("/oauth2/logout")).unwrap();
        u.query_pairs_mut().append_pair("id_token_hint", hint).append_pair("post_logout_redirect_uri", &bye);
        u.to_string()
    };
    let r = c.get(url(&logout_token)).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "a logout token was taken as an ID token hint: {body}");
    assert!(body.contains("not an ID token"), "{body}");
    // A real ID token still works as the hint.
    let r = c.get(url(rp2["id_token"].as_str().unwrap())).send().await.unwrap();
    assert_ne!(r.status(), StatusCode::BAD_REQUEST, "the ID token was refused as a hint");
}

/// A replica killed (SIGKILL, an OOM kill, a node lost) while a back-channel logout is under way takes no logout
/// along: the logout was recorded in the state store before the browser got its answer, so the next start on the
/// same embedded store makes the attempt the dead one could not finish, with a logout token an RP accepts
/// (signature, `sid`, `sub`). It used to live only in the killed process: the client kept its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_survives_the_replica_killed_while_sending_it() {
    let state = tempfile::tempdir().unwrap();
    let store = format!("[store]\nkind = \"embedded\"\npath = \"{}\"\n", state.path().join("state").display());
    back_channel_logout_outlives_a_killed_replica(&store, false).await;
}

/// The same with two replicas on one Redis: replica A is killed while sending the logout token, replica B (which
/// never saw the logout) delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_started_on_a_killed_replica_is_delivered_by_the_other() {
    let redis = e2e::redis::Redis::start().unwrap();
    let store = format!("[store]\nkind = \"redis\"\nurl = \"{}\"\n", redis.url());
    back_channel_logout_outlives_a_killed_replica(&store, true).await;
}

/// Signs alice in to rp1 on a replica with `store`, logs out, kills the replica (SIGKILL) during the first
/// back-channel attempt (the client hangs for 3 s, then answers 503), and checks that the logout token still
/// reaches the client, once: from a second replica already running (`other_replica`), or from a restart on the
/// same address.
async fn back_channel_logout_outlives_a_killed_replica(store: &str, other_replica: bool) {
    let (base, attempts) = back_channel_receiver(|attempt| {
        if attempt == 1 {
            (StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(3))
        } else {
            (StatusCode::OK, Duration::ZERO)
        }
    })
    .await;
    let keys = tempfile::tempdir().unwrap();
    let body = format!("{}\n{store}", config(&base, keys.path(), &[]));
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = free_port();
    // Both replicas publish one issuer: the first one's address.
    let public_url = format!("http://127.0.0.1:{port}/");
    let start = |port: u16| {
        e2e::gateway::GatewayProcess::start_with(
            &body,
            e2e::gateway::ProcessOptions { port: Some(port), public_url: Some(&public_url), ..Default::default() },
        )
    };
    let gw = start(port).await.unwrap();
    let issuer = gw.base.clone();
    let url = |path: &str| format!("{issuer}{path}");
    let c = browser();
    sign_in_alice(&c, &issuer).await;
    let tokens = sign_in_to(&issuer, &c, "rp1").await;
    let id_token = tokens["id_token"].as_str().unwrap().to_string();
    let other = if other_replica { Some(start(free_port()).await.unwrap()) } else { None };
    let html = c.get(url("/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let r = c.post(url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..50 {
        if !attempts.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts.lock().unwrap().len(), 1, "the first attempt is under way");
    gw.stop_with("KILL").await.unwrap();
    let restarted = if other_replica { None } else { Some(start(port).await.unwrap()) };
    // The dead replica's attempt holds the logout for its lease (7 s); then a sweeper (every second) takes it.
    for _ in 0..150 {
        if attempts.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = attempts.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "the back-channel logout died with the replica that was sending it: {got:?}");
    assert_eq!(got[1].0, "rp1");
    let alive = other.as_ref().or(restarted.as_ref()).unwrap();
    verify_logout_token_of(&alive.base, &issuer, &got[1].1, "rp1", &id_token).await;
    // Delivered once is enough: nobody sends it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(attempts.lock().unwrap().len(), 2, "delivered, then sent again");
}
