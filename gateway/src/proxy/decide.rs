//! Which route a request belongs to, and what to do with it: forward, let it through without login, send the
//! browser to log in, or refuse. Pure functions, no I/O.

use crate::config::RouteConfig;
pub use crate::domain::identity::Identity;

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

/// The decision for `path` on `route` given who is asking.
pub fn decide(route: &RouteConfig, path: &str, who: Option<&Identity>) -> Decision {
    if route.is_public_path(path) {
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
}
