//! Protocol requests waiting for the user to log in (an OIDC authorization request, a SAML AuthnRequest).
//!
//! The validated request is kept server-side under a random id for a few minutes; the login page's `rd` points at
//! the protocol's resume URL with that id. Re-running the original request after login would lose its timing
//! (`prompt=login`) and, for SAML HTTP-POST, its body.

use std::time::Duration;

use moka::sync::Cache;

/// A request waiting for a login.
#[derive(Debug, Clone)]
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
}

impl std::fmt::Debug for PendingRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequests")
            .field("len", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
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
        Self { cache }
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
            }
            Self::Saml { sp, request, relay_state } => {
                sp.len()
                    + opt(relay_state)
                    + request.as_ref().map_or(0, |r| {
                        std::mem::size_of::<federation::saml::AuthnRequest>()
                            + r.id.len()
                            + r.issuer.len()
                            + opt(&r.acs_url)
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

impl PendingRequests {
    /// Keeps `request` and returns its id.
    pub fn put(&self, request: Pending) -> String {
        let id = fedgate_types::random::token();
        self.cache.insert(id.clone(), request);
        id
    }

    /// Keeps `request` under an id the caller chose (a random `state`).
    pub fn insert(&self, id: String, request: Pending) {
        self.cache.insert(id, request);
    }

    /// The request under `id`, if it has not expired. It stays until it expires or is [`taken`](Self::take), so a
    /// reload of the login page still works.
    pub fn get(&self, id: &str) -> Option<Pending> {
        self.cache.get(id)
    }

    /// Removes and returns the request under `id`.
    pub fn take(&self, id: &str) -> Option<Pending> {
        self.cache.remove(id)
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

    fn saml(relay_bytes: usize) -> Pending {
        Pending::Saml { sp: "wiki".into(), request: None, relay_state: Some("r".repeat(relay_bytes)) }
    }

    #[test]
    fn the_store_is_bounded_by_bytes_and_keeps_the_newest() {
        let store = PendingRequests::new(crate::config::MIN_PENDING_BYTES);
        let ids: Vec<String> = (0..2000).map(|_| store.put(saml(1000))).collect();
        let held = store.weighted_size();
        assert!(
            held <= crate::config::MIN_PENDING_BYTES,
            "{held} bytes held, bound {}",
            crate::config::MIN_PENDING_BYTES
        );
        assert!(held > crate::config::MIN_PENDING_BYTES / 2, "the bound is used, not undercut: {held}");
        assert!(store.get(ids.last().unwrap()).is_some(), "the newest request is kept");
        assert!(store.get(&ids[0]).is_none(), "the oldest went first");
    }

    #[test]
    fn weight_counts_what_the_client_sent() {
        assert!(saml(10_000).weight() >= 10_000);
        assert!(saml(0).weight() < saml(80).weight());
    }
}
