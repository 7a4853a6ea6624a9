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

/// The apps `user` may open. Grows as protocols register apps.
pub fn visible_to(_state: &AppState, _user: &MappedUser) -> Vec<AppLink> {
    // APPS-LIST
    Vec::new()
}
