//! A running SAML service provider (pysaml2, `tests/saml_sp_server.py`) with its own sessions, its own signing key
//! and a single SingleLogoutService of the binding asked for; and [`follow`], which goes where a browser with
//! scripts on would: redirects, the SAML HTTP-POST binding's auto-submitting forms, iframes and meta refreshes.
//! The SP is killed on drop (or by [`SamlSp::stop`]). A missing venv is a loud failure.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

/// The running SP.
pub struct SamlSp {
    /// `http://127.0.0.1:PORT`; its entity ID is `{base}/sp`.
    pub base: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// The SP's SingleLogoutService binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloBinding {
    /// HTTP-POST.
    Post,
    /// HTTP-Redirect.
    Redirect,
}

impl SamlSp {
    /// Starts an SP on a free loopback port with a new RSA key and self-signed certificate.
    pub fn start(slo: SloBinding) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
        let pkcs8 = aws_lc_rs::encoding::AsDer::as_der(&rsa)?;
        let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec());
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)?;
        let cert = rcgen::CertificateParams::new(vec!["sp.test".to_string()])?.self_signed(&key)?;
        let (key_path, cert_path) = (dir.path().join("sp.key"), dir.path().join("sp.crt"));
        std::fs::write(&key_path, key.serialize_pem())?;
        std::fs::write(&cert_path, cert.pem())?;
        let py = venv_python()?;
        let mut child = Command::new(py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("saml_sp_server.py"))
            .arg(&key_path)
            .arg(&cert_path)
            .arg(match slo {
                SloBinding::Post => "post",
                SloBinding::Redirect => "redirect",
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting tests/saml_sp_server.py")?;
        let out = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        let base = line.trim().to_string();
        anyhow::ensure!(base.starts_with("http://127.0.0.1:"), "saml_sp_server.py printed {line:?}");
        Ok(Self { base, child: Some(child), _dir: dir })
    }

    /// The SP's entity ID.
    pub fn entity_id(&self) -> String {
        format!("{}/sp", self.base)
    }

    /// `{base}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Its metadata, written to `dir/<port>.xml` for the gateway's `metadata_file`.
    pub async fn metadata_file(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let xml = crate::gateway::http().get(self.url("/metadata")).send().await?.error_for_status()?.text().await?;
        let path = dir.join(format!("{}.xml", self.base.rsplit(':').next().unwrap_or("sp")));
        std::fs::write(&path, xml)?;
        Ok(path)
    }

    /// Loads the IdP's metadata from `idp_metadata_url` (the gateway starts after the SP).
    pub async fn setup(&self, idp_metadata_url: &str) -> anyhow::Result<()> {
        let url = format!("{}?{}", self.url("/setup"), serde_pair("idp", idp_metadata_url));
        crate::gateway::http().get(url).send().await?.error_for_status()?;
        Ok(())
    }

    /// How many sessions the SP holds.
    pub async fn active_sessions(&self) -> anyhow::Result<u64> {
        let v: serde_json::Value = crate::gateway::http().get(self.url("/sessions")).send().await?.json().await?;
        v["active"].as_u64().context("no active count")
    }

    /// Kills the SP (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SamlSp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serde_pair(k: &str, v: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair(k, v).finish()
}

fn venv_python() -> anyhow::Result<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    anyhow::ensure!(py.exists(), "{} missing: run scripts/setup (python venv with pysaml2)", py.display());
    Ok(py)
}

/// Where [`follow`] stopped.
#[derive(Debug)]
pub struct Landed {
    /// The page's URL.
    pub url: String,
    /// Its status.
    pub status: reqwest::StatusCode,
    /// Its body.
    pub body: String,
    /// Every URL visited on the way, frames included, in order (for assertions and failure messages).
    pub trail: Vec<String>,
}

/// Follows `first` as a browser with scripts on would: redirects; auto-submitting forms (a page with a form, hidden
/// inputs and `.submit()`); on a page with iframes, each frame the same way (a frame that fails stays failed, as
/// in a browser), then the page's meta refresh. Stops at a page with none of these, or at a top-level request
/// that fails (`status` 502 then, the error in `body`).
pub async fn follow(c: &reqwest::Client, first: reqwest::RequestBuilder) -> Landed {
    let mut trail = Vec::new();
    follow_in(c, first, &mut trail, 0).await
}

fn follow_in<'a>(
    c: &'a reqwest::Client,
    first: reqwest::RequestBuilder,
    trail: &'a mut Vec<String>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Landed> + Send + 'a>> {
    Box::pin(async move {
        let mut next = Some(first);
        let mut hops = 0;
        loop {
            let Some(req) = next.take() else { unreachable!("set on every path that loops") };
            hops += 1;
            let r = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let url = e.url().map(|u| u.to_string()).unwrap_or_default();
                    trail.push(format!("{url} (failed)"));
                    return Landed {
                        url,
                        status: reqwest::StatusCode::BAD_GATEWAY,
                        body: e.to_string(),
                        trail: trail.clone(),
                    };
                }
            };
            let url = r.url().clone();
            trail.push(url.to_string());
            let status = r.status();
            if status.is_redirection()
                && let Some(loc) = r.headers().get("location").and_then(|v| v.to_str().ok())
                && let Ok(to) = url.join(loc)
                && hops < 40
            {
                next = Some(c.get(to));
                continue;
            }
            let body = r.text().await.unwrap_or_default();
            if let Some((action, fields)) = auto_submit_form(&body)
                && let Ok(to) = url.join(&action)
                && hops < 40
            {
                next = Some(c.post(to).form(&fields));
                continue;
            }
            let frames = tag_attrs(&body, "iframe", "src");
            if depth < 3 {
                for src in &frames {
                    if let Ok(to) = url.join(src) {
                        follow_in(c, c.get(to), trail, depth + 1).await;
                    }
                }
            }
            if let Some(refresh) = meta_refresh(&body)
                && let Ok(to) = url.join(&refresh)
                && hops < 40
            {
                next = Some(c.get(to));
                continue;
            }
            return Landed { url: url.to_string(), status, body, trail: trail.clone() };
        }
    })
}

/// The values of attribute `attr` of every `<tag …>` in `html`, entity-decoded.
pub fn tag_attrs(html: &str, tag: &str, attr: &str) -> Vec<String> {
    let open = format!("<{tag} ");
    html.match_indices(&open)
        .filter_map(|(i, _)| {
            let rest = &html[i..];
            let end = rest.find('>')?;
            attr_of(&rest[..end], attr)
        })
        .collect()
}

fn attr_of(tag: &str, attr: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let key = format!(" {attr}={quote}");
        if let Some(i) = tag.find(&key) {
            let v = tag[i + key.len()..].split(quote).next()?;
            return Some(unescape(v));
        }
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A form that submits itself (`.submit()` in the page): its action and hidden fields.
fn auto_submit_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    if !html.contains(".submit()") {
        return None;
    }
    let form_at = html.find("<form ")?;
    let form_tag = &html[form_at..form_at + html[form_at..].find('>')?];
    let action = attr_of(form_tag, "action")?;
    let fields = html[form_at..]
        .match_indices("<input ")
        .filter_map(|(i, _)| {
            let rest = &html[form_at + i..];
            let tag = &rest[..rest.find('>')?];
            if attr_of(tag, "type").as_deref() != Some("hidden") {
                return None;
            }
            Some((attr_of(tag, "name")?, attr_of(tag, "value").unwrap_or_default()))
        })
        .collect();
    Some((action, fields))
}

/// The target of `<meta http-equiv="refresh" content="N; url=…">`.
fn meta_refresh(html: &str) -> Option<String> {
    html.match_indices("<meta ").find_map(|(i, _)| {
        let rest = &html[i..];
        let tag = &rest[..rest.find('>')?];
        if !attr_of(tag, "http-equiv")?.eq_ignore_ascii_case("refresh") {
            return None;
        }
        let content = attr_of(tag, "content")?;
        let (_, url) = content.split_once("url=").or_else(|| content.split_once("URL="))?;
        Some(url.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forms_frames_and_refreshes() {
        let html = r#"<body onload="document.forms[0].submit()"><form action="https://sp/acs?a=1&amp;b=2" method="post"><input type="hidden" name="SAMLResponse" value="x&quot;y"/><input type="submit" value="Go"/></form>"#;
        let (action, fields) = auto_submit_form(html).unwrap();
        assert_eq!(action, "https://sp/acs?a=1&b=2");
        assert_eq!(fields, vec![("SAMLResponse".to_string(), "x\"y".to_string())]);
        let page = r#"<meta http-equiv="refresh" content="3; url=/saml/slo/done?chain=a&amp;b=c"><iframe src="/f?x=1&amp;y=2" hidden></iframe>"#;
        assert_eq!(meta_refresh(page).as_deref(), Some("/saml/slo/done?chain=a&b=c"));
        assert_eq!(tag_attrs(page, "iframe", "src"), vec!["/f?x=1&y=2"]);
        assert!(auto_submit_form(page).is_none());
    }
}
