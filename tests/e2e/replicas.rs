//! Two replicas of the real `fedgate` binary sharing one real redis-server and one key directory, behind a real
//! nginx that balances round-robin (no sticky sessions). nginx adds `X-Replica: <upstream address>` to every
//! response, so each test can check which replica answered.

use std::time::{Duration, Instant};

use e2e::gateway::{GatewayProcess, ProcessOptions, code_of, csrf_from, demo_config, fedgate_bin, http};
use e2e::nginx::Nginx;
use e2e::redis::Redis;
use reqwest::StatusCode;

use crate::oidc::{SECRET, oidc_toml};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SP_ENTITY: &str = "http://127.0.0.1:9/sp";
const SP_ACS: &str = "http://127.0.0.1:9/acs";

fn saml_toml(keys: &std::path::Path) -> String {
    format!(
        "\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"app\"\nentity_id = \"{SP_ENTITY}\"\n\
         acs_urls = [\"{SP_ACS}\"]\n",
        keys.display()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A client without redirects and without a cookie jar (cookies are passed by hand, as each replica sees them).
fn raw() -> reqwest::Client {
    gateway::install_crypto_provider();
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn replica(r: &reqwest::Response) -> String {
    r.headers().get("x-replica").and_then(|v| v.to_str().ok()).unwrap_or("?").to_string()
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

struct Pair {
    redis: Redis,
    nginx: Nginx,
    a: Option<GatewayProcess>,
    b: GatewayProcess,
    /// The configuration both replicas run (for `fedgate keys rotate --config`).
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
    /// nginx's access log: `<upstream address> <request URI>` per request.
    access_log: std::path::PathBuf,
}

impl Pair {
    fn a(&self) -> &str {
        &self.a.as_ref().unwrap().base
    }
    fn b(&self) -> &str {
        &self.b.base
    }
    fn lb(&self) -> &str {
        &self.nginx.base
    }
    /// Which replica (upstream address) served each request that went through nginx so far, in order.
    fn routed(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(a, u)| (a.to_string(), u.to_string())))
            .collect()
    }
}

/// Redis, then nginx (balancing over two ports), then both replicas started at the same moment on one fresh
/// `keys_dir`, each with `public_url` = nginx.
async fn pair() -> Pair {
    pair_with("").await
}

/// [`pair`], with `saml_sps` (more `[[saml.service_providers]]`) in the replicas' configuration.
async fn pair_with(saml_sps: &str) -> Pair {
    pair_configured(saml_sps, "").await
}

/// [`pair`], with `saml_sps` and `store` (more `[store]` lines) in the replicas' configuration.
async fn pair_configured(saml_sps: &str, store: &str) -> Pair {
    let redis = Redis::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let access_log = dir.path().join("access.log");
    // The replicas' ports are picked before nginx and the replicas start; another test may take one in between
    // (that replica then exits at once): start over on fresh ports, at most three times.
    for attempt in 1..=3 {
        let (pa, pb) = (free_port(), free_port());
        let nginx = Nginx::with_server(&format!(
            "log_format replicas '$upstream_addr $request_uri';\n\
             upstream fedgate {{ server 127.0.0.1:{pa}; server 127.0.0.1:{pb}; }}\n\
             server {{\n  listen 127.0.0.1:{{PORT}};\n  access_log {} replicas;\n  location / {{\n    \
             proxy_pass http://fedgate;\n    proxy_set_header Host $http_host;\n    \
             add_header X-Replica $upstream_addr always;\n  }}\n}}",
            access_log.display()
        ))
        .unwrap();
        let public_url = format!("{}/", nginx.base);
        let body = format!(
            "{}{}{}{saml_sps}\n[store]\nkind = \"redis\"\nurl = \"{}\"\n{store}",
            demo_config(),
            oidc_toml(&dir.path().join("keys/oidc"), "ES256"),
            saml_toml(&dir.path().join("keys/saml")),
            redis.url()
        );
        let config = dir.path().join("fedgate.toml");
        std::fs::write(&config, format!("[server]\npublic_url = \"{public_url}\"\n{body}")).unwrap();
        let opts = |port| ProcessOptions { port: Some(port), public_url: Some(&public_url), ..Default::default() };
        let (a, b) =
            tokio::join!(GatewayProcess::start_with(&body, opts(pa)), GatewayProcess::start_with(&body, opts(pb)));
        match (a, b) {
            (Ok(a), Ok(b)) => return Pair { redis, nginx, a: Some(a), b, config, _dir: dir, access_log },
            (a, b) if attempt < 3 => eprintln!("a replica did not start, new ports: {:?} {:?}", a.err(), b.err()),
            (a, b) => panic!("the replicas did not start: {:?} {:?}", a.err(), b.err()),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Logs `user` in with `password` at `base` (login form from the same base); the response of the POST.
pub async fn post_login(base: &str, user: &str, password: &str, rd: &str) -> reqwest::Response {
    let c = raw();
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    let csrf_cookie = set_cookie(&r, "fedgate_csrf").expect("a CSRF cookie");
    let csrf = csrf_from(&r.text().await.unwrap()).unwrap();
    c.post(format!("{base}/login"))
        .header("cookie", csrf_cookie)
        .form(&[("username", user), ("password", password), ("csrf", csrf.as_str()), ("rd", rd)])
        .send()
        .await
        .unwrap()
}

async fn sign_in(base: &str) -> String {
    let r = post_login(base, "alice", "alice-demo", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login at {base}");
    set_cookie(&r, "fedgate_session").expect("a session cookie")
}

async fn jwks_and_metadata(base: &str) -> (String, String) {
    let jwks = http().get(format!("{base}/oauth2/jwks")).send().await.unwrap().text().await.unwrap();
    let meta = http().get(format!("{base}/saml/metadata")).send().await.unwrap().text().await.unwrap();
    (jwks, meta)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_started_at_once_on_one_keys_dir_publish_identical_keys_and_both_see_a_rotation() {
    let p = pair().await;
    let (ja, ma) = jwks_and_metadata(p.a()).await;
    let (jb, mb) = jwks_and_metadata(p.b()).await;
    assert!(ja.contains("\"kid\""), "{ja}");
    assert_eq!(ja, jb, "JWKS differ between the replicas");
    assert!(ma.contains("X509Certificate"), "{ma}");
    assert_eq!(ma, mb, "SAML metadata differ between the replicas");

    // `fedgate keys rotate` against the shared directory: both replicas publish the new set within seconds.
    let out = std::process::Command::new(fedgate_bin().unwrap())
        .args(["keys", "rotate", "--config"])
        .arg(&p.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (na, _) = jwks_and_metadata(p.a()).await;
        let (nb, _) = jwks_and_metadata(p.b()).await;
        let kids = |j: &str| serde_json::from_str::<serde_json::Value>(j).unwrap()["keys"].as_array().unwrap().len();
        if na != ja && na == nb && kids(&na) == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "after a rotation the replicas publish\nA: {na}\nB: {nb}\nbefore: {ja}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, ma2) = jwks_and_metadata(p.a()).await;
    let (_, mb2) = jwks_and_metadata(p.b()).await;
    assert!(ma2 == ma && mb2 == ma, "an OIDC rotation changed the SAML metadata");

    // A new SAML key and certificate put in place as a Kubernetes Secret update would (each file renamed over the
    // old one): both replicas publish the new certificate, byte-identical metadata, without a restart.
    let saml_dir = p._dir.path().join("keys/saml");
    let staged = p._dir.path().join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=fedgate rotated"])
        .arg("-keyout")
        .arg(staged.join("saml-signing.key"))
        .arg("-out")
        .arg(staged.join("saml-signing.crt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["saml-signing.key", "saml-signing.crt"] {
        std::fs::rename(staged.join(f), saml_dir.join(f)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, na) = jwks_and_metadata(p.a()).await;
        let (_, nb) = jwks_and_metadata(p.b()).await;
        if na != ma && na == nb {
            break;
        }
        assert!(Instant::now() < deadline, "after a new SAML certificate the replicas publish\nA: {na}\nB: {nb}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_from_one_replica_is_redeemed_on_the_other_and_a_saml_request_resumes_on_the_other() {
    let p = pair().await;
    let cookie = sign_in(p.lb()).await;
    let c = raw();
    let authorize = c
        .get(format!(
            "{}/oauth2/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}\
             &scope=openid%20offline_access&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256",
            p.lb()
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let code = code_of(&authorize).unwrap_or_else(|| panic!("no code in {:?}", authorize.headers().get("location")));
    let token = redeem(&c, p.lb(), &code).await;
    assert_ne!(replica(&authorize), replica(&token), "the balancer sent both requests to one replica");
    let status = token.status();
    let body: serde_json::Value = token.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "the code issued by one replica was refused by the other: {body}");
    // The same code on the first replica now: single use across replicas.
    let again = redeem(&c, p.lb(), &code).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "a code was redeemed twice");

    // SAML, SP-initiated: the AuthnRequest lands on one replica, the login POST on the other.
    let login_form = c.get(format!("{}/login", p.lb())).send().await.unwrap();
    let csrf_cookie = set_cookie(&login_form, "fedgate_csrf").unwrap();
    let csrf = csrf_from(&login_form.text().await.unwrap()).unwrap();
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="req-across-replicas" Version="2.0" IssueInstant="2020-09-28T13:09:57.896Z" AssertionConsumerServiceURL="{SP_ACS}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">{SP_ENTITY}</saml2:Issuer></samlp:AuthnRequest>"#
    );
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, xml.as_bytes()).unwrap();
    use base64::Engine as _;
    let req = base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap());
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("SAMLRequest", &req).finish();
    let sso = c.get(format!("{}/saml/sso?{q}", p.lb())).send().await.unwrap();
    assert_eq!(sso.status(), StatusCode::SEE_OTHER, "an unauthenticated AuthnRequest is sent to the login page");
    let rd = e2e::gateway::rd_of(&sso).expect("rd");
    let post = c
        .post(format!("{}/login", p.lb()))
        .header("cookie", csrf_cookie)
        .form(&[("username", "bob"), ("password", "bob-demo"), ("csrf", csrf.as_str()), ("rd", rd.as_str())])
        .send()
        .await
        .unwrap();
    assert_ne!(replica(&sso), replica(&post), "the balancer sent the AuthnRequest and the login to one replica");
    assert_eq!(post.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&post, "fedgate_session").unwrap();
    let next = post.headers()["location"].to_str().unwrap().to_string();
    let resume = c.get(format!("{}{next}", p.lb())).header("cookie", &session).send().await.unwrap();
    assert_eq!(resume.status(), StatusCode::OK, "the SAML request was lost between the replicas");
    let html = resume.text().await.unwrap();
    let b64 = html.split("name=\"SAMLResponse\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let response = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
    assert!(response.contains("InResponseTo=\"req-across-replicas\""), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_replica_is_refused_on_the_other_within_a_second() {
    let p = pair().await;
    let cookie = sign_in(p.a()).await;
    let c = raw();
    // B has the session in its first-level cache.
    let r = c.get(format!("{}/", p.b())).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Log out on A (the confirmation form, then its POST).
    let confirm = c.get(format!("{}/logout", p.a())).header("cookie", &cookie).send().await.unwrap();
    let csrf = csrf_from(&confirm.text().await.unwrap()).expect("logout form");
    let out = c
        .post(format!("{}/logout", p.a()))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success() || out.status().is_redirection(), "logout answered {}", out.status());
    let logged_out = Instant::now();
    loop {
        let r = c.get(format!("{}/", p.b())).header("cookie", &cookie).send().await.unwrap();
        if r.status() != StatusCode::OK {
            break;
        }
        assert!(
            logged_out.elapsed() <= Duration::from_secs(1),
            "replica B still accepts the session {:?} after the logout on A",
            logged_out.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    eprintln!("logout on A refused on B after {:?}", logged_out.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_spread_over_both_replicas_lock_the_account() {
    let p = pair().await;
    for i in 0..5 {
        let base = if i % 2 == 0 { p.a() } else { p.b() };
        let r = post_login(base, "alice", "wrong-password", "").await;
        assert_ne!(r.status(), StatusCode::SEE_OTHER, "a wrong password was accepted");
    }
    for base in [p.a(), p.b()] {
        let r = post_login(base, "alice", "alice-demo", "").await;
        assert_eq!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "after five failures over two replicas the account is not locked at {base}"
        );
    }
}

/// One replica killed with SIGKILL while four clients keep requesting the account page with eight sessions (signed
/// in through the balancer, so on both replicas): every request that starts after the kill is answered by the
/// survivor (nginx passes a refused connection on to the other upstream), no session is lost, and new sign-ins
/// and code exchanges work on the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_killed_under_load_loses_no_session() {
    let mut p = pair().await;
    let mut cookies = Vec::new();
    for _ in 0..8 {
        cookies.push(sign_in(p.lb()).await);
    }
    let made_on: std::collections::BTreeSet<String> = p.routed().into_iter().map(|(a, _)| a).collect();
    assert_eq!(made_on.len(), 2, "the sessions were all made on one replica: {made_on:?}");
    let killed_at = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (lb, cookies, killed_at) = (p.lb().to_string(), cookies.clone(), killed_at.clone());
            tokio::spawn(async move {
                let c = raw();
                let (mut seen, mut after) = (Vec::new(), 0);
                // Until 40 requests of this client started after the kill (bounded: 5,000 requests at most).
                for i in 0..5000 {
                    let started = Instant::now();
                    let cookie = &cookies[(w + i) % cookies.len()];
                    let status = c.get(format!("{lb}/")).header("cookie", cookie).send().await.unwrap().status();
                    let after_kill = killed_at.get().is_some_and(|k| started > *k);
                    seen.push((i, status.as_u16(), after_kill));
                    after += usize::from(after_kill);
                    if after == 40 {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.a.take().unwrap().stop_with("KILL").await.unwrap();
    killed_at.set(Instant::now()).unwrap();
    let mut after = 0;
    for w in workers {
        for (i, status, after_kill) in w.await.unwrap() {
            if after_kill {
                after += 1;
                assert_eq!(status, 200, "request {i} after the kill");
            } else {
                assert!(status == 200 || status == 502, "request {i} around the kill answered {status}");
            }
        }
    }
    assert_eq!(after, 4 * 40, "the load ended before the kill: not everything was tested");
    for (i, cookie) in cookies.iter().enumerate() {
        let r = raw().get(format!("{}/", p.lb())).header("cookie", cookie).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "session {i} was lost with the replica");
    }
    // New sign-ins and a code exchange work on the survivor too.
    let cookie = sign_in(p.lb()).await;
    let authorize = raw()
        .get(format!(
            "{}/oauth2/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid&state=s1\
             &code_challenge={CHALLENGE}&code_challenge_method=S256",
            p.lb()
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let code = code_of(&authorize).unwrap_or_else(|| panic!("no code in {:?}", authorize.headers().get("location")));
    let token = redeem(&raw(), p.lb(), &code).await;
    assert_eq!(token.status(), StatusCode::OK, "{}", token.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_test_is_a_clear_503_and_everything_recovers_when_it_returns() {
    let mut p = pair().await;
    let cookie = sign_in(p.a()).await;
    p.redis.stop();
    // Right after the stop, replica A still has the session it has just written in its first level: it answers
    // from there. Replica B never read it, so it has to ask Redis: store unavailable.
    let r = raw().get(format!("{}/", p.a())).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a session in the first level must keep answering while Redis is down");
    let r = raw().get(format!("{}/", p.b())).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "a session only Redis knows, with Redis down");
    // Only for the first level's short TTL (store.cache_ttl, 500 ms): after it, A has to ask Redis too.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = raw().get(format!("{}/", p.a())).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "the first level answered past its TTL");
    let r = post_login(p.a(), "bob", "bob-demo", "").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "a new login with Redis down");
    let page = r.text().await.unwrap();
    assert!(page.contains("Session store unavailable"), "{page}");
    let token = raw()
        .post(format!("{}/oauth2/token", p.a()))
        .basic_auth("app", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = token.text().await.unwrap();
    assert!(body.contains("temporarily_unavailable") && body.contains("session store unavailable"), "{body}");
    let ready = http().get(format!("{}/readyz", p.a())).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = ready.text().await.unwrap();
    assert!(ready.contains("\"store\"") && ready.contains("redis"), "{ready}");

    p.redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = post_login(p.a(), "bob", "bob-demo", "").await;
        if r.status() == StatusCode::SEE_OTHER {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after Redis returned: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = http().get(format!("{}/readyz", p.a())).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "{}", ready.text().await.unwrap());
    // The session from before the outage survived it (Redis keeps its AOF).
    let r = raw().get(format!("{}/", p.b())).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// SAML Single Logout through two replicas: a browser signed in to two pysaml2 SPs (A answers logouts by
/// HTTP-POST, B by HTTP-Redirect) logs out at A. The LogoutRequest from A, the "Signing out" page's frame for B,
/// B's LogoutResponse and the page's finish go through nginx round-robin, so they land on both replicas; the
/// logout's state (the SPs still to ask, A's answer) must be where every replica finds it. Both SPs end their
/// sessions and A gets fedgate's LogoutResponse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_single_logout_crosses_replicas_and_reaches_every_sp() {
    use e2e::saml_sp::{SamlSp, SloBinding, follow};
    let md_dir = tempfile::tempdir().unwrap();
    let (sp_a, sp_b) = (SamlSp::start(SloBinding::Post).unwrap(), SamlSp::start(SloBinding::Redirect).unwrap());
    let mut sps = String::new();
    for (name, sp) in [("a", &sp_a), ("b", &sp_b)] {
        let md = sp.metadata_file(md_dir.path()).await.unwrap();
        sps += &format!(
            "[[saml.service_providers]]\nname = \"{name}\"\ndisplay_name = \"SAML app {name}\"\nmetadata_file = \"{}\"\n",
            md.display()
        );
    }
    let p = pair_with(&sps).await;
    for sp in [&sp_a, &sp_b] {
        sp.setup(&format!("{}/saml/metadata", p.lb())).await.unwrap();
    }
    gateway::install_crypto_provider();
    let c = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = c.get(format!("{}/login", p.lb())).send().await.unwrap();
    let csrf = csrf_from(&form.text().await.unwrap()).unwrap();
    let r = c
        .post(format!("{}/login", p.lb()))
        .form(&[("username", "alice"), ("password", "alice-demo"), ("csrf", csrf.as_str()), ("rd", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login through the balancer");
    for sp in [&sp_a, &sp_b] {
        let landed = follow(&c, c.get(sp.url("/login"))).await;
        assert_eq!(landed.status, StatusCode::OK, "SSO at {}: {landed:?}", sp.base);
        assert_eq!(c.get(sp.url("/whoami")).send().await.unwrap().status(), StatusCode::OK);
    }

    let before = p.routed().len();
    let landed = follow(&c, c.get(sp_a.url("/logout"))).await;
    assert_eq!(landed.status, StatusCode::OK, "{landed:?}");
    let answer: serde_json::Value =
        serde_json::from_str(&landed.body).unwrap_or_else(|_| panic!("A did not get its LogoutResponse: {landed:?}"));
    assert_eq!(answer["logged_out"], true, "A checked fedgate's LogoutResponse: {answer} {:?}", landed.trail);
    for sp in [&sp_a, &sp_b] {
        assert_eq!(
            c.get(sp.url("/whoami")).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{} still signed in: {:?}",
            sp.base,
            landed.trail
        );
        assert_eq!(sp.active_sessions().await.unwrap(), 0, "{}", sp.base);
    }
    assert_eq!(c.get(format!("{}/", p.lb())).send().await.unwrap().status(), StatusCode::SEE_OTHER);

    // The logout's steps did cross: the replica that made the chain is not the only one that used it.
    let steps: Vec<(String, String)> =
        p.routed().into_iter().skip(before).filter(|(_, uri)| uri.starts_with("/saml/slo")).collect();
    let started = steps.iter().find(|(_, u)| u.contains("SAMLRequest=") || u == "/saml/slo").expect("the request");
    let used: Vec<&(String, String)> =
        steps.iter().filter(|(_, u)| u.starts_with("/saml/slo/") || u.contains("SAMLResponse=")).collect();
    assert!(!used.is_empty(), "no fan-out step went through the balancer: {steps:?}");
    assert!(used.iter().any(|(a, _)| *a != started.0), "every step landed on the replica that started: {steps:?}");
}

/// The AuthnRequest of `SP_ENTITY` (HTTP-Redirect query), sent to `base` without a session: the `rd` it is sent to
/// the login page with (`/saml/resume?id=…`).
async fn pending_authn_request(base: &str, id: &str) -> String {
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="{id}" Version="2.0" IssueInstant="2020-09-28T13:09:57.896Z" AssertionConsumerServiceURL="{SP_ACS}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">{SP_ENTITY}</saml2:Issuer></samlp:AuthnRequest>"#
    );
    let sso = raw().get(format!("{base}/saml/sso?{}", crate::saml::redirect_query(&xml, None))).send().await.unwrap();
    assert_eq!(sso.status(), StatusCode::SEE_OTHER, "an unauthenticated AuthnRequest is sent to the login page");
    e2e::gateway::rd_of(&sso).expect("rd")
}

/// The same pending AuthnRequest resumed at once on both replicas (a double click, a retried request, a replayed
/// resume URL) is answered with one SAML response, not one per request: the resume takes the request from the
/// store in one atomic step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_authn_request_resumed_on_both_replicas_at_once_is_answered_once() {
    let p = pair().await;
    for round in 0..3 {
        let rd = pending_authn_request(p.lb(), &format!("req-twice-{round}")).await;
        assert!(rd.starts_with("/saml/resume?id="), "{rd}");
        let cookie = sign_in(p.lb()).await;
        let attempts: Vec<_> = (0..8)
            .map(|i| {
                let url = format!("{}{rd}", if i % 2 == 0 { p.a() } else { p.b() });
                let cookie = cookie.clone();
                tokio::spawn(async move {
                    let r = raw().get(url).header("cookie", cookie).send().await.unwrap();
                    let status = r.status();
                    (status, r.text().await.unwrap().contains("name=\"SAMLResponse\""))
                })
            })
            .collect();
        let mut answered = Vec::new();
        for a in attempts {
            answered.push(a.await.unwrap());
        }
        let responses = answered.iter().filter(|(_, saml)| *saml).count();
        assert_eq!(responses, 1, "round {round}: one AuthnRequest answered {responses} times: {answered:?}");
        assert!(
            answered.iter().filter(|(_, saml)| !saml).all(|(s, _)| *s == StatusCode::BAD_REQUEST),
            "the others are told the request was used: {answered:?}"
        );
    }
}

/// An SP's LogoutRequest is checked against the session as the store holds it: the sign-in to that SP (its NameID
/// and SessionIndex) recorded by replica A a moment ago is seen by replica B, whose first level still holds the
/// session from before that sign-in. The logout ends the session everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_logout_on_one_replica_sees_the_sign_in_the_other_recorded_just_before() {
    use base64::Engine as _;
    // The longest first level allowed, so the test has a whole second between B's read and the LogoutRequest.
    let p = pair_configured("", "cache_ttl = \"1s\"\n").await;
    let cookie = sign_in(p.a()).await;
    let c = raw();
    let read = c.get(format!("{}/", p.b())).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let cached_at = Instant::now();
    // Replica A signs the session in to the SP.
    let init = c.get(format!("{}/saml/init/app", p.a())).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    let html = init.text().await.unwrap();
    let b64 = html.split("name=\"SAMLResponse\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let xml = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
    let name_id = xml.split("NameID").nth(1).unwrap().split('>').nth(1).unwrap().split('<').next().unwrap();
    let index = xml.split("SessionIndex=\"").nth(1).unwrap().split('"').next().unwrap();
    // The SP asks replica B to end that session.
    let request = crate::saml::logout_request_for(SP_ENTITY, Some(name_id), Some(index));
    let slo = c
        .get(format!("{}/saml/slo?{}", p.b(), crate::saml::redirect_query(&request, None)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let within = cached_at.elapsed();
    let status = slo.status();
    let body = slo.text().await.unwrap();
    assert!(
        within < Duration::from_secs(1),
        "too slow to test the first level ({within:?}): the machine is overloaded"
    );
    assert_eq!(status, StatusCode::OK, "replica B did not see the sign-in A recorded {within:?} before: {body}");
    assert!(body.contains("signed out"), "{body}");
    // Ended in the store at once; replica A's first level drops it within its TTL.
    let ended = Instant::now();
    while c.get(format!("{}/", p.a())).header("cookie", &cookie).send().await.unwrap().status() == StatusCode::OK {
        assert!(ended.elapsed() < Duration::from_millis(1500), "the session outlived the SP's logout on replica A");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redeems the authorization code `code` (client `app`, PKCE) at `base`'s token endpoint.
async fn redeem(client: &reqwest::Client, base: &str, code: &str) -> reqwest::Response {
    client
        .post(format!("{base}/oauth2/token"))
        .basic_auth("app", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
}

/// A store outage must not turn the login form (or the token endpoint) into a password oracle. With Redis
/// refusing writes (out of memory, or a failover left a read-only replica) or down, a failure cannot be counted
/// and a session cannot be stored: a wrong password used to get "invalid" (uncounted, so unlimited) while the right
/// one got the 503, which told them apart. Now both get the same 503 and no password is checked uncounted; after
/// the outage, failures count again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_answers_every_password_alike_so_it_is_no_oracle() {
    let mut p = pair().await;
    let wrong_secret = |base: String| async move {
        raw()
            .post(format!("{base}/oauth2/token"))
            .basic_auth("app", Some("not-the-secret"))
            .form(&[("grant_type", "authorization_code"), ("code", "c"), ("redirect_uri", REDIRECT)])
            .send()
            .await
            .unwrap()
    };
    let all_unavailable = |what: &str, statuses: Vec<StatusCode>| {
        assert!(
            statuses.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
            "{what}: every attempt must get the same 503 as the right password, got {statuses:?}"
        );
    };
    // Writes refused, reads answered: Redis at its memory limit with nothing it may evict.
    p.redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    p.redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(post_login(p.a(), "bob", "not-bobs-password", "").await.status());
    }
    all_unavailable("wrong passwords while Redis refuses writes", statuses);
    let right = post_login(p.a(), "bob", "bob-demo", "").await;
    assert_eq!(right.status(), StatusCode::SERVICE_UNAVAILABLE, "the right password, with the session unstorable");
    let page = right.text().await.unwrap();
    assert!(page.contains("Session store unavailable"), "{page}");
    let token = wrong_secret(p.a().to_string()).await;
    assert_eq!(token.status(), StatusCode::SERVICE_UNAVAILABLE, "a wrong client secret while failures cannot count");
    let body = token.text().await.unwrap();
    assert!(body.contains("temporarily_unavailable"), "{body}");

    // Redis down: the counters cannot even be read.
    p.redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    p.redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(post_login(p.b(), "bob", "not-bobs-password", "").await.status());
    }
    all_unavailable("wrong passwords with Redis down", statuses);
    assert_eq!(wrong_secret(p.b().to_string()).await.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Back: a wrong password is "invalid" again, and counted (the default limit locks the name after five).
    p.redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = post_login(p.a(), "carol", "not-carols-password", "").await;
        if r.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after Redis returned: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut last = StatusCode::OK;
    for i in 0..6 {
        let base = if i % 2 == 0 { p.b() } else { p.a() };
        last = post_login(base, "carol", "not-carols-password", "").await.status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "failures count again once Redis is back");
}

/// A logout revokes the session's tokens before it answers: a replica that dies right after answering (a crash,
/// an OOM kill, an upgrade's SIGKILL) must not leave the refresh token alive on the others. The link from replica
/// A to Redis is slow (150 ms each way out), so there is time to kill A after its logout page arrives; the revocation
/// used to run in a background task after the answer and died with the process (the refresh token then still worked
/// on replica B).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_right_after_a_logout_leaves_no_token_of_that_session_alive() {
    let redis = Redis::start().unwrap();
    let link = e2e::slow_link::SlowLink::start(
        redis.url().trim_start_matches("redis://").trim_end_matches("/0"),
        Duration::from_millis(150),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = |url: &str| {
        format!(
            "{}{}\n[store]\nkind = \"redis\"\nurl = \"{url}\"\ncommand_timeout = \"3s\"\n",
            demo_config(),
            oidc_toml(&dir.path().join("keys"), "ES256")
        )
    };
    let a =
        GatewayProcess::start(&body(&format!("redis://127.0.0.1:{}/0", link.port())), &[], &[], false).await.unwrap();
    let b = GatewayProcess::start(&body(&redis.url()), &[], &[], false).await.unwrap();
    let c = raw();
    let cookie = sign_in(&a.base).await;
    let authorize = c
        .get(format!(
            "{}/oauth2/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}\
             &scope=openid&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256",
            a.base
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let code = code_of(&authorize).unwrap_or_else(|| panic!("no code in {:?}", authorize.headers().get("location")));
    let tokens: serde_json::Value = redeem(&c, &a.base, &code).await.json().await.unwrap();
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token").to_string();
    let refresh = |base: String| {
        let (c, refresh_token) = (c.clone(), refresh_token.clone());
        async move {
            c.post(format!("{base}/oauth2/token"))
                .basic_auth("app", Some(SECRET))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())])
                .send()
                .await
                .unwrap()
        }
    };

    let confirm = c.get(format!("{}/logout", a.base)).header("cookie", &cookie).send().await.unwrap();
    let csrf = csrf_from(&confirm.text().await.unwrap()).expect("logout form");
    let out = c
        .post(format!("{}/logout", a.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success(), "logout answered {}", out.status());
    a.stop_with("KILL").await.unwrap();
    // Whatever A had sent before it died reaches Redis within the link's delay.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = refresh(b.base.clone()).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    let start: String = body.chars().take(60).collect();
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the refresh token outlived the logout on the killed replica: {start}…"
    );
    assert!(body.contains("invalid_grant"), "{body}");
}
