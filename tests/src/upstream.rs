//! A real upstream app for proxy tests, on a free 127.0.0.1 port: it echoes what it received (method, path,
//! headers, the client's address) as JSON, streams large downloads, counts large uploads without keeping them, answers slowly on demand,
//! and echoes WebSocket messages. Stopped on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, Request};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use futures_util::StreamExt as _;

/// A running echo upstream.
pub struct EchoUpstream {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

async fn echo(ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> impl IntoResponse {
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("<binary>").to_string()))
        .collect();
    axum::Json(serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
        "peer": peer.to_string(),
    }))
}

/// Answers and closes the connection (`Connection: close`), as upstreams do at their keep-alive limits.
async fn close() -> impl IntoResponse {
    ([(axum::http::header::CONNECTION, "close")], "closing")
}

async fn download(Query(q): Query<BTreeMap<String, u64>>) -> impl IntoResponse {
    let total = q.get("bytes").copied().unwrap_or(0);
    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let n = total / chunk.len() as u64;
    let stream = futures_util::stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    Body::from_stream(stream)
}

async fn upload(req: Request) -> impl IntoResponse {
    let mut stream = req.into_body().into_data_stream();
    let mut bytes = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        bytes += chunk.len() as u64;
    }
    axum::Json(serde_json::json!({ "bytes": bytes }))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3)).await;
    "finally"
}

async fn ws(upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(t) => Message::Text(format!("echo: {}", t.as_str()).into()),
                Message::Close(_) => break,
                other => other,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

impl EchoUpstream {
    /// Starts the upstream on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let app = Router::new()
            .route("/download", get(download))
            .route("/upload", post(upload))
            .route("/slow", get(slow))
            .route("/ws", get(ws))
            .route("/close", get(close))
            .fallback(any(echo));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });
        Ok(Self { base, task })
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
