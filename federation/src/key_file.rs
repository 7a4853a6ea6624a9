//! Private key files, handled one way for OIDC and SAML keys alike: PEM encoding, the key directory (created
//! 0700), new key files (`create_new`, mode 0600, fsynced: an existing key is never truncated or overwritten),
//! replacement by rename, and a warning when a private key file can be read by group or others.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Mode of a new private key file.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of a new certificate file (public).
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode of a new key directory.
pub const DIR_MODE: u32 = 0o700;

/// What was being done to a key file or directory when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reading a file.
    Read,
    /// Creating the key directory.
    CreateDir,
    /// Writing a new file.
    Write,
    /// Moving a file into place.
    Rename,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "reading",
            Self::CreateDir => "creating the key directory",
            Self::Write => "writing",
            Self::Rename => "moving into place",
        })
    }
}

/// A key file or the key directory could not be read, created or written.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct KeyFileError {
    /// What was being done.
    pub action: Action,
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl KeyFileError {
    fn new(action: Action, path: &Path, source: io::Error) -> Self {
        Self { action, path: path.to_path_buf(), source }
    }
}

/// The PEM encoding (RFC 7468) of `der` under `label`, e.g. `PRIVATE KEY` or `CERTIFICATE`: base64 in lines of
/// 64 characters.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // base64 is ASCII, so every 64-byte chunk is whole characters.
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Creates the key directory (and its parents) with mode 0700; an existing directory is left as it is.
pub fn create_dir(dir: &Path) -> Result<(), KeyFileError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| KeyFileError::new(Action::CreateDir, dir, e))
}

/// Reads a file that is not secret (a certificate).
pub fn read(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    fs::read(path).map_err(|e| KeyFileError::new(Action::Read, path, e))
}

/// Reads a private key file. A file that group or others may read is still used (keys set up that way keep
/// working), with a warning that says how to fix it.
pub fn read_private(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let bytes = read(path)?;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "a private key file is readable by group or others; run chmod 600 on it"
        );
    }
    Ok(bytes)
}

/// Writes a new file with `mode` and flushes it to disk. Fails if `path` exists: an existing key is never
/// truncated or overwritten. A file left half-written by a failed write is removed.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyFileError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| KeyFileError::new(Action::Write, path, e))?;
    if let Err(e) = f.write_all(contents).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(KeyFileError::new(Action::Write, path, e));
    }
    sync_parent(path);
    Ok(())
}

/// Publishes a new file at `path` holding `contents` (mode `mode`) unless one is there already, safely when several
/// processes (replicas sharing a key directory) try at once: the contents are written and fsynced to a file of this
/// process's own, which is then hard-linked to `path` (the link fails if `path` exists, atomically). `true` if this
/// call published its contents; `false` if another file was there first (read that one). A reader never sees a
/// partial file.
pub fn publish_new(path: &Path, contents: &[u8], mode: u32) -> Result<bool, KeyFileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.{}.tmp", std::process::id(), fedgate_types::random::token()));
    let tmp = PathBuf::from(tmp);
    write_new(&tmp, contents, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(KeyFileError::new(Action::Rename, path, e)),
    }
}

/// Moves `from` to `to` (replacing `to`, atomically on one file system) and flushes the directory.
pub fn rename(from: &Path, to: &Path) -> Result<(), KeyFileError> {
    fs::rename(from, to).map_err(|e| KeyFileError::new(Action::Rename, to, e))?;
    sync_parent(to);
    Ok(())
}

/// Writes `contents` to `<path>.new` (mode `mode`, fsynced) and returns that path, for [`rename`] to move into
/// place once everything else is ready. A `.new` file left by a crash before the rename is removed first.
pub fn write_staged(path: &Path, contents: &[u8], mode: u32) -> Result<PathBuf, KeyFileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(KeyFileError::new(Action::Write, &tmp, e)),
        _ => {}
    }
    write_new(&tmp, contents, mode)?;
    Ok(tmp)
}

/// Replaces `path` with a file holding `contents` (mode `mode`): staged as `<path>.new`, then renamed over it, so
/// a reader sees the old file or the new one, never a partial one.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyFileError> {
    let tmp = write_staged(path, contents, mode)?;
    rename(&tmp, path)
}

/// Flushes the directory entry of a new or renamed file. Best effort: some file systems refuse to fsync a
/// directory, and the file's own data is already on disk.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_wraps_at_64_and_round_trips() {
        use rustls::pki_types::PrivatePkcs8KeyDer;
        use rustls::pki_types::pem::PemObject as _;
        let der: Vec<u8> = (0..=255u8).collect();
        let text = pem("PRIVATE KEY", &der);
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n") && text.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64), "{text}");
        let back = PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes()).unwrap();
        assert_eq!(back.secret_pkcs8_der(), der.as_slice());
        assert_eq!(pem("X", &[]), "-----BEGIN X-----\n-----END X-----\n");
    }

    #[test]
    fn new_files_are_private_and_never_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/keys");
        create_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, DIR_MODE);
        let key = dir.join("k.pem");
        write_new(&key, b"one", PRIVATE_MODE).unwrap();
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, PRIVATE_MODE);
        let err = write_new(&key, b"two", PRIVATE_MODE).unwrap_err();
        assert_eq!((err.action, err.source.kind()), (Action::Write, io::ErrorKind::AlreadyExists));
        assert!(err.to_string().contains("k.pem"), "{err}");
        assert_eq!(read_private(&key).unwrap(), b"one");

        replace(&key, b"three", PRIVATE_MODE).unwrap();
        assert_eq!(read_private(&key).unwrap(), b"three");
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, PRIVATE_MODE);
        assert!(!dir.join("k.pem.new").exists());

        let missing = read_private(&dir.join("absent.pem")).unwrap_err();
        assert_eq!((missing.action, missing.source.kind()), (Action::Read, io::ErrorKind::NotFound));
    }
}
