//! The browser's sign-in session as the features see it: the session a request's cookie points at, the way to
//! the login page, and the end of a session. Shared by login, account, OIDC, SAML and the proxy.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use crate::domain::session::Session;
use crate::http::cookies::{self, CookieAttrs, SameSite};
use crate::http::error::AppError;
use crate::http::pages;

/// The live session of this request, with its id.
pub async fn current_session<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
) -> Result<Option<(&'h str, std::sync::Arc<Session>)>, AppError> {
    let Some(id) = cookies::get(headers, &state.config.session.cookie_name) else { return Ok(None) };
    if id.len() != 43 {
        return Ok(None);
    }
    Ok(state.sessions.get(id, state.clock.now()).await?.map(|s| (id, s)))
}

/// Sends the browser to the login page, coming back to `target` afterwards.
pub fn to_login(target: &str) -> Response {
    let q = serde_urlencoded::to_string([("rd", target)]).unwrap_or_default();
    Redirect::to(&format!("/login?{q}")).into_response()
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

/// Marks a page as not to be cached, with the pages' CSP.
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(pages::CSP));
}

/// Ends a session (logout from the page, or RP-initiated logout).
pub async fn end_session(state: &AppState, id: &str, session: &Session) -> Result<(), AppError> {
    state.sessions.remove(id).await?;
    state.upstream_tokens.invalidate(id);
    tracing::info!(username = %session.user.username, signed_in_to = ?session.signed_in_to, "logout");
    state.metrics.event("logout", "success");
    Ok(())
}

/// The "signed out" page, clearing the session cookie.
pub fn logged_out_page(state: &AppState) -> Response {
    let again = pages::Link { href: "/login", text: "Sign in again" };
    let mut resp =
        pages::message(&state.config.ui, "Signed out", "You have been signed out.", Some(again)).into_response();
    if let Some(c) = cookies::clear(&state.config.session.cookie_name, session_cookie_attrs(state)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    no_store(&mut resp);
    resp
}
