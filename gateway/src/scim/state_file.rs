//! The sync state of one target on disk: `<state_dir>/<target>.json`, written atomically (temporary file, then
//! rename) so that a crash mid-write leaves the previous state.

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

/// Writes the state atomically.
pub fn save(file: &Path, state: &SyncState) -> anyhow::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating scim.state_dir {}: {e}", dir.display()))?;
    let tmp = file.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state)?;
    std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file).map_err(|e| anyhow::anyhow!("replacing {}: {e}", file.display()))?;
    Ok(())
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
}
