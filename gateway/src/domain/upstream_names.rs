//! [`UpstreamNames`]: which upstream account holds each username that providers with `link = "none"` sign in.
//!
//! Apps behind the proxy (`X-Forwarded-User`), SAML service providers (the NameID: for Alibaba Cloud RAM, the RAM
//! user) and relying parties reading `preferred_username` know a user by the username alone. Two providers (or one
//! provider's two accounts, after a rename or a reused name) can send the same `preferred_username`; without a
//! record of who had it first, the second account would be taken for the first everywhere downstream. So the first
//! upstream account (provider and subject: the user's `unique_id`) to sign in with a name holds it, as Keycloak's
//! first broker login creates a user that later broker logins of another identity cannot take over; another
//! account with that name (compared as the throttle folds names: NFKC, any case) is refused until an administrator
//! releases the name (`fedgate upstream release NAME`).
//!
//! Kept in the state store under a hash of the folded name, for [`HOLD`] after the holder's last sign-in.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::store::{KvStore, Result, decode, encode, hashed_key};

/// How long a name stays held after its holder's last sign-in.
pub const HOLD: Duration = Duration::from_secs(400 * 24 * 3600);

/// Who holds a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    /// The holder's `unique_id` (`provider:subject`).
    unique_id: String,
    /// When it first signed in with the name (unix seconds).
    since: i64,
}

/// The outcome of [`UpstreamNames::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The account holds the name (now, or since an earlier sign-in).
    Held,
    /// Another account holds it: its `unique_id`.
    TakenBy(String),
}

/// The names upstream accounts hold, in a [`KvStore`].
pub struct UpstreamNames {
    kv: Arc<dyn KvStore>,
}

impl std::fmt::Debug for UpstreamNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamNames").field("kind", &self.kv.kind()).finish()
    }
}

/// The store key of a folded name.
fn key(folded: &str) -> String {
    hashed_key("n:", folded)
}

impl UpstreamNames {
    /// The names held in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        Self { kv }
    }

    /// Claims `folded` (a username as [`crate::domain::throttle::fold_username`] folds it) for the account
    /// `unique_id` at `now` (unix seconds): held if nobody holds it or this account already does (its hold is
    /// renewed for [`HOLD`]); else who holds it. Atomic across replicas: of two accounts claiming a free name at
    /// once, one gets it.
    pub async fn claim(&self, folded: &str, unique_id: &str, now: i64) -> Result<Claim> {
        let key = key(folded);
        let mine = encode(&Holder { unique_id: unique_id.to_string(), since: now }, "upstream name")?;
        for _ in 0..4 {
            if self.kv.put_if_absent(&key, mine.clone(), HOLD).await? {
                return Ok(Claim::Held);
            }
            // Gone between the two calls (released, expired): claim again.
            let Some(raw) = self.kv.get(&key).await? else { continue };
            let holder: Holder = decode(&raw, "upstream name")?;
            if holder.unique_id != unique_id {
                return Ok(Claim::TakenBy(holder.unique_id));
            }
            // Renew the hold (the same record, a new time to live); a change meanwhile is someone else's business.
            self.kv.compare_and_set(&key, Some(&raw), raw.clone(), HOLD).await?;
            return Ok(Claim::Held);
        }
        Ok(Claim::Held)
    }

    /// Releases `folded`, so the next account to sign in with it holds it; the `unique_id` that held it, if any.
    pub async fn release(&self, folded: &str) -> Result<Option<String>> {
        match self.kv.take(&key(folded)).await? {
            Some(raw) => Ok(Some(decode::<Holder>(&raw, "upstream name")?.unique_id)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::domain::store::memory::MemoryKv;

    #[tokio::test]
    async fn the_first_account_holds_a_name_until_it_is_released() {
        let names = UpstreamNames::new(Arc::new(MemoryKv::new()));
        assert_eq!(names.claim("carol", "corp:c-1", 10).await.unwrap(), Claim::Held);
        assert_eq!(names.claim("carol", "corp:c-1", 20).await.unwrap(), Claim::Held, "the holder again");
        assert_eq!(names.claim("carol", "social:x", 30).await.unwrap(), Claim::TakenBy("corp:c-1".into()));
        assert_eq!(names.claim("carol", "corp:c-2", 30).await.unwrap(), Claim::TakenBy("corp:c-1".into()));
        assert_eq!(names.claim("dave", "social:x", 30).await.unwrap(), Claim::Held, "another name is free");
        assert_eq!(names.release("carol").await.unwrap().as_deref(), Some("corp:c-1"));
        assert_eq!(names.release("carol").await.unwrap(), None);
        assert_eq!(names.claim("carol", "social:x", 40).await.unwrap(), Claim::Held);
    }

    #[tokio::test]
    async fn of_accounts_claiming_a_free_name_at_once_exactly_one_holds_it() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let mut tasks = Vec::new();
        for i in 0..16 {
            let names = UpstreamNames::new(kv.clone());
            tasks.push(tokio::spawn(async move { names.claim("erin", &format!("p{i}:erin"), 1).await.unwrap() }));
        }
        let mut held = 0;
        for t in tasks {
            held += usize::from(t.await.unwrap() == Claim::Held);
        }
        assert_eq!(held, 1);
    }
}
