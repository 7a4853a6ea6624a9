//! Protocol requests waiting for the user to log in (an OIDC authorization request, a SAML AuthnRequest).
//!
//! The validated request is kept server-side under a random id for a few minutes; the login page's `rd` points at
//! the protocol's resume URL with that id. Re-running the original request after login would lose its timing
//! (`prompt=login`) and, for SAML HTTP-POST, its body.
//!
//! With a state store (`embedded`, `redis`) the requests live there, so the login may land on another replica or
//! after a restart. Anyone can create them, so the bytes written per 15-minute window are counted in the store
//! (across replicas) and bounded by `max_pending_bytes`; beyond it, requests are kept in this replica's bounded
//! memory instead (least recently used first), so a flood neither fills the store nor locks people out.
//!
//! A replica does not count every request in the store: it reserves the window's bytes in chunks (1/256 of the
//! bound, 4–128 KiB) and spends a chunk locally, so a sign-in writes only its request (one command) and the shared
//! counter moves once per a few hundred sign-ins. Reserved bytes are counted whether spent or not, so the bound
//! holds across replicas; what a replica leaves unspent when the window ends (less than a chunk) is lost to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

use crate::domain::store::{KvStore, StoreError, decode, encode};

/// A request waiting for a login.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pending {
    /// A validated OIDC authorization request.
    Oidc(Box<federation::oidc::AuthorizationRequest>),
    /// A SAML login for SP `sp` (SP-initiated with its AuthnRequest, or IdP-initiated without).
    Saml {
        /// The SP's configured name.
        sp: String,
        /// The AuthnRequest, for SP-initiated SSO.
        request: Option<Box<federation::saml::AuthnRequest>>,
        /// RelayState to echo.
        relay_state: Option<String>,
    },
    /// A sign-in through an upstream OpenID Connect provider, waiting for its callback (kept under its `state`).
    Upstream(Box<UpstreamLogin>),
}

/// What the callback of a sign-in through an upstream provider needs. Plain data, so a durable store can keep it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamLogin {
    /// The `[[upstream.oidc]]` name.
    pub provider: String,
    /// The `state` sent upstream (also this entry's key).
    pub state: String,
    /// The `nonce` sent upstream.
    pub nonce: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
    /// Where to go after the sign-in (already validated, or empty).
    pub return_to: String,
    /// The value of the browser's binding cookie: the callback must come from the browser that started.
    pub binding: String,
}

/// The waiting requests. Anyone can create them without logging in, so they are bounded by bytes (each entry
/// weighed by [`Pending::weight`]), not only by count, and short-lived.
#[derive(Clone)]
pub struct PendingRequests {
    cache: Cache<String, Pending>,
    store: Option<Shared>,
}

/// The state store, the bound on bytes written to it per window, and this replica's unspent reservation.
#[derive(Clone)]
struct Shared {
    kv: Arc<dyn KvStore>,
    max_bytes: u64,
    /// Bytes reserved at a time in the store's counter.
    chunk: u64,
    budget: Arc<Mutex<Budget>>,
}

/// Bytes of one window's bound this replica has reserved in the store and not yet spent.
#[derive(Debug, Default)]
struct Budget {
    window: u64,
    left: u64,
    /// The store's count for `window` has passed the bound: nothing more goes there until the next window.
    full: bool,
}

/// What [`Shared::spend`] found.
#[derive(Debug, PartialEq, Eq)]
enum Spend {
    /// Paid from this replica's reservation: write the request.
    Spent,
    /// Not enough left: reserve more in the store.
    Reserve,
    /// The window's bound is reached: keep the request in memory.
    Full,
}

impl Shared {
    /// Spends `weight` bytes of this replica's reservation for `window`, if it has that many left.
    fn spend(&self, window: u64, weight: u64) -> Spend {
        let Ok(mut b) = self.budget.lock() else { return Spend::Reserve };
        if b.window != window {
            return Spend::Reserve;
        }
        if b.left >= weight {
            b.left -= weight;
            return Spend::Spent;
        }
        if b.full { Spend::Full } else { Spend::Reserve }
    }

    /// Adds `bytes` reserved for `window` (a reservation for an earlier window is dropped); `full` when the store's
    /// count has passed the bound.
    fn keep(&self, window: u64, bytes: u64, full: bool) {
        if let Ok(mut b) = self.budget.lock() {
            if b.window != window {
                *b = Budget { window, left: 0, full: false };
            }
            b.left = b.left.saturating_add(bytes);
            b.full |= full;
        }
    }
}

/// How many bytes a replica reserves at a time out of `max_bytes` per window.
fn chunk_of(max_bytes: u64) -> u64 {
    (max_bytes / 256).clamp(4 << 10, 128 << 10)
}

impl std::fmt::Debug for PendingRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequests")
            .field("len", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .field("store", &self.store.as_ref().map(|s| s.kv.kind()))
            .finish()
    }
}

/// How long a request waits for its login.
const TTL: Duration = Duration::from_secs(15 * 60);

/// What an entry costs besides its strings: the key, the enum, the cache's own bookkeeping (measured roughly; the
/// bound is on the order of magnitude, not the byte).
const ENTRY_OVERHEAD: usize = 256;

impl Default for PendingRequests {
    fn default() -> Self {
        Self::new(32 << 20)
    }
}

impl PendingRequests {
    /// A store holding at most about `max_bytes` of requests; beyond it the least recently used go first.
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|id: &String, p: &Pending| u32::try_from(id.len() + p.weight()).unwrap_or(u32::MAX))
            // Least recently used first: under a flood the newest requests (a person's among them) are kept,
            // where TinyLFU admission would refuse every new one once the store is full.
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_live(TTL)
            .build();
        Self { cache, store: None }
    }

    /// Requests kept in `kv` (at most about `max_bytes` written per 15 minutes, then in memory as [`Self::new`]).
    pub fn with_store(max_bytes: u64, kv: Arc<dyn KvStore>) -> Self {
        let shared = Shared { kv, max_bytes, chunk: chunk_of(max_bytes), budget: Arc::default() };
        Self { store: Some(shared), ..Self::new(max_bytes) }
    }

    /// The bytes held now (after pending evictions are applied); for tests and diagnostics.
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

impl Pending {
    /// Approximately how many bytes this request occupies, allocations included.
    pub fn weight(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let heap = match self {
            Self::Oidc(r) => {
                std::mem::size_of::<federation::oidc::AuthorizationRequest>()
                    + r.client_id.len()
                    + r.redirect_uri.len()
                    + r.scopes.iter().map(|s| s.len() + std::mem::size_of::<String>()).sum::<usize>()
                    + opt(&r.state)
                    + opt(&r.nonce)
                    + opt(&r.code_challenge)
                    + opt(&r.login_hint)
                    + opt(&r.idp_hint)
                    + r.prompt_values.iter().map(|s| s.len() + std::mem::size_of::<String>()).sum::<usize>()
            }
            Self::Saml { sp, request, relay_state } => {
                sp.len()
                    + opt(relay_state)
                    + request.as_ref().map_or(0, |r| {
                        std::mem::size_of::<federation::saml::AuthnRequest>()
                            + r.id.len()
                            + r.issuer.len()
                            + opt(&r.acs_url)
                            + opt(&r.nameid_policy_format)
                            + opt(&r.idp_hint)
                    })
            }
            Self::Upstream(u) => {
                std::mem::size_of::<UpstreamLogin>()
                    + u.provider.len()
                    + u.state.len()
                    + u.nonce.len()
                    + u.pkce_verifier.len()
                    + u.return_to.len()
                    + u.binding.len()
            }
        };
        ENTRY_OVERHEAD + heap
    }
}

/// The window the wall clock is in now (only a bound, not protocol: no `now` parameter).
fn current_window() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    now / TTL.as_secs()
}

/// The store key of `window`'s byte counter.
fn window_key(window: u64) -> String {
    format!("pb:{window}")
}

fn key(id: &str) -> String {
    crate::domain::store::hashed_key("p:", id)
}

impl PendingRequests {
    /// Keeps `request` and returns its id.
    pub async fn put(&self, request: Pending) -> Result<String, StoreError> {
        let id = fedgate_types::random::token();
        self.put_as(id.clone(), request).await?;
        Ok(id)
    }

    /// Keeps `request` under an id the caller chose (an unguessable one, such as a random OAuth `state`), shared
    /// with the other replicas like [`put`](Self::put)'s.
    pub async fn put_as(&self, id: String, request: Pending) -> Result<(), StoreError> {
        if let Some(shared) = &self.store {
            let weight = u64::try_from(id.len() + request.weight()).unwrap_or(u64::MAX);
            let (k, raw, window) = (key(&id), encode(&request, "sign-in request")?, current_window());
            match shared.spend(window, weight) {
                Spend::Spent => return shared.kv.put(&k, raw, TTL).await,
                Spend::Full => {}
                Spend::Reserve => {
                    // A new reservation and the request are written at once (one embedded commit, one wait on
                    // Redis); in the rare quarter hour past the bound, the request is taken back out of the store.
                    let (chunk, counter) = (shared.chunk.max(weight), window_key(window));
                    let (counted, stored) =
                        tokio::join!(shared.kv.increment(&counter, chunk, TTL * 2), shared.kv.put(&k, raw, TTL));
                    stored?;
                    let counted = counted?;
                    // What of this chunk is within the bound (all of it, but near the end of the window's bytes).
                    let within = shared.max_bytes.saturating_sub(counted.saturating_sub(chunk)).min(chunk);
                    let full = counted >= shared.max_bytes;
                    if within >= weight {
                        shared.keep(window, within - weight, full);
                        return Ok(());
                    }
                    shared.keep(window, 0, true);
                    shared.kv.remove(&k).await?;
                    tracing::warn!(
                        max_pending_bytes = shared.max_bytes,
                        "sign-in requests beyond session.max_pending_bytes this quarter hour: keeping new ones in \
                         this replica's memory only"
                    );
                }
            }
        }
        self.cache.insert(id, request);
        Ok(())
    }

    /// The request under `id`, if it has not expired. It stays until it expires or is [`taken`](Self::take), so a
    /// reload of the login page still works.
    pub async fn get(&self, id: &str) -> Result<Option<Pending>, StoreError> {
        if let Some(p) = self.cache.get(id) {
            return Ok(Some(p));
        }
        match &self.store {
            Some(shared) => shared.kv.get(&key(id)).await?.map(|raw| decode(&raw, "sign-in request")).transpose(),
            None => Ok(None),
        }
    }

    /// Removes and returns the request under `id` (once, across replicas).
    pub async fn take(&self, id: &str) -> Result<Option<Pending>, StoreError> {
        if let Some(p) = self.cache.remove(id) {
            return Ok(Some(p));
        }
        match &self.store {
            Some(shared) => shared.kv.take(&key(id)).await?.map(|raw| decode(&raw, "sign-in request")).transpose(),
            None => Ok(None),
        }
    }
}

/// `?id=…` of a protocol's resume URL.
#[derive(Debug, serde::Deserialize)]
pub struct ResumeQuery {
    /// The pending request's id.
    #[serde(default)]
    pub id: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::MIN_PENDING_BYTES as MIN_BYTES;

    fn saml(relay_bytes: usize) -> Pending {
        Pending::Saml { sp: "wiki".into(), request: None, relay_state: Some("r".repeat(relay_bytes)) }
    }

    #[tokio::test]
    async fn the_store_is_bounded_by_bytes_and_keeps_the_newest() {
        let store = PendingRequests::new(MIN_BYTES);
        let mut ids = Vec::new();
        for _ in 0..2000 {
            ids.push(store.put(saml(1000)).await.unwrap());
        }
        let held = store.weighted_size();
        assert!(held <= MIN_BYTES, "{held} bytes held, bound {MIN_BYTES}");
        assert!(held > MIN_BYTES / 2, "the bound is used, not undercut: {held}");
        assert!(store.get(ids.last().unwrap()).await.unwrap().is_some(), "the newest request is kept");
        assert!(store.get(&ids[0]).await.unwrap().is_none(), "the oldest went first");
    }

    #[tokio::test]
    async fn with_a_store_requests_are_shared_taken_once_and_bounded_per_window() {
        let kv: Arc<dyn KvStore> = Arc::new(crate::domain::store::memory::MemoryKv::new());
        let a = PendingRequests::with_store(MIN_BYTES, kv.clone());
        let b = PendingRequests::with_store(MIN_BYTES, kv.clone());
        let oidc = Pending::Oidc(Box::new(federation::oidc::AuthorizationRequest {
            client_id: "app".into(),
            redirect_uri: "https://app/cb".into(),
            scopes: vec!["openid".into()],
            state: Some("s".into()),
            nonce: None,
            code_challenge: Some("c".into()),
            prompt: None,
            max_age: None,
            login_hint: None,
            prompt_values: Vec::new(),
            idp_hint: None,
            response_mode: Default::default(),
            received_at: 5,
        }));
        let id = a.put(oidc).await.unwrap();
        assert!(matches!(b.get(&id).await.unwrap(), Some(Pending::Oidc(r)) if r.client_id == "app"), "seen by b");
        assert!(b.take(&id).await.unwrap().is_some());
        assert!(a.take(&id).await.unwrap().is_none(), "taken once across replicas");
        // A flood: the store holds at most the bound per window; the rest stays in the replica's memory.
        let mut ids = Vec::new();
        for _ in 0..1000 {
            ids.push(a.put(saml(1000)).await.unwrap());
        }
        let in_store = {
            let mut n = 0u64;
            for id in &ids {
                n += u64::from(kv.get(&key(id)).await.unwrap().is_some());
            }
            n
        };
        assert!(in_store * 1000 <= MIN_BYTES, "{in_store} requests in the store, bound {MIN_BYTES} bytes");
        assert!(a.get(ids.last().unwrap()).await.unwrap().is_some(), "the newest is still kept (in memory)");
    }

    #[tokio::test]
    async fn a_replica_reserves_the_windows_bytes_in_chunks_and_the_bound_holds_across_replicas() {
        let kv: Arc<dyn KvStore> = Arc::new(crate::domain::store::memory::MemoryKv::new());
        let bound = MIN_BYTES * 4;
        let (a, b) = (PendingRequests::with_store(bound, kv.clone()), PendingRequests::with_store(bound, kv.clone()));
        let chunk = chunk_of(bound);
        let mut ids = Vec::new();
        for i in 0..40 {
            let replica = if i % 2 == 0 { &a } else { &b };
            ids.push(replica.put(saml(100)).await.unwrap());
        }
        let spent: u64 = ids.iter().map(|id| u64::try_from(id.len() + saml(100).weight()).unwrap()).sum();
        let counted = kv.increment(&window_key(current_window()), 0, TTL).await.unwrap();
        assert!(counted >= spent, "every byte stored is counted: {counted} < {spent}");
        assert!(counted <= spent + 2 * chunk, "at most a chunk per replica unspent: {counted} for {spent}");
        assert_eq!(counted % chunk, 0, "counted in chunks of {chunk}, not per request: {counted}");
        for id in &ids {
            assert!(kv.get(&key(id)).await.unwrap().is_some(), "every request is in the store");
        }
        // A flood over both replicas: the store gets at most the bound, the rest stays in each replica's memory.
        let mut flood = Vec::new();
        for i in 0..4000 {
            let replica = if i % 2 == 0 { &a } else { &b };
            flood.push(replica.put(saml(1000)).await.unwrap());
        }
        let mut stored_bytes = 0;
        for id in ids.iter().chain(&flood) {
            if let Some(raw) = kv.get(&key(id)).await.unwrap() {
                let p: Pending = decode(&raw, "sign-in request").unwrap();
                stored_bytes += u64::try_from(id.len() + p.weight()).unwrap();
            }
        }
        assert!(stored_bytes <= bound, "{stored_bytes} bytes in the store, bound {bound}");
        let counted = kv.increment(&window_key(current_window()), 0, TTL).await.unwrap();
        assert!(counted <= bound + 2 * chunk, "past the bound a replica stops counting in the store: {counted}");
        assert!(stored_bytes > bound - 2 * chunk - 2000, "the bound is used, not undercut: {stored_bytes} of {bound}");
        assert!(b.get(flood.last().unwrap()).await.unwrap().is_some(), "the newest is still kept (in memory)");
    }

    #[test]
    fn weight_counts_what_the_client_sent() {
        assert!(saml(10_000).weight() >= 10_000);
        assert!(saml(0).weight() < saml(80).weight());
    }
}
