//! The `Gateway` fixture: fedgate running in-process on a free 127.0.0.1 port with a given configuration and a
//! hand-driven clock, plus a browser-like HTTP client (cookie jar, no automatic redirects).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use gateway::config::Config;
use gateway::domain::clock::ManualClock;

/// A running in-process gateway. Stopped on drop.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    /// The gateway's clock; advance it to test expiry without sleeping.
    pub clock: Arc<ManualClock>,
    /// The gateway's shared state (sessions, metrics, configuration).
    pub state: gateway::state::AppState,
    running: Option<gateway::Running>,
}

impl Gateway {
    /// Starts a gateway from a TOML configuration. `listen` and `public_url` are set to a free loopback port
    /// unless the TOML sets `public_url` itself.
    pub async fn start(toml: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a free loopback port")?;
        Self::start_on(listener, toml).await
    }

    /// [`Gateway::start`] on a listener bound beforehand (when another server must know the gateway's URL first,
    /// e.g. an upstream identity provider's registered redirect URI).
    pub async fn start_on(listener: tokio::net::TcpListener, toml: &str) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let mut config: Config = gateway::config::load_str(toml).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.server.listen = addr;
        if !toml.contains("[store]") {
            // Many in-process gateways run at once; the default embedded file (data/state) would be shared.
            config.store.kind = gateway::config::StoreKind::Memory;
        }
        if config.server.public_url.as_str() == "http://127.0.0.1:8080/" {
            config.server.public_url = format!("{base}/").parse()?;
        }
        let clock = Arc::new(ManualClock::new());
        let running = gateway::start_on(listener, config, clock.clone(), std::future::pending()).await?;
        let gw = Self { base, clock, state: running.state.clone(), running: Some(running) };
        gw.wait_ready().await?;
        Ok(gw)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = http();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(r) = client.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "gateway at {} did not answer /healthz", self.base);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        match self.running.take() {
            Some(r) => r.shutdown().await,
            None => Ok(()),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            // Dropping the handle aborts nothing by itself; signal stop and let the runtime finish it.
            drop(tokio::spawn(async move {
                let _ = r.shutdown().await;
            }));
        }
    }
}

/// A plain HTTP client (no proxy; aws-lc-rs for TLS).
pub fn http() -> reqwest::Client {
    gateway::install_crypto_provider();
    reqwest::Client::builder().no_proxy().build().unwrap_or_else(|_| reqwest::Client::new())
}

/// A browser-like client: keeps cookies, does not follow redirects (tests look at each hop).
pub fn browser() -> reqwest::Client {
    gateway::install_crypto_provider();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Reads the CSRF token from a login form's HTML.
pub fn csrf_from(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[i..].split('"').next()?.to_string())
}

/// The `fedgate` binary built next to the test binary (`target/<profile>/fedgate`). The README's test command
/// builds it first; a missing binary is a loud failure.
pub fn fedgate_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).context("test binary has no target dir")?;
    let bin = profile_dir.join("fedgate");
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it first with `cargo build -p gateway --bin fedgate`",
        bin.display()
    );
    Ok(bin)
}

/// The demo `[directory]` and `[roles]` used by tests that do not need LDAP (alice/alice-demo is an admin,
/// bob/bob-demo a researcher), taken from the shipped config.toml so the two never drift apart.
pub fn demo_config() -> String {
    let shipped = include_str!("../../config.toml");
    // The section header at a line start, not a mention of it in a comment.
    let start = shipped.find("\n[roles]\n").map_or(0, |i| i + 1);
    format!("[log]\nlevel = \"warn\"\n{}", &shipped[start..])
}

/// The `rd` target of a redirect to the login page (`Location: /login?rd=…`).
pub fn rd_of(response: &reqwest::Response) -> Option<String> {
    let loc = response.headers().get("location")?.to_str().ok()?;
    let url = url::Url::parse("http://gateway.invalid").ok()?.join(loc).ok()?;
    url.query_pairs().find(|(k, _)| k == "rd").map(|(_, v)| v.into_owned())
}

/// The `code` of an authorization response's `Location` (`…?code=…&state=…`), if it carries one.
pub fn code_of(response: &reqwest::Response) -> Option<String> {
    let loc = response.headers().get("location")?.to_str().ok()?;
    let url = url::Url::parse(loc).ok()?;
    url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned())
}

/// The real `fedgate` binary as its own process (for signals, logs and memory read from outside), on a free
/// loopback port with `[server]` filled in and `body` as the rest of its configuration. Killed on drop.
pub struct GatewayProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The child; stdout and stderr are piped when the process was started with `capture`.
    pub child: tokio::process::Child,
    /// What the process printed so far, once [`GatewayProcess::collect_output`] started collecting it.
    output: Option<Arc<std::sync::Mutex<String>>>,
    _dir: tempfile::TempDir,
}

/// How to start a [`GatewayProcess`] besides its configuration.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessOptions<'a> {
    /// Extra arguments to `fedgate serve`.
    pub args: &'a [&'a str],
    /// Extra environment.
    pub env: &'a [(&'a str, &'a str)],
    /// Pipe stdout and stderr (read them with [`GatewayProcess::wait_output`] or
    /// [`GatewayProcess::collect_output`]).
    pub capture: bool,
    /// Start under this open-file limit (`ulimit -n`, soft and hard).
    pub open_files: Option<u64>,
    /// Lines added to `[server]` (timeouts, limits).
    pub server: &'a str,
    /// Listen on this port instead of a free one (a restart on the same address).
    pub port: Option<u16>,
    /// `server.public_url` instead of the process's own address (replicas behind a load balancer).
    pub public_url: Option<&'a str>,
}

impl GatewayProcess {
    /// Starts `fedgate serve` with `extra_args`, extra environment, and (with `capture`) piped output; waits for
    /// `/readyz`.
    pub async fn start(body: &str, extra_args: &[&str], env: &[(&str, &str)], capture: bool) -> anyhow::Result<Self> {
        Self::start_with(body, ProcessOptions { args: extra_args, env, capture, ..Default::default() }).await
    }

    /// Starts `fedgate serve` as `options` say; waits for `/readyz`.
    pub async fn start_with(body: &str, options: ProcessOptions<'_>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = match options.port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let base = format!("http://127.0.0.1:{port}");
        let cfg = dir.path().join("fedgate.toml");
        let public_url = options.public_url.map_or_else(|| format!("{base}/"), str::to_string);
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{public_url}\"\n{}\n{body}",
                options.server
            ),
        )?;
        // E2E_GATEWAY_LOG_DIR=/some/dir keeps the output of uncaptured gateways there (one file per start).
        let log_dir = std::env::var_os("E2E_GATEWAY_LOG_DIR").map(std::path::PathBuf::from);
        let out = || match (&log_dir, options.capture) {
            (_, true) => std::process::Stdio::piped(),
            (Some(d), false) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(d.join(format!("fedgate-{port}.log")))
                .map_or_else(|_| std::process::Stdio::null(), std::process::Stdio::from),
            (None, false) => std::process::Stdio::null(),
        };
        let mut cmd = match options.open_files {
            // The shell lowers the limit, then becomes fedgate.
            Some(n) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(fedgate_bin()?);
                c
            }
            None => tokio::process::Command::new(fedgate_bin()?),
        };
        cmd.arg("serve").args(options.args).arg("--config").arg(&cfg).current_dir(dir.path());
        cmd.envs(options.env.iter().copied()).stdout(out()).stderr(out()).kill_on_drop(true);
        let mut child = cmd.spawn().context("starting fedgate")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while http().get(format!("{base}/readyz")).send().await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!("fedgate for {base} exited ({status}) before answering /readyz: its port taken?");
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "fedgate at {base} never answered /readyz");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(Self { base, child, output: None, _dir: dir })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
    }

    /// Starts reading stdout and stderr as the process writes them (so a chatty process never blocks on a full
    /// pipe); [`GatewayProcess::output_so_far`] shows what arrived.
    pub fn collect_output(&mut self) {
        use tokio::io::AsyncBufReadExt as _;
        let buffer = self.output.get_or_insert_with(Default::default).clone();
        fn pump(r: impl tokio::io::AsyncRead + Unpin + Send + 'static, buffer: Arc<std::sync::Mutex<String>>) {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut b) = buffer.lock() {
                        b.push_str(&line);
                        b.push('\n');
                    }
                }
            });
        }
        if let Some(s) = self.child.stdout.take() {
            pump(s, buffer.clone());
        }
        if let Some(s) = self.child.stderr.take() {
            pump(s, buffer);
        }
    }

    /// What the process printed since [`GatewayProcess::collect_output`].
    pub fn output_so_far(&self) -> String {
        self.output.as_ref().and_then(|b| b.lock().ok().map(|b| b.clone())).unwrap_or_default()
    }

    /// Ends the process with `signal` (`TERM`, `KILL`) and waits (bounded) for it to exit.
    pub async fn stop_with(mut self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().to_string();
        std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status()?;
        tokio::time::timeout(std::time::Duration::from_secs(15), self.child.wait()).await??;
        Ok(())
    }

    /// Waits (bounded) for the process to exit; returns whether it exited successfully and what it printed.
    pub async fn wait_output(mut self) -> anyhow::Result<(bool, String)> {
        use tokio::io::AsyncReadExt as _;
        let status = tokio::time::timeout(std::time::Duration::from_secs(15), self.child.wait()).await??;
        let mut out = self.output_so_far();
        if let Some(mut s) = self.child.stdout.take() {
            s.read_to_string(&mut out).await?;
        }
        if let Some(mut s) = self.child.stderr.take() {
            s.read_to_string(&mut out).await?;
        }
        Ok((status.success(), out))
    }
}

/// A field of `/proc/PID/status` in kB (`VmRSS:`, `VmHWM:`); 0 when unreadable.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A `client_credentials` access token from the gateway at `base`.
pub async fn client_credentials_token(
    base: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let body: serde_json::Value = http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await?
        .json()
        .await?;
    body["access_token"].as_str().map(str::to_string).context("no access_token in the token response")
}

/// Logs `user` (password `<user>-demo`, the demo directory) in at the gateway at `base` and returns the session
/// cookie as `name=value`, for requests made without a cookie jar (raw attacks, other hosts).
pub async fn session_cookie(base: &str, user: &str) -> anyhow::Result<String> {
    let c = browser();
    let html = c.get(format!("{base}/login")).send().await?.text().await?;
    let csrf = csrf_from(&html).context("login form has no csrf field")?;
    let password = format!("{user}-demo");
    let r = c
        .post(format!("{base}/login"))
        .form(&[("username", user), ("password", password.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await?;
    anyhow::ensure!(r.status() == reqwest::StatusCode::SEE_OTHER, "login of {user} answered {}", r.status());
    session_cookie_set_by(&r).context("no session cookie after login")
}

/// The `fedgate_session` cookie a response sets, as `name=value`.
pub fn session_cookie_set_by(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fedgate_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}
