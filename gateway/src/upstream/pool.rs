//! Kept-alive HTTP/1.1 connections to one plain-`http` upstream (the sidecar case: an app on localhost).
//!
//! hyper-util's general client pools by a hashed key, spawns a task per request to put a connection back, and
//! retries through its own layers; for one known upstream a stack of idle senders does the same job with less
//! work per request (see BENCHMARKS.md). A connection goes back on the stack only when its response body was read
//! to the end, and is checked before reuse. https upstreams (TLS, HTTP/2 by ALPN) keep hyper-util's client.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// How long a connection may sit idle before it is closed instead of reused (upstreams close idle connections too,
/// typically after 60–75 s; this stays below).
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// At most this many idle connections are kept.
const MAX_IDLE: usize = 256;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Connecting failed.
    #[error("cannot connect to {authority}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("no connection to {authority} within {timeout:?}")]
    ConnectTimeout {
        /// `host:port`.
        authority: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection failed while the request was under way.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// The idle connections to one upstream.
pub struct Http1Pool {
    authority: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool").field("authority", &self.authority).finish()
    }
}

impl Http1Pool {
    /// A pool for `authority` (`host:port`).
    pub fn new(authority: String, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self { authority, connect_timeout, idle: Mutex::new(Vec::new()) })
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle connection, or a new one. A request that a reused
    /// connection closed before taking it is sent again on a new connection.
    pub async fn send(self: &Arc<Self>, req: Request<Incoming>) -> Result<Response<PooledBody>, PoolError> {
        let mut req = req;
        if let Some(mut sender) = self.checkout() {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await?;
        Ok(self.wrap(resp, sender))
    }

    /// The most recently used idle connection that is still open and ready.
    fn checkout(self: &Arc<Self>) -> Option<SendRequest<Incoming>> {
        loop {
            let idle = self.idle.lock().ok()?.pop()?;
            if idle.since.elapsed() > IDLE_TIMEOUT || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            if sender.is_ready() {
                return Some(sender);
            }
            // Its response was read to the end, but the connection is still busy with that exchange (say, the rest
            // of an upload the upstream answered early): it goes back once ready, and this request does not wait
            // behind it.
            let pool = self.clone();
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.put_back(sender);
                }
            });
        }
    }

    async fn connect(&self) -> Result<SendRequest<Incoming>, PoolError> {
        let authority = || self.authority.clone();
        let stream = tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(&self.authority))
            .await
            .map_err(|_| PoolError::ConnectTimeout { authority: authority(), timeout: self.connect_timeout })?
            .map_err(|source| PoolError::Connect { authority: authority(), source })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn wrap(self: &Arc<Self>, resp: Response<Incoming>, sender: SendRequest<Incoming>) -> Response<PooledBody> {
        // A switched protocol (WebSocket) takes the connection for good.
        let reusable = resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS;
        let give_back = reusable.then(|| (sender, self.clone()));
        resp.map(|inner| PooledBody { inner, give_back, ended: false })
    }

    fn put_back(&self, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(Idle { sender, since: Instant::now() });
        }
    }
}

/// An upstream response body; once read to the end, its connection goes back to the pool (when it is dropped).
#[derive(Debug)]
pub struct PooledBody {
    inner: Incoming,
    give_back: Option<(SendRequest<Incoming>, Arc<Http1Pool>)>,
    /// Read to the end (a chunked body does not say so by `is_end_stream`).
    ended: bool,
}

impl From<Incoming> for PooledBody {
    /// A body whose connection is not ours to pool.
    fn from(inner: Incoming) -> Self {
        Self { inner, give_back: None, ended: false }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Only a body read to the end leaves the connection ready for another request; otherwise dropping the
        // sender lets hyper close it.
        if (self.ended || self.inner.is_end_stream())
            && let Some((sender, pool)) = self.give_back.take()
        {
            pool.put_back(sender);
        }
    }
}
