//! A real browser (Debian's Chromium, driven by playwright-core) logs in, fails, logs in, and signs out.

use e2e::gateway::{Gateway, demo_config};
use e2e::node;

/// Runs tests/node/browser-login.mjs against `gw` and checks the screenshots it took.
pub async fn browser_login_round_trip(gw: &Gateway, user: &str, password: &str) -> serde_json::Value {
    node::chromium().unwrap();
    let shots = tempfile::tempdir().unwrap();
    let env = [
        ("BASE", gw.base.clone()),
        ("USER_NAME", user.to_string()),
        ("PASSWORD", password.to_string()),
        ("SHOT_DIR", shots.path().display().to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node::run("browser-login.mjs", &env, 120)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["ok"], true, "{seen}");
    // The login page screenshot is a real rendering, not a blank page: a blank 1000×760 PNG is ~3 KB.
    let png = std::fs::read(shots.path().join("login.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 8_000, "login screenshot looks blank ({} bytes)", png.len());
    if let Ok(dir) = std::env::var("FEDGATE_KEEP_SCREENSHOTS") {
        let _ = std::fs::create_dir_all(&dir);
        for f in ["login.png", "login-error.png", "account.png"] {
            let _ = std::fs::copy(shots.path().join(f), std::path::Path::new(&dir).join(f));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_with_the_demo_directory() {
    let gw = Gateway::start(&demo_config()).await.unwrap();
    let seen = browser_login_round_trip(&gw, "bob", "bob-demo").await;
    assert_eq!(seen["roles"], "researcher");
    assert_eq!(seen["cookie"]["httpOnly"], true);
    assert_eq!(seen["cookie"]["sameSite"], "Lax");
}
