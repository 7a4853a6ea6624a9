//! The OpenID Connect endpoints: discovery, JWKS, authorize (+ resume after login), token, userinfo,
//! introspection, revocation and RP-initiated logout. The protocol logic is `federation::oidc`; this module only
//! speaks HTTP and connects it to the login session.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, Query, RawForm, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use federation::Principal;
use federation::oidc::{
    AuthorizationRequest, AuthorizeError, LoginDecision, Params, PrincipalRefresh, Provider, TokenError,
};
use tower_http::cors::{Any, CorsLayer};

use crate::domain::pending::Pending;
use crate::domain::principal::{from_session, from_user};
use crate::domain::session::OidcSignIn;
use crate::domain::throttle::Refused;
use crate::http::error::AppError;
use crate::http::paths::OwnRoutes;
use crate::state::AppState;
use crate::state::sign_in::{OIDC_RESUME, current_session, end_session, resume_target, to_login};

/// The OIDC routes. The JSON endpoints browsers call directly (discovery, JWKS, token, userinfo) allow CORS.
pub fn router() -> OwnRoutes<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    let browser_json = OwnRoutes::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth2/jwks", get(jwks))
        .route("/oauth2/token", post(token))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo_post))
        .map_router(|r| r.layer(cors));
    OwnRoutes::new()
        .reserve_prefix("/oauth2/")
        .merge(browser_json)
        .route("/oauth2/authorize", get(authorize).post(authorize))
        .route(OIDC_RESUME, get(resume))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/logout", get(logout).post(logout))
}

/// Keycloak's OIDC URLs of the realm at `base` (`{path_prefix}/realms/{realm}`): discovery, the endpoints under
/// `/protocol/openid-connect/`, and the static pages keycloak-js loads in iframes.
///
/// keycloak-js calls the token endpoint with `credentials: 'include'`, which needs CORS for the exact origin with
/// `Access-Control-Allow-Credentials`; as Keycloak does for a client's web origins, the browser JSON endpoints
/// allow the origins of the registered redirect URIs (none of these endpoints reads a cookie).
pub fn realm_router(base: &str, config: &crate::config::Config) -> OwnRoutes<AppState> {
    use federation::oidc::discovery::keycloak as kc;
    let origins: Vec<HeaderValue> = config
        .oidc
        .iter()
        .flat_map(|o| federation::oidc::claims::origins(o.clients.iter().flat_map(|c| &c.redirect_uris)))
        .filter_map(|o| HeaderValue::from_str(&o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    let at = |path: &str| format!("{base}{path}");
    let browser_json = OwnRoutes::new()
        .route_owned(at("/.well-known/openid-configuration"), get(discovery))
        .route_owned(at(kc::JWKS), get(jwks))
        .route_owned(at(kc::TOKEN), post(token))
        .route_owned(at(kc::USERINFO), get(userinfo).post(userinfo_post))
        .map_router(|r| r.layer(cors));
    // Public information any page may read (Keycloak answers it to every origin); no cookie is involved.
    let realm_info_route = OwnRoutes::new()
        .route_owned(base.to_string(), get(realm_info))
        .map_router(|r| r.layer(CorsLayer::new().allow_origin(Any).allow_methods([Method::GET])));
    OwnRoutes::new()
        .merge(browser_json)
        .merge(realm_info_route)
        .route_owned(at(kc::AUTHORIZE), get(authorize).post(authorize))
        .route_owned(at(kc::INTROSPECT), post(introspect))
        .route_owned(at(kc::REVOKE), post(revoke))
        .route_owned(at(kc::LOGOUT), get(keycloak_logout).post(keycloak_logout))
        .route_owned(at(kc::CHECK_SESSION_IFRAME), get(login_status_iframe))
        .route_owned(at(&format!("{}/init", kc::CHECK_SESSION_IFRAME)), get(login_status_iframe_init))
        .route_owned(at("/protocol/openid-connect/3p-cookies/step1.html"), get(third_party_cookies_step1))
        .route_owned(at("/protocol/openid-connect/3p-cookies/step2.html"), get(third_party_cookies_step2))
}

/// `GET {path_prefix}/realms/{realm}`: Keycloak's published realm information, which older adapters read for the
/// key that verifies tokens (keycloak-connect without `realm-public-key`, the Java/Spring adapters, Gatekeeper):
/// `realm`, `public_key` (the active signing key as base64 DER SubjectPublicKeyInfo when it is RSA, as Keycloak
/// publishes its RS256 key; `null` for an ES256 or EdDSA key, and those adapters then need the JWKS), the
/// `token-service` and `account-service` URLs, and `tokens-not-before` (always 0: fedgate revokes token families
/// instead of moving a not-before time).
async fn realm_info(State(state): State<AppState>) -> Result<Response, AppError> {
    use base64::Engine as _;
    let provider = oidc(&state)?;
    let realm = state.config.keycloak.as_ref().map(|k| k.realm.clone()).unwrap_or_default();
    let issuer = provider.issuer();
    let public_key =
        provider.keys().active().rsa_public_key_der().map(|d| base64::engine::general_purpose::STANDARD.encode(d));
    let body = serde_json::json!({
        "realm": realm,
        "public_key": public_key,
        "token-service": format!("{issuer}/protocol/openid-connect"),
        "account-service": format!("{issuer}/account"),
        "tokens-not-before": 0,
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// A static page for keycloak-js's iframes: it may be framed by any site and runs only its own inline script
/// (and, for the session-status iframe, fetches from its own origin).
fn iframe_page(body: &'static str) -> Response {
    let mut resp = axum::response::Html(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors *",
        ),
    );
    // CSP frame-ancestors overrides X-Frame-Options; an unknown value keeps the default DENY from being added.
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("ALLOWALL"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp
}

/// keycloak-js's third-party-cookie check, first page (`3p-cookies/step1.html`), as Keycloak's: it sets two
/// short-lived test cookies (one `SameSite=None; Secure`, one default) and goes on to step 2.
async fn third_party_cookies_step1() -> Response {
    iframe_page(
        "<!doctype html><html><body><script>\
         document.cookie = \"KEYCLOAK_3P_COOKIE_SAMESITE=supported; max-age=60; samesite=none; secure\";\
         document.cookie = \"KEYCLOAK_3P_COOKIE=supported; max-age=60\";\
         window.location.replace(\"step2.html\");\
         </script></body></html>",
    )
}

/// Step 2 (`3p-cookies/step2.html`): whether a test cookie came back, told to keycloak-js as `supported` (it then
/// loads the session-status iframe) or `unsupported` (it checks the session by redirecting instead).
async fn third_party_cookies_step2() -> Response {
    iframe_page(
        "<!doctype html><html><body><script>\
         var ok = document.cookie.indexOf(\"KEYCLOAK_3P_COOKIE\") !== -1;\
         document.cookie = \"KEYCLOAK_3P_COOKIE_SAMESITE=; max-age=0; samesite=none; secure\";\
         document.cookie = \"KEYCLOAK_3P_COOKIE=; max-age=0\";\
         window.parent.postMessage(ok ? \"supported\" : \"unsupported\", \"*\");\
         </script></body></html>",
    )
}

/// keycloak-js's session-status iframe (`login-status-iframe.html`), as Keycloak 26's: keycloak-js posts
/// `"<client_id> <sid>"` every few seconds; the page answers `unchanged` when `KEYCLOAK_SESSION` holds the hash of
/// that `sid` (this browser's fedgate session issued the token), `changed` when it does not (signed out, or
/// another user), and `error` to a page whose origin is not one of the client's registered redirect URIs' (checked
/// once per client and origin by the server, `…/init`, at most a few times per frame) or without cookie access.
async fn login_status_iframe() -> Response {
    iframe_page(LOGIN_STATUS_IFRAME)
}

const LOGIN_STATUS_IFRAME: &str = r#"<!doctype html><html><head><meta charset="utf-8"></head><body><script>
"use strict";
var verified = new Map();
var asked = 0;
function cookie(name) {
  var parts = document.cookie.split(";");
  for (var i = 0; i < parts.length; i++) {
    var kv = parts[i].split("=");
    if (kv[0].trim() === name) { return (kv[1] || "").trim(); }
  }
  return null;
}
async function hash(text) {
  var digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return btoa(String.fromCharCode.apply(null, digest)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
async function allowed(clientId, origin) {
  var key = clientId + " " + origin;
  if (!verified.has(key)) {
    if (asked >= 4) { return false; }
    asked++;
    var url = new URL(location.origin + location.pathname + "/init");
    url.searchParams.set("client_id", clientId);
    url.searchParams.set("origin", origin);
    var ok = false;
    try { ok = (await fetch(url, { credentials: "omit" })).ok; } catch (e) { ok = false; }
    verified.set(key, ok);
  }
  return verified.get(key);
}
async function status(clientId, origin, sessionState) {
  if ("hasStorageAccess" in document) {
    try { if (!(await document.hasStorageAccess())) { await document.requestStorageAccess(); } }
    catch (e) { return "error"; }
  }
  if (!(await allowed(clientId, origin))) { return "error"; }
  var value = cookie("KEYCLOAK_SESSION");
  if (!value) { return sessionState !== "" ? "changed" : "unchanged"; }
  if (sessionState === "") { return "changed"; }
  return value.split(".").indexOf(await hash(sessionState)) !== -1 ? "unchanged" : "changed";
}
window.addEventListener("message", async function (event) {
  if (typeof event.data !== "string") { return; }
  var data = event.data.split(" ");
  if (data.length !== 2 || !event.source) { return; }
  var answer;
  try { answer = await status(data[0], event.origin, data[1]); } catch (e) { answer = "error"; }
  event.source.postMessage(answer, event.origin);
});
</script></body></html>"#;

/// The session-status iframe's check of who may ask it (`login-status-iframe.html/init?client_id=…&origin=…`), as
/// Keycloak checks a client's web origins: `204` when `origin` is the origin of one of the client's registered
/// redirect URIs, else `403`.
async fn login_status_iframe_init(
    State(state): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let provider = oidc(&state)?;
    let (Some(client_id), Some(origin)) = (q.get("client_id"), q.get("origin")) else {
        return Err(AppError::BadRequest("client_id and origin are required".into()));
    };
    let allowed = provider
        .client(client_id)
        .is_some_and(|c| federation::oidc::claims::origins(&c.redirect_uris).iter().any(|o| o == origin));
    let status = if allowed { axum::http::StatusCode::NO_CONTENT } else { axum::http::StatusCode::FORBIDDEN };
    Ok(no_store(status))
}

/// Keycloak's logout endpoint: RP-initiated logout as at `/oauth2/logout` (Keycloak ≥ 18: `id_token_hint`,
/// `client_id`, `post_logout_redirect_uri`, `state`, a confirmation page without a hint); the legacy
/// `redirect_uri` when `keycloak.legacy_logout_redirect_uri` is on; and the adapters' back-channel logout, a POST
/// with `refresh_token` and client authentication, answered `204` after that token's family is revoked.
async fn keycloak_logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    OAuthParams(params): OAuthParams,
) -> Result<Response, AppError> {
    if method == Method::POST && params.get("refresh_token").ok().flatten().is_some() {
        let params = params.renamed("refresh_token", "token");
        let now = state.clock.now();
        client_call(&state, peer.ip(), &params, &headers, |p| p.revoke(&params, authorization(&headers), now)).await?;
        return Ok(no_store(axum::http::StatusCode::NO_CONTENT));
    }
    let legacy = state.config.keycloak.as_ref().is_some_and(|k| k.legacy_logout_redirect_uri);
    let params = if legacy && params.get("post_logout_redirect_uri").ok().flatten().is_none() {
        params.renamed("redirect_uri", "post_logout_redirect_uri")
    } else {
        params
    };
    logout(State(state), method, headers, OAuthParams(params)).await
}

fn oidc(state: &AppState) -> Result<&Arc<Provider>, AppError> {
    state.oidc.as_ref().ok_or_else(|| AppError::NotFound("OpenID Connect is not configured on this gateway.".into()))
}

fn no_store<T: IntoResponse>(body: T) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

async fn discovery(State(state): State<AppState>) -> Result<Response, AppError> {
    Ok(Json(oidc(&state)?.discovery().clone()).into_response())
}

async fn jwks(State(state): State<AppState>) -> Result<Response, AppError> {
    let mut resp = Json(oidc(&state)?.jwks()).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(resp)
}

/// Request parameters from the query string (GET) or the form body (POST): OAuth endpoints accept both.
struct OAuthParams(Params);

impl<S: Send + Sync> FromRequest<S> for OAuthParams {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            return Ok(Self(Params::parse(req.uri().query().unwrap_or(""))));
        }
        let RawForm(body) = RawForm::from_request(req, state).await.map_err(|e| AppError::BadRequest(e.body_text()))?;
        Ok(Self(Params::parse(&String::from_utf8_lossy(&body))))
    }
}

async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    OAuthParams(params): OAuthParams,
) -> Result<Response, AppError> {
    let provider = oidc(&state)?;
    match provider.authorize(&params, state.clock.now()) {
        Ok(request) => continue_authorization(&state, &headers, request).await,
        Err(e) => authorize_failure(e),
    }
}

/// Keycloak's `kc_idp_hint` (or `idp`): the `[[upstream.oidc]]` provider the login should go straight to. Only a
/// configured provider's name is passed on (as a name, never a URL); anything else, or a repeated parameter, is
/// no hint, and the login page shows as usual.
/// The hint travels with the request (`AuthorizationRequest::idp_hint`), so a login resumed without a session
/// still goes there.
fn idp_hint(state: &AppState, request: &AuthorizationRequest) -> Option<String> {
    request.idp_hint.as_deref().and_then(|h| state.brokers.get(h)).map(|p| p.config.name.clone())
}

fn authorize_failure(e: AuthorizeError) -> Result<Response, AppError> {
    match e {
        AuthorizeError::Display(error) => Err(AppError::OidcRequest(error)),
        AuthorizeError::Store(e) => Err(AppError::OidcStore(e)),
        redirect @ AuthorizeError::Redirect { .. } => match redirect.redirect_url() {
            Some(url) => Ok(Redirect::to(url.as_str()).into_response()),
            None => Err(AppError::BadRequest(redirect.to_string())),
        },
    }
}

/// With a validated request: issue the code if the session is good enough, else send the user to log in first.
async fn continue_authorization(
    state: &AppState,
    headers: &HeaderMap,
    request: AuthorizationRequest,
) -> Result<Response, AppError> {
    let provider = oidc(state)?;
    let now = state.clock.now();
    let session = current_session(state, headers).await?;
    match request.login_decision(session.as_ref().map(|(_, s)| s.auth_instant()), now) {
        LoginDecision::Proceed => {
            let Some((id, session)) = session else { return Err(AppError::BadRequest("no session".into())) };
            let principal = from_session(&session);
            let code = match provider.prepare_code(&request, &principal, now) {
                Ok(code) => code,
                Err(e) => return authorize_failure(e),
            };
            let sid = code.sid().to_string();
            // The client, and the sid of the ID token this code yields, for back- and front-channel logout (the
            // latest few), recorded without losing what another request or replica records at the same time.
            let client_id = request.client_id.clone();
            // Keycloak's KEYCLOAK_SESSION for the realm's session-status iframe: hashes of the `sid`s this browser
            // session's tokens carry (the one just issued first), which keycloak-js compares its token's `sid` with.
            let mut sids = vec![sid.clone()];
            sids.extend(session.oidc_clients.iter().flat_map(|c| c.sids.iter().rev()).filter(|s| **s != sid).cloned());
            sids.truncate(MAX_STATUS_SIDS);
            let record = move |s: &mut crate::domain::session::Session| {
                if !s.signed_in_to.contains(&client_id) {
                    s.signed_in_to.push(client_id.clone());
                }
                match s.oidc_clients.iter_mut().find(|c| c.client_id == client_id) {
                    Some(c) => {
                        if !c.sids.contains(&sid) {
                            if c.sids.len() >= MAX_SIDS_PER_CLIENT {
                                c.sids.remove(0);
                            }
                            c.sids.push(sid.clone());
                        }
                    }
                    None => s.oidc_clients.push(OidcSignIn { client_id: client_id.clone(), sids: vec![sid.clone()] }),
                }
            };
            // The code and the session's record of it are written at the same time (one wait, not two).
            let (stored, recorded) =
                tokio::join!(provider.store_code(code), state.sessions.modify(id, Box::new(record)));
            let url = match stored {
                Ok(url) => url,
                Err(e) => return authorize_failure(e),
            };
            recorded?;
            tracing::info!(client_id = %request.client_id, username = %principal.username, "authorization code issued");
            let mut resp = respond(&request, &url);
            if let Some((path, attrs)) = crate::state::sign_in::keycloak_session_cookie(state) {
                let value: Vec<String> = sids.iter().map(|s| session_state_hash(s)).collect();
                if let Some(c) = crate::http::cookies::set_script_readable(
                    crate::state::sign_in::KEYCLOAK_SESSION_COOKIE,
                    &value.join("."),
                    &path,
                    attrs,
                ) {
                    resp.headers_mut().append(header::SET_COOKIE, c);
                }
            }
            Ok(resp)
        }
        LoginDecision::Fail(url) => Ok(respond(&request, &url)),
        LoginDecision::Login => {
            let force = request.prompt == Some(federation::oidc::Prompt::Login) || session.is_some();
            let (hint, client_id) = (request.login_hint.clone(), request.client_id.clone());
            let idp_hint = idp_hint(state, &request);
            let id = state.pending.put(Pending::Oidc(Box::new(request))).await?;
            let login = LoginHints { force, login_hint: hint.as_deref(), idp: idp_hint.as_deref() };
            Ok(to_login_with(&resume_target(OIDC_RESUME, &id, ("client", &client_id)), &login))
        }
    }
}

/// The authorization response: a redirect (the parameters in the query or the fragment), or for
/// `response_mode=form_post` a page whose form posts them to the redirect URI.
fn respond(request: &AuthorizationRequest, url: &url::Url) -> Response {
    if request.response_mode != federation::oidc::ResponseMode::FormPost {
        return Redirect::to(url.as_str()).into_response();
    }
    let (action, fields) = federation::oidc::ResponseMode::form_fields(url);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (html, csp) = federation::saml::post_form::render_fields(action.as_str(), &fields);
    let mut resp = axum::response::Html(html).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// How many `sid` values a session remembers per client (one per authorization in this session).
const MAX_SIDS_PER_CLIENT: usize = 8;

/// How many token `sid`s `KEYCLOAK_SESSION` holds hashes of (the latest; ~44 bytes each).
const MAX_STATUS_SIDS: usize = 16;

/// Keycloak ≥ 26.1's `KEYCLOAK_SESSION` value for a session state: base64url(SHA-256(sid)), unpadded. A hash, so
/// the cookie scripts can read tells whether a token's session is this one without being able to sign anyone in.
fn session_state_hash(sid: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sid.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// What the authorization request asks of the login page.
struct LoginHints<'a> {
    /// A fresh login even with a live session (`prompt=login`, `max_age`).
    force: bool,
    /// The username to prefill (`login_hint`).
    login_hint: Option<&'a str>,
    /// The upstream provider to go straight to (`kc_idp_hint` / `idp`), already checked to be configured.
    idp: Option<&'a str>,
}

/// The login page URL, optionally forcing a fresh login, prefilling the username, or naming the upstream provider
/// the login page sends the browser straight on to.
fn to_login_with(target: &str, hints: &LoginHints<'_>) -> Response {
    if !hints.force && hints.login_hint.is_none() && hints.idp.is_none() {
        return to_login(target);
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("rd", target);
    if hints.force {
        q.append_pair("force", "1");
    }
    if let Some(h) = hints.login_hint {
        q.append_pair("login_hint", h);
    }
    if let Some(idp) = hints.idp {
        q.append_pair("idp", idp);
    }
    Redirect::to(&format!("/login?{}", q.finish())).into_response()
}

async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<crate::domain::pending::ResumeQuery>,
) -> Result<Response, AppError> {
    // Taken at once (one round trip, used once across replicas): if the user still has to log in,
    // `continue_authorization` keeps the request again under a new id, which the login page's `rd` names.
    match state.pending.take(&q.id).await? {
        Some(Pending::Oidc(request)) => continue_authorization(&state, &headers, *request).await,
        _ => Err(AppError::BadRequest(
            "This sign-in request expired or was already used. Go back to the application and sign in again.".into(),
        )),
    }
}

/// Looks the user up again when a refresh token is redeemed, so group changes and removed users take effect.
/// While the directory is unreachable the snapshot taken at login is kept (logins keep working through a blip).
struct DirectoryRefresh<'a>(&'a AppState);

impl PrincipalRefresh for DirectoryRefresh<'_> {
    fn refresh<'a>(&'a self, snapshot: &'a Principal) -> federation::oidc::store::StoreFuture<'a, Option<Principal>> {
        Box::pin(async move {
            // A user of an upstream provider (not linked to the directory) has no entry to look up: the login's
            // snapshot stands until the session's tokens expire.
            if snapshot.authn.upstream_issuer.is_some()
                && snapshot.subject.split_once(':').is_some_and(|(name, _)| {
                    self.0.brokers.get(name).is_some_and(|p| p.config.link == crate::config::LinkMode::None)
                })
            {
                return Some(snapshot.clone());
            }
            match self.0.directory.lookup(&snapshot.username).await {
                Ok(Some(user)) if user.unique_id == snapshot.subject => {
                    Some(Principal { authn: snapshot.authn.clone(), ..from_user(&user, snapshot.auth_time) })
                }
                Ok(_) => {
                    tracing::info!(username = %snapshot.username, "refresh refused: the user is gone from the directory");
                    None
                }
                Err(e) => {
                    tracing::warn!(username = %snapshot.username, error = %e, "directory lookup failed during refresh; keeping the login snapshot");
                    Some(snapshot.clone())
                }
            }
        })
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthParams(params): OAuthParams,
) -> Result<Response, AppError> {
    let (refresh, now) = (DirectoryRefresh(&state), state.clock.now());
    let resp = client_call(&state, peer.ip(), &params, &headers, |p| {
        p.token_with(&params, authorization(&headers), now, &refresh)
    })
    .await?;
    Ok(no_store(Json(resp)))
}

/// An endpoint that authenticates the client (token, introspection, revocation, Keycloak's adapter logout):
/// refused at once (429) while the client id or IP has too many failed client authentications, then `call`, whose
/// `invalid_client` answer counts against them; an OAuth error becomes its RFC 6749 §5.2 response.
async fn client_call<'a, T, Fut>(
    state: &'a AppState,
    ip: std::net::IpAddr,
    params: &'a Params,
    headers: &'a HeaderMap,
    call: impl FnOnce(&'a Provider) -> Fut,
) -> Result<T, AppError>
where
    Fut: std::future::Future<Output = Result<T, TokenError>> + 'a,
{
    let provider = oidc(state)?;
    let client = client_gate(state, ip, params, headers).await?;
    let result = call(provider).await;
    client_outcome(state, ip, client.as_deref(), result).await.map_err(oauth_error)
}

/// Refuses at once (429) a client id or IP with too many failed client authentications, before any secret is
/// checked; returns the client id the request claims, for [`client_outcome`].
async fn client_gate(
    state: &AppState,
    ip: std::net::IpAddr,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Option<String>, AppError> {
    let claimed = federation::oidc::client::claimed_id(params, authorization(headers));
    match state.throttle.check_client(claimed.as_deref(), ip, state.clock.now()).await {
        Ok(()) => Ok(claimed),
        Err(Refused::Locked { retry_after }) => {
            tracing::info!(client_id = ?claimed, client_ip = %ip, retry_after, "client authentication throttled");
            state.metrics.event("client_auth", "throttled");
            Err(AppError::ClientThrottled { retry_after })
        }
        // No secret is checked whose failure could not be counted: temporarily_unavailable (503), as the grant
        // itself would answer with the store down.
        Err(Refused::Unavailable(e)) => {
            Err(oauth_error(TokenError::Store(federation::oidc::StoreError::unavailable(e))))
        }
    }
}

/// Counts an `invalid_client` answer against the client id (only a registered one, so made-up ids cannot fill the
/// counter) and the IP.
async fn client_outcome<T>(
    state: &AppState,
    ip: std::net::IpAddr,
    claimed: Option<&str>,
    result: Result<T, TokenError>,
) -> Result<T, TokenError> {
    if let Err(e) = &result
        && e.code() == federation::oidc::ErrorCode::InvalidClient
    {
        let known = claimed.filter(|id| state.oidc.as_ref().is_some_and(|p| p.client(id).is_some()));
        state.metrics.event("client_auth", "failure");
        if let Err(e) = state.throttle.record_client_failure(known, ip, state.clock.now()).await {
            // Uncounted, invalid_client would tell a wrong secret from the right one: answer as the store would.
            return Err(TokenError::Store(federation::oidc::StoreError::unavailable(e)));
        }
    }
    result
}

fn oauth_error(error: TokenError) -> AppError {
    // RFC 6749 §5.2: a 401 invalid_client carries the scheme the client may use.
    let challenge = (error.http_status() == 401).then_some("Basic realm=\"fedgate\"");
    AppError::OAuth { error, challenge }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let a = authorization(headers)?;
    (a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ")).then(|| a[7..].trim())
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    userinfo_with(&state, bearer(&headers)).await
}

/// UserInfo by POST: the access token in the `Authorization` header or, as RFC 6750 §2.2 allows (and Keycloak
/// takes), as the form parameter `access_token` — never both (§2: one method per request).
async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let is_form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    let params = if is_form { Params::parse(&String::from_utf8_lossy(&body)) } else { Params::new(Vec::new()) };
    let in_form = params.get("access_token").map_err(|e| invalid_token_request(&e.description))?;
    match (bearer(&headers), in_form) {
        (Some(_), Some(_)) => {
            Err(invalid_token_request("the access token was sent both in the Authorization header and in the body"))
        }
        (header_token, form_token) => userinfo_with(&state, header_token.or(form_token)).await,
    }
}

/// `invalid_request` for how the access token was sent (RFC 6750 §3.1), with the Bearer challenge.
fn invalid_token_request(description: &str) -> AppError {
    AppError::OAuth {
        error: TokenError::protocol(federation::oidc::ErrorCode::InvalidRequest, description),
        challenge: Some("Bearer realm=\"fedgate\", error=\"invalid_request\""),
    }
}

async fn userinfo_with(state: &AppState, token: Option<&str>) -> Result<Response, AppError> {
    let provider = oidc(state)?;
    let Some(token) = token else {
        return Err(AppError::OAuth {
            error: TokenError::protocol(
                federation::oidc::ErrorCode::InvalidRequest,
                "a Bearer access token is required",
            ),
            challenge: Some("Bearer realm=\"fedgate\""),
        });
    };
    match provider.userinfo(token, state.clock.now()).await {
        Ok(claims) => Ok(no_store(Json(claims))),
        Err(error) => {
            Err(AppError::OAuth { error, challenge: Some("Bearer realm=\"fedgate\", error=\"invalid_token\"") })
        }
    }
}

async fn introspect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthParams(params): OAuthParams,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let v = client_call(&state, peer.ip(), &params, &headers, |p| p.introspect(&params, authorization(&headers), now))
        .await?;
    Ok(no_store(Json(v)))
}

async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthParams(params): OAuthParams,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    client_call(&state, peer.ip(), &params, &headers, |p| p.revoke(&params, authorization(&headers), now)).await?;
    Ok(no_store(()))
}

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–4). The session ends at once only for a valid
/// `id_token_hint` naming this session's user, from a client it signed in to; anything else (no hint, someone
/// else's, a cross-site GET any page can trigger) gets a "Sign out?" page whose form posts back with the session's
/// CSRF token (§4 lets the OP ask the user). Afterwards: the client's registered `post_logout_redirect_uri`
/// (exact match, checked by the provider) with `state`, or the signed-out page.
async fn logout(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    OAuthParams(params): OAuthParams,
) -> Result<Response, AppError> {
    let (state, headers) = (&state, &headers);
    let provider = oidc(state)?;
    let request = provider.logout(&params).map_err(AppError::OidcRequest)?;
    let Some((id, session)) = current_session(state, headers).await? else {
        return Ok(after_logout(state, request.redirect));
    };
    let hinted = request.subject.as_deref().is_some_and(|sub| sub == session.user.unique_id)
        && request.client_id.as_ref().is_some_and(|c| session.signed_in_to.contains(c));
    let confirmed = method == Method::POST
        && params.get("csrf").ok().flatten().is_some_and(|c| fedgate_types::random::secure_eq(c, &session.csrf));
    if !hinted && !confirmed {
        let mut hidden = Vec::new();
        if let Some(c) = &request.client_id {
            hidden.push(("client_id", c.as_str()));
        }
        for key in ["post_logout_redirect_uri", "state"] {
            if let Ok(Some(v)) = params.get(key) {
                hidden.push((key, v));
            }
        }
        let page = crate::http::pages::logout_confirm_to(
            &state.config.ui,
            "/oauth2/logout",
            &session.csrf,
            &session.user.username,
            &hidden,
        );
        let mut resp = page.into_response();
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::http::pages::CSP));
        return Ok(resp);
    }
    let (ended, session) = end_session(state, id, &session).await?;
    let next = request.redirect.map(String::from);
    crate::state::single_logout::after_session_end(
        state,
        &session,
        ended,
        None,
        crate::state::single_logout::Finish::Page { next },
    )
    .await
}

/// The client's post-logout redirect (already checked), or the signed-out page; the session cookie is cleared.
fn after_logout(state: &AppState, redirect: Option<url::Url>) -> Response {
    let mut resp = match redirect {
        Some(url) => Redirect::to(url.as_str()).into_response(),
        None => crate::state::sign_in::logged_out_page(state),
    };
    crate::state::sign_in::clear_session_cookies(state, &mut resp);
    resp
}
