//! Where the two libraries meet: a directory user (`ldap_mapper::MappedUser`) becomes the `federation::Principal`
//! that the protocols turn into tokens and assertions.

use federation::Principal;
use ldap_mapper::MappedUser;
use time::OffsetDateTime;

/// The principal for `user`, who authenticated at `auth_time`.
pub fn from_user(user: &MappedUser, auth_time: OffsetDateTime) -> Principal {
    Principal {
        subject: user.unique_id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        given_name: user.given_name.clone(),
        family_name: user.family_name.clone(),
        groups: user.groups.clone(),
        group_paths: user.paths(),
        roles: user.roles.clone(),
        claims: user.claims.clone(),
        saml_persistent_nameids: user.saml_persistent_nameids.clone(),
        auth_time,
        authn: Default::default(),
    }
}

/// The principal of a session: its user, when and how they authenticated (a federated login names its upstream).
pub fn from_session(session: &crate::domain::session::Session) -> Principal {
    let mut p = from_user(&session.user, session.auth_instant());
    if let Some(up) = &session.upstream {
        p.authn = federation::principal::Authn {
            upstream_issuer: Some(up.issuer.clone()),
            upstream_amr: up.amr.clone(),
            upstream_acr: up.acr.clone(),
        };
    }
    p
}
