//! The gateway's configuration: one typed struct per section, loaded in layers with figment
//! (built-in defaults → TOML file → `FEDGATE_<SECTION>__<KEY>` environment variables) and validated all at once.
//!
//! Sections owned by a library (`[ldap]`, `[oidc]`, `[saml]`) are that library's plain `Deserialize` structs; this
//! module only loads and combines them.

pub mod net;
mod problems;
pub mod proxy;
mod sections;
pub mod store;
pub mod upstream;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use problems::{ConfigError, ConfigIssue};
pub use proxy::{HeaderNames, ProxyConfig, RouteConfig, Unmatched};
pub use sections::*;
pub use store::{Fsync, StoreConfig, StoreKind};
pub use upstream::{LinkMode, UpstreamConfig, UpstreamOidcConfig};

/// The environment variable that names the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "FEDGATE_CONFIG";
/// The prefix of environment overrides: `FEDGATE_LDAP__USERS_DN` sets `ldap.users_dn`.
pub const ENV_PREFIX: &str = "FEDGATE_";
/// The configuration file used when neither `--config` nor `$FEDGATE_CONFIG` is given.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// The whole configuration, one field per section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `[server]`: where to listen and the public base URL.
    pub server: ServerConfig,
    /// `[log]`: level and format.
    pub log: LogConfig,
    /// `[directory]`: the static demo directory (an alternative to `[ldap]`).
    pub directory: Option<StaticDirectoryConfig>,
    /// `[ldap]`: the LDAP / Active Directory directory.
    pub ldap: Option<ldap_mapper::LdapConfig>,
    /// `[roles]`: role name → groups (names or DNs) that grant it.
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
    /// `[session]`: cookies and server-side session lifetimes.
    pub session: SessionConfig,
    /// `[login]`: brute-force throttling.
    pub login: LoginConfig,
    /// `[ui]`: branding of the login and account pages.
    pub ui: UiConfig,
    /// `[store]`: where sessions, codes, refresh tokens and counters live.
    pub store: StoreConfig,
    /// `[oidc]`: the OpenID Connect provider (enabled when the section is present).
    pub oidc: Option<federation::oidc::OidcConfig>,
    /// `[saml]`: the SAML 2.0 identity provider (enabled when the section is present).
    pub saml: Option<federation::saml::SamlConfig>,
    /// `[proxy]`: the authenticating reverse proxy and forward-auth.
    pub proxy: crate::config::ProxyConfig,
    /// `[scim]`: provisioning directory users to SCIM servers (`fedgate scim sync`).
    pub scim: Option<federation::scim::ScimConfig>,
    /// `[keycloak]`: Keycloak realm URLs and issuer (enabled when the section is present).
    pub keycloak: Option<KeycloakConfig>,
    /// `[[upstream.oidc]]`: OpenID Connect providers users may sign in through.
    pub upstream: UpstreamConfig,
}

impl Config {
    /// A configuration with every optional section present and every list holding one default element, so that
    /// serializing it lists every key the gateway knows (used to catch typos in the user's file).
    pub(crate) fn schema_sample() -> Self {
        Self {
            directory: Some(StaticDirectoryConfig { users: vec![StaticUser::default()], ..Default::default() }),
            ldap: Some(ldap_mapper::LdapConfig::default()),
            proxy: crate::config::ProxyConfig {
                routes: vec![crate::config::proxy::RouteConfig::default()],
                ..Default::default()
            },
            saml: Some(federation::saml::SamlConfig {
                service_providers: vec![federation::saml::SpConfig::default()],
                ..Default::default()
            }),
            oidc: Some(federation::oidc::OidcConfig {
                clients: vec![federation::oidc::ClientConfig::default()],
                ..Default::default()
            }),
            scim: Some(federation::scim::ScimConfig {
                targets: vec![federation::scim::TargetConfig::default()],
                ..Default::default()
            }),
            keycloak: Some(KeycloakConfig::default()),
            upstream: UpstreamConfig { oidc: vec![UpstreamOidcConfig::default()] },
            ..Self::default()
        }
    }
}

/// Where the configuration comes from: an explicit path, `$FEDGATE_CONFIG`, or `./config.toml`.
pub fn resolve_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE))
}

/// The layered figment: defaults, then the TOML file at `path`, then `FEDGATE_*` environment variables.
pub fn figment(path: &Path) -> Figment {
    Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::file_exact(path))
        .merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]).split("__"))
}

/// Loads the configuration at `path` (plus environment overrides) and validates it, returning every problem found.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::single(ConfigIssue::new(
            "--config",
            Some(path.display().to_string()),
            "configuration file not found",
            format!("create it (see config.toml in the repository), pass --config PATH, or set {CONFIG_ENV}"),
        )));
    }
    problems::load_figment(&figment(path))
}

/// Parses a TOML string as the only source (no environment); used by tests and by `config.toml`'s own test.
pub fn load_str(toml: &str) -> Result<Config, ConfigError> {
    problems::load_figment(&Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
