//! Signing in through an upstream OpenID Connect provider (`[[upstream.oidc]]`): a real provider nobody here wrote
//! (node `oidc-provider`) for the flow, SAML to an Alibaba Cloud RAM user SP, ID tokens, proxy headers, LDAP
//! linking and the provider being down; a small forging provider of our own for ID tokens a real one never sends.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use base64::Engine as _;
use e2e::gateway::{Gateway, browser, csrf_from};
use e2e::slapd::Slapd;
use reqwest::StatusCode;

/// node `oidc-provider` (tests/node/upstream-op.mjs) on a free loopback port; killed by PID on drop.
pub(crate) struct Op {
    child: Child,
    issuer: String,
}

impl Op {
    /// Started with `env` added (e.g. `USERINFO_ALG`, see upstream-op.mjs).
    fn start(port: u16, redirect_uri: &str, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new("node")
            .arg("upstream-op.mjs")
            .current_dir(e2e::node::dir())
            .envs(env.iter().copied())
            .env("PORT", port.to_string())
            .env("REDIRECT_URI", redirect_uri)
            .env("POST_LOGOUT", redirect_uri.split("/login/").next().unwrap_or_default().to_string() + "/")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node not found");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "upstream-op.mjs did not start: {line:?}");
        // Keep reading, so the provider never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, issuer: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        // By its PID only.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn upstream_toml(name: &str, issuer: &str, extra: &str) -> String {
    format!(
        r#"
[[upstream.oidc]]
name = "{name}"
display_name = "Corp SSO"
issuer = "{issuer}"
client_id = "fedgate"
client_secret = "fedgate-secret"
scopes = ["openid", "profile", "email", "groups"]
{extra}
"#
    )
}

/// A `[directory]` with the shipped config's alice renamed to "pat" (password alice-demo), so password logins
/// can be tried beside the upstream's users.
pub(crate) fn demo_user_toml() -> String {
    let shipped = include_str!("../../config.toml");
    let line = shipped.lines().find(|l| l.starts_with("password_hash = ")).unwrap();
    format!("[directory]\nkind = \"static\"\n[[directory.users]]\nusername = \"pat\"\n{line}\ngroups = [\"staff\"]\n")
}

/// Waits until `/readyz` reports every upstream provider discovered.
async fn wait_discovered(gw: &Gateway) {
    let c = e2e::gateway::http();
    for _ in 0..200 {
        let r = c.get(gw.url("/readyz")).send().await.unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        if body["upstreams"].as_object().is_some_and(|m| m.values().all(|v| v == "ok")) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("upstream provider never discovered");
}

/// The hidden and text inputs of the first form in `html`: (action, fields).
fn form_of(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let form = &html[start..start + html[start..].find("</form>")?];
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        tag.find(&key).map(|i| tag[i + key.len()..].split('"').next().unwrap_or("").replace("&amp;", "&"))
    };
    let action = attr(&form[..form.find('>')?], "action")?;
    let mut fields = Vec::new();
    for part in form.split("<input").skip(1) {
        let tag = &part[..part.find('>').unwrap_or(part.len())];
        if let (Some(n), v) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((n, v.unwrap_or_default()));
        }
    }
    Some((action, fields))
}

/// Drives a sign-in from `start` (a gateway URL) through the provider's interaction pages (login, and consent if
/// shown) as `user`, following every redirect; the last response (not a redirect, or a redirect to an app's
/// redirect URI on port 9).
pub(crate) async fn sign_in_at_op(c: &reqwest::Client, start: &str, user: &str) -> (String, reqwest::Response) {
    let (url, r, _) = sign_in_at_op_via(c, start, user).await;
    (url, r)
}

/// [`sign_in_at_op`], also returning the callback URL the provider sent the browser to.
async fn sign_in_at_op_via(
    c: &reqwest::Client,
    start: &str,
    user: &str,
) -> (String, reqwest::Response, Option<url::Url>) {
    let mut callback = None;
    let mut url = url::Url::parse(start).unwrap();
    let mut r = c.get(url.clone()).send().await.unwrap();
    for _ in 0..20 {
        if r.status().is_redirection() {
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            let next = url.join(&loc).unwrap();
            if next.port() == Some(9) {
                // An app's registered redirect URI (nothing listens on port 9): the answer is this redirect.
                break;
            }
            url = next;
            if url.path().ends_with("/callback") {
                callback = Some(url.clone());
            }
            r = c.get(url.clone()).send().await.unwrap();
            continue;
        }
        if r.status() == StatusCode::OK && url.path().starts_with("/interaction/") {
            let html = r.text().await.unwrap();
            let (action, mut fields) = form_of(&html).unwrap_or_else(|| panic!("no form at {url}: {html}"));
            for (k, v) in &mut fields {
                match k.as_str() {
                    "login" => *v = user.to_string(),
                    "password" => *v = "any".to_string(),
                    _ => {}
                }
            }
            url = url.join(&action).unwrap();
            r = c.post(url.clone()).form(&fields).send().await.unwrap();
            continue;
        }
        break;
    }
    (url.to_string(), r, callback)
}

pub(crate) struct Env {
    pub(crate) gw: Gateway,
    op: Op,
    keys: tempfile::TempDir,
    _echo: e2e::upstream::EchoUpstream,
}

pub(crate) async fn env_with(extra_upstream: &str, extra: &str) -> Env {
    env_full(extra_upstream, extra, true).await
}

/// With `proxy` off, `/` is fedgate's account page; on, everything not fedgate's goes to an echo upstream.
async fn env_full(extra_upstream: &str, extra: &str, proxy: bool) -> Env {
    env_op(&[], extra_upstream, extra, proxy).await
}

/// [`env_full`] with `op_env` given to the upstream provider.
async fn env_op(op_env: &[(&str, &str)], extra_upstream: &str, extra: &str, proxy: bool) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let op = Op::start(free_port(), &format!("{base}/login/corp/callback"), op_env);
    let keys = tempfile::tempdir().unwrap();
    let echo = e2e::upstream::EchoUpstream::start().await.unwrap();
    let cfg = format!(
        r#"[log]
level = "warn"
[roles]
admin = ["ops"]
member = ["staff", "ai-researchers"]
{extra}
[oidc]
keys_dir = "{keys}"
[[oidc.clients]]
client_id = "rp"
client_secret = "rp-secret-0123456789abcdef"
redirect_uris = ["http://127.0.0.1:9/cb"]
scopes = ["openid", "profile", "email", "groups", "roles"]
[saml]
keys_dir = "{keys}"
[[saml.service_providers]]
name = "ram"
preset = "aliyun-ram-user"
site = "intl"
account_id = "1234567890123456"
auxiliary_domain = "corp.example.com"
{proxy}
{up}"#,
        keys = keys.path().display(),
        proxy = if proxy { format!("[proxy]\nupstream = \"{}\"", echo.base) } else { String::new() },
        up = upstream_toml("corp", &op.issuer, extra_upstream),
    );
    let gw = Gateway::start_on(listener, &cfg).await.unwrap();
    wait_discovered(&gw).await;
    Env { gw, op, keys, _echo: echo }
}

/// openid-client (tests/node/oidc-rp-broker.mjs) signs in at fedgate's `rp` client with `hint_param=hint`, and
/// signs in as `user` at the upstream provider when its login page shows; what it saw.
async fn run_broker_rp(gw: &Gateway, hint_param: &str, hint: &str, user: &str) -> serde_json::Value {
    let env = [
        ("ISSUER", gw.base.clone()),
        ("CLIENT_ID", "rp".to_string()),
        ("CLIENT_SECRET", "rp-secret-0123456789abcdef".to_string()),
        ("REDIRECT_URI", "http://127.0.0.1:9/cb".to_string()),
        ("USER_NAME", user.to_string()),
        ("HINT_PARAM", hint_param.to_string()),
        ("HINT", hint.to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        e2e::node::run("oidc-rp-broker.mjs", &env, 60)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap()
}

fn jwt_payload(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn brokered_login_yields_account_saml_for_ram_id_token_and_proxy_headers() {
    let e = env_with("", &demo_user_toml()).await;
    let c = browser();
    // The login page offers the provider beside the password form.
    let page = c.get(e.gw.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("href=\"/login/corp\"") && page.contains("Corp SSO"), "{page}");
    assert!(page.contains("name=\"password\""), "the password form stays: {page}");

    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp?rd=%2F"), "alice").await;
    let status = r.status();
    let account = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "landed at {url}: {account}");
    assert_eq!(url, e.gw.url("/"), "back where the sign-in started");
    let landed: serde_json::Value = serde_json::from_str(&account).unwrap();
    assert_eq!(landed["headers"]["x-forwarded-user"], "alice", "the proxied app sees alice: {landed}");

    // (1) SAML for an aliyun-ram-user SP: NameID <username>@<auxiliary_domain>, a federated AuthnContext, signed.
    let r = c.get(e.gw.url("/saml/init/ram")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, xml, _) = crate::saml::posted(&r.text().await.unwrap());
    assert_eq!(crate::saml::get(&xml, "saml:NameID", ""), "alice@corp.example.com");
    assert_eq!(
        crate::saml::get(&xml, "saml:AuthnContextClassRef", ""),
        "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
    );
    assert_eq!(crate::saml::get(&xml, "saml:AuthenticatingAuthority", ""), e.op.issuer);
    crate::saml::xmlsec1_verifies(
        &xml,
        &e.keys.path().join("saml-signing.crt"),
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        Some("/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']"),
    );
    // pysaml2, as the RAM SP (its entity ID and ACS), given fedgate's metadata, accepts the response too.
    let md = e.keys.path().join("idp-metadata.xml");
    let metadata = e2e::gateway::http().get(e.gw.url("/saml/metadata")).send().await.unwrap().text().await.unwrap();
    std::fs::write(&md, &metadata).unwrap();
    let (entity, acs) =
        (crate::saml::get(&xml, "saml:Audience", ""), crate::saml::get(&xml, "samlp:Response", "Destination"));
    assert_eq!(entity, "https://signin-intl.aliyun.com/1234567890123456/saml/SSO");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let md_s = md.display().to_string();
    let seen =
        tokio::task::spawn_blocking(move || crate::saml::pysaml2(&["consume", &md_s, &entity, &acs], Some(&b64)))
            .await
            .unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["name_id"], "alice@corp.example.com", "{seen}");
    assert_eq!(seen["format"], "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "{seen}");
    assert_eq!(seen["assertion_signed"], true, "{seen}");
    assert_eq!(seen["issuer"], e.gw.url("/saml/metadata"), "{seen}");

    // (2) An ID token for an openid-client RP that sends Keycloak's kc_idp_hint: it goes straight to the
    // provider (fedgate's login page never shows), and the ID token carries upstream groups → roles and amr fed.
    let rp = run_broker_rp(&e.gw, "kc_idp_hint", "corp", "alice").await;
    assert_eq!(rp["ok"], true, "{rp}");
    assert_eq!(rp["pages"].as_array().map(Vec::len), Some(1), "only the provider's login page: {rp}");
    assert!(rp["pages"][0].as_str().unwrap().starts_with(&format!("200 {}/interaction/", e.op.issuer)), "{rp}");
    let id = &rp["id_token"];
    assert_eq!(id["preferred_username"], "alice", "{id}");
    assert_eq!(id["roles"], serde_json::json!(["admin", "member"]), "{id}");
    assert_eq!(id["groups"], serde_json::json!(["ops", "staff"]), "{id}");
    assert_eq!(id["amr"][0], "fed", "{id}");
    assert_eq!(id["sub"], "corp:alice", "{id}");
    assert_eq!(rp["userinfo"]["roles"], serde_json::json!(["admin", "member"]), "{rp}");

    // (3) Identity headers at a proxied upstream.
    let seen: serde_json::Value = c.get(e.gw.url("/anything")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice", "{seen}");
    assert!(seen["headers"]["x-forwarded-groups"].as_str().unwrap_or("").contains("ops"), "{seen}");
}

#[tokio::test]
async fn chromium_signs_in_through_the_provider_and_lands_on_the_account_page() {
    let chromium = e2e::node::chromium().unwrap();
    let e = env_full("", &demo_user_toml(), false).await;
    let shots = tempfile::tempdir().unwrap();
    let env = [
        ("BASE", e.gw.base.clone()),
        ("USER_NAME", "alice".to_string()),
        ("LABEL", "Corp SSO".to_string()),
        ("SHOT_DIR", shots.path().display().to_string()),
        ("CHROMIUM", chromium.to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        e2e::node::run("browser-upstream.mjs", &env, 90)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["provider_page"], e.op.issuer, "{seen}");
    assert_eq!(seen["account_username"], "alice");
    assert!(seen["roles"].as_str().unwrap_or("").contains("admin"), "upstream group ops → admin: {seen}");
}

#[tokio::test]
async fn logout_upstream_ends_the_providers_session_too() {
    let e = env_full("logout_upstream = true", &demo_user_toml(), false).await;
    let c = browser();
    let (_, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), "alice").await;
    assert_eq!(r.status(), StatusCode::OK);
    let confirm = c.get(e.gw.url("/logout")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&confirm).unwrap();
    let r = c.post(e.gw.url("/logout")).form(&[("csrf", csrf)]).send().await.unwrap();
    // Straight on to the provider (no front-channel frames to load first), or by the signed-out page's refresh.
    let next = match r.headers().get("location") {
        Some(loc) => loc.to_str().unwrap().to_string(),
        None => {
            let page = r.text().await.unwrap();
            let refresh =
                page.split("url=").nth(1).and_then(|s| s.split('"').next()).unwrap_or_else(|| panic!("{page}"));
            refresh.replace("&amp;", "&")
        }
    };
    let next = url::Url::parse(&next).unwrap();
    assert!(next.as_str().starts_with(&format!("{}/session/end", e.op.issuer)), "{next}");
    let q = |k: &str| next.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    assert_eq!(q("client_id").as_deref(), Some("fedgate"));
    assert_eq!(q("post_logout_redirect_uri"), Some(e.gw.url("/")));
    assert!(q("id_token_hint").is_some_and(|t| t.split('.').count() == 3));
    // The provider accepts the request (hint, client and registered post-logout URI): its sign-out confirmation.
    let r = c.get(next).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("sign me out"));
}

#[tokio::test]
async fn callback_replays_foreign_browsers_and_tampered_state_are_refused() {
    let e = env_with("", &demo_user_toml()).await;
    // Stop at the callback: sign in at the provider but do not let the browser deliver the code yet.
    let c = browser();
    let mut url = url::Url::parse(&e.gw.url("/login/corp")).unwrap();
    let mut r = c.get(url.clone()).send().await.unwrap();
    let callback = loop {
        if r.status().is_redirection() {
            let next = url.join(r.headers()["location"].to_str().unwrap()).unwrap();
            if next.path() == "/login/corp/callback" {
                break next;
            }
            url = next;
            r = c.get(url.clone()).send().await.unwrap();
        } else {
            let html = r.text().await.unwrap();
            let (action, mut fields) = form_of(&html).unwrap();
            for (k, v) in &mut fields {
                if k == "login" {
                    *v = "alice".into();
                }
            }
            url = url.join(&action).unwrap();
            r = c.post(url.clone()).form(&fields).send().await.unwrap();
        }
    };
    // A tampered state.
    let mut bad = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { format!("{v}x") } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    bad.query_pairs_mut().clear().extend_pairs(pairs);
    let r = c.get(bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("set-cookie").is_none_or(|v| !v.to_str().unwrap().starts_with("fedgate_session=")));
    assert!(r.text().await.unwrap().contains("unknown, has expired or was already used"));
    // Another browser (no binding cookie) with the real callback: refused, and the sign-in is used up.
    let other = browser();
    let r = other.get(callback.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not started in this browser"));
    // Now the real browser: the state was used (single use), so even it is refused; nothing in a session.
    let r = c.get(callback.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.get(e.gw.url("/")).send().await.unwrap();
    assert!(
        matches!(r.status(), StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED),
        "no session: the account page asks to sign in, got {}",
        r.status()
    );
    // A fresh, untampered sign-in works (the refusals above were not the test being unable to pass).
    let (url, r, used) = sign_in_at_op_via(&c, &e.gw.url("/login/corp"), "alice").await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    assert_eq!(url, e.gw.url("/"));
    // A replayed code: a fresh sign-in's state (this browser's) with the code already redeemed. The provider
    // refuses it, and so does fedgate.
    let used = used.unwrap();
    let code = used.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let r = c.get(e.gw.url("/login/corp")).send().await.unwrap();
    let auth = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let state = auth.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let r = c.get(e.gw.url("/login/corp/callback")).query(&[("state", state), ("code", code)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get_all("set-cookie").iter().all(|v| !v.to_str().unwrap().starts_with("fedgate_session=")));
    let body = r.text().await.unwrap();
    assert!(body.contains("Corp SSO refused the sign-in code: invalid_grant"), "{body}");
}

/// The "provider unavailable" page is for anyone who opens `/login/<provider>`: it names the provider and a
/// generic reason, while the network details (the address tried, the resolver or connection error) go to the log
/// with their cause chain. Before, the page showed `discovery at http://127.0.0.1:…/ failed: … Connection refused`.
#[tokio::test]
async fn provider_unavailable_details_go_to_the_log_not_the_page() {
    use e2e::gateway::{GatewayProcess, ProcessOptions};
    let port = free_port();
    let body = format!("{}{}", demo_user_toml(), upstream_toml("corp", &format!("http://127.0.0.1:{port}"), ""));
    let mut gw =
        GatewayProcess::start_with(&body, ProcessOptions { capture: true, ..Default::default() }).await.unwrap();
    gw.collect_output();
    let r = browser().get(format!("{}/login/corp", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = r.text().await.unwrap();
    assert!(page.contains("Corp SSO is unavailable right now"), "{page}");
    assert!(!page.contains(&format!("127.0.0.1:{port}")) && !page.contains("discovery"), "{page}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gw.output_so_far().contains(&format!("127.0.0.1:{port}")) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = gw.output_so_far();
    assert!(log.contains("discovery at") && log.contains(&format!("127.0.0.1:{port}")), "the log has the cause: {log}");
    gw.stop_with("TERM").await.unwrap();
}

#[tokio::test]
async fn provider_down_is_a_503_naming_it_and_passwords_still_work() {
    let port = free_port();
    let cfg = format!("{}{}", demo_user_toml(), upstream_toml("corp", &format!("http://127.0.0.1:{port}"), ""));
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = browser();
    let r = c.get(gw.url("/login/corp")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.text().await.unwrap();
    assert!(body.contains("Corp SSO is unavailable right now"), "{body}");
    // The network details are in the log, not on a page anyone can open: no address, port or error text.
    for detail in ["127.0.0.1", &port.to_string(), "discovery", "onnection refused", "error sending request"] {
        assert!(!body.contains(detail), "the page shows {detail:?}: {body}");
    }
    let page = c.get(gw.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Corp SSO (unavailable)"), "{page}");
    let r = e2e::gateway::http().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "passwords still work, so the gateway is ready");
    let ready: serde_json::Value = r.json().await.unwrap();
    assert!(ready["upstreams"]["corp"].as_str().unwrap().contains("discovery"), "{ready}");
    let csrf = csrf_from(&page).unwrap();
    let r = c
        .post(gw.url("/login"))
        .form(&[("username", "pat"), ("password", "alice-demo"), ("csrf", &csrf), ("rd", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "password login still works");
}

#[tokio::test]
async fn only_upstream_no_form_goes_straight_there_and_idp_hint_skips_the_choice() {
    let port = free_port();
    let cfg = format!("[login]\npassword = false\n{}", upstream_toml("corp", &format!("http://127.0.0.1:{port}"), ""));
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = browser();
    let r = c.get(gw.url("/login?rd=%2Fapp")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login/corp?rd=%2Fapp");
    let gw2 = Gateway::start(&format!("{}{}", demo_user_toml(), upstream_toml("corp", "http://127.0.0.1:9", "")))
        .await
        .unwrap();
    let r = c.get(gw2.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "with a password form there is a choice");
    for q in ["idp=corp", "kc_idp_hint=corp"] {
        let r = c.get(gw2.url(&format!("/login?{q}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{q}");
        assert_eq!(r.headers()["location"], "/login/corp", "{q}");
    }
}

#[tokio::test]
async fn link_ldap_takes_the_one_matching_entry_and_refuses_none_or_two() {
    let slapd = Slapd::start().unwrap();
    for (uid, mail) in [("bob", "bob@corp.example"), ("carol", "twin@corp.example"), ("dave", "twin@corp.example")] {
        slapd
            .modify(&format!(
                "dn: uid={uid},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: {mail}\n"
            ))
            .unwrap();
    }
    let e = env_with("link = \"ldap\"\nlink_claim = \"email\"\nlink_attribute = \"mail\"", &slapd.ldap_toml("")).await;
    let c = browser();
    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), "bob").await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    let seen: serde_json::Value = c.get(e.gw.url("/anything")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "bob", "the LDAP entry's username: {seen}");
    let groups = seen["headers"]["x-forwarded-groups"].as_str().unwrap_or("");
    assert!(groups.contains("ai-researchers") && !groups.contains("ops"), "the LDAP entry's groups: {seen}");
    for (user, words) in [("zed", "No account in the directory has mail = zed@corp.example"), ("twin", "2 accounts")] {
        let c = browser();
        let (_, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), user).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{user}");
        let body = r.text().await.unwrap();
        assert!(body.contains(words), "{user}: {body}");
    }
}

/// The attack: at a provider where anyone can sign up, mallory types bob's e-mail address and never confirms it
/// (`email_verified: false`). Linking by that address, or taking it as the username, would sign mallory in as bob.
#[tokio::test]
async fn an_unverified_email_never_links_to_or_names_an_account() {
    let slapd = Slapd::start().unwrap();
    slapd
        .modify("dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: bob@corp.example\n")
        .unwrap();
    let e = env_with("link = \"ldap\"\nlink_claim = \"email\"\nlink_attribute = \"mail\"", &slapd.ldap_toml("")).await;
    let c = browser();
    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), "mallory").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
    let body = r.text().await.unwrap();
    assert!(body.contains("not verified the e-mail address"), "{body}");
    let r = c.get(e.gw.url("/anything")).send().await.unwrap();
    assert!(
        matches!(r.status(), StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED),
        "no session: the proxy asks mallory to sign in, never passes her on as bob: {}",
        r.status()
    );
    // bob himself (verified address) still links.
    let c = browser();
    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), "bob").await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    drop(e);

    // The address as the username (link = "none"): refused the same way.
    let e = env_with("username_claim = \"email\"", &demo_user_toml()).await;
    let c = browser();
    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), "mallory").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
    assert!(r.text().await.unwrap().contains("not verified the e-mail address"));
    let r = c.get(e.gw.url("/anything")).send().await.unwrap();
    assert!(
        matches!(r.status(), StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED),
        "no session for mallory as bob@corp.example: {}",
        r.status()
    );
}

/// The upstream binding cookie is fedgate's: it never reaches the app behind the proxy (like the session and CSRF
/// cookies), and over https it is a `__Host-` cookie, so one planted by a sibling subdomain (cookie tossing, which
/// cannot carry that prefix) binds nothing; the login form's CSRF cookie likewise.
#[tokio::test]
async fn the_binding_cookie_is_host_only_and_never_reaches_the_app() {
    let e = env_with("", &demo_user_toml()).await;
    let c = browser();
    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), "alice").await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    let seen: serde_json::Value = c.get(e.gw.url("/anything")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice", "{seen}");
    let cookie = seen["headers"]["cookie"].as_str().unwrap_or("");
    assert!(!cookie.contains("fedgate_"), "fedgate's cookies reached the app: {cookie}");
    drop(e);

    // Over https (the public URL's scheme decides; plain http on the wire is enough to read the headers).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("https://{}", listener.local_addr().unwrap());
    let op = Op::start(free_port(), &format!("{public}/login/corp/callback"), &[]);
    let cfg =
        format!("[server]\npublic_url = \"{public}/\"\n{}{}", demo_user_toml(), upstream_toml("corp", &op.issuer, ""));
    let gw = Gateway::start_on(listener, &cfg).await.unwrap();
    wait_discovered(&gw).await;
    // No cookie jar (a Secure cookie would not go back over plain http): each request carries what the test says.
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap();
    let set_cookie = |r: &reqwest::Response| -> Vec<String> {
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
    };
    let r = c.get(gw.url("/login")).send().await.unwrap();
    let cookies = set_cookie(&r);
    assert!(cookies.iter().any(|v| v.starts_with("__Host-fedgate_csrf=") && v.contains("Secure")), "{cookies:?}");
    // One sign-in started for the test, one for the attacker's planted cookie.
    let start = || async {
        let r = c.get(gw.url("/login/corp")).send().await.unwrap();
        let cookies = set_cookie(&r);
        let binding = cookies
            .iter()
            .find_map(|v| v.strip_prefix("__Host-fedgate_upstream="))
            .unwrap_or_else(|| panic!("a __Host- binding cookie: {cookies:?}"));
        assert!(binding.contains("; Secure") && binding.contains("; Path=/") && !binding.contains("Domain"));
        let binding = binding.split(';').next().unwrap().to_string();
        let auth = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let state = auth.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
        (binding, state)
    };
    let callback = |state: String, cookie: String| {
        let req = c.get(gw.url("/login/corp/callback")).query(&[("state", state.as_str()), ("code", "c0de")]);
        async move { req.header("cookie", cookie).send().await.unwrap() }
    };
    // The attack: the binding under the name a sibling subdomain can set.
    let (binding, state) = start().await;
    let r = callback(state, format!("fedgate_upstream={binding}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not started in this browser"));
    // The real __Host- cookie passes the binding check (then the made-up code is refused by the provider).
    let (binding, state) = start().await;
    let r = callback(state, format!("__Host-fedgate_upstream={binding}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.unwrap();
    assert!(!body.contains("not started in this browser") && body.contains("refused the sign-in code"), "{body}");
}

// ---- ID tokens a real provider never sends: a forging provider of our own ----

struct Forge {
    base: String,
    key: Vec<u8>,
    jwk: serde_json::Value,
}

/// A JWT with `claims`, signed as `how` says: `none` (unsigned), `hs256` (HMAC keyed with the public key's JWK
/// text: the classic algorithm-confusion forgery), `bad-sig` (another user's claims under the original signature),
/// anything else honestly (ES256, kid k1).
fn forge_jwt(f: &Forge, how: &str, claims: &mut serde_json::Value) -> String {
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    match how {
        "none" => format!("{}.{}.", b64(&serde_json::json!({"alg": "none"})), b64(claims)),
        "hs256" => {
            let key = jsonwebtoken::EncodingKey::from_secret(f.jwk.to_string().as_bytes());
            jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).unwrap()
        }
        _ => {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            h.kid = Some("k1".into());
            let key = jsonwebtoken::EncodingKey::from_ec_der(&f.key);
            let t = jsonwebtoken::encode(&h, &claims, &key).unwrap();
            if how == "bad-sig" {
                let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
                claims["sub"] = "admin".into();
                claims["groups"] = serde_json::json!(["ops"]);
                parts[1] = b64(claims);
                parts.join(".")
            } else {
                t
            }
        }
    }
}

/// The token endpoint: the code is `{mode}.{nonce}`; the ID token is forged as `mode` says, and the access token
/// is the mode, so userinfo knows it too.
async fn forge_token(State(f): State<Arc<Forge>>, body: String) -> axum::Json<serde_json::Value> {
    let code = url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "code").map(|(_, v)| v.into_owned());
    let code = code.unwrap_or_default();
    let (mode, nonce) = code.split_once('.').unwrap_or(("good", ""));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = serde_json::json!({
        "iss": f.base, "aud": "fedgate", "sub": "mallory", "preferred_username": "mallory",
        "iat": now, "exp": now + 300, "nonce": nonce,
    });
    match mode {
        "wrong-iss" => claims["iss"] = "http://127.0.0.1:1".into(),
        "wrong-aud" => claims["aud"] = "someone-else".into(),
        "expired" => {
            claims["iat"] = (now - 7200).into();
            claims["exp"] = (now - 3600).into();
        }
        "nonce" => claims["nonce"] = "not-the-nonce".into(),
        "multi-aud-no-azp" => claims["aud"] = serde_json::json!(["fedgate", "other"]),
        // Another account at the provider with the same preferred_username (a renamed user's name given anew).
        m if m.starts_with("sub-") => claims["sub"] = m["sub-".len()..].into(),
        // A provider that did more than a password: its amr and a SAML class as acr, relayed by fedgate.
        "mfa" => {
            claims["amr"] = serde_json::json!(["mfa", "otp"]);
            claims["acr"] = "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken".into();
        }
        _ => {}
    }
    let id_token = forge_jwt(&f, if mode.starts_with("ui-") { "good" } else { mode }, &mut claims);
    axum::Json(
        serde_json::json!({"access_token": mode, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}),
    )
}

/// Userinfo: JSON, except for the `ui-*` modes, which answer a signed JWT (`application/jwt`) forged as the rest
/// of the mode says (`ui-good` is honest and adds the group `ops`).
async fn forge_userinfo(State(f): State<Arc<Forge>>, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mode = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let Some(how) = mode.strip_prefix("ui-") else {
        let sub = mode.strip_prefix("sub-").unwrap_or("mallory");
        return axum::Json(serde_json::json!({"sub": sub, "groups": ["staff"]})).into_response();
    };
    let mut claims = serde_json::json!({"iss": f.base, "aud": "fedgate", "sub": "mallory", "groups": ["ops"]});
    match how {
        "wrong-iss" => claims["iss"] = "http://127.0.0.1:1".into(),
        "wrong-aud" => claims["aud"] = "someone-else".into(),
        "wrong-sub" => claims["sub"] = "admin".into(),
        _ => {}
    }
    let jwt = forge_jwt(&f, how, &mut claims);
    ([(axum::http::header::CONTENT_TYPE, "application/jwt")], jwt).into_response()
}

async fn start_forge() -> Arc<Forge> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let forge = Arc::new(Forge { base: base.clone(), key: pkcs8.as_ref().to_vec(), jwk });
    let discovery = serde_json::json!({
        "issuer": base, "authorization_endpoint": format!("{base}/authorize"), "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"), "userinfo_endpoint": format!("{base}/userinfo"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    let jwks = serde_json::json!({"keys": [forge.jwk.clone()]});
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(move || async move { axum::Json(discovery) }))
        .route("/jwks", get(move || async move { axum::Json(jwks) }))
        .route("/token", post(forge_token))
        .route("/userinfo", get(forge_userinfo))
        .with_state(forge.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    forge
}

/// A sign-in at the forging provider `name` whose code is `{mode}.{nonce}`: (status, whether a session cookie was
/// set, the page).
async fn forge_attempt(c: &reqwest::Client, base: &str, name: &str, mode: &str) -> (StatusCode, bool, String) {
    let r = c.get(format!("{base}/login/{name}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let auth = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q = |k: &str| auth.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    assert_eq!(q("code_challenge_method"), "S256");
    let (state, nonce) = (q("state"), q("nonce"));
    let r = c
        .get(format!("{base}/login/{name}/callback"))
        .query(&[("state", state), ("code", format!("{mode}.{nonce}"))])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let set_session =
        r.headers().get_all("set-cookie").iter().any(|v| v.to_str().unwrap_or("").starts_with("fedgate_session="));
    (status, set_session, r.text().await.unwrap())
}

#[tokio::test]
async fn forged_id_tokens_are_refused_with_a_clear_page_and_no_session() {
    let forge = start_forge().await;
    let extra = r#"authorization_params = { domain_hint = "corp.example", prompt = "select_account" }"#;
    let gw = Gateway::start(&upstream_toml("forge", &forge.base, extra)).await.unwrap();
    wait_discovered(&gw).await;
    // The configured extra parameters go to the provider with the authorization request.
    let r = browser().get(gw.url("/login/forge")).send().await.unwrap();
    let auth = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q = |k: &str| auth.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    assert_eq!((q("domain_hint").as_deref(), q("prompt").as_deref()), (Some("corp.example"), Some("select_account")));
    let (status, session, _) = forge_attempt(&browser(), &gw.base, "forge", "good").await;
    assert_eq!((status, session), (StatusCode::SEE_OTHER, true), "the forge's honest token is accepted");
    for (mode, words) in [
        ("wrong-iss", "issuer"),
        ("wrong-aud", "audience"),
        ("expired", "expired"),
        ("bad-sig", "signature"),
        ("none", "not valid"),
        ("hs256", "not valid"),
        ("nonce", "nonce"),
        ("multi-aud-no-azp", "not valid"),
    ] {
        let (status, session, body) = forge_attempt(&browser(), &gw.base, "forge", mode).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}: {body}");
        assert!(!session, "{mode}: no session");
        assert!(body.contains("The ID token from Corp SSO is not valid"), "{mode}: {body}");
        assert!(body.to_lowercase().contains(words), "{mode} names the check ({words}): {body}");
    }
}

#[tokio::test]
async fn signed_userinfo_answers_are_verified_and_forged_ones_refused() {
    let forge = start_forge().await;
    let gw = Gateway::start(&format!("[roles]\nadmin = [\"ops\"]\n{}", upstream_toml("forge", &forge.base, "")))
        .await
        .unwrap();
    wait_discovered(&gw).await;
    // An honest signed answer is used: its group ops makes mallory an admin.
    let c = browser();
    let (status, session, body) = forge_attempt(&c, &gw.base, "forge", "ui-good").await;
    assert_eq!((status, session), (StatusCode::SEE_OTHER, true), "{body}");
    let account = c.get(gw.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("mallory") && account.contains("admin"), "the signed answer's groups: {account}");
    for (mode, words) in [
        ("ui-bad-sig", "the signature does not verify"),
        ("ui-wrong-iss", "issuer"),
        ("ui-wrong-aud", "audience"),
        ("ui-none", "algorithm"),
        ("ui-hs256", "algorithm"),
    ] {
        let (status, session, body) = forge_attempt(&browser(), &gw.base, "forge", mode).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}: {body}");
        assert!(!session, "{mode}: no session");
        assert!(body.contains("The userinfo answer from Corp SSO is not valid"), "{mode}: {body}");
        assert!(body.contains(words), "{mode} names the check ({words}): {body}");
    }
    // Signed, but about someone else than the ID token.
    let (status, session, body) = forge_attempt(&browser(), &gw.base, "forge", "ui-wrong-sub").await;
    assert_eq!((status, session), (StatusCode::BAD_REQUEST, false), "{body}");
    assert!(body.contains("another subject"), "{body}");
}

#[tokio::test]
async fn signed_userinfo_from_oidc_provider_is_used() {
    // oidc-provider signs userinfo (ES256) for this client; its ID tokens (RS256) carry no profile claims, so the
    // username and groups come only from the signed answer.
    let e = env_op(&[("USERINFO_ALG", "ES256")], "", &demo_user_toml(), true).await;
    let c = browser();
    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp?rd=%2F"), "alice").await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "landed at {url}: {body}");
    let landed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(landed["headers"]["x-forwarded-user"], "alice", "{landed}");
    assert_eq!(landed["headers"]["x-forwarded-email"], "alice@corp.example", "{landed}");
    assert!(landed["headers"]["x-forwarded-groups"].as_str().unwrap_or("").contains("ops"), "{landed}");
}

#[tokio::test]
async fn upstream_amr_and_acr_reach_id_tokens_and_saml() {
    let forge = start_forge().await;
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[oidc]
keys_dir = "{keys}"
[[oidc.clients]]
client_id = "rp"
client_secret = "rp-secret-0123456789abcdef"
redirect_uris = ["http://127.0.0.1:9/cb"]
[saml]
keys_dir = "{keys}"
[[saml.service_providers]]
name = "ram"
preset = "aliyun-ram-user"
site = "intl"
account_id = "1234567890123456"
auxiliary_domain = "corp.example.com"
{up}"#,
        keys = keys.path().display(),
        up = upstream_toml("forge", &forge.base, ""),
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    wait_discovered(&gw).await;
    let c = browser();
    let (status, session, body) = forge_attempt(&c, &gw.base, "forge", "mfa").await;
    assert_eq!((status, session), (StatusCode::SEE_OTHER, true), "{body}");
    let r = c
        .get(gw.url("/oauth2/authorize?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&state=s&nonce=n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = loc.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tok: serde_json::Value = e2e::gateway::http()
        .post(gw.url("/oauth2/token"))
        .basic_auth("rp", Some("rp-secret-0123456789abcdef"))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:9/cb")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = jwt_payload(tok["id_token"].as_str().unwrap_or_else(|| panic!("{tok}")));
    assert_eq!(id["amr"], serde_json::json!(["fed", "mfa", "otp"]), "fed first, then the upstream's: {id}");
    assert_eq!(id["acr"], "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken", "{id}");
    let r = c.get(gw.url("/saml/init/ram")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, xml, _) = crate::saml::posted(&r.text().await.unwrap());
    assert_eq!(
        crate::saml::get(&xml, "saml:AuthnContextClassRef", ""),
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken"
    );
    assert_eq!(crate::saml::get(&xml, "saml:AuthenticatingAuthority", ""), forge.base);
}

/// Follows the gateway's own redirects from `path`; stops at the first page, or at a redirect that leaves the
/// gateway: (where it stopped, the status there, the page if it is one).
async fn follow_at_gateway(c: &reqwest::Client, gw: &Gateway, path: &str) -> (url::Url, StatusCode, String) {
    let mut url = url::Url::parse(&gw.url(path)).unwrap();
    for _ in 0..10 {
        let r = c.get(url.clone()).send().await.unwrap();
        if !r.status().is_redirection() {
            let status = r.status();
            return (url, status, r.text().await.unwrap());
        }
        let next = url.join(r.headers()["location"].to_str().unwrap()).unwrap();
        if next.origin() != url.origin() {
            return (next, r.status(), String::new());
        }
        url = next;
    }
    panic!("too many redirects from {path}");
}

#[tokio::test]
async fn idp_hints_at_both_authorize_endpoints_go_straight_to_the_provider_unknown_ones_show_the_login_page() {
    let realm = "[keycloak]\nrealm = \"corp\"\n";
    let e = env_full("", &format!("{}{realm}", demo_user_toml()), false).await;
    let auth = |path: &str, hint: &str| {
        format!(
            "{path}?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&state=s&nonce=n{hint}"
        )
    };
    for path in ["/oauth2/authorize", "/realms/corp/protocol/openid-connect/auth"] {
        for hint in ["&kc_idp_hint=corp", "&idp=corp"] {
            let (at, status, _) = follow_at_gateway(&browser(), &e.gw, &auth(path, hint)).await;
            assert!(status.is_redirection(), "{path}{hint}: stopped at {at} ({status})");
            assert!(at.as_str().starts_with(&format!("{}/auth?", e.op.issuer)), "{path}{hint}: went to {at}");
            assert_eq!(at.query_pairs().find(|(k, _)| k == "client_id").unwrap().1, "fedgate");
        }
        // The whole way round: after the provider's login, back to the app with a code.
        let c = browser();
        let (_, r) = sign_in_at_op(&c, &e.gw.url(&auth(path, "&kc_idp_hint=corp")), "alice").await;
        let back = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(back.starts_with("http://127.0.0.1:9/cb?code="), "{path}: {back}");
        // A name no provider has, a URL, a path: the normal login page, with the provider's button; never a
        // redirect anywhere else.
        for hint in ["&kc_idp_hint=nope", "&kc_idp_hint=https%3A%2F%2Fevil.example%2F", "&idp=..%2Flogout", "&idp=CORP"]
        {
            let (at, status, page) = follow_at_gateway(&browser(), &e.gw, &auth(path, hint)).await;
            assert_eq!(status, StatusCode::OK, "{path}{hint}: stopped at {at}");
            assert_eq!(at.path(), "/login", "{path}{hint}");
            assert!(page.contains("name=\"password\"") && page.contains("href=\"/login/corp"), "{path}{hint}: {page}");
        }
    }
}

#[tokio::test]
async fn allowed_groups_and_email_domains_refuse_with_a_page_and_no_session() {
    let e = env_with("allowed_email_domains = [\"corp.example\"]\nallowed_groups = [\"ops\"]", &demo_user_toml()).await;
    let (url, r) = sign_in_at_op(&browser(), &e.gw.url("/login/corp"), "alice").await;
    assert_eq!(r.status(), StatusCode::OK, "alice (corp.example, ops) is allowed: {url}");
    for (user, words) in [("carol", "you are not in a group allowed to sign in here"), ("eve", "elsewhere.example")] {
        let c = browser();
        let (_, r) = sign_in_at_op(&c, &e.gw.url("/login/corp"), user).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{user}");
        assert!(r.headers().get_all("set-cookie").iter().all(|v| !v.to_str().unwrap().starts_with("fedgate_session=")));
        let body = r.text().await.unwrap();
        assert!(body.contains("Sign-in refused") && body.contains(words), "{user}: {body}");
        let r = c.get(e.gw.url("/anything")).send().await.unwrap();
        assert!(
            matches!(r.status(), StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED),
            "{user} has no session: the proxy asks to sign in, got {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn a_public_client_without_a_secret_signs_in_with_pkce_alone() {
    // The provider registers fedgate as a public client (token_endpoint_auth_method none); fedgate has no secret.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let op = Op::start(free_port(), &format!("{base}/login/corp/callback"), &[("PUBLIC_CLIENT", "1")]);
    let up = upstream_toml("corp", &op.issuer, "").replace("client_secret = \"fedgate-secret\"\n", "");
    assert!(!up.contains("client_secret"), "{up}");
    let gw = Gateway::start_on(listener, &format!("[roles]\nadmin = [\"ops\"]\n{up}")).await.unwrap();
    wait_discovered(&gw).await;
    let c = browser();
    let (url, r) = sign_in_at_op(&c, &gw.url("/login/corp"), "alice").await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    let account = r.text().await.unwrap();
    assert!(account.contains("alice") && account.contains("admin"), "{account}");
}

/// `fedgate import keycloak` turns the realm's OpenID Connect identity provider into an `[[upstream.oidc]]` entry:
/// the generated configuration passes check-config, starts, discovers the provider, and a user signs in through it
/// (node oidc-provider) and lands signed in at fedgate, under the provider's name for the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_keycloak_identity_provider_signs_users_in() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let op = Op::start(free_port(), &format!("{base}/login/corp/callback"), &[]);
    let dir = tempfile::tempdir().unwrap();
    let export = serde_json::json!({
        "realm": "corp", "enabled": true, "clients": [],
        "identityProviders": [{
            "alias": "corp", "providerId": "oidc", "enabled": true, "displayName": "Corp SSO",
            "config": {"clientId": "fedgate", "clientSecret": "fedgate-secret", "issuer": op.issuer,
                       "clientAuthMethod": "client_secret_basic", "defaultScope": "openid profile email groups"}
        }]
    });
    let export_path = dir.path().join("realm-export.json");
    std::fs::write(&export_path, serde_json::to_vec_pretty(&export).unwrap()).unwrap();
    let bin = e2e::gateway::fedgate_bin().unwrap();
    let out = Command::new(&bin)
        .args(["import", "keycloak"])
        .arg(&export_path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let report = std::fs::read_to_string(dir.path().join("out/IMPORT-REPORT.md")).unwrap();
    assert!(out.status.success(), "nothing blocks:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("[[upstream.oidc]] \"corp\""), "{report}");
    assert!(report.contains("/login/corp/callback"), "the report says what to register upstream:\n{report}");
    let config_path = dir.path().join("out/config.toml");
    let check = Command::new(&bin).args(["check-config", "--config"]).arg(&config_path).output().unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let config = std::fs::read_to_string(&config_path).unwrap();
    let gw = Gateway::start_on(listener, &config).await.unwrap();
    wait_discovered(&gw).await;
    let c = browser();
    // No LDAP in the realm: the password form is off, so the login page goes straight to the one provider.
    let r = c.get(gw.url("/login?rd=%2F")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login/corp?rd=%2F");
    let (url, r) = sign_in_at_op(&c, &gw.url("/login/corp?rd=%2F"), "alice").await;
    let status = r.status();
    let account = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "landed at {url}: {account}");
    assert_eq!(url, gw.url("/"), "the account page");
    assert!(account.contains("alice") && !account.contains("name=\"password\""), "signed in as alice: {account}");
    drop(op);
}

/// Follows every redirect (across sites) from `start` until a page: (where it stopped, the status, the page).
async fn follow_all(c: &reqwest::Client, start: &str) -> (url::Url, StatusCode, String) {
    let mut url = url::Url::parse(start).unwrap();
    for _ in 0..20 {
        let r = c.get(url.clone()).send().await.unwrap();
        if !r.status().is_redirection() {
            let status = r.status();
            return (url, status, r.text().await.unwrap());
        }
        url = url.join(r.headers()["location"].to_str().unwrap()).unwrap();
    }
    panic!("too many redirects from {start}");
}

fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Keycloak's broker passes an app's `login_hint` and `prompt` on to the identity provider: at both authorization
/// endpoints, by `kc_idp_hint` or by the login page's button, the provider's login page (node oidc-provider) shows
/// the name filled in, and `prompt=login` makes the provider ask for the password again although the browser is
/// signed in there (before, the provider signed the user in silently and the app's `prompt=login` meant nothing).
#[tokio::test]
async fn login_hint_and_prompt_reach_the_provider() {
    let realm = "[keycloak]\nrealm = \"corp\"\n";
    let e = env_full("", &format!("{}{realm}", demo_user_toml()), false).await;
    let auth = |path: &str, extra: &str| {
        format!(
            "{path}?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&state=s&nonce=n{extra}"
        )
    };
    let op_login_page = |at: &url::Url, status: StatusCode, page: &str, what: &str| {
        assert_eq!(status, StatusCode::OK, "{what}: stopped at {at}");
        assert!(at.as_str().starts_with(&format!("{}/interaction/", e.op.issuer)), "{what}: stopped at {at}");
        assert!(page.contains("name=\"login\""), "{what}: not the provider's login form: {page}");
    };
    for path in ["/oauth2/authorize", "/realms/corp/protocol/openid-connect/auth"] {
        // Straight there by kc_idp_hint: the provider got the hint and fills the name in.
        let (at, status, page) =
            follow_all(&browser(), &e.gw.url(&auth(path, "&kc_idp_hint=corp&login_hint=carol"))).await;
        op_login_page(&at, status, &page, path);
        assert!(page.contains("value=\"carol\""), "{path}: the provider did not get login_hint: {page}");

        // By the button on fedgate's login page: the same.
        let c = browser();
        let (at, status, page) = follow_at_gateway(&c, &e.gw, &auth(path, "&login_hint=carol")).await;
        assert_eq!((at.path(), status), ("/login", StatusCode::OK), "{path}");
        let button = href_starting(&page, "/login/corp").unwrap_or_else(|| panic!("no button: {page}"));
        let (at, status, page) = follow_all(&c, &e.gw.url(&button)).await;
        op_login_page(&at, status, &page, &format!("{path} by the button"));
        assert!(page.contains("value=\"carol\""), "{path} by the button: {page}");

        // Other prompt values go along (the provider is named by the redirect that leaves fedgate).
        let (at, _, _) =
            follow_at_gateway(&browser(), &e.gw, &auth(path, "&kc_idp_hint=corp&prompt=select_account%20consent"))
                .await;
        assert!(at.as_str().starts_with(&format!("{}/auth?", e.op.issuer)), "{path}: {at}");
        assert_eq!(query_value(&at, "prompt").as_deref(), Some("select_account consent"), "{path}: {at}");
        assert_eq!(query_value(&at, "login_hint"), None, "{path}: no hint asked, none sent");

        // Signed in at the provider and at fedgate; the app asks for a fresh login: the provider asks again.
        let c = browser();
        let (_, r) = sign_in_at_op(&c, &e.gw.url(&auth(path, "&kc_idp_hint=corp")), "alice").await;
        assert!(r.headers()["location"].to_str().unwrap().starts_with("http://127.0.0.1:9/cb?code="), "{path}");
        // (prompt=login needs a login after the request; auth_time has whole seconds)
        e.gw.clock.advance(std::time::Duration::from_secs(2));
        let (at, status, page) = follow_all(&c, &e.gw.url(&auth(path, "&kc_idp_hint=corp&prompt=login"))).await;
        op_login_page(&at, status, &page, &format!("{path} with prompt=login"));
    }
}

/// A hint travels with the request it came with: a login that comes back to the authorization request without a
/// session (the sign-in did not stick, or the link was opened in another browser) still goes to the provider the
/// app named, for OIDC and for SAML (before, it showed fedgate's login page and the hint was lost).
#[tokio::test]
async fn a_hint_survives_a_resume_without_a_session() {
    let e = env_full("", &demo_user_toml(), false).await;
    let to_provider = |at: &url::Url, what: &str| {
        assert!(at.as_str().starts_with(&format!("{}/auth?", e.op.issuer)), "{what}: went to {at}");
    };
    // OIDC: the login page's `rd` is the resume URL of the waiting request.
    let c = browser();
    let start = "/oauth2/authorize?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&state=s&kc_idp_hint=corp&login_hint=carol";
    let r = c.get(e.gw.url(start)).send().await.unwrap();
    let rd = e2e::gateway::rd_of(&r).expect("sent to the login page");
    assert!(rd.starts_with("/oauth2/authorize/resume?id="), "{rd}");
    let (at, _, _) = follow_at_gateway(&browser(), &e.gw, &rd).await;
    to_provider(&at, "OIDC resume");
    assert_eq!(query_value(&at, "login_hint").as_deref(), Some("carol"), "{at}");

    // SAML: an AuthnRequest at the SSO URL with kc_idp_hint, resumed without a session.
    let req = crate::saml::deflate_b64(&format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r{}" Version="2.0" IssueInstant="{}"><saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">https://signin-intl.aliyun.com/1234567890123456/saml/SSO</saml2:Issuer></samlp:AuthnRequest>"#,
        crate::saml::unique_id(),
        crate::saml::saml_now()
    ));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &req)
        .append_pair("kc_idp_hint", "corp")
        .finish();
    let r = c.get(e.gw.url(&format!("/saml/sso?{q}"))).send().await.unwrap();
    let rd = e2e::gateway::rd_of(&r).expect("sent to the login page");
    assert!(rd.starts_with("/saml/resume?id="), "{rd}");
    let (at, _, _) = follow_at_gateway(&browser(), &e.gw, &rd).await;
    to_provider(&at, "SAML resume");
}

/// An AuthnRequest for Alibaba Cloud RAM user SSO that names an identity provider as Keycloak reads it
/// (`kc_idp_hint` in the SSO URL's query), at `/saml/sso` and at the realm's `/protocol/saml`, by HTTP-Redirect and
/// HTTP-POST: the login goes straight to the provider, and RAM gets the signed response for the user who signed
/// in there. An unknown name shows the login page; `ForceAuthn` asks the provider for a fresh login.
#[tokio::test]
async fn kc_idp_hint_on_a_saml_authn_request_goes_to_the_provider() {
    let realm = "[keycloak]\nrealm = \"corp\"\n";
    let e = env_full("", &format!("{}{realm}", demo_user_toml()), false).await;
    let request = |force: bool| {
        crate::saml::deflate_b64(&format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_k{}" Version="2.0" IssueInstant="{}"{}><saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">https://signin-intl.aliyun.com/1234567890123456/saml/SSO</saml2:Issuer></samlp:AuthnRequest>"#,
            crate::saml::unique_id(),
            crate::saml::saml_now(),
            if force { r#" ForceAuthn="true""# } else { "" }
        ))
    };
    for sso in ["/saml/sso", "/realms/corp/protocol/saml"] {
        // HTTP-Redirect, through the provider's login and back: RAM's response names alice.
        let c = browser();
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLRequest", &request(false))
            .append_pair("RelayState", "https://homenew-intl.console.aliyun.com/")
            .append_pair("kc_idp_hint", "corp")
            .finish();
        let (at, r) = sign_in_at_op(&c, &e.gw.url(&format!("{sso}?{q}")), "alice").await;
        assert_eq!(r.status(), StatusCode::OK, "{sso}: stopped at {at}");
        let (action, xml, relay) = crate::saml::posted(&r.text().await.unwrap());
        assert_eq!(action, "https://signin-intl.aliyun.com/saml/SSO", "{sso}");
        assert_eq!(relay.as_deref(), Some("https://homenew-intl.console.aliyun.com/"), "{sso}");
        assert_eq!(crate::saml::get(&xml, "saml:NameID", ""), "alice@corp.example.com", "{sso}");

        // HTTP-POST to the SSO URL with the hint in its query.
        let (at, _, _) = {
            let c = browser();
            let r = c
                .post(e.gw.url(&format!("{sso}?kc_idp_hint=corp")))
                .form(&[("SAMLRequest", base64_xml_of(&request(false)))])
                .send()
                .await
                .unwrap();
            let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
            let next = loc.unwrap_or_else(|| panic!("{sso} POST: no redirect ({})", r.status()));
            follow_at_gateway(&c, &e.gw, &next).await
        };
        assert!(at.as_str().starts_with(&format!("{}/auth?", e.op.issuer)), "{sso} POST: went to {at}");

        // Posted from the SP's page on another site (no session cookie comes along): fedgate posts it once more
        // from its own page, to the same URL, hint included, and the login still goes to the provider.
        let c = browser();
        let first = c
            .post(e.gw.url(&format!("{sso}?kc_idp_hint=corp")))
            .header("sec-fetch-site", "cross-site")
            .form(&[("SAMLRequest", base64_xml_of(&request(false)))]);
        let landed = e2e::saml_sp::follow(&c, first).await;
        assert!(
            landed.url.starts_with(&format!("{}/interaction/", e.op.issuer)),
            "{sso} cross-site POST: {:?}",
            landed.trail
        );
        assert!(landed.trail.iter().any(|u| u.contains("kc_idp_hint=corp")), "{:?}", landed.trail);

        // ForceAuthn: a fresh login at the provider too.
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLRequest", &request(true))
            .append_pair("kc_idp_hint", "corp")
            .finish();
        let (at, _, _) = follow_at_gateway(&c, &e.gw, &format!("{sso}?{q}")).await;
        assert_eq!(query_value(&at, "prompt").as_deref(), Some("login"), "{sso} ForceAuthn: {at}");

        // A name no provider has: fedgate's login page.
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLRequest", &request(false))
            .append_pair("kc_idp_hint", "https://evil.example/")
            .finish();
        let (at, status, page) = follow_at_gateway(&browser(), &e.gw, &format!("{sso}?{q}")).await;
        assert_eq!((at.path(), status), ("/login", StatusCode::OK), "{sso}: {page}");
    }
}

/// The HTTP-POST binding's `SAMLRequest` (plain base64 XML) for a Redirect-binding value (deflated base64).
fn base64_xml_of(deflated_b64: &str) -> String {
    use std::io::Read as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(deflated_b64).unwrap();
    let mut xml = Vec::new();
    flate2::read::DeflateDecoder::new(raw.as_slice()).read_to_end(&mut xml).unwrap();
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// The first `href="…"` of `html` that starts with `prefix`, HTML entities decoded.
fn href_starting(html: &str, prefix: &str) -> Option<String> {
    let at = html.find(&format!("href=\"{prefix}"))? + "href=\"".len();
    let end = html[at..].find('"')? + at;
    Some(html[at..end].replace("&amp;", "&").replace("&#x3D;", "=").replace("&#x2F;", "/"))
}

/// Two upstream accounts with one username: the second provider's "mallory" (or another subject at the first
/// provider calling itself mallory) would be the first one everywhere downstream — the same `X-Forwarded-User`, the
/// same SAML NameID (for RAM, the same RAM user). The first account to sign in with the name holds it; the others
/// are refused with a page and get no session, until `fedgate upstream release` frees the name. Real binary,
/// embedded store (the hold survives a restart). It used to sign the second account in as mallory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_held_by_one_upstream_account_is_refused_to_another() {
    let forge = start_forge().await;
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "[log]\nlevel = \"warn\"\n{}{}{}\n[store]\nkind = \"embedded\"\npath = \"{}\"\n",
        demo_user_toml(),
        upstream_toml("forge", &forge.base, ""),
        upstream_toml("forge2", &forge.base, ""),
        state.path().join("state").display()
    );
    let port = free_port();
    let start = || {
        e2e::gateway::GatewayProcess::start_with(
            &config,
            e2e::gateway::ProcessOptions { port: Some(port), ..Default::default() },
        )
    };
    let discovered = |base: String| async move {
        for _ in 0..200 {
            let r: serde_json::Value =
                e2e::gateway::http().get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap();
            if r["upstreams"].as_object().is_some_and(|m| m.len() == 2 && m.values().all(|v| v == "ok")) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("upstream providers never discovered");
    };
    let gw = start().await.unwrap();
    discovered(gw.base.clone()).await;
    let (status, session, body) = forge_attempt(&browser(), &gw.base, "forge", "good").await;
    assert_eq!((status, session), (StatusCode::SEE_OTHER, true), "the first mallory signs in: {body}");
    for (provider, mode) in [("forge2", "good"), ("forge", "sub-imposter")] {
        let (status, session, body) = forge_attempt(&browser(), &gw.base, provider, mode).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{provider} {mode} signed in as the first mallory: {body}");
        assert!(!session, "{provider} {mode}: no session");
        assert!(body.contains("The name mallory is already used by another account"), "{provider} {mode}: {body}");
    }
    let (status, session, _) = forge_attempt(&browser(), &gw.base, "forge", "good").await;
    assert_eq!((status, session), (StatusCode::SEE_OTHER, true), "the holder signs in again");
    // Released by the administrator (the embedded store is locked while fedgate runs: stop it first).
    gw.stop_with("TERM").await.unwrap();
    let cfg = state.path().join("fedgate.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}/\"\n{config}"),
    )
    .unwrap();
    let out = std::process::Command::new(e2e::gateway::fedgate_bin().unwrap())
        .args(["upstream", "release", "MALLORY", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed} {}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("released MALLORY (held by forge:mallory)"), "{printed}");
    let gw = start().await.unwrap();
    discovered(gw.base.clone()).await;
    let (status, session, body) = forge_attempt(&browser(), &gw.base, "forge2", "good").await;
    assert_eq!((status, session), (StatusCode::SEE_OTHER, true), "after the release the name is free: {body}");
    let (status, _, _) = forge_attempt(&browser(), &gw.base, "forge", "good").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "and now held by forge2's mallory");
}
