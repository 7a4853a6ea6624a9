//! Verified upstream claims → a fedgate user.

use serde_json::{Map, Value};

use crate::config::UpstreamOidcConfig;

/// Why verified claims do not make a user who may sign in.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// A claim the mapping needs is missing or not a string.
    #[error("the sign-in has no usable \"{claim}\" claim")]
    MissingClaim {
        /// The claim (or template variable).
        claim: String,
    },
    /// The username the mapping produced cannot be used.
    #[error("the username {0:?} is empty, too long or has control characters")]
    BadUsername(String),
    /// The e-mail domain is not in `allowed_email_domains`.
    #[error("e-mail addresses of {domain:?} may not sign in here")]
    EmailDomain {
        /// The domain (or "no verified e-mail").
        domain: String,
    },
    /// None of the user's groups is in `allowed_groups`.
    #[error("you are not in a group allowed to sign in here")]
    Groups,
}

/// The value at a dotted claim path (`realm_access.roles`); a key holding a dot itself wins over the path.
pub fn claim_path<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn string_claim(claims: &Map<String, Value>, path: &str) -> Option<String> {
    match claim_path(claims, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The e-mail address, unless the provider says it is unverified.
fn email(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>) -> Option<String> {
    let unverified = claims.get("email_verified").is_some_and(|v| v == &Value::Bool(false) || v == "false");
    string_claim(claims, &cfg.email_claim).filter(|_| !unverified)
}

fn groups(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = match claim_path(claims, &cfg.groups_claim) {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => s.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

/// The value of one template variable: `email_local`, `email_domain`, or a claim path.
fn variable(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>, name: &str) -> Option<String> {
    match name {
        "email_local" => email(cfg, claims).and_then(|e| e.split_once('@').map(|(l, _)| l.to_string())),
        "email_domain" => email(cfg, claims).and_then(|e| e.split_once('@').map(|(_, d)| d.to_string())),
        _ => string_claim(claims, name),
    }
}

/// `username_claim`: a claim path, `email_local`, or a template such as `"{email_local}"`.
fn username(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>) -> Result<String, MapError> {
    let spec = cfg.username_claim.trim();
    let name = if !spec.contains('{') {
        variable(cfg, claims, spec).ok_or_else(|| MapError::MissingClaim { claim: spec.into() })?
    } else {
        let mut out = String::new();
        let mut rest = spec;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').unwrap_or(after.len());
            let var = after[..close].trim();
            out.push_str(&variable(cfg, claims, var).ok_or_else(|| MapError::MissingClaim { claim: var.into() })?);
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out
    };
    if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(MapError::BadUsername(name));
    }
    Ok(name)
}

/// The allow-lists: `allowed_email_domains` (verified e-mail only) and `allowed_groups`.
pub fn check_allowed(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>) -> Result<(), MapError> {
    if !cfg.allowed_email_domains.is_empty() {
        let domain = email(cfg, claims).and_then(|e| e.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()));
        match domain {
            Some(d) if cfg.allowed_email_domains.iter().any(|a| a.trim_start_matches('@').eq_ignore_ascii_case(&d)) => {
            }
            other => {
                return Err(MapError::EmailDomain { domain: other.unwrap_or_else(|| "no verified e-mail".into()) });
            }
        }
    }
    if !cfg.allowed_groups.is_empty() {
        let g = groups(cfg, claims);
        if !g.iter().any(|g| cfg.allowed_groups.contains(g)) {
            return Err(MapError::Groups);
        }
    }
    Ok(())
}

/// The fedgate user for verified `claims` (`link = "none"`).
pub fn map_user(
    cfg: &UpstreamOidcConfig,
    claims: &Map<String, Value>,
    roles: &ldap_mapper::RoleMap,
) -> Result<ldap_mapper::MappedUser, MapError> {
    check_allowed(cfg, claims)?;
    let username = username(cfg, claims)?;
    let uid = string_claim(claims, &cfg.unique_id_claim)
        .ok_or_else(|| MapError::MissingClaim { claim: cfg.unique_id_claim.clone() })?;
    let groups = groups(cfg, claims);
    let roles = roles.roles_for(&groups, &[]);
    Ok(ldap_mapper::MappedUser {
        username,
        // Namespaced by provider: two providers' `sub` values may collide, and neither may pose as an LDAP entry.
        unique_id: format!("{}:{uid}", cfg.name),
        dn: String::new(),
        email: email(cfg, claims),
        display_name: string_claim(claims, &cfg.display_name_claim),
        given_name: string_claim(claims, "given_name"),
        family_name: string_claim(claims, "family_name"),
        groups,
        group_dns: Vec::new(),
        group_paths: Vec::new(),
        roles,
        claims: Default::default(),
        saml_persistent_nameids: Default::default(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn claims(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn cfg() -> UpstreamOidcConfig {
        UpstreamOidcConfig { name: "up".into(), ..Default::default() }
    }

    #[test]
    fn maps_username_groups_by_dotted_path_and_roles() {
        let mut c = cfg();
        c.groups_claim = "realm_access.roles".into();
        let roles = ldap_mapper::RoleMap::new([("admin".to_string(), vec!["ops".to_string()])].into());
        let u = map_user(
            &c,
            &claims(serde_json::json!({"sub": "42", "preferred_username": "alice", "email": "a@x.org",
                "realm_access": {"roles": ["ops", "dev"]}})),
            &roles,
        )
        .unwrap();
        assert_eq!(u.username, "alice");
        assert_eq!(u.unique_id, "up:42");
        assert_eq!(u.groups, ["dev", "ops"]);
        assert_eq!(u.roles, ["admin"]);
    }

    #[test]
    fn username_template_and_email_local() {
        let mut c = cfg();
        c.username_claim = "{email_local}".into();
        let u =
            map_user(&c, &claims(serde_json::json!({"sub": "1", "email": "bob@x.org"})), &Default::default()).unwrap();
        assert_eq!(u.username, "bob");
        c.username_claim = "email_local".into();
        let err = map_user(
            &c,
            &claims(serde_json::json!({"sub": "1", "email": "bob@x.org", "email_verified": false})),
            &Default::default(),
        )
        .unwrap_err();
        assert!(matches!(err, MapError::MissingClaim { .. }), "an unverified e-mail is no e-mail: {err}");
    }

    #[test]
    fn allow_lists_refuse() {
        let mut c = cfg();
        c.allowed_email_domains = vec!["example.com".into()];
        let base = serde_json::json!({"sub": "1", "preferred_username": "e", "email": "e@evil.org"});
        assert!(matches!(map_user(&c, &claims(base), &Default::default()), Err(MapError::EmailDomain { .. })));
        let ok = serde_json::json!({"sub": "1", "preferred_username": "e", "email": "e@EXAMPLE.com", "groups": ["g"]});
        assert!(map_user(&c, &claims(ok.clone()), &Default::default()).is_ok());
        c.allowed_groups = vec!["staff".into()];
        assert!(matches!(map_user(&c, &claims(ok), &Default::default()), Err(MapError::Groups)));
    }

    #[test]
    fn missing_or_bad_username_is_refused() {
        let c = cfg();
        assert!(map_user(&c, &claims(serde_json::json!({"sub": "1"})), &Default::default()).is_err());
        let bad = serde_json::json!({"sub": "1", "preferred_username": "a\u{0}b"});
        assert!(matches!(map_user(&c, &claims(bad), &Default::default()), Err(MapError::BadUsername(_))));
    }
}
