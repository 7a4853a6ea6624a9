//! [`LdapDirectory`]: login (search with the service account, then bind as the entry), lookups for token refresh,
//! readiness checks and the `ldap probe` diagnosis, over pooled connections with failover.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use ldap3::SearchEntry;
use moka::future::Cache;

use crate::client::{Checkout, Conn, Connector, Pool, RC_INVALID_CREDENTIALS};
use crate::config::{GroupStrategy, LdapConfig, Mapping, Scope, Secret};
use crate::error::{Error, Result};
use crate::mapping;
use crate::{MappedUser, RoleMap};

/// Longest username sent to the directory; longer input is refused before any search.
const MAX_USERNAME: usize = 256;
/// Bound on nested-group expansion (depth and total groups).
const MAX_GROUP_DEPTH: usize = 8;
const MAX_GROUPS: usize = 500;
/// The in-chain matching rule (AD): transitive group membership in one search.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// Runs `$body` with `$conn` bound to a service connection; a connection that fails at the transport level is
/// dropped and the operation retried once on a fresh one (a pooled connection may have died while the directory
/// restarted). A macro rather than a closure-taking method, so the futures stay `Send` for the HTTP server.
macro_rules! with_service {
    ($dir:expr, |$conn:ident| $body:expr) => {{
        let mut retried = false;
        loop {
            let mut conn = $dir.service().await?;
            let result = {
                let $conn = &mut conn;
                $body
            };
            match result {
                Ok(v) => {
                    $dir.search_pool.put(conn);
                    break Ok(v);
                }
                Err(e) if e.is_unavailable() && !retried => {
                    tracing::debug!(error = %e.chain(), "ldap connection failed; retrying on a fresh one");
                    retried = true;
                    drop(conn);
                    $dir.search_pool.clear();
                }
                Err(e) => {
                    if !e.is_unavailable() {
                        $dir.search_pool.put(conn);
                    }
                    break Err(e);
                }
            }
        }
    }};
}

mod listing;

pub use listing::{ListQuery, Listing};

/// The LDAP / AD directory.
pub struct LdapDirectory {
    cfg: LdapConfig,
    mapping: Mapping,
    bind_password: Secret,
    connector: Connector,
    search_pool: Pool,
    bind_pool: Pool,
    roles: RoleMap,
    subjects: crate::subject::Subjects,
    cache: Cache<String, MappedUser>,
    /// A DN under `users_dn` that names nobody, bound to for unknown users (see [`LdapDirectory::finish_login`]).
    absent_dn: String,
}

/// The entry a login names, found before the password is checked (see [`LdapDirectory::find_login`]).
pub struct LoginTarget {
    typed: String,
    found: Option<(SearchEntry, String)>,
}

impl LoginTarget {
    /// The DN of the one entry the typed name matched; `None` for an unknown (or ambiguous) name.
    pub fn dn(&self) -> Option<&str> {
        self.found.as_ref().map(|(e, _)| e.dn.as_str())
    }

    /// The entry's username (the mapped `username_attribute`), if an entry was found.
    pub fn username(&self) -> Option<&str> {
        self.found.as_ref().map(|(_, n)| n.as_str())
    }
}

/// Shows the typed name, DN and username only: the entry holds every attribute the service account may read, a
/// `userPassword` hash included.
impl fmt::Debug for LoginTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginTarget")
            .field("typed", &self.typed)
            .field("dn", &self.dn())
            .field("username", &self.username())
            .finish()
    }
}

impl fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapDirectory").field("urls", &self.cfg.urls).field("users_dn", &self.cfg.users_dn).finish()
    }
}

impl LdapDirectory {
    /// Builds the directory from a validated `[ldap]` section. Reads `bind_password_file` and `ca_file`; opens no
    /// connection (a directory that is down at start-up shows in `/readyz`, it does not stop the gateway).
    pub fn new(cfg: LdapConfig, roles: RoleMap) -> Result<Self> {
        let bind_password = match (&cfg.bind_password, &cfg.bind_password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(path)) => Secret::new(
                std::fs::read_to_string(path)
                    .map_err(|source| Error::BindPasswordFile { path: path.clone(), source })?
                    .trim_end_matches(['\r', '\n']),
            ),
            (None, None) => Secret::default(),
        };
        let connector = Connector::new(&cfg)?;
        let subjects = crate::subject::Subjects::new(cfg.subject_template.as_deref(), cfg.subject_map_file.as_deref())?;
        let cache =
            Cache::builder().max_capacity(100_000).time_to_live(cfg.cache_ttl.max(Duration::from_secs(1))).build();
        // Random per process, so nobody can create the entry in advance; `cn` exists in every schema.
        let absent_dn = {
            use std::hash::{BuildHasher as _, Hasher as _};
            let tag = std::collections::hash_map::RandomState::new().build_hasher().finish();
            format!("cn=fedgate-absent-{tag:016x},{}", cfg.users_dn)
        };
        Ok(Self {
            absent_dn,
            mapping: cfg.mapping(),
            search_pool: Pool::new("service", &cfg),
            bind_pool: Pool::new("bind", &cfg),
            cfg,
            bind_password,
            connector,
            roles,
            subjects,
            cache,
        })
    }

    /// The mapping in use (presets applied).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// A connection bound as the service account (pooled, or new).
    async fn service(&self) -> Result<Conn> {
        let Checkout { mut conn, fresh } = self.search_pool.get(&self.connector).await?;
        if fresh && !self.cfg.bind_dn.is_empty() {
            let res = conn
                .with_timeout(self.connector.op_timeout)
                .simple_bind(&self.cfg.bind_dn, self.bind_password.expose())
                .await
                .map_err(|e| conn.failed("service bind", e))?;
            if res.rc != 0 {
                return Err(Error::ServiceBind { bind_dn: self.cfg.bind_dn.clone(), rc: res.rc, text: res.text });
            }
        }
        Ok(conn)
    }

    async fn search(
        &self,
        conn: &mut Conn,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        self.search_scoped(conn, base, scope.into(), filter, attrs).await
    }

    async fn search_scoped(
        &self,
        conn: &mut Conn,
        base: &str,
        scope: ldap3::Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        let ldap3::SearchResult(entries, res) = conn
            .with_timeout(self.connector.op_timeout)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| conn.failed("search", e))?;
        match res.rc {
            0 | 4 => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
            32 => Err(Error::Refused {
                operation: "search",
                rc: 32,
                text: format!("{base} does not exist (check users_dn / groups_dn)"),
            }),
            rc => Err(Error::Refused { operation: "search", rc, text: res.text }),
        }
    }

    fn user_attrs(&self) -> Vec<&str> {
        let mut a = vec!["*", self.mapping.unique_id.as_str(), "memberOf"];
        if self.mapping.active_directory {
            a.extend(["userAccountControl", "accountExpires"]);
        }
        a
    }

    /// Finds the one entry for `username`. Zero or several matches are `InvalidCredentials` (logged precisely).
    /// With the AD preset, `alice@corp.test` is also searched in `userPrincipalName` and `CORP\\alice` (for the
    /// configured `netbios_domain`) as `alice`; another domain's down-level name finds nobody.
    async fn find_user(&self, conn: &mut Conn, username: &str) -> Result<Option<SearchEntry>> {
        let Some(filter) = self.user_search_filter(username) else {
            tracing::info!(
                username,
                reason = "down-level name of another domain (see ldap.netbios_domain)",
                "no such user"
            );
            return Ok(None);
        };
        let attrs = self.user_attrs();
        let mut entries = self.search(conn, &self.cfg.users_dn, self.mapping.scope, &filter, &attrs).await?;
        match entries.len() {
            0 => Ok(None),
            1 => Ok(entries.pop()),
            n => {
                let dns: Vec<_> = entries.iter().map(|e| e.dn.as_str()).collect();
                tracing::warn!(
                    username,
                    matches = n,
                    ?dns,
                    "several entries match this username; refusing the login (make user_filter or users_dn narrower)"
                );
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// The filter that finds the entry `username` names (values escaped); `None` for a name that cannot match.
    pub fn user_search_filter(&self, username: &str) -> Option<String> {
        use crate::ad::LogonName;
        use crate::filter::{and_equals, escape};
        let m = &self.mapping;
        if !m.active_directory {
            return Some(and_equals(&m.user_filter, &m.username, username));
        }
        Some(match LogonName::parse(username, m.netbios_domain.as_deref()) {
            LogonName::Account(name) | LogonName::DownLevel(name) => and_equals(&m.user_filter, &m.username, name),
            LogonName::Principal(upn) if m.username.eq_ignore_ascii_case("userPrincipalName") => {
                and_equals(&m.user_filter, &m.username, upn)
            }
            LogonName::Principal(upn) => {
                let v = escape(upn);
                format!("(&{}(|({}={v})(userPrincipalName={v})))", m.user_filter, m.username)
            }
            LogonName::ForeignDomain => return None,
        })
    }

    /// Checks `username` / `password` and returns the mapped user: [`LdapDirectory::find_login`] then
    /// [`LdapDirectory::finish_login`].
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<MappedUser> {
        let target = self.find_login(username).await?;
        self.finish_login(target, password).await
    }

    /// The first half of a login: finds the one entry `username` names, with the service account, before any
    /// password is checked. The caller can key brute-force counting on the entry found ([`LoginTarget::dn`]),
    /// whatever spelling of the name the directory's matching rules accepted.
    pub async fn find_login(&self, username: &str) -> Result<LoginTarget> {
        let typed = username.to_string();
        if username.is_empty() || username.len() > MAX_USERNAME || username.chars().any(char::is_control) {
            tracing::info!(
                reason = "username empty, too long or with control characters",
                len = username.len(),
                "ldap login refused"
            );
            return Ok(LoginTarget { typed, found: None });
        }
        let entry = match with_service!(self, |conn| self.find_user(conn, username).await) {
            Ok(entry) => entry,
            // Several matches: already logged; it goes on like an unknown user (same directory work).
            Err(Error::InvalidCredentials) => None,
            Err(e) => return Err(e),
        };
        let Some(entry) = entry else {
            return Ok(LoginTarget { typed, found: None });
        };
        // Checked before the bind: an entry we cannot map is an operator problem, whatever the password.
        let name = mapping::username(&entry, &self.mapping).inspect_err(|e| {
            tracing::error!(error = %e, "cannot map this entry to a user; fix ldap.username_attribute (see `fedgate ldap probe`)");
        })?;
        Ok(LoginTarget { typed, found: Some((entry, name)) })
    }

    /// The second half of a login: binds as the entry found with `password`. For a name that found no entry it
    /// binds with the password as a DN that does not exist, so an unknown user costs the directory the same
    /// search + bind as a wrong password and the two cannot be told apart by timing.
    pub async fn finish_login(&self, target: LoginTarget, password: &str) -> Result<MappedUser> {
        // An empty password is an anonymous bind to LDAP, which "succeeds": refuse it before any I/O.
        if password.is_empty() {
            tracing::info!(reason = "empty password", "ldap login refused");
            return Err(Error::InvalidCredentials);
        }
        let username = target.typed.as_str();
        let Some((entry, name)) = target.found else {
            // The result does not matter: nobody has this DN, and the answer is "invalid credentials" regardless.
            let _ = self.bind_as(&self.absent_dn, password).await;
            tracing::info!(username, reason = "no such user under users_dn", "ldap login refused");
            return Err(Error::InvalidCredentials);
        };
        match self.bind_as(&entry.dn, password).await {
            Ok(()) => {}
            Err(Error::InvalidCredentials) => {
                tracing::info!(username, dn = %entry.dn, reason = "wrong password", "ldap login refused");
                return Err(Error::InvalidCredentials);
            }
            Err(Error::AdBindRefused(r)) => {
                tracing::info!(
                    username,
                    dn = %entry.dn,
                    reason = r.reason(),
                    ad_data = r.code(),
                    "ldap login refused"
                );
                return Err(if r.is_wrong_credentials() { Error::InvalidCredentials } else { Error::AdBindRefused(r) });
            }
            Err(e) => return Err(e),
        }
        if self.mapping.active_directory {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            if let Some(reason) = mapping::ad_refusal(&entry, now) {
                tracing::info!(username, dn = %entry.dn, %reason, "ldap login refused: account disabled or expired");
                return Err(Error::AccountDisabled(reason));
            }
        }
        let user = with_service!(self, |conn| self.map(conn, &entry, &name).await)?;
        self.cache.insert(user.username.to_lowercase(), user.clone()).await;
        Ok(user)
    }

    /// Binds as `dn` with `password` on a bind connection (pooled; a failed bind leaves it reusable).
    async fn bind_as(&self, dn: &str, password: &str) -> Result<()> {
        let mut retried = false;
        loop {
            let Checkout { mut conn, .. } = self.bind_pool.get(&self.connector).await?;
            match conn.with_timeout(self.connector.op_timeout).simple_bind(dn, password).await {
                Ok(res) => {
                    self.bind_pool.put(conn);
                    return match res.rc {
                        0 => Ok(()),
                        // AD says why in the message's `data` sub-code (disabled, expired, locked out, ...).
                        RC_INVALID_CREDENTIALS if self.mapping.active_directory => {
                            match crate::ad::BindRefusal::parse(&res.text) {
                                Some(crate::ad::BindRefusal::WrongPassword) | None => Err(Error::InvalidCredentials),
                                Some(r) => Err(Error::AdBindRefused(r)),
                            }
                        }
                        RC_INVALID_CREDENTIALS => Err(Error::InvalidCredentials),
                        rc => {
                            tracing::info!(dn, rc, text = %res.text, "user bind refused by the directory");
                            Err(Error::InvalidCredentials)
                        }
                    };
                }
                Err(e) if !retried => {
                    tracing::debug!(url = conn.url(), error = %e, "bind connection failed; retrying on a fresh one");
                    retried = true;
                    drop(conn);
                    self.bind_pool.clear();
                }
                Err(e) => return Err(conn.failed("bind", e)),
            }
        }
    }

    /// The current data of `username` (service account only, no password). Served from the cache when fresh, so
    /// token refresh and userinfo keep working through a short directory outage.
    pub async fn lookup(&self, username: &str) -> Result<Option<MappedUser>> {
        let key = username.to_lowercase();
        if let Some(u) = self.cache.get(&key).await {
            return Ok(Some(u));
        }
        if username.is_empty() || username.len() > MAX_USERNAME {
            return Ok(None);
        }
        let user = with_service!(self, |conn| match self.find_user(conn, username).await {
            Ok(Some(entry)) => match mapping::username(&entry, &self.mapping) {
                Ok(name) => self.map(conn, &entry, &name).await.map(Some),
                Err(e) => Err(e),
            },
            Ok(None) | Err(Error::InvalidCredentials) => Ok(None),
            Err(e) => Err(e),
        })?;
        if let Some(u) = &user {
            self.cache.insert(key, u.clone()).await;
        }
        Ok(user)
    }

    /// The entries under `users_dn` (and `user_filter`) whose `attribute` equals `value` (escaped, so the value can
    /// add no wildcard or clause), with the service account and no password: how many matched, and the mapped user
    /// when exactly one did. Used to link a sign-in at another identity provider to its directory entry.
    pub async fn find_by_attribute(&self, attribute: &str, value: &str) -> Result<(usize, Option<MappedUser>)> {
        if value.is_empty() || value.len() > MAX_USERNAME || value.chars().any(char::is_control) {
            return Ok((0, None));
        }
        let filter = crate::filter::and_equals(&self.mapping.user_filter, attribute, value);
        with_service!(self, |conn| {
            let attrs = self.user_attrs();
            match self.search(conn, &self.cfg.users_dn, self.mapping.scope, &filter, &attrs).await {
                Ok(mut entries) if entries.len() == 1 => match entries.pop() {
                    Some(entry) => {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64);
                        match (self.mapping.active_directory, mapping::ad_refusal(&entry, now)) {
                            (true, Some(reason)) => Err(Error::AccountDisabled(reason)),
                            _ => match mapping::username(&entry, &self.mapping) {
                                Ok(name) => self.map(conn, &entry, &name).await.map(|u| (1, Some(u))),
                                Err(e) => Err(e),
                            },
                        }
                    }
                    None => Ok((0, None)),
                },
                Ok(entries) => Ok((entries.len(), None)),
                Err(e) => Err(e),
            }
        })
    }

    /// Can the service account bind and search the Users DN right now? (For `/readyz`.)
    pub async fn check(&self) -> Result<()> {
        with_service!(self, |conn| {
            self.search_scoped(conn, &self.cfg.users_dn, ldap3::Scope::Base, "(objectClass=*)", &["1.1"])
                .await
                .map(|_| ())
        })
    }

    /// Maps an entry (with its groups and roles).
    async fn map(&self, conn: &mut Conn, entry: &SearchEntry, username: &str) -> Result<MappedUser> {
        let m = &self.mapping;
        let unique_id = mapping::unique_id(entry, &m.unique_id).ok_or_else(|| Error::Misconfigured {
            dn: entry.dn.clone(),
            attribute: m.unique_id.clone(),
            key: "unique_id_attribute",
            available: mapping::attribute_names(entry).join(", "),
        })?;
        let (groups, group_dns) = self.groups(conn, entry, username).await?;
        // The subject rule applies to sign-ins and lookups (what becomes `sub`), not to SCIM listings, whose
        // state is keyed by the entry's own unique id.
        let unique_id = self.subjects.subject(&unique_id, username);
        let mut user = self.assemble(entry, username, unique_id, groups, group_dns)?;
        user.saml_persistent_nameids = self.subjects.persistent_nameids(username);
        Ok(user)
    }

    /// The mapped user from an entry whose unique id and groups are already known.
    fn assemble(
        &self,
        entry: &SearchEntry,
        username: &str,
        unique_id: String,
        groups: Vec<String>,
        group_dns: Vec<String>,
    ) -> Result<MappedUser> {
        let m = &self.mapping;
        Ok(MappedUser {
            username: username.to_string(),
            unique_id,
            dn: entry.dn.clone(),
            email: mapping::first(entry, &m.email).map(str::to_string),
            display_name: mapping::first(entry, &m.display_name).map(str::to_string),
            given_name: mapping::first(entry, &m.given_name).map(str::to_string),
            family_name: mapping::first(entry, &m.family_name).map(str::to_string),
            roles: self.roles.roles_for(&groups, &group_dns),
            group_paths: {
                let mut paths: Vec<String> =
                    group_dns.iter().filter_map(|d| crate::dn::group_path(d, &m.groups_dn, &m.groups_path)).collect();
                paths.sort();
                paths.dedup();
                paths
            },
            groups,
            group_dns,
            claims: mapping::claims(entry, &self.cfg.claims),
            saml_persistent_nameids: Default::default(),
        })
    }

    /// Group names and DNs of a user, nested groups included when configured (bounded).
    async fn groups(&self, conn: &mut Conn, entry: &SearchEntry, username: &str) -> Result<(Vec<String>, Vec<String>)> {
        let m = &self.mapping;
        let mut dns: BTreeSet<String> = BTreeSet::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        let member_value = |dn: &str| {
            if m.group_member.eq_ignore_ascii_case("memberUid") { username.to_string() } else { dn.to_string() }
        };
        if m.active_directory && m.nested_groups {
            // One search gives every group, direct or nested.
            let filter =
                format!("(&{}({}:{IN_CHAIN}:={}))", m.group_filter, m.group_member, crate::filter::escape(&entry.dn));
            for g in self.search(conn, &m.groups_dn, Scope::Sub, &filter, &[m.group_name.as_str()]).await? {
                names.insert(mapping::first(&g, &m.group_name).unwrap_or_default().to_string());
                dns.insert(g.dn);
            }
        } else {
            let mut frontier: Vec<String> = match m.group_strategy {
                GroupStrategy::MemberOf => mapping::values(entry, "memberOf").cloned().unwrap_or_default(),
                GroupStrategy::Search => {
                    let filter = crate::filter::and_equals(&m.group_filter, &m.group_member, &member_value(&entry.dn));
                    let found = self.search(conn, &m.groups_dn, Scope::Sub, &filter, &[m.group_name.as_str()]).await?;
                    for g in &found {
                        if let Some(n) = mapping::first(g, &m.group_name) {
                            names.insert(n.to_string());
                        }
                    }
                    found.into_iter().map(|g| g.dn).collect()
                }
            };
            let mut depth = 0;
            while !frontier.is_empty() && depth < MAX_GROUP_DEPTH && dns.len() < MAX_GROUPS {
                let new: Vec<String> = frontier.into_iter().filter(|d| dns.insert(d.clone())).collect();
                if !m.nested_groups || new.is_empty() {
                    break;
                }
                let mut next = Vec::new();
                for group_dn in &new {
                    // Parents of this group: groups whose member attribute names it.
                    let filter = crate::filter::and_equals(&m.group_filter, &m.group_member, group_dn);
                    for g in self.search(conn, &m.groups_dn, Scope::Sub, &filter, &[m.group_name.as_str()]).await? {
                        if let Some(n) = mapping::first(&g, &m.group_name) {
                            names.insert(n.to_string());
                        }
                        next.push(g.dn);
                    }
                }
                frontier = next;
                depth += 1;
            }
        }
        // Names for groups known only by DN (memberOf): the value of the first RDN.
        for dn in &dns {
            if let Some(v) = crate::dn::first_value(dn) {
                names.insert(v);
            }
        }
        names.remove("");
        Ok((names.into_iter().collect(), dns.into_iter().collect()))
    }

    /// Diagnoses the mapping for `username`: the raw entry, what each configured attribute yields, what is missing
    /// and what the entry has instead, and (with a password) whether the bind works.
    pub async fn probe(&self, username: &str, password: Option<&str>) -> Result<ProbeReport> {
        let m = self.mapping.clone();
        let entry = with_service!(self, |conn| self.find_user(conn, username).await)?;
        let mut report = ProbeReport {
            username: username.to_string(),
            users_dn: self.cfg.users_dn.clone(),
            filter: self.user_search_filter(username).unwrap_or_else(|| {
                format!("(none: {username} is a down-level name of another domain than ldap.netbios_domain)")
            }),
            entry_dn: None,
            attributes: Vec::new(),
            mapped: Vec::new(),
            problems: Vec::new(),
            user: None,
            bind: None,
        };
        let Some(entry) = entry else {
            report.problems.push(format!(
                "no entry matches {} under {} (scope {:?}); check users_dn, user_filter and username_attribute",
                report.filter, self.cfg.users_dn, m.scope
            ));
            return Ok(report);
        };
        report.entry_dn = Some(entry.dn.clone());
        let mut attrs: Vec<(String, Vec<String>)> = entry
            .attrs
            .iter()
            .map(|(k, v)| {
                let shown =
                    if k.eq_ignore_ascii_case("userPassword") { vec!["<redacted>".to_string()] } else { v.clone() };
                (k.clone(), shown)
            })
            .chain(
                entry
                    .bin_attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().map(|b| format!("<{} bytes>", b.len())).collect())),
            )
            .collect();
        attrs.sort_by_key(|(k, _)| k.to_lowercase());
        report.attributes = attrs;
        let available = mapping::attribute_names(&entry).join(", ");
        for (key, attr, required) in [
            ("username_attribute", &m.username, true),
            ("unique_id_attribute", &m.unique_id, true),
            ("email_attribute", &m.email, false),
            ("display_name_attribute", &m.display_name, false),
            ("given_name_attribute", &m.given_name, false),
            ("family_name_attribute", &m.family_name, false),
        ] {
            let value = if key == "unique_id_attribute" {
                mapping::unique_id(&entry, attr)
            } else {
                mapping::first(&entry, attr).map(str::to_string)
            };
            match value {
                Some(v) => report.mapped.push((key.to_string(), attr.clone(), v)),
                None => report.problems.push(format!(
                    "{key} = {attr:?}: the entry has no such attribute{}; it has: {available}",
                    if required { " (logins will fail)" } else { "" }
                )),
            }
        }
        if let Ok(name) = mapping::username(&entry, &m) {
            match with_service!(self, |conn| self.map(conn, &entry, &name).await) {
                Ok(u) => report.user = Some(u),
                Err(e) => report.problems.push(e.chain()),
            }
        }
        if let Some(pw) = password {
            report.bind = Some(match self.authenticate(username, pw).await {
                Ok(_) => "ok: the password binds".into(),
                Err(Error::InvalidCredentials) => "failed: wrong password (invalid credentials)".into(),
                Err(e @ Error::AdBindRefused(_)) => format!("failed: {e}"),
                Err(e) => format!("failed: {}", e.chain()),
            });
        }
        Ok(report)
    }
}

/// What `fedgate ldap probe` prints.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The username probed.
    pub username: String,
    /// Where it was searched.
    pub users_dn: String,
    /// The filter used.
    pub filter: String,
    /// The entry found.
    pub entry_dn: Option<String>,
    /// Raw attributes (passwords redacted, binary values as sizes).
    pub attributes: Vec<(String, Vec<String>)>,
    /// Configured key → attribute → value it yields.
    pub mapped: Vec<(String, String, String)>,
    /// Everything that is missing or wrong, with what the entry has instead.
    pub problems: Vec<String>,
    /// The mapped user, when mapping works.
    pub user: Option<MappedUser>,
    /// Outcome of the password bind, when a password was given.
    pub bind: Option<String>,
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "search: {} under {}", self.filter, self.users_dn)?;
        match &self.entry_dn {
            Some(dn) => writeln!(f, "entry:  {dn}")?,
            None => writeln!(f, "entry:  (none found)")?,
        }
        if !self.attributes.is_empty() {
            writeln!(f, "\nraw attributes:")?;
            for (k, v) in &self.attributes {
                writeln!(f, "  {k}: {}", v.join(" | "))?;
            }
        }
        if !self.mapped.is_empty() {
            writeln!(f, "\nmapping:")?;
            for (key, attr, value) in &self.mapped {
                writeln!(f, "  {key} ({attr}) → {value}")?;
            }
        }
        if let Some(u) = &self.user {
            writeln!(f, "\nmapped user:")?;
            writeln!(f, "  username:     {}", u.username)?;
            writeln!(f, "  sub:          {}", u.unique_id)?;
            writeln!(f, "  email:        {}", u.email.as_deref().unwrap_or("-"))?;
            writeln!(f, "  display name: {}", u.display_name.as_deref().unwrap_or("-"))?;
            writeln!(f, "  groups:       {}", u.groups.join(", "))?;
            writeln!(f, "  group paths:  {}", u.paths().join(", "))?;
            writeln!(f, "  roles:        {}", u.roles.join(", "))?;
            for (c, v) in &u.claims {
                writeln!(f, "  claim {c}: {}", v.join(", "))?;
            }
        }
        if let Some(b) = &self.bind {
            writeln!(f, "\nbind:   {b}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "\nno problems found")
        } else {
            writeln!(f, "\nPROBLEMS:")?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[test]
    fn no_password_shows_in_debug_output() {
        let file = std::env::temp_dir().join(format!("fedgate-ldap-mapper-debug-{}", std::process::id()));
        std::fs::write(&file, "file-secret-4711\n").unwrap();
        let from_file = LdapConfig {
            users_dn: "ou=people,dc=example,dc=org".into(),
            bind_dn: "cn=fedgate,ou=services,dc=example,dc=org".into(),
            bind_password_file: Some(file.clone()),
            ..Default::default()
        };
        let inline = LdapConfig {
            bind_password: Some(Secret::new("inline-secret-0815")),
            bind_password_file: None,
            ..from_file.clone()
        };
        let roles = || RoleMap::new(BTreeMap::new());
        let dir = LdapDirectory::new(from_file.clone(), roles()).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(dir.bind_password.expose(), "file-secret-4711", "read, trailing newline trimmed");
        let dir2 = LdapDirectory::new(inline.clone(), roles()).unwrap();
        // A service account allowed to read userPassword gets the hash with the entry.
        let entry = SearchEntry {
            dn: "uid=alice,ou=people,dc=example,dc=org".into(),
            attrs: HashMap::from([("userPassword".to_string(), vec!["{SSHA}hash-secret-42".to_string()])]),
            bin_attrs: HashMap::new(),
        };
        let target = LoginTarget { typed: "alice".into(), found: Some((entry, "alice".into())) };
        let shown = [
            format!("{from_file:?}"),
            format!("{inline:?}"),
            format!("{dir:?}"),
            format!("{dir2:?}"),
            format!("{:?} {:?} {:?}", dir.connector, dir.search_pool, dir.bind_pool),
            format!("{target:?}"),
        ];
        for text in &shown {
            for secret in ["file-secret-4711", "inline-secret-0815", "hash-secret-42"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        assert!(shown[5].contains("uid=alice,ou=people"), "still says who: {}", shown[5]);
    }

    #[test]
    fn an_unreadable_password_file_names_the_file_and_keeps_the_io_error() {
        let missing = std::env::temp_dir().join("fedgate-ldap-mapper-no-such-file");
        let cfg = LdapConfig {
            users_dn: "ou=people,dc=example,dc=org".into(),
            bind_password_file: Some(missing.clone()),
            ..Default::default()
        };
        let err = LdapDirectory::new(cfg, RoleMap::new(BTreeMap::new())).unwrap_err();
        assert!(matches!(&err, Error::BindPasswordFile { path, .. } if *path == missing), "{err:?}");
        assert!(err.to_string().contains("ldap.bind_password_file"), "{err}");
        let io = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>()).unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        let ca = LdapConfig {
            users_dn: "ou=people,dc=example,dc=org".into(),
            ca_file: Some(missing.clone()),
            ..Default::default()
        };
        let err = LdapDirectory::new(ca, RoleMap::new(BTreeMap::new())).unwrap_err();
        assert!(matches!(&err, Error::CaFile { path, .. } if *path == missing), "{err:?}");
    }
}
