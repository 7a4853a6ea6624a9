//! A throwaway test CA and server certificates for loopback TLS (the gateway's rustls listener, slapd's LDAPS).
//! webpki refuses a CA certificate used as a server certificate, so the leaf is a separate end-entity certificate
//! (CA:FALSE, serverAuth, SAN 127.0.0.1 and localhost) signed by the CA.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// PEM files written to a directory: `ca.pem`, `server.pem`, `server.key`.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate clients trust.
    pub ca_pem: PathBuf,
    /// The server certificate (leaf only).
    pub cert_pem: PathBuf,
    /// The server's private key (PKCS#8).
    pub key_pem: PathBuf,
}

impl TestPki {
    /// Generates a CA named `name` and a server certificate for 127.0.0.1 / localhost, written into `dir`.
    pub fn generate(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("CA key")?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().context("server key")?;
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        leaf.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let cert = leaf.signed_by(&key, &issuer)?;

        let pki =
            Self { ca_pem: dir.join("ca.pem"), cert_pem: dir.join("server.pem"), key_pem: dir.join("server.key") };
        std::fs::write(&pki.ca_pem, ca_cert.pem())?;
        std::fs::write(&pki.cert_pem, cert.pem())?;
        std::fs::write(&pki.key_pem, key.serialize_pem())?;
        Ok(pki)
    }
}
