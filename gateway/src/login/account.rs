//! `GET /`: the signed-in user's own page (Keycloak's account console in miniature).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::error::AppError;
use crate::http::pages::{self, Link};
use crate::http::paths::OwnRoutes;
use crate::state::AppState;
use crate::state::sign_in::{current_session, no_store, to_login};

/// The account route.
pub fn router() -> OwnRoutes<AppState> {
    OwnRoutes::new().route_unless_proxied("/", get(account))
}

async fn account(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some((_, session)) = current_session(&state, &headers).await? else { return Ok(to_login("/")) };
    let u = &session.user;
    let apps = crate::login::apps::visible_to(&state, u);
    let links: Vec<Link<'_>> = apps.iter().map(|app| Link { href: &app.url, text: &app.name }).collect();
    let page = pages::account(
        &state.config.ui,
        &pages::Account {
            name: u.display_name.as_deref().unwrap_or(&u.username),
            username: &u.username,
            email: u.email.as_deref(),
            groups: &u.groups,
            roles: &u.roles,
            signed_in: session.auth_instant().date(),
            apps: &links,
            csrf: &session.csrf,
        },
    );
    let mut resp = page.into_response();
    no_store(&mut resp);
    Ok(resp)
}
