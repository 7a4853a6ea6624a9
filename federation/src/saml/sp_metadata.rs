//! Importing an SP's metadata (`metadata_file`): entity ID, HTTP-POST ACS locations, the signing certificate and
//! the SingleLogoutService endpoints (HTTP-POST and HTTP-Redirect), e.g. the document Alibaba Cloud RAM publishes. Parsed with quick-xml; a DOCTYPE is refused, never expanded.

use base64::Engine as _;
use quick_xml::events::Event;

use super::service_provider::{SloBinding, SloEndpoint};

/// Why SP metadata cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Not well-formed XML.
    #[error("SP metadata is not well-formed XML: {0}")]
    Xml(#[from] quick_xml::Error),
    /// A DOCTYPE (refused, never expanded).
    #[error("SP metadata: a DOCTYPE is not accepted")]
    Doctype,
    /// The signing certificate is not base64.
    #[error("SP metadata: X509Certificate is not base64: {0}")]
    CertificateBase64(#[source] base64::DecodeError),
    /// No entity ID.
    #[error("SP metadata: no EntityDescriptor with an entityID")]
    NoEntityId,
    /// No ACS for the binding we post with.
    #[error("SP metadata: no AssertionConsumerService with the HTTP-POST binding")]
    NoPostAcs,
}

/// What we take from SP metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpMetadata {
    /// `EntityDescriptor/@entityID`.
    pub entity_id: String,
    /// `AssertionConsumerService/@Location` for the HTTP-POST binding, default (`isDefault="true"`) first.
    pub acs_urls: Vec<String>,
    /// DER of the first `KeyDescriptor` certificate usable for signing.
    pub signing_cert_der: Option<Vec<u8>>,
    /// DER of the first `KeyDescriptor` certificate usable for encryption (`use="encryption"` or no `use`).
    pub encryption_cert_der: Option<Vec<u8>>,
    /// The first `SingleLogoutService` of each binding we speak (HTTP-POST, HTTP-Redirect), in document order.
    pub slo: Vec<SloEndpoint>,
}

/// Parses SP metadata XML.
pub fn parse(xml: &[u8]) -> Result<SpMetadata, MetadataError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut md = SpMetadata::default();
    let (mut default_acs, mut other_acs) = (Vec::new(), Vec::new());
    let (mut in_key, mut key_for_signing, mut in_cert) = (false, false, false);
    let (mut key_for_encryption, mut in_enc_cert) = (false, false);
    loop {
        let event = reader.read_event_into(&mut buf)?;
        match event {
            Event::DocType(_) => return Err(MetadataError::Doctype),
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &[u8]| -> Option<String> {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == name)
                        .and_then(|a| a.unescape_value().ok())
                        .map(|v| v.into_owned())
                };
                match e.local_name().as_ref() {
                    b"EntityDescriptor" => md.entity_id = attr(b"entityID").unwrap_or_default(),
                    b"AssertionConsumerService" => {
                        if attr(b"Binding").as_deref() == Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
                            && let Some(loc) = attr(b"Location")
                        {
                            if attr(b"isDefault").as_deref() == Some("true") {
                                default_acs.push(loc)
                            } else {
                                other_acs.push(loc)
                            }
                        }
                    }
                    b"SingleLogoutService" => {
                        let binding = match attr(b"Binding").as_deref() {
                            Some(b) if b == SloBinding::Post.uri() => Some(SloBinding::Post),
                            Some(b) if b == SloBinding::Redirect.uri() => Some(SloBinding::Redirect),
                            _ => None,
                        };
                        if let (Some(binding), Some(location)) = (binding, attr(b"Location"))
                            && !md.slo.iter().any(|e| e.binding == binding)
                        {
                            let response_location = attr(b"ResponseLocation").unwrap_or_else(|| location.clone());
                            md.slo.push(SloEndpoint { binding, location, response_location });
                        }
                    }
                    b"KeyDescriptor" => {
                        in_key = true;
                        key_for_signing = attr(b"use").is_none_or(|u| u == "signing");
                        key_for_encryption = attr(b"use").is_none_or(|u| u == "encryption");
                    }
                    b"X509Certificate" => {
                        in_cert = in_key && key_for_signing;
                        in_enc_cert = in_key && key_for_encryption;
                    }
                    _ => {}
                }
            }
            Event::Text(t)
                if (in_cert && md.signing_cert_der.is_none()) || (in_enc_cert && md.encryption_cert_der.is_none()) =>
            {
                let text = t.decode().map_err(quick_xml::Error::from)?;
                let b64: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                let der =
                    base64::engine::general_purpose::STANDARD.decode(b64).map_err(MetadataError::CertificateBase64)?;
                if in_cert && md.signing_cert_der.is_none() {
                    md.signing_cert_der = Some(der.clone());
                }
                if in_enc_cert && md.encryption_cert_der.is_none() {
                    md.encryption_cert_der = Some(der);
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"KeyDescriptor" => in_key = false,
                b"X509Certificate" => (in_cert, in_enc_cert) = (false, false),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if md.entity_id.is_empty() {
        return Err(MetadataError::NoEntityId);
    }
    md.acs_urls = default_acs.into_iter().chain(other_acs).collect();
    if md.acs_urls.is_empty() {
        return Err(MetadataError::NoPostAcs);
    }
    Ok(md)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The structure of the metadata Alibaba Cloud RAM publishes for user-based SSO (certificate shortened).
    const ALIYUN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="https___signin.aliyun.com_1234567890123456_saml_SSO" entityID="https://signin.aliyun.com/1234567890123456/saml/SSO">
  <md:SPSSODescriptor WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>
      AAECAwQF
    </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://signin.aliyun.com/saml/SSO"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"#;

    #[test]
    fn reads_aliyun_user_sso_metadata() {
        let md = parse(ALIYUN.as_bytes()).unwrap();
        assert_eq!(md.entity_id, "https://signin.aliyun.com/1234567890123456/saml/SSO");
        assert_eq!(md.acs_urls, vec!["https://signin.aliyun.com/saml/SSO"]);
        assert_eq!(md.signing_cert_der, Some(vec![0, 1, 2, 3, 4, 5]));
        assert!(md.slo.is_empty());
        assert_eq!(md.encryption_cert_der, None, "a signing-only KeyDescriptor is not for encryption");
    }

    #[test]
    fn reads_the_encryption_certificate() {
        let both = ALIYUN.replace(
            "<md:NameIDFormat>",
            r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>BQQDAgEA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:NameIDFormat>"#,
        );
        let md = parse(both.as_bytes()).unwrap();
        assert_eq!(md.signing_cert_der, Some(vec![0, 1, 2, 3, 4, 5]));
        assert_eq!(md.encryption_cert_der, Some(vec![5, 4, 3, 2, 1, 0]));
        let unmarked = ALIYUN.replace(r#"<md:KeyDescriptor use="signing">"#, "<md:KeyDescriptor>");
        let md = parse(unmarked.as_bytes()).unwrap();
        assert_eq!(md.encryption_cert_der, md.signing_cert_der, "no use: both");
    }

    #[test]
    fn reads_redirect_and_post_single_logout_services() {
        let redirect_only = ALIYUN.replace(
            "<md:NameIDFormat>",
            r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="https://sp/soap"/><md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://sp/slo" ResponseLocation="https://sp/slo-resp"/><md:NameIDFormat>"#,
        );
        let md = parse(redirect_only.as_bytes()).unwrap();
        assert_eq!(
            md.slo,
            vec![SloEndpoint {
                binding: SloBinding::Redirect,
                location: "https://sp/slo".into(),
                response_location: "https://sp/slo-resp".into()
            }]
        );
    }

    #[test]
    fn refuses_doctype_and_incomplete_metadata() {
        assert!(matches!(
            parse(format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{ALIYUN}").as_bytes()),
            Err(MetadataError::Doctype)
        ));
        assert!(matches!(
            parse(b"<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>"),
            Err(MetadataError::NoPostAcs)
        ));
        assert!(matches!(parse(b"<a><b></a>"), Err(MetadataError::Xml(_))));
    }
}
