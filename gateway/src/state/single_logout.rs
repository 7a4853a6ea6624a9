//! The rest of a logout after the session ended: a signed LogoutRequest to every other SAML SP of the session that
//! has a SingleLogoutService, all at once, each in a hidden iframe of fedgate's "Signing out" page (the
//! front-channel bindings of SAML profiles §4.4.3.4, the way SimpleSAMLphp's iframe logout does it), beside the
//! OIDC clients' front-channel logout iframes. The page moves on by itself after `[saml] logout_wait`: an SP that
//! answered with an error, with something that does not verify, or not at all (stopped, unreachable, too slow) is
//! listed on the final page, and never holds up the others. The final step is the LogoutResponse to the SP that started
//! the logout, the client's post-logout redirect, or the signed-out page. A chain lives in a small in-memory cache
//! under a random id that travels as the `RelayState`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use federation::saml::{IdentityProvider, Outbound};

use super::AppState;
use super::sign_in::{Ended, logged_out_page_with};
use crate::domain::session::{SamlSignIn, Session};
use crate::http::error::AppError;
use crate::http::pages;

/// The path of one SP's LogoutRequest within a chain (loaded in an iframe).
pub const FRAME_PATH: &str = "/saml/slo/frame";
/// The path the "Signing out" page moves on to.
pub const DONE_PATH: &str = "/saml/slo/done";

/// How the logout ends once every SP had its turn.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The signed-out page (failed apps), then `next` if given.
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

/// One SP asked within a chain.
#[derive(Debug, Clone)]
struct Hop {
    sp: String,
    request_id: String,
    message: Outbound,
    /// None until the SP answered; then whether it signed the user out.
    answered: Option<bool>,
}

/// A logout on its way through the session's SAML SPs.
#[derive(Debug)]
pub struct Chain {
    hops: Vec<Hop>,
    ended: Ended,
    finish: Finish,
}

/// The store of chains in progress (shared with the iframes' answers, hence the lock).
pub type Chains = moka::sync::Cache<String, Arc<Mutex<Chain>>>;

/// A store for chains: at most `capacity`, each kept 10 minutes.
pub fn chains(capacity: u64) -> Chains {
    moka::sync::Cache::builder().max_capacity(capacity).time_to_live(Duration::from_secs(600)).build()
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

/// After `session` ended: asks its SAML SPs with a SingleLogoutService (all but `except_sp`, which started the
/// logout) on the "Signing out" page, or, with none to ask, goes straight to the finish; clears the session cookie.
pub fn after_session_end(
    state: &AppState,
    session: &Session,
    ended: Ended,
    except_sp: Option<&str>,
    finish: Finish,
) -> Result<Response, AppError> {
    let mut chain = Chain { hops: Vec::new(), ended, finish };
    let chain_id = fedgate_types::random::token();
    if let Some(idp) = state.saml.as_deref() {
        for record in session.saml_sps.iter().filter(|r| Some(r.sp.as_str()) != except_sp) {
            if !idp.by_name(&record.sp).is_ok_and(|sp| sp.slo.is_some()) {
                continue;
            }
            match request(state, idp, record, &chain_id) {
                Ok((request_id, message)) => {
                    chain.hops.push(Hop { sp: record.sp.clone(), request_id, message, answered: None });
                }
                Err(e) => {
                    tracing::warn!(sp = %record.sp, error = %e, "cannot make a SAML LogoutRequest");
                    chain.ended.failed.push(display_name(state, &record.sp));
                }
            }
        }
    }
    let mut resp = if chain.hops.is_empty() {
        finish_chain(state, chain)
    } else {
        let page = signing_out_page(state, &chain, &chain_id);
        // Loaded on this page already.
        chain.ended.frontchannel.clear();
        state.metrics.event("saml_logout_request", "sent");
        state.logout_chains.insert(chain_id, Arc::new(Mutex::new(chain)));
        page
    };
    super::sign_in::clear_session_cookies(state, &mut resp);
    Ok(resp)
}

/// The "Signing out" page: one iframe per SP (its LogoutRequest) and per OIDC front-channel logout URL, moving on
/// to [`DONE_PATH`] after `[saml] logout_wait` (a meta refresh: the pages run no script). Its CSP lets the frames
/// load fedgate, the SPs' logout endpoints and the clients' front-channel URLs, nothing else.
fn signing_out_page(state: &AppState, chain: &Chain, chain_id: &str) -> Response {
    let q = |pairs: &[(&str, &str)]| url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let frames: Vec<String> = chain
        .hops
        .iter()
        .map(|h| format!("{FRAME_PATH}?{}", q(&[("chain", chain_id), ("sp", &h.sp)])))
        .chain(chain.ended.frontchannel.iter().map(|u| u.to_string()))
        .collect();
    let names: Vec<String> = chain.hops.iter().map(|h| display_name(state, &h.sp)).collect();
    let next = format!("{DONE_PATH}?{}", q(&[("chain", chain_id)]));
    let frame_refs: Vec<&str> = frames.iter().map(String::as_str).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let wait = state.config.saml.as_ref().map_or(3, |c| c.logout_wait.as_secs().max(1));
    let mut resp = pages::signing_out(&state.config.ui, &frame_refs, &name_refs, &next, wait).into_response();
    let mut origins: std::collections::BTreeSet<String> = std::collections::BTreeSet::from(["'self'".to_string()]);
    for hop in &chain.hops {
        let url = match &hop.message {
            Outbound::Post { url, .. } | Outbound::Redirect { url, .. } => url,
        };
        if let Ok(u) = url::Url::parse(url) {
            origins.insert(u.origin().ascii_serialization());
        }
    }
    origins.extend(chain.ended.frontchannel.iter().map(|u| u.origin().ascii_serialization()));
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let csp = format!("{}; frame-src {}", pages::CSP, origins.into_iter().collect::<Vec<_>>().join(" "));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// One SP's LogoutRequest of chain `chain_id`, for its iframe: the auto-submitting form (HTTP-POST) or the
/// redirect (HTTP-Redirect). Framing is allowed for fedgate's own page only.
pub fn frame(state: &AppState, chain_id: &str, sp: &str) -> Result<Response, AppError> {
    let gone = || AppError::BadRequest("This sign-out expired or was already finished.".into());
    let chain = state.logout_chains.get(chain_id).ok_or_else(gone)?;
    let message = {
        let chain = chain.lock().map_err(|_| gone())?;
        chain.hops.iter().find(|h| h.sp == sp).map(|h| h.message.clone()).ok_or_else(gone)?
    };
    let mut resp = deliver(&message, Some(chain_id));
    if let Some(csp) = resp.headers().get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) {
        let framed = csp.replace("frame-ancestors 'none'", "frame-ancestors 'self'");
        if let Ok(v) = HeaderValue::from_str(&framed) {
            resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    Ok(resp)
}

/// An SP's LogoutResponse to our LogoutRequest (`relay_state` names the chain, `in_response_to` must be the
/// request that SP was sent): recorded for the chain's final page. Answers with a small page for the iframe.
pub fn on_response(
    state: &AppState,
    relay_state: Option<&str>,
    sp: &str,
    in_response_to: Option<&str>,
    success: bool,
) -> Result<Response, AppError> {
    let chain = relay_state.and_then(|id| state.logout_chains.get(id)).ok_or_else(|| {
        AppError::BadRequest(
            "This sign-out answer belongs to no sign-out in progress (it expired or was already finished).".into(),
        )
    })?;
    let recorded = {
        let mut chain = chain.lock().map_err(|_| AppError::BadRequest("This sign-out is broken.".into()))?;
        match chain.hops.iter_mut().find(|h| h.sp == sp && h.answered.is_none()) {
            Some(hop) => {
                let matches = in_response_to == Some(hop.request_id.as_str());
                hop.answered = Some(matches && success);
                if !(matches && success) {
                    tracing::info!(sp, matches, success, "SAML single logout: an SP was not signed out");
                }
                matches && success
            }
            None => false,
        }
    };
    state.metrics.event("saml_logout_response", if recorded { "success" } else { "failure" });
    let name = display_name(state, sp);
    let text = if recorded { format!("Signed out of {name}.") } else { format!("{name} could not sign you out.") };
    let mut resp = pages::message(&state.config.ui, "Signing out", &text, None).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let csp = pages::CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'");
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(resp)
}

/// The end of chain `chain_id`: every SP that did not answer Success is listed as not signed out, then the
/// chain's finish.
pub fn done(state: &AppState, chain_id: &str) -> Result<Response, AppError> {
    let chain = state
        .logout_chains
        .remove(chain_id)
        .ok_or_else(|| AppError::BadRequest("This sign-out expired or was already finished.".into()))?;
    let mut chain = {
        let mut c = chain.lock().map_err(|_| AppError::BadRequest("This sign-out is broken.".into()))?;
        Chain { hops: std::mem::take(&mut c.hops), ended: std::mem::take(&mut c.ended), finish: c.finish.clone() }
    };
    for hop in std::mem::take(&mut chain.hops) {
        if hop.answered != Some(true) {
            if hop.answered.is_none() {
                tracing::warn!(sp = %hop.sp, "SAML single logout: the SP did not answer in time");
            }
            chain.ended.failed.push(display_name(state, &hop.sp));
        }
    }
    Ok(finish_chain(state, chain))
}

fn display_name(state: &AppState, sp: &str) -> String {
    state
        .saml
        .as_ref()
        .and_then(|idp| idp.by_name(sp).ok())
        .and_then(|s| s.config.display_name.clone())
        .unwrap_or_else(|| sp.to_string())
}

/// The chain's last step.
fn finish_chain(state: &AppState, chain: Chain) -> Response {
    match chain.finish {
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
    }
}

/// A signed LogoutRequest to the SP of `record` (the NameID and SessionIndex it was given), RelayState `chain_id`.
fn request(
    state: &AppState,
    idp: &IdentityProvider,
    record: &SamlSignIn,
    chain_id: &str,
) -> Result<(String, Outbound), federation::saml::SamlError> {
    let sp = idp.by_name(&record.sp)?;
    idp.logout_request(
        sp,
        &record.nameid_format,
        &record.name_id,
        Some(&record.session_index),
        Some(chain_id),
        state.clock.now(),
    )
}
