//! `fedgate import keycloak`: a Keycloak realm export (admin-console partial export, `kc.sh export`, or the legacy
//! `userFederationProviders` form) becomes a fedgate `config.toml`, secret and key files, a `sub` map, and
//! `IMPORT-REPORT.md` listing everything that did not convert one to one, with what to do about it.
//!
//! [`convert`] is pure (export in, files out as values); [`write`] puts them on disk and checks the result with
//! the gateway's own configuration loader.

mod convert;
pub mod export;
mod keys;
pub mod report;
mod toml_out;

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use convert::convert;
pub use report::{Report, Severity};

/// What the conversion needs besides the export.
#[derive(Debug, Clone)]
pub struct Options {
    /// The absolute output directory; paths in the generated configuration point into it.
    pub out_dir: PathBuf,
    /// The URL Keycloak was reached at (`server.public_url`); default: the realm's `frontendUrl`, if any.
    pub public_url: Option<url::Url>,
}

/// One file to write, relative to the output directory.
#[derive(Debug, Clone)]
pub struct OutFile {
    /// Relative path.
    pub path: PathBuf,
    /// Contents.
    pub contents: Vec<u8>,
    /// A secret or private key: written 0600.
    pub private: bool,
    /// What it is, for the report's file list.
    pub what: String,
}

/// The result of a conversion: the configuration text, the other files, and the report.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// `config.toml`.
    pub config: String,
    /// Secret files, key PEMs, SP certificates, the `sub` map.
    pub files: Vec<OutFile>,
    /// The findings.
    pub report: Report,
}

/// Reading the export or writing the output failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An input file is not a Keycloak export.
    #[error("{} is not a Keycloak export (JSON): {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The output directory already holds a configuration.
    #[error("{} already exists; choose an empty --out directory so nothing is overwritten", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// An output file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Reads and parses a JSON input file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read { path: path.into(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| ImportError::Parse { path: path.into(), source })
}

/// Writes the conversion into `out_dir` (created if missing; refused if it already has a `config.toml`), then
/// loads the written configuration as `fedgate check-config` would and adds any problem to the report as
/// blocking. Returns the report as written to `IMPORT-REPORT.md`.
pub fn write(mut conversion: Conversion, out_dir: &Path) -> Result<Report, ImportError> {
    let config_path = out_dir.join("config.toml");
    if config_path.exists() {
        return Err(ImportError::Exists { path: config_path });
    }
    for file in &conversion.files {
        write_file(&out_dir.join(&file.path), &file.contents, file.private)?;
        conversion.report.files.push((file.path.display().to_string(), file.what.clone()));
    }
    write_file(&config_path, conversion.config.as_bytes(), false)?;
    conversion.report.files.insert(0, ("config.toml".into(), "the fedgate configuration".into()));
    if let Err(e) = crate::config::load(&config_path) {
        for issue in e.problems {
            conversion.report.add(
                Severity::Blocking,
                format!("config.toml {}", issue.key),
                format!("`fedgate check-config` refuses the generated configuration: {}", issue.problem),
                &issue.fix,
            );
        }
    }
    let report_path = out_dir.join("IMPORT-REPORT.md");
    conversion.report.files.push(("IMPORT-REPORT.md".into(), "this report".into()));
    write_file(&report_path, conversion.report.to_markdown().as_bytes(), false)?;
    Ok(conversion.report)
}

/// Writes a new file (never over an existing one, never through a pre-planted symlink). A private file (a secret,
/// a private key) is 0600 in a directory that is 0700 (`secrets/`, `keys/oidc/`), as `fedgate serve` keeps its key
/// directory; others are 0644.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), ImportError> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let err = |source| ImportError::Write { path: path.into(), source };
    if let Some(dir) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        if private {
            builder.mode(0o700);
        }
        builder.create(dir).map_err(err)?;
        if private {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(if private { 0o600 } else { 0o644 });
    let mut f = options.open(path).map_err(err)?;
    f.write_all(contents).map_err(err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
