//! Connections to the directory: TLS (LDAPS or StartTLS with rustls), failover across the configured URLs with
//! backoff for URLs that just failed, per-operation timeouts, and pools of reusable connections that never hold
//! more than `max_connections` open. A pooled connection that died is dropped and replaced on the next use.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::LdapConfig;
use crate::error::{Error, Result, Unavailable};

/// Result code 49: invalid credentials.
pub const RC_INVALID_CREDENTIALS: u32 = 49;

#[derive(Debug)]
struct Endpoint {
    url: String,
    /// Skip this URL until then (exponential backoff after failures), unless every URL is backing off.
    down_until: Option<Instant>,
    failures: u32,
}

/// Opens connections, trying the URLs in order.
pub struct Connector {
    endpoints: Mutex<Vec<Endpoint>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    start_tls: bool,
    insecure: bool,
    connect_timeout: Duration,
    /// Per-operation timeout.
    pub op_timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("start_tls", &self.start_tls).finish_non_exhaustive()
    }
}

impl Connector {
    /// Builds the connector (reads `ca_file`; no network I/O).
    pub fn new(cfg: &LdapConfig) -> Result<Self> {
        let tls = match &cfg.ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let ca_file = |source| Error::CaFile { path: path.clone(), source };
                for cert in CertificateDer::pem_file_iter(path).map_err(ca_file)? {
                    roots
                        .add(cert.map_err(ca_file)?)
                        .map_err(|source| Error::CaCertificate { path: path.clone(), source })?;
                }
                if roots.is_empty() {
                    // Otherwise every TLS connection would fail later with "unknown issuer".
                    return Err(ca_file(rustls::pki_types::pem::Error::NoItemsFound));
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(Error::TlsSettings)?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(config))
            }
            None => None,
        };
        if cfg.tls_insecure_skip_verify {
            tracing::warn!("ldap.tls_insecure_skip_verify = true: the directory's certificate is NOT checked");
        }
        let endpoints = cfg.urls.iter().map(|u| Endpoint { url: u.clone(), down_until: None, failures: 0 }).collect();
        Ok(Self {
            endpoints: Mutex::new(endpoints),
            tls,
            start_tls: cfg.start_tls,
            insecure: cfg.tls_insecure_skip_verify,
            connect_timeout: cfg.connect_timeout,
            op_timeout: cfg.operation_timeout,
        })
    }

    /// The URLs in the order to try now: healthy ones first (configured order), then those backing off.
    fn order(&self) -> Vec<String> {
        let now = Instant::now();
        let Ok(eps) = self.endpoints.lock() else { return Vec::new() };
        let (up, down): (Vec<_>, Vec<_>) = eps.iter().partition(|e| e.down_until.is_none_or(|t| t <= now));
        up.into_iter().chain(down).map(|e| e.url.clone()).collect()
    }

    fn mark(&self, url: &str, ok: bool) {
        if let Ok(mut eps) = self.endpoints.lock()
            && let Some(e) = eps.iter_mut().find(|e| e.url == url)
        {
            if ok {
                e.failures = 0;
                e.down_until = None;
            } else {
                e.failures = e.failures.saturating_add(1);
                let backoff =
                    Duration::from_millis(250u64.saturating_mul(1 << e.failures.min(7))).min(Duration::from_secs(30));
                e.down_until = Some(Instant::now() + backoff);
            }
        }
    }

    /// Connects to the first URL that answers. `slot` is one of a pool's `max_connections` permits: the task that
    /// drives the connection holds it until the socket is closed, so a pool counts sockets, not handles.
    async fn connect(&self, slot: OwnedSemaphorePermit) -> Result<Conn> {
        let mut tried = Vec::new();
        let mut last = None;
        for url in self.order() {
            let mut settings = LdapConnSettings::new()
                .set_conn_timeout(self.connect_timeout)
                .set_starttls(self.start_tls && url.starts_with("ldap://"))
                .set_no_tls_verify(self.insecure);
            if let Some(tls) = &self.tls {
                settings = settings.set_config(tls.clone());
            }
            match LdapConnAsync::with_settings(settings, &url).await {
                Ok((conn, ldap)) => {
                    tokio::spawn(async move {
                        // Ends when every handle is dropped or the directory closes the socket; then the slot is
                        // free again.
                        let _slot = slot;
                        if let Err(e) = conn.drive().await {
                            tracing::debug!(error = %e, "ldap connection ended");
                        }
                    });
                    self.mark(&url, true);
                    return Ok(Conn { ldap, url: url.into() });
                }
                Err(e) => {
                    match crate::error::tls_hint(&e) {
                        Some(hint) => {
                            tracing::warn!(%url, error = %e, hint, "ldap connect failed; trying the next URL")
                        }
                        None => tracing::warn!(%url, error = %e, "ldap connect failed; trying the next URL"),
                    }
                    self.mark(&url, false);
                    tried.push(url);
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(source) => {
                let hint = crate::error::tls_hint(&source);
                Unavailable::Connect { urls: tried, hint, source: Box::new(source) }
            }
            None => Unavailable::NoUrl,
        }
        .into())
    }
}

/// One open connection and the directory URL it goes to (named in errors). Derefs to [`Ldap`].
pub struct Conn {
    ldap: Ldap,
    url: Arc<str>,
}

impl Conn {
    /// The URL this connection goes to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `Unavailable` for a transport-level failure (or timeout) of `operation` on this connection.
    pub fn failed(&self, operation: &'static str, source: ldap3::LdapError) -> Error {
        Unavailable::Operation { operation, url: self.url.to_string(), source: Box::new(source) }.into()
    }
}

impl Deref for Conn {
    type Target = Ldap;
    fn deref(&self) -> &Ldap {
        &self.ldap
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Ldap {
        &mut self.ldap
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("url", &self.url).finish_non_exhaustive()
    }
}

/// A connection handed out by [`Pool::get`].
#[derive(Debug)]
pub struct Checkout {
    /// The connection; give it back with [`Pool::put`] when it is healthy.
    pub conn: Conn,
    /// Opened just now (not bound yet), rather than taken from the idle list.
    pub fresh: bool,
}

/// Connections of one kind (service-account searches, or user binds): at most `max_connections` open at once
/// (idle or in use, counted until the socket is closed), at most `pool_size` of them kept idle. When all are busy,
/// [`Pool::get`] waits up to `pool_wait_timeout` for one to come back or close, then fails as `Unavailable`.
pub struct Pool {
    /// `service` or `bind`, for logs and errors.
    name: &'static str,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    /// One permit per open socket.
    open: Arc<Semaphore>,
    max_open: usize,
    wait: Duration,
    /// Signalled when a connection goes back to the idle list.
    returned: Notify,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("max_open", &self.max_open)
            .field("max_idle", &self.max_idle)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Pool {
    /// An empty pool named `name` (`service`, `bind`) with `max_connections`, `pool_size` and `pool_wait_timeout`
    /// from `cfg`.
    pub fn new(name: &'static str, cfg: &LdapConfig) -> Self {
        let max_open = cfg.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            name,
            idle: Mutex::new(Vec::new()),
            max_idle: cfg.pool_size.min(max_open),
            open: Arc::new(Semaphore::new(max_open)),
            max_open,
            wait: cfg.pool_wait_timeout,
            returned: Notify::new(),
        }
    }

    /// An idle connection that is still open, or a new one from `connector` if fewer than `max_connections` are
    /// open; otherwise waits (up to `pool_wait_timeout`) for either.
    pub async fn get(&self, connector: &Connector) -> Result<Checkout> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            // Registered before looking, so a connection put back in between still wakes us.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(conn) = self.take() {
                return Ok(Checkout { conn, fresh: false });
            }
            let slot = match self.open.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(TryAcquireError::NoPermits) => tokio::select! {
                    slot = self.open.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => return Err(self.exhausted()),
                    },
                    () = &mut returned => continue,
                    () = tokio::time::sleep_until(deadline) => return Err(self.exhausted()),
                },
                Err(TryAcquireError::Closed) => return Err(self.exhausted()),
            };
            // One may have come back while we waited for the slot: reuse it and leave the slot to others.
            if let Some(conn) = self.take() {
                return Ok(Checkout { conn, fresh: false });
            }
            return connector.connect(slot).await.map(|conn| Checkout { conn, fresh: true });
        }
    }

    fn exhausted(&self) -> Error {
        tracing::warn!(
            pool = self.name,
            max_connections = self.max_open,
            waited = ?self.wait,
            "ldap connection pool exhausted: every connection stayed busy for ldap.pool_wait_timeout; raise \
             ldap.max_connections (or ldap.pool_wait_timeout)"
        );
        Unavailable::PoolExhausted { pool: self.name, max: self.max_open, waited: self.wait }.into()
    }

    /// An idle connection that is still open, if any.
    fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut c) = idle.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    /// Returns a healthy connection to the pool (or closes it when `pool_size` are idle already).
    pub fn put(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
            drop(idle);
            self.returned.notify_one();
        }
    }

    /// Drops every idle connection (after the directory failed, they are likely dead).
    pub fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// A loopback TCP server that counts the sockets open to it (plain `ldap://` opens no LDAP exchange until the
    /// first operation, so a connection is just a socket) and the most ever open at once.
    async fn server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (o, p) = (open.clone(), peak.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (url, open, peak)
    }

    fn pool_for(url: &str, wait: Duration) -> (Arc<Connector>, Arc<Pool>) {
        let cfg = LdapConfig {
            urls: vec![url.to_string()],
            max_connections: 2,
            pool_wait_timeout: wait,
            ..Default::default()
        };
        (Arc::new(Connector::new(&cfg).unwrap()), Arc::new(Pool::new("bind", &cfg)))
    }

    async fn settle(open: &AtomicUsize, want: usize) {
        for _ in 0..200 {
            if open.load(Ordering::SeqCst) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{} sockets open, expected {want}", open.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn all_busy_waits_for_a_returned_or_closed_connection_then_fails_as_unavailable() {
        let (url, open, _) = server().await;
        let (connector, pool) = pool_for(&url, Duration::from_millis(300));
        let a = pool.get(&connector).await.unwrap();
        let b = pool.get(&connector).await.unwrap();
        assert!(a.fresh && b.fresh);
        settle(&open, 2).await;

        let started = Instant::now();
        let err = pool.get(&connector).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300), "waited pool_wait_timeout");
        assert!(matches!(err, Error::Unavailable(Unavailable::PoolExhausted { pool: "bind", max: 2, .. })), "{err:?}");
        assert!(err.chain().contains("raise ldap.max_connections"), "{}", err.chain());
        assert_eq!(open.load(Ordering::SeqCst), 2, "no third socket");

        // A waiter gets the connection put back...
        let waiter = tokio::spawn({
            let (connector, pool) = (connector.clone(), pool.clone());
            async move { pool.get(&connector).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        pool.put(a.conn);
        let reused = waiter.await.unwrap().unwrap();
        assert!(!reused.fresh, "the returned connection, not a new one");

        // ...or a new one once a busy connection is closed.
        let waiter = tokio::spawn({
            let (connector, pool) = (connector.clone(), pool.clone());
            async move { pool.get(&connector).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(b);
        let opened = waiter.await.unwrap().unwrap();
        assert!(opened.fresh);
        settle(&open, 2).await;
        drop((opened, reused));
        settle(&open, 0).await;
    }

    /// Sockets connected to `port` as the kernel sees them on our side (the server's own count lags: it sees a
    /// close only when its task reads the EOF, possibly after it accepted the next connection).
    ///
    /// The kernel lists the table a page per read, so one listing is no snapshot: a socket closing early in it and
    /// one opening later could both be seen. Only sockets in two listings in a row count: they were open together.
    fn established_to(port: u16) -> usize {
        let remote = format!(":{port:04X}");
        let listing = || -> std::collections::HashSet<(String, String)> {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            table
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() > 3 && f[2].ends_with(&remote) && f[3] == "01").then(|| (f[1].into(), f[2].into()))
                })
                .collect()
        };
        let first = listing();
        listing().intersection(&first).count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_never_opens_more_than_max_connections() {
        let (url, _, _) = server().await;
        let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        let (connector, pool) = pool_for(&url, Duration::from_secs(10));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(0));
        let sampler = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    peak.fetch_max(established_to(port), Ordering::SeqCst);
                }
            }
        });
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (connector, pool, peak) = (connector.clone(), pool.clone(), peak.clone());
                tokio::spawn(async move {
                    let c = pool.get(&connector).await?;
                    // Counted while it is held, too: on a loaded machine the sampler thread may not run during
                    // the burst at all, and every tenth holder then still looks.
                    if i % 10 == 0 {
                        peak.fetch_max(established_to(port), Ordering::SeqCst);
                    }
                    // Held long enough (200 × 2 ms over 2 connections) for the sampler's two listings to see them.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    // Some connections die in use: their slot frees when the socket closes.
                    if i % 7 != 0 {
                        pool.put(c.conn);
                    }
                    Ok::<_, Error>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        sampler.join().unwrap();
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=2).contains(&peak), "peak {peak}");
    }
}
