//! What every handler can reach: configuration, directory, sessions, throttle, metrics, clock.

use std::ops::Deref;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::session::SessionStore;
use crate::throttle::LoginThrottle;

/// Shared state, cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// The validated configuration.
    pub config: Config,
    /// Where users log in.
    pub directory: Directory,
    /// Where sessions live.
    pub sessions: Box<dyn SessionStore>,
    /// Failed-login counters.
    pub throttle: LoginThrottle,
    /// Request and event counters.
    pub metrics: Metrics,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The OpenID Connect provider, when `[oidc]` is configured.
    pub oidc: Option<Arc<federation::oidc::Provider>>,
    /// The SAML identity provider, when `[saml]` is configured.
    pub saml: Option<Arc<federation::saml::IdentityProvider>>,
    /// The identity header names of `[proxy.headers]`, parsed.
    pub identity_headers: crate::proxy::forward::IdentityHeaders,
    /// Proxy routes with their upstream clients.
    pub upstreams: Vec<crate::proxy::Upstream>,
    /// Access tokens minted for upstreams, per session id (half the token lifetime).
    pub upstream_tokens: moka::sync::Cache<String, String>,
    /// Protocol requests waiting for a login.
    pub pending: crate::pending::PendingRequests,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Whether cookies must carry `Secure` (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.config.server.public_url.scheme() == "https"
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("directory", &self.directory).finish()
    }
}
