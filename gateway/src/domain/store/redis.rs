//! [`RedisKv`]: the store shared by replicas, on Redis or Valkey (same protocol), through the `redis` crate's
//! tokio [`ConnectionManager`] (a multiplexed connection that reconnects by itself; `pool_size` of them, used
//! round-robin).
//!
//! Connections are made on first use, not at start-up: a Redis that is down when fedgate starts is reported by
//! `/readyz`, and everything recovers when it comes back, without a restart. Every command has a deadline
//! (`command_timeout`). Keys are `key_prefix` + `{key}`: the braces are a Redis Cluster hash tag, so each
//! logical key maps to one slot, and the single-key scripts below stay valid on a cluster.
//!
//! Single commands sent while others are on their way leave together in one pipeline ([`batch`]): Redis's CPU per
//! command falls with the commands it reads at once (one event-loop pass, one read, one AOF write for all of them),
//! which is what a busy gateway's logins pay for on a shared machine. A command sent when nothing else is on its way
//! goes at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo as _, Script};
use tokio::sync::OnceCell;

use super::{KvStore, OpenError, Result, StoreError, StoreFuture};
use crate::config::StoreConfig;

/// Compare-and-set: `ARGV[1]` is `1` when a value is expected (`ARGV[2]`), `0` when the key must be absent.
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

/// Increment, giving the counter its time to live when it is created (the first increment). Each run writes
/// once (a `SET … NX PX` or an `INCRBY`), so Redis logs it to the AOF as that one command, never as a
/// `MULTI`/`EXEC` (see [`RedisKv::put_many`] for why that matters).
const INCR: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return tonumber(ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// The Redis store.
pub struct RedisKv {
    /// `store.cluster`: a Redis Cluster client and its one (multiplexed, slot-routing) connection.
    cluster: Option<(redis::cluster::ClusterClient, OnceCell<ClusterConnection>)>,
    pool: Arc<Pool>,
    prefix: String,
    command_timeout: Duration,
    cas: Script,
    incr: Script,
    /// Single commands on their way to the next pipeline ([`RedisKv::query`]); the batching task starts on first use.
    batch: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Queued>>,
    /// Single commands sent and not answered yet.
    in_flight: AtomicUsize,
}

/// Where the pool connects: one server, or whichever master the sentinels name at the time.
enum Source {
    Fixed(redis::Client),
    Sentinel {
        client: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
        /// How long asking the sentinels may take (`connect_timeout`).
        timeout: Duration,
    },
}

/// One pooled connection, replaced after a failover (see [`Pool::failed`]).
#[derive(Default)]
struct Slot {
    current: std::sync::RwLock<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<()>,
}

/// `pool_size` connections to one server (or to the sentinels' master), used round-robin, each connected on first use.
struct Pool {
    source: Source,
    manager_config: ConnectionManagerConfig,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Pool {
    /// The next connection and its slot, connecting it if this is its first use (or the first after a failed
    /// connect, or after [`Pool::failed`] dropped it).
    async fn conn(&self) -> redis::RedisResult<(usize, ConnectionManager)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len().max(1);
        let Some(slot) = self.slots.get(i) else {
            return Err(redis::RedisError::from((redis::ErrorKind::Client, "no connection configured")));
        };
        let current = || slot.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(c) = current() {
            return Ok((i, c));
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(c) = current() {
            return Ok((i, c));
        }
        let client = match &self.source {
            Source::Fixed(client) => client.clone(),
            Source::Sentinel { client, timeout } => {
                let asked = async { client.lock().await.async_get_client().await };
                tokio::time::timeout(*timeout, asked).await.map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "no sentinel named the master in time"))
                })??
            }
        };
        let manager = ConnectionManager::new_with_config(client, self.manager_config.clone()).await?;
        *slot.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(manager.clone());
        Ok((i, manager))
    }

    /// After a command on `slot` failed. A fixed server's connection reconnects by itself and is kept. With
    /// sentinels, a refused or broken connection, a timeout or a `READONLY` answer may mean that the master moved
    /// (a failover, or the old master back as a replica): the connection is dropped, so the next command asks the
    /// sentinels again. Whether the command may be sent again is the caller's decision ([`may_resend`]).
    fn failed(&self, slot: usize, failure: Failure<'_>) {
        if !self.sentinels() {
            return;
        }
        let moved = match failure {
            Failure::Timeout | Failure::ReadOnly => true,
            Failure::Error(e) => {
                e.is_connection_refusal()
                    || e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || read_only(e)
            }
        };
        if moved && let Some(slot) = self.slots.get(slot) {
            *slot.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }

    fn sentinels(&self) -> bool {
        matches!(self.source, Source::Sentinel { .. })
    }
}

/// How a command failed, for [`Pool::failed`].
#[derive(Clone, Copy)]
enum Failure<'a> {
    Error(&'a redis::RedisError),
    Timeout,
    /// A reply in a pipeline was a replica's `READONLY`.
    ReadOnly,
}

/// Whether Redis refused `e`'s command because it is a replica (not executed).
fn read_only(e: &redis::RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// Whether a command that failed with `e` certainly did not run, so it may be sent again once: the connection was
/// refused (nothing sent), or with sentinels, a replica refused it as read-only (a master moved).
fn may_resend(pool: &Pool, e: &redis::RedisError) -> bool {
    e.is_connection_refusal() || (pool.sentinels() && read_only(e))
}

/// A password from its `_file` key (trailing newline ignored) when set, else from the plain key.
fn secret(
    value: &fedgate_types::Secret,
    file: Option<&std::path::Path>,
    file_key: &'static str,
) -> Result<String, OpenError> {
    let Some(path) = file else { return Ok(value.expose().to_string()) };
    std::fs::read_to_string(path).map(|s| s.trim_end_matches(['\r', '\n']).to_string()).map_err(|e| OpenError::Redis {
        key: file_key,
        problem: format!("{} cannot be read: check the path and permissions", path.display()),
        source: Some(e.into()),
    })
}

/// The sentinels of `[store]`, asked for `sentinel_master`; the master is reached with `master` (its user and
/// password) over TLS when the sentinels are (`rediss://`, `root_cert` from `ca_file`).
fn sentinel_client(
    cfg: &StoreConfig,
    master: &redis::RedisConnectionInfo,
    root_cert: Option<&[u8]>,
) -> Result<redis::sentinel::SentinelClient, OpenError> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let bad =
        |key: &'static str, problem: String, source: Option<super::BoxError>| OpenError::Redis { key, problem, source };
    let mut addresses = Vec::with_capacity(cfg.sentinels.len());
    for url in &cfg.sentinels {
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| bad("store.sentinels", format!("{url} is not a Redis address"), Some(e.into())))?;
        addresses.push(info.addr().clone());
    }
    let tls = cfg.redis_scheme() == Some("rediss");
    let mut builder = SentinelClientBuilder::new(addresses, &cfg.sentinel_master, SentinelServerType::Master)
        .map_err(|e| bad("store.sentinels", "cannot be used".into(), Some(e.into())))?;
    if let Some(user) = master.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = master.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    let sentinel_password =
        secret(&cfg.sentinel_password, cfg.sentinel_password_file.as_deref(), "store.sentinel_password_file")?;
    if !sentinel_password.is_empty() {
        builder = builder.set_client_to_sentinel_password(sentinel_password);
    }
    if !cfg.sentinel_username.is_empty() {
        builder = builder.set_client_to_sentinel_username(&cfg.sentinel_username);
    }
    if tls {
        builder = builder
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        if let Some(root_cert) = root_cert {
            let certs = || redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert.to_vec()) };
            builder = builder.set_client_to_redis_certificates(certs()).set_client_to_sentinel_certificates(certs());
        }
    }
    builder.build().map_err(|e| bad("store.sentinels", "cannot be used".into(), Some(e.into())))
}

/// A command waiting for its pipeline, and where its reply goes.
type Queued = (redis::Cmd, tokio::sync::oneshot::Sender<redis::RedisResult<redis::Value>>);

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv").field("pool", &self.pool.slots.len()).field("prefix", &self.prefix).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?} (store.command_timeout)")]
struct Timeout(Duration);

#[derive(Debug, thiserror::Error)]
#[error("the pipeline carrying the command ended without its answer")]
struct Unanswered;

fn err(e: impl Into<super::BoxError>) -> StoreError {
    StoreError::unavailable("redis", e)
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisKv {
    /// Prepares the client from `[store]` (reads the password and CA files; connects on first use).
    pub fn new(cfg: &StoreConfig) -> Result<Self, OpenError> {
        let bad = |key: &'static str, problem: String, source: Option<super::BoxError>| OpenError::Redis {
            key,
            problem,
            source,
        };
        // With sentinels, the first sentinel's address stands in for the master's (found on connecting): the
        // settings below are then the master's credentials.
        let (url_key, url) = match cfg.sentinels.first() {
            Some(sentinel) => ("store.sentinels", sentinel.as_str()),
            None => ("store.url", cfg.url.as_str()),
        };
        let info = url.into_connection_info().map_err(|e| {
            bad(url_key, "not a Redis URL: use redis://host:port/db or rediss://".into(), Some(e.into()))
        })?;
        let mut settings = info.redis_settings().clone();
        if !cfg.username.is_empty() {
            settings = settings.set_username(&cfg.username);
        }
        let password = secret(&cfg.password, cfg.password_file.as_deref(), "store.password_file")?;
        if !password.is_empty() {
            settings = settings.set_password(password);
        }
        let info = info.set_redis_settings(settings.clone());
        let root_cert = match &cfg.ca_file {
            Some(ca) => Some(std::fs::read(ca).map_err(|e| {
                bad(
                    "store.ca_file",
                    format!("{} cannot be read: check the path and permissions", ca.display()),
                    Some(e.into()),
                )
            })?),
            None => None,
        };
        let cluster = if cfg.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(vec![info.clone()])
                .connection_timeout(cfg.connect_timeout)
                .response_timeout(cfg.command_timeout)
                .retries(1);
            if let Some(root_cert) = &root_cert {
                builder =
                    builder.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert.clone()) });
            }
            let client = builder
                .build()
                .map_err(|e| bad("store.url", "cannot be used for a Redis Cluster".into(), Some(e.into())))?;
            Some((client, OnceCell::new()))
        } else {
            None
        };
        let client = match &root_cert {
            Some(root_cert) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert.clone()) },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| bad(url_key, "cannot be used".into(), Some(e.into())))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let source = if cfg.uses_sentinels() {
            Source::Sentinel {
                client: tokio::sync::Mutex::new(sentinel_client(cfg, &settings, root_cert.as_deref())?),
                timeout: cfg.connect_timeout,
            }
        } else {
            Source::Fixed(client)
        };
        let pool = Pool {
            source,
            manager_config,
            slots: (0..cfg.pool_size.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        };
        Ok(Self {
            cluster,
            pool: Arc::new(pool),
            prefix: cfg.key_prefix.clone(),
            command_timeout: cfg.command_timeout,
            cas: Script::new(CAS),
            incr: Script::new(INCR),
            batch: std::sync::OnceLock::new(),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{{{key}}}", self.prefix)
    }

    /// A connection from the pool (or the cluster connection), connecting it if this is its first use (or the
    /// first after a failed connect).
    async fn conn(&self) -> Result<(Option<usize>, Conn)> {
        if let Some((client, cell)) = &self.cluster {
            let conn = cell.get_or_try_init(|| client.get_async_connection()).await.map_err(err)?;
            return Ok((None, Conn::Cluster(conn.clone())));
        }
        let (slot, conn) = self.pool.conn().await.map_err(err)?;
        Ok((Some(slot), Conn::Single(conn)))
    }

    /// Runs one command (or script) against a pooled connection within `command_timeout`.
    ///
    /// A connection whose last reconnect failed (Redis was down) answers the next command with that failure
    /// without sending it, and only then starts reconnecting; that command is sent again once, on the new
    /// connection, so the first request after Redis returns does not fail. With sentinels, so is a command a
    /// replica refused as read-only (the master moved: the connection is replaced, [`Pool::failed`]). Nothing else
    /// is retried: a command that may have reached Redis (a take, an increment) must not run twice.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.command_timeout;
        let late = || err(Timeout(self.command_timeout));
        let (slot, conn) = tokio::time::timeout_at(deadline, self.conn()).await.map_err(|_| late())??;
        let failed = |slot: Option<usize>, failure| {
            if let Some(slot) = slot {
                self.pool.failed(slot, failure);
            }
        };
        let first = match tokio::time::timeout_at(deadline, f(conn)).await {
            Err(_) => {
                failed(slot, Failure::Timeout);
                return Err(late());
            }
            Ok(reply) => reply,
        };
        let e = match first {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        failed(slot, Failure::Error(&e));
        if !may_resend(&self.pool, &e) {
            return Err(err(e));
        }
        let (slot, conn) = tokio::time::timeout_at(deadline, self.conn()).await.map_err(|_| late())??;
        match tokio::time::timeout_at(deadline, f(conn)).await {
            Err(_) => {
                failed(slot, Failure::Timeout);
                Err(late())
            }
            Ok(Err(e)) => {
                failed(slot, Failure::Error(&e));
                Err(err(e))
            }
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Runs one command and reads its reply as `T`. On one server, as in Nagle's algorithm, a command goes at once
    /// when no other is on its way, and otherwise waits to leave in one pipeline with the others sent meanwhile
    /// (see [`batch`]); on a cluster each goes on its own ([`RedisKv::run`]).
    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T> {
        let counted = InFlight::count(&self.in_flight);
        if self.cluster.is_some() || counted.alone() {
            return self
                .run(|mut c| {
                    let cmd = &cmd;
                    async move { cmd.query_async(&mut c).await }
                })
                .await;
        }
        let queue = self.batch.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(batch(Arc::clone(&self.pool), rx));
            tx
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        queue.send((cmd, tx)).map_err(|_| err(Unanswered))?;
        let deadline = self.command_timeout;
        let value = match tokio::time::timeout(deadline, rx).await {
            Err(_) => return Err(err(Timeout(deadline))),
            Ok(Err(_)) => return Err(err(Unanswered)),
            Ok(Ok(reply)) => reply.map_err(err)?,
        };
        match value {
            redis::Value::ServerError(e) => Err(err(redis::RedisError::from(e))),
            v => redis::from_redis_value(v).map_err(|e| err(redis::RedisError::from(e))),
        }
    }
}

/// One command counted in [`RedisKv::in_flight`] until it is answered (or given up on).
struct InFlight<'a> {
    count: &'a AtomicUsize,
    before: usize,
}

impl<'a> InFlight<'a> {
    fn count(count: &'a AtomicUsize) -> Self {
        Self { count, before: count.fetch_add(1, Ordering::AcqRel) }
    }

    /// Whether no other command was on its way when this one was counted.
    fn alone(&self) -> bool {
        self.before == 0
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The batching task: takes the commands queued since it last ran, lets every task that is ready run first (so
/// that those about to send a command queue it too), then sends them all as one pipeline: one write for the
/// gateway, one read and one AOF write for Redis, where commands sent one by one each cost a pass of Redis's
/// event loop. The replies are handed out in the background, so the next batch does not wait for this one's.
async fn batch(pool: Arc<Pool>, mut queue: tokio::sync::mpsc::UnboundedReceiver<Queued>) {
    while let Some(first) = queue.recv().await {
        tokio::task::yield_now().await;
        let mut waiting = vec![first];
        while let Ok(more) = queue.try_recv() {
            waiting.push(more);
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut replies = Vec::with_capacity(waiting.len());
        for (cmd, reply) in waiting {
            pipe.add_command(cmd);
            replies.push(reply);
        }
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            let mut used = None;
            let sent = async {
                let (slot, mut c) = pool.conn().await?;
                used = Some(slot);
                match pipe.query_async::<Vec<redis::Value>>(&mut c).await {
                    // A connection whose reconnect failed answers without sending: send once more (RedisKv::run).
                    Err(e) if may_resend(&pool, &e) => {
                        pool.failed(slot, Failure::Error(&e));
                        let (slot, mut c) = pool.conn().await?;
                        used = Some(slot);
                        pipe.query_async::<Vec<redis::Value>>(&mut c).await
                    }
                    other => other,
                }
            };
            match sent.await {
                Ok(values) => {
                    if let (Some(slot), true) = (used, values.iter().any(refused_as_replica)) {
                        pool.failed(slot, Failure::ReadOnly);
                    }
                    for (reply, value) in replies.into_iter().zip(values) {
                        let _ = reply.send(Ok(value));
                    }
                }
                Err(e) => {
                    if let Some(slot) = used {
                        pool.failed(slot, Failure::Error(&e));
                    }
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// Whether a pipeline's reply is a replica's refusal to write (`READONLY`).
fn refused_as_replica(value: &redis::Value) -> bool {
    matches!(value, redis::Value::ServerError(e) if e.code() == "READONLY")
}

/// One Redis server (through the reconnecting manager) or a Redis Cluster (slot routing by the keys' hash tags).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl KvStore for RedisKv {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<()>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl));
        Box::pin(async move { self.query(cmd).await })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        Box::pin(async move { self.query(cmd).await })
    }

    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        // GETDEL (Redis 6.2+, Valkey): atomic on the server, so of all replicas exactly one gets the value.
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(self.key(key));
        Box::pin(async move { self.query(cmd).await })
    }

    fn put_if_absent<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<bool>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("NX").arg("PX").arg(millis(ttl));
        Box::pin(async move {
            let set: Option<String> = self.query(cmd).await?;
            Ok(set.is_some())
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<bool>> {
        let mut call = self.cas.key(self.key(key));
        call.arg(u8::from(expected.is_some())).arg(expected.unwrap_or_default()).arg(new).arg(millis(ttl));
        Box::pin(async move {
            let done: i64 = self
                .run(|mut c| {
                    let call = &call;
                    async move { call.invoke_async(&mut c).await }
                })
                .await?;
            Ok(done == 1)
        })
    }

    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<()>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        Box::pin(async move { self.query(cmd).await })
    }

    fn increment<'a>(&'a self, key: &'a str, by: u64, ttl: Duration) -> StoreFuture<'a, Result<u64>> {
        let mut call = self.incr.key(self.key(key));
        call.arg(by).arg(millis(ttl));
        Box::pin(async move {
            self.run(|mut c| {
                let call = &call;
                async move { call.invoke_async(&mut c).await }
            })
            .await
        })
    }

    fn check(&self) -> StoreFuture<'_, Result<()>> {
        let cmd = redis::cmd("PING");
        Box::pin(async move { self.query(cmd).await })
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        // One MGET on one server. On a cluster every key has its own hash tag (slot), and a multi-key command or a
        // pipeline across slots is refused (CROSSSLOT), so the reads are sent concurrently instead (still one wait).
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            if self.cluster.is_some() {
                return futures_util::future::try_join_all(keys.iter().map(|k| self.get(k))).await;
            }
            let mut cmd = redis::cmd("MGET");
            cmd.arg(keys.iter().map(|k| self.key(k)).collect::<Vec<_>>());
            self.query(cmd).await
        })
    }

    fn put_many<'a>(&'a self, entries: Vec<(String, Vec<u8>, Duration)>) -> StoreFuture<'a, Result<()>> {
        // One pipeline on one connection: one round trip, executed in order (a reader may see an earlier entry
        // without a later one, never the reverse). Deliberately not MULTI/EXEC: Redis (7.0.15 here, Debian 12) and
        // Valkey without the fixes of redis/redis#14541 and valkey-io/valkey#3983 drop every transaction when they
        // replay their AOF with the `default` user switched off (the usual ACL set-up), so a Redis restart lost the
        // token families and refresh tokens written here while keeping the sessions. Multi-write Lua scripts
        // are logged as transactions too, hence the single-write scripts above. On a cluster the keys' hash tags
        // put them in different slots (a pipeline across slots is refused): written one after the other, in order.
        Box::pin(async move {
            if entries.len() <= 1 || self.cluster.is_some() {
                for (key, value, ttl) in entries {
                    self.put(&key, value, ttl).await?;
                }
                return Ok(());
            }
            let mut pipe = redis::pipe();
            for (key, value, ttl) in entries {
                pipe.cmd("SET").arg(self.key(&key)).arg(value).arg("PX").arg(millis(ttl)).ignore();
            }
            self.run(|mut c| {
                let pipe = &pipe;
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await
        })
    }

    fn remove_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            if self.cluster.is_some() {
                return futures_util::future::try_join_all(keys.iter().map(|k| self.remove(k))).await.map(drop);
            }
            let mut cmd = redis::cmd("DEL");
            cmd.arg(keys.iter().map(|k| self.key(k)).collect::<Vec<_>>());
            self.query(cmd).await
        })
    }
}
