//! The `[scim]` section: where provisioning state lives and one `[[scim.targets]]` per SCIM server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigIssue;
use crate::Secret;
use fedgate_types::SecretFileError;

/// Alibaba Cloud's SCIM server for RAM users.
pub const ALIYUN_RAM_SCIM_URL: &str = "https://scim.aliyun.com";
/// Alibaba Cloud's OAuth token endpoint (China site; the international one is `https://oauth.alibabacloud.com/v1/token`).
pub const ALIYUN_RAM_TOKEN_URL: &str = "https://oauth.aliyun.com/v1/token";
/// The scope RAM's SCIM server asks for.
pub const ALIYUN_RAM_SCOPE: &str = "/acs/scim";

/// The `[scim]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ScimConfig {
    /// Directory holding one state file per target (`<name>.json`: last successful run and the id map).
    pub state_dir: PathBuf,
    /// The SCIM servers to provision.
    pub targets: Vec<TargetConfig>,
}

impl Default for ScimConfig {
    fn default() -> Self {
        Self { state_dir: PathBuf::from("data/scim"), targets: Vec::new() }
    }
}

/// Ready-made settings for a known SCIM server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetPreset {
    /// Alibaba Cloud RAM users: `https://scim.aliyun.com`, OAuth client credentials with scope `/acs/scim`, only
    /// `userName`, `displayName` and `externalId`, user names lower-cased, PUT updates, DELETE to deprovision.
    AliyunRam,
}

/// What happens to a provisioned user who left the directory or the target's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deprovision {
    /// Set `active` to false (the account stays, login stops).
    Deactivate,
    /// Delete the account.
    Delete,
    /// Leave it as it is.
    None,
}

impl Deprovision {
    /// The configuration value (`deactivate`, `delete`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::Delete => "delete",
            Self::None => "none",
        }
    }
}

/// How changed users are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateMethod {
    /// PATCH when the server's `/ServiceProviderConfig` says it supports it, else PUT.
    Auto,
    /// Full replacement (RFC 7644 §3.5.1).
    Put,
    /// Partial modification (RFC 7644 §3.5.2).
    Patch,
}

/// One `[[scim.targets]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetConfig {
    /// Name used on the command line (`--target`), in logs, metrics and the state file name.
    pub name: String,
    /// Ready-made settings (`"aliyun-ram"`); explicit keys still win.
    pub preset: Option<TargetPreset>,
    /// The SCIM base URL (the one `/Users` is under).
    pub base_url: Option<String>,
    /// A static bearer token.
    pub bearer_token: Option<Secret>,
    /// A file holding the bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// OAuth 2.0 token endpoint for the client-credentials grant.
    pub token_url: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// OAuth client secret.
    pub client_secret: Option<Secret>,
    /// A file holding the OAuth client secret.
    pub client_secret_file: Option<PathBuf>,
    /// OAuth scope to ask for.
    pub scope: Option<String>,
    /// PEM file of CA certificates trusted for this target (default: the public web roots).
    pub ca_file: Option<PathBuf>,
    /// An extra LDAP filter selecting the users to provision, e.g. `"(employeeType=staff)"`.
    pub users_filter: Option<String>,
    /// Provision only members of these groups (names or DNs, nested membership included).
    pub groups: Vec<String>,
    /// Template for `userName` (default `"{username}"`); keep it equal to the NameID the SAML side sends.
    pub user_name: Option<String>,
    /// Template for `displayName` (default `"{display_name}"`; `""` sends none).
    pub display_name: Option<String>,
    /// Template for the primary work e-mail (default `"{email}"`; `""` sends none).
    pub email: Option<String>,
    /// Template for `externalId` (default `"{subject}"`, the directory's stable unique id).
    pub external_id: Option<String>,
    /// Fills `{auxiliary_domain}` in the templates.
    pub auxiliary_domain: Option<String>,
    /// Send `active = true` for provisioned users (default true; false for servers without the attribute).
    pub send_active: Option<bool>,
    /// Lower-case `userName` (default false; true for RAM).
    pub lowercase_user_name: Option<bool>,
    /// Extra attributes: SCIM attribute path → template, e.g. `"name.givenName" = "{given_name}"` or
    /// `"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" = "{department}"`.
    pub attributes: BTreeMap<String, String>,
    /// What to do with provisioned users who are gone (default `deactivate`; `delete` for RAM).
    pub deprovision: Option<Deprovision>,
    /// How to write changes (default `auto`; `put` for RAM).
    pub update_method: Option<UpdateMethod>,
    /// A sync that would deprovision more than this share of the target's provisioned users stops instead.
    pub max_deprovision_ratio: f64,
    /// Run a sync this often inside `fedgate serve` (off when unset).
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Users per page when listing the target.
    pub page_size: usize,
    /// Timeout of each HTTP request to the target.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            preset: None,
            base_url: None,
            bearer_token: None,
            bearer_token_file: None,
            token_url: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            scope: None,
            ca_file: None,
            users_filter: None,
            groups: Vec::new(),
            user_name: None,
            display_name: None,
            email: None,
            external_id: None,
            auxiliary_domain: None,
            send_active: None,
            lowercase_user_name: None,
            attributes: BTreeMap::new(),
            deprovision: None,
            update_method: None,
            max_deprovision_ratio: 0.2,
            interval: None,
            page_size: 100,
            timeout: Duration::from_secs(30),
        }
    }
}

/// How the target authenticates us.
#[derive(Debug, Clone)]
pub enum TargetAuth {
    /// No `Authorization` header.
    None,
    /// A static bearer token (from `bearer_token` or `bearer_token_file`).
    Bearer(Secret),
    /// OAuth 2.0 client credentials.
    ClientCredentials {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret (from `client_secret` or `client_secret_file`).
        client_secret: Secret,
        /// Scope, if any.
        scope: Option<String>,
    },
}

impl TargetConfig {
    fn ram(&self) -> bool {
        self.preset == Some(TargetPreset::AliyunRam)
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        let url = self
            .base_url
            .clone()
            .unwrap_or_else(|| if self.ram() { ALIYUN_RAM_SCIM_URL.into() } else { String::new() });
        url.trim_end_matches('/').to_string()
    }

    /// The `userName` template.
    pub fn user_name_template(&self) -> &str {
        self.user_name.as_deref().unwrap_or("{username}")
    }

    /// The `displayName` template (`None`: not sent).
    pub fn display_name_template(&self) -> Option<&str> {
        Some(self.display_name.as_deref().unwrap_or("{display_name}")).filter(|t| !t.is_empty())
    }

    /// The e-mail template (`None`: not sent; RAM has no e-mail attribute).
    pub fn email_template(&self) -> Option<&str> {
        let default = if self.ram() { "" } else { "{email}" };
        Some(self.email.as_deref().unwrap_or(default)).filter(|t| !t.is_empty())
    }

    /// The `externalId` template.
    pub fn external_id_template(&self) -> &str {
        self.external_id.as_deref().unwrap_or("{subject}")
    }

    /// Whether `active = true` is sent.
    pub fn send_active(&self) -> bool {
        self.send_active.unwrap_or(!self.ram())
    }

    /// Whether `userName` is lower-cased.
    pub fn lowercase_user_name(&self) -> bool {
        self.lowercase_user_name.unwrap_or(self.ram())
    }

    /// What happens to users who are gone.
    pub fn deprovision(&self) -> Deprovision {
        self.deprovision.unwrap_or(if self.ram() { Deprovision::Delete } else { Deprovision::Deactivate })
    }

    /// How changes are written.
    pub fn update_method(&self) -> UpdateMethod {
        self.update_method.unwrap_or(if self.ram() { UpdateMethod::Put } else { UpdateMethod::Auto })
    }

    /// The authentication settings, with secrets read from their files. `Err` names the file that cannot be read.
    pub fn auth(&self) -> Result<TargetAuth, SecretFileError> {
        let read = |path: &PathBuf| Secret::from_file(path);
        if let Some(t) = &self.bearer_token {
            return Ok(TargetAuth::Bearer(t.clone()));
        }
        if let Some(path) = &self.bearer_token_file {
            return Ok(TargetAuth::Bearer(read(path)?));
        }
        let token_url = self.token_url.clone().or_else(|| self.ram().then(|| ALIYUN_RAM_TOKEN_URL.to_string()));
        match (token_url, &self.client_id) {
            (Some(token_url), Some(client_id)) => {
                let client_secret = match (&self.client_secret, &self.client_secret_file) {
                    (Some(s), _) => s.clone(),
                    (None, Some(path)) => read(path)?,
                    (None, None) => Secret::new(""),
                };
                let scope = self.scope.clone().or_else(|| self.ram().then(|| ALIYUN_RAM_SCOPE.to_string()));
                Ok(TargetAuth::ClientCredentials { token_url, client_id: client_id.clone(), client_secret, scope })
            }
            _ => Ok(TargetAuth::None),
        }
    }

    /// Every problem with this target, keys relative to the target (`base_url`, `attributes.x`, …).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            out.push(ConfigIssue::new(
                "name",
                Some(self.name.clone()),
                "missing, or not made of letters, digits, '-', '_' and '.'",
                "name the target, e.g. name = \"ram\" (it names the state file and the --target argument)",
            ));
        }
        let base = self.base_url();
        match url::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => out.push(ConfigIssue::new(
                "base_url",
                self.base_url.clone(),
                if base.is_empty() { "missing" } else { "not an absolute http(s) URL" },
                "set the SCIM base URL, e.g. base_url = \"https://scim.example.com/scim/v2\" (or preset = \"aliyun-ram\")",
            )),
        }
        let static_token = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        let oauth = self.token_url.is_some() || self.client_id.is_some();
        if static_token && oauth {
            out.push(ConfigIssue::new(
                "bearer_token",
                None,
                "both a bearer token and OAuth client credentials are set",
                "keep one: bearer_token(_file), or token_url + client_id + client_secret(_file)",
            ));
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            out.push(ConfigIssue::new(
                "bearer_token_file",
                None,
                "both bearer_token and bearer_token_file are set",
                "keep one",
            ));
        }
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            out.push(ConfigIssue::new(
                "client_secret_file",
                None,
                "both client_secret and client_secret_file are set",
                "keep one",
            ));
        }
        if oauth || self.ram() && !static_token {
            if self.client_id.as_deref().is_none_or(str::is_empty) {
                out.push(ConfigIssue::new(
                    "client_id",
                    None,
                    "OAuth client credentials need a client_id",
                    "set client_id (for RAM: the application id of an OAuth app of type ServerApp with scope /acs/scim)",
                ));
            }
            if self.client_secret.is_none() && self.client_secret_file.is_none() {
                out.push(ConfigIssue::new(
                    "client_secret",
                    None,
                    "OAuth client credentials need a secret",
                    "set client_secret_file (or client_secret)",
                ));
            }
            if let Some(u) = &self.token_url
                && !url::Url::parse(u).map(|u| matches!(u.scheme(), "http" | "https")).unwrap_or(false)
            {
                out.push(ConfigIssue::new(
                    "token_url",
                    Some(u.clone()),
                    "not an absolute http(s) URL",
                    "set the OAuth token endpoint URL",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.max_deprovision_ratio) {
            out.push(ConfigIssue::new(
                "max_deprovision_ratio",
                Some(self.max_deprovision_ratio.to_string()),
                "outside 0.0–1.0",
                "use a share such as 0.2 (a sync that would deprovision more than 20% of the users stops)",
            ));
        }
        if self.page_size == 0 || self.page_size > 1000 {
            out.push(ConfigIssue::new("page_size", Some(self.page_size.to_string()), "outside 1–1000", "use e.g. 100"));
        }
        if self.interval.is_some_and(|i| i < Duration::from_secs(10)) {
            out.push(ConfigIssue::new(
                "interval",
                self.interval.map(|i| format!("{i:?}")),
                "shorter than 10 seconds",
                "use e.g. interval = \"15m\", or leave it out and run `fedgate scim sync` from cron",
            ));
        }
        let mut templates: Vec<(String, &str)> =
            vec![("user_name".into(), self.user_name_template()), ("external_id".into(), self.external_id_template())];
        templates.extend(self.display_name_template().map(|t| ("display_name".to_string(), t)));
        templates.extend(self.email_template().map(|t| ("email".to_string(), t)));
        templates.extend(self.attributes.iter().map(|(k, t)| (format!("attributes.{k}"), t.as_str())));
        for (key, template) in templates {
            out.extend(crate::template::check(&key, template));
            if template.contains("{auxiliary_domain}") && self.auxiliary_domain.is_none() {
                out.push(ConfigIssue::new(
                    key,
                    Some(template.to_string()),
                    "uses {auxiliary_domain} but auxiliary_domain is not set",
                    "set auxiliary_domain, e.g. \"example.onaliyun.com\"",
                ));
            }
        }
        for path in self.attributes.keys() {
            if super::resource::split_path(path).is_none() {
                out.push(ConfigIssue::new(
                    format!("attributes.{path}"),
                    None,
                    "not a SCIM attribute path",
                    "use `attr`, `attr.sub` or `urn:…:Schema:attr`, e.g. \"name.givenName\"",
                ));
            }
        }
        out
    }
}

impl ScimConfig {
    /// Every problem in the section, keys relative to it (`targets[0].base_url`).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        if self.state_dir.as_os_str().is_empty() {
            out.push(ConfigIssue::new("state_dir", None, "no state directory", "set e.g. state_dir = \"data/scim\""));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            for mut issue in t.validate() {
                issue.key = format!("targets[{i}].{}", issue.key);
                out.push(issue);
            }
            if !t.name.is_empty() && !seen.insert(t.name.as_str()) {
                out.push(ConfigIssue::new(
                    format!("targets[{i}].name"),
                    Some(t.name.clone()),
                    "used by two targets",
                    "give each target its own name",
                ));
            }
        }
        out
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }
}
