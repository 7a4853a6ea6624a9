//! A real WSGI application (Python's `wsgiref`, `tests/fixtures/wsgi_echo.py`) as an upstream: it reports the
//! path it was given and every `HTTP_*` variable, the way CGI, WSGI, PHP and Rack apps read request headers.
//! Killed on drop. A missing python3 is a loud failure.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

/// The running app.
pub struct WsgiEcho {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
}

impl WsgiEcho {
    /// Starts the app on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/wsgi_echo.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting python3 (apt-get install python3)")?;
        let out = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        let port: u16 = line.trim().parse().with_context(|| format!("wsgi_echo.py printed {line:?}"))?;
        Ok(Self { base: format!("http://127.0.0.1:{port}"), child })
    }
}

impl Drop for WsgiEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
