//! Listing every user in scope (for provisioning): one paged search of the users, one paged search of the groups,
//! and group membership resolved in memory, so 10 000 users cost two searches instead of 10 001.
//!
//! A listing is all or nothing: a size limit, a timeout or a dropped connection part-way is an error, never a short
//! list, because a short list would look like users who left.

use std::collections::{BTreeSet, HashMap, HashSet};

use ldap3::SearchEntry;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};

use super::LdapDirectory;
use crate::client::Conn;
use crate::config::GroupStrategy;
use crate::error::{Error, Result, Unavailable};
use crate::{MappedUser, mapping};

/// Entries per page of a paged search (RFC 2696); below OpenLDAP's and AD's default size limits.
const PAGE_SIZE: i32 = 500;

/// Which users a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// An extra LDAP filter, ANDed with `user_filter` (already checked with [`crate::filter::check`]).
    pub extra_filter: Option<String>,
    /// Only members of these groups (names or DNs, nested membership included) when not empty.
    pub groups: Vec<String>,
    /// Only entries changed at or after this Unix time (`modifyTimestamp`, AD `whenChanged`).
    pub changed_since: Option<i64>,
    /// Read only what identifies a user (username, unique id, group membership); the other fields stay empty.
    pub keys_only: bool,
}

/// The users in scope, and the entries that could not be mapped (with the reason), which callers must report.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Mapped users, in directory order.
    pub users: Vec<MappedUser>,
    /// `(dn, reason)` for entries left out because they cannot be mapped (no username or unique id).
    pub skipped: Vec<(String, String)>,
}

/// Every group under `groups_dn`, indexed by member value and by DN (lower-cased).
struct GroupIndex {
    /// (dn, name) per group.
    groups: Vec<(String, String)>,
    /// Lower-cased DN → index.
    by_dn: HashMap<String, usize>,
    /// Lower-cased member value → indexes of the groups that list it.
    by_member: HashMap<String, Vec<usize>>,
}

impl GroupIndex {
    /// Parents of a member value (a user DN, a `memberUid` or a group DN).
    fn parents(&self, member: &str) -> &[usize] {
        self.by_member.get(&member.to_lowercase()).map_or(&[], Vec::as_slice)
    }
}

impl LdapDirectory {
    /// Every user the query selects, mapped with groups and roles. Fails as a whole if any part of the read fails.
    pub async fn list_users(&self, query: &ListQuery) -> Result<Listing> {
        with_service!(self, |conn| self.list_on(conn, query).await)
    }

    /// The user whose entry is at `dn`, if it is still in scope of `query` (used to read a user that joined a
    /// group without its entry changing).
    pub async fn read_user(&self, dn: &str, query: &ListQuery) -> Result<Option<MappedUser>> {
        let listing = with_service!(self, |conn| self.list_in(conn, dn, ldap3::Scope::Base, query).await)?;
        Ok(listing.users.into_iter().next())
    }

    async fn list_on(&self, conn: &mut Conn, query: &ListQuery) -> Result<Listing> {
        let base = self.cfg.users_dn.clone();
        self.list_in(conn, &base, self.mapping.scope.into(), query).await
    }

    async fn list_in(&self, conn: &mut Conn, base: &str, scope: ldap3::Scope, query: &ListQuery) -> Result<Listing> {
        let m = &self.mapping;
        let mut filter = format!("(&{}", m.user_filter);
        if let Some(extra) = &query.extra_filter {
            filter.push_str(extra);
        }
        if let Some(since) = query.changed_since {
            let (attribute, stamp) = if m.active_directory {
                ("whenChanged", format!("{}.0Z", generalized_time(since)))
            } else {
                ("modifyTimestamp", format!("{}Z", generalized_time(since)))
            };
            filter.push_str(&format!("({attribute}>={stamp})"));
        }
        filter.push(')');
        let attrs: Vec<&str> = if query.keys_only {
            vec![m.username.as_str(), m.unique_id.as_str(), "memberOf"]
        } else {
            self.user_attrs()
        };
        let entries = self.paged(conn, base, scope, &filter, &attrs).await?;
        let index = self.group_index(conn).await?;
        let wanted: Vec<String> = query.groups.iter().map(|g| g.to_lowercase()).collect();
        let mut listing = Listing::default();
        for entry in entries {
            let username = match mapping::username(&entry, m) {
                Ok(u) => u,
                Err(e) => {
                    listing.skipped.push((entry.dn.clone(), e.to_string()));
                    continue;
                }
            };
            let Some(unique_id) = mapping::unique_id(&entry, &m.unique_id) else {
                let reason = format!(
                    "the entry has no {} (unique_id_attribute); it has: {}",
                    m.unique_id,
                    mapping::attribute_names(&entry).join(", ")
                );
                listing.skipped.push((entry.dn.clone(), reason));
                continue;
            };
            let (groups, group_dns) = self.groups_from_index(&index, &entry, &username);
            if !wanted.is_empty()
                && !groups.iter().chain(&group_dns).any(|g| wanted.iter().any(|w| w.eq_ignore_ascii_case(g)))
            {
                continue;
            }
            listing.users.push(self.assemble(&entry, &username, unique_id, groups, group_dns)?);
        }
        Ok(listing)
    }

    /// One paged search, all of it or an error.
    async fn paged(
        &self,
        conn: &mut Conn,
        base: &str,
        scope: ldap3::Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(PAGE_SIZE))];
        let url = conn.url().to_string();
        let failed = |source| {
            Error::from(Unavailable::Operation { operation: "search", url: url.clone(), source: Box::new(source) })
        };
        let mut stream = conn
            .with_timeout(self.connector.op_timeout)
            .streaming_search_with(adapters, base, scope, filter, attrs.to_vec())
            .await
            .map_err(failed)?;
        let mut entries = Vec::new();
        while let Some(entry) = stream.next().await.map_err(failed)? {
            entries.push(SearchEntry::construct(entry));
        }
        let res = stream.finish().await;
        match res.rc {
            0 => Ok(entries),
            // A base-scope read of an entry that is gone, or a base DN that does not exist.
            32 if scope == ldap3::Scope::Base && !entries.is_empty() => Ok(entries),
            32 if scope == ldap3::Scope::Base => Ok(Vec::new()),
            32 => Err(Error::Refused {
                operation: "search",
                rc: 32,
                text: format!("{base} does not exist (check users_dn / groups_dn)"),
            }),
            4 => Err(Error::Refused {
                operation: "search",
                rc: 4,
                text: format!(
                    "size limit exceeded after {} entries under {base}: the directory returned only part of the \
                     list; let the service account read everything (OpenLDAP: limits dn.exact=\"{}\" \
                     size=unlimited)",
                    entries.len(),
                    self.cfg.bind_dn
                ),
            }),
            rc => Err(Error::Refused { operation: "search", rc, text: res.text }),
        }
    }

    /// Every group, for membership resolution in memory.
    async fn group_index(&self, conn: &mut Conn) -> Result<GroupIndex> {
        let m = &self.mapping;
        let entries = self
            .paged(conn, &m.groups_dn, ldap3::Scope::Subtree, &m.group_filter, &[&m.group_name, &m.group_member])
            .await?;
        let mut index = GroupIndex { groups: Vec::new(), by_dn: HashMap::new(), by_member: HashMap::new() };
        for (i, g) in entries.iter().enumerate() {
            let name = mapping::first(g, &m.group_name)
                .map(str::to_string)
                .or_else(|| crate::dn::first_value(&g.dn))
                .unwrap_or_default();
            index.groups.push((g.dn.clone(), name));
            index.by_dn.insert(g.dn.to_lowercase(), i);
            for member in mapping::values(g, &m.group_member).into_iter().flatten() {
                index.by_member.entry(member.to_lowercase()).or_default().push(i);
            }
        }
        Ok(index)
    }

    /// Group names and DNs of one user from the index, with the same rules as a login (nested when configured).
    fn groups_from_index(&self, index: &GroupIndex, entry: &SearchEntry, username: &str) -> (Vec<String>, Vec<String>) {
        let m = &self.mapping;
        let mut dns: BTreeSet<String> = BTreeSet::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut seen: HashSet<usize> = HashSet::new();
        let mut frontier: Vec<usize> = Vec::new();
        match m.group_strategy {
            GroupStrategy::MemberOf => {
                for dn in mapping::values(entry, "memberOf").into_iter().flatten() {
                    match index.by_dn.get(&dn.to_lowercase()) {
                        Some(&i) => frontier.push(i),
                        None => {
                            // A group outside groups_dn: known by DN only, named by its first RDN (as at login).
                            dns.insert(dn.clone());
                            if let Some(v) = crate::dn::first_value(dn) {
                                names.insert(v);
                            }
                        }
                    }
                }
            }
            GroupStrategy::Search => {
                let member =
                    if m.group_member.eq_ignore_ascii_case("memberUid") { username } else { entry.dn.as_str() };
                frontier.extend_from_slice(index.parents(member));
            }
        }
        let mut depth = 0;
        while !frontier.is_empty() && depth <= super::MAX_GROUP_DEPTH && seen.len() < super::MAX_GROUPS {
            let mut next = Vec::new();
            for i in frontier {
                if !seen.insert(i) {
                    continue;
                }
                let (dn, name) = &index.groups[i];
                dns.insert(dn.clone());
                names.insert(name.clone());
                if m.nested_groups {
                    next.extend_from_slice(index.parents(dn));
                }
            }
            frontier = next;
            depth += 1;
        }
        names.remove("");
        (names.into_iter().collect(), dns.into_iter().collect())
    }
}

/// `YYYYMMDDHHMMSS` (UTC) for a Unix time, as LDAP generalized time wants it.
fn generalized_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::generalized_time;

    #[test]
    fn generalized_time_is_utc_calendar_time() {
        assert_eq!(generalized_time(0), "19700101000000");
        assert_eq!(generalized_time(951_782_400), "20000229000000");
        assert_eq!(generalized_time(1_796_083_199), "20261130235959");
    }
}
