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
    /// Where the SP receives LogoutResponses (its SingleLogoutService, HTTP-POST); enables SP-initiated logout.
    pub slo_url: Option<String>,
    /// NameID format.
    pub nameid_format: Option<NameIdFormat>,
    /// NameID template over user fields: `{username}`, `{email}`, `{email_local}`, `{subject}`, `{display_name}`,
    /// `{given_name}`, `{family_name}`, `{auxiliary_domain}`. Lower-cased.
    pub nameid_template: Option<String>,
    /// Attributes: SAML attribute name → template (a bare `{groups}` or `{roles}` gives one value per item).
    pub attributes: BTreeMap<String, String>,
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
            nameid_format: None,
            nameid_template: None,
            attributes: BTreeMap::new(),
            sign_response: false,
            signature_algorithm: Algorithm::RsaSha256,
            allowed_groups: None,
            default_relay_state: None,
            certificate_file: None,
            want_authn_requests_signed: false,
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
    /// Where LogoutResponses go (from `slo_url` or the SP's metadata).
    pub slo_url: Option<String>,
}

/// One attribute to emit: name and values.
pub type Attribute = (String, Vec<String>);

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
            Some(path) => {
                use rustls::pki_types::pem::PemObject as _;
                let pem = std::fs::read(path).map_err(|source| ConfigError::File {
                    sp: config.name.clone(),
                    key: "certificate_file",
                    path: path.clone(),
                    source,
                })?;
                let cert = rustls::pki_types::CertificateDer::from_pem_slice(&pem).map_err(|source| {
                    ConfigError::Certificate { sp: config.name.clone(), path: path.clone(), source }
                })?;
                Some(cert.to_vec())
            }
            None => metadata.as_ref().and_then(|m| m.signing_cert_der.clone()),
        };
        let slo_url = config.slo_url.clone().or_else(|| metadata.as_ref().and_then(|m| m.slo_url.clone()));
        if config.signature_algorithm == Algorithm::RsaSha1 {
            tracing::warn!(
                sp = %config.name,
                "signing for this SP with RSA-SHA1 and a SHA-1 digest (signature_algorithm = \"rsa-sha1\"); SHA-1 is \
                 weak: switch to rsa-sha256 as soon as the SP accepts it"
            );
        }
        Ok(Self {
            slo_url,
            nameid_format: config.nameid_format.unwrap_or(format),
            nameid_template: config.nameid_template.clone().unwrap_or(template),
            entity_id,
            acs_urls,
            certificate_der,
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
            out.push((ROLE_ATTR.to_string(), roles));
            out.push((
                ROLE_SESSION_NAME_ATTR.to_string(),
                vec![role_session_name(&p.username).ok_or_else(|| {
                    self.mapping_error(
                        p,
                        "the username has fewer than 2 characters usable in RoleSessionName ([A-Za-z0-9._@-])".into(),
                    )
                })?],
            ));
            if let Some(d) = self.config.session_duration {
                out.push((SESSION_DURATION_ATTR.to_string(), vec![d.clamp(900, 43_200).to_string()]));
            }
        }
        for (name, template) in &self.config.attributes {
            let values = match template.as_str() {
                "{groups}" => p.groups.clone(),
                "{roles}" => p.roles.clone(),
                t => match self.render(t, p) {
                    Ok(v) => vec![v],
                    Err(_) => continue, // an optional attribute the user lacks is left out
                },
            };
            if !values.is_empty() {
                out.push((name.clone(), values));
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
            .map(|t| ("nameid_template".to_string(), t))
            .chain(self.attributes.iter().map(|(k, t)| (format!("attributes.{k}"), t)))
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
}
