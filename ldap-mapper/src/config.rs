//! The `[ldap]` section: connection, service account, where users and groups live, and how attributes map.
//!
//! Presets (`openldap`, `active-directory`) fill every mapping key a user leaves out; explicit keys always win.
//! [`LdapConfig::validate`] reports every problem at once, keys relative to `[ldap]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One configuration problem; [`LdapConfig::validate`] reports keys relative to `[ldap]`.
pub use fedgate_types::ConfigIssue;
/// A secret string whose `Debug` never shows it (the service account's `bind_password`).
pub use fedgate_types::Secret;
use serde::{Deserialize, Serialize};

/// Defaults for a directory flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// OpenLDAP / 389-DS style: `uid`, `inetOrgPerson`, `entryUUID`, `groupOfNames`.
    Openldap,
    /// Active Directory: `sAMAccountName`, `objectGUID`, `memberOf`, nested groups by the in-chain rule.
    ActiveDirectory,
}

/// Search scope under the Users DN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Direct children only.
    One,
    /// The whole subtree.
    Sub,
}

impl From<Scope> for ldap3::Scope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::One => ldap3::Scope::OneLevel,
            Scope::Sub => ldap3::Scope::Subtree,
        }
    }
}

/// How a user's groups are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStrategy {
    /// Read the user's `memberOf` attribute (AD, OpenLDAP with the memberof overlay).
    MemberOf,
    /// Search `groups_dn` for groups whose member attribute names the user.
    Search,
}

/// `[ldap]`. `Option` mapping keys are filled by the preset when left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapConfig {
    /// Flavour whose defaults fill the mapping keys left out.
    pub preset: Preset,
    /// Directory URLs, tried in order (failover): `ldap://host:389`, `ldaps://host:636`.
    pub urls: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS.
    pub start_tls: bool,
    /// PEM CA certificate(s) to trust for LDAPS / StartTLS (default: the system roots).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (warned at start-up; for tests only).
    pub tls_insecure_skip_verify: bool,
    /// Idle connections kept per kind (service-account searches, user binds); at most `max_connections`.
    pub pool_size: usize,
    /// Connections open at once per kind (service-account searches, user binds), idle or in use: at most twice
    /// this many to the directory in all.
    pub max_connections: usize,
    /// How long a login waits for a connection when all `max_connections` of a kind are busy, before it fails
    /// as "directory unavailable".
    #[serde(with = "humantime_serde")]
    pub pool_wait_timeout: Duration,
    /// Time to establish a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time for one operation (search, bind).
    #[serde(with = "humantime_serde")]
    pub operation_timeout: Duration,
    /// Service account that searches for users.
    pub bind_dn: String,
    /// Its password.
    pub bind_password: Option<Secret>,
    /// A file holding its password (trailing newline trimmed), instead of `bind_password`.
    pub bind_password_file: Option<PathBuf>,
    /// Where users live (the Users DN).
    pub users_dn: String,
    /// Which entries are users.
    pub user_filter: Option<String>,
    /// Search scope under `users_dn`.
    pub scope: Option<Scope>,
    /// Login name attribute (`uid`; AD `sAMAccountName`).
    pub username_attribute: Option<String>,
    /// E-mail attribute.
    pub email_attribute: Option<String>,
    /// Display name attribute.
    pub display_name_attribute: Option<String>,
    /// Given name attribute.
    pub given_name_attribute: Option<String>,
    /// Family name attribute.
    pub family_name_attribute: Option<String>,
    /// Stable unique id attribute (`entryUUID`; AD `objectGUID`).
    pub unique_id_attribute: Option<String>,
    /// Extra claims: claim name → attribute.
    pub claims: BTreeMap<String, String>,
    /// How groups are found.
    pub group_strategy: Option<GroupStrategy>,
    /// Where groups live (for `search`, and for nested lookups).
    pub groups_dn: Option<String>,
    /// Which entries are groups.
    pub group_filter: Option<String>,
    /// Group attribute listing members (`member`, `uniqueMember`, `memberUid`).
    pub group_member_attribute: Option<String>,
    /// Group attribute holding its name.
    pub group_name_attribute: Option<String>,
    /// Follow groups inside groups.
    pub nested_groups: Option<bool>,
    /// The parent of every group's `/full/path` (Keycloak's LDAP group mapper `groups.path`): `"/"` (default) gives
    /// `/eng/ai-admins` for `cn=ai-admins,ou=eng,<groups_dn>`, `"/ldap"` gives `/ldap/eng/ai-admins`. Paths go to
    /// clients with `group_format = "path"` and SAML attributes `"{group_paths}"`.
    pub groups_path: Option<String>,
    /// How long a mapped user is reused for refresh / userinfo without asking the directory.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Keycloak compatibility: the `sub-map.json` `fedgate import keycloak --users` wrote; users in it keep the
    /// `sub` Keycloak issued (matched by unique id, then username).
    pub subject_map_file: Option<PathBuf>,
    /// The `sub` of users not in `subject_map_file`: `{unique_id}` and `{username}` (lower-cased), e.g.
    /// `f:<ldap-component-id>:{username}` as Keycloak issued with LDAP import off. Default: the unique id.
    pub subject_template: Option<String>,
    /// Active Directory: the NetBIOS (pre-Windows 2000) domain name, e.g. `CORP`, so that `CORP\alice` logs in
    /// as `alice`. Unset: down-level names are not accepted. (`alice@corp.test` is always accepted with the
    /// `active-directory` preset: it is searched in `userPrincipalName`.)
    pub netbios_domain: Option<String>,
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            preset: Preset::Openldap,
            urls: vec!["ldap://127.0.0.1:389".into()],
            start_tls: false,
            ca_file: None,
            tls_insecure_skip_verify: false,
            pool_size: 8,
            max_connections: 16,
            pool_wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(5),
            bind_dn: String::new(),
            bind_password: None,
            bind_password_file: None,
            users_dn: String::new(),
            user_filter: None,
            scope: None,
            username_attribute: None,
            email_attribute: None,
            display_name_attribute: None,
            given_name_attribute: None,
            family_name_attribute: None,
            unique_id_attribute: None,
            claims: BTreeMap::new(),
            group_strategy: None,
            groups_dn: None,
            group_filter: None,
            group_member_attribute: None,
            group_name_attribute: None,
            nested_groups: None,
            groups_path: None,
            cache_ttl: Duration::from_secs(300),
            subject_map_file: None,
            subject_template: None,
            netbios_domain: None,
        }
    }
}

/// The mapping with every preset default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Which entries are users.
    pub user_filter: String,
    /// Search scope.
    pub scope: Scope,
    /// Login name attribute.
    pub username: String,
    /// E-mail attribute.
    pub email: String,
    /// Display name attribute.
    pub display_name: String,
    /// Given name attribute.
    pub given_name: String,
    /// Family name attribute.
    pub family_name: String,
    /// Unique id attribute.
    pub unique_id: String,
    /// How groups are found.
    pub group_strategy: GroupStrategy,
    /// Where groups live (defaults to the Users DN's parent).
    pub groups_dn: String,
    /// Which entries are groups.
    pub group_filter: String,
    /// Group member attribute.
    pub group_member: String,
    /// Group name attribute.
    pub group_name: String,
    /// Follow nested groups.
    pub nested_groups: bool,
    /// The parent path of group paths, without a trailing `/` (`""` for the root).
    pub groups_path: String,
    /// Active Directory semantics (disabled accounts, in-chain rule, GUIDs, bind error sub-codes, logon names).
    pub active_directory: bool,
    /// Active Directory: the NetBIOS domain accepted in `DOMAIN\user` logon names (upper-cased).
    pub netbios_domain: Option<String>,
}

/// A NetBIOS domain name as AD accepts it in `DOMAIN\user`: 1-15 characters, letters, digits, `-`, `_`.
fn valid_netbios_domain(d: &str) -> bool {
    (1..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl LdapConfig {
    /// The mapping with preset defaults filled in.
    pub fn mapping(&self) -> Mapping {
        let ad = self.preset == Preset::ActiveDirectory;
        let pick = |v: &Option<String>, openldap: &str, ad_v: &str| {
            v.clone().unwrap_or_else(|| if ad { ad_v } else { openldap }.to_string())
        };
        let parent = crate::dn::split_rdns(&self.users_dn).get(1..).map(|r| r.join(",")).unwrap_or_default();
        Mapping {
            user_filter: pick(
                &self.user_filter,
                "(objectClass=inetOrgPerson)",
                "(&(objectClass=user)(objectCategory=person))",
            ),
            scope: self.scope.unwrap_or(if ad { Scope::Sub } else { Scope::One }),
            username: pick(&self.username_attribute, "uid", "sAMAccountName"),
            email: pick(&self.email_attribute, "mail", "mail"),
            display_name: pick(&self.display_name_attribute, "cn", "displayName"),
            given_name: pick(&self.given_name_attribute, "givenName", "givenName"),
            family_name: pick(&self.family_name_attribute, "sn", "sn"),
            unique_id: pick(&self.unique_id_attribute, "entryUUID", "objectGUID"),
            group_strategy: self.group_strategy.unwrap_or(if ad {
                GroupStrategy::MemberOf
            } else {
                GroupStrategy::Search
            }),
            groups_dn: self.groups_dn.clone().unwrap_or(if ad { parent } else { format!("ou=groups,{parent}") }),
            group_filter: pick(
                &self.group_filter,
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                "(objectClass=group)",
            ),
            group_member: pick(&self.group_member_attribute, "member", "member"),
            group_name: pick(&self.group_name_attribute, "cn", "cn"),
            nested_groups: self.nested_groups.unwrap_or(true),
            groups_path: self.groups_path.as_deref().unwrap_or("/").trim_end_matches('/').to_string(),
            active_directory: ad,
            netbios_domain: self.netbios_domain.as_ref().map(|d| d.trim().to_ascii_uppercase()),
        }
    }

    /// The service account's password: `bind_password`, else the content of `bind_password_file` without its
    /// trailing line break, else empty (anonymous search). `Err` names the file that cannot be read.
    pub fn bind_secret(&self) -> Result<Secret, fedgate_types::SecretFileError> {
        match (&self.bind_password, &self.bind_password_file) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(path)) => Secret::from_file(path),
            (None, None) => Ok(Secret::default()),
        }
    }

    /// Every problem in the section, at once.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        if let Some(d) = &self.netbios_domain {
            if self.preset != Preset::ActiveDirectory {
                out.push(ConfigIssue::new(
                    "netbios_domain",
                    Some(d.clone()),
                    "only means something with preset = \"active-directory\"",
                    "remove netbios_domain, or set preset = \"active-directory\"",
                ));
            } else if !valid_netbios_domain(d) {
                out.push(ConfigIssue::new(
                    "netbios_domain",
                    Some(d.clone()),
                    "not a NetBIOS domain name (1-15 letters, digits, '-' or '_'; no dots, no backslash)",
                    "set the short domain name users type before the backslash, e.g. netbios_domain = \"CORP\" \
                     (samba-tool domain info / `echo %USERDOMAIN%` on a Windows client)",
                ));
            }
        }
        if let Some(p) = &self.groups_path
            && (!p.starts_with('/') || p.contains("//"))
        {
            out.push(ConfigIssue::new(
                "groups_path",
                Some(p.clone()),
                "not a group path: it starts with '/' and has no empty segment",
                "write it as Keycloak's groups.path, e.g. groups_path = \"/\" or \"/ldap\"",
            ));
        }
        if self.urls.is_empty() {
            out.push(ConfigIssue::new(
                "urls",
                None,
                "no directory URL",
                "set urls = [\"ldap://ldap.example.com:389\"]",
            ));
        }
        for (i, u) in self.urls.iter().enumerate() {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "ldap" | "ldaps") && p.host_str().is_some() => {
                    if p.scheme() == "ldaps" && self.start_tls {
                        out.push(ConfigIssue::new(
                            format!("urls[{i}]"),
                            Some(u.clone()),
                            "ldaps:// is already TLS; start_tls = true cannot apply to it",
                            "use ldap:// with start_tls = true, or ldaps:// with start_tls = false",
                        ));
                    }
                }
                _ => out.push(ConfigIssue::new(
                    format!("urls[{i}]"),
                    Some(u.clone()),
                    "not an ldap:// or ldaps:// URL with a host",
                    "write it as ldap://host:389 or ldaps://host:636",
                )),
            }
        }
        for (key, dn, required) in [
            ("users_dn", Some(self.users_dn.as_str()), true),
            ("bind_dn", Some(self.bind_dn.as_str()), false),
            ("groups_dn", self.groups_dn.as_deref(), false),
        ] {
            match dn {
                Some("") if required => out.push(ConfigIssue::new(
                    key,
                    None,
                    "missing: fedgate needs to know where users live",
                    "set it to the DN above your user entries, e.g. \"ou=people,dc=example,dc=org\"",
                )),
                Some("") | None => {}
                Some(dn) => {
                    if let Err(e) = crate::dn::check(dn) {
                        out.push(ConfigIssue::new(
                            key,
                            Some(dn.to_string()),
                            format!("not a valid DN: {e}"),
                            "write it as attr=value,attr=value with no spaces around commas",
                        ));
                    }
                }
            }
        }
        if self.bind_password.is_some() && self.bind_password_file.is_some() {
            out.push(ConfigIssue::new(
                "bind_password_file",
                None,
                "both bind_password and bind_password_file are set",
                "keep one of them",
            ));
        }
        if !self.bind_dn.is_empty() && self.bind_password.is_none() && self.bind_password_file.is_none() {
            out.push(ConfigIssue::new(
                "bind_password",
                None,
                "bind_dn is set but no password is",
                "set bind_password or bind_password_file",
            ));
        }
        if let Some(path) = &self.bind_password_file
            && !path.is_file()
        {
            out.push(ConfigIssue::new(
                "bind_password_file",
                Some(path.display().to_string()),
                "file not found",
                "point it at a readable file holding only the password",
            ));
        }
        if let Some(path) = &self.subject_map_file
            && !path.is_file()
        {
            out.push(ConfigIssue::new(
                "subject_map_file",
                Some(path.display().to_string()),
                "file not found",
                "point it at the sub-map.json `fedgate import keycloak --users` wrote, or remove the key",
            ));
        }
        if let Some(t) = &self.subject_template
            && let Some(problem) = crate::subject::template_problem(t)
        {
            out.push(ConfigIssue::new(
                "subject_template",
                Some(t.clone()),
                problem,
                "use {unique_id} and/or {username}, e.g. \"f:<ldap-component-id>:{username}\"",
            ));
        }
        if let Some(path) = &self.ca_file
            && !path.is_file()
        {
            out.push(ConfigIssue::new(
                "ca_file",
                Some(path.display().to_string()),
                "file not found",
                "point it at the PEM CA certificate of your directory",
            ));
        }
        for (key, filter) in [("user_filter", &self.user_filter), ("group_filter", &self.group_filter)] {
            if let Some(f) = filter
                && let Err(e) = crate::filter::check(f)
            {
                out.push(ConfigIssue::new(
                    key,
                    Some(f.clone()),
                    format!("not a valid LDAP filter: {e}"),
                    "write one filter in parentheses, e.g. (objectClass=inetOrgPerson)",
                ));
            }
        }
        let attrs = [
            ("username_attribute", &self.username_attribute),
            ("email_attribute", &self.email_attribute),
            ("display_name_attribute", &self.display_name_attribute),
            ("given_name_attribute", &self.given_name_attribute),
            ("family_name_attribute", &self.family_name_attribute),
            ("unique_id_attribute", &self.unique_id_attribute),
            ("group_member_attribute", &self.group_member_attribute),
            ("group_name_attribute", &self.group_name_attribute),
        ];
        for (key, value) in attrs {
            if let Some(v) = value
                && !legal_attribute(v)
            {
                out.push(ConfigIssue::new(
                    key,
                    Some(v.clone()),
                    "not a legal attribute name",
                    "use a name like uid or sAMAccountName: a letter, then letters, digits or '-'",
                ));
            }
        }
        for (claim, attr) in &self.claims {
            if !legal_attribute(attr) {
                out.push(ConfigIssue::new(
                    format!("claims.{claim}"),
                    Some(attr.clone()),
                    "not a legal attribute name",
                    "map the claim to an attribute name, e.g. department = \"departmentNumber\"",
                ));
            }
        }
        if self.pool_size == 0 {
            out.push(ConfigIssue::new(
                "pool_size",
                Some("0".into()),
                "no connection could be kept",
                "use at least 1 (8 is a good start)",
            ));
        }
        if self.max_connections == 0 {
            out.push(ConfigIssue::new(
                "max_connections",
                Some("0".into()),
                "no connection to the directory could be opened, so nobody could log in",
                "use at least 1 (16 is a good start)",
            ));
        }
        if self.pool_wait_timeout.is_zero() {
            out.push(ConfigIssue::new(
                "pool_wait_timeout",
                Some("0s".into()),
                "a login would fail at once whenever every connection is busy",
                "e.g. pool_wait_timeout = \"5s\"",
            ));
        }
        if self.connect_timeout.is_zero() || self.operation_timeout.is_zero() {
            out.push(ConfigIssue::new(
                "operation_timeout",
                None,
                "timeouts must be positive",
                "e.g. connect_timeout = \"5s\", operation_timeout = \"5s\"",
            ));
        }
        out
    }
}

/// RFC 4512 attribute description: a letter, then letters, digits and hyphens (or a numeric OID).
fn legal_attribute(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => {
            name.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cfg() -> LdapConfig {
        LdapConfig {
            users_dn: "ou=people,dc=example,dc=org".into(),
            bind_dn: "cn=fedgate,ou=services,dc=example,dc=org".into(),
            bind_password: Some(Secret::new("x")),
            ..Default::default()
        }
    }

    #[test]
    fn presets_fill_what_is_left_out_and_explicit_keys_win() {
        let m = cfg().mapping();
        assert_eq!((m.username.as_str(), m.unique_id.as_str()), ("uid", "entryUUID"));
        assert_eq!(m.groups_dn, "ou=groups,dc=example,dc=org");
        let ad =
            LdapConfig { preset: Preset::ActiveDirectory, email_attribute: Some("userPrincipalName".into()), ..cfg() };
        let m = ad.mapping();
        assert_eq!(m.username, "sAMAccountName");
        assert_eq!(m.unique_id, "objectGUID");
        assert_eq!(m.email, "userPrincipalName", "explicit key wins");
        assert_eq!(m.group_strategy, GroupStrategy::MemberOf);
        assert!(m.active_directory);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let bad = LdapConfig {
            urls: vec!["http://x".into()],
            users_dn: " ou=people,dc=example,dc=org".into(),
            groups_dn: Some("ou=groups, dc=example,dc=org".into()),
            user_filter: Some("objectClass=person".into()),
            username_attribute: Some("".into()),
            pool_size: 0,
            max_connections: 0,
            pool_wait_timeout: Duration::ZERO,
            ..cfg()
        };
        let keys: Vec<_> = bad.validate().into_iter().map(|i| i.key).collect();
        for k in [
            "urls[0]",
            "users_dn",
            "groups_dn",
            "user_filter",
            "username_attribute",
            "pool_size",
            "max_connections",
            "pool_wait_timeout",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} missing in {keys:?}");
        }
        let space = bad.validate().into_iter().find(|i| i.key == "groups_dn").unwrap();
        assert!(space.problem.contains("leading space in RDN 2"), "{}", space.problem);
        assert!(cfg().validate().is_empty(), "{:?}", cfg().validate());
    }

    #[test]
    fn the_documented_ldap_section_parses_and_states_the_defaults() {
        // config.toml documents [ldap] commented out; uncommented, it must parse and its pool keys must say the
        // real defaults.
        let shipped = include_str!("../../config.toml");
        let block: String = shipped
            .lines()
            .skip_while(|l| l.trim() != "# [ldap]")
            .skip(1)
            .take_while(|l| l.starts_with("# ") && !l.starts_with("# ["))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        assert!(block.contains("max_connections"), "{block}");
        let documented: LdapConfig = toml::from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let d = LdapConfig::default();
        assert_eq!(
            (documented.pool_size, documented.max_connections, documented.pool_wait_timeout),
            (d.pool_size, d.max_connections, d.pool_wait_timeout)
        );
        assert_eq!(
            (documented.connect_timeout, documented.operation_timeout, documented.cache_ttl),
            (d.connect_timeout, d.operation_timeout, d.cache_ttl)
        );
    }

    #[test]
    fn bind_secret_comes_from_the_key_or_the_file() {
        assert_eq!(cfg().bind_secret().unwrap().expose(), "x");
        let dir = std::env::temp_dir().join(format!("ldap-mapper-bind-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let from_file = LdapConfig { bind_password: None, bind_password_file: Some(file.clone()), ..cfg() };
        assert_eq!(from_file.bind_secret().unwrap().expose(), "from-file");
        std::fs::remove_file(&file).unwrap();
        let err = from_file.bind_secret().unwrap_err();
        assert_eq!(err.path, file);
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
        let _ = std::fs::remove_dir(&dir);
        assert!(LdapConfig { bind_password: None, ..cfg() }.bind_secret().unwrap().is_empty());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
        assert!(!format!("{:?}", cfg()).contains("\"x\""));
    }

    #[test]
    fn netbios_domain_is_checked_and_upper_cased() {
        let ad = LdapConfig { preset: Preset::ActiveDirectory, netbios_domain: Some("corp".into()), ..cfg() };
        assert!(ad.validate().is_empty(), "{:?}", ad.validate());
        assert_eq!(ad.mapping().netbios_domain.as_deref(), Some("CORP"));
        for bad in ["corp.test", "CORP\\", "", "A-VERY-LONG-DOMAIN-NAME"] {
            let c = LdapConfig { netbios_domain: Some(bad.into()), ..ad.clone() };
            let issues = c.validate();
            assert_eq!(issues.len(), 1, "{bad:?}: {issues:?}");
            let text = issues[0].to_string();
            assert!(text.starts_with("netbios_domain = "), "names key and value: {text}");
            assert!(text.contains("netbios_domain = \"CORP\""), "says the fix: {text}");
        }
        let openldap = LdapConfig { netbios_domain: Some("CORP".into()), ..cfg() };
        assert_eq!(openldap.validate().len(), 1, "only with the AD preset");
    }
}
