//! LDAP search filters (RFC 4515): escaping values that go into a filter, and checking configured filters.

use std::borrow::Cow;

/// Escapes a value for use inside a filter: `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`,
/// so user input can never add wildcards or clauses.
pub fn escape(value: &str) -> Cow<'_, str> {
    ldap3::ldap_escape(value)
}

/// `(&<base>(<attribute>=<escaped value>))`.
pub fn and_equals(base: &str, attribute: &str, value: &str) -> String {
    format!("(&{base}({attribute}={}))", escape(value))
}

/// Checks that `filter` is one parenthesised LDAP filter with balanced parentheses and no stray text. Returns what
/// is wrong.
pub fn check(filter: &str) -> Result<(), String> {
    let f = filter.trim();
    if f != filter {
        return Err("has leading or trailing spaces".into());
    }
    if !f.starts_with('(') || !f.ends_with(')') {
        return Err("must be enclosed in parentheses, e.g. (objectClass=inetOrgPerson)".into());
    }
    let mut depth: i32 = 0;
    for (i, c) in f.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced ')' at position {i}"));
                }
                if depth == 0 && i != f.len() - 1 {
                    return Err(format!("text after the closing ')' at position {i}"));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses: a ')' is missing".into());
    }
    if f == "()" || !f.contains('=') && !f.contains(":=") {
        return Err("has no attribute=value test".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("*"), "\\2a");
        assert_eq!(escape("alice)(uid=*"), "alice\\29\\28uid=\\2a");
        assert_eq!(escape("a\\b"), "a\\5cb");
        assert_eq!(escape("nul\0x"), "nul\\00x");
        assert_eq!(and_equals("(objectClass=person)", "uid", "admin*"), "(&(objectClass=person)(uid=admin\\2a))");
    }

    #[test]
    fn checks_configured_filters() {
        assert!(check("(objectClass=inetOrgPerson)").is_ok());
        assert!(check("(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))").is_ok());
        assert!(check("objectClass=person").is_err());
        assert!(check("(objectClass=person").is_err());
        assert!(check("(a=b))").is_err());
        assert!(check("(a=b)(c=d)").is_err());
        assert!(check(" (a=b)").is_err());
    }
}
