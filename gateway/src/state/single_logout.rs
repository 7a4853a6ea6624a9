//! The rest of a logout after the session ended: a signed LogoutRequest to every other SAML SP of the session that
//! has a SingleLogoutService, all at once, each in a hidden iframe of fedgate's "Signing out" page (the
//! front-channel bindings of SAML profiles §4.4.3.4, the way SimpleSAMLphp's iframe logout does it), beside the
//! OIDC clients' front-channel logout iframes. The page moves on by itself after `[saml] logout_wait`: an SP that
//! answered with an error, with something that does not verify, or not at all (stopped, unreachable, too slow) is
//! listed on the final page, and never holds up the others. The final step is the LogoutResponse to the SP that started
//! the logout, the client's post-logout redirect, or the signed-out page.
//!
//! A chain lives in the state store (`[store]`) under a hash of a random id that travels as the `RelayState`, so
//! every step may land on another replica: the page on one, an SP's LogoutResponse on the other, the finish on
//! either. Each answer is recorded with a compare-and-set (two SPs answering at once through two replicas both
//! count) and the finish takes the chain (of two replicas, one finishes it). With `kind = "memory"` it lives in
//! the process, as before.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use federation::saml::{IdentityProvider, Outbound};

use super::AppState;
use super::sign_in::{Ended, logged_out_page_with};
use crate::domain::session::{SamlSignIn, Session};
use crate::domain::store::{KvStore, StoreError, decode, encode, hashed_key};
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

/// An outbound SAML message as a chain keeps it (what the browser is sent; the XML itself is not kept).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "binding", rename_all = "snake_case")]
enum Message {
    /// HTTP-POST: an auto-submitting form posting `field` = `value`.
    Post { url: String, field: String, value: String },
    /// HTTP-Redirect: the full URL.
    Redirect { url: String },
}

impl From<&Outbound> for Message {
    fn from(o: &Outbound) -> Self {
        match o {
            Outbound::Post { url, field, value, .. } => {
                Self::Post { url: url.clone(), field: (*field).to_string(), value: value.clone() }
            }
            Outbound::Redirect { url, .. } => Self::Redirect { url: url.clone() },
        }
    }
}

impl Message {
    fn url(&self) -> &str {
        match self {
            Self::Post { url, .. } | Self::Redirect { url } => url,
        }
    }

    fn deliver(&self, relay_state: Option<&str>) -> Response {
        match self {
            Self::Post { url, field, value } => post_field(url, field, value, relay_state),
            Self::Redirect { url } => {
                let mut resp = Redirect::to(url).into_response();
                resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
        }
    }
}

/// [`Finish`] as a chain keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Finale {
    Page { next: Option<String> },
    Respond { message: Message, relay_state: Option<String> },
}

impl From<Finish> for Finale {
    fn from(f: Finish) -> Self {
        match f {
            Finish::Page { next } => Self::Page { next },
            Finish::Respond { message, relay_state } => Self::Respond { message: (&message).into(), relay_state },
        }
    }
}

/// One SP asked within a chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Hop {
    sp: String,
    request_id: String,
    message: Message,
    /// None until the SP answered; then whether it signed the user out.
    answered: Option<bool>,
}

/// A logout on its way through the session's SAML SPs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Chain {
    hops: Vec<Hop>,
    ended: Ended,
    finish: Finale,
}

/// How long a chain waits for its finish.
const CHAIN_TTL: Duration = Duration::from_secs(600);

/// Attempts to record an answer while other answers to the same chain are being recorded.
const CAS_ATTEMPTS: usize = 16;

/// The chains in progress: in the state store (shared by every replica), or in the process.
#[derive(Clone)]
pub struct Chains {
    kv: Arc<dyn KvStore>,
}

impl std::fmt::Debug for Chains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chains").field("kind", &self.kv.kind()).finish()
    }
}

/// Chains in `store`, shared by the replicas using it; without one (`kind = "memory"`), in this process (expired
/// chains are dropped as the map grows).
pub fn chains(store: Option<Arc<dyn KvStore>>) -> Chains {
    Chains { kv: store.unwrap_or_else(|| Arc::new(crate::domain::store::memory::MemoryKv::new())) }
}

fn key(chain_id: &str) -> String {
    hashed_key("l:", chain_id)
}

impl Chains {
    async fn put(&self, chain_id: &str, chain: &Chain) -> Result<(), StoreError> {
        self.kv.put(&key(chain_id), encode(chain, "logout chain")?, CHAIN_TTL).await
    }

    async fn get(&self, chain_id: &str) -> Result<Option<Chain>, StoreError> {
        self.kv.get(&key(chain_id)).await?.map(|raw| decode(&raw, "logout chain")).transpose()
    }

    async fn take(&self, chain_id: &str) -> Result<Option<Chain>, StoreError> {
        self.kv.take(&key(chain_id)).await?.map(|raw| decode(&raw, "logout chain")).transpose()
    }

    /// Applies `change` to the chain, without losing an answer another replica records at the same time; the
    /// change's result, or `None` if there is no such chain (expired, or finished).
    async fn update<T>(&self, chain_id: &str, change: impl Fn(&mut Chain) -> T) -> Result<Option<T>, StoreError> {
        let key = key(chain_id);
        for _ in 0..CAS_ATTEMPTS {
            let Some(raw) = self.kv.get(&key).await? else { return Ok(None) };
            let mut chain: Chain = decode(&raw, "logout chain")?;
            let out = change(&mut chain);
            let new = encode(&chain, "logout chain")?;
            if self.kv.compare_and_set(&key, Some(&raw), new, CHAIN_TTL).await? {
                return Ok(Some(out));
            }
        }
        Err(StoreError::unavailable("logout chain", Contended))
    }
}

/// A chain kept changing under concurrent answers.
#[derive(Debug, thiserror::Error)]
#[error("a logout chain kept changing under concurrent answers; gave up after {CAS_ATTEMPTS} attempts")]
struct Contended;

/// An outbound SAML message by its binding: the auto-submitting form (HTTP-POST) or a redirect (HTTP-Redirect).
pub fn deliver(message: &Outbound, relay_state: Option<&str>) -> Response {
    Message::from(message).deliver(relay_state)
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
pub async fn after_session_end(
    state: &AppState,
    session: &Session,
    ended: Ended,
    except_sp: Option<&str>,
    finish: Finish,
) -> Result<Response, AppError> {
    let mut chain = Chain { hops: Vec::new(), ended, finish: finish.into() };
    let chain_id = fedgate_types::random::token();
    if let Some(idp) = state.saml.as_deref() {
        for record in session.saml_sps.iter().filter(|r| Some(r.sp.as_str()) != except_sp) {
            if !idp.by_name(&record.sp).is_ok_and(|sp| sp.slo.is_some()) {
                continue;
            }
            match request(state, idp, record, &chain_id) {
                Ok((request_id, message)) => {
                    let message = Message::from(&message);
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
        state.logout_chains.put(&chain_id, &chain).await?;
        state.metrics.event("saml_logout_request", "sent");
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
        if let Ok(u) = url::Url::parse(hop.message.url()) {
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
pub async fn frame(state: &AppState, chain_id: &str, sp: &str) -> Result<Response, AppError> {
    let gone = || AppError::BadRequest("This sign-out expired or was already finished.".into());
    let chain = state.logout_chains.get(chain_id).await?.ok_or_else(gone)?;
    let message = chain.hops.into_iter().find(|h| h.sp == sp).map(|h| h.message).ok_or_else(gone)?;
    let mut resp = message.deliver(Some(chain_id));
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
pub async fn on_response(
    state: &AppState,
    relay_state: Option<&str>,
    sp: &str,
    in_response_to: Option<&str>,
    success: bool,
) -> Result<Response, AppError> {
    let none = || {
        AppError::BadRequest(
            "This sign-out answer belongs to no sign-out in progress (it expired or was already finished).".into(),
        )
    };
    let chain_id = relay_state.ok_or_else(none)?;
    let recorded = state
        .logout_chains
        .update(chain_id, |chain| match chain.hops.iter_mut().find(|h| h.sp == sp && h.answered.is_none()) {
            Some(hop) => {
                let matches = in_response_to == Some(hop.request_id.as_str());
                hop.answered = Some(matches && success);
                Some(matches)
            }
            None => None,
        })
        .await?
        .ok_or_else(none)?;
    let recorded = match recorded {
        Some(matches) => {
            if !(matches && success) {
                tracing::info!(sp, matches, success, "SAML single logout: an SP was not signed out");
            }
            matches && success
        }
        None => false,
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
pub async fn done(state: &AppState, chain_id: &str) -> Result<Response, AppError> {
    let mut chain = state
        .logout_chains
        .take(chain_id)
        .await?
        .ok_or_else(|| AppError::BadRequest("This sign-out expired or was already finished.".into()))?;
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
        Finale::Respond { message, relay_state } => {
            if !chain.ended.failed.is_empty() {
                tracing::warn!(failed = ?chain.ended.failed, "SAML single logout: apps not signed out");
            }
            message.deliver(relay_state.as_deref())
        }
        // Nothing to show on the way: straight to the client's post-logout redirect.
        Finale::Page { next: Some(next) } if chain.ended.frontchannel.is_empty() && chain.ended.failed.is_empty() => {
            Redirect::to(&next).into_response()
        }
        Finale::Page { next } => logged_out_page_with(state, &chain.ended, next.as_deref()),
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
