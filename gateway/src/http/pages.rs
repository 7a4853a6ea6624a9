//! The HTML the gateway shows people: login form, account page, logout confirmation, and message and error pages.
//!
//! Plain server-rendered HTML that works without JavaScript, written as `maud` templates: the compiler checks them,
//! and every value spliced in with `(…)` is escaped, in element text and in (always double-quoted) attribute values
//! alike. The one unescaped text is the style sheet, a constant: a `<style>` element's text is never
//! entity-decoded, so it cannot go through the escaper. Pages answer with a [`Markup`], which is a `text/html`
//! response.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::config::UiConfig;

/// Content-Security-Policy for the gateway's own pages: no scripts at all, inline styles only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'";

/// The accent colour when `[ui] primary_color` is not a CSS hex colour.
const DEFAULT_ACCENT: &str = "#2f6feb";

/// The pages' style sheet, after the `--accent` variable.
const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f6fa;color:#1f2328}
main{max-width:26rem;margin:8vh auto;background:#fff;border-radius:12px;box-shadow:0 2px 14px rgba(0,0,0,.08);padding:2rem}
main.wide{max-width:44rem}
h1{font-size:1.4rem;margin:0 0 1rem}
.product{color:#57606a;font-size:.9rem;margin-bottom:.25rem}
.logo{max-height:48px;display:block;margin-bottom:1rem}
label{display:block;font-weight:600;margin:.8rem 0 .3rem}
input[type=text],input[type=password]{width:100%;padding:.6rem .7rem;border:1px solid #d0d7de;border-radius:6px;font-size:1rem}
input:focus{outline:2px solid var(--accent);border-color:var(--accent)}
button{margin-top:1.2rem;width:100%;padding:.7rem;border:0;border-radius:6px;background:var(--accent);color:#fff;font-size:1rem;font-weight:600;cursor:pointer}
button.secondary{background:#eaeef2;color:#1f2328}
.error{background:#ffebe9;border:1px solid #ff8182;color:#82071e;padding:.6rem .8rem;border-radius:6px;margin-bottom:1rem}
.note{color:#57606a;font-size:.9rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem} dt{font-weight:600} dd{margin:0}
.chip{display:inline-block;background:#eaeef2;border-radius:999px;padding:0 .6rem;margin:0 .3rem .3rem 0;font-size:.85rem}
ul.apps{padding-left:1.2rem}
"#;

/// How wide a page's card is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Width {
    /// Forms and messages.
    #[default]
    Narrow,
    /// Facts laid out in two columns (the account page).
    Wide,
}

impl Width {
    fn class(self) -> Option<&'static str> {
        match self {
            Self::Narrow => None,
            Self::Wide => Some("wide"),
        }
    }
}

/// A link: where it goes and what it says.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    /// The target.
    pub href: &'a str,
    /// The link text.
    pub text: &'a str,
}

/// `[ui] primary_color` when it is a CSS hex colour (`#rgb` … `#rrggbbaa`), else the default accent.
fn accent(ui: &UiConfig) -> &str {
    let c = ui.primary_color.as_str();
    match c.strip_prefix('#') {
        Some(hex) if c.len() <= 9 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => c,
        _ => DEFAULT_ACCENT,
    }
}

/// The page frame with the product's branding (name, logo, accent colour) around `body`.
pub fn layout(ui: &UiConfig, title: &str, width: Width, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (ui.product_name) }
                style { ":root{--accent:" (accent(ui)) "}" (PreEscaped(STYLE)) }
            }
            body {
                main class=[width.class()] {
                    @if let Some(logo) = &ui.logo_url {
                        img class="logo" src=(logo) alt="";
                    }
                    div class="product" { (ui.product_name) }
                    (body)
                }
            }
        }
    }
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
    /// Whether the password form is shown (`login.password`).
    pub password: bool,
    /// One button per `[[upstream.oidc]]` provider.
    pub upstreams: &'a [UpstreamButton<'a>],
}

/// A sign-in button for an upstream identity provider.
#[derive(Debug, Clone)]
pub struct UpstreamButton<'a> {
    /// Where the button goes (`/login/{name}?rd=…`).
    pub href: String,
    /// The label.
    pub label: &'a str,
    /// `false` while the provider's discovery fails: the button says it is unavailable.
    pub available: bool,
}

/// The login page. The focus starts in the username field, or in the password field when the username is filled.
pub fn login(ui: &UiConfig, form: &LoginForm<'_>) -> Markup {
    let username_known = !form.username.is_empty();
    layout(
        ui,
        "Sign in",
        Width::Narrow,
        html! {
            h1 { "Sign in" }
            @if let Some(app) = form.app {
                p class="note" { "to continue to " strong { (app) } }
            }
            @if let Some(error) = form.error {
                div class="error" role="alert" { (error) }
            }
            @if form.password {
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(form.csrf);
                    input type="hidden" name="rd" value=(form.rd);
                    label for="username" { "Username" }
                    input type="text" id="username" name="username" value=(form.username) autocomplete="username"
                        autocapitalize="none" spellcheck="false" required autofocus[!username_known];
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="current-password" required
                        autofocus[username_known];
                    button type="submit" { "Sign in" }
                }
            }
            @if !form.upstreams.is_empty() {
                div class="upstreams" {
                    @if form.password { p class="note" { "or sign in with" } }
                    @for b in form.upstreams {
                        @if b.available {
                            p { a class="button" href=(b.href) { (b.label) } }
                        } @else {
                            p { span class="button disabled" aria-disabled="true" { (b.label) " (unavailable)" } }
                        }
                    }
                }
            }
        },
    )
}

/// A simple message page (errors, signed out, …) with an optional link onwards.
pub fn message(ui: &UiConfig, title: &str, message: &str, link: Option<Link<'_>>) -> Markup {
    layout(
        ui,
        title,
        Width::Narrow,
        html! {
            h1 { (title) }
            p { (message) }
            @if let Some(link) = link {
                p { a href=(link.href) { (link.text) } }
            }
        },
    )
}

/// "Your password has expired" (Active Directory: expired, or must be changed at next logon), with a link to
/// `[ui] password_help_url` when configured.
pub fn password_change_required(ui: &UiConfig) -> Markup {
    let text = "Your password is correct, but it has expired or must be changed before you can sign in. \
                Change it, then sign in again with the new password.";
    let link = ui.password_help_url.as_deref().map(|href| Link { href, text: "Change your password" });
    message(ui, "Password change required", text, link)
}

/// The signed-out page: the relying parties' front-channel logout URLs in hidden iframes (OIDC Front-Channel
/// Logout 1.0), the apps that could not be signed out, and, when `next` is given, a link there that the page
/// follows by itself (no script: a meta refresh, after two seconds when there are iframes to load first).
pub fn signed_out(ui: &UiConfig, frames: &[&str], failed: &[&str], next: Option<&str>) -> Markup {
    let refresh = next.map(|href| format!("{}; url={href}", if frames.is_empty() { 0 } else { 2 }));
    layout(
        ui,
        "Signed out",
        Width::Narrow,
        html! {
            @if let Some(refresh) = &refresh {
                meta http-equiv="refresh" content=(refresh);
            }
            h1 { "Signed out" }
            p { "You have been signed out." }
            @if !failed.is_empty() {
                div class="error" role="alert" {
                    "These apps could not be signed out; close the browser to end their sessions:"
                    ul class="apps" {
                        @for app in failed { li { (app) } }
                    }
                }
            }
            @for src in frames {
                iframe src=(src) title="sign-out" hidden width="0" height="0" {}
            }
            @match next {
                Some(href) => p { a href=(href) { "Continue" } },
                None => p { a href="/login" { "Sign in again" } },
            }
        },
    )
}

/// The "Signing out" page: each app's sign-out in a hidden iframe (`frames`, fedgate URLs and front-channel logout
/// URLs), the SAML apps being signed out named, and a meta refresh to `next` after `wait_secs` (the pages run no
/// script).
pub fn signing_out(ui: &UiConfig, frames: &[&str], apps: &[&str], next: &str, wait_secs: u64) -> Markup {
    let refresh = format!("{wait_secs}; url={next}");
    layout(
        ui,
        "Signing out",
        Width::Narrow,
        html! {
            meta http-equiv="refresh" content=(refresh);
            h1 { "Signing out" }
            p { "You have been signed out here. Signing you out of these apps too:" }
            ul class="apps" {
                @for app in apps { li { (app) } }
            }
            @for src in frames {
                iframe src=(src) title="sign-out" hidden width="0" height="0" {}
            }
            p { a href=(next) { "Continue" } }
        },
    )
}

/// The logout confirmation page.
pub fn logout_confirm(ui: &UiConfig, csrf: &str, username: &str) -> Markup {
    logout_confirm_to(ui, "/logout", csrf, username, &[])
}

/// The "Sign out?" page posting to `action` with the session's CSRF token and `hidden` fields (RP-initiated
/// logout carries `client_id`, `post_logout_redirect_uri` and `state` through it).
pub fn logout_confirm_to(ui: &UiConfig, action: &str, csrf: &str, username: &str, hidden: &[(&str, &str)]) -> Markup {
    layout(
        ui,
        "Sign out",
        Width::Narrow,
        html! {
            h1 { "Sign out" }
            p { "You are signed in as " strong { (username) } ". Sign out of every app that uses this login?" }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                @for (name, value) in hidden {
                    input type="hidden" name=(name) value=(value);
                }
                button type="submit" { "Sign out" }
            }
        },
    )
}

/// What the account page shows about the signed-in user.
#[derive(Debug)]
pub struct Account<'a> {
    /// The heading's name: the display name, else the username.
    pub name: &'a str,
    /// The username.
    pub username: &'a str,
    /// The e-mail address, if the directory has one.
    pub email: Option<&'a str>,
    /// Directory groups.
    pub groups: &'a [String],
    /// Roles the groups grant.
    pub roles: &'a [String],
    /// When this session signed in.
    pub signed_in: time::Date,
    /// Apps the user may open.
    pub apps: &'a [Link<'a>],
    /// The session's CSRF token, for the sign-out form.
    pub csrf: &'a str,
}

/// The signed-in user's own page, in the wide layout.
pub fn account(ui: &UiConfig, a: &Account<'_>) -> Markup {
    layout(
        ui,
        "Your account",
        Width::Wide,
        html! {
            h1 { "Hello, " (a.name) }
            dl {
                dt { "Username" } dd id="username" { (a.username) }
                dt { "E-mail" } dd { (a.email.unwrap_or("—")) }
                dt { "Groups" } dd id="groups" { (chips(a.groups)) }
                dt { "Roles" } dd id="roles" { (chips(a.roles)) }
                dt { "Signed in" } dd { (a.signed_in.to_string()) }
            }
            @if !a.apps.is_empty() {
                h2 { "Your apps" }
                ul class="apps" {
                    @for app in a.apps {
                        li { a href=(app.href) { (app.text) } }
                    }
                }
            }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(a.csrf);
                button type="submit" class="secondary" { "Sign out" }
            }
        },
    )
}

/// Names as chips, or a quiet "none".
fn chips(items: &[String]) -> Markup {
    html! {
        @if items.is_empty() {
            span class="note" { "none" }
        } @else {
            @for item in items {
                span class="chip" { (item) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = r#"<script>alert("x")</script>'"#;
    const ESCAPED: &str = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'";

    fn ui() -> UiConfig {
        UiConfig {
            product_name: EVIL.into(),
            logo_url: Some(format!("https://example.com/logo.png?{EVIL}")),
            primary_color: "#aa3300".into(),
            password_help_url: Some(format!("https://example.com/pw?{EVIL}")),
        }
    }

    #[test]
    fn the_password_change_page_links_the_help_url_escaped() {
        let html = password_change_required(&ui()).into_string();
        assert!(html.contains("Password change required"), "{html}");
        assert!(html.contains("href=\"https://example.com/pw?"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        let plain = password_change_required(&UiConfig::default()).into_string();
        assert!(!plain.contains("Change your password</a>"), "no link without the key: {plain}");
    }

    /// No raw markup from a value survives, in text or in attributes.
    fn assert_escaped(html: &str, times: usize) {
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains(r#""x""#), "{html}");
        assert_eq!(html.matches(ESCAPED).count(), times, "{html}");
    }

    #[test]
    fn login_escapes_username_app_error_and_branding() {
        let form = LoginForm {
            csrf: "t0k",
            rd: EVIL,
            username: EVIL,
            error: Some(EVIL),
            app: Some(EVIL),
            password: true,
            upstreams: &[],
        };
        let html = login(&ui(), &form).into_string();
        // title, product name, logo URL, rd, username, app, error
        assert_escaped(&html, 7);
        assert!(html.contains(&format!(r#"<title>Sign in · {ESCAPED}</title>"#)), "{html}");
        assert!(html.contains(&format!(r#"<p class="note">to continue to <strong>{ESCAPED}</strong></p>"#)));
        assert!(html.contains(&format!(r#"<div class="error" role="alert">{ESCAPED}</div>"#)));
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="t0k">"#), "{html}");
        assert!(html.contains(&format!(r#"name="username" value="{ESCAPED}""#)));
    }

    #[test]
    fn login_focuses_the_first_empty_field() {
        let fresh =
            login(&UiConfig::default(), &LoginForm { csrf: "t", password: true, ..LoginForm::default() }).into_string();
        assert!(fresh.contains(r#"spellcheck="false" required autofocus>"#), "{fresh}");
        assert!(fresh.contains(r#"autocomplete="current-password" required>"#), "{fresh}");
        let again = login(
            &UiConfig::default(),
            &LoginForm { csrf: "t", username: "bob", password: true, ..LoginForm::default() },
        )
        .into_string();
        assert!(again.contains(r#"spellcheck="false" required>"#), "{again}");
        assert!(again.contains(r#"autocomplete="current-password" required autofocus>"#), "{again}");
        assert!(!again.contains("alert"), "no error box without an error");
    }

    #[test]
    fn login_shows_upstream_buttons_and_can_hide_the_form() {
        let buttons = [
            UpstreamButton { href: "/login/entra?rd=%2F".into(), label: EVIL, available: true },
            UpstreamButton { href: "/login/okta".into(), label: "Okta", available: false },
        ];
        let html = login(&UiConfig::default(), &LoginForm { csrf: "t", upstreams: &buttons, ..LoginForm::default() })
            .into_string();
        assert!(!html.contains("name=\"password\""), "no password form: {html}");
        assert!(html.contains(&format!(r#"<a class="button" href="/login/entra?rd=%2F">{ESCAPED}</a>"#)), "{html}");
        assert!(html.contains("Okta (unavailable)"), "{html}");
    }

    #[test]
    fn account_page_is_wide_and_escapes_every_value() {
        let groups = vec![EVIL.to_string(), "staff".into()];
        let apps = [Link { href: EVIL, text: EVIL }];
        let a = Account {
            name: EVIL,
            username: EVIL,
            email: None,
            groups: &groups,
            roles: &[],
            signed_in: time::macros::date!(2026 - 01 - 02),
            apps: &apps,
            csrf: "c5rf",
        };
        let html = account(&ui(), &a).into_string();
        // title, product name, logo URL, name, username, a group, app link and text
        assert_escaped(&html, 8);
        assert!(html.contains(r#"<main class="wide">"#), "{html}");
        assert!(html.contains(&format!(r#"<span class="chip">{ESCAPED}</span><span class="chip">staff</span>"#)));
        assert!(html.contains(r#"<dd id="roles"><span class="note">none</span></dd>"#), "{html}");
        assert!(html.contains("<dt>E-mail</dt><dd>—</dd>") && html.contains("<dd>2026-01-02</dd>"), "{html}");
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="c5rf">"#));
        let no_apps = account(&UiConfig::default(), &Account { apps: &[], ..a }).into_string();
        assert!(!no_apps.contains("Your apps"), "{no_apps}");
    }

    #[test]
    fn forms_and_messages_are_narrow() {
        let ui = UiConfig::default();
        for html in [login(&ui, &LoginForm::default()), message(&ui, "t", "m", None), logout_confirm(&ui, "c", "u")] {
            assert!(html.into_string().contains("<main><div class=\"product\">fedgate</div>"));
        }
    }

    #[test]
    fn logout_confirmation_carries_escaped_hidden_fields() {
        let html = logout_confirm_to(&ui(), "/oauth2/logout", "c5rf", EVIL, &[("state", EVIL), ("client_id", "app")])
            .into_string();
        // title, product name, logo URL, username, state
        assert_escaped(&html, 5);
        assert!(html.contains(r#"<form method="post" action="/oauth2/logout">"#), "{html}");
        assert!(html.contains(&format!(
            r#"<input type="hidden" name="csrf" value="c5rf"><input type="hidden" name="state" value="{ESCAPED}"><input type="hidden" name="client_id" value="app">"#
        )));
    }

    #[test]
    fn message_escapes_title_text_and_link() {
        let html = message(&ui(), EVIL, EVIL, Some(Link { href: EVIL, text: EVIL })).into_string();
        // <title> (title and product), product, logo, h1, p, href, link text
        assert_escaped(&html, 8);
    }

    #[test]
    fn accent_must_be_a_hex_colour() {
        let html = |c: &str| {
            let ui = UiConfig { primary_color: c.into(), ..UiConfig::default() };
            message(&ui, "t", "m", None).into_string()
        };
        assert!(html("#A3f").contains(":root{--accent:#A3f}"));
        for bad in ["red", "#12345678a", "#12;}body{display:none", "#</style>"] {
            let page = html(bad);
            assert!(page.contains(":root{--accent:#2f6feb}"), "{bad}: {page}");
        }
    }
}
