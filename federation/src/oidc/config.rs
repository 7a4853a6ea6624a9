//! The `[oidc]` configuration section: token lifetimes, signing keys and the registered `[[oidc.clients]]`.
//!
//! The issuer is not configured here: it is the gateway's `public_url`, passed to [`crate::oidc::Provider::new`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::principal::GroupFormat;
use crate::{ConfigIssue, Secret};

/// Scopes the provider always knows (OIDC Core §5.4 plus `groups`, `roles` and `offline_access`).
pub const STANDARD_SCOPES: &[&str] = &["openid", "profile", "email", "groups", "roles", "offline_access"];

/// Grant types a client may be registered for.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];

/// JWS algorithm used to sign ID tokens and access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over an RSA-2048 key (the interoperable default).
    #[default]
    RS256,
    /// ECDSA over P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shortest client secret accepted, inline or in `client_secret_file`.
pub const MIN_SECRET_LEN: usize = 16;

/// The `[oidc]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    /// Directory holding the signing keys (`active.pem`, `previous.pem`); created with generated keys if empty.
    pub keys_dir: PathBuf,
    /// Algorithm for new signing keys and for every token signed.
    pub signing_algorithm: SigningAlgorithm,
    /// Lifetime of access tokens.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Lifetime of ID tokens.
    #[serde(with = "humantime_serde")]
    pub id_token_ttl: Duration,
    /// Lifetime of a refresh token (each rotation issues a new one with this lifetime).
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// Lifetime of an authorization code.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// Extra scopes → claim names they release (claims come from the principal's `[ldap.claims]` extras).
    pub scope_claims: BTreeMap<String, Vec<String>>,
    /// Registered relying parties.
    pub clients: Vec<ClientConfig>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            keys_dir: PathBuf::from("data/keys/oidc"),
            signing_algorithm: SigningAlgorithm::RS256,
            access_token_ttl: Duration::from_secs(10 * 60),
            id_token_ttl: Duration::from_secs(10 * 60),
            refresh_token_ttl: Duration::from_secs(12 * 3600),
            code_ttl: Duration::from_secs(60),
            scope_claims: BTreeMap::new(),
            clients: Vec::new(),
        }
    }
}

/// What a user's access token carries for a client (`access_token_claims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenClaimsMode {
    /// RFC 9068's claims only: `iss`, `sub`, `aud`, `exp`, `iat`, `jti`, `client_id`, `scope`, `auth_time`, `sid`
    /// (a few hundred bytes whatever the user's groups; the app reads the rest from userinfo or introspection).
    Minimal,
    /// Also `preferred_username`, `groups` and `roles` (what resource servers that authorize on the token read).
    #[default]
    Full,
}

/// The claim layout of a client's tokens (`claims_profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimsProfile {
    /// fedgate's own: claims per requested scope, flat `groups`/`roles`, access-token header `typ: at+jwt`.
    #[default]
    Fedgate,
    /// Keycloak's: its default client scopes (`profile`, `email`, `roles`, `web-origins`, `acr`, `basic`) apply
    /// without being requested; the access token carries `realm_access.roles`, `resource_access.<client>.roles`,
    /// `azp`, `typ: Bearer`, `acr`, `email_verified`, `allowed-origins` and the profile claims, with JOSE header
    /// `typ: JWT`; the ID token carries `typ: ID`, `azp`, `acr` and `email_verified`, but no roles.
    Keycloak,
}

/// How a client's redirect and post-logout redirect URIs are matched (`redirect_uri_rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedirectUriRules {
    /// Character for character (RFC 6749 §3.1.2.2, OAuth 2.1).
    #[default]
    Exact,
    /// Keycloak's (`RedirectUtils`, `OIDCAdvancedConfigWrapper`): a registered URI ending in `*` matches every URI
    /// starting with the part before it (the request's query ignored), `*` alone matches any URI; in
    /// `post_logout_redirect_uris`, `+` adds the redirect URIs, `-` allows none, and an empty list means the
    /// redirect URIs. Wildcards are logged as a warning at start-up.
    Keycloak,
}

/// Whether `uri` matches the registered `valid` under Keycloak's rules.
///
/// A wildcard is matched against the URL the browser will be sent to, `uri` parsed (dot segments removed, as
/// browsers do): `https://app/cb/*` matched `https://app/cb/../../evil` by its spelling, and the code went to
/// `https://app/evil`, outside the registered path (Keycloak's CVE-2024-1132). An encoded `/`, `\` or `.` in its
/// path (`/cb/..%2Fevil`), which a server behind it may decode into a path that leaves the registered one, does not
/// match a wildcard either.
fn keycloak_match(valid: &str, uri: &str) -> bool {
    let Ok(parsed) = Url::parse(uri) else { return false };
    if parsed.fragment().is_some() {
        return false;
    }
    let Some(prefix) = valid.strip_suffix('*') else { return valid == uri };
    if prefix.is_empty() {
        return true;
    }
    let path = parsed.path().to_ascii_lowercase();
    if ["%2f", "%5c", "%2e"].iter().any(|e| path.contains(e)) {
        return false;
    }
    let target = parsed.as_str();
    if prefix.contains('?') {
        target.starts_with(prefix)
    } else {
        target.split('?').next().unwrap_or("").starts_with(prefix)
    }
}

/// One `[[oidc.clients]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    /// The `client_id` the relying party sends.
    pub client_id: String,
    /// Display name (login page, logs).
    pub name: Option<String>,
    /// Secret of a confidential client.
    pub client_secret: Option<Secret>,
    /// File holding the secret of a confidential client (trailing newline trimmed), instead of `client_secret`.
    pub client_secret_file: Option<PathBuf>,
    /// A public client (SPA, native app): no secret, PKCE mandatory.
    pub public: bool,
    /// Registered redirect URIs; the request's `redirect_uri` must equal one of them exactly.
    pub redirect_uris: Vec<String>,
    /// Registered `post_logout_redirect_uri` values (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed grant types (see [`GRANT_TYPES`]).
    pub grant_types: Vec<String>,
    /// Scopes this client may request.
    pub scopes: Vec<String>,
    /// Require PKCE even for a confidential client.
    pub require_pkce: bool,
    /// If set, only members of one of these groups may sign in to this client.
    pub allowed_groups: Option<Vec<String>>,
    /// OIDC Back-Channel Logout 1.0: where fedgate POSTs a signed `logout_token` when the user's session ends.
    pub backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in the logout token (fedgate always sends it, with `sub`).
    pub backchannel_logout_session_required: bool,
    /// OIDC Front-Channel Logout 1.0: the page fedgate's signed-out page loads in an iframe (with `iss` and `sid`).
    pub frontchannel_logout_uri: Option<String>,
    /// The client needs `iss` and `sid` on the front-channel URL (fedgate always adds them).
    pub frontchannel_logout_session_required: bool,
    /// `full` (default: groups, roles and username in the access token) or `minimal` (RFC 9068 claims only).
    pub access_token_claims: AccessTokenClaimsMode,
    /// `fedgate` (default) or `keycloak`: the claim layout of this client's tokens ([`ClaimsProfile`]).
    pub claims_profile: ClaimsProfile,
    /// `exact` (default) or `keycloak`: how `redirect_uris` and `post_logout_redirect_uris` match
    /// ([`RedirectUriRules`]).
    pub redirect_uri_rules: RedirectUriRules,
    /// Client roles (Keycloak's `resource_access.<client_id>.roles`): role name → the groups that grant it, like
    /// `[roles]` does for realm roles. Only the `keycloak` profile puts them in tokens.
    pub client_roles: BTreeMap<String, Vec<String>>,
    /// `name` (default: `staff`) or `path` (Keycloak's `full.path`: `/staff`, `/eng/ai-admins`): how the `groups`
    /// claim of this client's tokens and userinfo writes groups. `allowed_groups`, `client_roles` and `[roles]`
    /// always match names.
    pub group_format: GroupFormat,
    /// More audiences for this client's access tokens, beside the client itself (Keycloak's audience mappers,
    /// `included.client.audience`): the APIs the app calls with them, which check that `aud` names them. With
    /// any, `aud` is an array, the client first.
    pub audiences: Vec<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            name: None,
            client_secret: None,
            client_secret_file: None,
            public: false,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into(), "email".into(), "groups".into(), "roles".into()],
            require_pkce: false,
            allowed_groups: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            frontchannel_logout_uri: None,
            frontchannel_logout_session_required: false,
            access_token_claims: AccessTokenClaimsMode::Full,
            claims_profile: ClaimsProfile::Fedgate,
            redirect_uri_rules: RedirectUriRules::Exact,
            client_roles: BTreeMap::new(),
            group_format: GroupFormat::Name,
            audiences: Vec::new(),
        }
    }
}

/// RFC 8252 §7.3: a native app listens on a loopback port it gets at run time, so a registered loopback IP redirect
/// URI without a port (`http://127.0.0.1/cb`, `http://[::1]/cb`) allows any port, with the rest of the URI (path and
/// query) exactly as registered. Only the literal IP addresses and plain `http` (§8.3: not `localhost`, whose name
/// another process or a hosts file could answer for), and only a registered URI that names no port.
fn loopback_any_port(registered: &str, uri: &str) -> bool {
    ["http://127.0.0.1", "http://[::1]"].iter().any(|host| {
        let Some(rest) = registered.strip_prefix(host) else { return false };
        if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
            return false;
        }
        let Some(after) = uri.strip_prefix(host).and_then(|u| u.strip_prefix(':')) else { return false };
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let (port, tail) = after.split_at(digits);
        (1..=5).contains(&digits) && port.parse::<u16>().is_ok_and(|p| p > 0) && tail == rest
    })
}

impl ClientConfig {
    /// Whether `uri` is one of the registered redirect URIs (by [`ClientConfig::redirect_uri_rules`]).
    pub fn allows_redirect_uri(&self, uri: &str) -> bool {
        match self.redirect_uri_rules {
            RedirectUriRules::Exact => self.redirect_uris.iter().any(|r| r == uri || loopback_any_port(r, uri)),
            RedirectUriRules::Keycloak => {
                self.redirect_uris.iter().any(|r| keycloak_match(r, uri) || loopback_any_port(r, uri))
            }
        }
    }

    /// Whether `uri` is an allowed `post_logout_redirect_uri` (by [`ClientConfig::redirect_uri_rules`]).
    pub fn allows_post_logout_uri(&self, uri: &str) -> bool {
        let list = &self.post_logout_redirect_uris;
        match self.redirect_uri_rules {
            RedirectUriRules::Exact => list.iter().any(|r| r == uri),
            RedirectUriRules::Keycloak => {
                if list.iter().any(|r| r == "-") {
                    return false;
                }
                let with_redirects = list.is_empty() || list.iter().any(|r| r == "+");
                list.iter().filter(|r| *r != "+").any(|r| keycloak_match(r, uri))
                    || (with_redirects && self.redirect_uris.iter().any(|r| keycloak_match(r, uri)))
            }
        }
    }

    /// The registered URIs that are wildcards under Keycloak's rules (for the start-up warning).
    pub fn wildcard_uris(&self) -> Vec<&str> {
        if self.redirect_uri_rules != RedirectUriRules::Keycloak {
            return Vec::new();
        }
        self.redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
            .filter(|r| r.ends_with('*'))
            .map(String::as_str)
            .collect()
    }
}

impl OidcConfig {
    /// Every scope the provider knows: the standard ones plus the keys of `scope_claims`.
    pub fn known_scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = STANDARD_SCOPES.iter().map(|s| (*s).to_string()).collect();
        out.extend(self.scope_claims.keys().filter(|k| !STANDARD_SCOPES.contains(&k.as_str())).cloned());
        out
    }

    /// Checks the section and returns every problem found (keys relative to `[oidc]`).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (key, d) in [
            ("access_token_ttl", self.access_token_ttl),
            ("id_token_ttl", self.id_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("code_ttl", self.code_ttl),
        ] {
            if d.is_zero() {
                issues.push(ConfigIssue::new(key, Some("0s".into()), "lifetime is zero", "set a positive duration"));
            }
        }
        if self.code_ttl > Duration::from_secs(600) {
            issues.push(ConfigIssue::new(
                "code_ttl",
                Some(humantime_serde::re::humantime::format_duration(self.code_ttl).to_string()),
                "authorization codes live longer than 10 minutes (RFC 6749 §4.1.2)",
                "use about 60s",
            ));
        }
        if self.keys_dir.as_os_str().is_empty() {
            issues.push(ConfigIssue::new("keys_dir", None, "no key directory", "set a directory for signing keys"));
        }
        for scope in self.scope_claims.keys() {
            if scope == "openid" || scope.is_empty() || scope.contains(char::is_whitespace) {
                issues.push(ConfigIssue::new(
                    format!("scope_claims.{scope}"),
                    Some(scope.clone()),
                    "not a usable scope name",
                    "use a single word other than openid",
                ));
            }
        }
        let known = self.known_scopes();
        let mut seen = HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let k = |f: &str| format!("clients[{i}].{f}");
            if c.client_id.is_empty() {
                issues.push(ConfigIssue::new(k("client_id"), None, "missing client_id", "set a unique client_id"));
            } else if c.client_id == super::UPSTREAM_AUDIENCE {
                issues.push(ConfigIssue::new(
                    k("client_id"),
                    Some(c.client_id.clone()),
                    "reserved for the tokens the proxy hands its upstreams",
                    "choose another client_id",
                ));
            } else if !seen.insert(c.client_id.as_str()) {
                issues.push(ConfigIssue::new(
                    k("client_id"),
                    Some(c.client_id.clone()),
                    "duplicate client_id",
                    "give every client its own client_id",
                ));
            }
            for (j, a) in c.audiences.iter().enumerate() {
                if a.is_empty() || a.chars().any(char::is_control) || a == super::UPSTREAM_AUDIENCE {
                    issues.push(ConfigIssue::new(
                        k(&format!("audiences[{j}]")),
                        Some(a.clone()),
                        "not a usable audience",
                        "name the API's client_id (or the audience it checks for)",
                    ));
                }
            }
            let has_secret = c.client_secret.is_some() || c.client_secret_file.is_some();
            if c.client_secret.is_some() && c.client_secret_file.is_some() {
                issues.push(ConfigIssue::new(
                    k("client_secret"),
                    None,
                    "both client_secret and client_secret_file are set",
                    "keep only one of them",
                ));
            }
            if c.public && has_secret {
                issues.push(ConfigIssue::new(
                    k("client_secret"),
                    None,
                    "a public client has a secret",
                    "remove the secret or set public = false",
                ));
            }
            if !c.public && !has_secret {
                issues.push(ConfigIssue::new(
                    k("client_secret"),
                    None,
                    "a confidential client has no secret",
                    "set client_secret or client_secret_file, or public = true",
                ));
            }
            if let Some(s) = &c.client_secret
                && s.expose().chars().count() < MIN_SECRET_LEN
            {
                issues.push(ConfigIssue::new(
                    k("client_secret"),
                    None,
                    format!(
                        "client secret is {} characters, shorter than {MIN_SECRET_LEN}",
                        s.expose().chars().count()
                    ),
                    "use a long random secret (e.g. `openssl rand -base64 32`)",
                ));
            }
            // The file is read here too, so a short secret in it is caught like an inline one (its content is never
            // echoed; the path is not secret).
            if let Some(path) = &c.client_secret_file {
                match Secret::from_file(path) {
                    Ok(s) if s.expose().chars().count() < MIN_SECRET_LEN => issues.push(ConfigIssue::new(
                        k("client_secret_file"),
                        Some(path.display().to_string()),
                        format!(
                            "the secret in this file is {} characters, shorter than {MIN_SECRET_LEN}",
                            s.expose().chars().count()
                        ),
                        format!(
                            "write a long random secret to the file (e.g. `openssl rand -base64 32 > {}`)",
                            path.display()
                        ),
                    )),
                    Ok(_) => {}
                    Err(e) => issues.push(ConfigIssue::new(
                        k("client_secret_file"),
                        Some(path.display().to_string()),
                        format!("cannot be read: {}", e.source),
                        "point it at a readable file holding the client secret",
                    )),
                }
            }
            for g in &c.grant_types {
                if !GRANT_TYPES.contains(&g.as_str()) {
                    issues.push(ConfigIssue::new(
                        k("grant_types"),
                        Some(g.clone()),
                        "unknown grant type",
                        format!("use one of {}", GRANT_TYPES.join(", ")),
                    ));
                }
            }
            if c.public && c.grant_types.iter().any(|g| g == "client_credentials") {
                issues.push(ConfigIssue::new(
                    k("grant_types"),
                    Some("client_credentials".into()),
                    "a public client cannot use client_credentials",
                    "remove the grant or make the client confidential",
                ));
            }
            let code_flow = c.grant_types.iter().any(|g| g == "authorization_code");
            if code_flow && c.redirect_uris.is_empty() {
                issues.push(ConfigIssue::new(
                    k("redirect_uris"),
                    None,
                    "authorization_code client without redirect_uris",
                    "register at least one redirect URI",
                ));
            }
            for (key, list) in
                [("redirect_uris", &c.redirect_uris), ("post_logout_redirect_uris", &c.post_logout_redirect_uris)]
            {
                for uri in list {
                    let keycloak = c.redirect_uri_rules == RedirectUriRules::Keycloak;
                    if keycloak && (uri == "*" || (key == "post_logout_redirect_uris" && (uri == "+" || uri == "-"))) {
                        continue;
                    }
                    if !keycloak && uri.ends_with('*') {
                        issues.push(ConfigIssue::new(
                            k(key),
                            Some(uri.clone()),
                            "ends with * but redirect URIs match exactly",
                            "set redirect_uri_rules = \"keycloak\" for Keycloak's prefix match, or register the exact URI",
                        ));
                        continue;
                    }
                    let checked = if keycloak { uri.strip_suffix('*').unwrap_or(uri) } else { uri.as_str() };
                    if keycloak
                        && uri.ends_with('*')
                        && checked.split_once("://").is_some_and(|(_, rest)| !rest.contains('/'))
                    {
                        issues.push(ConfigIssue::new(
                            k(key),
                            Some(uri.clone()),
                            "the wildcard reaches into the host name (another site's host would match)",
                            "end the part before * with a path, e.g. \"https://app.example.com/*\"",
                        ));
                        continue;
                    }
                    if let Some(problem) = redirect_uri_problem(checked) {
                        issues.push(ConfigIssue::new(
                            k(key),
                            Some(uri.clone()),
                            problem,
                            "use an absolute URI without a fragment, written exactly as the client sends it",
                        ));
                    }
                }
            }
            for (key, uri) in [
                ("backchannel_logout_uri", &c.backchannel_logout_uri),
                ("frontchannel_logout_uri", &c.frontchannel_logout_uri),
            ] {
                let Some(uri) = uri else { continue };
                let ok =
                    Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.fragment().is_none());
                if !ok {
                    issues.push(ConfigIssue::new(
                        k(key),
                        Some(uri.clone()),
                        "not an absolute http(s) URI without a fragment",
                        "use the logout URI the relying party documents, e.g. https://app.example/oidc/backchannel",
                    ));
                }
            }
            for s in &c.scopes {
                if !known.contains(s) {
                    issues.push(ConfigIssue::new(
                        k("scopes"),
                        Some(s.clone()),
                        "unknown scope",
                        "use a standard scope or declare it in [oidc.scope_claims]",
                    ));
                }
            }
            if code_flow && !c.scopes.iter().any(|s| s == "openid") {
                issues.push(ConfigIssue::new(
                    k("scopes"),
                    None,
                    "authorization_code client may not request openid",
                    "add \"openid\" to scopes",
                ));
            }
            if let Some(groups) = &c.allowed_groups
                && groups.is_empty()
            {
                issues.push(ConfigIssue::new(
                    k("allowed_groups"),
                    Some("[]".into()),
                    "empty allowed_groups lets nobody in",
                    "list groups, or remove the key to allow every user",
                ));
            }
        }
        issues
    }
}

fn redirect_uri_problem(uri: &str) -> Option<&'static str> {
    match Url::parse(uri) {
        Err(_) => Some("not an absolute URI"),
        Ok(u) if u.fragment().is_some() => Some("redirect URI has a fragment (RFC 6749 §3.1.2)"),
        Ok(u) if u.cannot_be_a_base() && u.scheme() != "urn" => Some("not a usable redirect URI"),
        Ok(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn client() -> ClientConfig {
        ClientConfig {
            client_id: "app".into(),
            client_secret: Some(Secret::new("0123456789abcdef0123")),
            redirect_uris: vec!["https://app.example/cb".into()],
            ..ClientConfig::default()
        }
    }

    #[test]
    fn a_loopback_redirect_uri_without_a_port_allows_any_port_and_nothing_else() {
        let c = ClientConfig {
            redirect_uris: vec![
                "http://127.0.0.1/cb".into(),
                "http://[::1]/cb?x=1".into(),
                "http://localhost/cb".into(),
            ],
            ..ClientConfig::default()
        };
        assert!(c.allows_redirect_uri("http://127.0.0.1/cb"));
        assert!(c.allows_redirect_uri("http://127.0.0.1:51004/cb"));
        assert!(c.allows_redirect_uri("http://[::1]:8080/cb?x=1"));
        for refused in [
            "http://127.0.0.1:51004/cb/",
            "http://127.0.0.1:51004/cbx",
            "http://127.0.0.1:51004/cb?y=1",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:70000/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:80@evil.example/cb",
            "http://127.0.0.1:8080.evil.example/cb",
            "https://127.0.0.1:51004/cb",
            "http://127.0.0.2:51004/cb",
            "http://localhost:51004/cb",
            "http://[::1]:8080/cb",
        ] {
            assert!(!c.allows_redirect_uri(refused), "{refused}");
        }
        // A registered port is exact.
        let fixed = ClientConfig { redirect_uris: vec!["http://127.0.0.1:8000/cb".into()], ..ClientConfig::default() };
        assert!(!fixed.allows_redirect_uri("http://127.0.0.1:8001/cb"));
    }

    #[test]
    fn keycloak_redirect_uri_rules() {
        let kc = ClientConfig {
            redirect_uri_rules: RedirectUriRules::Keycloak,
            redirect_uris: vec!["https://app.example/cb/*".into(), "https://other.example/exact".into()],
            post_logout_redirect_uris: vec!["+".into(), "https://bye.example/".into()],
            ..client()
        };
        assert!(kc.allows_redirect_uri("https://app.example/cb/x?y=1"));
        assert!(kc.allows_redirect_uri("https://app.example/cb/"));
        assert!(!kc.allows_redirect_uri("https://app.example/cbx"));
        assert!(!kc.allows_redirect_uri("https://app.example/other?https://app.example/cb/"));
        assert!(!kc.allows_redirect_uri("https://app.example/cb/x#frag"));
        // Matched as the browser will go there: dot segments removed, encoded separators refused.
        assert!(!kc.allows_redirect_uri("https://app.example/cb/../../evil"));
        assert!(!kc.allows_redirect_uri("https://app.example/cb/%2e%2e/evil"));
        assert!(!kc.allows_redirect_uri("https://app.example/cb/..%2Fevil"));
        assert!(!kc.allows_redirect_uri("https://app.example/cb/..%5cevil"));
        assert!(!kc.allows_post_logout_uri("https://app.example/cb/../home"));
        assert!(kc.allows_redirect_uri("https://app.example/cb/a/../b"), "still under /cb/");
        assert!(kc.allows_redirect_uri("https://other.example/exact"));
        assert!(!kc.allows_redirect_uri("https://other.example/exact/more"));
        assert!(kc.allows_post_logout_uri("https://bye.example/"));
        assert!(kc.allows_post_logout_uri("https://app.example/cb/home"), "+ adds the redirect URIs");
        assert_eq!(kc.wildcard_uris(), vec!["https://app.example/cb/*"]);
        let none = ClientConfig { post_logout_redirect_uris: vec!["-".into()], ..kc.clone() };
        assert!(!none.allows_post_logout_uri("https://app.example/cb/home"));
        let empty = ClientConfig { post_logout_redirect_uris: Vec::new(), ..kc.clone() };
        assert!(empty.allows_post_logout_uri("https://app.example/cb/home"), "empty means the redirect URIs");
        let only = ClientConfig { post_logout_redirect_uris: vec!["https://bye.example/".into()], ..kc.clone() };
        assert!(!only.allows_post_logout_uri("https://app.example/cb/home"));
        let cfg = OidcConfig { clients: vec![kc.clone()], ..OidcConfig::default() };
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        let host = ClientConfig { redirect_uris: vec!["https://app.example*".into()], ..kc.clone() };
        let issues = OidcConfig { clients: vec![host], ..OidcConfig::default() }.validate();
        assert!(issues.iter().any(|i| i.problem.contains("host name")), "{issues:?}");
        // Exact (the default): a literal match only, and a * is pointed out.
        let exact = ClientConfig { redirect_uri_rules: RedirectUriRules::Exact, ..kc };
        assert!(!exact.allows_redirect_uri("https://app.example/cb/x"));
        assert!(exact.wildcard_uris().is_empty());
        let issues = OidcConfig { clients: vec![exact], ..OidcConfig::default() }.validate();
        assert!(issues.iter().any(|i| i.fix.contains("redirect_uri_rules")), "{issues:?}");
    }

    #[test]
    fn default_serializes_every_key_and_is_valid() {
        let v = serde_json::to_value(OidcConfig::default()).unwrap();
        for key in ["keys_dir", "signing_algorithm", "access_token_ttl", "code_ttl", "scope_claims", "clients"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert!(OidcConfig::default().validate().is_empty());
        let c = serde_json::to_value(ClientConfig::default()).unwrap();
        assert!(c.get("client_secret").unwrap().is_null());
    }

    #[test]
    fn parses_toml_like_values() {
        let cfg: OidcConfig = serde_json::from_value(serde_json::json!({
            "signing_algorithm": "ES256", "code_ttl": "30s",
            "clients": [{"client_id": "x", "public": true, "redirect_uris": ["http://127.0.0.1/cb"]}]
        }))
        .unwrap();
        assert_eq!(cfg.signing_algorithm, SigningAlgorithm::ES256);
        assert_eq!(cfg.code_ttl, Duration::from_secs(30));
        assert_eq!(cfg.access_token_ttl, Duration::from_secs(600));
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert!(!format!("{:?}", client()).contains("0123456789"));
    }

    #[test]
    fn validation_collects_every_problem() {
        let mut bad_public = client();
        bad_public.client_id = "pub".into();
        bad_public.public = true;
        let mut no_secret = client();
        no_secret.client_id = "nosecret".into();
        no_secret.client_secret = None;
        no_secret.redirect_uris = vec!["/relative".into(), "https://x.example/cb#frag".into()];
        no_secret.grant_types.push("password".into());
        let cfg = OidcConfig { clients: vec![client(), client(), bad_public, no_secret], ..OidcConfig::default() };
        let issues = cfg.validate();
        let has = |key: &str, problem: &str| issues.iter().any(|i| i.key == key && i.problem.contains(problem));
        assert!(has("clients[1].client_id", "duplicate"), "{issues:#?}");
        assert!(has("clients[2].client_secret", "public client has a secret"));
        assert!(has("clients[3].client_secret", "no secret"));
        assert!(has("clients[3].redirect_uris", "not an absolute"));
        assert!(has("clients[3].redirect_uris", "fragment"));
        assert!(has("clients[3].grant_types", "unknown grant type"));
        assert!(issues.iter().all(|i| i.value.as_deref() != Some("0123456789abcdef0123")));
    }

    #[test]
    fn a_short_secret_in_client_secret_file_is_a_problem_like_an_inline_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (short, long) = (dir.join("short"), dir.join("long"));
        std::fs::write(&short, "tooshort1\n").unwrap();
        std::fs::write(&long, "0123456789abcdef0123\n").unwrap();
        let with_file = |id: &str, path: &std::path::Path| {
            let mut c = client();
            c.client_id = id.into();
            c.client_secret = None;
            c.client_secret_file = Some(path.to_path_buf());
            c
        };
        let mut inline = client();
        inline.client_id = "inline".into();
        inline.client_secret = Some(Secret::new("short"));
        let clients = vec![with_file("a", &short), with_file("b", &long), with_file("c", &dir.join("missing")), inline];
        let issues = OidcConfig { clients, ..OidcConfig::default() }.validate();
        let file_issue = issues.iter().find(|i| i.key == "clients[0].client_secret_file").unwrap();
        assert!(file_issue.problem.contains("9 characters, shorter than 16"), "{file_issue:?}");
        assert!(file_issue.fix.contains("openssl rand"));
        assert_eq!(
            file_issue.value.as_deref(),
            Some(short.display().to_string().as_str()),
            "the path, never the secret"
        );
        assert!(!issues.iter().any(|i| i.key.starts_with("clients[1]")), "{issues:#?}");
        assert!(
            issues.iter().any(|i| i.key == "clients[2].client_secret_file" && i.problem.contains("cannot be read"))
        );
        assert!(issues.iter().any(|i| i.key == "clients[3].client_secret" && i.problem.contains("5 characters")));
    }
}
