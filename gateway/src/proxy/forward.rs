//! Forwarding to an upstream: header hygiene (hop-by-hop headers per RFC 9110 §7.6.1, client-sent identity
//! headers and our cookies removed, `X-Forwarded-*` set, our identity headers added), bodies streamed both ways
//! without buffering, WebSocket upgrades spliced, pooled connections, 502 when the upstream is down and 504 when
//! it is slow.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::config::{HeaderNames, RouteConfig};
use super::decide::Identity;
use crate::error::AppError;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Hop-by-hop headers (RFC 9110 §7.6.1) besides `Connection` and `Upgrade`, parsed at compile time.
const HOP_BY_HOP: [HeaderName; 7] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// A user's identity header values (username, e-mail, groups and roles joined by commas), validated once; `None`
/// where a value is missing or cannot be a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHeaderValues {
    username: Option<HeaderValue>,
    email: Option<HeaderValue>,
    groups: Option<HeaderValue>,
    roles: Option<HeaderValue>,
}

impl UserHeaderValues {
    /// The values for one user.
    pub fn new(username: &str, email: Option<&str>, groups: &[String], roles: &[String]) -> Self {
        Self {
            username: HeaderValue::from_str(username).ok(),
            email: email.and_then(|e| HeaderValue::from_str(e).ok()),
            groups: HeaderValue::from_str(&groups.join(",")).ok(),
            roles: HeaderValue::from_str(&roles.join(",")).ok(),
        }
    }
}

/// The configured identity header names (`[proxy.headers]`), parsed once at start-up.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    user: HeaderName,
    email: HeaderName,
    preferred_username: HeaderName,
    groups: HeaderName,
    roles: HeaderName,
    access_token: Option<HeaderName>,
}

impl IdentityHeaders {
    /// Parses the configured names; `Err` names the one that is not a valid header name.
    pub fn new(names: &HeaderNames) -> Result<Self, String> {
        let parse = |n: &str| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name"));
        Ok(Self {
            user: parse(&names.user)?,
            email: parse(&names.email)?,
            preferred_username: parse(&names.preferred_username)?,
            groups: parse(&names.groups)?,
            roles: parse(&names.roles)?,
            access_token: names.access_token.as_deref().map(parse).transpose()?,
        })
    }

    /// Every name, for stripping what a client sent.
    fn all(&self) -> impl Iterator<Item = &HeaderName> {
        [&self.user, &self.email, &self.preferred_username, &self.groups, &self.roles]
            .into_iter()
            .chain(self.access_token.as_ref())
    }

    /// Adds `who`'s headers to `h` (values that are not valid header values are left out); the access token only
    /// when `with_token`.
    pub fn insert(&self, h: &mut HeaderMap, who: &Identity, with_token: bool) {
        let values = who.header_values();
        let mut set = |name: &HeaderName, value: &Option<HeaderValue>| {
            if let Some(v) = value {
                h.insert(name.clone(), v.clone());
            }
        };
        set(&self.user, &values.username);
        set(&self.preferred_username, &values.username);
        set(&self.email, &values.email);
        set(&self.groups, &values.groups);
        set(&self.roles, &values.roles);
        if with_token
            && let (Some(name), Some(token)) = (&self.access_token, &who.token)
            && let Ok(v) = HeaderValue::from_str(token)
        {
            h.insert(name.clone(), v);
        }
    }
}

/// The pooled client of one route.
pub type UpstreamClient = Client<crate::outbound::Connector, Body>;

/// A route with its upstream URL parsed and its client.
pub struct Upstream {
    /// The route.
    pub route: RouteConfig,
    base: url::Url,
    client: UpstreamClient,
    /// The `Host` sent upstream (unless `preserve_host`), built once.
    host: Option<HeaderValue>,
    /// Scheme and authority parsed once, when requests can keep their path as it is (no base path, no prefix to
    /// strip).
    direct: Option<(axum::http::uri::Scheme, axum::http::uri::Authority)>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("upstream", &self.route.upstream).finish()
    }
}

impl Upstream {
    /// Builds the route's client (TLS roots from `ca_file` or the platform's webpki roots).
    pub fn new(route: RouteConfig) -> anyhow::Result<Self> {
        let base = url::Url::parse(&route.upstream)?;
        let connector = crate::outbound::connector(route.ca_file.as_deref(), route.connect_timeout)?;
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(connector);
        let host = HeaderValue::from_str(base.authority()).ok();
        let keeps_path =
            base.path().trim_end_matches('/').is_empty() && !(route.strip_prefix && route.path_prefix != "/");
        let direct = match (keeps_path, base.scheme().parse(), base.authority().parse()) {
            (true, Ok(scheme), Ok(authority)) => Some((scheme, authority)),
            _ => None,
        };
        Ok(Self { route, base, client, host, direct })
    }

    fn target(&self, uri: &Uri) -> Result<Uri, AppError> {
        if let Some((scheme, authority)) = &self.direct {
            let mut parts = axum::http::uri::Parts::default();
            parts.scheme = Some(scheme.clone());
            parts.authority = Some(authority.clone());
            parts.path_and_query =
                Some(uri.path_and_query().cloned().unwrap_or_else(|| axum::http::uri::PathAndQuery::from_static("/")));
            return Uri::from_parts(parts)
                .map_err(|_| AppError::BadRequest("the request path cannot be forwarded".into()));
        }
        let mut path = uri.path().to_string();
        if self.route.strip_prefix && self.route.path_prefix != "/" {
            path = path.strip_prefix(self.route.path_prefix.trim_end_matches('/')).unwrap_or(&path).to_string();
            if !path.starts_with('/') {
                path.insert(0, '/');
            }
        }
        let base_path = self.base.path().trim_end_matches('/');
        let mut s = format!("{}://{}{base_path}{path}", self.base.scheme(), self.base.authority());
        if let Some(q) = uri.query() {
            s.push('?');
            s.push_str(q);
        }
        s.parse().map_err(|_| AppError::BadRequest("the request path cannot be forwarded".into()))
    }

    /// Forwards `req` (already stripped of client identity headers by [`prepare`]).
    pub async fn forward(&self, mut req: Request<Body>) -> Result<Response<Body>, AppError> {
        let target = self.target(req.uri())?;
        if !self.route.preserve_host
            && let Some(v) = &self.host
        {
            req.headers_mut().insert(header::HOST, v.clone());
        }
        *req.uri_mut() = target;
        // The client may have spoken HTTP/2 to us; the upstream connection's protocol is the pool's business
        // (ALPN for https, HTTP/1.1 otherwise), so the request must not insist on the client's version.
        *req.version_mut() = axum::http::Version::HTTP_11;
        let upgrade = is_websocket(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let upstream = &self.route.upstream;
        let resp = match tokio::time::timeout(self.route.response_timeout, self.client.request(req)).await {
            Err(_) => {
                tracing::warn!(%upstream, timeout = ?self.route.response_timeout, "upstream did not answer in time");
                return Err(AppError::UpstreamTimeout(upstream.clone()));
            }
            Ok(Err(e)) => {
                tracing::warn!(%upstream, error = %e, "upstream unreachable");
                return Err(AppError::UpstreamUnavailable(upstream.clone()));
            }
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = resp.into_parts();
        if parts.status == axum::http::StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let mut upstream_resp = Response::from_parts(parts.clone(), body);
            let upstream_upgrade = hyper::upgrade::on(&mut upstream_resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(upstream));
                        if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
                            tracing::debug!(error = %e, "websocket tunnel closed");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
                }
            });
            return Ok(Response::from_parts(parts, Body::empty()));
        }
        strip_hop_by_hop(&mut parts.headers, false);
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

fn is_websocket(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Removes hop-by-hop headers (and those named by `Connection`). A WebSocket handshake keeps `Upgrade` and
/// `Connection: upgrade`.
pub fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        if !(keep_upgrade && n == header::UPGRADE) {
            h.remove(n);
        }
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}

/// Everything done to a request before it leaves: hop-by-hop headers and every client-sent identity header
/// removed (header names compare case-insensitively), our cookies taken out of `Cookie`, `X-Forwarded-*` set,
/// and this identity's headers added.
pub fn prepare(
    req: &mut Request<Body>,
    names: &IdentityHeaders,
    who: Option<&Identity>,
    peer: SocketAddr,
    proto: &'static str,
    our_cookies: &[&str],
) {
    let websocket = is_websocket(req.headers());
    let h = req.headers_mut();
    strip_hop_by_hop(h, websocket);
    for n in names.all() {
        h.remove(n);
    }
    let ours = |c: &str| our_cookies.iter().any(|o| c.split('=').next() == Some(*o));
    let has_ours =
        h.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).any(|v| v.split(';').map(str::trim).any(ours));
    if has_ours {
        let mut kept = String::new();
        for c in h.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')) {
            let c = c.trim();
            if !c.is_empty() && !ours(c) {
                if !kept.is_empty() {
                    kept.push_str("; ");
                }
                kept.push_str(c);
            }
        }
        h.remove(header::COOKIE);
        if !kept.is_empty()
            && let Ok(v) = HeaderValue::from_str(&kept)
        {
            h.insert(header::COOKIE, v);
        }
    }
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", peer.ip())),
        None => HeaderValue::from_str(&peer.ip().to_string()),
    };
    if let Ok(v) = xff {
        h.insert(X_FORWARDED_FOR, v);
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert(X_FORWARDED_HOST, host);
    }
    if let Some(who) = who {
        names.insert(h, who, true);
    }
}
