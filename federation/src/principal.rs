//! The authenticated person (or client) that protocols turn into tokens and assertions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who is signing in, as the protocols see it. The gateway builds one from a directory user after login.
///
/// Every field is plain data copied from the directory; protocol code must escape or encode each value for the
/// document it goes into (a display name may contain `<`, `&` or quotes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable, opaque subject identifier (from the directory's unique id attribute, e.g. `entryUUID`); never the
    /// username, which can be renamed.
    pub subject: String,
    /// Login name (e.g. `uid` / `sAMAccountName`), never empty.
    pub username: String,
    /// Primary e-mail address, if the directory has one.
    pub email: Option<String>,
    /// Full display name (`cn` / `displayName`).
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Group names (not DNs) the user belongs to, nested groups included.
    pub groups: Vec<String>,
    /// Roles granted through the gateway's `[roles]` mapping.
    pub roles: Vec<String>,
    /// Extra claims mapped from directory attributes (`[ldap.claims]`), claim name → values.
    pub claims: BTreeMap<String, Vec<String>>,
    /// When the user proved who they are (for `auth_time`, `AuthnInstant`, `max_age`).
    #[serde(with = "time::serde::timestamp")]
    pub auth_time: OffsetDateTime,
}
