//! The HTTP server: one accept loop for plain TCP and rustls TLS, HTTP/1.1 and HTTP/2 (ALPN or prior knowledge),
//! WebSocket upgrades, and graceful shutdown (stop accepting, let in-flight requests finish within a grace period).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::TlsConfig;
use crate::proxy::{self, ResponseBody};
use crate::state::AppState;

/// Builds the rustls server configuration from PEM files (ALPN: h2, http/1.1).
pub fn tls_acceptor(cfg: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let certs = load_certs(&cfg.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).with_context(|| {
        format!("while reading the private key from server.tls.key_file = {}", cfg.key_file.display())
    })?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .context("while choosing TLS versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the TLS certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("while reading server.tls.cert_file = {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("server.tls.cert_file = {} is not PEM", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "server.tls.cert_file = {} holds no certificate", path.display());
    Ok(certs)
}

/// One connection's service. Every request first gets its canonical path ([`proxy::claim`]); one a proxy route
/// claims goes straight to [`proxy::serve`], past the router
/// and its middleware, because that is the path every request of a proxied app takes; everything else goes to
/// the gateway's router.
#[derive(Clone)]
struct Dispatch {
    state: AppState,
    router: Router,
    peer: SocketAddr,
    /// The peer's address as `X-Forwarded-For` wants it, made once per connection.
    client_ip: axum::http::HeaderValue,
}

impl hyper::service::Service<Request<Incoming>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        match proxy::claim(&self.state, &mut req) {
            Ok(Some(index)) => {
                let (state, client_ip) = (self.state.clone(), self.client_ip.clone());
                return Box::pin(async move { Ok(proxy::serve(state, index, client_ip, req).await) });
            }
            Ok(None) => {}
            Err(e) => {
                let resp = proxy::refuse(&self.state, &req, e);
                return Box::pin(async move { Ok(resp) });
            }
        }
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
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

/// Serves the gateway (`state`, and `router` for its own routes) on `listener` until `shutdown` resolves, then
/// drains connections for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let ticker = tokio::spawn(keep_timer_driver_busy());
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Running out of file descriptors must not end the server; back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let client_ip = proxy::forward::client_ip_value(peer);
        let hyper_service = Dispatch { state: state.clone(), router: router.clone(), peer, client_ip };
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), hyper_service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    ticker.abort();
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace = ?grace, "grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Keeps one timer of the runtime always due within a second. Every proxied request arms a response timeout; when
/// tokio's timer driver is parked with no timer due sooner, arming one wakes the driver's thread (a system call and
/// a context switch per request, measured as 1.7 times the context switches of a bare hyper proxy). With this tick
/// due first, the request timeouts, all later, never have to wake it.
async fn keep_timer_driver_busy() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// Binds the listener, with the address in the error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("while binding server.listen = {addr}"))
}
