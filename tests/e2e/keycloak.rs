//! Keycloak realm mode (`[keycloak]`) and Keycloak-shaped tokens (`claims_profile = "keycloak"`), checked by
//! clients written for Keycloak: keycloak-js in Chromium, openid-client given only the realm issuer, pysaml2 given
//! the realm descriptor; and the access token's claim layout against a recorded Keycloak token's.

use base64::Engine as _;
use e2e::gateway::{Gateway, browser, demo_config, http};
use e2e::node;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::oidc::{REDIRECT, SECRET};

const REALM: &str = "corp";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SP_ENTITY: &str = "http://127.0.0.1:9/sp";
const SP_ACS: &str = "http://127.0.0.1:9/acs";

/// The demo directory, `[keycloak]` with `prefix`, `[oidc]` with the openid-client `app` (fedgate profile), a
/// confidential Keycloak-profile client `kc-app` with client roles, the public keycloak-js client `spa-kc` whose
/// app runs at `spa_origin`, and `[saml]` with one SP.
fn realm_toml(keys: &std::path::Path, prefix: &str, spa_origin: &str, legacy: bool) -> String {
    format!(
        r#"{demo}
[keycloak]
realm = "{REALM}"
path_prefix = "{prefix}"
legacy_logout_redirect_uri = {legacy}
[oidc]
keys_dir = "{keys}/oidc"
[[oidc.clients]]
client_id = "app"
name = "Demo app"
client_secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["http://127.0.0.1:9/bye"]
scopes = ["openid", "profile", "email", "groups", "roles", "offline_access"]
[[oidc.clients]]
client_id = "kc-app"
client_secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["http://127.0.0.1:9/bye"]
claims_profile = "keycloak"
client_roles = {{ editor = ["ai-admins"], viewer = ["staff"], nobody = ["nobody-group"] }}
[[oidc.clients]]
client_id = "kc-wild"
client_secret = "{SECRET}"
redirect_uri_rules = "keycloak"
redirect_uris = ["http://127.0.0.1:9/wild/*"]
post_logout_redirect_uris = ["+"]
[[oidc.clients]]
client_id = "spa-kc"
public = true
redirect_uris = ["{spa_origin}/", "{spa_origin}/sso", "{spa_origin}/iframe"]
post_logout_redirect_uris = ["{spa_origin}/bye"]
claims_profile = "keycloak"
[saml]
keys_dir = "{keys}/saml"
[[saml.service_providers]]
name = "app"
entity_id = "{SP_ENTITY}"
acs_urls = ["{SP_ACS}"]
default_relay_state = "sp-default"
attributes = {{ mail = "{{email}}" }}
"#,
        demo = demo_config(),
        keys = keys.display(),
    )
}

async fn realm_gateway(prefix: &str, spa_origin: &str, legacy: bool) -> (Gateway, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&realm_toml(keys.path(), prefix, spa_origin, legacy)).await.unwrap();
    (gw, keys)
}

fn realm_url(gw: &Gateway, prefix: &str) -> String {
    format!("{}{prefix}/realms/{REALM}", gw.base)
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default()
}

fn pair(s: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(s.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The JSON type of a value, as a recorded layout names it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The claim layout (names and JSON types, not values) of an access token Keycloak 26.0 issued to a confidential
/// client with the default client scopes, for an LDAP user with e-mail, given and family name, one realm role and
/// one client role (`aud` is a string there because only `account` was in it).
const KEYCLOAK_ACCESS_TOKEN_LAYOUT: &[(&str, &str)] = &[
    ("exp", "number"),
    ("iat", "number"),
    ("auth_time", "number"),
    ("jti", "string"),
    ("iss", "string"),
    ("aud", "string"),
    ("sub", "string"),
    ("typ", "string"),
    ("azp", "string"),
    ("sid", "string"),
    ("acr", "string"),
    ("allowed-origins", "array"),
    ("realm_access", "object"),
    ("resource_access", "object"),
    ("scope", "string"),
    ("email_verified", "boolean"),
    ("name", "string"),
    ("preferred_username", "string"),
    ("given_name", "string"),
    ("family_name", "string"),
    ("email", "string"),
];

/// The ID token of the same login (Keycloak keeps roles out of it). One known difference: Keycloak writes a single
/// `aud` as a string, fedgate's ID tokens always as an array (OIDC Core §2 allows both; RPs accept both).
const KEYCLOAK_ID_TOKEN_LAYOUT: &[(&str, &str)] = &[
    ("exp", "number"),
    ("iat", "number"),
    ("auth_time", "number"),
    ("jti", "string"),
    ("iss", "string"),
    ("aud", "string|array"),
    ("sub", "string"),
    ("typ", "string"),
    ("azp", "string"),
    ("nonce", "string"),
    ("sid", "string"),
    ("at_hash", "string"),
    ("acr", "string"),
    ("email_verified", "boolean"),
    ("name", "string"),
    ("preferred_username", "string"),
    ("given_name", "string"),
    ("family_name", "string"),
    ("email", "string"),
];

/// Every claim of `layout` is in `claims` with that JSON type, and `claims` has nothing beyond it but `extra`.
fn assert_layout(claims: &Value, layout: &[(&str, &str)], extra: &[&str], what: &str) {
    let obj = claims.as_object().unwrap();
    for (name, want) in layout {
        let got = obj.get(*name).map_or("missing", kind);
        assert!(want.split('|').any(|w| w == got), "{what}: claim {name} is {got}, not {want}, in {claims:#}");
    }
    for name in obj.keys() {
        assert!(
            layout.iter().any(|(n, _)| n == name) || extra.contains(&name.as_str()),
            "{what}: claim {name} is not in Keycloak's layout: {claims:#}"
        );
    }
}

/// Logs alice in, authorizes `client` at the realm's `auth` endpoint with `extra` parameters, and returns the
/// browser and the authorize endpoint's answer.
async fn authorize(gw: &Gateway, prefix: &str, client: &str, extra: &str) -> (reqwest::Client, reqwest::Response) {
    let c = crate::oidc::logged_in(gw, "alice", "alice-demo").await;
    let url = format!(
        "{}/protocol/openid-connect/auth?response_type=code&client_id={client}&redirect_uri={REDIRECT}&scope=openid&state=s1&nonce=n1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        realm_url(gw, prefix)
    );
    let r = c.get(url).send().await.unwrap();
    (c, r)
}

async fn redeem(gw: &Gateway, prefix: &str, client: &str, code: &str) -> Value {
    let r = http()
        .post(format!("{}/protocol/openid-connect/token", realm_url(gw, prefix)))
        .basic_auth(client, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_configured_with_only_the_realm_issuer() {
    let (gw, _k) = realm_gateway("/auth", "http://127.0.0.1:9", false).await;
    let issuer = realm_url(&gw, "/auth");
    // Discovery under the realm advertises the realm's endpoints; the root document names the same issuer.
    let doc: Value =
        http().get(format!("{issuer}/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["issuer"], issuer);
    for (key, path) in [
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("introspection_endpoint", "/token/introspect"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/certs"),
        ("end_session_endpoint", "/logout"),
        ("revocation_endpoint", "/revoke"),
        ("check_session_iframe", "/login-status-iframe.html"),
    ] {
        assert_eq!(doc[key], format!("{issuer}/protocol/openid-connect{path}"), "{key}");
    }
    assert!(doc["response_modes_supported"].as_array().unwrap().contains(&json!("fragment")));
    let root: Value =
        http().get(gw.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(root["issuer"], issuer, "one issuer per realm, whatever the path");
    // The issuer does not follow the request's Host.
    let other_host: Value = http()
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other_host["issuer"], issuer);
    // Without the prefix there is nothing (Keycloak < 17 URLs only).
    let r = http().get(format!("{}/realms/{REALM}/.well-known/openid-configuration", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let seen = crate::oidc::run_rp_at(&issuer, "RS256", "alice", "alice-demo").await;
    assert_eq!(seen["issuer"], issuer, "{seen}");
    crate::oidc::check_rp(&seen, "RS256", "static:alice".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_profile_tokens_have_keycloaks_claim_layout() {
    let (gw, _k) = realm_gateway("", "http://127.0.0.1:9", false).await;
    let realm = realm_url(&gw, "");
    let (_c, r) = authorize(&gw, "", "kc-app", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = location(&r);
    let code = pair(url::Url::parse(&loc).unwrap().query().unwrap_or(""), "code").unwrap();
    let tokens = redeem(&gw, "", "kc-app", &code).await;
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 0)["typ"], "JWT", "Spring resource servers refuse at+jwt");
    let claims = jwt_part(at, 1);
    // `session_state`: Keycloak up to 25 wrote the session id there too, and keycloak-js before 26 reads its session
    // id from it for the session-status iframe (26 reads `sid`); the same value as `sid`.
    assert_layout(&claims, KEYCLOAK_ACCESS_TOKEN_LAYOUT, &["client_id", "session_state"], "access token");
    assert_eq!(claims["session_state"], claims["sid"], "keycloak-js < 26 finds its session id");
    assert_eq!(claims["iss"], realm);
    assert_eq!(claims["typ"], "Bearer");
    assert_eq!(claims["azp"], "kc-app");
    assert_eq!(claims["acr"], "1", "a login just now");
    assert_eq!(claims["realm_access"], json!({ "roles": ["admin"] }));
    assert_eq!(claims["resource_access"], json!({ "kc-app": { "roles": ["editor", "viewer"] } }));
    assert_eq!(claims["allowed-origins"], json!(["http://127.0.0.1:9"]));
    assert_eq!(claims["scope"], "openid profile email", "Keycloak's default scopes without being requested");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["preferred_username"], "alice");

    let id = tokens["id_token"].as_str().unwrap();
    let id_claims = jwt_part(id, 1);
    // `amr` (how the user authenticated: "pwd", or "fed" through an upstream provider) is a standard claim Keycloak
    // sends with its AMR mapper; RPs that do not know it ignore it.
    assert_layout(&id_claims, KEYCLOAK_ID_TOKEN_LAYOUT, &["amr", "session_state"], "ID token");
    assert_eq!(id_claims["session_state"], id_claims["sid"]);
    assert_eq!(id_claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id_claims["typ"], "ID");
    assert_eq!(id_claims["sid"], claims["sid"]);

    // Introspection carries the roles too; userinfo takes the `typ: JWT` token and carries none.
    let intro: Value = http()
        .post(format!("{realm}/protocol/openid-connect/token/introspect"))
        .basic_auth("kc-app", Some(SECRET))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro["active"], true, "{intro}");
    assert_eq!(intro["realm_access"], json!({ "roles": ["admin"] }));
    assert_eq!(intro["resource_access"]["kc-app"]["roles"], json!(["editor", "viewer"]));
    let info = http().get(format!("{realm}/protocol/openid-connect/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["preferred_username"], "alice");
    assert!(info.get("realm_access").is_none(), "{info}");
    // An ID token is not an access token, even with the same header `typ`.
    let r = http().get(format!("{realm}/protocol/openid-connect/userinfo")).bearer_auth(id).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // keycloak-connect's logout: POST refresh_token with client authentication → 204, and that token is dead.
    let rt = tokens["refresh_token"].as_str().unwrap();
    let r = http()
        .post(format!("{realm}/protocol/openid-connect/logout"))
        .basic_auth("kc-app", Some(SECRET))
        .form(&[("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = http()
        .post(format!("{realm}/protocol/openid-connect/token"))
        .basic_auth("kc-app", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // …and the access token of that login too.
    let r = http().get(format!("{realm}/protocol/openid-connect/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Wrong client secret: refused, nothing revoked.
    let r = http()
        .post(format!("{realm}/protocol/openid-connect/logout"))
        .basic_auth("kc-app", Some("wrong-secret-0123456789"))
        .form(&[("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_modes_fragment_and_form_post() {
    let (gw, _k) = realm_gateway("", "http://127.0.0.1:9", false).await;
    let (_c, r) = authorize(&gw, "", "kc-app", "&response_mode=fragment").await;
    let loc = url::Url::parse(&location(&r)).unwrap();
    assert_eq!(loc.query(), None, "{loc}");
    let frag = loc.fragment().unwrap_or("");
    assert_eq!(pair(frag, "state").as_deref(), Some("s1"));
    assert!(redeem(&gw, "", "kc-app", &pair(frag, "code").unwrap()).await["access_token"].is_string());

    let (_c, r) = authorize(&gw, "", "kc-app", "&response_mode=form_post").await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("form-action http://127.0.0.1:9"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{REDIRECT}\"")), "{html}");
    let code = html.split("name=\"code\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    assert!(html.contains("name=\"state\" value=\"s1\""), "{html}");
    assert!(redeem(&gw, "", "kc-app", code).await["access_token"].is_string());

    let (_c, r) = authorize(&gw, "", "kc-app", "&response_mode=jwt").await;
    assert!(location(&r).contains("error=invalid_request"), "{}", location(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_logout_asks_without_a_hint_and_takes_legacy_redirect_uri_only_when_on() {
    for legacy in [false, true] {
        let (gw, _k) = realm_gateway("", "http://127.0.0.1:9", legacy).await;
        let logout = format!("{}/protocol/openid-connect/logout", realm_url(&gw, ""));
        let c = crate::oidc::logged_in(&gw, "alice", "alice-demo").await;
        // No id_token_hint: the confirmation page (with its CSRF token), nothing ended yet.
        let r = c.get(format!("{logout}?client_id=app&post_logout_redirect_uri=http://127.0.0.1:9/bye")).send().await;
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(html.contains("name=\"csrf\""), "{html}");
        // Legacy redirect_uri with client_id: used only when turned on.
        let r = c
            .get(format!("{logout}?client_id=app&redirect_uri=http://127.0.0.1:9/bye"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(r.contains("http://127.0.0.1:9/bye"), legacy, "legacy={legacy}: {r}");
        let csrf = e2e::gateway::csrf_from(&r).unwrap();
        let mut form = vec![("csrf", csrf.as_str()), ("client_id", "app")];
        if legacy {
            form.push(("post_logout_redirect_uri", "http://127.0.0.1:9/bye"));
        }
        let r = c.post(gw.url("/oauth2/logout")).form(&form).send().await.unwrap();
        let after = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(after.status(), StatusCode::SEE_OTHER, "signed out (legacy={legacy}, logout {})", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_with_the_realm_descriptor_and_the_clients_url() {
    let (gw, _k) = realm_gateway("", "http://127.0.0.1:9", false).await;
    let realm = realm_url(&gw, "");
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("idp.xml");
    let metadata = http().get(format!("{realm}/protocol/saml/descriptor")).send().await.unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);
    let xml = metadata.text().await.unwrap();
    assert_eq!(crate::saml::get(&xml, "md:EntityDescriptor", "entityID"), realm, "entity ID is the realm URL");
    assert!(xml.contains(&format!("Location=\"{realm}/protocol/saml\"")), "{xml}");
    std::fs::write(&md, &xml).unwrap();
    let md_s = md.to_str().unwrap().to_string();

    // SP-initiated, by HTTP-Redirect to /protocol/saml.
    let req = {
        let md_s = md_s.clone();
        tokio::task::spawn_blocking(move || crate::saml::pysaml2(&["request", &md_s, SP_ENTITY, SP_ACS], None))
            .await
            .unwrap()
    };
    let url = req["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{realm}/protocol/saml?SAMLRequest=")), "{url}");
    let c = browser();
    let r = c.get(&url).send().await.unwrap();
    let rd = e2e::gateway::rd_of(&r).unwrap();
    let login = crate::login::login(&c, &gw, "bob", "bob-demo", &rd).await;
    let html = c.get(gw.url(&location(&login))).send().await.unwrap().text().await.unwrap();
    let (action, xml, _) = crate::saml::posted(&html);
    assert_eq!(action, SP_ACS);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let req_id = req["id"].as_str().unwrap().to_string();
    let seen = {
        let md_s = md_s.clone();
        tokio::task::spawn_blocking(move || {
            crate::saml::pysaml2(&["consume", &md_s, SP_ENTITY, SP_ACS, &req_id], Some(&b64))
        })
        .await
        .unwrap()
    };
    assert_eq!(seen["name_id"], "bob");
    assert_eq!(seen["issuer"], realm, "Response Issuer is the realm URL");

    // IdP-initiated at /protocol/saml/clients/{name}: the RelayState parameter, else the SP's default.
    for (query, relay) in [("?RelayState=deep%2Flink", "deep/link"), ("", "sp-default")] {
        let r = c.get(format!("{realm}/protocol/saml/clients/app{query}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (action, xml, got) = crate::saml::posted(&r.text().await.unwrap());
        assert_eq!(action, SP_ACS);
        assert_eq!(got.as_deref(), Some(relay));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
        let md_s = md_s.clone();
        let seen = tokio::task::spawn_blocking(move || {
            crate::saml::pysaml2(&["consume", &md_s, SP_ENTITY, SP_ACS], Some(&b64))
        })
        .await
        .unwrap();
        assert_eq!(seen["name_id"], "bob");
    }
    let r = c.get(format!("{realm}/protocol/saml/clients/nope")).send().await.unwrap();
    assert!(r.status().is_client_error());

    // The LogoutRequest goes to the same URL: pysaml2's request for bob ends the session.
    let out = {
        let md_s = md_s.clone();
        tokio::task::spawn_blocking(move || {
            crate::saml::pysaml2(&["logout-request", &md_s, SP_ENTITY, SP_ACS, "bob"], None)
        })
        .await
        .unwrap()
    };
    let url = out["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{realm}/protocol/saml?SAMLRequest=")), "{url}");
    c.get(&url).send().await.unwrap();
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER, "signed out");

    // The account console URL shows the account page (here: asks to log in first).
    let r = c.get(format!("{realm}/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let c2 = crate::oidc::logged_in(&gw, "alice", "alice-demo").await;
    let page = c2.get(format!("{realm}/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("alice"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_js_in_chromium_logs_in_refreshes_and_logs_out() {
    node::chromium().unwrap();
    let app_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = format!("http://127.0.0.1:{app_port}");
    let (gw, _k) = realm_gateway("", &app, false).await;
    let env = [
        ("BASE", gw.base.clone()),
        ("REALM", REALM.to_string()),
        ("CLIENT_ID", "spa-kc".to_string()),
        ("APP_PORT", app_port.to_string()),
        ("USER_NAME", "alice".to_string()),
        ("PASSWORD", "alice-demo".to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node::run("keycloak-js.mjs", &env, 120)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["token"]["realm_roles"], json!(["admin"]), "{seen}");
    assert_eq!(seen["token"]["has_role_admin"], true);
    assert_eq!(seen["token"]["iss"], realm_url(&gw, ""));
    assert_eq!(seen["token"]["id_typ"], "ID");
    assert!(seen["callback_url"].as_str().unwrap().starts_with(&app), "{seen}");
    assert_eq!(seen["refresh"]["roles"], json!(["admin"]));
    assert_eq!(seen["after_logout_url"], format!("{app}/bye"));
    assert_eq!(seen["account_after_logout"], "/login", "the fedgate session ended: {seen}");
    assert_eq!(seen["check_sso"]["authenticated"], true, "{seen}");
    assert_eq!(seen["check_sso"]["roles"], json!(["admin"]), "{seen}");
    assert_eq!(seen["check_sso_after_logout"]["authenticated"], false, "{seen}");
}

/// keycloak-js's session-status iframe (`checkLoginIframe: true`): a logout in another tab of the same browser is
/// seen by the app (onAuthLogout); the cookie the iframe reads is a hash that signs nobody in; pages of origins that
/// are not a registered redirect URI's get `error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_js_session_iframe_sees_a_logout_in_another_tab() {
    node::chromium().unwrap();
    let app_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = format!("http://127.0.0.1:{app_port}");
    let (gw, _k) = realm_gateway("", &app, false).await;
    let env = [
        ("BASE", gw.base.clone()),
        ("REALM", REALM.to_string()),
        ("CLIENT_ID", "spa-kc".to_string()),
        ("APP_PORT", app_port.to_string()),
        ("USER_NAME", "alice".to_string()),
        ("PASSWORD", "alice-demo".to_string()),
        ("MODE", "iframe".to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node::run("keycloak-js.mjs", &env, 120)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(
        seen["cookie"],
        json!({ "present": true, "http_only": false, "path": format!("/realms/{REALM}/"), "holds_sid_hash": true,
                "holds_sid": false, "equals_session": false }),
        "{seen}"
    );
    assert_eq!(seen["replay"]["status"], 303, "KEYCLOAK_SESSION is no session cookie: {seen}");
    assert!(seen["replay"]["location"].as_str().unwrap_or("").starts_with("/login"), "{seen}");
    assert_eq!(seen["before_logout"], json!({ "logged_out": 0, "authenticated": true }), "{seen}");
    assert_eq!(seen["foreign_origin_answer"], "error", "{seen}");
    assert_eq!(seen["foreign_client_answer"], "error", "{seen}");
    assert_eq!(seen["after_logout"], json!({ "logged_out": 1, "authenticated": false }), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_redirect_uri_wildcards_only_where_turned_on() {
    let (gw, _k) = realm_gateway("", "http://127.0.0.1:9", false).await;
    let c = crate::oidc::logged_in(&gw, "alice", "alice-demo").await;
    let auth = |client: &str, redirect: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", redirect),
                ("scope", "openid"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        c.get(format!("{}/protocol/openid-connect/auth?{q}", realm_url(&gw, ""))).send()
    };
    let r = auth("kc-wild", "http://127.0.0.1:9/wild/deep/page?x=1").await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("http://127.0.0.1:9/wild/deep/page?x=1&code="), "{}", location(&r));
    for bad in ["http://127.0.0.1:9/wildcat", "http://127.0.0.1:9/other?http://127.0.0.1:9/wild/"] {
        let r = auth("kc-wild", bad).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    // Exact matching stays the default.
    let r = auth("kc-app", &format!("{REDIRECT}/more")).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Post-logout "+": the redirect URIs' pattern allows it (the confirmation page carries it on).
    let logout = format!(
        "{}/protocol/openid-connect/logout?client_id=kc-wild&post_logout_redirect_uri=http://127.0.0.1:9/wild/bye",
        realm_url(&gw, "")
    );
    let page = c.get(&logout).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("http://127.0.0.1:9/wild/bye"));
    let r = c.get(logout.replace("/wild/bye", "/elsewhere")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// `user`'s access token for `client` from a code flow at the realm's endpoints.
async fn access_token(gw: &Gateway, client: &str, user: &str, password: &str) -> String {
    let c = crate::oidc::logged_in(gw, user, password).await;
    let url = format!(
        "{}/protocol/openid-connect/auth?response_type=code&client_id={client}&redirect_uri={REDIRECT}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256",
        realm_url(gw, "")
    );
    let loc = location(&c.get(url).send().await.unwrap());
    let code = pair(url::Url::parse(&loc).unwrap().query().unwrap_or(""), "code").unwrap();
    redeem(gw, "", client, &code).await["access_token"].as_str().unwrap().to_string()
}

/// keycloak-connect protecting routes by role with `user`'s tokens; with `public_key_from_realm`, configured with the
/// `realm-public-key` it read from `GET /realms/{realm}`. Returns what it saw, after checking the statuses.
async fn keycloak_connect(gw: &Gateway, public_key_from_realm: bool) -> Value {
    let tokens = json!({
        "alice": access_token(gw, "kc-app", "alice", "alice-demo").await,
        "bob": access_token(gw, "kc-app", "bob", "bob-demo").await,
    });
    let app_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env = [
        ("BASE", gw.base.clone()),
        ("REALM", REALM.to_string()),
        ("CLIENT_ID", "kc-app".to_string()),
        ("APP_PORT", app_port.to_string()),
        ("TOKENS", tokens.to_string()),
        ("PUBLIC_KEY_FROM_REALM", if public_key_from_realm { "1" } else { "" }.to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node::run("keycloak-connect.mjs", &env, 60)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    // alice: realm role admin, client roles editor and viewer; bob: realm role researcher, client role viewer.
    let want = json!({
        "alice": { "realm-admin": 200, "realm-researcher": 403, "client-editor": 200, "client-viewer": 200, "client-nobody": 403 },
        "bob": { "realm-admin": 403, "realm-researcher": 200, "client-editor": 403, "client-viewer": 200, "client-nobody": 403 },
        "forged": { "realm-admin": 403, "realm-researcher": 403, "client-editor": 403, "client-viewer": 403, "client-nobody": 403 },
    });
    for user in ["alice", "bob", "forged"] {
        assert_eq!(seen[user], want[user], "{user}: {seen}");
    }
    assert!(seen["none"]["realm-admin"].as_u64().unwrap() >= 400, "{seen}");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_connect_protects_routes_by_realm_and_client_role() {
    let (gw, _k) = realm_gateway("", "http://127.0.0.1:9", false).await;
    keycloak_connect(&gw, false).await;
}

/// Keycloak's realm information (`GET /realms/{realm}`), with the realm's RSA signing key as base64 DER
/// SubjectPublicKeyInfo: keycloak-connect configured with that `realm-public-key` (as deployments of old adapters
/// are) accepts fedgate's tokens by role and refuses a forged one, and the key verifies the token's signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realm_information_gives_the_public_key_old_adapters_verify_with() {
    for prefix in ["", "/auth"] {
        let (gw, _k) = realm_gateway(prefix, "http://127.0.0.1:9", false).await;
        let realm = realm_url(&gw, prefix);
        let r = http().get(&realm).header("origin", "https://any.example").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "public, as Keycloak's");
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["realm"], REALM);
        assert_eq!(info["token-service"], format!("{realm}/protocol/openid-connect"));
        assert_eq!(info["account-service"], format!("{realm}/account"));
        assert_eq!(info["tokens-not-before"], 0);
        let der = base64::engine::general_purpose::STANDARD.decode(info["public_key"].as_str().unwrap()).unwrap();
        // DER SubjectPublicKeyInfo with rsaEncryption (1.2.840.113549.1.1.1), as Keycloak publishes it.
        assert_eq!(der[0], 0x30);
        assert!(der.windows(11).any(|w| w == [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1]), "{info}");
        if prefix.is_empty() {
            let seen = keycloak_connect(&gw, true).await;
            assert_eq!(seen["alice_verified_with_public_key"], true, "{seen}");
            assert_eq!(seen["realm_info"]["realm"], REALM, "{seen}");
        }
    }
}

/// Keycloak's group-membership mapper with `full.path`: one client sees `/full/path`s (the LDAP group's place under
/// `groups_dn`, below `groups_path`), another the plain names, from the same directory; roles still match names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_as_full_paths_or_names_per_client() {
    let keys = tempfile::tempdir().unwrap();
    let clients = format!(
        r#"
[oidc]
keys_dir = "{keys}"
[[oidc.clients]]
client_id = "app"
name = "Demo app"
client_secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["http://127.0.0.1:9/bye"]
scopes = ["openid", "profile", "email", "groups", "roles", "offline_access"]
group_format = "path"
[[oidc.clients]]
client_id = "names"
name = "Demo app"
client_secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["http://127.0.0.1:9/bye"]
scopes = ["openid", "profile", "email", "groups", "roles", "offline_access"]
"#,
        keys = keys.path().display()
    );
    let (slapd, gw) = crate::login::ldap_gateway(&clients).await;
    // Nested OUs under the groups base: ai-admins moves to ou=eng.
    slapd
        .modify(
            "dn: ou=eng,ou=groups,dc=example,dc=org\nchangetype: add\nobjectClass: organizationalUnit\nou: eng\n\n\
             dn: cn=ai-admins,ou=groups,dc=example,dc=org\nchangetype: modrdn\nnewrdn: cn=ai-admins\n\
             deleteoldrdn: 1\nnewsuperior: ou=eng,ou=groups,dc=example,dc=org\n",
        )
        .unwrap();
    let paths = crate::oidc::run_rp_as(&gw.base, "app", "RS256", "alice", "alice-password").await;
    assert_eq!(paths["ok"], true, "{paths}");
    assert_eq!(paths["id_token"]["groups"], json!(["/eng/ai-admins", "/staff"]), "{paths}");
    assert_eq!(paths["userinfo"]["groups"], json!(["/eng/ai-admins", "/staff"]), "{paths}");
    assert_eq!(paths["access_token_groups"], json!(["/eng/ai-admins", "/staff"]), "{paths}");
    assert_eq!(paths["id_token"]["roles"], json!(["admin"]), "[roles] matches names: {paths}");
    let names = crate::oidc::run_rp_as(&gw.base, "names", "RS256", "alice", "alice-password").await;
    assert_eq!(names["ok"], true, "{names}");
    assert_eq!(names["id_token"]["groups"], json!(["ai-admins", "staff"]), "{names}");
    assert_eq!(names["userinfo"]["groups"], json!(["ai-admins", "staff"]), "{names}");
    assert_eq!(names["id_token"]["roles"], json!(["admin"]));
}

/// An API behind fedgate's proxy that authorizes by role, called with the bearer token a Keycloak-profile client
/// got (roles in `realm_access.roles`, as Keycloak puts them): the route's `allow_roles` reads them, so alice (admin)
/// is let in with her roles in the identity headers and bob (researcher) is refused (before, a Keycloak-profile
/// token had no roles for the proxy and alice was refused too).
#[tokio::test]
async fn the_proxy_reads_realm_roles_from_keycloak_profile_bearer_tokens() {
    let up = e2e::upstream::EchoUpstream::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[proxy]\ntoken_audiences = [\"kc-app\"]\n[[proxy.routes]]\nupstream = \"{}\"\nallow_roles = [\"admin\"]\n",
        realm_toml(keys.path(), "", "http://127.0.0.1:9", false),
        up.base
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let alice = access_token(&gw, "kc-app", "alice", "alice-demo").await;
    assert_eq!(jwt_part(&alice, 1)["realm_access"], json!({ "roles": ["admin"] }), "a Keycloak-shaped token");
    assert!(jwt_part(&alice, 1).get("roles").is_none());
    let r = http().get(gw.url("/api/items")).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "alice holds admin in realm_access.roles");
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice", "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-roles"], "admin", "{seen}");
    let bob = access_token(&gw, "kc-app", "bob", "bob-demo").await;
    let r = http().get(gw.url("/api/items")).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "bob is a researcher, not an admin");
}
