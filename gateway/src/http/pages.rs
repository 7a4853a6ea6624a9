//! The HTML the gateway shows people: login form, account page, logout, and error pages.
//!
//! Plain server-rendered HTML that works without JavaScript. Every dynamic value goes through [`escape`].

use std::fmt::Write as _;

use crate::config::UiConfig;

/// Content-Security-Policy for the gateway's own pages: no scripts at all, inline styles only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps `body` in the page frame with the product's branding.
pub fn layout(ui: &UiConfig, title: &str, body: &str) -> String {
    let color = if ui.primary_color.starts_with('#')
        && ui.primary_color.len() <= 9
        && ui.primary_color[1..].bytes().all(|b| b.is_ascii_hexdigit())
    {
        ui.primary_color.as_str()
    } else {
        "#2f6feb"
    };
    let logo =
        ui.logo_url.as_deref().map(|u| format!(r#"<img class="logo" src="{}" alt="">"#, escape(u))).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {product}</title>
<style>
:root{{--accent:{color}}}
*{{box-sizing:border-box}}
body{{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f6fa;color:#1f2328}}
main{{max-width:26rem;margin:8vh auto;background:#fff;border-radius:12px;box-shadow:0 2px 14px rgba(0,0,0,.08);padding:2rem}}
main.wide{{max-width:44rem}}
h1{{font-size:1.4rem;margin:0 0 1rem}}
.product{{color:#57606a;font-size:.9rem;margin-bottom:.25rem}}
.logo{{max-height:48px;display:block;margin-bottom:1rem}}
label{{display:block;font-weight:600;margin:.8rem 0 .3rem}}
input[type=text],input[type=password]{{width:100%;padding:.6rem .7rem;border:1px solid #d0d7de;border-radius:6px;font-size:1rem}}
input:focus{{outline:2px solid var(--accent);border-color:var(--accent)}}
button{{margin-top:1.2rem;width:100%;padding:.7rem;border:0;border-radius:6px;background:var(--accent);color:#fff;font-size:1rem;font-weight:600;cursor:pointer}}
button.secondary{{background:#eaeef2;color:#1f2328}}
.error{{background:#ffebe9;border:1px solid #ff8182;color:#82071e;padding:.6rem .8rem;border-radius:6px;margin-bottom:1rem}}
.note{{color:#57606a;font-size:.9rem}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}} dt{{font-weight:600}} dd{{margin:0}}
.chip{{display:inline-block;background:#eaeef2;border-radius:999px;padding:0 .6rem;margin:0 .3rem .3rem 0;font-size:.85rem}}
ul.apps{{padding-left:1.2rem}}
</style></head>
<body><main{wide}>{logo}<div class="product">{product}</div>
{body}
</main></body></html>"#,
        title = escape(title),
        product = escape(&ui.product_name),
        wide = if body.contains("<dl>") { r#" class="wide""# } else { "" },
    )
}

/// What the login form shows.
#[derive(Debug, Default)]
pub struct LoginForm<'a> {
    /// CSRF token, echoed in a hidden field.
    pub csrf: &'a str,
    /// Where to go after login (already validated or empty).
    pub rd: &'a str,
    /// The username to keep in the field after a failure.
    pub username: &'a str,
    /// An error to show above the form.
    pub error: Option<&'a str>,
    /// The app the user came from, when known.
    pub app: Option<&'a str>,
}

/// The login page.
pub fn login(ui: &UiConfig, form: &LoginForm<'_>) -> String {
    let mut body = String::from("<h1>Sign in</h1>\n");
    if let Some(app) = form.app {
        let _ = writeln!(body, r#"<p class="note">to continue to <strong>{}</strong></p>"#, escape(app));
    }
    if let Some(err) = form.error {
        let _ = writeln!(body, r#"<div class="error" role="alert">{}</div>"#, escape(err));
    }
    let _ = write!(
        body,
        r#"<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="rd" value="{rd}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{username}" autocomplete="username" autocapitalize="none" spellcheck="false" required {focus_user}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required {focus_pw}>
<button type="submit">Sign in</button>
</form>"#,
        csrf = escape(form.csrf),
        rd = escape(form.rd),
        username = escape(form.username),
        focus_user = if form.username.is_empty() { "autofocus" } else { "" },
        focus_pw = if form.username.is_empty() { "" } else { "autofocus" },
    );
    layout(ui, "Sign in", &body)
}

/// A simple message page (errors, logged out, …).
pub fn message(ui: &UiConfig, title: &str, message: &str, link: Option<(&str, &str)>) -> String {
    let mut body = format!("<h1>{}</h1>\n<p>{}</p>\n", escape(title), escape(message));
    if let Some((href, text)) = link {
        let _ = write!(body, r#"<p><a href="{}">{}</a></p>"#, escape(href), escape(text));
    }
    layout(ui, title, &body)
}

/// The logout confirmation page.
pub fn logout_confirm(ui: &UiConfig, csrf: &str, username: &str) -> String {
    logout_confirm_to(ui, "/logout", csrf, username, &[])
}

/// The "Sign out?" page posting to `action` with the session's CSRF token and `hidden` fields (RP-initiated
/// logout carries `client_id`, `post_logout_redirect_uri` and `state` through it).
pub fn logout_confirm_to(ui: &UiConfig, action: &str, csrf: &str, username: &str, hidden: &[(&str, &str)]) -> String {
    let mut fields = String::new();
    for (name, value) in hidden {
        let _ = write!(fields, r#"<input type="hidden" name="{}" value="{}">"#, escape(name), escape(value));
    }
    let body = format!(
        r#"<h1>Sign out</h1>
<p>You are signed in as <strong>{}</strong>. Sign out of every app that uses this login?</p>
<form method="post" action="{}"><input type="hidden" name="csrf" value="{}">{fields}
<button type="submit">Sign out</button></form>"#,
        escape(username),
        escape(action),
        escape(csrf)
    );
    layout(ui, "Sign out", &body)
}

/// The signed-out page: the relying parties' front-channel logout URLs in hidden iframes (OIDC Front-Channel
/// Logout 1.0), the apps that could not be signed out, and, when `next` is given, a link there that the page
/// follows by itself after a few seconds (no script: a meta refresh).
pub fn signed_out(ui: &UiConfig, frames: &[&str], failed: &[&str], next: Option<&str>) -> String {
    let mut body = String::from("<h1>Signed out</h1>\n<p>You have been signed out.</p>\n");
    if !failed.is_empty() {
        body.push_str(r#"<div class="error" role="alert">These apps could not be signed out; close the browser to end their sessions:<ul>"#);
        for app in failed {
            let _ = write!(body, "<li>{}</li>", escape(app));
        }
        body.push_str("</ul></div>\n");
    }
    for src in frames {
        let _ = write!(body, r#"<iframe src="{}" title="sign-out" hidden width="0" height="0"></iframe>"#, escape(src));
    }
    match next {
        Some(href) => {
            let _ = write!(
                body,
                r#"<meta http-equiv="refresh" content="{}; url={}"><p><a href="{}">Continue</a></p>"#,
                if frames.is_empty() { 0 } else { 2 },
                escape(href),
                escape(href)
            );
        }
        None => body.push_str(r#"<p><a href="/login">Sign in again</a></p>"#),
    }
    layout(ui, "Signed out", &body)
}
