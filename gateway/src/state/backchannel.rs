//! OIDC back-channel logout deliveries (Back-Channel Logout 1.0): what a logout owes the clients with a
//! `backchannel_logout_uri`, kept in the state store ([`LogoutOutbox`]) from before the logout answers until each
//! client acknowledged its logout token or it was given up.
//!
//! The replica that ended the session makes the first attempt at once, in the background (the browser never waits
//! for a client). A failed attempt (network error, timeout, 5xx) is retried [`ATTEMPTS`] times in all, after 0.5,
//! 1, 2 and 4 s, by whichever replica's sweeper ([`spawn_sweeper`], every [`SWEEP_EVERY`]) finds it due first. A
//! replica killed during an attempt leaves the entry leased for [`LEASE`]; then another replica (or this one,
//! restarted on an embedded store) takes it over. Each attempt signs a fresh logout token (`iat`, `jti`), so a
//! retry minutes later is not refused as stale; a client that answers 4xx refused it and is not asked again.
//! A SIGTERM waits, within `server.shutdown_grace`, for the deliveries this replica started ([`drain`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::AppState;
use crate::domain::logout_outbox::{LogoutOutbox, PendingLogout};
use crate::domain::store::{Chain, KvStore};

/// How long one back-channel logout POST may take (connect included).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per logout (network errors, timeouts and 5xx answers are retried).
pub const ATTEMPTS: u32 = 5;
/// How long an attempt holds its entry: no other replica takes it meanwhile; if the replica making it dies, the
/// entry is due again after this.
pub const LEASE: Duration = Duration::from_secs(7);
/// How often each replica looks for entries due (one read of the outbox's records).
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Entries one sweep takes at most.
const SWEEP_MAX: usize = 256;

/// The outbox and which of its entries this process added (a shutdown waits for those).
pub struct Deliveries {
    outbox: LogoutOutbox,
    ours: Mutex<HashSet<String>>,
}

impl Deliveries {
    /// Deliveries kept in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        Self { outbox: LogoutOutbox::new(kv), ours: Mutex::default() }
    }

    fn ours(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.ours.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `t` in unix milliseconds, as the outbox keeps time.
pub fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn now_ms(state: &AppState) -> i64 {
    unix_ms(state.clock.now())
}

/// Records `pending` (built with [`PendingLogout::new`] and [`LEASE`]) in the outbox, then makes the first attempt
/// at each in the background. Once this returns, the logouts are in the store: a replica that dies now leaves
/// them to the others. If the store cannot take them, each is still attempted once from this process (a warning
/// says so).
pub async fn send(state: &AppState, pending: Vec<PendingLogout>) {
    if pending.is_empty() {
        return;
    }
    let deliveries = &state.backchannel;
    match deliveries.outbox.add(&pending, now_ms(state)).await {
        Ok(()) => deliveries.ours().extend(pending.iter().map(|p| p.id.clone())),
        Err(e) => tracing::warn!(
            error = %Chain(&e),
            "cannot record the back-channel logouts in the state store; attempting each once, from this replica"
        ),
    }
    let state2 = state.clone();
    state.background.spawn(async move {
        futures_util::future::join_all(pending.into_iter().map(|p| attempt(&state2, p))).await;
    });
}

/// What one attempt came to.
enum Outcome {
    /// The client acknowledged it (2xx).
    Delivered,
    /// The client refused it (4xx), or there is nothing to send any more (the client lost its URI).
    Refused,
    /// Worth another attempt.
    Failed,
}

/// One attempt at `p` (leased to this process), and its bookkeeping in the outbox.
async fn attempt(state: &AppState, mut p: PendingLogout) {
    let outcome = post(state, &p).await;
    p.attempts += 1;
    let now = now_ms(state);
    let deliveries = &state.backchannel;
    let finished = match outcome {
        Outcome::Delivered => {
            state.metrics.event("backchannel_logout", "delivered");
            true
        }
        Outcome::Refused => {
            state.metrics.event("backchannel_logout", "failed");
            true
        }
        Outcome::Failed if p.attempts >= ATTEMPTS => {
            tracing::warn!(client_id = %p.client_id, attempts = p.attempts, "back-channel logout given up");
            state.metrics.event("backchannel_logout", "failed");
            true
        }
        Outcome::Failed => false,
    };
    let recorded = if finished {
        deliveries.outbox.finish(&p.id, now).await
    } else {
        let pause = Duration::from_millis(500) * 2u32.pow(p.attempts.saturating_sub(1).min(8));
        let at = now.saturating_add(i64::try_from(pause.as_millis()).unwrap_or(i64::MAX));
        deliveries.outbox.retry_at(&p.id, p.attempts, at, now).await
    };
    if let Err(e) = &recorded {
        // The entry stays as it was: due again when its lease ends.
        tracing::warn!(client_id = %p.client_id, error = %Chain(e), "cannot record a back-channel logout attempt");
    }
    if finished && recorded.is_ok() {
        deliveries.ours().remove(&p.id);
    }
}

/// POSTs a freshly signed logout token for `p` (Back-Channel Logout 1.0 §2.5).
async fn post(state: &AppState, p: &PendingLogout) -> Outcome {
    let Some(provider) = &state.oidc else { return Outcome::Refused };
    let notice = match provider.logout_token(&p.client_id, &p.sub, p.sid.as_deref(), state.clock.now()) {
        Ok(Some(notice)) => notice,
        Ok(None) => return Outcome::Refused,
        Err(e) => {
            tracing::warn!(client_id = %p.client_id, error = %e, "cannot sign a logout token");
            return Outcome::Failed;
        }
    };
    let body = url::form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", &notice.token).finish();
    let attempt = p.attempts + 1;
    match state.logout_poster.post(&notice.uri, body).await {
        Ok(status) if status.is_success() => {
            tracing::info!(client_id = %p.client_id, attempt, "back-channel logout delivered");
            Outcome::Delivered
        }
        Ok(status) if status.is_client_error() => {
            tracing::warn!(client_id = %p.client_id, %status, "back-channel logout refused by the client");
            Outcome::Refused
        }
        Ok(status) => {
            tracing::warn!(client_id = %p.client_id, %status, attempt, "back-channel logout failed");
            Outcome::Failed
        }
        Err(e) => {
            tracing::warn!(client_id = %p.client_id, error = %e, attempt, "back-channel logout failed");
            Outcome::Failed
        }
    }
}

/// Takes every entry due now and attempts each in the background; whether the store answered.
async fn sweep(state: &AppState) -> bool {
    let now = now_ms(state);
    match state.backchannel.outbox.lease_due(now, LEASE, SWEEP_MAX).await {
        Ok(due) => {
            for p in due.expired {
                tracing::warn!(client_id = %p.client_id, attempts = p.attempts, "back-channel logout given up (too old)");
                state.metrics.event("backchannel_logout", "failed");
                state.backchannel.ours().remove(&p.id);
            }
            for p in due.leased {
                let state2 = state.clone();
                state.background.spawn(async move { attempt(&state2, p).await });
            }
            true
        }
        Err(e) => {
            tracing::debug!(error = %Chain(&e), "cannot read the back-channel logout outbox");
            false
        }
    }
}

/// Starts this replica's sweeper (only when some OIDC client has a `backchannel_logout_uri`).
pub fn spawn_sweeper(state: &AppState) {
    let wanted =
        state.config.oidc.as_ref().is_some_and(|o| o.clients.iter().any(|c| c.backchannel_logout_uri.is_some()));
    if !wanted {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reachable = true;
        loop {
            tick.tick().await;
            let answered = sweep(&state).await;
            if reachable && !answered {
                tracing::warn!("the back-channel logout outbox cannot be read; retries wait for the state store");
            }
            reachable = answered;
        }
    });
}

/// At shutdown: until the logouts this replica recorded are delivered or given up (the caller bounds the wait
/// with `server.shutdown_grace`), keeps attempting them as they fall due.
pub async fn drain(state: &AppState) {
    loop {
        let ours: Vec<String> = state.backchannel.ours().iter().cloned().collect();
        if ours.is_empty() {
            return;
        }
        state.background.wait().await;
        match state.backchannel.outbox.holds_any(&ours).await {
            Ok(false) => return,
            Ok(true) => {}
            // The store is gone: nothing more to do here; another replica or the next start has them.
            Err(_) => return,
        }
        sweep(state).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether this replica has deliveries under way or recorded and not yet finished.
pub fn busy(state: &AppState) -> bool {
    !state.background.is_empty() || !state.backchannel.ours().is_empty()
}
