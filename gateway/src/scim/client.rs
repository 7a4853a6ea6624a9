//! Talking to one SCIM server: authentication (static bearer token, or OAuth 2.0 client credentials cached until
//! 80 % of their lifetime), `429`/`503` with `Retry-After`, a bounded retry of transport errors and `5xx`, and the
//! few User operations a sync needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use federation::scim::{TargetAuth, TargetConfig, TargetUser};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Throttled (`429`/`503`) requests are retried this many times.
const THROTTLE_RETRIES: u32 = 6;
/// Transport errors and other `5xx` are retried this many times.
const ERROR_RETRIES: u32 = 2;
/// Largest response body read.
const MAX_BODY: usize = 16 * 1024 * 1024;

type HttpClient = Client<crate::http::outbound::Connector, Full<Bytes>>;

/// A failed SCIM call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScimError {
    /// The server answered with an error status.
    #[error("{method} {url}: HTTP {status}{}: {detail}", scim_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Status {
        /// Method.
        method: Method,
        /// URL.
        url: String,
        /// Status code.
        status: u16,
        /// SCIM `scimType`.
        scim_type: Option<String>,
        /// SCIM `detail`, or the start of the body.
        detail: String,
    },
    /// No answer (connection refused, timeout, TLS).
    #[error("{method} {url}: {reason}")]
    Transport {
        /// Method.
        method: Method,
        /// URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The OAuth token endpoint refused or failed.
    #[error("token endpoint {url}: {reason}")]
    Token {
        /// Token endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The answer is not what SCIM says it should be.
    #[error("{url}: unexpected response: {reason}")]
    Malformed {
        /// URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ScimError {
    /// The HTTP status, for status errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ScimError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the target could not be reached at all (as opposed to refusing one request).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ScimError::Transport { .. } | ScimError::Token { .. })
    }
}

/// A client for one target.
#[derive(Clone)]
pub struct ScimClient {
    base: String,
    http: HttpClient,
    auth: TargetAuth,
    token: Arc<tokio::sync::Mutex<Option<(String, Instant)>>>,
    timeout: Duration,
}

impl std::fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClient").field("base", &self.base).finish()
    }
}

impl ScimClient {
    /// Builds the client of `target` (reads secret files and the CA file).
    pub fn new(target: &TargetConfig) -> anyhow::Result<Self> {
        let connector =
            crate::http::outbound::connector(target.ca_file.as_deref(), target.timeout.min(Duration::from_secs(10)))
                .map_err(|e| anyhow::anyhow!("scim target {}: {e}", target.name))?;
        let auth = target.auth().map_err(|e| anyhow::anyhow!("scim target {}: {e}", target.name))?;
        Ok(Self {
            base: target.base_url(),
            http: Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector),
            auth,
            token: Arc::new(tokio::sync::Mutex::new(None)),
            timeout: target.timeout,
        })
    }

    fn users_url(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => format!("{}/Users/{}", self.base, utf8_percent_encode(id, NON_ALPHANUMERIC)),
            None => format!("{}/Users", self.base),
        }
    }

    /// The `Authorization` header value, fetching a token when needed.
    async fn authorization(&self, refresh: bool) -> Result<Option<HeaderValue>, ScimError> {
        let token = match &self.auth {
            TargetAuth::None => return Ok(None),
            TargetAuth::Bearer(t) => t.expose().to_string(),
            TargetAuth::ClientCredentials { .. } => {
                let mut cached = self.token.lock().await;
                match cached.as_ref() {
                    Some((t, until)) if !refresh && Instant::now() < *until => t.clone(),
                    _ => {
                        let (t, until) = self.fetch_token().await?;
                        *cached = Some((t.clone(), until));
                        t
                    }
                }
            }
        };
        HeaderValue::from_str(&format!("Bearer {token}")).map(Some).map_err(|_| ScimError::Token {
            url: self.base.clone(),
            reason: "the token is not a valid header value".into(),
        })
    }

    async fn fetch_token(&self) -> Result<(String, Instant), ScimError> {
        let TargetAuth::ClientCredentials { token_url, client_id, client_secret, scope } = &self.auth else {
            return Err(ScimError::Token { url: String::new(), reason: "no client credentials configured".into() });
        };
        let err = |reason: String| ScimError::Token { url: token_url.clone(), reason };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let body = serde_urlencoded::to_string(&form).map_err(|e| err(e.to_string()))?;
        // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
        let enc =
            |s: &str| serde_urlencoded::to_string([("", s)]).unwrap_or_default().trim_start_matches('=').to_string();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(client_id),
            enc(client_secret.expose())
        ));
        let request = Request::post(token_url.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| err(e.to_string()))?;
        let started = Instant::now();
        let (status, _, bytes) = self.exchange(request).await.map_err(|e| err(e.to_string()))?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = json
                .get("error_description")
                .or_else(|| json.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| snippet(&bytes));
            return Err(err(format!("HTTP {}: {detail}", status.as_u16())));
        }
        let token = json
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| err("the answer has no access_token".into()))?;
        // Alibaba sends expires_in as a string.
        let expires_in = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(300);
        let until = started + Duration::from_secs(expires_in.saturating_mul(8) / 10);
        Ok((token.to_string(), until))
    }

    /// One HTTP exchange with the timeout; the body read in full (bounded).
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        let response = tokio::time::timeout(self.timeout, self.http.request(request))
            .await
            .map_err(|_| format!("no answer within {}", humantime::format_duration(self.timeout)))?
            .map_err(|e| transport_reason(&e))?;
        let (parts, body) = response.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_BODY);
        let bytes = tokio::time::timeout(self.timeout, limited.collect())
            .await
            .map_err(|_| "the response body did not arrive in time".to_string())?
            .map_err(|e| format!("reading the response: {e}"))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    /// Sends a SCIM request with retries; returns the status and the JSON body (`Null` when empty). Error statuses
    /// become [`ScimError::Status`] with the server's `detail`.
    async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Result<(StatusCode, Value), ScimError> {
        let payload = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut refreshed = false;
        let mut throttled = 0;
        let mut failed = 0;
        loop {
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(url)
                .header(header::ACCEPT, "application/scim+json, application/json");
            if body.is_some() {
                builder = builder.header(header::CONTENT_TYPE, "application/scim+json");
            }
            if let Some(auth) = self.authorization(refreshed).await? {
                builder = builder.header(header::AUTHORIZATION, auth);
            }
            let request = builder.body(Full::new(payload.clone())).map_err(|e| ScimError::Malformed {
                url: url.to_string(),
                reason: format!("cannot build the request: {e}"),
            })?;
            let (status, headers, bytes) = match self.exchange(request).await {
                Ok(r) => r,
                Err(reason) if failed < ERROR_RETRIES => {
                    failed += 1;
                    tracing::debug!(%method, url, %reason, "scim request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250 << failed)).await;
                    continue;
                }
                Err(reason) => return Err(ScimError::Transport { method, url: url.to_string(), reason }),
            };
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && matches!(self.auth, TargetAuth::ClientCredentials { .. })
            {
                refreshed = true;
                continue;
            }
            if (status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE)
                && throttled < THROTTLE_RETRIES
            {
                throttled += 1;
                let wait = retry_after(&headers).unwrap_or(Duration::from_millis(500 << throttled.min(6)));
                tracing::info!(%method, url, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "scim target asks us to slow down; waiting");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED && failed < ERROR_RETRIES {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(250 << failed)).await;
                continue;
            }
            let json = body_json(&bytes);
            if !status.is_success() {
                let detail =
                    json.get("detail").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| snippet(&bytes));
                let scim_type = json.get("scimType").and_then(Value::as_str).map(str::to_string);
                return Err(ScimError::Status {
                    method,
                    url: url.to_string(),
                    status: status.as_u16(),
                    scim_type,
                    detail,
                });
            }
            return Ok((status, json));
        }
    }

    /// Every user on the target, page by page.
    pub async fn list_users(&self, page_size: usize) -> Result<Vec<TargetUser>, ScimError> {
        let mut users = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut start = 1usize;
        loop {
            let url = format!("{}?startIndex={start}&count={page_size}", self.users_url(None));
            let (_, page) = self.send(Method::GET, &url, None).await?;
            let malformed = |reason: &str| ScimError::Malformed { url: url.clone(), reason: reason.to_string() };
            let (total, page_users) = read_list_page(&page).map_err(malformed)?;
            let n = page_users.len();
            let before = users.len();
            for user in page_users {
                if seen.insert(user.id.clone()) {
                    users.push(user);
                }
            }
            if n > 0 && users.len() == before {
                // A server that ignores startIndex would otherwise be listed forever.
                return Err(malformed(
                    "the page at this startIndex repeats users already listed (startIndex ignored?)",
                ));
            }
            if n == 0 || users.len() as u64 >= total {
                return Ok(users);
            }
            start += n;
        }
    }

    /// The user named `user_name`, if the target has one.
    pub async fn find_by_user_name(&self, user_name: &str) -> Result<Option<TargetUser>, ScimError> {
        let filter = federation::scim::user_name_filter(user_name);
        let url = format!("{}?filter={}", self.users_url(None), utf8_percent_encode(&filter, NON_ALPHANUMERIC));
        let (_, page) = self.send(Method::GET, &url, None).await?;
        let first = page.get("Resources").and_then(Value::as_array).and_then(|r| r.first()).cloned();
        Ok(first.and_then(TargetUser::from_json))
    }

    /// Creates a user; returns the target's id.
    pub async fn create(&self, resource: &Value) -> Result<String, ScimError> {
        let url = self.users_url(None);
        let (_, created) = self.send(Method::POST, &url, Some(resource)).await?;
        created
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(ScimError::Malformed { url, reason: "the created user has no id".into() })
    }

    /// Replaces a user (PUT).
    pub async fn replace(&self, id: &str, resource: &Value) -> Result<(), ScimError> {
        self.send(Method::PUT, &self.users_url(Some(id)), Some(resource)).await.map(|_| ())
    }

    /// Modifies a user (PATCH).
    pub async fn patch(&self, id: &str, ops: &Value) -> Result<(), ScimError> {
        self.send(Method::PATCH, &self.users_url(Some(id)), Some(ops)).await.map(|_| ())
    }

    /// Deletes a user; one that is already gone counts as deleted.
    pub async fn delete(&self, id: &str) -> Result<(), ScimError> {
        match self.send(Method::DELETE, &self.users_url(Some(id)), None).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Whether `/ServiceProviderConfig` announces PATCH (false when the server has no such endpoint).
    pub async fn supports_patch(&self) -> Result<bool, ScimError> {
        match self.send(Method::GET, &format!("{}/ServiceProviderConfig", self.base), None).await {
            Ok((_, spc)) => Ok(spc.pointer("/patch/supported").and_then(Value::as_bool).unwrap_or(false)),
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 403) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The JSON of a SCIM response body: `Null` when empty or not JSON.
#[doc(hidden)]
pub fn body_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() { Value::Null } else { serde_json::from_slice(bytes).unwrap_or(Value::Null) }
}

/// The users of one `ListResponse` page (RFC 7644 §3.4.2) and its `totalResults`, or what is malformed.
#[doc(hidden)]
pub fn read_list_page(page: &Value) -> Result<(u64, Vec<TargetUser>), &'static str> {
    let total = page.get("totalResults").and_then(Value::as_u64).ok_or("no totalResults")?;
    let resources = page.get("Resources").and_then(Value::as_array).cloned().unwrap_or_default();
    let users = resources
        .into_iter()
        .map(|r| TargetUser::from_json(r).ok_or("a user without id or userName"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((total, users))
}

/// `Retry-After` as seconds or an HTTP date, capped.
#[doc(hidden)]
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let when = httpdate_to_system_time(v)?;
            when.duration_since(std::time::SystemTime::now()).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_to_system_time(v: &str) -> Option<std::time::SystemTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let dt = time::PrimitiveDateTime::parse(v, format).ok()?.assume_utc();
    Some(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(dt.unix_timestamp()).ok()?))
}

/// The start of a body, for error messages.
#[doc(hidden)]
pub fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim();
    if t.is_empty() { "(empty body)".into() } else { t.chars().take(200).collect() }
}

fn transport_reason(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error as _;
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    reason
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let mut h = http::HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
