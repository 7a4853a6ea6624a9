//! The third attack run against the real `fedgate` binary: what it found open, replayed. Each test performs the
//! attack and asserts what the attacker must not get.

use std::os::unix::fs::PermissionsExt as _;

use e2e::gateway::{GatewayProcess, browser, csrf_from, demo_config, session_cookie};
use e2e::nginx::Nginx;
use e2e::raw_http;

/// The RFC 7636 example verifier and its S256 challenge.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// An app behind the proxy (here nginx, as a compromised or careless app would answer) cannot plant fedgate's
/// session cookie in the browser (session fixation: the victim then works as the attacker, in every app), nor its
/// CSRF or binding cookies, nor clear them; its own cookies pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_cannot_set_or_clear_fedgate_cookies() {
    let app = tokio::task::spawn_blocking(|| {
        Nginx::with_server(
            "server {\n  listen 127.0.0.1:{PORT};\n  location / {\n    \
             add_header Set-Cookie \"fedgate_session=attackers-session; Path=/\" always;\n    \
             add_header Set-Cookie \"fedgate_csrf=planted; Path=/\" always;\n    \
             add_header Set-Cookie \"__Host-fedgate_csrf=planted; Path=/; Secure\" always;\n    \
             add_header Set-Cookie \"fedgate_upstream=planted; Path=/\" always;\n    \
             add_header Set-Cookie \" fedgate_session = ; Max-Age=0; Path=/\" always;\n    \
             add_header Set-Cookie \"app_pref=dark; Path=/\" always;\n    \
             return 200 \"app\\n\";\n  }\n}",
        )
    })
    .await
    .unwrap()
    .unwrap();
    let cfg =
        format!("{}\n[[proxy.routes]]\nupstream = \"{}\"\npublic_paths = [\"/public\"]\n", demo_config(), app.base);
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    for (who, path, cookie) in [("bob", "/home", Some(bob.as_str())), ("anonymous", "/public/x", None)] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        let r = raw_http::get(&gw.base, path, &headers).await.unwrap();
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        assert_eq!(r.body, "app\n", "{who}");
        let set: Vec<&str> = r.headers.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.as_str()).collect();
        for v in &set {
            let name = v.split('=').next().unwrap_or("").trim();
            assert!(!name.contains("fedgate"), "{who}: the app set fedgate's cookie through the proxy: {v}");
        }
        assert!(set.contains(&"app_pref=dark; Path=/"), "{who}: the app's own cookie was dropped: {set:?}");
    }
    // Bob is still bob.
    let r = raw_http::get(&gw.base, "/home", &[("Cookie", &bob)]).await.unwrap();
    assert_eq!(r.status, 200);
}

/// Answers that carry a session cookie, an authorization code or a logout are never kept by a shared cache
/// (a corporate proxy, a CDN in front of fedgate) or the browser's back-forward cache: `Cache-Control: no-store`,
/// as RFC 6749 §5.1 asks of token answers and OWASP of every answer that sets a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_a_session_or_a_code_are_not_stored() {
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!("{}{}", demo_config(), crate::oidc::oidc_toml(keys.path(), "ES256"));
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let no_store = |what: &str, r: &reqwest::Response| {
        let cc = r.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(cc.contains("no-store"), "{what} ({}) has Cache-Control {cc:?}", r.status());
    };
    let c = browser();
    let html = c.get(format!("{}/login", gw.base)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let r = c
        .post(format!("{}/login", gw.base))
        .form(&[("username", "bob"), ("password", "bob-demo"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers().get("set-cookie").is_some());
    no_store("the login answer that sets the session cookie", &r);

    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id=app&redirect_uri={}&scope=openid&state=s\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        gw.base,
        crate::oidc::REDIRECT
    );
    let r = c.get(&authorize).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(loc.contains("code="), "{loc}");
    no_store("the redirect that carries the authorization code", &r);

    let page = c.get(format!("{}/logout", gw.base)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&page).unwrap();
    let r = c.post(format!("{}/logout", gw.base)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert!(r.headers().get("set-cookie").is_some(), "logout cleared no cookie ({})", r.status());
    no_store("the logout answer that clears the session cookie", &r);
}

/// The embedded store's directory holds every session (user, groups, e-mail, the session's CSRF token) and the
/// pending sign-ins: other local users must not read it. It is created 0700, and one left readable by an earlier
/// version (or a umask of 022) is made 0700 at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh/state");
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    for path in [&fresh, &old] {
        let cfg = format!("{}\n[store]\nkind = \"embedded\"\npath = \"{}\"\n", demo_config(), path.display());
        let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
        session_cookie(&gw.base, "bob").await.unwrap();
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}: other local users can read the sessions", path.display());
        gw.stop_with("TERM").await.unwrap();
    }
}

/// `/readyz` answers anyone (load balancers probe it), but what is wrong with the directory, the store or an
/// upstream provider (internal addresses, resolver and TLS errors, a tenant id in an issuer URL) and how many
/// sessions exist are for the operator: clients outside `server.metrics_allow` get the status alone, as the login
/// page tells an anonymous visitor only that a provider is unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_details_are_for_the_operator() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let body = format!(
        "{}\n[[upstream.oidc]]\nname = \"entra\"\nissuer = \"http://127.0.0.1:{closed}/tenant-7f3a9c/v2.0\"\n\
         client_id = \"cid\"\nclient_secret = \"upstream-secret-0123456789\"\n",
        demo_config()
    );
    for (who, allow, detailed) in
        [("an anonymous client", "[\"10.0.0.0/8\"]", false), ("the operator", "[\"127.0.0.0/8\"]", true)]
    {
        let server = format!("metrics_allow = {allow}");
        let options = e2e::gateway::ProcessOptions { server: &server, ..Default::default() };
        let gw = GatewayProcess::start_with(&body, options).await.unwrap();
        let r = raw_http::get(&gw.base, "/readyz", &[]).await.unwrap();
        assert_eq!(r.status, 200, "{who}: the password login is a way in: {}", r.body);
        assert_eq!(r.json().unwrap()["status"], "ready", "{who}: {}", r.body);
        for secret in ["tenant-7f3a9c", "127.0.0.1", "refused", "sessions"] {
            assert_eq!(r.body.contains(secret), detailed, "{who} and {secret:?} in /readyz: {}", r.body);
        }
    }
}

/// Signs `user` in at `base` without a cookie jar (the gateway's cookies are `Secure`: its public URL is https,
/// behind a TLS-terminating load balancer); returns the session cookie as `(name, value)`.
async fn sign_in_raw(base: &str, user: &str) -> (String, String) {
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap();
    let form = c.get(format!("{base}/login")).send().await.unwrap();
    let csrf_cookie = form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = csrf_from(&form.text().await.unwrap()).unwrap();
    let password = format!("{user}-demo");
    let r = c
        .post(format!("{base}/login"))
        .header("cookie", csrf_cookie)
        .form(&[("username", user), ("password", password.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    if r.status() != 303 {
        panic!("login of {user}: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("fedgate_session="))
        .unwrap_or_else(|| panic!("no session cookie for {user}"))
        .to_string();
    assert!(set.contains("; Secure") && !set.to_ascii_lowercase().contains("domain="), "{set}");
    let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
    (name.to_string(), value.to_string())
}

/// Cookie tossing: a sibling subdomain (`evil.example.com`: a user-content host, a compromised app) sets
/// `fedgate_session` with `Domain=example.com`; the browser then sends it to fedgate beside (and, being older or
/// with a longer `Path`, before) the user's own. Over https the session cookie is `__Host-fedgate_session`, which
/// no other host can set, and the planted plain one is ignored: the user stays themselves instead of working as the
/// attacker in every app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_tossed_from_a_sibling_subdomain_is_ignored() {
    let options = e2e::gateway::ProcessOptions { public_url: Some("https://sso.example.com/"), ..Default::default() };
    let gw = GatewayProcess::start_with(&demo_config(), options).await.unwrap();
    let (_, attackers) = sign_in_raw(&gw.base, "alice").await;
    let (name, bobs) = sign_in_raw(&gw.base, "bob").await;
    let page = raw_http::get(&gw.base, "/", &[("Cookie", &format!("fedgate_session={attackers}; {name}={bobs}"))])
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"username\">bob<"), "bob's browser is signed in as someone else: {}", page.body);
    assert_eq!(name, "__Host-fedgate_session", "over https the session cookie is host-only by name");
}

/// The `__Host-` session cookie and upgrades: a session stored by a version that set the plain `fedgate_session`
/// (its JSON has no `host_cookie`) still works from that cookie after the upgrade, so nobody is signed out; a
/// session created now is never taken from the plain name, so a cookie planted under it alone (a visitor with no
/// session of their own) does not sign the visitor in as the attacker either. Real Redis holds the sessions; the
/// pre-upgrade one is the same session with the field taken out, as the old version wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_from_before_the_host_cookie_survive_the_upgrade_and_planted_new_ones_do_not() {
    let redis = e2e::redis::Redis::start().unwrap();
    let options = e2e::gateway::ProcessOptions { public_url: Some("https://sso.example.com/"), ..Default::default() };
    let cfg = format!("{}\n[store]\nkind = \"redis\"\nurl = \"{}\"\n", demo_config(), redis.url());
    let gw = GatewayProcess::start_with(&cfg, options).await.unwrap();
    let (_, alices) = sign_in_raw(&gw.base, "alice").await;
    let keys = redis.cli(&["--raw", "KEYS", "fedgate:{s:*"]);
    let key = keys.lines().next().expect("alice's session in Redis").to_string();
    let stored = redis.cli(&["--raw", "GET", &key]);
    assert!(stored.contains("\"host_cookie\":true"), "{stored}");
    let old_format = stored.trim_end().replace(",\"host_cookie\":true", "");
    assert_eq!(redis.cli(&["SET", &key, &old_format, "KEEPTTL"]).trim(), "OK");
    // After the first level's TTL (500 ms) the gateway reads the session as the old version stored it.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let page = raw_http::get(&gw.base, "/", &[("Cookie", &format!("fedgate_session={alices}"))]).await.unwrap();
    assert_eq!(page.status, 200, "a session from before the upgrade was signed out: {}", page.body);
    assert!(page.body.contains("id=\"username\">alice<"), "{}", page.body);

    // A session created now, planted under the plain name in a browser that has none of its own.
    let (_, bobs) = sign_in_raw(&gw.base, "bob").await;
    let page = raw_http::get(&gw.base, "/", &[("Cookie", &format!("fedgate_session={bobs}"))]).await.unwrap();
    assert!(!page.body.contains("id=\"username\">bob<"), "a planted plain-named cookie signed the visitor in as bob");
    assert_ne!(page.status, 200, "{}", page.body);
}
