//! The IdP's signing key and certificate: loaded from PEM files, or a self-signed RSA-2048 certificate generated on
//! first start and kept in `keys_dir` (directory 0700, key file 0600 written with `create_new`, so an existing key is
//! never overwritten). Extra certificates (the next or previous one during a rotation) are published in metadata next
//! to the active one.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::error::{KeyRejected, Unspecified};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::error::SamlError;
use crate::key_file::{self, KeyFileError};

/// Why the SAML signing key or a certificate could not be loaded, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key or certificate file, or `keys_dir`, could not be read, created or written.
    #[error("{0}")]
    File(#[from] KeyFileError),
    /// A certificate file holds no PEM certificate.
    #[error("certificate {} holds no PEM certificate: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: pem::Error,
    },
    /// A key file holds no PEM private key.
    #[error("private key {} holds no PEM private key: {source}", path.display())]
    PrivateKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: pem::Error,
    },
    /// The private key is not an RSA key (PKCS#8 or PKCS#1).
    #[error("private key {} is not an RSA key", path.display())]
    NotRsa {
        /// The file.
        path: PathBuf,
    },
    /// aws-lc-rs refused the RSA key (too short, inconsistent, …).
    #[error("private key {} is not a usable RSA key: {source}", path.display())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: KeyRejected,
    },
    /// Generating an RSA-2048 key failed.
    #[error("generating an RSA-2048 key failed: {0}")]
    Generate(#[source] Unspecified),
    /// Encoding the key as PKCS#8 failed.
    #[error("encoding the RSA key as PKCS#8 failed: {0}")]
    Encode(#[source] Unspecified),
    /// Making the self-signed certificate failed.
    #[error("making the self-signed certificate failed: {0}")]
    SelfSign(#[source] rcgen::Error),
    /// RSA-SHA256 signing failed.
    #[error("RSA-SHA256 signing failed: {0}")]
    Sign(#[source] Unspecified),
    /// RSA-SHA1 signing (through AWS-LC directly) failed.
    #[error("RSA-SHA1 signing failed: {0}")]
    SignSha1(&'static str),
    /// The persistent NameID secret file holds fewer than 32 bytes.
    #[error("the persistent NameID secret {} holds fewer than 32 bytes", path.display())]
    ShortSecret {
        /// The file.
        path: PathBuf,
    },
    /// The element to sign has no `ID` attribute for the signature's reference (a bug in the caller).
    #[error("the element to sign has no ID")]
    NoId,
}

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

/// The private key's file name in `keys_dir`.
pub const KEY_FILE: &str = "saml-signing.key";
/// The certificate's file name in `keys_dir`.
pub const CERT_FILE: &str = "saml-signing.crt";

impl SigningKeys {
    /// Loads the key (PKCS#8 or PKCS#1 RSA PEM) and certificate (PEM) from files.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Self, SamlError> {
        let cert = read_certificate(cert_file)?;
        let key = read_rsa_key(key_file)?;
        Ok(Self { key, cert_der: cert, extra_certs_der: Vec::new() })
    }

    /// Loads the pair from `dir`, generating what is missing on first start: an RSA-2048 key (written only if no key
    /// file exists) and a self-signed certificate for it, valid 20 years. A key whose certificate is missing (a
    /// crash between the two writes) gets a new certificate; the key itself is never replaced.
    pub fn load_or_generate(dir: &Path, common_name: &str) -> Result<Self, SamlError> {
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        if key_path.is_file() && cert_path.is_file() {
            return Self::from_files(&cert_path, &key_path);
        }
        key_file::create_dir(dir).map_err(KeyError::from)?;
        let mut published_key = false;
        let key = if key_path.is_file() {
            tracing::warn!(key = %key_path.display(), "the SAML signing key has no certificate; making a new one");
            read_rsa_key(&key_path)?
        } else {
            if cert_path.exists() {
                tracing::warn!(
                    cert = %cert_path.display(),
                    "the SAML signing certificate has no key; generating a new key and certificate"
                );
            }
            let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(KeyError::Generate)?;
            let pkcs8 = key.as_der().map_err(KeyError::Encode)?;
            let pem = key_file::pem("PRIVATE KEY", pkcs8.as_ref());
            // Replicas sharing `dir` may start at once: one publishes its key, the others use that one.
            if key_file::publish_new(&key_path, pem.as_bytes(), key_file::PRIVATE_MODE).map_err(KeyError::from)? {
                published_key = true;
                key
            } else {
                read_rsa_key(&key_path)?
            }
        };
        if published_key && cert_path.exists() {
            // A certificate without its key: the key is new, so the old certificate is moved aside (kept, not
            // truncated) before this key's certificate takes its place.
            let mut aside = cert_path.as_os_str().to_owned();
            aside.push(".orphan");
            key_file::rename(&cert_path, Path::new(&aside)).map_err(KeyError::from)?;
        }
        let cert = self_signed(&key, common_name)?;
        // Likewise one certificate wins; a replica that lost loads the winner's (made for the same key).
        if key_file::publish_new(&cert_path, cert.pem().as_bytes(), key_file::PUBLIC_MODE).map_err(KeyError::from)? {
            tracing::info!(cert = %cert_path.display(), "generated a self-signed SAML signing certificate");
            return Ok(Self { key, cert_der: cert.der().to_vec(), extra_certs_der: Vec::new() });
        }
        Self::from_files(&cert_path, &key_path)
    }

    /// Adds a certificate to publish in metadata (rotation).
    pub fn publish_extra(&mut self, cert_file: &Path) -> Result<(), SamlError> {
        self.extra_certs_der.push(read_certificate(cert_file)?);
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
                    .map_err(KeyError::Sign)?;
                Ok(sig)
            }
            Algorithm::RsaSha1 => {
                let pkcs8 = self.key.as_der().map_err(KeyError::Encode)?;
                Ok(super::legacy_sha1::sign(pkcs8.as_ref(), message).map_err(KeyError::SignSha1)?)
            }
        }
    }

    /// The public key (PKCS#1 RSAPublicKey DER), for tests that verify our signatures.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }
}

/// The DER of the first certificate in a PEM file.
fn read_certificate(path: &Path) -> Result<Vec<u8>, KeyError> {
    let pem = key_file::read(path)?;
    CertificateDer::from_pem_slice(&pem)
        .map(|c| c.to_vec())
        .map_err(|source| KeyError::Certificate { path: path.into(), source })
}

/// An RSA private key from a PKCS#8 or PKCS#1 PEM file.
fn read_rsa_key(path: &Path) -> Result<RsaKeyPair, KeyError> {
    let pem = key_file::read_private(path)?;
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|source| KeyError::PrivateKey { path: path.into(), source })?;
    match &key {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => return Err(KeyError::NotRsa { path: path.into() }),
    }
    .map_err(|source| KeyError::Rejected { path: path.into(), source })
}

/// A self-signed certificate for `key`, valid from yesterday for 20 years.
fn self_signed(key: &RsaKeyPair, common_name: &str) -> Result<rcgen::Certificate, KeyError> {
    let pkcs8 = key.as_der().map_err(KeyError::Encode)?;
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec());
    let rc_key =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).map_err(KeyError::SelfSign)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(KeyError::SelfSign)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "fedgate SAML IdP");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(20 * 365);
    params.self_signed(&rc_key).map_err(KeyError::SelfSign)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn generated_once_private_and_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let first = SigningKeys::load_or_generate(&dir, "idp.example").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        let key_pem = fs::read(dir.join(KEY_FILE)).unwrap();

        let again = SigningKeys::load_or_generate(&dir, "idp.example").unwrap();
        assert_eq!(again.cert_der, first.cert_der);
        assert_eq!(again.public_key_der(), first.public_key_der());

        // A key whose certificate went missing keeps the key and gets a new certificate for it.
        fs::remove_file(dir.join(CERT_FILE)).unwrap();
        let recovered = SigningKeys::load_or_generate(&dir, "idp.example").unwrap();
        assert_eq!(recovered.public_key_der(), first.public_key_der());
        assert!(dir.join(CERT_FILE).is_file());
        assert_eq!(fs::read(dir.join(KEY_FILE)).unwrap(), key_pem);
        assert!(!dir.join(format!("{CERT_FILE}.new")).exists());
    }

    #[test]
    fn errors_name_the_file_and_keep_their_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let (cert, key) = (tmp.path().join("c.pem"), tmp.path().join("k.pem"));
        let Err(SamlError::Keys(KeyError::File(e))) = SigningKeys::from_files(&cert, &key) else {
            panic!("a missing certificate is a file error")
        };
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().contains("c.pem"), "{e}");

        fs::write(&cert, "not pem").unwrap();
        let err = SigningKeys::from_files(&cert, &key).unwrap_err();
        assert!(matches!(err, SamlError::Keys(KeyError::Certificate { .. })), "{err:?}");
        assert!(!err.is_bad_request());
        assert!(std::error::Error::source(&err).is_some());
    }
}
