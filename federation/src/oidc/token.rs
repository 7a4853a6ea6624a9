//! The token endpoint (RFC 6749 §3.2): the `authorization_code`, `refresh_token` and `client_credentials` grants,
//! and the signing of ID tokens (openidconnect `IdToken` with our aws-lc-rs key) and access tokens (RFC 9068).
//!
//! Codes are single-use (an atomic `take`); redeeming a code twice revokes the token family it created. Refresh
//! tokens are opaque and rotate on every use; presenting a rotated one again revokes the whole family.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::{AccessToken, Audience, ClientId, IssuerUrl, Nonce};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Provider;
use super::claims::{
    AccessTokenClaims, IdTokenClaimSet, KeycloakAccessClaims, OidcIdToken, RoleList, client_roles, keycloak_acr,
    origins, user_claims,
};
use super::client::{self, Client};
use super::config::ClaimsProfile;
use super::error::{ErrorCode, KeyError, Result, StoreError, TokenError};
use super::params::Params;
use super::store::{CodeGrant, Family, Grant, RedeemedCode, RefreshGrant};
use crate::Principal;

/// The successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
///
/// Our own struct rather than openidconnect's `CoreTokenResponse`, whose `token_type` serializes as lower-case
/// `bearer` and whose ID token type has no room for our extra claims; the JSON parses as a `CoreTokenResponse`
/// (tested).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token (a JWT, RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// The ID token, when `openid` was granted to a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// A new refresh token, when the client may refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// Lets the gateway replace the principal stored with a refresh token by a fresh directory lookup.
pub trait PrincipalRefresh: Send + Sync {
    /// The current principal for `snapshot`, or `None` if the user no longer exists or is disabled (the token
    /// family is then revoked and the client gets `invalid_grant`).
    fn refresh<'a>(&'a self, snapshot: &'a Principal) -> super::store::StoreFuture<'a, Option<Principal>>;
}

/// Keeps the snapshot taken at login (no directory lookup).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepSnapshot;

impl PrincipalRefresh for KeepSnapshot {
    fn refresh<'a>(&'a self, snapshot: &'a Principal) -> super::store::StoreFuture<'a, Option<Principal>> {
        Box::pin(async move { Some(snapshot.clone()) })
    }
}

fn grant_err(description: &str) -> TokenError {
    TokenError::protocol(ErrorCode::InvalidGrant, description)
}

fn chrono_at(unix: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(unix, 0).unwrap_or_default()
}

/// Checks a PKCE verifier against an S256 challenge (RFC 7636 §4.6).
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let valid_chars = verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !(43..=128).contains(&verifier.len()) || !valid_chars {
        return false;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = super::b64(digest.as_ref());
    fedgate_types::secure_eq(computed, challenge)
}

/// What an issued set of tokens is about.
struct Issue<'a> {
    client: &'a Client,
    principal: &'a Principal,
    scopes: &'a [String],
    nonce: Option<&'a str>,
    family_id: &'a str,
}

impl Provider {
    /// Handles a token request: the form `params` and the `Authorization` header, at `now`. Refreshes keep the
    /// principal snapshot stored with the refresh token; use [`Provider::token_with`] to look the user up again.
    pub async fn token(
        &self,
        params: &Params,
        authorization: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<TokenResponse> {
        self.token_with(params, authorization, now, &KeepSnapshot).await
    }

    /// Like [`Provider::token`], with `refresh` deciding the principal behind a refresh token.
    pub async fn token_with(
        &self,
        params: &Params,
        authorization: Option<&str>,
        now: OffsetDateTime,
        refresh: &dyn PrincipalRefresh,
    ) -> Result<TokenResponse> {
        let client = client::authenticate(&self.clients, params, authorization)?;
        let grant_type = params.require("grant_type")?;
        if !super::config::GRANT_TYPES.contains(&grant_type) {
            return Err(TokenError::protocol(ErrorCode::UnsupportedGrantType, "unsupported grant_type"));
        }
        if !client.allows_grant(grant_type) {
            return Err(TokenError::protocol(
                ErrorCode::UnauthorizedClient,
                format!("the client may not use {grant_type}"),
            ));
        }
        match grant_type {
            "authorization_code" => self.code_grant(client, params, now).await,
            "refresh_token" => self.refresh_grant(client, params, now, refresh).await,
            _ => self.client_credentials_grant(client, params, now),
        }
    }

    async fn code_grant(&self, client: &Client, params: &Params, now: OffsetDateTime) -> Result<TokenResponse> {
        let code = params.require("code")?;
        let code_key = super::store_key("code", code);
        let used_key = super::store_key("used", code);
        let grant = match self.store.take(&code_key).await? {
            Some(Grant::Code(g)) => g,
            _ => {
                if let Some(Grant::RedeemedCode(r)) = self.store.get(&used_key).await? {
                    tracing::warn!(client_id = %client.id(), "authorization code replayed; revoking its tokens");
                    self.revoke_family(&r.family_id, now).await?;
                    return Err(grant_err("the authorization code was already used"));
                }
                return Err(grant_err("unknown or expired authorization code"));
            }
        };
        let CodeGrant { client_id, redirect_uri, scopes, nonce, code_challenge, principal, expires_at, family_id } =
            grant;
        // The family is written before (or with) the redeemed-code marker, so a replay that sees the marker can
        // always revoke it; on success the refresh token goes with them: one write (one Redis pipeline, one
        // embedded transaction) instead of three in sequence.
        let family = Family {
            client_id: client_id.clone(),
            principal: principal.clone(),
            scopes: scopes.clone(),
            revoked_at: None,
        };
        let remember = RedeemedCode { family_id: family_id.clone(), client_id: client_id.clone() };
        let writes = vec![
            (super::plain_key("fam", &family_id), Grant::Family(family), self.family_ttl()),
            (used_key, Grant::RedeemedCode(remember), self.family_ttl()),
        ];
        let refused = if client_id != client.id() {
            Some("the authorization code was issued to another client")
        } else if now.unix_timestamp() > expires_at {
            Some("the authorization code has expired")
        } else if params.get("redirect_uri")? != Some(redirect_uri.as_str()) {
            Some("redirect_uri does not match the authorization request")
        } else {
            match (code_challenge, params.get("code_verifier")?) {
                (None, None) => None,
                (Some(c), Some(v)) if pkce_s256_matches(v, &c) => None,
                (Some(_), Some(_)) => Some("code_verifier does not match the code_challenge"),
                (Some(_), None) => Some("code_verifier is missing"),
                (None, Some(_)) => Some("code_verifier sent but no code_challenge was"),
            }
        };
        if let Some(description) = refused {
            // The code is used up all the same: a later presentation is answered as a replay.
            self.store.put_many(writes).await?;
            return Err(grant_err(description));
        }
        let issue =
            Issue { client, principal: &principal, scopes: &scopes, nonce: nonce.as_deref(), family_id: &family_id };
        self.issue_tokens(&issue, now, writes).await
    }

    async fn refresh_grant(
        &self,
        client: &Client,
        params: &Params,
        now: OffsetDateTime,
        refresh: &dyn PrincipalRefresh,
    ) -> Result<TokenResponse> {
        let token = params.require("refresh_token")?;
        let key = super::store_key("rt", token);
        // Read, then rotate with a compare-and-set: the record never leaves the store, so a replay arriving while
        // the rotation is recorded finds it (still current, or already marked rotated), never "unknown".
        let Some(Grant::Refresh(old)) = self.store.get(&key).await? else {
            return Err(grant_err("unknown or expired refresh token"));
        };
        if old.rotated {
            return self.refresh_reused(client, &old.family_id, now).await;
        }
        if old.client_id != client.id() {
            return Err(grant_err("the refresh token was issued to another client"));
        }
        if now.unix_timestamp() > old.expires_at {
            return Err(grant_err("the refresh token has expired"));
        }
        let fam_key = super::plain_key("fam", &old.family_id);
        match self.store.get(&fam_key).await? {
            Some(Grant::Family(f)) if f.revoked_at.is_none() => {}
            _ => return Err(grant_err("the refresh token was revoked")),
        }
        let remaining = Duration::from_secs(u64::try_from(old.expires_at - now.unix_timestamp()).unwrap_or(0));
        let rotated = RefreshGrant { rotated: true, ..old.clone() };
        let current = Grant::Refresh(old.clone());
        if !self
            .store
            .compare_and_set(&key, Some(&current), Grant::Refresh(rotated), remaining + self.cfg.access_token_ttl)
            .await?
        {
            // Another request presented the same token between our read and our write: that is reuse.
            return self.refresh_reused(client, &old.family_id, now).await;
        }

        let scopes = match params.get("scope")? {
            None => old.scopes.clone(),
            Some(s) => {
                let asked: Vec<String> = s.split(' ').filter(|x| !x.is_empty()).map(str::to_string).collect();
                if let Some(extra) = asked.iter().find(|a| !old.scopes.contains(a)) {
                    return Err(TokenError::protocol(
                        ErrorCode::InvalidScope,
                        format!("scope {extra} was not granted originally"),
                    ));
                }
                asked
            }
        };
        let Some(principal) = refresh.refresh(&old.principal).await else {
            self.revoke_family(&old.family_id, now).await?;
            return Err(grant_err("the user is no longer allowed to sign in"));
        };
        if let Some(allowed) = &client.config.allowed_groups
            && !principal.groups.iter().any(|g| allowed.contains(g))
        {
            self.revoke_family(&old.family_id, now).await?;
            return Err(grant_err("the user may no longer sign in to this application"));
        }
        // The directory was asked (it may have taken a while): record the fresh principal only if the family was
        // not revoked meanwhile, with a compare-and-set so a revocation that lands now is never written over.
        if !self.update_family_principal(&fam_key, &principal).await? {
            return Err(grant_err("the refresh token was revoked"));
        }
        let issue = Issue { client, principal: &principal, scopes: &scopes, nonce: None, family_id: &old.family_id };
        self.issue_tokens(&issue, now, Vec::new()).await
    }

    fn client_credentials_grant(&self, client: &Client, params: &Params, now: OffsetDateTime) -> Result<TokenResponse> {
        if client.is_public() {
            return Err(TokenError::protocol(ErrorCode::UnauthorizedClient, "public clients cannot use this grant"));
        }
        let mut scopes: Vec<String> = Vec::new();
        for s in params.get("scope")?.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            if !self.known_scopes.iter().any(|k| k == s) || !client.config.scopes.iter().any(|k| k == s) {
                return Err(TokenError::protocol(ErrorCode::InvalidScope, format!("scope {s} is not allowed")));
            }
            if s != "openid" && s != "offline_access" && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_string());
            }
        }
        let iat = now.unix_timestamp();
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: client.id().to_string(),
            aud: super::claims::Audience::with_extra(client.id(), &client.config.audiences),
            exp: iat + super::secs(self.cfg.access_token_ttl),
            iat,
            jti: fedgate_types::random::token(),
            client_id: client.id().to_string(),
            scope: scopes.join(" "),
            auth_time: None,
            sid: None,
            preferred_username: None,
            groups: Vec::new(),
            roles: Vec::new(),
            keycloak: None,
        };
        // Keycloak names a client's service account `service-account-<client_id>`.
        let claims = match client.config.claims_profile {
            ClaimsProfile::Fedgate => claims,
            ClaimsProfile::Keycloak => AccessTokenClaims {
                preferred_username: Some(format!("service-account-{}", client.id())),
                keycloak: Some(KeycloakAccessClaims {
                    typ: "Bearer".into(),
                    azp: client.id().to_string(),
                    acr: "1".into(),
                    allowed_origins: origins(&client.config.redirect_uris),
                    resource_access: BTreeMap::new(),
                    ..KeycloakAccessClaims::default()
                }),
                ..claims
            },
        };
        Ok(TokenResponse {
            access_token: self.sign_access_token(&claims)?,
            token_type: "Bearer".into(),
            expires_in: self.cfg.access_token_ttl.as_secs(),
            id_token: None,
            refresh_token: None,
            scope: claims.scope,
        })
    }

    /// Signs an access token with the active key: header `typ: at+jwt`, or `typ: JWT` for the Keycloak profile
    /// (told apart from ID tokens by the payload's `typ: Bearer`).
    pub(crate) fn sign_access_token(&self, claims: &AccessTokenClaims) -> Result<String, KeyError> {
        let keys = self.keys();
        let mut header = jsonwebtoken::Header::new(keys.active().jwt_algorithm());
        header.typ = Some(if claims.keycloak.is_some() { "JWT" } else { "at+jwt" }.into());
        keys.active().sign_jwt(&header, claims)
    }

    /// Signs the tokens of `issue`; the refresh token (if the client may have one) is stored with `writes`, in
    /// one [`GrantStore::put_many`] made before anything is signed.
    async fn issue_tokens(
        &self,
        issue: &Issue<'_>,
        now: OffsetDateTime,
        mut writes: Vec<(String, Grant, Duration)>,
    ) -> Result<TokenResponse> {
        let iat = now.unix_timestamp();
        let p = issue.principal;
        let client_id = issue.client.id().to_string();
        let keycloak = issue.client.config.claims_profile == ClaimsProfile::Keycloak;
        let refresh_token = if issue.client.allows_grant("refresh_token") {
            let token = if keycloak {
                keycloak_refresh_token(&self.issuer, &client_id, p, issue, iat, super::secs(self.cfg.refresh_token_ttl))
            } else {
                fedgate_types::random::token()
            };
            let record = RefreshGrant {
                family_id: issue.family_id.to_string(),
                client_id: client_id.clone(),
                scopes: issue.scopes.to_vec(),
                principal: p.clone(),
                expires_at: iat + super::secs(self.cfg.refresh_token_ttl),
                rotated: false,
                issued_at: iat,
            };
            let ttl = self.cfg.refresh_token_ttl + self.cfg.access_token_ttl;
            writes.push((super::store_key("rt", &token), Grant::Refresh(record), ttl));
            Some(token)
        } else {
            None
        };
        if !writes.is_empty() {
            self.store.put_many(writes).await?;
        }
        let at_claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: p.subject.clone(),
            aud: super::claims::Audience::with_extra(client_id.clone(), &issue.client.config.audiences),
            exp: iat + super::secs(self.cfg.access_token_ttl),
            iat,
            jti: fedgate_types::random::token(),
            client_id: client_id.clone(),
            scope: issue.scopes.join(" "),
            auth_time: Some(p.auth_time.unix_timestamp()),
            sid: Some(issue.family_id.to_string()),
            preferred_username: Some(p.username.clone()),
            groups: p.groups_as(issue.client.config.group_format),
            roles: p.roles.clone(),
            keycloak: None,
        };
        let acr = keycloak_acr(p, iat, super::secs(self.cfg.code_ttl) + 60);
        // `minimal`: RFC 9068's claims only, so the token stays small (mod_auth_openidc caches tokens under 512
        // bytes of key); the app reads the user's details from userinfo or introspection.
        let at_claims = match issue.client.config.access_token_claims {
            super::config::AccessTokenClaimsMode::Full => at_claims,
            super::config::AccessTokenClaimsMode::Minimal => {
                AccessTokenClaims { preferred_username: None, groups: Vec::new(), roles: Vec::new(), ..at_claims }
            }
        };
        // `keycloak`: Keycloak's default scopes in the places Keycloak puts them (roles only in the access token).
        let at_claims = if keycloak {
            let mut resource_access = BTreeMap::new();
            let mine = client_roles(p, &issue.client.config.client_roles);
            if !mine.is_empty() {
                resource_access.insert(client_id.clone(), RoleList { roles: mine });
            }
            let has = |s: &str| issue.scopes.iter().any(|x| x == s);
            AccessTokenClaims {
                groups: if has("groups") { p.groups_as(issue.client.config.group_format) } else { Vec::new() },
                roles: Vec::new(),
                keycloak: Some(KeycloakAccessClaims {
                    typ: "Bearer".into(),
                    azp: client_id.clone(),
                    acr: acr.clone(),
                    allowed_origins: origins(&issue.client.config.redirect_uris),
                    realm_access: RoleList { roles: p.roles.clone() },
                    resource_access,
                    email_verified: p.email.is_some(),
                    name: p.display_name.clone(),
                    given_name: p.given_name.clone(),
                    family_name: p.family_name.clone(),
                    email: p.email.clone(),
                    session_state: Some(issue.family_id.to_string()),
                }),
                ..at_claims
            }
        } else {
            at_claims
        };
        let access_token = self.sign_access_token(&at_claims)?;

        let id_token = if issue.scopes.iter().any(|s| s == "openid") {
            let (mut standard, mut extra) =
                user_claims(p, issue.scopes, &self.cfg.scope_claims, issue.client.config.group_format);
            extra.sid = Some(issue.family_id.to_string());
            if keycloak {
                extra.roles = None;
                extra.extra.insert("typ".into(), "ID".into());
                extra.extra.insert("jti".into(), fedgate_types::random::token().into());
                extra.extra.insert("acr".into(), acr.clone().into());
                // Keycloak up to 25 wrote the session id as `session_state` too (keycloak-js < 26 reads it).
                extra.extra.insert("session_state".into(), issue.family_id.to_string().into());
                standard = standard.set_email_verified(Some(p.email.is_some()));
            }
            let issuer = IssuerUrl::new(self.issuer.clone())
                .map_err(|_| TokenError::protocol(ErrorCode::ServerError, "issuer is not a URL"))?;
            let claims = IdTokenClaimSet::new(
                issuer,
                vec![Audience::new(client_id.clone())],
                chrono_at(iat + super::secs(self.cfg.id_token_ttl)),
                chrono_at(iat),
                standard,
                extra,
            )
            .set_auth_time(Some(chrono_at(p.auth_time.unix_timestamp())))
            .set_auth_method_refs(Some(
                p.authn.amr().into_iter().map(openidconnect::AuthenticationMethodReference::new).collect(),
            ))
            .set_auth_context_ref(p.authn.upstream_acr.clone().map(openidconnect::AuthenticationContextClass::new))
            .set_nonce(issue.nonce.map(|n| Nonce::new(n.to_string())))
            .set_authorized_party(Some(ClientId::new(client_id.clone())));
            let keys = self.keys();
            let key = keys.active();
            let token = OidcIdToken::new(
                claims,
                key,
                key.core_algorithm(),
                Some(&AccessToken::new(access_token.clone())),
                None,
            )
            .map_err(|source| TokenError::Keys(KeyError::IdToken { kid: key.kid().to_string(), source }))?;
            Some(token.to_string())
        } else {
            None
        };

        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: self.cfg.access_token_ttl.as_secs(),
            id_token,
            refresh_token,
            scope: at_claims.scope,
        })
    }

    /// How long family records (and redeemed-code markers) are kept.
    pub(crate) fn family_ttl(&self) -> Duration {
        self.cfg.refresh_token_ttl + self.cfg.access_token_ttl + self.cfg.code_ttl
    }

    /// A rotated refresh token was presented again (or twice at once): revokes its family and refuses.
    async fn refresh_reused(&self, client: &Client, family_id: &str, now: OffsetDateTime) -> Result<TokenResponse> {
        tracing::warn!(client_id = %client.id(), "refresh token reused; revoking its family");
        self.revoke_family(family_id, now).await?;
        Err(grant_err("the refresh token was already used"))
    }

    /// Stores `principal` in the family under `fam_key` unless it is revoked or gone; `false` then. A
    /// compare-and-set loop: a concurrent revocation or update is re-read, never overwritten.
    async fn update_family_principal(&self, fam_key: &str, principal: &Principal) -> Result<bool, TokenError> {
        for _ in 0..CAS_ATTEMPTS {
            let family = match self.store.get(fam_key).await? {
                Some(Grant::Family(f)) if f.revoked_at.is_none() => f,
                _ => return Ok(false),
            };
            if family.principal == *principal {
                return Ok(true);
            }
            let current = Grant::Family(family.clone());
            let updated = Grant::Family(Family { principal: principal.clone(), ..family });
            if self.store.compare_and_set(fam_key, Some(&current), updated, self.family_ttl()).await? {
                return Ok(true);
            }
        }
        Err(TokenError::Store(StoreError::unavailable(Contended)))
    }

    /// Marks a token family revoked: its refresh tokens and access tokens stop working. A compare-and-set loop, so
    /// a refresh updating the family at the same moment cannot write the unrevoked version back.
    pub(crate) async fn revoke_family(&self, family_id: &str, now: OffsetDateTime) -> Result<(), TokenError> {
        let key = super::plain_key("fam", family_id);
        for _ in 0..CAS_ATTEMPTS {
            let family = match self.store.get(&key).await? {
                Some(Grant::Family(f)) if f.revoked_at.is_none() => f,
                _ => return Ok(()),
            };
            let current = Grant::Family(family.clone());
            let revoked = Grant::Family(Family { revoked_at: Some(now.unix_timestamp()), ..family });
            if self.store.compare_and_set(&key, Some(&current), revoked, self.family_ttl()).await? {
                return Ok(());
            }
        }
        Err(TokenError::Store(StoreError::unavailable(Contended)))
    }
}

/// A refresh token shaped like Keycloak's (keycloak-js decodes every token it gets as a JWT): a JWT-looking
/// `header.payload.secret` whose payload says what Keycloak's does (`typ: Refresh`, `exp`, `sid`, …) and whose
/// last part is a fresh random secret. It is unsigned (`alg: none`), so nothing takes it as a JWT of ours; like
/// every refresh token it is only ever looked up in the grant store, by its hash.
fn keycloak_refresh_token(
    issuer: &str,
    client_id: &str,
    p: &Principal,
    issue: &Issue<'_>,
    iat: i64,
    ttl: i64,
) -> String {
    let header = serde_json::json!({ "alg": "none", "typ": "JWT" });
    let payload = serde_json::json!({
        "exp": iat + ttl,
        "iat": iat,
        "jti": fedgate_types::random::token(),
        "iss": issuer,
        "aud": issuer,
        "sub": p.subject,
        "typ": "Refresh",
        "azp": client_id,
        "sid": issue.family_id,
        "scope": issue.scopes.join(" "),
    });
    format!(
        "{}.{}.{}",
        super::b64(header.to_string().as_bytes()),
        super::b64(payload.to_string().as_bytes()),
        fedgate_types::random::token()
    )
}

/// Attempts of a compare-and-set loop on one family before giving up (only under heavy contention).
const CAS_ATTEMPTS: usize = 16;

/// A family record kept changing under concurrent updates.
#[derive(Debug, thiserror::Error)]
#[error("the token family kept changing under concurrent updates; gave up after {CAS_ATTEMPTS} attempts")]
struct Contended;
