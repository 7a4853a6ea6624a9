//! The OpenID Connect provider, checked by a real relying party (openid-client) and by hand over HTTP for every
//! refusal a client or attacker would meet.

use base64::Engine as _;
use e2e::gateway::{Gateway, browser, csrf_from, demo_config, http};
use e2e::node;
use reqwest::StatusCode;

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// `[oidc]` with a fresh key directory, a confidential client `app`, a public client `spa`, a client limited to
/// admins, and a machine client for client_credentials.
pub fn oidc_toml(keys: &std::path::Path, alg: &str) -> String {
    format!(
        r#"
[oidc]
keys_dir = "{keys}"
signing_algorithm = "{alg}"
[[oidc.clients]]
client_id = "app"
name = "Demo app"
client_secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["http://127.0.0.1:9/bye"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email", "groups", "roles", "offline_access"]
[[oidc.clients]]
client_id = "spa"
public = true
redirect_uris = ["{REDIRECT}"]
[[oidc.clients]]
client_id = "admins-only"
client_secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
allowed_groups = ["ai-admins"]
[[oidc.clients]]
client_id = "robot"
client_secret = "{SECRET}"
grant_types = ["client_credentials"]
scopes = ["roles"]
"#,
        keys = keys.display()
    )
}

async fn gateway(alg: &str) -> (Gateway, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&format!("{}{}", demo_config(), oidc_toml(keys.path(), alg))).await.unwrap();
    (gw, keys)
}

/// The relying-party flow against a gateway whose users come from a real slapd.
async fn ldap_gateway(alg: &str) -> (e2e::slapd::Slapd, Gateway, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let (slapd, gw) = crate::login::ldap_gateway(&oidc_toml(keys.path(), alg)).await;
    (slapd, gw, keys)
}

async fn run_rp(gw: &Gateway, alg: &str, user: &str, password: &str) -> serde_json::Value {
    run_rp_at(&gw.base, alg, user, password).await
}

/// openid-client's code flow, configured with `issuer` only (discovery from there).
pub(crate) async fn run_rp_at(issuer: &str, alg: &str, user: &str, password: &str) -> serde_json::Value {
    run_rp_as(issuer, "app", alg, user, password).await
}

/// openid-client's code flow as `client_id` (secret [`SECRET`], redirect [`REDIRECT`]), from `issuer`'s discovery.
pub(crate) async fn run_rp_as(
    issuer: &str,
    client_id: &str,
    alg: &str,
    user: &str,
    password: &str,
) -> serde_json::Value {
    run_rp_redirected(issuer, client_id, REDIRECT, alg, user, password).await
}

/// openid-client's code flow as `client_id` (secret [`SECRET`]) with `redirect` as its redirect URI.
async fn run_rp_redirected(
    issuer: &str,
    client_id: &str,
    redirect: &str,
    alg: &str,
    user: &str,
    password: &str,
) -> serde_json::Value {
    let env = [
        ("ISSUER", issuer.to_string()),
        ("CLIENT_ID", client_id.to_string()),
        ("CLIENT_SECRET", SECRET.to_string()),
        ("REDIRECT_URI", redirect.to_string()),
        ("POST_LOGOUT", "http://127.0.0.1:9/bye".to_string()),
        ("USER_NAME", user.to_string()),
        ("PASSWORD", password.to_string()),
        ("ALG", alg.to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node::run("oidc-rp.mjs", &env, 60)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap()
}

pub(crate) fn check_rp(seen: &serde_json::Value, alg: &str, sub_len: usize) {
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["id_token"]["alg"], alg);
    assert_eq!(seen["id_token"]["preferred_username"], "alice");
    assert_eq!(
        seen["id_token"]["sub"].as_str().unwrap().len(),
        sub_len,
        "sub is the stable id, not the username: {seen}"
    );
    assert_ne!(seen["id_token"]["sub"], "alice");
    assert_eq!(seen["id_token"]["roles"], serde_json::json!(["admin"]));
    assert_eq!(seen["userinfo"]["email"], "alice@example.org");
    assert_eq!(seen["refresh"]["rotated"], true);
    assert_eq!(seen["reuse"], "invalid_grant", "{seen}");
    assert_eq!(seen["logout"]["status"], 303);
    assert_eq!(seen["logout"]["location"], "http://127.0.0.1:9/bye?state=bye");
    assert_eq!(seen["after_logout_status"], 303, "the gateway session ended");
    assert_eq!(seen["login_page_names_app"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_code_flow_with_pkce_rs256() {
    let (_slapd, gw, _keys) = ldap_gateway("RS256").await;
    check_rp(&run_rp(&gw, "RS256", "alice", "alice-password").await, "RS256", 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_code_flow_with_pkce_es256() {
    let (_slapd, gw, _keys) = ldap_gateway("ES256").await;
    check_rp(&run_rp(&gw, "ES256", "alice", "alice-password").await, "ES256", 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_code_flow_with_pkce_eddsa_demo_directory() {
    let (gw, _keys) = gateway("EdDSA").await;
    check_rp(&run_rp(&gw, "EdDSA", "alice", "alice-demo").await, "EdDSA", "static:alice".len());
}

/// Logs `user` in on `c` (a browser), then starts an authorization request with `query` and returns the final
/// redirect (or page) response of the authorize endpoint.
async fn authorize(gw: &Gateway, c: &reqwest::Client, query: &str) -> reqwest::Response {
    c.get(gw.url(&format!("/oauth2/authorize?{query}"))).send().await.unwrap()
}

pub(crate) async fn logged_in(gw: &Gateway, user: &str, pw: &str) -> reqwest::Client {
    let c = browser();
    let html = c.get(gw.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let r =
        c.post(gw.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    c
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub(crate) async fn code_for(gw: &Gateway, c: &reqwest::Client, client_id: &str) -> String {
    let r = authorize(
        gw,
        c,
        &format!("response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&scope=openid%20roles&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    )
    .await;
    let loc = location(&r);
    query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"))
}

pub(crate) async fn redeem(gw: &Gateway, code: &str, secret: &str) -> reqwest::Response {
    http()
        .post(gw.url("/oauth2/token"))
        .basic_auth("app", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_redirect_uri_is_shown_on_the_gateway_never_redirected() {
    let (gw, _k) = gateway("RS256").await;
    let c = logged_in(&gw, "alice", "alice-demo").await;
    for bad in [
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:9/CALLBACK",
        "http://127.0.0.1:9/callback?x=1",
        "https://evil.example/cb",
    ] {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("response_type", "code"), ("client_id", "app"), ("redirect_uri", bad), ("scope", "openid")])
            .finish();
        let r = authorize(&gw, &c, &q).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("Invalid sign-in request"));
    }
}

#[tokio::test]
async fn public_clients_must_use_s256_pkce() {
    let (gw, _k) = gateway("RS256").await;
    let c = logged_in(&gw, "alice", "alice-demo").await;
    let base = format!("response_type=code&client_id=spa&redirect_uri={REDIRECT}&scope=openid&state=xyz");
    for extra in [
        "",
        "&code_challenge=abc&code_challenge_method=plain",
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=plain"),
    ] {
        let r = authorize(&gw, &c, &format!("{base}{extra}")).await;
        let loc = location(&r);
        assert!(loc.starts_with(REDIRECT), "{extra}: {loc}");
        assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{extra}: {loc}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
    }
}

#[tokio::test]
async fn codes_are_single_use_and_a_replay_revokes_what_they_issued() {
    let (gw, _k) = gateway("RS256").await;
    let c = logged_in(&gw, "alice", "alice-demo").await;
    let code = code_for(&gw, &c, "app").await;
    let first = redeem(&gw, &code, SECRET).await;
    if first.status() != StatusCode::OK {
        panic!("{}", first.text().await.unwrap());
    }
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let tokens: serde_json::Value = first.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap().to_string();
    let ui = http().get(gw.url("/oauth2/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    let replay = redeem(&gw, &code, SECRET).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let ui = http().get(gw.url("/oauth2/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(ui.status(), StatusCode::UNAUTHORIZED, "the replay revoked the first access token");
    assert!(ui.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client_401() {
    let (gw, _k) = gateway("RS256").await;
    let c = logged_in(&gw, "alice", "alice-demo").await;
    let code = code_for(&gw, &c, "app").await;
    let r = redeem(&gw, &code, "not-the-secret").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let (gw, _k) = gateway("RS256").await;
    let c = logged_in(&gw, "alice", "alice-demo").await;
    let code = code_for(&gw, &c, "app").await;
    gw.clock.advance(std::time::Duration::from_secs(61));
    let r = redeem(&gw, &code, SECRET).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn unknown_scope_outside_group_and_prompt_none_go_back_to_the_client_with_errors() {
    let (gw, _k) = gateway("RS256").await;
    let pkce = format!("&code_challenge={CHALLENGE}&code_challenge_method=S256&state=st");
    // prompt=none without a session.
    let anon = browser();
    let r = authorize(
        &gw,
        &anon,
        &format!("response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid&prompt=none{pkce}"),
    )
    .await;
    assert_eq!(query_param(&location(&r), "error").as_deref(), Some("login_required"));
    let bob = logged_in(&gw, "bob", "bob-demo").await;
    let r = authorize(
        &gw,
        &bob,
        &format!("response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid%20wallet{pkce}"),
    )
    .await;
    assert_eq!(query_param(&location(&r), "error").as_deref(), Some("invalid_scope"));
    let r = authorize(
        &gw,
        &bob,
        &format!("response_type=code&client_id=admins-only&redirect_uri={REDIRECT}&scope=openid{pkce}"),
    )
    .await;
    assert_eq!(query_param(&location(&r), "error").as_deref(), Some("access_denied"), "bob is not in ai-admins");
}

#[tokio::test]
async fn no_session_goes_through_the_login_page_and_back() {
    let (gw, _k) = gateway("RS256").await;
    let c = browser();
    let r = authorize(&gw, &c, &format!("response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256&login_hint=bob")).await;
    let loc = location(&r);
    assert!(loc.starts_with("/login?rd=%2Foauth2%2Fauthorize%2Fresume"), "{loc}");
    let html = c.get(gw.url(&loc)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("value=\"bob\""), "login_hint prefills the username");
    assert!(html.contains("Demo app"), "the login page names the app");
}

#[tokio::test]
async fn client_credentials_and_key_rotation() {
    let (gw, keys) = gateway("ES256").await;
    let tok = |gw: &Gateway| {
        http()
            .post(gw.url("/oauth2/token"))
            .basic_auth("robot", Some(SECRET))
            .form(&[("grant_type", "client_credentials"), ("scope", "roles")])
            .send()
    };
    let r = tok(&gw).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    let old = body["access_token"].as_str().unwrap().to_string();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(old.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    let old_kid = header["kid"].as_str().unwrap().to_string();
    let cfg_path = keys.path().join("fedgate.toml");
    std::fs::write(&cfg_path, format!("{}{}", demo_config(), oidc_toml(keys.path(), "ES256"))).unwrap();
    let out = std::process::Command::new(e2e::gateway::fedgate_bin().unwrap())
        .args(["keys", "rotate", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    gw.stop().await.unwrap();
    let gw = Gateway::start(&format!("{}{}", demo_config(), oidc_toml(keys.path(), "ES256"))).await.unwrap();
    let jwks: serde_json::Value = http().get(gw.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&old_kid.as_str()), "the old key stays published");
    let new = tok(&gw).await.unwrap().json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new.split('.').next(), old.split('.').next(), "new tokens use the new key");
    // The token signed before the rotation still verifies with the keys now published.
    let set = federation::oidc::KeySet::load(keys.path()).unwrap();
    let key = set.find(&old_kid).expect("old key still in the set");
    let mut v = jsonwebtoken::Validation::new(key.jwt_algorithm());
    v.validate_aud = false;
    v.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(&old, key.decoding_key(), &v).expect("old token verifies after rotation");
}

/// An ID token for `user` issued to client `app` (code flow on the browser `c`, where `user` is signed in).
async fn id_token_for(gw: &Gateway, c: &reqwest::Client) -> String {
    let code = code_for(gw, c, "app").await;
    let tokens: serde_json::Value = redeem(gw, &code, SECRET).await.json().await.unwrap();
    tokens["id_token"].as_str().unwrap().to_string()
}

/// Logout CSRF: any page can make the browser GET `/oauth2/logout` (or auto-submit a form to it). Without a valid
/// `id_token_hint` for this session's user the gateway only asks "Sign out?"; the session ends when the user
/// posts that page's form (its CSRF token), or at once for the client's own valid hint.
#[tokio::test]
async fn rp_initiated_logout_without_a_valid_hint_only_asks() {
    let (gw, _k) = gateway("RS256").await;
    let alice = logged_in(&gw, "alice", "alice-demo").await;
    id_token_for(&gw, &alice).await; // alice signs in to `app`, like a user an app would log out
    let bob = logged_in(&gw, "bob", "bob-demo").await;
    let bob_token = id_token_for(&gw, &bob).await;
    let signed_in = |c: reqwest::Client| {
        let url = gw.url("/");
        async move { c.get(url).send().await.unwrap().status() == StatusCode::OK }
    };
    let clears_cookie = |r: &reqwest::Response| {
        r.headers().get_all("set-cookie").iter().any(|v| v.to_str().unwrap().starts_with("fedgate_session=;"))
    };
    const BYE: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fbye";

    // Cross-site GETs: no hint; a client, its registered redirect and a state; someone else's (valid) hint.
    let mut confirm_page = String::new();
    for query in [
        String::new(),
        format!("?client_id=app&post_logout_redirect_uri={BYE}&state=s1"),
        format!("?id_token_hint={bob_token}"),
    ] {
        let r = alice.get(gw.url(&format!("/oauth2/logout{query}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        assert!(!clears_cookie(&r), "{query}");
        let html = r.text().await.unwrap();
        assert!(html.contains("action=\"/oauth2/logout\"") && html.contains("Sign out"), "{html}");
        assert!(signed_in(alice.clone()).await, "{query}");
        if query.contains("state=s1") {
            confirm_page = html;
        }
    }
    assert!(confirm_page.contains(r#"name="post_logout_redirect_uri" value="http://127.0.0.1:9/bye""#));
    // A forged cross-site form POST, without the page's token or with a made-up one: still only the question.
    for csrf in ["", "forged-token"] {
        let r =
            alice.post(gw.url("/oauth2/logout")).form(&[("client_id", "app"), ("csrf", csrf)]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(signed_in(alice.clone()).await, "{csrf:?}");
    }
    // The gateway's own /logout by GET only asks too.
    let r = alice.get(gw.url("/logout")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(signed_in(alice.clone()).await);

    // The user confirms: the form goes back with its token, the session ends, the app's registered URI gets state.
    let csrf = csrf_from(&confirm_page).unwrap();
    let r = alice
        .post(gw.url("/oauth2/logout"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("client_id", "app"),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
            ("state", "s1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "http://127.0.0.1:9/bye?state=s1");
    assert!(!signed_in(alice.clone()).await);

    // bob's own client logs him out with his valid hint at once; an unregistered redirect is refused first.
    let r = bob
        .get(gw.url(&format!(
            "/oauth2/logout?id_token_hint={bob_token}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fother"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(signed_in(bob.clone()).await);
    let r = bob
        .get(gw.url(&format!("/oauth2/logout?id_token_hint={bob_token}&post_logout_redirect_uri={BYE}&state=s2")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "http://127.0.0.1:9/bye?state=s2");
    assert!(clears_cookie(&r));
    assert!(!signed_in(bob.clone()).await);
}

/// A plain client whose connections come from `ip` (anything in 127.0.0.0/8 is loopback).
fn http_from(ip: &str) -> reqwest::Client {
    gateway::install_crypto_provider();
    reqwest::Client::builder().no_proxy().local_address(ip.parse::<std::net::IpAddr>().ok()).build().unwrap()
}

/// Brute force on a client secret: 30 wrong secrets for `robot` in a burst. Past `client_max_failures` (10) the
/// gateway stops checking and answers 429 + Retry-After, and the right secret is refused too for a while, also
/// from another address; other clients are unaffected. Runs the real binary.
#[tokio::test]
async fn wrong_client_secrets_are_throttled_per_client() {
    let keys = tempfile::tempdir().unwrap();
    let gw = e2e::gateway::GatewayProcess::start(
        &format!("{}{}", demo_config(), oidc_toml(keys.path(), "ES256")),
        &[],
        &[],
        false,
    )
    .await
    .unwrap();
    let token = |c: &reqwest::Client, secret: &str| {
        c.post(format!("{}/oauth2/token", gw.base))
            .basic_auth("robot", Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "roles")])
            .send()
    };
    let attacker = http_from("127.0.0.60");
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(token(&attacker, &format!("guess-{i}")).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 10, "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    for from in ["127.0.0.60", "127.0.0.61"] {
        let r = token(&http_from(from), SECRET).await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{from}");
        let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(wait > 0 && wait <= 300, "{wait}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    // The same holds at introspection and revocation, and another client from another address is unaffected.
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let r = http_from("127.0.0.61")
            .post(format!("{}{path}", gw.base))
            .basic_auth("robot", Some(SECRET))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    let r = http_from("127.0.0.62")
        .post(format!("{}/oauth2/introspect", gw.base))
        .basic_auth("app", Some(SECRET))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A public client proves nothing but its client_id, which any web page shows: it must not read what a token says
/// about its user at the introspection endpoint (Keycloak refuses it too). The API that receives the token — a
/// confidential client — still can.
#[tokio::test]
async fn a_public_client_cannot_introspect_tokens() {
    let (gw, _k) = gateway("ES256").await;
    let alice = logged_in(&gw, "alice", "alice-demo").await;
    let code = code_for(&gw, &alice, "app").await;
    let tokens: serde_json::Value = redeem(&gw, &code, SECRET).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    for token in [access, refresh] {
        let r = http()
            .post(gw.url("/oauth2/introspect"))
            .form(&[("client_id", "spa"), ("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = r.text().await.unwrap();
        assert!(!body.contains("alice") && !body.contains("\"active\""), "the public client learnt: {body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"], "unauthorized_client", "{err}");
        assert!(err["error_description"].as_str().unwrap().contains("confidential client"), "{err}");
    }
    let r = http()
        .post(gw.url("/oauth2/introspect"))
        .basic_auth("app", Some(SECRET))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["preferred_username"], "alice", "{body}");
}

/// RFC 6750 §2.2, as Keycloak takes it: a POST to UserInfo may carry the access token as the form parameter
/// `access_token` instead of the header (at fedgate's URL and at the Keycloak realm's), but never both, nor twice;
/// a POST with the header and another body type is answered as before.
#[tokio::test]
async fn userinfo_takes_the_access_token_from_a_post_form_body_but_only_one_way() {
    let (gw, _k) = gateway("RS256").await;
    let c = logged_in(&gw, "alice", "alice-demo").await;
    let code = code_for(&gw, &c, "app").await;
    let tokens: serde_json::Value = redeem(&gw, &code, SECRET).await.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap().to_string();
    let by_form = http().post(gw.url("/oauth2/userinfo")).form(&[("access_token", at.as_str())]).send().await.unwrap();
    assert_eq!(by_form.status(), StatusCode::OK);
    assert_eq!(by_form.headers()["cache-control"], "no-store");
    let claims: serde_json::Value = by_form.json().await.unwrap();
    assert_eq!(claims["sub"], "static:alice", "{claims}");
    let by_header = http()
        .post(gw.url("/oauth2/userinfo"))
        .bearer_auth(&at)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK, "the header with a JSON body");
    let both = http()
        .post(gw.url("/oauth2/userinfo"))
        .bearer_auth(&at)
        .form(&[("access_token", at.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST, "two ways at once");
    let body: serde_json::Value = both.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    let twice = http()
        .post(gw.url("/oauth2/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={at}&access_token={at}"))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST, "the parameter twice");
    let wrong = http().post(gw.url("/oauth2/userinfo")).form(&[("access_token", "not-a-token")]).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

/// RFC 8252 §7.3 (a native app on a loopback port chosen at run time): client `app` registers
/// `http://127.0.0.1/callback`, without a port; openid-client runs its whole code flow with PKCE on
/// `http://127.0.0.1:PORT/callback` for a port picked now, and gets its tokens. The same path on another host name
/// (`localhost`) or another path is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_app_on_any_loopback_port_signs_in_with_openid_client() {
    let keys = tempfile::tempdir().unwrap();
    let toml = oidc_toml(keys.path(), "ES256").replacen(
        &format!("redirect_uris = [\"{REDIRECT}\"]"),
        "redirect_uris = [\"http://127.0.0.1/callback\"]",
        1,
    );
    let gw = Gateway::start(&format!("{}{toml}", demo_config())).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let seen = run_rp_redirected(&gw.base, "app", &redirect, "ES256", "alice", "alice-demo").await;
    assert_eq!(seen["id_token"]["preferred_username"], "alice", "{seen}");
    assert_eq!(seen["refresh"]["rotated"], true, "{seen}");

    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-demo", "").await;
    for refused in [format!("http://localhost:{port}/callback"), format!("http://127.0.0.1:{port}/other")] {
        let r = c
            .get(gw.url(&format!(
                "/oauth2/authorize?response_type=code&client_id=app&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&redirect_uri={}",
                url::form_urlencoded::byte_serialize(refused.as_bytes()).collect::<String>()
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{refused} was allowed");
    }
}
