//! HTTP routes, one module per area; each exposes `router()`. [`is_own_path`] says which paths they take, so that
//! the server can hand every other path of a proxy route straight to the proxy.

pub mod account;
pub mod health;
pub mod login;
pub mod oidc;
pub mod saml;

/// Paths the gateway answers itself, whatever the proxy routes say.
const OWN_PATHS: &[&str] = &[
    "/login",
    "/logout",
    "/healthz",
    "/readyz",
    "/metrics",
    "/auth/verify",
    "/auth/forward",
    "/.well-known/openid-configuration",
];

/// Path prefixes the gateway keeps for itself (OIDC and SAML endpoints).
const OWN_PREFIXES: &[&str] = &["/oauth2/", "/saml/"];

/// Whether `path` belongs to the gateway rather than to a proxied app. `/` (the account page) is not one: an app
/// behind a route for `/` keeps its home page, and the account page shows where no route claims `/`.
pub fn is_own_path(path: &str) -> bool {
    OWN_PATHS.contains(&path) || OWN_PREFIXES.iter().any(|p| path.starts_with(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::is_own_path;

    /// Every path given to `.route(` in the gateway's sources is an own path (or the account page), so a new
    /// endpoint cannot be shadowed by a proxy route without this test failing.
    #[test]
    fn every_routed_path_is_an_own_path() {
        let sources = [
            include_str!("account.rs"),
            include_str!("health.rs"),
            include_str!("login.rs"),
            include_str!("oidc.rs"),
            include_str!("saml.rs"),
            include_str!("../proxy/mod.rs"),
        ];
        let mut seen = 0;
        for src in sources {
            for path in src.split(".route(\"").skip(1).filter_map(|s| s.split('"').next()) {
                seen += 1;
                assert!(path == "/" || is_own_path(path), "{path} is routed but not listed in routes::OWN_PATHS");
            }
        }
        assert!(seen >= 20, "found only {seen} routes; has the router moved?");
    }

    #[test]
    fn app_paths_are_not_own_paths() {
        for p in ["/", "/app", "/login2", "/loginx/a", "/api/login", "/oauth2", "/samlx"] {
            assert!(!is_own_path(p), "{p}");
        }
        assert!(is_own_path("/saml/init/ram"));
        assert!(is_own_path("/oauth2/token"));
    }
}
