//! IDs of SAML messages already taken from SPs, so a captured message is refused when it comes again (SAML
//! profiles §4.1.4.5's one-time use, applied to LogoutRequests). Each ID is kept as long as its message could be
//! taken at all ([`federation::saml::freshness::REPLAY_WINDOW`]): in the state store when there is one, so every
//! replica refuses a replay (key `r:` + a hash of issuer and ID), else in this process's memory.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::store::{KvStore, StoreError, hashed_key};

/// How long an ID is remembered.
fn ttl() -> Duration {
    Duration::from_secs(federation::saml::freshness::REPLAY_WINDOW.whole_seconds().unsigned_abs())
}

/// The IDs seen, per issuer.
pub struct SeenMessages {
    cache: moka::sync::Cache<String, ()>,
    store: Option<Arc<dyn KvStore>>,
}

impl std::fmt::Debug for SeenMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenMessages").field("store", &self.store.as_ref().map(|s| s.kind())).finish()
    }
}

impl SeenMessages {
    /// IDs kept in `store` when given, else in memory (at most `max_entries`).
    pub fn new(store: Option<Arc<dyn KvStore>>, max_entries: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                // Every new ID is recorded (least recently used first): TinyLFU admission could refuse a new one
                // once the cache was full, and a replay of it would then pass.
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_live(ttl())
                .build(),
            store,
        }
    }

    /// Records `id` from `issuer`; false when it was already recorded (a replay). Atomic across replicas.
    pub async fn first_use(&self, issuer: &str, id: &str) -> Result<bool, StoreError> {
        let key = hashed_key("r:", &format!("{issuer}\n{id}"));
        match &self.store {
            Some(kv) => kv.put_if_absent(&key, vec![1], ttl()).await,
            None => Ok(self.cache.entry(key).or_insert(()).is_fresh()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_id_is_taken_once_per_issuer() {
        for seen in [
            SeenMessages::new(None, 100),
            SeenMessages::new(Some(Arc::new(crate::domain::store::memory::MemoryKv::new())), 100),
        ] {
            assert!(seen.first_use("sp-a", "_1").await.unwrap());
            assert!(!seen.first_use("sp-a", "_1").await.unwrap());
            assert!(seen.first_use("sp-b", "_1").await.unwrap());
        }
    }

    /// A full cache still records every new ID (the least recently used go): a replay of a new one is caught.
    #[tokio::test]
    async fn a_full_cache_still_catches_the_replay_of_a_new_id() {
        let seen = SeenMessages::new(None, 100);
        for round in 0..5 {
            for i in 0..100 {
                assert_eq!(seen.first_use("sp", &format!("_old{i}")).await.unwrap(), round == 0);
            }
        }
        for i in 0..20 {
            let id = format!("_new{i}");
            assert!(seen.first_use("sp", &id).await.unwrap());
            seen.cache.run_pending_tasks();
            assert!(!seen.first_use("sp", &id).await.unwrap(), "the replay of new ID {i} passed");
        }
    }
}
