//! The second, independent attack run against the real `fedgate` binary (issue 14 was the first): what it found
//! open, replayed. Each test performs the attack and asserts what the attacker must not get.

use std::time::{Duration, Instant};

use e2e::gateway::{GatewayProcess, ProcessOptions, demo_config, session_cookie};
use e2e::nginx::Nginx;
use e2e::raw_http;
use e2e::wsgi::WsgiEcho;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Name-based virtual hosting behind the proxy: `admin.example.com` is for admins, every other host for any
/// signed-in user, both served by one nginx that picks its `server` block by `Host` (`preserve_host`).
fn vhost_config(upstream: &str) -> String {
    format!(
        r#"{demo}
[[proxy.routes]]
host = "admin.example.com"
upstream = "{upstream}"
preserve_host = true
allow_roles = ["admin"]
[[proxy.routes]]
upstream = "{upstream}"
preserve_host = true
"#,
        demo = demo_config()
    )
}

/// nginx, like every HTTP server, reads `admin.example.com.` (the fully qualified spelling) as
/// `admin.example.com`: a host route must take it too, in the proxy and in forward-auth, or a non-admin reaches
/// the admin site by adding a dot. Hosts no server would accept are refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_dot_does_not_take_a_host_past_its_route() {
    let nginx = tokio::task::spawn_blocking(|| {
        Nginx::with_server(
            "server {\n  listen 127.0.0.1:{PORT};\n  server_name admin.example.com;\n  \
             location / { return 200 \"admin console\\n\"; }\n}\n\
             server {\n  listen 127.0.0.1:{PORT} default_server;\n  server_name _;\n  \
             location / { return 200 \"app\\n\"; }\n}",
        )
    })
    .await
    .unwrap()
    .unwrap();
    let gw = GatewayProcess::start(&vhost_config(&nginx.base), &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let alice = session_cookie(&gw.base, "alice").await.unwrap();
    let get = |host: &'static str, cookie: &str| {
        let (base, cookie) = (gw.base.clone(), cookie.to_string());
        async move { raw_http::get(&base, "/", &[("Host", host), ("Cookie", &cookie)]).await.unwrap() }
    };

    // The set-up: the admin site is alice's, bob gets the app.
    assert_eq!(get("admin.example.com", &alice).await.body, "admin console\n");
    assert_eq!(get("admin.example.com", &bob).await.status, 403);
    assert_eq!(get("app.example.com", &bob).await.body, "app\n");

    for host in ["admin.example.com.", "ADMIN.example.com.", "admin.example.com.:80"] {
        let r = get(host, &bob).await;
        assert_ne!(r.body, "admin console\n", "bob reached the admin site as Host: {host}");
        assert_eq!(r.status, 403, "Host: {host}: {}", r.body);
        assert_eq!(get(host, &alice).await.body, "admin console\n", "alice, Host: {host}");
    }
    // What no server reads as one host is refused with a 400 that says why.
    for host in ["admin.example.com..", "admin..example.com", "admin.example.com/x", "admin.example.com\\x"] {
        let r = get(host, &bob).await;
        assert_eq!(r.status, 400, "Host: {host}: {}", r.body);
        assert!(r.body.contains("Host"), "Host: {host}: {}", r.body);
    }

    // Forward-auth (Traefik and Caddy send the client's Host as X-Forwarded-Host) decides the same way.
    let ask = |host: &'static str| {
        let (base, bob) = (gw.base.clone(), bob.clone());
        async move {
            let headers = [
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", host),
                ("X-Forwarded-Uri", "/"),
                ("Cookie", &bob),
            ];
            raw_http::get(&base, "/auth/forward", &headers).await.unwrap()
        }
    };
    assert_eq!(ask("app.example.com").await.status, 200);
    for host in ["admin.example.com", "admin.example.com.", "Admin.Example.Com.:443"] {
        assert_eq!(ask(host).await.status, 403, "forward-auth let bob into X-Forwarded-Host: {host}");
    }
}

/// Headers other auth proxies use for the user (oauth2-proxy's `X-Auth-Request-*`, Authelia's `Remote-*`,
/// Grafana's and Gitea's `X-WEBAUTH-USER`, …): an app moved behind fedgate may still trust them, so a client's
/// copy never reaches it, in any spelling, whoever is signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_of_other_auth_proxies_never_reach_the_app() {
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let cfg =
        format!("{}\n[[proxy.routes]]\nupstream = \"{}\"\npublic_paths = [\"/public\"]\n", demo_config(), app.base);
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let forged: &[(&str, &str)] = &[
        ("Remote-User", "admin"),
        ("remote_user", "admin"),
        ("Remote-Groups", "ai-admins"),
        ("Remote-Email", "ceo@example.com"),
        ("Remote-Name", "Admin"),
        ("X-Remote-User", "admin"),
        ("X-Auth-Request-User", "admin"),
        ("X-Auth-Request-Email", "ceo@example.com"),
        ("X-Auth-Request-Groups", "ai-admins"),
        ("X-Auth-Request-Preferred-Username", "admin"),
        ("X-Auth-Request-Access-Token", "forged"),
        ("X-WEBAUTH-USER", "admin"),
        ("x_webauth_user", "admin"),
        ("X-Authenticated-User", "admin"),
        ("X-Amzn-Oidc-Identity", "admin"),
        ("Cf-Access-Authenticated-User-Email", "ceo@example.com"),
    ];
    for (who, path, cookie) in [("bob", "/home", Some(bob.as_str())), ("anonymous", "/public/x", None)] {
        let mut headers = forged.to_vec();
        headers.extend(cookie.map(|c| ("Cookie", c)));
        let r = raw_http::get(&gw.base, path, &headers).await.unwrap();
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        let env = r.json().unwrap()["env"].clone();
        let leaked: Vec<&String> = env
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| {
                ["admin", "Admin", "ai-admins", "ceo@example.com", "forged"].contains(&v.as_str().unwrap_or(""))
            })
            .map(|(k, _)| k)
            .collect();
        assert!(leaked.is_empty(), "{who}: the client's identity headers reached the app as {leaked:?}: {env}");
        if who == "bob" {
            assert_eq!(env["HTTP_X_FORWARDED_USER"], "bob", "{env}");
        }
    }
}

/// A client that sends a body to the gateway's own endpoints one byte at a time holds a connection (and with
/// `server.max_connections` of them, the gateway) only until `server.body_read_timeout`; then it gets a 408 and the
/// connection is closed. Sending the body at a normal pace still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off() {
    let gw = GatewayProcess::start_with(
        &demo_config(),
        ProcessOptions { server: "body_read_timeout = \"2s\"", ..Default::default() },
    )
    .await
    .unwrap();
    let authority = gw.base.trim_start_matches("http://").to_string();
    for path in ["/login", "/oauth2/token", "/saml/sso"] {
        let mut s = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 1000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        // One byte every 300 ms: well below any body limit, never idle for long.
        while started.elapsed() < Duration::from_secs(15) {
            if s.write_all(b"a").await.is_err() {
                break;
            }
            let mut buf = [0u8; 4096];
            match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        let elapsed = started.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(elapsed < Duration::from_secs(6), "{path}: a slow body held the connection for {elapsed:?}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("body_read_timeout"), "{path}: the answer names the setting: {answer}");
    }
    // A body that arrives in time is served.
    assert!(session_cookie(&gw.base, "alice").await.is_ok());
}

/// One sign-in attempt from the loopback address `from` (a client of its own) at `base`; the answer's status.
async fn sign_in_from(base: &str, from: &str, user: &str, password: &str, xff: Option<&str>) -> u16 {
    let c = reqwest::Client::builder()
        .local_address(Some(from.parse().unwrap()))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let html = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = e2e::gateway::csrf_from(&html).expect("login form");
    let mut r = c.post(format!("{base}/login")).form(&[("username", user), ("password", password), ("csrf", &csrf)]);
    if let Some(xff) = xff {
        r = r.header("X-Forwarded-For", xff);
    }
    r.send().await.unwrap().status().as_u16()
}

/// Behind a reverse proxy every client has the proxy's address. Five wrong passwords from one attacker locked the
/// address out, i.e. everyone: alice's right password was a 429. With `server.trusted_proxies` naming nginx, each
/// client is counted under its own address from `X-Forwarded-For`, and what a client writes there itself (to
/// nginx, or to fedgate directly) buys it no fresh address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_one_client_cannot_lock_out_everyone() {
    let gw = GatewayProcess::start_with(
        &demo_config(),
        ProcessOptions { server: "trusted_proxies = [\"127.0.0.1\"]", ..Default::default() },
    )
    .await
    .unwrap();
    let nginx = tokio::task::spawn_blocking({
        let gw = gw.base.clone();
        move || {
            Nginx::with_server(&format!(
                "server {{\n  listen 127.0.0.1:{{PORT}};\n  location / {{\n    proxy_pass {gw};\n    \
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n  }}\n}}"
            ))
        }
    })
    .await
    .unwrap()
    .unwrap();

    for i in 0..5 {
        assert_eq!(sign_in_from(&nginx.base, "127.0.0.2", &format!("nobody{i}"), "guess", None).await, 401);
    }
    assert_eq!(sign_in_from(&nginx.base, "127.0.0.2", "nobody9", "guess", None).await, 429, "the attacker is locked");
    assert_eq!(sign_in_from(&nginx.base, "127.0.0.3", "alice", "alice-demo", None).await, 303, "alice is not");

    // A forged X-Forwarded-For, sent to nginx (which appends the real address) or straight to fedgate (whose
    // peer is no trusted proxy), changes nothing.
    for (base, from) in [(&nginx.base, "127.0.0.4"), (&gw.base, "127.0.0.5")] {
        for i in 0..5 {
            let forged = format!("198.51.100.{i}");
            assert_eq!(sign_in_from(base, from, &format!("nobody{i}"), "guess", Some(&forged)).await, 401);
        }
        let r = sign_in_from(base, from, "nobody9", "guess", Some("198.51.100.99")).await;
        assert_eq!(r, 429, "{from} via {base} bought a fresh address with X-Forwarded-For");
    }
}

/// A malformed chunked body (or one cut off) sent through the proxy is the client's fault: a 400, not a 502
/// "application unavailable" with a warning in the log that any anonymous client could fill the log and the
/// 5xx alerts with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_through_the_proxy_is_the_clients_fault() {
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let cfg =
        format!("{}\n[[proxy.routes]]\nupstream = \"{}\"\npublic_paths = [\"/public\"]\n", demo_config(), app.base);
    let mut gw = GatewayProcess::start(&cfg, &[], &[], true).await.unwrap();
    gw.collect_output();
    let authority = gw.base.trim_start_matches("http://").to_string();
    for body in ["3\r\nabcXX0\r\n\r\n", "zz\r\nabc\r\n0\r\n\r\n", "ffffffffffffffffff1\r\nabc\r\n0\r\n\r\n"] {
        let req = format!(
            "POST /public/upload HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        );
        let r = raw_http::send(&authority, req.as_bytes()).await.unwrap();
        assert_eq!(r.status, 400, "{body:?}: {}", r.body);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.output_so_far();
    assert!(!log.contains("WARN"), "a client's malformed body was logged as the upstream's failure:\n{log}");
}

/// Every IPv6 subscriber (and cloud host) has a /64 to itself: counted per address, one attacker would have 2^64
/// fresh addresses and the per-address lockout (against password spraying) would never hold. Counted per /64, it
/// does; IPv4 clients written IPv4-mapped (`::ffff:192.0.2.1`, as a dual-stack listener sees them) stay one
/// address each. Clients are told apart by the `X-Forwarded-For` a trusted proxy (here the test, on 127.0.0.1)
/// sends, since tests use loopback only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_network_counts_as_one_client() {
    let gw = GatewayProcess::start_with(
        &demo_config(),
        ProcessOptions { server: "trusted_proxies = [\"127.0.0.1\"]", ..Default::default() },
    )
    .await
    .unwrap();
    let from = |xff: &'static str, user: &'static str, password: &'static str| {
        let base = gw.base.clone();
        async move { sign_in_from(&base, "127.0.0.1", user, password, Some(xff)).await }
    };
    for (i, xff) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3", "2001:db8:1:2:a::4", "2001:db8:1:2:b::5"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(from(xff, ["u0", "u1", "u2", "u3", "u4"][i], "guess").await, 401, "{xff}");
    }
    assert_eq!(from("2001:db8:1:2:ffff::9", "u9", "guess").await, 429, "a fresh address in the same /64");
    assert_eq!(from("2001:db8:1:3::1", "alice", "alice-demo").await, 303, "the next /64 is someone else");

    for _ in 0..5 {
        assert_eq!(from("::ffff:192.0.2.1", "v0", "guess").await, 401);
    }
    assert_eq!(from("192.0.2.1", "v9", "guess").await, 429, "192.0.2.1 is ::ffff:192.0.2.1");
    assert_eq!(from("::ffff:192.0.2.2", "alice", "alice-demo").await, 303, "other IPv4 clients are not locked");
}

/// A group name is directory data, and may hold the comma that separates names in `X-Forwarded-Groups`: bob, a
/// member of a group called `pets,ai-admins` (anyone allowed to create groups can name one so), must not read as a
/// member of `ai-admins` to an app that splits the header. Commas inside a name are sent as `%2C`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comma_in_a_group_name_does_not_make_another_group() {
    let slapd = tokio::task::spawn_blocking(e2e::slapd::Slapd::start).await.unwrap().unwrap();
    slapd
        .modify(
            "dn: cn=pets\\,ai-admins,ou=groups,dc=example,dc=org\nchangetype: add\nobjectClass: groupOfNames\n\
             cn: pets,ai-admins\nmember: uid=bob,ou=people,dc=example,dc=org\n",
        )
        .unwrap();
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let cfg = format!(
        "[roles]\nadmin = [\"ai-admins\"]\nresearcher = [\"ai-researchers\"]\n{}\n[[proxy.routes]]\nupstream = \"{}\"\n",
        slapd.ldap_toml(""),
        app.base
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let html = c.get(format!("{}/login", gw.base)).send().await.unwrap().text().await.unwrap();
    let csrf = e2e::gateway::csrf_from(&html).unwrap();
    let form = [("username", "bob"), ("password", "bob-password"), ("csrf", csrf.as_str())];
    let r = c.post(format!("{}/login", gw.base)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let seen: serde_json::Value = c.get(format!("{}/home", gw.base)).send().await.unwrap().json().await.unwrap();
    let groups = seen["env"]["HTTP_X_FORWARDED_GROUPS"].as_str().unwrap_or_default().to_string();
    let names: Vec<&str> = groups.split(',').map(str::trim).collect();
    assert!(!names.contains(&"ai-admins"), "bob reads as a member of ai-admins: {groups}");
    assert!(names.contains(&"pets%2Cai-admins") && names.contains(&"ai-researchers"), "{groups}");
    assert_eq!(seen["env"]["HTTP_X_FORWARDED_ROLES"], "researcher", "{seen}");
}

/// `CONNECT` through the proxy, signed in: it was forwarded to the app as `CONNECT /` (and an app's 200 would have
/// made the client's connection a tunnel). fedgate is no forward proxy: it is refused with 400, for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_not_forwarded() {
    let app = tokio::task::spawn_blocking(WsgiEcho::start).await.unwrap().unwrap();
    let cfg = format!("{}\n[[proxy.routes]]\nupstream = \"{}\"\npublic_paths = [\"/\"]\n", demo_config(), app.base);
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let authority = gw.base.trim_start_matches("http://").to_string();
    for cookie in [format!("Cookie: {bob}\r\n"), String::new()] {
        let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{cookie}Connection: close\r\n\r\n");
        let r = raw_http::send(&authority, req.as_bytes()).await.unwrap();
        assert_eq!(r.status, 400, "{cookie}: {}", r.body);
        assert!(r.body.contains("CONNECT"), "{}", r.body);
    }
}

/// An AuthnRequest's `Destination` names the IdP endpoint the SP sent it to. One meant for another IdP (or
/// another endpoint) was taken here all the same; like a LogoutRequest, it is now refused with a 400 naming both
/// URLs, in either binding, while one for this endpoint (or without `Destination`) is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authn_request_for_another_idp_is_not_taken() {
    use base64::Engine as _;
    use std::io::Write as _;
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"app\"\nentity_id = \"http://127.0.0.1:9/sp\"\n\
         acs_urls = [\"http://127.0.0.1:9/acs\"]\n",
        demo_config(),
        keys.path().display()
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let bob = session_cookie(&gw.base, "bob").await.unwrap();
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let request = |destination: Option<&str>| {
        let d = destination.map(|d| format!(" Destination=\"{d}\"")).unwrap_or_default();
        format!(
            "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r{}\" Version=\"2.0\" IssueInstant=\"{now}\"{d}>\
             <saml:Issuer>http://127.0.0.1:9/sp</saml:Issuer></samlp:AuthnRequest>",
            rand_id()
        )
    };
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap();
    let redirect = |xml: String| {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(xml.as_bytes()).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        c.get(format!("{}/saml/sso", gw.base)).query(&[("SAMLRequest", encoded)]).header("Cookie", &bob).send()
    };
    let post = |xml: String| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
        c.post(format!("{}/saml/sso", gw.base))
            .form(&[("SAMLRequest", encoded)])
            .header("Cookie", &bob)
            .header("Sec-Fetch-Site", "same-origin")
            .send()
    };
    let ours = format!("{}/saml/sso", gw.base);
    for destination in [None, Some(ours.as_str())] {
        let r = redirect(request(destination)).await.unwrap();
        assert_eq!(r.status(), 200, "{destination:?}");
        assert!(r.text().await.unwrap().contains("http://127.0.0.1:9/acs"));
        assert_eq!(post(request(destination)).await.unwrap().status(), 200, "{destination:?}");
    }
    for destination in ["https://other-idp.example.com/saml/sso", &format!("{}/saml/slo", gw.base)] {
        for r in [redirect(request(Some(destination))).await.unwrap(), post(request(Some(destination))).await.unwrap()]
        {
            assert_eq!(r.status(), 400, "{destination}");
            let body = r.text().await.unwrap();
            assert!(body.contains(destination) && !body.contains("http://127.0.0.1:9/acs"), "{body}");
        }
    }
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// `/metrics` tells anyone who asks the route hosts and paths, login outcomes and session counts. Only loopback and
/// private networks may read it by default (`server.metrics_allow`); a client on the internet, here behind a
/// trusted proxy that names it in `X-Forwarded-For`, gets a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_for_the_internet() {
    let gw = GatewayProcess::start_with(
        &demo_config(),
        ProcessOptions { server: "trusted_proxies = [\"127.0.0.1\"]", ..Default::default() },
    )
    .await
    .unwrap();
    let metrics = |xff: Option<&'static str>| {
        let base = gw.base.clone();
        async move {
            let headers: Vec<(&str, &str)> = xff.map(|x| ("X-Forwarded-For", x)).into_iter().collect();
            raw_http::get(&base, "/metrics", &headers).await.unwrap()
        }
    };
    let r = metrics(None).await;
    assert_eq!(r.status, 200, "loopback (Prometheus beside fedgate) reads them");
    assert!(r.body.contains("fedgate_http_requests_total"), "{}", r.body);
    assert_eq!(metrics(Some("10.1.2.3")).await.status, 200, "a private network reads them");
    for public in ["203.0.113.5", "2001:db8::5"] {
        let r = metrics(Some(public)).await;
        assert_eq!(r.status, 404, "{public} read the metrics");
        assert!(!r.body.contains("fedgate_"), "{}", r.body);
    }
}
