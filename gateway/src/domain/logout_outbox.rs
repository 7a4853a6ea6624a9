//! [`LogoutOutbox`]: the OIDC back-channel logouts still to deliver, kept in the state store until their client
//! acknowledged them (or they are given up), so a replica that dies between a logout and its deliveries leaves
//! them to the other replicas, or to itself after a restart, instead of taking them along.
//!
//! The entries live in [`SHARDS`] records (`o:bcl:N`, one list each, so a sweep is one `get_many`); every change
//! to a record is a compare-and-set, so replicas adding, leasing and finishing entries at once lose none of them.
//! An entry is **leased** by moving its `not_before` past the attempt it is being given ([`LogoutOutbox::lease_due`]):
//! no other replica takes it meanwhile, and if its holder dies the entry is simply due again when that lease ends.
//! Nothing here makes HTTP requests or signs tokens: the caller (`state::backchannel`) does, with the clock's `now`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::store::{KvStore, Result, StoreError, decode, encode};

/// Records the entries are spread over (by their id).
pub const SHARDS: usize = 8;
/// Entries one record holds at most; past it the oldest are dropped (a client down for long, a flood of logouts).
pub const MAX_PER_SHARD: usize = 1024;
/// How long an entry is kept at most, delivered or not: a logout this old is no longer worth telling.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// Compare-and-set attempts per change before giving up (only under heavy contention on one record).
const CAS_ATTEMPTS: usize = 32;

/// One back-channel logout to deliver: which client, which user and session. The logout token itself is signed
/// at each attempt (a fresh `iat` and `jti`), so it is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogout {
    /// Random; names the entry.
    pub id: String,
    /// The OIDC client to tell.
    pub client_id: String,
    /// The user's `sub`.
    pub sub: String,
    /// The session's `sid` at that client, if its ID tokens carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix milliseconds before which nobody makes an attempt: the next retry's time, or the end of the lease of
    /// the attempt under way.
    pub not_before: i64,
    /// When the session ended (unix milliseconds).
    pub since: i64,
}

impl PendingLogout {
    /// A new entry for `client_id` about `sub`/`sid`, created at `now_ms` and leased to its creator until
    /// `now_ms + lease` (the creator makes the first attempt at once).
    pub fn new(client_id: &str, sub: &str, sid: Option<&str>, now_ms: i64, lease: Duration) -> Self {
        Self {
            id: fedgate_types::random::token(),
            client_id: client_id.to_string(),
            sub: sub.to_string(),
            sid: sid.map(str::to_string),
            attempts: 0,
            not_before: now_ms.saturating_add(millis(lease)),
            since: now_ms,
        }
    }

    fn expired(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.since) > millis(MAX_AGE)
    }
}

/// What [`LogoutOutbox::lease_due`] found.
#[derive(Debug, Default)]
pub struct Due {
    /// Entries now leased to the caller, for one attempt each.
    pub leased: Vec<PendingLogout>,
    /// Entries older than [`MAX_AGE`] that were removed undelivered (for the log).
    pub expired: Vec<PendingLogout>,
}

/// The back-channel logouts still to deliver, in a [`KvStore`] (see the module's documentation).
pub struct LogoutOutbox {
    kv: Arc<dyn KvStore>,
}

impl std::fmt::Debug for LogoutOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutOutbox").field("kind", &self.kv.kind()).finish()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn shard_key(shard: usize) -> String {
    format!("o:bcl:{shard}")
}

fn shard_of(id: &str) -> usize {
    id.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % SHARDS
}

#[derive(Debug, thiserror::Error)]
#[error("the back-channel logout outbox record {0} kept changing under {CAS_ATTEMPTS} attempts")]
struct Contended(String);

impl LogoutOutbox {
    /// The outbox in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        Self { kv }
    }

    /// Applies `change` to shard `shard`'s entries, as one compare-and-set (retried while another process changes
    /// the record meanwhile); entries past [`MAX_AGE`] are dropped first and returned with `change`'s result.
    async fn update<T>(
        &self,
        shard: usize,
        now_ms: i64,
        mut change: impl FnMut(&mut Vec<PendingLogout>) -> T,
    ) -> Result<(T, Vec<PendingLogout>)> {
        let key = shard_key(shard);
        for _ in 0..CAS_ATTEMPTS {
            let raw = self.kv.get(&key).await?;
            let mut entries: Vec<PendingLogout> = match &raw {
                Some(bytes) => decode(bytes, "back-channel logout outbox")?,
                None => Vec::new(),
            };
            let (expired, mut kept): (Vec<_>, Vec<_>) = entries.drain(..).partition(|e| e.expired(now_ms));
            let out = change(&mut kept);
            if kept.len() > MAX_PER_SHARD {
                kept.sort_by_key(|e| e.since);
                let over = kept.len() - MAX_PER_SHARD;
                kept.drain(..over);
            }
            let new = encode(&kept, "back-channel logout outbox")?;
            let unchanged = expired.is_empty() && raw.as_deref().map_or(kept.is_empty(), |r| r == new.as_slice());
            if unchanged {
                return Ok((out, expired));
            }
            if self.kv.compare_and_set(&key, raw.as_deref(), new, MAX_AGE).await? {
                return Ok((out, expired));
            }
        }
        Err(StoreError::unavailable(self.kv.kind(), Contended(key)))
    }

    /// Records `entries` (from [`PendingLogout::new`]): once this returns they are in the store, and are
    /// delivered by some replica even if this one dies now.
    pub async fn add(&self, entries: &[PendingLogout], now_ms: i64) -> Result<()> {
        for shard in 0..SHARDS {
            let mine: Vec<&PendingLogout> = entries.iter().filter(|e| shard_of(&e.id) == shard).collect();
            if mine.is_empty() {
                continue;
            }
            self.update(shard, now_ms, |list| list.extend(mine.iter().map(|e| (*e).clone()))).await?;
        }
        Ok(())
    }

    /// Leases every entry due at `now_ms` (at most `max`) to the caller until `now_ms + lease`, and drops those
    /// past [`MAX_AGE`]. One read of every record; a compare-and-set only on the records holding a due entry.
    pub async fn lease_due(&self, now_ms: i64, lease: Duration, max: usize) -> Result<Due> {
        let keys: Vec<String> = (0..SHARDS).map(shard_key).collect();
        let records = self.kv.get_many(&keys).await?;
        let mut due = Due::default();
        for (shard, raw) in records.into_iter().enumerate() {
            let Some(raw) = raw else { continue };
            let entries: Vec<PendingLogout> = decode(&raw, "back-channel logout outbox")?;
            if !entries.iter().any(|e| e.not_before <= now_ms || e.expired(now_ms)) || due.leased.len() >= max {
                continue;
            }
            let room = max - due.leased.len();
            let (leased, expired) = self
                .update(shard, now_ms, |list| {
                    let mut leased = Vec::new();
                    for e in list.iter_mut().filter(|e| e.not_before <= now_ms).take(room) {
                        e.not_before = now_ms.saturating_add(millis(lease));
                        leased.push(e.clone());
                    }
                    leased
                })
                .await?;
            due.leased.extend(leased);
            due.expired.extend(expired);
        }
        Ok(due)
    }

    /// Removes entry `id` (delivered, refused by its client, or given up).
    pub async fn finish(&self, id: &str, now_ms: i64) -> Result<()> {
        self.update(shard_of(id), now_ms, |list| list.retain(|e| e.id != id)).await.map(drop)
    }

    /// Records a failed attempt at entry `id`: `attempts` made so far, the next one not before `at_ms`.
    pub async fn retry_at(&self, id: &str, attempts: u32, at_ms: i64, now_ms: i64) -> Result<()> {
        self.update(shard_of(id), now_ms, |list| {
            for e in list.iter_mut().filter(|e| e.id == id) {
                e.attempts = attempts;
                e.not_before = at_ms;
            }
        })
        .await
        .map(drop)
    }

    /// Whether any of `ids` is still waiting (leased or not).
    pub async fn holds_any(&self, ids: &[String]) -> Result<bool> {
        let keys: Vec<String> = (0..SHARDS).map(shard_key).collect();
        for raw in self.kv.get_many(&keys).await?.into_iter().flatten() {
            let entries: Vec<PendingLogout> = decode(&raw, "back-channel logout outbox")?;
            if entries.iter().any(|e| ids.contains(&e.id)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::domain::store::memory::MemoryKv;

    const LEASE: Duration = Duration::from_secs(7);

    fn outbox() -> LogoutOutbox {
        LogoutOutbox::new(Arc::new(MemoryKv::new()))
    }

    #[tokio::test]
    async fn an_entry_is_leased_once_until_its_lease_ends_then_due_again() {
        let a = outbox();
        let t0 = 1_000_000;
        let e = PendingLogout::new("rp1", "alice", Some("sid-1"), t0, LEASE);
        a.add(std::slice::from_ref(&e), t0).await.unwrap();
        // Leased to its creator: nobody else takes it while the first attempt may be under way.
        assert!(a.lease_due(t0 + 1000, LEASE, 10).await.unwrap().leased.is_empty());
        // The creator died: due again when the lease ends, and then leased to exactly one sweeper.
        let due = a.lease_due(t0 + 7001, LEASE, 10).await.unwrap();
        assert_eq!(due.leased.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [e.id.as_str()]);
        assert!(a.lease_due(t0 + 7002, LEASE, 10).await.unwrap().leased.is_empty());
        a.retry_at(&e.id, 2, t0 + 9000, t0 + 7100).await.unwrap();
        assert!(a.lease_due(t0 + 8999, LEASE, 10).await.unwrap().leased.is_empty());
        let again = a.lease_due(t0 + 9000, LEASE, 10).await.unwrap().leased;
        assert_eq!(again[0].attempts, 2);
        a.finish(&e.id, t0 + 9100).await.unwrap();
        assert!(!a.holds_any(std::slice::from_ref(&e.id)).await.unwrap());
        assert!(a.lease_due(t0 + 60_000, LEASE, 10).await.unwrap().leased.is_empty());
    }

    #[tokio::test]
    async fn concurrent_adds_and_leases_lose_no_entry_and_lease_each_once() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let t0 = 5_000_000;
        let mut adds = Vec::new();
        for i in 0..64 {
            let o = LogoutOutbox::new(kv.clone());
            adds.push(tokio::spawn(async move {
                let e = PendingLogout::new(&format!("rp{i}"), "bob", None, t0, Duration::ZERO);
                o.add(std::slice::from_ref(&e), t0).await.unwrap();
                e.id
            }));
        }
        let mut ids = Vec::new();
        for a in adds {
            ids.push(a.await.unwrap());
        }
        let mut sweeps = Vec::new();
        for _ in 0..4 {
            let o = LogoutOutbox::new(kv.clone());
            sweeps.push(tokio::spawn(async move { o.lease_due(t0 + 1, LEASE, 1000).await.unwrap().leased }));
        }
        let mut leased = Vec::new();
        for s in sweeps {
            leased.extend(s.await.unwrap().into_iter().map(|e| e.id));
        }
        leased.sort();
        ids.sort();
        assert_eq!(leased, ids, "every entry leased exactly once");
    }

    #[tokio::test]
    async fn old_entries_are_dropped_and_a_record_is_bounded() {
        let o = outbox();
        let t0 = 10_000_000;
        let old = PendingLogout::new("rp1", "carol", None, t0, Duration::ZERO);
        o.add(std::slice::from_ref(&old), t0).await.unwrap();
        let later = t0 + millis(MAX_AGE) + 1;
        let due = o.lease_due(later, LEASE, 10).await.unwrap();
        assert!(due.leased.is_empty());
        assert_eq!(due.expired.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [old.id.as_str()]);
        let many: Vec<PendingLogout> = (0..(SHARDS * MAX_PER_SHARD + 500))
            .map(|i| PendingLogout::new("rp", "d", None, later + i as i64, LEASE))
            .collect();
        o.add(&many, later).await.unwrap();
        let newest = &many[many.len() - 1].id;
        assert!(o.holds_any(std::slice::from_ref(newest)).await.unwrap(), "the newest is kept");
        let all = o.lease_due(later + 60_000, LEASE, usize::MAX).await.unwrap().leased;
        assert!(all.len() <= SHARDS * MAX_PER_SHARD, "{}", all.len());
    }
}
