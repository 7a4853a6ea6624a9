//! The login page and sessions over HTTP: CSRF, open redirects, fixation, expiry, logout, throttling.
//! The directory here is the static demo one; `ldap.rs` and the browser test cover the same path against slapd.

use std::time::Duration;

use e2e::gateway::{Gateway, GatewayProcess, browser, csrf_from, demo_config};
use e2e::slapd::{Slapd, SlapdOptions};
use reqwest::StatusCode;

/// A gateway logging in against a real slapd (users alice, bob… with passwords `<user>-password`), plus `extra`.
pub async fn ldap_gateway(extra: &str) -> (Slapd, Gateway) {
    let slapd = Slapd::start().unwrap();
    let cfg = format!(
        "[roles]\nadmin = [\"ai-admins\"]\nresearcher = [\"ai-researchers\"]\n{}\n{extra}",
        slapd.ldap_toml("")
    );
    let gw = Gateway::start(&cfg).await.unwrap();
    (slapd, gw)
}

/// Fetches the login form and posts credentials; returns the POST response.
pub async fn login(c: &reqwest::Client, gw: &Gateway, user: &str, password: &str, rd: &str) -> reqwest::Response {
    let q = serde_urlencoded_pair("rd", rd);
    let form = c.get(gw.url(&format!("/login?{q}"))).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    let csrf = csrf_from(&html).expect("login form has a csrf field");
    c.post(gw.url("/login"))
        .form(&[("username", user), ("password", password), ("csrf", &csrf), ("rd", rd)])
        .send()
        .await
        .unwrap()
}

fn serde_urlencoded_pair(k: &str, v: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair(k, v).finish()
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_lands_on_the_account_page() {
    let gw = Gateway::start(&demo_config()).await.unwrap();
    let c = browser();
    let first = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()["location"], "/login?rd=%2F");
    let r = login(&c, &gw, "alice", "alice-demo", "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/");
    let cookie = set_cookie(&r, "fedgate_session").expect("session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    let id = cookie.split(';').next().unwrap().trim_start_matches("fedgate_session=");
    assert_eq!(id.len(), 43, "256-bit id, base64url");
    let page = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Alice Liddell") && html.contains("<span class=\"chip\">admin</span>"), "{html}");
    assert!(html.contains("ai-admins"));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same_and_keep_the_username() {
    let (_slapd, gw) = ldap_gateway("").await;
    for (user, pw) in [("alice", "wrong"), ("mallory", "whatever"), ("alice", "")] {
        let c = browser();
        let r = login(&c, &gw, user, pw, "/").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}/{pw}");
        assert!(set_cookie(&r, "fedgate_session").is_none());
        let html = r.text().await.unwrap();
        assert!(html.contains("Invalid username or password."), "{html}");
        assert!(html.contains(&format!("value=\"{user}\"")), "username kept");
    }
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let (_slapd, gw) = ldap_gateway("").await;
    let c = browser();
    let r = c
        .post(gw.url("/login"))
        .form(&[("username", "alice"), ("password", "alice-password"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("did not come from this site"));
}

#[tokio::test]
async fn open_redirects_are_refused() {
    let (_slapd, gw) = ldap_gateway("").await;
    for rd in [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "%2F%2Fevil.com",
        "https:%2F%2Fevil.com",
        "/%09/evil.com",
        "http://127.0.0.1.evil.com/",
    ] {
        let c = browser();
        let r = login(&c, &gw, "alice", "alice-password", rd).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(loc == "/" || loc.starts_with("/%"), "{rd} redirected to {loc}");
        assert!(!loc.contains("evil.com") || loc.starts_with("/%"), "{rd} redirected to {loc}");
    }
    // A path on the gateway itself is followed.
    let c = browser();
    let r = login(&c, &gw, "alice", "alice-password", "/logout").await;
    assert_eq!(r.headers()["location"], "/logout");
}

#[tokio::test]
async fn the_session_id_changes_at_login() {
    let (_slapd, gw) = ldap_gateway("").await;
    let c = browser();
    let r = login(&c, &gw, "bob", "bob-password", "/").await;
    let before = set_cookie(&r, "fedgate_session").unwrap();
    // Logging in again from the same browser (which sends the old id) yields a new id and kills the old one.
    let r = login(&c, &gw, "bob", "bob-password", "").await;
    let after = set_cookie(&r, "fedgate_session").unwrap();
    assert_ne!(before, after);
    let old_id = before.split(';').next().unwrap().to_string();
    let stale = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = stale.get(gw.url("/")).header("cookie", old_id).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the pre-login id must be dead");
    // An id planted by an attacker is never adopted.
    let planted = "A".repeat(43);
    let c = browser();
    let q = c.get(gw.url("/login")).header("cookie", format!("fedgate_session={planted}")).send().await.unwrap();
    let csrf = csrf_from(&q.text().await.unwrap()).unwrap();
    let r = c
        .post(gw.url("/login"))
        .header("cookie", format!("fedgate_session={planted}; fedgate_csrf={csrf}"))
        .form(&[("username", "bob"), ("password", "bob-password"), ("csrf", &csrf), ("rd", "/")])
        .send()
        .await
        .unwrap();
    assert!(!set_cookie(&r, "fedgate_session").unwrap().contains(&planted));
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_the_absolute_limit() {
    let (_slapd, gw) = ldap_gateway("[session]\nidle_timeout = \"10m\"\nabsolute_timeout = \"1h\"\n").await;
    let c = browser();
    login(&c, &gw, "alice", "alice-password", "/").await;
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::OK);
    gw.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::OK, "used within 10m");
    gw.clock.advance(Duration::from_secs(11 * 60));
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER, "idle for 11m");

    let c = browser();
    login(&c, &gw, "alice", "alice-password", "/").await;
    for _ in 0..7 {
        gw.clock.advance(Duration::from_secs(8 * 60));
        assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::OK);
    }
    gw.clock.advance(Duration::from_secs(8 * 60)); // 64 minutes after login
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER, "absolute limit");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let (_slapd, gw) = ldap_gateway("").await;
    let c = browser();
    login(&c, &gw, "alice", "alice-password", "/").await;
    let confirm = c.get(gw.url("/logout")).send().await.unwrap().text().await.unwrap();
    assert!(confirm.contains("Sign out"));
    let csrf = csrf_from(&confirm).unwrap();
    // Without the session's token, nothing happens.
    let r = c.post(gw.url("/logout")).form(&[("csrf", "nope")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::OK);
    let r = c.post(gw.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("You have been signed out."));
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn repeated_failures_are_throttled_and_the_lockout_expires() {
    let (_slapd, gw) = ldap_gateway("[login]\nmax_failures = 3\nwindow = \"1m\"\nlockout = \"2m\"\n").await;
    let c = browser();
    for _ in 0..3 {
        assert_eq!(login(&c, &gw, "alice", "bad", "/").await.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login(&c, &gw, "alice", "alice-password", "/").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    gw.clock.advance(Duration::from_secs(121));
    assert_eq!(login(&c, &gw, "alice", "alice-password", "/").await.status(), StatusCode::SEE_OTHER);
}

/// A browser-like client whose connections come from `ip` (any 127.0.0.0/8 address is loopback on Linux), so a
/// test can spread attempts over many client addresses as a distributed attacker would.
fn browser_from(ip: &str) -> reqwest::Client {
    gateway::install_crypto_provider();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .local_address(ip.parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap()
}

/// Fetches the login form at `base` and posts credentials.
async fn login_at(c: &reqwest::Client, base: &str, user: &str, password: &str) -> reqwest::Response {
    let html = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).expect("login form has a csrf field");
    c.post(format!("{base}/login"))
        .form(&[("username", user), ("password", password), ("csrf", &csrf), ("rd", "/")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn spellings_the_directory_takes_for_one_user_share_one_lockout() {
    let slapd = Slapd::start_with(SlapdOptions { bulk_users: 12, ..Default::default() }).unwrap();
    let gw = GatewayProcess::start(&slapd.ldap_toml(""), &[], &[], false).await.unwrap();
    let spellings = ["ｕｓｅｒ１２", "uſer12", "user¹²"];
    // The premise: slapd's matching rules take each spelling for user12 (password pw-12).
    for (i, typed) in spellings.iter().enumerate() {
        let r = login_at(&browser_from(&format!("127.0.0.{}", 20 + i)), &gw.base, typed, "pw-12").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{typed} signs in as user12");
    }
    // The attack: five wrong passwords, spread over the spellings and over five client addresses, so that neither
    // one typed name nor one address reaches the limit of five on its own.
    for i in 0..5 {
        let typed = spellings[i % spellings.len()];
        let r = login_at(&browser_from(&format!("127.0.0.{}", 30 + i)), &gw.base, typed, "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{typed}");
    }
    // The sixth try, with the right password, from yet another address, is refused: the account is locked.
    for typed in ["user12", "uſer12", "USER12"] {
        let r = login_at(&browser_from("127.0.0.40"), &gw.base, typed, "pw-12").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{typed}");
        assert!(r.headers().get("retry-after").is_some());
        assert!(set_cookie(&r, "fedgate_session").is_none());
    }
    // Other accounts are untouched.
    let r = login_at(&browser_from("127.0.0.41"), &gw.base, "user11", "pw-11").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// Binds and searches slapd completes while `f` runs (less the monitor readings' own operations, which are the
/// same for every call, so two results compare exactly).
async fn directory_work<F: std::future::Future<Output = ()>>(slapd: &Slapd, f: F) -> (u64, u64) {
    let (b0, s0) = (slapd.completed_operations("Bind").unwrap(), slapd.completed_operations("Search").unwrap());
    f.await;
    let (b1, s1) = (slapd.completed_operations("Bind").unwrap(), slapd.completed_operations("Search").unwrap());
    (b1 - b0, s1 - s0)
}

#[tokio::test]
async fn an_unknown_user_costs_the_directory_what_a_wrong_password_costs() {
    let slapd = Slapd::start().unwrap();
    let gw = GatewayProcess::start(&format!("[login]\nthrottle = false\n{}", slapd.ldap_toml("")), &[], &[], false)
        .await
        .unwrap();
    let c = browser();
    // Warm the connection pools, so that neither measurement pays for opening connections.
    for user in ["alice", "nobody-here"] {
        assert_eq!(login_at(&c, &gw.base, user, "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
    const TRIES: u64 = 20;
    let attempts = |user: &'static str| {
        let (c, base) = (c.clone(), gw.base.clone());
        async move {
            for _ in 0..TRIES {
                assert_eq!(login_at(&c, &base, user, "wrong").await.status(), StatusCode::UNAUTHORIZED);
            }
        }
    };
    let (wrong_binds, wrong_searches) = directory_work(&slapd, attempts("alice")).await;
    let (unknown_binds, unknown_searches) = directory_work(&slapd, attempts("nobody-here")).await;
    let (idle_binds, idle_searches) = directory_work(&slapd, async {}).await;
    assert_eq!(wrong_binds - idle_binds, TRIES, "one bind per wrong password");
    assert_eq!(
        (unknown_binds, unknown_searches),
        (wrong_binds, wrong_searches),
        "an unknown user does the same search + bind as a wrong password"
    );
    assert_eq!(wrong_searches - idle_searches, TRIES, "one search per attempt");
}

/// Where the login lands for `rd` (the `Location` of a successful login on a GatewayProcess at `base`).
async fn lands_at(base: &str, rd: &str) -> String {
    let c = browser();
    let q = serde_urlencoded_pair("rd", rd);
    let html = c.get(format!("{base}/login?{q}")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let r = c
        .post(format!("{base}/login"))
        .form(&[("username", "alice"), ("password", "alice-demo"), ("csrf", &csrf), ("rd", rd)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    r.headers()["location"].to_str().unwrap().to_string()
}

/// An allowed redirect origin is scheme + host + port: allowing `https://app.example.com` does not let the login
/// send the browser to `http://app.example.com` (downgrade, readable by anyone on the path) or to another port
/// (another service on that host). A bare host, as older configs have, still works for https.
#[tokio::test]
async fn allowed_redirects_match_scheme_and_port_not_only_the_host() {
    let gw = GatewayProcess::start(
        &format!(
            "[session]\nallowed_redirect_domains = [\"https://app.example.com\", \"legacy.example.com\"]\n{}",
            demo_config()
        ),
        &[],
        &[],
        false,
    )
    .await
    .unwrap();
    assert_eq!(lands_at(&gw.base, "https://app.example.com/x").await, "https://app.example.com/x");
    assert_eq!(lands_at(&gw.base, "https://legacy.example.com/y").await, "https://legacy.example.com/y");
    for refused in [
        "http://app.example.com/x",
        "https://app.example.com:8443/x",
        "http://legacy.example.com/y",
        "https://legacy.example.com:8443/y",
        "https://evil.example.com/",
    ] {
        assert_eq!(lands_at(&gw.base, refused).await, "/", "{refused}");
    }
}
