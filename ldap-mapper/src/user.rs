//! The one user type the rest of the gateway consumes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A directory entry mapped to a user: what becomes the username, e-mail, names, stable id, groups and roles.
///
/// Produced by the LDAP directory and by the gateway's static demo directory alike.
///
/// Stored in every session, so its stored form is kept small and readable by the version before: an empty
/// optional field is left out (every version reads a missing `Option` or `#[serde(default)]` field as empty). `dn`,
/// `group_dns` and `claims` are read as empty when missing from now on, but still written, because the version
/// before requires them (a rolling upgrade has both reading the same store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedUser {
    /// Login name (from `username_attribute`); never empty.
    pub username: String,
    /// Stable unique id (from `unique_id_attribute`, e.g. `entryUUID` or AD `objectGUID`), used as OIDC `sub`; for a
    /// sign-in or lookup, `subject_map_file` / `subject_template` may replace it with the `sub` Keycloak issued.
    pub unique_id: String,
    /// The entry's DN (empty for the static directory).
    #[serde(default)]
    pub dn: String,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Group names (e.g. `ai-admins`), nested groups included, sorted and deduplicated.
    pub groups: Vec<String>,
    /// Group DNs, where the directory has them, sorted and deduplicated.
    #[serde(default)]
    pub group_dns: Vec<String>,
    /// The groups as Keycloak's `/full/path` (`/eng/ai-admins`: the group's place under `groups_dn`, below
    /// `groups_path`), sorted and deduplicated. Empty in sessions stored before paths existed: see
    /// [`MappedUser::paths`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_paths: Vec<String>,
    /// Roles granted by the `[roles]` mapping, sorted and deduplicated.
    pub roles: Vec<String>,
    /// Extra claims from `[ldap.claims]`: claim name → attribute values.
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<String>>,
    /// Keycloak's SAML persistent NameIDs of this user (SP entity ID → `G-…`), from `subject_map_file`; sent to
    /// those SPs instead of a computed persistent NameID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub saml_persistent_nameids: BTreeMap<String, String>,
}

impl MappedUser {
    /// The group paths, or `/<name>` for each group when the user has none recorded (a static directory user, a
    /// session stored by an older version).
    pub fn paths(&self) -> Vec<String> {
        if self.group_paths.is_empty() { root_paths(&self.groups) } else { self.group_paths.clone() }
    }
}

/// Each group name placed at the root (`staff` → `/staff`; a name that already is a path stays as it is).
pub fn root_paths(groups: &[String]) -> Vec<String> {
    groups.iter().map(|g| if g.starts_with('/') { g.clone() } else { format!("/{}", g.replace('/', "~/")) }).collect()
}
