//! `GET /login/{name}` (start a sign-in at an upstream OpenID Connect provider) and `GET /login/{name}/callback`
//! (its redirect URI): the browser is bound to the sign-in by a cookie, the pending sign-in is kept server-side
//! under its `state` and used once.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::broker::{BrokerError, UpstreamHints, UpstreamProvider};
use crate::config::LinkMode;
use crate::domain::pending::Pending;
use crate::domain::session::{AuthMethod, Session, UpstreamSignIn};
use crate::http::cookies::{self, CookieAttrs, SameSite, UPSTREAM_BINDING_COOKIE};
use crate::http::error::AppError;
use crate::http::pages;
use crate::http::paths::OwnRoutes;
use crate::http::redirect::safe_target;
use crate::state::AppState;
use crate::state::sign_in::{current_session, no_store, session_cookie_attrs};
use fedgate_types::random;

/// The upstream sign-in routes.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new().route("/login/{name}", get(start)).route("/login/{name}/callback", get(callback))
}

/// `Lax`: the callback is a top-level navigation from the provider's site.
fn binding_attrs(state: &AppState) -> CookieAttrs<'static> {
    CookieAttrs { secure: state.secure_cookies(), same_site: SameSite::Lax, domain: None, max_age: Some(15 * 60) }
}

/// An error page for an upstream sign-in, with a way back to the login page.
pub fn error_page(state: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    let link = pages::Link { href: "/login", text: "Back to sign-in" };
    let mut resp = (status, pages::message(&state.config.ui, title, message, Some(link))).into_response();
    no_store(&mut resp);
    resp
}

fn broker_error(state: &AppState, provider: &str, e: &BrokerError) -> Response {
    let (status, title) = match e {
        BrokerError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "Sign-in provider unavailable"),
        BrokerError::Mapping { .. } => (StatusCode::FORBIDDEN, "Sign-in refused"),
        _ => (StatusCode::BAD_REQUEST, "Sign-in failed"),
    };
    state.metrics.event("login", "upstream_refused");
    // What failed on the way to the provider (addresses, resolver and TLS errors) is for the operator: logged with
    // its cause chain; an anonymous visitor reads the provider's name and a generic reason.
    if let BrokerError::Unavailable { provider: label, .. } = e {
        tracing::warn!(provider, outcome = "unavailable", reason = %e, "upstream login");
        let message = format!("{label} is unavailable right now. Try again in a moment, or sign in another way.");
        return error_page(state, status, title, &message);
    }
    tracing::info!(provider, outcome = "refused", reason = %e, "upstream login");
    error_page(state, status, title, &e.to_string())
}

/// The 404 page for a path naming no `[[upstream.oidc]]` provider.
fn unknown_provider(state: &AppState) -> Response {
    error_page(state, StatusCode::NOT_FOUND, "Unknown sign-in provider", "No sign-in provider has that name.")
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    #[serde(default)]
    rd: String,
}

async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Result<Response, AppError> {
    let Some(provider) = state.brokers.get(&name).cloned() else { return Ok(unknown_provider(&state)) };
    let cfg = &state.config;
    let rd = safe_target(&q.rd, &cfg.server.public_url, &cfg.redirect_allowlist()).unwrap_or_default();
    // One binding per browser, kept across sign-ins started in several tabs.
    let binding = cookies::get(&headers, UPSTREAM_BINDING_COOKIE.name(state.secure_cookies()))
        .filter(|b| b.len() == 43 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
        .map_or_else(random::token, str::to_string);
    let hints = upstream_hints(&state, &rd).await;
    let (url, login) = match provider.start(rd, binding.clone(), &hints).await {
        Ok(x) => x,
        Err(e) => return Ok(broker_error(&state, &name, &e)),
    };
    state.pending.put_as(login.state.clone(), Pending::Upstream(Box::new(login))).await?;
    let mut resp = Redirect::to(url.as_str()).into_response();
    if let Some(c) = cookies::set(UPSTREAM_BINDING_COOKIE.name(state.secure_cookies()), &binding, binding_attrs(&state))
    {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    no_store(&mut resp);
    Ok(resp)
}

/// What the app's request waiting behind `rd` asks of the sign-in: an OIDC request's `login_hint` and `prompt`
/// values, a SAML AuthnRequest's `ForceAuthn` (as `prompt=login`). Read from the request itself, so the hints
/// reach the provider whether the browser came straight (`kc_idp_hint`) or by the login page's button.
async fn upstream_hints(state: &AppState, rd: &str) -> UpstreamHints {
    match super::pending_behind(state, rd).await {
        Some(Pending::Oidc(req)) => UpstreamHints {
            login_hint: req.login_hint.clone(),
            prompt: (!req.prompt_values.is_empty()).then(|| req.prompt_values.join(" ")),
        },
        Some(Pending::Saml { request: Some(r), .. }) if r.force_authn => {
            UpstreamHints { login_hint: None, prompt: Some("login".into()) }
        }
        _ => UpstreamHints::default(),
    }
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let Some(provider) = state.brokers.get(&name).cloned() else { return Ok(unknown_provider(&state)) };
    // Used once, whatever the outcome: a replayed callback finds nothing.
    let taken = if q.state.len() <= 128 { state.pending.take(&q.state).await? } else { None };
    let login = match taken {
        Some(Pending::Upstream(login)) if login.provider == name => *login,
        _ => {
            tracing::info!(provider = %name, outcome = "refused", reason = "unknown, expired or used state", "upstream login");
            return Ok(error_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "This sign-in is unknown, has expired or was already used. Please sign in again.",
            ));
        }
    };
    let bound = cookies::get(&headers, UPSTREAM_BINDING_COOKIE.name(state.secure_cookies()))
        .is_some_and(|b| random::secure_eq(b, &login.binding));
    if !bound {
        tracing::info!(provider = %name, outcome = "refused", reason = "binding cookie missing or wrong", "upstream login");
        return Ok(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "This sign-in was not started in this browser. Please sign in again.",
        ));
    }
    if let Some(error) = q.error {
        let error = match q.error_description {
            Some(d) => format!("{error}: {d}"),
            None => error,
        };
        let error: String = error.chars().filter(|c| !c.is_control()).take(300).collect();
        let e = BrokerError::Denied { provider: provider.label().into(), error };
        return Ok(broker_error(&state, &name, &e));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return Ok(error_page(&state, StatusCode::BAD_REQUEST, "Sign-in failed", "The provider sent no code."));
    };
    let now = state.clock.now();
    let identity = match provider.finish(&code, &login, now).await {
        Ok(i) => i,
        Err(e) => return Ok(broker_error(&state, &name, &e)),
    };
    let user = match user_for(&state, &provider, &identity.claims).await {
        Ok(u) => u,
        Err(resp) => return Ok(resp),
    };
    tracing::info!(provider = %name, username = %user.username, outcome = "success", "upstream login");
    state.metrics.event("login", "upstream_success");
    if let Some((old, _)) = current_session(&state, &headers).await? {
        state.sessions.remove(old).await?;
    }
    let id = random::token();
    let mut session = Session::new(user, AuthMethod::Upstream, now);
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    session.upstream = Some(UpstreamSignIn {
        provider: name.clone(),
        issuer: provider.config.issuer.clone(),
        amr: strings(identity.claims.get("amr")),
        acr: identity.claims.get("acr").and_then(|v| v.as_str()).map(str::to_string),
        id_token: provider.config.logout_upstream.then_some(identity.id_token),
    });
    state.sessions.insert(&id, session).await?;
    let target = if login.return_to.is_empty() { "/".to_string() } else { login.return_to };
    let mut resp = Redirect::to(&target).into_response();
    if let Some(c) = cookies::set(&state.config.session.cookie_name, &id, session_cookie_attrs(&state)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    crate::state::sign_in::clear_keycloak_session_cookie(&state, &mut resp);
    no_store(&mut resp);
    Ok(resp)
}

/// The fedgate user for verified upstream claims: mapped from the claims, or the one LDAP entry they link to.
async fn user_for(
    state: &AppState,
    provider: &UpstreamProvider,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<ldap_mapper::MappedUser, Response> {
    let name = &provider.config.name;
    match provider.config.link {
        LinkMode::None => {
            let user = provider.map_user(claims, &state.roles).map_err(|e| broker_error(state, name, &e))?;
            let user = refuse_directory_name(state, provider, user).await?;
            refuse_held_name(state, provider, user).await
        }
        LinkMode::Ldap => {
            provider.check_allowed(claims).map_err(|e| broker_error(state, name, &e))?;
            let claim = &provider.config.link_claim;
            let attribute = &provider.config.link_attribute;
            let value = provider.link_value(claims).map_err(|e| broker_error(state, name, &e))?;
            let Some(value) = value.as_deref() else {
                tracing::info!(provider = %name, claim = %claim, outcome = "refused", reason = "link claim missing", "upstream login");
                return Err(error_page(
                    state,
                    StatusCode::FORBIDDEN,
                    "Sign-in refused",
                    &format!("{} did not send the \"{claim}\" claim needed to find your account.", provider.label()),
                ));
            };
            match state.directory.find_by_attribute(attribute, value).await {
                Ok((_, Some(user))) => Ok(user),
                Ok((n, None)) => {
                    tracing::warn!(
                        provider = %name, claim = %claim, value = %value, attribute = %attribute, matches = n,
                        outcome = "refused", reason = "link found no single directory entry", "upstream login"
                    );
                    let msg = if n == 0 {
                        format!(
                            "No account in the directory has {attribute} = {value}, so your sign-in at {} cannot be linked to one.",
                            provider.label()
                        )
                    } else {
                        format!(
                            "{n} accounts in the directory have {attribute} = {value}, so your sign-in at {} cannot be linked to exactly one.",
                            provider.label()
                        )
                    };
                    Err(error_page(state, StatusCode::FORBIDDEN, "Sign-in refused", &msg))
                }
                Err(e) => Err(directory_unavailable(state, name, &e, "find")),
            }
        }
    }
}

/// `user` (mapped from a provider's claims, `link = "none"`) unless its username is a directory account's (in any
/// case or Unicode compatibility spelling): apps
/// behind the proxy (`X-Forwarded-User`), SAML service providers (the NameID) and relying parties reading
/// `preferred_username` know a user by that name, so an account at the provider named like a directory account
/// (a name anyone may choose at many providers) would be taken for it. As Keycloak does (its first broker login
/// never creates a second user of an existing name), the sign-in is refused with a page saying so; `link = "ldap"`
/// signs directory users in through the provider as themselves. A directory that cannot be asked refuses too (503).
async fn refuse_directory_name(
    state: &AppState,
    provider: &UpstreamProvider,
    user: ldap_mapper::MappedUser,
) -> Result<ldap_mapper::MappedUser, Response> {
    use crate::domain::throttle::fold_username;
    let name = &provider.config.name;
    // Compared as the throttle folds names (NFKC, any case): `ｐａｔ` is pat to an app that normalises, and to
    // slapd's matching rules.
    let folded = fold_username(&user.username);
    let mut found = state.directory.lookup(&user.username).await;
    if matches!(found, Ok(None)) && folded != user.username {
        found = state.directory.lookup(&folded).await;
    }
    match found {
        Ok(Some(existing)) if fold_username(&existing.username) == folded => {
            tracing::warn!(
                provider = %name, username = %user.username, outcome = "refused",
                reason = "the username is a directory account's; set link = \"ldap\" to sign directory users in through this provider",
                "upstream login"
            );
            Err(name_refused(
                state,
                &format!(
                    "An account named {} already exists here, so your sign-in at {} cannot use that name. Sign in \
                     with that account's password, or ask the administrator to link the two accounts.",
                    user.username,
                    provider.label()
                ),
            ))
        }
        Ok(_) => Ok(user),
        Err(e) => Err(directory_unavailable(state, name, &e, "check")),
    }
}

/// `user` (mapped from a provider's claims, `link = "none"`) unless another upstream account — at another provider,
/// or another subject at this one — signed in with that username first ([`UpstreamNames`]): downstream, a name is
/// one person, so the second account would be taken for the first. Refused with a page; an administrator frees the
/// name with `fedgate upstream release NAME`. A store that cannot be asked refuses too (503).
///
/// [`UpstreamNames`]: crate::domain::upstream_names::UpstreamNames
async fn refuse_held_name(
    state: &AppState,
    provider: &UpstreamProvider,
    user: ldap_mapper::MappedUser,
) -> Result<ldap_mapper::MappedUser, Response> {
    use crate::domain::upstream_names::Claim;
    let folded = crate::domain::throttle::fold_username(&user.username);
    let now = state.clock.now().unix_timestamp();
    match state.upstream_names.claim(&folded, &user.unique_id, now).await {
        Ok(Claim::Held) => Ok(user),
        Ok(Claim::TakenBy(holder)) => {
            tracing::warn!(
                provider = %provider.config.name, username = %user.username, unique_id = %user.unique_id,
                held_by = %holder, outcome = "refused",
                reason = "another upstream account holds the username; `fedgate upstream release` frees it",
                "upstream login"
            );
            Err(name_refused(
                state,
                &format!(
                    "The name {} is already used by another account that signed in here, so your sign-in at {} \
                     cannot use it. Ask the administrator to release the name or to link the accounts.",
                    user.username,
                    provider.label()
                ),
            ))
        }
        Err(e) => {
            tracing::warn!(provider = %provider.config.name, error = %crate::domain::store::Chain(&e), "upstream login: state store unavailable");
            Err(error_page(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Session store unavailable",
                "Your sign-in could not be completed because the session store is unavailable; try again later.",
            ))
        }
    }
}

/// The 403 page for an upstream account whose username is already someone else's (counted as a refused login).
fn name_refused(state: &AppState, message: &str) -> Response {
    state.metrics.event("login", "upstream_refused");
    error_page(state, StatusCode::FORBIDDEN, "Sign-in refused", message)
}

/// The page for a directory that could not be asked to `what` ("find", "check") the account, logged with its cause.
fn directory_unavailable(state: &AppState, name: &str, e: &dyn std::fmt::Display, what: &str) -> Response {
    tracing::warn!(provider = %name, error = %e, "upstream login: directory lookup failed");
    error_page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Directory unavailable",
        &format!("The directory could not be reached to {what} your account; try again later."),
    )
}

/// The login page's buttons, keeping `rd`.
pub fn buttons<'a>(state: &'a AppState, rd: &str) -> Vec<pages::UpstreamButton<'a>> {
    let q = if rd.is_empty() {
        String::new()
    } else {
        format!("?{}", serde_urlencoded::to_string([("rd", rd)]).unwrap_or_default())
    };
    state
        .brokers
        .all()
        .iter()
        .map(|p| pages::UpstreamButton {
            href: format!("/login/{}{q}", p.config.name),
            label: p.label(),
            available: p.available(),
        })
        .collect()
}

/// Where `/login` sends the browser straight away: `?idp=` / `kc_idp_hint=` naming a provider, or the only
/// provider when the password form is off.
pub fn direct(state: &AppState, hint: Option<&str>, rd: &str) -> Option<Response> {
    let name = match hint.filter(|h| !h.is_empty()) {
        Some(h) => state.brokers.get(h)?.config.name.clone(),
        None if !state.config.login.password && state.brokers.all().len() == 1 => {
            state.brokers.all().first()?.config.name.clone()
        }
        None => return None,
    };
    let q = if rd.is_empty() {
        String::new()
    } else {
        format!("?{}", serde_urlencoded::to_string([("rd", rd)]).unwrap_or_default())
    };
    Some(Redirect::to(&format!("/login/{name}{q}")).into_response())
}

/// Where to end the upstream session of `session`, when its provider has `logout_upstream = true`.
pub fn end_session_url(state: &AppState, session: &Session) -> Option<url::Url> {
    let up = session.upstream.as_ref()?;
    let provider = state.brokers.get(&up.provider)?;
    provider.end_session_url(up.id_token.as_deref(), &state.config.server.public_url)
}
