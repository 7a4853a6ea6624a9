//! The authenticating reverse proxy (in front of an app, or as a sidecar) and the forward-auth endpoint for an
//! existing nginx / Traefik. A request gets an identity from the session cookie or a fedgate access token, the
//! matching route decides ([`decide::decide`]), and only then is it forwarded with identity headers the gateway set.

pub mod config;
pub mod decide;
pub mod forward;
pub mod pool;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

pub use config::ProxyConfig;
use decide::{Decision, Identity};
pub use forward::{ResponseBody, Upstream};

use crate::error::AppError;
use crate::routes::login::{current_session, to_login};
use crate::state::AppState;

/// `/auth/verify` (forward-auth).
pub fn router() -> Router<AppState> {
    Router::new().route("/auth/verify", get(verify))
}

/// The identity of a request: the session's user, or a valid fedgate access token (`Authorization: Bearer`).
async fn identity(state: &AppState, headers: &HeaderMap) -> Result<Option<Identity>, AppError> {
    if let Some((id, s)) = current_session(state, headers).await? {
        let token = upstream_token(state, id, &s);
        return Ok(Some(Identity::from_session(s, token)));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|a| a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer "))
        .map(|a| a[7..].trim());
    if let (Some(token), Some(oidc)) = (bearer, &state.oidc)
        && let Ok(c) = oidc.verify_access_token(token, state.clock.now()).await
    {
        let username = c.preferred_username.clone().unwrap_or_else(|| c.sub.clone());
        return Ok(Some(Identity::from_token(c.sub, username, c.groups, c.roles, token.to_string())));
    }
    Ok(None)
}

/// Lifetime of tokens minted for upstreams; they are cached per session for half of it.
const UPSTREAM_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// A JWT for the upstream when `proxy.headers.access_token` is configured (cached per session, so RSA signing
/// does not run on every proxied request).
fn upstream_token(state: &AppState, session_id: &str, session: &crate::session::Session) -> Option<String> {
    state.config.proxy.headers.access_token.as_ref()?;
    let oidc = state.oidc.as_ref()?;
    if let Some(t) = state.upstream_tokens.get(session_id) {
        return Some(t);
    }
    let principal = crate::principal::from_user(&session.user, session.auth_instant());
    match oidc.upstream_token(&principal, "fedgate-proxy", UPSTREAM_TOKEN_TTL, state.clock.now()) {
        Ok(t) => {
            state.upstream_tokens.insert(session_id.to_string(), t.clone());
            Some(t)
        }
        Err(e) => {
            tracing::error!(error = %e, "could not sign the upstream access token");
            None
        }
    }
}

fn wants_html(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

fn proto(state: &AppState) -> &'static str {
    if state.config.server.tls.is_some() || state.config.server.public_url.scheme() == "https" {
        "https"
    } else {
        "http"
    }
}

/// Where the login should send the browser back to: a path when the request came to the gateway's own host, else
/// the absolute URL (its host is a proxy route host, which the login page accepts).
fn return_url(state: &AppState, host: &str, path_and_query: &str) -> String {
    let public = &state.config.server.public_url;
    let own = public.host_str().is_some_and(|h| {
        let port = public.port_or_known_default().map(|p| format!(":{p}")).unwrap_or_default();
        host.eq_ignore_ascii_case(h) || host.eq_ignore_ascii_case(&format!("{h}{port}"))
    });
    if own { path_and_query.to_string() } else { format!("{}://{host}{path_and_query}", proto(state)) }
}

fn unauthenticated(state: &AppState, method: &Method, headers: &HeaderMap, host: &str, pq: &str) -> Response {
    if wants_html(method, headers) {
        return to_login(&return_url(state, host, pq));
    }
    let mut r = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({"error": "unauthorized", "message": "log in or send a fedgate access token"})),
    )
        .into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"fedgate\""));
    r
}

/// The host a request was sent to (`Host`, or the authority of an HTTP/2 request).
fn request_host<B>(req: &Request<B>) -> &str {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
}

/// The upstream whose route takes `host` and `path` (first match wins).
fn upstream_for<'a>(state: &'a AppState, host: &str, path: &str) -> Option<(usize, &'a Upstream)> {
    state.upstreams.iter().enumerate().find(|(_, u)| u.matches(host, path))
}

/// Which proxy route takes `req`, if any: the first route matching its host and path, unless the path is one the
/// gateway answers itself ([`crate::routes::is_own_path`]).
pub fn claim<B>(state: &AppState, req: &Request<B>) -> Option<usize> {
    let path = req.uri().path();
    if crate::routes::is_own_path(path) {
        return None;
    }
    upstream_for(state, request_host(req), path).map(|(i, _)| i)
}

/// Serves a request [`claim`]ed by the route of upstream `index`: identity, the route's decision, forwarding. The
/// gateway's own answers (login redirect, 401, 403, 502, 504) get its pages and security headers; the upstream's
/// responses pass as they are (minus hop-by-hop headers). Counted in the metrics under the route.
pub async fn serve(
    state: AppState,
    index: usize,
    client_ip: HeaderValue,
    mut req: Request<hyper::body::Incoming>,
) -> Response<ResponseBody> {
    let start = std::time::Instant::now();
    let Some(upstream) = state.upstreams.get(index) else {
        let resp = crate::not_found(req.uri().clone()).await.into_response();
        return crate::error::brand_error_page(&state, resp, false).map(ResponseBody::Right);
    };
    let request_id = crate::request_id(req.headers());
    req.headers_mut().insert(crate::X_REQUEST_ID, request_id.clone());
    let method = req.method().clone();
    let wants_json = crate::error::wants_json(req.headers());
    let resp = match forward_if_allowed(&state, upstream, &client_ip, req).await {
        Ok(Answer::Upstream(resp)) => resp,
        Ok(Answer::Own(resp)) => crate::finish_own_response(resp, request_id).map(ResponseBody::Right),
        Err(e) => {
            let resp = crate::error::brand_error_page(&state, e.into_response(), wants_json);
            crate::finish_own_response(resp, request_id).map(ResponseBody::Right)
        }
    };
    state.metrics.observe(&upstream.metrics_label, method.as_str(), resp.status().as_u16(), start.elapsed());
    resp
}

/// Who answered a proxied request: the upstream (passed on as it is) or the gateway (which adds its headers).
enum Answer {
    Upstream(Response<ResponseBody>),
    Own(Response),
}

async fn forward_if_allowed(
    state: &AppState,
    upstream: &Upstream,
    client_ip: &HeaderValue,
    mut req: Request<hyper::body::Incoming>,
) -> Result<Answer, AppError> {
    let who = identity(state, req.headers()).await?;
    let path = req.uri().path();
    let decision = decide::decide(&upstream.route, path, who.as_ref());
    match decision {
        Decision::Unauthenticated => {
            let pq = req.uri().path_and_query().map_or(path, |p| p.as_str());
            return Ok(Answer::Own(unauthenticated(state, req.method(), req.headers(), request_host(&req), pq)));
        }
        Decision::Forbidden(needs) => {
            let user = who.as_ref().map(Identity::username).unwrap_or("");
            tracing::info!(user, %path, needs = %needs, "proxy refused");
            return Err(AppError::Forbidden(format!("{user} may not open this application: it needs {needs}.")));
        }
        Decision::Forward | Decision::Public => {}
    }
    let forward_who = if decision == Decision::Forward { who.as_ref() } else { None };
    let our_cookies = [state.config.session.cookie_name.as_str(), crate::cookies::CSRF_COOKIE];
    forward::prepare(&mut req, &state.identity_headers, forward_who, client_ip, proto(state), &our_cookies);
    upstream.forward(req).await.map(Answer::Upstream)
}

#[derive(Deserialize)]
struct VerifyQuery {
    rd: Option<String>,
}

/// Forward-auth: nginx `auth_request` (200 / 401 / 403) and Traefik `forwardAuth` (with `?rd=` or for browser
/// navigations, 302 to the login page). The original request comes from `X-Original-URL` or
/// `X-Forwarded-Proto/Host/Uri`.
async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<VerifyQuery>,
) -> Result<Response, AppError> {
    let (proto, host, uri) =
        match headers.get("x-original-url").and_then(|v| v.to_str().ok()).and_then(|u| url::Url::parse(u).ok()) {
            Some(u) => {
                let host = u
                    .host_str()
                    .map(|h| match u.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    })
                    .unwrap_or_default();
                let pq = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                };
                (u.scheme().to_string(), host, pq)
            }
            None => {
                let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                (
                    get("x-forwarded-proto").unwrap_or_else(|| "http".into()),
                    get("x-forwarded-host").or_else(|| get("host")).unwrap_or_default(),
                    get("x-forwarded-uri").unwrap_or_else(|| "/".into()),
                )
            }
        };
    let path = uri.split('?').next().unwrap_or("/").to_string();
    let who = identity(&state, &headers).await?;
    let decision = match upstream_for(&state, &host, &path) {
        Some((_, upstream)) => decide::decide(&upstream.route, &path, who.as_ref()),
        None if who.is_some() => Decision::Forward,
        None => Decision::Unauthenticated,
    };
    match decision {
        Decision::Forward | Decision::Public => {
            let mut resp = StatusCode::OK.into_response();
            if let (Decision::Forward, Some(w)) = (&decision, &who) {
                state.identity_headers.set(resp.headers_mut(), Some(w), false);
            }
            Ok(resp)
        }
        Decision::Unauthenticated => {
            let original = format!("{proto}://{host}{uri}");
            match q.rd {
                Some(rd) if !rd.is_empty() => {
                    let back = if rd == "1" || rd == "true" { original } else { rd };
                    let q = serde_urlencoded::to_string([("rd", back.as_str())]).unwrap_or_default();
                    let login = format!("{}/login?{q}", state.config.server.public_url.as_str().trim_end_matches('/'));
                    Ok(Redirect::to(&login).into_response())
                }
                _ => Ok((StatusCode::UNAUTHORIZED, "unauthorized\n").into_response()),
            }
        }
        Decision::Forbidden(needs) => {
            Ok((StatusCode::FORBIDDEN, format!("forbidden: needs {needs}\n")).into_response())
        }
    }
}
