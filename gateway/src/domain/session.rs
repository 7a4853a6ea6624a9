//! Server-side sessions: what a logged-in browser's cookie points at.
//!
//! The cookie holds only a 256-bit random id, so it stays small however many groups a user has. Sessions live
//! behind the [`SessionStore`] trait; [`MemoryStore`] (moka) is the default. Expiry (idle and absolute) is decided
//! with the caller's `now`, so tests drive time without sleeping, and validating a session never touches LDAP.

use std::sync::Arc;
use std::time::Duration;

use ldap_mapper::MappedUser;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use crate::domain::store::{StoreError, StoreFuture};

/// How the user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Username and password checked against the directory.
    Password,
    /// Signed in at an upstream OpenID Connect provider (`[[upstream.oidc]]`); see [`Session::upstream`].
    Upstream,
}

/// The upstream provider a session signed in through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamSignIn {
    /// The `[[upstream.oidc]]` name.
    pub provider: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The `amr` values the provider reported.
    #[serde(default)]
    pub amr: Vec<String>,
    /// The `acr` the provider reported.
    #[serde(default)]
    pub acr: Option<String>,
    /// The provider's ID token, kept only when `logout_upstream` needs it as `id_token_hint`.
    pub id_token: Option<String>,
}

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who.
    pub user: MappedUser,
    /// When they authenticated (unix seconds).
    pub auth_time: i64,
    /// How.
    pub method: AuthMethod,
    /// Last time the session was used (unix seconds), for the idle timeout.
    pub last_seen: i64,
    /// Per-session token for forms that need a logged-in user (logout, consent).
    pub csrf: String,
    /// OIDC clients and SAML SPs this session signed in to (for logout).
    #[serde(default)]
    pub signed_in_to: Vec<String>,
    /// `SessionIndex` values of the SAML assertions issued to this session (the latest few), so an SP's
    /// LogoutRequest naming a SessionIndex ends only the session it was issued to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saml_session_indexes: Vec<String>,
    /// Per SAML SP this session signed in to: the NameID it was given and its latest SessionIndex, so a logout can
    /// recognise the SP's LogoutRequest (transient and persistent NameIDs are not the username) and send one to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saml_sps: Vec<SamlSignIn>,
    /// Per OIDC client this session signed in to: the `sid` values of the ID tokens it was given, for
    /// back-channel and front-channel logout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc_clients: Vec<OidcSignIn>,
    /// The upstream provider the user signed in through ([`AuthMethod::Upstream`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSignIn>,
    /// Created by a version that names the session cookie `__Host-…` over https (every session created now).
    /// `false` (absent) only in sessions stored before that: those are still taken from the cookie's plain name,
    /// so an upgrade signs nobody out; a session with `true` never is, since a sibling subdomain can plant the
    /// plain name (cookie tossing).
    #[serde(default)]
    pub host_cookie: bool,
    /// Values a layer above derives from `user` once per cached session (the proxy's identity header values);
    /// never stored.
    #[serde(skip)]
    pub derived: Derived,
}

impl Session {
    /// A fresh session for `user`, authenticated at `now`.
    pub fn new(user: MappedUser, method: AuthMethod, now: OffsetDateTime) -> Self {
        let t = now.unix_timestamp();
        Self {
            user,
            auth_time: t,
            method,
            last_seen: t,
            csrf: fedgate_types::random::token(),
            signed_in_to: Vec::new(),
            saml_session_indexes: Vec::new(),
            saml_sps: Vec::new(),
            oidc_clients: Vec::new(),
            upstream: None,
            host_cookie: true,
            derived: Derived::default(),
        }
    }

    /// When the user authenticated.
    pub fn auth_instant(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.auth_time).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// One SAML SP's sign-in within a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSignIn {
    /// The SP's configured name.
    pub sp: String,
    /// The NameID `Format` URI it was given.
    pub nameid_format: String,
    /// The NameID value.
    pub name_id: String,
    /// The latest `SessionIndex` it was given.
    pub session_index: String,
}

/// One OIDC client's sign-ins within a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSignIn {
    /// The client.
    pub client_id: String,
    /// The `sid` of each ID token family issued to it in this session (the latest few).
    pub sids: Vec<String>,
}

/// A value derived from a session once and kept beside it in the cache (e.g. the proxy's identity header values,
/// validated once instead of on every request). Its type belongs to the layer that derives it, so the session
/// does not depend on that layer. It never takes part in equality and is not cloned or stored.
#[derive(Default)]
pub struct Derived(std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>);

impl Derived {
    /// The value, built by `init` on first use; `None` if a value of another type was stored first.
    pub fn get_or_init<T: std::any::Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
    }
}

impl Clone for Derived {
    /// A clone starts empty: the value is cheap to derive again and belongs to the cached original.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Derived {}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

/// A session's public handle: derived from its secret id (SHA-256, base64url, 128 bits) so it can be shown to
/// upstreams (the `sid` of the tokens the proxy hands them) without revealing the cookie.
pub fn public_handle(session_id: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, session_id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// Lifetimes a store enforces.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login.
    pub absolute: Duration,
}

impl Lifetimes {
    /// Whether `s` has ended at `now` (unix seconds).
    pub fn expired(&self, s: &Session, now: i64) -> bool {
        now - s.last_seen > secs(self.idle) || now - s.auth_time > secs(self.absolute)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Where sessions live. Every implementation must pass [`conformance`].
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session under `id`.
    fn insert<'a>(&'a self, id: &'a str, session: Session) -> StoreFuture<'a, Result<(), StoreError>>;
    /// The live session for `id`, marking it used at `now`; `None` when unknown or expired (expired ones are removed).
    ///
    /// Shared, not copied: a proxied request reads the session without cloning the user's data.
    fn get<'a>(&'a self, id: &'a str, now: OffsetDateTime)
    -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>>;
    /// Changes an existing session with `change` (e.g. to record a client it signed in to), without losing a
    /// change another request or replica makes at the same time: `change` may run more than once, each time on
    /// the latest version. Nothing happens if the session is gone.
    fn modify<'a>(
        &'a self,
        id: &'a str,
        change: Box<dyn Fn(&mut Session) + Send + Sync + 'a>,
    ) -> StoreFuture<'a, Result<(), StoreError>>;
    /// The live session for `id` as the store holds it now, never a first-level copy that may miss what another
    /// replica recorded in the last `cache_ttl` (a client or SP it signed in to): what a decision about the whole
    /// session, such as whether an SP's LogoutRequest names it, must read. Marks it used at `now` like [`get`].
    ///
    /// [`get`]: SessionStore::get
    fn latest<'a>(
        &'a self,
        id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        // A store without a first level has nothing older than the store itself.
        self.get(id, now)
    }
    /// Ends a session.
    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Result<(), StoreError>>;
    /// Ends a session and returns its latest version from the store (not a first-level copy that may miss what
    /// another replica recorded in the last `cache_ttl`): what a logout must notify. Atomic: of two logouts of one
    /// session, one gets it.
    fn take<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>>;
    /// Approximate number of live sessions, for metrics.
    fn count(&self) -> u64;
}

/// The default store: an in-process moka cache bounded by `max_sessions`, least recently used evicted first.
pub struct MemoryStore {
    cache: Cache<String, Arc<Session>>,
    lifetimes: Lifetimes,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("len", &self.cache.entry_count()).finish()
    }
}

impl MemoryStore {
    /// A store holding at most `max_sessions`.
    pub fn new(max_sessions: u64, lifetimes: Lifetimes) -> Self {
        // moka's own idle expiry reclaims memory of abandoned sessions; the authoritative check uses the caller's
        // clock in `get`, so a generous margin here never cuts a session short.
        // Least recently used first: a new login always gets in. TinyLFU admission (moka's default) refused new
        // sessions once the store was full of sessions in use.
        let cache = Cache::builder()
            .max_capacity(max_sessions)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(lifetimes.idle + Duration::from_secs(60))
            .time_to_live(lifetimes.absolute + Duration::from_secs(60))
            .build();
        Self { cache, lifetimes }
    }
}

impl SessionStore for MemoryStore {
    fn insert<'a>(&'a self, id: &'a str, session: Session) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.cache.insert(id.to_string(), Arc::new(session));
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move {
            let Some(s) = self.cache.get(id) else { return Ok(None) };
            let now = now.unix_timestamp();
            if self.lifetimes.expired(&s, now) {
                self.cache.invalidate(id);
                return Ok(None);
            }
            // Refresh the idle clock at most every few seconds, to keep hot sessions cheap.
            if now - s.last_seen >= 5 {
                let fresh = Arc::new(Session { last_seen: now, ..(*s).clone() });
                self.cache.insert(id.to_string(), fresh.clone());
                return Ok(Some(fresh));
            }
            Ok(Some(s))
        })
    }

    fn modify<'a>(
        &'a self,
        id: &'a str,
        change: Box<dyn Fn(&mut Session) + Send + Sync + 'a>,
    ) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // One process: moka's per-key compute makes the read-modify-write atomic.
            self.cache.entry_by_ref(id).and_compute_with(|current| match current {
                Some(entry) => {
                    let mut next = (**entry.value()).clone();
                    change(&mut next);
                    moka::ops::compute::Op::Put(Arc::new(next))
                }
                None => moka::ops::compute::Op::Nop,
            });
            Ok(())
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.cache.invalidate(id);
            Ok(())
        })
    }

    fn take<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move { Ok(self.cache.remove(id)) })
    }

    fn count(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// The behaviour every [`SessionStore`] must show, given a store built with `lifetimes` and a session template.
/// Returns the first broken expectation. Call it from each implementation's tests (and, through
/// [`crate::domain::store::typed_conformance`], against each real backend).
pub(crate) async fn conformance(
    store: &dyn SessionStore,
    lifetimes: Lifetimes,
    user: MappedUser,
) -> Result<(), String> {
    let t0 = OffsetDateTime::now_utc();
    let at = |d: Duration| t0 + d;
    let id = fedgate_types::random::token();
    let fail = |what: &str| Err::<(), String>(what.to_string());

    if store.get(&id, t0).await.map_err(|e| e.to_string())?.is_some() {
        return fail("an unknown id must have no session");
    }
    store.insert(&id, Session::new(user.clone(), AuthMethod::Password, t0)).await.map_err(|e| e.to_string())?;
    match store.get(&id, t0).await.map_err(|e| e.to_string())? {
        Some(s) if s.user == user => {}
        _ => return fail("a stored session must come back with the same user"),
    }
    // Used just before the idle timeout, it lives on past the original idle deadline.
    let half = lifetimes.idle / 2;
    if store.get(&id, at(half)).await.map_err(|e| e.to_string())?.is_none() {
        return fail("a session used within the idle timeout must stay alive");
    }
    if store.get(&id, at(half + half + Duration::from_secs(6))).await.map_err(|e| e.to_string())?.is_none() {
        return fail("using a session must reset its idle timeout");
    }
    // Idle expiry.
    let idle_id = fedgate_types::random::token();
    store.insert(&idle_id, Session::new(user.clone(), AuthMethod::Password, t0)).await.map_err(|e| e.to_string())?;
    if store.get(&idle_id, at(lifetimes.idle + Duration::from_secs(1))).await.map_err(|e| e.to_string())?.is_some() {
        return fail("a session unused past the idle timeout must be gone");
    }
    // Absolute expiry, however active.
    let abs_id = fedgate_types::random::token();
    store.insert(&abs_id, Session::new(user.clone(), AuthMethod::Password, t0)).await.map_err(|e| e.to_string())?;
    let mut t = Duration::ZERO;
    while t + lifetimes.idle / 2 < lifetimes.absolute {
        t += lifetimes.idle / 2;
        let _ = store.get(&abs_id, at(t)).await;
    }
    if store.get(&abs_id, at(lifetimes.absolute + Duration::from_secs(1))).await.map_err(|e| e.to_string())?.is_some() {
        return fail("a session must end at the absolute timeout even when active");
    }
    // Update and remove.
    let Some(changed) = store.get(&id, at(half + half + Duration::from_secs(6))).await.map_err(|e| e.to_string())?
    else {
        return fail("a live session must be readable");
    };
    let mut changed = (*changed).clone();
    changed.signed_in_to.push("client-a".into());
    store.modify(&id, Box::new(|s| s.signed_in_to.push("client-a".into()))).await.map_err(|e| e.to_string())?;
    match store.get(&id, at(half + half + Duration::from_secs(7))).await.map_err(|e| e.to_string())? {
        Some(s) if s.signed_in_to == changed.signed_in_to => {}
        _ => return fail("an updated session must keep the update"),
    }
    store.remove(&id).await.map_err(|e| e.to_string())?;
    if store.get(&id, t0).await.map_err(|e| e.to_string())?.is_some() {
        return fail("a removed session must be gone");
    }
    // take: the latest version, once.
    let taken = fedgate_types::random::token();
    store.insert(&taken, Session::new(user.clone(), AuthMethod::Password, t0)).await.map_err(|e| e.to_string())?;
    store.modify(&taken, Box::new(|s| s.signed_in_to.push("client-b".into()))).await.map_err(|e| e.to_string())?;
    match store.take(&taken).await.map_err(|e| e.to_string())? {
        Some(s) if s.signed_in_to == ["client-b"] => {}
        other => return fail(&format!("take must return the latest version: {other:?}")),
    }
    if store.take(&taken).await.map_err(|e| e.to_string())?.is_some() {
        return fail("a session must be taken once");
    }
    if store.get(&taken, t0).await.map_err(|e| e.to_string())?.is_some() {
        return fail("a taken session must be gone");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn user(name: &str) -> MappedUser {
        MappedUser {
            username: name.into(),
            unique_id: format!("id-{name}"),
            dn: String::new(),
            email: None,
            display_name: None,
            given_name: None,
            family_name: None,
            groups: (0..500).map(|i| format!("group-{i}")).collect(),
            group_dns: Vec::new(),
            group_paths: Vec::new(),
            roles: vec!["admin".into()],
            claims: Default::default(),
            saml_persistent_nameids: Default::default(),
        }
    }

    #[tokio::test]
    async fn memory_store_passes_conformance() {
        let lifetimes = Lifetimes { idle: Duration::from_secs(1800), absolute: Duration::from_secs(12 * 3600) };
        let store = MemoryStore::new(1000, lifetimes);
        conformance(&store, lifetimes, user("alice")).await.unwrap();
    }

    /// A full store makes room for a new login by dropping the session used least recently: never the new one.
    /// (moka's default admission policy, TinyLFU, refused a new entry whose key had been seen less often than the
    /// one it would evict: with the store full of sessions in use, every new login was signed out at once.)
    #[tokio::test]
    async fn a_full_memory_store_keeps_every_new_login_and_drops_the_least_recently_used() {
        let lifetimes = Lifetimes { idle: Duration::from_secs(1800), absolute: Duration::from_secs(3600) };
        let store = MemoryStore::new(100, lifetimes);
        let now = OffsetDateTime::now_utc();
        for i in 0..100 {
            store.insert(&format!("old{i}"), Session::new(user("u"), AuthMethod::Password, now)).await.unwrap();
        }
        // The old sessions are in use (read often), as on a busy gateway.
        for _ in 0..5 {
            for i in 0..100 {
                assert!(store.get(&format!("old{i}"), now).await.unwrap().is_some());
            }
        }
        store.cache.run_pending_tasks();
        for i in 0..50 {
            let id = format!("new{i}");
            store.insert(&id, Session::new(user("n"), AuthMethod::Password, now)).await.unwrap();
            store.cache.run_pending_tasks();
            assert!(store.get(&id, now).await.unwrap().is_some(), "new login {i} was dropped at once");
        }
        assert!(store.count() <= 100, "{} sessions kept", store.count());
    }

    #[tokio::test]
    async fn memory_store_is_bounded() {
        let lifetimes = Lifetimes { idle: Duration::from_secs(1800), absolute: Duration::from_secs(3600) };
        let store = MemoryStore::new(10, lifetimes);
        let now = OffsetDateTime::now_utc();
        for i in 0..100 {
            store.insert(&format!("s{i}"), Session::new(user("u"), AuthMethod::Password, now)).await.unwrap();
        }
        store.cache.run_pending_tasks();
        assert!(store.count() <= 10, "{} sessions kept", store.count());
    }
}
