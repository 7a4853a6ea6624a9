//! Templates over a user's fields (`"{username}@{auxiliary_domain}"`), shared by SAML NameIDs and attributes and
//! by SCIM provisioning, so that the name RAM receives at login and the name it was provisioned with come from the
//! same rules.

use crate::ConfigIssue;
use crate::Principal;

/// The placeholders every template understands; any other `{name}` is an `[ldap.claims]` claim.
pub const PLACEHOLDERS: &[&str] = &[
    "username",
    "email",
    "email_local",
    "subject",
    "display_name",
    "given_name",
    "family_name",
    "auxiliary_domain",
    "groups",
    "group_paths",
    "roles",
];

/// Renders `template` for `p`. `auxiliary_domain` fills `{auxiliary_domain}`. `Err(field)` names the placeholder
/// that is empty for this user.
pub fn render(template: &str, p: &Principal, auxiliary_domain: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let key = &rest[start + 1..start + end];
        let value = match key {
            "username" => Some(p.username.clone()),
            "email" => p.email.clone(),
            "email_local" => p.email.as_deref().and_then(|e| e.split('@').next()).map(str::to_string),
            "subject" => Some(p.subject.clone()),
            "display_name" => p.display_name.clone(),
            "given_name" => p.given_name.clone(),
            "family_name" => p.family_name.clone(),
            "auxiliary_domain" => auxiliary_domain.map(str::to_string),
            "groups" => Some(p.groups.join(",")),
            "group_paths" => Some(p.groups_as(crate::principal::GroupFormat::Path).join(",")),
            "roles" => Some(p.roles.join(",")),
            other => p.claims.get(other).and_then(|v| v.first()).cloned(),
        };
        match value {
            Some(v) if !v.is_empty() => out.push_str(&v),
            _ => return Err(key.to_string()),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Problems with the placeholders of `template` (configured at `key`): each unknown `{name}` that cannot be a
/// claim name.
pub fn check(key: &str, template: &str) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    for part in template.split('{').skip(1) {
        let name = part.split('}').next().unwrap_or("");
        let claim_like = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !PLACEHOLDERS.contains(&name) && !claim_like {
            out.push(ConfigIssue::new(
                key,
                Some(template.to_string()),
                format!("unknown placeholder {{{name}}}"),
                format!("use one of {{{}}} or an [ldap.claims] name", PLACEHOLDERS.join("}, {")),
            ));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            subject: "uuid-1".into(),
            username: "alice".into(),
            email: Some("alice@example.org".into()),
            display_name: None,
            given_name: None,
            family_name: None,
            groups: vec!["a".into(), "b".into()],
            group_paths: vec![],
            roles: vec![],
            claims: [("dept".to_string(), vec!["R&D".to_string()])].into(),
            saml_persistent_nameids: Default::default(),
            auth_time: time::OffsetDateTime::UNIX_EPOCH,
            authn: Default::default(),
        }
    }

    #[test]
    fn renders_fields_claims_and_domain() {
        let p = alice();
        assert_eq!(
            render("{username}@{auxiliary_domain}", &p, Some("corp.onaliyun.com")).unwrap(),
            "alice@corp.onaliyun.com"
        );
        assert_eq!(render("{email_local}/{dept}/{groups}", &p, None).unwrap(), "alice/R&D/a,b");
        assert_eq!(render("{display_name}", &p, None).unwrap_err(), "display_name");
        assert_eq!(render("{auxiliary_domain}", &p, None).unwrap_err(), "auxiliary_domain");
    }

    #[test]
    fn check_names_unknown_placeholders() {
        assert!(check("k", "{username}@{dept}").is_empty());
        let issues = check("k", "{user name}");
        assert_eq!(issues.len(), 1);
        assert!(issues[0].problem.contains("{user name}"));
    }
}
