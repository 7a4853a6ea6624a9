//! The foundation: health, readiness, metrics, the CLI's config check, start-up and graceful shutdown.

use std::process::Stdio;
use std::time::Duration;

use e2e::gateway::{Gateway, GatewayProcess, client_credentials_token, demo_config, fedgate_bin, http};

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let gw = Gateway::start(&demo_config()).await.unwrap();
    let c = http();
    let r = c.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let r = c.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["directory"]["kind"], "static");
    let metrics = c.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("fedgate_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} "),
        "{metrics}"
    );
    assert!(metrics.contains("fedgate_http_request_duration_seconds_bucket{route=\"/readyz\""), "{metrics}");
    let r = c.get(gw.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("There is nothing at /no/such/page"));
    gw.stop().await.unwrap();
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"not-an-address\"\n[ldap]\nuser_dn = \"ou=people,dc=example,dc=org\"\n")
        .unwrap();
    let out = std::process::Command::new(fedgate_bin().unwrap())
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("FEDGATE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown key ldap.user_dn"), "{stderr}");
    assert!(stderr.contains("did you mean ldap.users_dn?"), "{stderr}");
    assert!(stderr.contains("server.listen = \"not-an-address\""), "{stderr}");
    assert!(stderr.contains("HOST:PORT"), "{stderr}");
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");
    let out =
        std::process::Command::new(fedgate_bin().unwrap()).args(["check-config", "--config", root]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

/// `fedgate serve` starts, logs where it listens, answers, and exits 0 on SIGTERM.
#[tokio::test]
async fn serve_starts_logs_its_address_and_stops_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml");
    // config.toml keeps generated OIDC keys under ./data: run from a scratch directory.
    let cwd = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(fedgate_bin().unwrap())
        .args(["serve", "--config", root])
        .current_dir(cwd.path())
        .env("FEDGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..200 {
        if http().get(&url).send().await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "fedgate serve never became ready on {url}");
    let pid = child.id().unwrap();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut out = String::new();
    use tokio::io::AsyncReadExt as _;
    child.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
    assert!(out.contains(&format!("fedgate listening on http://127.0.0.1:{port}")), "{out}");
    assert!(out.contains("SIGTERM received"), "{out}");
}

/// `[server.tls]`: the gateway serves HTTPS with rustls, HTTP/2 by ALPN, and cookies get `Secure`.
#[tokio::test]
async fn serves_https_with_http2_and_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let pki = e2e::tls::TestPki::generate(dir.path(), "gateway").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = format!(
        "[server]\npublic_url = \"https://127.0.0.1:{port}/\"\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{}",
        pki.cert_pem.display(),
        pki.key_pem.display(),
        demo_config()
    );
    let mut config = gateway::config::load_str(&cfg).unwrap();
    config.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    // In-process, beside other tests: not the default embedded file in the working directory.
    config.store.kind = gateway::config::StoreKind::Memory;
    let running =
        gateway::start(config, std::sync::Arc::new(gateway::domain::clock::SystemClock), std::future::pending())
            .await
            .unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_pem).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(ca).no_proxy().build().unwrap();
    let r = client.get(format!("https://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN negotiated h2");
    let login = client.get(format!("https://127.0.0.1:{port}/login")).send().await.unwrap();
    let csrf_cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(csrf_cookie.contains("; Secure"), "{csrf_cookie}");
    // A client that does not trust the test CA is refused.
    let untrusting = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(untrusting.get(format!("https://127.0.0.1:{port}/healthz")).send().await.is_err());
    running.shutdown().await.unwrap();
}

/// Secrets never reach the log: passwords (right or wrong), session ids, CSRF tokens, authorization codes and
/// tokens, with the most verbose log level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let keys = tempfile::tempdir().unwrap();
    let body = format!("{}{}", demo_config(), crate::oidc::oidc_toml(keys.path(), "ES256"));
    let gw = GatewayProcess::start(&body, &[], &[("RUST_LOG", "trace")], true).await.unwrap();
    let base = gw.base.clone();
    let c = e2e::gateway::browser();
    let mut secrets = vec!["wrong-Zq9-password".to_string(), "alice-demo".to_string()];
    for pw in ["wrong-Zq9-password", "alice-demo"] {
        let form = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
        let csrf = e2e::gateway::csrf_from(&form).unwrap();
        secrets.push(csrf.clone());
        let r = c
            .post(format!("{base}/login"))
            .form(&[("username", "alice"), ("password", pw), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        if let Some(cookie) = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("fedgate_session="))
        {
            secrets.push(cookie.split(';').next().unwrap().trim_start_matches("fedgate_session=").to_string());
        }
    }
    secrets.push(client_credentials_token(&base, "robot", crate::oidc::SECRET, "roles").await.unwrap());
    secrets.push(crate::oidc::SECRET.to_string());
    gw.sigterm();
    let (_, log) = gw.wait_output().await.unwrap();
    assert!(log.contains("login attempt"), "the audit lines are there: {}", &log[..log.len().min(2000)]);
    assert!(log.len() > 1000, "trace logging produced output");
    assert_eq!(secrets.len(), 7, "collected every secret: {secrets:?}");
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a secret ({}…) appears in the log", &s[..s.len().min(6)]);
    }
}

/// SIGTERM lets an in-flight request finish: a slow proxied request started before the signal still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let up = e2e::upstream::EchoUpstream::start().await.unwrap();
    let body = format!("{}\n[[proxy.routes]]\nupstream = \"{}\"\npublic_paths = [\"/slow\"]\n", demo_config(), up.base);
    let gw = GatewayProcess::start(&body, &[], &[], false).await.unwrap();
    let base = gw.base.clone();
    let slow = tokio::spawn({
        let url = format!("{base}/slow");
        async move { http().get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(http().get(format!("{base}/healthz")).send().await.is_err(), "no new connections after SIGTERM");
    let r = slow.await.unwrap().expect("the in-flight request completes");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "finally");
    let (exited_ok, _) = gw.wait_output().await.unwrap();
    assert!(exited_ok);
}

/// A client secret kept in `client_secret_file` must be as long as an inline one: a 9-character secret in the file
/// is a config problem naming the key, the length and the fix (and never the secret), and `serve` refuses to start.
#[test]
fn a_short_secret_in_client_secret_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("app-secret");
    std::fs::write(&secret, "tooshort1\n").unwrap();
    let path = dir.path().join("fedgate.toml");
    std::fs::write(
        &path,
        format!(
            "[oidc]\nkeys_dir = \"{}\"\n[[oidc.clients]]\nclient_id = \"app\"\nclient_secret_file = \"{}\"\nredirect_uris = [\"https://app.example.com/cb\"]\n",
            dir.path().join("keys").display(),
            secret.display()
        ),
    )
    .unwrap();
    for args in [&["check-config", "--config"][..], &["serve", "--config"][..]] {
        let out = std::process::Command::new(fedgate_bin().unwrap())
            .args(args)
            .arg(&path)
            .env_remove("FEDGATE_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("oidc.clients[0].client_secret_file"), "{stderr}");
        assert!(stderr.contains("9 characters, shorter than 16"), "{stderr}");
        assert!(stderr.contains("openssl rand"), "{stderr}");
        assert!(!stderr.contains("tooshort1"), "the secret is never echoed: {stderr}");
    }
}
