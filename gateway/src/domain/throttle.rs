//! Brute-force throttling of the login form: failures counted per typed username (folded, see [`fold_username`]),
//! per account found in the directory, and per client IP in a sliding window; past the limit, attempts are refused
//! until the lockout expires (it always does). The same counter, with its own limit, throttles failed OAuth client
//! authentication per `client_id` and IP.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;
use time::OffsetDateTime;

use crate::config::LoginConfig;

#[derive(Debug, Default)]
struct Failures {
    times: VecDeque<i64>,
    locked_until: Option<i64>,
}

/// Counts failed logins. Cheap to clone.
#[derive(Clone)]
pub struct LoginThrottle {
    cfg: LoginConfig,
    entries: Cache<String, Arc<Mutex<Failures>>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").field("tracked", &self.entries.entry_count()).finish()
    }
}

impl LoginThrottle {
    /// A throttle with the `[login]` settings.
    pub fn new(cfg: LoginConfig) -> Self {
        let keep = cfg.window.max(cfg.lockout) + Duration::from_secs(60);
        let entries = Cache::builder().max_capacity(1_000_000).time_to_idle(keep).build();
        Self { cfg, entries }
    }

    /// `Err(retry_after_seconds)` if this typed username or this client IP is locked out at `now`.
    pub fn check(&self, username: &str, ip: IpAddr, now: OffsetDateTime) -> Result<(), u64> {
        self.check_keys(&[user_key(username), ip_key(ip)], now)
    }

    /// `Err(retry_after_seconds)` if the directory account (see `directory::LoginTarget::account`) is locked.
    pub fn check_account(&self, account: &str, now: OffsetDateTime) -> Result<(), u64> {
        self.check_keys(&[account_key(account)], now)
    }

    fn check_keys(&self, keys: &[String], now: OffsetDateTime) -> Result<(), u64> {
        if !self.cfg.throttle {
            return Ok(());
        }
        let now = now.unix_timestamp();
        let wait = keys
            .iter()
            .filter_map(|k| self.entries.get(k))
            .filter_map(|e| e.lock().ok().and_then(|f| f.locked_until))
            .filter(|until| *until > now)
            .map(|until| u64::try_from(until - now).unwrap_or(1))
            .max();
        match wait {
            Some(secs) => Err(secs.max(1)),
            None => Ok(()),
        }
    }

    /// Records a failed attempt; locks the typed username, the account found (if any) or the IP once
    /// `max_failures` fall within the window.
    pub fn record_failure(&self, username: &str, account: Option<&str>, ip: IpAddr, now: OffsetDateTime) {
        let keys = [Some(user_key(username)), account.map(account_key), Some(ip_key(ip))];
        self.record_keys(keys.into_iter().flatten(), self.cfg.max_failures, now);
    }

    /// `Err(retry_after_seconds)` if OAuth client `client_id` (when known), or client authentication from `ip`,
    /// is locked out.
    pub fn check_client(&self, client_id: Option<&str>, ip: IpAddr, now: OffsetDateTime) -> Result<(), u64> {
        let keys = [client_id.map(client_key), Some(client_ip_key(ip))];
        self.check_keys(&keys.into_iter().flatten().collect::<Vec<_>>(), now)
    }

    /// Records a failed client authentication; locks the client id (pass only registered ones, so made-up ids
    /// cannot fill the counter) or the IP at `client_max_failures`.
    pub fn record_client_failure(&self, client_id: Option<&str>, ip: IpAddr, now: OffsetDateTime) {
        let keys = [client_id.map(client_key), Some(client_ip_key(ip))];
        self.record_keys(keys.into_iter().flatten(), self.cfg.client_max_failures, now);
    }

    fn record_keys(&self, keys: impl Iterator<Item = String>, limit: u32, now: OffsetDateTime) {
        if !self.cfg.throttle {
            return;
        }
        let now = now.unix_timestamp();
        let window = i64::try_from(self.cfg.window.as_secs()).unwrap_or(i64::MAX);
        let lockout = i64::try_from(self.cfg.lockout.as_secs()).unwrap_or(i64::MAX);
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
    }

    /// A successful login clears the typed username's and the account's count (the IP's count stays: one good
    /// account does not excuse guessing at others).
    pub fn record_success(&self, username: &str, account: Option<&str>) {
        self.entries.invalidate(&user_key(username));
        if let Some(a) = account {
            self.entries.invalidate(&account_key(a));
        }
    }
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
    format!("cip:{ip}")
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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

    #[test]
    fn locks_after_max_failures_and_expires() {
        let t = LoginThrottle::new(cfg());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = OffsetDateTime::now_utc();
        for _ in 0..3 {
            assert!(t.check("alice", ip, now).is_ok());
            t.record_failure("alice", None, ip, now);
        }
        assert_eq!(t.check("alice", ip, now), Err(120));
        // Another IP is still locked for this username, and this IP for other usernames.
        assert!(t.check("alice", "127.0.0.2".parse().unwrap(), now).is_err());
        assert!(t.check("bob", ip, now).is_err());
        let later = now + Duration::from_secs(121);
        assert!(t.check("alice", ip, later).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let t = LoginThrottle::new(cfg());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = OffsetDateTime::now_utc();
        t.record_failure("bob", None, ip, now);
        t.record_failure("bob", None, ip, now + Duration::from_secs(30));
        t.record_failure("bob", None, ip, now + Duration::from_secs(61));
        assert!(t.check("bob", ip, now + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn spellings_ldap_matches_as_one_name_share_one_count() {
        for typed in ["ｕｓｅｒ１２", "uſer12", "user¹²", " USER12 ", "Ｕſｅｒ¹2"] {
            assert_eq!(fold_username(typed), "user12", "{typed}");
        }
        let t = LoginThrottle::new(cfg());
        let now = OffsetDateTime::now_utc();
        for (i, typed) in ["ｕｓｅｒ１２", "uſer12", "user¹²"].iter().enumerate() {
            let ip: IpAddr = format!("127.0.0.{}", i + 10).parse().unwrap();
            assert!(t.check(typed, ip, now).is_ok());
            t.record_failure(typed, None, ip, now);
        }
        assert!(t.check("user12", "127.0.0.99".parse().unwrap(), now).is_err());
    }

    #[test]
    fn the_account_found_is_counted_whatever_was_typed() {
        let t = LoginThrottle::new(cfg());
        let now = OffsetDateTime::now_utc();
        for (i, typed) in ["a", "b", "c"].iter().enumerate() {
            let ip: IpAddr = format!("127.0.0.{}", i + 10).parse().unwrap();
            t.record_failure(typed, Some("dn:uid=x"), ip, now);
        }
        assert!(t.check("d", "127.0.0.99".parse().unwrap(), now).is_ok());
        assert_eq!(t.check_account("dn:uid=x", now), Err(120));
        t.record_success("d", Some("dn:uid=x"));
        assert!(t.check_account("dn:uid=x", now).is_ok());
    }

    #[test]
    fn client_failures_lock_the_client_and_not_the_login_form() {
        let t = LoginThrottle::new(cfg());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = OffsetDateTime::now_utc();
        for _ in 0..4 {
            assert!(t.check_client(Some("app"), ip, now).is_ok());
            t.record_client_failure(Some("app"), ip, now);
        }
        assert_eq!(t.check_client(Some("app"), "127.0.0.2".parse().unwrap(), now), Err(120));
        assert!(t.check_client(Some("other"), ip, now).is_err(), "the IP is locked for client authentication");
        assert!(t.check_client(Some("other"), "127.0.0.2".parse().unwrap(), now).is_ok());
        assert!(t.check("alice", ip, now).is_ok(), "but not for the login form");
        assert!(t.check_client(Some("app"), ip, now + Duration::from_secs(121)).is_ok());
    }
}
