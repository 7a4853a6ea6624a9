//! One request's context, the same for the gateway's own routes and for proxied requests: its id, its tracing
//! span, and the one finish step (the gateway's own answers get their branded error page and security headers;
//! every answer is counted and logged once).

use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use tracing::Span;

use crate::config::UiConfig;
use crate::http::error::{brand_error_page, wants_json};
use crate::http::metrics::Metrics;

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the gateway knows about a request from its start to its end.
#[derive(Debug)]
pub struct RequestContext {
    id: HeaderValue,
    method: Method,
    wants_json: bool,
    started: Instant,
    span: Span,
}

impl RequestContext {
    /// Starts a request: takes the client's plausible `X-Request-Id` or makes one (and puts it in the request, so
    /// the upstream sees the same id), and opens the request's span (method, path without the query, id).
    pub fn begin<B>(req: &mut Request<B>) -> Self {
        let id = request_id(req.headers());
        req.headers_mut().insert(X_REQUEST_ID, id.clone());
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = id.to_str().unwrap_or_default()
        );
        Self { id, method: req.method().clone(), wants_json: wants_json(req.headers()), started: Instant::now(), span }
    }

    /// The request's span, for the future that serves it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// An answer the gateway made itself: an error becomes its branded page (or JSON, when the client asked for
    /// JSON), and it gets the request id and the security headers (where the handler did not set its own). An
    /// answer that sets or clears a cookie (a session, a CSRF token) or redirects (an authorization code, a
    /// SAML or logout hand-off in its `Location`) is `Cache-Control: no-store` unless the handler chose otherwise:
    /// a shared cache must never hand one user's session or code to the next.
    pub fn own_response(&self, resp: Response, ui: &UiConfig) -> Response {
        let mut resp = brand_error_page(ui, resp, self.wants_json);
        let redirect = resp.status().is_redirection();
        let h = resp.headers_mut();
        if (redirect || h.contains_key(header::SET_COOKIE)) && !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        h.insert(X_REQUEST_ID, self.id.clone());
        h.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
        h.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
        h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
        resp
    }

    /// Ends the request: counted under `route` (the matched route, or the proxy route's label) and logged once.
    pub fn finish(self, metrics: &Metrics, route: &str, status: StatusCode) {
        let elapsed = self.started.elapsed();
        let status = status.as_u16();
        self.span.in_scope(|| tracing::debug!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished"));
        metrics.observe(route, self.method.as_str(), status, elapsed);
    }
}

/// A request id: a random per-process prefix and a counter in hex (unique, cheap, not a secret).
fn next_request_id() -> HeaderValue {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The prefix only has to differ between processes, so it comes from the process id and the start time, not
    // from the random number generator (whose first use seeds itself for tens of milliseconds).
    let prefix = PREFIX.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = (u64::from(std::process::id()) << 32) ^ now.as_secs() ^ u64::from(now.subsec_nanos());
        let mixed = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
        let mut p = [0u8; 8];
        for (i, d) in p.iter_mut().enumerate() {
            *d = HEX[((mixed >> (28 - 4 * i)) & 0xf) as usize];
        }
        p
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let digits = (64 - n.leading_zeros() as usize).div_ceil(4).max(1);
    let mut buf = [0u8; 8 + 1 + 16];
    buf[..8].copy_from_slice(prefix);
    buf[8] = b'-';
    for i in 0..digits {
        buf[8 + digits - i] = HEX[((n >> (4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&buf[..9 + digits]).unwrap_or(HeaderValue::from_static("-"))
}

/// The request's id: the client's `X-Request-Id` when it is a plausible one, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .filter(|v| v.len() <= 64 && v.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
        .cloned()
        .unwrap_or_else(next_request_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[test]
    fn request_ids_are_distinct_and_header_safe() {
        let (a, b) = (super::next_request_id(), super::next_request_id());
        assert_ne!(a, b);
        let a = a.to_str().unwrap();
        assert!(a.len() >= 10 && a.as_bytes()[8] == b'-', "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'), "{a}");
        let mut h = axum::http::HeaderMap::new();
        h.insert(super::X_REQUEST_ID, "trace-42".parse().unwrap());
        assert_eq!(super::request_id(&h), "trace-42", "a plausible client id is kept");
        h.insert(super::X_REQUEST_ID, "no spaces please".parse().unwrap());
        assert_ne!(super::request_id(&h), "no spaces please");
    }
}
