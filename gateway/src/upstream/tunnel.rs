//! A WebSocket tunnel after the upgrade: the client's and the upstream's connections spliced, for as long as both
//! stay open and, when the proxy gave it a [`TunnelGuard`], no longer than the guard allows (the session it was
//! opened with ends). The guard learns whether the client sent anything ([`ClientActivity`]), which the proxy counts
//! as use of the session, like any proxied request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// Whether the client sent anything through a tunnel since the last [`ClientActivity::take`]: one flag per tunnel,
/// set on every read from the client, no clock read and no allocation on the data path.
#[derive(Debug, Clone, Default)]
pub struct ClientActivity(Arc<AtomicBool>);

impl ClientActivity {
    /// Whether the client sent data since the last call (and clears the flag).
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }

    fn mark(&self) {
        // A load first: a busy tunnel does not write the shared cache line on every read.
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// What ends a tunnel besides its two sides: given the tunnel's [`ClientActivity`], a future that completes when
/// the tunnel must be closed (and says why, for the log).
pub type TunnelGuard = Box<dyn FnOnce(ClientActivity) -> Pin<Box<dyn Future<Output = &'static str> + Send>> + Send>;

/// How long closing a tunnel's two connections may take (a TLS `close_notify` to a client that no longer reads).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Copies bytes both ways between `client` and `upstream` until either side closes or `guard`'s future completes;
/// then both connections are shut down. The WebSocket frames are not parsed: a tunnel cut by its guard ends
/// without a close frame (the browser reports code 1006), since one written mid-frame would corrupt the stream.
pub async fn splice<C, U>(client: C, mut upstream: U, guard: Option<TunnelGuard>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = ClientActivity::default();
    let mut client = Watched { io: client, activity: activity.clone() };
    let Some(guard) = guard else {
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "websocket tunnel closed");
        }
        return;
    };
    let ended = guard(activity);
    let why = {
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::select! {
            copied = copy => {
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "websocket tunnel closed");
                }
                return;
            }
            why = ended => why,
        }
    };
    tracing::info!(reason = why, "websocket tunnel closed: its session ended");
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.io.shutdown()).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, upstream.shutdown()).await;
}

/// The client's side of a tunnel, marking [`ClientActivity`] when it reads data.
struct Watched<T> {
    io: T,
    activity: ClientActivity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.mark();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    /// Data from the client marks activity (once per look), data from the upstream does not; a guard that fires
    /// closes both sides.
    #[tokio::test]
    async fn client_data_is_activity_and_the_guard_closes_both_sides() {
        let (client_end, mut client) = tokio::io::duplex(64);
        let (upstream_end, mut upstream) = tokio::io::duplex(64);
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<ClientActivity>();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
        let guard: TunnelGuard = Box::new(move |activity| {
            let _ = seen_tx.send(activity);
            Box::pin(async move {
                let _ = close_rx.await;
                "test"
            })
        });
        let tunnel = tokio::spawn(splice(client_end, upstream_end, Some(guard)));
        let activity = seen_rx.await.unwrap();
        upstream.write_all(b"push").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert!(!activity.take(), "data from the upstream is not the client's activity");
        client.write_all(b"ping").await.unwrap();
        upstream.read_exact(&mut buf).await.unwrap();
        assert!(activity.take(), "data from the client is activity");
        assert!(!activity.take(), "taken once");
        close_tx.send(()).unwrap();
        tunnel.await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "the client's side is closed");
        assert_eq!(upstream.read(&mut buf).await.unwrap(), 0, "the upstream's side is closed");
    }
}
