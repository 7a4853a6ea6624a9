//! `/healthz` (the process is alive), `/readyz` (every dependency is usable) and `/metrics` (Prometheus).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::http::paths::OwnRoutes;
use crate::state::AppState;

/// The health routes.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let directory = state.directory.check().await;
    let store = match &state.store {
        Some(kv) => kv.check().await.map_err(|e| crate::domain::store::Chain(&e).to_string()),
        None => Ok(()),
    };
    let ready = directory.is_ok() && store.is_ok();
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
        "sessions": state.sessions.count(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render(state.sessions.count()))
}
