//! SCIM 2.0 provisioning, the I/O half: pushes directory users to SCIM servers (`fedgate scim sync`, or every
//! `interval` inside `fedgate serve`). The protocol half (resources, plans, safety rules) is `federation::scim`.

pub mod client;
pub mod state_file;
pub mod sync;

use std::time::Duration;

pub use sync::{Report, SyncOptions, run};

use crate::state::AppState;

/// Starts one background task per target with an `interval`, when the directory is LDAP: a first run at start-up,
/// then one every `interval`. Each run's outcome goes to the log and to `/metrics`.
pub fn spawn_periodic(state: &AppState) {
    let Some(scim) = &state.config.scim else { return };
    for target in scim.targets.iter().filter(|t| t.interval.is_some()) {
        let state = state.clone();
        let name = target.name.clone();
        tokio::spawn(async move {
            loop {
                let Some(scim) = &state.config.scim else { return };
                let Some(target) = scim.target(&name) else { return };
                let Some(every) = target.interval else { return };
                let crate::domain::directory::Directory::Ldap(dir) = &state.directory else {
                    tracing::warn!(target = %name, "scim sync needs an [ldap] directory; periodic sync stopped");
                    return;
                };
                let now = state.clock.now().unix_timestamp();
                match run(dir, scim, target, SyncOptions::default(), now).await {
                    Ok(report) => {
                        state.metrics.scim_run(&report.metrics(), now);
                        tracing::info!(target = %name, "{}", report.to_string().trim_end());
                    }
                    Err(e) => {
                        state.metrics.scim_failed(&name);
                        tracing::error!(target = %name, "scim sync failed: {e:#}");
                    }
                }
                tokio::time::sleep(every.max(Duration::from_secs(10))).await;
            }
        });
    }
}
