//! Server-side OIDC grant state: authorization codes, refresh tokens, token families and revocations.
//!
//! Everything lives behind the small [`GrantStore`] trait (put / get / take / remove with a TTL). Keys are
//! namespaced strings built by the provider from SHA-256 hashes of the tokens, so a dump of the store never holds a
//! usable code or refresh token. [`MemoryGrantStore`] (moka) is the default; every implementation must pass
//! [`conformance`]. Expiry that matters to the protocol is decided by the provider with the caller's `now` from the
//! `expires_at` inside each record; the store's TTL only reclaims memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use crate::Principal;

/// A boxed future, so the trait stays object-safe (a Redis store will need real async I/O).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An issued authorization code, waiting to be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// Client the code was issued to.
    pub client_id: String,
    /// The `redirect_uri` of the authorization request (must be repeated at the token endpoint).
    pub redirect_uri: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The request's `nonce`, copied into the ID token.
    pub nonce: Option<String>,
    /// PKCE `code_challenge` (S256).
    pub code_challenge: Option<String>,
    /// The signed-in user.
    pub principal: Principal,
    /// Unix seconds after which the code is refused.
    pub expires_at: i64,
    /// Token family created when the code is redeemed (known in advance so a replay can revoke it).
    pub family_id: String,
}

/// A refresh token (stored under the hash of the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshGrant {
    /// The family (one login at one client); reuse of a rotated token revokes the whole family.
    pub family_id: String,
    /// Client the token was issued to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The user as of the last issue (the gateway may pass a fresh one when refreshing).
    pub principal: Principal,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
    /// Already exchanged for a new token: presenting it again is reuse.
    pub rotated: bool,
    /// Unix seconds when it was issued.
    pub issued_at: i64,
}

/// What a redeemed code left behind, so a replay can revoke what it issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemedCode {
    /// Family of the tokens issued for the code.
    pub family_id: String,
    /// Client it was redeemed by.
    pub client_id: String,
}

/// A token family: one login of one user at one client, shared by every access and refresh token it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    /// The client.
    pub client_id: String,
    /// The user as of the last issue (userinfo answers from this).
    pub principal: Principal,
    /// Scopes granted at login.
    pub scopes: Vec<String>,
    /// Set once revoked (unix seconds): its refresh tokens and access tokens are refused.
    pub revoked_at: Option<i64>,
}

/// One value in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Grant {
    /// An authorization code.
    Code(CodeGrant),
    /// A redeemed authorization code.
    RedeemedCode(RedeemedCode),
    /// A refresh token.
    Refresh(RefreshGrant),
    /// A token family.
    Family(Family),
}

/// Where grant state lives. Every implementation must pass [`conformance`].
pub trait GrantStore: Send + Sync + 'static {
    /// Stores `value` under `key`, replacing any value, for at most `ttl`.
    fn put<'a>(&'a self, key: &'a str, value: Grant, ttl: Duration) -> StoreFuture<'a, Result<(), StoreError>>;
    /// The value under `key`, if present and not past its TTL.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Grant>, StoreError>>;
    /// Removes and returns the value under `key` atomically: of concurrent callers, exactly one gets it.
    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Grant>, StoreError>>;
    /// Removes the value under `key`, if any.
    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<(), StoreError>>;
    /// Replaces the value under `key` with `new` (for `ttl`) only if it still equals `expected` (`None`: absent or
    /// expired), atomically across every process sharing the store; `true` if it did. The provider's
    /// read-modify-write steps (rotating a refresh token, updating or revoking a family) use it, so two of them
    /// racing never lose one's change.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a Grant>,
        new: Grant,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<bool, StoreError>>;
    /// Stores every `(key, value, ttl)` of `entries`, in order (a reader never sees a later one without the
    /// earlier ones), in one round trip and one atomic step where the backend can (one embedded transaction; on Redis
    /// one pipeline, in order but not a `MULTI`: see the Redis store). The token endpoint writes a code's
    /// family, its redeemed-code marker and the refresh token with it. The default writes them one after the other.
    fn put_many<'a>(&'a self, entries: Vec<(String, Grant, Duration)>) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for (key, value, ttl) in entries {
                self.put(&key, value, ttl).await?;
            }
            Ok(())
        })
    }
}

#[derive(Clone)]
struct Entry {
    value: Grant,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Arc<Entry>, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The default store: an in-process moka cache with a TTL per entry.
pub struct MemoryGrantStore {
    cache: Cache<String, Arc<Entry>>,
}

impl std::fmt::Debug for MemoryGrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryGrantStore").field("len", &self.cache.entry_count()).finish()
    }
}

impl MemoryGrantStore {
    /// A store holding at most `max_entries` values.
    pub fn new(max_entries: u64) -> Self {
        // Least recently used first: a new code or token is always kept (TinyLFU admission, moka's default, could
        // refuse it once the store was full).
        Self {
            cache: Cache::builder()
                .max_capacity(max_entries)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

impl Default for MemoryGrantStore {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl GrantStore for MemoryGrantStore {
    fn put<'a>(&'a self, key: &'a str, value: Grant, ttl: Duration) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.cache.insert(key.to_string(), Arc::new(Entry { value, ttl }));
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Grant>, StoreError>> {
        Box::pin(async move { Ok(self.cache.get(key).map(|e| e.value.clone())) })
    }

    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Grant>, StoreError>> {
        // moka's `remove` is atomic per key: concurrent removers see the value at most once.
        Box::pin(async move { Ok(self.cache.remove(key).map(|e| e.value.clone())) })
    }

    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.cache.invalidate(key);
            Ok(())
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a Grant>,
        new: Grant,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // moka runs the closure with the entry locked, so the comparison and the write are one step.
            let mut new = Some(new);
            let result = self.cache.entry(key.to_string()).and_compute_with(|current| {
                let current = current.map(|e| e.into_value());
                if current.as_ref().map(|e| &e.value) == expected {
                    match new.take() {
                        Some(value) => moka::ops::compute::Op::Put(Arc::new(Entry { value, ttl })),
                        None => moka::ops::compute::Op::Nop,
                    }
                } else {
                    moka::ops::compute::Op::Nop
                }
            });
            Ok(matches!(
                result,
                moka::ops::compute::CompResult::Inserted(_) | moka::ops::compute::CompResult::ReplacedWith(_)
            ))
        })
    }
}

/// The behaviour every [`GrantStore`] must have. Call it from a test with a fresh store; it panics on a violation.
///
/// Needs a multi-threaded tokio runtime only for the concurrency part; it spawns OS threads itself.
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
pub async fn conformance<S: GrantStore>(store: Arc<S>) {
    let value = |n: i64| Grant::RedeemedCode(RedeemedCode { family_id: n.to_string(), client_id: "c".into() });
    let long = Duration::from_secs(3600);

    assert_eq!(store.get("conf:missing").await.unwrap(), None, "unknown key must be absent");
    assert_eq!(store.take("conf:missing").await.unwrap(), None, "take of unknown key must be None");
    store.remove("conf:missing").await.unwrap();

    store.put("conf:a", value(1), long).await.unwrap();
    assert_eq!(store.get("conf:a").await.unwrap(), Some(value(1)), "get after put");
    assert_eq!(store.get("conf:a").await.unwrap(), Some(value(1)), "get must not consume");
    store.put("conf:a", value(2), long).await.unwrap();
    assert_eq!(store.get("conf:a").await.unwrap(), Some(value(2)), "put replaces");
    assert_eq!(store.get("conf:b").await.unwrap(), None, "keys are independent");

    assert_eq!(store.take("conf:a").await.unwrap(), Some(value(2)), "take returns the value");
    assert_eq!(store.take("conf:a").await.unwrap(), None, "take removes");
    assert_eq!(store.get("conf:a").await.unwrap(), None, "take removes");

    store.put("conf:r", value(3), long).await.unwrap();
    store.remove("conf:r").await.unwrap();
    assert_eq!(store.get("conf:r").await.unwrap(), None, "remove removes");

    // put_many: every entry stored, later ones replacing earlier ones under the same key, nothing for none.
    store.put_many(Vec::new()).await.unwrap();
    store
        .put_many(vec![
            ("conf:m1".into(), value(1), long),
            ("conf:m2".into(), value(2), long),
            ("conf:m1".into(), value(3), long),
        ])
        .await
        .unwrap();
    assert_eq!(store.get("conf:m1").await.unwrap(), Some(value(3)), "put_many writes in order");
    assert_eq!(store.get("conf:m2").await.unwrap(), Some(value(2)), "put_many writes every entry");

    // Every kind of record survives the store unchanged.
    let principal = Principal {
        subject: "s".into(),
        username: "u".into(),
        email: Some("a&b@x".into()),
        display_name: Some("<A>".into()),
        given_name: None,
        family_name: None,
        groups: vec!["g".into()],
        group_paths: vec![],
        roles: vec![],
        claims: Default::default(),
        saml_persistent_nameids: Default::default(),
        auth_time: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        authn: Default::default(),
    };
    let records = [
        Grant::Code(CodeGrant {
            client_id: "c".into(),
            redirect_uri: "https://x/cb".into(),
            scopes: vec!["openid".into()],
            nonce: Some("n".into()),
            code_challenge: None,
            principal: principal.clone(),
            expires_at: 5,
            family_id: "f".into(),
        }),
        Grant::RedeemedCode(RedeemedCode { family_id: "f".into(), client_id: "c".into() }),
        Grant::Refresh(RefreshGrant {
            family_id: "f".into(),
            client_id: "c".into(),
            scopes: vec![],
            principal: principal.clone(),
            expires_at: 9,
            rotated: true,
            issued_at: 1,
        }),
        Grant::Family(Family { client_id: "c".into(), principal, scopes: vec![], revoked_at: Some(3) }),
    ];
    for (i, r) in records.iter().enumerate() {
        let key = format!("conf:rec{i}");
        store.put(&key, r.clone(), long).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().as_ref(), Some(r), "record {i} round trip");
    }

    // compare_and_set: from absent, against the current value, never against a stale one.
    assert!(store.compare_and_set("conf:cas", None, value(1), long).await.unwrap(), "CAS from absent");
    assert!(!store.compare_and_set("conf:cas", None, value(9), long).await.unwrap(), "CAS from absent, present");
    assert!(!store.compare_and_set("conf:cas", Some(&value(0)), value(9), long).await.unwrap(), "stale CAS");
    assert!(store.compare_and_set("conf:cas", Some(&value(1)), value(2), long).await.unwrap(), "current CAS");
    assert_eq!(store.get("conf:cas").await.unwrap(), Some(value(2)), "the winning CAS is stored");

    // TTL: an entry with a short TTL disappears (memory reclamation).
    store.put("conf:ttl", value(4), Duration::from_millis(50)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if store.get("conf:ttl").await.unwrap().is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "entry outlived its TTL");
        std::thread::sleep(Duration::from_millis(20));
    }

    // take is atomic: of many concurrent takers exactly one wins, over many rounds.
    for round in 0..50 {
        let key = format!("conf:race{round}");
        store.put(&key, value(round), long).await.unwrap();
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let store = Arc::clone(&store);
                    let key = key.clone();
                    s.spawn(move || usize::from(block_on(store.take(&key)).unwrap().is_some()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1, "take must be single-winner (round {round})");

        // Of many concurrent compare-and-sets from the same value exactly one wins.
        let key = format!("conf:casrace{round}");
        store.put(&key, value(-1), long).await.unwrap();
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let store = Arc::clone(&store);
                    let key = key.clone();
                    let before = value(-1);
                    s.spawn(move || {
                        usize::from(block_on(store.compare_and_set(&key, Some(&before), value(i), long)).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1, "compare_and_set must be single-winner (round {round})");
    }
}

/// Drives a future to completion on the current thread, parking it between polls (the conformance suite uses it;
/// store futures that need a runtime must be spawned onto one first).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_conformance() {
        block_on(conformance(Arc::new(MemoryGrantStore::new(10_000))));
    }
}
