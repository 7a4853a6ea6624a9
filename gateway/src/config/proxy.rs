//! `[proxy]`: routes to upstreams with their access rules, the sidecar shorthand, and identity header names.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// The `[proxy]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    /// Sidecar shorthand: one route sending everything to this upstream (any logged-in user).
    pub upstream: Option<String>,
    /// Routes, first match wins.
    pub routes: Vec<RouteConfig>,
    /// Names of the identity headers sent upstream.
    pub headers: HeaderNames,
    /// Audiences (OIDC `client_id`s) whose user access tokens the proxy takes as `Authorization: Bearer`
    /// instead of a session cookie. Empty (the default): bearer tokens are not an identity at the proxy.
    pub token_audiences: Vec<String>,
    /// What forward-auth (`/auth/verify`, `/auth/forward`) answers for a host and path no route covers.
    pub forward_auth_unmatched: Unmatched,
    /// How often an open WebSocket tunnel checks that the session it was opened with still exists and is neither
    /// idle nor past its absolute lifetime; it is closed at the first check that finds it ended.
    #[serde(with = "humantime_serde")]
    pub websocket_session_check: Duration,
}

/// The default [`ProxyConfig::websocket_session_check`].
pub const WEBSOCKET_SESSION_CHECK: Duration = Duration::from_secs(5);
/// The range [`ProxyConfig::websocket_session_check`] must lie in: checking more often than every second buys
/// nothing over the first level's `cache_ttl`, and less often than every minute leaves a logged-out tunnel open
/// too long.
const WEBSOCKET_SESSION_CHECK_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60);

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstream: None,
            routes: Vec::new(),
            headers: HeaderNames::default(),
            token_audiences: Vec::new(),
            forward_auth_unmatched: Unmatched::default(),
            websocket_session_check: WEBSOCKET_SESSION_CHECK,
        }
    }
}

/// What forward-auth does with a request no `[[proxy.routes]]` entry covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// 403: only what a route names is reachable (the default).
    #[default]
    Deny,
    /// Any signed-in user may pass.
    AnyUser,
}

/// One `[[proxy.routes]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteConfig {
    /// Host to match: exact (`dash.example.com`) or `*.example.com`; empty matches any host.
    pub host: Option<String>,
    /// Path prefix to match.
    pub path_prefix: String,
    /// Where to send matching requests (`http://` or `https://`). Empty for a route only forward-auth asks about
    /// (nginx or Traefik forwards the request itself).
    pub upstream: String,
    /// Roles allowed in (any of them).
    pub allow_roles: Vec<String>,
    /// Groups allowed in (any of them).
    pub allow_groups: Vec<String>,
    /// Users allowed in (by username).
    pub allow_users: Vec<String>,
    /// OIDC clients whose own `client_credentials` tokens (no user) are let in, by `client_id`.
    pub allow_clients: Vec<String>,
    /// Paths (prefixes) that need no login, e.g. the app's health check.
    pub public_paths: Vec<String>,
    /// Remove `path_prefix` before forwarding.
    pub strip_prefix: bool,
    /// Send the client's `Host` upstream instead of the upstream's.
    pub preserve_host: bool,
    /// Let paths with an encoded slash (`%2F`) through, kept encoded. Only for an upstream that does not decode it
    /// before routing: one that does may serve another path than the one decided on.
    pub allow_encoded_slashes: bool,
    /// Let paths with `;` parameters in a segment (`/a;jsessionid=1/b`) through. Servlet containers strip them
    /// before matching, so `/admin;x/` would be `/admin/` to them but not to the route prefix `/admin`.
    pub allow_path_parameters: bool,
    /// Time to connect to the upstream.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time for the upstream to start answering (504 after).
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// PEM CA for an https upstream (default: system roots).
    pub ca_file: Option<PathBuf>,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            host: None,
            path_prefix: "/".into(),
            upstream: String::new(),
            allow_roles: Vec::new(),
            allow_groups: Vec::new(),
            allow_users: Vec::new(),
            allow_clients: Vec::new(),
            public_paths: Vec::new(),
            strip_prefix: false,
            preserve_host: false,
            allow_encoded_slashes: false,
            allow_path_parameters: false,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            ca_file: None,
        }
    }
}

/// `[proxy.headers]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderNames {
    /// Stable user id header.
    pub user: String,
    /// E-mail header.
    pub email: String,
    /// Username header.
    pub preferred_username: String,
    /// Groups header (comma-separated).
    pub groups: String,
    /// Roles header (comma-separated).
    pub roles: String,
    /// When set (e.g. `X-Forwarded-Access-Token`), a short-lived JWT signed by fedgate's OIDC keys is sent in this
    /// header, so the upstream can verify the user against `/oauth2/jwks`. Needs `[oidc]`.
    pub access_token: Option<String>,
}

impl Default for HeaderNames {
    fn default() -> Self {
        Self {
            user: "X-Forwarded-User".into(),
            email: "X-Forwarded-Email".into(),
            preferred_username: "X-Forwarded-Preferred-Username".into(),
            groups: "X-Forwarded-Groups".into(),
            roles: "X-Forwarded-Roles".into(),
            access_token: None,
        }
    }
}

impl HeaderNames {}

impl ProxyConfig {
    /// The routes, with the `upstream` shorthand as a final catch-all route.
    pub fn effective_routes(&self) -> Vec<RouteConfig> {
        let mut routes = self.routes.clone();
        if let Some(u) = &self.upstream {
            routes.push(RouteConfig { upstream: u.clone(), ..Default::default() });
        }
        routes
    }

    /// Every problem in `[proxy]`.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        let check_url = |key: String, u: &str, out: &mut Vec<ConfigIssue>| match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => {}
            _ => out.push(ConfigIssue::new(
                key,
                Some(u.to_string()),
                "not an http(s) URL with a host",
                "e.g. \"http://127.0.0.1:3000\"",
            )),
        };
        let h = &self.headers;
        for (key, name) in [
            ("user", Some(&h.user)),
            ("email", Some(&h.email)),
            ("preferred_username", Some(&h.preferred_username)),
            ("groups", Some(&h.groups)),
            ("roles", Some(&h.roles)),
            ("access_token", h.access_token.as_ref()),
        ] {
            if let Some(name) = name
                && axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                out.push(ConfigIssue::new(
                    format!("proxy.headers.{key}"),
                    Some(name.clone()),
                    "not a valid HTTP header name",
                    "use letters, digits and '-', e.g. \"X-Forwarded-User\"",
                ));
            }
        }
        if !WEBSOCKET_SESSION_CHECK_RANGE.contains(&self.websocket_session_check) {
            out.push(ConfigIssue::new(
                "proxy.websocket_session_check",
                Some(humantime::format_duration(self.websocket_session_check).to_string()),
                "outside 1s to 60s: a WebSocket tunnel whose session ended stays open until the next check",
                "use a value from \"1s\" to \"60s\" (default \"5s\")",
            ));
        }
        if let Some(u) = &self.upstream {
            check_url("proxy.upstream".into(), u, &mut out);
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !r.upstream.is_empty() {
                check_url(format!("proxy.routes[{i}].upstream"), &r.upstream, &mut out);
            }
            if !r.path_prefix.starts_with('/') {
                out.push(ConfigIssue::new(
                    format!("proxy.routes[{i}].path_prefix"),
                    Some(r.path_prefix.clone()),
                    "must start with /",
                    "e.g. \"/\" or \"/dashboard\"",
                ));
            }
            if let Some(ca) = &r.ca_file
                && !ca.is_file()
            {
                out.push(ConfigIssue::new(
                    format!("proxy.routes[{i}].ca_file"),
                    Some(ca.display().to_string()),
                    "file not found",
                    "point it at the upstream's PEM CA",
                ));
            }
        }
        for (key, name) in [
            ("user", &self.headers.user),
            ("email", &self.headers.email),
            ("preferred_username", &self.headers.preferred_username),
            ("groups", &self.headers.groups),
            ("roles", &self.headers.roles),
        ] {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                out.push(ConfigIssue::new(
                    format!("proxy.headers.{key}"),
                    Some(name.clone()),
                    "not a valid header name",
                    "e.g. \"X-Forwarded-User\"",
                ));
            }
        }
        out
    }
}

/// Does `pattern` (`host`, `*.suffix`, or empty) match `host` (any port, any case, with or without the final
/// dot of a fully qualified name)?
pub fn host_matches(pattern: Option<&str>, host: &str) -> bool {
    let host = host_name(host);
    match pattern {
        None | Some("") => true,
        Some(p) => match p.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            None => host.eq_ignore_ascii_case(p),
        },
    }
}

/// The name in a `Host` value, as web servers read it when they pick a virtual host: without the port, and
/// without the final dot of a fully qualified name (`admin.example.com.` is `admin.example.com` to DNS, nginx,
/// Apache and Traefik, so it must be to the routes too). An IPv6 literal keeps its brackets.
pub fn host_name(host: &str) -> &str {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(host, |i| &host[..i + 2]),
        None => host.split(':').next().unwrap_or(host),
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// Does the path prefix `prefix` match `path` (whole segments: `/api` matches `/api` and `/api/x`, not `/apix`)?
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl RouteConfig {
    /// Does this route take requests for `host` and `path`?
    pub fn matches(&self, host: &str, path: &str) -> bool {
        host_matches(self.host.as_deref(), host) && prefix_matches(&self.path_prefix, path)
    }

    /// Is `path` one of the route's `public_paths` (whole segments)?
    pub fn is_public_path(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| prefix_matches(p, path))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn matches_hosts_and_prefixes() {
        assert!(host_matches(Some("*.example.com"), "dash.example.com:8443"));
        assert!(!host_matches(Some("*.example.com"), "example.com.evil.org"));
        assert!(host_matches(Some("Dash.Example.com"), "dash.example.com"));
        assert!(host_matches(Some("*.Example.com"), "a.b.EXAMPLE.com"));
        assert!(!host_matches(Some("*.example.com"), "example.com"), "the bare domain is not a subdomain");
        assert!(!host_matches(Some("*.example.com"), "xexample.com"));
        // The fully qualified spelling is the same host (nginx, Apache and Traefik serve it as such).
        assert!(host_matches(Some("admin.example.com"), "admin.example.com."));
        assert!(host_matches(Some("admin.example.com"), "ADMIN.example.com.:8443"));
        assert!(host_matches(Some("*.example.com"), "a.example.com."));
        assert!(!host_matches(Some("admin.example.com"), "admin.example.com.."));
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert!(host_matches(Some("[::1]"), "[::1]:8080"));
        let api = RouteConfig { path_prefix: "/api".into(), upstream: "a".into(), ..Default::default() };
        let slash = RouteConfig { path_prefix: "/api/".into(), upstream: "a".into(), ..Default::default() };
        let all = RouteConfig { upstream: "b".into(), ..Default::default() };
        assert!(api.matches("x", "/api/v1") && api.matches("x", "/api"));
        assert!(!api.matches("x", "/apix") && !api.matches("x", "/"));
        assert!(slash.matches("x", "/api/v1") && slash.matches("x", "/api"));
        assert!(all.matches("x", "/apix") && all.matches("x", "/"));
    }
}
