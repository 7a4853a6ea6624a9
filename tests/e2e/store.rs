//! Durable, shared state (issue 15): the state store's conformance suite on a real redis-server, and restarts of
//! the real `fedgate` binary (SIGTERM, and SIGKILL) after which the session cookie, the refresh token and the
//! access token all still work, with the embedded store and with Redis (restarted too, AOF on).

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::gateway::{GatewayProcess, ProcessOptions, code_of, demo_config, http, session_cookie};
use e2e::redis::Redis;
use gateway::config::{StoreConfig, StoreKind};
use reqwest::StatusCode;

use crate::oidc::{SECRET, oidc_toml};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_store_passes_the_store_conformance_suite() {
    let redis = Redis::start().unwrap();
    let cfg = StoreConfig { kind: StoreKind::Redis, url: redis.url(), ..StoreConfig::default() };
    let kv = gateway::domain::store::redis::RedisKv::new(&cfg).unwrap();
    gateway::domain::store::conformance(Arc::new(kv), "conf:").await;
}

/// Commands sent at once leave in shared pipelines (Redis reads several per read), each gets its own answer, and a
/// command Redis refuses fails alone. Counted with Redis's own `INFO stats`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_pipelines_and_each_gets_its_own_answer() {
    use gateway::domain::store::KvStore as _;
    let redis = Redis::start().unwrap();
    let cfg = StoreConfig { kind: StoreKind::Redis, url: redis.url(), ..StoreConfig::default() };
    let kv = Arc::new(gateway::domain::store::redis::RedisKv::new(&cfg).unwrap());
    kv.check().await.unwrap();
    let reads = |r: &Redis| -> u64 {
        let info = r.cli(&["INFO", "stats"]);
        let line = info.lines().find(|l| l.starts_with("total_reads_processed:")).expect("INFO stats");
        line.trim_end().split(':').nth(1).unwrap().parse().unwrap()
    };
    // A key Redis will refuse a GET on (a list, not a string), read among the others.
    redis.cli(&["RPUSH", "fedgate:{wrong-type}", "x"]);
    let before = reads(&redis);
    let n = 400;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let kv = Arc::clone(&kv);
            tokio::spawn(async move {
                kv.put(&format!("batch-{i}"), format!("value-{i}").into_bytes(), Duration::from_secs(60)).await?;
                let read = kv.get(&format!("batch-{i}")).await?;
                let wrong = if i % 50 == 0 { Some(kv.get("wrong-type").await) } else { None };
                Ok::<_, gateway::domain::store::StoreError>((i, read, wrong))
            })
        })
        .collect();
    for task in tasks {
        let (i, read, wrong) = task.await.unwrap().unwrap();
        assert_eq!(read, Some(format!("value-{i}").into_bytes()), "command {i} got another command's answer");
        if let Some(wrong) = wrong {
            assert!(wrong.is_err(), "a GET on a list must fail (WRONGTYPE), alone");
        }
    }
    let commands = 2 * n + n / 50;
    let read = reads(&redis) - before;
    println!("{commands} commands in {read} reads");
    assert!(read * 2 < commands, "{commands} concurrent commands took {read} reads: they did not share pipelines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_store_passes_the_store_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let kv = gateway::domain::store::embedded::EmbeddedKv::open(
        &dir.path().join("state"),
        gateway::config::Fsync::default(),
    )
    .unwrap();
    gateway::domain::store::conformance(Arc::new(kv), "conf:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_grants_pending_requests_and_throttling_pass_their_conformance_on_redis() {
    let redis = Redis::start().unwrap();
    let cfg = StoreConfig { kind: StoreKind::Redis, url: redis.url(), ..StoreConfig::default() };
    let kv = gateway::domain::store::redis::RedisKv::new(&cfg).unwrap();
    gateway::domain::store::typed_conformance(Arc::new(kv)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_grants_pending_requests_and_throttling_pass_their_conformance_on_the_embedded_file() {
    let dir = tempfile::tempdir().unwrap();
    let kv = gateway::domain::store::embedded::EmbeddedKv::open(
        &dir.path().join("state"),
        gateway::config::Fsync::default(),
    )
    .unwrap();
    gateway::domain::store::typed_conformance(Arc::new(kv)).await;
}

/// The operations that must stay atomic (take, put-if-absent, compare-and-set, increment) and the typed stores
/// on a real three-master Redis Cluster: every key carries a hash tag, so each operation is on one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_and_the_typed_stores_pass_their_conformance_on_a_redis_cluster() {
    let cluster = e2e::redis::RedisCluster::start().unwrap();
    let cfg = StoreConfig { kind: StoreKind::Redis, url: cluster.url(), cluster: true, ..StoreConfig::default() };
    let kv: Arc<dyn gateway::domain::store::KvStore> =
        Arc::new(gateway::domain::store::redis::RedisKv::new(&cfg).unwrap());
    gateway::domain::store::conformance(Arc::clone(&kv), "conf:").await;
    gateway::domain::store::typed_conformance(kv).await;
    let spread = cluster.keys_per_node();
    assert!(spread.iter().filter(|n| **n > 0).count() >= 2, "the keys all landed on one node: {spread:?}");
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn no_redirects() -> reqwest::Client {
    gateway::install_crypto_provider();
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// What a signed-in user holds: the session cookie and a code + PKCE token set.
struct Held {
    cookie: String,
    access_token: String,
    refresh_token: String,
}

async fn sign_in(base: &str) -> Held {
    let cookie = session_cookie(base, "alice").await.unwrap();
    let r = no_redirects()
        .get(format!(
            "{base}/oauth2/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}\
             &scope=openid%20offline_access&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let code = code_of(&r).unwrap_or_else(|| panic!("no code in {:?}", r.headers().get("location")));
    let tokens: serde_json::Value = http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth("app", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = |k: &str| tokens[k].as_str().unwrap_or_else(|| panic!("no {k} in {tokens}")).to_string();
    Held { cookie, access_token: field("access_token"), refresh_token: field("refresh_token") }
}

/// The session, the access token and the refresh token all still work; the refresh token is rotated.
async fn still_signed_in(base: &str, held: &mut Held, after: &str) {
    let r = no_redirects().get(format!("{base}/")).header("cookie", &held.cookie).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "after {after}: the session cookie was sent to {:?}",
        r.headers().get("location")
    );
    assert!(r.text().await.unwrap().contains("alice"), "after {after}: the account page shows the user");

    // The SAML side of the session: an IdP-initiated sign-in to the SP is answered at once, without a login.
    let r = no_redirects().get(format!("{base}/saml/init/app")).header("cookie", &held.cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "after {after}: SAML sign-in sent to {:?}", r.headers().get("location"));
    assert!(r.text().await.unwrap().contains("SAMLResponse"), "after {after}: no SAML response");

    let r = http().get(format!("{base}/oauth2/userinfo")).bearer_auth(&held.access_token).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "after {after}: userinfo refused the access token: {body}");
    assert!(body.contains("\"sub\""), "{body}");

    let r = http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth("app", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", held.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "after {after}: the refresh token was refused: {body}");
    held.refresh_token = body["refresh_token"].as_str().unwrap().to_string();
    held.access_token = body["access_token"].as_str().unwrap().to_string();
}

async fn start(body: &str, port: u16) -> GatewayProcess {
    GatewayProcess::start_with(body, ProcessOptions { port: Some(port), ..Default::default() }).await.unwrap()
}

/// The demo configuration with an OIDC client, a SAML SP (keys under `dir`) and `store`.
fn full_config(store: &str, dir: &std::path::Path) -> String {
    format!(
        "{}{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"app\"\nentity_id = \"http://127.0.0.1:9/sp\"\nacs_urls = [\"http://127.0.0.1:9/acs\"]\n{store}",
        demo_config(),
        oidc_toml(&dir.join("keys"), "ES256"),
        dir.join("saml").display()
    )
}

/// A gateway on [`full_config`] with `store`, and alice signed in (checked): the gateway, its base URL and what
/// alice holds.
async fn start_signed_in(store: &str, dir: &std::path::Path) -> (GatewayProcess, String, Held) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let gw = start(&full_config(store, dir), port).await;
    let mut held = sign_in(&base).await;
    still_signed_in(&base, &mut held, "signing in").await;
    (gw, base, held)
}

/// Signs in, then restarts the gateway with SIGTERM and with SIGKILL (calling `between` while it is down).
async fn survives_restarts(store: &str, mut between: impl FnMut()) {
    let dir = tempfile::tempdir().unwrap();
    let body = full_config(store, dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut gw = start(&body, port).await;
    let mut held = sign_in(&base).await;
    still_signed_in(&base, &mut held, "signing in").await;
    for signal in ["TERM", "KILL"] {
        gw.stop_with(signal).await.unwrap();
        between();
        gw = start(&body, port).await;
        still_signed_in(&base, &mut held, &format!("a restart by SIG{signal}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_tokens_survive_restarts_with_the_embedded_store() {
    // The default (fsync every second) and an fsync before every answer.
    for fsync in ["", "fsync_interval = \"always\"\n"] {
        let dir = tempfile::tempdir().unwrap();
        let store =
            format!("\n[store]\nkind = \"embedded\"\npath = \"{}\"\n{fsync}", dir.path().join("state").display());
        survives_restarts(&store, || {}).await;
    }
}

/// `kill -9` right after the answers, with no fsync in between (an interval of an hour): every login that was
/// answered is still signed in after the restart, because each write reached the operating system before its
/// answer. Only a power cut or kernel crash could lose what the interval has not yet fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_login_survives_a_sigkill_before_any_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{}\n[store]\nkind = \"embedded\"\npath = \"{}\"\nfsync_interval = \"1h\"\n",
        demo_config(),
        dir.path().join("state").display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let gw = start(&body, port).await;
    let logins: Vec<_> = (0..40)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move { session_cookie(&base, "alice").await.unwrap() })
        })
        .collect();
    let mut cookies = Vec::new();
    for l in logins {
        cookies.push(l.await.unwrap());
    }
    gw.stop_with("KILL").await.unwrap();
    let _gw = start(&body, port).await;
    for (i, cookie) in cookies.iter().enumerate() {
        let r = no_redirects().get(format!("{base}/")).header("cookie", cookie).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "login {i} of 40 was answered before the SIGKILL but its session is gone (sent to {:?})",
            r.headers().get("location")
        );
    }
}

/// Runs `fedgate serve` with `body` and returns what it printed; it must exit (not serve) within 15 s.
async fn refuses_to_start(dir: &std::path::Path, body: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.join("refused.toml");
    std::fs::write(&cfg, format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{body}")).unwrap();
    let out = tokio::process::Command::new(e2e::gateway::fedgate_bin().unwrap())
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(15), out).await.unwrap().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the gateway started: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_directory_or_an_unwritable_one_is_a_start_up_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A state directory whose files were overwritten with garbage (the gateway wrote them, then a disk or a
    // person damaged them).
    let path = dir.path().join("state");
    let body = format!("{}\n[store]\npath = \"{}\"\n", demo_config(), path.display());
    GatewayProcess::start(&body, &[], &[], false).await.unwrap().stop_with("TERM").await.unwrap();
    let mut damaged = 0;
    for entry in walk(&path) {
        if entry.file_name().is_some_and(|n| n != "lock") {
            std::fs::write(&entry, vec![0x42u8; 300]).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0, "the gateway left no files in {}", path.display());
    let text = refuses_to_start(dir.path(), &body).await;
    assert!(text.contains(&path.display().to_string()) && text.contains("damaged"), "{text}");
    assert!(text.contains("move it away") && text.contains("restore it from a backup"), "{text}");

    // A directory that cannot be created.
    let path = std::path::Path::new("/proc/fedgate-e2e/state");
    let body = format!("{}\n[store]\npath = \"{}\"\n", demo_config(), path.display());
    let text = refuses_to_start(dir.path(), &body).await;
    assert!(text.contains(&path.display().to_string()) && text.contains("cannot be created or written"), "{text}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_tokens_survive_restarts_of_the_gateway_and_redis() {
    let mut redis = Redis::start().unwrap();
    let store = format!("\n[store]\nkind = \"redis\"\nurl = \"{}\"\n", redis.url());
    survives_restarts(&store, || redis.restart().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_state_file_refuses_to_start_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let body = format!("{}\n[store]\npath = \"{}\"\n", demo_config(), path.display());
    let _first = GatewayProcess::start(&body, &[], &[], false).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("second.toml");
    std::fs::write(&cfg, format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{body}")).unwrap();
    let out = tokio::process::Command::new(e2e::gateway::fedgate_bin().unwrap())
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(15), out).await.unwrap().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the second gateway started: {text}");
    assert!(text.contains(&path.display().to_string()) && text.contains("in use by another process"), "{text}");
}

/// Redis as a production one is run, configured as docs/ha.md says: TLS with a private CA (`rediss://` +
/// `ca_file`), an ACL user (`username`) whose password comes from a file (`password_file`, trailing newline and
/// all), the `default` user switched off, AOF on. Sessions, refresh and access tokens survive restarts of the
/// gateway (SIGTERM, SIGKILL) and of Redis. A wrong password is "not ready" naming the store, and never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_redis_with_an_acl_user_and_a_password_file_keeps_everything_across_restarts() {
    let password = fedgate_types::random::token();
    let mut redis = Redis::start_secured("fedgate", &password).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("redis-password");
    std::fs::write(&secret, format!("{password}\n")).unwrap();
    let (url, ca) = (redis.tls_url().unwrap(), redis.ca_file().unwrap().to_path_buf());
    let store = |secret: &std::path::Path| {
        format!(
            "\n[store]\nkind = \"redis\"\nurl = \"{url}\"\nusername = \"fedgate\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
            secret.display(),
            ca.display()
        )
    };
    let good = store(&secret);
    survives_restarts(&good, || redis.restart().unwrap()).await;

    // Brute-force counters survive a Redis restart too: three wrong passwords, Redis restarted, two more lock the
    // account (five in the window).
    let gw = GatewayProcess::start(&format!("{}{good}", demo_config()), &[], &[], false).await.unwrap();
    let wrong_password = |n: usize| {
        let base = gw.base.clone();
        async move {
            for _ in 0..n {
                let r = crate::replicas::post_login(&base, "bob", "not-bobs-password", "").await;
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a wrong password");
            }
        }
    };
    wrong_password(3).await;
    redis.restart().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while http().get(format!("{}/readyz", gw.base)).send().await.unwrap().status() != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "the gateway did not reconnect to the restarted Redis");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    wrong_password(2).await;
    let r = crate::replicas::post_login(&gw.base, "bob", "bob-demo", "").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the failures before the Redis restart were forgotten");
    gw.stop_with("TERM").await.unwrap();

    // The same set-up with a wrong password: the gateway starts (Redis may come later), /readyz says the store is
    // not usable, a login is a clear 503, and the password it tried is in no output.
    let wrong = dir.path().join("wrong-password");
    let tried = fedgate_types::random::token();
    std::fs::write(&wrong, &tried).unwrap();
    let mut gw = GatewayProcess::start(&format!("{}{}", demo_config(), store(&wrong)), &[], &[], true).await.unwrap();
    gw.collect_output();
    let ready = http().get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = ready.text().await.unwrap();
    assert!(ready.contains("\"store\"") && ready.contains("redis"), "{ready}");
    let login = session_cookie(&gw.base, "alice").await;
    let refused = login.expect_err("a login with the store refusing our password").to_string();
    assert!(refused.contains("503"), "{refused}");
    gw.sigterm();
    let (_, out) = gw.wait_output().await.unwrap();
    let all = format!("{ready}\n{out}");
    assert!(!all.contains(&tried) && !all.contains(&password), "a Redis password was printed: {all}");
    eprintln!("readyz with a wrong Redis password: {ready}");
}

/// The gateway on a three-master Redis Cluster (`cluster = true`, `url` naming one node): sign-in, a code + PKCE
/// token set and a SAML sign-in work, and survive restarts of the gateway (SIGTERM, SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_tokens_survive_gateway_restarts_on_a_redis_cluster() {
    let cluster = e2e::redis::RedisCluster::start().unwrap();
    let store = format!("\n[store]\nkind = \"redis\"\ncluster = true\nurl = \"{}\"\n", cluster.url());
    survives_restarts(&store, || {}).await;
    let spread = cluster.keys_per_node();
    assert!(spread.iter().filter(|n| **n > 0).count() >= 2, "the keys all landed on one node: {spread:?}");
}

/// The login page of a sign-in waiting for its login names the app ("to continue to Demo app") without asking
/// the store: no Redis read between the authorization request (or AuthnRequest) and the form, where the page used
/// to `GET` the pending request for the app's name. Checked with `INFO commandstats` after `CONFIG RESETSTAT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_of_a_waiting_sign_in_names_the_app_without_a_store_read() {
    let redis = Redis::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{}{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"wiki\"\ndisplay_name = \"Team wiki\"\n\
         entity_id = \"http://127.0.0.1:9/sp\"\nacs_urls = [\"http://127.0.0.1:9/acs\"]\n\
         \n[store]\nkind = \"redis\"\nurl = \"{}\"\n",
        demo_config(),
        oidc_toml(&dir.path().join("keys"), "ES256"),
        dir.path().join("saml").display(),
        redis.url()
    );
    let gw = GatewayProcess::start(&body, &[], &[], false).await.unwrap();
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid&state=s1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        gw.base
    );
    let sso = format!("{}/saml/init/wiki", gw.base);
    for (start, app) in [(authorize, "Demo app"), (sso, "Team wiki")] {
        let r = no_redirects().get(&start).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{start}");
        let login = r.headers()["location"].to_str().unwrap().to_string();
        assert!(login.starts_with("/login?rd="), "{login}");
        assert!(redis.cli(&["CONFIG", "RESETSTAT"]).contains("OK"));
        let page = no_redirects().get(format!("{}{login}", gw.base)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("to continue to <strong>{app}</strong>")), "{html}");
        let stats = redis.cli(&["INFO", "commandstats"]);
        let reads: Vec<&str> =
            stats.lines().filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_config")).collect();
        assert!(reads.is_empty(), "the login page of {start} asked Redis: {reads:?}");
    }
}

/// A full disk at start-up (a small tmpfs filled up, `store.path` on it), for a new state directory and for one
/// the gateway wrote before the disk filled: it exits non-zero with an error naming the path, saying the
/// filesystem is full and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_start_up_is_an_error_naming_the_path_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    for existing in [false, true] {
        let fs = e2e::tmpfs::Tmpfs::mount(8).unwrap();
        let path = fs.path().join("state");
        let body = format!("{}\n[store]\npath = \"{}\"\n", demo_config(), path.display());
        if existing {
            GatewayProcess::start(&body, &[], &[], false).await.unwrap().stop_with("TERM").await.unwrap();
        }
        fs.fill().unwrap();
        let text = refuses_to_start(dir.path(), &body).await;
        let what = if existing { "an existing state directory" } else { "a new state directory" };
        assert!(text.contains(&path.display().to_string()), "{what}: the error does not name the path: {text}");
        assert!(text.contains("filesystem is full"), "{what}: the error does not say the disk is full: {text}");
        assert!(text.contains("Free space") && text.contains("store.path"), "{what}: no remedy in: {text}");
    }
}

/// The disk fills while the gateway serves (a tmpfs holding `store.path`, filled with a file after a sign-in):
/// a new login gets the "Session store unavailable" page and a token request the JSON error (503s, not 500s or
/// hangs), the signed-in user's account page keeps answering from the first level, and `/readyz` is not ready,
/// naming the store, the path and the full disk. The filler deleted, the gateway recovers without a restart:
/// new logins and the refresh token work again, and after a later restart everything written before the disk
/// filled and after it recovered is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_while_serving_is_a_clear_503_and_freeing_space_recovers_without_a_restart() {
    use crate::replicas::post_login;
    let fs = e2e::tmpfs::Tmpfs::mount(24).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let path = fs.path().join("state");
    let body = format!(
        "{}{}\n[store]\npath = \"{}\"\n",
        demo_config(),
        oidc_toml(&keys.path().join("keys"), "ES256"),
        path.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut gw =
        GatewayProcess::start_with(&body, ProcessOptions { port: Some(port), capture: true, ..Default::default() })
            .await
            .unwrap();
    gw.collect_output();
    let mut held = sign_in(&base).await;

    let filler = fs.fill().unwrap();
    // The journal's last page has room for a few more records; the login after them finds the disk full.
    let mut r = None;
    for _ in 0..100 {
        let login = post_login(&base, "bob", "bob-demo", "");
        let answer =
            tokio::time::timeout(Duration::from_secs(10), login).await.expect("a login with the disk full hung");
        if answer.status() != StatusCode::SEE_OTHER {
            r = Some(answer);
            break;
        }
    }
    let r = r.expect("100 logins succeeded on a full disk");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "a new login with the disk full");
    let page = r.text().await.unwrap();
    assert!(page.contains("Session store unavailable"), "{page}");
    let refresh = |token: String| {
        let base = base.clone();
        async move {
            http()
                .post(format!("{base}/oauth2/token"))
                .basic_auth("app", Some(SECRET))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap()
        }
    };
    let r = refresh(held.refresh_token.clone()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "a token request with the disk full");
    let body_json = r.text().await.unwrap();
    assert!(
        body_json.contains("temporarily_unavailable") && body_json.contains("session store unavailable"),
        "{body_json}"
    );
    let r = no_redirects().get(format!("{base}/")).header("cookie", &held.cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the signed-in user's account page with the disk full");
    assert!(r.text().await.unwrap().contains("alice"));
    let ready = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "/readyz with the disk full");
    let ready = ready.text().await.unwrap();
    assert!(ready.contains("\"embedded\"") && ready.contains(&path.display().to_string()), "{ready}");
    assert!(ready.contains("disk is full") && ready.contains("free space"), "{ready}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let bob = loop {
        let r = post_login(&base, "bob", "bob-demo", "").await;
        if r.status() == StatusCode::SEE_OTHER {
            break session_cookie_of(&r);
        }
        assert!(Instant::now() < deadline, "no recovery within 10 s of freeing space: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ready = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "{}", ready.text().await.unwrap());
    let r = refresh(held.refresh_token.clone()).await;
    let status = r.status();
    let tokens: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "the refresh token after the recovery: {tokens}");
    held.refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
    let output = gw.output_so_far();
    assert!(!output.contains("panicked"), "the gateway panicked:\n{output}");

    // A later restart: the session and refresh token from before the disk filled, and bob's from after.
    gw.stop_with("TERM").await.unwrap();
    let _gw = start(&body, port).await;
    for (who, cookie) in [("alice (signed in before the disk filled)", &held.cookie), ("bob (after)", &bob)] {
        let r = no_redirects().get(format!("{base}/")).header("cookie", cookie).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{who}: sent to {:?} after a restart", r.headers().get("location"));
    }
    let r = refresh(held.refresh_token.clone()).await;
    assert_eq!(r.status(), StatusCode::OK, "the rotated refresh token after a restart: {}", r.text().await.unwrap());
}

/// The `fedgate_session` cookie a login response sets.
fn session_cookie_of(r: &reqwest::Response) -> String {
    e2e::gateway::session_cookie_set_by(r).unwrap_or_else(|| panic!("no session cookie in {:?}", r.headers()))
}

/// The embedded store itself on a tmpfs that fills while 8 tasks write: every write either succeeds or is told
/// "unavailable" (no panic, no hang), reads of what was stored go on while the disk is full, writes work again
/// soon after space is freed (the store reopens in-process, while the tasks keep writing), and every write that
/// was acknowledged — before, during and after the outage — is there after the store is closed and opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_store_reopens_itself_under_concurrent_writes_once_space_is_freed_and_loses_no_acknowledged_write()
{
    use gateway::domain::store::{KvStore as _, StoreError, embedded::EmbeddedKv};
    let fs = e2e::tmpfs::Tmpfs::mount(24).unwrap();
    let path = fs.path().join("state");
    let kv = EmbeddedKv::open(&path, gateway::config::Fsync::default()).unwrap();
    let ttl = Duration::from_secs(3600);
    for i in 0..50 {
        kv.put(&format!("before{i}"), vec![1; 200], ttl).await.unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let (kv, stop) = (kv.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut acked, mut refused) = (Vec::new(), 0usize);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("w{t}-{i}");
                    let write = tokio::time::timeout(Duration::from_secs(5), kv.put(&key, vec![2; 300], ttl));
                    match write.await.expect("a write hung") {
                        Ok(()) => acked.push(key),
                        Err(StoreError::Unavailable { backend: "embedded", .. }) => refused += 1,
                        Err(e) => panic!("a write failed with {e}, not as unavailable"),
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (acked, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let filler = fs.fill().unwrap();
    // Writes fail once the journal's last page is used up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while kv.check().await.is_ok() {
        assert!(Instant::now() < deadline, "the store still takes writes 10 s after the disk filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kv.get("before7").await.unwrap(), Some(vec![1; 200]), "reads go on while the disk is full");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(kv.check().await.is_err(), "the store claims to take writes on a full disk");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while kv.check().await.is_err() {
        assert!(Instant::now() < deadline, "no reopen within 10 s of freeing space");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut acked, mut refused) = (Vec::new(), 0);
    for w in writers {
        let (a, r) = w.await.expect("a writer panicked");
        acked.extend(a);
        refused += r;
    }
    assert!(refused > 0, "no write was refused: the disk never filled");
    kv.put("after", vec![3], ttl).await.expect("a write after the reopen");
    drop(kv);
    let kv = EmbeddedKv::open(&path, gateway::config::Fsync::default()).unwrap();
    for key in (0..50).map(|i| format!("before{i}")).chain(acked.iter().cloned()).chain(["after".to_string()]) {
        assert!(kv.get(&key).await.unwrap().is_some(), "{key} was acknowledged but is gone after the reopen");
    }
    eprintln!("{} writes acknowledged, {refused} refused while the disk was full or the store reopening", acked.len());
}

/// Redis Sentinel (`sentinels` + `sentinel_master`, no `url`): a master, its replica and three sentinels, with an
/// unreachable address first in the list. The master is killed (SIGKILL) while the gateway runs: once the sentinels
/// promote the replica, the same gateway, not restarted, finds the new master by itself; the session, the access
/// token and the refresh token written before the failover still work, and a new sign-in is written to the new
/// master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_loses_no_session_and_needs_no_restart() {
    let mut redis = e2e::redis::RedisSentinel::start().unwrap();
    let (first, second) = (redis.first_port(), redis.second_port());
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut sentinels = vec![format!("redis://127.0.0.1:{unreachable}")];
    sentinels.extend(redis.sentinel_urls());
    let list = sentinels.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let store = format!(
        "\n[store]\nkind = \"redis\"\nsentinels = [{list}]\nsentinel_master = \"{}\"\n",
        e2e::redis::RedisSentinel::MASTER
    );
    let dir = tempfile::tempdir().unwrap();
    let (gw, base, mut held) = start_signed_in(&store, dir.path()).await;
    let keys = redis.cli(first, &["DBSIZE"]);
    assert!(keys.trim().parse::<u64>().unwrap() > 0, "nothing was written to the master");

    // Everything written so far has reached the replica (WAIT: acknowledged by one replica), then the master dies.
    assert_eq!(redis.cli(first, &["WAIT", "1", "5000"]).trim(), "1", "the replica did not acknowledge");
    redis.kill(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis.master_port() != Some(second) {
        assert!(Instant::now() < deadline, "the sentinels did not promote the replica within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = Instant::now();
    // The gateway finds the new master by itself: ready again, and everything from before the failover works.
    let deadline = Instant::now() + Duration::from_secs(15);
    while http().get(format!("{base}/readyz")).send().await.unwrap().status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the gateway did not find the new master within 15 s of the failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("ready on the new master {:?} after the sentinels named it", promoted.elapsed());
    tokio::time::sleep(Duration::from_millis(600)).await; // past the first level: the session is read from Redis
    still_signed_in(&base, &mut held, "the failover").await;
    let bob = session_cookie(&base, "bob").await.expect("a sign-in after the failover");
    assert!(!bob.is_empty());
    assert!(redis.cli(second, &["INFO", "replication"]).contains("role:master"));

    drop(gw);
}

/// A Redis Cluster with replicas (three masters, one replica each): the master holding the session is killed
/// (SIGKILL) under a running gateway; once the cluster has promoted its replica, the same gateway, not restarted,
/// follows the new slot owner by itself: the session, the access token and the refresh token written before the
/// failover all work, and a new sign-in is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_failover_loses_no_session_and_needs_no_restart() {
    let mut cluster = e2e::redis::RedisCluster::start_with_replicas().unwrap();
    let store = format!("\n[store]\nkind = \"redis\"\ncluster = true\nurl = \"{}\"\n", cluster.url());
    let dir = tempfile::tempdir().unwrap();
    let (gw, base, mut held) = start_signed_in(&store, dir.path()).await;

    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3, "{masters:?}");
    for m in &masters {
        assert_eq!(cluster.cli(*m, &["WAIT", "1", "5000"]).trim(), "1", "master {m}'s replica did not acknowledge");
    }
    let holder = *masters
        .iter()
        .find(|m| !cluster.cli(**m, &["--scan", "--pattern", "fedgate:{s:*"]).trim().is_empty())
        .expect("no master holds the session");
    cluster.kill(holder);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = cluster.master_ports();
        if now.len() == 3 && !now.contains(&holder) && cluster.ok(&[holder]) {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not promote a replica within 30 s: masters {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        tokio::time::sleep(Duration::from_millis(600)).await; // past the first level: read from Redis
        let r = no_redirects().get(format!("{base}/")).header("cookie", &held.cookie).send().await.unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the session was not found after the failover: {}", r.status());
    }
    eprintln!("the session answered again {:?} after the cluster promoted the replica", promoted.elapsed());
    still_signed_in(&base, &mut held, "the cluster failover").await;
    let bob = session_cookie(&base, "bob").await.expect("a sign-in after the failover");
    let r = no_redirects().get(format!("{base}/")).header("cookie", &bob).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "bob's session was not kept");
    drop(gw);
}

/// `kind = "memory"` at its bound (`session.max_sessions`), full of sessions in use: every new login is kept and
/// the least recently used session goes. moka's default admission policy (TinyLFU) refused the new session instead,
/// so once the store was full every new login was answered with a cookie that was already signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_memory_store_keeps_every_new_login() {
    let body = format!("{}\n[session]\nmax_sessions = 20\n[store]\nkind = \"memory\"\n", demo_config());
    let gw = GatewayProcess::start(&body, &[], &[], false).await.unwrap();
    let signed_in = |cookie: String| {
        let base = gw.base.clone();
        async move {
            let r = no_redirects().get(format!("{base}/")).header("cookie", &cookie).send().await.unwrap();
            r.status() == StatusCode::OK
        }
    };
    let mut old = Vec::new();
    for i in 0..20 {
        old.push(session_cookie(&gw.base, ["alice", "bob", "carol"][i % 3]).await.unwrap());
    }
    for _ in 0..3 {
        for cookie in &old {
            signed_in(cookie.clone()).await;
        }
    }
    let mut new = Vec::new();
    for i in 0..10 {
        let cookie = session_cookie(&gw.base, "alice").await.unwrap();
        assert!(signed_in(cookie.clone()).await, "new login {i} was signed out at once (the store is full)");
        new.push(cookie);
    }
    let still: usize = {
        let mut n = 0;
        for cookie in &old {
            n += usize::from(signed_in(cookie.clone()).await);
        }
        n
    };
    // Every new login is still signed in after that traffic (moka applies its policy in batches, later).
    for (i, cookie) in new.iter().enumerate() {
        assert!(signed_in(cookie.clone()).await, "new login {i} was signed out (the store was full)");
    }
    // The bound is applied by moka in batches, so a few over it may linger for a moment; but room was made.
    assert!(still < old.len(), "no old session made room: {still} of 20 left beside 10 new ones");
    eprintln!("{still} of the 20 old sessions left beside the 10 new ones");
    drop(gw);
}
