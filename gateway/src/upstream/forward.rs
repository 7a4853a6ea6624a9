//! Forwarding to an upstream: header hygiene (hop-by-hop headers per RFC 9110 §7.6.1, client-sent identity
//! headers and our cookies removed, `X-Forwarded-*` set, our identity headers added), bodies streamed both ways
//! without buffering, WebSocket upgrades spliced, pooled connections, 502 when the upstream is down and 504 when
//! it is slow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::pool::{Http1Pool, PooledBody};
use super::tunnel::{self, TunnelGuard};
use crate::config::{HeaderNames, RouteConfig};
use crate::domain::identity::Identity;
use crate::http::error::ProxyError;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`.
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// Headers about the client that only the gateway may set; besides the identity headers, a client's copy spelled
/// with `_` for `-` is removed too.
const CLIENT_FACTS: [&str; 6] =
    ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip", "forwarded"];
/// Headers other authenticating proxies set for the user, which an app moved behind fedgate may still trust:
/// oauth2-proxy (`X-Auth-Request-*`), Authelia and Traefik set-ups (`Remote-*`), Apache-style `X-Remote-*`,
/// Grafana and Gitea (`X-WEBAUTH-*`), AWS ALB (`X-Amzn-Oidc-*`), Cloudflare Access, Google IAP, Azure App
/// Service, Pomerium, Kong (`X-Authenticated-*`). A client's copy is removed unless the gateway itself sets that name (`[proxy.headers]`).
/// Lower case with `-`; names and prefixes.
const FOREIGN_IDENTITY: [&str; 4] = ["remote-user", "remote-email", "remote-groups", "remote-name"];
/// Prefixes of [`FOREIGN_IDENTITY`] families.
const FOREIGN_IDENTITY_PREFIXES: [&str; 9] = [
    "x-auth-request-",
    "x-remote-",
    "x-webauth-",
    "x-amzn-oidc-",
    "cf-access-",
    "x-goog-authenticated-user-",
    "x-ms-client-principal",
    "x-pomerium-",
    "x-authenticated-",
];

/// Is `dashed` (lower case, `_` read as `-`) a header another auth proxy uses for the user?
fn foreign_identity(dashed: &str) -> bool {
    FOREIGN_IDENTITY.contains(&dashed) || FOREIGN_IDENTITY_PREFIXES.iter().any(|p| dashed.starts_with(p))
}

/// How many names [`HOP_BY_HOP`] has.
const HOP_BY_HOP_COUNT: usize = 8;
/// Hop-by-hop headers (RFC 9110 §7.6.1) besides `Connection` and `Upgrade`, parsed at compile time.
/// `HTTP2-Settings` belongs to an `Upgrade: h2c` (RFC 7540 §3.2.1), which is never forwarded: an app that speaks
/// clear-text HTTP/2 would take the connection over, and later requests on it would bypass the proxy's decisions.
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("http2-settings"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The [`ProxyError`] for a failure of the plain-HTTP pool.
fn pool_error(upstream: &str, e: super::pool::PoolError) -> ProxyError {
    use super::pool::PoolError as P;
    let upstream = upstream.to_string();
    match e {
        e @ (P::Connect { .. } | P::ConnectTimeout { .. }) => ProxyError::Connect { upstream, source: Box::new(e) },
        P::Http(e) if client_body_failed(&e) => ProxyError::ClientBody(Box::new(e)),
        P::Http(e) => ProxyError::Response { upstream, source: Box::new(e) },
    }
}

/// Whether sending failed because the body being sent, the client's, failed: hyper reports an error of the
/// user's body (`is_user`) whose cause is the error reading the client's connection (a malformed chunk, a body
/// cut off). That is the client's doing, not the upstream's.
fn client_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && h.is_user()
        {
            return std::error::Error::source(h).is_some_and(|s| s.downcast_ref::<hyper::Error>().is_some());
        }
        cause = c.source();
    }
    false
}

/// The [`ProxyError`] for a failure of the TLS client.
fn client_error(upstream: &str, e: hyper_util::client::legacy::Error) -> ProxyError {
    let upstream = upstream.to_string();
    if e.is_connect() {
        ProxyError::Connect { upstream, source: Box::new(e) }
    } else if client_body_failed(&e) {
        ProxyError::ClientBody(Box::new(e))
    } else {
        ProxyError::Response { upstream, source: Box::new(e) }
    }
}

/// The identity header values of `who`: built once per session (kept beside it in the session cache), or for
/// this token.
pub fn header_values(who: &Identity) -> std::borrow::Cow<'_, UserHeaderValues> {
    use std::borrow::Cow;
    let build = || UserHeaderValues::new(who.username(), who.email(), who.groups(), who.roles());
    match who.session() {
        Some(s) => s.derived.get_or_init(build).map_or_else(|| Cow::Owned(build()), Cow::Borrowed),
        None => Cow::Owned(build()),
    }
}

/// A user's identity header values (username, e-mail, groups and roles joined by commas), validated once; `None`
/// where a value is missing or cannot be a header value. A comma inside a group or role name is written `%2C`:
/// names are directory data, and a group called `pets,ai-admins` must not read as `ai-admins` to an app that
/// splits the header.
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
            groups: HeaderValue::from_str(&join_names(groups)).ok(),
            roles: HeaderValue::from_str(&join_names(roles)).ok(),
        }
    }
}

/// `names` joined by commas, a comma inside a name written `%2C`.
fn join_names(names: &[String]) -> String {
    if !names.iter().any(|n| n.contains(',')) {
        return names.join(",");
    }
    names.iter().map(|n| n.replace(',', "%2C")).collect::<Vec<_>>().join(",")
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
    /// Every name the gateway sets, lower-case with `-`, for recognising `_` spellings of them.
    protected: Vec<String>,
}

impl IdentityHeaders {
    /// Parses the configured names; `Err` names the one that is not a valid header name.
    pub fn new(names: &HeaderNames) -> Result<Self, String> {
        let parse = |n: &str| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name"));
        let mut protected: Vec<String> = CLIENT_FACTS.iter().map(|n| n.to_string()).collect();
        let ours = [&names.user, &names.email, &names.preferred_username, &names.groups, &names.roles];
        protected.extend(
            ours.into_iter().chain(names.access_token.as_ref()).map(|n| n.to_ascii_lowercase().replace('_', "-")),
        );
        Ok(Self {
            user: parse(&names.user)?,
            email: parse(&names.email)?,
            preferred_username: parse(&names.preferred_username)?,
            groups: parse(&names.groups)?,
            roles: parse(&names.roles)?,
            access_token: names.access_token.as_deref().map(parse).transpose()?,
            protected,
        })
    }

    /// Removes client-sent headers that could pass for the gateway's: any `X-Forwarded-*` it does not set itself
    /// (`X-Forwarded-Port`, `-Prefix`, …), `Forwarded`, and every spelling of its own names with `_` for `-`
    /// (`X_Forwarded_User`), which CGI, WSGI, PHP and Rack read as the same variable (`HTTP_X_FORWARDED_USER`).
    /// The names the gateway sets keep their client copy only until [`Self::set`] and [`prepare`] replace it.
    /// Identity headers of other auth proxies ([`FOREIGN_IDENTITY`]) go too, in either spelling.
    pub fn remove_client_claims(&self, h: &mut HeaderMap) {
        let suspicious = |n: &str| {
            n.starts_with("x-forwarded")
                || n == "forwarded"
                || n.as_bytes().contains(&b'_')
                || (matches!(n.as_bytes().first(), Some(b'r' | b'x' | b'c')) && foreign_identity(n))
        };
        if !h.keys().any(|n| suspicious(n.as_str())) {
            return;
        }
        let doomed: Vec<HeaderName> = h
            .keys()
            .filter(|n| suspicious(n.as_str()))
            .filter(|n| {
                let name = n.as_str();
                let dashed = name.replace('_', "-");
                let set_by_us = !name.contains('_') && self.sets(name);
                !set_by_us
                    && (dashed.starts_with("x-forwarded-")
                        || self.protected.contains(&dashed)
                        || foreign_identity(&dashed))
            })
            .cloned()
            .collect();
        for n in doomed {
            h.remove(n);
        }
    }

    /// Is `name` (lower case) a header the gateway sets on every forwarded request?
    fn sets(&self, name: &str) -> bool {
        [&self.user, &self.email, &self.preferred_username, &self.groups, &self.roles]
            .into_iter()
            .chain(self.access_token.as_ref())
            .any(|n| n.as_str() == name)
            || ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"].contains(&name)
    }

    /// Sets `who`'s headers in `h`, replacing whatever was there; names without a value for `who` (none at all
    /// when `who` is `None`) are removed, so a client can never supply them. The access token only when
    /// `with_token`.
    pub fn set(&self, h: &mut HeaderMap, who: Option<&Identity>, with_token: bool) {
        let values = who.map(header_values);
        let values = values.as_deref();
        let mut put = |name: &HeaderName, value: Option<&HeaderValue>| match value {
            Some(v) => {
                h.insert(name.clone(), v.clone());
            }
            None => {
                h.remove(name);
            }
        };
        put(&self.user, values.and_then(|v| v.username.as_ref()));
        put(&self.preferred_username, values.and_then(|v| v.username.as_ref()));
        put(&self.email, values.and_then(|v| v.email.as_ref()));
        put(&self.groups, values.and_then(|v| v.groups.as_ref()));
        put(&self.roles, values.and_then(|v| v.roles.as_ref()));
        if let Some(name) = &self.access_token {
            let token = who.filter(|_| with_token).and_then(|w| w.token.as_deref());
            put(name, token.and_then(|t| HeaderValue::from_str(t).ok()).as_ref());
        }
    }
}

/// The client's address as `X-Forwarded-For` needs it, made once per connection.
pub fn client_ip_value(peer: SocketAddr) -> HeaderValue {
    ip_value(peer.ip())
}

/// An address as a header value.
pub fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Who sent a request, as the upstream is told it.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// The connection's peer, appended to `X-Forwarded-For`.
    pub peer: HeaderValue,
    /// For `X-Real-IP`, when the peer is a proxy fedgate trusts (`server.trusted_proxies`): the client that proxy
    /// names in `X-Forwarded-For`, as nginx's realip module picks it. `None`: the peer.
    pub real: Option<HeaderValue>,
}

/// How a route reaches its upstream.
enum UpstreamClient {
    /// Plain `http`: kept-alive HTTP/1.1 connections of our own ([`Http1Pool`]).
    Plain(Arc<Http1Pool>),
    /// `https`: hyper-util's pooled client with rustls (HTTP/2 by ALPN). Request bodies go upstream as they
    /// arrived, without boxing, but for their trailers ([`NoTrailers`]).
    Tls(Box<Client<crate::http::outbound::Connector, NoTrailers>>),
}

/// A client's request body on its way to an app, without its trailers. Trailers are headers sent after the body
/// (`X-Forwarded-User: admin` after the last chunk), where no header check of the proxy looks; to an HTTP/2 app
/// they arrive as request trailers, which Go's `Request.Trailer`, Node's `req.trailers` and gRPC gateways hand
/// the app beside its headers. Nothing an app needs comes that way from a browser, so none are forwarded (our
/// HTTP/1.1 pool never sent them: they are only written when a `Trailer` header, which is hop-by-hop, declares
/// them).
pub struct NoTrailers(Incoming);

impl http_body::Body for NoTrailers {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        loop {
            match std::pin::Pin::new(&mut self.0).poll_frame(cx) {
                std::task::Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {}
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The body of every response the server sends: an upstream's, passed through as it arrives, or one the gateway
/// made.
pub type ResponseBody = http_body_util::Either<PooledBody, Body>;

/// A route with its upstream URL parsed and its client.
pub struct Upstream {
    /// The route.
    pub route: RouteConfig,
    base: url::Url,
    client: UpstreamClient,
    /// The `Host` sent upstream (unless `preserve_host`), built once.
    host: Option<HeaderValue>,
    /// Requests keep their path as it is (no base path, no prefix to strip).
    keeps_path: bool,
    /// Scheme and authority of the upstream, parsed once (absolute-form URIs for the https client).
    origin: Option<(axum::http::uri::Scheme, axum::http::uri::Authority)>,
    /// The `route` label of this route's request metrics.
    pub metrics_label: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("upstream", &self.route.upstream).finish()
    }
}

impl Upstream {
    /// Builds the route's client: our own HTTP/1.1 pool for `http`, hyper-util's client with rustls for `https`
    /// (roots from `ca_file` or the webpki roots).
    pub fn new(route: RouteConfig) -> anyhow::Result<Self> {
        let base = url::Url::parse(&route.upstream)?;
        let client = if base.scheme() == "http" {
            let port = base.port_or_known_default().unwrap_or(80);
            let host = base.host_str().ok_or_else(|| anyhow::anyhow!("{} has no host", route.upstream))?;
            UpstreamClient::Plain(Http1Pool::new(format!("{host}:{port}"), route.connect_timeout))
        } else {
            let connector = crate::http::outbound::connector(route.ca_file.as_deref(), route.connect_timeout)?;
            UpstreamClient::Tls(Box::new(
                Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(connector),
            ))
        };
        let host = HeaderValue::from_str(base.authority()).ok();
        let keeps_path =
            base.path().trim_end_matches('/').is_empty() && !(route.strip_prefix && route.path_prefix != "/");
        let origin = match (base.scheme().parse(), base.authority().parse()) {
            (Ok(scheme), Ok(authority)) => Some((scheme, authority)),
            _ => None,
        };
        let metrics_label = format!("proxy {}{}", route.host.as_deref().unwrap_or("*"), route.path_prefix);
        Ok(Self { route, base, client, host, keeps_path, origin, metrics_label })
    }

    /// Does this route take requests for `host` and `path`?
    pub fn matches(&self, host: &str, path: &str) -> bool {
        self.route.matches(host, path)
    }

    /// The URI to send: the path (prefix stripped, base path added) and query, in origin form for our HTTP/1.1
    /// pool and in absolute form for hyper-util's client.
    fn target(&self, uri: &Uri) -> Result<Uri, ProxyError> {
        let bad = || ProxyError::Client("its path cannot be expressed for the upstream");
        let path_and_query = if self.keeps_path {
            uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            let mut path = uri.path();
            if self.route.strip_prefix && self.route.path_prefix != "/" {
                path = path.strip_prefix(self.route.path_prefix.trim_end_matches('/')).unwrap_or(path);
            }
            let slash = if path.starts_with('/') { "" } else { "/" };
            let mut s = format!("{}{slash}{path}", self.base.path().trim_end_matches('/'));
            if let Some(q) = uri.query() {
                s.push('?');
                s.push_str(q);
            }
            PathAndQuery::try_from(s).map_err(|_| bad())?
        };
        match (&self.client, &self.origin) {
            (UpstreamClient::Plain(_), _) => Ok(Uri::from(path_and_query)),
            (UpstreamClient::Tls(_), Some((scheme, authority))) => {
                let mut parts = axum::http::uri::Parts::default();
                parts.scheme = Some(scheme.clone());
                parts.authority = Some(authority.clone());
                parts.path_and_query = Some(path_and_query);
                Uri::from_parts(parts).map_err(|_| bad())
            }
            (UpstreamClient::Tls(_), None) => Err(bad()),
        }
    }

    /// Forwards `req` (already stripped of client identity headers by [`prepare`]). A WebSocket upgrade the
    /// upstream accepts becomes a tunnel ([`tunnel::splice`]) that `guard`, when given, closes.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        guard: Option<TunnelGuard>,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let target = self.target(req.uri())?;
        if !self.route.preserve_host {
            if let Some(v) = &self.host {
                req.headers_mut().insert(header::HOST, v.clone());
            }
        } else if !req.headers().contains_key(header::HOST) {
            // An HTTP/2 client names the host in the URI, not in a header; HTTP/1.1 wants the header. An HTTP/1.0
            // request may name none: sent on without one, the app would pick its default virtual host, which is
            // not the host the route decided on (none).
            let v = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()).ok_or(
                ProxyError::Client(
                    "it names no host (no Host header), and this route sends the client's host to the app",
                ),
            )?;
            req.headers_mut().insert(header::HOST, v);
        }
        *req.uri_mut() = target;
        // The client may have spoken HTTP/2 to us; the upstream connection's protocol is the pool's business
        // (ALPN for https, HTTP/1.1 otherwise), so the request must not insist on the client's version.
        *req.version_mut() = axum::http::Version::HTTP_11;
        let upgrade = is_websocket(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let upstream = &self.route.upstream;
        let sent = async {
            match &self.client {
                UpstreamClient::Plain(pool) => pool.send(req).await.map_err(|e| pool_error(upstream, e)),
                UpstreamClient::Tls(client) => {
                    let req = req.map(NoTrailers);
                    client.request(req).await.map(|r| r.map(PooledBody::from)).map_err(|e| client_error(upstream, e))
                }
            }
        };
        let timeout = self.route.response_timeout;
        let resp = tokio::time::timeout(timeout, sent)
            .await
            .map_err(|_| ProxyError::Timeout { upstream: upstream.clone(), timeout })??;
        let (mut parts, body) = resp.into_parts();
        if parts.status == axum::http::StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let mut upstream_resp = Response::from_parts(parts.clone(), body);
            let upstream_upgrade = hyper::upgrade::on(&mut upstream_resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => tunnel::splice(TokioIo::new(client), TokioIo::new(upstream), guard).await,
                    Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
                }
            });
            return Ok(Response::from_parts(parts, ResponseBody::Right(Body::empty())));
        }
        strip_hop_by_hop(&mut parts.headers, false);
        Ok(Response::from_parts(parts, ResponseBody::Left(body)))
    }
}

/// Whether `h` asks for a WebSocket upgrade (`Upgrade: websocket`).
pub fn is_websocket(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Headers a `Connection` header cannot have removed: the `Host` the route decided on (with `preserve_host` the
/// app got no `Host` at all, and picked its default virtual host) and the request id fedgate set. The other
/// headers fedgate sets are set after the removal.
const NOT_HOP_BY_HOP: [HeaderName; 2] = [header::HOST, crate::http::request::X_REQUEST_ID];

/// Removes hop-by-hop headers (and those named by `Connection`, but never [`NOT_HOP_BY_HOP`]). A WebSocket
/// handshake keeps `Connection: upgrade` and `Upgrade: websocket`, alone: a second protocol offered beside it
/// (`Upgrade: h2c`) is not the app's business. Most messages carry none of them, or only
/// `Connection: keep-alive`, so it looks once at the names present and removes only those.
pub fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let (mut connection, mut upgrade, mut present) = (false, false, [false; HOP_BY_HOP_COUNT]);
    for name in h.keys() {
        if name == header::CONNECTION {
            connection = true;
        } else if name == header::UPGRADE {
            upgrade = true;
        } else if let Some(i) = HOP_BY_HOP.iter().position(|n| n == name) {
            present[i] = true;
        }
    }
    if connection {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| !["keep-alive", "close", "upgrade", ""].iter().any(|k| n.eq_ignore_ascii_case(k)))
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .filter(|n| !NOT_HOP_BY_HOP.contains(n))
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for (n, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        h.remove(n);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    } else {
        if connection {
            h.remove(header::CONNECTION);
        }
        if upgrade {
            h.remove(header::UPGRADE);
        }
    }
}

/// Everything done to a request before it leaves: hop-by-hop headers removed, every identity header replaced by
/// this identity's or removed (header names compare case-insensitively, so no client-sent copy survives), our
/// cookies taken out of `Cookie`, `X-Forwarded-*` set (the client's address appended to any `X-Forwarded-For`),
/// `X-Real-IP` set to the client's address, and the client's `Forwarded` and `_` spellings of all these removed.
pub fn prepare<B>(
    req: &mut Request<B>,
    names: &IdentityHeaders,
    who: Option<&Identity>,
    client: &ClientAddr,
    proto: &'static str,
    our_cookies: &[&str],
) {
    let websocket = is_websocket(req.headers());
    // An HTTP/2 client names the host in the URI's authority, not in a `Host` header.
    let authority = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let h = req.headers_mut();
    strip_hop_by_hop(h, websocket);
    names.remove_client_claims(h);
    names.set(h, who, true);
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
    let client_ip = &client.peer;
    let xff = match h.get(&X_FORWARDED_FOR).map(|prev| prev.to_str()) {
        None => Some(client_ip.clone()),
        Some(Ok(prev)) => client_ip.to_str().ok().and_then(|ip| HeaderValue::from_str(&format!("{prev}, {ip}")).ok()),
        Some(Err(_)) => Some(client_ip.clone()),
    };
    if let Some(v) = xff {
        h.insert(X_FORWARDED_FOR, v);
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = h.get(header::HOST).cloned().or(authority) {
        h.insert(X_FORWARDED_HOST, host);
    } else {
        h.remove(X_FORWARDED_HOST);
    }
    // The address the gateway saw (or a trusted proxy's client), never the client's claim (a client's `X-Real-IP`
    // and `Forwarded` went in `remove_client_claims`).
    h.insert(X_REAL_IP, client.real.as_ref().unwrap_or(client_ip).clone());
}

/// Removes from an upstream's response every `Set-Cookie` that names one of `our_cookies` (fedgate's session,
/// CSRF and binding cookies): an app behind the proxy shares fedgate's origin, and could otherwise plant its own
/// session in the browser (session fixation: the victim then works as someone else in every app) or a CSRF token
/// of its choosing, or clear them. The name is what a browser reads (RFC 6265 §5.2: before the first `=`,
/// whitespace trimmed). The app's other cookies pass. Each removal is logged (the name, never the value).
pub fn remove_our_set_cookies(h: &mut HeaderMap, our_cookies: &[&str], upstream: &str) {
    let ours = |v: &HeaderValue| {
        let pair = v.as_bytes().split(|b| *b == b';').next().unwrap_or_default();
        let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
        let name = name.trim_ascii();
        our_cookies.iter().find(|o| !name.is_empty() && o.as_bytes() == name).copied()
    };
    if !h.get_all(header::SET_COOKIE).iter().any(|v| ours(v).is_some()) {
        return;
    }
    let all: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    h.remove(header::SET_COOKIE);
    for v in all {
        match ours(&v) {
            Some(name) => tracing::warn!(upstream, cookie = name, "the app tried to set fedgate's cookie; removed"),
            None => {
                h.append(header::SET_COOKIE, v);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_upstream_cannot_set_our_cookies() {
        let mut h = HeaderMap::new();
        for v in ["fedgate_session=x; Path=/", " fedgate_csrf =y", "app=1; Path=/", "fedgate_session2=z", "noequals"] {
            h.append(header::SET_COOKIE, HeaderValue::from_static(v));
        }
        remove_our_set_cookies(&mut h, &["fedgate_session", "fedgate_csrf"], "http://app");
        let left: Vec<_> = h.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(left, ["app=1; Path=/", "fedgate_session2=z", "noequals"]);
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));

        let mut ws = headers(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("proxy-authorization", "x")]);
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws["connection"], "upgrade");
        assert_eq!(ws["upgrade"], "websocket");
        assert!(!ws.contains_key("proxy-authorization"));

        let mut named =
            headers(&[("connection", "Host, X-Request-Id, HTTP2-Settings"), ("host", "a"), ("x-request-id", "1")]);
        strip_hop_by_hop(&mut named, false);
        assert_eq!((named["host"].as_bytes(), named["x-request-id"].as_bytes()), (&b"a"[..], &b"1"[..]));
        let mut h2c = headers(&[("upgrade", "websocket"), ("upgrade", "h2c"), ("http2-settings", "AAMA")]);
        strip_hop_by_hop(&mut h2c, true);
        assert_eq!(h2c.get_all("upgrade").iter().collect::<Vec<_>>(), ["websocket"]);
        assert!(!h2c.contains_key("http2-settings"));

        let mut plain = headers(&[("accept", "*/*"), ("cookie", "a=b")]);
        strip_hop_by_hop(&mut plain, false);
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn identity_headers_are_ours_or_absent() {
        let names = IdentityHeaders::new(&HeaderNames::default()).unwrap();
        let who = Identity::from_token("sub".into(), "alice".into(), vec!["g".into()], vec![], "tok".into());
        let mut h =
            headers(&[("X-Forwarded-User", "root"), ("x-forwarded-roles", "admin"), ("x-forwarded-email", "e")]);
        names.set(&mut h, Some(&who), true);
        assert_eq!(h.get_all("x-forwarded-user").iter().collect::<Vec<_>>(), ["alice"]);
        assert_eq!(h["x-forwarded-roles"], "", "an empty list replaces the client's value");
        assert!(!h.contains_key("x-forwarded-email"), "a token carries no e-mail, so the client's is removed");
        let mut anon = headers(&[("x-forwarded-user", "root"), ("x-forwarded-groups", "admins")]);
        names.set(&mut anon, None, true);
        assert!(anon.is_empty(), "{anon:?}");
    }

    #[test]
    fn client_claims_in_any_spelling_are_removed() {
        let names = IdentityHeaders::new(&HeaderNames::default()).unwrap();
        let mut req = Request::new(());
        *req.headers_mut() = headers(&[
            ("x_forwarded_user", "admin"),
            ("X_Forwarded_Roles", "admin"),
            ("x-forwarded_groups", "admins"),
            ("x_real_ip", "10.0.0.1"),
            ("x-real-ip", "10.0.0.1"),
            ("forwarded", "for=10.0.0.1;host=admin.example.com"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/admin"),
            ("x-forwarded-for", "10.9.9.9"),
            ("my_app_header", "kept"),
            ("host", "app.example.com"),
        ]);
        let ip = HeaderValue::from_static("127.0.0.7");
        prepare(&mut req, &names, None, &ClientAddr { peer: ip, real: None }, "https", &[]);
        let h = req.headers();
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            ["host", "my_app_header", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"]
        );
        assert_eq!(h["x-real-ip"], "127.0.0.7");
        assert_eq!(h["x-forwarded-for"], "10.9.9.9, 127.0.0.7", "the client's chain, then the address we saw");
    }
}
