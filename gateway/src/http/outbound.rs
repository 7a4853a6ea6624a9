//! Outbound HTTP(S) connections, for proxy upstreams and SCIM targets: rustls on aws-lc-rs trusting the given CA
//! file (or the public web roots), HTTP/1.1 and HTTP/2 by ALPN, `TCP_NODELAY`, a connect timeout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The connector every outbound client uses.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A connector trusting the certificates in `ca_file` (PEM), or the public web roots when there is none.
pub fn connector(ca_file: Option<&Path>, connect_timeout: Duration) -> anyhow::Result<Connector> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| anyhow::anyhow!("ca_file {}: {e}", path.display()))?
            {
                roots.add(cert.map_err(|e| anyhow::anyhow!("ca_file {}: {e}", path.display()))?)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

/// Posts `application/x-www-form-urlencoded` bodies to URIs relying parties registered (OIDC back-channel logout),
/// each attempt bounded by a timeout.
#[derive(Clone)]
pub struct FormPoster {
    client: hyper_util::client::legacy::Client<Connector, http_body_util::Full<bytes::Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for FormPoster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormPoster").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URI is not usable.
    #[error("not a usable URI: {0}")]
    Uri(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection or the exchange failed.
    #[error("the request failed")]
    Transport(#[source] hyper_util::client::legacy::Error),
}

impl FormPoster {
    /// A poster trusting the public web roots, giving each attempt `timeout` (connect included).
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector(None, timeout)?);
        Ok(Self { client, timeout })
    }

    /// POSTs `body` (already form-encoded) to `uri`; the answer's status.
    pub async fn post(&self, uri: &str, body: String) -> Result<hyper::StatusCode, PostError> {
        let request = hyper::Request::post(uri)
            .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(hyper::header::CACHE_CONTROL, "no-store")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| PostError::Uri(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(PostError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(PostError::Transport(e)),
            Ok(Ok(response)) => Ok(response.status()),
        }
    }
}

/// A small HTTP client for an upstream OpenID Connect provider's discovery, JWKS, token and userinfo endpoints:
/// no redirects followed, each exchange bounded by a timeout, responses bounded in size.
#[derive(Clone)]
pub struct JsonClient {
    client: hyper_util::client::legacy::Client<Connector, http_body_util::Full<bytes::Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for JsonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// The largest response body [`JsonClient`] reads.
const MAX_JSON_BYTES: usize = 1 << 20;

impl JsonClient {
    /// A client trusting `ca_file` (or the public web roots).
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> anyhow::Result<Self> {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector(ca_file, timeout)?);
        Ok(Self { client, timeout })
    }

    /// Sends `request`; the whole response (body at most 1 MiB).
    pub async fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, PostError> {
        use http_body_util::BodyExt as _;
        let (parts, body) = request.into_parts();
        let request = hyper::Request::from_parts(parts, http_body_util::Full::new(bytes::Bytes::from(body)));
        let exchange = async {
            let response = self.client.request(request).await.map_err(PostError::Transport)?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_JSON_BYTES)
                .collect()
                .await
                .map_err(|e| PostError::Uri(format!("reading the response: {e}")))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body.to_vec()))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(PostError::Timeout(self.timeout)),
            Ok(r) => r,
        }
    }
}
