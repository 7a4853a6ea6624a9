//! The one place that turns errors into HTTP responses.
//!
//! Handlers return `Result<_, AppError>`. Internal detail is logged here, once; the body says what the person can
//! do about it. Pages are branded later by [`brand_error_page`], which has the `[ui]` settings.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::UiConfig;
use crate::domain::directory::AuthError;
use crate::domain::session::StoreError;

/// Everything a gateway handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; the message names the problem.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A form arrived without the CSRF token it was issued with.
    #[error("the form expired or did not come from this site")]
    Csrf,
    /// Nothing here by that name.
    #[error("not found: {0}")]
    NotFound(String),
    /// Logged in, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many failed logins.
    #[error("too many failed sign-in attempts")]
    Throttled {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// The directory (LDAP) could not be reached, or answered with data the configuration cannot map.
    #[error(transparent)]
    Directory(AuthError),
    /// The session store failed.
    #[error("session store failed")]
    Session(#[from] StoreError),
    /// An OIDC authorization or logout request that must be shown on the gateway, never redirected (unknown
    /// client, unregistered redirect URI).
    #[error("invalid OpenID Connect request: {0}")]
    OidcRequest(federation::oidc::ProtocolError),
    /// The OIDC grant store failed.
    #[error("grant store failed")]
    OidcStore(#[source] federation::oidc::StoreError),
    /// A proxied request failed, on the upstream's side or the client's.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A SAML request or mapping failure.
    #[error("saml: {0}")]
    Saml(#[from] federation::saml::SamlError),
    /// An OAuth 2.0 error for a client (token, userinfo, introspection, revocation): JSON per RFC 6749 §5.2.
    #[error("oauth error: {error}")]
    OAuth {
        /// The error.
        error: federation::oidc::TokenError,
        /// `WWW-Authenticate` value for 401 answers.
        challenge: Option<&'static str>,
    },
    /// Forward-auth's answer when the request it was asked about may not pass.
    #[error("forward-auth refused: {0}")]
    ForwardAuth(ForwardAuthDenial),
    /// The request body did not arrive within `server.body_read_timeout` (408; the connection is closed).
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    /// Too many failed client authentications for this client or from this IP: 429 + `Retry-After`, with an
    /// RFC 6749 §5.2 `invalid_client` body, without the secret being checked.
    #[error("too many failed client authentications")]
    ClientThrottled {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
}

/// Why a request could not be forwarded, by the side that failed (pingora's error source): the upstream could not
/// be reached, broke off or was too slow (502 / 504, logged as a warning), or the client's request cannot be
/// forwarded (400).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No connection to the upstream (refused, unreachable, TLS failed, connect timeout).
    #[error("cannot connect to upstream {upstream}")]
    Connect {
        /// The route's `upstream`.
        upstream: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The upstream took the request but its answer failed (connection closed, malformed response).
    #[error("upstream {upstream} failed to answer")]
    Response {
        /// The route's `upstream`.
        upstream: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The upstream did not answer within the route's `response_timeout`.
    #[error("upstream {upstream} did not answer within {timeout:?}")]
    Timeout {
        /// The route's `upstream`.
        upstream: String,
        /// The route's `response_timeout`.
        timeout: Duration,
    },
    /// The client's request cannot be sent on (its target cannot be expressed for the upstream).
    #[error("the request cannot be forwarded: {0}")]
    Client(&'static str),
    /// The client's request body broke off or was malformed (its chunked encoding) while it was being forwarded:
    /// the client's failure, not the upstream's (400, logged at debug).
    #[error("the client's request body failed while it was forwarded")]
    ClientBody(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ProxyError {
    /// Whether the upstream failed (rather than the client's request).
    pub fn is_upstream(&self) -> bool {
        !matches!(self, Self::Client(_) | Self::ClientBody(_))
    }
}

/// Why forward-auth (`/auth/verify`, `/auth/forward`) refuses the request it was asked about. Answered in plain
/// text, never as a page: nginx `auth_request` reads only the status, Traefik and Caddy pass the body on.
#[derive(Debug, thiserror::Error)]
pub enum ForwardAuthDenial {
    /// Nobody is signed in (401).
    #[error("unauthorized")]
    Unauthenticated,
    /// Signed in, but the route needs what is named (403).
    #[error("forbidden: needs {0}")]
    Forbidden(String),
    /// No `[[proxy.routes]]` entry covers the host and path, and `proxy.forward_auth_unmatched` is `deny` (403).
    #[error("forbidden: no [[proxy.routes]] entry covers this host and path")]
    Unmatched,
    /// The path cannot be made unambiguous; `status` is what the integration understands (nginx 403, else 400).
    #[error("refused: {message}")]
    Path {
        /// The answer's status.
        status: StatusCode,
        /// What is wrong with the path.
        message: String,
    },
}

impl ForwardAuthDenial {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Unmatched => StatusCode::FORBIDDEN,
            Self::Path { status, .. } => *status,
        }
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => Self::Forbidden("invalid username or password".into()),
            AuthError::PasswordChangeRequired => {
                Self::Forbidden("your password has expired or must be changed; change it, then sign in again".into())
            }
            e @ (AuthError::Unavailable(_) | AuthError::Misconfigured(_)) => Self::Directory(e),
        }
    }
}

/// Marks a response as an error page to be rendered with the gateway's branding.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// Page heading.
    pub title: &'static str,
    /// What happened and what to do.
    pub message: String,
}

impl AppError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form expired or did not come from this site. Go back, reload the page and try again.".into(),
            ),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.clone()),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "Access denied", m.clone()),
            Self::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!("Too many failed sign-in attempts. Try again in {retry_after} seconds."),
            ),
            Self::Directory(
                AuthError::Unavailable(_) | AuthError::InvalidCredentials | AuthError::PasswordChangeRequired,
            ) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Directory unavailable",
                "The user directory cannot be reached right now, so nobody can sign in. \
                 Your password was not checked. Please try again in a minute."
                    .into(),
            ),
            Self::Directory(AuthError::Misconfigured(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in is misconfigured",
                "Your account could not be read because of a configuration problem. The reason is in the \
                 gateway's log; please tell your administrator."
                    .into(),
            ),
            Self::Session(_) | Self::OidcStore(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Session store unavailable",
                "The session store is unavailable, so sign-in cannot complete right now. Please try again \
                 shortly."
                    .into(),
            ),
            Self::OidcRequest(e) => (
                StatusCode::BAD_REQUEST,
                "Invalid sign-in request",
                format!(
                    "The application sent an invalid sign-in request ({}: {}). Tell the application's administrator; \
                     you were not sent back to it because its address could not be trusted.",
                    e.code.as_str(),
                    e.description
                ),
            ),
            Self::BodyTimeout(t) => (
                StatusCode::REQUEST_TIMEOUT,
                "Request too slow",
                format!(
                    "The request body did not arrive within {} (server.body_read_timeout). Send it again.",
                    humantime::format_duration(*t)
                ),
            ),
            Self::Proxy(ProxyError::ClientBody(_)) => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request body broke off or its chunked encoding is malformed; send it again.".into(),
            ),
            Self::Proxy(ProxyError::Client(m)) => {
                (StatusCode::BAD_REQUEST, "Bad request", format!("The request cannot be forwarded: {m}."))
            }
            Self::Proxy(ProxyError::Connect { .. } | ProxyError::Response { .. }) => (
                StatusCode::BAD_GATEWAY,
                "Application unavailable",
                "The application behind this gateway is not answering. You are signed in; try again in a moment."
                    .into(),
            ),
            Self::Proxy(ProxyError::Timeout { .. }) => (
                StatusCode::GATEWAY_TIMEOUT,
                "Application too slow",
                "The application behind this gateway did not answer in time. Try again in a moment.".into(),
            ),
            Self::Saml(e) => {
                use federation::saml::SamlError as S;
                let status = match e {
                    S::UnknownSp(_) => StatusCode::NOT_FOUND,
                    S::NotAllowed { .. } | S::Mapping { .. } => StatusCode::FORBIDDEN,
                    e if e.is_bad_request() => StatusCode::BAD_REQUEST,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let title = match e {
                    S::UnknownSp(_) | S::UnknownIssuer(_) => "Unknown application",
                    S::NotAllowed { .. } => "Access denied",
                    S::Mapping { .. } => "Your account cannot be used here",
                    S::Keys(_) | S::Config(_) => "SAML is misconfigured",
                    _ => "Invalid SAML request",
                };
                let message = if e.is_bad_request() {
                    format!("{e}.")
                } else {
                    "The identity provider is misconfigured; the reason is in the gateway's log.".into()
                };
                (status, title, message)
            }
            Self::ForwardAuth(d) => (d.status(), "Access denied", d.to_string()),
            Self::ClientThrottled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!("Too many failed client authentications. Try again in {retry_after} seconds."),
            ),
            Self::OAuth { error, .. } => (
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                "OAuth error",
                error.to_json().to_string(),
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::OAuth { error, challenge } = &self {
            // Machine clients get the RFC 6749 §5.2 JSON body as-is, never an HTML page.
            match error {
                federation::oidc::TokenError::Protocol(e) => {
                    tracing::debug!(code = e.code.as_str(), "oauth request refused")
                }
                other => tracing::error!(error = %other, "oauth request failed"),
            }
            let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut resp = (status, axum::Json(error.to_json())).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Some(c) = challenge {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
            return resp;
        }
        if let Self::ForwardAuth(denial) = &self {
            tracing::debug!(%denial, "forward-auth refused");
            return (denial.status(), format!("{denial}\n")).into_response();
        }
        if let Self::ClientThrottled { retry_after } = &self {
            let body = serde_json::json!({
                "error": "invalid_client",
                "error_description": format!("too many failed client authentications; retry after {retry_after} seconds"),
            });
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        let (status, title, message) = self.parts();
        match &self {
            Self::Directory(e @ AuthError::Misconfigured(_)) => {
                tracing::error!(error = %Chain(e), "directory misconfigured")
            }
            Self::Directory(e) => tracing::warn!(error = %Chain(e), "directory unavailable"),
            Self::Session(e) => tracing::error!(error = %e, "session store failed"),
            Self::OidcStore(e) => tracing::error!(error = %Chain(e), "grant store failed"),
            Self::Proxy(e) if e.is_upstream() => tracing::warn!(error = %Chain(e), "proxied request failed"),
            Self::Proxy(e) => tracing::debug!(error = %Chain(e), "proxied request refused"),
            Self::Saml(e @ federation::saml::SamlError::Mapping { .. }) => {
                tracing::warn!(error = %e, "SAML response refused: fix the user's directory data or the SP's nameid_template / role_mapping")
            }
            Self::Saml(e @ federation::saml::SamlError::BadSignature { .. }) => {
                tracing::info!(error = %Chain(e), "SAML message refused: its signature (check the SP's certificate)")
            }
            Self::Saml(e) if !e.is_bad_request() => tracing::error!(error = %Chain(e), "SAML failed"),
            other => tracing::debug!(error = %other, "request refused"),
        }
        let mut resp = (status, message.clone()).into_response();
        if let Self::Throttled { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp.extensions_mut().insert(ErrorPage { title, message });
        resp
    }
}

/// An error with its causes, `a: b: c`, for log lines.
pub struct Chain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// Whether the client asked for JSON rather than a page (`Accept` names JSON and not HTML).
pub fn wants_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// Turns an error response marked with an [`ErrorPage`] into the branded HTML page (or JSON when the client asked
/// for JSON); any other response passes unchanged. Called once per request by the gateway's outer middleware.
pub fn brand_error_page(ui: &UiConfig, resp: Response, wants_json: bool) -> Response {
    let Some(page) = resp.extensions().get::<ErrorPage>().cloned() else { return resp };
    let (mut parts, _) = resp.into_parts();
    let body = if wants_json {
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        serde_json::json!({ "error": page.title, "message": page.message }).to_string()
    } else {
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        let home = crate::http::pages::Link { href: "/", text: "Go to your account page" };
        crate::http::pages::message(ui, page.title, &page.message, Some(home)).into_string()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
