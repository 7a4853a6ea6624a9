//! [`EmbeddedKv`]: the default store, one [fjall] database directory (an LSM tree with a journal). One process at
//! a time: a second one gets a clear start-up error.
//!
//! **Durability.** Every write is appended to the journal and handed to the operating system (`write(2)`) before
//! its call returns, so a killed or crashed fedgate (`kill -9`, an OOM kill, a panic) loses nothing acknowledged:
//! the kernel still writes the page cache out. The journal is then fsynced either before the answer
//! ([`Fsync::Always`]) or by a background thread every interval ([`Fsync::Every`], Redis's `appendfsync
//! everysec`), which bounds what a power cut or kernel crash can lose. At start-up fjall replays the journal
//! written since its last rotation, not the whole data; the journal is sealed at every memtable flush
//! ([`JOURNAL_ROTATION_BYTES`], a setting of our vendored fjall), so a start — after `kill -9` or a clean stop —
//! replays about one memtable (4 MiB) whatever the number of sessions (BENCHMARKS.md has the figures).
//!
//! **Expiry.** Every value is stored with its deadline (unix milliseconds, 8 bytes big-endian, before the bytes).
//! Reads treat an entry past its deadline as absent, so expiry is exact without a scan; a compaction filter turns
//! expired entries into tombstones whenever fjall compacts the tables holding them (background threads, driven by
//! the writes themselves), so the directory stops growing under churn and the hot path never scans.
//!
//! **Writes.** An operation that reads before it writes (take, put-if-absent, compare-and-set, increment) is one
//! fjall write transaction, so it is atomic; a blind one (put, remove) needs no transaction and goes in a plain
//! fjall batch when its group holds nothing else (25 % more writes/s from 16 writers: BENCHMARKS.md). Whoever
//! commits holds one lock, so a batch never lands between a transaction's read and its write. With an
//! fsync interval the caller commits on its own thread when nobody else is committing, and writes that arrive
//! meanwhile wait (without blocking a thread) to be committed together by that caller, one `write(2)` for the
//! group; with `"always"` one writer thread applies every write waiting in one commit (a batch or a transaction)
//! and fsyncs once, so concurrent logins share one fsync. Reads go straight to the tree (the memtable and block
//! cache; at most one small block read from the page cache). Measured by `scripts/bench store`
//! and `store-bench` (BENCHMARKS.md).
//!
//! **A full disk.** A start needs 1 MiB of room beside the directory, or it fails naming the path and the fix
//! ([`OpenError::Full`]). While serving, a failed journal write stops fjall for good ("poisoned"): writes answer
//! "unavailable" (`/readyz` names the path and the cause), reads go on, and once there is room again the store
//! closes and reopens the directory in-process (see `Shared`), replaying the journal: nothing answered is lost and
//! no restart is needed (tests/e2e/store.rs fills a real tmpfs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fjall::compaction::filter::{CompactionFilter, Context, Factory, ItemAccessor, Verdict};
use fjall::{
    KeyspaceCreateOptions, PersistMode, Readable as _, SingleWriterTxDatabase, SingleWriterTxKeyspace,
    SingleWriterWriteTx,
};

use super::{KvStore, OpenError, Result, StoreError, StoreFuture};
use crate::config::Fsync;

/// The keyspace holding every entry.
const KEYSPACE: &str = "kv";
/// The largest memtable (written to a table when full): the memory unflushed writes take, kept small because
/// sessions are small and reads of recent ones are served by the first level anyway.
pub const MEMTABLE_BYTES: u64 = 4 * 1024 * 1024;
/// The journal is sealed and a new one started at the first flush past this size. Every open replays the active
/// journal from its start (and any sealed one whose memtables were not yet flushed), so this bounds the work of a
/// start after a crash or a clean stop alike: about one memtable's worth of records. (A setting our vendored fjall
/// adds: upstream hard-codes 64 MB, 150–300 ms of replay at every start; vendor/fjall/PATCH.md.)
const JOURNAL_ROTATION_BYTES: u64 = MEMTABLE_BYTES;
/// Leveled compaction sized for small memtables and random keys (session ids are hashes, so every table in level 0
/// spans the whole key range and merging level 0 rewrites all of level 1). fjall's defaults (64 MiB tables, level 0
/// merged at 4 tables) suit 64 MiB memtables: with 4 MiB ones, level 0 is merged every 16 MiB into a level 1 of up
/// to 256 MiB, which rewrote ~16 times what was written and grew with the store (fjall's threads went from 4 to
/// 17 µs per login over five rounds of the login benchmark). Merging at 8 tables into a level 1 of 4 MiB tables
/// (32 MiB) keeps each merge proportionate: 3–8 µs per login in the same run (BENCHMARKS.md). Reads check at most
/// 8 level-0 tables, each behind a bloom filter.
fn compaction() -> fjall::compaction::Leveled {
    fjall::compaction::Leveled::default().with_l0_threshold(8).with_table_target_size(MEMTABLE_BYTES)
}
/// Block cache (fjall's default is 32 MiB; sessions are small and the first level caches the hot ones).
const CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// Writes waiting for the writer thread at most, per commit.
const GROUP_MAX: usize = 512;

/// Told the outcome of the commit its write was part of.
type Deliver = Box<dyn FnOnce(Result<(), SharedError>) + Send>;
/// A write that reads, applied inside the group's transaction (none: the transaction could not begin, skip it);
/// returns whether it applied, and whom to tell the commit's outcome.
type TxJob = Box<dyn FnOnce(Option<(&mut Tx<'_>, &Keyspace)>, u64) -> (Result<(), fjall::Error>, Deliver) + Send>;

/// One write waiting to be committed.
enum Job {
    /// Sets (`Some`: deadline and bytes, joined) or removes (`None`) keys without reading them. A group made only of
    /// these is committed as one plain fjall batch: no transaction, its skiplist or its snapshot (BENCHMARKS.md).
    Blind { ops: Vec<(String, Option<Vec<u8>>)>, deliver: Deliver },
    /// Reads, then writes what it read decided: take, put-if-absent, compare-and-set, increment.
    Tx(TxJob),
}
type Tx<'a> = SingleWriterWriteTx<'a>;
type Keyspace = SingleWriterTxKeyspace;

/// A commit's failure, told to every write in it.
#[derive(Debug, Clone)]
struct SharedError(Arc<dyn std::error::Error + Send + Sync>);

impl SharedError {
    fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The database and its one keyspace, as one open of the directory.
struct Inner {
    db: SingleWriterTxDatabase,
    kv: Keyspace,
    /// Held by whoever commits (a leading caller or the writer thread): blind batches take no fjall transaction, so
    /// this, not fjall's writer lock, keeps them from landing between a transaction's read and its write.
    committing: std::sync::Mutex<()>,
    /// Whether a commit reached the journal since the last fsync (the interval fsync skips idle periods).
    dirty: AtomicBool,
}

/// What every handle shares: the open database, and what it takes to reopen it after a failed write. The writer
/// and fsync threads hold it weakly, so dropping the last [`EmbeddedKv`] closes the database (fjall fsyncs the
/// journal when it is dropped).
///
/// **A failed write.** fjall stops taking writes for good ("poisoned") after a journal write or fsync fails — on
/// a full disk, say — because what reached the file is then unknown to it. Reads go on. The store then reopens the
/// directory in-process, once a file of [`ROOM_BYTES`] fits beside it again: the write lock below waits for every
/// operation using the old database, the old one is dropped (its threads joined, its journal flushed, its lock
/// file released), and a new one is opened, which replays the journal, so every acknowledged write is there.
/// Operations that arrive meanwhile are told the store is unavailable (they never wait on the reopen).
struct Shared {
    path: PathBuf,
    /// The open database; `None` after a reopen failed (tried again at most every [`REOPEN_EVERY`]). Operations
    /// take it for reading with `try_read` (a reopen holds it for writing, so they fail fast instead of waiting).
    open: std::sync::RwLock<Option<Inner>>,
    /// Why writes stopped (the first failure), until a reopen succeeds.
    failure: std::sync::Mutex<Option<String>>,
    /// A reopen is under way on its own thread.
    reopening: AtomicBool,
    /// When the last reopen attempt ended.
    last_attempt: std::sync::Mutex<Option<Instant>>,
}

/// A reopen is attempted at most this often (each checks for room, and only then closes the database).
const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// The room a start and a reopen want on the store's filesystem: less, and the first memtable flush would fail.
const ROOM_BYTES: usize = 1024 * 1024;
/// The file written and removed to check for room.
const ROOM_FILE: &str = "room-check.tmp";

/// The embedded store. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct EmbeddedKv {
    shared: Arc<Shared>,
    writer: std::sync::mpsc::Sender<Job>,
    /// Write transactions committed so far (one per group of writes).
    commits: Arc<AtomicU64>,
    /// `fsync_interval = "always"`: writes go through the writer thread, so concurrent ones share an fsync.
    always: bool,
    /// With an fsync interval: the writes waiting for the caller that is committing (see [`EmbeddedKv::write`]).
    group: Arc<std::sync::Mutex<Group>>,
}

/// Writes that arrived while another caller was committing, and whether one is.
#[derive(Default)]
struct Group {
    waiting: Vec<Job>,
    leading: bool,
}

/// Gives up the lead when a leading caller unwinds, dropping what waits (its callers get an error).
struct Unwind<'a>(&'a std::sync::Mutex<Group>);

impl Drop for Unwind<'_> {
    fn drop(&mut self) {
        let mut group = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        group.leading = false;
        group.waiting.clear();
    }
}

/// Groups one leading caller commits before it hands what is still waiting to the writer thread.
const LEAD_ROUNDS: usize = 8;

impl std::fmt::Debug for EmbeddedKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedKv").field("path", &self.shared.path).finish()
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

/// The live bytes of a stored value at `now`.
fn live(raw: Option<fjall::Slice>, now: u64) -> Option<Vec<u8>> {
    raw.and_then(|raw| {
        let (exp, v) = split(&raw);
        (exp > now).then(|| v.to_vec())
    })
}

/// A counter's value as stored (decimal ASCII, like Redis); anything else counts as 0.
pub(super) fn counter(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn err(e: fjall::Error) -> StoreError {
    StoreError::unavailable("embedded", e)
}

/// Turns entries past their deadline into tombstones while fjall compacts (a tombstone, not a plain drop, so an
/// older version of the key in a lower level cannot come back).
struct ExpiryFilterFactory;

impl Factory for ExpiryFilterFactory {
    fn name(&self) -> &str {
        "fedgate-expiry"
    }

    fn make_filter(&self, _ctx: &Context) -> Box<dyn CompactionFilter> {
        Box::new(ExpiryFilter { now: now_ms(), dropped: 0 })
    }
}

struct ExpiryFilter {
    now: u64,
    dropped: u64,
}

impl CompactionFilter for ExpiryFilter {
    fn filter_item(
        &mut self,
        item: ItemAccessor<'_>,
        _ctx: &Context,
    ) -> fjall::compaction::filter::CompactionFilterResult {
        let value = item.value()?;
        if split(&value).0 <= self.now {
            self.dropped += 1;
            Ok(Verdict::Remove)
        } else {
            Ok(Verdict::Keep)
        }
    }

    fn finish(self: Box<Self>) {
        EXPIRED_BY_COMPACTION.fetch_add(self.dropped, Ordering::Relaxed);
    }
}

/// Expired entries removed by compactions in this process (all stores), for tests and metrics.
static EXPIRED_BY_COMPACTION: AtomicU64 = AtomicU64::new(0);

/// Maps fjall's open error to the start-up error that names the path and what to do.
fn open_error(path: &Path, e: fjall::Error) -> OpenError {
    let io_kind = match &e {
        fjall::Error::Io(io) => Some(io.kind()),
        fjall::Error::Storage(fjall::LsmError::Io(io)) => Some(io.kind()),
        _ => None,
    };
    match (e, io_kind) {
        (fjall::Error::Locked, _) => OpenError::Locked { path: path.to_path_buf() },
        (e, Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)) => {
            OpenError::Full { path: path.to_path_buf(), source: e.into() }
        }
        (e, Some(kind)) if kind != std::io::ErrorKind::InvalidData && kind != std::io::ErrorKind::UnexpectedEof => {
            OpenError::Io { path: path.to_path_buf(), source: e.into() }
        }
        (e, _) => OpenError::Corrupt { path: path.to_path_buf(), source: e.into() },
    }
}

/// Creates the database directory (and missing parents) with mode 0700, or makes an existing one 0700: it holds
/// every session (user, groups, e-mail, the session's CSRF token) and pending sign-in, which other local users
/// must not read. A directory that group or others could read (an earlier version's 0755) is tightened, with a
/// warning.
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        tracing::warn!(
            path = %path.display(),
            was = format_args!("{mode:o}"),
            now = format_args!("{:o}", mode & 0o700),
            "the state store directory was readable by group or others; made it private"
        );
    }
    Ok(())
}

/// Opens the database directory at `path` (creating it) and writes once.
fn open_inner(path: &Path) -> Result<Inner, OpenError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            OpenError::Full { path: path.to_path_buf(), source: e.into() }
        }
        _ => OpenError::Io { path: path.to_path_buf(), source: e.into() },
    };
    if path.is_file() {
        // The store used to be one redb file at this path.
        return Err(OpenError::Corrupt {
            path: path.to_path_buf(),
            source: "a file where the state directory should be (the single redb file of earlier development builds?)"
                .into(),
        });
    }
    private_dir(path).map_err(io)?;
    // Room for more than a few writes: a full disk, or one about to be, shows at start-up, not at the first flush.
    room(path).map_err(io)?;
    let db = SingleWriterTxDatabase::builder(path)
        .cache_size(CACHE_BYTES)
        .worker_threads(2)
        .journal_rotation_threshold(JOURNAL_ROTATION_BYTES)
        .with_compaction_filter_factories(Arc::new(|keyspace: &str| {
            (keyspace == KEYSPACE).then(|| Arc::new(ExpiryFilterFactory) as Arc<dyn Factory>)
        }))
        .open()
        .map_err(|e| open_error(path, e))?;
    let kv = db
        .keyspace(KEYSPACE, || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(MEMTABLE_BYTES)
                .compaction_strategy(Arc::new(compaction()))
        })
        .map_err(|e| open_error(path, e))?;
    // Write once now: a read-only directory or a full disk shows at start-up, not at the first login. A
    // `write(2)` is enough (the filesystem reserves the blocks then); fjall's recovery has just fsynced the
    // journal, and one more fsync would cost the start 1–30 ms on a busy disk.
    let probe = || -> Result<(), fjall::Error> {
        kv.insert("\0probe", join(0, b"").as_slice())?;
        db.persist(PersistMode::Buffer)
    };
    probe().map_err(|e| open_error(path, e))?;
    Ok(Inner { db, kv, committing: std::sync::Mutex::new(()), dirty: AtomicBool::new(false) })
}

/// Why the store answers "unavailable" after a failed write: it names the path, the cause and what to do.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    /// fjall stopped taking writes; a reopen waits for room.
    #[error(
        "writing the state directory {path} failed ({cause}): free space on its filesystem (or move store.path); the \
         store reopens by itself once there is room, no restart needed"
    )]
    Failed { path: PathBuf, cause: String },
    /// A reopen is under way right now.
    #[error("the state directory {path} is being reopened after a failed write; try again in a moment")]
    Reopening { path: PathBuf },
}

/// What a failed write's error says, in words an operator acts on (fjall's own `Debug` otherwise).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    format!("the disk is full: {io}")
                }
                _ => io.to_string(),
            };
        }
        if let Some(fjall::Error::Io(io) | fjall::Error::Storage(fjall::LsmError::Io(io))) =
            c.downcast_ref::<fjall::Error>()
        {
            return describe(io);
        }
        cause = c.source();
    }
    e.to_string()
}

/// Writes and removes [`ROOM_BYTES`] beside the database: whether a start or a reopen has room. No fsync: the
/// filesystem reserves the blocks at `write(2)` (and says `ENOSPC` then), and a start stays fast.
fn room(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let file = path.join(ROOM_FILE);
    let written = (|| {
        let mut f = std::fs::File::create(&file)?;
        f.write_all(&vec![0u8; ROOM_BYTES])
    })();
    let removed = std::fs::remove_file(&file);
    written.and(removed)
}

impl Shared {
    /// Runs `f` on the open database; without one (a reopen under way, or one that failed) the store is
    /// unavailable, and a reopen is scheduled.
    fn with<T>(self: &Arc<Self>, f: impl FnOnce(&Inner) -> Result<T>) -> Result<T> {
        let open = match self.open.try_read() {
            Ok(open) => open,
            Err(std::sync::TryLockError::Poisoned(open)) => open.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(StoreError::unavailable("embedded", Stopped::Reopening { path: self.path.clone() }));
            }
        };
        match open.as_ref() {
            Some(inner) => f(inner),
            None => {
                drop(open);
                self.schedule_reopen();
                Err(self.stopped())
            }
        }
    }

    /// The error for an operation while writes are stopped.
    fn stopped(&self) -> StoreError {
        let cause = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let cause = cause.unwrap_or_else(|| "a write failed".into());
        StoreError::unavailable("embedded", Stopped::Failed { path: self.path.clone(), cause })
    }

    /// Notes why writes stopped (the first cause is kept: later ones only say "poisoned") and schedules a reopen.
    fn failed(self: &Arc<Self>, cause: &(dyn std::error::Error + 'static)) {
        {
            let mut failure = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if failure.is_none() {
                let what = describe(cause);
                tracing::error!(path = %self.path.display(), cause = %what, "the state store stopped taking writes; \
                    it reopens by itself once there is room");
                *failure = Some(what);
            }
        }
        self.schedule_reopen();
    }

    /// Starts a reopen on its own thread, unless one is under way or the last ended less than [`REOPEN_EVERY`] ago.
    fn schedule_reopen(self: &Arc<Self>) {
        if self.reopening.swap(true, Ordering::AcqRel) {
            return;
        }
        let recent = self
            .last_attempt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < REOPEN_EVERY);
        if recent {
            self.reopening.store(false, Ordering::Release);
            return;
        }
        let shared = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("fedgate-store-reopen".into()).spawn(move || {
            if let Some(shared) = shared.upgrade() {
                shared.reopen();
                *shared.last_attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                shared.reopening.store(false, Ordering::Release);
            }
        });
        if spawned.is_err() {
            self.reopening.store(false, Ordering::Release);
        }
    }

    /// Closes and reopens the database if there is room again (see [`Shared`]).
    fn reopen(&self) {
        // Room first, with the database still open: while the disk stays full, reads keep answering.
        if let Err(e) = room(&self.path) {
            tracing::debug!(path = %self.path.display(), error = %e, "no room to reopen the state store yet");
            *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(describe(&e));
            return;
        }
        let mut open = self.open.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(inner) = open.as_ref()
            && !matches!(inner.db.persist(PersistMode::Buffer), Err(fjall::Error::Poisoned))
        {
            return; // Taking writes (another reopen got there first).
        }
        // Joins fjall's threads, flushes and fsyncs the journal, releases the lock file: nothing uses it now.
        drop(open.take());
        match open_inner(&self.path) {
            Ok(inner) => {
                *open = Some(inner);
                *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                tracing::info!(path = %self.path.display(), "the state store was reopened and takes writes again");
            }
            Err(e) => {
                let what = describe(&e);
                tracing::warn!(path = %self.path.display(), error = %super::Chain(&e), "reopening the state store \
                    failed; trying again in a moment");
                *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(what);
            }
        }
    }
}

impl EmbeddedKv {
    /// Opens (or creates, with its parent directories) the store at `path` and starts its writer and, for an
    /// interval, its fsync thread.
    pub fn open(path: &Path, fsync: Fsync) -> Result<Self, OpenError> {
        let io = |source: super::BoxError| OpenError::Io { path: path.to_path_buf(), source };
        let inner = open_inner(path)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            open: std::sync::RwLock::new(Some(inner)),
            failure: std::sync::Mutex::new(None),
            reopening: AtomicBool::new(false),
            last_attempt: std::sync::Mutex::new(None),
        });
        let commits = Arc::new(AtomicU64::new(0));
        let writer = spawn_writer(Arc::downgrade(&shared), fsync, Arc::clone(&commits)).map_err(|e| io(e.into()))?;
        if let Fsync::Every(every) = fsync {
            spawn_fsync(Arc::downgrade(&shared), every).map_err(|e| io(e.into()))?;
        }
        Ok(Self { shared, writer, commits, always: fsync == Fsync::Always, group: Arc::default() })
    }

    /// Runs `f` in a write transaction and returns once that transaction is committed: in the operating system
    /// (one `write(2)` of the journal), and with [`Fsync::Always`] on the disk.
    ///
    /// With an fsync interval the caller commits on its own thread when no other caller is committing: a memtable
    /// insert and one `write(2)`, microseconds, less than a hop to another thread and back (measured:
    /// BENCHMARKS.md). Writes that arrive while it commits do not block their threads on fjall's writer lock: they
    /// queue and wait (asynchronously), and the committing caller applies them all in its next transaction — one
    /// `write(2)` for the group — before it returns (leader/follower group commit, as LevelDB's writer queue).
    /// With `"always"` every write goes to the writer thread, where writes that arrive while a commit is being
    /// fsynced are applied together in the next transaction (one fsync for many).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>, &Keyspace, u64) -> Result<T, fjall::Error> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: TxJob = Box::new(move |txn, now| {
            let (applied, value) = match txn.map(|(t, kv)| f(t, kv, now)) {
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
        self.enqueue(Job::Tx(job))?;
        rx.await.map_err(|_| StoreError::unavailable("embedded", WriterGone))?
    }

    /// Sets (`Some`) or removes (`None`) `ops`' keys, in one commit, and returns once it is committed (as
    /// [`EmbeddedKv::write`], without a transaction when nothing else waits).
    async fn write_blind(&self, ops: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), SharedError>>();
        let deliver: Deliver = Box::new(move |committed| {
            let _ = tx.send(committed);
        });
        self.enqueue(Job::Blind { ops, deliver })?;
        match rx.await {
            Ok(committed) => committed.map_err(|e| StoreError::unavailable("embedded", e)),
            Err(_) => Err(StoreError::unavailable("embedded", WriterGone)),
        }
    }

    fn enqueue(&self, job: Job) -> Result<()> {
        if self.always {
            self.writer.send(job).map_err(|_| StoreError::unavailable("embedded", WriterGone))?;
        } else {
            self.commit_or_queue(job)?;
        }
        Ok(())
    }

    /// Queues `job`; if no caller is committing, this one commits every queued write (its own first), group after
    /// group, until none is waiting or it has led [`LEAD_ROUNDS`] groups, then hands the rest to the writer
    /// thread so no caller's answer waits on other callers' writes for long.
    fn commit_or_queue(&self, job: Job) -> Result<()> {
        let lock = || self.group.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let mut group = lock();
            group.waiting.push(job);
            if std::mem::replace(&mut group.leading, true) {
                return Ok(());
            }
        }
        // Should a commit panic, the next writer must be able to lead, and the waiting ones must hear it (their
        // answers are dropped: "the state store's writer thread stopped").
        let unwind = Unwind(&self.group);
        for _ in 0..LEAD_ROUNDS {
            let batch = {
                let mut group = lock();
                if group.waiting.is_empty() {
                    group.leading = false;
                    std::mem::forget(unwind);
                    return Ok(());
                }
                std::mem::take(&mut group.waiting)
            };
            commit_batch(&self.shared, PersistMode::Buffer, batch);
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
        std::mem::forget(unwind);
        let rest = {
            let mut group = lock();
            group.leading = false;
            std::mem::take(&mut group.waiting)
        };
        for job in rest {
            self.writer.send(job).map_err(|_| StoreError::unavailable("embedded", WriterGone))?;
        }
        Ok(())
    }

    /// Write transactions committed since the store was opened (each holds one or more writes).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Entries stored, live or expired but not yet compacted away (for tests; walks the tree).
    pub fn stored_entries(&self) -> Result<usize> {
        self.shared.with(|inner| inner.kv.inner().len().map_err(err))
    }

    /// The bytes the database takes on disk (tables and journals; a journal file counts its preallocated size).
    pub fn disk_space(&self) -> Result<u64> {
        self.shared.with(|inner| inner.db.disk_space().map_err(err))
    }

    /// The bytes the entries' tables take on disk (no journal).
    pub fn table_space(&self) -> u64 {
        self.shared.with(|inner| Ok(inner.kv.inner().disk_space())).unwrap_or(0)
    }

    /// Flushes the memtable and compacts the whole tree now, dropping every expired entry (tests and benchmarks;
    /// in service, compactions run in the background as writes arrive).
    pub fn compact_now(&self) -> Result<()> {
        self.shared.with(|inner| {
            let kv = inner.kv.inner();
            kv.rotate_memtable_and_wait().map_err(err)?;
            kv.major_compact().map_err(err)
        })
    }

    /// Expired entries compactions removed in this process so far (every embedded store in it).
    pub fn expired_by_compaction() -> u64 {
        EXPIRED_BY_COMPACTION.load(Ordering::Relaxed)
    }

    /// The live value under `key`, read on the calling thread.
    fn get_now(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.shared.with(|inner| Ok(live(inner.kv.get(key).map_err(err)?, now_ms())))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the state store's writer thread stopped")]
struct WriterGone;

/// The one thread that writes: takes every write waiting, applies them in one transaction, commits once and tells
/// each write the outcome.
fn spawn_writer(
    shared: Weak<Shared>,
    fsync: Fsync,
    commits: Arc<AtomicU64>,
) -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let durability = match fsync {
        Fsync::Always => PersistMode::SyncData,
        Fsync::Every(_) => PersistMode::Buffer,
    };
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
            // The store may be gone: then the batch's senders are dropped unanswered.
            let Some(shared) = shared.upgrade() else { return };
            commit_batch(&shared, durability, batch);
            commits.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    Ok(tx)
}

/// Commits `batch` as one group: a plain fjall batch when every write in it is blind, else one transaction.
/// Without an open database (a reopen under way or failed) every write in it is told the store is unavailable.
fn commit_batch(shared: &Arc<Shared>, durability: PersistMode, batch: Vec<Job>) {
    let (mut stopped, mut batch) = (false, Some(batch));
    let committed =
        shared.with(|inner| Ok(commit_open(inner, durability, &mut stopped, batch.take().unwrap_or_default())));
    let (outcome, delivers) = match committed {
        Ok(committed) => committed,
        Err(e) => refuse(batch.take().unwrap_or_default(), SharedError::new(e)),
    };
    if stopped && let Err(e) = &outcome {
        shared.failed(e);
    }
    for deliver in delivers {
        deliver(outcome.clone());
    }
}

/// Commits `batch` to the open database; sets `stopped` when the commit failed and fjall takes no more writes.
fn commit_open(
    inner: &Inner,
    durability: PersistMode,
    stopped: &mut bool,
    batch: Vec<Job>,
) -> (Result<(), SharedError>, Vec<Deliver>) {
    let _committing = inner.committing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (outcome, delivers) = if batch.iter().all(|job| matches!(job, Job::Blind { .. })) {
        commit_blind(inner, durability, batch)
    } else {
        commit_tx(inner, durability, batch)
    };
    match &outcome {
        Ok(()) => inner.dirty.store(true, Ordering::Release),
        // fjall poisons itself after a failed journal write; a write of ours that failed on its own does not.
        Err(_) => *stopped = matches!(inner.db.persist(PersistMode::Buffer), Err(fjall::Error::Poisoned)),
    }
    (outcome, delivers)
}

/// Tells every write in `batch` that it was not committed, because of `e`.
fn refuse(batch: Vec<Job>, e: SharedError) -> (Result<(), SharedError>, Vec<Deliver>) {
    let now = now_ms();
    let delivers = batch
        .into_iter()
        .map(|job| match job {
            Job::Blind { deliver, .. } => deliver,
            Job::Tx(job) => job(None, now).1,
        })
        .collect();
    (Err(e), delivers)
}

fn commit_blind(inner: &Inner, durability: PersistMode, batch: Vec<Job>) -> (Result<(), SharedError>, Vec<Deliver>) {
    let mut writes = inner.db.inner().batch().durability(Some(durability));
    let kv = inner.kv.inner();
    let mut delivers = Vec::with_capacity(batch.len());
    for job in batch {
        if let Job::Blind { ops, deliver } = job {
            apply(ops, |key, value| match value {
                Some(v) => writes.insert(kv, key, v),
                None => writes.remove(kv, key),
            });
            delivers.push(deliver);
        }
    }
    (writes.commit().map_err(SharedError::new), delivers)
}

/// Hands each blind operation to `write` (a batch's or a transaction's insert or remove).
fn apply(ops: Vec<(String, Option<Vec<u8>>)>, mut write: impl FnMut(String, Option<Vec<u8>>)) {
    for (key, value) in ops {
        write(key, value);
    }
}

fn commit_tx(inner: &Inner, durability: PersistMode, batch: Vec<Job>) -> (Result<(), SharedError>, Vec<Deliver>) {
    let now = now_ms();
    let mut txn = inner.db.write_tx().durability(Some(durability));
    let mut delivers = Vec::with_capacity(batch.len());
    let mut failed = None;
    let mut jobs = batch.into_iter();
    for job in jobs.by_ref() {
        match job {
            Job::Blind { ops, deliver } => {
                apply(ops, |key, value| match value {
                    Some(v) => txn.insert(&inner.kv, key, v),
                    None => txn.remove(&inner.kv, key),
                });
                delivers.push(deliver);
            }
            Job::Tx(job) => {
                let (applied, deliver) = job(Some((&mut txn, &inner.kv)), now);
                delivers.push(deliver);
                if let Err(e) = applied {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    let outcome = match failed {
        // A write failed half-way: the whole transaction is rolled back, so no write in it took effect.
        Some(e) => {
            txn.rollback();
            for job in jobs {
                match job {
                    Job::Blind { deliver, .. } => delivers.push(deliver),
                    Job::Tx(job) => delivers.push(job(None, now).1),
                }
            }
            Err(SharedError::new(e))
        }
        None => txn.commit().map_err(SharedError::new),
    };
    (outcome, delivers)
}

/// Fsyncs the journal every `every` while writes arrive, until the store is dropped.
fn spawn_fsync(shared: Weak<Shared>, every: Duration) -> std::io::Result<()> {
    std::thread::Builder::new().name("fedgate-store-fsync".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            let Some(shared) = shared.upgrade() else { return };
            let synced = shared.with(|inner| {
                if inner.dirty.swap(false, Ordering::AcqRel) {
                    inner.db.persist(PersistMode::SyncData).map_err(err)?;
                }
                Ok(())
            });
            // fjall refuses later writes after a failed fsync: reopen. (A database being reopened or waiting for
            // room is no new failure.)
            if let Err(e) = synced
                && !matches!(&e, StoreError::Unavailable { source, .. } if source.downcast_ref::<Stopped>().is_some())
            {
                tracing::error!(error = %super::Chain(&e), "fsyncing the state store's journal failed");
                shared.failed(&e);
            }
        }
    })?;
    Ok(())
}

/// The live bytes under `key` as `txn` sees them (its own earlier writes included).
fn live_in(txn: &Tx<'_>, kv: &Keyspace, key: &str, now: u64) -> Result<Option<Vec<u8>>, fjall::Error> {
    Ok(live(txn.get(kv, key)?, now))
}

impl KvStore for EmbeddedKv {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<()>> {
        let (key, exp) = (key.to_string(), deadline(ttl));
        Box::pin(self.write_blind(vec![(key, Some(join(exp, &value)))]))
    }

    fn put_many<'a>(&'a self, entries: Vec<(String, Vec<u8>, Duration)>) -> StoreFuture<'a, Result<()>> {
        // Every entry in the same commit (one fjall batch): one journal write, all or none of them after a crash.
        let ops = entries.into_iter().map(|(k, v, ttl)| (k, Some(join(deadline(ttl), &v)))).collect();
        Box::pin(self.write_blind(ops))
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(std::future::ready(self.get_now(key)))
    }

    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        let key = key.to_string();
        Box::pin(self.write(move |txn, kv, now| Ok(live(txn.take(kv, key)?, now))))
    }

    fn put_if_absent<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<bool>> {
        let (key, exp) = (key.to_string(), deadline(ttl));
        Box::pin(self.write(move |txn, kv, now| {
            if live_in(txn, kv, &key, now)?.is_some() {
                return Ok(false);
            }
            txn.insert(kv, key, join(exp, &value));
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
        Box::pin(self.write(move |txn, kv, now| {
            if live_in(txn, kv, &key, now)? != expected {
                return Ok(false);
            }
            txn.insert(kv, key, join(exp, &new));
            Ok(true)
        }))
    }

    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<()>> {
        Box::pin(self.write_blind(vec![(key.to_string(), None)]))
    }

    fn increment<'a>(&'a self, key: &'a str, by: u64, ttl: Duration) -> StoreFuture<'a, Result<u64>> {
        let (key, fresh_exp) = (key.to_string(), deadline(ttl));
        Box::pin(self.write(move |txn, kv, now| {
            let current = txn.get(kv, &key)?.map(|raw| {
                let (exp, v) = split(&raw);
                (exp, counter(v))
            });
            let (exp, n) = match current {
                Some((exp, n)) if exp > now => (exp, n),
                _ => (fresh_exp, 0),
            };
            let n = n.saturating_add(by);
            txn.insert(kv, key, join(exp, n.to_string().as_bytes()));
            Ok(n)
        }))
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        let read = || {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            self.shared.with(|inner| {
                let snapshot = inner.db.read_tx();
                let now = now_ms();
                keys.iter().map(|key| Ok(live(snapshot.get(&inner.kv, key).map_err(err)?, now))).collect()
            })
        };
        Box::pin(std::future::ready(read()))
    }

    fn remove_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<()>> {
        let keys = keys.to_vec();
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            self.write_blind(keys.into_iter().map(|k| (k, None)).collect()).await
        })
    }

    /// Reads, and asks fjall whether it still takes writes (after a failed write it does not until reopened:
    /// the answer names the path and the cause, and schedules a reopen).
    fn check(&self) -> StoreFuture<'_, Result<()>> {
        let checked = self.shared.with(|inner| {
            if matches!(inner.db.persist(PersistMode::Buffer), Err(fjall::Error::Poisoned)) {
                return Err(self.shared.stopped());
            }
            inner.kv.get("\0probe").map(drop).map_err(err)
        });
        if let Err(StoreError::Unavailable { source, .. }) = &checked
            && source.downcast_ref::<Stopped>().is_some()
        {
            self.shared.schedule_reopen();
        }
        Box::pin(std::future::ready(checked))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const EVERY: Fsync = Fsync::Every(Duration::from_millis(200));

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded_kv_passes_conformance_with_an_fsync_interval_and_with_always() {
        for fsync in [EVERY, Fsync::Always] {
            let dir = tempfile::tempdir().unwrap();
            let kv = EmbeddedKv::open(&dir.path().join("state"), fsync).unwrap();
            super::super::conformance(Arc::new(kv), "conf:").await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_drops_expired_entries_and_the_directory_stops_growing() {
        let dir = tempfile::tempdir().unwrap();
        let kv = EmbeddedKv::open(&dir.path().join("state"), EVERY).unwrap();
        let value = vec![7u8; 2048];
        let mut sizes = Vec::new();
        let before = EmbeddedKv::expired_by_compaction();
        for round in 0..4 {
            for i in 0..1000 {
                kv.put(&format!("k{round}-{i}"), value.clone(), Duration::from_millis(50)).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            kv.compact_now().unwrap();
            assert!(kv.stored_entries().unwrap() <= 1, "every expired entry was compacted away (the probe stays)");
            // The tables: the journal is sealed at each flush and a new journal file counts as preallocated.
            sizes.push(kv.table_space());
        }
        assert!(EmbeddedKv::expired_by_compaction() - before >= 4000, "the compaction filter dropped them");
        assert!(sizes[3] <= sizes[1] + 64 * 1024, "the tables do not grow with expired entries: {sizes:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_are_kept_when_they_return_and_share_fsyncs_with_always() {
        for fsync in [EVERY, Fsync::Always] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state");
            let kv = EmbeddedKv::open(&path, fsync).unwrap();
            let before = kv.commits();
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let kv = kv.clone();
                    tokio::spawn(async move { kv.put(&format!("k{i}"), vec![1; 100], Duration::from_secs(60)).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            let commits = kv.commits() - before;
            if fsync == Fsync::Always {
                assert!(commits < 200, "200 concurrent writes took {commits} fsynced commits: no group commit");
            }
            drop(kv);
            let again = EmbeddedKv::open(&path, fsync).unwrap();
            for i in 0..200 {
                assert!(again.get(&format!("k{i}")).await.unwrap().is_some(), "write {i} was acknowledged but lost");
            }
        }
    }

    /// Blind writes (puts and removes, committed without a transaction when their group holds nothing else) and
    /// transactions (increments, compare-and-sets) from many tasks at once: no increment is lost, a removed key
    /// stays removed, and every acknowledged put is there after a reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn blind_writes_and_transactions_interleave_without_losing_either() {
        for fsync in [EVERY, Fsync::Always] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state");
            let kv = EmbeddedKv::open(&path, fsync).unwrap();
            let ttl = Duration::from_secs(60);
            let tasks: Vec<_> = (0..400)
                .map(|i| {
                    let kv = kv.clone();
                    tokio::spawn(async move {
                        match i % 4 {
                            0 => drop(kv.increment("counter", 1, ttl).await.unwrap()),
                            1 => kv.put(&format!("p{i}"), vec![1; 64], ttl).await.unwrap(),
                            2 => {
                                kv.put(&format!("r{i}"), vec![2; 64], ttl).await.unwrap();
                                kv.remove(&format!("r{i}")).await.unwrap();
                            }
                            _ => {
                                // A compare-and-set loop on one key shared by all: every swap counts once.
                                loop {
                                    let cur = kv.get("cas").await.unwrap();
                                    let n = cur.as_deref().map_or(0, counter);
                                    let next = (n + 1).to_string().into_bytes();
                                    if kv.compare_and_set("cas", cur.as_deref(), next, ttl).await.unwrap() {
                                        break;
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            drop(kv);
            let kv = EmbeddedKv::open(&path, fsync).unwrap();
            assert_eq!(kv.get("counter").await.unwrap().as_deref().map(counter), Some(100), "increments lost");
            assert_eq!(kv.get("cas").await.unwrap().as_deref().map(counter), Some(100), "compare-and-sets lost");
            for i in 0..400 {
                match i % 4 {
                    1 => assert!(kv.get(&format!("p{i}")).await.unwrap().is_some(), "put p{i} lost"),
                    2 => assert!(kv.get(&format!("r{i}")).await.unwrap().is_none(), "removed r{i} came back"),
                    _ => {}
                }
            }
        }
    }

    /// Bytes the journal files hold on disk (allocated blocks: fjall sizes each new journal file sparsely).
    fn journal_bytes(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jnl"))
            .map(|p| std::fs::metadata(p).unwrap().blocks() * 512)
            .sum()
    }

    /// What an open replays is the journal: after 24 MB of writes it must hold about one memtable, not everything
    /// since the last 64 MB (fjall's own threshold, 150–300 ms of replay at every start).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_journal_is_sealed_at_each_flush_so_an_open_replays_little() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let kv = EmbeddedKv::open(&path, EVERY).unwrap();
        let value = vec![9u8; 2000];
        for i in 0..12_000 {
            kv.put(&format!("k{i}"), value.clone(), Duration::from_secs(600)).await.unwrap();
        }
        // Flushes run in the background; a sealed journal is deleted once its memtables are flushed.
        let bound = 3 * MEMTABLE_BYTES;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while journal_bytes(&path) > bound && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let journal = journal_bytes(&path);
        assert!(journal <= bound, "{journal} bytes of journal after 24 MB of writes: an open would replay them all");
        drop(kv);
        let again = EmbeddedKv::open(&path, EVERY).unwrap();
        for i in [0, 5_999, 11_999] {
            assert_eq!(again.get(&format!("k{i}")).await.unwrap().as_deref(), Some(&value[..]), "write {i} lost");
        }
    }

    #[test]
    fn a_second_opener_gets_a_clear_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let _first = EmbeddedKv::open(&path, EVERY).unwrap();
        let e = EmbeddedKv::open(&path, EVERY).unwrap_err();
        assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn a_file_where_the_directory_belongs_is_reported_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(&path, vec![0x42u8; 10_000]).unwrap();
        let e = EmbeddedKv::open(&path, EVERY).unwrap_err();
        assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn an_unwritable_directory_is_reported_with_the_path() {
        let e = EmbeddedKv::open(Path::new("/proc/fedgate-no/state"), EVERY).unwrap_err();
        assert!(matches!(e, OpenError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("/proc/fedgate-no/state"), "{e}");
    }
}
