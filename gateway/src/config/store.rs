//! `[store]`: where runtime state lives (sessions, authorization codes, refresh-token families, sign-in requests
//! waiting for a login, brute-force counters). `embedded` (the default) keeps it in one crash-safe directory so a
//! single node survives restarts; `redis` shares it between replicas; `memory` keeps it in the process only.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigIssue;

/// The most `store.pool_size` may be set to.
pub const MAX_POOL_SIZE: usize = 64;
/// The longest `store.cache_ttl`: a logout on one replica must reach every replica within a second.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(1);

/// When the embedded store forces its journal to the disk (`store.fsync_interval`), like Redis's `appendfsync`.
///
/// Either way every write is in the operating system (the journal file's page cache) before it is answered, so a
/// killed or crashed fedgate (`kill -9`, OOM, panic) loses nothing acknowledged; the choice is what a power loss or
/// kernel crash may lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `"always"`: each write is fsynced before it is answered (concurrent writes share one fsync). Nothing
    /// acknowledged is lost to a power cut; logins per second are bounded by the disk's fsync rate.
    Always,
    /// A duration (`"1s"`, the default): the journal is fsynced this often, so a power cut or kernel crash loses
    /// at most the writes of the last interval.
    Every(Duration),
}

impl Default for Fsync {
    fn default() -> Self {
        Self::Every(Duration::from_secs(1))
    }
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Every(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

impl Serialize for Fsync {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fsync {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().eq_ignore_ascii_case("always") {
            return Ok(Self::Always);
        }
        humantime::parse_duration(text.trim()).map(Self::Every).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is neither \"always\" nor a duration ({e}): use e.g. fsync_interval = \"1s\", or \"always\" \
                 for an fsync before every answer"
            ))
        })
    }
}

/// Which backend holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One crash-safe database directory at `store.path` (fjall); one replica.
    #[default]
    Embedded,
    /// Redis or Valkey at `store.url`; any number of replicas.
    Redis,
    /// In the process only: a restart signs everyone out.
    Memory,
}

impl StoreKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Redis => "redis",
            Self::Memory => "memory",
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// `embedded`, `redis` or `memory`.
    pub kind: StoreKind,
    /// `embedded`: the database directory (created on first start).
    pub path: PathBuf,
    /// `embedded`: `"always"` (fsync before each answer) or how often the journal is fsynced (`"1s"`).
    pub fsync_interval: Fsync,
    /// How long a replica answers from its in-process cache before asking the store again (at most 1 s): the
    /// longest a logout elsewhere can go unnoticed here.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// `redis`: `redis://host:port/db` or `rediss://` (TLS, system roots or `ca_file`).
    pub url: String,
    /// `redis`: ACL user name (Redis 6+); default user when empty.
    pub username: String,
    /// `redis`: password; prefer `password_file`.
    pub password: fedgate_types::Secret,
    /// `redis`: a file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// `redis`: PEM CA certificates that sign the server's certificate (`rediss://` only).
    pub ca_file: Option<PathBuf>,
    /// `redis`: prepended to every key, so several deployments can share one database.
    pub key_prefix: String,
    /// `redis`: `url` is one node of a Redis Cluster (the others are discovered). Every key carries a hash tag,
    /// so each atomic operation touches one slot.
    pub cluster: bool,
    /// `redis` with Redis Sentinel: the sentinels' addresses (`redis://host:26379`, or `rediss://` for TLS with
    /// `ca_file`), instead of `url`. The master is asked of them on connecting, and again after a failover.
    pub sentinels: Vec<String>,
    /// `redis` with Redis Sentinel: the name the sentinels monitor the master under (`sentinel monitor NAME …`).
    pub sentinel_master: String,
    /// `redis` with Redis Sentinel: the sentinels' own ACL user (Redis 6.2+), if they have one.
    pub sentinel_username: String,
    /// `redis` with Redis Sentinel: the sentinels' own password (`requirepass` in sentinel.conf), if any; prefer
    /// `sentinel_password_file`. `username` and `password` are the master's.
    pub sentinel_password: fedgate_types::Secret,
    /// `redis` with Redis Sentinel: a file holding the sentinels' password (trailing newline ignored).
    pub sentinel_password_file: Option<PathBuf>,
    /// `redis`: how long connecting may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// `redis`: how long one command may take before the request fails with "session store unavailable".
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// `redis`: multiplexed connections used round-robin (default 1: commands sent concurrently on one connection
    /// reach Redis together, which costs Redis less per command than the same commands spread over several).
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Embedded,
            path: PathBuf::from("data/state"),
            fsync_interval: Fsync::default(),
            cache_ttl: Duration::from_millis(500),
            url: String::new(),
            username: String::new(),
            password: fedgate_types::Secret::default(),
            password_file: None,
            ca_file: None,
            key_prefix: "fedgate:".into(),
            cluster: false,
            sentinels: Vec::new(),
            sentinel_master: String::new(),
            sentinel_username: String::new(),
            sentinel_password: fedgate_types::Secret::default(),
            sentinel_password_file: None,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
            pool_size: 1,
        }
    }
}

impl StoreConfig {
    /// Every problem with `[store]`.
    pub fn validate(&self, out: &mut Vec<ConfigIssue>) {
        if self.cache_ttl > MAX_CACHE_TTL {
            out.push(ConfigIssue::new(
                "store.cache_ttl",
                Some(humantime::format_duration(self.cache_ttl).to_string()),
                "longer than 1s: a logout on another replica would go unnoticed here for that long",
                "use at most \"1s\" (the default), or \"0s\" to ask the store on every request",
            ));
        }
        match self.kind {
            StoreKind::Embedded if self.path.as_os_str().is_empty() => out.push(ConfigIssue::new(
                "store.path",
                Some(String::new()),
                "the embedded store needs a file",
                "e.g. path = \"data/state\" (created on first start), or kind = \"memory\"",
            )),
            StoreKind::Embedded if self.fsync_interval == Fsync::Every(Duration::ZERO) => out.push(ConfigIssue::new(
                "store.fsync_interval",
                Some("0s".into()),
                "a zero interval would fsync in a loop",
                "use \"always\" for an fsync before every answer, or an interval such as \"1s\" (the default)",
            )),
            StoreKind::Redis => self.validate_redis(out),
            _ => {}
        }
    }

    /// Whether the master is found through Redis Sentinel (`store.sentinels`).
    pub fn uses_sentinels(&self) -> bool {
        !self.sentinels.is_empty()
    }

    /// `rediss` or `redis`: the scheme of `url`, or of the sentinels' addresses.
    pub fn redis_scheme(&self) -> Option<&str> {
        let url = if self.uses_sentinels() { self.sentinels.first() } else { Some(&self.url) };
        url.and_then(|u| u.split_once("://")).map(|(s, _)| s)
    }

    fn validate_sentinels(&self, out: &mut Vec<ConfigIssue>) {
        if self.sentinel_master.is_empty() {
            out.push(ConfigIssue::new(
                "store.sentinel_master",
                Some(String::new()),
                "store.sentinels is set, but not the name the sentinels know the master by",
                "e.g. sentinel_master = \"mymaster\" (the name in `sentinel monitor mymaster …`)",
            ));
        }
        if !self.url.is_empty() {
            out.push(ConfigIssue::new(
                "store.url",
                Some(redact_url(&self.url)),
                "with store.sentinels the master is found through them; url would name a fixed server",
                "remove url (the sentinels name the master), or remove sentinels to use this one server",
            ));
        }
        if self.cluster {
            out.push(ConfigIssue::new(
                "store.cluster",
                Some("true".into()),
                "a Redis Cluster fails over by itself and is not watched by sentinels",
                "use either cluster = true with url, or sentinels with sentinel_master",
            ));
        }
        let first = self.redis_scheme();
        for s in &self.sentinels {
            let scheme = s.split_once("://").map(|(s, _)| s);
            let problem = if !matches!(scheme, Some("redis" | "rediss")) || s.len() <= "redis://".len() {
                Some("not a redis:// or rediss:// address")
            } else if s.contains('@') {
                Some("credentials in the address would show in logs: use store.sentinel_password_file")
            } else if scheme != first {
                Some("every sentinel must be reached the same way (all redis:// or all rediss://)")
            } else {
                None
            };
            if let Some(problem) = problem {
                out.push(ConfigIssue::new(
                    "store.sentinels",
                    Some(redact_url(s)),
                    problem,
                    "e.g. sentinels = [\"redis://10.0.0.1:26379\", \"redis://10.0.0.2:26379\", \"redis://10.0.0.3:26379\"]",
                ));
            }
        }
        if !self.sentinel_password.expose().is_empty() && self.sentinel_password_file.is_some() {
            out.push(ConfigIssue::new(
                "store.sentinel_password",
                None,
                "both sentinel_password and sentinel_password_file are set",
                "keep one; sentinel_password_file is better (it stays out of the config file)",
            ));
        }
    }

    fn validate_redis(&self, out: &mut Vec<ConfigIssue>) {
        let scheme = self.redis_scheme();
        if self.uses_sentinels() || !self.sentinel_master.is_empty() {
            if self.sentinels.is_empty() {
                out.push(ConfigIssue::new(
                    "store.sentinels",
                    Some("[]".into()),
                    "store.sentinel_master is set, but no sentinel to ask for it",
                    "e.g. sentinels = [\"redis://10.0.0.1:26379\", \"redis://10.0.0.2:26379\"]",
                ));
            }
            self.validate_sentinels(out);
        } else if !matches!(scheme, Some("redis" | "rediss")) || self.url.len() <= "redis://".len() {
            out.push(ConfigIssue::new(
                "store.url",
                Some(redact_url(&self.url)),
                "kind = \"redis\" needs a redis:// or rediss:// URL",
                "e.g. url = \"redis://127.0.0.1:6379/0\" (Valkey too), \"rediss://redis.internal:6380\" for TLS, or sentinels = [\"redis://10.0.0.1:26379\", …] with sentinel_master",
            ));
        } else if self.url.contains('@') {
            out.push(ConfigIssue::new(
                "store.url",
                Some(redact_url(&self.url)),
                "credentials in the URL would show in logs and process listings",
                "move them to store.username and store.password_file",
            ));
        }
        if self.ca_file.is_some() && scheme != Some("rediss") {
            out.push(ConfigIssue::new(
                "store.ca_file",
                self.ca_file.as_ref().map(|p| p.display().to_string()),
                "a CA file only applies to TLS connections",
                "use a rediss:// URL (or rediss:// sentinels), or remove ca_file",
            ));
        }
        if !self.password.expose().is_empty() && self.password_file.is_some() {
            out.push(ConfigIssue::new(
                "store.password",
                None,
                "both password and password_file are set",
                "keep one; password_file is better (it stays out of the config file)",
            ));
        }
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            out.push(ConfigIssue::new(
                "store.pool_size",
                Some(self.pool_size.to_string()),
                format!("must be between 1 and {MAX_POOL_SIZE}"),
                "e.g. pool_size = 1, the default (each connection multiplexes many requests)",
            ));
        }
        for (key, d) in
            [("store.connect_timeout", self.connect_timeout), ("store.command_timeout", self.command_timeout)]
        {
            if d.is_zero() {
                out.push(ConfigIssue::new(
                    key,
                    Some("0s".into()),
                    "a zero timeout fails every command",
                    "e.g. connect_timeout = \"2s\", command_timeout = \"1s\"",
                ));
            }
        }
    }
}

/// A URL with anything between `://` and `@` removed, for error messages.
fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://<redacted>@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}
