//! Benchmark helper for scripts/bench (not a test): full OpenID Connect code + PKCE logins per second against a
//! running gateway. Each login is a fresh browser (cookie jar): authorize → login form → POST credentials → resume →
//! code at the callback → token exchange (client_secret_basic + code_verifier).
//!   codeflow-bench BASE CLIENT_ID SECRET REDIRECT_URI USER PASSWORD CONC SECS
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn one(base: &str, client_id: &str, secret: &str, redirect: &str, user: &str, pw: &str) -> anyhow::Result<()> {
    let c = e2e::gateway::browser();
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid profile"),
            ("state", "s"),
            ("nonce", "n"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let r = c.get(format!("{base}/oauth2/authorize?{q}")).send().await?;
    let login = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("no redirect to login"))?
        .to_string();
    let html = c.get(format!("{base}{login}")).send().await?.text().await?;
    let csrf = e2e::gateway::csrf_from(&html).ok_or_else(|| anyhow::anyhow!("no csrf"))?;
    let rd =
        html.split("name=\"rd\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").replace("&amp;", "&");
    let r = c
        .post(format!("{base}/login"))
        .form(&[("username", user), ("password", pw), ("csrf", &csrf), ("rd", &rd)])
        .send()
        .await?;
    let resume = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("login failed"))?
        .to_string();
    let r = c.get(format!("{base}{resume}")).send().await?;
    let cb = r.headers().get("location").and_then(|l| l.to_str().ok()).ok_or_else(|| anyhow::anyhow!("no code"))?;
    let code = url::Url::parse(cb)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("no code"))?;
    let t = c
        .post(format!("{base}/oauth2/token"))
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
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(a.len() == 8, "usage: codeflow-bench BASE CLIENT_ID SECRET REDIRECT_URI USER PASSWORD CONC SECS");
    let (conc, secs): (usize, u64) = (a[6].parse()?, a[7].parse()?);
    let args = Arc::new(a);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (args, done, failed) = (args.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match one(&args[0], &args[1], &args[2], &args[3], &args[4], &args[5]).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({ "logins": n, "failed": failed.load(Ordering::Relaxed), "rate": n as f64 / start.elapsed().as_secs_f64() })
    );
    Ok(())
}
