//! The conversion itself: one module per part of the export, each writing its configuration section and its
//! findings. Nothing here touches the disk.

mod ldap;
mod oidc;
mod realm;
mod roles;
mod saml;
mod signing;
mod upstream;

#[cfg(test)]
pub(super) use saml::parse_ram_role;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use federation::saml::service_provider::{ROLE_ATTR, SESSION_DURATION_ATTR};

use super::export::{Client, Component, KEY_PROVIDER_TYPE, ProtocolMapper, Realm, User};
use super::report::{Report, Severity};
use super::toml_out::{Section, arr, duration, inline, s};
use super::{Conversion, Options, OutFile, keys};

/// Keycloak's own clients, present in every realm; skipped silently.
pub const BUILT_IN_CLIENTS: &[&str] =
    &["account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"];

/// Keycloak's built-in client scopes; their mappers are fedgate's standard claims (differences are reported once).
const BUILT_IN_SCOPES: &[&str] = &[
    "acr",
    "address",
    "basic",
    "email",
    "microprofile-jwt",
    "offline_access",
    "organization",
    "phone",
    "profile",
    "role_list",
    "roles",
    "saml_organization",
    "service_account",
    "web-origins",
];

/// What Keycloak shows instead of a secret in partial exports.
const MASKED: &str = "**********";

/// Realm roles every user holds in Keycloak; they carry no meaning to map.
fn default_role(realm: &str, role: &str) -> bool {
    role == format!("default-roles-{realm}") || matches!(role, "offline_access" | "uma_authorization")
}

/// Converts `realm` (plus a full user export, if given) into a configuration, files and a report.
pub fn convert(realm: &Realm, users: Option<&[User]>, options: &Options) -> Conversion {
    let mut c = Converter {
        realm,
        users: users.unwrap_or(if realm.users.is_empty() { &[] } else { &realm.users }),
        users_given: users.is_some() || !realm.users.is_empty(),
        options,
        report: Report { realm: realm.realm.clone(), ..Default::default() },
        files: Vec::new(),
        ldap_claims: BTreeMap::new(),
        model_to_ldap: BTreeMap::new(),
        scope_claims: BTreeMap::new(),
    };
    let public_url = options.public_url.clone().or_else(|| realm.attr("frontendUrl").and_then(|u| u.parse().ok()));
    let (public_url, path_prefix) = split_relative_path(public_url);
    let mut sections = vec![c.server(public_url.as_ref()), c.keycloak(path_prefix), c.session_and_login()];
    sections.push(c.directory());
    sections.push(c.roles());
    let key = c.keys();
    let oidc = c.oidc(key.as_ref());
    let saml = c.saml(key.as_ref(), public_url.as_ref());
    if !c.ldap_claims.is_empty() {
        let mut claims =
            Section::new("[ldap.claims]", &["Claims read from LDAP (Keycloak user-attribute LDAP mappers)."]);
        for (claim, attr) in &c.ldap_claims {
            claims.kv(&s(claim), s(attr));
        }
        sections.insert(3, claims.finish());
    }
    sections.push(oidc);
    sections.push(saml);
    sections.push(c.upstream());
    c.realm_features();
    let header = format!(
        "# fedgate configuration imported from the Keycloak realm \"{}\" by `fedgate import keycloak`.\n# Read \
         IMPORT-REPORT.md next to this file before switching; `fedgate check-config --config <this file>` checks \
         it.\n\n",
        realm.realm
    );
    Conversion { config: header + &sections.concat(), files: c.files, report: c.report }
}

struct Converter<'a> {
    realm: &'a Realm,
    users: &'a [User],
    users_given: bool,
    options: &'a Options,
    report: Report,
    files: Vec<OutFile>,
    /// `[ldap.claims]`: claim → LDAP attribute.
    ldap_claims: BTreeMap<String, String>,
    /// Keycloak user attribute → LDAP attribute (from `user-attribute-ldap-mapper`s).
    model_to_ldap: BTreeMap<String, String>,
    /// `[oidc.scope_claims]`.
    scope_claims: BTreeMap<String, Vec<String>>,
}

/// The signing key found in the export.
struct Key {
    /// `keys/oidc/active.pem`.
    key_file: PathBuf,
    /// The same key for SAML, `keys/saml/idp.key`.
    saml_key_file: PathBuf,
    /// `keys/saml/idp.crt`, when the export has the certificate.
    cert_file: Option<PathBuf>,
}

impl Converter<'_> {
    fn abs(&self, rel: &str) -> PathBuf {
        self.options.out_dir.join(rel)
    }

    fn add(&mut self, severity: Severity, subject: impl Into<String>, what: impl Into<String>, action: &str) {
        self.report.add(severity, subject, what, action);
    }

    fn file(&mut self, rel: &str, contents: Vec<u8>, private: bool, what: &str) -> PathBuf {
        self.files.push(OutFile { path: rel.into(), contents, private, what: what.into() });
        self.abs(rel)
    }

    /// Writes a secret file for `value` and returns its absolute path. A masked, missing, placeholder or (for
    /// client secrets) too short value gets a random stand-in and a blocking finding naming the file.
    fn secret(&mut self, subject: &str, value: Option<&str>, rel: &str, min_len: usize) -> PathBuf {
        let path = self.abs(rel);
        let shown = path.display().to_string();
        let problem = match value {
            None | Some("") => Some("the export holds no secret".to_string()),
            Some(MASKED) => Some("the secret is masked (`**********`) in this export".to_string()),
            Some(v) if v.starts_with("${") => {
                Some(format!("the secret is a placeholder `{v}` that Keycloak resolved from its environment or vault"))
            }
            Some(v) if v.chars().count() < min_len => Some(format!(
                "the secret is {} characters; fedgate needs at least {min_len}, so a new random one was generated",
                v.chars().count()
            )),
            Some(_) => None,
        };
        let contents = match (&problem, value) {
            (None, Some(v)) => v.to_string(),
            _ => fedgate_types::random::token(),
        };
        if let Some(problem) = problem {
            let action = if value.is_some_and(|v| v.chars().count() < min_len && v != MASKED && !v.starts_with("${")) {
                format!("give the new secret in {shown} to the application (or write a longer one there)")
            } else {
                format!(
                    "write the real secret into {shown} (Keycloak admin console → Credentials, or your vault); it \
                     holds a random stand-in now"
                )
            };
            self.add(Severity::Blocking, subject, problem, &action);
        }
        self.file(rel, format!("{contents}\n").into_bytes(), true, &format!("secret of {subject}"))
    }

    fn server(&mut self, public_url: Option<&url::Url>) -> String {
        let mut sec = Section::new("[server]", &[]);
        sec.kv("listen", s("127.0.0.1:8080"));
        match public_url {
            Some(u) => {
                sec.kv("public_url", s(u.as_str()));
                self.add(
                    Severity::Converted,
                    "realm",
                    format!("public URL {u} (the host apps reached Keycloak at)"),
                    "",
                );
            }
            None => {
                sec.comment("Set this to the URL apps reached Keycloak at, e.g. \"https://sso.example.com/\".");
                sec.kv("public_url", s("http://127.0.0.1:8080/"));
                self.add(
                    Severity::Attention,
                    "server.public_url",
                    "the export does not say which host Keycloak was reached at (no frontendUrl)",
                    "set server.public_url (and server.listen) in config.toml, or import again with --public-url URL",
                );
            }
        }
        sec.finish()
    }

    /// `[keycloak]`: realm mode, so apps keep the issuer and endpoint paths they had (a host-name change).
    fn keycloak(&mut self, path_prefix: Option<&'static str>) -> String {
        let Some(prefix) = path_prefix else {
            self.add(
                Severity::Attention,
                "realm URLs",
                "Keycloak was reached under a path other than / or /auth; realm mode is left off",
                "serve fedgate at the host root and add [keycloak] realm = \"…\" so apps keep their issuer",
            );
            return String::new();
        };
        let mut sec = Section::new(
            "[keycloak]",
            &[
                "Realm mode: issuer {public_url}{path_prefix}/realms/{realm} and Keycloak's endpoint paths, so apps and SPs \
               keep what they had.",
            ],
        );
        sec.kv("realm", s(&self.realm.realm)).kv("path_prefix", s(prefix));
        self.add(
            Severity::Converted,
            "realm URLs",
            format!("→ [keycloak] realm = \"{}\", path_prefix = \"{prefix}\"", self.realm.realm),
            if prefix.is_empty() {
                "if apps reach Keycloak under /auth/realms/… (Keycloak < 17), set path_prefix = \"/auth\""
            } else {
                ""
            },
        );
        sec.finish()
    }

    fn session_and_login(&mut self) -> String {
        let r = self.realm;
        let idle = r.sso_session_idle_timeout.filter(|v| *v > 0).unwrap_or(1800);
        let max = r.sso_session_max_lifespan.filter(|v| *v > 0).unwrap_or(36_000).max(idle);
        let mut out = Section::new("[session]", &["From ssoSessionIdleTimeout and ssoSessionMaxLifespan."]);
        out.kv("idle_timeout", duration(idle)).kv("absolute_timeout", duration(max));
        self.add(
            Severity::Converted,
            "realm",
            format!("SSO session idle {idle}s / max {max}s → [session] idle_timeout / absolute_timeout"),
            "",
        );
        let mut text = out.finish();
        let mut login = Section::new("[login]", &["From the realm's brute-force detection settings."]);
        login.kv("throttle", "true");
        let enabled_ldap = self.realm.user_storage().iter().any(|c| c.provider_id == "ldap" && c.flag("enabled", true));
        if !enabled_ldap && self.realm.identity_providers.iter().any(upstream::convertible) {
            login.comment("No LDAP provider in the export: users sign in through the upstream providers only.");
            login.kv("password", "false");
        }
        if r.brute_force_protected == Some(true) {
            let failures = r.failure_factor.filter(|f| *f > 0).unwrap_or(30);
            let window = r.max_delta_time_seconds.filter(|v| *v > 0).unwrap_or(43_200);
            let lockout = r.wait_increment_seconds.filter(|v| *v > 0).unwrap_or(60);
            login
                .kv("max_failures", failures.to_string())
                .kv("window", duration(window))
                .kv("lockout", duration(lockout));
            self.add(
                Severity::Converted,
                "realm",
                format!("brute-force detection: {failures} failures within {window}s lock for {lockout}s"),
                "",
            );
            if r.permanent_lockout == Some(true) {
                self.add(
                    Severity::Unsupported,
                    "realm brute-force detection",
                    "permanent lockout",
                    "fedgate's lockouts always expire (login.lockout); lock accounts in the directory instead",
                );
            }
            if r.max_failure_wait_seconds.is_some_and(|m| m > lockout) {
                self.add(
                    Severity::Unsupported,
                    "realm brute-force detection",
                    "lockouts growing with each failure (waitIncrementSeconds up to maxFailureWaitSeconds)",
                    "fedgate locks for a fixed login.lockout; raise it if you want longer lockouts",
                );
            }
        } else {
            self.add(
                Severity::Attention,
                "realm brute-force detection",
                "was off in Keycloak; fedgate's login throttle stays on (5 failures in 5 minutes lock for 5 minutes)",
                "keep it, or set [login] throttle = false",
            );
        }
        text.push_str(&login.finish());
        text
    }
}

fn skip_client(c: &Client) -> bool {
    BUILT_IN_CLIENTS.contains(&c.client_id.as_str()) || (c.bearer_only && c.client_id.ends_with("-realm"))
}

/// A claim name usable in templates (`{name}`): letters, digits and `_`.
fn claim_name(attr: &str) -> String {
    attr.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// A file name from a client id.
/// The longest file-name part [`file_safe`] makes: with a prefix such as `oidc-` it stays far below the 255-byte
/// file-name limit of Linux file systems.
const MAX_FILE_PART: usize = 64;

/// A file-name part for `id`: the id itself when it is short and only `[A-Za-z0-9._-]`; otherwise its safe
/// characters cut to fit, then `-` and 12 hex digits of its SHA-256, so ids that differ only in unsafe characters
/// or beyond the cut (`a/b`, `a_b`) never share a file, and a 300-character client id still makes a valid name.
fn file_safe(id: &str) -> String {
    let safe: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if safe == id && !safe.is_empty() && safe.len() <= MAX_FILE_PART {
        return safe;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    let hash = hex::encode(&digest.as_ref()[..6]);
    let cut: String = safe.chars().take(MAX_FILE_PART - hash.len() - 1).collect();
    format!("{cut}-{hash}")
}

/// An SP name (`/saml/init/{name}`) from an entity ID: its host and path, URL-safe.
fn sp_name(entity: &str) -> String {
    let trimmed = entity.split("://").nth(1).unwrap_or(entity);
    let mut out: String =
        trimmed.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_string()
}

/// Keycloak < 17 served realms under `/auth`: such a public URL becomes the host root plus `path_prefix = "/auth"`.
/// `None` as the prefix when the URL has another path (realm mode needs the host root).
fn split_relative_path(public_url: Option<url::Url>) -> (Option<url::Url>, Option<&'static str>) {
    let Some(mut url) = public_url else { return (None, Some("")) };
    match url.path().trim_end_matches('/') {
        "" => (Some(url), Some("")),
        "/auth" => {
            url.set_path("/");
            (Some(url), Some("/auth"))
        }
        _ => (Some(url), None),
    }
}
