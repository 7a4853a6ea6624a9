//! What a SCIM server sends back, read the way the gateway's SCIM client reads it: the body as JSON
//! (`body_json`), a `ListResponse` page (`read_list_page` → `federation::scim::TargetUser::from_json`), the
//! created user's `id`, an error's `detail`/`scimType` and the body snippet, then the sync's comparison of each
//! user with the one we want (`DesiredUser::changes_from`, extension and sub-attribute paths included) and the PUT
//! body that deactivates it; the first line is also read as a `Retry-After` header.
//!
//! Checks: no panic; `Retry-After` never exceeds the 120 s cap; a deactivation body has `active: false` and no
//! `id`/`meta`; the snippet is at most 200 characters.
#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use federation::scim::{DesiredUser, TargetUser};
use gateway::scim::client::{body_json, read_list_page, retry_after, snippet};
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn desired() -> DesiredUser {
    DesiredUser {
        key: "8f0c-uuid".into(),
        external_id: "8f0c-uuid".into(),
        user_name: "alice@corp.example".into(),
        display_name: Some("Alice Liddell".into()),
        email: Some("alice@example.org".into()),
        active: Some(true),
        extra: BTreeMap::from([
            ("title".into(), "Engineer".into()),
            ("name.givenName".into(), "Alice".into()),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber".into(), "42".into()),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".into(), "m-1".into()),
        ]),
    }
}

fn user(u: &TargetUser, want: &DesiredUser) {
    let changes = want.changes_from(u);
    let _ = want.patch(&changes);
    let off = u.with_active(false);
    if let Some(o) = off.as_object() {
        assert_eq!(o.get("active"), Some(&Value::Bool(false)));
        assert!(!o.contains_key("id") && !o.contains_key("meta"));
    }
}

fuzz_target!(|data: &[u8]| {
    let first = data.split(|b| *b == b'\n').next().unwrap_or_default();
    if let Ok(v) = HeaderValue::from_bytes(first) {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, v);
        if let Some(wait) = retry_after(&h) {
            assert!(wait <= Duration::from_secs(120));
        }
    }
    let want = desired();
    let json = body_json(data);
    if let Ok((_total, users)) = read_list_page(&json) {
        for u in &users {
            user(u, &want);
        }
    }
    // find_by_user_name: the first resource, if any.
    if let Some(u) = json.get("Resources").and_then(Value::as_array).and_then(|r| r.first()).cloned().and_then(TargetUser::from_json) {
        user(&u, &want);
    }
    // A single resource (create / GET answers).
    if let Some(u) = TargetUser::from_json(json.clone()) {
        user(&u, &want);
    }
    let _ = json.get("id").and_then(Value::as_str);
    let _ = json.get("detail").and_then(Value::as_str);
    let _ = json.get("scimType").and_then(Value::as_str);
    assert!(snippet(data).chars().count() <= 200);
});
