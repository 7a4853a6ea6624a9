//! A TCP relay on loopback that holds every chunk a client sends for a fixed time before passing it on (answers
//! come back at once): a slow network between the gateway and a server (Redis), so a test can act in the window
//! between a request leaving the gateway and reaching the server — for example kill the gateway there.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The relay; stops accepting (and drops its connections' tasks) on drop.
pub struct SlowLink {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SlowLink {
    /// Relays connections on a free loopback port to `target` (`host:port`), delaying what clients send by `delay`.
    pub async fn start(target: &str, delay: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding a free loopback port")?;
        let port = listener.local_addr()?.port();
        let target = target.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else { continue };
                tokio::spawn(relay(client, server, delay));
            }
        });
        Ok(Self { port, task })
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Client → server chunks wait `delay` each (in order, and still delivered after the client has gone); server →
/// client bytes pass at once.
async fn relay(client: TcpStream, server: TcpStream, delay: Duration) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            if tx.send((tokio::time::Instant::now() + delay, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let forward = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if server_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let back = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(reader, forward, back);
}
