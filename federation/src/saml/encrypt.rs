//! `EncryptedAssertion` (SAML core §2.3.4, XML Encryption 1.1) for SPs that require encrypted assertions: the
//! signed assertion, in its canonical form, encrypted with a fresh AES-256-GCM key (`xmlenc11#aes256-gcm`: the
//! CipherValue is the 12-byte IV, the ciphertext and the 16-byte tag); that key wrapped for the SP's RSA
//! certificate with RSA-OAEP (`xmlenc#rsa-oaep-mgf1p`, SHA-1 digest and MGF1, which every SP stack decrypts:
//! xmlsec1, Shibboleth, mellon, SimpleSAMLphp). The assertion is signed before it is encrypted, so the SP checks
//! the signature on what it decrypted.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine as _;

use super::xml::{Element, ns};

/// The content encryption algorithm.
pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
/// The key transport algorithm.
pub const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
/// SHA-1, the OAEP digest of `rsa-oaep-mgf1p`.
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// Why an assertion could not be encrypted.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    /// The certificate holds no public key fedgate can find.
    #[error("the SP's encryption certificate holds no readable public key")]
    NoPublicKey,
    /// The public key is not an RSA key aws-lc accepts.
    #[error("the SP's encryption certificate does not hold a usable RSA key: {0}")]
    Key(#[source] aws_lc_rs::error::KeyRejected),
    /// AES-GCM or RSA-OAEP failed (no randomness, a key too small for OAEP).
    #[error("encryption failed")]
    Crypto(#[source] aws_lc_rs::error::Unspecified),
}

/// `<saml:EncryptedAssertion>` holding `assertion` (already signed) for the RSA key of `cert_der`.
pub fn encrypted_assertion(assertion: &Element, cert_der: &[u8]) -> Result<Element, EncryptError> {
    let spki = super::authn_request::der::subject_public_key_info(cert_der).ok_or(EncryptError::NoPublicKey)?;
    let public = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(spki).map_err(EncryptError::Key)?)
        .map_err(EncryptError::Crypto)?;

    let mut key = [0u8; 32];
    let mut iv = [0u8; NONCE_LEN];
    fedgate_types::random::fill(&mut key);
    fedgate_types::random::fill(&mut iv);
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).map_err(EncryptError::Crypto)?);
    let mut data = assertion.to_canonical().into_bytes();
    aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut data)
        .map_err(EncryptError::Crypto)?;
    let mut cipher_value = iv.to_vec();
    cipher_value.append(&mut data);

    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped = public.encrypt(&OAEP_SHA1_MGF1SHA1, &key, &mut wrapped, None).map_err(EncryptError::Crypto)?.to_vec();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let cipher_data =
        |value: String| Element::new(ns::XENC, "CipherData").child(Element::new(ns::XENC, "CipherValue").text(value));
    let encrypted_key = Element::new(ns::XENC, "EncryptedKey")
        .child(
            Element::new(ns::XENC, "EncryptionMethod")
                .attr("Algorithm", RSA_OAEP_MGF1P)
                .child(Element::new(ns::DS, "DigestMethod").attr("Algorithm", SHA1)),
        )
        .child(cipher_data(b64(&wrapped)));
    Ok(Element::new(ns::SAML, "EncryptedAssertion").child(
        Element::new(ns::XENC, "EncryptedData")
            .attr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
            .child(Element::new(ns::XENC, "EncryptionMethod").attr("Algorithm", AES256_GCM))
            .child(Element::new(ns::DS, "KeyInfo").child(encrypted_key))
            .child(cipher_data(b64(&cipher_value))),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey};

    /// What an SP does: unwrap the key with its private key, then open the AES-GCM data: the signed assertion.
    #[test]
    fn the_sp_private_key_recovers_the_assertion() {
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(rsa.as_der().unwrap().as_ref().to_vec());
        let rc_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&rc_key).unwrap();
        let assertion = Element::new(ns::SAML, "Assertion").attr("ID", "_a1").text("secret <&> text");
        let xml = Element::new(ns::SAMLP, "Response")
            .child(encrypted_assertion(&assertion, cert.der()).unwrap())
            .to_canonical();
        assert!(!xml.contains("secret") && xml.contains(AES256_GCM) && xml.contains(RSA_OAEP_MGF1P), "{xml}");
        let values: Vec<Vec<u8>> = xml
            .split("<xenc:CipherValue>")
            .skip(1)
            .map(|s| base64::engine::general_purpose::STANDARD.decode(s.split('<').next().unwrap()).unwrap())
            .collect();
        let private =
            OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(rsa.as_der().unwrap().as_ref()).unwrap())
                .unwrap();
        let mut key = vec![0u8; private.min_output_size()];
        let key = private.decrypt(&OAEP_SHA1_MGF1SHA1, &values[0], &mut key, None).unwrap().to_vec();
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
        let (iv, sealed) = values[1].split_at(NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let plain =
            aead.open_in_place(Nonce::try_assume_unique_for_key(iv).unwrap(), Aad::empty(), &mut sealed).unwrap();
        assert_eq!(std::str::from_utf8(plain).unwrap(), assertion.to_canonical());
    }
}
