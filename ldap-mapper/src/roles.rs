//! Groups → roles (`[roles]` in the configuration: `admin = ["ai-admins"]`).

use std::collections::BTreeMap;

/// Maps role names to the groups that grant them. A group may be named by its name (`ai-admins`) or its DN
/// (`cn=ai-admins,ou=groups,dc=example,dc=org`); names and DNs compare case-insensitively, as LDAP does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    roles: BTreeMap<String, Vec<String>>,
}

impl RoleMap {
    /// Builds the map from `role → [group name or DN, …]`.
    pub fn new(roles: BTreeMap<String, Vec<String>>) -> Self {
        let roles = roles
            .into_iter()
            .map(|(role, groups)| (role, groups.into_iter().map(|g| normalize(&g)).collect()))
            .collect();
        Self { roles }
    }

    /// The roles granted to a user with these group names and group DNs, sorted and deduplicated.
    pub fn roles_for(&self, group_names: &[String], group_dns: &[String]) -> Vec<String> {
        let held: Vec<String> = group_names.iter().chain(group_dns).map(|g| normalize(g)).collect();
        self.roles
            .iter()
            .filter(|(_, granting)| granting.iter().any(|g| held.contains(g)))
            .map(|(role, _)| role.clone())
            .collect()
    }

    /// The configured role names.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }
}

/// Lower-cases and removes spaces around DN separators so `CN=Admins, OU=Groups` matches `cn=admins,ou=groups`.
fn normalize(group: &str) -> String {
    group.split(',').map(|part| part.trim().to_lowercase()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_roles_by_name_or_dn_case_insensitively() {
        let map = RoleMap::new(BTreeMap::from([
            ("admin".to_string(), vec!["AI-Admins".to_string()]),
            ("researcher".to_string(), vec!["cn=ai-researchers, ou=groups,dc=example,dc=org".to_string()]),
            ("nobody".to_string(), vec!["other".to_string()]),
        ]));
        let roles =
            map.roles_for(&["ai-admins".to_string()], &["CN=AI-Researchers,OU=Groups,DC=example,DC=org".to_string()]);
        assert_eq!(roles, vec!["admin".to_string(), "researcher".to_string()]);
        assert!(map.roles_for(&[], &[]).is_empty());
    }
}
