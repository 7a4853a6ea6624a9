//! The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2): validating the request, deciding whether the
//! user must log in, and issuing the authorization code once they have.
//!
//! Two failure classes: an unknown client or a `redirect_uri` that is not registered is shown on the gateway and
//! never redirected ([`AuthorizeError::Display`]); every other problem goes back to the client's redirect URI with
//! `error`, `error_description` and `state` ([`AuthorizeError::Redirect`], RFC 6749 §4.1.2.1).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use super::Provider;
use super::error::{ErrorCode, ProtocolError, StoreError};
use super::params::Params;
use super::store::{CodeGrant, Grant};
use crate::Principal;

/// Longest accepted value of each authorization request parameter, in bytes. Anyone can send an authorization
/// request, and the validated request is kept while the user logs in, so every value that can reach it is bounded;
/// a longer one is refused with an error naming it. `client_id` and `redirect_uri` are checked before the client is
/// known (shown on the gateway); the others go back to the client as `invalid_request`.
const MAX_LEN: &[(&str, usize)] = &[
    ("client_id", 256),
    ("redirect_uri", 2048),
    ("state", 1024),
    ("nonce", 1024),
    ("login_hint", 1024),
    ("scope", 2048),
    ("code_challenge", 128),
    ("code_challenge_method", 16),
    ("response_type", 64),
    ("response_mode", 32),
    ("prompt", 64),
    ("max_age", 20),
];

/// Longest `kc_idp_hint` kept (provider names are short; a longer hint names none).
const MAX_IDP_HINT_BYTES: usize = 128;

/// The limit [`MAX_LEN`] sets for `name`.
fn max_len(name: &str) -> usize {
    MAX_LEN.iter().find(|(n, _)| *n == name).map_or(usize::MAX, |(_, max)| *max)
}

/// The first of `names` whose value is longer than its limit, as an `invalid_request` naming it.
fn too_long<'a>(params: &Params, names: impl IntoIterator<Item = &'a str>) -> Option<ProtocolError> {
    names.into_iter().find_map(|name| {
        let len = params.get(name).ok().flatten()?.len();
        let max = max_len(name);
        (len > max).then(|| {
            ProtocolError::new(
                ErrorCode::InvalidRequest,
                format!("{name} is too long ({len} bytes; the limit is {max})"),
            )
        })
    })
}

/// The OIDC `prompt` values we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// No UI: fail with `login_required` if there is no session.
    None,
    /// Force a fresh login.
    Login,
}

/// A validated authorization request, kept by the gateway while the user logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// The registered redirect URI the request named (exact string).
    pub redirect_uri: String,
    /// Requested scopes (deduplicated, validated).
    pub scopes: Vec<String>,
    /// Opaque client state, echoed back.
    pub state: Option<String>,
    /// Nonce for the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `prompt`.
    pub prompt: Option<Prompt>,
    /// `max_age` in seconds.
    pub max_age: Option<u64>,
    /// `login_hint` to prefill the username.
    pub login_hint: Option<String>,
    /// Every `prompt` value as requested (`login`, `consent`, `select_account`; `none` is [`Prompt::None`]),
    /// passed on when the login goes through an upstream provider, as Keycloak's broker does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_values: Vec<String>,
    /// Keycloak's `kc_idp_hint` (or `idp`): the name of the identity provider the login should go straight to,
    /// as sent (the gateway checks it names one of its upstream providers). Kept with the request, so a login
    /// that resumes without a session still goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_hint: Option<String>,
    /// When the request arrived (unix seconds); `prompt=login` needs a login after this.
    pub received_at: i64,
    /// How the response goes back to the client (`response_mode`).
    #[serde(default)]
    pub response_mode: ResponseMode,
}

/// How the authorization response reaches the client (OAuth 2.0 Multiple Response Type Encoding Practices §2.1,
/// Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ResponseMode {
    /// In the redirect URI's query (the default for `code`).
    #[default]
    Query,
    /// In the redirect URI's fragment (keycloak-js's default).
    Fragment,
    /// Posted by an auto-submitting form. The URL fedgate returns carries the fields in its fragment; the gateway
    /// turns it into the form ([`ResponseMode::form_fields`]).
    FormPost,
}

impl ResponseMode {
    /// `redirect_uri` with `pairs` added as this mode wants them (query, or fragment for `fragment` and
    /// `form_post`).
    pub fn apply(self, mut url: Url, pairs: &[(&str, &str)]) -> Url {
        match self {
            Self::Query => {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            Self::Fragment | Self::FormPost => {
                let mut f = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    f.append_pair(k, v);
                }
                url.set_fragment(Some(&f.finish()));
            }
        }
        url
    }

    /// For `form_post`: the URL to post to (without the fragment) and the fields carried in its fragment.
    pub fn form_fields(url: &Url) -> (Url, Vec<(String, String)>) {
        let fields = url::form_urlencoded::parse(url.fragment().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut action = url.clone();
        action.set_fragment(None);
        (action, fields)
    }
}

/// What the gateway should do with a validated request given its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    /// The session is good enough: call [`Provider::issue_code`].
    Proceed,
    /// Show the login page, then come back.
    Login,
    /// Redirect the browser to this URL (e.g. `login_required` for `prompt=none`).
    Fail(Url),
}

/// Why an authorization request failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// Show this on the gateway; never redirect (unknown client, unregistered `redirect_uri`).
    #[error("{0}")]
    Display(ProtocolError),
    /// Redirect the browser to `redirect_url()`.
    #[error("{error}")]
    Redirect {
        /// The client's registered redirect URI.
        redirect_uri: String,
        /// The error.
        error: ProtocolError,
        /// The request's `state`.
        state: Option<String>,
    },
    /// The grant store failed: show an error page.
    #[error("grant store failed")]
    Store(#[from] StoreError),
}

impl AuthorizeError {
    /// Where to send the browser, for [`AuthorizeError::Redirect`].
    pub fn redirect_url(&self) -> Option<Url> {
        match self {
            Self::Redirect { redirect_uri, error, state } => error_url(redirect_uri, error, state.as_deref()),
            _ => None,
        }
    }
}

fn error_url(redirect_uri: &str, error: &ProtocolError, state: Option<&str>) -> Option<Url> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", error.code.as_str());
        q.append_pair("error_description", &error.description);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    Some(url)
}

impl AuthorizationRequest {
    /// The URL that sends `code` (with its description) back to the client.
    pub fn error_redirect(&self, code: ErrorCode, description: &str) -> Option<Url> {
        let url = Url::parse(&self.redirect_uri).ok()?;
        let mut pairs = vec![("error", code.as_str()), ("error_description", description)];
        if let Some(s) = &self.state {
            pairs.push(("state", s));
        }
        Some(self.response_mode.apply(url, &pairs))
    }

    /// Decides between issuing a code, asking for a login, or failing, given when the current session's user
    /// authenticated (`None` without a session).
    pub fn login_decision(&self, session_auth_time: Option<OffsetDateTime>, now: OffsetDateTime) -> LoginDecision {
        let fresh_enough = match session_auth_time {
            None => false,
            Some(t) => {
                let age = (now - t).whole_seconds();
                let max_age_ok = self.max_age.is_none_or(|m| age <= i64::try_from(m).unwrap_or(i64::MAX));
                let forced_ok = self.prompt != Some(Prompt::Login) || t.unix_timestamp() >= self.received_at;
                max_age_ok && forced_ok
            }
        };
        match (fresh_enough, self.prompt) {
            (true, _) => LoginDecision::Proceed,
            (false, Some(Prompt::None)) => {
                match self.error_redirect(ErrorCode::LoginRequired, "the user is not logged in") {
                    Some(u) => LoginDecision::Fail(u),
                    None => LoginDecision::Login,
                }
            }
            (false, _) => LoginDecision::Login,
        }
    }
}

fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl Provider {
    /// Validates an authorization request (the query or form parameters) received at `now`.
    pub fn authorize(&self, params: &Params, now: OffsetDateTime) -> Result<AuthorizationRequest, AuthorizeError> {
        let display = |code, d: &str| AuthorizeError::Display(ProtocolError::new(code, d));
        if let Some(e) = too_long(params, ["client_id", "redirect_uri"]) {
            return Err(AuthorizeError::Display(e));
        }
        let client_id = params
            .get("client_id")
            .map_err(AuthorizeError::Display)?
            .ok_or_else(|| display(ErrorCode::InvalidRequest, "client_id is missing"))?;
        let client =
            self.clients.get(client_id).ok_or_else(|| display(ErrorCode::InvalidRequest, "unknown client_id"))?;
        let redirect_uri = params
            .get("redirect_uri")
            .map_err(AuthorizeError::Display)?
            .ok_or_else(|| display(ErrorCode::InvalidRequest, "redirect_uri is missing"))?;
        if !client.config.allows_redirect_uri(redirect_uri) {
            return Err(display(ErrorCode::InvalidRequest, "redirect_uri is not registered for this client"));
        }
        // From here on, errors go back to the client.
        // A `state` too long to keep is not echoed either.
        let state = params.get("state").ok().flatten().filter(|s| s.len() <= max_len("state")).map(str::to_string);
        let redirect = |error: ProtocolError| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.to_string(),
            error,
            state: state.clone(),
        };
        let fail = |code, d: &str| redirect(ProtocolError::new(code, d));
        let get = |name: &str| params.get(name).map_err(redirect);

        if let Some(e) = too_long(params, MAX_LEN.iter().map(|(name, _)| *name)) {
            return Err(redirect(e));
        }
        get("state")?;
        match get("response_type")? {
            None => return Err(fail(ErrorCode::InvalidRequest, "response_type is missing")),
            Some("code") => {}
            Some(_) => return Err(fail(ErrorCode::UnsupportedResponseType, "only response_type=code is supported")),
        }
        if !client.allows_grant("authorization_code") {
            return Err(fail(ErrorCode::UnauthorizedClient, "the client may not use the authorization code flow"));
        }
        let response_mode = match get("response_mode")? {
            None | Some("query") => ResponseMode::Query,
            Some("fragment") => ResponseMode::Fragment,
            Some("form_post") => ResponseMode::FormPost,
            Some(_) => {
                return Err(fail(ErrorCode::InvalidRequest, "response_mode must be query, fragment or form_post"));
            }
        };
        if get("request")?.is_some() || get("request_uri")?.is_some() {
            return Err(fail(ErrorCode::InvalidRequest, "request objects are not supported"));
        }

        let mut scopes: Vec<String> = Vec::new();
        for s in get("scope")?.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            if !self.known_scopes.iter().any(|k| k == s) {
                return Err(fail(ErrorCode::InvalidScope, &format!("unknown scope {s}")));
            }
            if !client.config.scopes.iter().any(|k| k == s) {
                return Err(fail(ErrorCode::InvalidScope, &format!("scope {s} is not allowed for this client")));
            }
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_string());
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(fail(ErrorCode::InvalidScope, "the openid scope is required"));
        }
        // Keycloak's default client scopes apply whether requested or not.
        if client.config.claims_profile == super::config::ClaimsProfile::Keycloak {
            for s in super::claims::KEYCLOAK_DEFAULT_SCOPES {
                if !scopes.iter().any(|x| x == s) {
                    scopes.push((*s).to_string());
                }
            }
        }

        let challenge = get("code_challenge")?;
        let method = get("code_challenge_method")?;
        let code_challenge = match (challenge, method) {
            (None, None) => {
                if client.is_public() || client.config.require_pkce {
                    return Err(fail(ErrorCode::InvalidRequest, "PKCE (code_challenge with S256) is required"));
                }
                None
            }
            (Some(c), Some("S256")) if c.len() == 43 && is_pkce_value(c) => Some(c.to_string()),
            (Some(_), Some("S256")) => return Err(fail(ErrorCode::InvalidRequest, "malformed code_challenge")),
            (Some(_), None) | (_, Some("plain")) => {
                return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method plain is not allowed; use S256"));
            }
            (_, Some(_)) => return Err(fail(ErrorCode::InvalidRequest, "unsupported code_challenge_method")),
        };

        let mut prompt_values = Vec::new();
        let prompt = match get("prompt")? {
            None => None,
            Some(p) => {
                let values: Vec<&str> = p.split(' ').filter(|s| !s.is_empty()).collect();
                if values.contains(&"none") && values.len() > 1 {
                    return Err(fail(ErrorCode::InvalidRequest, "prompt=none cannot be combined"));
                }
                if let Some(bad) = values.iter().find(|v| !["none", "login", "consent", "select_account"].contains(v)) {
                    return Err(fail(ErrorCode::InvalidRequest, &format!("unsupported prompt value {bad}")));
                }
                prompt_values = values.iter().filter(|v| **v != "none").map(|v| (*v).to_string()).collect();
                prompt_values.dedup();
                if values.contains(&"none") {
                    Some(Prompt::None)
                } else if values.contains(&"login") {
                    Some(Prompt::Login)
                } else {
                    None
                }
            }
        };
        let max_age = match get("max_age")? {
            None => None,
            Some(m) => Some(m.parse::<u64>().map_err(|_| fail(ErrorCode::InvalidRequest, "max_age is not a number"))?),
        };
        let nonce = get("nonce")?.map(str::to_string);
        let login_hint = get("login_hint")?.map(str::to_string);
        // A hint is advice, not part of the request's validity: a repeated or oversized one is no hint.
        let idp_hint = ["kc_idp_hint", "idp"]
            .into_iter()
            .find_map(|k| params.get(k).ok().flatten())
            .filter(|h| !h.is_empty() && h.len() <= MAX_IDP_HINT_BYTES)
            .map(str::to_string);
        Ok(AuthorizationRequest {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            scopes,
            state,
            nonce,
            code_challenge,
            prompt,
            max_age,
            login_hint,
            prompt_values,
            idp_hint,
            received_at: now.unix_timestamp(),
            response_mode,
        })
    }

    /// Issues an authorization code for `principal` and returns the client redirect carrying it (with `state`).
    /// A user outside the client's `allowed_groups` gets an `access_denied` redirect instead.
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        principal: &Principal,
        now: OffsetDateTime,
    ) -> Result<Url, AuthorizeError> {
        self.issue_code_with_sid(request, principal, now).await.map(|(url, _)| url)
    }

    /// Like [`Provider::issue_code`], also returning the `sid` the ID token of this code will carry (its token
    /// family), which the gateway keeps with the session for back- and front-channel logout.
    pub async fn issue_code_with_sid(
        &self,
        request: &AuthorizationRequest,
        principal: &Principal,
        now: OffsetDateTime,
    ) -> Result<(Url, String), AuthorizeError> {
        let code = self.prepare_code(request, principal, now)?;
        let sid = code.sid.clone();
        Ok((self.store_code(code).await?, sid))
    }

    /// The first half of [`Provider::issue_code_with_sid`]: checks the user against the client and makes the code
    /// and its redirect, storing nothing, so the caller can record the `sid` ([`PreparedCode::sid`]) at the same
    /// time as [`Provider::store_code`] stores the code (two writes in flight at once, not one after the other).
    pub fn prepare_code(
        &self,
        request: &AuthorizationRequest,
        principal: &Principal,
        now: OffsetDateTime,
    ) -> Result<PreparedCode, AuthorizeError> {
        let redirect = |code, d: &str| AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            error: ProtocolError::new(code, d),
            state: request.state.clone(),
        };
        let client = self.clients.get(&request.client_id).ok_or_else(|| {
            AuthorizeError::Display(ProtocolError::new(ErrorCode::InvalidRequest, "unknown client_id"))
        })?;
        if let Some(allowed) = &client.config.allowed_groups
            && !principal.groups.iter().any(|g| allowed.contains(g))
        {
            return Err(redirect(ErrorCode::AccessDenied, "the user may not sign in to this application"));
        }
        let code = fedgate_types::random::token();
        let grant = CodeGrant {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scopes: request.scopes.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            principal: principal.clone(),
            expires_at: now.unix_timestamp() + super::secs(self.cfg.code_ttl),
            family_id: fedgate_types::random::token(),
        };
        let sid = grant.family_id.clone();
        let ttl = self.cfg.code_ttl + std::time::Duration::from_secs(60);
        let url = Url::parse(&request.redirect_uri)
            .map_err(|_| AuthorizeError::Display(ProtocolError::new(ErrorCode::InvalidRequest, "bad redirect_uri")))?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = &request.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &self.issuer));
        let url = request.response_mode.apply(url, &pairs);
        Ok(PreparedCode { url, sid, key: super::store_key("code", &code), grant: Grant::Code(grant), ttl })
    }

    /// Stores a code made by [`Provider::prepare_code`]; the client redirect carrying it.
    pub async fn store_code(&self, code: PreparedCode) -> Result<Url, AuthorizeError> {
        self.store.put(&code.key, code.grant, code.ttl).await?;
        Ok(code.url)
    }
}

/// An authorization code made by [`Provider::prepare_code`], not yet stored (its `Debug` shows no code).
pub struct PreparedCode {
    url: Url,
    sid: String,
    key: String,
    grant: Grant,
    ttl: std::time::Duration,
}

impl std::fmt::Debug for PreparedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCode").field("sid", &self.sid).finish_non_exhaustive()
    }
}

impl PreparedCode {
    /// The `sid` the ID token of this code will carry (its token family).
    pub fn sid(&self) -> &str {
        &self.sid
    }
}
