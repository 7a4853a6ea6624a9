//! The sync state of one target on disk: `<state_dir>/<target>.json`, written atomically (temporary file fsynced,
//! then renamed, then the directory fsynced) so that a crash mid-write leaves the previous state. A run holds an
//! exclusive lock on `<state_dir>/<target>.lock` from reading the state to writing it back, so replicas that share
//! `state_dir` and all run `interval` never sync one target at once (the second one skips that run).

use std::path::{Path, PathBuf};

use federation::scim::SyncState;

/// Where the state of `target` lives.
pub fn path(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join(format!("{target}.json"))
}

/// Reads the state; a missing file is an empty state (the next run is a full sync).
pub fn load(file: &Path) -> anyhow::Result<SyncState> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "the SCIM state file {} is damaged ({e}); move it away to start over with a full sync (users \
                 fedgate provisioned are adopted again by userName)",
                file.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
        Err(e) => Err(anyhow::anyhow!("reading the SCIM state file {}: {e}", file.display())),
    }
}

/// Creates `scim.state_dir` (and missing parents) with mode 0700: the state names every provisioned user.
fn create_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("creating scim.state_dir {}: {e}", dir.display()))
}

/// Writes the state atomically and durably, mode 0600. The temporary file is created anew (`O_EXCL`, after
/// removing any leftover), so a symlink planted at its name is removed, never written through.
pub fn save(file: &Path, state: &SyncState) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = file.parent().unwrap_or(Path::new("."));
    create_state_dir(dir)?;
    let tmp = file.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state)?;
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::anyhow!("removing the leftover {}: {e}", tmp.display()));
        }
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, file).map_err(|e| anyhow::anyhow!("replacing {}: {e}", file.display()))?;
    // The rename itself is durable once the directory is flushed (best effort: some file systems refuse).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An exclusive lock on one target's state, held until dropped (the OS releases it if the process dies).
#[derive(Debug)]
pub struct TargetLock {
    _file: std::fs::File,
}

/// Takes the lock of the state `file` without waiting: `Ok(None)` when another process (or run) holds it.
pub fn lock(file: &Path) -> anyhow::Result<Option<TargetLock>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = file.parent().unwrap_or(Path::new("."));
    create_state_dir(dir)?;
    let path = file.with_extension("lock");
    // The lock file is never written to: a symlink at its name can at most create an empty file.
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("opening the lock file {}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(TargetLock { _file: f })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("locking {}: {e}", path.display())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path(), "ram");
        assert_eq!(load(&file).unwrap(), SyncState::default());
        let state = SyncState { last_success: Some(42), ..SyncState::default() };
        save(&file, &state).unwrap();
        assert_eq!(load(&file).unwrap(), state);
        std::fs::write(&file, "{not json").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("ram.json") && err.contains("damaged"), "{err}");
    }

    #[test]
    fn one_run_at_a_time_holds_a_target_and_the_lock_is_freed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path(), "ram");
        let first = lock(&file).unwrap();
        assert!(first.is_some(), "a free target can be locked");
        // Another open of the lock file (as another replica's would be) cannot take it meanwhile.
        assert!(lock(&file).unwrap().is_none(), "a second run of the same target must be refused");
        assert!(lock(&path(dir.path(), "other")).unwrap().is_some(), "other targets are independent");
        drop(first);
        assert!(lock(&file).unwrap().is_some(), "the lock is released with the run");
    }
}
