//! Importing an SP's metadata (`metadata_file`): entity ID, HTTP-POST ACS locations and the signing certificate,
//! e.g. the document Alibaba Cloud RAM publishes. Parsed with quick-xml; a DOCTYPE is refused, never expanded.

use base64::Engine as _;
use quick_xml::events::Event;

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
    /// `SingleLogoutService/@ResponseLocation` (else `@Location`) for the HTTP-POST binding.
    pub slo_url: Option<String>,
}

/// Parses SP metadata XML.
pub fn parse(xml: &[u8]) -> Result<SpMetadata, MetadataError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut md = SpMetadata::default();
    let (mut default_acs, mut other_acs) = (Vec::new(), Vec::new());
    let (mut in_key, mut key_for_signing, mut in_cert) = (false, false, false);
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
                    b"SingleLogoutService"
                        if md.slo_url.is_none()
                            && attr(b"Binding").as_deref()
                                == Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST") =>
                    {
                        md.slo_url = attr(b"ResponseLocation").or_else(|| attr(b"Location"));
                    }
                    b"KeyDescriptor" => {
                        in_key = true;
                        key_for_signing = attr(b"use").is_none_or(|u| u == "signing");
                    }
                    b"X509Certificate" => in_cert = in_key && key_for_signing,
                    _ => {}
                }
            }
            Event::Text(t) if in_cert && md.signing_cert_der.is_none() => {
                let text = t.decode().map_err(quick_xml::Error::from)?;
                let b64: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                md.signing_cert_der = Some(
                    base64::engine::general_purpose::STANDARD.decode(b64).map_err(MetadataError::CertificateBase64)?,
                );
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"KeyDescriptor" => in_key = false,
                b"X509Certificate" => in_cert = false,
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
