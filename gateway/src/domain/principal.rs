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
        roles: user.roles.clone(),
        claims: user.claims.clone(),
        auth_time,
    }
}
