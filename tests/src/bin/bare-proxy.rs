//! Benchmark peer for scripts/bench (not a test): a reverse proxy with nothing but hyper's server (HTTP/1.1,
//! keep-alive) and hyper-util's general pooled client on a multi-thread tokio runtime, without routing, sessions,
//! identity headers or header hygiene. fedgate used exactly this stack until it got its own HTTP/1.1 pool for
//! plain-http upstreams; the row shows what the pool buys and what fedgate's own work costs.
//!   bare-proxy LISTEN_PORT UPSTREAM_URL      e.g. bare-proxy 8081 http://127.0.0.1:8080
use std::convert::Infallible;

/// The same allocator as fedgate.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).ok_or_else(|| anyhow::anyhow!("usage: bare-proxy PORT UPSTREAM"))?.parse()?;
    let upstream: Uri = args.get(2).ok_or_else(|| anyhow::anyhow!("usage: bare-proxy PORT UPSTREAM"))?.parse()?;
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(http);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |mut req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                    let target = format!(
                        "{}://{}{pq}",
                        upstream.scheme_str().unwrap_or("http"),
                        upstream.authority().map_or("", |a| a.as_str())
                    );
                    *req.uri_mut() = target.parse().unwrap_or(upstream);
                    let resp = match client.request(req).await {
                        Ok(r) => r.map(http_body_util::Either::Left),
                        Err(_) => {
                            let mut r = hyper::Response::new(http_body_util::Either::Right(http_body_util::Empty::<
                                bytes::Bytes,
                            >::new(
                            )));
                            *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                            r
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
