//! `/healthz` (the process is alive), `/readyz` (every dependency is usable) and `/metrics` (Prometheus).

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::config::net::IpRange;
use crate::http::error::AppError;
use crate::http::metrics::Format;
use crate::http::paths::OwnRoutes;
use crate::state::AppState;

/// The health routes.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether `client` may read the operator's views (`/metrics`, `/readyz`'s details): it is in
/// `server.metrics_allow`.
fn operator(state: &AppState, client: SocketAddr) -> bool {
    state.config.server.metrics_allow.iter().filter_map(|r| r.parse::<IpRange>().ok()).any(|r| r.contains(client.ip()))
}

/// 200 when every dependency is usable, else 503. Only clients in `server.metrics_allow` (the operator's probes:
/// kubelet, the load balancer's health checks from a private network) get the details: the directory's,
/// the store's and each upstream provider's problem (addresses, resolver and TLS errors, a tenant id in an
/// issuer URL) and the session count. Everyone else gets the status alone, as the login page shows an anonymous
/// visitor only that a provider is unavailable.
async fn readyz(State(state): State<AppState>, ConnectInfo(client): ConnectInfo<SocketAddr>) -> impl IntoResponse {
    let directory = state.directory.check().await;
    let store = match &state.store {
        Some(kv) => kv.check().await.map_err(|e| crate::domain::store::Chain(&e).to_string()),
        None => Ok(()),
    };
    // Providers not discovered yet are tried again in the background (at most every few seconds each).
    if state.brokers.all().iter().any(|p| !p.available()) {
        let brokers = state.brokers.clone();
        tokio::spawn(async move { brokers.discover_all().await });
    }
    let upstreams: serde_json::Map<String, serde_json::Value> = state
        .brokers
        .all()
        .iter()
        .map(|p| (p.config.name.clone(), json!(p.problem().unwrap_or_else(|| "ok".into()))))
        .collect();
    // Ready while some way in works: the password form, or at least one upstream provider.
    let password_way_in =
        state.config.login.password && (state.config.directory.is_some() || state.config.ldap.is_some());
    let way_in = password_way_in || state.brokers.all().iter().any(|p| p.available());
    let ready = directory.is_ok() && store.is_ok() && way_in;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "directory": {
            "kind": state.directory.kind(),
            "status": match &directory { Ok(()) => "ok".to_string(), Err(e) => e.to_string() },
        },
        "store": {
            "kind": state.config.store.kind.as_str(),
            "status": match &store { Ok(()) => "ok", Err(e) => e.as_str() },
        },
        "upstreams": upstreams,
        "sessions": state.sessions.count(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !operator(&state, client) {
        return (status, Json(json!({ "status": body["status"] })));
    }
    (status, Json(body))
}

/// The metrics in the Prometheus text format, or OpenMetrics when the scraper's `Accept` prefers it.
/// Prometheus text, for the addresses in `server.metrics_allow` only (loopback and private networks by default):
/// route hosts and paths, login outcomes and session counts are nobody else's business. Others get the same 404
/// as for a path that does not exist.
async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !operator(&state, client) {
        tracing::debug!(client = %client.ip(), "metrics refused: not in server.metrics_allow");
        return AppError::NotFound("There is nothing at /metrics on this gateway.".into()).into_response();
    }
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match state.metrics.render(state.sessions.count(), format) {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(e) => {
            tracing::error!("{e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
