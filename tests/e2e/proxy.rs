//! The authenticating reverse proxy in front of a real upstream, and forward-auth behind a real nginx.

use e2e::gateway::{Gateway, browser, demo_config, http, status_kb};
use e2e::nginx::Nginx;
use e2e::upstream::EchoUpstream;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;

async fn gateway(up: &EchoUpstream, extra: &str) -> Gateway {
    let cfg = format!(
        "{}\n[[proxy.routes]]\nupstream = \"{}\"\nallow_roles = [\"admin\", \"researcher\"]\npublic_paths = [\"/health\"]\nresponse_timeout = \"1s\"\n{extra}",
        demo_config(),
        up.base
    );
    Gateway::start(&cfg).await.unwrap()
}

async fn logged_in(gw: &Gateway, user: &str) -> reqwest::Client {
    let c = browser();
    let r = crate::login::login(&c, gw, user, &format!("{user}-demo"), "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    c
}

#[tokio::test]
async fn roles_decide_and_the_upstream_sees_only_our_identity_headers() {
    let up = EchoUpstream::start().await.unwrap();
    let gw = gateway(&up, "").await;

    // Not logged in: a browser goes to the login page, an API client gets 401 JSON.
    let anon = browser();
    let r = anon.get(gw.url("/dashboard?x=1")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?rd=%2Fdashboard%3Fx%3D1");
    let r = anon.get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "unauthorized");
    // Public paths need no login.
    assert_eq!(anon.get(gw.url("/health")).send().await.unwrap().status(), StatusCode::OK);

    for (user, roles) in [("alice", "admin"), ("bob", "researcher")] {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        jar.add_cookie_str("app_pref=dark; Path=/", &gw.url("/").parse().unwrap());
        let c = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = crate::login::login(&c, &gw, user, &format!("{user}-demo"), "").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = c
            .get(gw.url("/dashboard/page"))
            .header("X-Forwarded-User", "root")
            .header("x-forwarded-groups", "ai-admins")
            .header("X-FORWARDED-ROLES", "admin")
            .header("Connection", "close, X-Secret-Hop")
            .header("X-Secret-Hop", "should-not-pass")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{user}");
        let seen: serde_json::Value = r.json().await.unwrap();
        let h = &seen["headers"];
        assert_eq!(h["x-forwarded-user"], user, "spoofed value replaced");
        assert_eq!(h["x-forwarded-preferred-username"], user);
        assert_eq!(h["x-forwarded-email"], format!("{user}@example.org"));
        assert_eq!(h["x-forwarded-roles"], roles);
        assert!(h["x-forwarded-groups"].as_str().unwrap().contains("staff"));
        assert!(
            !h["x-forwarded-groups"].as_str().unwrap().contains("ai-admins") || user == "alice",
            "client groups never pass"
        );
        let cookie = h["cookie"].as_str().unwrap_or("");
        assert!(
            cookie.contains("app_pref=dark") && !cookie.contains("fedgate_session"),
            "session cookie removed: {cookie}"
        );
        assert!(h.get("x-secret-hop").is_none(), "headers named in Connection are hop-by-hop");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(seen["path"], "/dashboard/page");
    }
    let carol = logged_in(&gw, "carol").await;
    let r = carol.get(gw.url("/dashboard")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("admin, researcher"), "names the missing role");
}

#[tokio::test]
async fn an_app_behind_a_route_for_everything_keeps_its_paths_and_its_own_headers() {
    let up = EchoUpstream::start().await.unwrap();
    let gw = gateway(&up, "").await;
    let alice = logged_in(&gw, "alice").await;

    // The app's home page is the app's, not the gateway's account page; the gateway keeps only its own endpoints.
    let r = alice.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("x-frame-options").is_none(), "the app's responses are not given our frame policy");
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["path"], "/");
    let r = alice.get(gw.url("/login")).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "/login stays the gateway's");

    // The request id and the client chain reach the app.
    let r = alice
        .get(gw.url("/api/x"))
        .header("x-request-id", "trace-42")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-request-id"], "trace-42");
    assert_eq!(seen["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");

    // The gateway's own answers on that route still carry its headers.
    let r = browser().get(gw.url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let r = http().get(gw.url("/api/x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let carol = logged_in(&gw, "carol").await;
    let r = carol.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers().contains_key("x-request-id"));

    // Proxied requests are counted under their route.
    let metrics = http().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"fedgate_http_requests_total{route="proxy */",method="GET",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"fedgate_http_requests_total{route="proxy */",method="GET",status="403"}"#));
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_replaced_when_they_end() {
    let up = EchoUpstream::start().await.unwrap();
    let gw = gateway(&up, "").await;
    let alice = logged_in(&gw, "alice").await;
    let peer = |v: serde_json::Value| v["peer"].as_str().unwrap().to_string();
    let get = |path: &'static str| {
        let (c, url) = (alice.clone(), gw.url(path));
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            r
        }
    };

    // Sequential requests share one kept-alive connection, also after a chunked body read to the end.
    let first = peer(get("/a").await.json().await.unwrap());
    assert_eq!(peer(get("/b").await.json().await.unwrap()), first);
    assert_eq!(get("/download?bytes=262144").await.bytes().await.unwrap().len(), 262_144);
    assert_eq!(peer(get("/c").await.json().await.unwrap()), first, "reused after a streamed download");

    // The upstream closes the connection: the next request goes on a new one, without an error.
    assert_eq!(get("/close").await.text().await.unwrap(), "closing");
    let second = peer(get("/d").await.json().await.unwrap());
    assert_ne!(second, first);

    // A download the client abandons halfway is not given back half-read: the next request still works.
    let mut r = get("/download?bytes=67108864").await;
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    for path in ["/e", "/f"] {
        let seen: serde_json::Value = get(path).await.json().await.unwrap();
        assert_eq!(seen["path"], path);
    }
}

#[tokio::test]
async fn the_login_redirect_comes_back_to_the_proxied_page() {
    let up = EchoUpstream::start().await.unwrap();
    let gw = gateway(&up, "").await;
    let c = browser();
    let r = c.get(gw.url("/reports?id=7")).header("accept", "text/html").send().await.unwrap();
    let rd = e2e::gateway::rd_of(&r).unwrap();
    let r = crate::login::login(&c, &gw, "alice", "alice-demo", &rd).await;
    assert_eq!(r.headers()["location"], "/reports?id=7");
    let seen: serde_json::Value = c.get(gw.url("/reports?id=7")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["query"], "id=7");
}

/// The real binary as its own process, so its memory can be read on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_without_growing_memory() {
    let up = EchoUpstream::start().await.unwrap();
    let gw = e2e::gateway::GatewayProcess::start(&demo_config(), &["--upstream", &up.base], &[], false).await.unwrap();
    let (base, pid) = (gw.base.clone(), gw.pid());
    let c = browser();
    let form = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = e2e::gateway::csrf_from(&form).unwrap();
    let r = c
        .post(format!("{base}/login"))
        .form(&[("username", "alice"), ("password", "alice-demo"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let idle = status_kb(pid, "VmRSS:");
    const SIZE: u64 = 256 * 1024 * 1024;
    let chunk = bytes::Bytes::from(vec![b'y'; 256 * 1024]);
    let stream =
        futures_util::stream::iter((0..SIZE / chunk.len() as u64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let r = c.post(format!("{base}/upload")).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["bytes"], SIZE);
    let mut down = c.get(format!("{base}/download?bytes={SIZE}")).send().await.unwrap().bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = down.next().await {
        got += chunk.unwrap().len() as u64;
    }
    assert_eq!(got, SIZE);
    let (peak_mb, idle_mb) = (status_kb(pid, "VmHWM:") / 1024, idle / 1024);
    assert!(
        peak_mb.saturating_sub(idle_mb) < 32,
        "512 MB went through the gateway; its peak RSS grew from {idle_mb} MB to {peak_mb} MB"
    );
    gw.sigterm();
    let _ = gw.wait_output().await;
}

#[tokio::test]
async fn websockets_pass_through() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let up = EchoUpstream::start().await.unwrap();
    let gw = gateway(&up, "").await;
    let c = browser();
    let r = crate::login::login(&c, &gw, "bob", "bob-demo", "").await;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("fedgate_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut req = format!("ws://{}/ws", gw.base.trim_start_matches("http://")).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello")).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo: hello");
    // Without a session the upgrade is refused before reaching the upstream.
    let anon = format!("ws://{}/ws", gw.base.trim_start_matches("http://")).into_client_request().unwrap();
    assert!(tokio_tungstenite::connect_async(anon).await.is_err());
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    let up = EchoUpstream::start().await.unwrap();
    let gw = gateway(&up, "").await;
    let c = logged_in(&gw, "alice").await;
    let r = c.get(gw.url("/slow")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    drop(up);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = c.get(gw.url("/anything")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("not answering"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_asks_the_gateway() {
    let up = EchoUpstream::start().await.unwrap();
    // A forward-auth route for the documented block's server_name; nginx forwards, so no upstream.
    let cfg = format!("{}\n[[proxy.routes]]\nhost = \"dash.example.com\"\nallow_roles = [\"admin\"]\n", demo_config());
    let gw = Gateway::start(&cfg).await.unwrap();
    let nginx = tokio::task::spawn_blocking({
        let (g, u) = (gw.base.clone(), up.base.clone());
        move || Nginx::start(&g, &u)
    })
    .await
    .unwrap()
    .unwrap();
    // Not signed in: the documented block sends the browser to the login page (error_page 401 = @login).
    let r = browser().get(format!("{}/private", nginx.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(r.headers()["location"].to_str().unwrap().contains("/login?rd="));
    // The session cookie from the gateway (same host, cookies ignore ports) is what nginx forwards to /auth/verify.
    let c = logged_in(&gw, "alice").await;
    let r = c.get(format!("{}/private", nginx.base)).header("X-Forwarded-User", "mallory").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
    assert_eq!(seen["headers"]["x-forwarded-roles"], "admin");
    let bob = logged_in(&gw, "bob").await;
    assert_eq!(bob.get(format!("{}/private", nginx.base)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // Traefik style (/auth/forward): with ?rd= the answer is a redirect to the login page.
    let cfg = format!("{}\n[[proxy.routes]]\nhost = \"app.example.com\"\n", demo_config());
    let gw = Gateway::start(&cfg).await.unwrap();
    let r = browser()
        .get(gw.url("/auth/forward?rd=1"))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "app.example.com")
        .header("X-Forwarded-Uri", "/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().unwrap().contains("rd=https%3A%2F%2Fapp.example.com%2Fx"));
}

/// API clients present a fedgate access token instead of a cookie.
#[tokio::test]
async fn bearer_access_tokens_from_fedgate_are_accepted() {
    let up = EchoUpstream::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[[proxy.routes]]\nupstream = \"{}\"\nallow_clients = [\"robot\"]\n{}",
        demo_config(),
        up.base,
        crate::oidc::oidc_toml(keys.path(), "ES256")
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let at = &e2e::gateway::client_credentials_token(&gw.base, "robot", crate::oidc::SECRET, "roles").await.unwrap();
    let r = http().get(gw.url("/api/items")).bearer_auth(at).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "robot");
    let r = http().get(gw.url("/api/items")).bearer_auth(format!("{at}x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a tampered token is not an identity");
}

/// With `proxy.headers.access_token`, the upstream gets a JWT it can verify against fedgate's JWKS.
#[tokio::test]
async fn the_upstream_can_get_a_verifiable_jwt() {
    let up = EchoUpstream::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[oidc]\nkeys_dir = \"{}\"\nsigning_algorithm = \"ES256\"\n[proxy]\nupstream = \"{}\"\n[proxy.headers]\naccess_token = \"X-Forwarded-Access-Token\"\n",
        demo_config(),
        keys.path().display(),
        up.base
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    let c = logged_in(&gw, "alice").await;
    let seen: serde_json::Value =
        c.get(gw.url("/app")).header("X-Forwarded-Access-Token", "forged").send().await.unwrap().json().await.unwrap();
    let jwt = seen["headers"]["x-forwarded-access-token"].as_str().unwrap().to_string();
    assert_ne!(jwt, "forged");
    let jwks: jsonwebtoken::jwk::JwkSet =
        http().get(gw.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    let kid = jsonwebtoken::decode_header(&jwt).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["fedgate-proxy"]);
    v.set_issuer(&[gw.base.as_str()]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &v).unwrap().claims;
    assert_eq!(claims["sub"], "static:alice");
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
}

/// An https upstream (another fedgate serving TLS with h2, in front of the echo app), trusted by `ca_file`; the
/// same upstream without its CA is a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_with_their_ca() {
    let up = EchoUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = e2e::tls::TestPki::generate(dir.path(), "upstream").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tls_cfg = format!(
        "[server]\npublic_url = \"https://127.0.0.1:{port}/\"\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{}\n[[proxy.routes]]\nupstream = \"{}\"\npublic_paths = [\"/\"]\n",
        pki.cert_pem.display(),
        pki.key_pem.display(),
        demo_config(),
        up.base
    );
    let mut config = gateway::config::load_str(&tls_cfg).unwrap();
    config.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    // In-process, beside other tests: not the default embedded file in the working directory.
    config.store.kind = gateway::config::StoreKind::Memory;
    let tls_upstream =
        gateway::start(config, std::sync::Arc::new(gateway::domain::clock::SystemClock), std::future::pending())
            .await
            .unwrap();
    let front = |ca: Option<&std::path::Path>| {
        let ca = ca.map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default();
        format!("{}\n[[proxy.routes]]\nupstream = \"https://127.0.0.1:{port}\"\n{ca}", demo_config())
    };
    let gw = Gateway::start(&front(Some(&pki.ca_pem))).await.unwrap();
    let c = logged_in(&gw, "bob").await;
    let r = c.get(gw.url("/over-tls")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["path"], "/over-tls");
    let untrusting = Gateway::start(&front(None)).await.unwrap();
    let c = logged_in(&untrusting, "bob").await;
    assert_eq!(c.get(untrusting.url("/over-tls")).send().await.unwrap().status(), StatusCode::BAD_GATEWAY);
    tls_upstream.shutdown().await.unwrap();
}

/// The systemd unit in docs/sidecar.md, checked by systemd itself (`systemd-analyze verify`) with the real binary in
/// `ExecStart`; a broken copy (a binary that does not exist) is refused, so the check can fail.
#[test]
fn the_documented_systemd_unit_is_valid() {
    let doc = include_str!("../../docs/sidecar.md");
    let section = doc.split("## systemd").nth(1).expect("a systemd section");
    let unit = section.split("```ini\n").nth(1).and_then(|s| s.split("\n```").next()).expect("an ini block");
    assert!(unit.contains("ExecStart=/usr/local/bin/fedgate serve"), "{unit}");
    let bin = e2e::gateway::fedgate_bin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let verify = |text: &str| {
        let path = dir.path().join("fedgate.service");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze (Debian package systemd; scripts/setup installs it) must be installed")
    };
    let out = verify(&unit.replace("/usr/local/bin/fedgate", &bin.display().to_string()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = verify(&unit.replace("/usr/local/bin/fedgate", "/nonexistent/fedgate"));
    assert!(!out.status.success(), "a unit whose binary is missing must be refused");
}
