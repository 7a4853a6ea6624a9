//! SAML 2.0 identity provider: AuthnRequest decoding (HTTP-Redirect and HTTP-POST), signed Responses written by
//! our own exclusive-C14N-by-construction writer and signed with aws-lc-rs, IdP metadata, per-SP NameID rules and
//! the Alibaba Cloud RAM presets. No HTTP server code: the gateway calls [`IdentityProvider`].
//!
//! samael is deliberately not used to emit XML: it writes element text unescaped (an LDAP display name could inject
//! an attribute into a signed assertion), lacks `NotOnOrAfter`/`SessionIndex`, and needs libxmlsec1 to build.

pub mod authn_request;
pub mod error;
pub mod keys;
mod legacy_sha1;
pub mod logout;
pub mod metadata;
pub mod post_form;
pub mod response;
pub mod service_provider;
pub mod signature;
pub mod sp_metadata;
pub mod xml;

use base64::Engine as _;
use time::OffsetDateTime;

pub use authn_request::AuthnRequest;
pub use error::SamlError;
pub use keys::SigningKeys;
pub use logout::LogoutRequest;
pub use service_provider::{Preset, SamlConfig, ServiceProvider, Site, SpConfig};
pub use signature::Algorithm;

/// A response ready to be posted to the SP.
#[derive(Debug, Clone)]
pub struct SignedResponse {
    /// Where the form posts: a registered ACS URL, or the SP's SingleLogoutService for a LogoutResponse.
    pub acs_url: String,
    /// Base64 of the Response XML, the `SAMLResponse` form value.
    pub saml_response: String,
    /// The XML itself (for tests and debugging; never log it).
    pub xml: String,
    /// The assertion's `SessionIndex` (none for a LogoutResponse): a LogoutRequest that names a SessionIndex must
    /// name one of these.
    pub session_index: Option<String>,
}

/// The SAML IdP.
#[derive(Debug)]
pub struct IdentityProvider {
    cfg: SamlConfig,
    entity_id: String,
    sso_url: String,
    slo_url: String,
    keys: std::sync::RwLock<std::sync::Arc<SigningKeys>>,
    sps: Vec<ServiceProvider>,
}

impl IdentityProvider {
    /// Builds the IdP: entity ID (default `{public_url}/saml/metadata`), keys (loaded or generated), SPs (presets
    /// applied). Run [`SamlConfig::validate`] first.
    pub fn new(cfg: SamlConfig, public_url: &url::Url) -> Result<Self, SamlError> {
        let base = public_url.as_str().trim_end_matches('/');
        let entity_id = cfg.entity_id.clone().unwrap_or_else(|| format!("{base}/saml/metadata"));
        let keys = Self::load_keys(&cfg, public_url.host_str().unwrap_or("fedgate"))?;
        let sps = cfg.service_providers.iter().cloned().map(ServiceProvider::new).collect::<Result<_, _>>()?;
        let keys = std::sync::RwLock::new(std::sync::Arc::new(keys));
        Ok(Self { sso_url: format!("{base}/saml/sso"), slo_url: format!("{base}/saml/slo"), entity_id, keys, sps, cfg })
    }

    fn load_keys(cfg: &SamlConfig, common_name: &str) -> Result<SigningKeys, SamlError> {
        let mut keys = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => SigningKeys::from_files(c, k)?,
            _ => SigningKeys::load_or_generate(&cfg.keys_dir, common_name)?,
        };
        for extra in &cfg.extra_cert_files {
            keys.publish_extra(extra)?;
        }
        Ok(keys)
    }

    /// Reads the key, certificate and extra certificates again from their files (another replica or an operator
    /// replaced them) and signs with them from now on; metadata then publishes them. On error the current keys
    /// stay.
    pub fn reload_keys(&self, public_url: &url::Url) -> Result<(), SamlError> {
        let keys = Self::load_keys(&self.cfg, public_url.host_str().unwrap_or("fedgate"))?;
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(keys);
        Ok(())
    }

    /// The files the signing keys are read from (to watch for changes).
    pub fn key_files(&self) -> Vec<std::path::PathBuf> {
        let mut files = match (&self.cfg.cert_file, &self.cfg.key_file) {
            (Some(c), Some(k)) => vec![c.clone(), k.clone()],
            _ => vec![self.cfg.keys_dir.join(keys::KEY_FILE), self.cfg.keys_dir.join(keys::CERT_FILE)],
        };
        files.extend(self.cfg.extra_cert_files.iter().cloned());
        files
    }

    /// The IdP entity ID (= `Issuer`).
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// The metadata document.
    pub fn metadata_xml(&self) -> String {
        metadata::document(
            &self.entity_id,
            &self.sso_url,
            &self.slo_url,
            &self.keys(),
            self.cfg.want_authn_requests_signed,
        )
    }

    /// The configured SPs.
    pub fn service_providers(&self) -> &[ServiceProvider] {
        &self.sps
    }

    /// Checks a `RelayState` received with a request against `max_relay_state_bytes`: a longer one is refused
    /// (not truncated, which would hand the SP a value it never sent).
    pub fn check_relay_state(&self, relay_state: Option<&str>) -> Result<(), SamlError> {
        let max = self.cfg.max_relay_state_bytes;
        match relay_state {
            Some(r) if r.len() > max => Err(SamlError::RelayStateTooLong { len: r.len(), max }),
            _ => Ok(()),
        }
    }

    /// The SP named `name` (IdP-initiated URL).
    pub fn by_name(&self, name: &str) -> Result<&ServiceProvider, SamlError> {
        self.sps.iter().find(|s| s.name() == name).ok_or_else(|| SamlError::UnknownSp(name.to_string()))
    }

    fn by_issuer(&self, issuer: &str) -> Result<&ServiceProvider, SamlError> {
        self.sps.iter().find(|s| s.entity_id == issuer).ok_or_else(|| SamlError::UnknownIssuer(issuer.to_string()))
    }

    /// The `SAMLRequest` of an HTTP-Redirect query, URL-decoded.
    fn redirect_value(raw_query: &str) -> Result<String, SamlError> {
        let value = raw_query
            .split('&')
            .find_map(|p| p.strip_prefix("SAMLRequest="))
            .ok_or_else(|| SamlError::Malformed("no SAMLRequest parameter".into()))?;
        Ok(percent_encoding::percent_decode_str(&value.replace('+', " ")).decode_utf8_lossy().replace(' ', "+"))
    }

    /// Checks a request's signature with `verify` (given the SP's certificate) when it is signed and the SP has a
    /// certificate; a request that is not signed is refused when the SP wants signed requests.
    fn check_signature(
        sp: &ServiceProvider,
        signed: bool,
        verify: impl FnOnce(&[u8]) -> Result<(), String>,
    ) -> Result<(), SamlError> {
        match (&sp.certificate_der, signed) {
            (Some(cert), true) => {
                verify(cert).map_err(|reason| SamlError::BadSignature { sp: sp.name().into(), reason })
            }
            (_, false) if sp.config.want_authn_requests_signed => {
                Err(SamlError::BadSignature { sp: sp.name().into(), reason: "the request is not signed".into() })
            }
            _ => Ok(()),
        }
    }

    /// Like [`Self::check_signature`], but an SP with a certificate must sign every LogoutRequest: an unsigned
    /// one could be sent by any site the browser visits (logout CSRF).
    fn check_logout_signature(
        sp: &ServiceProvider,
        signed: bool,
        verify: impl FnOnce(&[u8]) -> Result<(), String>,
    ) -> Result<(), SamlError> {
        if sp.certificate_der.is_some() && !signed {
            return Err(SamlError::BadSignature {
                sp: sp.name().into(),
                reason: "the LogoutRequest is not signed, and this service provider has a certificate".into(),
            });
        }
        Self::check_signature(sp, signed, verify)
    }

    /// Whether an HTTP-Redirect query carries a signature.
    fn query_signed(raw_query: &str) -> bool {
        raw_query.split('&').any(|p| p.starts_with("Signature="))
    }

    /// An HTTP-Redirect request: `raw_query` is the query string as received (the signature covers its bytes).
    pub fn redirect_request(&self, raw_query: &str) -> Result<(AuthnRequest, &ServiceProvider), SamlError> {
        let req = authn_request::decode_redirect(&Self::redirect_value(raw_query)?)?;
        let sp = self.by_issuer(&req.issuer)?;
        Self::check_signature(sp, Self::query_signed(raw_query), |cert| {
            authn_request::verify_redirect_signature(raw_query, cert)
        })?;
        Ok((req, sp))
    }

    /// An HTTP-POST request (`SAMLRequest` form value). An enveloped signature is verified when the SP has a
    /// certificate; it is required when the SP sets `want_authn_requests_signed`.
    pub fn post_request(&self, saml_request: &str) -> Result<(AuthnRequest, &ServiceProvider), SamlError> {
        let xml = authn_request::post_xml(saml_request)?;
        let req = authn_request::parse(&xml)?;
        let sp = self.by_issuer(&req.issuer)?;
        Self::check_signature(sp, req.signed, |cert| authn_request::verify_post_signature(&xml, &req.id, cert))?;
        Ok((req, sp))
    }

    /// A LogoutRequest by HTTP-Redirect; signatures are checked as for AuthnRequests.
    pub fn logout_redirect(&self, raw_query: &str) -> Result<(LogoutRequest, &ServiceProvider), SamlError> {
        let req = logout::parse(&authn_request::inflate(&Self::redirect_value(raw_query)?)?)?;
        let sp = self.by_issuer(&req.issuer)?;
        Self::check_logout_signature(sp, Self::query_signed(raw_query), |cert| {
            authn_request::verify_redirect_signature(raw_query, cert)
        })?;
        Ok((req, sp))
    }

    /// A LogoutRequest by HTTP-POST; signatures are checked as for AuthnRequests.
    pub fn logout_post(&self, saml_request: &str) -> Result<(LogoutRequest, &ServiceProvider), SamlError> {
        let xml = authn_request::post_xml(saml_request)?;
        let req = logout::parse(&xml)?;
        let sp = self.by_issuer(&req.issuer)?;
        Self::check_logout_signature(sp, req.signed, |cert| authn_request::verify_post_signature(&xml, &req.id, cert))?;
        Ok((req, sp))
    }

    /// The signed LogoutResponse for `request`, to the SP's SingleLogoutService; `success` says whether the
    /// session was ended (or there was none).
    pub fn logout_response(
        &self,
        sp: &ServiceProvider,
        request: &LogoutRequest,
        success: bool,
        now: OffsetDateTime,
    ) -> Result<SignedResponse, SamlError> {
        let slo_url = sp.slo_url.clone().ok_or_else(|| SamlError::NoSingleLogout(sp.name().into()))?;
        let status = if success { logout::SUCCESS } else { logout::RESPONDER };
        let xml = logout::build_response(
            &self.entity_id,
            &slo_url,
            &request.id,
            status,
            now,
            &self.keys(),
            sp.config.signature_algorithm,
        )?;
        Ok(SignedResponse {
            saml_response: base64::engine::general_purpose::STANDARD.encode(&xml),
            acs_url: slo_url,
            xml,
            session_index: None,
        })
    }

    /// The ACS URL for a request: the requested one only if registered, else the SP's first.
    pub fn acs_for<'a>(&self, sp: &'a ServiceProvider, req: Option<&'a AuthnRequest>) -> Result<&'a str, SamlError> {
        match req.and_then(|r| r.acs_url.as_deref()) {
            Some(url) => sp
                .acs_urls
                .iter()
                .find(|a| a.as_str() == url)
                .map(String::as_str)
                .ok_or_else(|| SamlError::AcsNotRegistered { sp: sp.name().into(), url: url.into() }),
            None => sp
                .acs_urls
                .first()
                .map(String::as_str)
                .ok_or_else(|| error::ConfigError::NoAcsUrl(sp.name().into()).into()),
        }
    }

    /// The signed response for `principal` (SP-initiated when `request` is given).
    pub fn respond(
        &self,
        sp: &ServiceProvider,
        principal: &crate::Principal,
        request: Option<&AuthnRequest>,
        now: OffsetDateTime,
    ) -> Result<SignedResponse, SamlError> {
        if !sp.allows(principal) {
            return Err(SamlError::NotAllowed { sp: sp.name().into(), username: principal.username.clone() });
        }
        let acs_url = self.acs_for(sp, request)?.to_string();
        let assertion_id = response::new_id();
        let params = response::ResponseParams {
            issuer: &self.entity_id,
            acs_url: &acs_url,
            in_response_to: request.map(|r| r.id.as_str()),
            assertion_id: &assertion_id,
            window: response::Window { now, lifetime: self.cfg.assertion_lifetime, skew: self.cfg.clock_skew },
        };
        let xml = response::build(sp, principal, &params, &self.keys())?;
        Ok(SignedResponse {
            saml_response: base64::engine::general_purpose::STANDARD.encode(&xml),
            acs_url,
            xml,
            session_index: Some(assertion_id),
        })
    }

    /// The signing keys (tests verify signatures with the certificate).
    pub fn keys(&self) -> std::sync::Arc<SigningKeys> {
        std::sync::Arc::clone(&self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}
