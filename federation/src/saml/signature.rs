//! Enveloped XML-DSig signatures over our own elements: exc-c14n, `Reference URI="#ID"`, the enveloped-signature
//! and exc-c14n transforms, RSA-SHA256 with a SHA-256 digest by default (RSA-SHA1 + SHA-1 only when an SP asks),
//! and the certificate in `KeyInfo`. Because [`Element::to_canonical`] is already canonical, the digest is taken
//! over the element as built, before the signature is inserted (that is what the enveloped transform removes).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::error::SamlError;
use super::keys::SigningKeys;
use super::xml::{Element, ns};

const C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Signature algorithm (and the matching digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// RSA-SHA256 with a SHA-256 digest.
    #[default]
    RsaSha256,
    /// RSA-SHA1 with a SHA-1 digest (legacy SPs only).
    RsaSha1,
}

impl Algorithm {
    /// `SignatureMethod/@Algorithm`.
    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        }
    }

    fn digest_uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::RsaSha256 => &aws_lc_rs::digest::SHA256,
            Self::RsaSha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        };
        aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
    }
}

/// Signs `element` (which must carry an `ID` attribute) and inserts the `ds:Signature` as its child at `position`
/// (right after `Issuer`, as the SAML schema requires).
pub fn sign_enveloped(
    element: &mut Element,
    position: usize,
    keys: &SigningKeys,
    alg: Algorithm,
) -> Result<(), SamlError> {
    let id = element.get_attr("ID").ok_or(SamlError::Keys(super::keys::KeyError::NoId))?.to_string();
    let digest = alg.digest(element.to_canonical().as_bytes());
    let signed_info = Element::new(ns::DS, "SignedInfo")
        .child(Element::new(ns::DS, "CanonicalizationMethod").attr("Algorithm", C14N))
        .child(Element::new(ns::DS, "SignatureMethod").attr("Algorithm", alg.uri()))
        .child(
            Element::new(ns::DS, "Reference")
                .attr("URI", format!("#{id}"))
                .child(
                    Element::new(ns::DS, "Transforms")
                        .child(Element::new(ns::DS, "Transform").attr("Algorithm", ENVELOPED))
                        .child(Element::new(ns::DS, "Transform").attr("Algorithm", C14N)),
                )
                .child(Element::new(ns::DS, "DigestMethod").attr("Algorithm", alg.digest_uri()))
                .child(Element::new(ns::DS, "DigestValue").text(STANDARD.encode(digest))),
        );
    let signature_value = keys.sign(alg, signed_info.to_canonical().as_bytes())?;
    let signature = Element::new(ns::DS, "Signature")
        .child(signed_info)
        .child(Element::new(ns::DS, "SignatureValue").text(STANDARD.encode(signature_value)))
        .child(
            Element::new(ns::DS, "KeyInfo").child(
                Element::new(ns::DS, "X509Data")
                    .child(Element::new(ns::DS, "X509Certificate").text(STANDARD.encode(&keys.cert_der))),
            ),
        );
    element.insert_child(position, signature);
    Ok(())
}
