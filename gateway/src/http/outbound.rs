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
