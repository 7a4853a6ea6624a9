//! OpenID Connect provider: request validation, codes, tokens, claims, keys, JWKS and discovery.
//!
//! The gateway holds one [`Provider`] in its state and calls it from its axum handlers; this module knows nothing
//! of HTTP servers or LDAP. Every call that depends on time takes `now`. Grant state (codes, refresh tokens, token
//! families) lives behind [`store::GrantStore`].
//!
//! A login: [`Provider::authorize`] validates the request → the gateway asks
//! [`AuthorizationRequest::login_decision`] and logs the user in if needed → [`Provider::issue_code`] returns the
//! redirect carrying the code → the client calls the token endpoint ([`Provider::token`]).

pub mod authorize;
pub mod claims;
pub mod client;
pub mod config;
pub mod discovery;
pub mod error;
pub mod introspection;
pub mod keys;
pub mod logout;
pub mod params;
pub mod store;
pub mod token;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::CoreJsonWebKeySet;
use url::Url;

pub use authorize::{AuthorizationRequest, AuthorizeError, LoginDecision, PreparedCode, Prompt, ResponseMode};
pub use claims::{AccessTokenClaims, ExtraClaims};
pub use config::{AccessTokenClaimsMode, ClaimsProfile, ClientConfig, OidcConfig, RedirectUriRules, SigningAlgorithm};
pub use discovery::DiscoveryDocument;
pub use error::{ErrorCode, KeyError, ProtocolError, StoreError, TokenError};
pub use keys::{KeySet, SigningKey};
pub use logout::{BACKCHANNEL_LOGOUT_EVENT, LogoutNotice, LogoutRequest, LogoutTokenClaims};
pub use params::Params;
pub use store::{GrantStore, MemoryGrantStore};
pub use token::{KeepSnapshot, PrincipalRefresh, TokenResponse};

use client::{Client, Clients};

/// Why a [`Provider`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A client's `client_secret_file` could not be read.
    #[error("reading client_secret_file of client {client_id}: {source}")]
    SecretFile {
        /// The client.
        client_id: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The issuer URL has a query or fragment, or cannot be a base URL.
    #[error("issuer {0} is not usable as an OpenID issuer (https URL without query or fragment)")]
    Issuer(String),
    /// The endpoint URLs built from the issuer do not parse.
    #[error("issuer {issuer} is not usable as an OpenID issuer: its endpoint URLs do not parse")]
    IssuerEndpoints {
        /// The issuer.
        issuer: String,
        /// Why an endpoint URL does not parse.
        #[source]
        source: url::ParseError,
    },
}

/// The OpenID Provider: configuration, clients, keys and grant store.
pub struct Provider {
    cfg: OidcConfig,
    issuer: String,
    keys: std::sync::RwLock<KeySet>,
    store: Arc<dyn GrantStore>,
    clients: Clients,
    known_scopes: Vec<String>,
    discovery: DiscoveryDocument,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("clients", &self.clients.len())
            .field("active_kid", &self.keys().active().kid())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds the provider. `issuer` is the gateway's public URL (a trailing slash is dropped); client secret
    /// files are read here. Run [`OidcConfig::validate`] first.
    pub fn new(cfg: OidcConfig, issuer: Url, keys: KeySet, store: Arc<dyn GrantStore>) -> Result<Self, SetupError> {
        if issuer.query().is_some() || issuer.fragment().is_some() || issuer.cannot_be_a_base() {
            return Err(SetupError::Issuer(issuer.to_string()));
        }
        let issuer = issuer.as_str().trim_end_matches('/').to_string();
        let mut clients = Clients::new();
        for c in &cfg.clients {
            let client = Client::new(c.clone())
                .map_err(|source| SetupError::SecretFile { client_id: c.client_id.clone(), source })?;
            clients.insert(c.client_id.clone(), client);
        }
        let known_scopes = cfg.known_scopes();
        let extra_claims = cfg.scope_claims.values().flatten().cloned();
        let discovery =
            discovery::document(&issuer, &known_scopes, discovery::claims_supported(extra_claims), keys.active())
                .map_err(|source| SetupError::IssuerEndpoints { issuer: issuer.clone(), source })?;
        Ok(Self { cfg, issuer, keys: std::sync::RwLock::new(keys), store, clients, known_scopes, discovery })
    }

    /// Switches to Keycloak's realm layout: the issuer (given to [`Provider::new`]) is the realm URL
    /// `{public_url}[/auth]/realms/{realm}`, and discovery advertises the endpoints under
    /// `{issuer}/protocol/openid-connect/`.
    pub fn with_keycloak_layout(mut self) -> Result<Self, SetupError> {
        let extra_claims = self.cfg.scope_claims.values().flatten().cloned();
        let keys = self.keys();
        self.discovery = discovery::document_in(
            discovery::Layout::Keycloak,
            &self.issuer,
            &self.known_scopes,
            discovery::claims_supported(extra_claims),
            keys.active(),
        )
        .map_err(|source| SetupError::IssuerEndpoints { issuer: self.issuer.clone(), source })?;
        Ok(self)
    }

    /// The issuer identifier (`iss`), without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The discovery document (serialize it as the `/.well-known/openid-configuration` body).
    pub fn discovery(&self) -> &DiscoveryDocument {
        &self.discovery
    }

    /// The public JWKS (`/oauth2/jwks` body).
    pub fn jwks(&self) -> CoreJsonWebKeySet {
        self.keys().jwks()
    }

    /// The signing keys (a cheap copy of the current set).
    pub fn keys(&self) -> KeySet {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the signing keys (a rotation made by another process in the shared `keys_dir`): tokens are signed
    /// with the new active key from now on, and JWKS lists the new set.
    pub fn replace_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    }

    /// The registered client `client_id`, if any (e.g. for its display name on the login page).
    pub fn client(&self, client_id: &str) -> Option<&ClientConfig> {
        self.clients.get(client_id).map(|c| &c.config)
    }

    /// The configuration in use.
    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// A short-lived access token (RFC 9068 JWT, signed with the active key) for `principal`, addressed to
    /// [`UPSTREAM_AUDIENCE`]: what the authenticating proxy hands an upstream so it can verify the user against the
    /// JWKS. `session` is the non-secret handle of the gateway session it was made for (its `sid`). Such a token is
    /// never a credential at fedgate itself ([`Provider::verify_access_token`] refuses it), so an upstream that
    /// leaks or replays it gains nothing here.
    pub fn upstream_token(
        &self,
        principal: &crate::Principal,
        session: &str,
        ttl: Duration,
        now: time::OffsetDateTime,
    ) -> Result<String, KeyError> {
        let iat = now.unix_timestamp();
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: principal.subject.clone(),
            aud: crate::oidc::claims::Audience::one(UPSTREAM_AUDIENCE),
            exp: iat + secs(ttl),
            iat,
            jti: fedgate_types::random::token(),
            client_id: UPSTREAM_AUDIENCE.to_string(),
            scope: "openid".into(),
            auth_time: Some(principal.auth_time.unix_timestamp()),
            sid: Some(session.to_string()),
            preferred_username: Some(principal.username.clone()),
            groups: principal.groups.clone(),
            roles: principal.roles.clone(),
            keycloak: None,
        };
        let header = jsonwebtoken::Header { typ: Some("at+jwt".into()), ..Default::default() };
        self.keys().active().sign_jwt(&header, &claims)
    }
}

/// The audience of the tokens the authenticating proxy hands its upstreams; no client may take this id.
pub const UPSTREAM_AUDIENCE: &str = "fedgate-proxy";

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A store key for a secret token: the prefix and the SHA-256 of the token (the store never holds the token).
pub(crate) fn store_key(prefix: &str, token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    format!("oidc:{prefix}:{}", b64(d.as_ref()))
}

/// A store key for a non-secret id.
pub(crate) fn plain_key(prefix: &str, id: &str) -> String {
    format!("oidc:{prefix}:{id}")
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
