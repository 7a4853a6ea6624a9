//! What anyone can make the real binary hold before logging in: memory (pre-login protocol state), connections
//! and file descriptors (idle and half-sent requests), and ambiguous requests (two `Host` headers). Each test runs
//! the attack against `target/debug/fedgate` and looks at what a user or operator would see.

use std::time::{Duration, Instant};

use base64::Engine as _;
use e2e::gateway::{GatewayProcess, ProcessOptions, browser, demo_config, http, status_kb};
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const SP_ENTITY: &str = "http://127.0.0.1:9/sp";
const SP_ACS: &str = "http://127.0.0.1:9/acs";

/// The demo directory plus a SAML SP and an OIDC client; key directories under the process's own temp dir.
fn federation_config(saml_extra: &str) -> String {
    format!(
        r#"{demo}
[saml]
keys_dir = "keys/saml"
{saml_extra}
[[saml.service_providers]]
name = "app"
entity_id = "{SP_ENTITY}"
acs_urls = ["{SP_ACS}"]

[oidc]
keys_dir = "keys/oidc"
signing_algorithm = "ES256"
[[oidc.clients]]
client_id = "app"
client_secret = "test-secret-0123456789abcdef"
redirect_uris = ["{REDIRECT}"]
"#,
        demo = demo_config()
    )
}

/// An HTTP-POST binding `SAMLRequest` (base64 of the AuthnRequest XML) from the configured SP.
fn saml_request() -> String {
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="id-flood" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" AssertionConsumerServiceURL="{SP_ACS}"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{SP_ENTITY}</saml:Issuer></samlp:AuthnRequest>"#
    );
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// Sends `n` requests made by `make`, 8 at a time, and returns every (status, Location, body).
async fn flood<F, Fut>(n: usize, make: F) -> Vec<(StatusCode, String, String)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    futures_util::stream::iter((0..n).map(make))
        .buffer_unordered(8)
        .then(|r| async move {
            let r = r.expect("the gateway answers");
            let location = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or("").to_string();
            (r.status(), location, r.text().await.unwrap_or_default())
        })
        .collect()
        .await
}

/// The `rd` of a `Location: /login?rd=…`.
fn rd_of(location: &str) -> Option<String> {
    let url = url::Url::parse("http://gateway.invalid").ok()?.join(location).ok()?;
    url.query_pairs().find(|(k, _)| k == "rd").map(|(_, v)| v.into_owned())
}

fn rss_mb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:") / 1024
}

/// Item 5 of issue 14: 300 anonymous SSO requests carrying a 256 KiB RelayState each, and 300 authorization
/// requests with over-long parameters. Each is refused with a 400 (or, once the client's redirect URI is known,
/// `error=invalid_request`) naming the parameter, and the process does not grow: before the fix every RelayState
/// was kept 15 minutes (300 × 256 KiB ≈ 75 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_floods_of_large_sign_in_requests_are_refused_and_memory_stays_flat() {
    let gw = GatewayProcess::start(&federation_config(""), &[], &[], false).await.unwrap();
    let (base, pid) = (gw.base.clone(), gw.pid());
    let c = browser();
    let sso = |relay: String| {
        c.post(format!("{base}/saml/sso")).form(&[("SAMLRequest", saml_request()), ("RelayState", relay)]).send()
    };
    let authorize = |extra: &[(&str, String)]| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", "app").append_pair("response_type", "code").append_pair("state", "s1");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        if !extra.iter().any(|(k, _)| *k == "redirect_uri") {
            q.append_pair("redirect_uri", REDIRECT);
        }
        if !extra.iter().any(|(k, _)| *k == "scope") {
            q.append_pair("scope", "openid");
        }
        c.get(format!("{base}/oauth2/authorize?{}", q.finish())).send()
    };

    // What a well-behaved SP and RP send still works (and warms the allocator up before the baseline).
    for _ in 0..20 {
        let r = sso("ok-80-bytes-".repeat(6) + "12345678").await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "an 80-byte RelayState is fine");
        let r = authorize(&[("nonce", "n".repeat(1024))]).await.unwrap();
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"), "a normal request goes to login");
    }
    let before = rss_mb(pid);

    let big_relay = "r".repeat(256 * 1024);
    let saml = flood(300, |_| sso(big_relay.clone())).await;
    let after_saml = rss_mb(pid);
    println!("RSS before the flood {before} MB, after 300 SSO requests with a 256 KiB RelayState {after_saml} MB");
    assert!(
        after_saml.saturating_sub(before) < 20,
        "300 anonymous SSO requests grew the gateway from {before} MB to {after_saml} MB"
    );
    for (status, _, body) in &saml {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "a 256 KiB RelayState must be refused");
        assert!(body.contains("RelayState is too long (262144 bytes; the limit is 80"), "{body}");
    }
    let long_uri = format!("{REDIRECT}?{}", "u".repeat(4000));
    let before_client = flood(100, |_| authorize(&[("redirect_uri", long_uri.clone())])).await;
    for (status, _, body) in &before_client {
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert!(body.contains("redirect_uri is too long"), "{body}");
    }
    let scopes = "openid ".repeat(4000);
    let nonce = "n".repeat(5_000);
    let to_client = flood(200, |i| {
        if i % 2 == 0 { authorize(&[("scope", scopes.clone())]) } else { authorize(&[("nonce", nonce.clone())]) }
    })
    .await;
    for (status, location, _) in &to_client {
        assert!(status.is_redirection(), "{status}");
        let url = url::Url::parse(location).unwrap_or_else(|_| panic!("an error redirect to the client: {location}"));
        assert!(location.starts_with(REDIRECT), "{location}");
        let q: std::collections::BTreeMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["error"], "invalid_request");
        assert!(q["error_description"].contains("is too long"), "{q:?}");
        assert!(["scope", "nonce"].iter().any(|p| q["error_description"].starts_with(p)), "{q:?}");
    }
    let after = rss_mb(pid);
    println!("RSS before the flood {before} MB, after {after} MB");
    assert!(
        after.saturating_sub(before) < 20,
        "600 refused sign-in requests grew the gateway from {before} MB to {after} MB"
    );
    drop(gw);
}

/// Item 5: requests within the configured limits are kept while the user logs in, but only up to
/// `session.max_pending_bytes`: 600 SSO requests with a 60 KiB RelayState (36 MB if all were kept) leave the
/// process within 20 MB of where it started, the newest request still resumes and the oldest has made room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_login_store_is_bounded_in_bytes() {
    // The in-process store's bound (least recently used first). With a shared store the bytes written per
    // window are bounded instead and the overflow kept here: domain::pending's tests cover that.
    let body = federation_config("max_relay_state_bytes = 65536").replacen(
        "[log]",
        "[session]\nmax_pending_bytes = 1048576\n[store]\nkind = \"memory\"\n[log]",
        1,
    );
    let gw = GatewayProcess::start(&body, &[], &[], false).await.unwrap();
    let (base, pid) = (gw.base.clone(), gw.pid());
    let c = browser();
    let sso = |relay: String| {
        c.post(format!("{base}/saml/sso")).form(&[("SAMLRequest", saml_request()), ("RelayState", relay)]).send()
    };
    for _ in 0..20 {
        assert_eq!(sso("warm".into()).await.unwrap().status(), StatusCode::SEE_OTHER);
    }
    let before = rss_mb(pid);
    let relay = "r".repeat(60 * 1024);
    let mut resumes = Vec::new();
    for round in flood(600, |_| sso(relay.clone())).await {
        assert_eq!(round.0, StatusCode::SEE_OTHER, "a RelayState within the configured limit is accepted");
        resumes.push(rd_of(&round.1).unwrap_or_else(|| panic!("a login redirect with rd: {}", round.1)));
    }
    let after = rss_mb(pid);
    println!("RSS before {before} MB, after 600 kept requests of 60 KiB {after} MB");
    assert!(after.saturating_sub(before) < 20, "the pending store grew the gateway from {before} MB to {after} MB");
    // The first requests were dropped to make room (their resume link says so); the last one is still there.
    let first = http().get(format!("{base}{}", resumes[0])).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    assert!(first.text().await.unwrap().contains("expired"));
    let last = c.get(format!("{base}{}", resumes[599])).send().await.unwrap();
    assert_ne!(last.status(), StatusCode::BAD_REQUEST, "the newest pending request is kept");
    drop(gw);
}

/// Item 6 of issue 14: under `ulimit -n 256`, 20 connections that send half a request header and stop and 300
/// that send nothing no longer take the gateway down: `/healthz` answers, the server closes the half-sent and the
/// idle connections after `header_read_timeout`, and the log does not fill with accept errors. Before the fix
/// the sockets stayed open forever, `/healthz` never answered and every accept attempt logged "accept failed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_do_not_stop_the_server() {
    let mut gw = GatewayProcess::start_with(
        &demo_config(),
        ProcessOptions {
            capture: true,
            open_files: Some(256),
            server: "header_read_timeout = \"1s\"",
            ..Default::default()
        },
    )
    .await
    .unwrap();
    gw.collect_output();
    let addr = gw.base.trim_start_matches("http://").to_string();
    let mut half_sent = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        half_sent.push(s);
    }
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }

    let start = Instant::now();
    let health = http().get(format!("{}/healthz", gw.base)).timeout(Duration::from_secs(20)).send().await;
    let waited = start.elapsed();
    println!("/healthz answered after {waited:?} behind 320 idle or half-sent connections");
    assert_eq!(health.expect("/healthz answers despite 320 idle connections").status(), StatusCode::OK);
    assert!(waited < Duration::from_secs(10), "/healthz took {waited:?}");

    // The server closes them (EOF or reset), it does not wait for the client.
    for (kind, conns) in [("half-sent", &mut half_sent), ("idle", &mut idle)] {
        for (i, s) in conns.iter_mut().enumerate() {
            let mut buf = [0u8; 512];
            let closed = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {} // e.g. a 408 before closing
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "{kind} connection {i} is still open after the header timeout");
        }
    }
    let log = gw.output_so_far();
    let accept_lines = log.lines().filter(|l| l.to_ascii_lowercase().contains("accept")).count();
    assert!(accept_lines <= 3, "{accept_lines} accept log lines:\n{}", &log[..log.len().min(3000)]);
    gw.sigterm();
    let (exited_cleanly, out) = gw.wait_output().await.unwrap();
    assert!(exited_cleanly, "fedgate stops cleanly on SIGTERM afterwards:\n{out}");
}

/// Sends `request` over a fresh connection and returns the raw response (the server closes after a refusal).
async fn raw(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Item 10 of issue 14 (part): a request naming two hosts, by two `Host` headers or by a `Host` that disagrees
/// with its absolute-form target, is refused with a 400 before any route or proxy route sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_two_hosts_is_refused() {
    let up = e2e::upstream::EchoUpstream::start().await.unwrap();
    let gw = GatewayProcess::start(&demo_config(), &["--upstream", &up.base], &[], false).await.unwrap();
    let addr = gw.base.trim_start_matches("http://").to_string();
    for (request, says) in [
        (format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nHost: admin.internal\r\n\r\n"), "more than one Host header"),
        (
            format!("GET /public/x HTTP/1.1\r\nHost: {addr}\r\nHost: admin.internal\r\nConnection: close\r\n\r\n"),
            "more than one Host header",
        ),
        (
            format!("GET http://admin.internal/healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            "names a different site than its request target",
        ),
    ] {
        let resp = raw(&addr, &request).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{request:?} → {resp}");
        assert!(resp.contains(says), "{request:?} → {resp}");
        assert!(resp.to_ascii_lowercase().contains("x-request-id:"), "the gateway's own page: {resp}");
    }
    // One Host, or an absolute-form target that agrees with it, is served as before.
    let ok = raw(&addr, &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let ok =
        raw(&addr, &format!("GET http://{addr}/healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    drop(gw);
}
