//! `GET /`: the signed-in user's own page (Keycloak's account console in miniature).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::http::error::AppError;
use crate::http::pages::{self, escape};
use crate::http::paths::OwnRoutes;
use crate::state::AppState;
use crate::state::sign_in::{current_session, to_login};

/// The account route.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new().route_unless_proxied("/", get(account))
}

async fn account(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some((_, session)) = current_session(&state, &headers).await? else { return Ok(to_login("/")) };
    let u = &session.user;
    let chips = |items: &[String]| {
        if items.is_empty() {
            "<span class=\"note\">none</span>".to_string()
        } else {
            items.iter().map(|i| format!("<span class=\"chip\">{}</span>", escape(i))).collect()
        }
    };
    let mut body = format!("<h1>Hello, {}</h1>\n<dl>\n", escape(u.display_name.as_deref().unwrap_or(&u.username)));
    let opt = |v: &Option<String>| escape(v.as_deref().unwrap_or("—"));
    let _ = write!(
        body,
        "<dt>Username</dt><dd id=\"username\">{}</dd>\n<dt>E-mail</dt><dd>{}</dd>\n<dt>Groups</dt><dd id=\"groups\">{}</dd>\n<dt>Roles</dt><dd id=\"roles\">{}</dd>\n<dt>Signed in</dt><dd>{}</dd>\n</dl>\n",
        escape(&u.username),
        opt(&u.email),
        chips(&u.groups),
        chips(&u.roles),
        session.auth_instant().date(),
    );
    let apps = crate::login::apps::visible_to(&state, u);
    if !apps.is_empty() {
        body.push_str("<h2>Your apps</h2>\n<ul class=\"apps\">\n");
        for app in apps {
            let _ = writeln!(body, "<li><a href=\"{}\">{}</a></li>", escape(&app.url), escape(&app.name));
        }
        body.push_str("</ul>\n");
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" class=\"secondary\">Sign out</button></form>",
        escape(&session.csrf)
    );
    let mut resp = Html(pages::layout(&state.config.ui, "Your account", &body)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(pages::CSP));
    Ok(resp)
}
