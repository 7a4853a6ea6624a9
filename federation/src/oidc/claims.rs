//! Which claims a principal releases for which scopes, and the ID token / access token claim sets.
//!
//! ID tokens use openidconnect's `IdTokenClaims` with [`ExtraClaims`] for `groups`, `roles` and configured
//! extras; access tokens follow the JWT profile of RFC 9068 ([`AccessTokenClaims`]).

use std::collections::BTreeMap;

use openidconnect::core::{CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm};
use openidconnect::{
    AdditionalClaims, EndUserEmail, EndUserFamilyName, EndUserGivenName, EndUserName, EndUserUsername, IdToken,
    IdTokenClaims, LocalizedClaim, StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};

use crate::Principal;
use crate::principal::GroupFormat;

/// Claims beyond OIDC Core's standard set: `groups`, `roles`, and extras from `[oidc.scope_claims]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtraClaims {
    /// Group names, or `/full/path`s for a `group_format = "path"` client (scope `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Roles (scope `roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Session id (the token family), for logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Configured extra claims; a single value is a string, several are an array.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

/// Our ID token claims type.
pub type IdTokenClaimSet = IdTokenClaims<ExtraClaims, CoreGenderClaim>;

/// Our ID token type (serializes as the compact JWT).
pub type OidcIdToken =
    IdToken<ExtraClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// The user claims released for `scopes`, as standard + extra claims (shared by ID token and userinfo); `groups`
/// written as the client's `group_format` asks.
pub fn user_claims(
    principal: &Principal,
    scopes: &[String],
    scope_claims: &BTreeMap<String, Vec<String>>,
    group_format: GroupFormat,
) -> (StandardClaims<CoreGenderClaim>, ExtraClaims) {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut std = StandardClaims::new(SubjectIdentifier::new(principal.subject.clone()));
    if has("profile") {
        if let Some(n) = principal.display_name.clone() {
            let mut c = LocalizedClaim::new();
            c.insert(None, EndUserName::new(n));
            std = std.set_name(Some(c));
        }
        if let Some(n) = principal.given_name.clone() {
            let mut c = LocalizedClaim::new();
            c.insert(None, EndUserGivenName::new(n));
            std = std.set_given_name(Some(c));
        }
        if let Some(n) = principal.family_name.clone() {
            let mut c = LocalizedClaim::new();
            c.insert(None, EndUserFamilyName::new(n));
            std = std.set_family_name(Some(c));
        }
        std = std.set_preferred_username(Some(EndUserUsername::new(principal.username.clone())));
    }
    if has("email")
        && let Some(e) = &principal.email
    {
        std = std.set_email(Some(EndUserEmail::new(e.clone())));
    }
    let mut extra = ExtraClaims {
        groups: has("groups").then(|| principal.groups_as(group_format)),
        roles: has("roles").then(|| principal.roles.clone()),
        ..ExtraClaims::default()
    };
    for (scope, names) in scope_claims {
        if !has(scope) {
            continue;
        }
        for name in names {
            if let Some(values) = principal.claims.get(name) {
                let v = match values.as_slice() {
                    [one] => serde_json::Value::String(one.clone()),
                    many => serde_json::Value::from(many.to_vec()),
                };
                extra.extra.insert(name.clone(), v);
            }
        }
    }
    (std, extra)
}

/// Claims of an access token (RFC 9068 §2.2), plus what the proxy needs to authorize API calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the principal's stable subject, or the client_id for `client_credentials`.
    pub sub: String,
    /// Audience: the client_id, then the client's extra `audiences`.
    pub aud: Audience,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Unique id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scope: String,
    /// When the user authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The token family (one login at one client); absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Groups (always included for users, so the proxy can authorize), as the client's `group_format` asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Roles (always included for users).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The Keycloak profile's claims (`claims_profile = "keycloak"`), beside the ones above.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<KeycloakAccessClaims>,
}

/// An access token's `aud`: the client it was issued to, then the client's extra audiences (Keycloak's audience
/// mappers). Written as a string when it is the client alone (RFC 9068 §2.2 allows both), as an array otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    /// `client` alone.
    pub fn one(client: impl Into<String>) -> Self {
        Self(vec![client.into()])
    }

    /// `client`, then `extra` (duplicates of earlier entries left out).
    pub fn with_extra(client: impl Into<String>, extra: &[String]) -> Self {
        let mut all = vec![client.into()];
        for a in extra {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        Self(all)
    }

    /// The client the token was issued to (the first audience).
    pub fn client(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// Every audience, the client first.
    pub fn all(&self) -> &[String] {
        &self.0
    }

    /// Whether `aud` is one of them.
    pub fn contains(&self, aud: &str) -> bool {
        self.0.iter().any(|a| a == aud)
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            all => all.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::One(a) => Ok(Self(vec![a])),
            Raw::Many(v) if !v.is_empty() => Ok(Self(v)),
            Raw::Many(_) => Err(serde::de::Error::custom("empty aud")),
        }
    }
}

impl AccessTokenClaims {
    /// The user's (realm) roles, wherever the client's claims profile put them: `roles`, or Keycloak's
    /// `realm_access.roles`.
    pub fn realm_roles(&self) -> Vec<String> {
        let mut roles = self.roles.clone();
        if let Some(k) = &self.keycloak {
            roles.extend(k.realm_access.roles.iter().filter(|r| !self.roles.contains(r)).cloned());
        }
        roles
    }
}

/// Roles as Keycloak nests them (`{"roles": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoleList {
    /// Role names.
    pub roles: Vec<String>,
}

/// What a Keycloak access token carries beyond RFC 9068 (its default client scopes `roles`, `web-origins`,
/// `profile`, `email`, `acr` and its token class fields), for `claims_profile = "keycloak"` clients.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeycloakAccessClaims {
    /// Token class: `Bearer`.
    pub typ: String,
    /// The client the token was issued to.
    pub azp: String,
    /// `"1"` right after a login, `"0"` for single sign-on.
    pub acr: String,
    /// The origins the client's redirect URIs are on (Keycloak's `+` web origin).
    #[serde(rename = "allowed-origins")]
    pub allowed_origins: Vec<String>,
    /// Realm roles (fedgate's `[roles]`).
    pub realm_access: RoleList,
    /// Client roles per client (`[[oidc.clients]] client_roles`); empty clients are left out.
    pub resource_access: BTreeMap<String, RoleList>,
    /// Whether the e-mail address is verified (the directory is trusted, as Keycloak's LDAP `trustEmail`).
    pub email_verified: bool,
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The session's id as Keycloak up to 25 wrote it beside `sid` (the same value): keycloak-js before 26 reads
    /// its session id from here for the session-status iframe. None for `client_credentials` tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_state: Option<String>,
}

/// The Keycloak scopes applied to every token of a `keycloak`-profile client without being requested, as they
/// appear in its `scope` claim (`roles`, `web-origins`, `acr` and `basic` are not listed there, as in Keycloak).
pub const KEYCLOAK_DEFAULT_SCOPES: &[&str] = &["profile", "email"];

/// Keycloak's `acr`: `"1"` if the user logged in for this request (within `window` seconds of `iat`), else `"0"`.
pub fn keycloak_acr(principal: &Principal, iat: i64, window: i64) -> String {
    if iat - principal.auth_time.unix_timestamp() <= window { "1".into() } else { "0".into() }
}

/// The origins (`scheme://host[:port]`) of `uris`, deduplicated in order.
pub fn origins<'a>(uris: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in uris {
        if let Ok(url) = url::Url::parse(u) {
            let o = url.origin().ascii_serialization();
            if o != "null" && !out.contains(&o) {
                out.push(o);
            }
        }
    }
    out
}

/// The client roles `principal` holds through `client_roles` (role → groups granting it).
pub fn client_roles(principal: &Principal, client_roles: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    client_roles
        .iter()
        .filter(|(_, groups)| groups.iter().any(|g| principal.groups.contains(g)))
        .map(|(role, _)| role.clone())
        .collect()
}

impl AccessTokenClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}
