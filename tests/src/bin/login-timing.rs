//! Benchmark helper (not a test): how much longer a wrong password takes than an unknown user at `POST /login`,
//! against the real slapd and the in-process gateway with throttling off.
//!   login-timing [TRIES]   TRIES rounds (default 200), each timing one wrong-password and one unknown-user POST
//!                          (order alternating), after a warm-up; prints medians, means and their difference as JSON.
//! The tests check the *work* (binds and searches slapd completes); this measures the time a client would see.
use std::time::Instant;

use e2e::gateway::{Gateway, browser, csrf_from};
use e2e::slapd::Slapd;

async fn post_ms(c: &reqwest::Client, gw: &Gateway, user: &str) -> anyhow::Result<f64> {
    let html = c.get(gw.url("/login")).send().await?.text().await?;
    let csrf = csrf_from(&html).ok_or_else(|| anyhow::anyhow!("no csrf field"))?;
    let form = [("username", user), ("password", "wrong-password"), ("csrf", csrf.as_str()), ("rd", "/")];
    let start = Instant::now();
    let r = c.post(gw.url("/login")).form(&form).send().await?;
    let status = r.status();
    r.bytes().await?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(status == reqwest::StatusCode::UNAUTHORIZED, "{user}: {status}");
    Ok(ms)
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (median, mean)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tries: usize = std::env::args().nth(1).and_then(|v| v.parse().ok()).unwrap_or(200);
    let slapd = Slapd::start()?;
    let gw = Gateway::start(&format!("[log]\nlevel = \"error\"\n[login]\nthrottle = false\n{}", slapd.ldap_toml("")))
        .await?;
    let c = browser();
    for _ in 0..20 {
        post_ms(&c, &gw, "alice").await?;
        post_ms(&c, &gw, "nobody-here").await?;
    }
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..tries {
        if i % 2 == 0 {
            wrong.push(post_ms(&c, &gw, "alice").await?);
            unknown.push(post_ms(&c, &gw, "nobody-here").await?);
        } else {
            unknown.push(post_ms(&c, &gw, "nobody-here").await?);
            wrong.push(post_ms(&c, &gw, "alice").await?);
        }
    }
    let ((wm, wa), (um, ua)) = (stats(wrong), stats(unknown));
    println!(
        "{}",
        serde_json::json!({
            "tries": tries,
            "wrong_password_ms": { "median": wm, "mean": wa },
            "unknown_user_ms": { "median": um, "mean": ua },
            "difference_ms": { "median": wm - um, "mean": wa - ua },
        })
    );
    drop(gw);
    drop(slapd);
    Ok(())
}
