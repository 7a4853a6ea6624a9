//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–3): checking `id_token_hint` and
//! `post_logout_redirect_uri`. Ending the gateway session is the gateway's job.

use serde::Deserialize;
use url::Url;

use super::Provider;
use super::error::{ErrorCode, ProtocolError};
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
                self.decode_our_jwt::<HintClaims>(t, false)
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
                if !client.config.post_logout_redirect_uris.iter().any(|r| r == uri) {
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
