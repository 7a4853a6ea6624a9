//! `[[upstream.oidc]]`: OpenID Connect providers users may sign in through (identity brokering).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigIssue;

/// `[upstream]`: identity providers fedgate signs users in through.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamConfig {
    /// `[[upstream.oidc]]`: OpenID Connect providers.
    pub oidc: Vec<UpstreamOidcConfig>,
}

/// How an upstream identity becomes a fedgate user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// The upstream's claims are the user.
    #[default]
    None,
    /// The upstream identity is matched to one LDAP entry, which supplies the user.
    Ldap,
}

/// One `[[upstream.oidc]]` provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamOidcConfig {
    /// Short name used in URLs: `/login/{name}` starts, `/login/{name}/callback` is the redirect URI.
    pub name: String,
    /// The button's label on the login page (default: `name`).
    pub display_name: Option<String>,
    /// The issuer; discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id registered upstream.
    pub client_id: String,
    /// The client secret (or `client_secret_file`); neither means a public client (PKCE only).
    pub client_secret: Option<fedgate_types::Secret>,
    /// A file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// Extra authorization request parameters (e.g. `prompt`, `domain_hint`).
    pub authorization_params: BTreeMap<String, String>,
    /// The claim that becomes the username, or a template over claims such as `"{email_local}"`.
    pub username_claim: String,
    /// The e-mail claim.
    pub email_claim: String,
    /// The display-name claim.
    pub display_name_claim: String,
    /// The groups claim; a dotted path is allowed (`realm_access.roles`).
    pub groups_claim: String,
    /// The claim that becomes the stable unique id.
    pub unique_id_claim: String,
    /// When non-empty, only e-mail addresses in these domains may sign in.
    pub allowed_email_domains: Vec<String>,
    /// When non-empty, only members of one of these (upstream) groups may sign in.
    pub allowed_groups: Vec<String>,
    /// `none`: the claims are the user; `ldap`: the matching LDAP entry is.
    pub link: LinkMode,
    /// With `link = "ldap"`: the upstream claim matched.
    pub link_claim: String,
    /// With `link = "ldap"`: the LDAP attribute it is matched against.
    pub link_attribute: String,
    /// Whether fedgate's logout also ends the upstream session (`end_session_endpoint`).
    pub logout_upstream: bool,
    /// A PEM CA file to trust for this provider instead of the public web roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for UpstreamOidcConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            display_name: None,
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            authorization_params: BTreeMap::new(),
            username_claim: "preferred_username".into(),
            email_claim: "email".into(),
            display_name_claim: "name".into(),
            groups_claim: "groups".into(),
            unique_id_claim: "sub".into(),
            allowed_email_domains: Vec::new(),
            allowed_groups: Vec::new(),
            link: LinkMode::None,
            link_claim: "email".into(),
            link_attribute: "mail".into(),
            logout_upstream: false,
            ca_file: None,
        }
    }
}

/// Authorization parameters fedgate sets itself; configuring them would break the flow's protections.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

impl UpstreamOidcConfig {
    /// The button label.
    pub fn label(&self) -> &str {
        self.display_name.as_deref().filter(|s| !s.is_empty()).unwrap_or(&self.name)
    }

    /// The client secret, read from `client_secret_file` when that is set.
    pub fn secret(&self) -> Result<Option<fedgate_types::Secret>, fedgate_types::SecretFileError> {
        match (&self.client_secret, &self.client_secret_file) {
            (_, Some(path)) => fedgate_types::Secret::from_file(path).map(Some),
            (Some(s), None) => Ok(Some(s.clone())),
            (None, None) => Ok(None),
        }
    }
}

impl UpstreamConfig {
    /// Problems with the providers; `ldap` says whether `[ldap]` is configured (needed by `link = "ldap"`).
    pub fn validate(&self, ldap: bool) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.oidc.iter().enumerate() {
            let key = |k: &str| format!("upstream.oidc[{i}].{k}");
            if p.name.is_empty()
                || p.name.len() > 64
                || !p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                out.push(ConfigIssue::new(
                    key("name"),
                    Some(p.name.clone()),
                    "not a usable name (it appears in /login/{name}/callback)",
                    "use 1–64 letters, digits, '-' and '_', e.g. \"entra\"",
                ));
            } else if p.name == "callback" || !seen.insert(p.name.to_lowercase()) {
                out.push(ConfigIssue::new(
                    key("name"),
                    Some(p.name.clone()),
                    "duplicate or reserved name",
                    "give each provider its own name",
                ));
            }
            match url::Url::parse(&p.issuer) {
                Ok(u) => {
                    let loopback = matches!(u.host(), Some(url::Host::Ipv4(a)) if a.is_loopback())
                        || matches!(u.host(), Some(url::Host::Ipv6(a)) if a.is_loopback())
                        || u.host_str() == Some("localhost");
                    if !(u.scheme() == "https" || (u.scheme() == "http" && loopback))
                        || u.query().is_some()
                        || u.fragment().is_some()
                    {
                        out.push(ConfigIssue::new(
                            key("issuer"),
                            Some(p.issuer.clone()),
                            "must be an https URL without query or fragment (http only on loopback)",
                            "use the provider's issuer exactly as its discovery document states it, e.g. \"https://login.microsoftonline.com/<tenant>/v2.0\"",
                        ));
                    }
                }
                Err(e) => out.push(ConfigIssue::new(
                    key("issuer"),
                    Some(p.issuer.clone()),
                    format!("not a URL ({e})"),
                    "use the provider's issuer URL, e.g. \"https://accounts.google.com\"",
                )),
            }
            if p.client_id.is_empty() {
                out.push(ConfigIssue::new(
                    key("client_id"),
                    None,
                    "missing",
                    "set the client id registered at the provider",
                ));
            }
            if p.client_secret.is_some() && p.client_secret_file.is_some() {
                out.push(ConfigIssue::new(
                    key("client_secret_file"),
                    p.client_secret_file.as_ref().map(|f| f.display().to_string()),
                    "both client_secret and client_secret_file are set",
                    "keep one of them",
                ));
            } else if let Some(f) = &p.client_secret_file
                && !f.is_file()
            {
                out.push(ConfigIssue::new(
                    key("client_secret_file"),
                    Some(f.display().to_string()),
                    "file not found",
                    "point it at a readable file holding the secret",
                ));
            }
            if !p.scopes.iter().any(|s| s == "openid") {
                out.push(ConfigIssue::new(
                    key("scopes"),
                    Some(p.scopes.join(" ")),
                    "does not include \"openid\"",
                    "add \"openid\", e.g. [\"openid\", \"profile\", \"email\"]",
                ));
            }
            for k in p.authorization_params.keys() {
                if RESERVED_PARAMS.contains(&k.as_str()) {
                    out.push(ConfigIssue::new(
                        key("authorization_params"),
                        Some(k.clone()),
                        "fedgate sets this parameter itself",
                        "remove it; only extras such as prompt, domain_hint, login_hint, hd belong here",
                    ));
                }
            }
            for (k, v) in [("username_claim", &p.username_claim), ("unique_id_claim", &p.unique_id_claim)] {
                if v.trim().is_empty() {
                    out.push(ConfigIssue::new(
                        key(k),
                        Some(v.clone()),
                        "empty",
                        "name a claim, e.g. \"preferred_username\" or \"sub\"",
                    ));
                }
            }
            if let Err(e) = crate::config::upstream::check_template(&p.username_claim) {
                out.push(ConfigIssue::new(
                    key("username_claim"),
                    Some(p.username_claim.clone()),
                    e,
                    "write a claim name or a template like \"{email_local}\"",
                ));
            }
            if p.link == LinkMode::Ldap && !ldap {
                out.push(ConfigIssue::new(
                    key("link"),
                    Some("ldap".into()),
                    "needs [ldap], which is not configured",
                    "add an [ldap] section, or set link = \"none\"",
                ));
            }
            if p.link == LinkMode::Ldap
                && (p.link_claim.is_empty()
                    || p.link_attribute.is_empty()
                    || !p.link_attribute.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            {
                out.push(ConfigIssue::new(
                    key("link_attribute"),
                    Some(p.link_attribute.clone()),
                    "link needs a claim and a plain LDAP attribute name",
                    "e.g. link_claim = \"email\", link_attribute = \"mail\"",
                ));
            }
        }
        out
    }
}

/// Checks a `{…}` template: balanced braces, non-empty names.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| "unclosed '{' in the template".to_string())?;
        if after[..close].trim().is_empty() {
            return Err("empty {} in the template".into());
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') { Err("unmatched '}' in the template".into()) } else { Ok(()) }
}
