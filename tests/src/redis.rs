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
        Self::start_nodes(3, 0)
    }

    /// Three masters, each with one replica (six nodes, AOF on), for failover tests.
    pub fn start_with_replicas() -> anyhow::Result<Self> {
        Self::start_nodes(6, 1)
    }

    fn start_nodes(count: usize, replicas: usize) -> anyhow::Result<Self> {
        if !Path::new(REDIS_SERVER).exists() {
            bail!("{REDIS_SERVER} not found: install it with `apt-get install redis-server` (or run scripts/setup)");
        }
        let dir = tempfile::Builder::new().prefix("fedgate-redis-cluster.").tempdir()?;
        let mut cluster = Self { _dir: dir, ports: Vec::new(), children: Vec::new() };
        let aof = if replicas > 0 { "yes" } else { "no" };
        for i in 0..count {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let node_dir = cluster._dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir)?;
            let child = Command::new(REDIS_SERVER)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", aof])
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
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
        let synced = |p: &u16| cli(*p, &["INFO", "replication"]).contains("master_link_status:up");
        let want = count - count / (replicas + 1);
        wait_for(Duration::from_secs(20), "the replicas to sync", || {
            cluster.ports.iter().filter(|p| synced(p)).count() == want
        })?;
        Ok(cluster)
    }

    /// `redis://127.0.0.1:PORT` of the first node (the client discovers the others).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// The ports of the nodes that are masters now (`CLUSTER NODES` as the first live node sees it).
    pub fn master_ports(&self) -> Vec<u16> {
        for port in &self.ports {
            let nodes = cli(*port, &["CLUSTER", "NODES"]);
            if nodes.is_empty() {
                continue;
            }
            return nodes
                .lines()
                .filter(|l| l.contains("master") && !l.contains("fail"))
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter_map(|addr| addr.split('@').next()?.rsplit(':').next()?.parse().ok())
                .collect();
        }
        Vec::new()
    }

    /// `redis-cli` against the node on `port`.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// Kills (SIGKILL) the node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(i) = self.ports.iter().position(|p| *p == port) {
            let _ = self.children[i].kill();
            let _ = self.children[i].wait();
        }
    }

    /// Whether every live node reports `cluster_state:ok`.
    pub fn ok(&self, skip: &[u16]) -> bool {
        self.ports
            .iter()
            .filter(|p| !skip.contains(p))
            .all(|p| cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    }

    /// How many keys each node holds (to see that keys were spread over the slots).
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.ports.iter().map(|p| cli(*p, &["DBSIZE"]).trim().parse().unwrap_or(0)).collect()
    }
}

/// Redis as Sentinel runs it: a master (AOF on), one replica of it, and three sentinels (quorum 2) watching the
/// master under [`RedisSentinel::MASTER`], each a real `redis-server` on a free loopback port (`--sentinel` for
/// the sentinels), stopped by PID on drop. The master can be killed (a failover follows) and started again on its
/// old port and data (it comes back as a replica of the new master, as the sentinels reconfigure it).
pub struct RedisSentinel {
    dir: tempfile::TempDir,
    /// The master's and the replica's ports, in the order they were started.
    ports: [u16; 2],
    data: [Option<Child>; 2],
    sentinel_ports: Vec<u16>,
    sentinels: Vec<Child>,
}

impl RedisSentinel {
    /// The name the sentinels monitor the master under.
    pub const MASTER: &'static str = "fedgate-master";

    /// Starts the master, its replica (returns once it is in sync) and the three sentinels (returns once each
    /// names the master and knows the replica).
    pub fn start() -> anyhow::Result<Self> {
        if !Path::new(REDIS_SERVER).exists() {
            bail!("{REDIS_SERVER} not found: install it with `apt-get install redis-server` (or run scripts/setup)");
        }
        let dir = tempfile::Builder::new().prefix("fedgate-redis-sentinel.").tempdir()?;
        let free = || -> anyhow::Result<u16> { Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()) };
        let ports = [free()?, free()?];
        let mut set = Self { dir, ports, data: [None, None], sentinel_ports: Vec::new(), sentinels: Vec::new() };
        set.launch_data(0)?;
        set.launch_data(1)?;
        cli(ports[1], &["REPLICAOF", "127.0.0.1", &ports[0].to_string()]);
        wait_for(Duration::from_secs(20), "the replica to sync with the master", || {
            cli(ports[1], &["INFO", "replication"]).contains("master_link_status:up")
        })?;
        for i in 0..3 {
            let port = free()?;
            let conf = set.dir.path().join(format!("sentinel{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
                     sentinel monitor {m} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {m} 1000\n\
                     sentinel failover-timeout {m} 5000\n\
                     sentinel parallel-syncs {m} 1\n",
                    dir = set.dir.path().display(),
                    m = Self::MASTER,
                    master = ports[0],
                ),
            )?;
            let child = Command::new(REDIS_SERVER)
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server --sentinel")?;
            set.sentinels.push(child);
            set.sentinel_ports.push(port);
        }
        for port in set.sentinel_ports.clone() {
            wait_for(Duration::from_secs(20), "a sentinel to see the master and its replica", || {
                let master = cli(port, &["SENTINEL", "MASTER", Self::MASTER]);
                master.contains("num-slaves") && cli(port, &["SENTINEL", "REPLICAS", Self::MASTER]).contains("slave")
            })?;
        }
        Ok(set)
    }

    fn launch_data(&mut self, i: usize) -> anyhow::Result<()> {
        let data_dir = self.dir.path().join(format!("data{i}"));
        std::fs::create_dir_all(&data_dir)?;
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.ports[i].to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.data[i] = Some(child);
        let port = self.ports[i];
        wait_for(Duration::from_secs(10), "redis-server to answer PING", || cli(port, &["PING"]).trim() == "PONG")
    }

    /// `sentinels = [...]` for `[store]`: the three sentinels' `redis://` addresses.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinel_ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect()
    }

    /// The port the sentinels name as the master now (the first sentinel's answer).
    pub fn master_port(&self) -> Option<u16> {
        let out = cli(self.sentinel_ports[0], &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER]);
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }

    /// The port of the data node started first (the master until a failover).
    pub fn first_port(&self) -> u16 {
        self.ports[0]
    }

    /// The port of the data node started second (the replica until a failover).
    pub fn second_port(&self) -> u16 {
        self.ports[1]
    }

    /// `redis-cli` against a data node.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// Kills (SIGKILL) the data node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(i) = self.ports.iter().position(|p| *p == port)
            && let Some(mut c) = self.data[i].take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the data node on `port` again, on its old data.
    pub fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        let Some(i) = self.ports.iter().position(|p| *p == port) else { bail!("no data node on port {port}") };
        self.kill(port);
        self.launch_data(i)
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for c in self.data.iter_mut().flatten().chain(self.sentinels.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            bail!("waited {limit:?} for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
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
