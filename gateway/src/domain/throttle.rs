//! Brute-force throttling of the login form: failures counted per typed username (folded, see [`fold_username`]),
//! per account found in the directory, and per client IP in a sliding window; past the limit, attempts are refused
//! until the lockout expires (it always does). The same counter, with its own limit, throttles failed OAuth client
//! authentication per `client_id` and IP.
//!
//! With a state store the counters live there, so N replicas do not give an attacker N times the attempts:
//! failures are counted per window with the store's atomic increment (the current and the previous window,
//! weighted, approximate the sliding window), and a lockout is a store entry that expires.
//!
//! If the counters cannot be read or a failure cannot be counted (the store is down, full or read-only), the
//! attempt is refused as [`Refused::Unavailable`] and answered as a right password would be answered at that
//! moment (503: the session cannot be stored either). Letting it through instead made an outage an oracle: every
//! wrong password got "invalid", uncounted, and the right one stood out as the 503.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;
use time::OffsetDateTime;

use crate::config::LoginConfig;
use crate::domain::store::{KvStore, StoreError};

#[derive(Debug, Default)]
struct Failures {
    times: VecDeque<i64>,
    locked_until: Option<i64>,
}

/// What [`LoginThrottle::gate`] found for one login: the entries a success clears (store keys, or the in-process
/// throttle's keys).
#[derive(Debug, Default)]
pub struct Gate {
    keys: Vec<String>,
}

/// Why the throttle refuses an attempt before its password or secret is checked.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Too many failures: locked out for `retry_after` more seconds.
    #[error("locked out for {retry_after} more seconds")]
    Locked {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// The failure counters cannot be read from the state store.
    #[error("the failure counters cannot be read")]
    Unavailable(#[source] StoreError),
}

/// Counts failed logins. Cheap to clone.
#[derive(Clone)]
pub struct LoginThrottle {
    cfg: LoginConfig,
    entries: Cache<String, Arc<Mutex<Failures>>>,
    store: Option<Arc<dyn KvStore>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").field("tracked", &self.entries.entry_count()).finish()
    }
}

impl LoginThrottle {
    /// A throttle with the `[login]` settings.
    pub fn new(cfg: LoginConfig) -> Self {
        Self::holding(cfg, 1_000_000)
    }

    /// A throttle tracking at most `max_entries` usernames, accounts and addresses in the process.
    fn holding(cfg: LoginConfig, max_entries: u64) -> Self {
        let keep = cfg.window.max(cfg.lockout) + Duration::from_secs(60);
        // Least recently used first: a new failure is always counted. TinyLFU admission (moka's default) could
        // refuse a new username's counter once a flood of made-up names had filled the cache, and that username's
        // failures then went uncounted.
        let entries = Cache::builder()
            .max_capacity(max_entries)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(keep)
            .build();
        Self { cfg, entries, store: None }
    }

    /// A throttle whose counters live in `kv`, shared by every replica using it.
    pub fn with_store(cfg: LoginConfig, kv: Arc<dyn KvStore>) -> Self {
        Self { store: Some(kv), ..Self::new(cfg) }
    }

    /// Refused if this typed username or this client IP is locked out at `now` (or the counters cannot be read).
    pub async fn check(&self, username: &str, ip: IpAddr, now: OffsetDateTime) -> Result<(), Refused> {
        self.check_keys(&[user_key(username), ip_key(ip)], now).await
    }

    /// Refused if the directory account (see `directory::LoginTarget::account`) is locked.
    pub async fn check_account(&self, account: &str, now: OffsetDateTime) -> Result<(), Refused> {
        self.check_keys(&[account_key(account)], now).await
    }

    async fn check_keys(&self, keys: &[String], now: OffsetDateTime) -> Result<(), Refused> {
        if !self.cfg.throttle {
            return Ok(());
        }
        let now = now.unix_timestamp();
        let wait = match &self.store {
            Some(kv) => {
                let until = locked_until(kv.as_ref(), keys).await.map_err(Refused::Unavailable)?;
                until.into_iter().filter(|until| *until > now).max()
            }
            None => keys
                .iter()
                .filter_map(|k| self.entries.get(k))
                .filter_map(|e| e.lock().ok().and_then(|f| f.locked_until))
                .filter(|until| *until > now)
                .max(),
        };
        match wait {
            Some(until) => Err(Refused::Locked { retry_after: seconds_until(until, now) }),
            None => Ok(()),
        }
    }

    /// Everything a password login asks of the throttle before the password is checked, in one store read (one
    /// Redis `MGET`): refused if the typed username, the client IP or the directory account found is locked (or
    /// the counters cannot be read); otherwise what [`clear`](Self::clear) removes if the password is right (the
    /// username's and the account's counters and lockouts that exist; usually none, then nothing is written).
    pub async fn gate(
        &self,
        username: &str,
        account: Option<&str>,
        ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<Gate, Refused> {
        if !self.cfg.throttle {
            return Ok(Gate::default());
        }
        let cleared = [Some(user_key(username)), account.map(account_key)];
        let Some(kv) = &self.store else {
            let mut keys: Vec<String> = cleared.iter().flatten().cloned().collect();
            keys.push(ip_key(ip));
            self.check_keys(&keys, now).await?;
            return Ok(Gate { keys: cleared.into_iter().flatten().collect() });
        };
        let window = i64::try_from(self.cfg.window.as_secs()).unwrap_or(i64::MAX).max(1);
        let now = now.unix_timestamp();
        let bucket = now.div_euclid(window);
        // Lockouts first (the IP's is only read: one good account does not excuse guessing at others), then the
        // counters a success clears.
        let mut all: Vec<String> = cleared.iter().flatten().map(|k| lock_key(k)).collect();
        all.push(lock_key(&ip_key(ip)));
        let locks = all.len();
        all.extend(cleared.iter().flatten().flat_map(|k| [count_key(k, bucket), count_key(k, bucket - 1)]));
        let values = kv.get_many(&all).await.map_err(Refused::Unavailable)?;
        let until = values.iter().take(locks).filter_map(|v| number(v.clone())).filter(|u| *u > now).max();
        if let Some(until) = until {
            return Err(Refused::Locked { retry_after: seconds_until(until, now) });
        }
        let ip_lock = lock_key(&ip_key(ip));
        let present = all.into_iter().zip(values).filter(|(k, v)| v.is_some() && *k != ip_lock).map(|(k, _)| k);
        Ok(Gate { keys: present.collect() })
    }

    /// After a successful login that passed [`gate`](Self::gate): clears what it found (no store round trip when
    /// it found nothing, the usual case). A failure counted since is kept, which errs on the side of the lockout.
    pub async fn clear(&self, gate: Gate) {
        if gate.keys.is_empty() {
            return;
        }
        let Some(kv) = &self.store else {
            gate.keys.iter().for_each(|k| self.entries.invalidate(k));
            return;
        };
        if let Err(e) = kv.remove_many(&gate.keys).await {
            tracing::warn!(error = %crate::domain::store::Chain(&e), "failure count not cleared");
        }
    }

    /// Records a failed attempt; locks the typed username, the account found (if any) or the IP once
    /// `max_failures` fall within the window. An error means the failure was not (fully) counted: the caller must
    /// not answer "wrong password" then (see the module docs).
    pub async fn record_failure(
        &self,
        username: &str,
        account: Option<&str>,
        ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let keys = [Some(user_key(username)), account.map(account_key), Some(ip_key(ip))];
        self.record_keys(keys.into_iter().flatten(), self.cfg.max_failures, now).await
    }

    /// Refused if OAuth client `client_id` (when known), or client authentication from `ip`, is locked out (or
    /// the counters cannot be read).
    pub async fn check_client(&self, client_id: Option<&str>, ip: IpAddr, now: OffsetDateTime) -> Result<(), Refused> {
        let keys = [client_id.map(client_key), Some(client_ip_key(ip))];
        self.check_keys(&keys.into_iter().flatten().collect::<Vec<_>>(), now).await
    }

    /// Records a failed client authentication; locks the client id (pass only registered ones, so made-up ids
    /// cannot fill the counter) or the IP at `client_max_failures`. An error means it was not (fully) counted.
    pub async fn record_client_failure(
        &self,
        client_id: Option<&str>,
        ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let keys = [client_id.map(client_key), Some(client_ip_key(ip))];
        self.record_keys(keys.into_iter().flatten(), self.cfg.client_max_failures, now).await
    }

    /// Counts a failure under each of `keys` (all of them are tried; the first error is returned).
    async fn record_keys(
        &self,
        keys: impl Iterator<Item = String>,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if !self.cfg.throttle {
            return Ok(());
        }
        let now = now.unix_timestamp();
        let window = i64::try_from(self.cfg.window.as_secs()).unwrap_or(i64::MAX).max(1);
        let lockout = i64::try_from(self.cfg.lockout.as_secs()).unwrap_or(i64::MAX);
        if let Some(kv) = &self.store {
            let mut first_error = None;
            for key in keys {
                if let Err(e) = record_in(kv.as_ref(), &key, limit, now, window, lockout).await {
                    first_error.get_or_insert(e);
                }
            }
            return first_error.map_or(Ok(()), Err);
        }
        for key in keys {
            let entry = self.entries.get_with(key, || Arc::new(Mutex::new(Failures::default())));
            if let Ok(mut f) = entry.lock() {
                if f.locked_until.is_some_and(|u| u <= now) {
                    // A lockout that ran out starts a fresh count: it never compounds forever.
                    *f = Failures::default();
                }
                f.times.push_back(now);
                while f.times.front().is_some_and(|t| now - *t >= window) {
                    f.times.pop_front();
                }
                if f.times.len() >= limit as usize {
                    f.locked_until = Some(now.saturating_add(lockout));
                    f.times.clear();
                }
            }
        }
        Ok(())
    }

    /// A successful login clears the typed username's and the account's count (the IP's count stays: one good
    /// account does not excuse guessing at others).
    pub async fn record_success(&self, username: &str, account: Option<&str>, now: OffsetDateTime) {
        if !self.cfg.throttle {
            // Nothing was counted (record_keys counts nothing either), so there is nothing to clear: no store
            // round trip. Counters left from before throttling was turned off expire on their own.
            return;
        }
        let keys = [Some(user_key(username)), account.map(account_key)];
        let Some(kv) = &self.store else {
            keys.iter().flatten().for_each(|k| self.entries.invalidate(k));
            return;
        };
        let window = i64::try_from(self.cfg.window.as_secs()).unwrap_or(i64::MAX).max(1);
        let bucket = now.unix_timestamp().div_euclid(window);
        // Read first (one round trip, no write): a login without earlier failures, the usual case, writes
        // nothing; only the counters that exist are removed (one more round trip). A failure counted between
        // the read and the removal is kept, which errs on the side of the lockout.
        let all: Vec<String> = keys
            .iter()
            .flatten()
            .flat_map(|key| [count_key(key, bucket), count_key(key, bucket - 1), lock_key(key)])
            .collect();
        let present = match kv.get_many(&all).await {
            Ok(values) => all.into_iter().zip(values).filter_map(|(k, v)| v.map(|_| k)).collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %crate::domain::store::Chain(&e), "failure count not cleared");
                return;
            }
        };
        if let Err(e) = kv.remove_many(&present).await {
            tracing::warn!(error = %crate::domain::store::Chain(&e), "failure count not cleared");
        }
    }
}

/// Whole seconds from `now` until `until` (at least 1).
fn seconds_until(until: i64, now: i64) -> u64 {
    u64::try_from(until - now).unwrap_or(1).max(1)
}

fn lock_key(key: &str) -> String {
    format!("t:lock:{key}")
}

fn count_key(key: &str, bucket: i64) -> String {
    format!("t:n:{key}:{bucket}")
}

fn number(raw: Option<Vec<u8>>) -> Option<i64> {
    raw.and_then(|b| std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()))
}

/// The lockout deadlines (unix seconds) recorded for `keys`.
async fn locked_until(kv: &dyn KvStore, keys: &[String]) -> Result<Vec<i64>, StoreError> {
    let locks: Vec<String> = keys.iter().map(|k| lock_key(k)).collect();
    Ok(kv.get_many(&locks).await?.into_iter().filter_map(number).collect())
}

/// Counts one failure for `key` at `now` and locks it once the failures of the sliding window (the current
/// window's count plus the previous one's, weighted by how much of it still overlaps) reach `limit`.
async fn record_in(
    kv: &dyn KvStore,
    key: &str,
    limit: u32,
    now: i64,
    window: i64,
    lockout: i64,
) -> Result<(), StoreError> {
    let bucket = now.div_euclid(window);
    let keep = std::time::Duration::from_secs(u64::try_from(window.saturating_mul(2)).unwrap_or(u64::MAX));
    let lock = lock_key(key);
    // A lockout that ran out starts a fresh count: the counts it was based on are removed when it is set.
    if number(kv.get(&lock).await?).is_some_and(|until| until > now) {
        return Ok(());
    }
    let current = i64::try_from(kv.increment(&count_key(key, bucket), 1, keep).await?).unwrap_or(i64::MAX);
    let previous = number(kv.get(&count_key(key, bucket - 1)).await?).unwrap_or(0);
    let overlap = window - now.rem_euclid(window);
    // current + previous × overlap / window ≥ limit, in integers.
    if current.saturating_mul(window) + previous.saturating_mul(overlap) >= i64::from(limit).saturating_mul(window) {
        let until = now.saturating_add(lockout);
        let ttl = std::time::Duration::from_secs(u64::try_from(lockout).unwrap_or(u64::MAX) + 60);
        kv.put(&lock, until.to_string().into_bytes(), ttl).await?;
        for b in [bucket, bucket - 1] {
            kv.remove(&count_key(key, b)).await?;
        }
    }
    Ok(())
}

/// The form of a typed username that failures are counted under: NFKC, lower-cased, NFKC again, so that
/// spellings a directory's matching rules treat as one name share one count (`ｕｓｅｒ１２`, `uſer12`, `user¹²`
/// and `USER12` all fold to `user12`). Accounts the directory finds are also counted by entry, which covers the
/// rules this folding does not know.
pub fn fold_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let lower = username.trim().nfkc().collect::<String>().to_lowercase();
    lower.nfkc().collect()
}

fn user_key(username: &str) -> String {
    format!("u:{}", fold_username(username))
}

fn account_key(account: &str) -> String {
    format!("a:{account}")
}

fn client_key(client_id: &str) -> String {
    format!("c:{client_id}")
}

/// Apart from the login form's IP count: a client's failures do not lock people out of the form, nor back.
fn client_ip_key(ip: IpAddr) -> String {
    format!("cip:{}", client_network(ip))
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{}", client_network(ip))
}

/// What one client is, for counting failures by address: an IPv4 address (also written IPv4-mapped,
/// `::ffff:192.0.2.1`, as a dual-stack listener reports IPv4 peers), or the /64 network of an IPv6 address. An
/// IPv6 subscriber or cloud host is given a whole /64 (RFC 6177 and practice), so counted per address one
/// attacker would have 2^64 fresh counters and the lockout would never hold.
fn client_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The lockout's seconds, if the attempt was refused as locked.
    fn retry<T>(r: Result<T, Refused>) -> Option<u64> {
        match r {
            Err(Refused::Locked { retry_after }) => Some(retry_after),
            _ => None,
        }
    }

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_slash_64s() {
        let net = |s: &str| client_network(s.parse().unwrap());
        assert_eq!(net("192.0.2.1"), "192.0.2.1");
        assert_eq!(net("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(net("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_ne!(net("::ffff:192.0.2.1"), net("::ffff:192.0.2.2"));
    }

    /// The same throttle in memory and over a state store.
    fn throttles() -> Vec<LoginThrottle> {
        let kv: Arc<dyn KvStore> = Arc::new(crate::domain::store::memory::MemoryKv::new());
        vec![LoginThrottle::new(cfg()), LoginThrottle::with_store(cfg(), kv)]
    }

    fn cfg() -> LoginConfig {
        LoginConfig {
            throttle: true,
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
            client_max_failures: 4,
            password: true,
        }
    }

    /// With the process's counters full (a flood of made-up usernames, each failing more than once), a new
    /// username's failures are still counted and lock it.
    #[tokio::test]
    async fn a_flood_of_other_names_does_not_stop_a_username_from_being_counted() {
        let t = LoginThrottle::holding(cfg(), 100);
        let now = OffsetDateTime::now_utc();
        for n in 0..2 {
            for i in 0..100 {
                let ip: IpAddr = format!("10.0.{n}.{i}").parse().unwrap();
                t.record_failure(&format!("junk{i}"), None, ip, now).await.unwrap();
            }
        }
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("alice", ip, now).await.is_ok());
            t.record_failure("alice", None, ip, now).await.unwrap();
            t.entries.run_pending_tasks();
        }
        assert!(retry(t.check("alice", ip, now).await).is_some(), "alice's failures were not counted");
    }

    #[tokio::test]
    async fn locks_after_max_failures_and_expires() {
        for t in throttles() {
            let ip: IpAddr = "127.0.0.1".parse().unwrap();
            let now = OffsetDateTime::now_utc();
            for _ in 0..3 {
                assert!(t.check("alice", ip, now).await.is_ok());
                t.record_failure("alice", None, ip, now).await.unwrap();
            }
            assert_eq!(retry(t.check("alice", ip, now).await), Some(120));
            // Another IP is still locked for this username, and this IP for other usernames.
            assert!(t.check("alice", "127.0.0.2".parse().unwrap(), now).await.is_err());
            assert!(t.check("bob", ip, now).await.is_err());
            let later = now + Duration::from_secs(121);
            assert!(t.check("alice", ip, later).await.is_ok());
        }
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_count() {
        for t in throttles() {
            let ip: IpAddr = "127.0.0.1".parse().unwrap();
            let now = OffsetDateTime::now_utc();
            t.record_failure("bob", None, ip, now).await.unwrap();
            t.record_failure("bob", None, ip, now + Duration::from_secs(30)).await.unwrap();
            t.record_failure("bob", None, ip, now + Duration::from_secs(61)).await.unwrap();
            assert!(t.check("bob", ip, now + Duration::from_secs(61)).await.is_ok());
        }
    }

    #[tokio::test]
    async fn spellings_ldap_matches_as_one_name_share_one_count() {
        for typed in ["ｕｓｅｒ１２", "uſer12", "user¹²", " USER12 ", "Ｕſｅｒ¹2"] {
            assert_eq!(fold_username(typed), "user12", "{typed}");
        }
        for t in throttles() {
            let now = OffsetDateTime::now_utc();
            for (i, typed) in ["ｕｓｅｒ１２", "uſer12", "user¹²"].iter().enumerate() {
                let ip: IpAddr = format!("127.0.0.{}", i + 10).parse().unwrap();
                assert!(t.check(typed, ip, now).await.is_ok());
                t.record_failure(typed, None, ip, now).await.unwrap();
            }
            assert!(t.check("user12", "127.0.0.99".parse().unwrap(), now).await.is_err());
        }
    }

    #[tokio::test]
    async fn the_account_found_is_counted_whatever_was_typed() {
        for t in throttles() {
            let now = OffsetDateTime::now_utc();
            for (i, typed) in ["a", "b", "c"].iter().enumerate() {
                let ip: IpAddr = format!("127.0.0.{}", i + 10).parse().unwrap();
                t.record_failure(typed, Some("dn:uid=x"), ip, now).await.unwrap();
            }
            assert!(t.check("d", "127.0.0.99".parse().unwrap(), now).await.is_ok());
            assert_eq!(retry(t.check_account("dn:uid=x", now).await), Some(120));
            t.record_success("d", Some("dn:uid=x"), now).await;
            assert!(t.check_account("dn:uid=x", now).await.is_ok());
        }
    }

    /// A store that counts the round trips made to it.
    struct Counting(crate::domain::store::memory::MemoryKv, std::sync::atomic::AtomicUsize);

    impl Counting {
        fn tick(&self) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl KvStore for Counting {
        fn kind(&self) -> &'static str {
            "memory"
        }
        fn put<'a>(
            &'a self,
            k: &'a str,
            v: Vec<u8>,
            ttl: Duration,
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<()>> {
            self.tick();
            self.0.put(k, v, ttl)
        }
        fn get<'a>(
            &'a self,
            k: &'a str,
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<Option<Vec<u8>>>> {
            self.tick();
            self.0.get(k)
        }
        fn take<'a>(
            &'a self,
            k: &'a str,
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<Option<Vec<u8>>>> {
            self.tick();
            self.0.take(k)
        }
        fn put_if_absent<'a>(
            &'a self,
            k: &'a str,
            v: Vec<u8>,
            ttl: Duration,
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<bool>> {
            self.tick();
            self.0.put_if_absent(k, v, ttl)
        }
        fn compare_and_set<'a>(
            &'a self,
            k: &'a str,
            expected: Option<&'a [u8]>,
            new: Vec<u8>,
            ttl: Duration,
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<bool>> {
            self.tick();
            self.0.compare_and_set(k, expected, new, ttl)
        }
        fn remove<'a>(&'a self, k: &'a str) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<()>> {
            self.tick();
            self.0.remove(k)
        }
        fn increment<'a>(
            &'a self,
            k: &'a str,
            by: u64,
            ttl: Duration,
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<u64>> {
            self.tick();
            self.0.increment(k, by, ttl)
        }
        fn check(&self) -> crate::domain::store::StoreFuture<'_, crate::domain::store::Result<()>> {
            self.0.check()
        }
        fn get_many<'a>(
            &'a self,
            keys: &'a [String],
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<Vec<Option<Vec<u8>>>>> {
            self.tick();
            self.0.get_many(keys)
        }
        fn remove_many<'a>(
            &'a self,
            keys: &'a [String],
        ) -> crate::domain::store::StoreFuture<'a, crate::domain::store::Result<()>> {
            self.tick();
            self.0.remove_many(keys)
        }
    }

    #[tokio::test]
    async fn a_login_asks_the_store_once_and_the_gate_locks_name_ip_and_account() {
        let counting = Arc::new(Counting(crate::domain::store::memory::MemoryKv::new(), Default::default()));
        let kv: Arc<dyn KvStore> = counting.clone();
        let now = OffsetDateTime::now_utc();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let rounds = || counting.1.load(std::sync::atomic::Ordering::Relaxed);
        for t in [LoginThrottle::new(cfg()), LoginThrottle::with_store(cfg(), kv)] {
            // A login with no failures behind it: one read (the in-process throttle: none), nothing written.
            let before = rounds();
            let gate = t.gate("alice", Some("dn:uid=alice"), ip, now).await.unwrap();
            t.clear(gate).await;
            assert!(rounds() - before <= 1, "{} store round trips for a clean login", rounds() - before);
            // Two failures, then a success: the name's and the account's counts are cleared, not the IP's.
            for _ in 0..2 {
                t.record_failure("alice", Some("dn:uid=alice"), ip, now).await.unwrap();
            }
            let before = rounds();
            let gate = t.gate("alice", Some("dn:uid=alice"), ip, now).await.unwrap();
            t.clear(gate).await;
            assert!(rounds() - before <= 2, "one read, one removal: {}", rounds() - before);
            t.record_failure("alice", Some("dn:uid=alice"), ip, now).await.unwrap();
            t.record_failure("alice", Some("dn:uid=alice"), ip, now).await.unwrap();
            assert!(t.gate("alice", None, "127.0.0.9".parse().unwrap(), now).await.is_ok(), "count restarted");
            // The IP's count was kept: its third failure locks it, for any name.
            assert_eq!(retry(t.gate("bob", None, ip, now).await), Some(120), "the IP's count survives a success");
            // A lockout of the account is seen whatever name was typed, from any IP.
            let other: IpAddr = "127.0.0.20".parse().unwrap();
            for (i, typed) in ["x", "y", "z"].iter().enumerate() {
                let ip: IpAddr = format!("127.0.1.{i}").parse().unwrap();
                t.record_failure(typed, Some("dn:uid=carol"), ip, now).await.unwrap();
            }
            assert!(t.gate("w", Some("dn:uid=carol"), other, now).await.is_err(), "the account is locked");
            assert!(t.gate("w", None, other, now).await.is_ok(), "another account is not");
        }
    }

    #[tokio::test]
    async fn client_failures_lock_the_client_and_not_the_login_form() {
        for t in throttles() {
            let ip: IpAddr = "127.0.0.1".parse().unwrap();
            let now = OffsetDateTime::now_utc();
            for _ in 0..4 {
                assert!(t.check_client(Some("app"), ip, now).await.is_ok());
                t.record_client_failure(Some("app"), ip, now).await.unwrap();
            }
            assert_eq!(retry(t.check_client(Some("app"), "127.0.0.2".parse().unwrap(), now).await), Some(120));
            assert!(
                t.check_client(Some("other"), ip, now).await.is_err(),
                "the IP is locked for client authentication"
            );
            assert!(t.check_client(Some("other"), "127.0.0.2".parse().unwrap(), now).await.is_ok());
            assert!(t.check("alice", ip, now).await.is_ok(), "but not for the login form");
            assert!(t.check_client(Some("app"), ip, now + Duration::from_secs(121)).await.is_ok());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod shared_tests {
    use super::*;

    #[tokio::test]
    async fn replicas_sharing_a_store_share_one_count() {
        let kv: Arc<dyn KvStore> = Arc::new(crate::domain::store::memory::MemoryKv::new());
        let cfg = LoginConfig { max_failures: 4, ..LoginConfig::default() };
        let replicas = [LoginThrottle::with_store(cfg.clone(), kv.clone()), LoginThrottle::with_store(cfg, kv)];
        let now = OffsetDateTime::now_utc();
        for i in 0..4 {
            let ip: IpAddr = format!("127.0.0.{}", i + 1).parse().unwrap();
            assert!(replicas[i % 2].check("mallory", ip, now).await.is_ok(), "attempt {i}");
            replicas[i % 2].record_failure("mallory", None, ip, now).await.unwrap();
        }
        for r in &replicas {
            assert!(r.check("mallory", "127.0.0.99".parse().unwrap(), now).await.is_err(), "locked on every replica");
        }
    }
}
