//! How long a WebSocket tunnel opened with a session may stay open: the proxy decides at the upgrade, and then
//! every `proxy.websocket_session_check` the tunnel checks its session through the session store (through its
//! first level: in the process with the embedded store, one read with Redis unless the session was read in the
//! last `cache_ttl`) and is closed at the first check that finds it logged out, idle or past its absolute
//! lifetime. One timer per tunnel.
//!
//! A check is not use of the session: it reads the session as of the last use the tunnel saw, which moves no idle
//! clock. Data from the client is use, as any proxied request is: a check after the client sent something marks
//! the session used at that check. Data the app pushes to the client is not (nobody at the browser asked for it).
//! A check that cannot reach the store keeps the tunnel (as the first level keeps answering a live session
//! through a short outage) unless what the tunnel last read of its session has expired by then.
//!
//! A tunnel opened with an access token instead of a session verifies the token at each check ([`token_guard`]).

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::session::{Lifetimes, Session, SessionStore};
use crate::state::AppState;
use crate::upstream::tunnel::{ClientActivity, TunnelGuard};

/// The guard of a tunnel opened with the session `id` (`session` as the upgrade read it).
pub fn session_guard(state: AppState, id: String, session: &Session) -> TunnelGuard {
    let known = Known { last_seen: session.last_seen, auth_time: session.auth_time };
    Box::new(move |activity| Box::pin(watch(state, id, known, activity)))
}

/// The guard of a tunnel opened with a fedgate access token (`Authorization: Bearer`): every
/// `proxy.websocket_session_check` the token is verified again, and the tunnel is closed once it has expired or
/// was revoked (a logout revokes its session's token families). A check that cannot reach the grant store keeps
/// the tunnel, as for sessions; the token's own expiry is checked before the store is asked.
pub fn token_guard(state: AppState, token: String) -> TunnelGuard {
    Box::new(move |_| Box::pin(watch_token(state, token)))
}

async fn watch_token(state: AppState, token: String) -> &'static str {
    let Some(oidc) = state.oidc.clone() else { return std::future::pending().await };
    let every = state.config.proxy.websocket_session_check;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match oidc.verify_access_token(&token, state.clock.now()).await {
            Ok(_) => {}
            Err(federation::oidc::TokenError::Protocol(e)) => {
                tracing::debug!(reason = %e, "websocket tunnel: its access token is no longer valid");
                return "its access token expired or was revoked";
            }
            Err(e) => tracing::debug!(error = %e, "websocket tunnel: access token check failed"),
        }
    }
}

/// What a tunnel knows of its session without the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    /// The latest use of the session it knows of (unix seconds): the store's `last_seen`, or the client's data.
    last_seen: i64,
    /// When the user authenticated (unix seconds).
    auth_time: i64,
}

/// What one check found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// The session is live.
    Live(Known),
    /// The session has ended: the tunnel closes, for this reason.
    Ended(&'static str),
    /// The store could not be asked and what the tunnel knows has not expired: it stays open.
    Unknown,
}

/// Checks every `proxy.websocket_session_check` until the session has ended; the reason.
async fn watch(state: AppState, id: String, mut known: Known, activity: ClientActivity) -> &'static str {
    let every = state.config.proxy.websocket_session_check;
    let lifetimes =
        Lifetimes { idle: state.config.session.idle_timeout, absolute: state.config.session.absolute_timeout };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = state.clock.now();
        if activity.take() {
            known.last_seen = known.last_seen.max(now.unix_timestamp());
        }
        match check(state.sessions.as_ref(), &id, known, lifetimes, now).await {
            Check::Live(k) => known = k,
            Check::Ended(why) => return why,
            Check::Unknown => {}
        }
    }
}

/// Reads session `id` at `now` without marking it used later than `known.last_seen`, and says whether it is live.
async fn check(
    sessions: &dyn SessionStore,
    id: &str,
    known: Known,
    lifetimes: Lifetimes,
    now: OffsetDateTime,
) -> Check {
    // The store marks a session used at the time it is asked with, and never moves its idle clock back: asked as
    // of the last use this tunnel knows of, the check itself is no use. (Expiry is decided below with `now`.)
    let as_of = OffsetDateTime::from_unix_timestamp(known.last_seen).map_or(now, |t| t.min(now));
    let now_s = now.unix_timestamp();
    match sessions.get(id, as_of).await {
        Ok(Some(s)) => match ended(lifetimes, s.last_seen.max(known.last_seen), s.auth_time, now_s) {
            Some(why) => Check::Ended(why),
            None => Check::Live(Known { last_seen: s.last_seen.max(known.last_seen), auth_time: s.auth_time }),
        },
        Ok(None) => Check::Ended("the session was logged out or has expired"),
        Err(e) => {
            tracing::debug!(error = %crate::domain::store::Chain(&e), "websocket tunnel: session check failed");
            match ended(lifetimes, known.last_seen, known.auth_time, now_s) {
                Some(why) => Check::Ended(why),
                None => Check::Unknown,
            }
        }
    }
}

/// Why a session last used at `last_seen` and authenticated at `auth_time` has ended at `now` (unix seconds).
fn ended(lifetimes: Lifetimes, last_seen: i64, auth_time: i64, now: i64) -> Option<&'static str> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(auth_time) > secs(lifetimes.absolute) {
        Some("the session reached its absolute lifetime")
    } else if now.saturating_sub(last_seen) > secs(lifetimes.idle) {
        Some("the session was idle too long")
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::session::{AuthMethod, MemoryStore, StoreError, StoreFuture};

    const IDLE: Duration = Duration::from_secs(600);

    fn lifetimes() -> Lifetimes {
        Lifetimes { idle: IDLE, absolute: Duration::from_secs(3600) }
    }

    async fn signed_in(t0: OffsetDateTime) -> (MemoryStore, String, Known) {
        let store = MemoryStore::new(100, lifetimes());
        let session = Session::new(crate::domain::session::tests::user("u"), AuthMethod::Password, t0);
        let known = Known { last_seen: session.last_seen, auth_time: session.auth_time };
        store.insert("id", session).await.unwrap();
        (store, "id".into(), known)
    }

    /// Checks without client data never keep a session alive: it ends at its idle timeout however often the tunnel
    /// checked (a check that read the session "now" would have marked it used every time).
    #[tokio::test]
    async fn checks_alone_do_not_extend_the_idle_timeout() {
        let t0 = OffsetDateTime::now_utc();
        let (store, id, mut known) = signed_in(t0).await;
        for minute in 1..=9 {
            match check(&store, &id, known, lifetimes(), t0 + Duration::from_secs(60 * minute)).await {
                Check::Live(k) => known = k,
                other => panic!("minute {minute}: {other:?}"),
            }
        }
        assert_eq!(known.last_seen, t0.unix_timestamp(), "no check moved the idle clock");
        let late = t0 + IDLE + Duration::from_secs(1);
        assert_eq!(check(&store, &id, known, lifetimes(), late).await, Check::Ended("the session was idle too long"));
    }

    /// Client data is use: the session stays live past the idle timeout of its login, in the store too.
    #[tokio::test]
    async fn client_data_keeps_the_session_alive() {
        let t0 = OffsetDateTime::now_utc();
        let (store, id, mut known) = signed_in(t0).await;
        known.last_seen = (t0 + Duration::from_secs(500)).unix_timestamp();
        let Check::Live(k) = check(&store, &id, known, lifetimes(), t0 + Duration::from_secs(500)).await else {
            panic!("live")
        };
        let later = t0 + IDLE + Duration::from_secs(60);
        assert!(matches!(check(&store, &id, k, lifetimes(), later).await, Check::Live(_)));
        assert!(store.get(&id, later).await.unwrap().is_some(), "the store saw the use");
    }

    #[tokio::test]
    async fn a_logged_out_session_ends_the_tunnel() {
        let t0 = OffsetDateTime::now_utc();
        let (store, id, known) = signed_in(t0).await;
        store.take(&id).await.unwrap();
        assert!(matches!(check(&store, &id, known, lifetimes(), t0).await, Check::Ended(_)));
    }

    struct Down;

    impl SessionStore for Down {
        fn insert<'a>(&'a self, _: &'a str, _: Session) -> StoreFuture<'a, Result<(), StoreError>> {
            Box::pin(async { Err(StoreError::unavailable("test", "down")) })
        }
        fn get<'a>(
            &'a self,
            _: &'a str,
            _: OffsetDateTime,
        ) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
            Box::pin(async { Err(StoreError::unavailable("test", "down")) })
        }
        fn modify<'a>(
            &'a self,
            _: &'a str,
            _: Box<dyn Fn(&mut Session) + Send + Sync + 'a>,
        ) -> StoreFuture<'a, Result<(), StoreError>> {
            Box::pin(async { Err(StoreError::unavailable("test", "down")) })
        }
        fn remove<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Result<(), StoreError>> {
            Box::pin(async { Err(StoreError::unavailable("test", "down")) })
        }
        fn take<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
            Box::pin(async { Err(StoreError::unavailable("test", "down")) })
        }
        fn count(&self) -> u64 {
            0
        }
    }

    /// An unavailable store closes no tunnel whose session is live as far as it knows, and still ends one past
    /// its absolute lifetime.
    #[tokio::test]
    async fn an_unavailable_store_keeps_live_tunnels_but_not_past_their_lifetime() {
        let t0 = OffsetDateTime::now_utc();
        let known = Known { last_seen: t0.unix_timestamp(), auth_time: t0.unix_timestamp() };
        assert_eq!(check(&Down, "id", known, lifetimes(), t0 + Duration::from_secs(5)).await, Check::Unknown);
        let known = Known { last_seen: (t0 + Duration::from_secs(3590)).unix_timestamp(), ..known };
        assert_eq!(
            check(&Down, "id", known, lifetimes(), t0 + Duration::from_secs(3601)).await,
            Check::Ended("the session reached its absolute lifetime")
        );
    }
}
