//! The paths the gateway answers itself. They are collected while the routes are declared ([`OwnRoutes`]), so an
//! endpoint added to a router is one of the gateway's own paths by construction, and no proxy route can take it
//! over (the server asks [`OwnPaths::contains`] before it hands a request to the proxy).

use axum::Router;
use axum::routing::MethodRouter;

/// The gateway's own paths: exact paths and reserved prefixes.
#[derive(Debug, Clone, Default)]
pub struct OwnPaths {
    exact: Vec<&'static str>,
    prefixes: Vec<&'static str>,
}

impl OwnPaths {
    /// Whether `path` (canonical) belongs to the gateway rather than to a proxied app.
    pub fn contains(&self, path: &str) -> bool {
        self.exact.contains(&path) || self.prefixes.iter().any(|p| path.starts_with(p))
    }

    fn add_route(&mut self, path: &'static str) {
        // A path with a parameter (`/saml/init/{sp}`) reserves everything below its last fixed segment.
        match path.find('{') {
            Some(i) => self.reserve_prefix(&path[..i]),
            None if !self.exact.contains(&path) => self.exact.push(path),
            None => {}
        }
    }

    fn reserve_prefix(&mut self, prefix: &'static str) {
        if !self.prefixes.contains(&prefix) {
            self.prefixes.push(prefix);
        }
    }
}

/// An axum router that records the paths it routes as the gateway's own.
#[derive(Debug)]
pub struct OwnRoutes<S> {
    router: Router<S>,
    paths: OwnPaths,
}

impl<S: Clone + Send + Sync + 'static> Default for OwnRoutes<S> {
    fn default() -> Self {
        Self { router: Router::new(), paths: OwnPaths::default() }
    }
}

impl<S: Clone + Send + Sync + 'static> OwnRoutes<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `path` to `handler` and makes it an own path.
    #[must_use]
    pub fn route(mut self, path: &'static str, handler: MethodRouter<S>) -> Self {
        self.paths.add_route(path);
        self.router = self.router.route(path, handler);
        self
    }

    /// Like [`OwnRoutes::route`] for a path made from configuration (Keycloak's realm paths). The path is kept for
    /// the life of the process (routers are built once per gateway start).
    #[must_use]
    pub fn route_owned(self, path: String, handler: MethodRouter<S>) -> Self {
        self.route(Box::leak(path.into_boxed_str()), handler)
    }

    /// Like [`OwnRoutes::reserve_prefix`] for a prefix made from configuration (kept for the process's life).
    #[must_use]
    pub fn reserve_owned_prefix(self, prefix: String) -> Self {
        self.reserve_prefix(Box::leak(prefix.into_boxed_str()))
    }

    /// Routes `path` without reserving it: a proxy route for it wins (the account page at `/`, which an app behind
    /// a route for `/` keeps as its home page).
    #[must_use]
    pub fn route_unless_proxied(mut self, path: &'static str, handler: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, handler);
        self
    }

    /// Reserves every path starting with `prefix` (a protocol's namespace, e.g. `/oauth2/`), routed or not.
    #[must_use]
    pub fn reserve_prefix(mut self, prefix: &'static str) -> Self {
        self.paths.reserve_prefix(prefix);
        self
    }

    /// Adds another set of routes.
    #[must_use]
    pub fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        for p in other.paths.exact {
            self.paths.add_route(p);
        }
        for p in other.paths.prefixes {
            self.paths.reserve_prefix(p);
        }
        self
    }

    /// Changes the router (adds a layer, a fallback), keeping the paths.
    #[must_use]
    pub fn map_router(mut self, f: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = f(self.router);
        self
    }

    /// The router and the paths it takes.
    pub fn into_parts(self) -> (Router<S>, OwnPaths) {
        (self.router, self.paths)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use axum::routing::get;

    use super::OwnRoutes;

    #[test]
    fn routed_paths_and_reserved_prefixes_are_own_paths() {
        let (_, own) = OwnRoutes::<()>::new()
            .route("/login", get(|| async {}))
            .route_unless_proxied("/", get(|| async {}))
            .merge(OwnRoutes::new().route("/saml/init/{sp}", get(|| async {})).reserve_prefix("/oauth2/"))
            .into_parts();
        for p in ["/login", "/saml/init/ram", "/oauth2/token", "/oauth2/anything"] {
            assert!(own.contains(p), "{p}");
        }
        for p in ["/", "/app", "/login2", "/loginx/a", "/api/login", "/oauth2", "/saml/init", "/samlx"] {
            assert!(!own.contains(p), "{p}");
        }
    }
}
