//! The configured directory, as the login path sees it: LDAP / Active Directory, or the static demo users.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use ldap_mapper::{MappedUser, RoleMap};

use crate::config::{StaticDirectoryConfig, StaticUser};

/// Why a login did not produce a user. Callers show one generic message for every credential failure; the
/// precise reason is logged here.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, empty password, ambiguous match, disabled account: all look the same outside.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password is right but has expired or must be changed first (Active Directory); the user is told so.
    #[error("password expired or must be changed")]
    PasswordChangeRequired,
    /// The directory could not be asked; this is not the user's fault.
    #[error("directory unavailable")]
    Unavailable(#[source] DirectoryFailure),
    /// The directory answered with something the mapping cannot use (e.g. an entry without the username
    /// attribute); an operator must fix the configuration.
    #[error("directory misconfigured")]
    Misconfigured(#[source] DirectoryFailure),
}

/// What failed when the directory was asked.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryFailure {
    /// LDAP: the server, the connection, TLS, the service account or the mapping.
    #[error(transparent)]
    Ldap(ldap_mapper::Error),
    /// The password hash check (on a blocking thread) did not complete.
    #[error("the password check did not complete")]
    PasswordCheck(#[source] tokio::task::JoinError),
    /// A login target found in one directory was checked against another (a programming error).
    #[error("login target from another directory")]
    ForeignTarget,
}

/// The directory in use.
pub enum Directory {
    /// Demo users from `[directory]`.
    Static(StaticDirectory),
    /// LDAP or Active Directory from `[ldap]`.
    Ldap(Box<ldap_mapper::LdapDirectory>),
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Directory {
    /// A short name for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Static(_) => "static",
            Self::Ldap(_) => "ldap",
        }
    }

    /// Checks a username and password and returns the mapped user ([`Directory::find`] then [`Directory::verify`]).
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<MappedUser, AuthError> {
        let target = self.find(username).await?;
        self.verify(target, password).await
    }

    /// Finds the account `username` names, before any password is checked, so the login path can count
    /// failures per account ([`LoginTarget::account`]) whatever spelling the directory matched.
    pub async fn find(&self, username: &str) -> Result<LoginTarget, AuthError> {
        Ok(match self {
            Self::Static(d) => LoginTarget::Static(d.users.get(&username.to_lowercase()).cloned()),
            Self::Ldap(d) => LoginTarget::Ldap(d.find_login(username).await.map_err(from_ldap)?),
        })
    }

    /// Checks `password` for the account found. An unknown user costs the same work as a wrong password: a bind
    /// with a DN nobody has (LDAP), or a check against a dummy hash (static).
    pub async fn verify(&self, target: LoginTarget, password: &str) -> Result<MappedUser, AuthError> {
        // An empty password is refused before any directory sees it: to LDAP it is an anonymous bind that "succeeds".
        if password.is_empty() {
            tracing::debug!("empty password refused before reaching the directory");
            return Err(AuthError::InvalidCredentials);
        }
        match (self, target) {
            (Self::Static(d), LoginTarget::Static(user)) => d.verify(user, password).await,
            (Self::Ldap(d), LoginTarget::Ldap(t)) => d.finish_login(t, password).await.map_err(from_ldap),
            _ => Err(AuthError::Misconfigured(DirectoryFailure::ForeignTarget)),
        }
    }

    /// The current data of `username` without a password (token refresh, userinfo); `Ok(None)` if the user is gone.
    pub async fn lookup(&self, username: &str) -> Result<Option<MappedUser>, AuthError> {
        match self {
            Self::Static(d) => Ok(d.users.get(&username.to_lowercase()).map(|u| d.map(u))),
            Self::Ldap(d) => d.lookup(username).await.map_err(from_ldap),
        }
    }

    /// The accounts whose `attribute` equals `value`, without a password (linking an upstream sign-in): how many
    /// matched, and the user when exactly one did. The static directory matches `mail` and the username only.
    pub async fn find_by_attribute(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<(usize, Option<MappedUser>), AuthError> {
        match self {
            Self::Static(d) => {
                let found: Vec<_> = d
                    .users
                    .values()
                    .filter(|u| match attribute {
                        "mail" | "email" => u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(value)),
                        "uid" | "username" => u.username.eq_ignore_ascii_case(value),
                        _ => false,
                    })
                    .collect();
                Ok(match found.as_slice() {
                    [one] => (1, Some(d.map(one))),
                    many => (many.len(), None),
                })
            }
            Self::Ldap(d) => d.find_by_attribute(attribute, value).await.map_err(from_ldap),
        }
    }

    /// Whether the directory can serve logins right now (for `/readyz`).
    pub async fn check(&self) -> Result<(), AuthError> {
        match self {
            Self::Static(_) => Ok(()),
            Self::Ldap(d) => d.check().await.map_err(from_ldap),
        }
    }
}

/// The account a login names, found before the password is checked.
#[derive(Debug)]
pub enum LoginTarget {
    /// A static user, or `None` for an unknown name.
    Static(Option<Arc<StaticUser>>),
    /// An LDAP entry (or none).
    Ldap(ldap_mapper::LoginTarget),
}

impl LoginTarget {
    /// A stable name for the account found (`static:<username>` or `dn:<dn>`, lower-cased), for counting failed
    /// logins per account; `None` when the name matched no account.
    pub fn account(&self) -> Option<String> {
        match self {
            Self::Static(u) => u.as_ref().map(|u| format!("static:{}", u.username.to_lowercase())),
            Self::Ldap(t) => t.dn().map(|dn| format!("dn:{}", dn.to_lowercase())),
        }
    }
}

/// An argon2id hash (default parameters) of a random password nobody knows: checking an unknown user's password
/// against it costs as much as checking a real one.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$3pyhl3bmcV1DxWEsvUzXlA$0GSXnCxgSrjqbRU7a4SNtbdj1eyA9Cn1WuelS+YQ68k";

/// Directory errors as the login path sees them: a disabled account looks like any other credential failure to
/// the person at the form (the reason is already logged), a directory that cannot be asked is not their fault.
fn from_ldap(e: ldap_mapper::Error) -> AuthError {
    use ldap_mapper::Error as E;
    match e {
        E::AdBindRefused(r) if r.password_change_required() => AuthError::PasswordChangeRequired,
        E::InvalidCredentials | E::AccountDisabled(_) | E::AdBindRefused(_) => AuthError::InvalidCredentials,
        E::Unavailable(_)
        | E::ServiceBind { .. }
        | E::Refused { .. }
        | E::BindPasswordFile { .. }
        | E::CaFile { .. }
        | E::CaCertificate { .. }
        | E::SubjectMap(_)
        | E::TlsSettings(_) => AuthError::Unavailable(DirectoryFailure::Ldap(e)),
        E::Misconfigured { .. } => AuthError::Misconfigured(DirectoryFailure::Ldap(e)),
    }
}

/// The static demo directory: users and argon2id hashes from the configuration.
pub struct StaticDirectory {
    users: HashMap<String, Arc<StaticUser>>,
    roles: RoleMap,
    /// Verified against for unknown users so that "no such user" takes as long as "wrong password".
    dummy_hash: String,
}

impl StaticDirectory {
    /// Builds the directory from `[directory]` and `[roles]`.
    pub fn new(cfg: &StaticDirectoryConfig, roles: RoleMap) -> Self {
        let users = cfg.users.iter().map(|u| (u.username.to_lowercase(), Arc::new(u.clone()))).collect();
        Self { users, roles, dummy_hash: DUMMY_HASH.to_string() }
    }

    async fn verify(&self, user: Option<Arc<StaticUser>>, password: &str) -> Result<MappedUser, AuthError> {
        let hash = user.as_ref().map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.expose().to_owned());
        let password = password.to_owned();
        // argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .map_err(|e| AuthError::Unavailable(DirectoryFailure::PasswordCheck(e)))?;
        match (user, ok) {
            (Some(u), true) => Ok(self.map(&u)),
            (None, _) => {
                tracing::info!(reason = "unknown user", "static directory refused login");
                Err(AuthError::InvalidCredentials)
            }
            (Some(_), false) => {
                tracing::info!(reason = "wrong password", "static directory refused login");
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    fn map(&self, u: &StaticUser) -> MappedUser {
        let mut groups = u.groups.clone();
        groups.sort();
        groups.dedup();
        MappedUser {
            username: u.username.clone(),
            unique_id: format!("static:{}", u.username.to_lowercase()),
            dn: String::new(),
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            given_name: u.given_name.clone(),
            family_name: u.family_name.clone(),
            roles: self.roles.roles_for(&groups, &[]),
            groups,
            group_dns: Vec::new(),
            group_paths: Vec::new(),
            claims: Default::default(),
            saml_persistent_nameids: Default::default(),
        }
    }
}

/// Hashes a password with argon2id and a random salt, as a PHC string (`$argon2id$v=19$…`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = argon2::password_hash::SaltString::encode_b64(&bytes)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks a password against a PHC hash; any malformed hash simply fails.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "S3cret"));
        assert!(!verify_password("garbage", "s3cret"));
    }
}
