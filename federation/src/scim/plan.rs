//! What a sync will do: the directory's users against the target's (full) or against what we pushed last time
//! (incremental), as a list of creates, updates and deprovisions, with the safety rules applied before anything is
//! sent.
//!
//! Only users fedgate created or adopted (they are in the [`SyncState`]) are ever deprovisioned; accounts made by
//! hand on the target are counted as unmanaged and left alone.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::config::Deprovision;
use super::resource::{DesiredUser, TargetUser};

/// What one target looked like after the last run: persisted between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    /// Unix time at which the last successful run started reading the directory.
    pub last_success: Option<i64>,
    /// Directory unique id → what we know of that user on the target.
    pub users: BTreeMap<String, Known>,
    /// Directory unique ids whose last write failed: read and tried again by the next incremental run.
    pub retry: BTreeSet<String>,
}

/// A user fedgate created or adopted on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// The target's `id`.
    pub id: String,
    /// What was last written.
    pub user: DesiredUser,
    /// Deprovisioned (deactivated or deleted) by us.
    #[serde(default)]
    pub deprovisioned: bool,
}

/// One change to make on the target.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST a new user (adopting an existing one with the same `userName` if the target has it).
    Create(DesiredUser),
    /// Write changed attributes of an existing user.
    Update {
        /// Target id.
        id: String,
        /// The user as it should be.
        user: DesiredUser,
        /// Changed attributes (SCIM names).
        changes: Vec<String>,
    },
    /// Deactivate or delete a user who is gone.
    Deprovision {
        /// Target id.
        id: String,
        /// Directory unique id, when known.
        key: Option<String>,
        /// `userName`, for the report.
        user_name: String,
        /// Delete (else deactivate).
        delete: bool,
        /// The user's current resource, when a full sync read it (for a PUT-based deactivation).
        current: Option<Box<TargetUser>>,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create(u) => write!(f, "create     {} (externalId {})", u.user_name, u.external_id),
            Action::Update { user, changes, .. } => write!(f, "update     {} ({})", user.user_name, changes.join(", ")),
            Action::Deprovision { user_name, delete: true, .. } => write!(f, "delete     {user_name}"),
            Action::Deprovision { user_name, .. } => write!(f, "deactivate {user_name}"),
        }
    }
}

/// The plan of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Changes, in order: creates and updates, then deprovisions.
    pub actions: Vec<Action>,
    /// Users already as they should be.
    pub unchanged: usize,
    /// Target users fedgate did not create or adopt (left alone).
    pub unmanaged: usize,
    /// Users the target holds that fedgate manages (the base of the deprovisioning ratio).
    pub managed: usize,
    /// Directory ids that will be known after the run without a write (unchanged users, matched in a full sync).
    pub keep: BTreeMap<String, Known>,
}

/// Why a plan must not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanRefused {
    /// Too many deprovisions.
    #[error(
        "this sync would deprovision {would} of the {managed} users fedgate manages on the target ({:.0}%), more \
         than max_deprovision_ratio = {ratio}; nothing was changed. If the directory really lost them, raise \
         max_deprovision_ratio for this run (e.g. FEDGATE_SCIM__…) or check users_dn, users_filter and groups",
        *would as f64 * 100.0 / (*managed).max(1) as f64
    )]
    TooManyDeprovisions {
        /// Deprovisions planned.
        would: usize,
        /// Managed users on the target.
        managed: usize,
        /// The configured limit.
        ratio: f64,
    },
}

impl Plan {
    /// Counts of (create, update, deprovision).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for a in &self.actions {
            match a {
                Action::Create(_) => c.0 += 1,
                Action::Update { .. } => c.1 += 1,
                Action::Deprovision { .. } => c.2 += 1,
            }
        }
        c
    }

    /// Refuses a plan that deprovisions more than `ratio` of the managed users.
    pub fn check_ratio(&self, ratio: f64) -> Result<(), PlanRefused> {
        let would = self.counts().2;
        if would > 0 && would as f64 > ratio * self.managed as f64 {
            return Err(PlanRefused::TooManyDeprovisions { would, managed: self.managed, ratio });
        }
        Ok(())
    }
}

/// A full sync: every directory user in scope against every user on the target.
///
/// Users are matched by the id we recorded, then `externalId`, then `userName` (case-insensitively); a matched user
/// that nobody recorded is adopted. Duplicate desired users (two entries with one `userName`) keep the first.
/// `hold` lists directory ids still in scope that could not be built this time (never deprovisioned for that).
pub fn full(
    desired: Vec<DesiredUser>,
    target: &[TargetUser],
    state: &SyncState,
    mode: Deprovision,
    hold: &HashSet<String>,
) -> Plan {
    let by_id: HashMap<&str, &TargetUser> = target.iter().map(|t| (t.id.as_str(), t)).collect();
    let by_external: HashMap<&str, &TargetUser> =
        target.iter().filter_map(|t| t.external_id.as_deref().map(|e| (e, t))).collect();
    let by_name: HashMap<String, &TargetUser> = target.iter().map(|t| (t.user_name.to_lowercase(), t)).collect();
    let ours: HashSet<&str> = state.users.values().map(|k| k.id.as_str()).collect();
    let mut claimed: HashSet<String> = HashSet::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut plan = Plan::default();
    let mut deprovisions = Vec::new();
    for user in desired {
        if !names.insert(user.user_name.to_lowercase()) {
            continue;
        }
        let found = state
            .users
            .get(&user.key)
            .and_then(|k| by_id.get(k.id.as_str()))
            .or_else(|| by_external.get(user.external_id.as_str()))
            .or_else(|| by_name.get(&user.user_name.to_lowercase()))
            .filter(|t| !claimed.contains(&t.id))
            .copied();
        match found {
            Some(t) => {
                claimed.insert(t.id.clone());
                let changes = user.changes_from(t);
                if changes.is_empty() {
                    plan.unchanged += 1;
                    plan.keep.insert(user.key.clone(), Known { id: t.id.clone(), user, deprovisioned: false });
                } else {
                    plan.actions.push(Action::Update { id: t.id.clone(), user, changes });
                }
            }
            None => plan.actions.push(Action::Create(user)),
        }
    }
    let key_of: HashMap<&str, &str> = state.users.iter().map(|(k, v)| (v.id.as_str(), k.as_str())).collect();
    for t in target {
        if claimed.contains(&t.id) {
            continue;
        }
        if !ours.contains(t.id.as_str()) {
            plan.unmanaged += 1;
            continue;
        }
        let key = key_of.get(t.id.as_str()).map(|k| k.to_string());
        let already = mode == Deprovision::Deactivate && t.active == Some(false);
        if mode == Deprovision::None || already || key.as_ref().is_some_and(|k| hold.contains(k)) {
            plan.unchanged += 1;
            if let Some(k) = &key
                && let Some(known) = state.users.get(k)
            {
                plan.keep.insert(k.clone(), Known { deprovisioned: already || known.deprovisioned, ..known.clone() });
            }
            continue;
        }
        deprovisions.push(Action::Deprovision {
            id: t.id.clone(),
            key,
            user_name: t.user_name.clone(),
            delete: mode == Deprovision::Delete,
            current: Some(Box::new(t.clone())),
        });
    }
    plan.managed = claimed.len() + deprovisions.len();
    plan.actions.extend(deprovisions);
    plan
}

/// An incremental sync: the users whose entries changed (or who must be retried or are new to us) against what we
/// last pushed, and the ids of every user still in scope, to find those who left.
pub fn incremental(
    changed: Vec<DesiredUser>,
    in_scope: &HashSet<String>,
    state: &SyncState,
    mode: Deprovision,
) -> Plan {
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    for user in changed {
        if !seen.insert(user.key.clone()) {
            continue;
        }
        match state.users.get(&user.key) {
            Some(k) if !k.deprovisioned && k.user == user && !state.retry.contains(&user.key) => plan.unchanged += 1,
            Some(k) => {
                let mut changes = user.changes_since(&k.user);
                if changes.is_empty() {
                    // A retry, or a re-activation where `active` is not sent: write every attribute again.
                    changes = ["userName", "externalId", "displayName", "emails", "active"]
                        .iter()
                        .map(|s| s.to_string())
                        .chain(user.extra.keys().cloned())
                        .collect();
                }
                plan.actions.push(Action::Update { id: k.id.clone(), user, changes });
            }
            None => plan.actions.push(Action::Create(user)),
        }
    }
    let mut deprovisions = Vec::new();
    for (key, k) in &state.users {
        if k.deprovisioned {
            continue;
        }
        plan.managed += 1;
        if in_scope.contains(key) || mode == Deprovision::None {
            continue;
        }
        deprovisions.push(Action::Deprovision {
            id: k.id.clone(),
            key: Some(key.clone()),
            user_name: k.user.user_name.clone(),
            delete: mode == Deprovision::Delete,
            current: None,
        });
    }
    plan.actions.extend(deprovisions);
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn desired(key: &str, name: &str) -> DesiredUser {
        DesiredUser {
            key: key.into(),
            external_id: key.into(),
            user_name: name.into(),
            display_name: Some(name.to_uppercase()),
            email: None,
            active: Some(true),
            extra: BTreeMap::new(),
        }
    }

    fn on_target(id: &str, d: &DesiredUser) -> TargetUser {
        let mut raw = d.to_json();
        raw["id"] = id.into();
        TargetUser::from_json(raw).unwrap()
    }

    fn state_of(pairs: &[(&str, &DesiredUser)]) -> SyncState {
        SyncState {
            users: pairs
                .iter()
                .map(|(id, d)| (d.key.clone(), Known { id: id.to_string(), user: (*d).clone(), deprovisioned: false }))
                .collect(),
            ..SyncState::default()
        }
    }

    #[test]
    fn full_sync_creates_updates_adopts_and_deprovisions_only_its_own() {
        let alice = desired("k1", "alice");
        let bob = desired("k2", "bob");
        let carol = desired("k3", "carol");
        let mut bob_changed = bob.clone();
        bob_changed.display_name = Some("Robert".into());
        let manual = desired("", "root-admin");
        let target = vec![
            on_target("t1", &alice),
            on_target("t2", &bob),
            on_target("t3", &carol),
            TargetUser { external_id: None, ..on_target("t9", &manual) },
        ];
        let state = state_of(&[("t1", &alice), ("t2", &bob), ("t3", &carol)]);
        let dave = desired("k4", "dave");
        let plan = full(
            vec![alice.clone(), bob_changed.clone(), dave.clone()],
            &target,
            &state,
            Deprovision::Deactivate,
            &HashSet::new(),
        );
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.unmanaged, 1, "the hand-made account is left alone");
        assert_eq!(plan.managed, 3);
        assert_eq!(plan.counts(), (1, 1, 1));
        assert!(plan.actions.contains(&Action::Create(dave)));
        assert!(
            matches!(&plan.actions[0], Action::Update { id, changes, .. } if id == "t2" && changes == &["displayName"])
        );
        assert!(matches!(plan.actions.last(), Some(Action::Deprovision { id, .. }) if id == "t3"));
    }

    #[test]
    fn full_sync_adopts_a_hand_made_account_by_user_name() {
        let alice = desired("k1", "alice");
        let mut hand_made = on_target("t7", &alice);
        hand_made.external_id = None;
        hand_made.user_name = "Alice".into();
        let plan = full(vec![alice], &[hand_made], &SyncState::default(), Deprovision::Delete, &HashSet::new());
        assert!(
            matches!(&plan.actions[..], [Action::Update { id, changes, .. }] if id == "t7" && changes == &["userName", "externalId"])
        );
    }

    #[test]
    fn an_empty_directory_read_is_refused_by_the_ratio() {
        let users: Vec<DesiredUser> = (0..10).map(|i| desired(&format!("k{i}"), &format!("u{i}"))).collect();
        let target: Vec<TargetUser> = users.iter().enumerate().map(|(i, u)| on_target(&format!("t{i}"), u)).collect();
        let pairs: Vec<(String, &DesiredUser)> = users.iter().enumerate().map(|(i, u)| (format!("t{i}"), u)).collect();
        let state = state_of(&pairs.iter().map(|(i, u)| (i.as_str(), *u)).collect::<Vec<_>>());
        let plan = full(Vec::new(), &target, &state, Deprovision::Delete, &HashSet::new());
        assert_eq!(plan.counts(), (0, 0, 10));
        let err = plan.check_ratio(0.2).unwrap_err();
        assert!(err.to_string().contains("deprovision 10 of the 10"), "{err}");
        let two_gone = full(users[2..].to_vec(), &target, &state, Deprovision::Delete, &HashSet::new());
        assert!(two_gone.check_ratio(0.2).is_ok());
        assert!(
            full(users[3..].to_vec(), &target, &state, Deprovision::Delete, &HashSet::new()).check_ratio(0.2).is_err()
        );
    }

    #[test]
    fn incremental_sync_writes_only_what_changed_and_finds_who_left() {
        let alice = desired("k1", "alice");
        let bob = desired("k2", "bob");
        let state = state_of(&[("t1", &alice), ("t2", &bob)]);
        let mut alice2 = alice.clone();
        alice2.display_name = Some("Alice L.".into());
        let in_scope: HashSet<String> = ["k1".to_string(), "k3".to_string()].into();
        let carol = desired("k3", "carol");
        let plan = incremental(vec![alice2, carol.clone()], &in_scope, &state, Deprovision::Deactivate);
        assert_eq!(plan.counts(), (1, 1, 1));
        assert!(matches!(&plan.actions[0], Action::Update { changes, .. } if changes == &["displayName"]));
        assert!(matches!(plan.actions.last(), Some(Action::Deprovision { id, .. }) if id == "t2"));
        let none = incremental(vec![alice.clone()], &in_scope, &state, Deprovision::None);
        assert_eq!(none.counts(), (0, 0, 0));
        assert_eq!(none.unchanged, 1);
    }
}
