//! The redb backend the embedded store used before fjall, kept only so `store-bench` can measure both crates in
//! one run (BENCHMARKS.md); not reachable from the configuration.
//!
//! [`RedbKv`]: one crash-safe [redb] file (copy-on-write B-trees, a commit is durable when
//! it returns; after `kill -9` or a power cut the file opens at the last commit). One process at a time: a
//! second one gets a clear start-up error.
//!
//! Every value is stored with its deadline (unix milliseconds, 8 bytes big-endian, before the bytes). Reads treat
//! an entry past its deadline as absent, so expiry is exact without a scan; a second table indexes entries by
//! deadline, and a background thread deletes what expired in small batches (one short write transaction per
//! batch), so the file stops growing under churn and the hot path never scans.
//!
//! redb is synchronous: reads run on tokio's blocking pool; writes go to one writer thread, which applies every
//! write waiting in one transaction and commits once (group commit): concurrent logins share an fsync, and each
//! write is durable when its call returns. Measured by `scripts/bench store` (BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition, WriteTransaction};

use super::{KvStore, OpenError, Result, StoreError, StoreFuture};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");

/// Entries deleted per sweep transaction.
const SWEEP_BATCH: usize = 512;
/// Pause between sweeps when the last one found less than a batch.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Writes waiting for the writer thread at most, per commit.
const GROUP_MAX: usize = 512;

/// Told the outcome of the commit its write was part of.
type Deliver = Box<dyn FnOnce(Result<(), SharedError>) + Send>;
/// One write, applied inside the writer's transaction (none: the transaction could not begin, skip it); returns
/// whether it applied, and whom to tell the commit's outcome.
type Job = Box<dyn FnOnce(Option<&WriteTransaction>, u64) -> (Result<(), redb::Error>, Deliver) + Send>;

/// A commit's failure, told to every write in it.
#[derive(Debug, Clone)]
struct SharedError(Arc<redb::Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// The embedded store. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct RedbKv {
    db: Arc<Database>,
    path: PathBuf,
    writer: std::sync::mpsc::Sender<Job>,
    /// Write transactions committed so far (one per group of writes).
    commits: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for RedbKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbKv").field("path", &self.path).finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn deadline(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// Splits a stored value into its deadline and bytes (a value too short to hold a deadline reads as expired).
fn split(raw: &[u8]) -> (u64, &[u8]) {
    match raw.split_first_chunk::<8>() {
        Some((exp, rest)) => (u64::from_be_bytes(*exp), rest),
        None => (0, &[]),
    }
}

fn join(exp: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&exp.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// A counter's value as stored (decimal ASCII, like Redis); anything else counts as 0.
fn counter(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::unavailable("embedded", e.into())
}

impl RedbKv {
    /// Opens (or creates, with its directory) the store at `path` and starts its expiry sweeper.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let io = |source: super::BoxError| OpenError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(e.into()))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
                OpenError::Locked { path: path.to_path_buf() }
            }
            redb::DatabaseError::Storage(redb::StorageError::Io(e)) if e.kind() != std::io::ErrorKind::InvalidData => {
                io(e.into())
            }
            other => OpenError::Corrupt { path: path.to_path_buf(), source: other.into() },
        })?;
        // Create both tables now: a read-only directory or a full disk shows at start-up, not at the first login.
        let init = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(KV)?;
            txn.open_table(EXPIRY)?;
            txn.commit()?;
            Ok(())
        };
        init().map_err(|e| match e {
            redb::Error::Io(e) => io(e.into()),
            other => OpenError::Corrupt { path: path.to_path_buf(), source: other.into() },
        })?;
        let db = Arc::new(db);
        spawn_sweeper(Arc::downgrade(&db));
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = spawn_writer(Arc::downgrade(&db), Arc::clone(&commits)).map_err(|e| io(e.into()))?;
        Ok(Self { db, path: path.to_path_buf(), writer, commits })
    }

    /// Runs `f` in a write transaction of the writer thread and returns once that transaction is committed
    /// (durable). Writes that arrive while a commit is being flushed to disk are applied together in the next
    /// transaction, so concurrent logins share one fsync (group commit) instead of queueing for one each.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction, u64) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |txn, now| {
            let (applied, value) = match txn.map(|t| f(t, now)) {
                Some(Ok(v)) => (Ok(()), Some(v)),
                Some(Err(e)) => (Err(e), None),
                None => (Ok(()), None),
            };
            let deliver: Deliver = Box::new(move |committed| {
                let out = match (committed, value) {
                    (Ok(()), Some(v)) => Ok(v),
                    (Err(e), _) => Err(StoreError::unavailable("embedded", e)),
                    (Ok(()), None) => Err(StoreError::unavailable("embedded", WriterGone)),
                };
                let _ = tx.send(out);
            });
            (applied, deliver)
        });
        self.writer.send(job).map_err(|_| StoreError::unavailable("embedded", WriterGone))?;
        rx.await.map_err(|_| StoreError::unavailable("embedded", WriterGone))?
    }

    /// Write transactions committed since the store was opened (each holds one or more writes).
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Expired entries deleted by the sweeper so far in this file (for tests): the live entry count.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata as _;
        let txn = self.db.begin_read().map_err(err)?;
        txn.open_table(KV).map_err(err)?.len().map_err(err)
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Deletes up to one batch of expired entries now; returns how many (the sweeper calls this).
    pub fn sweep_once(&self) -> Result<usize> {
        sweep(&self.db).map_err(err)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the state file's writer thread stopped")]
struct WriterGone;

/// The one thread that writes: takes every write waiting, applies them in one transaction, commits once and tells
/// each write the outcome. It holds the database only while committing, so dropping the store closes the file.
fn spawn_writer(
    db: Weak<Database>,
    commits: Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new().name("fedgate-store-write".into()).spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // The store (and so the file) may be gone: then the batch's senders are dropped unanswered.
            let Some(db) = db.upgrade() else { return };
            commit_batch(&db, batch);
            commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    })?;
    Ok(tx)
}

fn commit_batch(db: &Database, batch: Vec<Job>) {
    let now = now_ms();
    let txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let e = SharedError(Arc::new(e.into()));
            for job in batch {
                let (_, deliver) = job(None, now);
                deliver(Err(e.clone()));
            }
            return;
        }
    };
    let mut delivers = Vec::with_capacity(batch.len());
    let mut failed = None;
    for job in batch {
        let (applied, deliver) = job(Some(&txn), now);
        delivers.push(deliver);
        if let Err(e) = applied {
            failed = Some(e);
            break;
        }
    }
    let outcome = match failed {
        // A write failed half-way: the whole transaction is dropped (aborted), so no write in it took effect.
        Some(e) => {
            drop(txn);
            Err(SharedError(Arc::new(e)))
        }
        None => txn.commit().map_err(|e| SharedError(Arc::new(e.into()))),
    };
    for deliver in delivers {
        deliver(outcome.clone());
    }
}

/// The live bytes under `key` in `txn`, if any.
fn live_in(txn: &WriteTransaction, key: &str, now: u64) -> Result<Option<Vec<u8>>, redb::Error> {
    let table = txn.open_table(KV)?;
    let found = table.get(key)?.map(|g| {
        let (exp, v) = split(g.value());
        (exp > now).then(|| v.to_vec())
    });
    Ok(found.flatten())
}

/// Writes `value` under `key` until `exp`, keeping the expiry index in step.
fn store_in(txn: &WriteTransaction, key: &str, value: &[u8], exp: u64) -> Result<(), redb::Error> {
    let mut kv = txn.open_table(KV)?;
    let mut index = txn.open_table(EXPIRY)?;
    let old = kv.insert(key, join(exp, value).as_slice())?.map(|g| split(g.value()).0);
    if let Some(old) = old {
        index.remove((old, key))?;
    }
    index.insert((exp, key), ())?;
    Ok(())
}

/// Removes `key` and its index entry; returns its live bytes, if it had any.
fn delete_in(txn: &WriteTransaction, key: &str, now: u64) -> Result<Option<Vec<u8>>, redb::Error> {
    let mut kv = txn.open_table(KV)?;
    let removed = kv.remove(key)?.map(|g| {
        let (exp, v) = split(g.value());
        (exp, v.to_vec())
    });
    let Some((exp, v)) = removed else { return Ok(None) };
    txn.open_table(EXPIRY)?.remove((exp, key))?;
    Ok((exp > now).then_some(v))
}

fn sweep(db: &Database) -> Result<usize, redb::Error> {
    let now = now_ms();
    let mut txn = db.begin_write()?;
    // Sweeping loses nothing if a crash undoes it, so it need not wait for the disk.
    txn.set_durability(redb::Durability::None).map_err(|e| redb::Error::Io(std::io::Error::other(e)))?;
    let due: Vec<(u64, String)> = {
        let index = txn.open_table(EXPIRY)?;
        let mut due = Vec::new();
        for entry in index.range((0u64, "")..(now, ""))?.take(SWEEP_BATCH) {
            let (k, _) = entry?;
            let (exp, key) = k.value();
            due.push((exp, key.to_string()));
        }
        due
    };
    {
        let mut kv = txn.open_table(KV)?;
        let mut index = txn.open_table(EXPIRY)?;
        for (exp, key) in &due {
            index.remove((*exp, key.as_str()))?;
            // Only if the entry still has this deadline (a newer put has its own index entry).
            let current = kv.get(key.as_str())?.map(|g| split(g.value()).0);
            if current == Some(*exp) {
                kv.remove(key.as_str())?;
            }
        }
    }
    txn.commit()?;
    Ok(due.len())
}

/// Sweeps expired entries in small batches until the store is dropped.
fn spawn_sweeper(db: Weak<Database>) {
    let spawned = std::thread::Builder::new().name("fedgate-store-sweep".into()).spawn(move || {
        loop {
            std::thread::sleep(SWEEP_EVERY);
            let Some(db) = db.upgrade() else { return };
            loop {
                match sweep(&db) {
                    Ok(n) if n == SWEEP_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "sweeping expired state entries failed; retrying later");
                        break;
                    }
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no expiry sweeper for the state store: expired entries stay until overwritten");
    }
}

impl KvStore for RedbKv {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<()>> {
        let (key, exp) = (key.to_string(), deadline(ttl));
        Box::pin(self.write(move |txn, _| store_in(txn, &key, &value, exp)))
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        let (db, key) = (Arc::clone(&self.db), key.to_string());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let txn = db.begin_read().map_err(err)?;
                let table = txn.open_table(KV).map_err(err)?;
                let now = now_ms();
                Ok(table.get(key.as_str()).map_err(err)?.and_then(|g| {
                    let (exp, v) = split(g.value());
                    (exp > now).then(|| v.to_vec())
                }))
            })
            .await
            .map_err(|e| StoreError::unavailable("embedded", e))?
        })
    }

    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        let key = key.to_string();
        Box::pin(self.write(move |txn, now| delete_in(txn, &key, now)))
    }

    fn put_if_absent<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<bool>> {
        let (key, exp) = (key.to_string(), deadline(ttl));
        Box::pin(self.write(move |txn, now| {
            if live_in(txn, &key, now)?.is_some() {
                return Ok(false);
            }
            store_in(txn, &key, &value, exp)?;
            Ok(true)
        }))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<bool>> {
        let (key, exp, expected) = (key.to_string(), deadline(ttl), expected.map(<[u8]>::to_vec));
        Box::pin(self.write(move |txn, now| {
            if live_in(txn, &key, now)? != expected {
                return Ok(false);
            }
            store_in(txn, &key, &new, exp)?;
            Ok(true)
        }))
    }

    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<()>> {
        let key = key.to_string();
        Box::pin(self.write(move |txn, now| delete_in(txn, &key, now).map(drop)))
    }

    fn increment<'a>(&'a self, key: &'a str, by: u64, ttl: Duration) -> StoreFuture<'a, Result<u64>> {
        let (key, fresh_exp) = (key.to_string(), deadline(ttl));
        Box::pin(self.write(move |txn, now| {
            let current = {
                let table = txn.open_table(KV)?;
                table.get(key.as_str())?.map(|g| {
                    let (exp, v) = split(g.value());
                    (exp, counter(v))
                })
            };
            let (exp, n) = match current {
                Some((exp, n)) if exp > now => (exp, n),
                _ => (fresh_exp, 0),
            };
            let n = n.saturating_add(by);
            store_in(txn, &key, n.to_string().as_bytes(), exp)?;
            Ok(n)
        }))
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        let (db, keys) = (Arc::clone(&self.db), keys.to_vec());
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            tokio::task::spawn_blocking(move || {
                let txn = db.begin_read().map_err(err)?;
                let table = txn.open_table(KV).map_err(err)?;
                let now = now_ms();
                keys.iter()
                    .map(|key| {
                        Ok(table.get(key.as_str()).map_err(err)?.and_then(|g| {
                            let (exp, v) = split(g.value());
                            (exp > now).then(|| v.to_vec())
                        }))
                    })
                    .collect()
            })
            .await
            .map_err(|e| StoreError::unavailable("embedded", e))?
        })
    }

    fn remove_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<()>> {
        let keys = keys.to_vec();
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            self.write(move |txn, now| keys.iter().try_for_each(|key| delete_in(txn, key, now).map(drop))).await
        })
    }

    fn check(&self) -> StoreFuture<'_, Result<()>> {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let txn = db.begin_read().map_err(err)?;
                txn.open_table(KV).map_err(err)?;
                Ok(())
            })
            .await
            .map_err(|e| StoreError::unavailable("embedded", e))?
        })
    }
}
