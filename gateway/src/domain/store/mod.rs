//! The state store: a small async key-value interface with a time to live on every entry and the atomic
//! operations the features need, so that sessions, authorization codes, refresh-token families, sign-in requests
//! waiting for a login and brute-force counters survive a restart and can be shared between replicas.
//!
//! Backends ([`open`] picks one from `[store]`): [`embedded::EmbeddedKv`] (one fjall database directory),
//! [`redis::RedisKv`] (Redis / Valkey) and [`memory::MemoryKv`] (in the process). Every backend must pass
//! [`conformance`]. The typed stores on top ([`sessions::KvSessionStore`], [`grants::KvGrantStore`]) keep the
//! feature code unaware of the backend.
//!
//! Keys are short ASCII strings built by the typed stores (`s:` sessions, `g:` grants, `p:` pending requests,
//! `t:` throttle counters, `o:bcl:` back-channel logouts still to deliver), from hashes of secrets wherever the
//! secret is a bearer credential, so a dump of the store holds no usable cookie, code or token.

pub mod embedded;
pub mod first_level;
pub mod grants;
pub mod memory;
pub mod redis;
pub mod sessions;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{StoreConfig, StoreKind};

/// A boxed future, so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any error a backend reports as the cause of a failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time (Redis down, a disk error).
    #[error("{backend} state store unavailable")]
    Unavailable {
        /// `embedded`, `redis` or `memory`.
        backend: &'static str,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
    /// A stored value could not be decoded (written by an incompatible version, or damaged).
    #[error("a stored {what} could not be decoded")]
    Decode {
        /// What kind of record.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// An unavailable-backend error with its cause.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable { backend, source: source.into() }
    }
}

/// Displays an error with its causes (`a: b: c`), for log lines.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// The result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A key-value store where every entry has a time to live. Every implementation must pass [`conformance`].
///
/// All operations are atomic per key, across every process sharing the store.
pub trait KvStore: Send + Sync + 'static {
    /// `embedded`, `redis` or `memory` (for `/readyz`, metrics and errors).
    fn kind(&self) -> &'static str;
    /// Stores `value` under `key` for `ttl`, replacing any value.
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<()>>;
    /// The value under `key`, unless absent or expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>>;
    /// Removes and returns the value under `key`: of concurrent callers (in any process), exactly one gets it.
    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>>;
    /// Stores `value` only if `key` holds nothing live; `true` if it did.
    fn put_if_absent<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<bool>>;
    /// Replaces the value under `key` with `new` (for `ttl`) only if it is still `expected` (`None`: absent);
    /// `true` if it did. The building block of lost-update-free read-modify-write.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<bool>>;
    /// Removes `key`, if present.
    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<()>>;
    /// Adds `by` to the counter under `key` and returns the new value; a counter that does not exist starts at 0
    /// and expires `ttl` after this first increment (later increments keep that deadline).
    fn increment<'a>(&'a self, key: &'a str, by: u64, ttl: Duration) -> StoreFuture<'a, Result<u64>>;
    /// Whether the backend answers now (for `/readyz`).
    fn check(&self) -> StoreFuture<'_, Result<()>>;
    /// The live values under `keys`, in order, read in one round trip where the backend can (Redis `MGET`, one
    /// embedded read transaction). Each read is atomic per key, not across the keys.
    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(self.get(key).await?);
            }
            Ok(out)
        })
    }
    /// Stores every `(key, value, ttl)` of `entries`, in order (nobody sees a later one without the earlier
    /// ones), in one round trip and one atomic step where the backend can (one embedded transaction; on Redis
    /// one pipeline, in order but not a `MULTI`: see the Redis store). The default writes them one after the
    /// other, which keeps the order.
    fn put_many<'a>(&'a self, entries: Vec<(String, Vec<u8>, Duration)>) -> StoreFuture<'a, Result<()>> {
        Box::pin(async move {
            for (key, value, ttl) in entries {
                self.put(&key, value, ttl).await?;
            }
            Ok(())
        })
    }
    /// Removes every key in `keys`, in one round trip (one `DEL`, one embedded commit) where the backend can.
    fn remove_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Result<()>> {
        Box::pin(async move {
            for key in keys {
                self.remove(key).await?;
            }
            Ok(())
        })
    }
}

/// The backend `[store]` names, opened (the embedded store) or prepared (Redis connects on first use, so a Redis
/// that is down at start-up is reported by `/readyz` and recovered from without a restart). `None` for
/// `kind = "memory"`, whose typed stores are the in-process ones.
pub fn open(cfg: &StoreConfig) -> Result<Option<Arc<dyn KvStore>>, OpenError> {
    match cfg.kind {
        StoreKind::Memory => Ok(None),
        StoreKind::Embedded => Ok(Some(Arc::new(embedded::EmbeddedKv::open(&cfg.path, cfg.fsync_interval)?))),
        StoreKind::Redis => Ok(Some(Arc::new(redis::RedisKv::new(cfg)?))),
    }
}

/// Why the store could not be opened at start-up; each names the path or setting and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The embedded store is held by another process.
    #[error(
        "the state directory {path} is in use by another process (another fedgate?): stop it, or give this one its own \
         store.path; several replicas share state through kind = \"redis\""
    )]
    Locked {
        /// The directory.
        path: std::path::PathBuf,
    },
    /// The embedded store is damaged or of an unknown format.
    #[error(
        "the state directory {path} is damaged or not a fedgate state directory: move it away (sessions and refresh tokens \
         in it are lost) or restore it from a backup"
    )]
    Corrupt {
        /// The directory.
        path: std::path::PathBuf,
        /// The database's error.
        #[source]
        source: BoxError,
    },
    /// The filesystem holding the embedded store is full (or the user's quota is used up).
    #[error(
        "the state directory {path} cannot be written: its filesystem is full (no space left on device). Free space \
         on it (old logs, backups), grow the volume, or set store.path to a directory on a filesystem with room \
         (moving the directory there keeps the sessions)"
    )]
    Full {
        /// The directory.
        path: std::path::PathBuf,
        /// The system's error.
        #[source]
        source: BoxError,
    },
    /// The embedded store's directory cannot be created or written (permissions, full disk).
    #[error(
        "the state directory {path} cannot be created or written (permissions? full disk?): free space or fix the \
         directory's permissions, or set store.path elsewhere"
    )]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The system's error.
        #[source]
        source: BoxError,
    },
    /// A Redis setting that only shows when it is used (the password file, the CA file, the URL).
    #[error("{key}: {problem}")]
    Redis {
        /// The `[store]` key.
        key: &'static str,
        /// What is wrong and what to do.
        problem: String,
        /// The cause.
        #[source]
        source: Option<BoxError>,
    },
}

/// Encodes a record for the store.
pub fn encode<T: serde::Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| StoreError::Decode { what, source })
}

/// Decodes a record from the store.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode { what, source })
}

/// A store key for a secret (a session id, a code): `prefix` + the first 128 bits of its SHA-256, base64url.
pub fn hashed_key(prefix: &str, secret: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]))
}

/// The behaviour every [`KvStore`] must show. Panics on the first broken expectation; call it from a test with a
/// fresh store on a multi-threaded tokio runtime. Keys are prefixed with `prefix` so runs can share a store.
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
pub async fn conformance(store: Arc<dyn KvStore>, prefix: &str) {
    let k = |s: &str| format!("{prefix}{s}");
    let long = Duration::from_secs(3600);
    let v = |s: &str| s.as_bytes().to_vec();

    assert_eq!(store.get(&k("missing")).await.unwrap(), None, "an unknown key is absent");
    assert_eq!(store.take(&k("missing")).await.unwrap(), None, "take of an unknown key is None");
    store.remove(&k("missing")).await.unwrap();
    store.check().await.unwrap();

    store.put(&k("a"), v("1"), long).await.unwrap();
    assert_eq!(store.get(&k("a")).await.unwrap(), Some(v("1")), "get after put");
    assert_eq!(store.get(&k("a")).await.unwrap(), Some(v("1")), "get does not consume");
    store.put(&k("a"), v("2"), long).await.unwrap();
    assert_eq!(store.get(&k("a")).await.unwrap(), Some(v("2")), "put replaces");
    assert_eq!(store.take(&k("a")).await.unwrap(), Some(v("2")), "take returns the value");
    assert_eq!(store.take(&k("a")).await.unwrap(), None, "take removes");
    store.put(&k("r"), v("3"), long).await.unwrap();
    store.remove(&k("r")).await.unwrap();
    assert_eq!(store.get(&k("r")).await.unwrap(), None, "remove removes");
    let big = vec![0xA5u8; 64 * 1024];
    store.put(&k("big"), big.clone(), long).await.unwrap();
    assert_eq!(store.get(&k("big")).await.unwrap(), Some(big), "binary values of 64 KiB round-trip");

    // get_many / remove_many
    store.put(&k("m1"), v("1"), long).await.unwrap();
    store.put(&k("m3"), v("3"), long).await.unwrap();
    let many = [k("m1"), k("m2"), k("m3")];
    assert_eq!(store.get_many(&many).await.unwrap(), vec![Some(v("1")), None, Some(v("3"))], "get_many in order");
    assert_eq!(store.get_many(&[]).await.unwrap(), Vec::<Option<Vec<u8>>>::new(), "get_many of nothing");
    store.remove_many(&many).await.unwrap();
    store.remove_many(&[]).await.unwrap();
    assert_eq!(store.get_many(&many).await.unwrap(), vec![None, None, None], "remove_many removes every key");

    // put_many
    store.put_many(Vec::new()).await.unwrap();
    store.put_many(vec![(k("pm1"), v("1"), long), (k("pm2"), v("2"), long), (k("pm1"), v("3"), long)]).await.unwrap();
    assert_eq!(store.get(&k("pm1")).await.unwrap(), Some(v("3")), "put_many writes in order");
    assert_eq!(store.get(&k("pm2")).await.unwrap(), Some(v("2")), "put_many writes every entry");
    store.put_many(vec![(k("pmttl"), v("t"), Duration::from_millis(300))]).await.unwrap();

    // put_if_absent
    assert!(store.put_if_absent(&k("once"), v("x"), long).await.unwrap(), "first put_if_absent wins");
    assert!(!store.put_if_absent(&k("once"), v("y"), long).await.unwrap(), "second put_if_absent loses");
    assert_eq!(store.get(&k("once")).await.unwrap(), Some(v("x")), "the loser changed nothing");

    // compare_and_set
    assert!(store.compare_and_set(&k("cas"), None, v("1"), long).await.unwrap(), "CAS from absent");
    assert!(!store.compare_and_set(&k("cas"), None, v("9"), long).await.unwrap(), "CAS from absent, present");
    assert!(!store.compare_and_set(&k("cas"), Some(b"0"), v("9"), long).await.unwrap(), "CAS with a stale value");
    assert!(store.compare_and_set(&k("cas"), Some(b"1"), v("2"), long).await.unwrap(), "CAS with the current value");
    assert_eq!(store.get(&k("cas")).await.unwrap(), Some(v("2")));

    // increment
    assert_eq!(store.increment(&k("n"), 1, long).await.unwrap(), 1, "a counter starts at 0");
    assert_eq!(store.increment(&k("n"), 5, long).await.unwrap(), 6);

    // TTL: entries and counters disappear after their time to live.
    store.put(&k("ttl"), v("t"), Duration::from_millis(300)).await.unwrap();
    assert!(!store.put_if_absent(&k("ttl"), v("u"), long).await.unwrap());
    store.increment(&k("nttl"), 3, Duration::from_millis(300)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(store.get(&k("ttl")).await.unwrap(), None, "an entry outlived its TTL");
    assert_eq!(store.get(&k("pmttl")).await.unwrap(), None, "an entry of put_many outlived its TTL");
    assert_eq!(store.take(&k("ttl")).await.unwrap(), None, "take of an expired entry is None");
    assert_eq!(store.increment(&k("nttl"), 1, long).await.unwrap(), 1, "an expired counter starts again");
    assert!(store.put_if_absent(&k("ttl"), v("u"), long).await.unwrap(), "an expired key counts as absent");
    assert!(
        store.compare_and_set(&k("gone"), None, v("1"), Duration::from_millis(300)).await.unwrap(),
        "CAS from absent with a TTL"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(store.compare_and_set(&k("gone"), None, v("2"), long).await.unwrap(), "an expired key counts as absent");

    // Atomicity under concurrency: one winner per take and per put_if_absent; no lost increments or CAS updates.
    for round in 0..20 {
        let key = k(&format!("race{round}"));
        store.put(&key, v("w"), long).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, key) = (Arc::clone(&store), key.clone());
                tokio::spawn(async move { store.take(&key).await.unwrap().is_some() })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "take must have exactly one winner (round {round})");

        let key = k(&format!("pia{round}"));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, key) = (Arc::clone(&store), key.clone());
                tokio::spawn(async move { store.put_if_absent(&key, vec![i], long).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "put_if_absent must have exactly one winner (round {round})");
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, key) = (Arc::clone(&store), k("counter"));
            tokio::spawn(async move {
                for _ in 0..25 {
                    store.increment(&key, 1, long).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.increment(&k("counter"), 0, long).await.unwrap(), 200, "no increment may be lost");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, key) = (Arc::clone(&store), k("casloop"));
            tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let cur = store.get(&key).await.unwrap();
                        let n: u64 = cur.as_deref().map_or(0, |b| String::from_utf8_lossy(b).parse().unwrap());
                        let next = (n + 1).to_string().into_bytes();
                        if store.compare_and_set(&key, cur.as_deref(), next, long).await.unwrap() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.get(&k("casloop")).await.unwrap(), Some(v("80")), "no compare-and-set update may be lost");
}

/// The typed stores on top of `kv` — sessions (with concurrent updates of one session from two replicas),
/// OIDC grants, pending sign-in requests and login throttling — each shared by two instances as two replicas
/// would share them. Panics on the first broken expectation; call it with a fresh backend on a multi-threaded
/// tokio runtime (the e2e tests run it against real Redis and a real embedded store, the unit tests in memory).
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
pub async fn typed_conformance(kv: Arc<dyn KvStore>) {
    use crate::domain::session::{AuthMethod, Lifetimes, Session, SessionStore as _};
    use sessions::KvSessionStore;

    let lifetimes = Lifetimes { idle: Duration::from_secs(1800), absolute: Duration::from_secs(12 * 3600) };
    let user = ldap_mapper::MappedUser {
        username: "alice".into(),
        unique_id: "id-alice".into(),
        dn: String::new(),
        email: None,
        display_name: None,
        given_name: None,
        family_name: None,
        groups: vec!["staff".into()],
        group_dns: Vec::new(),
        group_paths: Vec::new(),
        roles: vec!["admin".into()],
        claims: Default::default(),
        saml_persistent_nameids: Default::default(),
    };
    for cache_ttl in [Duration::ZERO, Duration::from_secs(1)] {
        let store = KvSessionStore::new(Arc::clone(&kv), lifetimes, cache_ttl, 1000);
        crate::domain::session::conformance(&store, lifetimes, user.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    }

    // Two replicas add different clients to one session at the same moment: both additions are kept.
    let a = Arc::new(KvSessionStore::new(Arc::clone(&kv), lifetimes, Duration::from_secs(1), 1000));
    let b = Arc::new(KvSessionStore::new(Arc::clone(&kv), lifetimes, Duration::from_secs(1), 1000));
    let now = time::OffsetDateTime::now_utc();
    let id = fedgate_types::random::token();
    a.insert(&id, Session::new(user.clone(), AuthMethod::Password, now)).await.unwrap();
    assert!(b.get(&id, now).await.unwrap().is_some(), "a session written by one replica is read by the other");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, id) = (if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) }, id.clone());
            tokio::spawn(async move {
                let client = format!("client-{i}");
                store.modify(&id, Box::new(move |s| s.signed_in_to.push(client.clone()))).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Read past both first levels (each may hold its own last write for up to a second).
    let fresh = KvSessionStore::new(Arc::clone(&kv), lifetimes, Duration::ZERO, 0);
    let mut seen = fresh.get(&id, now).await.unwrap().unwrap().signed_in_to.clone();
    seen.sort();
    let mut want: Vec<String> = (0..16).map(|i| format!("client-{i}")).collect();
    want.sort();
    assert_eq!(seen, want, "concurrent updates of one session from two replicas lost some");
    // A logout on B takes what A recorded a moment ago, although B's first level holds an older copy.
    let other = fedgate_types::random::token();
    a.insert(&other, Session::new(user.clone(), AuthMethod::Password, now)).await.unwrap();
    assert!(b.get(&other, now).await.unwrap().is_some_and(|s| s.signed_in_to.is_empty()), "B caches the session");
    a.modify(&other, Box::new(|s| s.signed_in_to.push("late-client".into()))).await.unwrap();
    let taken = b.take(&other).await.unwrap().expect("the session");
    assert_eq!(taken.signed_in_to, ["late-client"], "a logout on one replica missed what the other recorded");
    assert!(a.take(&other).await.unwrap().is_none(), "a session is taken once across replicas");

    a.remove(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(b.get(&id, now).await.unwrap().is_none(), "a removal on one replica reaches the other within 1 s");

    // OIDC grants: the federation suite. It drives the store's futures from plain threads, so each operation is
    // spawned onto this runtime (Redis and the embedded store need it) and awaited through its join handle.
    let grants = OnRuntime(Arc::new(grants::KvGrantStore::new(Arc::clone(&kv))), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        federation::oidc::store::block_on(federation::oidc::store::conformance(Arc::new(grants)))
    })
    .await
    .unwrap();

    // Pending sign-in requests: put on one replica, read and taken once on the other.
    let pa = crate::domain::pending::PendingRequests::with_store(crate::config::MIN_PENDING_BYTES, Arc::clone(&kv));
    let pb = crate::domain::pending::PendingRequests::with_store(crate::config::MIN_PENDING_BYTES, Arc::clone(&kv));
    let request = crate::domain::pending::Pending::Saml { sp: "wiki".into(), request: None, relay_state: None };
    let pid = pa.put(request).await.unwrap();
    assert!(pb.get(&pid).await.unwrap().is_some(), "a pending request is seen by the other replica");
    assert!(pb.take(&pid).await.unwrap().is_some());
    assert!(pa.take(&pid).await.unwrap().is_none(), "a pending request is taken once across replicas");

    // Throttling: failures spread over two replicas add up.
    let cfg = crate::config::LoginConfig::default();
    let ta = crate::domain::throttle::LoginThrottle::with_store(cfg.clone(), Arc::clone(&kv));
    let tb = crate::domain::throttle::LoginThrottle::with_store(cfg.clone(), Arc::clone(&kv));
    let ip = std::net::IpAddr::from([192, 0, 2, 7]);
    let who = format!("user-{}", fedgate_types::random::token());
    for i in 0..cfg.max_failures {
        let t = if i % 2 == 0 { &ta } else { &tb };
        assert!(t.check(&who, ip, now).await.is_ok(), "locked before max_failures");
        t.record_failure(&who, None, ip, now).await.unwrap();
    }
    let locked = |r| matches!(r, Err(crate::domain::throttle::Refused::Locked { .. }));
    assert!(locked(ta.check(&who, ip, now).await), "max_failures over two replicas must lock on the first");
    assert!(locked(tb.check(&who, ip, now).await), "max_failures over two replicas must lock on the second");
}

/// A grant store whose operations run on a tokio runtime, for callers that poll from threads outside it.
struct OnRuntime(Arc<grants::KvGrantStore>, tokio::runtime::Handle);

#[allow(clippy::expect_used)]
impl OnRuntime {
    fn run<'a, T: Send + 'static>(
        &self,
        op: impl Future<Output = T> + Send + 'static,
    ) -> federation::oidc::store::StoreFuture<'a, T> {
        let task = self.1.spawn(op);
        Box::pin(async move { task.await.expect("a store operation panicked") })
    }
}

impl federation::oidc::GrantStore for OnRuntime {
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: federation::oidc::store::Grant,
        ttl: Duration,
    ) -> federation::oidc::store::StoreFuture<'a, Result<(), federation::oidc::StoreError>> {
        let (s, k) = (Arc::clone(&self.0), key.to_string());
        self.run(async move { s.put(&k, value, ttl).await })
    }
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> federation::oidc::store::StoreFuture<
        'a,
        Result<Option<federation::oidc::store::Grant>, federation::oidc::StoreError>,
    > {
        let (s, k) = (Arc::clone(&self.0), key.to_string());
        self.run(async move { s.get(&k).await })
    }
    fn take<'a>(
        &'a self,
        key: &'a str,
    ) -> federation::oidc::store::StoreFuture<
        'a,
        Result<Option<federation::oidc::store::Grant>, federation::oidc::StoreError>,
    > {
        let (s, k) = (Arc::clone(&self.0), key.to_string());
        self.run(async move { s.take(&k).await })
    }
    fn remove<'a>(
        &'a self,
        key: &'a str,
    ) -> federation::oidc::store::StoreFuture<'a, Result<(), federation::oidc::StoreError>> {
        let (s, k) = (Arc::clone(&self.0), key.to_string());
        self.run(async move { s.remove(&k).await })
    }
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a federation::oidc::store::Grant>,
        new: federation::oidc::store::Grant,
        ttl: Duration,
    ) -> federation::oidc::store::StoreFuture<'a, Result<bool, federation::oidc::StoreError>> {
        let (s, k, e) = (Arc::clone(&self.0), key.to_string(), expected.cloned());
        self.run(async move { s.compare_and_set(&k, e.as_ref(), new, ttl).await })
    }
    fn put_many<'a>(
        &'a self,
        entries: Vec<(String, federation::oidc::store::Grant, Duration)>,
    ) -> federation::oidc::store::StoreFuture<'a, Result<(), federation::oidc::StoreError>> {
        let s = Arc::clone(&self.0);
        self.run(async move { s.put_many(entries).await })
    }
}
