//! The sections the gateway itself owns: `[server]`, `[log]`, `[directory]`, `[session]`, `[login]`, `[ui]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::ConfigIssue;

/// The least `session.max_pending_bytes`: room for a few hundred protocol requests waiting for a login.
pub const MIN_PENDING_BYTES: u64 = 256 * 1024;
/// The most `server.max_connections` may be set to.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
/// The least `server.max_header_bytes` (hyper's smallest HTTP/1 read buffer).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// The most `server.max_header_bytes` may be set to.
pub const MAX_HEADER_BYTES_LIMIT: usize = 1 << 20;

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address and port to listen on, e.g. `127.0.0.1:8080` or `[::]:443`.
    pub listen: SocketAddr,
    /// The external base URL users and apps see (OIDC issuer, SAML base, cookie `Secure` flag).
    pub public_url: Url,
    /// Serve HTTPS directly with rustls.
    pub tls: Option<TlsConfig>,
    /// How long in-flight requests may take to finish after SIGTERM (and then, at most as long again, the
    /// back-channel logout deliveries still under way).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Largest request body accepted by the gateway's own endpoints (not the proxy), in bytes.
    pub max_body_bytes: usize,
    /// How long a client has to send a request's header: from the connection's start (TLS handshake included)
    /// to its first request, and on HTTP/1.1 also from one request's end to the next one's header.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection on which no new request starts for this long is closed (requests in progress finish first).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a client has to send the whole body of a request to the gateway's own endpoints, from the end of
    /// its header: 408 and the connection closed after it (proxied bodies stream to the app and are its concern).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Most client connections served at once; further ones wait in the listen queue until one closes. Capped
    /// at half the process's open-file limit, so that upstream connections and files always find a descriptor.
    pub max_connections: usize,
    /// Largest request header (request line and all fields; the HTTP/2 header list), in bytes: 431 beyond it.
    pub max_header_bytes: usize,
    /// Reverse proxies and load balancers in front of the gateway (addresses or CIDR blocks). A request from one
    /// of them is attributed to the last address in its `X-Forwarded-For` that is not one of them, for the
    /// brute-force throttle and the logs; from anywhere else, `X-Forwarded-For` is ignored. Empty: the peer.
    pub trusted_proxies: Vec<String>,
    /// Client addresses (or CIDR blocks) that may read `/metrics`; others get 404. Behind a trusted proxy, the
    /// client is the one its `X-Forwarded-For` names.
    pub metrics_allow: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: default_public_url(),
            tls: None,
            shutdown_grace: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_header_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            metrics_allow: ["127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[allow(clippy::expect_used)] // a constant literal, not input: it always parses
fn default_public_url() -> Url {
    Url::parse("http://127.0.0.1:8080/").expect("built-in public_url literal")
}

/// `[server.tls]`: certificate chain and private key (PEM) served with rustls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, or directives like `info,gateway=debug`. `RUST_LOG` overrides it.
    pub level: String,
    /// `pretty` for people, `json` for log shippers.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Pretty }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[directory]`: a static list of demo users with argon2id password hashes. For first runs and demos only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StaticDirectoryConfig {
    /// Always `static`; LDAP is configured in `[ldap]`.
    pub kind: String,
    /// The users.
    pub users: Vec<StaticUser>,
}

impl Default for StaticDirectoryConfig {
    fn default() -> Self {
        Self { kind: "static".into(), users: Vec::new() }
    }
}

/// One `[[directory.users]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StaticUser {
    /// Login name.
    pub username: String,
    /// argon2id PHC string from `fedgate hash-password`.
    pub password_hash: fedgate_types::Secret,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Group names.
    pub groups: Vec<String>,
}

/// `[session]`: the session cookie and server-side session lifetimes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    /// Cookie name.
    pub cookie_name: String,
    /// Cookie `Domain`, for SSO across subdomains (e.g. `example.com`); host-only when unset.
    pub cookie_domain: Option<String>,
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Most sessions kept in memory; the least recently used go first beyond it.
    pub max_sessions: u64,
    /// Memory, in bytes, for sign-in requests waiting for a login (OIDC authorization requests, SAML
    /// AuthnRequests with their RelayState); the oldest go first beyond it. Anyone can create these.
    pub max_pending_bytes: u64,
    /// Origins the login may redirect to besides the gateway itself: `https://app.example.com[:port]`
    /// (`https://.example.com` for subdomains), or a bare host meaning https on 443 plus the gateway's own scheme
    /// and port (see `redirect::allows`).
    pub allowed_redirect_domains: Vec<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "fedgate_session".into(),
            cookie_domain: None,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            max_sessions: 1_000_000,
            max_pending_bytes: 32 << 20,
            allowed_redirect_domains: Vec::new(),
        }
    }
}

/// `[login]`: brute-force throttling of the login form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginConfig {
    /// Throttling on or off.
    pub throttle: bool,
    /// Failed attempts per username, or per client IP, allowed within `window`.
    pub max_failures: u32,
    /// The sliding window failures are counted in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long further attempts are refused once `max_failures` is reached; it always expires.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// Failed OAuth client authentications (wrong `client_secret` at token, introspection, revocation) allowed
    /// per `client_id`, or per client IP, within `window`; then that client (or IP) gets 429 for `lockout`.
    pub client_max_failures: u32,
    /// Whether the login page shows the password form (`false`: sign-in only through `[[upstream.oidc]]`).
    pub password: bool,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            throttle: true,
            max_failures: 5,
            window: Duration::from_secs(5 * 60),
            lockout: Duration::from_secs(5 * 60),
            client_max_failures: 10,
            password: true,
        }
    }
}

/// `[ui]`: branding.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UiConfig {
    /// Product name shown in titles and headings.
    pub product_name: String,
    /// URL of a logo image shown above the login form.
    pub logo_url: Option<String>,
    /// Accent colour (CSS hex, e.g. `#2f6feb`).
    pub primary_color: String,
    /// Where users change an expired password (a self-service portal, the helpdesk's page), linked from the
    /// "your password has expired" page (Active Directory).
    pub password_help_url: Option<String>,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            product_name: "fedgate".into(),
            logo_url: None,
            primary_color: "#2f6feb".into(),
            password_help_url: None,
        }
    }
}

/// `[keycloak]`: Keycloak's realm URLs (opt-in), so apps and SPs that trusted a Keycloak realm keep working after
/// its host name points at fedgate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KeycloakConfig {
    /// The realm name: the issuer becomes `{public_url}{path_prefix}/realms/{realm}`.
    pub realm: String,
    /// `""` (Keycloak ≥ 17) or `"/auth"` (Keycloak < 17, or `--http-relative-path=/auth`).
    pub path_prefix: String,
    /// Accept the pre-18 `redirect_uri` parameter at the logout endpoint (as `post_logout_redirect_uri`, checked
    /// the same way); Keycloak's `legacy-logout-redirect-uri` option.
    pub legacy_logout_redirect_uri: bool,
}

impl KeycloakConfig {
    /// The path of the realm: `{path_prefix}/realms/{realm}`.
    pub fn realm_path(&self) -> String {
        format!("{}/realms/{}", self.path_prefix, self.realm)
    }

    /// The realm URL (issuer, SAML entity ID): `{public_url}{path_prefix}/realms/{realm}`.
    pub fn realm_url(&self, public_url: &Url) -> String {
        format!("{}{}", public_url.as_str().trim_end_matches('/'), self.realm_path())
    }

    fn validate(&self, out: &mut Vec<ConfigIssue>) {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.realm.is_empty() || !self.realm.chars().all(ok) || self.realm.starts_with('.') {
            out.push(ConfigIssue::new(
                "keycloak.realm",
                Some(self.realm.clone()),
                "not a usable realm name",
                "set the Keycloak realm's name (letters, digits, '-', '_', '.'), e.g. realm = \"corp\"",
            ));
        }
        if !matches!(self.path_prefix.as_str(), "" | "/auth") {
            out.push(ConfigIssue::new(
                "keycloak.path_prefix",
                Some(self.path_prefix.clone()),
                "must be \"\" or \"/auth\"",
                "use \"\" for Keycloak 17 and later, \"/auth\" for older ones (or --http-relative-path=/auth)",
            ));
        }
    }
}

impl super::Config {
    /// Checks what types alone cannot: cross-field rules and values that parse but make no sense. Every problem
    /// is collected; nothing is changed.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        self.store.validate(&mut out);
        if let Some(u) = &self.ui.password_help_url
            && !url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"))
        {
            out.push(ConfigIssue::new(
                "ui.password_help_url",
                Some(u.clone()),
                "must be an absolute http or https URL",
                "set the page where users change their password, e.g. \"https://passwords.example.com/\"",
            ));
        }
        let url = &self.server.public_url;
        if !matches!(url.scheme(), "http" | "https") {
            out.push(ConfigIssue::new(
                "server.public_url",
                Some(url.to_string()),
                "must be an http or https URL",
                "set the external base URL, e.g. \"https://sso.example.com\"",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            out.push(ConfigIssue::new(
                "server.public_url",
                Some(url.to_string()),
                "must not have a query or fragment",
                "use only scheme, host, port and an optional path prefix",
            ));
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [("server.tls.cert_file", &tls.cert_file), ("server.tls.key_file", &tls.key_file)] {
                if !path.is_file() {
                    out.push(ConfigIssue::new(
                        key,
                        Some(path.display().to_string()),
                        "file not found",
                        "point it at a readable PEM file, or remove [server.tls] to serve plain HTTP",
                    ));
                }
            }
        }
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            out.push(ConfigIssue::new(
                "log.level",
                Some(self.log.level.clone()),
                format!("not a log filter ({e})"),
                "use one of error, warn, info, debug, trace, or directives like \"info,gateway=debug\"",
            ));
        }
        self.validate_server_limits(&mut out);
        self.validate_directory(&mut out);
        self.validate_session(&mut out);
        out.extend(self.proxy.validate());
        if self.proxy.headers.access_token.is_some() && self.oidc.is_none() {
            out.push(ConfigIssue::new(
                "proxy.headers.access_token",
                self.proxy.headers.access_token.clone(),
                "needs the OIDC signing keys, but [oidc] is not configured",
                "add an [oidc] section (clients are optional), or remove proxy.headers.access_token",
            ));
        }
        if let Some(saml) = &self.saml {
            out.extend(saml.validate().into_iter().map(|i| i.in_section("saml")));
        }
        if let Some(oidc) = &self.oidc {
            out.extend(oidc.validate().into_iter().map(|i| i.in_section("oidc")));
        }
        if let Some(scim) = &self.scim {
            self.validate_scim(scim, &mut out);
        }
        if let Some(kc) = &self.keycloak {
            kc.validate(&mut out);
            if url.path() != "/" {
                out.push(ConfigIssue::new(
                    "server.public_url",
                    Some(url.to_string()),
                    "has a path, but [keycloak] realm URLs are served from the root",
                    "set public_url to scheme, host and port only, and use keycloak.path_prefix for /auth",
                ));
            }
        }
        out.extend(self.upstream.validate(self.ldap_configured()));
        if !self.login.password && self.upstream.oidc.is_empty() {
            out.push(ConfigIssue::new(
                "login.password",
                Some("false".into()),
                "the password form is off and no [[upstream.oidc]] provider is configured, so nobody can log in",
                "set login.password = true, or add an [[upstream.oidc]] provider",
            ));
        }
        out
    }

    fn validate_server_limits(&self, out: &mut Vec<ConfigIssue>) {
        let s = &self.server;
        let ranges = s.trusted_proxies.iter().map(|p| ("trusted_proxies", p));
        let ranges = ranges.chain(s.metrics_allow.iter().map(|p| ("metrics_allow", p)));
        for (i, (key, p)) in ranges.enumerate() {
            let i = if key == "trusted_proxies" { i } else { i - s.trusted_proxies.len() };
            if let Err(e) = p.parse::<crate::config::net::IpRange>() {
                out.push(ConfigIssue::new(
                    format!("server.{key}[{i}]"),
                    Some(p.clone()),
                    e.to_string(),
                    "write an address or a CIDR block, e.g. \"10.0.0.0/8\"",
                ));
            }
        }
        for (key, value) in [
            ("server.header_read_timeout", s.header_read_timeout),
            ("server.idle_timeout", s.idle_timeout),
            ("server.body_read_timeout", s.body_read_timeout),
        ] {
            if value < Duration::from_millis(100) || value > Duration::from_secs(3600) {
                out.push(ConfigIssue::new(
                    key,
                    Some(humantime::format_duration(value).to_string()),
                    "outside 100ms–1h",
                    "use the defaults, header_read_timeout = \"10s\", idle_timeout = \"60s\" and \
                     body_read_timeout = \"30s\"",
                ));
            }
        }
        if s.max_connections == 0 || s.max_connections > MAX_CONNECTIONS_LIMIT {
            out.push(ConfigIssue::new(
                "server.max_connections",
                Some(s.max_connections.to_string()),
                format!("outside 1–{}", MAX_CONNECTIONS_LIMIT),
                "use the default 4096, or what the open-file limit (ulimit -n) allows",
            ));
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES_LIMIT).contains(&s.max_header_bytes) {
            out.push(ConfigIssue::new(
                "server.max_header_bytes",
                Some(s.max_header_bytes.to_string()),
                format!("outside {}–{} bytes", MIN_HEADER_BYTES, MAX_HEADER_BYTES_LIMIT),
                "use the default 65536 (64 KiB)",
            ));
        }
    }

    fn validate_scim(&self, scim: &federation::scim::ScimConfig, out: &mut Vec<ConfigIssue>) {
        out.extend(scim.validate().into_iter().map(|i| i.in_section("scim")));
        if !scim.targets.is_empty() && self.ldap.is_none() {
            out.push(ConfigIssue::new(
                "scim.targets",
                None,
                "SCIM provisioning reads users from LDAP, but [ldap] is not configured",
                "add an [ldap] section, or remove [scim]",
            ));
        }
        for (i, t) in scim.targets.iter().enumerate() {
            if let Some(f) = &t.users_filter
                && let Err(e) = ldap_mapper::filter::check(f)
            {
                out.push(ConfigIssue::new(
                    format!("scim.targets[{i}].users_filter"),
                    Some(f.clone()),
                    format!("not a valid LDAP filter: {e}"),
                    "write an RFC 4515 filter in parentheses, e.g. \"(employeeType=staff)\"",
                ));
            }
        }
    }

    fn validate_directory(&self, out: &mut Vec<ConfigIssue>) {
        if let Some(ldap) = &self.ldap {
            for i in ldap.validate() {
                out.push(ConfigIssue::new(format!("ldap.{}", i.key), i.value, i.problem, i.fix));
            }
        }
        let ldap_configured = self.ldap_configured();
        match (&self.directory, ldap_configured) {
            (Some(_), true) => out.push(ConfigIssue::new(
                "directory",
                None,
                "both [directory] (static demo users) and [ldap] are configured; only one directory can be used",
                "remove [directory] to log in against LDAP, or remove [ldap] to use the demo users",
            )),
            (None, false) if self.upstream.oidc.is_empty() => out.push(ConfigIssue::new(
                "ldap",
                None,
                "no directory is configured, so nobody can log in",
                "add an [ldap] section (see config.toml), a [directory] of demo users, or [[upstream.oidc]] providers",
            )),
            _ => {}
        }
        if let Some(dir) = &self.directory {
            if dir.kind != "static" {
                out.push(ConfigIssue::new(
                    "directory.kind",
                    Some(dir.kind.clone()),
                    "unknown directory kind",
                    "use kind = \"static\" here; configure LDAP or Active Directory in [ldap]",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, user) in dir.users.iter().enumerate() {
                let key = |k: &str| format!("directory.users[{i}].{k}");
                if user.username.trim().is_empty() || user.username.trim() != user.username {
                    out.push(ConfigIssue::new(
                        key("username"),
                        Some(user.username.clone()),
                        "empty or has leading/trailing spaces",
                        "give every user a plain login name",
                    ));
                } else if !seen.insert(user.username.to_lowercase()) {
                    out.push(ConfigIssue::new(
                        key("username"),
                        Some(user.username.clone()),
                        "duplicate username",
                        "each username may appear once",
                    ));
                }
                if argon2::PasswordHash::new(user.password_hash.expose()).is_err() {
                    out.push(ConfigIssue::new(
                        key("password_hash"),
                        None,
                        "not an argon2 PHC hash",
                        "generate one with `fedgate hash-password` and paste the $argon2id$… line",
                    ));
                }
            }
        }
        for (role, groups) in &self.roles {
            if groups.is_empty() {
                out.push(ConfigIssue::new(
                    format!("roles.{role}"),
                    Some("[]".into()),
                    "no group grants this role",
                    "list the groups (names or DNs) whose members get it, e.g. [\"ai-admins\"]",
                ));
            }
        }
    }

    fn validate_session(&self, out: &mut Vec<ConfigIssue>) {
        let s = &self.session;
        if s.cookie_name.is_empty() || !s.cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
            out.push(ConfigIssue::new(
                "session.cookie_name",
                Some(s.cookie_name.clone()),
                "not a valid cookie name",
                "use letters, digits, '-' and '_' only, e.g. \"fedgate_session\"",
            ));
        }
        if let Some(domain) = &s.cookie_domain {
            let host = domain.strip_prefix('.').unwrap_or(domain);
            if host.is_empty()
                || host.len() > 253
                || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            {
                out.push(ConfigIssue::new(
                    "session.cookie_domain",
                    Some(domain.clone()),
                    "not a host name, so no session cookie could be set",
                    "use the parent domain the apps share, e.g. \"example.com\", or leave it unset",
                ));
            }
        }
        if s.idle_timeout.is_zero() || s.absolute_timeout < s.idle_timeout {
            out.push(ConfigIssue::new(
                "session.absolute_timeout",
                Some(humantime::format_duration(s.absolute_timeout).to_string()),
                format!(
                    "must be non-zero and at least session.idle_timeout ({})",
                    humantime::format_duration(s.idle_timeout)
                ),
                "e.g. idle_timeout = \"30m\", absolute_timeout = \"12h\"",
            ));
        }
        if s.max_sessions == 0 {
            out.push(ConfigIssue::new(
                "session.max_sessions",
                Some("0".into()),
                "no session could ever be kept",
                "set a positive bound, e.g. 1000000",
            ));
        }
        if s.max_pending_bytes < MIN_PENDING_BYTES {
            out.push(ConfigIssue::new(
                "session.max_pending_bytes",
                Some(s.max_pending_bytes.to_string()),
                format!("too small to keep sign-in requests waiting for a login (minimum {})", MIN_PENDING_BYTES),
                "use the default 33554432 (32 MiB); each waiting request takes about 1 KB",
            ));
        }
        for entry in &self.session.allowed_redirect_domains {
            if let Some((scheme, rest)) = entry.split_once("://") {
                let authority = rest.strip_suffix('/').unwrap_or(rest);
                let port_ok = authority
                    .rsplit_once(':')
                    .filter(|(_, p)| !p.contains(']'))
                    .is_none_or(|(_, p)| p.parse::<u16>().is_ok());
                if !matches!(scheme, "http" | "https") || authority.is_empty() || authority.contains('/') || !port_ok {
                    out.push(ConfigIssue::new(
                        "session.allowed_redirect_domains",
                        Some(entry.clone()),
                        "not an http(s) origin (scheme://host[:port], no path)",
                        "e.g. \"https://app.example.com\", \"https://.example.com\" or a bare \"app.example.com\"",
                    ));
                }
            }
        }
        if self.login.throttle && self.login.client_max_failures == 0 {
            out.push(ConfigIssue::new(
                "login.client_max_failures",
                Some("0".into()),
                "throttling needs client_max_failures ≥ 1",
                "e.g. client_max_failures = 10; or throttle = false",
            ));
        }
        if self.login.throttle && (self.login.max_failures == 0 || self.login.window.is_zero()) {
            out.push(ConfigIssue::new(
                "login.max_failures",
                Some(self.login.max_failures.to_string()),
                "throttling needs max_failures ≥ 1 and a non-zero window",
                "e.g. max_failures = 5, window = \"5m\", lockout = \"5m\"; or throttle = false",
            ));
        }
    }

    /// Hosts the login may send the browser back to: `session.allowed_redirect_domains` plus every proxy route host
    /// (`*.example.com` becomes `.example.com`).
    pub fn redirect_allowlist(&self) -> Vec<String> {
        let mut out = self.session.allowed_redirect_domains.clone();
        for r in &self.proxy.routes {
            if let Some(h) = r.host.as_deref().filter(|h| !h.is_empty()) {
                out.push(h.strip_prefix('*').unwrap_or(h).to_string());
            }
        }
        out
    }

    /// Whether an `[ldap]` section is configured.
    pub fn ldap_configured(&self) -> bool {
        self.ldap.is_some()
    }
}
