//! The composition root: the gateway's router (every feature's routes, their own paths collected on the way),
//! the per-connection service that sends each request to the proxy or the router, and starting and stopping a
//! gateway.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use hyper::body::Incoming;
use tower::ServiceExt as _;

use crate::config::Config;
use crate::domain::clock::Clock;
use crate::http::error::AppError;
use crate::http::paths::{OwnPaths, OwnRoutes};
use crate::http::request::RequestContext;
use crate::http::server;
use crate::state::AppState;
use crate::upstream::{ResponseBody, forward};

/// Every feature's routes, with the request pipeline around them, and the paths they take.
pub fn router(state: AppState) -> (Router, OwnPaths) {
    let max_body = state.config.server.max_body_bytes;
    let (router, own) = OwnRoutes::new()
        .merge(crate::health::router())
        .merge(crate::login::router())
        .merge(crate::oidc::router())
        .merge(crate::saml::router())
        .merge(crate::proxy::router())
        .merge(keycloak_realm(&state))
        .into_parts();
    let router = router
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state);
    (router, own)
}

/// With `[keycloak]`: Keycloak's realm URLs (`{path_prefix}/realms/{realm}/...`) beside the root paths, the whole
/// realm namespace reserved.
fn keycloak_realm(state: &AppState) -> OwnRoutes<AppState> {
    let Some(kc) = &state.config.keycloak else { return OwnRoutes::new() };
    let base = kc.realm_path();
    OwnRoutes::new()
        .reserve_owned_prefix(format!("{base}/"))
        .merge(crate::oidc::realm_router(&base, &state.config))
        .merge(crate::saml::realm_router(&base))
        .merge(crate::login::realm_router(&base))
}

/// The answer for a path no gateway route and no proxy route takes.
async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::NotFound(format!("There is nothing at {} on this gateway.", uri.path()))
}

/// The request pipeline of the gateway's own routes ([`RequestContext`]: span, request id, branded errors,
/// security headers, metrics under the matched route). Proxied requests go through the same context in
/// [`crate::proxy::serve`], past the router.
///
/// A body that did not arrive within `server.body_read_timeout` ([`server::BodyDeadline`]) makes whatever the
/// handler answered a 408, and closes an HTTP/1 connection.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ctx = RequestContext::begin(&mut req);
    let route = req.extensions().get::<MatchedPath>().cloned();
    let deadline = req.extensions().get::<server::BodyDeadline>().cloned();
    let http1 = req.version() < axum::http::Version::HTTP_2;
    let run = next.run(req);
    let mut resp = if ctx.span().is_disabled() {
        run.await
    } else {
        tracing::Instrument::instrument(run, ctx.span().clone()).await
    };
    if deadline.is_some_and(|d| d.expired()) {
        let timeout = state.config.server.body_read_timeout;
        ctx.span().in_scope(|| tracing::debug!(?timeout, "request body too slow"));
        resp = AppError::BodyTimeout(timeout).into_response();
        if http1 {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    let resp = ctx.own_response(resp, &state.config.ui);
    ctx.finish(&state.metrics, route.as_ref().map_or("unmatched", MatchedPath::as_str), resp.status());
    resp
}

/// One connection's service. Every request first gets its canonical path ([`crate::proxy::claim`]); one a proxy
/// route claims goes straight to [`crate::proxy::serve`], past the router and its middleware, because that is the
/// path every request of a proxied app takes; everything else goes to the gateway's router. Requests whose host
/// is ambiguous go nowhere ([`server::ambiguous_host`]).
#[derive(Clone)]
struct Dispatch {
    state: AppState,
    router: Router,
    own: Arc<OwnPaths>,
    peer: SocketAddr,
    /// The peer's address as `X-Forwarded-For` wants it, made once per connection.
    client_ip: HeaderValue,
    /// `server.trusted_proxies`: requests from these are attributed to the client `X-Forwarded-For` names.
    trusted: Arc<[crate::config::net::IpRange]>,
}

impl hyper::service::Service<Request<Incoming>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if let Some(problem) = server::ambiguous_host(&req) {
            let resp = refuse(&self.state, req, AppError::BadRequest(problem.into()));
            return Box::pin(std::future::ready(Ok(resp)));
        }
        match crate::proxy::claim(&self.state, &self.own, &mut req) {
            Ok(Some(index)) => {
                let real = (!self.trusted.is_empty())
                    .then(|| forward::ip_value(server::client_ip(self.peer.ip(), req.headers(), &self.trusted)));
                let client = forward::ClientAddr { peer: self.client_ip.clone(), real };
                let state = self.state.clone();
                return Box::pin(async move { Ok(crate::proxy::serve(state, index, client, req).await) });
            }
            Ok(None) => {}
            Err(e) => return Box::pin(std::future::ready(Ok(refuse(&self.state, req, e)))),
        }
        let (parts, body) = req.into_parts();
        let (body, deadline) = server::deadline_body(body, self.state.config.server.body_read_timeout);
        let mut req = Request::from_parts(parts, body);
        // Handlers read the client's address (throttle, logs) from ConnectInfo: behind a trusted proxy, the one it
        // names.
        let client = if self.trusted.is_empty() {
            self.peer
        } else {
            SocketAddr::new(server::client_ip(self.peer.ip(), req.headers(), &self.trusted), self.peer.port())
        };
        req.extensions_mut().insert(ConnectInfo(client));
        if let Some(deadline) = deadline {
            req.extensions_mut().insert(deadline);
        }
        let router = self.router.clone();
        Box::pin(async move {
            let resp = match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            Ok(resp.map(ResponseBody::Right))
        })
    }
}

/// The gateway's own answer for a request refused before routing, through the same request context as every
/// other. HTTP/1 connections are closed after it: what else the client sent on them is not to be trusted either.
fn refuse(state: &AppState, mut req: Request<Incoming>, problem: AppError) -> Response<ResponseBody> {
    let ctx = RequestContext::begin(&mut req);
    ctx.span().in_scope(|| tracing::debug!(%problem, "request refused before routing"));
    let mut resp = ctx.own_response(problem.into_response(), &state.config.ui);
    if req.version() < axum::http::Version::HTTP_2 {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    ctx.finish(&state.metrics, "refused", resp.status());
    resp.map(ResponseBody::Right)
}

/// A running gateway: its address and a handle to stop it. Used by `main` and by the end-to-end tests.
#[derive(Debug)]
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
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

/// After the connections have drained: waits, within `server.shutdown_grace`, for the work requests left running
/// and for the back-channel logouts this replica recorded (their retries included), so an upgrade or a scale-down
/// does not hold them up until another replica's sweeper or the next start takes them over.
async fn finish_background(state: &AppState) {
    state.background.close();
    if !crate::state::backchannel::busy(state) {
        return;
    }
    let grace = state.config.server.shutdown_grace;
    tracing::info!(tasks = state.background.len(), ?grace, "waiting for back-channel logout deliveries before exiting");
    let finished = async {
        state.background.wait().await;
        crate::state::backchannel::drain(state).await;
    };
    if tokio::time::timeout(grace, finished).await.is_err() {
        tracing::warn!(
            tasks = state.background.len(),
            "back-channel logout deliveries cut short by server.shutdown_grace (with an embedded or Redis store, the next start or another replica takes them over)"
        );
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = server::bind(config.server.listen).await?;
    start_on(listener, config, clock, shutdown).await
}

/// Like [`start`], on a listener the caller already bound (tests bind port 0 first to learn the port).
pub async fn start_on(
    listener: tokio::net::TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    install_crypto_provider();
    let tls = config.server.tls.as_ref().map(server::tls_acceptor).transpose()?;
    let addr = listener.local_addr()?;
    let state = crate::state::build(config, clock)?;
    // AWS-LC seeds its random generator from CPU jitter on first use (~30 ms here); do it now, beside start-up,
    // so that the first login does not wait for it.
    tokio::task::spawn_blocking(|| drop(fedgate_types::random::token()));
    crate::scim::spawn_periodic(&state);
    crate::state::key_watch::spawn(&state);
    crate::state::backchannel::spawn_sweeper(&state);
    if !state.brokers.is_empty() {
        // Discovery of the upstream providers, now and again every 30 s for those still unavailable; a provider
        // that is down does not hold up the start.
        let brokers = state.brokers.clone();
        tokio::spawn(async move {
            loop {
                brokers.discover_all().await;
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            }
        });
    }
    let (router, own) = router(state.clone());
    let own = Arc::new(own);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        tokio::select! {
            () = shutdown => {},
            _ = rx => {},
        }
    };
    let serving = state.clone();
    // Validated with the configuration: an entry that does not parse was reported there.
    let trusted: Arc<[crate::config::net::IpRange]> =
        state.config.server.trusted_proxies.iter().filter_map(|p| p.parse().ok()).collect();
    let task = tokio::spawn(async move {
        let make_service = |peer| Dispatch {
            state: serving.clone(),
            router: router.clone(),
            own: own.clone(),
            peer,
            client_ip: forward::client_ip_value(peer),
            trusted: trusted.clone(),
        };
        let served = server::serve(listener, &serving.config.server, tls, make_service, stop).await;
        finish_background(&serving).await;
        served
    });
    Ok(Running { addr, state, stop: Some(tx), task })
}
