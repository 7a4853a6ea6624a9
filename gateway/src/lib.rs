//! fedgate's gateway: configuration, the HTTP server, the login UI and sessions, and the wiring of the
//! protocol crates (`federation`) and the directory (`ldap-mapper`).

pub mod apps;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod directory;
pub mod error;
pub mod metrics;
pub mod outbound;
pub mod pages;
pub mod pending;
pub mod principal;
pub mod proxy;
pub mod random;
pub mod redirect;
pub mod routes;
pub mod scim;
pub mod server;
pub mod session;
pub mod state;
pub mod telemetry;
pub mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::clock::Clock;
use crate::config::Config;
use crate::directory::{Directory, StaticDirectory};
use crate::session::{Lifetimes, MemoryStore};
use crate::state::{AppState, Inner};

/// Builds the application state from a validated configuration. Does no network I/O, so start-up stays fast and
/// a directory that is down at start-up is reported by `/readyz` instead of preventing the start.
pub fn build_state(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let roles = ldap_mapper::RoleMap::new(config.roles.clone());
    let directory = match (&config.directory, config.ldap_configured()) {
        (None, true) => match config.ldap.clone() {
            Some(ldap) => Directory::Ldap(Box::new(
                ldap_mapper::LdapDirectory::new(ldap, roles).map_err(|e| anyhow::anyhow!("[ldap]: {}", e.chain()))?,
            )),
            None => anyhow::bail!("no directory configured: add [ldap] or [directory]"),
        },
        (Some(d), _) => Directory::Static(StaticDirectory::new(d, roles)),
        (None, _) => anyhow::bail!("no directory configured: add [ldap] or [directory]"),
    };
    let lifetimes = Lifetimes { idle: config.session.idle_timeout, absolute: config.session.absolute_timeout };
    let sessions = Box::new(MemoryStore::new(config.session.max_sessions, lifetimes));
    let throttle = throttle::LoginThrottle::new(config.login.clone());
    let upstreams = config
        .proxy
        .effective_routes()
        .into_iter()
        .filter(|r| !r.upstream.is_empty())
        .map(proxy::Upstream::new)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| anyhow::anyhow!("[proxy]: {e}"))?;
    let saml = config
        .saml
        .as_ref()
        .map(|cfg| federation::saml::IdentityProvider::new(cfg.clone(), &config.server.public_url).map(Arc::new))
        .transpose()
        .map_err(|e| anyhow::anyhow!("[saml]: {e}"))?;
    let oidc = config.oidc.as_ref().map(|cfg| routes::oidc::provider(cfg, &config.server.public_url)).transpose()?;
    let identity_headers = proxy::forward::IdentityHeaders::new(&config.proxy.headers)
        .map_err(|e| anyhow::anyhow!("[proxy.headers]: {e}"))?;
    let pending = pending::PendingRequests::new(config.session.max_pending_bytes);
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
    }))
}

/// The complete router with its middleware.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .merge(routes::health::router())
        .merge(routes::login::router())
        .merge(routes::account::router())
        .merge(routes::oidc::router())
        .merge(routes::saml::router())
        .merge(proxy::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The answer for a path no gateway route and no proxy route takes.
async fn not_found(uri: axum::http::Uri) -> error::AppError {
    error::AppError::NotFound(format!("There is nothing at {} on this gateway.", uri.path()))
}

/// `X-Request-Id`.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id: a random per-process prefix and a counter in hex (unique, cheap, not a secret).
fn next_request_id() -> HeaderValue {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The prefix only has to differ between processes, so it comes from the process id and the start time, not
    // from the random number generator (whose first use seeds itself for tens of milliseconds).
    let prefix = PREFIX.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = (u64::from(std::process::id()) << 32) ^ now.as_secs() ^ u64::from(now.subsec_nanos());
        let mixed = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
        let mut p = [0u8; 8];
        for (i, d) in p.iter_mut().enumerate() {
            *d = HEX[((mixed >> (28 - 4 * i)) & 0xf) as usize];
        }
        p
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let digits = (64 - n.leading_zeros() as usize).div_ceil(4).max(1);
    let mut buf = [0u8; 8 + 1 + 16];
    buf[..8].copy_from_slice(prefix);
    buf[8] = b'-';
    for i in 0..digits {
        buf[8 + digits - i] = HEX[((n >> (4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&buf[..9 + digits]).unwrap_or(HeaderValue::from_static("-"))
}

/// The request's id: the client's `X-Request-Id` when it is a plausible one, else a new one.
pub(crate) fn request_id(headers: &axum::http::HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .filter(|v| v.len() <= 64 && v.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
        .cloned()
        .unwrap_or_else(next_request_id)
}

/// The headers every response the gateway makes itself carries: the request id and the security headers (where
/// the handler did not set its own).
pub(crate) fn finish_own_response(mut resp: Response, request_id: HeaderValue) -> Response {
    let h = resp.headers_mut();
    h.insert(X_REQUEST_ID, request_id);
    h.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
    resp
}

/// For the gateway's own routes (proxied requests have their own, lighter path in [`proxy::serve`]): one span per
/// request (method, path without the query, request id), error responses turned into branded pages (or JSON), one
/// log line when it ends, metrics, and the security headers.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = request_id(req.headers());
    req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let wants_json = error::wants_json(req.headers());
    let span = tracing::info_span!(
        "request",
        %method,
        path = %req.uri().path(),
        request_id = request_id.to_str().unwrap_or_default()
    );
    let resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let resp = error::brand_error_page(&state, resp, wants_json);
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    span.in_scope(|| tracing::debug!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished"));
    state.metrics.observe(route.as_ref().map_or("unmatched", MatchedPath::as_str), method.as_str(), status, elapsed);
    finish_own_response(resp, request_id)
}

/// A running gateway: its address and a handle to stop it. Used by `main` and by the end-to-end tests.
#[derive(Debug)]
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// The shared state (tests inspect it).
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until the server stops (on the shutdown future given to [`start`]).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let _keep_open = self.stop.take();
        (&mut self.task).await?
    }

    /// Stops accepting, drains, and waits for the server task.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await?
    }
}

/// Makes aws-lc-rs the process-wide rustls provider (the only crypto library in the build). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Binds `server.listen` and starts serving in the background. `shutdown` (besides [`Running::shutdown`]) also
/// stops it.
pub async fn start(
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.server.listen).await?;
    start_on(listener, config, clock, shutdown).await
}

/// Like [`start`], on a listener the caller already bound (tests bind port 0 first to learn the port).
pub async fn start_on(
    listener: tokio::net::TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    install_crypto_provider();
    let tls = config.server.tls.as_ref().map(server::tls_acceptor).transpose()?;
    let addr = listener.local_addr()?;
    let grace: Duration = config.server.shutdown_grace;
    let state = build_state(config, clock)?;
    // AWS-LC seeds its random generator from CPU jitter on first use (~30 ms here); do it now, beside start-up,
    // so that the first login does not wait for it.
    tokio::task::spawn_blocking(|| drop(random::token()));
    scim::spawn_periodic(&state);
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        tokio::select! {
            () = shutdown => {},
            _ = rx => {},
        }
    };
    let task = tokio::spawn(server::serve(listener, state.clone(), app, tls, stop, grace));
    Ok(Running { addr, state, stop: Some(tx), task })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[test]
    fn request_ids_are_distinct_and_header_safe() {
        let (a, b) = (super::next_request_id(), super::next_request_id());
        assert_ne!(a, b);
        let a = a.to_str().unwrap();
        assert!(a.len() >= 10 && a.as_bytes()[8] == b'-', "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'), "{a}");
        let mut h = axum::http::HeaderMap::new();
        h.insert(super::X_REQUEST_ID, "trace-42".parse().unwrap());
        assert_eq!(super::request_id(&h), "trace-42", "a plausible client id is kept");
        h.insert(super::X_REQUEST_ID, "no spaces please".parse().unwrap());
        assert_ne!(super::request_id(&h), "no spaces please");
    }
}
