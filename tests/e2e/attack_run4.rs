//! The fourth attack run against the real `fedgate` binary: HTTP framing and hop-by-hop headers through the
//! proxy, upgrades, SAML input, tokens fedgate did not issue, directory input and upstream account linking. What
//! it found open, replayed: each test performs the attack and asserts what the attacker must not get.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::gateway::{GatewayProcess, demo_config};
use e2e::raw_http;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An app that logs exactly the request heads it receives (lower-cased), on a free loopback port: it answers
/// every request `200 app` and a WebSocket handshake `101`, then closes. Stopped when dropped.
struct RawApp {
    base: String,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawApp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let read = async {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    };
                    if tokio::time::timeout(Duration::from_secs(5), read).await.is_err() {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    let answer: &[u8] = if head.contains("\r\nupgrade: websocket") {
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\napp"
                    };
                    seen.lock().unwrap().push(head);
                    let _ = s.write_all(answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Self { base, heads, task }
    }

    /// The head of the only request received since the last call.
    fn take_one(&self) -> String {
        let mut heads = self.heads.lock().unwrap();
        assert_eq!(heads.len(), 1, "the app got {} requests: {heads:?}", heads.len());
        heads.remove(0)
    }
}

impl Drop for RawApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `bytes` to the gateway and returns the status line of its (first) answer, reading until it closes or
/// 3 seconds pass (a WebSocket tunnel stays open).
async fn status_of(authority: &str, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(authority).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&buf).lines().next().unwrap_or("").to_string()
}

/// A raw-socket app behind a `preserve_host` route with `/public` public, and the gateway in front of it.
async fn preserve_host_route() -> (RawApp, GatewayProcess) {
    let app = RawApp::start().await;
    let cfg = format!(
        "{}\n[[proxy.routes]]\nupstream = \"{}\"\npreserve_host = true\npublic_paths = [\"/public\"]\n",
        demo_config(),
        app.base
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    (app, gw)
}

/// `Connection` names the headers a proxy must not forward (RFC 9110 §7.6.1), and fedgate removes them. A client
/// that lists `Host` there made fedgate forward a request without one, so the app (with `preserve_host`) could not
/// tell which host was decided on and picked its default virtual host, and without `X-Forwarded-Host`; listing
/// `X-Request-Id` took the request's id from the app's log. Those stay: the app gets the host the route decided
/// on, fedgate's `X-Forwarded-Host` and its request id. The client's own `X-Forwarded-User` named there is still
/// no identity. An HTTP/1.0 request without `Host` (which reached such an app without one too) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_remove_the_host_or_the_headers_fedgate_sets() {
    let (app, gw) = preserve_host_route().await;
    let headers = [
        ("Host", "docs.example.com"),
        ("Connection", "Host, X-Request-Id, X-Forwarded-Host, X-Forwarded-For, X-Real-IP, X-Forwarded-Proto"),
        ("X-Forwarded-User", "admin"),
    ];
    let r = raw_http::get(&gw.base, "/public/x", &headers).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let head = app.take_one();
    for line in [
        "\r\nhost: docs.example.com\r\n",
        "\r\nx-forwarded-host: docs.example.com\r\n",
        "\r\nx-forwarded-proto: http\r\n",
        "\r\nx-real-ip: 127.0.0.1\r\n",
        "\r\nx-forwarded-for: 127.0.0.1\r\n",
    ] {
        assert!(
            head.contains(line),
            "a client's Connection header removed {:?} from what the app got:\n{head}",
            line.trim()
        );
    }
    assert!(head.contains("\r\nx-request-id: "), "the request id was removed:\n{head}");
    assert!(!head.contains("x-forwarded-user"), "the client's identity header reached the app:\n{head}");

    // An HTTP/1.0 request may name no host at all; with `preserve_host` it is refused, not sent on without one.
    let authority = gw.base.trim_start_matches("http://").to_string();
    let r = raw_http::send(&authority, b"GET /public/x HTTP/1.0\r\n\r\n").await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("no Host header"), "{}", r.body);
    assert!(app.heads.lock().unwrap().is_empty(), "a request without a host reached the app");
}

/// An HTTP/2 client names the host in `:authority`, not in a `Host` header: the app behind the proxy got the
/// host (fedgate adds `Host` for HTTP/1.1) but no `X-Forwarded-Host`, so an app that builds its links from it had
/// none. It gets the host the route decided on, as HTTP/1.1 clients' apps do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_clients_host_reaches_the_app_as_x_forwarded_host() {
    let (app, gw) = preserve_host_route().await;
    gateway::install_crypto_provider();
    let h2 = reqwest::Client::builder().http2_prior_knowledge().no_proxy().build().unwrap();
    let r = h2.get(format!("{}/public/x", gw.base)).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "the premise: the client speaks HTTP/2");
    assert_eq!(r.status(), 200);
    let head = app.take_one();
    let authority = gw.base.trim_start_matches("http://");
    assert!(head.contains(&format!("\r\nhost: {authority}\r\n")), "{head}");
    assert!(head.contains(&format!("\r\nx-forwarded-host: {authority}\r\n")), "no X-Forwarded-Host:\n{head}");
}

/// h2c smuggling: an app that speaks HTTP/2 in clear text upgrades a connection on `Upgrade: h2c` with
/// `HTTP2-Settings`, and every later request on it bypasses the proxy's decisions. fedgate forwards only WebSocket
/// upgrades; a WebSocket handshake that carries a second `Upgrade: h2c` line (and `HTTP2-Settings`, which is
/// connection-specific, RFC 7540 §3.2.1) reached the app with both. The app gets `Upgrade: websocket` alone, and
/// never `HTTP2-Settings`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_h2c_upgrade_reaches_the_app() {
    let app = RawApp::start().await;
    let cfg =
        format!("{}\n[[proxy.routes]]\nupstream = \"{}\"\npublic_paths = [\"/public\"]\n", demo_config(), app.base);
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let authority = gw.base.trim_start_matches("http://").to_string();
    let settings = "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    let ws = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let attempts = [
        ("h2c alone", format!("Connection: Upgrade\r\nUpgrade: h2c\r\n{settings}Connection: close\r\n"), "200"),
        (
            "h2c after websocket",
            format!("Connection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n{settings}{ws}"),
            "101",
        ),
        (
            "h2c before websocket",
            format!("Connection: Upgrade\r\nUpgrade: h2c\r\nUpgrade: websocket\r\n{settings}{ws}"),
            "200",
        ),
    ];
    for (what, headers, status) in attempts {
        let req = format!("GET /public/x HTTP/1.1\r\nHost: {authority}\r\n{headers}\r\n");
        let line = status_of(&authority, req.as_bytes()).await;
        assert!(line.contains(status), "{what}: {line}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let head = app.take_one();
        assert!(!head.contains("h2c"), "{what}: the app was offered an h2c upgrade:\n{head}");
        assert!(!head.contains("http2-settings"), "{what}: HTTP2-Settings reached the app:\n{head}");
    }
}

/// An upstream provider where people choose their own `preferred_username` (here node `oidc-provider`, which takes
/// any login name) signed its user in under a directory account's name: apps behind the proxy saw
/// `X-Forwarded-User: pat` and SAML service providers the NameID of pat. With `link = "none"` such a sign-in is
/// refused with a page saying the name is taken, in any letter case or Unicode compatibility spelling (`ｐａｔ`,
/// which an app that normalises names reads as pat), and no session is made; other names sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_account_cannot_take_a_directory_accounts_name() {
    use crate::upstream_login::{demo_user_toml, env_with, sign_in_at_op};
    let e = env_with("", &demo_user_toml()).await;
    for name in ["pat", "PAT", "ｐａｔ"] {
        let c = e2e::gateway::browser();
        let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp?rd=%2F"), name).await;
        let status = r.status();
        let page = r.text().await.unwrap();
        assert_eq!(status, 403, "{name}: an upstream account signed in as the directory's pat (at {url}): {page}");
        assert!(page.contains("already exists"), "{name}: {page}");
        let r = c.get(e.gw.url("/anything")).header("Accept", "application/json").send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}: the refused sign-in left a session: {}", r.text().await.unwrap());
    }
    let c = e2e::gateway::browser();
    let (url, r) = sign_in_at_op(&c, &e.gw.url("/login/corp?rd=%2F"), "robin").await;
    assert_eq!(r.status(), 200, "a name no directory account has signs in (at {url})");
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "robin", "{seen}");
}

/// A client with Keycloak's redirect URI rules and a wildcard (`https://app.example.com/cb/*`, as imported from
/// Keycloak) had its wildcard matched against the spelling of `redirect_uri`: `https://app.example.com/cb/../../x`
/// matched, and the browser took the authorization code to `https://app.example.com/x`, a page outside the
/// registered path (an open redirect or a user's upload there then hands the code to the attacker; Keycloak's
/// CVE-2024-1132). Such a request gets fedgate's error page and no code, and so does a post-logout redirect of
/// that kind; a URI under the registered path still gets its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_redirect_uri_cannot_be_left_by_dot_segments() {
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[oidc]\nkeys_dir = \"{}\"\n[[oidc.clients]]\nclient_id = \"kc-app\"\n\
         client_secret = \"kc-app-secret-0123456789abcdef\"\nredirect_uri_rules = \"keycloak\"\n\
         redirect_uris = [\"https://app.example.com/cb/*\"]\nscopes = [\"openid\"]\n",
        demo_config(),
        keys.path().display()
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let c = e2e::gateway::browser();
    let html = c.get(format!("{}/login", gw.base)).send().await.unwrap().text().await.unwrap();
    let csrf = e2e::gateway::csrf_from(&html).unwrap();
    let r = c
        .post(format!("{}/login", gw.base))
        .form(&[("username", "bob"), ("password", "bob-demo"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let authorize = |redirect_uri: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", "kc-app")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", "s")
            .finish();
        c.get(format!("{}/oauth2/authorize?{q}", gw.base)).send()
    };
    for evil in [
        "https://app.example.com/cb/../../uploads/attacker.html",
        "https://app.example.com/cb/%2e%2e/%2e%2e/redirect",
        "https://app.example.com/cb/..%2F..%2Fredirect",
    ] {
        let r = authorize(evil).await.unwrap();
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(r.status(), 400, "{evil}: the code went to {location}");
        assert!(r.text().await.unwrap().contains("redirect_uri is not registered"), "{evil}");
    }
    let r = authorize("https://app.example.com/cb/done").await.unwrap();
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(location.starts_with("https://app.example.com/cb/done?code="), "{}: {location}", r.status());

    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", "kc-app")
        .append_pair("post_logout_redirect_uri", "https://app.example.com/cb/../../bye")
        .finish();
    let r = c.get(format!("{}/oauth2/logout?{q}", gw.base)).send().await.unwrap();
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(r.status(), 400, "the logout sent the browser to {location}");
}

/// Directory input through the real login form against real slapd, beyond the filter metacharacters
/// `ldap::injection_attempts_never_authenticate_or_widen_the_search` sends: a DN typed as the username (a bind DN
/// taken as it is would skip the search), NUL, 10 KB and filter tricks with alice's right password, and for
/// alice a password of NUL bytes, of spaces, or of a tab (a zero-length or "unauthenticated" simple bind succeeds
/// at many LDAP servers). None signs anyone in or reaches a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_usernames_and_passwords_sign_nobody_in() {
    let slapd = e2e::slapd::Slapd::start().unwrap();
    let gw = GatewayProcess::start(&format!("[login]\nthrottle = false\n{}", slapd.ldap_toml("")), &[], &[], false)
        .await
        .unwrap();
    let attempt = |user: String, password: String| {
        let base = gw.base.clone();
        async move {
            let c = e2e::gateway::browser();
            let html = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
            let csrf = e2e::gateway::csrf_from(&html).unwrap();
            let r = c
                .post(format!("{base}/login"))
                .form(&[("username", user.as_str()), ("password", password.as_str()), ("csrf", csrf.as_str())])
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers().get_all("set-cookie").iter().any(|v| v.as_bytes().starts_with(b"fedgate_session=")),
            )
        }
    };
    let base = slapd.base_dn();
    let names = [
        format!("uid=alice,ou=people,{base}"),
        format!("cn=admin,{base}"),
        slapd.service_dn(),
        "alice\0".to_string(),
        "\0".to_string(),
        "*".to_string(),
        "*)(uid=*))(|(uid=*".to_string(),
        "alice)(userPassword=*".to_string(),
        "a".repeat(10 * 1024),
    ];
    for name in names {
        for password in ["alice-password", "admin-password", "service-password"] {
            let (status, session) = attempt(name.clone(), password.to_string()).await;
            let shown = &name[..name.len().min(40)];
            assert!(!session && status != 303, "{shown:?} / {password}: signed in ({status})");
            assert!((400..500).contains(&status), "{shown:?} / {password}: {status}");
        }
    }
    for password in ["\0", "\0\0\0\0", " ", "    ", "\t"] {
        let (status, session) = attempt("alice".to_string(), password.to_string()).await;
        assert!(!session && status == 401, "alice with {password:?}: {status}");
    }
    let (status, session) = attempt("alice".to_string(), "alice-password".to_string()).await;
    assert!(session && status == 303, "alice's own password still works: {status}");
}

/// An app reached over https speaks HTTP/2 (ALPN), where request trailers are a HEADERS frame after the body.
/// A client's chunked body with trailers (`X-Forwarded-User: admin` after the last chunk, where no header check
/// looks) reached such an app as request trailers, and an app that merges trailers into the headers (Go's
/// `Request.Trailer`, Node's `req.trailers`, many gRPC gateways) took them for fedgate's identity. fedgate forwards
/// no trailers, to HTTP/1.1 apps (where they were never sent) as to HTTP/2 ones; the body arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_never_reach_an_https_app() {
    use http_body_util::BodyExt as _;
    use rustls::pki_types::pem::PemObject as _;
    gateway::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = e2e::tls::TestPki::generate(dir.path(), "h2-app").unwrap();
    let certs: Vec<_> =
        rustls::pki_types::CertificateDer::pem_file_iter(&pki.cert_pem).unwrap().map(Result::unwrap).collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.key_pem).unwrap();
    let mut tls = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // What the app saw: (protocol, body, trailer names and values).
    type Seen = Vec<(String, String, Vec<String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let log = seen.clone();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let version = format!("{:?}", req.version());
                        let collected = req.into_body().collect().await?;
                        let trailers = collected
                            .trailers()
                            .map(|t| t.iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?"))).collect())
                            .unwrap_or_default();
                        let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
                        log.lock().unwrap().push((version, body, trailers));
                        Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                            "app",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let cfg = format!(
        "{}\n[[proxy.routes]]\nupstream = \"https://127.0.0.1:{port}\"\nca_file = \"{}\"\npublic_paths = [\"/public\"]\n",
        demo_config(),
        pki.ca_pem.display()
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let authority = gw.base.trim_start_matches("http://").to_string();
    let req = format!(
        "POST /public/upload HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\
         Trailer: X-Forwarded-User, X-Forwarded-Groups\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\
         X-Forwarded-User: admin\r\nX-Forwarded-Groups: admins\r\n\r\n"
    );
    let r = raw_http::send(&authority, req.as_bytes()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = seen.lock().unwrap().clone();
    server.abort();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (version, body, trailers) = &seen[0];
    assert_eq!(version, "HTTP/2.0", "the premise: the app speaks HTTP/2");
    assert_eq!(body, "hello");
    assert!(trailers.is_empty(), "the client's trailers reached the app: {trailers:?}");
}
