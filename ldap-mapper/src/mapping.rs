//! One directory entry → one [`MappedUser`]: attributes by the configured names (case-insensitively, as LDAP
//! does), binary ids (AD `objectGUID`) in their usual text form, and the checks that keep a broken mapping from
//! ever producing a user with an empty name.

use std::collections::{BTreeMap, HashMap};

use ldap3::SearchEntry;

use crate::config::Mapping;
use crate::error::Error;

/// The first value of `name` in `entry` (attribute names compare case-insensitively).
pub fn first<'a>(entry: &'a SearchEntry, name: &str) -> Option<&'a str> {
    values(entry, name).and_then(|v| v.first()).map(String::as_str).filter(|v| !v.is_empty())
}

/// All values of `name` in `entry`.
pub fn values<'a>(entry: &'a SearchEntry, name: &str) -> Option<&'a Vec<String>> {
    lookup(&entry.attrs, name)
}

fn lookup<'a, V>(map: &'a HashMap<String, V>, name: &str) -> Option<&'a V> {
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The attribute names an entry has, sorted, for diagnostics.
pub fn attribute_names(entry: &SearchEntry) -> Vec<String> {
    let mut names: Vec<String> = entry.attrs.keys().chain(entry.bin_attrs.keys()).cloned().collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup();
    names
}

/// The entry's stable id: a text attribute (`entryUUID`), or a binary GUID (`objectGUID`) in the registry format
/// `{xxxxxxxx-xxxx-…}` without braces.
pub fn unique_id(entry: &SearchEntry, attribute: &str) -> Option<String> {
    // AD's GUID is always binary, even when its 16 bytes happen to be valid UTF-8 (then ldap3 hands them over as
    // text).
    let binary = attribute.eq_ignore_ascii_case("objectGUID");
    if let Some(v) = first(entry, attribute) {
        return Some(if binary && v.len() == 16 { guid(v.as_bytes()) } else { v.to_string() });
    }
    let bin = lookup(&entry.bin_attrs, attribute)?.first()?;
    Some(if bin.len() == 16 { guid(bin) } else { bin.iter().map(|b| format!("{b:02x}")).collect() })
}

/// Formats a 16-byte Microsoft GUID (first three fields little-endian).
fn guid(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// The username, or the "null username" error that names the entry, the attribute and what the entry has.
pub fn username(entry: &SearchEntry, m: &Mapping) -> Result<String, Error> {
    first(entry, &m.username).map(str::to_string).ok_or_else(|| Error::Misconfigured {
        dn: entry.dn.clone(),
        attribute: m.username.clone(),
        key: "username_attribute",
        available: attribute_names(entry).join(", "),
    })
}

/// Extra claims: claim name → values of the mapped attribute (claims whose attribute is absent are left out).
pub fn claims(entry: &SearchEntry, claims: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    claims.iter().filter_map(|(claim, attr)| values(entry, attr).map(|v| (claim.clone(), v.clone()))).collect()
}

/// AD `userAccountControl` ACCOUNTDISABLE (bit 2) and `accountExpires` in the past: the reason, if refused.
pub fn ad_refusal(entry: &SearchEntry, now_unix: i64) -> Option<String> {
    if let Some(uac) = first(entry, "userAccountControl").and_then(|v| v.parse::<i64>().ok())
        && uac & 2 != 0
    {
        return Some(format!("userAccountControl {uac} has ACCOUNTDISABLE (0x2) set"));
    }
    let expires = first(entry, "accountExpires").and_then(|v| v.parse::<i64>().ok())?;
    if expires == 0 || expires == i64::MAX {
        return None; // never expires
    }
    // Windows FILETIME: 100 ns ticks since 1601-01-01.
    let unix = expires / 10_000_000 - 11_644_473_600;
    (unix < now_unix).then(|| format!("accountExpires passed ({unix} < now {now_unix})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn entry(attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: "uid=x,ou=people,dc=example,dc=org".into(),
            attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn a_missing_username_attribute_is_a_clear_error() {
        let cfg = crate::config::LdapConfig { users_dn: "ou=people,dc=example,dc=org".into(), ..Default::default() };
        let e = entry(&[("cn", &["X"]), ("mail", &["x@example.org"]), ("sAMAccountName", &["x"])]);
        let err = username(&e, &cfg.mapping()).unwrap_err().to_string();
        assert_eq!(
            err,
            "entry uid=x,ou=people,dc=example,dc=org has no uid attribute (the configured username_attribute); it has: cn, mail, sAMAccountName"
        );
    }

    #[test]
    fn attribute_names_compare_case_insensitively() {
        let e = entry(&[("memberof", &["cn=a,dc=x"]), ("UID", &["alice"])]);
        assert_eq!(first(&e, "uid"), Some("alice"));
        assert_eq!(values(&e, "memberOf").unwrap().len(), 1);
    }

    #[test]
    fn ad_disabled_and_expired_accounts_are_refused() {
        assert!(ad_refusal(&entry(&[("userAccountControl", &["514"])]), 0).is_some());
        assert!(ad_refusal(&entry(&[("userAccountControl", &["512"])]), 0).is_none());
        // 2020-01-01 as FILETIME
        let past = ((1_577_836_800i64 + 11_644_473_600) * 10_000_000).to_string();
        assert!(ad_refusal(&entry(&[("accountExpires", &[past.as_str()])]), 1_700_000_000).is_some());
        assert!(ad_refusal(&entry(&[("accountExpires", &["0"])]), 1_700_000_000).is_none());
    }

    #[test]
    fn object_guid_is_formatted_like_windows_does() {
        let bytes = [0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        assert_eq!(guid(&bytes), "00112233-4455-6677-8899-aabbccddeeff");
    }
}
