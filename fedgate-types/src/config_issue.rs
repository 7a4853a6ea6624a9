//! One problem found while checking a configuration, in a shape a person can act on: which key, the value found,
//! what is wrong, and the fix.

use std::fmt;

/// What a redacted value is shown as.
pub const REDACTED: &str = "<redacted>";

/// A configuration problem: which key, what value was found (never a secret), what is wrong, how to fix it, and
/// where the value came from when that is known.
///
/// A library reports keys relative to the section it owns (e.g. `clients[0].redirect_uris`); the gateway puts the
/// section in front with [`ConfigIssue::in_section`].
///
/// `Display` prints one line, `key = "value": problem [source] (fix: …)`; the alternate form (`{:#}`) puts the
/// fix on its own indented line, as `fedgate check-config` lists problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `users_dn` in a library, `ldap.users_dn` in the gateway.
    pub key: String,
    /// The offending value as written, `None` when the key is missing, [`REDACTED`] for a secret.
    pub value: Option<String>,
    /// What is wrong, in lower case.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
    /// Where the value came from (a file or an environment variable), when known.
    pub source: Option<String>,
}

impl ConfigIssue {
    /// An issue with `key`. If the key names a secret ([`is_secret_key`]), a value given is replaced by
    /// [`REDACTED`], so a secret never reaches a log or a terminal through a configuration report.
    pub fn new(
        key: impl Into<String>,
        value: Option<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        let key = key.into();
        let value = if is_secret_key(&key) { value.map(|_| REDACTED.to_string()) } else { value };
        Self { key, value, problem: problem.into(), fix: fix.into(), source: None }
    }

    /// The same issue with `section.` in front of its key (the key alone if it was empty).
    pub fn in_section(mut self, section: &str) -> Self {
        self.key = if self.key.is_empty() { section.to_string() } else { format!("{section}.{}", self.key) };
        self
    }

    /// The same issue, saying where the value came from.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// Whether a key's value is a secret that is never printed: its last segment names a password, secret or token
/// (`bind_password`, `client_secret`, `bearer_token`, `password_hash`), but not a `*_file` naming where one is.
pub fn is_secret_key(key: &str) -> bool {
    let leaf = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    (leaf.contains("password") || leaf.contains("secret") || leaf.contains("token")) && !leaf.ends_with("_file")
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        if let Some(v) = &self.value {
            write!(f, " = {v:?}")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(src) = &self.source {
            write!(f, " [{src}]")?;
        }
        if f.alternate() { write!(f, "\n      fix: {}", self.fix) } else { write!(f, " (fix: {})", self.fix) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_key_value_problem_and_fix() {
        let i = ConfigIssue::new("users_dn", Some(" ou=x".into()), "leading space", "remove it");
        assert_eq!(i.to_string(), r#"users_dn = " ou=x": leading space (fix: remove it)"#);
        let i = i.in_section("ldap").with_source("in config.toml");
        assert_eq!(format!("{i:#}"), "ldap.users_dn = \" ou=x\": leading space [in config.toml]\n      fix: remove it");
        let missing = ConfigIssue::new("", None, "missing", "add it").in_section("oidc");
        assert_eq!(missing.to_string(), "oidc: missing (fix: add it)");
    }

    #[test]
    fn secrets_are_redacted_but_secret_files_are_not() {
        let i = ConfigIssue::new("ldap.bind_password", Some("hunter2".into()), "x", "y");
        assert_eq!(i.value.as_deref(), Some(REDACTED));
        for key in ["client_secret", "scim.targets[0].bearer_token", "directory.users[0].password_hash"] {
            assert!(is_secret_key(key), "{key}");
        }
        let f = ConfigIssue::new("bind_password_file", Some("/run/pw".into()), "x", "y");
        assert_eq!(f.value.as_deref(), Some("/run/pw"));
    }
}
