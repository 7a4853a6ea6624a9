//! One problem found while validating a configuration section, in a shape the gateway can print.

use std::fmt;

/// A configuration problem: which key, what value was found (secrets already redacted), what is wrong, how to fix it.
///
/// Keys are relative to the section the library owns (e.g. `clients[0].redirect_uris`); the gateway prefixes the
/// section name when it reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path relative to the library's section.
    pub key: String,
    /// The offending value as written, or `None` when the key is missing or the value is a secret.
    pub value: Option<String>,
    /// What is wrong, in lower case.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl ConfigIssue {
    /// Builds an issue for `key`.
    pub fn new(
        key: impl Into<String>,
        value: Option<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self { key: key.into(), value, problem: problem.into(), fix: fix.into() }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {:?}: {} (fix: {})", self.key, v, self.problem, self.fix),
            None => write!(f, "{}: {} (fix: {})", self.key, self.problem, self.fix),
        }
    }
}
