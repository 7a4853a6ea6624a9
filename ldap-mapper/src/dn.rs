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

/// The value of the first RDN (`cn=ai-admins,ou=groups,…` → `ai-admins`), used as a group's name.
pub fn first_value(dn: &str) -> Option<&str> {
    split_rdns(dn).first().and_then(|rdn| rdn.split_once('=')).map(|(_, v)| v.trim())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

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
        assert_eq!(first_value("cn=ai-admins,ou=groups,dc=example,dc=org"), Some("ai-admins"));
        assert_eq!(split_rdns("cn=a\\,b,dc=x"), vec!["cn=a\\,b", "dc=x"]);
    }
}
