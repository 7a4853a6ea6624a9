//! The authenticating reverse proxy (in front of an app, or as a sidecar) and the forward-auth endpoint for an
//! existing nginx / Traefik. A request gets an identity from the session cookie or a fedgate access token, the
//! matching route decides ([`decide::decide`]), and only then is it forwarded with identity headers the gateway set.

pub mod decide;
pub mod tunnel;

use std::borrow::Cow;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tracing::Instrument;

use decide::{Decision, Identity};

use crate::config::{RouteConfig, Unmatched};
use crate::http::error::{AppError, ForwardAuthDenial as Denial};
use crate::http::path;
use crate::http::paths::OwnPaths;
use crate::http::paths::OwnRoutes;
use crate::http::request::RequestContext;
use crate::state::AppState;
use crate::state::sign_in::{self, current_session, to_login};
use crate::upstream::{ResponseBody, Upstream, forward};

/// Forward-auth: `/auth/verify` for nginx `auth_request`, `/auth/forward` for Traefik / Caddy `forwardAuth`.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new().route("/auth/verify", get(verify_nginx)).route("/auth/forward", get(verify_forwarded))
}

/// The identity of a request: the session's user, or a fedgate access token (`Authorization: Bearer`) that is
/// meant for the proxy: a user's token whose audience is in `proxy.token_audiences`, or a client's own
/// `client_credentials` token (which only routes naming the client in `allow_clients` let in). The tokens the
/// proxy hands upstreams are refused by the verification itself.
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
    let (Some(token), Some(oidc)) = (bearer, &state.oidc) else { return Ok(None) };
    let c = match oidc.verify_access_token(token, state.clock.now()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "bearer token refused at the proxy");
            return Ok(None);
        }
    };
    // Route rules match group names: a `group_format = "path"` client's token carries `/eng/ai-admins`.
    let paths = oidc.client(&c.client_id).is_some_and(|k| k.group_format == federation::principal::GroupFormat::Path);
    let groups = if paths { c.groups.iter().map(|g| group_name(g)).collect() } else { c.groups.clone() };
    // A `claims_profile = "keycloak"` token carries the roles where Keycloak puts them, `realm_access.roles`.
    let roles = c.realm_roles();
    if c.sid.is_none() {
        return Ok(Some(Identity::from_client(c.client_id, groups, roles, token.to_string())));
    }
    // A token is for the proxy when one of its audiences is: the client's own id, or an API it was issued for
    // (`audiences`, Keycloak's audience mapper).
    if !c.aud.all().iter().any(|a| state.config.proxy.token_audiences.contains(a)) {
        tracing::debug!(aud = %c.aud, "bearer token for an audience not in proxy.token_audiences");
        return Ok(None);
    }
    let username = c.preferred_username.clone().unwrap_or_else(|| c.sub.clone());
    Ok(Some(Identity::from_token(c.sub, username, groups, roles, token.to_string())))
}

/// The group name at the end of a Keycloak group path (`/eng/ai-admins` → `ai-admins`; `~/` is an escaped `/`).
fn group_name(path: &str) -> String {
    let mut last = 0;
    let bytes = path.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'/' && (i == 0 || bytes[i - 1] != b'~') {
            last = i + 1;
        }
    }
    path[last..].replace("~/", "/")
}

/// Lifetime of tokens minted for upstreams; they are cached per session for half of it.
const UPSTREAM_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// A JWT for the upstream when `proxy.headers.access_token` is configured (cached per session, so RSA signing
/// does not run on every proxied request).
fn upstream_token(state: &AppState, session_id: &str, session: &crate::domain::session::Session) -> Option<String> {
    state.config.proxy.headers.access_token.as_ref()?;
    let oidc = state.oidc.as_ref()?;
    if let Some(t) = state.upstream_tokens.get(session_id) {
        return Some(t);
    }
    let principal = crate::domain::principal::from_session(session);
    let handle = crate::domain::session::public_handle(session_id);
    match oidc.upstream_token(&principal, &handle, UPSTREAM_TOKEN_TTL, state.clock.now()) {
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

/// Puts the canonical form of `req`'s path ([`path::canonicalize`]) in its URI, so that the gateway's routing,
/// the route's rules and the upstream all see the same path, and says which proxy route takes it: the first route
/// matching its host and path, unless the path is one the gateway answers itself (`own`).
/// A path that cannot be made unambiguous, or that holds what the taking route has not opted in to, is an error.
pub fn claim<B>(state: &AppState, own: &OwnPaths, req: &mut Request<B>) -> Result<Option<usize>, AppError> {
    let canonical = path::canonicalize(req.uri().path()).map_err(|e| refused_path(req.uri().path(), e))?;
    let index = if own.contains(&canonical.path) {
        None
    } else {
        upstream_for(state, request_host(req), &canonical.path).map(|(i, _)| i)
    };
    let route = index.and_then(|i| state.upstreams.get(i)).map(|u| &u.route);
    check_opt_ins(route, &canonical)?;
    if let Cow::Owned(canonical) = canonical.path {
        set_path(req, &canonical)?;
    }
    Ok(index)
}

fn refused_path(raw: &str, e: path::PathError) -> AppError {
    tracing::info!(path = ?raw, reason = %e, "refused an ambiguous request path");
    AppError::BadRequest(format!("{e}; send the path in its plain form."))
}

/// Refuses an encoded slash or `;` parameters unless `route` opted in to them.
fn check_opt_ins(route: Option<&RouteConfig>, canonical: &path::Canonical<'_>) -> Result<(), AppError> {
    if canonical.encoded_slash && !route.is_some_and(|r| r.allow_encoded_slashes) {
        return Err(AppError::BadRequest(
            "the request path contains an encoded slash (%2F), which the app could read as a path separator; \
             send a plain / (or set allow_encoded_slashes on the route)."
                .into(),
        ));
    }
    if canonical.parameters && !route.is_some_and(|r| r.allow_path_parameters) {
        return Err(AppError::BadRequest(
            "the request path has ';' parameters in a segment, which some servers strip before matching; \
             leave them out (or set allow_path_parameters on the route)."
                .into(),
        ));
    }
    Ok(())
}

/// Replaces the path of `req`'s URI, keeping its query (and scheme and authority, if any).
fn set_path<B>(req: &mut Request<B>, path: &str) -> Result<(), AppError> {
    let bad = || AppError::BadRequest("the request path cannot be represented".into());
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(axum::http::uri::PathAndQuery::try_from(pq).map_err(|_| bad())?);
    *req.uri_mut() = axum::http::Uri::from_parts(parts).map_err(|_| bad())?;
    Ok(())
}

/// Serves a request [`claim`]ed by the route of upstream `index`: identity, the route's decision, forwarding. The
/// gateway's own answers (login redirect, 401, 403, 502, 504) get its pages and security headers; the upstream's
/// responses pass as they are (minus hop-by-hop headers). Counted in the metrics under the route.
pub async fn serve(
    state: AppState,
    index: usize,
    client: forward::ClientAddr,
    mut req: Request<hyper::body::Incoming>,
) -> Response<ResponseBody> {
    let ctx = RequestContext::begin(&mut req);
    let Some(upstream) = state.upstreams.get(index) else {
        let resp = AppError::NotFound(format!("There is nothing at {} on this gateway.", req.uri().path()));
        return ctx.own_response(resp.into_response(), &state.config.ui).map(ResponseBody::Right);
    };
    let work = forward_if_allowed(&state, upstream, &client, req);
    // Entering even a disabled span costs on every poll: skip it when the log level leaves the span off.
    let answer = if ctx.span().is_disabled() { work.await } else { work.instrument(ctx.span().clone()).await };
    let resp = match answer {
        Ok(Answer::Upstream(resp)) => resp,
        Ok(Answer::Own(resp)) => ctx.own_response(resp, &state.config.ui).map(ResponseBody::Right),
        Err(e) => ctx.own_response(e.into_response(), &state.config.ui).map(ResponseBody::Right),
    };
    ctx.finish(&state.metrics, &upstream.metrics_label, resp.status());
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
    client: &forward::ClientAddr,
    mut req: Request<hyper::body::Incoming>,
) -> Result<Answer, AppError> {
    if req.method() == Method::CONNECT {
        // A tunnel to wherever the client names is a forward proxy's business; an app behind a route has no use
        // for one, and an upstream that is itself a proxy must not get one through the gateway.
        return Err(AppError::BadRequest(
            "CONNECT is not forwarded: fedgate is a reverse proxy for the apps behind its routes, not a forward \
             proxy."
                .into(),
        ));
    }
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
    use crate::http::cookies::{CSRF_COOKIE, UPSTREAM_BINDING_COOKIE};
    let ([csrf, csrf_host], [binding, binding_host]) = (CSRF_COOKIE.names(), UPSTREAM_BINDING_COOKIE.names());
    let session = state.config.session.cookie_name.as_str();
    // Over https the session cookie is `__Host-` prefixed; the plain name (a browser may still hold one from before,
    // or a sibling subdomain may have planted one) is fedgate's too.
    let plain_session = session.strip_prefix(crate::http::cookies::HOST_PREFIX).unwrap_or(session);
    let our_cookies = [session, plain_session, csrf, csrf_host, binding, binding_host];
    // A WebSocket tunnel outlives this decision: one opened with a session closes when the session ends, one
    // opened with an access token when the token expires or is revoked.
    let guard = match forward_who.filter(|_| forward::is_websocket(req.headers())) {
        Some(who) => match who.session() {
            Some(session) => sign_in::session_id(state, req.headers())
                .map(|(id, _)| tunnel::session_guard(state.clone(), id.to_string(), session)),
            None => who.token.clone().map(|t| tunnel::token_guard(state.clone(), t)),
        },
        None => None,
    };
    forward::prepare(&mut req, &state.identity_headers, forward_who, client, proto(state), &our_cookies);
    let mut resp = upstream.forward(req, guard).await?;
    forward::remove_our_set_cookies(resp.headers_mut(), &our_cookies, &upstream.route.upstream);
    Ok(Answer::Upstream(resp))
}

#[derive(Deserialize)]
struct VerifyQuery {
    rd: Option<String>,
}

/// The request forward-auth is asked about, as the integration's own headers describe it.
struct Original {
    proto: String,
    /// Host, with the port if any.
    host: String,
    /// Path and query, as the client sent them.
    path_and_query: String,
}

/// nginx `auth_request`: the original request is `X-Original-URL` and nothing else, set by the documented
/// `proxy_set_header` line (which replaces any copy the client sent). Answers 200 with the identity headers, 401
/// or 403 (the only answers `auth_request` understands; a path that cannot be made unambiguous is a 403).
async fn verify_nginx(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let url = headers.get("x-original-url").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        AppError::BadRequest(
            "/auth/verify needs X-Original-URL: add `proxy_set_header X-Original-URL \
             $scheme://$server_name$request_uri;` to the auth_request location (Traefik and Caddy use /auth/forward)"
                .into(),
        )
    })?;
    let uri = axum::http::Uri::try_from(url)
        .ok()
        .filter(|u| u.scheme().is_some() && u.authority().is_some())
        .ok_or_else(|| AppError::BadRequest("X-Original-URL is not an absolute URL".into()))?;
    let original = Original {
        proto: uri.scheme_str().unwrap_or("http").to_string(),
        host: uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default(),
        path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
    };
    forward_auth(&state, &headers, &original, None, StatusCode::FORBIDDEN).await
}

/// Traefik / Caddy `forwardAuth`: the original request is `X-Forwarded-Proto`, `X-Forwarded-Host` and
/// `X-Forwarded-Uri`, which those proxies set themselves (replacing the client's). With `?rd=` an unauthenticated
/// request is sent to the login page.
async fn verify_forwarded(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<VerifyQuery>,
) -> Result<Response, AppError> {
    let get = |n: &str| {
        headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string).ok_or_else(|| {
            AppError::BadRequest(format!(
                "/auth/forward needs {n}, which Traefik and Caddy set (nginx auth_request uses /auth/verify)"
            ))
        })
    };
    let original = Original {
        proto: get("x-forwarded-proto")?,
        host: get("x-forwarded-host")?,
        path_and_query: get("x-forwarded-uri")?,
    };
    forward_auth(&state, &headers, &original, q.rd, StatusCode::BAD_REQUEST).await
}

/// The decision for `original`: 200 with the identity headers, 401 (or with `rd`, 302 to the login page), 403;
/// a path that cannot be made unambiguous gets `refusal`. A host and path no route covers is refused unless
/// `proxy.forward_auth_unmatched` says otherwise.
async fn forward_auth(
    state: &AppState,
    headers: &HeaderMap,
    original: &Original,
    rd: Option<String>,
    refusal: StatusCode,
) -> Result<Response, AppError> {
    let raw_path = original.path_and_query.split('?').next().unwrap_or("/");
    let refused = |e: AppError| {
        let message = match e {
            AppError::BadRequest(m) => m,
            other => other.to_string(),
        };
        AppError::ForwardAuth(Denial::Path { status: refusal, message })
    };
    let canonical = path::canonicalize(raw_path).map_err(|e| refused(refused_path(raw_path, e)))?;
    let host = original.host.as_str();
    let route = state.config.proxy.routes.iter().find(|r| r.matches(host, &canonical.path));
    check_opt_ins(route, &canonical).map_err(refused)?;
    let who = identity(state, headers).await?;
    let decision = match route {
        Some(route) => decide::decide(route, &canonical.path, who.as_ref()),
        None if state.config.proxy.forward_auth_unmatched == Unmatched::Deny => {
            tracing::info!(host, path = %canonical.path, "forward-auth: no route covers this request");
            return Err(AppError::ForwardAuth(Denial::Unmatched));
        }
        None if who.is_some() => Decision::Forward,
        None => Decision::Unauthenticated,
    };
    match decision {
        Decision::Forward | Decision::Public => {
            let mut resp = StatusCode::OK.into_response();
            let forward_who = if decision == Decision::Forward { who.as_ref() } else { None };
            state.identity_headers.set(resp.headers_mut(), forward_who, false);
            Ok(resp)
        }
        Decision::Unauthenticated => match rd {
            Some(rd) if !rd.is_empty() => {
                let back = if rd == "1" || rd == "true" {
                    format!("{}://{host}{}", original.proto, original.path_and_query)
                } else {
                    rd
                };
                let q = serde_urlencoded::to_string([("rd", back.as_str())]).unwrap_or_default();
                let login = format!("{}/login?{q}", state.config.server.public_url.as_str().trim_end_matches('/'));
                Ok(Redirect::to(&login).into_response())
            }
            _ => Err(AppError::ForwardAuth(Denial::Unauthenticated)),
        },
        Decision::Forbidden(needs) => Err(AppError::ForwardAuth(Denial::Forbidden(needs))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_paths_become_names() {
        assert_eq!(super::group_name("/eng/ai-admins"), "ai-admins");
        assert_eq!(super::group_name("/staff"), "staff");
        assert_eq!(super::group_name("/a/b~/c"), "b/c");
        assert_eq!(super::group_name("plain"), "plain");
    }
}
