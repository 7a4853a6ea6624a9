//! Keeps the OIDC signing keys and the SAML key/certificate in step with their files, so replicas sharing one
//! `keys_dir` (a shared volume, a Kubernetes Secret mounted on every pod) sign with the same keys and publish the
//! same JWKS and metadata: `fedgate keys rotate` run against one of them, or a Secret updated by the cluster, is
//! picked up by every replica within [`INTERVAL`].

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::AppState;

/// How often the key files are checked (a `stat` of two or three files).
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a file's version without reading it: size, modification time and inode (a rename or a
/// Kubernetes Secret update replaces the inode). `None` for a missing file.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).ok().map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files.iter().map(|f| stamp(f)).collect()
}

/// Starts the watcher in the background (nothing to watch without `[oidc]` or `[saml]`).
pub fn spawn(state: &AppState) {
    let oidc_files = state.config.oidc.as_ref().map(|o| {
        vec![
            o.keys_dir.join(federation::oidc::keys::ACTIVE_FILE),
            o.keys_dir.join(federation::oidc::keys::PREVIOUS_FILE),
        ]
    });
    let saml_files = state.saml.as_ref().map(|s| s.key_files());
    if oidc_files.is_none() && saml_files.is_none() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let mut oidc_seen = oidc_files.as_deref().map(stamps);
        let mut saml_seen = saml_files.as_deref().map(stamps);
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let (Some(files), Some(provider), Some(cfg)) = (&oidc_files, &state.oidc, &state.config.oidc) {
                let now = stamps(files);
                if oidc_seen.as_ref() != Some(&now) {
                    match federation::oidc::KeySet::load(&cfg.keys_dir) {
                        Ok(keys) => {
                            tracing::info!(
                                keys_dir = %cfg.keys_dir.display(),
                                active_kid = keys.active().kid(),
                                "the OIDC signing keys changed on disk; signing with the new set"
                            );
                            provider.replace_keys(keys);
                            oidc_seen = Some(now);
                        }
                        // A rotation in progress (between its two renames) or a broken file: keep the current
                        // keys and look again on the next tick.
                        Err(e) => tracing::debug!(error = %e, "the OIDC signing keys could not be reloaded yet"),
                    }
                }
            }
            if let (Some(files), Some(idp)) = (&saml_files, &state.saml) {
                let now = stamps(files);
                if saml_seen.as_ref() != Some(&now) {
                    match idp.reload_keys(&state.config.server.public_url) {
                        Ok(()) => {
                            tracing::info!("the SAML signing key or certificate changed on disk; using the new one");
                            saml_seen = Some(now);
                        }
                        Err(e) => tracing::debug!(error = %e, "the SAML signing keys could not be reloaded yet"),
                    }
                }
            }
        }
    });
}
