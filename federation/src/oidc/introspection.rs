//! Using tokens after they are issued: access token verification (for the proxy), the userinfo endpoint
//! (OIDC Core §5.3), token introspection (RFC 7662) and revocation (RFC 7009).

use time::OffsetDateTime;

use super::Provider;
use super::claims::{AccessTokenClaims, user_claims};
use super::client;
use super::error::{ErrorCode, Result, TokenError};
use super::params::Params;
use super::store::{Family, Grant};

fn invalid_token(description: &str) -> TokenError {
    TokenError::protocol(ErrorCode::InvalidToken, description)
}

impl Provider {
    /// Verifies a signature made by one of our keys and decodes the claims, without checking expiry (the caller
    /// does, with its `now`). `want_at_jwt` selects access tokens (`typ: at+jwt`) or anything else (ID tokens).
    pub(crate) fn decode_our_jwt<T: serde::de::DeserializeOwned>(&self, token: &str, want_at_jwt: bool) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        // RFC 9068's header `typ`, or (Keycloak profile) header `typ: JWT` with the payload's `typ: Bearer`.
        let is_at = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt")
                || t.eq_ignore_ascii_case("application/at+jwt")
                || (t.eq_ignore_ascii_case("JWT") && payload_typ(token).as_deref() == Some("Bearer"))
        });
        if is_at != want_at_jwt {
            return None;
        }
        let keys = self.keys();
        let key = keys.find(header.kid.as_deref()?)?;
        let mut validation = jsonwebtoken::Validation::new(key.jwt_algorithm());
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.issuer.as_str()]);
        jsonwebtoken::decode::<T>(token, key.decoding_key(), &validation).ok().map(|d| d.claims)
    }

    /// Verifies an access token we issued (signature, `typ`, issuer, expiry at `now`, family not revoked) and
    /// returns its claims. For the proxy and the userinfo endpoint. Errors are `invalid_token`.
    pub async fn verify_access_token(&self, token: &str, now: OffsetDateTime) -> Result<AccessTokenClaims> {
        let claims: AccessTokenClaims =
            self.decode_our_jwt(token, true).ok_or_else(|| invalid_token("the access token is not valid"))?;
        if claims.aud.contains(super::UPSTREAM_AUDIENCE) {
            return Err(invalid_token("a token the proxy handed an upstream is not a credential here"));
        }
        if now.unix_timestamp() >= claims.exp {
            return Err(invalid_token("the access token has expired"));
        }
        if let Some(sid) = &claims.sid
            && self.live_family(sid).await?.is_none()
        {
            return Err(invalid_token("the access token was revoked"));
        }
        Ok(claims)
    }

    async fn live_family(&self, family_id: &str) -> Result<Option<Family>> {
        match self.store.get(&super::plain_key("fam", family_id)).await? {
            Some(Grant::Family(f)) if f.revoked_at.is_none() => Ok(Some(f)),
            _ => Ok(None),
        }
    }

    /// The userinfo response (OIDC Core §5.3.2) for a bearer access token: `sub` plus the claims its scopes
    /// release, from the latest principal of its token family. Errors are `invalid_token` (401) or
    /// `insufficient_scope` (403) for tokens without `openid`.
    pub async fn userinfo(&self, access_token: &str, now: OffsetDateTime) -> Result<serde_json::Value> {
        let claims = self.verify_access_token(access_token, now).await?;
        if !claims.has_scope("openid") {
            return Err(TokenError::protocol(ErrorCode::InsufficientScope, "the token lacks the openid scope"));
        }
        let Some(sid) = &claims.sid else {
            return Err(invalid_token("the access token has no user"));
        };
        let family = self.live_family(sid).await?.ok_or_else(|| invalid_token("the access token was revoked"))?;
        let scopes: Vec<String> = claims.scopes().map(str::to_string).collect();
        let format = self.clients.get(&claims.client_id).map(|c| c.config.group_format).unwrap_or_default();
        let (standard, extra) = user_claims(&family.principal, &scopes, &self.cfg.scope_claims, format);
        let mut out = serde_json::to_value(&standard).map_err(|e| TokenError::Keys(super::KeyError::Serialize(e)))?;
        let extra = serde_json::to_value(&extra).map_err(|e| TokenError::Keys(super::KeyError::Serialize(e)))?;
        if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e.into_iter().filter(|(k, _)| k != "sid"));
        }
        Ok(out)
    }

    /// Token introspection (RFC 7662) for an authenticated confidential client: `{"active": true, …}` for a live
    /// access token or a live refresh token of the calling client, otherwise `{"active": false}`. A public client
    /// is refused (`unauthorized_client`), as Keycloak refuses it: it proves nothing but a client id anyone can
    /// read from a web page, and RFC 7662 §2.1 requires the caller to be authorized.
    pub async fn introspect(
        &self,
        params: &Params,
        authorization: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<serde_json::Value> {
        let caller = client::authenticate(&self.clients, params, authorization)?;
        if caller.is_public() {
            return Err(TokenError::protocol(
                ErrorCode::UnauthorizedClient,
                "a public client may not introspect tokens: call the introspection endpoint from a confidential client \
                 (one with a client_secret), such as the API that receives the token",
            ));
        }
        let token = params.require("token")?;
        let inactive = serde_json::json!({ "active": false });
        if let Ok(c) = self.verify_access_token(token, now).await {
            let mut v = serde_json::to_value(&c).map_err(|e| TokenError::Keys(super::KeyError::Serialize(e)))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("active".into(), true.into());
                o.insert("token_type".into(), "Bearer".into());
                if let Some(u) = &c.preferred_username {
                    o.insert("username".into(), u.clone().into());
                }
            }
            return Ok(v);
        }
        let Some(Grant::Refresh(r)) = self.store.get(&super::store_key("rt", token)).await? else {
            return Ok(inactive);
        };
        if r.rotated || r.client_id != caller.id() || now.unix_timestamp() > r.expires_at {
            return Ok(inactive);
        }
        if self.live_family(&r.family_id).await?.is_none() {
            return Ok(inactive);
        }
        Ok(serde_json::json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": r.client_id,
            "scope": r.scopes.join(" "),
            "sub": r.principal.subject,
            "username": r.principal.username,
            "iss": self.issuer,
            "iat": r.issued_at,
            "exp": r.expires_at,
        }))
    }

    /// Token revocation (RFC 7009) for an authenticated client: a refresh token or access token of that client
    /// revokes its whole token family. Unknown or foreign tokens succeed silently (§2.2).
    pub async fn revoke(&self, params: &Params, authorization: Option<&str>, now: OffsetDateTime) -> Result<()> {
        let caller = client::authenticate(&self.clients, params, authorization)?;
        let token = params.require("token")?;
        let rt_key = super::store_key("rt", token);
        if let Some(Grant::Refresh(r)) = self.store.get(&rt_key).await? {
            if r.client_id == caller.id() {
                self.revoke_family(&r.family_id, now).await?;
                self.store.remove(&rt_key).await?;
            }
            return Ok(());
        }
        if let Some(c) = self.decode_our_jwt::<AccessTokenClaims>(token, true)
            && c.client_id == caller.id()
            && let Some(sid) = &c.sid
        {
            self.revoke_family(sid, now).await?;
        }
        Ok(())
    }
}

/// The payload's `typ` claim, read before the signature is checked (only to tell token kinds apart).
fn payload_typ(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(serde::Deserialize)]
    struct Typ {
        typ: Option<String>,
    }
    serde_json::from_slice::<Typ>(&bytes).ok()?.typ
}
