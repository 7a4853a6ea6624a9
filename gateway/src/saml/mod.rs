//! The SAML 2.0 IdP endpoints: metadata, SP-initiated SSO (HTTP-Redirect and HTTP-POST), IdP-initiated SSO
//! (`/saml/init/{sp}`), the resume step after login, and SP-initiated Single Logout (`/saml/slo`). Protocol logic is `federation::saml`; this module speaks
//! HTTP and connects it to the login session.

use axum::Form;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use federation::saml::{AuthnRequest, IdentityProvider, LogoutRequest, ServiceProvider};
use serde::Deserialize;

use crate::domain::pending::Pending;
use crate::domain::principal::from_user;
use crate::http::error::AppError;
use crate::http::paths::OwnRoutes;
use crate::state::AppState;
use crate::state::sign_in::{current_session, end_session, session_cookie_attrs, to_login};

/// The SAML routes.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new()
        .reserve_prefix("/saml/")
        .route("/saml/metadata", get(metadata))
        .route("/saml/sso", get(sso_redirect).post(sso_post))
        .route("/saml/init/{sp}", get(idp_initiated))
        .route("/saml/resume", get(resume))
        .route("/saml/slo", get(slo_redirect).post(slo_post))
}

fn idp(state: &AppState) -> Result<&std::sync::Arc<IdentityProvider>, AppError> {
    state.saml.as_ref().ok_or_else(|| AppError::NotFound("SAML is not configured on this gateway.".into()))
}

async fn metadata(State(state): State<AppState>) -> Result<Response, AppError> {
    let xml = idp(&state)?.metadata_xml();
    Ok(([(header::CONTENT_TYPE, "application/samlmetadata+xml")], xml).into_response())
}

fn relay_state_from(raw_query: &str) -> Option<String> {
    url::form_urlencoded::parse(raw_query.as_bytes()).find(|(k, _)| k == "RelayState").map(|(_, v)| v.into_owned())
}

async fn sso_redirect(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let raw = q.unwrap_or_default();
    let relay = relay_state_from(&raw);
    idp(&state)?.check_relay_state(relay.as_deref())?;
    let (request, sp) = idp(&state)?.redirect_request(&raw)?;
    let sp = sp.name().to_string();
    proceed(&state, &headers, &sp, Some(request), relay).await
}

#[derive(Deserialize)]
struct PostBinding {
    #[serde(rename = "SAMLRequest", default)]
    saml_request: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

impl PostBinding {
    /// The `SAMLRequest` field, which must be there.
    fn saml_request(&self) -> Result<&str, AppError> {
        if self.saml_request.is_empty() {
            return Err(AppError::BadRequest("The POST has no SAMLRequest field.".into()));
        }
        Ok(&self.saml_request)
    }
}

async fn sso_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PostBinding>,
) -> Result<Response, AppError> {
    idp(&state)?.check_relay_state(form.relay_state.as_deref())?;
    let (request, sp) = idp(&state)?.post_request(form.saml_request()?)?;
    let sp = sp.name().to_string();
    proceed(&state, &headers, &sp, Some(request), form.relay_state).await
}

#[derive(Deserialize)]
struct InitQuery {
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

async fn idp_initiated(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<InitQuery>,
) -> Result<Response, AppError> {
    let idp = idp(&state)?;
    idp.check_relay_state(q.relay_state.as_deref())?;
    let sp = match idp.by_name(&name) {
        Ok(sp) => sp,
        Err(e) => {
            let known: Vec<&str> = idp.service_providers().iter().map(ServiceProvider::name).collect();
            tracing::info!(requested = %name, configured = ?known, "IdP-initiated SSO for an unknown SP name");
            return Err(e.into());
        }
    };
    let relay = q.relay_state.or_else(|| sp.config.default_relay_state.clone());
    proceed(&state, &headers, &name, None, relay).await
}

async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<crate::domain::pending::ResumeQuery>,
) -> Result<Response, AppError> {
    match state.pending.get(&q.id).await? {
        Some(Pending::Saml { sp, request, relay_state }) => {
            if current_session(&state, &headers).await?.is_some() {
                state.pending.take(&q.id).await?;
            }
            proceed_after_login(&state, &headers, &sp, request.map(|r| *r), relay_state).await
        }
        _ => Err(AppError::BadRequest(
            "This sign-in request expired or was already used. Go back to the application and sign in again.".into(),
        )),
    }
}

/// With a session: answer the SP now. Without one (or when the SP forces a fresh login): log in first.
async fn proceed(
    state: &AppState,
    headers: &HeaderMap,
    sp: &str,
    request: Option<AuthnRequest>,
    relay_state: Option<String>,
) -> Result<Response, AppError> {
    let session = current_session(state, headers).await?;
    let force = request.as_ref().is_some_and(|r| r.force_authn);
    if session.is_none() || force {
        if request.as_ref().is_some_and(|r| r.is_passive) {
            return Err(AppError::Forbidden(
                "The application asked for a passive login, but you are not signed in.".into(),
            ));
        }
        let id = state
            .pending
            .put(Pending::Saml { sp: sp.to_string(), request: request.map(Box::new), relay_state })
            .await?;
        let target = format!("/saml/resume?id={id}");
        return Ok(if force {
            axum::response::Redirect::to(&format!(
                "/login?{}",
                serde_urlencoded::to_string([("rd", target.as_str()), ("force", "1")]).unwrap_or_default()
            ))
            .into_response()
        } else {
            to_login(&target)
        });
    }
    proceed_after_login(state, headers, sp, request, relay_state).await
}

async fn proceed_after_login(
    state: &AppState,
    headers: &HeaderMap,
    sp_name: &str,
    request: Option<AuthnRequest>,
    relay_state: Option<String>,
) -> Result<Response, AppError> {
    let idp = idp(state)?;
    let Some((id, session)) = current_session(state, headers).await? else {
        return Ok(to_login("/"));
    };
    let sp = idp.by_name(sp_name)?;
    let principal = from_user(&session.user, session.auth_instant());
    let signed = idp.respond(sp, &principal, request.as_ref(), state.clock.now())?;
    let new_sp = !session.signed_in_to.iter().any(|s| s == sp_name);
    if new_sp || signed.session_index.is_some() {
        let (sp, index) = (sp_name.to_string(), signed.session_index.clone());
        let record = move |updated: &mut crate::domain::session::Session| {
            if !updated.signed_in_to.contains(&sp) {
                updated.signed_in_to.push(sp.clone());
            }
            if let Some(index) = &index {
                // Bounded: a long session that signs in to SPs all day keeps only the latest indexes.
                if updated.saml_session_indexes.len() >= MAX_SESSION_INDEXES {
                    updated.saml_session_indexes.remove(0);
                }
                updated.saml_session_indexes.push(index.clone());
            }
        };
        state.sessions.modify(id, Box::new(record)).await?;
    }
    tracing::info!(sp = sp_name, username = %principal.username, sp_initiated = request.is_some(), "SAML response issued");
    state.metrics.event("saml_response", sp_name);
    Ok(post_form(&signed, relay_state.as_deref()))
}

/// The auto-submitting HTTP-POST binding page for `signed`, with its strict CSP, never cached.
fn post_form(signed: &federation::saml::SignedResponse, relay_state: Option<&str>) -> Response {
    let (html, csp) = federation::saml::post_form::render(&signed.acs_url, &signed.saml_response, relay_state);
    let mut resp = Html(html).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// How many SAML `SessionIndex` values a session remembers.
const MAX_SESSION_INDEXES: usize = 16;

async fn slo_redirect(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let raw = q.unwrap_or_default();
    let idp = idp(&state)?;
    let (request, sp) = idp.logout_redirect(&raw)?;
    logout(&state, &headers, idp, sp, &request, relay_state_from(&raw)).await
}

async fn slo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PostBinding>,
) -> Result<Response, AppError> {
    let idp = idp(&state)?;
    let (request, sp) = idp.logout_post(form.saml_request()?)?;
    logout(&state, &headers, idp, sp, &request, form.relay_state).await
}

/// Ends this browser's session only when the (signature-checked) request names its user and the session signed
/// in to this SP, then posts the signed LogoutResponse back to the SP. A request that names nobody or someone else
/// (a cross-site GET any page can trigger) ends nothing and answers with a Responder status.
async fn logout(
    state: &AppState,
    headers: &HeaderMap,
    idp: &IdentityProvider,
    sp: &ServiceProvider,
    request: &LogoutRequest,
    relay_state: Option<String>,
) -> Result<Response, AppError> {
    if sp.slo_url.is_none() {
        return Err(federation::saml::SamlError::NoSingleLogout(sp.name().into()).into());
    }
    let mut success = true;
    if let Some((id, session)) = current_session(state, headers).await? {
        let principal = from_user(&session.user, session.auth_instant());
        let names_this_user = sp.is_subject_of_logout(request.name_id.as_deref(), &principal);
        let signed_in_here = session.signed_in_to.iter().any(|s| s == sp.name());
        // SAML core §3.7.1: with a SessionIndex, only the session that assertion was issued to is meant.
        let index_matches =
            request.session_index.as_ref().is_none_or(|i| session.saml_session_indexes.iter().any(|s| s == i));
        if names_this_user && signed_in_here && index_matches {
            end_session(state, id, &session).await?;
        } else {
            tracing::info!(
                sp = sp.name(),
                names_this_user,
                signed_in_here,
                index_matches,
                "SAML logout not for this browser's session (other or no NameID, never signed in to this SP, or another SessionIndex): nothing ended"
            );
            success = false;
        }
    }
    state.metrics.event("saml_logout", if success { "success" } else { "mismatch" });
    let signed = idp.logout_response(sp, request, success, state.clock.now())?;
    let mut resp = post_form(&signed, relay_state.as_deref());
    if success
        && let Some(c) = crate::http::cookies::clear(&state.config.session.cookie_name, session_cookie_attrs(state))
    {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}
