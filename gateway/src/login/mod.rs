//! `GET|POST /login` and `GET|POST /logout`: the one path every protocol starts from; the account page.

pub mod account;
pub mod apps;
pub mod upstream;

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::domain::directory::AuthError;
use crate::domain::session::{AuthMethod, Session};
use crate::domain::store::Chain;
use crate::domain::throttle::Refused;
use crate::http::cookies::{self, CSRF_COOKIE, CookieAttrs, SameSite};
use crate::http::error::AppError;
use crate::http::pages::{self, LoginForm};
use crate::http::paths::OwnRoutes;
use crate::http::redirect::safe_target;
use crate::state::AppState;
use crate::state::sign_in::{current_session, end_session, logged_out_page, no_store, session_cookie_attrs};
use crate::state::single_logout;
use fedgate_types::random;

/// The login and logout routes.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new()
        .route("/login", get(login_get).post(login_post))
        .route("/logout", get(logout_get).post(logout_post))
        .merge(account::router())
        .merge(upstream::router())
}

/// Keycloak's account console URL of the realm at `base`: the account page.
pub fn realm_router(base: &str) -> OwnRoutes<AppState> {
    account::realm_router(base)
}

/// Longest username the login form takes (LDAP uid / sAMAccountName / UPN are far shorter).
const MAX_USERNAME_BYTES: usize = 256;
/// Longest password the login form takes.
const MAX_PASSWORD_BYTES: usize = 4096;

/// The CSRF cookie's attributes: `Strict`, since only the login form, on this site, posts it back.
fn csrf_cookie_attrs(state: &AppState) -> CookieAttrs<'static> {
    CookieAttrs { secure: state.secure_cookies(), same_site: SameSite::Strict, domain: None, max_age: None }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    rd: String,
    /// Show the form even with a live session (OIDC `prompt=login`, `max_age`).
    #[serde(default)]
    force: Option<String>,
    /// Prefill the username (OIDC `login_hint`).
    #[serde(default)]
    login_hint: Option<String>,
    /// Go straight to this `[[upstream.oidc]]` provider.
    #[serde(default)]
    idp: Option<String>,
    /// Keycloak's name for `idp`.
    #[serde(default)]
    kc_idp_hint: Option<String>,
}

async fn login_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let cfg = &state.config;
    let rd = safe_target(&q.rd, &cfg.server.public_url, &cfg.redirect_allowlist()).unwrap_or_default();
    if q.force.is_none() && current_session(&state, &headers).await?.is_some() && !rd.is_empty() {
        return Ok(Redirect::to(&rd).into_response());
    }
    if let Some(resp) = upstream::direct(&state, q.idp.as_deref().or(q.kc_idp_hint.as_deref()), &rd) {
        return Ok(resp);
    }
    let hint = q.login_hint.as_deref().filter(|h| h.len() <= 256).unwrap_or("");
    Ok(render_form(&state, &rd, hint, None, StatusCode::OK).await)
}

/// Renders the login form with a fresh CSRF token (double-submit: cookie + hidden field).
async fn render_form(state: &AppState, rd: &str, username: &str, error: Option<&str>, status: StatusCode) -> Response {
    let csrf = random::token();
    let app = app_name(state, rd);
    let buttons = upstream::buttons(state, rd);
    let form = LoginForm {
        csrf: &csrf,
        rd,
        username,
        error,
        app: app.as_deref(),
        password: state.config.login.password,
        upstreams: &buttons,
    };
    let page = pages::login(&state.config.ui, &form);
    let mut resp = (status, page).into_response();
    if let Some(c) = cookies::set(CSRF_COOKIE.name(state.secure_cookies()), &csrf, csrf_cookie_attrs(state)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    no_store(&mut resp);
    resp
}

/// The app's request waiting behind a login target (`/oauth2/authorize/resume?id=…`, `/saml/resume?id=…`), if any.
async fn pending_behind(state: &AppState, rd: &str) -> Option<crate::domain::pending::Pending> {
    let url = url::Url::parse("http://gateway.invalid").ok()?.join(rd).ok()?;
    let id = url.query_pairs().find(|(k, _)| k == "id").map(|(_, v)| v.into_owned())?;
    state.pending.get(&id).await.ok()?
}

/// The name of the app the user came from: the configured name of the OIDC client or SAML SP that the resume URL
/// in `rd` names (`/oauth2/authorize/resume?id=…&client=…`, `/saml/resume?id=…&sp=…`, see
/// [`resume_target`](crate::state::sign_in::resume_target)).
/// Read from the URL rather than the pending request, so showing the form costs no store round trip. A made-up
/// `client` or `sp` can only name an app that is configured, which anyone can do by starting a real sign-in to it.
fn app_name(state: &AppState, rd: &str) -> Option<String> {
    use crate::state::sign_in::{OIDC_RESUME, SAML_RESUME};
    let url = url::Url::parse("http://gateway.invalid").ok()?.join(rd).ok()?;
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    match url.path() {
        OIDC_RESUME => {
            let client = state.oidc.as_ref()?.client(&param("client")?)?;
            Some(client.name.clone().unwrap_or_else(|| client.client_id.clone()))
        }
        SAML_RESUME => {
            let sp = state.saml.as_ref()?.by_name(&param("sp")?).ok()?;
            Some(sp.config.display_name.clone().unwrap_or_else(|| sp.name().to_string()))
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct LoginFormData {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rd: String,
}

async fn login_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginFormData>,
) -> Result<Response, AppError> {
    let cfg = &state.config;
    if !cfg.login.password {
        return Err(AppError::NotFound("password sign-in is turned off (login.password = false)".into()));
    }
    let csrf_ok = cookies::get(&headers, CSRF_COOKIE.name(state.secure_cookies()))
        .is_some_and(|c| !c.is_empty() && random::secure_eq(c, &form.csrf));
    if !csrf_ok {
        tracing::info!(client_ip = %peer.ip(), outcome = "refused", reason = "csrf token missing or wrong", "login attempt");
        return Err(AppError::Csrf);
    }
    let rd = safe_target(&form.rd, &cfg.server.public_url, &cfg.redirect_allowlist()).unwrap_or_default();
    let username = form.username.trim();
    if username.len() > MAX_USERNAME_BYTES || form.password.len() > MAX_PASSWORD_BYTES {
        // Never kept, logged or sent to the directory: the throttle would otherwise key on (and hold) any size.
        let msg = format!(
            "The username (at most {MAX_USERNAME_BYTES} bytes) or password (at most {MAX_PASSWORD_BYTES} bytes) is too long."
        );
        return Ok(render_form(&state, &rd, "", Some(&msg), StatusCode::BAD_REQUEST).await);
    }
    let ip = peer.ip();
    let now = state.clock.now();
    // Found first, so failures count against the account whatever spelling of its name the directory matched
    // (a name with no account is counted under its folded form only). Then every lockout that applies (typed
    // name, IP, account) is read in one store round trip; a locked-out attempt costs a directory search but
    // never reaches the password check (no bind).
    let target = match state.directory.find(username).await {
        Ok(t) => t,
        Err(e) => return Err(directory_error(&state, username, ip, e)),
    };
    let account = target.account();
    let gate = match state.throttle.gate(username, account.as_deref(), ip, now).await {
        Ok(gate) => gate,
        Err(Refused::Locked { retry_after }) => {
            tracing::info!(username, client_ip = %ip, outcome = "throttled", retry_after, "login attempt");
            state.metrics.event("login", "throttled");
            return Err(AppError::Throttled { retry_after });
        }
        Err(Refused::Unavailable(e)) => {
            // Never check a password whose failure could not be counted (the throttle's module docs say why).
            tracing::warn!(username, client_ip = %ip, outcome = "error", reason = "failure counters unreadable", error = %Chain(&e), "login attempt");
            state.metrics.event("login", "store_unavailable");
            return Err(e.into());
        }
    };
    match state.directory.verify(target, &form.password).await {
        Ok(user) => {
            state.throttle.clear(gate).await;
            tracing::info!(username = %user.username, client_ip = %ip, outcome = "success", "login attempt");
            state.metrics.event("login", "success");
            // A new id at every login: an id planted before login is worthless after it (no session fixation).
            if let Some((old, _)) = current_session(&state, &headers).await? {
                state.sessions.remove(old).await?;
            }
            let id = random::token();
            state.sessions.insert(&id, Session::new(user, AuthMethod::Password, now)).await?;
            let target = if rd.is_empty() { "/".to_string() } else { rd };
            let mut resp = Redirect::to(&target).into_response();
            if let Some(c) = cookies::set(&cfg.session.cookie_name, &id, session_cookie_attrs(&state)) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            crate::state::sign_in::clear_keycloak_session_cookie(&state, &mut resp);
            if let Some(c) = cookies::clear(CSRF_COOKIE.name(state.secure_cookies()), csrf_cookie_attrs(&state)) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            Ok(resp)
        }
        Err(AuthError::InvalidCredentials) => {
            if let Err(e) = state.throttle.record_failure(username, account.as_deref(), ip, now).await {
                // Uncounted, "invalid" would tell a wrong password from the right one (which gets the 503 now, its
                // session being unstorable): answer both alike.
                tracing::warn!(username, client_ip = %ip, outcome = "error", reason = "failure not counted", error = %Chain(&e), "login attempt");
                state.metrics.event("login", "store_unavailable");
                return Err(e.into());
            }
            tracing::info!(username, client_ip = %ip, outcome = "failure", reason = "invalid credentials", "login attempt");
            state.metrics.event("login", "failure");
            Ok(render_form(&state, &rd, username, Some("Invalid username or password."), StatusCode::UNAUTHORIZED)
                .await)
        }
        Err(AuthError::PasswordChangeRequired) => {
            // Only the password's owner gets this answer (AD checks the password first): say so, not "invalid".
            tracing::info!(username, client_ip = %ip, outcome = "failure", reason = "password change required", "login attempt");
            state.metrics.event("login", "password_change_required");
            let mut resp = (StatusCode::FORBIDDEN, pages::password_change_required(&state.config.ui)).into_response();
            no_store(&mut resp);
            Ok(resp)
        }
        Err(e) => Err(directory_error(&state, username, ip, e)),
    }
}

fn directory_error(state: &AppState, username: &str, ip: std::net::IpAddr, e: AuthError) -> AppError {
    tracing::warn!(username, client_ip = %ip, outcome = "error", reason = %e, "login attempt");
    state.metrics.event("login", "directory_error");
    e.into()
}

async fn logout_get(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some((_, session)) = current_session(&state, &headers).await? else {
        return Ok(logged_out_page(&state));
    };
    let mut resp = pages::logout_confirm(&state.config.ui, &session.csrf, &session.user.username).into_response();
    no_store(&mut resp);
    Ok(resp)
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Result<Response, AppError> {
    let Some((id, session)) = current_session(&state, &headers).await? else {
        return Ok(logged_out_page(&state));
    };
    if !random::secure_eq(&session.csrf, &form.csrf) {
        return Err(AppError::Csrf);
    }
    let (ended, session) = end_session(&state, id, &session).await?;
    // `logout_upstream = true`: the upstream provider's session ends too (its end_session_endpoint, then back here).
    let next = upstream::end_session_url(&state, &session).map(|u| u.to_string());
    single_logout::after_session_end(&state, &session, ended, None, single_logout::Finish::Page { next }).await
}
