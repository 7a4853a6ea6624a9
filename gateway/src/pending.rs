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
}

/// The waiting requests. Bounded and short-lived.
#[derive(Clone)]
pub struct PendingRequests {
    cache: Cache<String, Pending>,
}

impl std::fmt::Debug for PendingRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequests").field("len", &self.cache.entry_count()).finish()
    }
}

impl Default for PendingRequests {
    fn default() -> Self {
        Self { cache: Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(15 * 60)).build() }
    }
}

impl PendingRequests {
    /// Keeps `request` and returns its id.
    pub fn put(&self, request: Pending) -> String {
        let id = crate::random::token();
        self.cache.insert(id.clone(), request);
        id
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
