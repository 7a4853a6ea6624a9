//! Benchmark helper for scripts/bench (not a test): brokered logins per second, and the same provider's own login
//! rate driven by the same client, so the two can be compared within one run. Each login is a fresh browser (one
//! cookie jar per login, shared by the ports of 127.0.0.1 as a browser's is) and a new user (`user{n}`):
//!   broker-bench broker GATEWAY PROVIDER_NAME CONC SECS
//!     fedgate's /login/{name} → the provider's /auth → its login page → POST → resume → fedgate's callback (fedgate
//!     exchanges the code, verifies the ID token, calls userinfo) → 303 to "/" with a fedgate session cookie.
//!   broker-bench direct ISSUER CLIENT_ID SECRET REDIRECT_URI CONC SECS
//!     the provider's /auth → its login page → POST → resume → the code at REDIRECT_URI → POST /token
//!     (client_secret_basic + code_verifier), as an app of the provider's own does.
//! Prints {"logins", "failed", "rate", "first_error"}.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Follows redirects from `start`, filling the provider's login page as `user`, until a redirect to a URL `done`
/// says is the end; returns that redirect's response and target.
async fn browse(
    c: &reqwest::Client,
    start: url::Url,
    user: &str,
    done: impl Fn(&url::Url) -> bool,
) -> anyhow::Result<(reqwest::Response, url::Url)> {
    let mut url = start;
    let mut r = c.get(url.clone()).send().await?;
    for _ in 0..12 {
        if r.status().is_redirection() {
            let loc = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
            let next = url.join(loc)?;
            if done(&next) {
                return Ok((r, next));
            }
            url = next;
            r = c.get(url.clone()).send().await?;
            continue;
        }
        anyhow::ensure!(r.status().is_success() && url.path().starts_with("/interaction/"), "{} at {url}", r.status());
        let html = r.text().await?;
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .ok_or_else(|| anyhow::anyhow!("no form at {url}"))?
            .replace("&amp;", "&");
        url = url.join(&action)?;
        r = c.post(url.clone()).form(&[("prompt", "login"), ("login", user), ("password", "x")]).send().await?;
    }
    anyhow::bail!("too many hops")
}

async fn broker(gw: &str, name: &str, user: &str) -> anyhow::Result<()> {
    let c = e2e::gateway::browser();
    let home = url::Url::parse(&format!("{gw}/"))?;
    let start = url::Url::parse(&format!("{gw}/login/{name}?rd=%2F"))?;
    let (r, _) = browse(&c, start, user, |u| *u == home).await?;
    let session =
        r.headers().get_all("set-cookie").iter().any(|v| v.to_str().is_ok_and(|v| v.starts_with("fedgate_session=")));
    anyhow::ensure!(session, "the callback set no session");
    Ok(())
}

async fn direct(issuer: &str, client_id: &str, secret: &str, redirect: &str, user: &str) -> anyhow::Result<()> {
    let c = e2e::gateway::browser();
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("state", "s"),
            ("nonce", "n"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let start = url::Url::parse(&format!("{issuer}/auth?{q}"))?;
    let (_, cb) = browse(&c, start, user, |u| u.as_str().starts_with(redirect)).await?;
    let code = cb
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("no code at {cb}"))?;
    let t = c
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await?;
    anyhow::ensure!(t.status().is_success(), "token exchange failed: {}", t.status());
    t.bytes().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: broker-bench broker GATEWAY PROVIDER_NAME CONC SECS | direct ISSUER CLIENT_ID SECRET REDIRECT_URI CONC SECS";
    let n_args = match a.first().map(String::as_str) {
        Some("broker") => 5,
        Some("direct") => 7,
        _ => anyhow::bail!(usage),
    };
    anyhow::ensure!(a.len() == n_args, usage);
    let (conc, secs): (usize, u64) = (a[n_args - 2].parse()?, a[n_args - 1].parse()?);
    let args = Arc::new(a);
    let (done, failed, next_user) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (args, done, failed, next_user, first_error) =
            (args.clone(), done.clone(), failed.clone(), next_user.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let user = format!("user{}", next_user.fetch_add(1, Ordering::Relaxed));
                let outcome = if args[0] == "broker" {
                    broker(&args[1], &args[2], &user).await
                } else {
                    direct(&args[1], &args[2], &args[3], &args[4], &user).await
                };
                match outcome {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert_with(|| format!("{e:#}"));
                        }
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let n = done.load(Ordering::Relaxed);
    let first_error = first_error.lock().ok().and_then(|f| f.clone());
    println!(
        "{}",
        serde_json::json!({ "logins": n, "failed": failed.load(Ordering::Relaxed),
            "rate": n as f64 / start.elapsed().as_secs_f64(), "first_error": first_error })
    );
    Ok(())
}
