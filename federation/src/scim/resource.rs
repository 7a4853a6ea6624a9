//! SCIM 2.0 User resources (RFC 7643 §4.1): the user we want on the target, built from a [`Principal`] and a
//! target's templates, and the user the target has, read from its JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::config::TargetConfig;
use crate::Principal;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The PATCH request schema.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The list response schema.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The user as the target should have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredUser {
    /// The directory's stable unique id (never sent; the key of the sync state).
    pub key: String,
    /// `externalId`.
    pub external_id: String,
    /// `userName`.
    pub user_name: String,
    /// `displayName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The primary work e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `active`, when the target gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Extra attributes: path → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// A user as the target has it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetUser {
    /// The target's `id`.
    pub id: String,
    /// `externalId`, if set.
    pub external_id: Option<String>,
    /// `userName`.
    pub user_name: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// The primary e-mail (or the first one).
    pub email: Option<String>,
    /// `active`.
    pub active: Option<bool>,
    /// The whole resource, for extra attributes.
    pub raw: Value,
}

/// A SCIM attribute path: optional schema URN, then the attribute and optional sub-attribute.
pub fn split_path(path: &str) -> Option<(Option<&str>, Vec<&str>)> {
    let (schema, attr) = if path.starts_with("urn:") {
        let (s, a) = path.rsplit_once(':')?;
        (Some(s), a)
    } else {
        (None, path)
    };
    let parts: Vec<&str> = attr.split('.').collect();
    let ok = (1..=2).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$'));
    ok.then_some((schema, parts))
}

/// `obj[key]` with SCIM's case-insensitive attribute names.
fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn lookup_path<'a>(raw: &'a Value, path: &str) -> Option<&'a Value> {
    let (schema, parts) = split_path(path)?;
    let mut at = match schema {
        Some(s) => get_ci(raw, s)?,
        None => raw,
    };
    for p in parts {
        at = get_ci(at, p)?;
    }
    Some(at)
}

impl DesiredUser {
    /// The user `p` should be on `target`, or `Err(reason)` when a required template cannot be filled or the name
    /// breaks the target's rules.
    pub fn build(p: &Principal, target: &TargetConfig) -> Result<Self, String> {
        let domain = target.auxiliary_domain.as_deref();
        let render = |t: &str| crate::template::render(t, p, domain);
        let mut user_name = render(target.user_name_template()).map_err(|f| {
            format!("user_name {:?} needs {{{f}}}, which this user has not", target.user_name_template())
        })?;
        if target.lowercase_user_name() {
            user_name = user_name.to_lowercase();
        }
        if target.preset == Some(super::TargetPreset::AliyunRam) {
            let ok = (1..=64).contains(&user_name.len())
                && user_name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !ok {
                return Err(format!("{user_name:?} is not a valid RAM user name (1–64 of a-z 0-9 . _ -)"));
            }
        }
        let external_id = render(target.external_id_template()).map_err(|f| {
            format!("external_id {:?} needs {{{f}}}, which this user has not", target.external_id_template())
        })?;
        let mut extra = BTreeMap::new();
        for (path, template) in &target.attributes {
            // An optional attribute the user lacks is left out.
            if let Ok(v) = render(template) {
                extra.insert(path.clone(), v);
            }
        }
        Ok(Self {
            key: p.subject.clone(),
            external_id,
            user_name,
            display_name: target.display_name_template().and_then(|t| render(t).ok()),
            email: target.email_template().and_then(|t| render(t).ok()),
            active: target.send_active().then_some(true),
            extra,
        })
    }

    /// The resource for POST and PUT.
    pub fn to_json(&self) -> Value {
        let mut schemas = vec![Value::from(USER_SCHEMA)];
        let mut obj = Map::new();
        obj.insert("externalId".into(), self.external_id.clone().into());
        obj.insert("userName".into(), self.user_name.clone().into());
        if let Some(d) = &self.display_name {
            obj.insert("displayName".into(), d.clone().into());
        }
        if let Some(e) = &self.email {
            obj.insert("emails".into(), json!([{ "value": e, "type": "work", "primary": true }]));
        }
        if let Some(a) = self.active {
            obj.insert("active".into(), a.into());
        }
        for (path, value) in &self.extra {
            let Some((schema, parts)) = split_path(path) else { continue };
            let mut at = &mut obj;
            if let Some(s) = schema {
                if !schemas.iter().any(|v| v == s) {
                    schemas.push(s.into());
                }
                at = match at.entry(s).or_insert_with(|| Value::Object(Map::new())).as_object_mut() {
                    Some(m) => m,
                    None => continue,
                };
            }
            if let [parent, leaf] = parts.as_slice() {
                at = match at.entry(*parent).or_insert_with(|| Value::Object(Map::new())).as_object_mut() {
                    Some(m) => m,
                    None => continue,
                };
                at.insert((*leaf).to_string(), value.clone().into());
            } else if let [leaf] = parts.as_slice() {
                at.insert((*leaf).to_string(), value.clone().into());
            }
        }
        obj.insert("schemas".into(), Value::Array(schemas));
        Value::Object(obj)
    }

    /// The attributes (SCIM names) in which `self` differs from what was last pushed.
    pub fn changes_since(&self, before: &DesiredUser) -> Vec<String> {
        let mut out: Vec<String> = [
            ("userName", self.user_name != before.user_name),
            ("externalId", self.external_id != before.external_id),
            ("displayName", self.display_name != before.display_name),
            ("emails", self.email != before.email),
            ("active", self.active != before.active),
        ]
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| name.to_string())
        .collect();
        for (path, v) in &self.extra {
            if before.extra.get(path) != Some(v) {
                out.push(path.clone());
            }
        }
        for path in before.extra.keys() {
            if !self.extra.contains_key(path) {
                out.push(path.clone());
            }
        }
        out
    }

    /// The attributes (SCIM names) in which the target's copy differs from `self`. Attributes we do not send are
    /// not compared; `userName` compares case-insensitively when the target folds case.
    pub fn changes_from(&self, t: &TargetUser) -> Vec<String> {
        let mut out = Vec::new();
        if self.user_name != t.user_name {
            out.push("userName".into());
        }
        if t.external_id.as_deref() != Some(self.external_id.as_str()) {
            out.push("externalId".into());
        }
        if self.display_name.is_some() && self.display_name != t.display_name {
            out.push("displayName".into());
        }
        if self.email.is_some() && self.email != t.email {
            out.push("emails".into());
        }
        if self.active.is_some() && self.active != t.active {
            out.push("active".into());
        }
        for (path, v) in &self.extra {
            if lookup_path(&t.raw, path).and_then(Value::as_str) != Some(v.as_str()) {
                out.push(path.clone());
            }
        }
        out
    }

    /// A PATCH request that replaces the `changes` attributes (RFC 7644 §3.5.2.3) and removes those we no longer
    /// have.
    pub fn patch(&self, changes: &[String]) -> Value {
        let full = self.to_json();
        let ops: Vec<Value> = changes
            .iter()
            .map(|path| {
                let value = match path.as_str() {
                    "userName" | "externalId" | "displayName" | "emails" | "active" => full.get(path.as_str()).cloned(),
                    p => self.extra.get(p).map(|v| Value::from(v.clone())),
                };
                match value {
                    Some(v) => json!({ "op": "replace", "path": path, "value": v }),
                    None => json!({ "op": "remove", "path": path }),
                }
            })
            .collect();
        json!({ "schemas": [PATCH_SCHEMA], "Operations": ops })
    }
}

/// The PATCH request that deactivates a user (`active` = false).
pub fn deactivation_patch() -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "path": "active", "value": false }] })
}

impl TargetUser {
    /// Reads a User resource; `None` if it has no `id` or `userName`.
    pub fn from_json(raw: Value) -> Option<Self> {
        let s = |k: &str| get_ci(&raw, k).and_then(Value::as_str).map(str::to_string);
        let id = s("id")?;
        let user_name = s("userName")?;
        let emails = get_ci(&raw, "emails").and_then(Value::as_array);
        let email = emails.and_then(|list| {
            let primary = list.iter().find(|e| get_ci(e, "primary").and_then(Value::as_bool) == Some(true));
            primary.or(list.first()).and_then(|e| get_ci(e, "value")).and_then(Value::as_str).map(str::to_string)
        });
        Some(Self {
            id,
            external_id: s("externalId"),
            display_name: s("displayName"),
            active: get_ci(&raw, "active").and_then(Value::as_bool),
            user_name,
            email,
            raw,
        })
    }

    /// The resource for a PUT that keeps everything the target has, with `active` set as given (deactivation on a
    /// server without PATCH).
    pub fn with_active(&self, active: bool) -> Value {
        let mut v = self.raw.clone();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("meta");
            obj.remove("id");
            obj.insert("active".into(), active.into());
        }
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            subject: "0b1c-uuid".into(),
            username: "Alice".into(),
            email: Some("alice@example.org".into()),
            display_name: Some("Alice \"<Admin>\" Liddell".into()),
            given_name: Some("Alice".into()),
            family_name: None,
            groups: vec![],
            group_paths: vec![],
            roles: vec![],
            claims: [("department".to_string(), vec!["R&D".to_string()])].into(),
            saml_persistent_nameids: Default::default(),
            auth_time: time::OffsetDateTime::UNIX_EPOCH,
            authn: Default::default(),
        }
    }

    fn target() -> TargetConfig {
        TargetConfig {
            name: "t".into(),
            base_url: Some("http://127.0.0.1:1/v2".into()),
            attributes: [
                ("name.givenName".to_string(), "{given_name}".to_string()),
                ("name.familyName".to_string(), "{family_name}".to_string()),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department".to_string(),
                    "{department}".to_string(),
                ),
            ]
            .into(),
            ..TargetConfig::default()
        }
    }

    #[test]
    fn builds_the_resource_with_extensions_and_leaves_out_what_the_user_lacks() {
        let u = DesiredUser::build(&principal(), &target()).unwrap();
        let v = u.to_json();
        assert_eq!(v["userName"], "Alice");
        assert_eq!(v["externalId"], "0b1c-uuid");
        assert_eq!(v["displayName"], "Alice \"<Admin>\" Liddell");
        assert_eq!(v["emails"][0]["value"], "alice@example.org");
        assert_eq!(v["active"], true);
        assert_eq!(v["name"]["givenName"], "Alice");
        assert!(v["name"].get("familyName").is_none());
        let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert_eq!(v[ext]["department"], "R&D");
        assert_eq!(v["schemas"][1], ext);
    }

    #[test]
    fn ram_preset_lower_cases_sends_only_its_attributes_and_refuses_bad_names() {
        let t = TargetConfig { preset: Some(super::super::TargetPreset::AliyunRam), ..TargetConfig::default() };
        let v = DesiredUser::build(&principal(), &t).unwrap().to_json();
        assert_eq!(v["userName"], "alice");
        assert!(v.get("emails").is_none() && v.get("active").is_none());
        let mut p = principal();
        p.username = "al ice".into();
        assert!(DesiredUser::build(&p, &t).unwrap_err().contains("not a valid RAM user name"));
    }

    #[test]
    fn compares_with_the_target_copy_attribute_by_attribute() {
        let u = DesiredUser::build(&principal(), &target()).unwrap();
        let mut raw = u.to_json();
        raw["id"] = "abc".into();
        let same = TargetUser::from_json(raw.clone()).unwrap();
        assert!(u.changes_from(&same).is_empty(), "{:?}", u.changes_from(&same));
        raw["displayName"] = "Someone else".into();
        raw["name"]["givenName"] = "Al".into();
        raw["active"] = false.into();
        let changed = TargetUser::from_json(raw).unwrap();
        assert_eq!(u.changes_from(&changed), vec!["displayName", "active", "name.givenName"]);
        let patch = u.patch(&u.changes_from(&changed));
        assert_eq!(
            patch["Operations"][0],
            json!({"op": "replace", "path": "displayName", "value": "Alice \"<Admin>\" Liddell"})
        );
        assert_eq!(patch["Operations"][2]["value"], "Alice");
    }

    #[test]
    fn paths_are_checked() {
        assert!(split_path("name.givenName").is_some());
        assert!(split_path("urn:x:y:User:department").is_some());
        assert!(split_path("a.b.c").is_none());
        assert!(split_path("bad path").is_none());
    }
}
