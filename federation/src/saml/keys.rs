//! The IdP's signing key and certificate: loaded from PEM files, or a self-signed RSA-2048 certificate generated on
//! first start and kept in `keys_dir` (key file 0600). Extra certificates (the next or previous one during a
//! rotation) are published in metadata next to the active one.

use std::path::Path;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::error::SamlError;

/// The active signing key and the certificates metadata publishes.
pub struct SigningKeys {
    key: RsaKeyPair,
    /// DER of the active certificate (goes into every signature's KeyInfo).
    pub cert_der: Vec<u8>,
    /// DER of certificates published besides the active one (rotation).
    pub extra_certs_der: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("cert_len", &self.cert_der.len()).finish_non_exhaustive()
    }
}

const KEY_FILE: &str = "saml-signing.key";
const CERT_FILE: &str = "saml-signing.crt";

impl SigningKeys {
    /// Loads the key (PKCS#8 or PKCS#1 RSA PEM) and certificate (PEM) from files.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Self, SamlError> {
        let cert = CertificateDer::from_pem_file(cert_file)
            .map_err(|e| SamlError::Keys(format!("reading saml.cert_file = {}: {e}", cert_file.display())))?;
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| SamlError::Keys(format!("reading saml.key_file = {}: {e}", key_file.display())))?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(SamlError::Keys(format!("saml.key_file = {} is not an RSA key", key_file.display()))),
        }
        .map_err(|e| SamlError::Keys(format!("saml.key_file = {} is not a usable RSA key: {e}", key_file.display())))?;
        Ok(Self { key, cert_der: cert.to_vec(), extra_certs_der: Vec::new() })
    }

    /// Loads the pair from `dir`, generating a self-signed RSA-2048 certificate (valid 20 years) on first start.
    pub fn load_or_generate(dir: &Path, common_name: &str) -> Result<Self, SamlError> {
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        if key_path.is_file() && cert_path.is_file() {
            return Self::from_files(&cert_path, &key_path);
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| SamlError::Keys(format!("creating saml.keys_dir = {}: {e}", dir.display())))?;
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|e| SamlError::Keys(format!("generating an RSA key: {e}")))?;
        let pkcs8 = key.as_der().map_err(|e| SamlError::Keys(format!("encoding the RSA key: {e}")))?;
        let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec());
        let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
            .map_err(|e| SamlError::Keys(format!("preparing the certificate key: {e}")))?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| SamlError::Keys(e.to_string()))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "fedgate SAML IdP");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(20 * 365);
        let cert = params.self_signed(&rc_key).map_err(|e| SamlError::Keys(format!("self-signing: {e}")))?;
        write_private(&key_path, &pem("PRIVATE KEY", pkcs8.secret_pkcs8_der()))?;
        std::fs::write(&cert_path, cert.pem())
            .map_err(|e| SamlError::Keys(format!("writing {}: {e}", cert_path.display())))?;
        tracing::info!(cert = %cert_path.display(), "generated a self-signed SAML signing certificate");
        Ok(Self { key, cert_der: cert.der().to_vec(), extra_certs_der: Vec::new() })
    }

    /// Adds a certificate to publish in metadata (rotation).
    pub fn publish_extra(&mut self, cert_file: &Path) -> Result<(), SamlError> {
        let cert = CertificateDer::from_pem_file(cert_file)
            .map_err(|e| SamlError::Keys(format!("reading {}: {e}", cert_file.display())))?;
        self.extra_certs_der.push(cert.to_vec());
        Ok(())
    }

    /// RSA PKCS#1 v1.5 signature over `message`.
    pub fn sign(&self, alg: super::signature::Algorithm, message: &[u8]) -> Result<Vec<u8>, SamlError> {
        use super::signature::Algorithm;
        match alg {
            Algorithm::RsaSha256 => {
                let mut sig = vec![0u8; self.key.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                self.key
                    .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|e| SamlError::Keys(format!("signing: {e}")))?;
                Ok(sig)
            }
            Algorithm::RsaSha1 => {
                let pkcs8 = self.key.as_der().map_err(|e| SamlError::Keys(format!("encoding the key: {e}")))?;
                super::legacy_sha1::sign(pkcs8.as_ref(), message).map_err(SamlError::Keys)
            }
        }
    }

    /// The public key (PKCS#1 RSAPublicKey DER), for tests that verify our signatures.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_private(path: &Path, contents: &str) -> Result<(), SamlError> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| SamlError::Keys(format!("writing {}: {e}", path.display())))?;
    f.write_all(contents.as_bytes()).map_err(|e| SamlError::Keys(format!("writing {}: {e}", path.display())))
}
