//! A raw HTTP/1.1 client for attacks that ordinary clients refuse to send: paths kept as written (`..`, `%2e`,
//! `//`), repeated or oddly spelled headers. One request per connection (`Connection: close`), bounded in time.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A response as it came over the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding undone).
    pub body: String,
}

impl RawResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON (status {}): {}", self.status, self.body))
    }
}

/// Sends `GET <target>` exactly as written to `base` (`http://127.0.0.1:PORT`), with `Host` set to the base's
/// authority unless `headers` has one, and the given headers verbatim.
pub async fn get(base: &str, target: &str, headers: &[(&str, &str)]) -> anyhow::Result<RawResponse> {
    let authority = base.strip_prefix("http://").context("base must be http://")?.trim_end_matches('/');
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {authority}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    send(authority, req.as_bytes()).await
}

/// Sends `bytes` to `authority` and reads the response until the server closes.
pub async fn send(authority: &str, bytes: &[u8]) -> anyhow::Result<RawResponse> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(authority).await?;
        s.write_all(bytes).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(15), io).await.context("no answer in 15 s")??;
    parse(&buf)
}

fn parse(buf: &[u8]) -> anyhow::Result<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers")?;
    let head = std::str::from_utf8(&buf[..end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("empty response")?;
    let status = status_line.split(' ').nth(1).context("no status")?.parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").context("bad chunk")?;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end])?.trim(), 16)?;
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            if rest.len() < start + size {
                bail!("truncated chunk");
            }
            out.extend_from_slice(&rest[start..start + size]);
            rest = &rest[(start + size + 2).min(rest.len())..];
        }
        body = out;
    }
    Ok(RawResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}
