//! What can go wrong talking to the directory. Credential failures and directory failures are different
//! variants, because a login page must treat them differently ("wrong password" vs "try again later").

/// An ldap-mapper error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown user, wrong password, empty password, several matching entries. One message for all of them, so
    /// callers cannot tell which (no user enumeration); the precise reason is logged where it is found.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The account exists and the password may be right, but the directory marks it disabled or expired (AD).
    #[error("account disabled or expired: {0}")]
    AccountDisabled(String),
    /// No configured URL could be reached, or an operation timed out.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The directory answered with data the configuration cannot map (e.g. an entry without the username
    /// attribute). An operator must fix the configuration.
    #[error("entry {dn} has no {attribute} attribute (the configured {key}); it has: {available}")]
    Misconfigured {
        /// The entry.
        dn: String,
        /// The missing attribute.
        attribute: String,
        /// The configuration key naming it.
        key: &'static str,
        /// The attributes the entry does have, comma-separated.
        available: String,
    },
    /// The service account could not bind: its DN or password is wrong.
    #[error(
        "the service account {bind_dn} could not bind (result {rc}: {text}); check ldap.bind_dn and ldap.bind_password"
    )]
    ServiceBind {
        /// The bind DN.
        bind_dn: String,
        /// LDAP result code.
        rc: u32,
        /// Server text.
        text: String,
    },
    /// The directory refused an operation for a reason other than credentials (e.g. a search under a Users DN
    /// that does not exist).
    #[error("the directory refused {operation} (result {rc}: {text})")]
    Refused {
        /// What was attempted.
        operation: &'static str,
        /// LDAP result code.
        rc: u32,
        /// Server text.
        text: String,
    },
    /// TLS settings could not be built (e.g. an unreadable `ca_file`).
    #[error("ldap TLS setup: {0}")]
    Tls(String),
}

impl Error {
    /// True for errors that mean "the directory could not be asked", not "the user is wrong".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
