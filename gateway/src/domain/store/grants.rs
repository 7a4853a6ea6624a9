//! [`KvGrantStore`]: the OIDC provider's grant state (authorization codes, refresh tokens, token families and
//! revocations) in the state store. The provider builds the keys from hashes of the codes and tokens; they are
//! stored under `g:` + that key. A code is redeemed with the store's atomic take, so of two replicas presented
//! the same code at once exactly one redeems it.

use std::sync::Arc;
use std::time::Duration;

use federation::oidc::store::{Grant, GrantStore, StoreFuture};

use super::{KvStore, StoreError, decode, encode};

/// Grants in a [`KvStore`].
pub struct KvGrantStore {
    kv: Arc<dyn KvStore>,
}

impl std::fmt::Debug for KvGrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvGrantStore").field("kind", &self.kv.kind()).finish()
    }
}

impl KvGrantStore {
    /// Grants kept in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        Self { kv }
    }
}

fn key(k: &str) -> String {
    format!("g:{k}")
}

fn fed(e: StoreError) -> federation::oidc::StoreError {
    federation::oidc::StoreError::unavailable(e)
}

fn read(raw: Option<Vec<u8>>) -> Result<Option<Grant>, federation::oidc::StoreError> {
    raw.map(|r| decode(&r, "OIDC grant")).transpose().map_err(fed)
}

impl GrantStore for KvGrantStore {
    fn put<'a>(
        &'a self,
        k: &'a str,
        value: Grant,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<(), federation::oidc::StoreError>> {
        Box::pin(async move {
            let raw = encode(&value, "OIDC grant").map_err(fed)?;
            self.kv.put(&key(k), raw, ttl).await.map_err(fed)
        })
    }

    fn get<'a>(&'a self, k: &'a str) -> StoreFuture<'a, Result<Option<Grant>, federation::oidc::StoreError>> {
        Box::pin(async move { read(self.kv.get(&key(k)).await.map_err(fed)?) })
    }

    fn take<'a>(&'a self, k: &'a str) -> StoreFuture<'a, Result<Option<Grant>, federation::oidc::StoreError>> {
        Box::pin(async move { read(self.kv.take(&key(k)).await.map_err(fed)?) })
    }

    fn remove<'a>(&'a self, k: &'a str) -> StoreFuture<'a, Result<(), federation::oidc::StoreError>> {
        Box::pin(async move { self.kv.remove(&key(k)).await.map_err(fed) })
    }

    fn put_many<'a>(
        &'a self,
        entries: Vec<(String, Grant, Duration)>,
    ) -> StoreFuture<'a, Result<(), federation::oidc::StoreError>> {
        Box::pin(async move {
            let mut raw = Vec::with_capacity(entries.len());
            for (k, value, ttl) in entries {
                raw.push((key(&k), encode(&value, "OIDC grant").map_err(fed)?, ttl));
            }
            self.kv.put_many(raw).await.map_err(fed)
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        k: &'a str,
        expected: Option<&'a Grant>,
        new: Grant,
        ttl: Duration,
    ) -> StoreFuture<'a, Result<bool, federation::oidc::StoreError>> {
        Box::pin(async move {
            let key = key(k);
            // Compare decoded records (their encoding need not be canonical), then swap against the exact bytes
            // read: if anyone wrote in between, the store's compare-and-set fails and so does this one.
            let raw = self.kv.get(&key).await.map_err(fed)?;
            let current = match &raw {
                Some(r) => Some(decode::<Grant>(r, "OIDC grant").map_err(fed)?),
                None => None,
            };
            if current.as_ref() != expected {
                return Ok(false);
            }
            let new = encode(&new, "OIDC grant").map_err(fed)?;
            self.kv.compare_and_set(&key, raw.as_deref(), new, ttl).await.map_err(fed)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kv_grant_store_passes_the_grant_store_conformance() {
        // The federation suite drives futures on plain threads; the in-process backend needs no runtime. The
        // backends' own atomicity is what `store::conformance` checks on each of them.
        let store = Arc::new(KvGrantStore::new(Arc::new(super::super::memory::MemoryKv::new())));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(federation::oidc::store::conformance(store));
    }
}
