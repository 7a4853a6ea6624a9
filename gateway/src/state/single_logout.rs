//! The rest of a logout after the session ended: a signed LogoutRequest to every other SAML SP of the session that
//! has a SingleLogoutService, one after another through the browser (SAML profiles §4.4.3.4, the front-channel
//! bindings), then the last step: the LogoutResponse to the SP that started it, the client's post-logout
//! redirect, or the signed-out page listing the apps that could not be signed out. An SP that answers with an
//! error, or with something that does not verify, is listed and the chain goes on. The chain lives in a small
//! in-memory cache under a random id that travels as the `RelayState`.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use federation::saml::{IdentityProvider, Outbound};

use super::AppState;
use super::sign_in::{Ended, logged_out_page_with, session_cookie_attrs};
use crate::domain::session::{SamlSignIn, Session};
use crate::http::error::AppError;

/// How the logout ends once every SP had its turn.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The signed-out page (front-channel iframes, failed apps), then `next` if given.
    Page {
        /// The client's post-logout redirect, if any.
        next: Option<String>,
    },
    /// The LogoutResponse to the SP whose LogoutRequest started the logout.
    Respond {
        /// The signed message.
        message: Outbound,
        /// Its RelayState.
        relay_state: Option<String>,
    },
}

/// A logout on its way through the session's SAML SPs.
#[derive(Debug, Clone)]
pub struct Chain {
    todo: Vec<SamlSignIn>,
    waiting: Option<(String, String)>,
    ended: Ended,
    finish: Finish,
}

/// The store of chains in progress.
pub type Chains = moka::sync::Cache<String, Chain>;

/// A store for chains: at most `capacity`, each kept 10 minutes.
pub fn chains(capacity: u64) -> Chains {
    moka::sync::Cache::builder().max_capacity(capacity).time_to_live(std::time::Duration::from_secs(600)).build()
}

/// An outbound SAML message by its binding: the auto-submitting form (HTTP-POST) or a redirect (HTTP-Redirect).
pub fn deliver(message: &Outbound, relay_state: Option<&str>) -> Response {
    match message {
        Outbound::Post { url, field, value, .. } => post_field(url, field, value, relay_state),
        Outbound::Redirect { url, .. } => {
            let mut resp = Redirect::to(url).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
    }
}

/// The auto-submitting HTTP-POST binding page posting `field` = `value` to `url`, with its strict CSP, never
/// cached.
pub fn post_field(url: &str, field: &str, value: &str, relay_state: Option<&str>) -> Response {
    let (html, csp) = federation::saml::post_form::render_field(url, field, value, relay_state);
    let mut resp = Html(html).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// After `session` ended: starts the chain through its SAML SPs with a SingleLogoutService (all but
/// `except_sp`, which started the logout), and clears the session cookie.
pub fn after_session_end(
    state: &AppState,
    session: &Session,
    ended: Ended,
    except_sp: Option<&str>,
    finish: Finish,
) -> Result<Response, AppError> {
    let todo: Vec<SamlSignIn> = match &state.saml {
        Some(idp) => session
            .saml_sps
            .iter()
            .filter(|r| Some(r.sp.as_str()) != except_sp)
            .filter(|r| idp.by_name(&r.sp).is_ok_and(|sp| sp.slo.is_some()))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let mut resp = next(state, Chain { todo, waiting: None, ended, finish })?;
    if let Some(c) = crate::http::cookies::clear(&state.config.session.cookie_name, session_cookie_attrs(state)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// An SP's LogoutResponse to our LogoutRequest (`relay_state` names the chain): unless it is the awaited
/// answer from that SP with status Success, the SP is listed as not signed out. Then the next step.
pub fn on_response(
    state: &AppState,
    relay_state: Option<&str>,
    sp: &str,
    in_response_to: Option<&str>,
    success: bool,
) -> Result<Response, AppError> {
    let Some(mut chain) = relay_state.and_then(|id| state.logout_chains.remove(id)) else {
        return Err(AppError::BadRequest(
            "This sign-out answer belongs to no sign-out in progress (it expired or was already used).".into(),
        ));
    };
    let expected = chain.waiting.take();
    let matches = expected.as_ref().is_some_and(|(s, id)| s == sp && in_response_to == Some(id.as_str()));
    if !(matches && success) {
        tracing::info!(sp, matches, success, "SAML single logout: an SP was not signed out");
        let name = expected.map(|(s, _)| s).unwrap_or_else(|| sp.to_string());
        chain.ended.failed.push(display_name(state, &name));
    }
    next(state, chain)
}

fn display_name(state: &AppState, sp: &str) -> String {
    state
        .saml
        .as_ref()
        .and_then(|idp| idp.by_name(sp).ok())
        .and_then(|s| s.config.display_name.clone())
        .unwrap_or_else(|| sp.to_string())
}

/// The next LogoutRequest of `chain`, or its finish.
fn next(state: &AppState, mut chain: Chain) -> Result<Response, AppError> {
    while let Some(record) = chain.todo.pop() {
        let Some(idp) = state.saml.as_deref() else { break };
        match send(state, idp, &record) {
            Ok((request_id, message, chain_id)) => {
                chain.waiting = Some((record.sp.clone(), request_id));
                state.logout_chains.insert(chain_id.clone(), chain);
                state.metrics.event("saml_logout_request", "sent");
                return Ok(deliver(&message, Some(&chain_id)));
            }
            Err(e) => {
                tracing::warn!(sp = %record.sp, error = %e, "cannot send a SAML LogoutRequest");
                chain.ended.failed.push(display_name(state, &record.sp));
            }
        }
    }
    Ok(match chain.finish {
        // The SP that started the logout gets its answer (it shows its own page); apps not signed out are logged.
        Finish::Respond { message, relay_state } => {
            if !chain.ended.failed.is_empty() {
                tracing::warn!(failed = ?chain.ended.failed, "SAML single logout: apps not signed out");
            }
            deliver(&message, relay_state.as_deref())
        }
        // Nothing to show on the way: straight to the client's post-logout redirect.
        Finish::Page { next: Some(next) } if chain.ended.frontchannel.is_empty() && chain.ended.failed.is_empty() => {
            Redirect::to(&next).into_response()
        }
        Finish::Page { next } => logged_out_page_with(state, &chain.ended, next.as_deref()),
    })
}

fn send(
    state: &AppState,
    idp: &IdentityProvider,
    record: &SamlSignIn,
) -> Result<(String, Outbound, String), federation::saml::SamlError> {
    let sp = idp.by_name(&record.sp)?;
    let chain_id = fedgate_types::random::token();
    let (id, message) = idp.logout_request(
        sp,
        &record.nameid_format,
        &record.name_id,
        Some(&record.session_index),
        Some(&chain_id),
        state.clock.now(),
    )?;
    Ok((id, message, chain_id))
}
