//! The SAML 2.0 IdP endpoints: metadata, SP-initiated SSO (HTTP-Redirect and HTTP-POST), IdP-initiated SSO
//! (`/saml/init/{sp}`), the resume step after login, Single Logout (`/saml/slo`: an SP's LogoutRequest, or its
//! LogoutResponse to ours) and the steps of fedgate's own logout fan-out (`/saml/slo/frame`, `/saml/slo/done`).
//! Protocol logic is `federation::saml`; this module speaks HTTP and connects it to the login session.

use axum::Form;
use axum::extract::{OriginalUri, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use federation::saml::{AuthnRequest, IdentityProvider, LogoutRequest, ServiceProvider};
use serde::Deserialize;

use crate::domain::pending::Pending;
use crate::domain::principal::from_session;
use crate::domain::session::SamlSignIn;
use crate::http::error::AppError;
use crate::http::paths::OwnRoutes;
use crate::state::AppState;
use crate::state::sign_in::{SAML_RESUME, current_session, end_session, latest_session, resume_target, to_login};
use crate::state::single_logout::{self, Finish, deliver};

/// The SAML routes.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new()
        .reserve_prefix("/saml/")
        .route("/saml/metadata", get(metadata))
        .route("/saml/sso", get(sso_redirect).post(sso_post))
        .route("/saml/init/{sp}", get(idp_initiated))
        .route(SAML_RESUME, get(resume))
        .route("/saml/slo", get(slo_redirect).post(slo_post))
        .route(single_logout::FRAME_PATH, get(slo_frame))
        .route(single_logout::DONE_PATH, get(slo_done))
}

/// Keycloak's SAML URLs of the realm at `base`: `/protocol/saml` takes AuthnRequests and LogoutRequests (and
/// LogoutResponses) by HTTP-Redirect and HTTP-POST, `/protocol/saml/descriptor` is the metadata, and
/// `/protocol/saml/clients/{name}` starts an IdP-initiated login (`RelayState` query parameter, or the SP's
/// `default_relay_state`).
pub fn realm_router(base: &str) -> OwnRoutes<AppState> {
    OwnRoutes::new()
        .route_owned(format!("{base}/protocol/saml"), get(realm_redirect).post(realm_post))
        .route_owned(format!("{base}/protocol/saml/descriptor"), get(metadata))
        .route_owned(format!("{base}/protocol/saml/clients/{{sp}}"), get(idp_initiated))
}

/// `/protocol/saml` by HTTP-Redirect: a LogoutRequest or LogoutResponse goes to Single Logout, anything else to SSO.
async fn realm_redirect(
    state: State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let raw = q.unwrap_or_default();
    let request = url::form_urlencoded::parse(raw.as_bytes()).find(|(k, _)| k == "SAMLRequest").map(|(_, v)| v);
    let logout = raw.split('&').any(|p| p.starts_with("SAMLResponse="))
        || request.is_some_and(|r| federation::saml::authn_request::is_logout_request(&r, true));
    if logout {
        slo_redirect(state, uri, headers, RawQuery(Some(raw))).await
    } else {
        sso_redirect(state, uri, headers, RawQuery(Some(raw))).await
    }
}

/// `/protocol/saml` by HTTP-POST, dispatched like [`realm_redirect`].
async fn realm_post(
    state: State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    Form(form): Form<PostBinding>,
) -> Result<Response, AppError> {
    let logout = form.saml_response.as_deref().is_some_and(|v| !v.is_empty())
        || federation::saml::authn_request::is_logout_request(&form.saml_request, false);
    if logout {
        slo_post(state, uri, headers, Form(form)).await
    } else {
        sso_post(state, uri, headers, Form(form)).await
    }
}

fn idp(state: &AppState) -> Result<&std::sync::Arc<IdentityProvider>, AppError> {
    state.saml.as_ref().ok_or_else(|| AppError::NotFound("SAML is not configured on this gateway.".into()))
}

async fn metadata(State(state): State<AppState>) -> Result<Response, AppError> {
    let xml = idp(&state)?.metadata_xml();
    Ok(([(header::CONTENT_TYPE, "application/samlmetadata+xml")], xml).into_response())
}

/// The `RelayState` of an HTTP-Redirect query, read by its raw name as the signature check reads it (the
/// federation refuses a query that spells it otherwise or twice).
fn relay_state_from(raw_query: &str) -> Option<String> {
    federation::saml::authn_request::redirect_parameter(raw_query, "RelayState")
}

/// Keycloak's `kc_idp_hint` in the SSO URL's query (it is not part of the SAML message, and not signed: it only
/// chooses where the user signs in, among the providers configured here). Bounded; empty, repeated or oversized is
/// no hint.
fn idp_hint_from(query: Option<&str>) -> Option<String> {
    let mut hints = url::form_urlencoded::parse(query?.as_bytes()).filter(|(k, _)| k == "kc_idp_hint");
    let hint = hints.next()?.1;
    (hints.next().is_none() && !hint.is_empty() && hint.len() <= 128).then(|| hint.into_owned())
}

async fn sso_redirect(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let raw = q.unwrap_or_default();
    let relay = relay_state_from(&raw);
    idp(&state)?.check_relay_state(relay.as_deref())?;
    let (mut request, sp) = idp(&state)?.redirect_request(&raw)?;
    check_destination(&state, &request, uri.path())?;
    request.idp_hint = idp_hint_from(Some(&raw));
    let sp = sp.name().to_string();
    proceed(&state, &headers, &sp, Some(request), relay).await
}

#[derive(Deserialize)]
struct PostBinding {
    #[serde(rename = "SAMLRequest", default)]
    saml_request: String,
    /// An SP's LogoutResponse to our LogoutRequest (at `/saml/slo`).
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
    /// Set when fedgate's own page posted this request again ([`repost_same_site`]).
    #[serde(rename = "fedgate_reposted")]
    reposted: Option<String>,
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
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Form(form): Form<PostBinding>,
) -> Result<Response, AppError> {
    idp(&state)?.check_relay_state(form.relay_state.as_deref())?;
    let (mut request, sp) = idp(&state)?.post_request(form.saml_request()?)?;
    check_destination(&state, &request, uri.path())?;
    request.idp_hint = idp_hint_from(uri.query());
    // As for LogoutRequests: an SP's page on another site posts without the `SameSite=Lax` session cookie, so a
    // signed-in user would be asked to sign in again. The checked request is posted once more from our own page.
    if cross_site_without_session(&state, &headers, &form) {
        // The hint is in the SSO URL's query: the re-post goes to the same URL, hint included.
        let target = match &request.idp_hint {
            Some(h) => {
                format!("{}?{}", uri.path(), serde_urlencoded::to_string([("kc_idp_hint", h)]).unwrap_or_default())
            }
            None => uri.path().to_string(),
        };
        return Ok(repost_same_site(&state, &target, &form));
    }
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
    // Taken at once (one atomic take across replicas, read at the same time as the session): the same pending
    // AuthnRequest resumed twice, on one replica or two, is answered once.
    let (taken, session) = tokio::join!(state.pending.take(&q.id), current_session(&state, &headers));
    match taken? {
        Some(Pending::Saml { sp, request, relay_state }) => {
            if session?.is_none() {
                // Not signed in (the login did not stick, or this link was opened elsewhere): the request waits
                // again, under a new id, keeping where it asked to sign in.
                let hint = request.as_ref().and_then(|r| idp_hint(&state, r));
                let id = state.pending.put(Pending::Saml { sp: sp.clone(), request, relay_state }).await?;
                return Ok(login_for(&resume_target(SAML_RESUME, &id, ("sp", &sp)), false, hint.as_deref()));
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
        let request_hint = request.as_ref().and_then(|r| idp_hint(state, r));
        if let Some(r) = request.as_ref().filter(|r| r.is_passive) {
            // "Sign in only if already signed in": the SP gets its answer (NoPassive), the user sees no page of ours.
            let idp = idp(state)?;
            let answer = idp.no_passive(idp.by_name(sp)?, r, state.clock.now())?;
            tracing::info!(sp, "passive AuthnRequest without a session: answering NoPassive");
            return Ok(post_form(&answer, relay_state.as_deref()));
        }
        let id = state
            .pending
            .put(Pending::Saml { sp: sp.to_string(), request: request.map(Box::new), relay_state })
            .await?;
        let target = resume_target(SAML_RESUME, &id, ("sp", sp));
        return Ok(login_for(&target, force, request_hint.as_deref()));
    }
    proceed_after_login(state, headers, sp, request, relay_state).await
}

/// The hint of `request`, when it names a configured `[[upstream.oidc]]` provider (as a name, never a URL).
fn idp_hint(state: &AppState, request: &AuthnRequest) -> Option<String> {
    request.idp_hint.as_deref().and_then(|h| state.brokers.get(h)).map(|p| p.config.name.clone())
}

/// The login page for `target`: a fresh login (`ForceAuthn`), or straight on to provider `idp`.
fn login_for(target: &str, force: bool, idp: Option<&str>) -> Response {
    if !force && idp.is_none() {
        return to_login(target);
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("rd", target);
    if force {
        q.append_pair("force", "1");
    }
    if let Some(idp) = idp {
        q.append_pair("idp", idp);
    }
    axum::response::Redirect::to(&format!("/login?{}", q.finish())).into_response()
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
    let principal = from_session(&session);
    let transient_format = federation::saml::NameIdFormat::Transient.uri();
    let earlier_transient = session
        .saml_sps
        .iter()
        .find(|r| r.sp == sp_name && r.nameid_format == transient_format)
        .map(|r| r.name_id.as_str());
    let signed = idp.respond_in_session(sp, &principal, request.as_ref(), earlier_transient, state.clock.now())?;
    if let (Some(index), Some(name_id)) = (&signed.session_index, &signed.name_id) {
        let sign_in = SamlSignIn {
            sp: sp_name.to_string(),
            nameid_format: name_id.format.uri().to_string(),
            name_id: name_id.value.clone(),
            session_index: index.clone(),
        };
        // Recorded without losing what another request or replica records in the same session at the same time.
        let record = move |updated: &mut crate::domain::session::Session| {
            if !updated.signed_in_to.contains(&sign_in.sp) {
                updated.signed_in_to.push(sign_in.sp.clone());
            }
            if !updated.saml_session_indexes.contains(&sign_in.session_index) {
                // Bounded: a long session that signs in to SPs all day keeps only the latest indexes.
                if updated.saml_session_indexes.len() >= MAX_SESSION_INDEXES {
                    updated.saml_session_indexes.remove(0);
                }
                updated.saml_session_indexes.push(sign_in.session_index.clone());
            }
            match updated.saml_sps.iter_mut().find(|r| r.sp == sign_in.sp) {
                Some(r) => *r = sign_in.clone(),
                None => updated.saml_sps.push(sign_in.clone()),
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
    single_logout::post_field(&signed.acs_url, "SAMLResponse", &signed.saml_response, relay_state)
}

/// Whether a NameID format's values are opaque (compared exactly, never case-folded).
fn opaque(format_uri: &str) -> bool {
    use federation::saml::NameIdFormat;
    [NameIdFormat::Transient.uri(), NameIdFormat::Persistent.uri()].contains(&format_uri)
}

/// How many SAML `SessionIndex` values a session remembers.
const MAX_SESSION_INDEXES: usize = 16;

#[derive(Deserialize)]
struct ChainQuery {
    chain: String,
    #[serde(default)]
    sp: String,
}

/// One SP's LogoutRequest of a logout in progress, in an iframe of the "Signing out" page.
async fn slo_frame(State(state): State<AppState>, Query(q): Query<ChainQuery>) -> Result<Response, AppError> {
    single_logout::frame(&state, &q.chain, &q.sp).await
}

/// Where the "Signing out" page moves on to: the SPs that did not answer are listed, then the logout's finish.
async fn slo_done(State(state): State<AppState>, Query(q): Query<ChainQuery>) -> Result<Response, AppError> {
    single_logout::done(&state, &q.chain).await
}

async fn slo_redirect(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let raw = q.unwrap_or_default();
    let idp = idp(&state)?;
    if raw.split('&').any(|p| p.starts_with("SAMLResponse=")) {
        let (response, sp) = idp.logout_response_redirect(&raw)?;
        let relay = relay_state_from(&raw);
        let irt = response.in_response_to.as_deref();
        return single_logout::on_response(&state, relay.as_deref(), sp.name(), irt, response.success).await;
    }
    let (request, sp) = idp.logout_redirect(&raw)?;
    request.timing.check("LogoutRequest", &arrived_at(&state, uri.path()), state.clock.now())?;
    logout(&state, &headers, idp, sp, &request, relay_state_from(&raw)).await
}

async fn slo_post(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Form(form): Form<PostBinding>,
) -> Result<Response, AppError> {
    let idp = idp(&state)?;
    if let Some(value) = form.saml_response.as_deref().filter(|v| !v.is_empty()) {
        let (response, sp) = idp.logout_response_post(value)?;
        let irt = response.in_response_to.as_deref();
        return single_logout::on_response(&state, form.relay_state.as_deref(), sp.name(), irt, response.success).await;
    }
    let (request, sp) = idp.logout_post(form.saml_request()?)?;
    request.timing.check("LogoutRequest", &arrived_at(&state, uri.path()), state.clock.now())?;
    if cross_site_without_session(&state, &headers, &form) {
        return Ok(repost_same_site(&state, uri.path(), &form));
    }
    logout(&state, &headers, idp, sp, &request, form.relay_state).await
}

/// A POST from another site's page (`Sec-Fetch-Site: cross-site`) that brought no session cookie and was not
/// posted again by [`repost_same_site`] already.
fn cross_site_without_session(state: &AppState, headers: &HeaderMap, form: &PostBinding) -> bool {
    form.reposted.is_none()
        && headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site")
        && crate::state::sign_in::session_id(state, headers).is_none()
}

/// The SP's page posted a LogoutRequest (or an AuthnRequest) from another site, and a browser sends no `SameSite=Lax` session cookie
/// with a cross-site POST: fedgate would find no session, end nothing and still tell the SP Success, leaving the
/// user signed in everywhere else. So the (already checked) request is posted once more, unchanged, by an
/// auto-submitting page of fedgate's own, which is same-site and carries the cookie (as SimpleSAMLphp and
/// Shibboleth do). The second post is marked and never posted again.
fn repost_same_site(state: &AppState, path: &str, form: &PostBinding) -> Response {
    let action = arrived_at(state, path);
    let mut fields = vec![("SAMLRequest", form.saml_request.as_str())];
    if let Some(r) = &form.relay_state {
        fields.push(("RelayState", r.as_str()));
    }
    fields.push(("fedgate_reposted", "1"));
    let (html, csp) = federation::saml::post_form::render_fields(&action, &fields);
    let mut resp = axum::response::Html(html).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}

/// An AuthnRequest's `Destination`, when present, must be the URL it arrived at (SAML core §3.2.1, as Shibboleth
/// and Keycloak check it, and as fedgate checks LogoutRequests): a request an SP sent to another IdP is not taken
/// here.
fn check_destination(
    state: &AppState,
    request: &federation::saml::authn_request::AuthnRequest,
    path: &str,
) -> Result<(), AppError> {
    let Some(destination) = &request.destination else { return Ok(()) };
    let expected = arrived_at(state, path);
    let norm = |s: &str| s.trim().trim_end_matches('/').to_string();
    if norm(destination) == norm(&expected) {
        return Ok(());
    }
    Err(federation::saml::SamlError::WrongDestination {
        message: "AuthnRequest",
        destination: destination.clone(),
        expected,
    }
    .into())
}

/// The public URL of `path` on this gateway: where an SP's message arrived, which its `Destination` must name.
fn arrived_at(state: &AppState, path: &str) -> String {
    state.config.server.public_url.join(path.trim_start_matches('/')).map_or_else(|_| path.to_string(), String::from)
}

/// Ends this browser's session only when the (signature-checked) request names its user and the session signed
/// in to this SP, then answers the SP with a signed LogoutResponse by its SingleLogoutService binding. A request
/// that names nobody or someone else (a cross-site GET any page can trigger) ends nothing and answers with a
/// Responder status. An SP without a SingleLogoutService, or one that asked for no answer (`<aslo:Asynchronous/>`),
/// gets none: the browser sees the signed-out page (or, when nothing was ended, an error).
async fn logout(
    state: &AppState,
    headers: &HeaderMap,
    idp: &IdentityProvider,
    sp: &ServiceProvider,
    request: &LogoutRequest,
    relay_state: Option<String>,
) -> Result<Response, AppError> {
    // Checked and fresh: a request from an SP with a certificate (so signed, and verified) is taken once, and a
    // captured one replayed within its lifetime is refused. An SP without one sends unsigned requests anyone could
    // make up anyway; their IDs are not stored, so nobody can fill the store with made-up IDs.
    if sp.certificate_der.is_some() && !state.seen_saml.first_use(&request.issuer, &request.id).await? {
        tracing::warn!(sp = sp.name(), "a SAML LogoutRequest ID came again: refused as a replay");
        return Err(federation::saml::SamlError::Replayed { message: "LogoutRequest", id: request.id.clone() }.into());
    }
    let mut success = true;
    let mut ended = None;
    // Decided on the session as the store holds it, not this replica's first-level copy: the sign-in to this SP
    // (its NameID and SessionIndex) may have been recorded by another replica within the last cache_ttl.
    if let Some((id, session)) = latest_session(state, headers).await? {
        let principal = from_session(&session);
        // The NameID this session gave the SP (transient and persistent ones are not the username); sessions from
        // before those records existed fall back to the SP's configured NameID.
        let names_this_user = match (request.name_id.as_deref(), session.saml_sps.iter().find(|r| r.sp == sp.name())) {
            // Opaque values (transient, persistent) exactly; a username or mail address whatever its case.
            (Some(asked), Some(record)) if opaque(&record.nameid_format) => {
                fedgate_types::random::secure_eq(asked, &record.name_id)
            }
            (Some(asked), Some(record)) => {
                fedgate_types::random::secure_eq(asked.to_lowercase(), record.name_id.to_lowercase())
            }
            (asked, None) => sp.is_subject_of_logout(asked, &principal),
            (None, Some(_)) => false,
        };
        let signed_in_here = session.signed_in_to.iter().any(|s| s == sp.name());
        // SAML core §3.7.1: with a SessionIndex, only the session that assertion was issued to is meant.
        let index_matches =
            request.session_index.as_ref().is_none_or(|i| session.saml_session_indexes.iter().any(|s| s == i));
        if names_this_user && signed_in_here && index_matches {
            ended = Some(end_session(state, id, &session).await?);
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
    let answer = if request.asynchronous || sp.slo.is_none() {
        tracing::info!(
            sp = sp.name(),
            asynchronous = request.asynchronous,
            "no LogoutResponse: the SP asked for none or has no SingleLogoutService"
        );
        None
    } else {
        Some(idp.logout_response(sp, request, success, relay_state.as_deref(), state.clock.now())?)
    };
    // The session ended: the other SPs of the session are signed out through the browser, then this one answered.
    if let Some((ended, session)) = ended {
        let finish = match answer {
            Some(message) => Finish::Respond { message, relay_state },
            None => Finish::Page { next: None },
        };
        return single_logout::after_session_end(state, &session, ended, Some(sp.name()), finish).await;
    }
    let mut resp = match answer {
        Some(message) => deliver(&message, relay_state.as_deref()),
        None if success => crate::state::sign_in::logged_out_page(state),
        None => {
            return Err(AppError::BadRequest(
                "This sign-out request is not for the session of this browser, so nothing was signed out.".into(),
            ));
        }
    };
    if success {
        crate::state::sign_in::clear_session_cookies(state, &mut resp);
    }
    Ok(resp)
}
