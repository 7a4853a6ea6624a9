//! SAML 2.0 identity provider: AuthnRequest decoding (HTTP-Redirect and HTTP-POST), signed Responses written by
//! our own exclusive-C14N-by-construction writer and signed with aws-lc-rs, IdP metadata, per-SP NameID rules and
//! the Alibaba Cloud RAM presets. No HTTP server code: the gateway calls [`IdentityProvider`].
//!
//! samael is deliberately not used to emit XML: it writes element text unescaped (an LDAP display name could inject
//! an attribute into a signed assertion), lacks `NotOnOrAfter`/`SessionIndex`, and needs libxmlsec1 to build.

pub mod authn_request;
pub mod encrypt;
pub mod error;
pub mod freshness;
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
pub use error::{SamlError, SignatureProblem};
pub use freshness::Timing;
pub use keys::SigningKeys;
pub use logout::{LogoutRequest, Outbound};
pub use service_provider::{
    AttributeConfig, AttributeNameFormat, IssuedNameId, NameIdFormat, Preset, SamlConfig, ServiceProvider, Site,
    SloBinding, SloEndpoint, SpConfig,
};
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
    /// The assertion's `SessionIndex` (none for a LogoutResponse or an error status): a LogoutRequest that names a
    /// SessionIndex must name one of these.
    pub session_index: Option<String>,
    /// The NameID the assertion carries (none for an error status such as `InvalidNameIDPolicy`).
    pub name_id: Option<IssuedNameId>,
}

/// The key of pairwise `persistent` NameIDs; `Debug` never shows it.
struct PersistentKey([u8; 32]);

impl std::fmt::Debug for PersistentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersistentKey([redacted])")
    }
}

/// The file in `keys_dir` holding the generated secret of pairwise `persistent` NameIDs.
pub const PERSISTENT_SECRET_FILE: &str = "saml-persistent-nameid.secret";

impl PersistentKey {
    /// From `persistent_nameid_secret_file` (SHA-256 of its content, at least 32 bytes), else from
    /// `keys_dir/saml-persistent-nameid.secret`, generated (32 random bytes, hex, mode 0600) on the first start.
    /// The secret is independent of the signing key, so rotating that key keeps every persistent NameID; replicas
    /// that share `keys_dir` (as they must for the signing key) issue the same ones.
    fn new(cfg: &SamlConfig) -> Result<Self, SamlError> {
        let material = match &cfg.persistent_nameid_secret_file {
            Some(path) => read_secret(path)?,
            None => {
                let path = cfg.keys_dir.join(PERSISTENT_SECRET_FILE);
                if !path.exists() {
                    crate::key_file::create_dir(&cfg.keys_dir).map_err(keys::KeyError::File)?;
                    let mut bytes = [0u8; 32];
                    fedgate_types::random::fill(&mut bytes);
                    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    match crate::key_file::write_new(&path, hex.as_bytes(), crate::key_file::PRIVATE_MODE) {
                        Ok(()) => tracing::info!(file = %path.display(), "generated the SAML persistent NameID secret"),
                        // Another replica created it first: use theirs.
                        Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(keys::KeyError::File(e).into()),
                    }
                }
                read_secret(&path)?
            }
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        Ok(Self(key))
    }
}

/// A persistent NameID secret file's content without surrounding whitespace: at least 32 bytes.
fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, SamlError> {
    let bytes = crate::key_file::read_private(path).map_err(keys::KeyError::File)?;
    let secret = bytes.trim_ascii();
    if secret.len() < 32 {
        return Err(keys::KeyError::ShortSecret { path: path.to_path_buf() }.into());
    }
    Ok(secret.to_vec())
}

/// The SAML IdP.
#[derive(Debug)]
pub struct IdentityProvider {
    cfg: SamlConfig,
    entity_id: String,
    sso_url: String,
    slo_url: String,
    keys: std::sync::RwLock<std::sync::Arc<SigningKeys>>,
    persistent_key: PersistentKey,
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
        let persistent_key = PersistentKey::new(&cfg)?;
        Ok(Self {
            sso_url: format!("{base}/saml/sso"),
            slo_url: format!("{base}/saml/slo"),
            entity_id,
            keys,
            persistent_key,
            sps,
            cfg,
        })
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

    /// Keycloak realm mode: SSO and SLO both at `{realm_url}/protocol/saml`, and the entity ID (which is also the
    /// Response `Issuer`) the realm URL unless `entity_id` is configured.
    #[must_use]
    pub fn with_realm_url(mut self, realm_url: &str) -> Self {
        let realm_url = realm_url.trim_end_matches('/');
        if self.cfg.entity_id.is_none() {
            self.entity_id = realm_url.to_string();
        }
        self.sso_url = format!("{realm_url}/protocol/saml");
        self.slo_url = self.sso_url.clone();
        self
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

    /// The `SAMLRequest` of an HTTP-Redirect query, URL-decoded (the query checked to be unambiguous first).
    fn redirect_value(raw_query: &str) -> Result<String, SamlError> {
        authn_request::check_redirect_query(raw_query)?;
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
        verify: impl FnOnce(&[u8]) -> Result<(), SignatureProblem>,
    ) -> Result<(), SamlError> {
        match (&sp.certificate_der, signed) {
            (Some(cert), true) => {
                verify(cert).map_err(|reason| SamlError::BadSignature { sp: sp.name().into(), reason })
            }
            (_, false) if sp.config.want_authn_requests_signed => {
                Err(SamlError::BadSignature { sp: sp.name().into(), reason: SignatureProblem::Unsigned })
            }
            _ => Ok(()),
        }
    }

    /// Like [`Self::check_signature`], but an SP with a certificate must sign every LogoutRequest: an unsigned
    /// one could be sent by any site the browser visits (logout CSRF).
    fn check_logout_signature(
        sp: &ServiceProvider,
        signed: bool,
        verify: impl FnOnce(&[u8]) -> Result<(), SignatureProblem>,
    ) -> Result<(), SamlError> {
        if sp.certificate_der.is_some() && !signed {
            return Err(SamlError::BadSignature { sp: sp.name().into(), reason: SignatureProblem::UnsignedLogout });
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

    /// The signed LogoutResponse for `request`, to the SP's SingleLogoutService by its binding; `success` says
    /// whether the session was ended (or there was none). An SP without a SingleLogoutService gets
    /// [`SamlError::NoSingleLogout`].
    pub fn logout_response(
        &self,
        sp: &ServiceProvider,
        request: &LogoutRequest,
        success: bool,
        relay_state: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Outbound, SamlError> {
        let slo = sp.slo.as_ref().ok_or_else(|| SamlError::NoSingleLogout(sp.name().into()))?;
        let status = if success { logout::SUCCESS } else { logout::RESPONDER };
        let message = logout::response_element(&self.entity_id, &slo.response_location, &request.id, status, now);
        logout::deliver(
            message,
            slo.binding,
            &slo.response_location,
            "SAMLResponse",
            relay_state,
            &self.keys(),
            sp.config.signature_algorithm,
        )
    }

    /// A signed LogoutRequest for the NameID and SessionIndex `sp` was given, to its SingleLogoutService by its
    /// binding, carrying `relay_state`; with the request's ID. An SP without a SingleLogoutService gets
    /// [`SamlError::NoSingleLogout`].
    pub fn logout_request(
        &self,
        sp: &ServiceProvider,
        nameid_format: &str,
        name_id: &str,
        session_index: Option<&str>,
        relay_state: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(String, Outbound), SamlError> {
        let slo = sp.slo.as_ref().ok_or_else(|| SamlError::NoSingleLogout(sp.name().into()))?;
        let (message, id) =
            logout::request_element(&self.entity_id, &slo.location, nameid_format, name_id, session_index, now);
        let out = logout::deliver(
            message,
            slo.binding,
            &slo.location,
            "SAMLRequest",
            relay_state,
            &self.keys(),
            sp.config.signature_algorithm,
        )?;
        Ok((id, out))
    }

    /// An SP's LogoutResponse by HTTP-Redirect (`raw_query` as received); signed when the SP has a certificate.
    pub fn logout_response_redirect(
        &self,
        raw_query: &str,
    ) -> Result<(logout::LogoutResponse, &ServiceProvider), SamlError> {
        authn_request::check_redirect_query(raw_query)?;
        let value = raw_query
            .split('&')
            .find_map(|p| p.strip_prefix("SAMLResponse="))
            .ok_or_else(|| SamlError::Malformed("no SAMLResponse parameter".into()))?;
        let value =
            percent_encoding::percent_decode_str(&value.replace('+', " ")).decode_utf8_lossy().replace(' ', "+");
        let resp = logout::parse_response(&authn_request::inflate(&value)?)?;
        let sp = self.by_issuer(&resp.issuer)?;
        Self::check_logout_signature(sp, Self::query_signed(raw_query), |cert| {
            authn_request::verify_redirect_signature_of(raw_query, "SAMLResponse", cert)
        })?;
        Ok((resp, sp))
    }

    /// An SP's LogoutResponse by HTTP-POST (`SAMLResponse` form value); signed when the SP has a certificate.
    pub fn logout_response_post(
        &self,
        saml_response: &str,
    ) -> Result<(logout::LogoutResponse, &ServiceProvider), SamlError> {
        let xml = authn_request::post_xml(saml_response)?;
        let resp = logout::parse_response(&xml)?;
        let sp = self.by_issuer(&resp.issuer)?;
        Self::check_logout_signature(sp, resp.signed, |cert| {
            authn_request::verify_post_signature(&xml, &resp.id, cert)
        })?;
        Ok((resp, sp))
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
        self.respond_in_session(sp, principal, request, None, now)
    }

    /// The signed response for `principal` (SP-initiated when `request` is given), honouring the request's
    /// `NameIDPolicy/@Format` ([`ServiceProvider::nameid_format_for`]). `earlier_transient` is the transient NameID
    /// this browser session already has at this SP, if any (kept for the session; a new session gets a new one).
    /// A format that cannot be issued is answered with a signed `InvalidNameIDPolicy` status response (no
    /// assertion, `name_id` and `session_index` empty), which the gateway posts to the SP like any response.
    pub fn respond_in_session(
        &self,
        sp: &ServiceProvider,
        principal: &crate::Principal,
        request: Option<&AuthnRequest>,
        earlier_transient: Option<&str>,
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
        let name_id = sp
            .nameid_format_for(request.and_then(|r| r.nameid_policy_format.as_deref()))
            .and_then(|format| sp.issue_name_id(principal, format, &self.persistent_key.0, earlier_transient));
        let (xml, name_id, session_index) = match name_id {
            Ok(name_id) => {
                (response::build(sp, principal, &name_id, &params, &self.keys())?, Some(name_id), Some(assertion_id))
            }
            Err(e @ SamlError::InvalidNameIdPolicy { .. }) => {
                tracing::info!(sp = sp.name(), username = %principal.username, reason = %e, "answering InvalidNameIDPolicy");
                (
                    response::build_status(
                        sp,
                        &params,
                        response::REQUESTER,
                        response::INVALID_NAMEID_POLICY,
                        &self.keys(),
                    )?,
                    None,
                    None,
                )
            }
            Err(e) => return Err(e),
        };
        Ok(SignedResponse {
            saml_response: base64::engine::general_purpose::STANDARD.encode(&xml),
            acs_url,
            xml,
            session_index,
            name_id,
        })
    }

    /// The answer to a passive AuthnRequest (`IsPassive="true"`) when nobody is signed in: a signed Response with
    /// status `Responder` / `NoPassive` and no assertion, for the request's ACS (SAML core §3.4.1: the IdP must not
    /// show the user anything and must answer the SP). Keycloak answers the same way.
    pub fn no_passive(
        &self,
        sp: &ServiceProvider,
        request: &AuthnRequest,
        now: OffsetDateTime,
    ) -> Result<SignedResponse, SamlError> {
        let acs_url = self.acs_for(sp, Some(request))?.to_string();
        let params = response::ResponseParams {
            issuer: &self.entity_id,
            acs_url: &acs_url,
            in_response_to: Some(request.id.as_str()),
            assertion_id: "",
            window: response::Window { now, lifetime: self.cfg.assertion_lifetime, skew: self.cfg.clock_skew },
        };
        let xml = response::build_status(sp, &params, response::RESPONDER, response::NO_PASSIVE, &self.keys())?;
        Ok(SignedResponse {
            saml_response: base64::engine::general_purpose::STANDARD.encode(&xml),
            acs_url,
            xml,
            session_index: None,
            name_id: None,
        })
    }

    /// The signing keys (tests verify signatures with the certificate).
    pub fn keys(&self) -> std::sync::Arc<SigningKeys> {
        std::sync::Arc::clone(&self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}
