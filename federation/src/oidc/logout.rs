//! Logout: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–3: checking `id_token_hint` and
//! `post_logout_redirect_uri`), the signed `logout_token` of Back-Channel Logout 1.0 §2.4 and the iframe URL of
//! Front-Channel Logout 1.0 §3. Ending the gateway session, and delivering these, is the gateway's job.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use super::Provider;
use super::error::{ErrorCode, KeyError, ProtocolError};
use super::params::Params;

/// A validated logout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    /// The client the user is logging out from, if known.
    pub client_id: Option<String>,
    /// The subject of the `id_token_hint`, if one was given (the gateway may check it against the session).
    pub subject: Option<String>,
    /// The token family (`sid`) of the hint, if any.
    pub sid: Option<String>,
    /// Where to send the browser after the session ended (with `state`), if requested and registered.
    pub redirect: Option<Url>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct HintClaims {
    sub: String,
    aud: Aud,
    #[serde(default)]
    sid: Option<String>,
    /// Present in a back-channel logout token, never in an ID token.
    #[serde(default)]
    events: Option<serde_json::Value>,
}

impl Provider {
    /// Validates a logout request. `id_token_hint` must carry our signature (expiry is ignored, §2); a
    /// `post_logout_redirect_uri` must exactly match one registered for the client named by the hint or by
    /// `client_id`. Errors are meant to be shown on the gateway, never redirected.
    pub fn logout(&self, params: &Params) -> Result<LogoutRequest, ProtocolError> {
        let bad = |d: &str| ProtocolError::new(ErrorCode::InvalidRequest, d);
        let hint = match params.get("id_token_hint")? {
            None => None,
            Some(t) => Some(
                // Our ID tokens only: signed by us, header `typ` JWT (or none), no `events` claim. Every other JWT
                // we sign (access tokens, back-channel logout tokens: `typ: logout+jwt`) is no hint.
                jsonwebtoken::decode_header(t)
                    .ok()
                    .filter(|h| h.typ.as_deref().is_none_or(|typ| typ.eq_ignore_ascii_case("JWT")))
                    .and_then(|_| self.decode_our_jwt::<HintClaims>(t, false))
                    .filter(|claims| claims.events.is_none())
                    .ok_or_else(|| bad("id_token_hint is not an ID token issued here"))?,
            ),
        };
        let hint_client = hint.as_ref().and_then(|h| match &h.aud {
            Aud::One(a) => Some(a.clone()),
            Aud::Many(v) => v.first().cloned(),
        });
        let client_id = match (params.get("client_id")?, hint_client) {
            (Some(c), Some(h)) if c != h => return Err(bad("client_id does not match the id_token_hint")),
            (Some(c), _) => Some(c.to_string()),
            (None, h) => h,
        };
        let redirect = match params.get("post_logout_redirect_uri")? {
            None => None,
            Some(uri) => {
                let client = client_id
                    .as_deref()
                    .and_then(|c| self.clients.get(c))
                    .ok_or_else(|| bad("post_logout_redirect_uri needs id_token_hint or client_id"))?;
                if !client.config.allows_post_logout_uri(uri) {
                    return Err(bad("post_logout_redirect_uri is not registered for this client"));
                }
                let mut url = Url::parse(uri).map_err(|_| bad("post_logout_redirect_uri is not a URL"))?;
                if let Some(state) = params.get("state")? {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(url)
            }
        };
        if client_id.as_deref().is_some_and(|c| !self.clients.contains_key(c)) {
            return Err(bad("unknown client_id"));
        }
        Ok(LogoutRequest {
            client_id,
            subject: hint.as_ref().map(|h| h.sub.clone()),
            sid: hint.and_then(|h| h.sid),
            redirect,
        })
    }
}

/// The `events` member of a logout token (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is valid (its `exp`; the RP should refuse it later).
const LOGOUT_TOKEN_TTL: i64 = 120;

/// The claims of a logout token (Back-Channel Logout 1.0 §2.4): never a `nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The user (the `sub` of the ID tokens).
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Unique id (RPs may refuse a replay).
    pub jti: String,
    /// `{"http://schemas.openid.net/event/backchannel-logout": {}}`.
    pub events: serde_json::Value,
    /// The session (the `sid` of the ID token the client was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// A logout token and where to POST it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotice {
    /// The client.
    pub client_id: String,
    /// Its `backchannel_logout_uri`.
    pub uri: String,
    /// The signed `logout_token` (typ `logout+jwt`).
    pub token: String,
}

impl Provider {
    /// The back-channel logout token for `client_id` about user `sub` and session `sid`, signed with the active
    /// key (header `typ: logout+jwt`); `None` when the client has no `backchannel_logout_uri`.
    pub fn logout_token(
        &self,
        client_id: &str,
        sub: &str,
        sid: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<LogoutNotice>, KeyError> {
        let Some(uri) = self.clients.get(client_id).and_then(|c| c.config.backchannel_logout_uri.clone()) else {
            return Ok(None);
        };
        let iat = now.unix_timestamp();
        let claims = LogoutTokenClaims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            aud: client_id.to_string(),
            iat,
            exp: iat + LOGOUT_TOKEN_TTL,
            jti: fedgate_types::random::token(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
            sid: sid.map(str::to_string),
        };
        let keys = self.keys();
        let mut header = jsonwebtoken::Header::new(keys.active().jwt_algorithm());
        header.typ = Some("logout+jwt".into());
        let token = keys.active().sign_jwt(&header, &claims)?;
        Ok(Some(LogoutNotice { client_id: client_id.to_string(), uri, token }))
    }

    /// The front-channel logout URL of `client_id` for session `sid` (with `iss` and `sid`, Front-Channel Logout
    /// 1.0 §2), or `None` when the client has no `frontchannel_logout_uri`.
    pub fn frontchannel_logout_url(&self, client_id: &str, sid: Option<&str>) -> Option<Url> {
        let uri = self.clients.get(client_id)?.config.frontchannel_logout_uri.as_deref()?;
        let mut url = Url::parse(uri).ok()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("iss", &self.issuer);
            if let Some(sid) = sid {
                q.append_pair("sid", sid);
            }
        }
        Some(url)
    }

    /// Ends the token family `sid` (the `sid` of an ID token): its refresh and access tokens stop working.
    pub async fn end_sid(&self, sid: &str, now: OffsetDateTime) -> Result<(), super::TokenError> {
        self.revoke_family(sid, now).await
    }
}
