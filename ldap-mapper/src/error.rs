//! What can go wrong talking to the directory. Credential failures and directory failures are different
//! variants, because a login page must treat them differently ("wrong password" vs "try again later").
//!
//! Each message says what failed (the file, the URL, the operation); the reason is the error's
//! [`source`](std::error::Error::source), so the cause chain is kept. [`Error::chain`] renders both on one line.

use std::path::PathBuf;
use std::time::Duration;

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
    /// Active Directory refused the bind for a reason its message names (result 49 with `AcceptSecurityContext
    /// error, data <code>`): disabled, expired, locked out, password expired or to be changed, logon hours,
    /// workstation. Only [`BindRefusal::password_change_required`](crate::ad::BindRefusal::password_change_required)
    /// ones may be told to the user; the others look like [`Error::InvalidCredentials`] from outside.
    #[error("Active Directory refused the bind: {0}")]
    AdBindRefused(crate::ad::BindRefusal),
    /// The directory could not be asked: no URL answered, an operation failed or timed out, or every connection
    /// of a pool stayed busy.
    #[error(transparent)]
    Unavailable(Unavailable),
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
    /// `bind_password_file` could not be read.
    #[error("cannot read ldap.bind_password_file = {}", path.display())]
    BindPasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ca_file` could not be read, is not PEM, or holds no certificate.
    #[error("cannot read the CA certificates in ldap.ca_file = {}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate in `ca_file` is PEM but not a CA certificate rustls accepts.
    #[error("ldap.ca_file = {} holds a certificate that cannot be trusted as a CA", path.display())]
    CaCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// `subject_map_file` could not be read or parsed.
    #[error(transparent)]
    SubjectMap(#[from] crate::subject::SubjectMapError),
    /// rustls could not build the TLS client settings for the directory.
    #[error("cannot build the TLS settings for the directory")]
    TlsSettings(#[source] rustls::Error),
}

/// Why the directory could not be asked (the source of [`Error::Unavailable`]).
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// `urls` is empty (refused by validation; kept for a directory built without it).
    #[error("no ldap URL configured")]
    NoUrl,
    /// No configured URL accepted a connection. The source is the last URL's error; each failure is also logged
    /// as it happens.
    #[error("no directory URL answered (tried {}){}", urls.join(", "), hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Connect {
        /// The URLs tried, in order.
        urls: Vec<String>,
        /// How to fix the last failure, when it is a known one (see [`tls_hint`]).
        hint: Option<&'static str>,
        /// Why the last one failed.
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// An operation on an open connection failed at the transport level or timed out.
    #[error("ldap {operation} on {url} failed")]
    Operation {
        /// What was attempted (`search`, `bind`, `service bind`).
        operation: &'static str,
        /// The directory URL the connection goes to.
        url: String,
        /// Why.
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// Every connection of a pool was busy for all of `pool_wait_timeout`.
    #[error(
        "all {max} {pool} connections to the directory stayed busy for {waited:?}; raise ldap.max_connections \
         (or ldap.pool_wait_timeout)"
    )]
    PoolExhausted {
        /// Which pool (`service` searches or user `bind`s).
        pool: &'static str,
        /// Its `max_connections`.
        max: usize,
        /// How long the caller waited.
        waited: Duration,
    },
}

/// What to do about a certificate the directory presented that does not name the host in the URL.
pub const CERT_NAME_HINT: &str = "the directory's certificate does not name the host in ldap.urls in its \
     subjectAltName (a DC's self-generated certificate has only a CN, which TLS clients ignore): give the DC a \
     certificate with its DNS name or IP address in subjectAltName, signed by a CA you put in ldap.ca_file, and use \
     exactly that name or IP in ldap.urls (see docs/active-directory.md, \"Certificates\")";

/// A fix for a connection failure whose cause is recognised: today a certificate not valid for the URL's name
/// (rustls `certificate not valid for name`, e.g. a Samba DC's CN-only certificate).
pub fn tls_hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if text.contains("not valid for name") || text.contains("NotValidForName") {
            return Some(CERT_NAME_HINT);
        }
        cause = c.source();
    }
    None
}

impl From<Unavailable> for Error {
    fn from(e: Unavailable) -> Self {
        Self::Unavailable(e)
    }
}

impl Error {
    /// True for errors that mean "the directory could not be asked", not "the user is wrong".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// This error and its causes on one line, `what failed: why: why` (for logs and command output, where
    /// `Display` alone says only what failed).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_and_the_message_names_what_failed() {
        let e = Error::BindPasswordFile {
            path: "/etc/fedgate/ldap-password".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.to_string(), "cannot read ldap.bind_password_file = /etc/fedgate/ldap-password");
        let source = std::error::Error::source(&e).expect("the io::Error is the source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(e.chain().ends_with(": permission denied"), "{}", e.chain());
        assert!(!e.is_unavailable(), "a file problem is not a directory outage");
        let busy = Error::from(Unavailable::PoolExhausted { pool: "bind", max: 4, waited: Duration::from_secs(5) });
        assert!(busy.is_unavailable());
        assert_eq!(
            busy.chain(),
            "all 4 bind connections to the directory stayed busy for 5s; raise \
             ldap.max_connections (or ldap.pool_wait_timeout)"
        );
    }

    #[test]
    fn a_certificate_without_the_name_gets_a_fix() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let io = std::io::Error::other(tls);
        let e = Error::from(Unavailable::Connect {
            urls: vec!["ldaps://127.0.0.1:636".into()],
            hint: tls_hint(&io),
            source: Box::new(ldap3::LdapError::Io { source: io }),
        });
        let chain = e.chain();
        assert!(chain.contains("subjectAltName"), "{chain}");
        assert!(chain.contains("ldap.ca_file"), "{chain}");
        assert!(chain.contains("NotValidForName") || chain.contains("not valid for name"), "{chain}");
        let other = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_hint(&other), None);
    }
}
