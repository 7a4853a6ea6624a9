//! What every handler can reach: configuration, directory, sessions, throttle, metrics, clock, the protocol
//! engines and the proxy's upstreams; built once from the configuration ([`build`]). [`sign_in`] is the browser's
//! sign-in session as every feature sees it.

pub mod backchannel;
pub mod key_watch;
pub mod sign_in;
pub mod single_logout;

use std::ops::Deref;
use std::sync::Arc;

use std::time::Duration;

use crate::config::{Config, StoreKind};
use crate::domain::clock::Clock;
use crate::domain::directory::Directory;
use crate::domain::directory::StaticDirectory;
use crate::domain::pending::PendingRequests;
use crate::domain::session::SessionStore;
use crate::domain::session::{Lifetimes, MemoryStore};
use crate::domain::store::KvStore;
use crate::domain::store::sessions::KvSessionStore;
use crate::domain::throttle::LoginThrottle;
use crate::http::metrics::Metrics;

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
    pub identity_headers: crate::upstream::IdentityHeaders,
    /// Proxy routes with their upstream clients.
    pub upstreams: Vec<crate::upstream::Upstream>,
    /// Access tokens minted for upstreams, per session id (half the token lifetime).
    pub upstream_tokens: moka::sync::Cache<String, String>,
    /// Protocol requests waiting for a login.
    pub pending: PendingRequests,
    /// Delivers OIDC back-channel logout tokens.
    pub logout_poster: crate::http::outbound::FormPoster,
    /// The back-channel logouts still to deliver, in the state store (any replica retries them).
    pub backchannel: Arc<backchannel::Deliveries>,
    /// Work a request started and that must not be cut short by a shutdown (back-channel logout deliveries and
    /// their retries): waited for, within `server.shutdown_grace`, after the connections have drained.
    pub background: tokio_util::task::TaskTracker,
    /// SAML single logouts on their way through the session's SPs.
    pub logout_chains: single_logout::Chains,
    /// IDs of SAML LogoutRequests already taken (replays are refused).
    pub seen_saml: crate::domain::replay::SeenMessages,
    /// The state store behind sessions, grants, pending requests and throttling (`None`: `kind = "memory"`).
    pub store: Option<Arc<dyn KvStore>>,
    /// The `[[upstream.oidc]]` providers users may sign in through.
    pub brokers: Arc<crate::broker::Brokers>,
    /// Which upstream account holds each username signed in through a provider with `link = "none"`.
    pub upstream_names: crate::domain::upstream_names::UpstreamNames,
    /// `[roles]`, for users signed in through an upstream provider.
    pub roles: ldap_mapper::RoleMap,
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

/// The session cookie's name. Over https without `session.cookie_domain` it carries the `__Host-` prefix
/// (`__Host-fedgate_session`): browsers keep such a cookie only when this host set it, `Secure`, `Path=/`, without
/// `Domain`, so a sibling subdomain cannot plant its own session in the browser (cookie tossing: a
/// `fedgate_session` with `Domain=example.com` set by `evil.example.com` was sent first and read as the user's
/// session, so the user signed in and then worked as the attacker). With `cookie_domain` the cookie must be shared
/// with the subdomains, and the configured name is kept.
fn session_cookie_name(config: &Config) -> String {
    let name = &config.session.cookie_name;
    if config.server.public_url.scheme() == "https"
        && config.session.cookie_domain.is_none()
        && !name.starts_with(crate::http::cookies::HOST_PREFIX)
    {
        format!("{}{name}", crate::http::cookies::HOST_PREFIX)
    } else {
        name.clone()
    }
}

/// Builds the application state from a validated configuration. Does no network I/O, so start-up stays fast and
/// a directory that is down at start-up is reported by `/readyz` instead of preventing the start.
pub fn build(mut config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    config.session.cookie_name = session_cookie_name(&config);
    let roles = ldap_mapper::RoleMap::new(config.roles.clone());
    let directory = match (&config.directory, config.ldap_configured()) {
        (None, true) => match config.ldap.clone() {
            Some(ldap) => Directory::Ldap(Box::new(
                ldap_mapper::LdapDirectory::new(ldap, roles).map_err(|e| anyhow::anyhow!("[ldap]: {}", e.chain()))?,
            )),
            None => anyhow::bail!("no directory configured: add [ldap] or [directory]"),
        },
        (Some(d), _) => Directory::Static(StaticDirectory::new(d, roles)),
        // Sign-in only through [[upstream.oidc]]: an empty directory that knows nobody.
        (None, _) if !config.upstream.oidc.is_empty() => {
            Directory::Static(StaticDirectory::new(&Default::default(), roles.clone()))
        }
        (None, _) => anyhow::bail!("no directory configured: add [ldap] or [directory]"),
    };
    let lifetimes = Lifetimes { idle: config.session.idle_timeout, absolute: config.session.absolute_timeout };
    let store = crate::domain::store::open(&config.store).map_err(|e| {
        anyhow::Error::new(e)
            .context(format!("while opening the state store (store.kind = {})", config.store.kind.as_str()))
    })?;
    // The one place the backend is chosen: everything below works on the traits.
    let (sessions, throttle, pending): (Box<dyn SessionStore>, _, _) = match &store {
        Some(kv) => (
            Box::new(match config.store.kind {
                // One process owns the embedded directory: its first level never goes stale.
                StoreKind::Embedded => KvSessionStore::owned(kv.clone(), lifetimes, config.session.max_sessions),
                _ => KvSessionStore::new(kv.clone(), lifetimes, config.store.cache_ttl, config.session.max_sessions),
            }),
            LoginThrottle::with_store(config.login.clone(), kv.clone()),
            PendingRequests::with_store(config.session.max_pending_bytes, kv.clone()),
        ),
        None => (
            Box::new(MemoryStore::new(config.session.max_sessions, lifetimes)),
            LoginThrottle::new(config.login.clone()),
            PendingRequests::new(config.session.max_pending_bytes),
        ),
    };
    let upstreams = config
        .proxy
        .effective_routes()
        .into_iter()
        .filter(|r| !r.upstream.is_empty())
        .map(crate::upstream::Upstream::new)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| anyhow::anyhow!("[proxy]: {e}"))?;
    let saml = config
        .saml
        .as_ref()
        .map(|cfg| {
            federation::saml::IdentityProvider::new(cfg.clone(), &config.server.public_url).map(|idp| {
                Arc::new(match &config.keycloak {
                    Some(kc) => idp.with_realm_url(&kc.realm_url(&config.server.public_url)),
                    None => idp,
                })
            })
        })
        .transpose()
        .map_err(|e| anyhow::anyhow!("[saml]: {e}"))?;
    let oidc = config
        .oidc
        .as_ref()
        .map(|cfg| oidc_provider(cfg, &config.server.public_url, config.keycloak.as_ref(), store.clone()))
        .transpose()?;
    let identity_headers = crate::upstream::IdentityHeaders::new(&config.proxy.headers)
        .map_err(|e| anyhow::anyhow!("[proxy.headers]: {e}"))?;
    let brokers = Arc::new(crate::broker::Brokers::new(&config)?);
    let upstream_roles = ldap_mapper::RoleMap::new(config.roles.clone());
    Ok(AppState::new(Inner {
        config,
        directory,
        sessions,
        throttle,
        metrics: Default::default(),
        clock,
        oidc,
        saml,
        identity_headers,
        upstreams,
        upstream_tokens: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(60))
            .build(),
        pending,
        logout_poster: crate::http::outbound::FormPoster::new(backchannel::TIMEOUT)?,
        backchannel: Arc::new(backchannel::Deliveries::new(kv_or_memory(&store))),
        upstream_names: crate::domain::upstream_names::UpstreamNames::new(kv_or_memory(&store)),
        background: tokio_util::task::TaskTracker::new(),
        logout_chains: single_logout::chains(store.clone()),
        seen_saml: crate::domain::replay::SeenMessages::new(store.clone(), 100_000),
        store,
        brokers,
        roles: upstream_roles,
    }))
}

/// The state store, or (`kind = "memory"`) one in the process.
fn kv_or_memory(store: &Option<Arc<dyn KvStore>>) -> Arc<dyn KvStore> {
    store.clone().unwrap_or_else(|| Arc::new(crate::domain::store::memory::MemoryKv::new()))
}

/// The OpenID Connect provider of `[oidc]`, its signing keys loaded (or made, the first time).
/// With `[keycloak]`, the issuer is the realm URL and discovery lists Keycloak's endpoint paths (the root
/// `/oauth2/...` paths keep working, and their tokens carry the same issuer: one issuer per realm, as in Keycloak).
fn oidc_provider(
    cfg: &federation::oidc::OidcConfig,
    public_url: &url::Url,
    keycloak: Option<&crate::config::KeycloakConfig>,
    store: Option<Arc<dyn KvStore>>,
) -> anyhow::Result<Arc<federation::oidc::Provider>> {
    use anyhow::Context as _;
    for c in &cfg.clients {
        let wildcards = c.wildcard_uris();
        if !wildcards.is_empty() {
            tracing::warn!(
                client_id = %c.client_id,
                uris = ?wildcards,
                "wildcard redirect URIs (redirect_uri_rules = \"keycloak\"): any URI under them receives codes; register exact URIs where you can"
            );
        }
    }
    let keys = federation::oidc::KeySet::load_or_generate(&cfg.keys_dir, cfg.signing_algorithm).with_context(|| {
        format!("while loading the OIDC signing keys from oidc.keys_dir = {}", cfg.keys_dir.display())
    })?;
    let store: Arc<dyn federation::oidc::GrantStore> = match store {
        Some(kv) => Arc::new(crate::domain::store::grants::KvGrantStore::new(kv)),
        None => Arc::new(federation::oidc::MemoryGrantStore::default()),
    };
    let issuer = match keycloak {
        Some(kc) => url::Url::parse(&kc.realm_url(public_url))
            .with_context(|| format!("the realm URL of keycloak.realm = {:?} is not a URL", kc.realm))?,
        None => public_url.clone(),
    };
    let mut provider = federation::oidc::Provider::new(cfg.clone(), issuer, keys, store)
        .context("while setting up the OpenID Connect provider")?;
    if keycloak.is_some() {
        provider = provider.with_keycloak_layout().context("while setting up the Keycloak realm endpoints")?;
    }
    Ok(Arc::new(provider))
}
