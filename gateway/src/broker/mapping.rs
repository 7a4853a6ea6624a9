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
    /// The provider says the e-mail address is not verified (`email_verified: false`), and the mapping would make
    /// it the username or look the account up by it: anyone can type someone else's address at such a provider.
    #[error("the provider has not verified the e-mail address in \"{claim}\", so it cannot name or find an account")]
    UnverifiedEmail {
        /// The e-mail claim.
        claim: String,
    },
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

/// Whether the provider says the e-mail address is not verified (`email_verified` false; absent counts as
/// verified, as providers such as Entra ID send none).
fn email_unverified(claims: &Map<String, Value>) -> bool {
    claims.get("email_verified").is_some_and(|v| v == &Value::Bool(false) || v == "false")
}

/// The e-mail address, unless the provider says it is unverified.
fn email(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>) -> Option<String> {
    string_claim(claims, &cfg.email_claim).filter(|_| !email_unverified(claims))
}

/// The value of claim `path` when it names or finds an account (a username claim, the `link_claim`): the e-mail
/// claim counts only when verified, since an unverified address is whatever the person typed at the provider.
fn identifying_claim(
    cfg: &UpstreamOidcConfig,
    claims: &Map<String, Value>,
    path: &str,
) -> Result<Option<String>, MapError> {
    let is_email = path == cfg.email_claim || path == "email";
    if is_email && email_unverified(claims) && claim_path(claims, path).is_some() {
        return Err(MapError::UnverifiedEmail { claim: path.into() });
    }
    Ok(string_claim(claims, path))
}

/// The value of `link_claim` (`link = "ldap"`), refused when it is an unverified e-mail address; `None` when the
/// claim is missing or empty.
pub fn link_value(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>) -> Result<Option<String>, MapError> {
    identifying_claim(cfg, claims, &cfg.link_claim)
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

/// The value of one template variable: `email_local`, `email_domain`, or a claim path (the e-mail claim only
/// when verified).
fn variable(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>, name: &str) -> Result<Option<String>, MapError> {
    let part = |local: bool| {
        if email_unverified(claims) && string_claim(claims, &cfg.email_claim).is_some() {
            return Err(MapError::UnverifiedEmail { claim: cfg.email_claim.clone() });
        }
        Ok(email(cfg, claims).and_then(|e| e.split_once('@').map(|(l, d)| if local { l } else { d }.to_string())))
    };
    match name {
        "email_local" => part(true),
        "email_domain" => part(false),
        _ => identifying_claim(cfg, claims, name),
    }
}

/// `username_claim`: a claim path, `email_local`, or a template such as `"{email_local}"`.
fn username(cfg: &UpstreamOidcConfig, claims: &Map<String, Value>) -> Result<String, MapError> {
    let spec = cfg.username_claim.trim();
    let name = if !spec.contains('{') {
        variable(cfg, claims, spec)?.ok_or_else(|| MapError::MissingClaim { claim: spec.into() })?
    } else {
        let mut out = String::new();
        let mut rest = spec;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').unwrap_or(after.len());
            let var = after[..close].trim();
            out.push_str(&variable(cfg, claims, var)?.ok_or_else(|| MapError::MissingClaim { claim: var.into() })?);
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
        assert!(matches!(err, MapError::UnverifiedEmail { .. }), "an unverified e-mail names no one: {err}");
    }

    #[test]
    fn an_unverified_email_neither_names_nor_finds_an_account() {
        let unverified = claims(serde_json::json!({"sub": "1", "email": "bob@x.org", "email_verified": false}));
        let verified = claims(serde_json::json!({"sub": "1", "email": "bob@x.org", "email_verified": true}));
        let silent = claims(serde_json::json!({"sub": "1", "email": "bob@x.org"}));
        let mut c = cfg();
        c.username_claim = "email".into();
        assert!(matches!(map_user(&c, &unverified, &Default::default()), Err(MapError::UnverifiedEmail { .. })));
        assert_eq!(map_user(&c, &verified, &Default::default()).unwrap().username, "bob@x.org");
        assert!(matches!(link_value(&c, &unverified), Err(MapError::UnverifiedEmail { .. })));
        assert_eq!(link_value(&c, &verified).unwrap().as_deref(), Some("bob@x.org"));
        assert_eq!(link_value(&c, &silent).unwrap().as_deref(), Some("bob@x.org"), "no email_verified: as Entra ID");
        c.link_claim = "preferred_username".into();
        assert_eq!(link_value(&c, &unverified).unwrap(), None, "another claim is not the e-mail address");
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
