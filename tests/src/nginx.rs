//! Real Debian nginx in front of an upstream, asking fedgate's `/auth/verify` with `auth_request` (the forward-auth
//! set-up users run). Started from a temp dir on a free 127.0.0.1 port, killed by PID on drop. A missing nginx is a
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
    /// nginx on a free port: `/` needs fedgate's approval (`gateway` = fedgate's base URL) and goes to `upstream`.
    pub fn start(gateway: &str, upstream: &str) -> anyhow::Result<Self> {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists());
        let Some(bin) = bin else { bail!("nginx not found: apt-get install nginx-light (or run scripts/setup)") };
        let dir = tempfile::Builder::new().prefix("fedgate-nginx.").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.path().display();
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
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
  server {{
    listen 127.0.0.1:{port};
    location = /_fedgate {{
      internal;
      proxy_pass {gateway}/auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
    }}
    location / {{
      auth_request /_fedgate;
      auth_request_set $fg_user $upstream_http_x_forwarded_user;
      auth_request_set $fg_email $upstream_http_x_forwarded_email;
      auth_request_set $fg_roles $upstream_http_x_forwarded_roles;
      proxy_set_header X-Forwarded-User $fg_user;
      proxy_set_header X-Forwarded-Email $fg_email;
      proxy_set_header X-Forwarded-Roles $fg_roles;
      proxy_pass {upstream};
    }}
  }}
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
