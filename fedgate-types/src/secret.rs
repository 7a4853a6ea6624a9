//! A secret string (a password, a client secret, a bearer token) that never shows in `Debug` output and is wiped
//! from memory when dropped.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

/// A secret string: `Debug` prints `[redacted]`, `==` compares in constant time, and the bytes are zeroed on drop.
///
/// Serialized and deserialized as the plain string (`#[serde(transparent)]`), so a configuration key holding it
/// reads like any other string.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret kept in a file (the `*_file` form of a configuration key): the file's content without its
    /// trailing line break(s), so `echo secret > file` works.
    pub fn from_file(path: &Path) -> Result<Self, SecretFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretFileError { path: path.into(), source })?;
        // Wrapped at once, so the buffer is wiped on drop whatever happens next.
        let mut secret = Self(text);
        let len = secret.0.trim_end_matches(['\r', '\n']).len();
        secret.0.truncate(len);
        Ok(secret)
    }

    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A secret file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct SecretFileError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        crate::secure_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_serde_is_the_plain_string() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        let back: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back, s);
        assert_ne!(back, Secret::new("hunter3"));
        assert_eq!(back.expose(), "hunter2");
    }

    #[test]
    fn from_file_drops_trailing_line_breaks_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, " pass word \r\n\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().expose(), " pass word ");
        let err = Secret::from_file(&dir.path().join("absent")).unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with("cannot read ") && err.to_string().contains("absent"), "{err}");
    }
}
