//! [`KvSessionStore`]: sessions in the state store, with moka in front as the first level.
//!
//! A request whose session this replica read within `cache_ttl` (default 500 ms, at most 1 s) is answered from
//! moka ([`Recent`]: two moka generations that drop expired entries in bulk) without a store round trip, so a proxied request with a live session costs nothing extra; after that the
//! store is asked again, which is how a logout on another replica reaches this one within a second. The
//! alternative, Redis pub/sub invalidation, would let the cache live longer but adds a subscriber connection per
//! replica and a window in which a missed message (a reconnect) keeps a revoked session alive with no bound; a
//! short TTL needs neither and costs at most two store reads per active session per second. Measured with two
//! replicas: a 1 s TTL let the other replica answer for 1.02 s after the logout (the TTL plus polling), so the
//! default is 500 ms.
//!
//! The idle clock (`last_seen`) is written back only when it moved by a tenth of the idle timeout (at least
//! 5 s), never on every request. Every write of an existing session is a compare-and-set against the bytes last
//! read, so two replicas adding a client to one session at once both keep their change.
//!
//! Sessions are stored under a hash of their id: a dump of the store holds no usable cookie.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use time::OffsetDateTime;

use super::first_level::Recent;
use super::{KvStore, decode, encode, hashed_key};
use crate::domain::session::{Lifetimes, Session, SessionStore, StoreError, StoreFuture};

/// Attempts of a compare-and-set loop before giving up (only under heavy contention on one session).
const CAS_ATTEMPTS: usize = 16;

struct Cached {
    session: Arc<Session>,
    raw: Arc<Vec<u8>>,
}

/// The first level in front of the store (moka in both cases).
enum FirstLevel {
    /// Other replicas write the store too: what this one read or wrote in the last `cache_ttl`.
    Recent(Recent<Arc<Cached>>),
    /// Only this process writes the store: sessions until they go idle.
    Owned(Cache<String, Arc<Cached>>),
}

impl FirstLevel {
    fn get(&self, id: &str) -> Option<Arc<Cached>> {
        match self {
            Self::Recent(r) => r.get(id),
            Self::Owned(c) => c.get(id),
        }
    }

    fn insert(&self, id: &str, cached: &Arc<Cached>) {
        match self {
            Self::Recent(r) => r.insert(id.to_string(), Arc::clone(cached)),
            Self::Owned(c) => c.insert(id.to_string(), Arc::clone(cached)),
        }
    }

    fn remove(&self, id: &str) {
        match self {
            Self::Recent(r) => r.remove(id),
            Self::Owned(c) => c.invalidate(id),
        }
    }

    #[cfg(test)]
    fn clear(&self) {
        match self {
            Self::Recent(r) => r.clear(),
            Self::Owned(c) => c.invalidate_all(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Self::Recent(r) => r.held(),
            Self::Owned(c) => c.entry_count(),
        }
    }
}

/// Sessions in a [`KvStore`], with a first level in front.
pub struct KvSessionStore {
    kv: Arc<dyn KvStore>,
    l1: Option<FirstLevel>,
    lifetimes: Lifetimes,
    touch_every: i64,
}

impl std::fmt::Debug for KvSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSessionStore").field("kind", &self.kv.kind()).finish()
    }
}

impl KvSessionStore {
    /// Sessions in `kv`, a store other processes write too (other replicas): at most `max_cached` of them in the
    /// first level, each for `cache_ttl` (none when zero).
    pub fn new(kv: Arc<dyn KvStore>, lifetimes: Lifetimes, cache_ttl: Duration, max_cached: u64) -> Self {
        let l1 = (!cache_ttl.is_zero()).then(|| FirstLevel::Recent(Recent::new(cache_ttl, max_cached)));
        Self::with_first_level(kv, lifetimes, l1)
    }

    /// Sessions in `kv`, a store only this process writes (the embedded store: its directory is locked to one
    /// process). Nothing can change a session behind this process's back, so the first level keeps at most
    /// `max_cached` of them until they go idle or reach their absolute lifetime, as `kind = "memory"` keeps them,
    /// instead of asking the store again after a short TTL. (Entries expiring every half second cost a busy
    /// gateway ~7 µs of moka housekeeping per login: BENCHMARKS.md.)
    pub fn owned(kv: Arc<dyn KvStore>, lifetimes: Lifetimes, max_cached: u64) -> Self {
        let l1 = Cache::builder()
            .max_capacity(max_cached)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(lifetimes.idle + Duration::from_secs(60))
            .time_to_live(lifetimes.absolute + Duration::from_secs(60))
            .build();
        Self::with_first_level(kv, lifetimes, Some(FirstLevel::Owned(l1)))
    }

    fn with_first_level(kv: Arc<dyn KvStore>, lifetimes: Lifetimes, l1: Option<FirstLevel>) -> Self {
        let touch_every = i64::try_from((lifetimes.idle / 10).as_secs()).unwrap_or(i64::MAX).max(5);
        Self { kv, l1, lifetimes, touch_every }
    }

    /// How long the store keeps `s` at `now`: until its idle or absolute deadline, plus a minute (the decision
    /// itself is made with the caller's clock on every read).
    fn ttl(&self, s: &Session, now: i64) -> Duration {
        let idle_end = s.last_seen.saturating_add(secs(self.lifetimes.idle));
        let abs_end = s.auth_time.saturating_add(secs(self.lifetimes.absolute));
        let left = idle_end.min(abs_end).saturating_sub(now).max(0);
        Duration::from_secs(u64::try_from(left).unwrap_or(0) + 60)
    }

    /// The session and its stored bytes, from the first level or the store.
    async fn load(&self, id: &str, key: &str) -> Result<Option<Arc<Cached>>, StoreError> {
        if let Some(hit) = self.l1.as_ref().and_then(|c| c.get(id)) {
            return Ok(Some(hit));
        }
        let Some(raw) = self.kv.get(key).await? else { return Ok(None) };
        let session: Session = decode(&raw, "session")?;
        let cached = Arc::new(Cached { session: Arc::new(session), raw: Arc::new(raw) });
        self.remember(id, &cached);
        Ok(Some(cached))
    }

    fn remember(&self, id: &str, cached: &Arc<Cached>) {
        if let Some(c) = &self.l1 {
            c.insert(id, cached);
        }
    }

    fn forget(&self, id: &str) {
        if let Some(c) = &self.l1 {
            c.remove(id);
        }
    }

    /// Writes `next` over `current` if nobody changed it meanwhile; the new cached entry on success.
    async fn replace(
        &self,
        id: &str,
        key: &str,
        current: &Cached,
        next: Session,
        now: i64,
    ) -> Result<Option<Arc<Cached>>, StoreError> {
        let raw = encode(&next, "session")?;
        let ttl = self.ttl(&next, now);
        if !self.kv.compare_and_set(key, Some(current.raw.as_slice()), raw.clone(), ttl).await? {
            self.forget(id);
            return Ok(None);
        }
        let cached = Arc::new(Cached { session: Arc::new(next), raw: Arc::new(raw) });
        self.remember(id, &cached);
        Ok(Some(cached))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn key_of(id: &str) -> String {
    hashed_key("s:", id)
}

impl SessionStore for KvSessionStore {
    fn insert<'a>(&'a self, id: &'a str, session: Session) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let raw = encode(&session, "session")?;
            let ttl = self.ttl(&session, session.last_seen);
            self.kv.put(&key_of(id), raw.clone(), ttl).await?;
            self.remember(id, &Arc::new(Cached { session: Arc::new(session), raw: Arc::new(raw) }));
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move {
            let key = key_of(id);
            let Some(cached) = self.load(id, &key).await? else { return Ok(None) };
            let now = now.unix_timestamp();
            if self.lifetimes.expired(&cached.session, now) {
                self.forget(id);
                self.kv.remove(&key).await?;
                return Ok(None);
            }
            if now - cached.session.last_seen < self.touch_every {
                return Ok(Some(Arc::clone(&cached.session)));
            }
            // Move the idle clock. If another replica changed the session meanwhile, its version (read fresh)
            // is answered and the clock moves on a later request.
            let next = Session { last_seen: now, ..(*cached.session).clone() };
            match self.replace(id, &key, &cached, next, now).await? {
                Some(fresh) => Ok(Some(Arc::clone(&fresh.session))),
                None => Ok(self.load(id, &key).await?.map(|c| Arc::clone(&c.session))),
            }
        })
    }

    fn modify<'a>(
        &'a self,
        id: &'a str,
        change: Box<dyn Fn(&mut Session) + Send + Sync + 'a>,
    ) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = key_of(id);
            for attempt in 0..CAS_ATTEMPTS {
                // The first attempt starts from the first level (no read: a login's session was just written or
                // read by this replica); the write is a compare-and-set against those bytes, so a stale copy
                // only fails it, and every later attempt reads the store.
                if attempt > 0 {
                    self.forget(id);
                }
                let Some(current) = self.load(id, &key).await? else { return Ok(()) };
                let mut next = (*current.session).clone();
                change(&mut next);
                if next == *current.session {
                    if attempt == 0 {
                        // Nothing to change in the first level's copy: make sure of it against the store.
                        continue;
                    }
                    return Ok(());
                }
                let now = next.last_seen;
                if self.replace(id, &key, &current, next, now).await?.is_some() {
                    return Ok(());
                }
            }
            Err(StoreError::unavailable("session", Contended))
        })
    }

    fn latest<'a>(
        &'a self,
        id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move {
            // Dropped from the first level, so `get` reads the store (and caches what it read).
            self.forget(id);
            self.get(id, now).await
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.forget(id);
            self.kv.remove(&key_of(id)).await
        })
    }

    fn take<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move {
            // From the store, never the first level: another replica may have recorded a client or an SP in the
            // last cache_ttl, and the logout must tell it too.
            self.forget(id);
            let Some(raw) = self.kv.take(&key_of(id)).await? else { return Ok(None) };
            Ok(Some(Arc::new(decode(&raw, "session")?)))
        })
    }

    fn count(&self) -> u64 {
        // Sessions in the first level (served within the last one or two cache_ttl, or with the embedded store all those not
        // idle, up to the cache's bound): the store itself is not scanned.
        self.l1.as_ref().map_or(0, FirstLevel::len)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the session kept changing under concurrent updates; gave up after {CAS_ATTEMPTS} attempts")]
struct Contended;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::domain::session::{AuthMethod, conformance};
    use crate::domain::store::memory::MemoryKv;

    fn lifetimes() -> Lifetimes {
        Lifetimes { idle: Duration::from_secs(1800), absolute: Duration::from_secs(12 * 3600) }
    }

    #[tokio::test]
    async fn kv_session_store_passes_conformance_with_and_without_the_first_level() {
        for ttl in [Duration::ZERO, Duration::from_secs(1)] {
            let store = KvSessionStore::new(Arc::new(MemoryKv::new()), lifetimes(), ttl, 1000);
            conformance(&store, lifetimes(), crate::domain::session::tests::user("alice")).await.unwrap();
        }
    }

    /// A new session's stored form leaves out what is empty and optional (a third of its bytes: less for Redis to
    /// hold and rewrite, less for the embedded store to compact), keeps what the version before requires, and a
    /// record in the version before's full form still reads as the same session (a rolling upgrade has both).
    #[tokio::test]
    async fn a_stored_session_is_small_and_the_previous_versions_records_still_read() {
        let kv = Arc::new(MemoryKv::new());
        let store = KvSessionStore::new(kv.clone(), lifetimes(), Duration::ZERO, 10);
        let t0 = OffsetDateTime::from_unix_timestamp(1_796_600_000).unwrap();
        let mut user = crate::domain::session::tests::user("a");
        user.groups = vec!["admins".into()];
        let id = fedgate_types::random::token();
        store.insert(&id, Session::new(user, AuthMethod::Password, t0)).await.unwrap();
        let raw = kv.get(&key_of(&id)).await.unwrap().unwrap();
        let stored: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let text = stored.to_string();
        for absent in ["null", "saml_sps", "oidc_clients", "saml_session_indexes", "upstream", "group_paths", "email"] {
            assert!(!text.contains(absent), "{absent} is stored: {text}");
        }
        // What the version before cannot read without.
        for field in ["dn", "group_dns", "claims", "signed_in_to", "csrf", "auth_time", "last_seen", "method"] {
            assert!(stored.get(field).is_some() || stored["user"].get(field).is_some(), "{field} is missing: {text}");
        }
        let mut full = stored.clone();
        for (k, v) in [("saml_session_indexes", "[]"), ("saml_sps", "[]"), ("oidc_clients", "[]"), ("upstream", "null")]
        {
            full[k] = serde_json::from_str(v).unwrap();
        }
        for k in ["email", "display_name", "given_name", "family_name"] {
            full["user"][k] = serde_json::Value::Null;
        }
        full["user"]["group_paths"] = serde_json::json!([]);
        let old_id = fedgate_types::random::token();
        kv.put(&key_of(&old_id), serde_json::to_vec(&full).unwrap(), Duration::from_secs(60)).await.unwrap();
        let (old, new) = (store.get(&old_id, t0).await.unwrap().unwrap(), store.get(&id, t0).await.unwrap().unwrap());
        assert_eq!((old.user.clone(), old.csrf.clone()), (new.user.clone(), new.csrf.clone()));
        assert!(raw.len() * 3 < serde_json::to_vec(&full).unwrap().len() * 2, "{} bytes: {text}", raw.len());
    }

    /// Signs user `a` in at `t0`; the new session's id.
    async fn sign_in(store: &KvSessionStore, t0: OffsetDateTime) -> String {
        let id = fedgate_types::random::token();
        store
            .insert(&id, Session::new(crate::domain::session::tests::user("a"), AuthMethod::Password, t0))
            .await
            .unwrap();
        id
    }

    #[tokio::test]
    async fn a_cached_session_is_answered_without_the_store_and_the_idle_clock_is_written_rarely() {
        let kv = Arc::new(Counting(MemoryKv::new(), Default::default()));
        let store = KvSessionStore::new(kv.clone(), lifetimes(), Duration::from_secs(1), 1000);
        let t0 = OffsetDateTime::now_utc();
        let id = sign_in(&store, t0).await;
        let before = kv.ops();
        for i in 0..100 {
            assert!(store.get(&id, t0 + Duration::from_millis(i)).await.unwrap().is_some());
        }
        assert_eq!(kv.ops(), before, "100 requests within the cache TTL: no store round trip");
        // 10 s later (the clock the caller passes), still below a tenth of the idle timeout: no write.
        assert!(store.get(&id, t0 + Duration::from_secs(10)).await.unwrap().is_some());
        assert_eq!(kv.writes(), 1, "only the insert wrote");
        assert!(store.get(&id, t0 + Duration::from_secs(181)).await.unwrap().is_some());
        assert_eq!(kv.writes(), 2, "a tenth of the idle timeout later, the idle clock is written once");
    }

    /// The embedded store's first level: nothing else writes the store, so a session stays cached past any
    /// cache_ttl (no store read on a later request), a removal is seen at once, and it still expires when idle.
    #[tokio::test]
    async fn an_owned_store_keeps_sessions_in_the_first_level_until_they_expire() {
        let kv = Arc::new(Counting(MemoryKv::new(), Default::default()));
        let store = KvSessionStore::owned(kv.clone(), lifetimes(), 1000);
        conformance(&store, lifetimes(), crate::domain::session::tests::user("alice")).await.unwrap();
        let t0 = OffsetDateTime::now_utc();
        let id = sign_in(&store, t0).await;
        let before = kv.ops();
        // Longer than the longest cache_ttl (1 s): a shared store's first level would have asked the store again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(store.get(&id, t0 + Duration::from_secs(2)).await.unwrap().is_some());
        assert_eq!(kv.ops(), before, "answered from the first level, no store round trip");
        // Idle past the timeout (the caller's clock): refused, and removed from the store too.
        assert!(store.get(&id, t0 + lifetimes().idle + Duration::from_secs(1)).await.unwrap().is_none());
        let id = sign_in(&store, t0).await;
        store.remove(&id).await.unwrap();
        assert!(store.get(&id, t0).await.unwrap().is_none(), "a removal is seen at once");
    }

    #[tokio::test]
    async fn concurrent_modifications_from_two_replicas_are_all_kept() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let a = Arc::new(KvSessionStore::new(kv.clone(), lifetimes(), Duration::from_secs(1), 100));
        let b = Arc::new(KvSessionStore::new(kv, lifetimes(), Duration::from_secs(1), 100));
        let id = fedgate_types::random::token();
        let now = OffsetDateTime::now_utc();
        a.insert(&id, Session::new(crate::domain::session::tests::user("a"), AuthMethod::Password, now)).await.unwrap();
        assert!(b.get(&id, now).await.unwrap().is_some(), "b has it cached now");
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (store, id) = (if i % 2 == 0 { a.clone() } else { b.clone() }, id.clone());
                tokio::spawn(async move {
                    let client = format!("client-{i}");
                    store.modify(&id, Box::new(move |s| s.signed_in_to.push(client.clone()))).await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        a.l1.as_ref().unwrap().clear();
        let s = a.get(&id, now).await.unwrap().unwrap();
        assert_eq!(s.signed_in_to.len(), 20, "{:?}", s.signed_in_to);
    }

    #[tokio::test]
    async fn a_logout_on_one_replica_reaches_the_other_within_the_cache_ttl() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let ttl = Duration::from_millis(200);
        let a = KvSessionStore::new(kv.clone(), lifetimes(), ttl, 100);
        let b = KvSessionStore::new(kv, lifetimes(), ttl, 100);
        let id = fedgate_types::random::token();
        let now = OffsetDateTime::now_utc();
        a.insert(&id, Session::new(crate::domain::session::tests::user("a"), AuthMethod::Password, now)).await.unwrap();
        assert!(b.get(&id, now).await.unwrap().is_some());
        a.remove(&id).await.unwrap();
        assert!(a.get(&id, now).await.unwrap().is_none(), "gone at once where it was removed");
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        assert!(b.get(&id, now).await.unwrap().is_none(), "gone on the other replica after the cache TTL");
    }

    #[tokio::test]
    async fn latest_reads_what_the_other_replica_recorded_within_the_cache_ttl() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let a = KvSessionStore::new(kv.clone(), lifetimes(), Duration::from_secs(1), 100);
        let b = KvSessionStore::new(kv, lifetimes(), Duration::from_secs(1), 100);
        let id = fedgate_types::random::token();
        let now = OffsetDateTime::now_utc();
        a.insert(&id, Session::new(crate::domain::session::tests::user("a"), AuthMethod::Password, now)).await.unwrap();
        assert!(b.get(&id, now).await.unwrap().is_some(), "b has it cached now");
        a.modify(&id, Box::new(|s| s.signed_in_to.push("sp".into()))).await.unwrap();
        assert!(b.get(&id, now).await.unwrap().unwrap().signed_in_to.is_empty(), "b's first level is stale");
        let latest = b.latest(&id, now).await.unwrap().unwrap();
        assert_eq!(latest.signed_in_to, ["sp"], "latest reads the store");
        assert_eq!(b.get(&id, now).await.unwrap().unwrap().signed_in_to, ["sp"], "and refreshes the first level");
    }

    /// Counts the operations that reach the store.
    struct Counting(MemoryKv, std::sync::Mutex<(u64, u64)>);

    impl Counting {
        fn ops(&self) -> u64 {
            self.1.lock().unwrap().0
        }
        fn writes(&self) -> u64 {
            self.1.lock().unwrap().1
        }
        fn count(&self, write: bool) {
            let mut c = self.1.lock().unwrap();
            c.0 += 1;
            c.1 += u64::from(write);
        }
    }

    impl KvStore for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, super::super::Result<()>> {
            self.count(true);
            self.0.put(key, value, ttl)
        }
        fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, super::super::Result<Option<Vec<u8>>>> {
            self.count(false);
            self.0.get(key)
        }
        fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, super::super::Result<Option<Vec<u8>>>> {
            self.count(true);
            self.0.take(key)
        }
        fn put_if_absent<'a>(
            &'a self,
            key: &'a str,
            value: Vec<u8>,
            ttl: Duration,
        ) -> StoreFuture<'a, super::super::Result<bool>> {
            self.count(true);
            self.0.put_if_absent(key, value, ttl)
        }
        fn compare_and_set<'a>(
            &'a self,
            key: &'a str,
            expected: Option<&'a [u8]>,
            new: Vec<u8>,
            ttl: Duration,
        ) -> StoreFuture<'a, super::super::Result<bool>> {
            self.count(true);
            self.0.compare_and_set(key, expected, new, ttl)
        }
        fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, super::super::Result<()>> {
            self.count(true);
            self.0.remove(key)
        }
        fn increment<'a>(&'a self, key: &'a str, by: u64, ttl: Duration) -> StoreFuture<'a, super::super::Result<u64>> {
            self.count(true);
            self.0.increment(key, by, ttl)
        }
        fn check(&self) -> StoreFuture<'_, super::super::Result<()>> {
            self.0.check()
        }
    }
}
