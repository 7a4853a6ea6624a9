//! The `ScimServer` fixture: a real SCIM 2.0 server (`scim2-server` from PyPI, in memory) behind the small test
//! harness in `tests/scim_server.py` (bearer / OAuth client-credentials auth, switchable throttling and failures,
//! request counts). Started on a free 127.0.0.1 port, killed by PID on drop. A missing venv is a loud failure.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// How the server authenticates clients.
#[derive(Debug, Clone, Default)]
pub struct ScimServerOptions {
    /// Static bearer tokens accepted.
    pub tokens: Vec<String>,
    /// `(client_id, client_secret)` accepted at `/oauth/token`.
    pub client: Option<(String, String)>,
}

/// A running SCIM server.
pub struct ScimServer {
    child: Child,
    port: u16,
}

impl ScimServer {
    /// Starts the server.
    pub fn start(options: ScimServerOptions) -> anyhow::Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let py = root.join(".venv/bin/python");
        if !py.exists() {
            bail!("{} missing: run scripts/setup (python venv with scim2-server)", py.display());
        }
        let mut cmd = Command::new(py);
        cmd.arg(root.join("scim_server.py")).args(["--port", "0"]);
        for t in &options.tokens {
            cmd.args(["--token", t]);
        }
        if let Some((id, secret)) = &options.client {
            cmd.args(["--client", &format!("{id}:{secret}")]);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        // The server prints READY once it listens; a crash closes stdout and ends the read.
        BufReader::new(stdout).read_line(&mut line)?;
        let port = match line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()) {
            Some(p) => p,
            None => {
                let _ = child.kill();
                bail!("scim_server.py did not start (printed {line:?}); is scim2-server installed in tests/.venv?");
            }
        };
        Ok(Self { child, port })
    }

    /// The SCIM base URL (`/v2`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    /// The OAuth token endpoint.
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/oauth/token", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every user the server holds.
    pub async fn users(&self) -> anyhow::Result<Vec<Value>> {
        let url = format!("http://127.0.0.1:{}/_control/users", self.port);
        let v: Value = crate::gateway::http().get(url).send().await?.json().await?;
        Ok(v["Resources"].as_array().cloned().unwrap_or_default())
    }

    /// The user named `user_name`, if any.
    pub async fn user(&self, user_name: &str) -> anyhow::Result<Option<Value>> {
        Ok(self.users().await?.into_iter().find(|u| u["userName"] == user_name))
    }

    /// Changes the injected faults (`{"throttle": 2}`, `{"fail_writes_after": 2}`, `{"reset": true}`) and returns
    /// the counters.
    pub async fn control(&self, body: Value) -> anyhow::Result<Value> {
        let url = format!("http://127.0.0.1:{}/_control", self.port);
        Ok(crate::gateway::http().post(url).json(&body).send().await?.json().await?)
    }

    /// The counters: `requests` by method, `tokens_issued`, `throttled`, `failed`.
    pub async fn stats(&self) -> anyhow::Result<Value> {
        let url = format!("http://127.0.0.1:{}/_control", self.port);
        Ok(crate::gateway::http().get(url).send().await?.json().await?)
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}
