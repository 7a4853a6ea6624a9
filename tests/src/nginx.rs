//! Real Debian nginx: in front of an upstream, asking fedgate's `/auth/verify` with the documented `auth_request`
//! block (the forward-auth set-up users run), or as a static-file upstream. Started from a temp dir on a free 127.0.0.1 port, killed by PID on drop. A missing nginx is a
//! loud failure with the install hint.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running nginx.
pub struct Nginx {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// nginx on a free port with the `auth_request` block of `docs/sidecar.md`, verbatim but for its addresses:
    /// fedgate at `gateway`, the app at `upstream`, and the test's port in place of `listen 443 ssl`. Its
    /// `server_name` is `dash.example.com`, whatever `Host` the client sends.
    pub fn start(gateway: &str, upstream: &str) -> anyhow::Result<Self> {
        let server = documented_server_block()?
            .replace("listen 443 ssl;", "listen 127.0.0.1:{PORT};")
            .replace("http://127.0.0.1:8080", gateway)
            .replace("http://127.0.0.1:3000", upstream);
        Self::with_server(&server)
    }

    /// nginx on a free port serving the files under `root` (an upstream that normalises paths before it serves
    /// them, as nginx, Apache and most frameworks do).
    pub fn static_files(root: &Path) -> anyhow::Result<Self> {
        Self::with_server(&format!(
            "server {{\n  listen 127.0.0.1:{{PORT}};\n  root {};\n  location / {{ try_files $uri $uri/index.html =404; }}\n}}",
            root.display()
        ))
    }

    /// nginx on a free port with one `server` block (`{PORT}` in it becomes the port).
    pub fn with_server(server: &str) -> anyhow::Result<Self> {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists());
        let Some(bin) = bin else { bail!("nginx not found: apt-get install nginx-light (or run scripts/setup)") };
        let dir = tempfile::Builder::new().prefix("fedgate-nginx.").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.path().display();
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
        let server = server.replace("{PORT}", &port.to_string());
        let conf = format!(
            r#"{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 128; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
{server}
}}
"#,
            user = if root { "user root;" } else { "" },
        );
        std::fs::write(dir.path().join("nginx.conf"), conf)?;
        let child = Command::new(bin)
            .args(["-p"])
            .arg(dir.path())
            .args(["-c"])
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                bail!("nginx did not listen on {port}: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { base: format!("http://127.0.0.1:{port}"), dir, child })
    }
}

/// The ```nginx block of `docs/sidecar.md`, as users copy it.
pub fn documented_server_block() -> anyhow::Result<String> {
    let doc = include_str!("../../docs/sidecar.md");
    let start = doc.find("```nginx\n").context("docs/sidecar.md has no ```nginx block")? + "```nginx\n".len();
    let len = doc[start..].find("```").context("unterminated ```nginx block")?;
    Ok(doc[start..start + len].to_string())
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-QUIT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}
