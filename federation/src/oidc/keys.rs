//! Token signing keys: generation, PKCS#8 PEM files in `keys_dir`, rotation, and the public JWKS.
//!
//! Keys are aws-lc-rs key pairs (RSA-2048 for RS256, P-256 for ES256, Ed25519 for EdDSA), parsed once at start-up
//! and reused for every signature. The directory holds `active.pem` (signs everything) and optionally
//! `previous.pem` (kept after a rotation so tokens signed before it still verify). Each key's `kid` is its
//! RFC 7638 JWK thumbprint, so it is stable across restarts without storing it.
//!
//! [`SigningKey`] implements openidconnect's [`PrivateSigningKey`], so ID tokens are built with
//! `IdToken::new` without openidconnect's RustCrypto RSA key (RUSTSEC-2023-0071).

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{PrivateSigningKey, SigningError};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;

use super::config::SigningAlgorithm;
use super::error::KeyError;
use crate::key_file;

/// File name of the key that signs.
pub const ACTIVE_FILE: &str = "active.pem";
/// File name of the key kept for verification after a rotation.
pub const PREVIOUS_FILE: &str = "previous.pem";

enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One private signing key with its public JWK forms.
pub struct SigningKey {
    alg: SigningAlgorithm,
    kid: String,
    material: Material,
    pkcs8: Vec<u8>,
    jwk_json: serde_json::Value,
    jwk: CoreJsonWebKey,
    decoding: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// Generates a fresh key for `alg`.
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let pkcs8 = match alg {
            SigningAlgorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate("RSA-2048"))?,
            SigningAlgorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate("P-256"))?,
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate("Ed25519"))?,
        };
        Self::from_pkcs8(pkcs8, "generated key")
    }

    /// Parses a PKCS#8 DER private key (RSA, P-256 or Ed25519); `origin` names it in errors.
    pub fn from_pkcs8(pkcs8: Vec<u8>, origin: &str) -> Result<Self, KeyError> {
        let invalid = |reason: &str| KeyError::Invalid { path: origin.to_string(), reason: reason.to_string() };
        let (alg, material, jwk_json) = if let Ok(k) = RsaKeyPair::from_pkcs8(&pkcs8) {
            if k.public_modulus_len() < 256 {
                return Err(invalid("RSA key shorter than 2048 bits"));
            }
            let public = k.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            (SigningAlgorithm::RS256, Material::Rsa(k), serde_json::json!({"e": e, "kty": "RSA", "n": n}))
        } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8) {
            let point = k.public_key().as_ref();
            let (x, y) = match point {
                [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                _ => return Err(invalid("unexpected P-256 public key encoding")),
            };
            let jwk = serde_json::json!({"crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y)});
            (SigningAlgorithm::ES256, Material::Ec(k), jwk)
        } else if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8) {
            let jwk = serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": b64(k.public_key().as_ref())});
            (SigningAlgorithm::EdDSA, Material::Ed(k), jwk)
        } else {
            return Err(invalid("unsupported key type"));
        };
        // RFC 7638: SHA-256 over the required members in lexicographic order (serde_json's map is sorted).
        let canonical = serde_json::to_vec(&jwk_json).map_err(KeyError::Serialize)?;
        let kid = b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical).as_ref());
        let mut jwk_json = jwk_json;
        if let Some(obj) = jwk_json.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("use".into(), "sig".into());
            obj.insert("alg".into(), alg.as_str().into());
        }
        let jwk: CoreJsonWebKey =
            serde_json::from_value(jwk_json.clone()).map_err(|_| invalid("public key does not form a JWK"))?;
        let jwt_jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(jwk_json.clone()).map_err(|_| invalid("public key does not form a JWK"))?;
        let decoding =
            jsonwebtoken::DecodingKey::from_jwk(&jwt_jwk).map_err(|_| invalid("public key does not form a JWK"))?;
        Ok(Self { alg, kid, material, pkcs8, jwk_json, jwk, decoding })
    }

    /// The public key as DER `SubjectPublicKeyInfo`, for an RSA key (what Keycloak publishes as a realm's
    /// `public_key`, base64-encoded); `None` for an EC or Ed25519 key.
    pub fn rsa_public_key_der(&self) -> Option<Vec<u8>> {
        use aws_lc_rs::encoding::AsDer as _;
        match &self.material {
            Material::Rsa(k) => k.public_key().as_der().ok().map(|d| d.as_ref().to_vec()),
            _ => None,
        }
    }

    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) key.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, KeyError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|source| KeyError::Pem { path: origin.to_string(), source })?;
        Self::from_pkcs8(der.secret_pkcs8_der().to_vec(), origin)
    }

    /// The PKCS#8 PEM encoding of the private key (write it only to a 0600 file).
    pub fn to_pem(&self) -> String {
        key_file::pem("PRIVATE KEY", &self.pkcs8)
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.alg
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK as JSON (`kty`, `kid`, `use`, `alg` and the public parameters).
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk_json
    }

    /// The jsonwebtoken decoding key for this key's public part.
    pub fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.decoding
    }

    /// The openidconnect JWS algorithm value.
    pub fn core_algorithm(&self) -> CoreJwsSigningAlgorithm {
        match self.alg {
            SigningAlgorithm::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            SigningAlgorithm::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            SigningAlgorithm::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
        }
    }

    /// The jsonwebtoken algorithm value.
    pub fn jwt_algorithm(&self) -> jsonwebtoken::Algorithm {
        match self.alg {
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// Signs `message` with this key's algorithm.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let err = || KeyError::Sign { kid: self.kid.clone() };
        match &self.material {
            Material::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig).map_err(|_| err())?;
                Ok(sig)
            }
            Material::Ec(k) => Ok(k.sign(&SystemRandom::new(), message).map_err(|_| err())?.as_ref().to_vec()),
            Material::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }

    /// Signs `claims` as a compact JWS with `header` (whose `alg` and `kid` are overwritten with this key's).
    ///
    /// jsonwebtoken's `encode` re-parses the private key on every call, which halves ES256 throughput; this uses
    /// the key parsed at start-up and jsonwebtoken's own `Header` type.
    pub fn sign_jwt<T: Serialize>(&self, header: &jsonwebtoken::Header, claims: &T) -> Result<String, KeyError> {
        let mut header = header.clone();
        header.alg = self.jwt_algorithm();
        header.kid = Some(self.kid.clone());
        let h = serde_json::to_vec(&header).map_err(KeyError::Serialize)?;
        let c = serde_json::to_vec(claims).map_err(KeyError::Serialize)?;
        let mut out = b64(&h);
        out.push('.');
        out.push_str(&b64(&c));
        let sig = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        out.push_str(&b64(&sig));
        Ok(out)
    }
}

impl PrivateSigningKey for SigningKey {
    type VerificationKey = CoreJsonWebKey;

    fn sign(&self, signature_alg: &CoreJwsSigningAlgorithm, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        if *signature_alg != self.core_algorithm() {
            return Err(SigningError::UnsupportedAlg(format!("{signature_alg:?}")));
        }
        self.sign_bytes(message).map_err(|e| SigningError::Other(e.to_string()))
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.jwk.clone()
    }
}

/// The active signing key and the previous one (verification only).
#[derive(Debug, Clone)]
pub struct KeySet {
    active: Arc<SigningKey>,
    previous: Option<Arc<SigningKey>>,
}

impl KeySet {
    /// A key set from keys already loaded.
    pub fn new(active: SigningKey, previous: Option<SigningKey>) -> Self {
        Self { active: Arc::new(active), previous: previous.map(Arc::new) }
    }

    /// A key set with one freshly generated key, kept in memory only (tests, ephemeral set-ups).
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        Ok(Self::new(SigningKey::generate(alg)?, None))
    }

    /// Loads `dir/active.pem` (and `previous.pem` if present). Without an active key, generates one for `alg` and
    /// writes it (mode 0600, directory 0700; if another process sharing `dir` writes one first, that one is used). If the active key's algorithm differs from `alg`, rotates to a new
    /// key of `alg`, so a changed `signing_algorithm` takes effect without breaking tokens already issued.
    pub fn load_or_generate(dir: &Path, alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let active_path = dir.join(ACTIVE_FILE);
        if !active_path.exists() {
            key_file::create_dir(dir)?;
            let key = SigningKey::generate(alg)?;
            // Replicas sharing `dir` may start at once: one publishes its key, the others load that one.
            if !key_file::publish_new(&active_path, key.to_pem().as_bytes(), key_file::PRIVATE_MODE)? {
                tracing::info!(dir = %dir.display(), "another process created the OIDC signing key first; using it");
            }
            return Self::load(dir);
        }
        let set = Self::load(dir)?;
        if set.active.algorithm() != alg { Self::rotate(dir, alg) } else { Ok(set) }
    }

    /// Loads the keys in `dir`; `active.pem` must exist.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let active = read_key(&dir.join(ACTIVE_FILE))?;
        let prev_path = dir.join(PREVIOUS_FILE);
        let previous = if prev_path.exists() { Some(read_key(&prev_path)?) } else { None };
        Ok(Self::new(active, previous))
    }

    /// Adds a new active key for `alg` in `dir`; the current active key becomes `previous.pem` (the one before it
    /// is dropped, so tokens it signed stop verifying). Returns the new set. Used by `fedgate keys rotate`.
    pub fn rotate(dir: &Path, alg: SigningAlgorithm) -> Result<Self, KeyError> {
        key_file::create_dir(dir)?;
        let active_path = dir.join(ACTIVE_FILE);
        let new_key = SigningKey::generate(alg)?;
        let staged = key_file::write_staged(&active_path, new_key.to_pem().as_bytes(), key_file::PRIVATE_MODE)?;
        if active_path.exists() {
            key_file::rename(&active_path, &dir.join(PREVIOUS_FILE))?;
        }
        key_file::rename(&staged, &active_path)?;
        Self::load(dir)
    }

    /// The key that signs.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The key kept from before the last rotation.
    pub fn previous(&self) -> Option<&SigningKey> {
        self.previous.as_deref()
    }

    /// Finds a key by `kid`.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        std::iter::once(self.active()).chain(self.previous()).find(|k| k.kid() == kid)
    }

    /// The public JWKS (`/oauth2/jwks`): the active key first, then the previous one.
    pub fn jwks(&self) -> CoreJsonWebKeySet {
        CoreJsonWebKeySet::new(std::iter::once(self.active()).chain(self.previous()).map(|k| k.jwk.clone()).collect())
    }

    /// The same JWKS as jsonwebtoken's type.
    pub fn jwk_set(&self) -> Result<jsonwebtoken::jwk::JwkSet, KeyError> {
        let keys = std::iter::once(self.active()).chain(self.previous()).map(|k| k.jwk_json.clone()).collect();
        serde_json::from_value(serde_json::json!({ "keys": serde_json::Value::Array(keys) }))
            .map_err(KeyError::Serialize)
    }
}

fn read_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = key_file::read_private(path)?;
    SigningKey::from_pem(&pem, &path.display().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use openidconnect::JsonWebKey;

    use super::*;

    fn verify_with_jwk(key: &SigningKey, message: &[u8], signature: &[u8]) -> bool {
        key.jwk.verify_signature(&key.core_algorithm(), message, signature).is_ok()
    }

    #[test]
    fn every_algorithm_generates_signs_and_round_trips_through_pem() {
        for alg in [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let key = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pem(key.to_pem().as_bytes(), "t").unwrap();
            assert_eq!(again.kid(), key.kid());
            assert_eq!(again.algorithm(), alg);
            let sig = key.sign_bytes(b"msg").unwrap();
            assert!(verify_with_jwk(&again, b"msg", &sig), "{alg}");
            assert!(!verify_with_jwk(&again, b"other", &sig), "{alg}");
            assert_eq!(key.kid().len(), 43);
        }
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1 example key (public part only drives the thumbprint).
        let jwk = serde_json::json!({"e": "AQAB", "kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        let canonical = serde_json::to_vec(&jwk).unwrap();
        let kid = b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical).as_ref());
        assert_eq!(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn files_are_0600_and_rotation_keeps_previous() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let first = KeySet::load_or_generate(&keys_dir, SigningAlgorithm::ES256).unwrap();
        let mode = fs::metadata(keys_dir.join(ACTIVE_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777, 0o700);
        let reloaded = KeySet::load_or_generate(&keys_dir, SigningAlgorithm::ES256).unwrap();
        assert_eq!(reloaded.active().kid(), first.active().kid());
        assert!(reloaded.previous().is_none());

        let rotated = KeySet::rotate(&keys_dir, SigningAlgorithm::ES256).unwrap();
        assert_ne!(rotated.active().kid(), first.active().kid());
        assert_eq!(rotated.previous().unwrap().kid(), first.active().kid());
        assert!(rotated.find(first.active().kid()).is_some());
        assert_eq!(rotated.jwks().keys().len(), 2);
        assert_eq!(rotated.jwk_set().unwrap().keys.len(), 2);

        // Changing the algorithm rotates too.
        let ed = KeySet::load_or_generate(&keys_dir, SigningAlgorithm::EdDSA).unwrap();
        assert_eq!(ed.active().algorithm(), SigningAlgorithm::EdDSA);
        assert_eq!(ed.previous().unwrap().kid(), rotated.active().kid());
    }

    #[test]
    fn jwks_has_public_parts_only() {
        for alg in [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let set = KeySet::generate(alg).unwrap();
            let json = serde_json::to_value(set.jwks()).unwrap();
            let key = &json["keys"][0];
            assert!(key.get("d").is_none() || key["d"].is_null(), "{json}");
            assert_eq!(key["kid"], set.active().kid());
            assert_eq!(key["use"], "sig");
            assert_eq!(key["alg"], alg.as_str());
        }
    }

    #[test]
    fn garbage_key_file_is_an_error_without_its_content() {
        let err = SigningKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k.pem")
            .unwrap_err();
        assert!(err.to_string().contains("k.pem"));
    }
}
