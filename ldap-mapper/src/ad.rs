//! Active Directory specifics that plain LDAP does not have: the reason hidden in a refused bind's diagnostic
//! message, and the logon names AD users type (`alice@corp.test`, `CORP\alice`).
//!
//! AD (and Samba AD) refuses a bind with result 49 for a wrong password, but also for a disabled, expired or
//! locked-out account and for a password that has expired or must be changed; only the diagnostic message tells
//! them apart: `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 533, v4563`. Samba
//! writes the same `data` codes (`... AcceptSecurityContext error, data 52e, v1db1`).

use std::fmt;

/// Why AD refused a bind (result 49), read from the `data <hex>` sub-code of its diagnostic message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindRefusal {
    /// `52e`: the password is wrong (or the user unknown, as AD sometimes says for a bad DN).
    WrongPassword,
    /// `525`: no such user.
    NoSuchUser,
    /// `530`: logging on is not allowed at this time (logon hours).
    LogonHours,
    /// `531`: logging on is not allowed from this workstation.
    Workstation,
    /// `532`: the password has expired.
    PasswordExpired,
    /// `533`: the account is disabled.
    AccountDisabled,
    /// `701`: the account has expired (`accountExpires`).
    AccountExpired,
    /// `773`: the password must be changed at next logon (`pwdLastSet = 0`).
    MustChangePassword,
    /// `775`: the account is locked out (too many wrong passwords).
    LockedOut,
}

impl BindRefusal {
    /// Reads the reason from a result-49 diagnostic message; `None` when it is not AD's `AcceptSecurityContext`
    /// form or the sub-code is unknown (then it is treated as a wrong password).
    pub fn parse(message: &str) -> Option<Self> {
        let lower = message.to_ascii_lowercase();
        let at = lower.find("acceptsecuritycontext")?;
        let rest = &lower[at..];
        let data = rest.find("data ")?;
        let code: String = rest[data + 5..].trim_start().chars().take_while(char::is_ascii_hexdigit).collect();
        Some(match code.trim_start_matches('0') {
            "52e" => Self::WrongPassword,
            "525" => Self::NoSuchUser,
            "530" => Self::LogonHours,
            "531" => Self::Workstation,
            "532" => Self::PasswordExpired,
            "533" => Self::AccountDisabled,
            "701" => Self::AccountExpired,
            "773" => Self::MustChangePassword,
            "775" => Self::LockedOut,
            _ => return None,
        })
    }

    /// AD's sub-code, as in its message (`533`).
    pub fn code(self) -> &'static str {
        match self {
            Self::WrongPassword => "52e",
            Self::NoSuchUser => "525",
            Self::LogonHours => "530",
            Self::Workstation => "531",
            Self::PasswordExpired => "532",
            Self::AccountDisabled => "533",
            Self::AccountExpired => "701",
            Self::MustChangePassword => "773",
            Self::LockedOut => "775",
        }
    }

    /// The `reason=` of the operator's log line (and of `fedgate ldap probe`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong password",
            Self::NoSuchUser => "no such user",
            Self::LogonHours => "outside the account's logon hours",
            Self::Workstation => "not allowed from this workstation",
            Self::PasswordExpired => "password expired",
            Self::AccountDisabled => "account disabled",
            Self::AccountExpired => "account expired",
            Self::MustChangePassword => "password must be changed at next logon",
            Self::LockedOut => "account locked out",
        }
    }

    /// The right password was given but it must be changed first (`532`, `773`): the user is told so, since
    /// only the password's owner gets this answer.
    pub fn password_change_required(self) -> bool {
        matches!(self, Self::PasswordExpired | Self::MustChangePassword)
    }

    /// A plain credential failure (`52e`, `525`): counts as a wrong password.
    pub fn is_wrong_credentials(self) -> bool {
        matches!(self, Self::WrongPassword | Self::NoSuchUser)
    }
}

impl fmt::Display for BindRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (AD data {})", self.reason(), self.code())
    }
}

/// A logon name as AD users type it, split into what to search for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogonName<'a> {
    /// A plain account name (`alice`): searched in the username attribute (`sAMAccountName`).
    Account(&'a str),
    /// A user principal name (`alice@corp.test`): searched in `userPrincipalName`.
    Principal(&'a str),
    /// A down-level name (`CORP\alice`) of the configured NetBIOS domain: its account part.
    DownLevel(&'a str),
    /// A down-level name of another domain: matches nobody.
    ForeignDomain,
}

impl<'a> LogonName<'a> {
    /// Splits `typed`: `DOMAIN\user` when `netbios_domain` is set and matches (case-insensitively), `user@realm`
    /// for anything with an `@`, else a plain account name. A backslash name without a configured domain stays
    /// a plain name (and finds nobody, since `sAMAccountName` cannot hold `\`).
    pub fn parse(typed: &'a str, netbios_domain: Option<&str>) -> Self {
        if let (Some(domain), Some((prefix, account))) = (netbios_domain, typed.split_once('\\')) {
            return if prefix.eq_ignore_ascii_case(domain) && !account.is_empty() {
                Self::DownLevel(account)
            } else {
                Self::ForeignDomain
            };
        }
        if typed.contains('@') {
            return Self::Principal(typed);
        }
        Self::Account(typed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn real_ad_and_samba_messages_are_read() {
        // Windows Server 2016/2019 messages, as ldapsearch prints them.
        let cases = [
            (
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563\0",
                BindRefusal::WrongPassword,
            ),
            (
                "80090308: LdapErr: DSID-0C090447, comment: AcceptSecurityContext error, data 525, v3839",
                BindRefusal::NoSuchUser,
            ),
            (
                "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 530, v2580",
                BindRefusal::LogonHours,
            ),
            (
                "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 531, v2580",
                BindRefusal::Workstation,
            ),
            (
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 532, v4563",
                BindRefusal::PasswordExpired,
            ),
            (
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 533, v4563",
                BindRefusal::AccountDisabled,
            ),
            (
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 701, v4563",
                BindRefusal::AccountExpired,
            ),
            (
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 773, v4563",
                BindRefusal::MustChangePassword,
            ),
            (
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563",
                BindRefusal::LockedOut,
            ),
            // Samba 4.17 (source4/dsdb/samdb/ldb_modules and auth/): same codes, Samba's own DSID and version.
            (
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1",
                BindRefusal::WrongPassword,
            ),
            (
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 533, v1db1",
                BindRefusal::AccountDisabled,
            ),
            (
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 773, v1db1",
                BindRefusal::MustChangePassword,
            ),
            (
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1",
                BindRefusal::LockedOut,
            ),
            // Older servers pad the code to 8 digits.
            (
                "8009030C: LdapErr: DSID-0C0904DC, comment: AcceptSecurityContext error, data 00000533, v2580",
                BindRefusal::AccountDisabled,
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(BindRefusal::parse(msg), Some(want), "{msg}");
        }
    }

    #[test]
    fn other_messages_are_not_guessed() {
        for msg in [
            "",
            "Invalid credentials",
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 999, v4563",
            "AcceptSecurityContext error",
            "AcceptSecurityContext error, data zz",
            "data 533 but not from AD",
        ] {
            assert_eq!(BindRefusal::parse(msg), None, "{msg:?}");
        }
    }

    #[test]
    fn only_expired_and_must_change_passwords_are_told_to_the_user() {
        assert!(BindRefusal::PasswordExpired.password_change_required());
        assert!(BindRefusal::MustChangePassword.password_change_required());
        assert!(!BindRefusal::AccountDisabled.password_change_required());
        assert!(BindRefusal::WrongPassword.is_wrong_credentials());
        assert_eq!(BindRefusal::LockedOut.to_string(), "account locked out (AD data 775)");
    }

    #[test]
    fn logon_names_are_split() {
        use LogonName::*;
        assert_eq!(LogonName::parse("alice", Some("CORP")), Account("alice"));
        assert_eq!(LogonName::parse("alice@corp.test", Some("CORP")), Principal("alice@corp.test"));
        assert_eq!(LogonName::parse("CORP\\alice", Some("CORP")), DownLevel("alice"));
        assert_eq!(LogonName::parse("corp\\alice", Some("CORP")), DownLevel("alice"));
        assert_eq!(LogonName::parse("OTHER\\alice", Some("CORP")), ForeignDomain);
        assert_eq!(LogonName::parse("CORP\\", Some("CORP")), ForeignDomain);
        assert_eq!(LogonName::parse("CORP\\alice", None), Account("CORP\\alice"));
        assert_eq!(LogonName::parse("CORP\\alice@x", Some("CORP")), DownLevel("alice@x"));
    }
}
