//! Which route a request belongs to, and what to do with it: forward, let it through without login, send the
//! browser to log in, or refuse. Pure functions, no I/O.

use std::sync::Arc;

use super::config::RouteConfig;
use super::forward::UserHeaderValues;
use crate::session::Session;

/// Who is asking, as the proxy sees it: a session's user (shared with the session store, not copied) or the
/// claims of a fedgate access token.
#[derive(Debug, Clone)]
pub struct Identity {
    who: Who,
    /// A token to pass upstream in `proxy.headers.access_token`, when configured.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
enum Who {
    Session(Arc<Session>),
    Token {
        subject: String,
        username: String,
        groups: Vec<String>,
        roles: Vec<String>,
    },
    /// A client's own `client_credentials` token: no user behind it.
    Client {
        client_id: String,
        groups: Vec<String>,
        roles: Vec<String>,
    },
}

impl Identity {
    /// The user of a session.
    pub fn from_session(session: Arc<Session>, token: Option<String>) -> Self {
        Self { who: Who::Session(session), token }
    }

    /// The subject of an access token.
    pub fn from_token(
        subject: String,
        username: String,
        groups: Vec<String>,
        roles: Vec<String>,
        token: String,
    ) -> Self {
        Self { who: Who::Token { subject, username, groups, roles }, token: Some(token) }
    }

    /// A service client, by its own `client_credentials` token.
    pub fn from_client(client_id: String, groups: Vec<String>, roles: Vec<String>, token: String) -> Self {
        Self { who: Who::Client { client_id, groups, roles }, token: Some(token) }
    }

    /// Stable id.
    pub fn subject(&self) -> &str {
        match &self.who {
            Who::Session(s) => &s.user.unique_id,
            Who::Token { subject, .. } => subject,
            Who::Client { client_id, .. } => client_id,
        }
    }

    /// Username (a service client's `client_id`).
    pub fn username(&self) -> &str {
        match &self.who {
            Who::Session(s) => &s.user.username,
            Who::Token { username, .. } => username,
            Who::Client { client_id, .. } => client_id,
        }
    }

    /// The `client_id` of a service client; `None` for a user.
    pub fn client_id(&self) -> Option<&str> {
        match &self.who {
            Who::Client { client_id, .. } => Some(client_id),
            _ => None,
        }
    }

    /// E-mail (sessions only; access tokens do not carry it).
    pub fn email(&self) -> Option<&str> {
        match &self.who {
            Who::Session(s) => s.user.email.as_deref(),
            Who::Token { .. } | Who::Client { .. } => None,
        }
    }

    /// Group names.
    pub fn groups(&self) -> &[String] {
        match &self.who {
            Who::Session(s) => &s.user.groups,
            Who::Token { groups, .. } | Who::Client { groups, .. } => groups,
        }
    }

    /// The identity header values: built once per session, or for this token.
    pub fn header_values(&self) -> std::borrow::Cow<'_, UserHeaderValues> {
        match &self.who {
            Who::Session(s) => std::borrow::Cow::Borrowed(s.header_values.get_or_init(|| {
                UserHeaderValues::new(&s.user.username, s.user.email.as_deref(), &s.user.groups, &s.user.roles)
            })),
            Who::Token { username, groups, roles, .. } | Who::Client { client_id: username, groups, roles } => {
                std::borrow::Cow::Owned(UserHeaderValues::new(username, None, groups, roles))
            }
        }
    }

    /// Roles.
    pub fn roles(&self) -> &[String] {
        match &self.who {
            Who::Session(s) => &s.user.roles,
            Who::Token { roles, .. } | Who::Client { roles, .. } => roles,
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward with this identity's headers.
    Forward,
    /// A public path: forward without identity headers.
    Public,
    /// Nobody is logged in.
    Unauthenticated,
    /// Logged in, but not allowed; names what is missing.
    Forbidden(String),
}

/// Does `pattern` (`host`, `*.suffix`, or empty) match `host` (any port, any case)?
pub fn host_matches(pattern: Option<&str>, host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host);
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

/// Does the path prefix `prefix` match `path` (whole segments: `/api` matches `/api` and `/api/x`, not `/apix`)?
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Does `route` take requests for `host` and `path`?
pub fn route_matches(route: &RouteConfig, host: &str, path: &str) -> bool {
    host_matches(route.host.as_deref(), host) && prefix_matches(&route.path_prefix, path)
}

/// The decision for `path` on `route` given who is asking.
pub fn decide(route: &RouteConfig, path: &str, who: Option<&Identity>) -> Decision {
    if route.public_paths.iter().any(|p| prefix_matches(p, path)) {
        return Decision::Public;
    }
    let Some(who) = who else { return Decision::Unauthenticated };
    if let Some(client) = who.client_id() {
        // A token with no user behind it opens only routes that name its client.
        if route.allow_clients.iter().any(|c| c == client) {
            return Decision::Forward;
        }
        return Decision::Forbidden(format!("a signed-in user (the service client {client} is not in allow_clients)"));
    }
    let open = route.allow_roles.is_empty() && route.allow_groups.is_empty() && route.allow_users.is_empty();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let allowed = open
        || route.allow_roles.iter().any(|r| who.roles().iter().any(|h| eq(h, r)))
        || route.allow_groups.iter().any(|g| who.groups().iter().any(|h| eq(h, g)))
        || route.allow_users.iter().any(|u| eq(u, who.username()));
    if allowed {
        return Decision::Forward;
    }
    let mut needs = Vec::new();
    if !route.allow_roles.is_empty() {
        needs.push(format!("one of the roles {}", route.allow_roles.join(", ")));
    }
    if !route.allow_groups.is_empty() {
        needs.push(format!("membership of {}", route.allow_groups.join(", ")));
    }
    if !route.allow_users.is_empty() {
        needs.push("to be one of the allowed users".to_string());
    }
    Decision::Forbidden(needs.join(" or "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn who(roles: &[&str]) -> Identity {
        Identity::from_token("s".into(), "u".into(), vec![], roles.iter().map(|s| s.to_string()).collect(), "t".into())
    }

    #[test]
    fn decides_by_role_and_public_paths() {
        let r = RouteConfig {
            allow_roles: vec!["admin".into(), "researcher".into()],
            public_paths: vec!["/health".into()],
            ..Default::default()
        };
        assert_eq!(decide(&r, "/", Some(&who(&["researcher"]))), Decision::Forward);
        assert_eq!(decide(&r, "/", None), Decision::Unauthenticated);
        assert_eq!(decide(&r, "/health", None), Decision::Public);
        assert_eq!(decide(&r, "/healthz", None), Decision::Unauthenticated, "a prefix is a path segment");
        assert!(matches!(decide(&r, "/", Some(&who(&[]))), Decision::Forbidden(m) if m.contains("admin, researcher")));
    }

    #[test]
    fn matches_hosts_and_prefixes() {
        assert!(host_matches(Some("*.example.com"), "dash.example.com:8443"));
        assert!(!host_matches(Some("*.example.com"), "example.com.evil.org"));
        assert!(host_matches(Some("Dash.Example.com"), "dash.example.com"));
        assert!(host_matches(Some("*.Example.com"), "a.b.EXAMPLE.com"));
        assert!(!host_matches(Some("*.example.com"), "example.com"), "the bare domain is not a subdomain");
        assert!(!host_matches(Some("*.example.com"), "xexample.com"));
        let api = RouteConfig { path_prefix: "/api".into(), upstream: "a".into(), ..Default::default() };
        let slash = RouteConfig { path_prefix: "/api/".into(), upstream: "a".into(), ..Default::default() };
        let all = RouteConfig { upstream: "b".into(), ..Default::default() };
        assert!(route_matches(&api, "x", "/api/v1") && route_matches(&api, "x", "/api"));
        assert!(!route_matches(&api, "x", "/apix") && !route_matches(&api, "x", "/"));
        assert!(route_matches(&slash, "x", "/api/v1") && route_matches(&slash, "x", "/api"));
        assert!(route_matches(&all, "x", "/apix") && route_matches(&all, "x", "/"));
    }
}
