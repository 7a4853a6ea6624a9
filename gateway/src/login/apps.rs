//! The apps a user can reach from the account page: OIDC clients and SAML service providers they are allowed into.

use ldap_mapper::MappedUser;

use crate::state::AppState;

/// One app link.
#[derive(Debug, Clone)]
pub struct AppLink {
    /// Shown name.
    pub name: String,
    /// Where the link goes (an IdP-initiated SSO URL or the app's home).
    pub url: String,
}

/// The apps `user` may open: SAML service providers they are allowed into (IdP-initiated links).
pub fn visible_to(state: &AppState, user: &MappedUser) -> Vec<AppLink> {
    let mut out = Vec::new();
    if let Some(idp) = &state.saml {
        let principal = crate::domain::principal::from_user(user, time::OffsetDateTime::UNIX_EPOCH);
        for sp in idp.service_providers().iter().filter(|sp| sp.allows(&principal)) {
            out.push(AppLink {
                name: sp.config.display_name.clone().unwrap_or_else(|| sp.name().to_string()),
                url: format!("/saml/init/{}", sp.name()),
            });
        }
    }
    out
}
