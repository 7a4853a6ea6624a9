//! The fifth attack run against the real `fedgate` binary: what the fourth left open. A WebSocket tunnel that
//! outlived the logout (or the idle timeout) of the session it was opened with, and SAML messages whose elements
//! had the right local names in a foreign namespace. Each test performs the attack and asserts what the attacker
//! must not get.

use std::time::{Duration, Instant};

use e2e::gateway::{GatewayProcess, browser, csrf_from, demo_config, session_cookie_set_by};
use e2e::upstream::EchoUpstream;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// `proxy.websocket_session_check` in these tests: a tunnel whose session ended is closed within this (plus the
/// time to close it).
const CHECK: Duration = Duration::from_secs(1);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Signs `user` in with a cookie-keeping client; the client and its session cookie (`name=value`).
async fn signed_in(gw: &GatewayProcess, user: &str) -> (reqwest::Client, String) {
    let c = browser();
    let html = c.get(format!("{}/login", gw.base)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let password = format!("{user}-demo");
    let r = c
        .post(format!("{}/login", gw.base))
        .form(&[("username", user), ("password", password.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "login of {user}");
    let cookie = session_cookie_set_by(&r).unwrap();
    (c, cookie)
}

/// Opens a WebSocket to the echo app through the gateway with `cookie`, and checks that it echoes.
async fn tunnel(gw: &GatewayProcess, cookie: &str) -> Socket {
    let mut req = format!("ws://{}/ws", gw.base.trim_start_matches("http://")).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_echoes(&mut ws, "hello").await;
    ws
}

async fn assert_echoes(ws: &mut Socket, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("no echo within 5 s");
    assert_eq!(reply.unwrap().unwrap().into_text().unwrap().as_str(), format!("echo: {text}"));
}

/// Reads until the connection closes (`None`, an error or a close frame); how long that took, or `None` if it was
/// still open after `within`.
async fn closed_within(ws: &mut Socket, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

/// The proxy decided at the upgrade only: after the user signed out, the tunnel they had opened kept carrying
/// messages both ways, for as long as the client kept it open (a shared computer's browser tab, a stolen cookie's
/// socket). Now the tunnel checks its session every `proxy.websocket_session_check` and is closed within that
/// after the logout, while another user's tunnel, whose session is live, stays open past that bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_closes_when_its_session_is_logged_out() {
    let app = EchoUpstream::start().await.unwrap();
    let cfg = format!(
        "{}\n[proxy]\nwebsocket_session_check = \"{}s\"\n[[proxy.routes]]\nupstream = \"{}\"\n",
        demo_config(),
        CHECK.as_secs(),
        app.base
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let (alice, alice_cookie) = signed_in(&gw, "alice").await;
    let (_bob, bob_cookie) = signed_in(&gw, "bob").await;
    let mut alice_ws = tunnel(&gw, &alice_cookie).await;
    let mut bob_ws = tunnel(&gw, &bob_cookie).await;

    // Alice signs out (the logout page's form).
    let html = alice.get(format!("{}/logout", gw.base)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let r = alice.post(format!("{}/logout", gw.base)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert!(r.status().is_success(), "logout answered {}", r.status());
    // Her tunnel is closed within one check (plus a second for the close to arrive).
    let bound = CHECK + Duration::from_secs(1);
    let waited = bound + Duration::from_secs(3);
    match closed_within(&mut alice_ws, waited).await {
        Some(took) => {
            eprintln!("the tunnel closed {took:?} after the logout");
            assert!(took <= bound, "alice's tunnel closed {took:?} after her logout (bound {bound:?})")
        }
        None => panic!("alice's tunnel was still open {waited:?} after her logout (bound {bound:?})"),
    }

    // Bob's tunnel, whose session is live, is still open and working three checks later.
    tokio::time::sleep(CHECK * 3).await;
    assert_echoes(&mut bob_ws, "still here").await;
    drop(app);
}

/// A tunnel kept an idle session alive for as long as it stayed open, and checking the session must not do that
/// either: a check is no use of it. With a 6-second idle timeout, a tunnel the client sends nothing into is closed
/// once the session has been idle that long (plus one check), while a tunnel the client keeps talking into keeps
/// its session, and itself, alive well past the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_closes_when_its_session_goes_idle_and_client_data_keeps_it_alive() {
    const IDLE: Duration = Duration::from_secs(6);
    let app = EchoUpstream::start().await.unwrap();
    let cfg = format!(
        "{}\n[session]\nidle_timeout = \"{}s\"\n[proxy]\nwebsocket_session_check = \"{}s\"\n\
         [[proxy.routes]]\nupstream = \"{}\"\n",
        demo_config(),
        IDLE.as_secs(),
        CHECK.as_secs(),
        app.base
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let (_alice, alice_cookie) = signed_in(&gw, "alice").await;
    let (bob, bob_cookie) = signed_in(&gw, "bob").await;
    let opened = Instant::now();
    let mut quiet = tunnel(&gw, &alice_cookie).await;
    let mut talking = tunnel(&gw, &bob_cookie).await;
    // Bob's client sends a message every half second for twice the idle timeout; Alice's sends nothing.
    let talk = async {
        for i in 0..(IDLE.as_millis() * 4 / 1000) {
            assert_echoes(&mut talking, &format!("message {i}")).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        talking
    };
    // Idle means more than IDLE whole seconds since the last use (the login); then one check, and a second to
    // close.
    let bound = IDLE + Duration::from_secs(1) + CHECK + Duration::from_secs(1);
    let before = opened.elapsed();
    let (closed, mut talking) = tokio::join!(closed_within(&mut quiet, bound + Duration::from_secs(3)), talk);
    match closed {
        Some(took) => {
            let at = before + took;
            eprintln!("the quiet tunnel closed {at:?} after the login (idle timeout {IDLE:?})");
            assert!(
                at >= IDLE - Duration::from_secs(1),
                "the quiet tunnel closed after {at:?}, before the idle timeout"
            );
            assert!(
                at <= bound + Duration::from_secs(1),
                "the quiet tunnel closed only after {at:?} (bound {bound:?})"
            );
        }
        None => panic!("the quiet tunnel was still open {:?} after its session's last use", opened.elapsed()),
    }
    assert!(opened.elapsed() > IDLE * 2 - Duration::from_secs(1));
    assert_echoes(&mut talking, "past twice the idle timeout").await;
    // And the session itself is alive: the tunnel's traffic counted as its use.
    let r = bob.get(format!("{}/anything", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "bob's session ended although his client kept talking");
    drop(app);
}

/// Two replicas on one Redis: a tunnel opened through replica A is closed within one check plus `store.cache_ttl`
/// (500 ms: how long A's first level may still answer for the session) after a logout on replica B. While Redis is
/// down, a check cannot reach the store: the tunnels whose sessions are live stay open (no replica drops all its
/// tunnels at once on a store outage), and they are still checked once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_another_replica_closes_the_tunnel_and_a_store_outage_closes_none() {
    let mut redis = e2e::redis::Redis::start().unwrap();
    let app = EchoUpstream::start().await.unwrap();
    let body = format!(
        "{}\n[proxy]\nwebsocket_session_check = \"{}s\"\n[[proxy.routes]]\nupstream = \"{}\"\n\
         [store]\nkind = \"redis\"\nurl = \"{}\"\n",
        demo_config(),
        CHECK.as_secs(),
        app.base,
        redis.url()
    );
    let (a, b) =
        tokio::join!(GatewayProcess::start(&body, &[], &[], false), GatewayProcess::start(&body, &[], &[], false));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (_alice, alice_cookie) = signed_in(&a, "alice").await;
    let (_bob, bob_cookie) = signed_in(&a, "bob").await;
    let mut alice_ws = tunnel(&a, &alice_cookie).await;
    let mut bob_ws = tunnel(&a, &bob_cookie).await;

    // Alice logs out on replica B (the cookie is the same session there: the store is shared).
    let c = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let confirm = c.get(format!("{}/logout", b.base)).header("cookie", &alice_cookie).send().await.unwrap();
    let csrf = csrf_from(&confirm.text().await.unwrap()).expect("the logout form");
    let r = c
        .post(format!("{}/logout", b.base))
        .header("cookie", &alice_cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "logout on B answered {}", r.status());
    let bound = CHECK + Duration::from_millis(500) + Duration::from_secs(1);
    let waited = bound + Duration::from_secs(3);
    match closed_within(&mut alice_ws, waited).await {
        Some(took) => {
            eprintln!("the tunnel on A closed {took:?} after the logout on B");
            assert!(took <= bound, "the tunnel on A closed {took:?} after the logout on B (bound {bound:?})")
        }
        None => panic!("the tunnel on A was still open {waited:?} after the logout on B (bound {bound:?})"),
    }

    // Redis goes away: Bob's tunnel, whose session is live, stays open through several checks.
    redis.stop();
    tokio::time::sleep(CHECK * 4).await;
    assert_echoes(&mut bob_ws, "redis is down").await;
    redis.restart().unwrap();
    tokio::time::sleep(CHECK * 2).await;
    assert_echoes(&mut bob_ws, "redis is back").await;
    drop(app);
}

/// A tunnel opened with a fedgate access token instead of a cookie outlived the token too: it is closed within a
/// check once the token has expired (3 s here), and one opened with a session at the same time stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_opened_with_an_access_token_closes_when_it_expires() {
    const TTL: Duration = Duration::from_secs(3);
    let app = EchoUpstream::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let oidc = crate::oidc::oidc_toml(keys.path(), "ES256").replacen(
        "[oidc]\n",
        &format!("[oidc]\naccess_token_ttl = \"{}s\"\n", TTL.as_secs()),
        1,
    );
    let cfg = format!(
        "{}\n[proxy]\nwebsocket_session_check = \"{}s\"\n[[proxy.routes]]\nupstream = \"{}\"\n\
         allow_clients = [\"robot\"]\n{oidc}",
        demo_config(),
        CHECK.as_secs(),
        app.base,
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let token = e2e::gateway::client_credentials_token(&gw.base, "robot", crate::oidc::SECRET, "roles").await.unwrap();
    let issued = Instant::now();
    let mut req = format!("ws://{}/ws", gw.base.trim_start_matches("http://")).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut robot_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_echoes(&mut robot_ws, "beep").await;
    let (_bob, bob_cookie) = signed_in(&gw, "bob").await;
    let mut bob_ws = tunnel(&gw, &bob_cookie).await;
    // Expired once `exp` (whole seconds) has passed; then one check, and a second to close.
    let bound = TTL + Duration::from_secs(1) + CHECK + Duration::from_secs(1);
    match closed_within(&mut robot_ws, bound + Duration::from_secs(3)).await {
        Some(_) => {
            let at = issued.elapsed();
            eprintln!("the token's tunnel closed {at:?} after the token was issued (lifetime {TTL:?})");
            assert!(at >= TTL - Duration::from_secs(1), "closed after {at:?}, before the token expired");
            assert!(at <= bound + Duration::from_secs(1), "closed only after {at:?} (bound {bound:?})");
        }
        None => panic!("the tunnel was still open {:?} after its token was issued", issued.elapsed()),
    }
    assert_echoes(&mut bob_ws, "still here").await;
    drop(app);
}

/// The SAML reader matched elements by local name in any namespace: `<evil:AuthnRequest xmlns:evil="urn:x">`
/// was an AuthnRequest, an `Issuer` or `NameID` in a foreign namespace (or none) was the SP's, a `NameIDPolicy`
/// from another vocabulary chose the NameID format. Shibboleth and Keycloak read only the SAML 2.0 namespaces;
/// now fedgate does too, and such a message is refused with a 400 naming the element and the namespace expected,
/// in both bindings, while the same messages in the right namespaces are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_elements_in_a_foreign_namespace_are_refused() {
    use base64::Engine as _;
    use std::io::Write as _;
    const P: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
    const A: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
    let keys = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[saml]\nkeys_dir = \"{}\"\n[[saml.service_providers]]\nname = \"app\"\nentity_id = \"http://127.0.0.1:9/sp\"\n\
         acs_urls = [\"http://127.0.0.1:9/acs\"]\nslo_url = \"http://127.0.0.1:9/slo\"\n",
        demo_config(),
        keys.path().display()
    );
    let gw = GatewayProcess::start(&cfg, &[], &[], false).await.unwrap();
    let (_bob, cookie) = signed_in(&gw, "bob").await;
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap();
    let send = |path: &'static str, xml: String, redirect: bool| {
        let req = if redirect {
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(xml.as_bytes()).unwrap();
            let encoded = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
            c.get(format!("{}{path}", gw.base)).query(&[("SAMLRequest", encoded)])
        } else {
            let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
            c.post(format!("{}{path}", gw.base))
                .form(&[("SAMLRequest", encoded)])
                .header("Sec-Fetch-Site", "same-origin")
        };
        req.header("Cookie", &cookie).send()
    };
    let issuer = format!(r#"<saml:Issuer xmlns:saml="{A}">http://127.0.0.1:9/sp</saml:Issuer>"#);
    let authn = |root: &str, issuer: &str, policy: &str| {
        format!(
            r#"<{root}:AuthnRequest xmlns:samlp="{P}" xmlns:evil="urn:x" ID="_a{}" Version="2.0" IssueInstant="{now}">{issuer}{policy}</{root}:AuthnRequest>"#,
            rand_id()
        )
    };
    let logout = |root: &str, issuer: &str, name_id: &str| {
        format!(
            r#"<{root}:LogoutRequest xmlns:samlp="{P}" xmlns:saml="{A}" xmlns:evil="urn:x" ID="_l{}" Version="2.0" IssueInstant="{now}">{issuer}<{name_id}>bob</{name_id}></{root}:LogoutRequest>"#,
            rand_id()
        )
    };
    let policy = r#"<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"/>"#;
    let attacks = [
        ("/saml/sso", authn("evil", &issuer, ""), "AuthnRequest", P),
        ("/saml/sso", authn("samlp", r#"<evil:Issuer>http://127.0.0.1:9/sp</evil:Issuer>"#, ""), "Issuer", A),
        ("/saml/sso", authn("samlp", "<Issuer>http://127.0.0.1:9/sp</Issuer>", ""), "Issuer", A),
        ("/saml/sso", authn("samlp", &issuer, &policy.replace("samlp:", "evil:")), "NameIDPolicy", P),
        ("/saml/slo", logout("evil", &issuer, "saml:NameID"), "LogoutRequest", P),
        ("/saml/slo", logout("samlp", &issuer, "evil:NameID"), "NameID", A),
    ];
    for (path, xml, element, expected) in &attacks {
        for redirect in [true, false] {
            let r = send(path, xml.clone(), redirect).await.unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert_eq!(status, 400, "{path} (redirect binding: {redirect}) took {xml}\n{body}");
            assert!(
                body.contains(&format!("the {element} element")) && body.contains(expected),
                "the refusal does not name {element} and {expected}: {body}"
            );
        }
    }
    // The same messages in the SAML namespaces are taken: the AuthnRequest is answered with the assertion for the
    // SP's ACS, the LogoutRequest is not refused for its namespaces.
    for redirect in [true, false] {
        let r = send("/saml/sso", authn("samlp", &issuer, policy), redirect).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("http://127.0.0.1:9/acs"));
    }
    let r = send("/saml/slo", logout("samlp", &issuer, "saml:NameID"), true).await.unwrap();
    let (status, body) = (r.status(), r.text().await.unwrap());
    assert!(!body.contains("namespace"), "{status}: {body}");
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
