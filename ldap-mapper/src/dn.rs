//! Distinguished names as they appear in configuration (`users_dn`, `groups_dn`, `bind_dn`): checked at start-up
//! so that a stray space, the classic cause of "no users found", is reported with its exact place.

/// Checks a DN and says exactly what is wrong: empty, a component without `=`, or a leading/trailing space in an
/// RDN (with its position). Spaces inside values (`ou=Sales Team`) are fine.
pub fn check(dn: &str) -> Result<(), String> {
    if dn.is_empty() {
        return Err("is empty".into());
    }
    if dn.trim() != dn {
        let which = if dn.starts_with(char::is_whitespace) { "leading" } else { "trailing" };
        return Err(format!("has a {which} space: {dn:?}"));
    }
    for (i, rdn) in split_rdns(dn).iter().enumerate() {
        let n = i + 1;
        let Some((attr, value)) = rdn.split_once('=') else {
            return Err(format!("RDN {n} ({rdn:?}) has no '=': write it as attribute=value"));
        };
        if attr.trim().is_empty() || value.trim().is_empty() {
            return Err(format!("RDN {n} ({rdn:?}) has an empty attribute or value"));
        }
        if rdn.starts_with(char::is_whitespace) {
            return Err(format!("leading space in RDN {n}: {rdn:?} (after the comma); remove it"));
        }
        if rdn.ends_with(char::is_whitespace) && !rdn.ends_with("\\ ") {
            return Err(format!("trailing space in RDN {n}: {rdn:?} (before the comma); remove it"));
        }
        if attr != attr.trim() || value.starts_with(' ') {
            return Err(format!("space around '=' in RDN {n}: {rdn:?}; remove it"));
        }
    }
    Ok(())
}

/// Splits a DN at unescaped commas.
pub fn split_rdns(dn: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                out.push(&dn[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    out.push(&dn[start..]);
    out
}

/// The value of the first RDN with its DN escapes removed (`cn=ai-admins,ou=groups,…` → `ai-admins`,
/// `cn=pets\\2Cai-admins,…` → `pets,ai-admins`), used as a group's name: the name its `cn` holds.
pub fn first_value(dn: &str) -> Option<String> {
    split_rdns(dn).first().and_then(|rdn| unescaped_value(rdn))
}

/// The value of an RDN with its DN escapes (RFC 4514 §2.4: `\\` and a character, or two hex digits of a UTF-8
/// byte) removed: `Smith\\, John` and `Smith\\2C John` → `Smith, John`.
fn unescaped_value(rdn: &str) -> Option<String> {
    let (_, v) = rdn.split_once('=')?;
    let v = v.trim().as_bytes();
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (v[i], v.get(i + 1).copied(), v.get(i + 2).copied()) {
            (b'\\', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(u8::try_from(hex(h)? * 16 + hex(l)?).ok()?);
                i += 3;
            }
            (b'\\', Some(c), _) => {
                out.push(c);
                i += 2;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The Keycloak-style `/full/path` of the group at `group_dn`: `parent` (Keycloak's `groups.path`, `""` for the
/// root), then the values of the RDNs between `groups_dn` and the group, outermost first
/// (`cn=ai-admins,ou=eng,<groups_dn>` → `/eng/ai-admins`). A group outside `groups_dn` (a `memberOf` value
/// elsewhere) is placed right under `parent`. A `/` inside a name is written `~/`, as Keycloak escapes it.
pub fn group_path(group_dn: &str, groups_dn: &str, parent: &str) -> Option<String> {
    let rdns = split_rdns(group_dn);
    let base = split_rdns(groups_dn);
    let norm = |r: &&str| r.trim().to_ascii_lowercase();
    let below = rdns.len() > base.len()
        && !groups_dn.is_empty()
        && rdns[rdns.len() - base.len()..].iter().map(norm).eq(base.iter().map(norm));
    let own: &[&str] = if below { &rdns[..rdns.len() - base.len()] } else { &rdns[..rdns.len().min(1)] };
    let mut path = parent.to_string();
    for rdn in own.iter().rev() {
        let v = unescaped_value(rdn)?;
        if v.is_empty() {
            return None;
        }
        path.push('/');
        path.push_str(&v.replace('/', "~/"));
    }
    (path.len() > parent.len()).then_some(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn group_paths_follow_the_position_under_the_groups_base() {
        let base = "ou=groups,dc=example,dc=org";
        assert_eq!(group_path("cn=staff,ou=groups,dc=example,dc=org", base, "").unwrap(), "/staff");
        assert_eq!(group_path("cn=ai-admins,ou=eng,ou=Groups,dc=example,dc=org", base, "").unwrap(), "/eng/ai-admins");
        assert_eq!(
            group_path("cn=ai-admins,ou=eng,ou=groups,dc=example,dc=org", base, "/ldap").unwrap(),
            "/ldap/eng/ai-admins"
        );
        // Outside the base: right under the parent; escapes undone, '/' escaped as Keycloak does.
        assert_eq!(group_path("cn=ops,ou=other,dc=example,dc=org", base, "").unwrap(), "/ops");
        assert_eq!(group_path("cn=R\\, D,ou=groups,dc=example,dc=org", base, "").unwrap(), "/R, D");
        assert_eq!(group_path("cn=a/b,ou=groups,dc=example,dc=org", base, "").unwrap(), "/a~/b");
        assert_eq!(group_path("", base, ""), None);
    }

    #[test]
    fn accepts_normal_dns() {
        assert!(check("ou=people,dc=example,dc=org").is_ok());
        assert!(check("OU=Sales Team,DC=corp,DC=example").is_ok());
        assert!(check("cn=Smith\\, John,ou=people,dc=example,dc=org").is_ok());
    }

    #[test]
    fn says_exactly_where_the_space_is() {
        assert_eq!(
            check(" ou=people,dc=example,dc=org").unwrap_err(),
            "has a leading space: \" ou=people,dc=example,dc=org\""
        );
        assert_eq!(
            check("ou=people, dc=example,dc=org").unwrap_err(),
            "leading space in RDN 2: \" dc=example\" (after the comma); remove it"
        );
        assert_eq!(
            check("ou=people ,dc=example,dc=org").unwrap_err(),
            "trailing space in RDN 1: \"ou=people \" (before the comma); remove it"
        );
        assert!(check("ou=people,dc").unwrap_err().contains("RDN 2"));
        assert!(check("").is_err());
    }

    #[test]
    fn first_value_is_the_group_name() {
        assert_eq!(first_value("cn=ai-admins,ou=groups,dc=example,dc=org").as_deref(), Some("ai-admins"));
        assert_eq!(first_value("cn=pets\\2Cai-admins,ou=groups,dc=x").as_deref(), Some("pets,ai-admins"));
        assert_eq!(first_value("cn=pets\\,ai-admins,ou=groups,dc=x").as_deref(), Some("pets,ai-admins"));
        assert_eq!(first_value("cn=caf\\C3\\A9,dc=x").as_deref(), Some("caf\u{e9}"));
        assert_eq!(split_rdns("cn=a\\,b,dc=x"), vec!["cn=a\\,b", "dc=x"]);
    }
}
