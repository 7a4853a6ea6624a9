//! Benchmark helper (not a test): how much longer a wrong password takes than an unknown user at `POST /login`,
//! against the real slapd and the in-process gateway with throttling off.
//!   login-timing [TRIES]   TRIES rounds (default 200), each timing one wrong-password and one unknown-user POST
//!                          (order alternating), after a warm-up; prints medians, means and their difference as JSON.
//!   login-timing ldap [TRIES]
//!                          the same two paths as raw LDAP on one connection (search as the service account, then a
//!                          bind as the entry found / as a DN that does not exist), to show what slapd itself costs.
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

/// One login's directory work on `conn`, in ms: search for `uid`, then bind as what was found (or `absent`).
async fn ldap_ms(conn: &mut ldap3::Ldap, slapd: &Slapd, uid: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    let base = format!("ou=people,{}", slapd.base_dn());
    let (entries, _) = conn
        .search(
            &base,
            ldap3::Scope::Subtree,
            &format!("(&(objectClass=inetOrgPerson)(uid={uid}))"),
            vec!["*", "memberOf"],
        )
        .await?
        .success()?;
    let dn = entries
        .into_iter()
        .next()
        .map(|e| ldap3::SearchEntry::construct(e).dn)
        .unwrap_or_else(|| format!("cn=fedgate-absent-0123456789abcdef,{base}"));
    let res = conn.simple_bind(&dn, "wrong-password").await?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(res.rc == 49, "bind {dn}: {}", res.rc);
    conn.simple_bind(&slapd.service_dn(), "service-password").await?.success()?;
    Ok(ms)
}

async fn raw_ldap(tries: usize) -> anyhow::Result<()> {
    let slapd = Slapd::start()?;
    let (c, mut conn) = ldap3::LdapConnAsync::new(&slapd.url()).await?;
    ldap3::drive!(c);
    conn.simple_bind(&slapd.service_dn(), "service-password").await?.success()?;
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..tries + 20 {
        let w = ldap_ms(&mut conn, &slapd, "alice").await?;
        let u = ldap_ms(&mut conn, &slapd, "nobody-here").await?;
        if i >= 20 {
            wrong.push(w);
            unknown.push(u);
        }
    }
    let ((wm, wa), (um, ua)) = (stats(wrong), stats(unknown));
    println!(
        "{}",
        serde_json::json!({
            "tries": tries,
            "ldap_wrong_password_ms": { "median": wm, "mean": wa },
            "ldap_unknown_user_ms": { "median": um, "mean": ua },
            "difference_ms": { "median": wm - um, "mean": wa - ua },
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("ldap") {
        return raw_ldap(args.get(2).and_then(|v| v.parse().ok()).unwrap_or(200)).await;
    }
    let tries: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(200);
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
