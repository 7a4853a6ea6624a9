//! SCIM 2.0 provisioning (RFC 7643, RFC 7644), the protocol half: the `[scim]` configuration, User resources built
//! from a [`crate::Principal`] with the same templates as SAML NameIDs, and the plan of a sync (who to create,
//! update and deprovision, with the safety rules). Sending the requests and reading the directory are the
//! gateway's job.

pub mod config;
pub mod plan;
pub mod resource;

pub use config::{Deprovision, ScimConfig, TargetAuth, TargetConfig, TargetPreset, UpdateMethod};
pub use plan::{Action, Known, Plan, PlanRefused, SyncState};
pub use resource::{DesiredUser, TargetUser};

/// The filter that finds a user by `userName` (RFC 7644 §3.4.2.2), with the value quoted as JSON string.
pub fn user_name_filter(user_name: &str) -> String {
    format!("userName eq {}", serde_json::Value::from(user_name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_values_are_quoted_and_escaped() {
        assert_eq!(super::user_name_filter("alice"), r#"userName eq "alice""#);
        assert_eq!(super::user_name_filter(r#"a"b\c"#), r#"userName eq "a\"b\\c""#);
    }
}
