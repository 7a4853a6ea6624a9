//! The `Redis` fixture: Debian's real `redis-server`, started in a temp dir on a free 127.0.0.1 port with AOF on
//! (so a restart of Redis keeps what it acknowledged), never the system service. Stopped by PID on drop; it can
//! be stopped and started again on the same port and data (outage and restart tests). A missing `redis-server`
//! is a loud failure with the install hint.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// The ACL rules docs/ha.md gives the Redis user of fedgate: the commands it sends, on its key prefix only.
pub const FEDGATE_COMMANDS: &[&str] =
    &["+get", "+set", "+getdel", "+mget", "+del", "+incrby", "+evalsha", "+eval", "+script|load", "+ping"];

/// A running (or stopped) redis-server.
pub struct Redis {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    secured: Option<Secured>,
}

/// TLS and an ACL user, as a production Redis is run.
struct Secured {
    tls_port: u16,
    pki: crate::tls::TestPki,
    user: String,
    password: String,
}

impl Redis {
    /// Starts redis-server on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        if !Path::new(REDIS_SERVER).exists() {
            bail!(
                "{REDIS_SERVER} not found: install it with `apt-get install redis-server` (or run scripts/setup); \
                 the store tests need a real Redis"
            );
        }
        let dir = tempfile::Builder::new().prefix("fedgate-redis.").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut redis = Self { dir, port, child: None, secured: None };
        redis.launch()?;
        Ok(redis)
    }

    /// Starts redis-server as a production one is run: TLS (a throwaway CA; the server certificate names
    /// 127.0.0.1) on a second free port, the `default` user switched off and one ACL user, `user` with `password`,
    /// allowed only [`FEDGATE_COMMANDS`] on keys under `fedgate:`. The plain port stays open for the fixture's own readiness check, which
    /// authenticates too.
    pub fn start_secured(user: &str, password: &str) -> anyhow::Result<Self> {
        if !Path::new(REDIS_SERVER).exists() {
            bail!("{REDIS_SERVER} not found: install it with `apt-get install redis-server` (or run scripts/setup)");
        }
        let dir = tempfile::Builder::new().prefix("fedgate-redis-tls.").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let tls_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let pki = crate::tls::TestPki::generate(dir.path(), "redis")?;
        let secured = Secured { tls_port, pki, user: user.to_string(), password: password.to_string() };
        let mut redis = Self { dir, port, child: None, secured: Some(secured) };
        redis.launch()?;
        Ok(redis)
    }

    /// `rediss://127.0.0.1:TLS_PORT/0` (TLS; no credentials in it), for [`Self::start_secured`].
    pub fn tls_url(&self) -> Option<String> {
        self.secured.as_ref().map(|s| format!("rediss://127.0.0.1:{}/0", s.tls_port))
    }

    /// The CA certificate that signs the TLS port's certificate, for [`Self::start_secured`].
    pub fn ca_file(&self) -> Option<&Path> {
        self.secured.as_ref().map(|s| s.pki.ca_pem.as_path())
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs `redis-cli` against this server (authenticated as the ACL user of [`Self::start_secured`]) and
    /// returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string(), "--no-auth-warning"]);
        if let Some(s) = &self.secured {
            cmd.args(["--user", &s.user, "--pass", &s.password]);
        }
        cmd.args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if let Some(s) = &self.secured {
            cmd.args(["--tls-port", &s.tls_port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(&s.pki.cert_pem)
                .arg("--tls-key-file")
                .arg(&s.pki.key_pem)
                .arg("--tls-ca-cert-file")
                .arg(&s.pki.ca_pem)
                .args(["--user", "default", "off"])
                .args(["--user", &s.user, "on", &format!(">{}", s.password), "~fedgate:*", "resetchannels", "-@all"])
                .args(FEDGATE_COMMANDS);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("redis-server on port {} did not answer PING within 10 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read as _, Write as _};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 64];
        let auth = self.secured.as_ref().map(|s| format!("AUTH {} {}\r\n", s.user, s.password)).unwrap_or_default();
        if s.write_all(format!("{auth}PING\r\n").as_bytes()).is_err() {
            return false;
        }
        // `+OK` for the AUTH, then `+PONG` (possibly in separate reads).
        let mut got = Vec::new();
        while !got.ends_with(b"+PONG\r\n") {
            match s.read(&mut buf) {
                Ok(n) if n > 0 && got.len() < 256 => got.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
        true
    }

    /// Stops redis-server (SIGKILL: what it acknowledged is in the AOF, fsynced on every write).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three masters (no replicas), each a real `redis-server` with `cluster-enabled yes` on a
/// free loopback port, joined by `redis-cli --cluster create`. Stopped by PID on drop.
pub struct RedisCluster {
    _dir: tempfile::TempDir,
    ports: Vec<u16>,
    children: Vec<Child>,
}

impl RedisCluster {
    /// Starts the three nodes and creates the cluster; returns once every node reports `cluster_state:ok`.
    pub fn start() -> anyhow::Result<Self> {
        if !Path::new(REDIS_SERVER).exists() {
            bail!("{REDIS_SERVER} not found: install it with `apt-get install redis-server` (or run scripts/setup)");
        }
        let dir = tempfile::Builder::new().prefix("fedgate-redis-cluster.").tempdir()?;
        let mut cluster = Self { _dir: dir, ports: Vec::new(), children: Vec::new() };
        for i in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let node_dir = cluster._dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir)?;
            let child = Command::new(REDIS_SERVER)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000", "--protected-mode", "no"])
                .arg("--cluster-config-file")
                .arg(node_dir.join("nodes.conf"))
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server --cluster-enabled yes")?;
            cluster.children.push(child);
            cluster.ports.push(port);
        }
        for port in &cluster.ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while cli(*port, &["PING"]).trim() != "PONG" {
                if Instant::now() > deadline {
                    bail!("cluster node on port {port} did not answer PING");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let nodes: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .context("running redis-cli --cluster create (apt-get install redis-tools)")?;
        if !out.status.success() {
            bail!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.ports.iter().all(|p| cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
            if Instant::now() > deadline {
                bail!("the cluster did not reach cluster_state:ok within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// `redis://127.0.0.1:PORT` of the first node (the client discovers the others).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// How many keys each node holds (to see that keys were spread over the slots).
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.ports.iter().map(|p| cli(*p, &["DBSIZE"]).trim().parse().unwrap_or(0)).collect()
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
