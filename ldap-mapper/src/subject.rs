//! Which `sub` a directory user gets. By default it is the entry's unique id (`unique_id_attribute`). A gateway
//! that replaced Keycloak can keep the subjects Keycloak issued, so that accounts apps keyed by `sub` (GitLab,
//! Harbor, Rancher, Kubernetes RBAC) keep their owners: `subject_map_file` (the `sub-map.json` that
//! `fedgate import keycloak --users` writes) maps LDAP unique ids and usernames to Keycloak's user ids, and
//! `subject_template` builds the subject of everyone else (`f:<component-id>:{username}` is what Keycloak issued
//! with LDAP import off).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;

/// The placeholders `subject_template` understands.
pub const PLACEHOLDERS: &[&str] = &["unique_id", "username"];

/// The subject rule of one directory.
#[derive(Debug, Default, Clone)]
pub struct Subjects {
    by_id: HashMap<String, String>,
    by_username: HashMap<String, String>,
    template: Option<String>,
    /// Keycloak's SAML persistent NameIDs: lower-cased username → SP entity ID → `G-…`.
    persistent_nameids: HashMap<String, BTreeMap<String, String>>,
}

/// The parts of `sub-map.json` read here.
#[derive(Deserialize)]
struct MapFile {
    #[serde(default)]
    by_ldap_id: HashMap<String, String>,
    #[serde(default)]
    by_username: HashMap<String, String>,
    /// SP entity ID (Keycloak's SAML `clientId`) → username → the persistent NameID Keycloak gave that user there.
    #[serde(default)]
    saml_persistent_nameids: HashMap<String, HashMap<String, String>>,
}

/// `subject_map_file` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SubjectMapError {
    /// It could not be read.
    #[error("cannot read ldap.subject_map_file = {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not the JSON `fedgate import keycloak` writes.
    #[error("ldap.subject_map_file = {} is not a subject map (by_ldap_id / by_username JSON)", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl Subjects {
    /// The rule of `ldap.subject_template` and `ldap.subject_map_file` (read here).
    pub fn new(template: Option<&str>, map_file: Option<&std::path::Path>) -> Result<Self, SubjectMapError> {
        let mut out = Self { template: template.map(str::to_string), ..Self::default() };
        if let Some(path) = map_file {
            let bytes =
                std::fs::read(path).map_err(|source| SubjectMapError::Read { path: path.to_path_buf(), source })?;
            let map: MapFile = serde_json::from_slice(&bytes)
                .map_err(|source| SubjectMapError::Parse { path: path.to_path_buf(), source })?;
            out.by_id = map.by_ldap_id;
            out.by_username = map.by_username.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
            for (sp, users) in map.saml_persistent_nameids {
                for (user, name_id) in users {
                    out.persistent_nameids.entry(user.to_lowercase()).or_default().insert(sp.clone(), name_id);
                }
            }
        }
        Ok(out)
    }

    /// The subject of the entry with `unique_id` and `username`: its entry in the map (by unique id, then by
    /// username), else the template, else the unique id.
    pub fn subject(&self, unique_id: &str, username: &str) -> String {
        let username = username.to_lowercase();
        if let Some(s) = self.by_id.get(unique_id).or_else(|| self.by_username.get(&username)) {
            return s.clone();
        }
        match &self.template {
            Some(t) => t.replace("{unique_id}", unique_id).replace("{username}", &username),
            None => unique_id.to_string(),
        }
    }
}

impl Subjects {
    /// The SAML persistent NameIDs Keycloak gave `username` (SP entity ID → `G-…`), from the map's
    /// `saml_persistent_nameids`; empty for users not in it.
    pub fn persistent_nameids(&self, username: &str) -> BTreeMap<String, String> {
        self.persistent_nameids.get(&username.to_lowercase()).cloned().unwrap_or_default()
    }
}

/// Problems with a `subject_template`: an unknown placeholder, or none that tells users apart.
pub fn template_problem(template: &str) -> Option<String> {
    let names: Vec<&str> = template.split('{').skip(1).map(|p| p.split('}').next().unwrap_or("")).collect();
    if let Some(bad) = names.iter().find(|n| !PLACEHOLDERS.contains(n)) {
        return Some(format!("unknown placeholder {{{bad}}}"));
    }
    if names.is_empty() {
        return Some("has no {unique_id} or {username}, so every user would get the same subject".into());
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_map_wins_then_the_template_then_the_unique_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub-map.json");
        std::fs::write(
            &path,
            r#"{"source": "keycloak", "by_ldap_id": {"uuid-a": "kc-a"}, "by_username": {"Bob": "kc-b"},
                "saml_persistent_nameids": {"https://sp/": {"bob": "G-1"}, "urn:other": {"Bob": "G-2"}}}"#,
        )
        .unwrap();
        let s = Subjects::new(Some("f:comp:{username}"), Some(&path)).unwrap();
        assert_eq!(s.subject("uuid-a", "alice"), "kc-a");
        assert_eq!(s.subject("uuid-b", "bob"), "kc-b", "by username, case-insensitively");
        assert_eq!(s.subject("uuid-c", "Carol"), "f:comp:carol", "Keycloak lower-cases usernames");
        assert_eq!(Subjects::default().subject("uuid-c", "carol"), "uuid-c");
        let ids = s.persistent_nameids("BOB");
        assert_eq!(ids.get("https://sp/").map(String::as_str), Some("G-1"));
        assert_eq!(ids.get("urn:other").map(String::as_str), Some("G-2"));
        assert!(s.persistent_nameids("alice").is_empty());
    }

    #[test]
    fn a_bad_map_or_template_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(matches!(Subjects::new(None, Some(&path)), Err(SubjectMapError::Parse { .. })));
        assert_eq!(template_problem("f:x:{username}"), None);
        assert!(template_problem("fixed").unwrap().contains("same subject"));
        assert!(template_problem("{email}").unwrap().contains("{email}"));
    }
}
