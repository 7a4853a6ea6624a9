//! One sync of one target: read the directory (all of it, or what changed), plan, check the safety rules, apply
//! with bounded concurrency, and save what is now known.
//!
//! Order matters for safety: the directory is read completely before anything is sent, so a directory that fails
//! part-way changes nothing; the plan is checked against `max_deprovision_ratio` before the first write; per-user
//! failures are recorded and retried by the next run instead of stopping the others.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use federation::scim::{Action, DesiredUser, Known, ScimConfig, SyncState, TargetConfig, UpdateMethod};
use futures_util::StreamExt as _;
use ldap_mapper::LdapDirectory;
use ldap_mapper::directory::ListQuery;

use super::client::{ScimClient, ScimError};
use super::state_file;

/// Requests in flight at once against one target.
const CONCURRENCY: usize = 4;
/// Consecutive "cannot reach the target" failures after which the rest of the run is not attempted.
const UNREACHABLE_LIMIT: usize = 5;
/// Incremental reads start this long before the last run, for clock skew between us and the directory.
const SKEW: i64 = 120;

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// Compare everything with the target's list, even when an incremental run is possible.
    pub full: bool,
    /// Print the plan; change nothing (neither the target nor the state file).
    pub dry_run: bool,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Target name.
    pub target: String,
    /// `"full"` or `"incremental"`.
    pub mode: &'static str,
    /// Nothing was changed.
    pub dry_run: bool,
    /// The plan, one line per change (dry runs).
    pub planned: Vec<String>,
    /// Users created (or adopted).
    pub created: usize,
    /// Users updated.
    pub updated: usize,
    /// Users deactivated or deleted.
    pub deprovisioned: usize,
    /// Users already up to date.
    pub unchanged: usize,
    /// Target users fedgate does not manage (left alone).
    pub unmanaged: usize,
    /// `(user, error)` for each user that failed; retried next run.
    pub failed: Vec<(String, String)>,
    /// `(dn, reason)` for directory entries that cannot be mapped to a user.
    pub skipped: Vec<(String, String)>,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// The counts `/metrics` keeps of this run.
    pub fn metrics(&self) -> crate::http::metrics::ScimRun<'_> {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        crate::http::metrics::ScimRun {
            target: &self.target,
            completed: self.aborted.is_none(),
            created: count(self.created),
            updated: count(self.updated),
            deprovisioned: count(self.deprovisioned),
            failed: count(self.failed.len()),
        }
    }
}

impl Report {
    /// Whether everything went through.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.aborted.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would" } else { "did" };
        writeln!(
            f,
            "scim target {} ({} sync{}):",
            self.target,
            self.mode,
            if self.dry_run { ", dry run" } else { "" }
        )?;
        for line in &self.planned {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "  {verb}: {} created, {} updated, {} deprovisioned; {} unchanged, {} not managed by fedgate; {} failed ({:.1} s)",
            self.created,
            self.updated,
            self.deprovisioned,
            self.unchanged,
            self.unmanaged,
            self.failed.len(),
            self.elapsed.as_secs_f64()
        )?;
        for (user, err) in &self.failed {
            writeln!(f, "  failed {user}: {err}")?;
        }
        for (dn, reason) in &self.skipped {
            writeln!(f, "  skipped directory entry {dn}: {reason}")?;
        }
        if let Some(why) = &self.aborted {
            writeln!(f, "  stopped early: {why}")?;
        }
        Ok(())
    }
}

/// The outcome of one action.
enum Outcome {
    /// The user is now as recorded.
    Known(String, Known),
    /// The user was deleted.
    Removed(Option<String>),
    /// It failed.
    Failed { key: Option<String>, user: String, error: Failure },
}

/// Why one user's change failed.
enum Failure {
    /// The target answered with an error, or could not be reached.
    Scim(ScimError),
    /// Not tried: too many requests in a row could not reach the target.
    NotAttempted,
}

impl Failure {
    /// Whether the target could not be reached (several in a row stop the run).
    fn is_unreachable(&self) -> bool {
        matches!(self, Self::Scim(e) if e.is_unreachable())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scim(e) if e.is_unreachable() => write!(f, "unreachable: {e}"),
            Self::Scim(e) => write!(f, "{e}"),
            Self::NotAttempted => f.write_str("not attempted: the target is unreachable"),
        }
    }
}

/// Runs one sync of `target`. `now` is the Unix time the run starts.
pub async fn run(
    directory: &LdapDirectory,
    scim: &ScimConfig,
    target: &TargetConfig,
    options: SyncOptions,
    now: i64,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let file = state_file::path(&scim.state_dir, &target.name);
    let Some(_lock) = state_file::lock(&file)? else {
        anyhow::bail!(
            "another process (another fedgate replica sharing scim.state_dir) is syncing target {} right now; this \
             run was skipped and changed nothing",
            target.name
        );
    };
    let state = state_file::load(&file)?;
    let client = ScimClient::new(target)?;
    let full = options.full || state.last_success.is_none();
    let mut report = Report {
        target: target.name.clone(),
        mode: if full { "full" } else { "incremental" },
        dry_run: options.dry_run,
        ..Report::default()
    };
    let query = ListQuery {
        extra_filter: target.users_filter.clone(),
        groups: target.groups.clone(),
        changed_since: None,
        keys_only: false,
    };
    let no_change = |what: &str, e: &dyn fmt::Display| anyhow::anyhow!("{what}: {e}; nothing was changed");
    let build = |users: Vec<ldap_mapper::MappedUser>, report: &mut Report| {
        let auth_time = time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut desired = Vec::new();
        let mut unbuildable = HashSet::new();
        for u in users {
            match DesiredUser::build(&crate::domain::principal::from_user(&u, auth_time), target) {
                Ok(d) => desired.push(d),
                Err(reason) => {
                    report.failed.push((u.username.clone(), reason));
                    unbuildable.insert(u.unique_id);
                }
            }
        }
        (desired, unbuildable)
    };
    let (mut plan, unbuildable) = if full {
        let listing =
            directory.list_users(&query).await.map_err(|e| no_change("reading the directory failed", &e.chain()))?;
        report.skipped = listing.skipped;
        let (desired, hold) = build(listing.users, &mut report);
        let on_target = client
            .list_users(target.page_size)
            .await
            .map_err(|e| no_change("listing the target's users failed", &e))?;
        let plan = federation::scim::plan::full(desired, &on_target, &state, target.deprovision(), &hold);
        (plan, hold)
    } else {
        let keys = directory
            .list_users(&ListQuery { keys_only: true, ..query.clone() })
            .await
            .map_err(|e| no_change("reading the directory failed", &e.chain()))?;
        let since = state.last_success.unwrap_or(0) - SKEW;
        let changed = directory
            .list_users(&ListQuery { changed_since: Some(since), ..query.clone() })
            .await
            .map_err(|e| no_change("reading the directory failed", &e.chain()))?;
        report.skipped = keys.skipped;
        let in_scope: HashSet<String> = keys.users.iter().map(|u| u.unique_id.clone()).collect();
        let read: HashSet<&str> = changed.users.iter().map(|u| u.unique_id.as_str()).collect();
        let mut users = changed.users.clone();
        for k in &keys.users {
            let known = state.users.get(&k.unique_id);
            let needed = known.is_none_or(|k| k.deprovisioned) || state.retry.contains(&k.unique_id);
            if needed && !read.contains(k.unique_id.as_str()) {
                let user = directory
                    .read_user(&k.dn, &query)
                    .await
                    .map_err(|e| no_change("reading the directory failed", &e.chain()))?;
                users.extend(user);
            }
        }
        let (desired, unbuildable) = build(users, &mut report);
        (federation::scim::plan::incremental(desired, &in_scope, &state, target.deprovision()), unbuildable)
    };
    plan.check_ratio(target.max_deprovision_ratio)?;
    report.unchanged = plan.unchanged;
    report.unmanaged = plan.unmanaged;
    if options.dry_run {
        let (c, u, d) = plan.counts();
        (report.created, report.updated, report.deprovisioned) = (c, u, d);
        report.planned = plan.actions.iter().map(ToString::to_string).collect();
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    let use_patch = match target.update_method() {
        UpdateMethod::Put => false,
        UpdateMethod::Patch => true,
        UpdateMethod::Auto => client.supports_patch().await.unwrap_or(false),
    };
    let actions = std::mem::take(&mut plan.actions);
    let outcomes = apply(&client, actions, &state, use_patch, &target.name).await;
    let mut next = if full {
        SyncState { users: std::mem::take(&mut plan.keep), ..SyncState::default() }
    } else {
        SyncState { retry: Default::default(), ..state.clone() }
    };
    for outcome in outcomes.results {
        match outcome {
            Outcome::Known(key, known) => {
                match (&known.deprovisioned, state.users.contains_key(&key) || next.users.contains_key(&key)) {
                    (true, _) => report.deprovisioned += 1,
                    (false, true) => report.updated += 1,
                    (false, false) => report.created += 1,
                }
                next.users.insert(key, known);
            }
            Outcome::Removed(key) => {
                report.deprovisioned += 1;
                if let Some(k) = key {
                    next.users.remove(&k);
                }
            }
            Outcome::Failed { key, user, error } => {
                if let Some(k) = key {
                    if let Some(old) = state.users.get(&k) {
                        next.users.entry(k.clone()).or_insert_with(|| old.clone());
                    }
                    next.retry.insert(k);
                }
                report.failed.push((user, error.to_string()));
            }
        }
    }
    // Users that could not be built are still ours: what we knew stays, and the next run tries again.
    next.retry.extend(unbuildable);
    report.aborted = outcomes.aborted;
    next.last_success = if report.aborted.is_none() { Some(now) } else { state.last_success };
    state_file::save(&file, &next)?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What applying a plan produced.
struct Applied {
    results: Vec<Outcome>,
    aborted: Option<String>,
}

async fn apply(client: &ScimClient, actions: Vec<Action>, state: &SyncState, use_patch: bool, target: &str) -> Applied {
    let total = actions.len();
    let done = AtomicUsize::new(0);
    let unreachable_streak = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let by_id: HashMap<&str, &Known> = state.users.values().map(|k| (k.id.as_str(), k)).collect();
    let by_id = Arc::new(by_id);
    let mut last_progress = Instant::now();
    let mut results = Vec::with_capacity(total);
    let mut stream = futures_util::stream::iter(actions)
        .map(|action| {
            let (done, streak, abort, by_id) = (&done, &unreachable_streak, &abort, by_id.clone());
            async move {
                if abort.load(Ordering::Relaxed) {
                    let (key, user) = describe(&action);
                    return Outcome::Failed { key, user, error: Failure::NotAttempted };
                }
                let outcome = apply_one(client, action, &by_id, use_patch).await;
                match &outcome {
                    Outcome::Failed { error, .. } if error.is_unreachable() => {
                        if streak.fetch_add(1, Ordering::Relaxed) + 1 >= UNREACHABLE_LIMIT {
                            abort.store(true, Ordering::Relaxed);
                        }
                    }
                    _ => streak.store(0, Ordering::Relaxed),
                }
                done.fetch_add(1, Ordering::Relaxed);
                outcome
            }
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(outcome) = stream.next().await {
        results.push(outcome);
        if last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            tracing::info!(target, done = done.load(Ordering::Relaxed), of = total, "scim sync progress");
        }
    }
    drop(stream);
    let aborted = abort.load(Ordering::Relaxed).then(|| {
        format!("{UNREACHABLE_LIMIT} requests in a row could not reach the target; the rest is retried next run")
    });
    Applied { results, aborted }
}

fn describe(action: &Action) -> (Option<String>, String) {
    match action {
        Action::Create(u) | Action::Update { user: u, .. } => (Some(u.key.clone()), u.user_name.clone()),
        Action::Deprovision { key, user_name, .. } => (key.clone(), user_name.clone()),
    }
}

fn failure(action_key: Option<String>, user: String, e: ScimError) -> Outcome {
    Outcome::Failed { key: action_key, user, error: Failure::Scim(e) }
}

async fn write(
    client: &ScimClient,
    id: &str,
    user: &DesiredUser,
    changes: &[String],
    use_patch: bool,
) -> Result<(), ScimError> {
    if use_patch { client.patch(id, &user.patch(changes)).await } else { client.replace(id, &user.to_json()).await }
}

async fn apply_one(client: &ScimClient, action: Action, by_id: &HashMap<&str, &Known>, use_patch: bool) -> Outcome {
    let (key, name) = describe(&action);
    let result: Result<Outcome, ScimError> = async {
        match action {
            Action::Create(user) => create(client, user, use_patch).await,
            Action::Update { id, user, changes } => match write(client, &id, &user, &changes, use_patch).await {
                Ok(()) => Ok(Outcome::Known(user.key.clone(), Known { id, user, deprovisioned: false })),
                // Deleted on the target behind our back: create it again.
                Err(e) if e.status() == Some(404) => create(client, user, use_patch).await,
                Err(e) => Err(e),
            },
            Action::Deprovision { id, key, delete: true, .. } => {
                client.delete(&id).await.map(|()| Outcome::Removed(key))
            }
            Action::Deprovision { id, key, delete: false, current, .. } => {
                let known = by_id.get(id.as_str()).map(|k| (*k).clone());
                if use_patch {
                    client.patch(&id, &federation::scim::resource::deactivation_patch()).await?;
                } else {
                    let resource = match (&current, &known) {
                        (Some(t), _) => t.with_active(false),
                        (None, Some(k)) => DesiredUser { active: Some(false), ..k.user.clone() }.to_json(),
                        // Never reached (a deprovision comes from the target's list or from our state); a PUT
                        // of `active` alone would wipe the account, so refuse instead.
                        (None, None) => {
                            return Err(ScimError::Malformed {
                                url: id.clone(),
                                reason: "no copy of the user to write back with active = false".into(),
                            });
                        }
                    };
                    client.replace(&id, &resource).await?;
                }
                Ok(match (key, known) {
                    (Some(key), Some(k)) => Outcome::Known(
                        key,
                        Known { deprovisioned: true, user: DesiredUser { active: Some(false), ..k.user }, id },
                    ),
                    (key, _) => Outcome::Removed(key),
                })
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| failure(key, name, e))
}

/// Creates a user; one that already exists by `userName` is adopted and brought up to date.
async fn create(client: &ScimClient, user: DesiredUser, use_patch: bool) -> Result<Outcome, ScimError> {
    match client.create(&user.to_json()).await {
        Ok(id) => Ok(Outcome::Known(user.key.clone(), Known { id, user, deprovisioned: false })),
        Err(e) if e.status() == Some(409) => {
            let Some(existing) = client.find_by_user_name(&user.user_name).await? else { return Err(e) };
            let changes = user.changes_from(&existing);
            if !changes.is_empty() {
                write(client, &existing.id, &user, &changes, use_patch).await?;
            }
            tracing::info!(user = %user.user_name, id = %existing.id, "scim: adopted an existing account with the same userName");
            Ok(Outcome::Known(user.key.clone(), Known { id: existing.id, user, deprovisioned: false }))
        }
        Err(e) => Err(e),
    }
}
