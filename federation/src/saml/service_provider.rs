//! `[saml]` and `[[saml.service_providers]]`: per-SP NameID rules, attributes, signing options, and the presets for
//! Alibaba Cloud RAM user-based SSO (`aliyun-ram-user`) and role-based SSO (`aliyun-ram-role`), cn and intl sites.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::signature::Algorithm;
use crate::{ConfigIssue, Principal};

/// The `[saml]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SamlConfig {
    /// IdP entity ID (= `Issuer`); default `{public_url}/saml/metadata`. Keep it stable forever.
    pub entity_id: Option<String>,
    /// PEM signing certificate; with `key_file`. Without both, a self-signed one is generated in `keys_dir`.
    pub cert_file: Option<PathBuf>,
    /// PEM RSA private key.
    pub key_file: Option<PathBuf>,
    /// Where a generated key and certificate are kept.
    pub keys_dir: PathBuf,
    /// Further certificates to publish in metadata (the next or previous one during a rotation).
    pub extra_cert_files: Vec<PathBuf>,
    /// How long an assertion is valid after it is issued.
    #[serde(with = "humantime_serde")]
    pub assertion_lifetime: Duration,
    /// Clock skew allowed before `IssueInstant` (`NotBefore = now − clock_skew`).
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// `WantAuthnRequestsSigned` in metadata.
    pub want_authn_requests_signed: bool,
    /// Longest `RelayState` accepted from an SP or a browser, in bytes. The bindings (SAML 2.0 Bindings §3.4.3,
    /// §3.5.3) cap it at 80; a higher value accommodates SPs that put a whole URL there.
    pub max_relay_state_bytes: usize,
    /// How long fedgate's "Signing out" page waits for the SPs' LogoutResponses (each SP in an iframe) before it
    /// moves on and names the SPs that did not answer.
    #[serde(with = "humantime_serde")]
    pub logout_wait: Duration,
    /// A file holding the secret (at least 32 bytes) that keys `persistent` NameIDs (HMAC-SHA256 over the SP's
    /// entity ID and the user's subject). Without it the secret is generated once in `keys_dir`
    /// (`saml-persistent-nameid.secret`), so persistent NameIDs stay the same across restarts, key rotations and
    /// replicas that share `keys_dir`.
    pub persistent_nameid_secret_file: Option<PathBuf>,
    /// The service providers.
    pub service_providers: Vec<SpConfig>,
}

/// `RelayState` length the bindings allow (SAML 2.0 Bindings §3.4.3, §3.5.3): the least `max_relay_state_bytes`.
pub const SPEC_RELAY_STATE_BYTES: usize = 80;
/// The most `max_relay_state_bytes` may be set to.
pub const MAX_RELAY_STATE_BYTES_LIMIT: usize = 64 * 1024;

impl Default for SamlConfig {
    fn default() -> Self {
        Self {
            entity_id: None,
            cert_file: None,
            key_file: None,
            keys_dir: PathBuf::from("data/keys/saml"),
            extra_cert_files: Vec::new(),
            assertion_lifetime: Duration::from_secs(300),
            clock_skew: Duration::from_secs(60),
            want_authn_requests_signed: false,
            max_relay_state_bytes: SPEC_RELAY_STATE_BYTES,
            logout_wait: Duration::from_secs(3),
            persistent_nameid_secret_file: None,
            service_providers: Vec::new(),
        }
    }
}

/// Presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Alibaba Cloud RAM user-based SSO: NameID = the RAM user's UPN.
    AliyunRamUser,
    /// Alibaba Cloud RAM role-based SSO: Role / RoleSessionName attributes.
    AliyunRamRole,
}

/// Alibaba Cloud site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Site {
    /// China site (aliyun.com).
    #[default]
    Cn,
    /// International site (alibabacloud.com).
    Intl,
}

/// NameID format names in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameIdFormat {
    /// `urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress`
    Email,
    /// `urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified`
    Unspecified,
    /// `urn:oasis:names:tc:SAML:2.0:nameid-format:persistent`
    Persistent,
    /// `urn:oasis:names:tc:SAML:2.0:nameid-format:transient`
    Transient,
}

impl NameIdFormat {
    /// The format named by `uri` (SAML core §8.3), if fedgate can produce it.
    pub fn from_uri(uri: &str) -> Option<Self> {
        [Self::Email, Self::Unspecified, Self::Persistent, Self::Transient].into_iter().find(|f| f.uri() == uri)
    }

    /// The format URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Email => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            Self::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            Self::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            Self::Transient => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        }
    }
}

/// The `NameFormat` of an `<Attribute>` (SAML core §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AttributeNameFormat {
    /// `urn:oasis:names:tc:SAML:2.0:attrname-format:uri` (names are URIs or URNs, e.g. `urn:oid:0.9.2342.19200300.100.1.3`).
    #[default]
    Uri,
    /// `urn:oasis:names:tc:SAML:2.0:attrname-format:basic` (plain names such as `mail`).
    Basic,
    /// `urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified`.
    Unspecified,
}

impl AttributeNameFormat {
    /// The format URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Uri => "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
            Self::Basic => "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
            Self::Unspecified => "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified",
        }
    }
}

/// One configured attribute: a template (`mail = "{email}"`), or a table with its `NameFormat` and `FriendlyName`
/// (`mail = { value = "{email}", name_format = "basic", friendly_name = "mail" }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeConfig {
    /// Just the template; the SP's `attribute_name_format`, no `FriendlyName`.
    Template(String),
    /// The template with its own `NameFormat` and `FriendlyName`.
    Detailed {
        /// The template (a bare `{groups}` or `{roles}` gives one value per item).
        value: String,
        /// `NameFormat`; default the SP's `attribute_name_format`.
        #[serde(default)]
        name_format: Option<AttributeNameFormat>,
        /// `FriendlyName`.
        #[serde(default)]
        friendly_name: Option<String>,
    },
}

impl AttributeConfig {
    /// The template.
    pub fn template(&self) -> &str {
        match self {
            Self::Template(t) | Self::Detailed { value: t, .. } => t,
        }
    }
}

/// The SAML binding of an SP's SingleLogoutService.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SloBinding {
    /// HTTP-Redirect: the message deflated in the query, signed with `SigAlg`/`Signature` (SAML bindings §3.4).
    Redirect,
    /// HTTP-POST: an auto-submitting form carrying the XML with an enveloped signature (SAML bindings §3.5).
    Post,
}

impl SloBinding {
    /// The binding URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Redirect => "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            Self::Post => "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        }
    }
}

/// An SP's SingleLogoutService: where LogoutRequests go, where LogoutResponses go, and by which binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloEndpoint {
    /// The binding.
    pub binding: SloBinding,
    /// `Location`: where LogoutRequests are sent.
    pub location: String,
    /// `ResponseLocation`, else `Location`: where LogoutResponses are sent.
    pub response_location: String,
}

/// One `[[saml.service_providers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SpConfig {
    /// Short name, used in `/saml/init/{name}` (IdP-initiated SSO).
    pub name: String,
    /// Display name on the account page.
    pub display_name: Option<String>,
    /// Preset that fills entity ID, ACS, NameID and attributes.
    pub preset: Option<Preset>,
    /// SP entity ID (= `Audience`, and the `Issuer` of its AuthnRequests).
    pub entity_id: Option<String>,
    /// The SP's metadata (XML file): fills `entity_id`, `acs_urls` and the request-signing certificate when those
    /// are not set explicitly.
    pub metadata_file: Option<PathBuf>,
    /// Registered ACS URLs; responses go only to one of these. The first is the default.
    pub acs_urls: Vec<String>,
    /// The SP's SingleLogoutService (LogoutRequests and LogoutResponses go there); without it, the one in the SP's
    /// metadata (HTTP-POST preferred, else HTTP-Redirect).
    pub slo_url: Option<String>,
    /// The binding of `slo_url`: `post` (default for `slo_url`) or `redirect`; with metadata, picks that binding's
    /// endpoint.
    pub slo_binding: Option<SloBinding>,
    /// NameID format when the AuthnRequest asks for none (or for `unspecified`).
    pub nameid_format: Option<NameIdFormat>,
    /// Always use `nameid_format`, whatever `NameIDPolicy/@Format` the AuthnRequest asks for (Keycloak's "Force
    /// Name ID Format"). Default: true for the Alibaba presets (RAM documents the format it needs), else false.
    pub force_nameid_format: Option<bool>,
    /// `NameFormat` of the configured attributes that do not set their own: `uri` (default), `basic`, `unspecified`.
    pub attribute_name_format: AttributeNameFormat,
    /// NameID template over user fields: `{username}`, `{email}`, `{email_local}`, `{subject}`, `{display_name}`,
    /// `{given_name}`, `{family_name}`, `{auxiliary_domain}`. Lower-cased.
    pub nameid_template: Option<String>,
    /// Attributes: SAML attribute name → template (a bare `{groups}` or `{roles}` gives one value per item), or a
    /// table `{ value, name_format, friendly_name }`.
    pub attributes: BTreeMap<String, AttributeConfig>,
    /// Also sign the Response (the Assertion is always signed).
    pub sign_response: bool,
    /// `rsa-sha256` (default) or `rsa-sha1`.
    pub signature_algorithm: Algorithm,
    /// Only members of these groups may sign in to this SP.
    pub allowed_groups: Option<Vec<String>>,
    /// `RelayState` for IdP-initiated logins when none is given.
    pub default_relay_state: Option<String>,
    /// The SP's signing certificate (PEM), to verify signed AuthnRequests.
    pub certificate_file: Option<PathBuf>,
    /// Refuse AuthnRequests that are not signed by `certificate_file`.
    pub want_authn_requests_signed: bool,
    /// Send the assertion as an `EncryptedAssertion` (AES-256-GCM, the key wrapped with RSA-OAEP for the SP's
    /// encryption certificate), for SPs that require it.
    pub encrypt_assertions: bool,
    /// The SP's encryption certificate (PEM). Default: the `KeyDescriptor use="encryption"` of its metadata, else
    /// its signing certificate (`certificate_file` or the metadata's).
    pub encryption_certificate_file: Option<PathBuf>,
    /// Alibaba: the account ID.
    pub account_id: Option<String>,
    /// Alibaba: site.
    pub site: Site,
    /// Alibaba user SSO: UPN suffix; default `<account_id>.onaliyun.com`.
    pub auxiliary_domain: Option<String>,
    /// Alibaba user SSO: `SsoLoginWithDomain` (false → bare user name as NameID).
    pub sso_login_with_domain: bool,
    /// Alibaba role SSO: the SAML provider name in RAM.
    pub provider_name: Option<String>,
    /// Alibaba role SSO: group → RAM role name.
    pub role_mapping: BTreeMap<String, String>,
    /// Alibaba role SSO: `SessionDuration` in seconds (900–43200).
    pub session_duration: Option<u64>,
}

impl Default for SpConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            display_name: None,
            preset: None,
            entity_id: None,
            metadata_file: None,
            acs_urls: Vec::new(),
            slo_url: None,
            slo_binding: None,
            nameid_format: None,
            force_nameid_format: None,
            attribute_name_format: AttributeNameFormat::Uri,
            nameid_template: None,
            attributes: BTreeMap::new(),
            sign_response: false,
            signature_algorithm: Algorithm::RsaSha256,
            allowed_groups: None,
            default_relay_state: None,
            certificate_file: None,
            want_authn_requests_signed: false,
            encrypt_assertions: false,
            encryption_certificate_file: None,
            account_id: None,
            site: Site::Cn,
            auxiliary_domain: None,
            sso_login_with_domain: true,
            provider_name: None,
            role_mapping: BTreeMap::new(),
            session_duration: None,
        }
    }
}

/// Alibaba role SSO attribute names (the same on both sites).
pub const ROLE_ATTR: &str = "https://www.aliyun.com/SAML-Role/Attributes/Role";
/// Alibaba role SSO session name attribute.
pub const ROLE_SESSION_NAME_ATTR: &str = "https://www.aliyun.com/SAML-Role/Attributes/RoleSessionName";
/// Alibaba role SSO session duration attribute.
pub const SESSION_DURATION_ATTR: &str = "https://www.aliyun.com/SAML-Role/Attributes/SessionDuration";

/// A service provider with its preset applied: what the response builder needs.
#[derive(Debug, Clone)]
pub struct ServiceProvider {
    /// The configuration as written.
    pub config: SpConfig,
    /// Entity ID = Audience.
    pub entity_id: String,
    /// Registered ACS URLs.
    pub acs_urls: Vec<String>,
    /// NameID format.
    pub nameid_format: NameIdFormat,
    /// NameID template.
    pub nameid_template: String,
    /// The certificate for AuthnRequest signatures (DER), if configured.
    pub certificate_der: Option<Vec<u8>>,
    /// The certificate whose RSA key encrypted assertions are for (DER), when `encrypt_assertions` is set.
    pub encryption_cert_der: Option<Vec<u8>>,
    /// Where LogoutResponses go (the `ResponseLocation` of [`Self::slo`]).
    pub slo_url: Option<String>,
    /// The SP's SingleLogoutService (from `slo_url` + `slo_binding`, or the SP's metadata).
    pub slo: Option<SloEndpoint>,
}

/// One attribute to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `Name`.
    pub name: String,
    /// `NameFormat`.
    pub name_format: AttributeNameFormat,
    /// `FriendlyName`, if any.
    pub friendly_name: Option<String>,
    /// The values, one `AttributeValue` each.
    pub values: Vec<String>,
}

impl Attribute {
    fn uri(name: &str, values: Vec<String>) -> Self {
        Self { name: name.to_string(), name_format: AttributeNameFormat::Uri, friendly_name: None, values }
    }
}

/// A NameID as issued: its format and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedNameId {
    /// The format.
    pub format: NameIdFormat,
    /// The value.
    pub value: String,
}

impl ServiceProvider {
    /// Applies the preset. Call [`SpConfig::validate`] first.
    pub fn new(config: SpConfig) -> Result<Self, super::SamlError> {
        let account = config.account_id.clone().unwrap_or_default();
        let (entity_id, acs, format, template) = match config.preset {
            Some(Preset::AliyunRamUser) => {
                let host = match config.site {
                    Site::Cn => "signin.aliyun.com",
                    Site::Intl => "signin-intl.aliyun.com",
                };
                let (format, template) = if config.sso_login_with_domain {
                    (NameIdFormat::Email, "{username}@{auxiliary_domain}")
                } else {
                    (NameIdFormat::Unspecified, "{username}")
                };
                (
                    format!("https://{host}/{account}/saml/SSO"),
                    format!("https://{host}/saml/SSO"),
                    format,
                    template.to_string(),
                )
            }
            Some(Preset::AliyunRamRole) => {
                let (aud, acs) = match config.site {
                    Site::Cn => ("urn:alibaba:cloudcomputing", "https://signin.aliyun.com/saml-role/sso"),
                    Site::Intl => {
                        ("urn:alibaba:cloudcomputing:international", "https://signin.alibabacloud.com/saml-role/sso")
                    }
                };
                (aud.to_string(), acs.to_string(), NameIdFormat::Persistent, "{subject}".to_string())
            }
            None => (String::new(), String::new(), NameIdFormat::Unspecified, "{username}".to_string()),
        };
        let metadata = match &config.metadata_file {
            Some(path) => {
                let xml = std::fs::read(path).map_err(|source| ConfigError::File {
                    sp: config.name.clone(),
                    key: "metadata_file",
                    path: path.clone(),
                    source,
                })?;
                let metadata = super::sp_metadata::parse(&xml).map_err(|source| ConfigError::Metadata {
                    sp: config.name.clone(),
                    path: path.clone(),
                    source,
                })?;
                Some(metadata)
            }
            None => None,
        };
        let entity_id =
            config.entity_id.clone().or_else(|| metadata.as_ref().map(|m| m.entity_id.clone())).unwrap_or(entity_id);
        let acs_urls = match (&metadata, config.acs_urls.is_empty()) {
            (_, false) => config.acs_urls.clone(),
            (Some(m), true) => m.acs_urls.clone(),
            (None, true) if !acs.is_empty() => vec![acs],
            (None, true) => Vec::new(),
        };
        let certificate_der = match &config.certificate_file {
            Some(path) => Some(read_certificate(&config.name, "certificate_file", path)?),
            None => metadata.as_ref().and_then(|m| m.signing_cert_der.clone()),
        };
        let encryption_cert_der = match (&config.encryption_certificate_file, config.encrypt_assertions) {
            (_, false) => None,
            (Some(path), true) => Some(read_certificate(&config.name, "encryption_certificate_file", path)?),
            (None, true) => {
                let cert =
                    metadata.as_ref().and_then(|m| m.encryption_cert_der.clone()).or_else(|| certificate_der.clone());
                Some(cert.ok_or_else(|| ConfigError::NoEncryptionCertificate(config.name.clone()))?)
            }
        };
        let slo = match (&config.slo_url, &metadata) {
            (Some(url), _) => Some(SloEndpoint {
                binding: config.slo_binding.unwrap_or(SloBinding::Post),
                location: url.clone(),
                response_location: url.clone(),
            }),
            (None, Some(m)) => {
                let wanted = config.slo_binding;
                let pick = |b: SloBinding| m.slo.iter().find(|e| e.binding == b).cloned();
                match wanted {
                    Some(b) => pick(b),
                    None => pick(SloBinding::Post).or_else(|| pick(SloBinding::Redirect)),
                }
            }
            (None, None) => None,
        };
        let slo_url = slo.as_ref().map(|e| e.response_location.clone());
        if config.signature_algorithm == Algorithm::RsaSha1 {
            tracing::warn!(
                sp = %config.name,
                "signing for this SP with RSA-SHA1 and a SHA-1 digest (signature_algorithm = \"rsa-sha1\"); SHA-1 is \
                 weak: switch to rsa-sha256 as soon as the SP accepts it"
            );
        }
        Ok(Self {
            slo_url,
            slo,
            nameid_format: config.nameid_format.unwrap_or(format),
            nameid_template: config.nameid_template.clone().unwrap_or(template),
            entity_id,
            acs_urls,
            certificate_der,
            encryption_cert_der,
            config,
        })
    }

    /// The SP's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn auxiliary_domain(&self) -> String {
        self.config
            .auxiliary_domain
            .clone()
            .unwrap_or_else(|| format!("{}.onaliyun.com", self.config.account_id.as_deref().unwrap_or("")))
    }

    /// Renders a template for `p`; `Err(field)` names the user field that is empty.
    fn render(&self, template: &str, p: &Principal) -> Result<String, String> {
        crate::template::render(template, p, Some(&self.auxiliary_domain()))
    }

    fn mapping_error(&self, p: &Principal, reason: String) -> super::SamlError {
        super::SamlError::Mapping { sp: self.config.name.clone(), username: p.username.clone(), reason }
    }

    /// The NameID for `p`, checked against the SP's rules (RAM user names: `[a-z0-9._-]{1,64}` before the `@`).
    pub fn name_id(&self, p: &Principal) -> Result<String, super::SamlError> {
        let value = self.render(&self.nameid_template, p).map_err(|field| {
            self.mapping_error(
                p,
                format!("the user has no {field}, which nameid_template {:?} needs", self.nameid_template),
            )
        })?;
        let value = if self.nameid_format == NameIdFormat::Persistent { value } else { value.to_lowercase() };
        if value.trim().is_empty() {
            return Err(self.mapping_error(p, "the NameID would be empty".into()));
        }
        if self.config.preset == Some(Preset::AliyunRamUser) {
            let local = value.split('@').next().unwrap_or("");
            let ok = !local.is_empty()
                && local.len() <= 64
                && local.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !ok {
                return Err(self.mapping_error(
                    p,
                    format!("NameID {value:?} is not a valid RAM user name (1–64 of a-z 0-9 . _ - before the @); RAM would answer \"The user does not exist\". Map username to the RAM user name"),
                ));
            }
        }
        Ok(value)
    }

    /// Whether the configured `nameid_format` is used whatever the AuthnRequest asks for.
    pub fn forces_nameid_format(&self) -> bool {
        self.config.force_nameid_format.unwrap_or(self.config.preset.is_some())
    }

    /// The NameID format to issue for a request whose `NameIDPolicy/@Format` is `requested` (SAML core §3.4.1.1):
    /// the configured one when none (or `unspecified`) is asked for or the SP forces its format; otherwise the one
    /// asked for, if fedgate can produce it; else [`super::SamlError::InvalidNameIdPolicy`], never another format.
    pub fn nameid_format_for(&self, requested: Option<&str>) -> Result<NameIdFormat, super::SamlError> {
        match requested {
            None => Ok(self.nameid_format),
            Some(uri) if uri == NameIdFormat::Unspecified.uri() || self.forces_nameid_format() => {
                Ok(self.nameid_format)
            }
            Some(uri) => NameIdFormat::from_uri(uri).ok_or_else(|| super::SamlError::InvalidNameIdPolicy {
                sp: self.name().to_string(),
                requested: uri.to_string(),
                reason: "fedgate issues emailAddress, persistent, transient and unspecified NameIDs only".into(),
            }),
        }
    }

    /// The NameID of `format` for `p`: for `persistent`, the value an earlier IdP gave this user at this SP when
    /// there is one (`Principal::saml_persistent_nameids`); the configured template for the configured format; for another format, the
    /// user's e-mail address (`emailAddress`), `persistent` (a pairwise opaque value: HMAC-SHA256 keyed with
    /// `persistent_key` over this SP's entity ID and the user's subject, so it is stable for one user at one SP
    /// and unlinkable across SPs), or `transient` (`earlier_transient` when this session already has one for this
    /// SP, else a fresh random value). A format the user's data cannot fill is
    /// [`super::SamlError::InvalidNameIdPolicy`].
    pub fn issue_name_id(
        &self,
        p: &Principal,
        format: NameIdFormat,
        persistent_key: &[u8],
        earlier_transient: Option<&str>,
    ) -> Result<IssuedNameId, super::SamlError> {
        let kept = p.saml_persistent_nameids.get(&self.entity_id).filter(|v| !v.is_empty());
        let value = match format {
            NameIdFormat::Persistent if kept.is_some() => kept.cloned().unwrap_or_default(),
            f if f == self.nameid_format => self.name_id(p)?,
            NameIdFormat::Unspecified => self.name_id(p)?,
            NameIdFormat::Email => match p.email.as_deref().map(str::trim) {
                Some(e) if e.len() > 2 && e.contains('@') => e.to_lowercase(),
                _ => {
                    return Err(super::SamlError::InvalidNameIdPolicy {
                        sp: self.name().to_string(),
                        requested: format.uri().to_string(),
                        reason: format!("{:?} has no e-mail address", p.username),
                    });
                }
            },
            NameIdFormat::Persistent => pairwise_id(persistent_key, &self.entity_id, &p.subject),
            NameIdFormat::Transient => match earlier_transient {
                Some(t) => t.to_string(),
                None => super::response::new_id(),
            },
        };
        Ok(IssuedNameId { format, value })
    }

    /// The attributes for `p` (preset attributes first).
    pub fn attributes(&self, p: &Principal) -> Result<Vec<Attribute>, super::SamlError> {
        let mut out = Vec::new();
        if self.config.preset == Some(Preset::AliyunRamRole) {
            let account = self.config.account_id.clone().unwrap_or_default();
            let provider = self.config.provider_name.clone().unwrap_or_default();
            let mut roles: Vec<String> = self
                .config
                .role_mapping
                .iter()
                .filter(|(group, _)| p.groups.iter().any(|g| g.eq_ignore_ascii_case(group)))
                .map(|(_, role)| format!("acs:ram::{account}:role/{role},acs:ram::{account}:saml-provider/{provider}"))
                .collect();
            roles.sort();
            roles.dedup();
            if roles.is_empty() {
                return Err(self.mapping_error(
                    p,
                    format!(
                        "none of the user's groups ({}) is in role_mapping, so there is no RAM role to assume",
                        p.groups.join(", ")
                    ),
                ));
            }
            out.push(Attribute::uri(ROLE_ATTR, roles));
            out.push(Attribute::uri(
                ROLE_SESSION_NAME_ATTR,
                vec![role_session_name(&p.username).ok_or_else(|| {
                    self.mapping_error(
                        p,
                        "the username has fewer than 2 characters usable in RoleSessionName ([A-Za-z0-9._@-])".into(),
                    )
                })?],
            ));
            if let Some(d) = self.config.session_duration {
                out.push(Attribute::uri(SESSION_DURATION_ATTR, vec![d.clamp(900, 43_200).to_string()]));
            }
        }
        for (name, attr) in &self.config.attributes {
            let values = match attr.template() {
                "{groups}" => p.groups.clone(),
                "{group_paths}" => p.groups_as(crate::principal::GroupFormat::Path),
                "{roles}" => p.roles.clone(),
                t => match self.render(t, p) {
                    Ok(v) => vec![v],
                    Err(_) => continue, // an optional attribute the user lacks is left out
                },
            };
            if !values.is_empty() {
                let (name_format, friendly_name) = match attr {
                    AttributeConfig::Template(_) => (self.config.attribute_name_format, None),
                    AttributeConfig::Detailed { name_format, friendly_name, .. } => {
                        (name_format.unwrap_or(self.config.attribute_name_format), friendly_name.clone())
                    }
                };
                out.push(Attribute { name: name.clone(), name_format, friendly_name, values });
            }
        }
        Ok(out)
    }

    /// Whether a LogoutRequest naming `name_id` is about `p`: the NameID this SP would get for `p`, compared
    /// case-insensitively. A request that names nobody is about nobody (SAML core §3.7.1 requires the NameID; ending
    /// a session on a request without one would let any page log the user out).
    pub fn is_subject_of_logout(&self, name_id: Option<&str>, p: &Principal) -> bool {
        match (name_id, self.name_id(p)) {
            (None, _) => false,
            (Some(asked), Ok(mine)) => asked.eq_ignore_ascii_case(&mine),
            (Some(_), Err(_)) => false,
        }
    }

    /// Whether `p` may use this SP.
    pub fn allows(&self, p: &Principal) -> bool {
        self.config
            .allowed_groups
            .as_ref()
            .is_none_or(|allowed| p.groups.iter().any(|g| allowed.iter().any(|a| a.eq_ignore_ascii_case(g))))
    }
}

/// The DER of the PEM certificate in `path`, named by the SP and the configuration key for errors.
fn read_certificate(sp: &str, key: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(path).map_err(|source| ConfigError::File {
        sp: sp.to_string(),
        key,
        path: path.to_path_buf(),
        source,
    })?;
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(&pem).map_err(|source| ConfigError::Certificate {
        sp: sp.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(cert.to_vec())
}

/// A pairwise persistent NameID: HMAC-SHA256(`key`, entity ID ‖ 0x00 ‖ subject), base64url without padding (43
/// characters, SAML core §8.3.7 allows up to 256).
pub fn pairwise_id(key: &[u8], sp_entity_id: &str, subject: &str) -> String {
    use base64::Engine as _;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(sp_entity_id.as_bytes());
    ctx.update(&[0]);
    ctx.update(subject.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
}

/// RoleSessionName: the username reduced to `[A-Za-z0-9._@-]`, 2–64 characters.
pub fn role_session_name(username: &str) -> Option<String> {
    let s: String = username.chars().filter(|c| c.is_ascii_alphanumeric() || "._@-".contains(*c)).take(64).collect();
    (s.len() >= 2).then_some(s)
}

impl SpConfig {
    /// Every problem in this SP's configuration (keys relative to the SP entry, e.g. `account_id`).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        if self.name.is_empty() || !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            out.push(ConfigIssue::new(
                "name",
                Some(self.name.clone()),
                "missing or not URL-safe",
                "use letters, digits, '-', '_' or '.', e.g. \"aliyun\"",
            ));
        }
        match self.preset {
            Some(p) => {
                match &self.account_id {
                    Some(a) if !a.is_empty() && a.len() <= 32 && a.bytes().all(|b| b.is_ascii_digit()) => {}
                    other => out.push(ConfigIssue::new(
                        "account_id",
                        other.clone(),
                        "the Alibaba Cloud account ID is missing or not numeric",
                        "copy the account ID (16 digits) from the Alibaba Cloud console",
                    )),
                }
                if p == Preset::AliyunRamRole {
                    if self.provider_name.as_deref().is_none_or(str::is_empty) {
                        out.push(ConfigIssue::new(
                            "provider_name",
                            None,
                            "missing",
                            "set the name of the SAML identity provider created in RAM",
                        ));
                    }
                    if self.role_mapping.is_empty() {
                        out.push(ConfigIssue::new(
                            "role_mapping",
                            None,
                            "no group maps to a RAM role",
                            "add e.g. [saml.service_providers.role_mapping] ai-admins = \"AdminRole\"",
                        ));
                    }
                    for (group, role) in &self.role_mapping {
                        if role.is_empty() || role.contains([',', ' ', ':', '/']) {
                            out.push(ConfigIssue::new(
                                format!("role_mapping.{group}"),
                                Some(role.clone()),
                                "not a RAM role name",
                                "use the role's name only, e.g. \"AdminRole\"",
                            ));
                        }
                    }
                }
            }
            None if self.metadata_file.is_some() => {}
            None => {
                if self.entity_id.as_deref().is_none_or(str::is_empty) {
                    out.push(ConfigIssue::new(
                        "entity_id",
                        None,
                        "missing",
                        "set the SP's entity ID, or metadata_file",
                    ));
                }
                if self.acs_urls.is_empty() {
                    out.push(ConfigIssue::new(
                        "acs_urls",
                        None,
                        "no ACS URL registered",
                        "list the SP's AssertionConsumerService URLs",
                    ));
                }
            }
        }
        for (i, u) in self.acs_urls.iter().enumerate() {
            if url::Url::parse(u).map(|u| matches!(u.scheme(), "http" | "https")).unwrap_or(false) {
                continue;
            }
            out.push(ConfigIssue::new(
                format!("acs_urls[{i}]"),
                Some(u.clone()),
                "not an absolute http(s) URL",
                "copy the ACS Location from the SP's metadata",
            ));
        }
        if self.slo_binding.is_some() && self.slo_url.is_none() && self.metadata_file.is_none() {
            out.push(ConfigIssue::new(
                "slo_binding",
                None,
                "slo_binding without slo_url or metadata_file",
                "set slo_url (the SP's SingleLogoutService Location), or remove slo_binding",
            ));
        }
        if let Some(u) = &self.slo_url
            && !url::Url::parse(u).map(|u| matches!(u.scheme(), "http" | "https")).unwrap_or(false)
        {
            out.push(ConfigIssue::new(
                "slo_url",
                Some(u.clone()),
                "not an absolute http(s) URL",
                "copy the SingleLogoutService Location from the SP's metadata",
            ));
        }
        for (key, template) in self
            .nameid_template
            .iter()
            .map(|t| ("nameid_template".to_string(), t.as_str()))
            .chain(self.attributes.iter().map(|(k, t)| (format!("attributes.{k}"), t.template())))
        {
            out.extend(crate::template::check(&key, template));
        }
        if let Some(d) = self.session_duration
            && !(900..=43_200).contains(&d)
        {
            out.push(ConfigIssue::new(
                "session_duration",
                Some(d.to_string()),
                "outside 900–43200 seconds",
                "use e.g. 3600",
            ));
        }
        if let Some(path) = self.metadata_file.as_ref().filter(|p| !p.is_file()) {
            out.push(ConfigIssue::new(
                "metadata_file",
                Some(path.display().to_string()),
                "file not found",
                "download the SP's metadata XML and point metadata_file at it",
            ));
        }
        if self.encrypt_assertions
            && self.encryption_certificate_file.is_none()
            && self.certificate_file.is_none()
            && self.metadata_file.is_none()
        {
            out.push(ConfigIssue::new(
                "encrypt_assertions",
                Some("true".into()),
                "encrypted assertions need the SP's encryption certificate",
                "set encryption_certificate_file (PEM), or metadata_file with the SP's KeyDescriptor",
            ));
        }
        if self.want_authn_requests_signed && self.certificate_file.is_none() && self.metadata_file.is_none() {
            out.push(ConfigIssue::new(
                "certificate_file",
                None,
                "want_authn_requests_signed needs the SP's certificate",
                "set certificate_file to the SP's signing certificate (PEM)",
            ));
        }
        out
    }
}

impl SamlConfig {
    /// Every problem in `[saml]`.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        if self.cert_file.is_some() != self.key_file.is_some() {
            out.push(ConfigIssue::new(
                "cert_file",
                None,
                "cert_file and key_file go together",
                "set both, or neither to generate a certificate",
            ));
        }
        if !(Duration::from_secs(30)..=Duration::from_secs(3600)).contains(&self.assertion_lifetime) {
            out.push(ConfigIssue::new("assertion_lifetime", None, "outside 30s–1h", "use about \"5m\""));
        }
        if !(SPEC_RELAY_STATE_BYTES..=MAX_RELAY_STATE_BYTES_LIMIT).contains(&self.max_relay_state_bytes) {
            out.push(ConfigIssue::new(
                "max_relay_state_bytes",
                Some(self.max_relay_state_bytes.to_string()),
                format!(
                    "outside {SPEC_RELAY_STATE_BYTES}–{MAX_RELAY_STATE_BYTES_LIMIT} bytes (the SAML bindings allow \
                     {SPEC_RELAY_STATE_BYTES})"
                ),
                "leave it at 80, or raise it only as far as an SP that sends longer RelayState values needs",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(30)).contains(&self.logout_wait) {
            out.push(ConfigIssue::new(
                "logout_wait",
                Some(humantime_serde::re::humantime::format_duration(self.logout_wait).to_string()),
                "outside 1s–30s (the browser waits this long on every logout with SAML SPs)",
                "use about \"3s\"; more only for SPs that take longer to answer",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, sp) in self.service_providers.iter().enumerate() {
            if !names.insert(sp.name.clone()) {
                out.push(ConfigIssue::new(
                    format!("service_providers[{i}].name"),
                    Some(sp.name.clone()),
                    "duplicate name",
                    "give each SP its own name",
                ));
            }
            for issue in sp.validate() {
                out.push(ConfigIssue::new(
                    format!("service_providers[{i}].{}", issue.key),
                    issue.value,
                    issue.problem,
                    issue.fix,
                ));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn relay_state_limit_defaults_to_the_bindings_80_bytes_and_may_only_be_raised() {
        let cfg = SamlConfig::default();
        assert_eq!(cfg.max_relay_state_bytes, 80);
        assert!(cfg.validate().is_empty());
        for (bytes, ok) in [(79, false), (80, true), (2048, true), (MAX_RELAY_STATE_BYTES_LIMIT + 1, false)] {
            let cfg = SamlConfig { max_relay_state_bytes: bytes, ..SamlConfig::default() };
            let problems = cfg.validate();
            assert_eq!(problems.is_empty(), ok, "{bytes}: {problems:?}");
            assert!(problems.iter().all(|p| p.key == "max_relay_state_bytes"));
        }
    }

    #[test]
    fn logout_wait_is_3s_and_bounded() {
        assert_eq!(SamlConfig::default().logout_wait, Duration::from_secs(3));
        for (secs, ok) in [(0, false), (1, true), (30, true), (31, false)] {
            let cfg = SamlConfig { logout_wait: Duration::from_secs(secs), ..SamlConfig::default() };
            let problems = cfg.validate();
            assert_eq!(problems.is_empty(), ok, "{secs}: {problems:?}");
            assert!(problems.iter().all(|p| p.key == "logout_wait"));
        }
        let cfg = SpConfig { name: "x".into(), encrypt_assertions: true, ..SpConfig::default() };
        assert!(cfg.validate().iter().any(|p| p.key == "encrypt_assertions"), "no certificate to encrypt for");
    }

    fn principal() -> Principal {
        Principal {
            subject: "uuid-1".into(),
            username: "alice".into(),
            email: Some("Alice@Example.org".into()),
            display_name: None,
            given_name: None,
            family_name: None,
            groups: vec![],
            group_paths: vec![],
            roles: vec![],
            claims: Default::default(),
            saml_persistent_nameids: Default::default(),
            auth_time: time::OffsetDateTime::UNIX_EPOCH,
            authn: Default::default(),
        }
    }

    fn sp(entity: &str, preset: Option<Preset>) -> ServiceProvider {
        ServiceProvider::new(SpConfig {
            name: "sp".into(),
            entity_id: Some(entity.into()),
            acs_urls: vec!["https://sp/acs".into()],
            preset,
            account_id: preset.map(|_| "1234567890123456".into()),
            ..SpConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn nameid_policy_is_honoured_unless_forced_and_never_replaced_by_another_format() {
        let generic = sp("https://sp", None);
        let p = principal();
        let key = [7u8; 32];
        let issue = |format: Option<&str>, transient: Option<&str>| {
            generic
                .nameid_format_for(format)
                .and_then(|f| generic.issue_name_id(&p, f, &key, transient))
                .map(|n| (n.format, n.value))
        };
        assert_eq!(issue(None, None).unwrap(), (NameIdFormat::Unspecified, "alice".into()));
        assert_eq!(
            issue(Some(NameIdFormat::Email.uri()), None).unwrap(),
            (NameIdFormat::Email, "alice@example.org".into())
        );
        let persistent = issue(Some(NameIdFormat::Persistent.uri()), None).unwrap();
        assert_eq!(persistent.1, pairwise_id(&key, "https://sp", "uuid-1"));
        assert_ne!(persistent.1, pairwise_id(&key, "https://other-sp", "uuid-1"));
        assert_ne!(persistent.1, pairwise_id(&[8u8; 32], "https://sp", "uuid-1"));
        let t1 = issue(Some(NameIdFormat::Transient.uri()), None).unwrap().1;
        assert_ne!(t1, issue(Some(NameIdFormat::Transient.uri()), None).unwrap().1, "fresh each time");
        assert_eq!(issue(Some(NameIdFormat::Transient.uri()), Some(&t1)).unwrap().1, t1, "kept within a session");
        let err = issue(Some("urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"), None).unwrap_err();
        assert!(matches!(err, crate::saml::SamlError::InvalidNameIdPolicy { .. }), "{err}");
        let no_mail = Principal { email: None, ..principal() };
        let err = generic.issue_name_id(&no_mail, NameIdFormat::Email, &key, None).unwrap_err();
        assert!(matches!(err, crate::saml::SamlError::InvalidNameIdPolicy { .. }), "{err}");
        // The RAM presets force their format; force_nameid_format = false lets the request choose.
        let ram = sp("x", Some(Preset::AliyunRamUser));
        assert!(ram.forces_nameid_format());
        assert_eq!(ram.nameid_format_for(Some(NameIdFormat::Transient.uri())).unwrap(), NameIdFormat::Email);
        assert_eq!(ram.nameid_format_for(Some("urn:x:unknown")).unwrap(), NameIdFormat::Email);
    }

    #[test]
    fn attributes_take_their_name_format_and_friendly_name() {
        let cfg: SpConfig = serde_json::from_value(serde_json::json!({
            "name": "sp", "entity_id": "https://sp", "acs_urls": ["https://sp/acs"],
            "attribute_name_format": "basic",
            "attributes": {
                "mail": "{email}",
                "urn:oid:0.9.2342.19200300.100.1.1": {"value": "{username}", "name_format": "uri", "friendly_name": "uid"}
            }
        }))
        .unwrap();
        let attrs = ServiceProvider::new(cfg).unwrap().attributes(&principal()).unwrap();
        assert_eq!(attrs[0].name, "mail");
        assert_eq!((attrs[0].name_format, attrs[0].friendly_name.as_deref()), (AttributeNameFormat::Basic, None));
        assert_eq!(attrs[1].name_format, AttributeNameFormat::Uri);
        assert_eq!(attrs[1].friendly_name.as_deref(), Some("uid"));
        assert_eq!(attrs[1].values, vec!["alice".to_string()]);
    }
}
