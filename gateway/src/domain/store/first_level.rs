//! [`Recent`]: the first level in front of a store other replicas write too — what this replica read or wrote
//! within the last `ttl`, in two moka generations.
//!
//! Every entry must leave after `ttl` (that bound is how a logout on another replica reaches this one), so the
//! obvious cache is moka with `time_to_live`. But on a busy replica nearly every entry is a fresh login's session
//! that is read once or never, and moka then expires each one separately (its write-order deque, one removal from
//! the hash table per entry): about 2 µs of the gateway's CPU per login on the bench machine (BENCHMARKS.md).
//! Here the age is checked on every read instead, and the removal is done in bulk: entries go into the current
//! generation; every `ttl` the current one becomes the previous one and the previous one is dropped whole (on a
//! blocking thread when a runtime is there). A read looks in the current generation, then the previous one, and
//! takes an entry only while it is younger than `ttl`. At most two generations' entries are held: those written
//! in the last `2 × ttl`, and never more than `max_entries` in all (a generation that fills up is rotated early).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

struct Entry<V> {
    at: Instant,
    value: V,
}

struct Generations<V> {
    current: Cache<String, Arc<Entry<V>>>,
    previous: Cache<String, Arc<Entry<V>>>,
}

/// What this replica read or wrote in the last `ttl`, bounded in count (see the module documentation).
pub struct Recent<V> {
    ttl: Duration,
    per_generation: u64,
    started: Instant,
    generations: RwLock<Arc<Generations<V>>>,
    /// When the current generation is to be rotated, in milliseconds since `started`.
    rotate_at: AtomicU64,
    /// Entries written into the current generation.
    written: AtomicU64,
}

impl<V: Clone + Send + Sync + 'static> Recent<V> {
    /// Entries kept for `ttl`, at most `max_entries` of them (at least two).
    pub fn new(ttl: Duration, max_entries: u64) -> Self {
        let per_generation = (max_entries / 2).max(1);
        let generation =
            || Cache::builder().max_capacity(per_generation).eviction_policy(EvictionPolicy::lru()).build();
        Self {
            ttl,
            per_generation,
            started: Instant::now(),
            generations: RwLock::new(Arc::new(Generations { current: generation(), previous: generation() })),
            rotate_at: AtomicU64::new(millis(ttl)),
            written: AtomicU64::new(0),
        }
    }

    /// The value stored under `key` less than `ttl` ago.
    pub fn get(&self, key: &str) -> Option<V> {
        let now = Instant::now();
        self.rotate_if_due(now);
        let generations = self.generations();
        let fresh = |e: Arc<Entry<V>>| (now.saturating_duration_since(e.at) < self.ttl).then(|| e.value.clone());
        generations.current.get(key).and_then(fresh).or_else(|| generations.previous.get(key).and_then(fresh))
    }

    /// Keeps `value` under `key` for `ttl`.
    pub fn insert(&self, key: String, value: V) {
        let now = Instant::now();
        self.rotate_if_due(now);
        let generations = self.generations();
        // An older copy in the previous generation would be found only after this one, which it outlives by at
        // most a generation, and is never taken once older than `ttl`; no need to remove it.
        generations.current.insert(key, Arc::new(Entry { at: now, value }));
        self.written.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets `key` at once.
    pub fn remove(&self, key: &str) {
        let generations = self.generations();
        generations.current.invalidate(key);
        generations.previous.invalidate(key);
    }

    /// Forgets everything.
    #[cfg(test)]
    pub fn clear(&self) {
        let generations = self.generations();
        generations.current.invalidate_all();
        generations.previous.invalidate_all();
    }

    /// Entries held (some may be older than `ttl` and waiting for their generation to be dropped).
    pub fn held(&self) -> u64 {
        let generations = self.generations();
        generations.current.entry_count() + generations.previous.entry_count()
    }

    fn generations(&self) -> Arc<Generations<V>> {
        Arc::clone(&self.generations.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn rotate_if_due(&self, now: Instant) {
        let elapsed = millis(now.saturating_duration_since(self.started));
        let due = self.rotate_at.load(Ordering::Relaxed);
        if elapsed < due && self.written.load(Ordering::Relaxed) < self.per_generation {
            return;
        }
        // One caller rotates: the one that moves the deadline.
        let next = elapsed.saturating_add(millis(self.ttl));
        if self.rotate_at.compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return;
        }
        self.written.store(0, Ordering::Relaxed);
        let fresh = Cache::builder().max_capacity(self.per_generation).eviction_policy(EvictionPolicy::lru()).build();
        let dropped = {
            let mut slot = self.generations.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let current = slot.current.clone();
            std::mem::replace(&mut *slot, Arc::new(Generations { current: fresh, previous: current }))
        };
        // The old previous generation goes as a whole; its entries are freed off the request path.
        let free = move || drop(dropped);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(free)),
            Err(_) => free(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_answered_until_its_ttl_and_never_after() {
        let recent = Recent::new(Duration::from_millis(200), 100);
        recent.insert("a".into(), 1);
        assert_eq!(recent.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(120));
        recent.insert("b".into(), 2);
        assert_eq!(recent.get("a"), Some(1), "120 ms old");
        std::thread::sleep(Duration::from_millis(120));
        // `a` is 240 ms old: gone (it may still be held in the previous generation, never answered).
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.get("b"), Some(2), "120 ms old, in the previous generation after a rotation");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(recent.get("b"), None);
    }

    #[test]
    fn a_removal_is_seen_at_once_in_either_generation() {
        let recent = Recent::new(Duration::from_secs(60), 100);
        recent.insert("a".into(), 1);
        recent.remove("a");
        assert_eq!(recent.get("a"), None);
        recent.insert("a".into(), 2);
        assert_eq!(recent.get("a"), Some(2));
    }

    #[test]
    fn a_full_generation_is_rotated_so_the_count_stays_bounded() {
        let recent = Recent::new(Duration::from_secs(60), 100);
        for i in 0..1000 {
            recent.insert(i.to_string(), i);
        }
        let generations = recent.generations();
        generations.current.run_pending_tasks();
        generations.previous.run_pending_tasks();
        assert!(recent.held() <= 100, "held {}", recent.held());
        assert_eq!(recent.get("999"), Some(999), "the newest are kept");
    }
}
