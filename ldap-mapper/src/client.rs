//! Connections to the directory: TLS (LDAPS or StartTLS with rustls), failover across the configured URLs with
//! backoff for URLs that just failed, per-operation timeouts, and a small pool of reusable connections. A pooled
//! connection that died is dropped and replaced on the next use.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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

    /// Connects to the first URL that answers.
    pub async fn connect(&self) -> Result<Conn> {
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
                        if let Err(e) = conn.drive().await {
                            tracing::debug!(error = %e, "ldap connection ended");
                        }
                    });
                    self.mark(&url, true);
                    return Ok(Conn { ldap, url: url.into() });
                }
                Err(e) => {
                    tracing::warn!(%url, error = %e, "ldap connect failed; trying the next URL");
                    self.mark(&url, false);
                    tried.push(url);
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(source) => Unavailable::Connect { urls: tried, source: Box::new(source) },
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

/// A pool of idle connections of one kind.
pub struct Pool {
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("max_idle", &self.max_idle).finish()
    }
}

impl Pool {
    /// An empty pool keeping at most `max_idle` connections.
    pub fn new(max_idle: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), max_idle }
    }

    /// An idle connection that is still open, if any.
    pub fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(mut c) = idle.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    /// Returns a healthy connection to the pool.
    pub fn put(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
        }
    }

    /// Drops every idle connection (after the directory failed, they are likely dead).
    pub fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}
