//! The HTTP server: one accept loop for plain TCP and rustls TLS, HTTP/1.1 and HTTP/2 (ALPN or prior knowledge),
//! WebSocket upgrades, graceful shutdown (stop accepting, let in-flight requests finish within a grace period),
//! and the limits that keep slow, idle or numerous clients from using it up (connection count, header and idle
//! timeouts, header size, HTTP/2 stream limits).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::http::header;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::net::IpRange;
use crate::config::{MAX_CONNECTIONS_LIMIT, MAX_HEADER_BYTES_LIMIT, MIN_HEADER_BYTES, ServerConfig, TlsConfig};

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

/// HTTP/2 streams a client may have open at once on one connection.
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams a client may open and reset before the server has accepted them (the "rapid reset" attack,
/// CVE-2023-44487), and streams the server may reset for protocol errors before it ends the connection.
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;
/// HTTP/2 keep-alive: a PING after this long without frames; the connection ends if the PING is not answered
/// within the same time (a vanished peer frees its connection).
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// A connection's service, counting the requests it starts for the connection's idle watch in
/// [`serve_connection`].
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    requests: Arc<AtomicU64>,
}

impl<S: hyper::service::Service<R>, R> hyper::service::Service<R> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: R) -> Self::Future {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.call(req)
    }
}

/// Why a request's target host is ambiguous, if it is: two `Host` fields, or a `Host` that disagrees with the
/// authority of an absolute-form target (RFC 9112 §3.2.2) or of HTTP/2's `:authority` (RFC 9113 §8.3.1). Routes,
/// the proxy and forward-auth decide by host, and a server further on may read the other value, so a request
/// that names two hosts is refused rather than resolved one way here and another way there.
///
/// A host no web server reads as one name is refused too (what nginx answers "invalid host header"): a space or
/// control character, a slash or backslash, an `@` (user information has no place in `Host`), or an empty label
/// (`..`). One final dot is a fully qualified name and fine (the routes read `admin.example.com.` as
/// `admin.example.com`, as nginx does).
pub fn ambiguous_host<B>(req: &Request<B>) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some("The request has more than one Host header, so the site it is meant for is ambiguous.");
    }
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    if host.map(axum::http::HeaderValue::as_bytes).into_iter().chain(authority).any(invalid_host) {
        return Some(
            "The request's Host is not a valid host name: it has a space, control character, slash, backslash, \
             @ or empty label (..).",
        );
    }
    match (host, req.uri().authority()) {
        (Some(host), Some(authority)) if !same_authority(host.as_bytes(), authority, req.uri().scheme_str()) => {
            Some("The request's Host header names a different site than its request target.")
        }
        _ => None,
    }
}

/// The client a request is from: `peer`, unless `peer` is one of the `trusted` proxies (`server.trusted_proxies`);
/// then the last address in `X-Forwarded-For` (all its fields, read right to left) that is not a trusted proxy,
/// skipping the trusted hops that appended themselves. A client cannot choose its address this way: what it
/// sends itself stands left of the address its first trusted proxy appended. An entry that is not an address
/// ends the walk at the last trusted hop.
pub fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let fields: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    let mut last = peer;
    for entry in fields.iter().rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => last = ip,
            Ok(ip) => return ip,
            Err(_) => return last,
        }
    }
    last
}

/// Whether a `Host` value (or an authority) holds what no host name or port may hold.
fn invalid_host(host: &[u8]) -> bool {
    host.iter().any(|&b| b <= b' ' || b == 0x7f || matches!(b, b'/' | b'\\' | b'@'))
        || host.windows(2).any(|w| w == b"..")
}

/// Whether a `Host` value names the same host and port as `authority` (case-insensitive host; a missing port is
/// the scheme's default).
fn same_authority(host: &[u8], authority: &http::uri::Authority, scheme: Option<&str>) -> bool {
    let Ok(host) = http::uri::Authority::try_from(host) else { return false };
    let default_port = if scheme == Some("https") { 443 } else { 80 };
    host.host().eq_ignore_ascii_case(authority.host())
        && host.port_u16().unwrap_or(default_port) == authority.port_u16().unwrap_or(default_port)
        && !authority.as_str().contains('@')
}

/// The connection limits and timeouts of `[server]`, with the connection limit fitted to the open-file limit.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    max_header_bytes: usize,
}

impl Limits {
    fn new(cfg: &ServerConfig) -> Self {
        let mut max_connections = cfg.max_connections.clamp(1, MAX_CONNECTIONS_LIMIT);
        // Each client connection may need a second descriptor for its upstream; keep half for those, the
        // directory, keys and logs, so that the limit is reached before the descriptors run out.
        if let Some(files) = open_file_limit() {
            let fit = usize::try_from(files / 2).unwrap_or(usize::MAX).max(1);
            if fit < max_connections {
                tracing::warn!(
                    max_connections,
                    open_file_limit = files,
                    serving = fit,
                    "server.max_connections is more than the open-file limit allows; serving at most half that \
                     many connections at once (raise LimitNOFILE or `ulimit -n` to serve more)"
                );
                max_connections = fit;
            }
        }
        Self {
            header_read_timeout: cfg.header_read_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections,
            max_header_bytes: cfg.max_header_bytes.clamp(MIN_HEADER_BYTES, MAX_HEADER_BYTES_LIMIT),
        }
    }

    /// The HTTP/1.1 + HTTP/2 connection builder with these limits.
    fn builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(WatchedTimer)
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .keep_alive_interval(H2_KEEP_ALIVE)
            .keep_alive_timeout(H2_KEEP_ALIVE);
        builder
    }
}

/// hyper's HTTP/1 header-read timer, checked when the connection is polled instead of registered with tokio's
/// timer wheel: hyper arms it for every request on a kept-alive connection, and registering and removing a tokio
/// timer each time was most of the cost of the timeout. The connection's watch in [`serve_connection`] wakes the
/// connection at least every quarter of `header_read_timeout`, so a deadline is noticed within 1.25 times it.
#[derive(Debug, Clone, Copy)]
struct WatchedTimer;

impl hyper::rt::Timer for WatchedTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline(std::time::Instant::now() + duration))
    }

    fn sleep_until(&self, at: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline(at))
    }
}

/// A deadline that is ready once passed, looked at whenever the connection's task runs (see [`WatchedTimer`]).
struct Deadline(std::time::Instant);

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if std::time::Instant::now() >= self.0 { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    }
}

impl hyper::rt::Sleep for Deadline {}

/// The soft open-file limit (`ulimit -n`) where the platform tells it (`/proc/self/limits`); `None` when unknown
/// or unlimited.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// A run of failures of one kind in the accept loop, logged once when it starts (and not again within a minute)
/// and once when it ends, instead of once per failure.
#[derive(Default)]
struct Episode {
    failures: u64,
    warned: bool,
    last_warning: Option<std::time::Instant>,
}

impl Episode {
    /// Counts a failure; true when this one should be logged.
    fn begin(&mut self) -> bool {
        self.failures += 1;
        if self.failures > 1 {
            return false;
        }
        self.warned = self.last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if self.warned {
            self.last_warning = Some(std::time::Instant::now());
        }
        self.warned
    }

    /// Ends the run; the number of failures when its start was logged.
    fn end(&mut self) -> Option<u64> {
        let failures = std::mem::take(&mut self.failures);
        (failures > 0 && std::mem::take(&mut self.warned)).then_some(failures)
    }
}

/// An accept error that concerns only the connection being accepted (it went away before we took it), not the
/// server's resources.
fn concerns_one_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted | K::WouldBlock
    )
}

/// Serves `listener` until `shutdown` resolves, then drains connections for up to `shutdown_grace`. Each connection's
/// requests go to the service `make_service` makes for it from the peer's address.
///
/// Limits (`[server]`): at most `max_connections` at once (more wait in the listen queue); a connection must send
/// its first request header within `header_read_timeout` (TLS handshake included), and on HTTP/1.1 each next one
/// within that time too; a connection starting no request for `idle_timeout` is closed once its requests finish.
/// Running out of file descriptors pauses accepting with a growing delay and logs once, not once per attempt.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    config: &ServerConfig,
    tls: Option<TlsAcceptor>,
    make_service: M,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()>
where
    M: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = Limits::new(config);
    let grace = config.shutdown_grace;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = tokio::sync::watch::channel(());
    let ticker = tokio::spawn(keep_timer_driver_busy());
    let builder = Arc::new(limits.builder());
    let (mut full, mut exhausted) = (Episode::default(), Episode::default());
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if full.begin() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        if let Some(waits) = full.end() {
            tracing::info!(waits, "below the connection limit again");
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if concerns_one_connection(&e) => {
                    tracing::debug!(error = %e, "a connection went away before it was accepted");
                    continue;
                }
                Err(e) => {
                    // Out of file descriptors (EMFILE, ENFILE) or memory: the listener must keep working, so wait
                    // for connections to close instead of spinning, and say so once.
                    if exhausted.begin() {
                        tracing::warn!(error = %e, "accept failed; pausing new connections until resources free up");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {},
                        () = &mut shutdown => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff = ACCEPT_BACKOFF_MIN;
        if let Some(failures) = exhausted.end() {
            tracing::info!(failures, "accepting connections again");
        }
        let _ = stream.set_nodelay(true);
        let requests = Arc::new(AtomicU64::new(0));
        let service = Counted { inner: make_service(peer), requests: requests.clone() };
        let builder = builder.clone();
        let tls = tls.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let started = std::time::Instant::now();
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await
                {
                    Ok(Ok(tls_stream)) => {
                        serve_connection(tls_stream, &builder, service, &requests, limits, started, stopping).await
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
                None => serve_connection(stream, &builder, service, &requests, limits, started, stopping).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    ticker.abort();
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    let _ = stop.send(());
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = permits.acquire_many(all) => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace = ?grace, "grace period over; closing remaining connections"),
    }
    Ok(())
}

/// The first pause after a failed accept, and the longest.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves one connection until it ends. It is asked to close (requests in progress finish first; hyper then
/// ends it) when the server shuts down, when no first request started within `header_read_timeout` of `started`
/// (hyper's own header timeout starts only once it knows the protocol, and not at all for HTTP/2), or when no
/// new request started for `idle_timeout`.
async fn serve_connection<I, S, B>(
    io: I,
    builder: &Builder<TokioExecutor>,
    service: Counted<S>,
    requests: &AtomicU64,
    limits: Limits,
    started: std::time::Instant,
    mut stopping: tokio::sync::watch::Receiver<()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    // Checked a few times per period, so a connection closes between the timeout and 1.25 times it.
    let period = (limits.header_read_timeout.min(limits.idle_timeout) / 4).max(Duration::from_millis(25));
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seen, mut quiet_since, mut closing) = (0, started, false);
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            // Ticks on while closing too: they are what polls hyper's header deadline ([`WatchedTimer`]).
            _ = check.tick() => {
                let now = requests.load(Ordering::Relaxed);
                if now != seen {
                    (seen, quiet_since) = (now, std::time::Instant::now());
                } else if !closing && quiet_since.elapsed() >= if now == 0 { limits.header_read_timeout } else { limits.idle_timeout } {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            Ok(()) = stopping.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
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

/// The whole body of a request to the gateway's own endpoints must arrive within `server.body_read_timeout`, or a
/// client sending a byte now and then would hold its connection (and with `max_connections` of them, the
/// gateway) for as long as it likes. [`deadline_body`] wraps the body; past the deadline reading it fails with
/// [`BodyTimeout`] and [`BodyDeadline::expired`] says so, so that the answer can be a 408.
#[derive(Debug, Clone, Default)]
pub struct BodyDeadline(Arc<std::sync::atomic::AtomicBool>);

impl BodyDeadline {
    /// Whether the body was still arriving when its time ran out.
    pub fn expired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reading a request body took longer than `server.body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (server.body_read_timeout)")]
pub struct BodyTimeout(pub Duration);

/// `body`, failing with [`BodyTimeout`] once `timeout` has passed from now without its end. A body that is
/// already complete (no body at all) is passed as it is, without a timer.
pub fn deadline_body(body: Incoming, timeout: Duration) -> (axum::body::Body, Option<BodyDeadline>) {
    if http_body::Body::is_end_stream(&body) {
        return (axum::body::Body::new(body), None);
    }
    let deadline = BodyDeadline::default();
    let timed =
        DeadlineBody { inner: body, sleep: Box::pin(tokio::time::sleep(timeout)), timeout, deadline: deadline.clone() };
    (axum::body::Body::new(timed), Some(deadline))
}

struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    deadline: BodyDeadline,
}

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.deadline.0.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn request(target: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().uri(target);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn a_request_naming_two_hosts_is_ambiguous() {
        assert!(ambiguous_host(&request("/x", &["a.example"])).is_none());
        assert!(ambiguous_host(&request("/x", &[])).is_none());
        assert!(ambiguous_host(&request("/x", &["a.example", "a.example"])).is_some(), "even twice the same");
        assert!(ambiguous_host(&request("/x", &["a.example", "b.example"])).is_some());
        for (target, host) in [
            ("http://A.example/x", "a.example"),
            ("http://a.example:80/x", "a.example"),
            ("https://a.example/x", "a.example:443"),
            ("http://a.example:8080/x", "a.example:8080"),
            ("http://a.example/x", ""),
        ] {
            let hosts: &[&str] = if host.is_empty() { &[] } else { &[host] };
            assert!(ambiguous_host(&request(target, hosts)).is_none(), "{target} with Host {host}");
        }
        for (target, host) in [
            ("http://admin.example/x", "a.example"),
            ("http://a.example:8080/x", "a.example"),
            ("https://a.example/x", "a.example:80"),
            ("http://user@a.example/x", "a.example"),
            ("http://a.example/x", "a.example/evil"),
        ] {
            assert!(ambiguous_host(&request(target, &[host])).is_some(), "{target} with Host {host}");
        }
    }

    #[test]
    fn an_accept_episode_is_logged_once_at_its_start_and_end() {
        let mut e = Episode::default();
        assert!(e.begin(), "the first failure is logged");
        for _ in 0..600 {
            assert!(!e.begin(), "the following ones are not");
        }
        assert_eq!(e.end(), Some(601));
        assert_eq!(e.end(), None, "nothing to report without failures");
        assert!(!e.begin(), "a new episode within a minute of the last warning stays quiet");
        assert_eq!(e.end(), None);
    }

    #[test]
    fn the_open_file_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
