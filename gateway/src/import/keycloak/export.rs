//! The parts of Keycloak's realm export (`RealmRepresentation` and what it holds) the importer reads. Unknown
//! fields are ignored, every field is optional, and component / attribute values are read whether they are
//! strings (legacy exports, client attributes) or lists of strings (`MultivaluedHashMap` in current exports).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A realm export: the admin console's partial export, `kc.sh export`, or a legacy (≤ 16) export.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Realm {
    /// The realm's id (a UUID, or the name in old exports).
    pub id: Option<String>,
    /// The realm's name, as in `/realms/{realm}`.
    pub realm: String,
    /// Realm attributes (`frontendUrl`, …).
    pub attributes: BTreeMap<String, Value>,
    /// Access-token lifetime, seconds.
    pub access_token_lifespan: Option<u64>,
    /// Authorization-code lifetime, seconds.
    pub access_code_lifespan: Option<u64>,
    /// SSO session idle timeout, seconds.
    pub sso_session_idle_timeout: Option<u64>,
    /// SSO session maximum lifetime, seconds.
    pub sso_session_max_lifespan: Option<u64>,
    /// Offline session idle timeout, seconds.
    pub offline_session_idle_timeout: Option<u64>,
    /// Brute-force detection on.
    pub brute_force_protected: Option<bool>,
    /// Lock accounts for good after `failureFactor` failures.
    pub permanent_lockout: Option<bool>,
    /// Failures before a lockout.
    pub failure_factor: Option<u32>,
    /// First lockout, seconds.
    pub wait_increment_seconds: Option<u64>,
    /// Longest lockout, seconds.
    pub max_failure_wait_seconds: Option<u64>,
    /// Window failures are counted in, seconds.
    pub max_delta_time_seconds: Option<u64>,
    /// Self-registration on the login page.
    pub registration_allowed: Option<bool>,
    /// "Forgot password" on the login page.
    pub reset_password_allowed: Option<bool>,
    /// E-mail verification.
    pub verify_email: Option<bool>,
    /// The flow bound to browser logins.
    pub browser_flow: Option<String>,
    /// Realm and client roles.
    pub roles: Roles,
    /// Groups, with the roles they hold.
    pub groups: Vec<Group>,
    /// Clients (relying parties and service providers).
    pub clients: Vec<Client>,
    /// Client scopes and their protocol mappers.
    pub client_scopes: Vec<ClientScope>,
    /// Brokered identity providers.
    pub identity_providers: Vec<IdentityProvider>,
    /// Authentication flows.
    pub authentication_flows: Vec<Flow>,
    /// Required actions.
    pub required_actions: Vec<RequiredAction>,
    /// Components by provider type (user storage, key providers, …).
    pub components: BTreeMap<String, Vec<Component>>,
    /// Users (a full export may carry them inline).
    pub users: Vec<User>,
    /// Legacy user-federation providers.
    pub user_federation_providers: Vec<LegacyProvider>,
    /// Legacy user-federation mappers.
    pub user_federation_mappers: Vec<LegacyMapper>,
    /// Legacy realm signing key (base64 PKCS#8).
    pub private_key: Option<String>,
    /// Legacy realm certificate (base64 DER).
    pub certificate: Option<String>,
}

/// `roles`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Roles {
    /// Realm roles.
    pub realm: Vec<Role>,
    /// Client roles by client id.
    pub client: BTreeMap<String, Vec<Role>>,
}

/// One role.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Role {
    /// Its name.
    pub name: String,
    /// The roles it includes.
    pub composites: Option<Composites>,
}

/// The roles a composite role includes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Composites {
    /// Realm roles.
    pub realm: Vec<String>,
    /// Client roles by client id.
    pub client: BTreeMap<String, Vec<String>>,
}

/// One group (and its subgroups).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Its path, `/parent/name`.
    pub path: Option<String>,
    /// Realm roles its members hold.
    pub realm_roles: Vec<String>,
    /// Client roles its members hold, by client id.
    pub client_roles: BTreeMap<String, Vec<String>>,
    /// Subgroups.
    pub sub_groups: Vec<Group>,
}

/// One client.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Client {
    /// `client_id` (OIDC) or entity ID (SAML).
    pub client_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Disabled clients are not converted.
    pub enabled: Option<bool>,
    /// The client secret (masked in partial exports).
    pub secret: Option<String>,
    /// No secret; PKCE.
    pub public_client: bool,
    /// A resource server that never signs anyone in.
    pub bearer_only: bool,
    /// Base for relative redirect URIs.
    pub root_url: Option<String>,
    /// SAML: the master processing URL.
    pub admin_url: Option<String>,
    /// Registered redirect URIs (Keycloak wildcards allowed).
    pub redirect_uris: Vec<String>,
    /// `openid-connect` (the default) or `saml`.
    pub protocol: Option<String>,
    /// Authorization code flow (default on).
    pub standard_flow_enabled: Option<bool>,
    /// Implicit flow.
    pub implicit_flow_enabled: Option<bool>,
    /// Resource-owner password grant.
    pub direct_access_grants_enabled: Option<bool>,
    /// `client_credentials`.
    pub service_accounts_enabled: Option<bool>,
    /// `client-secret`, `client-jwt`, `client-secret-jwt`, `client-x509`.
    pub client_authenticator_type: Option<String>,
    /// A consent screen.
    pub consent_required: Option<bool>,
    /// Front-channel logout.
    pub frontchannel_logout: Option<bool>,
    /// Protocol-specific settings.
    pub attributes: BTreeMap<String, Value>,
    /// Dedicated protocol mappers.
    pub protocol_mappers: Vec<ProtocolMapper>,
    /// Default client scopes.
    pub default_client_scopes: Vec<String>,
    /// Optional client scopes.
    pub optional_client_scopes: Vec<String>,
}

impl Client {
    /// An attribute as a string (`None` when absent or empty).
    pub fn attr(&self, key: &str) -> Option<String> {
        self.attributes.get(key).and_then(first).filter(|v| !v.is_empty())
    }

    /// Whether an attribute is `"true"`.
    pub fn flag(&self, key: &str) -> bool {
        self.attr(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// One protocol mapper.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProtocolMapper {
    /// Its name.
    pub name: String,
    /// Its type (`oidc-usermodel-attribute-mapper`, `saml-role-list-mapper`, …).
    pub protocol_mapper: String,
    /// Its settings.
    pub config: BTreeMap<String, Value>,
}

impl ProtocolMapper {
    /// A setting as a string (`None` when absent or empty).
    pub fn get(&self, key: &str) -> Option<String> {
        self.config.get(key).and_then(first).filter(|v| !v.is_empty())
    }
}

/// One client scope.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientScope {
    /// Its name.
    pub name: String,
    /// Its mappers.
    pub protocol_mappers: Vec<ProtocolMapper>,
}

/// One brokered identity provider.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentityProvider {
    /// Its alias.
    pub alias: String,
    /// `oidc`, `keycloak-oidc`, `saml`, `google`, …
    pub provider_id: String,
    /// Disabled providers are only mentioned.
    pub enabled: Option<bool>,
    /// The button's label.
    pub display_name: Option<String>,
    /// Whether Keycloak trusted the provider's e-mail addresses as verified.
    pub trust_email: Option<bool>,
    /// Its settings (`clientId`, `clientSecret`, `issuer`, `authorizationUrl`, `defaultScope`, `clientAuthMethod`,
    /// `hostedDomain`, …); Keycloak writes every value as a string.
    pub config: BTreeMap<String, Value>,
}

impl IdentityProvider {
    /// A setting as text (`None` when absent or empty).
    pub fn setting(&self, key: &str) -> Option<String> {
        match self.config.get(key)? {
            Value::String(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// One authentication flow.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Flow {
    /// Its alias.
    pub alias: String,
    /// Shipped with Keycloak.
    pub built_in: bool,
    /// A flow that can be bound (not a sub-flow).
    pub top_level: bool,
}

/// One required action.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequiredAction {
    /// `CONFIGURE_TOTP`, `VERIFY_EMAIL`, …
    pub alias: String,
    /// Available.
    pub enabled: bool,
    /// Given to every new user.
    pub default_action: bool,
}

/// One component (user storage, LDAP mapper, key provider).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Component {
    /// Its id (part of `f:<id>:<username>` subjects).
    pub id: Option<String>,
    /// Its display name.
    pub name: String,
    /// `ldap`, `kerberos`, `rsa-generated`, `group-ldap-mapper`, …
    pub provider_id: String,
    /// Its settings.
    pub config: BTreeMap<String, Value>,
    /// Child components (LDAP mappers) by provider type.
    pub sub_components: BTreeMap<String, Vec<Component>>,
}

impl Component {
    /// A setting as a string (the first value; `None` when absent or empty).
    pub fn get(&self, key: &str) -> Option<String> {
        self.config.get(key).and_then(first).filter(|v| !v.is_empty())
    }

    /// Whether a setting is `"true"`; `default` when absent.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        self.get(key).map_or(default, |v| v.eq_ignore_ascii_case("true"))
    }

    /// The LDAP mappers under an LDAP storage component.
    pub fn ldap_mappers(&self) -> &[Component] {
        self.sub_components.get(LDAP_MAPPER_TYPE).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The provider type of user-storage components.
pub const USER_STORAGE_TYPE: &str = "org.keycloak.storage.UserStorageProvider";
/// The provider type of LDAP mappers.
pub const LDAP_MAPPER_TYPE: &str = "org.keycloak.storage.ldap.mappers.LDAPStorageMapper";
/// The provider type of key providers.
pub const KEY_PROVIDER_TYPE: &str = "org.keycloak.keys.KeyProvider";

/// One user (full exports, `kc.sh export`'s `*-users-*.json`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    /// Keycloak's id: the `sub` it issued.
    pub id: String,
    /// Login name.
    pub username: String,
    /// The user-storage component it was imported from.
    pub federation_link: Option<String>,
    /// Attributes (`LDAP_ID`, `LDAP_ENTRY_DN`, `saml.persistent.name.id.for.<client>`, …).
    pub attributes: BTreeMap<String, Value>,
    /// Stored credentials (`password`, `otp`, …).
    pub credentials: Vec<Credential>,
    /// Pending required actions.
    pub required_actions: Vec<String>,
    /// Realm roles assigned to the user directly.
    pub realm_roles: Vec<String>,
}

impl User {
    /// An attribute's first value.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.attributes.get(key).and_then(first).filter(|v| !v.is_empty())
    }
}

/// One stored credential (only its type is read; hashes and secrets are never copied).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Credential {
    /// `password`, `otp`, `webauthn`, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// A legacy `userFederationProviders` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LegacyProvider {
    /// Its id, when the export has one.
    pub id: Option<String>,
    /// Its display name (what mappers refer to).
    pub display_name: String,
    /// `ldap` or `kerberos`.
    pub provider_name: String,
    /// Its settings (plain strings).
    pub config: BTreeMap<String, Value>,
}

/// A legacy `userFederationMappers` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LegacyMapper {
    /// Its name.
    pub name: String,
    /// `user-attribute-ldap-mapper`, `group-ldap-mapper`, …
    pub federation_mapper_type: String,
    /// The provider it belongs to.
    pub federation_provider_display_name: String,
    /// Its settings.
    pub config: BTreeMap<String, Value>,
}

/// A file of users: `kc.sh export`'s `{ "realm": …, "users": [...] }`, or a bare list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum UsersFile {
    /// `{ "users": [...] }`.
    Wrapped {
        /// The users.
        users: Vec<User>,
    },
    /// `[...]`.
    Bare(Vec<User>),
}

impl UsersFile {
    /// The users.
    pub fn into_users(self) -> Vec<User> {
        match self {
            Self::Wrapped { users } | Self::Bare(users) => users,
        }
    }
}

impl Realm {
    /// The user-storage components, with legacy `userFederationProviders` (and their mappers) turned into the
    /// current shape.
    pub fn user_storage(&self) -> Vec<Component> {
        let mut out = self.components.get(USER_STORAGE_TYPE).cloned().unwrap_or_default();
        for p in &self.user_federation_providers {
            let mappers = self
                .user_federation_mappers
                .iter()
                .filter(|m| m.federation_provider_display_name == p.display_name)
                .map(|m| Component {
                    id: None,
                    name: m.name.clone(),
                    provider_id: m.federation_mapper_type.clone(),
                    config: m.config.clone(),
                    sub_components: BTreeMap::new(),
                })
                .collect();
            out.push(Component {
                id: p.id.clone(),
                name: p.display_name.clone(),
                provider_id: p.provider_name.clone(),
                config: p.config.clone(),
                sub_components: BTreeMap::from([(LDAP_MAPPER_TYPE.to_string(), mappers)]),
            });
        }
        out
    }

    /// A realm attribute as a string.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.attributes.get(key).and_then(first).filter(|v| !v.is_empty())
    }
}

/// The first value of a setting that may be a string, a list of strings, a boolean or a number.
pub fn first(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(first),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
