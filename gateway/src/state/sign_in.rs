//! The browser's sign-in session as the features see it: the session a request's cookie points at, the way to
//! the login page, and the end of a session. Shared by login, account, OIDC, SAML and the proxy.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use crate::domain::logout_outbox::PendingLogout;
use crate::domain::session::Session;
use crate::http::cookies::{self, CookieAttrs, SameSite};
use crate::http::error::AppError;
use crate::http::pages;

/// The session id this request's cookie carries, when it has the shape of one (43 characters).
/// The session cookie's value, and whether it came under the plain name of a `__Host-` session cookie (see
/// [`legacy_session_cookie_name`]).
pub(crate) fn session_id<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<(&'h str, bool)> {
    let valid = |id: &&str| id.len() == 43;
    if let Some(id) = cookies::get(headers, &state.config.session.cookie_name).filter(valid) {
        return Some((id, false));
    }
    let legacy = legacy_session_cookie_name(state)?;
    cookies::get(headers, legacy).filter(valid).map(|id| (id, true))
}

/// The plain name (`fedgate_session`) of a session cookie that is `__Host-` prefixed over https. Versions before
/// the prefix set that name; a session they created is still read from it, so an upgrade signs nobody out.
pub(crate) fn legacy_session_cookie_name(state: &AppState) -> Option<&str> {
    state.config.session.cookie_name.strip_prefix(cookies::HOST_PREFIX)
}

/// `session`, unless it came under the legacy plain cookie name and was created with the `__Host-` name: such a
/// cookie was planted (cookie tossing), never set by fedgate.
fn unless_tossed(session: Option<Arc<Session>>, legacy: bool) -> Option<Arc<Session>> {
    session.filter(|s| !(legacy && s.host_cookie))
}

/// The live session of this request, with its id.
pub async fn current_session<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
) -> Result<Option<(&'h str, std::sync::Arc<Session>)>, AppError> {
    let Some((id, legacy)) = session_id(state, headers) else { return Ok(None) };
    Ok(unless_tossed(state.sessions.get(id, state.clock.now()).await?, legacy).map(|s| (id, s)))
}

/// The live session of this request as the store holds it now ([`SessionStore::latest`]), for decisions that must
/// see what another replica recorded in the last `cache_ttl`.
///
/// [`SessionStore::latest`]: crate::domain::session::SessionStore::latest
pub async fn latest_session<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
) -> Result<Option<(&'h str, std::sync::Arc<Session>)>, AppError> {
    let Some((id, legacy)) = session_id(state, headers) else { return Ok(None) };
    Ok(unless_tossed(state.sessions.latest(id, state.clock.now()).await?, legacy).map(|s| (id, s)))
}

/// Sends the browser to the login page, coming back to `target` afterwards.
pub fn to_login(target: &str) -> Response {
    let q = serde_urlencoded::to_string([("rd", target)]).unwrap_or_default();
    Redirect::to(&format!("/login?{q}")).into_response()
}

/// Where an OIDC authorization request resumes after the login.
pub const OIDC_RESUME: &str = "/oauth2/authorize/resume";
/// Where a SAML sign-in resumes after the login.
pub const SAML_RESUME: &str = "/saml/resume";

/// The resume URL of the pending request `id` at `path` ([`OIDC_RESUME`] with `("client", client_id)`,
/// [`SAML_RESUME`] with `("sp", name)`): the app is named in the URL for the login page's title.
pub fn resume_target(path: &str, id: &str, app: (&str, &str)) -> String {
    format!("{path}?{}", serde_urlencoded::to_string([("id", id), app]).unwrap_or_default())
}

/// The attributes of the session cookie.
pub fn session_cookie_attrs(state: &AppState) -> CookieAttrs<'_> {
    CookieAttrs {
        secure: state.secure_cookies(),
        same_site: SameSite::Lax,
        domain: state.config.session.cookie_domain.as_deref(),
        max_age: None,
    }
}

/// Keycloak's `KEYCLOAK_SESSION` cookie (realm mode): what the realm's session-status iframe reads to tell
/// keycloak-js whether the session it holds tokens of still exists.
pub const KEYCLOAK_SESSION_COOKIE: &str = "KEYCLOAK_SESSION";

/// The attributes and path of `KEYCLOAK_SESSION`: under the realm's URLs, and `SameSite=None` over https so the
/// iframe reads it inside another site's page (over plain http browsers refuse `None`: `Lax`, same site only).
pub fn keycloak_session_cookie(state: &AppState) -> Option<(String, CookieAttrs<'_>)> {
    let kc = state.config.keycloak.as_ref()?;
    let secure = state.secure_cookies();
    let same_site = if secure { SameSite::None } else { SameSite::Lax };
    Some((format!("{}/", kc.realm_path()), CookieAttrs { secure, same_site, domain: None, max_age: None }))
}

/// Appends the `Set-Cookie`s that end the browser's session here: the session cookie and, in realm mode,
/// `KEYCLOAK_SESSION` (so keycloak-js apps in other tabs see the logout).
pub fn clear_session_cookies(state: &AppState, resp: &mut Response) {
    if let Some(c) = cookies::clear(&state.config.session.cookie_name, session_cookie_attrs(state)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    if let Some(c) = legacy_session_cookie_name(state).and_then(|n| cookies::clear(n, session_cookie_attrs(state))) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    clear_keycloak_session_cookie(state, resp);
}

/// Appends the `Set-Cookie` that clears `KEYCLOAK_SESSION` (realm mode): at a logout, and at a sign-in, whose new
/// session issued none of the `sid`s the old cookie names.
pub fn clear_keycloak_session_cookie(state: &AppState, resp: &mut Response) {
    if let Some((path, attrs)) = keycloak_session_cookie(state)
        && let Some(c) =
            cookies::set_script_readable(KEYCLOAK_SESSION_COOKIE, "", &path, CookieAttrs { max_age: Some(0), ..attrs })
    {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
}

/// Marks a page as not to be cached, with the pages' CSP.
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(pages::CSP));
}

/// What ending a session leaves for the browser: the front-channel logout URLs of the OIDC clients it used, to
/// load in iframes on the signed-out page.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    /// `frontchannel_logout_uri` of each client, with `iss` and `sid`.
    pub frontchannel: Vec<url::Url>,
    /// Apps that could not be signed out (named for the signed-out page).
    pub failed: Vec<String>,
}

/// Ends a session (logout from the page, RP-initiated logout, or an SP's LogoutRequest) and tells the OIDC
/// clients it signed in to: their token families are revoked before this returns (so a replica that dies or
/// restarts right after answering a logout cannot leave its refresh and access tokens alive), and each client with
/// a `backchannel_logout_uri` gets a signed logout token per `sid`, recorded in the state store before this returns
/// and POSTed in the background (timeout, retries by any replica: [`super::backchannel`]), so the browser never
/// waits for a client and a replica that dies now takes no logout along.
///
/// `session` is the request's copy, possibly from this replica's first level; the session is taken from the store
/// and its latest version (with the clients and SPs another replica recorded meanwhile) is what gets notified.
/// That version is returned with what ended, for the SAML front-channel fan-out.
pub async fn end_session(state: &AppState, id: &str, session: &Session) -> Result<(Ended, Arc<Session>), AppError> {
    let latest = state.sessions.take(id).await?.unwrap_or_else(|| Arc::new(session.clone()));
    let session = latest.as_ref();
    state.upstream_tokens.invalidate(id);
    tracing::info!(username = %session.user.username, signed_in_to = ?session.signed_in_to, "logout");
    state.metrics.event("logout", "success");
    let mut ended = Ended::default();
    let Some(provider) = state.oidc.clone() else { return Ok((ended, latest)) };
    let now = state.clock.now();
    let now_ms = super::backchannel::unix_ms(now);
    let mut pending = Vec::new();
    for client in &session.oidc_clients {
        let sids: Vec<Option<&str>> =
            if client.sids.is_empty() { vec![None] } else { client.sids.iter().map(|s| Some(s.as_str())).collect() };
        let back_channel = provider.client(&client.client_id).is_some_and(|c| c.backchannel_logout_uri.is_some());
        for sid in sids {
            if let Some(url) = provider.frontchannel_logout_url(&client.client_id, sid) {
                ended.frontchannel.push(url);
            }
            if back_channel {
                pending.push(PendingLogout::new(
                    &client.client_id,
                    &session.user.unique_id,
                    sid,
                    now_ms,
                    super::backchannel::LEASE,
                ));
            }
        }
    }
    let sids = session.oidc_clients.iter().flat_map(|c| c.sids.iter());
    for revoked in futures_util::future::join_all(sids.map(|sid| provider.end_sid(sid, now))).await {
        if let Err(e) = revoked {
            tracing::warn!(error = %e, "cannot revoke the tokens of a logged-out session");
        }
    }
    super::backchannel::send(state, pending).await;
    Ok((ended, latest))
}

/// The "signed out" page, clearing the session cookie.
pub fn logged_out_page(state: &AppState) -> Response {
    logged_out_page_with(state, &Ended::default(), None)
}

/// The "signed out" page, loading the front-channel logout URLs of `ended` in iframes and then going on to `next`
/// (after a short pause, so the iframes load first), clearing the session cookie.
pub fn logged_out_page_with(state: &AppState, ended: &Ended, next: Option<&str>) -> Response {
    let frames: Vec<&str> = ended.frontchannel.iter().map(url::Url::as_str).collect();
    let failed: Vec<&str> = ended.failed.iter().map(String::as_str).collect();
    let mut resp = pages::signed_out(&state.config.ui, &frames, &failed, next).into_response();
    clear_session_cookies(state, &mut resp);
    no_store(&mut resp);
    if !frames.is_empty() {
        let origins: Vec<String> = ended
            .frontchannel
            .iter()
            .map(|u| u.origin().ascii_serialization())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("{}; frame-src {}", pages::CSP, origins.join(" "))) {
            resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}
