//! The OpenID Provider metadata document (`/.well-known/openid-configuration`, OIDC Discovery 1.0 §3).
//!
//! Built with openidconnect's `ProviderMetadata` plus [`ExtraProviderMetadata`] for the fields it lacks
//! (`code_challenge_methods_supported`, `end_session_endpoint`, introspection and revocation endpoints).

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata, ResponseTypes, Scope, TokenUrl,
    UserInfoUrl,
};
use serde::{Deserialize, Serialize};

use super::keys::SigningKey;

/// Path of the authorization endpoint, relative to the issuer.
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Path of the userinfo endpoint.
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
/// Path of the JWKS.
pub const JWKS_PATH: &str = "/oauth2/jwks";
/// Path of the introspection endpoint (RFC 7662).
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
/// Path of the revocation endpoint (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth2/revoke";
/// Path of the RP-initiated logout endpoint.
pub const LOGOUT_PATH: &str = "/oauth2/logout";
/// Path of this document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Keycloak's endpoint paths under a realm URL (`…/realms/{realm}`), for realm mode.
pub mod keycloak {
    /// Authorization endpoint.
    pub const AUTHORIZE: &str = "/protocol/openid-connect/auth";
    /// Token endpoint.
    pub const TOKEN: &str = "/protocol/openid-connect/token";
    /// Introspection endpoint.
    pub const INTROSPECT: &str = "/protocol/openid-connect/token/introspect";
    /// Userinfo endpoint.
    pub const USERINFO: &str = "/protocol/openid-connect/userinfo";
    /// JWKS.
    pub const JWKS: &str = "/protocol/openid-connect/certs";
    /// RP-initiated logout.
    pub const LOGOUT: &str = "/protocol/openid-connect/logout";
    /// Revocation endpoint.
    pub const REVOKE: &str = "/protocol/openid-connect/revoke";
    /// The session-check iframe keycloak-js loads.
    pub const CHECK_SESSION_IFRAME: &str = "/protocol/openid-connect/login-status-iframe.html";
}

/// Where the endpoints are: fedgate's own paths under the public URL, or Keycloak's under a realm URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `/oauth2/...` under the issuer.
    Fedgate,
    /// `/protocol/openid-connect/...` under the issuer (the realm URL).
    Keycloak,
}

impl Layout {
    fn paths(self) -> [&'static str; 7] {
        match self {
            Self::Fedgate => {
                [AUTHORIZE_PATH, TOKEN_PATH, USERINFO_PATH, JWKS_PATH, INTROSPECT_PATH, REVOKE_PATH, LOGOUT_PATH]
            }
            Self::Keycloak => [
                keycloak::AUTHORIZE,
                keycloak::TOKEN,
                keycloak::USERINFO,
                keycloak::JWKS,
                keycloak::INTROSPECT,
                keycloak::REVOKE,
                keycloak::LOGOUT,
            ],
        }
    }
}

/// Metadata fields openidconnect's `ProviderMetadata` has no field for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraProviderMetadata {
    /// RFC 8414 / RFC 7636: `["S256"]`.
    pub code_challenge_methods_supported: Vec<String>,
    /// OIDC RP-Initiated Logout 1.0.
    pub end_session_endpoint: String,
    /// RFC 8414 `introspection_endpoint`.
    pub introspection_endpoint: String,
    /// RFC 8414 `revocation_endpoint`.
    pub revocation_endpoint: String,
    /// Auth methods at the introspection endpoint.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Auth methods at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// OIDC Back-Channel Logout 1.0 §2.1.
    pub backchannel_logout_supported: bool,
    /// Back-channel logout tokens carry `sid`.
    pub backchannel_logout_session_supported: bool,
    /// OIDC Front-Channel Logout 1.0 §3.
    pub frontchannel_logout_supported: bool,
    /// Front-channel logout URLs carry `iss` and `sid`.
    pub frontchannel_logout_session_supported: bool,
    /// The `prompt` values the authorization endpoint takes (Initiating User Registration via OpenID Connect §4.1);
    /// `consent` and `select_account` are passed on to an upstream provider, fedgate shows no screen for them.
    pub prompt_values_supported: Vec<String>,
    /// OIDC Session Management's iframe (Keycloak layout only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_session_iframe: Option<String>,
}

impl AdditionalProviderMetadata for ExtraProviderMetadata {}

/// The discovery document type.
pub type DiscoveryDocument = ProviderMetadata<
    ExtraProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Claims the provider may release (OIDC Core §5.1 names we fill, plus `groups`, `roles` and configured extras).
pub fn claims_supported(extra_claims: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "azp",
        "sid",
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "email",
        "groups",
        "roles",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    for c in extra_claims {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Builds the document for `issuer` (no trailing slash), the known scopes and the active signing key.
pub fn document(
    issuer: &str,
    scopes: &[String],
    claims: Vec<String>,
    active: &SigningKey,
) -> Result<DiscoveryDocument, url::ParseError> {
    document_in(Layout::Fedgate, issuer, scopes, claims, active)
}

/// Like [`document`], with the endpoints where `layout` puts them.
pub fn document_in(
    layout: Layout,
    issuer: &str,
    scopes: &[String],
    claims: Vec<String>,
    active: &SigningKey,
) -> Result<DiscoveryDocument, url::ParseError> {
    let url = |path: &str| format!("{issuer}{path}");
    let [authorize, token, userinfo, jwks, introspect, revoke, logout] = layout.paths();
    let auth_methods = vec!["client_secret_basic".to_string(), "client_secret_post".to_string()];
    let extra = ExtraProviderMetadata {
        code_challenge_methods_supported: vec!["S256".into()],
        end_session_endpoint: url(logout),
        introspection_endpoint: url(introspect),
        revocation_endpoint: url(revoke),
        introspection_endpoint_auth_methods_supported: auth_methods.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods,
        authorization_response_iss_parameter_supported: true,
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        frontchannel_logout_supported: true,
        frontchannel_logout_session_supported: true,
        prompt_values_supported: ["none", "login", "consent", "select_account"].map(String::from).to_vec(),
        check_session_iframe: (layout == Layout::Keycloak).then(|| url(keycloak::CHECK_SESSION_IFRAME)),
    };
    let doc = DiscoveryDocument::new(
        IssuerUrl::new(issuer.to_string())?,
        AuthUrl::new(url(authorize))?,
        JsonWebKeySetUrl::new(url(jwks))?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![active.core_algorithm()],
        extra,
    )
    .set_token_endpoint(Some(TokenUrl::new(url(token))?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(url(userinfo))?))
    .set_scopes_supported(Some(scopes.iter().map(|s| Scope::new(s.clone())).collect()))
    .set_response_modes_supported(Some(vec![
        CoreResponseMode::Query,
        CoreResponseMode::Fragment,
        CoreResponseMode::FormPost,
    ]))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
        CoreGrantType::ClientCredentials,
    ]))
    .set_token_endpoint_auth_methods_supported(Some(vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::None,
    ]))
    .set_claims_supported(Some(claims.into_iter().map(CoreClaimName::new).collect()))
    // Request objects and the `claims` parameter are not taken. OIDC Discovery §3 makes an absent
    // `request_uri_parameter_supported` mean true, so each is said explicitly.
    .set_request_parameter_supported(Some(false))
    .set_request_uri_parameter_supported(Some(false))
    .set_claims_parameter_supported(Some(false));
    Ok(doc)
}
