//! [`MemoryKv`]: the reference [`KvStore`] in the process (a locked map, expired entries dropped when met and
//! swept now and then). Used by the typed stores' tests; `kind = "memory"` uses the bounded moka stores instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{KvStore, Result, StoreError, StoreFuture};

/// An in-process [`KvStore`].
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the in-memory store's lock was poisoned by a panic")]
struct Poisoned;

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (Vec<u8>, Instant)>, Instant) -> T) -> Result<T> {
        let mut map = self.map.lock().map_err(|_| StoreError::unavailable("memory", Poisoned))?;
        let now = Instant::now();
        if map.len() > 1024 && map.len().is_power_of_two() {
            map.retain(|_, (_, exp)| *exp > now);
        }
        Ok(f(&mut map, now))
    }
}

fn live<'m>(map: &'m HashMap<String, (Vec<u8>, Instant)>, key: &str, now: Instant) -> Option<&'m Vec<u8>> {
    map.get(key).filter(|(_, exp)| *exp > now).map(|(v, _)| v)
}

impl KvStore for MemoryKv {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(|m, now| {
                m.insert(key.to_string(), (value, now + ttl));
            })
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move { self.with(|m, now| live(m, key, now).cloned()) })
    }

    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move { self.with(|m, now| m.remove(key).filter(|(_, exp)| *exp > now).map(|(v, _)| v)) })
    }

    fn put_if_absent<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> StoreFuture<'a, Result<bool>> {
        Box::pin(async move {
            self.with(|m, now| {
                if live(m, key, now).is_some() {
                    return false;
                }
                m.insert(key.to_string(), (value, now + ttl));
                true
            })
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<bool>> {
        Box::pin(async move {
            self.with(|m, now| {
                if live(m, key, now).map(Vec::as_slice) != expected {
                    return false;
                }
                m.insert(key.to_string(), (new, now + ttl));
                true
            })
        })
    }

    fn remove<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(|m, _| {
                m.remove(key);
            })
        })
    }

    fn increment<'a>(&'a self, key: &'a str, by: u64, ttl: Duration) -> StoreFuture<'a, Result<u64>> {
        Box::pin(async move {
            self.with(|m, now| {
                let (n, exp) = match m.get(key).filter(|(_, exp)| *exp > now) {
                    Some((v, exp)) => (super::embedded::counter(v), *exp),
                    None => (0, now + ttl),
                };
                let n = n.saturating_add(by);
                m.insert(key.to_string(), (n.to_string().into_bytes(), exp));
                n
            })
        })
    }

    fn check(&self) -> StoreFuture<'_, Result<()>> {
        Box::pin(async move { self.with(|_, _| ()) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_kv_passes_conformance() {
        super::super::conformance(Arc::new(super::MemoryKv::new()), "conf:").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_typed_stores_pass_their_conformance_on_memory_kv() {
        super::super::typed_conformance(Arc::new(super::MemoryKv::new())).await;
    }
}
