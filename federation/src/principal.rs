//! The authenticated person (or client) that protocols turn into tokens and assertions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who is signing in, as the protocols see it. The gateway builds one from a directory user after login.
///
/// Every field is plain data copied from the directory; protocol code must escape or encode each value for the
/// document it goes into (a display name may contain `<`, `&` or quotes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable, opaque subject identifier (from the directory's unique id attribute, e.g. `entryUUID`); never the
    /// username, which can be renamed.
    pub subject: String,
    /// Login name (e.g. `uid` / `sAMAccountName`), never empty.
    pub username: String,
    /// Primary e-mail address, if the directory has one.
    pub email: Option<String>,
    /// Full display name (`cn` / `displayName`).
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Group names (not DNs) the user belongs to, nested groups included.
    pub groups: Vec<String>,
    /// The same groups as Keycloak's `/full/path` (`/eng/ai-admins`), for clients with
    /// [`GroupFormat::Path`]; when empty, each name is placed at the root (`/staff`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_paths: Vec<String>,
    /// Roles granted through the gateway's `[roles]` mapping.
    pub roles: Vec<String>,
    /// Extra claims mapped from directory attributes (`[ldap.claims]`), claim name → values.
    pub claims: BTreeMap<String, Vec<String>>,
    /// Persistent NameIDs an earlier IdP (Keycloak) gave this user, by SP entity ID: sent instead of the computed
    /// persistent NameID, so SPs that keyed accounts by them keep their owners.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub saml_persistent_nameids: BTreeMap<String, String>,
    /// When the user proved who they are (for `auth_time`, `AuthnInstant`, `max_age`).
    #[serde(with = "time::serde::timestamp")]
    pub auth_time: OffsetDateTime,
    /// How the user authenticated, when not by a password at this gateway.
    #[serde(default)]
    pub authn: Authn,
}

/// How a client sees the user's groups (`group_format`): Keycloak's group-membership mapper option `full.path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupFormat {
    /// Plain names: `staff`, `ai-admins`.
    #[default]
    Name,
    /// Keycloak's full paths: `/staff`, `/eng/ai-admins` (the LDAP group's place under `ldap.groups_dn`).
    Path,
}

impl Principal {
    /// The user's groups as `format` asks: names, or `/full/path`s.
    pub fn groups_as(&self, format: GroupFormat) -> Vec<String> {
        match format {
            GroupFormat::Name => self.groups.clone(),
            GroupFormat::Path if self.group_paths.is_empty() => self
                .groups
                .iter()
                .map(|g| if g.starts_with('/') { g.clone() } else { format!("/{}", g.replace('/', "~/")) })
                .collect(),
            GroupFormat::Path => self.group_paths.clone(),
        }
    }
}

/// How the user authenticated: by a password here (the default), or at an upstream identity provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authn {
    /// The upstream identity provider's issuer, for a federated login (SAML `AuthenticatingAuthority`); `None`
    /// for a password checked by the gateway.
    pub upstream_issuer: Option<String>,
    /// `amr` values the upstream reported (added after `fed`).
    #[serde(default)]
    pub upstream_amr: Vec<String>,
    /// The upstream's `acr`, relayed as is.
    #[serde(default)]
    pub upstream_acr: Option<String>,
}

impl Authn {
    /// The ID token's `amr`: `["pwd"]` for a password here, `["fed", …the upstream's]` for a federated login.
    pub fn amr(&self) -> Vec<String> {
        match &self.upstream_issuer {
            None => vec!["pwd".into()],
            Some(_) => {
                let mut out = vec!["fed".to_string()];
                for a in self.upstream_amr.iter().take(8) {
                    if !out.contains(a) {
                        out.push(a.clone());
                    }
                }
                out
            }
        }
    }

    /// The SAML `AuthnContextClassRef`: `PasswordProtectedTransport` for a password here, `unspecified` (with the
    /// upstream named in `AuthenticatingAuthority`) for a federated login, unless the upstream's `acr` is a SAML
    /// class URI.
    pub fn saml_class(&self) -> &str {
        const PPT: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
        match (&self.upstream_issuer, &self.upstream_acr) {
            (None, _) => PPT,
            (Some(_), Some(acr)) if acr.starts_with("urn:oasis:names:tc:SAML:2.0:ac:classes:") => acr,
            (Some(_), _) => "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified",
        }
    }
}
