//! The attack run of issue 14, replayed against the real `fedgate` binary as the docs deploy it: a route `/admin`
//! for role admin, `/` for any signed-in user with `public_paths = ["/public"]`, in front of real nginx serving
//! files and of a real WSGI app; and the documented nginx `auth_request` block, verbatim. Every request here is
//! one an attacker sends; each assertion is what they must not get.

use e2e::gateway::{Gateway, GatewayProcess, ProcessOptions, demo_config, http, session_cookie};
use e2e::nginx::Nginx;
use e2e::raw_http::{self, RawResponse};
use e2e::upstream::EchoUpstream;
use e2e::wsgi::WsgiEcho;
use reqwest::StatusCode;

const SECRET_FILE: &str = "the admin secret\n";

/// The documented proxy set-up with `upstream` behind both routes.
fn proxy_config(upstream: &str) -> String {
    format!(
        r#"{demo}
[[proxy.routes]]
path_prefix = "/admin"
upstream = "{upstream}"
allow_roles = ["admin"]
[[proxy.routes]]
upstream = "{upstream}"
public_paths = ["/public"]
"#,
        demo = demo_config()
    )
}

/// A directory nginx serves: an admin-only file, a public page and a home page.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("admin")).unwrap();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("admin/secret.txt"), SECRET_FILE).unwrap();
    std::fs::write(dir.path().join("public/index.html"), "public page\n").unwrap();
    std::fs::write(dir.path().join("index.html"), "home\n").unwrap();
    dir
}

async fn get(base: &str, target: &str, cookie: Option<&str>) -> RawResponse {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    raw_http::get(base, target, &headers).await.unwrap_or_else(|e| panic!("GET {target}: {e:#}"))
}

/// What an anonymous client tried in the attack run, and what a signed-in non-admin tried.
const ANONYMOUS_TRICKS: &[&str] = &[
    "/public/../admin/secret.txt",
    "/public/%2e%2e/admin/secret.txt",
    "/public/%2E%2E/admin/secret.txt",
    "/public/./../admin/secret.txt",
    "/public//../admin/secret.txt",
    "/public/.%2e/admin/secret.txt",
    "/public/..;/admin/secret.txt",
    "/public/..%2fadmin/secret.txt",
    "/public%2f..%2fadmin/secret.txt",
    "/public/..%5cadmin/secret.txt",
    "/public/%2e%2e%2fadmin/secret.txt",
    "/public/../../admin/secret.txt",
];
const NON_ADMIN_TRICKS: &[&str] = &[
    "//admin/secret.txt",
    "/./admin/secret.txt",
    "/x/../admin/secret.txt",
    "/%61dmin/secret.txt",
    "/%61%64%6d%69%6e/secret.txt",
    "/admin%2fsecret.txt",
    "/admin;x/secret.txt",
    "/admin/./secret.txt",
    "///admin/secret.txt",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_do_not_reach_admin_files_on_a_normalising_upstream() {
    let root = site();
    let files = tokio::task::spawn_blocking({
        let root = root.path().to_path_buf();
        move || Nginx::static_files(&root)
    })
    .await
    .unwrap()
    .unwrap();
    let gw = GatewayProcess::start(&proxy_config(&files.base), &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let alice = session_cookie(&gw.base, "alice").await.unwrap();

    // The set-up works: the public page is public, the admin file is an admin's.
    assert_eq!(get(&gw.base, "/public/", None).await.body, "public page\n");
    assert_eq!(get(&gw.base, "/admin/secret.txt", Some(&alice)).await.body, SECRET_FILE);
    assert_eq!(get(&gw.base, "/admin/secret.txt", Some(&bob)).await.status, 403);

    for trick in ANONYMOUS_TRICKS {
        let r = get(&gw.base, trick, None).await;
        assert_ne!(r.body, SECRET_FILE, "anonymous {trick} read the admin file");
        assert!(matches!(r.status, 302 | 303 | 400 | 401), "anonymous {trick}: {} {}", r.status, r.body);
    }
    for trick in ANONYMOUS_TRICKS.iter().chain(NON_ADMIN_TRICKS) {
        let r = get(&gw.base, trick, Some(&bob)).await;
        assert_ne!(r.body, SECRET_FILE, "bob (researcher) read the admin file with {trick}");
        assert!(matches!(r.status, 400 | 403), "bob {trick}: {} {}", r.status, r.body);
    }
    // What can be made canonical is served to those allowed, as the canonical path.
    for alias in ["/%61dmin/secret.txt", "//admin//secret.txt", "/public/../admin/secret.txt"] {
        assert_eq!(get(&gw.base, alias, Some(&alice)).await.body, SECRET_FILE, "{alias}");
    }
    // What cannot is refused with a 400 that says why.
    let r = get(&gw.base, "/public/..%2fadmin/secret.txt", Some(&alice)).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("encoded slash"), "{}", r.body);
    let r = get(&gw.base, "/public/../../etc/passwd", None).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("above the root"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wsgi_app_gets_exactly_the_path_that_was_decided_on() {
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let gw = GatewayProcess::start(&proxy_config(&app.base), &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let alice = session_cookie(&gw.base, "alice").await.unwrap();

    for trick in ANONYMOUS_TRICKS {
        let r = get(&gw.base, trick, None).await;
        if r.status == 200 {
            let seen = r.json().unwrap();
            assert_eq!(seen["admin"], false, "anonymous {trick} reached the app's admin pages: {seen}");
        }
        assert!(matches!(r.status, 302 | 303 | 400 | 401), "anonymous {trick}: {} {}", r.status, r.body);
    }
    for trick in ANONYMOUS_TRICKS.iter().chain(NON_ADMIN_TRICKS) {
        let r = get(&gw.base, trick, Some(&bob)).await;
        assert!(matches!(r.status, 400 | 403), "bob {trick}: {} {}", r.status, r.body);
    }
    for (sent, forwarded) in [
        ("/x/../admin/y", "/admin/y"),
        ("/%61dmin//y/./z", "/admin/y/z"),
        ("/public/a/%2e%2e/b", "/public/b"),
        ("/caf%c3%a9", "/caf\u{c3}\u{a9}"), // PEP 3333: PATH_INFO holds the bytes as latin-1
    ] {
        let r = get(&gw.base, sent, Some(&alice)).await;
        assert_eq!(r.status, 200, "{sent}: {}", r.body);
        let seen = r.json().unwrap();
        assert_eq!(seen["path_info"], forwarded, "{sent}");
        assert_eq!(seen["path_info"], seen["routed"], "{sent}: the app routes on the path it was given");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_identity_headers_never_reach_the_app_in_any_spelling() {
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let gw = GatewayProcess::start(&proxy_config(&app.base), &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let forged: &[(&str, &str)] = &[
        ("X_Forwarded_User", "admin"),
        ("x_forwarded_roles", "admin"),
        ("X-Forwarded_Groups", "ai-admins"),
        ("X_Forwarded_Email", "ceo@example.com"),
        ("X-Forwarded-Preferred_Username", "admin"),
        ("X-Forwarded-User", "admin"),
        ("X-Real-IP", "203.0.113.9"),
        ("X_Real_IP", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9;host=admin.example.com"),
        ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Prefix", "/admin"),
    ];
    for (who, cookie) in [("bob", Some(bob.as_str())), ("anonymous", None)] {
        let path = if cookie.is_some() { "/" } else { "/public/x" };
        let mut headers = forged.to_vec();
        if let Some(c) = cookie {
            headers.push(("Cookie", c));
        }
        let r = raw_http::get(&gw.base, path, &headers).await.unwrap();
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        let env = &r.json().unwrap()["env"];
        let user = env["HTTP_X_FORWARDED_USER"].as_str();
        let roles = env["HTTP_X_FORWARDED_ROLES"].as_str();
        if who == "bob" {
            assert_eq!(user, Some("bob"), "{env}");
            assert_eq!(roles, Some("researcher"), "{env}");
            assert_ne!(env["HTTP_X_FORWARDED_EMAIL"], "ceo@example.com", "{env}");
            assert!(!env["HTTP_X_FORWARDED_GROUPS"].as_str().unwrap_or("").contains("ai-admins"), "{env}");
        } else {
            for var in ["HTTP_X_FORWARDED_USER", "HTTP_X_FORWARDED_ROLES", "HTTP_X_FORWARDED_GROUPS"] {
                assert!(env[var].is_null(), "anonymous request carried {var}: {env}");
            }
        }
        assert_eq!(env["HTTP_X_REAL_IP"], "127.0.0.1", "{who}: {env}");
        for var in ["HTTP_FORWARDED", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX"] {
            assert!(env[var].is_null(), "{who}: the client's {var} reached the app: {env}");
        }
        assert!(!env["HTTP_X_FORWARDED_PREFERRED_USERNAME"].as_str().unwrap_or("").contains("admin"), "{env}");
    }
}

/// Forward-auth routes for `dash.example.com` (the documented nginx block's `server_name`): nginx forwards.
fn forward_auth_config() -> String {
    format!(
        r#"{demo}
[[proxy.routes]]
host = "dash.example.com"
path_prefix = "/admin"
allow_roles = ["admin"]
[[proxy.routes]]
host = "dash.example.com"
public_paths = ["/public"]
"#,
        demo = demo_config()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nginx_block_lets_no_client_header_reach_the_decision() {
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let gw = GatewayProcess::start(&forward_auth_config(), &[], &[], false).await.unwrap();
    let nginx = tokio::task::spawn_blocking({
        let (g, a) = (gw.base.clone(), app.base.clone());
        move || Nginx::start(&g, &a)
    })
    .await
    .unwrap()
    .unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let alice = session_cookie(&gw.base, "alice").await.unwrap();
    let ask = |target: &'static str, cookie: Option<String>, extra: Vec<(&'static str, &'static str)>| {
        let base = nginx.base.clone();
        async move {
            let cookie = cookie.unwrap_or_default();
            let mut headers: Vec<(&str, &str)> = extra;
            if !cookie.is_empty() {
                headers.push(("Cookie", cookie.as_str()));
            }
            raw_http::get(&base, target, &headers).await.unwrap()
        }
    };

    // It works: alice reaches /admin with her identity, bob his pages, anonymous the public ones.
    let r =
        ask("/admin/x", Some(alice.clone()), vec![("X-Forwarded-Groups", "forged"), ("X_Forwarded_User", "x")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let env = &r.json().unwrap()["env"];
    assert_eq!(env["HTTP_X_FORWARDED_USER"], "alice", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_ROLES"], "admin", "{env}");
    assert_ne!(env["HTTP_X_FORWARDED_GROUPS"], "forged", "{env}");
    assert_eq!(ask("/", Some(bob.clone()), vec![]).await.status, 200);
    let r = ask("/public/x", None, vec![("X-Forwarded-User", "admin"), ("X-Forwarded-Roles", "admin")]).await;
    assert_eq!(r.status, 200);
    let env = &r.json().unwrap()["env"];
    assert!(env["HTTP_X_FORWARDED_USER"].is_null() && env["HTTP_X_FORWARDED_ROLES"].is_null(), "{env}");
    let r = ask("/x", None, vec![]).await;
    assert_eq!(r.status, 302, "anonymous outside /public goes to the login page (error_page 401 = @login)");
    assert!(r.header("location").unwrap_or("").contains("/login?rd="), "{:?}", r.headers);

    // The attacks: bob (researcher) on /admin by another Host, a forged X-Original-URL, and path tricks.
    for (target, extra) in [
        ("/admin/x", vec![]),
        ("/admin/x", vec![("Host", "elsewhere.example.com")]),
        ("/admin/x", vec![("Host", "dash.example.com.evil.org")]),
        ("/admin/x", vec![("X-Original-URL", "http://dash.example.com/public/x")]),
        ("/admin/x", vec![("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Host", "other.example.com")]),
        ("/public/../admin/x", vec![]),
        ("/public/%2e%2e/admin/x", vec![]),
        ("//admin/x", vec![]),
        ("/%61dmin/x", vec![]),
    ] {
        let r = ask(target, Some(bob.clone()), extra.clone()).await;
        if r.status == 200 {
            let seen = r.json().unwrap();
            assert_eq!(seen["admin"], false, "bob reached /admin with {target} {extra:?}: {seen}");
        }
        assert_ne!(r.status, 200, "bob {target} {extra:?}: {}", r.body);
    }
    // And anonymous on /admin through the public prefix.
    for target in ["/public/../admin/x", "/public/%2e%2e/admin/x", "/public/..%2fadmin/x"] {
        let r = ask(target, None, vec![]).await;
        assert_ne!(r.status, 200, "anonymous {target}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_reads_only_the_headers_its_integration_sets() {
    let gw = GatewayProcess::start(&forward_auth_config(), &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let c = http();
    let verify = |path: &str, headers: &[(&str, &str)]| {
        let mut r = c.get(format!("{}{path}", gw.base)).header("Cookie", bob.as_str());
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        r.send()
    };
    // Traefik sets X-Forwarded-*; a client-sent X-Original-URL must not win over them.
    let traefik = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "dash.example.com"),
        ("X-Forwarded-Uri", "/admin/x"),
        ("X-Original-URL", "https://dash.example.com/public/x"),
    ];
    assert_eq!(verify("/auth/forward", &traefik).await.unwrap().status(), StatusCode::FORBIDDEN);
    // nginx sets X-Original-URL; a client-sent X-Forwarded-Uri must not win over it.
    let nginx = [("X-Original-URL", "https://dash.example.com/admin/x"), ("X-Forwarded-Uri", "/public/x")];
    assert_eq!(verify("/auth/verify", &nginx).await.unwrap().status(), StatusCode::FORBIDDEN);
    // A host no route names is denied, not "any signed-in user".
    let r = verify("/auth/verify", &[("X-Original-URL", "https://unknown.example.com/admin/x")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("no [[proxy.routes]]"));
    // Without the integration's header there is no decision to make.
    let r = verify("/auth/verify", &[("X-Forwarded-Uri", "/x")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("X-Original-URL"));
    // Allowed where allowed.
    let r = verify("/auth/verify", &[("X-Original-URL", "https://dash.example.com/x")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-forwarded-user"], "bob");
    let r = verify("/auth/forward", &[traefik[0], traefik[1], ("X-Forwarded-Uri", "/x")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_accepts_only_tokens_meant_for_it() {
    let up = EchoUpstream::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"{demo}
{oidc}
[proxy]
token_audiences = ["app"]
[proxy.headers]
access_token = "X-Forwarded-Access-Token"
[[proxy.routes]]
path_prefix = "/api"
upstream = "{up}"
allow_clients = ["robot"]
[[proxy.routes]]
path_prefix = "/admin"
upstream = "{up}"
allow_roles = ["admin"]
[[proxy.routes]]
upstream = "{up}"
"#,
        demo = demo_config(),
        oidc = crate::oidc::oidc_toml(keys.path(), "ES256"),
        up = up.base
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let robot = e2e::gateway::client_credentials_token(&gw.base, "robot", crate::oidc::SECRET, "roles").await.unwrap();
    let bearer = |path: &str, token: &str| http().get(format!("{}{path}", gw.base)).bearer_auth(token).send();

    // A client's own token (no user) opens only the route naming it.
    assert_eq!(bearer("/api/items", &robot).await.unwrap().status(), StatusCode::OK);
    let r = bearer("/home", &robot).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a client_credentials token is not a user");

    // The token fedgate hands the upstream, replayed to fedgate, opens nothing; nor after logout.
    let alice = session_cookie(&gw.base, "alice").await.unwrap();
    let seen: serde_json::Value = http()
        .get(format!("{}/admin/page", gw.base))
        .header("Cookie", &alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let forwarded = seen["headers"]["x-forwarded-access-token"].as_str().unwrap().to_string();
    let claims: serde_json::Value = {
        use base64::Engine as _;
        let payload = forwarded.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty() && !alice.contains(s)), "{claims}");
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 120, "short-lived: {claims}");
    for path in ["/admin/page", "/home"] {
        assert_eq!(bearer(path, &forwarded).await.unwrap().status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = http().get(format!("{}/oauth2/userinfo", gw.base)).bearer_auth(&forwarded).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// A user's access token for a client in `proxy.token_audiences` is an identity at the proxy; the same user's
/// token for another client is not.
#[tokio::test]
async fn user_tokens_count_only_for_configured_audiences() {
    let up = EchoUpstream::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n{}\n[proxy]\ntoken_audiences = [\"app\"]\n[[proxy.routes]]\nupstream = \"{}\"\nallow_roles = [\"admin\"]\n",
        demo_config(),
        crate::oidc::oidc_toml(keys.path(), "ES256"),
        up.base
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = crate::oidc::logged_in(&gw, "alice", "alice-demo").await;
    let code = crate::oidc::code_for(&gw, &c, "app").await;
    let tokens: serde_json::Value = crate::oidc::redeem(&gw, &code, crate::oidc::SECRET).await.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let r = http().get(gw.url("/dashboard")).bearer_auth(at).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");

    let gw2 =
        Gateway::start(&cfg.replace("token_audiences = [\"app\"]", "token_audiences = [\"other\"]")).await.unwrap();
    let c = crate::oidc::logged_in(&gw2, "alice", "alice-demo").await;
    let code = crate::oidc::code_for(&gw2, &c, "app").await;
    let tokens: serde_json::Value = crate::oidc::redeem(&gw2, &code, crate::oidc::SECRET).await.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let r = http().get(gw2.url("/dashboard")).bearer_auth(at).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a token for client app is not for this proxy");
}

/// Failed logins are counted per typed name; a name as long as the body limit allows must not become a counter
/// key (nor a log line, nor an LDAP filter): 300 attempts with 200 KB names are refused up front and the gateway's
/// memory stays flat, and a real user still signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_usernames_are_refused_before_they_are_kept() {
    let gw = GatewayProcess::start(&demo_config(), &[], &[], false).await.unwrap();
    let c = e2e::gateway::browser();
    let html = c.get(format!("{}/login", gw.base)).send().await.unwrap().text().await.unwrap();
    let mut csrf = e2e::gateway::csrf_from(&html).unwrap();
    let before = e2e::gateway::status_kb(gw.pid(), "VmRSS");
    let huge = "u".repeat(200_000);
    for i in 0..300 {
        let name = format!("{huge}{i}");
        let r = c
            .post(format!("{}/login", gw.base))
            .form(&[("username", name.as_str()), ("password", "x"), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "attempt {i}");
        let body = r.text().await.unwrap();
        assert!(body.contains("too long"), "{}", &body[..body.len().min(500)]);
        assert!(!body.contains(&huge), "the name is not echoed back");
        csrf = e2e::gateway::csrf_from(&body).expect("the form comes back with a fresh token");
    }
    let after = e2e::gateway::status_kb(gw.pid(), "VmRSS");
    println!("RSS {before} kB before, {after} kB after 300 logins with 200 KB usernames");
    assert!(after.saturating_sub(before) < 20_000, "RSS grew from {before} kB to {after} kB");
    assert!(session_cookie(&gw.base, "alice").await.is_ok(), "a real user still signs in");
}

/// Behind a load balancer fedgate trusts (`server.trusted_proxies`), the app's `X-Real-IP` is the client the
/// balancer names — the rightmost address in `X-Forwarded-For` that is not a trusted proxy, as nginx's realip
/// module sets it — instead of the balancer's own address; what a client writes further left in the chain, or in its
/// own `X-Real-IP`, still chooses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_app_gets_the_client_as_x_real_ip() {
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let gw = GatewayProcess::start_with(
        &proxy_config(&app.base),
        ProcessOptions { server: "trusted_proxies = [\"127.0.0.1\"]", ..Default::default() },
    )
    .await
    .unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    for (chain, client) in [("198.51.100.7", "198.51.100.7"), ("6.6.6.6, 198.51.100.7", "198.51.100.7")] {
        let headers = [("Cookie", bob.as_str()), ("X-Forwarded-For", chain), ("X-Real-IP", "6.6.6.6")];
        let r = raw_http::get(&gw.base, "/", &headers).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let env = &r.json().unwrap()["env"];
        assert_eq!(env["HTTP_X_REAL_IP"], client, "{chain}: {env}");
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], format!("{chain}, 127.0.0.1"), "{env}");
    }
    // Without trusted proxies the peer stays the client, whatever the chain says.
    let gw = GatewayProcess::start(&proxy_config(&app.base), &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let headers = [("Cookie", bob.as_str()), ("X-Forwarded-For", "198.51.100.7")];
    let r = raw_http::get(&gw.base, "/", &headers).await.unwrap();
    assert_eq!(r.json().unwrap()["env"]["HTTP_X_REAL_IP"], "127.0.0.1", "{}", r.body);
}
