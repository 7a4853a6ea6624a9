//! Runs the Node.js clients in tests/node (a real Chromium via playwright-core; the openid-client relying party).
//! A missing node, npm package or browser is a loud failure with the install hint.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// tests/node.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// Runs `node tests/node/<script>` with `env`, bounded by `timeout_s`; returns stdout, or an error with stderr.
pub fn run(script: &str, env: &[(&str, &str)], timeout_s: u64) -> anyhow::Result<String> {
    let dir = dir();
    anyhow::ensure!(
        dir.join("node_modules").is_dir(),
        "{}/node_modules is missing: run scripts/setup (npm ci in tests/node)",
        dir.display()
    );
    let mut cmd = Command::new("timeout");
    cmd.arg(timeout_s.to_string()).arg("node").arg(script).current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().context("running node (is Node.js installed?)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(out.status.success(), "node {script} failed ({}):\n{stdout}\n{stderr}", out.status);
    Ok(stdout)
}

/// The Chromium the browser tests drive.
pub fn chromium() -> anyhow::Result<&'static str> {
    let path = "/usr/bin/chromium";
    anyhow::ensure!(Path::new(path).exists(), "{path} not found: apt-get install chromium (or run scripts/setup)");
    Ok(path)
}
