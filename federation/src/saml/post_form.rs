//! The HTTP-POST binding page: an auto-submitting form with a visible button when scripts are off, and the
//! Content-Security-Policy that allows exactly its one inline script and posting to the ACS.

use base64::Engine as _;

/// The one inline script (its hash goes into the CSP).
const SCRIPT: &str = "document.forms[0].submit();";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The HTML page and the CSP header value for posting `saml_response` (and `relay_state`) to `acs_url`.
pub fn render(acs_url: &str, saml_response: &str, relay_state: Option<&str>) -> (String, String) {
    render_field(acs_url, "SAMLResponse", saml_response, relay_state)
}

/// Like [`render`], posting `value` as the form field `field` (`SAMLResponse` or `SAMLRequest`).
pub fn render_field(acs_url: &str, field: &str, value: &str, relay_state: Option<&str>) -> (String, String) {
    let mut fields = vec![(field, value)];
    if let Some(r) = relay_state {
        fields.push(("RelayState", r));
    }
    render_fields(acs_url, &fields)
}

/// The page and CSP posting `fields` (name, value) to `action` (also OAuth's `response_mode=form_post`).
pub fn render_fields(action: &str, fields: &[(&str, &str)]) -> (String, String) {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signing in…</title></head>\
         <body><form method=\"post\" action=\"{action}\">{inputs}\
         <noscript><p>Scripts are off: press the button to continue.</p><button type=\"submit\">Continue</button></noscript>\
         </form><script>{SCRIPT}</script></body></html>",
        action = escape(action),
    );
    let hash = base64::engine::general_purpose::STANDARD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, SCRIPT.as_bytes()));
    let origin = url::Url::parse(action).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "'none'".into());
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; form-action {origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    (html, csp)
}
