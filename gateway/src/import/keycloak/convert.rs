//! The conversion itself: one function per part of the export, each writing its configuration section and its
//! findings. Nothing here touches the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use federation::saml::service_provider::{ROLE_ATTR, ROLE_SESSION_NAME_ATTR, SESSION_DURATION_ATTR};

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
    let mut sections = vec![c.server(public_url.as_ref()), c.session_and_login()];
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
    key_file: PathBuf,
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

    fn directory(&mut self) -> String {
        let mut storage = self.realm.user_storage();
        storage.sort_by_key(|c| c.get("priority").and_then(|p| p.parse::<i64>().ok()).unwrap_or(0));
        let mut ldap: Option<Component> = None;
        for comp in storage {
            let name = format!("user federation `{}`", comp.name);
            if !comp.flag("enabled", true) {
                self.add(Severity::Attention, name, "disabled in Keycloak; not converted", "nothing to do");
                continue;
            }
            match comp.provider_id.as_str() {
                "ldap" if ldap.is_none() => ldap = Some(comp),
                "ldap" => self.add(
                    Severity::Blocking,
                    name,
                    "a further LDAP provider; fedgate reads one directory, so its users could not sign in",
                    "merge the directories behind one LDAP endpoint (or a proxy such as a meta directory), or keep \
                     Keycloak for these users",
                ),
                "kerberos" => self.add(
                    Severity::Unsupported,
                    name,
                    "Kerberos / SPNEGO sign-in",
                    "users sign in with their password on fedgate's login page instead",
                ),
                other => self.add(
                    Severity::Blocking,
                    name,
                    format!("user storage provider `{other}` is not LDAP; its users could not sign in"),
                    "move these users to the LDAP directory",
                ),
            }
        }
        let local_users = self.users.iter().filter(|u| u.federation_link.is_none()).count();
        if local_users > 0 {
            self.add(
                Severity::Attention,
                "users",
                format!("{local_users} user(s) stored in Keycloak itself (not from LDAP) are not imported"),
                "create them in the LDAP directory; fedgate's [directory] is for demos only",
            );
        }
        match ldap {
            Some(comp) => self.ldap(&comp),
            None => {
                self.add(
                    Severity::Blocking,
                    "user federation",
                    "the realm has no LDAP provider, so nobody could sign in through fedgate",
                    "add an [ldap] section pointing at your directory and remove the empty [directory]",
                );
                let mut sec =
                    Section::new("[directory]", &["No LDAP provider in the export: configure [ldap] instead."]);
                sec.kv("kind", s("static"));
                sec.finish()
            }
        }
    }

    fn ldap(&mut self, comp: &Component) -> String {
        let subject = format!("LDAP provider `{}`", comp.name);
        let mut sec = Section::new("[ldap]", &[&format!("From the Keycloak LDAP provider \"{}\".", comp.name)]);
        let ad = comp.get("vendor").is_some_and(|v| v == "ad");
        sec.kv("preset", s(if ad { "active-directory" } else { "openldap" }));
        let urls: Vec<String> =
            comp.get("connectionUrl").unwrap_or_default().split_whitespace().map(str::to_string).collect();
        if urls.is_empty() {
            self.add(Severity::Blocking, &subject, "no connectionUrl", "set ldap.urls");
        }
        sec.kv("urls", arr(&urls));
        if comp.flag("startTls", false) {
            sec.kv("start_tls", "true");
        }
        if urls.iter().any(|u| u.starts_with("ldaps:")) || comp.flag("startTls", false) {
            self.add(
                Severity::Attention,
                &subject,
                "TLS to the directory: fedgate trusts the system's CA roots, not Keycloak's truststore",
                "if the directory's certificate comes from a private CA, set ldap.ca_file to that CA's PEM",
            );
        }
        for (key, out) in [("connectionTimeout", "connect_timeout"), ("readTimeout", "operation_timeout")] {
            if let Some(ms) = comp.get(key).and_then(|v| v.parse::<u64>().ok()).filter(|v| *v > 0) {
                sec.kv(out, s(&format!("{ms}ms")));
            }
        }
        let auth_none = comp.get("authType").is_some_and(|a| a == "none");
        if let (Some(dn), false) = (comp.get("bindDn"), auth_none) {
            sec.kv("bind_dn", s(&dn));
            let credential = comp.get("bindCredential");
            let path = self.secret(
                &format!("{subject} bindCredential"),
                credential.as_deref(),
                "secrets/ldap-bind-password",
                1,
            );
            sec.kv("bind_password_file", s(&path.display().to_string()));
        }
        let users_dn = comp.get("usersDn").unwrap_or_default();
        if users_dn.is_empty() {
            self.add(Severity::Blocking, &subject, "no usersDn", "set ldap.users_dn");
        }
        sec.kv("users_dn", s(&users_dn));
        if let Some(filter) = user_filter(comp) {
            sec.kv("user_filter", s(&filter));
        }
        match comp.get("searchScope").as_deref() {
            Some("2") => {
                sec.kv("scope", s("sub"));
            }
            Some("1") => {
                sec.kv("scope", s("one"));
            }
            _ => {}
        }
        let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
        if let Some(a) = comp.get("usernameLDAPAttribute") {
            attrs.insert("username_attribute", a);
        }
        if let Some(a) = comp.get("uuidLDAPAttribute") {
            attrs.insert("unique_id_attribute", a);
        }
        let mut groups: Option<String> = None;
        for m in comp.ldap_mappers() {
            let msub = format!("{subject} mapper `{}`", m.name);
            match m.provider_id.as_str() {
                "user-attribute-ldap-mapper" => {
                    let (Some(model), Some(ldap_attr)) = (m.get("user.model.attribute"), m.get("ldap.attribute"))
                    else {
                        continue;
                    };
                    self.model_to_ldap.insert(model.clone(), ldap_attr.clone());
                    let key = match model.as_str() {
                        "username" => "username_attribute",
                        "email" => "email_attribute",
                        "firstName" => "given_name_attribute",
                        "lastName" => "family_name_attribute",
                        "createTimestamp" | "modifyTimestamp" => continue,
                        _ => {
                            let claim = claim_name(&model);
                            self.ldap_claims.insert(claim.clone(), ldap_attr.clone());
                            self.add(
                                Severity::Converted,
                                &msub,
                                format!("user attribute `{model}` ← LDAP `{ldap_attr}` → [ldap.claims] {claim}"),
                                "",
                            );
                            continue;
                        }
                    };
                    attrs.entry(key).or_insert(ldap_attr);
                }
                "full-name-ldap-mapper" => {
                    if let Some(a) = m.get("ldap.full.name.attribute") {
                        attrs.insert("display_name_attribute", a);
                    }
                }
                "group-ldap-mapper" if groups.is_none() => groups = Some(self.group_mapper(m, &msub)),
                "group-ldap-mapper" => self.add(
                    Severity::Attention,
                    &msub,
                    "a second group mapper; fedgate reads groups from one place",
                    "widen ldap.groups_dn / ldap.group_filter to cover both, if needed",
                ),
                "msad-user-account-control-mapper" | "msad-lds-user-account-control-mapper" => self.add(
                    if ad { Severity::Converted } else { Severity::Attention },
                    &msub,
                    "disabled and expired AD accounts are refused by fedgate's active-directory preset",
                    if ad { "" } else { "set ldap.preset = \"active-directory\" if this is Active Directory" },
                ),
                "role-ldap-mapper" => self.add(
                    Severity::Attention,
                    &msub,
                    format!(
                        "roles from LDAP entries under `{}`; fedgate grants roles from group membership ([roles])",
                        m.get("roles.dn").unwrap_or_default()
                    ),
                    "add a [roles] entry per role naming the LDAP group (by name or DN) that grants it; the entries \
                     must be found by ldap.groups_dn / group_filter",
                ),
                "hardcoded-ldap-role-mapper" | "hardcoded-ldap-group-mapper" => self.add(
                    Severity::Attention,
                    &msub,
                    "gives every LDAP user a fixed role or group; fedgate has no such rule",
                    "map that role in [roles] to a group every user is in",
                ),
                other => self.add(
                    Severity::Unsupported,
                    &msub,
                    format!("LDAP mapper type `{other}`"),
                    "nothing is read for it; map what you need with [ldap.claims]",
                ),
            }
        }
        for (key, value) in &attrs {
            sec.kv(key, s(value));
        }
        if let Some(g) = groups {
            sec.raw(&g);
        }
        if comp.get("editMode").is_some_and(|m| m == "WRITABLE") || comp.flag("syncRegistrations", false) {
            self.add(
                Severity::Unsupported,
                &subject,
                "writing to LDAP (edit mode WRITABLE / sync registrations): fedgate only reads the directory",
                "profile and password changes happen in the directory's own tools",
            );
        }
        if comp.flag("allowKerberosAuthentication", false) {
            self.add(
                Severity::Unsupported,
                &subject,
                "Kerberos / SPNEGO sign-in",
                "users sign in with their password on fedgate's login page instead",
            );
        }
        self.add(
            Severity::Converted,
            &subject,
            format!("{} → [ldap] (fedgate queries the directory at each login; there is no sync)", urls.join(" ")),
            "",
        );
        for (key, value) in self.subjects(comp, attrs.get("unique_id_attribute").cloned()) {
            sec.kv(key, value);
        }
        sec.finish()
    }

    fn group_mapper(&mut self, m: &Component, subject: &str) -> String {
        let mut out = String::new();
        let mut kv = |k: &str, v: String| out.push_str(&format!("{k} = {v}\n"));
        let strategy =
            m.get("user.roles.retrieve.strategy").unwrap_or_else(|| "LOAD_GROUPS_BY_MEMBER_ATTRIBUTE".into());
        if strategy == "GET_GROUPS_FROM_USER_MEMBEROF_ATTRIBUTE" {
            kv("group_strategy", s("member_of"));
            if m.get("memberof.ldap.attribute").is_some_and(|a| !a.eq_ignore_ascii_case("memberOf")) {
                self.add(
                    Severity::Attention,
                    subject,
                    "groups read from an attribute other than memberOf",
                    "fedgate reads memberOf; use group_strategy = \"search\" instead",
                );
            }
        } else {
            kv("group_strategy", s("search"));
        }
        if let Some(dn) = m.get("groups.dn") {
            kv("groups_dn", s(&dn));
        }
        let classes: Vec<String> = m
            .get("group.object.classes")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| format!("(objectClass={c})"))
            .collect();
        let class_filter = match classes.len() {
            0 => None,
            1 => classes.first().cloned(),
            _ => Some(format!("(|{})", classes.concat())),
        };
        let extra = m.get("groups.ldap.filter").map(|f| paren(&f));
        let filter = match (class_filter, extra) {
            (Some(c), Some(e)) => Some(format!("(&{c}{e})")),
            (Some(f), None) | (None, Some(f)) => Some(f),
            (None, None) => None,
        };
        if let Some(f) = filter {
            kv("group_filter", s(&f));
        }
        if let Some(a) = m.get("membership.ldap.attribute") {
            kv("group_member_attribute", s(&a));
            if m.get("membership.attribute.type").is_some_and(|t| t == "UID") && !a.eq_ignore_ascii_case("memberUid") {
                self.add(
                    Severity::Attention,
                    subject,
                    format!("members listed by user name in `{a}`; fedgate does that only for memberUid"),
                    "list members by DN, or use a memberUid attribute",
                );
            }
        }
        if let Some(a) = m.get("group.name.ldap.attribute") {
            kv("group_name_attribute", s(&a));
        }
        let nested =
            strategy == "LOAD_GROUPS_BY_MEMBER_ATTRIBUTE_RECURSIVELY" || m.flag("preserve.group.inheritance", true);
        kv("nested_groups", nested.to_string());
        if m.get("groups.path").is_some_and(|p| p != "/") {
            self.add(
                Severity::Attention,
                subject,
                format!("Keycloak placed these groups under `{}`", m.get("groups.path").unwrap_or_default()),
                "fedgate's `groups` claim holds plain group names; apps that matched a `/path/name` need the name",
            );
        }
        self.add(
            Severity::Converted,
            subject,
            "group mapper → ldap.group_strategy, groups_dn, group_filter, member attribute",
            "",
        );
        out
    }

    /// How Keycloak computed `sub` for LDAP users, and the `[ldap]` keys that keep it: `subject_template` for
    /// `f:<component>:<username>` (import off), or `subject_map_file` with the map built from the user export.
    fn subjects(&mut self, comp: &Component, uuid_attr: Option<String>) -> Vec<(&'static str, String)> {
        let import = comp.flag("importEnabled", true);
        let subject = format!("LDAP provider `{}`", comp.name);
        let id = comp.id.clone().unwrap_or_default();
        if !import && !id.is_empty() {
            let template = format!("f:{id}:{{username}}");
            self.add(
                Severity::Converted,
                "`sub` of LDAP users",
                format!("Keycloak issued `sub = f:{id}:<username>` (import off); kept by ldap.subject_template"),
                "",
            );
            return vec![("subject_template", s(&template))];
        }
        if !import {
            self.add(
                Severity::Attention,
                "`sub` of LDAP users",
                "Keycloak issued `f:<provider id>:<username>`, but this export does not carry the provider's id",
                "set ldap.subject_template = \"f:<id>:{username}\" with the id from Keycloak's admin console (User \
                 federation ▸ the provider's URL), or apps keyed by `sub` see new users",
            );
            return Vec::new();
        }
        let linked: Vec<&User> =
            self.users.iter().filter(|u| comp.id.is_none() || u.federation_link == comp.id).collect();
        if !self.users_given || linked.is_empty() {
            self.add(
                Severity::Attention,
                &subject,
                "import was on, so Keycloak gave each LDAP user a random id as `sub`, and no user export was given",
                "export the users too (`kc.sh export --realm … --users different_files`) and import again with \
                 --users, so the old ids are kept in sub-map.json; otherwise apps keyed by `sub` (GitLab, Harbor, \
                 Rancher, Kubernetes RBAC) see new users",
            );
            return Vec::new();
        }
        let mut by_ldap_id = BTreeMap::new();
        let mut by_username = BTreeMap::new();
        let mut persistent: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for u in &linked {
            if let Some(ldap_id) = u.attr("LDAP_ID") {
                by_ldap_id.insert(ldap_id, u.id.clone());
            }
            by_username.insert(u.username.clone(), u.id.clone());
            for (k, v) in &u.attributes {
                if let (Some(client), Some(value)) =
                    (k.strip_prefix("saml.persistent.name.id.for."), super::export::first(v))
                {
                    persistent.entry(client.to_string()).or_default().insert(u.username.clone(), value);
                }
            }
        }
        let map = serde_json::json!({
            "source": "keycloak",
            "realm": self.realm.realm,
            "ldap_component": id,
            "uuid_attribute": uuid_attr,
            "by_ldap_id": by_ldap_id,
            "by_username": by_username,
            "saml_persistent_nameids": persistent,
        });
        let text = serde_json::to_string_pretty(&map).unwrap_or_default();
        let path =
            self.file("sub-map.json", text.into_bytes(), false, "Keycloak user ids (`sub`) by LDAP id and username");
        self.add(
            Severity::Converted,
            "`sub` of LDAP users",
            format!(
                "{} Keycloak user ids kept through ldap.subject_map_file; users created after the export get the \
                 LDAP unique id",
                by_username.len()
            ),
            "",
        );
        if !persistent.is_empty() {
            self.add(
                Severity::Attention,
                "SAML persistent NameIDs",
                "Keycloak's per-user `G-…` NameIDs are saved in sub-map.json but not sent by this fedgate release",
                "SPs that matched users on them see new users; match on another attribute (e-mail, username)",
            );
        }
        vec![("subject_map_file", s(&path.display().to_string()))]
    }

    fn roles(&mut self) -> String {
        let grants = self.group_grants();
        let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut client_roles = BTreeSet::new();
        for (group, (realm_roles, crs)) in &grants {
            // RAM role strings are the aliyun-ram-role preset's role_mapping, not fedgate roles.
            for r in realm_roles.iter().filter(|r| !default_role(&self.realm.realm, r) && parse_ram_role(r).is_none()) {
                roles.entry(r.clone()).or_default().insert(group.clone());
            }
            for (client, rs) in crs {
                for r in rs {
                    client_roles.insert(format!("{client}: {r}"));
                }
            }
        }
        let everyone: Vec<String> = self
            .realm
            .roles
            .realm
            .iter()
            .filter(|r| r.name == format!("default-roles-{}", self.realm.realm))
            .filter_map(|r| r.composites.as_ref())
            .flat_map(|c| c.realm.iter().filter(|n| !default_role(&self.realm.realm, n)).cloned())
            .collect();
        if !everyone.is_empty() {
            self.add(
                Severity::Attention,
                "realm default roles",
                format!("every Keycloak user held {}", everyone.join(", ")),
                "map each in [roles] to a group every user is in",
            );
        }
        let direct: BTreeSet<String> = self
            .users
            .iter()
            .flat_map(|u| u.realm_roles.iter())
            .filter(|r| !default_role(&self.realm.realm, r))
            .cloned()
            .collect();
        if !direct.is_empty() {
            self.add(
                Severity::Attention,
                "users",
                format!(
                    "roles assigned to users directly, not through a group: {}",
                    direct.into_iter().collect::<Vec<_>>().join(", ")
                ),
                "fedgate grants roles through groups only: put those users in a group and map it in [roles]",
            );
        }
        let client_only: Vec<String> = client_roles.into_iter().filter(|cr| !self.ram_client_role(cr)).collect();
        if !client_only.is_empty() {
            self.add(
                Severity::Unsupported,
                "client roles",
                format!(
                    "client roles held by groups ({}) are not in tokens (`resource_access`)",
                    client_only.join("; ")
                ),
                "map them as realm roles in [roles] if the apps can read `roles`",
            );
        }
        let mut sec =
            Section::new("[roles]", &["Role → groups whose members hold it (Keycloak realm roles held by groups)."]);
        for (role, groups) in &roles {
            sec.kv(&s(role), arr(&groups.iter().cloned().collect::<Vec<_>>()));
        }
        if !roles.is_empty() {
            self.add(
                Severity::Converted,
                "realm roles",
                format!("{} role(s) held by groups → [roles]", roles.len()),
                "",
            );
        }
        sec.finish()
    }

    fn ram_client_role(&self, entry: &str) -> bool {
        entry.split_once(": ").is_some_and(|(_, r)| parse_ram_role(r).is_some())
    }

    /// Group name → (realm roles, client roles) its members hold, composites expanded and parents' roles passed to
    /// subgroups.
    #[allow(clippy::type_complexity)]
    fn group_grants(&self) -> BTreeMap<String, (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>)> {
        let mut out = BTreeMap::new();
        fn walk(
            g: &super::export::Group,
            inherited: (&BTreeSet<String>, &BTreeMap<String, BTreeSet<String>>),
            realm: &Realm,
            out: &mut BTreeMap<String, (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>)>,
        ) {
            let mut rr: BTreeSet<String> = inherited.0.clone();
            rr.extend(g.realm_roles.iter().cloned());
            let mut cr = inherited.1.clone();
            for (client, roles) in &g.client_roles {
                cr.entry(client.clone()).or_default().extend(roles.iter().cloned());
            }
            expand_composites(realm, &mut rr, &mut cr);
            for sub in &g.sub_groups {
                walk(sub, (&rr, &cr), realm, out);
            }
            let entry = out.entry(g.name.clone()).or_insert_with(|| (BTreeSet::new(), BTreeMap::new()));
            entry.0.extend(rr);
            for (k, v) in cr {
                entry.1.entry(k).or_default().extend(v);
            }
        }
        for g in &self.realm.groups {
            walk(g, (&BTreeSet::new(), &BTreeMap::new()), self.realm, &mut out);
        }
        out
    }

    fn keys(&mut self) -> Option<Key> {
        let providers = self.realm.components.get(KEY_PROVIDER_TYPE).cloned().unwrap_or_default();
        let mut candidates: Vec<&Component> = providers
            .iter()
            .filter(|k| matches!(k.provider_id.as_str(), "rsa-generated" | "rsa"))
            .filter(|k| k.get("algorithm").is_none_or(|a| a == "RS256"))
            .filter(|k| k.flag("active", true) && k.flag("enabled", true))
            .collect();
        candidates
            .sort_by_key(|k| std::cmp::Reverse(k.get("priority").and_then(|p| p.parse::<i64>().ok()).unwrap_or(0)));
        for other in providers.iter().filter(|k| k.provider_id == "java-keystore") {
            self.add(
                Severity::Attention,
                format!("key provider `{}`", other.name),
                "a Java keystore key is not in the export",
                "export it with keytool/openssl and set saml.cert_file/key_file and oidc.keys_dir/active.pem",
            );
        }
        let legacy =
            self.realm.private_key.clone().map(|k| (k, self.realm.certificate.clone(), "realm privateKey".to_string()));
        let found = candidates
            .first()
            .map(|k| {
                (k.get("privateKey").unwrap_or_default(), k.get("certificate"), format!("key provider `{}`", k.name))
            })
            .or(legacy);
        let Some((private, cert, name)) = found else {
            self.add(
                Severity::Attention,
                "signing keys",
                "the export holds no RSA signing key (a partial export never does)",
                "fedgate generates new keys at first start: tokens Keycloak issued stop verifying (users sign in \
                 again), and SAML SPs that pinned the IdP certificate (Alibaba RAM) need fedgate's metadata \
                 uploaded; or import a `kc.sh export` to keep the key",
            );
            return None;
        };
        if private == MASKED || private.is_empty() {
            self.add(
                Severity::Attention,
                &name,
                "the private key is masked in this export",
                "import a `kc.sh export` (full export) to keep the key, or upload fedgate's new SAML metadata to SPs \
                 that pinned the certificate",
            );
            return None;
        }
        let Some(der) = keys::decode(&private).and_then(keys::rsa_pkcs8) else {
            self.add(
                Severity::Attention,
                &name,
                "the private key is not an RSA key fedgate can read",
                "convert it with `openssl pkcs8 -topk8 -nocrypt` and place it in oidc.keys_dir/active.pem",
            );
            return None;
        };
        let key_file = self.file(
            "keys/oidc/active.pem",
            keys::pem("PRIVATE KEY", &der).into_bytes(),
            true,
            "the realm's RSA signing key (OIDC)",
        );
        let saml_key = self.file(
            "keys/saml/idp.key",
            keys::pem("PRIVATE KEY", &der).into_bytes(),
            true,
            "the realm's RSA signing key (SAML)",
        );
        let _ = saml_key;
        let cert_file = match cert.as_deref().and_then(keys::decode).filter(|d| keys::is_certificate(d)) {
            Some(der) => Some(self.file(
                "keys/saml/idp.crt",
                keys::pem("CERTIFICATE", &der).into_bytes(),
                false,
                "the realm's certificate (SAML)",
            )),
            None => {
                self.add(
                    Severity::Attention,
                    &name,
                    "no certificate with the key; fedgate generates a SAML certificate",
                    "SPs that pinned Keycloak's certificate need fedgate's SAML metadata",
                );
                None
            }
        };
        self.add(
            Severity::Converted,
            &name,
            "RSA signing key kept for OIDC (oidc.keys_dir) and SAML (saml.cert_file/key_file): signatures verify \
             with the same public key; the JWKS `kid` is fedgate's (the key's thumbprint), so RPs refetch the JWKS once",
            "",
        );
        Some(Key { key_file, cert_file })
    }

    fn oidc(&mut self, key: Option<&Key>) -> String {
        let r = self.realm;
        let mut head = Section::new("[oidc]", &["From the realm's token lifetimes."]);
        let keys_dir =
            key.and_then(|k| k.key_file.parent().map(|p| p.to_path_buf())).unwrap_or_else(|| self.abs("keys/oidc"));
        head.kv("keys_dir", s(&keys_dir.display().to_string()));
        head.kv("signing_algorithm", s("RS256"));
        let access = r.access_token_lifespan.filter(|v| *v > 0).unwrap_or(300);
        head.kv("access_token_ttl", duration(access)).kv("id_token_ttl", duration(access));
        let refresh = r.sso_session_idle_timeout.filter(|v| *v > 0).unwrap_or(1800);
        head.kv("refresh_token_ttl", duration(refresh));
        let code = r.access_code_lifespan.filter(|v| *v > 0).unwrap_or(60).min(600);
        head.kv("code_ttl", duration(code));
        self.add(
            Severity::Converted,
            "realm",
            format!("access/ID token {access}s, refresh token {refresh}s (SSO idle), code {code}s → [oidc]"),
            "",
        );
        if r.offline_session_idle_timeout.is_some() {
            self.add(
                Severity::Attention,
                "realm offline sessions",
                "offline tokens live as long as ordinary refresh tokens in fedgate (oidc.refresh_token_ttl)",
                "raise oidc.refresh_token_ttl if apps (Harbor CLI secrets, Grafana) rely on long offline tokens",
            );
        }
        let mut clients = String::new();
        for client in &r.clients {
            if skip_client(client) {
                continue;
            }
            if client.enabled == Some(false) {
                self.add(
                    Severity::Attention,
                    format!("client `{}`", client.client_id),
                    "disabled; not converted",
                    "nothing to do",
                );
                continue;
            }
            if client.protocol.as_deref().unwrap_or("openid-connect") == "openid-connect" {
                clients.push_str(&self.oidc_client(client));
            }
        }
        let mut text = head.finish();
        if !self.scope_claims.is_empty() {
            let mut sc = Section::new(
                "[oidc.scope_claims]",
                &["Scopes releasing the LDAP claims Keycloak's mappers put in tokens."],
            );
            for (scope, claims) in &self.scope_claims {
                sc.kv(&s(scope), arr(claims));
            }
            text.push_str(&sc.finish());
        }
        text + &clients
    }

    fn oidc_client(&mut self, c: &Client) -> String {
        let subject = format!("OIDC client `{}`", c.client_id);
        if c.bearer_only {
            self.add(
                Severity::Attention,
                &subject,
                "bearer-only (an API that only checks tokens); nothing to register",
                "point the API at fedgate's issuer and JWKS; list it in proxy.token_audiences if fedgate proxies it",
            );
            return String::new();
        }
        let mut sec = Section::new("[[oidc.clients]]", &[&format!("From the Keycloak client \"{}\".", c.client_id)]);
        sec.kv("client_id", s(&c.client_id));
        if let Some(n) = c.name.as_deref().filter(|n| !n.is_empty() && !n.starts_with("${")) {
            sec.kv("name", s(n));
        }
        match c.client_authenticator_type.as_deref().unwrap_or("client-secret") {
            "client-secret" => {}
            other => self.add(
                Severity::Blocking,
                &subject,
                format!("client authentication `{other}`; fedgate accepts client secrets (basic or post) only"),
                "switch the client to a client secret (the secret file below) before switching",
            ),
        }
        if c.public_client {
            sec.kv("public", "true");
        } else {
            let rel = format!("secrets/oidc-{}", file_safe(&c.client_id));
            let path = self.secret(
                &format!("{subject} secret"),
                c.secret.as_deref(),
                &rel,
                federation::oidc::config::MIN_SECRET_LEN,
            );
            sec.kv("client_secret_file", s(&path.display().to_string()));
        }
        let (redirects, dropped) = self.redirect_uris(c, &c.redirect_uris);
        let code_flow = c.standard_flow_enabled.unwrap_or(true);
        let service = c.service_accounts_enabled.unwrap_or(false) && !c.public_client;
        let mut grants = Vec::new();
        if code_flow && !redirects.is_empty() {
            grants.extend(["authorization_code", "refresh_token"]);
        } else if code_flow {
            self.add(
                Severity::Blocking,
                &subject,
                format!("no exact redirect URI (Keycloak had {}); the code flow is left off", dropped.join(", ")),
                "list the app's exact callback URLs in redirect_uris and add \"authorization_code\", \"refresh_token\" \
                 to grant_types",
            );
        }
        if service {
            grants.push("client_credentials");
        }
        sec.kv("redirect_uris", arr(&redirects));
        sec.kv("post_logout_redirect_uris", arr(&self.post_logout(c, &redirects)));
        sec.kv("grant_types", arr(&grants));
        let mut scopes = vec!["openid".to_string(), "profile".into(), "email".into(), "groups".into(), "roles".into()];
        let listed = !c.default_client_scopes.is_empty() || !c.optional_client_scopes.is_empty();
        let all_scopes: Vec<&String> = c.default_client_scopes.iter().chain(&c.optional_client_scopes).collect();
        if !listed || all_scopes.iter().any(|s| *s == "offline_access") {
            scopes.push("offline_access".into());
        }
        let mut mappers: Vec<&ProtocolMapper> = c.protocol_mappers.iter().collect();
        for scope in self.realm.client_scopes.iter().filter(|s| all_scopes.contains(&&s.name)) {
            if !BUILT_IN_SCOPES.contains(&scope.name.as_str()) {
                mappers.extend(scope.protocol_mappers.iter());
            }
        }
        for m in mappers {
            if let Some(scope) = self.oidc_mapper(&subject, m)
                && !scopes.contains(&scope)
            {
                scopes.push(scope);
            }
        }
        sec.kv("scopes", arr(&scopes));
        match c.attr("pkce.code.challenge.method").as_deref() {
            Some("S256") => {
                sec.kv("require_pkce", "true");
            }
            Some("plain") => self.add(
                Severity::Blocking,
                &subject,
                "PKCE method `plain`; fedgate accepts S256 only",
                "switch the app to S256 (every current OIDC library does it)",
            ),
            _ => {}
        }
        self.oidc_unsupported(c, &subject);
        self.add(Severity::Converted, &subject, format!("→ [[oidc.clients]] with grants {}", grants.join(", ")), "");
        sec.finish()
    }

    fn oidc_unsupported(&mut self, c: &Client, subject: &str) {
        let flags: [(bool, &str, &str, Severity); 7] = [
            (
                c.implicit_flow_enabled == Some(true),
                "implicit flow",
                "use the code flow with PKCE",
                Severity::Unsupported,
            ),
            (
                c.direct_access_grants_enabled == Some(true),
                "direct access grants (password grant)",
                "scripts that post a password to the token endpoint must use the code flow or client_credentials",
                Severity::Unsupported,
            ),
            (
                c.flag("oauth2.device.authorization.grant.enabled"),
                "device authorization grant",
                "use the code flow on a browser",
                Severity::Unsupported,
            ),
            (
                c.flag("standard.token.exchange.enabled") || c.flag("token.exchange.grant.enabled"),
                "token exchange",
                "not available; the app must obtain its own tokens",
                Severity::Unsupported,
            ),
            (c.flag("oidc.ciba.grant.enabled"), "CIBA", "not available", Severity::Unsupported),
            (
                c.consent_required == Some(true),
                "consent screen",
                "fedgate signs in without a consent screen",
                Severity::Unsupported,
            ),
            (
                c.attr("access.token.lifespan").is_some(),
                "a client-specific access-token lifetime",
                "fedgate uses oidc.access_token_ttl for every client",
                Severity::Attention,
            ),
        ];
        for (on, what, action, severity) in flags {
            if on {
                self.add(severity, subject, what, action);
            }
        }
        if c.attr("backchannel.logout.url").is_some() || c.attr("frontchannel.logout.url").is_some() {
            self.add(
                Severity::Unsupported,
                subject,
                "back-/front-channel logout URL (not in this fedgate release)",
                "the app's session outlives a fedgate logout until its own session ends",
            );
        }
        if c.flag("tls.client.certificate.bound.access.tokens") {
            self.add(Severity::Unsupported, subject, "certificate-bound access tokens (mTLS)", "not available");
        }
        if ["access.token.signed.response.alg", "id.token.signed.response.alg"]
            .iter()
            .any(|k| c.attr(k).is_some_and(|a| a != "RS256"))
        {
            self.add(
                Severity::Attention,
                subject,
                "tokens signed with an algorithm other than RS256",
                "fedgate signs every token with oidc.signing_algorithm (RS256 here)",
            );
        }
        if c.attr("id.token.encrypted.response.alg").is_some() {
            self.add(
                Severity::Blocking,
                subject,
                "encrypted ID tokens",
                "the app must accept signed, unencrypted ID tokens",
            );
        }
    }

    /// Converts one OIDC protocol mapper; returns a scope the client needs for it.
    fn oidc_mapper(&mut self, subject: &str, m: &ProtocolMapper) -> Option<String> {
        let msub = format!("{subject} mapper `{}`", m.name);
        match m.protocol_mapper.as_str() {
            "oidc-usermodel-property-mapper"
            | "oidc-full-name-mapper"
            | "oidc-allowed-origins-mapper"
            | "oidc-acr-mapper"
            | "oidc-sub-mapper"
            | "oidc-address-mapper"
            | "oidc-usersessionmodel-note-mapper" => None,
            "oidc-usermodel-attribute-mapper" => {
                let attr = m.get("user.attribute")?;
                let claim = m.get("claim.name").unwrap_or_else(|| attr.clone());
                let Some(ldap_attr) = self.model_to_ldap.get(&attr).cloned() else {
                    if !matches!(attr.as_str(), "email" | "firstName" | "lastName" | "username") {
                        self.add(
                            Severity::Attention,
                            &msub,
                            format!("claim `{claim}` from user attribute `{attr}`, which no LDAP mapper fills"),
                            "add the LDAP attribute to [ldap.claims] and a scope for it in [oidc.scope_claims]",
                        );
                    }
                    return None;
                };
                let name = claim_name(&claim);
                self.ldap_claims.insert(name.clone(), ldap_attr.clone());
                self.scope_claims.insert(name.clone(), vec![name.clone()]);
                self.add(
                    Severity::Attention,
                    &msub,
                    format!("claim `{name}` (LDAP `{ldap_attr}`): Keycloak sent it unasked; fedgate sends it for scope `{name}`"),
                    &format!("have the app request scope `{name}`"),
                );
                Some(name)
            }
            "oidc-group-membership-mapper" => {
                let claim = m.get("claim.name").unwrap_or_else(|| "groups".into());
                let full = m.get("full.path").is_none_or(|v| v == "true");
                if claim != "groups" || full {
                    self.add(
                        Severity::Attention,
                        &msub,
                        format!(
                            "Keycloak sent `{claim}` with {}; fedgate sends `groups` with plain names for scope `groups`",
                            if full { "`/full/path` values" } else { "group names" }
                        ),
                        "make the app read plain group names from `groups`",
                    );
                }
                Some("groups".into())
            }
            "oidc-usermodel-realm-role-mapper" => {
                let claim = m.get("claim.name").unwrap_or_default();
                if claim != "roles" {
                    self.add(
                        Severity::Attention,
                        &msub,
                        format!("realm roles in `{claim}`; fedgate sends them as `roles` (scope `roles`)"),
                        "make the app read `roles`",
                    );
                }
                Some("roles".into())
            }
            "oidc-audience-mapper" => {
                self.add(
                    Severity::Unsupported,
                    &msub,
                    format!(
                        "extra audience `{}` in access tokens",
                        m.get("included.client.audience")
                            .or_else(|| m.get("included.custom.audience"))
                            .unwrap_or_default()
                    ),
                    "fedgate's access tokens name the requesting client as `aud`; the API must accept that",
                );
                None
            }
            other => {
                self.add(
                    Severity::Unsupported,
                    &msub,
                    format!("protocol mapper `{other}`"),
                    "the claim it produced is not in fedgate's tokens",
                );
                None
            }
        }
    }

    /// Exact redirect URIs (relative ones resolved against `rootUrl`); the Keycloak wildcards are reported.
    fn redirect_uris(&mut self, c: &Client, uris: &[String]) -> (Vec<String>, Vec<String>) {
        let mut exact = Vec::new();
        let mut dropped = Vec::new();
        for uri in uris {
            let resolved = if uri.starts_with('/') {
                c.root_url
                    .as_deref()
                    .and_then(|r| url::Url::parse(r).ok())
                    .and_then(|r| r.join(uri).ok())
                    .map(|u| u.to_string())
            } else {
                Some(uri.clone())
            };
            match resolved {
                Some(u) if !u.contains('*') && url::Url::parse(&u).is_ok_and(|p| p.fragment().is_none()) => {
                    exact.push(u)
                }
                _ => dropped.push(uri.clone()),
            }
        }
        if !dropped.is_empty() {
            self.add(
                Severity::Attention,
                format!("client `{}`", c.client_id),
                format!("redirect URIs with wildcards or not absolute were left out: {}", dropped.join(", ")),
                "add the exact URLs the app sends as redirect_uri / post_logout_redirect_uri (fedgate matches exactly)",
            );
        }
        (exact, dropped)
    }

    /// `post.logout.redirect.uris`: `##`-separated; empty = the redirect URIs, `+` = those plus the rest, `-` = none.
    fn post_logout(&mut self, c: &Client, redirects: &[String]) -> Vec<String> {
        let raw = c.attr("post.logout.redirect.uris").unwrap_or_default();
        let items: Vec<String> = raw.split("##").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        if items.is_empty() {
            return redirects.to_vec();
        }
        if items.iter().any(|i| i == "-") {
            return Vec::new();
        }
        let plus = items.iter().any(|i| i == "+");
        let listed: Vec<String> = items.into_iter().filter(|i| i != "+").collect();
        let (mut out, _) = self.redirect_uris(c, &listed);
        if plus {
            out.extend(redirects.iter().cloned());
        }
        out.dedup();
        out
    }

    fn saml(&mut self, key: Option<&Key>, public_url: Option<&url::Url>) -> String {
        let mut sps = String::new();
        let mut names = BTreeSet::new();
        for client in &self.realm.clients {
            if skip_client(client) || client.enabled == Some(false) || client.protocol.as_deref() != Some("saml") {
                continue;
            }
            sps.push_str(&self.saml_client(client, &mut names));
        }
        if sps.is_empty() {
            return String::new();
        }
        let mut head = Section::new("[saml]", &["The SAML identity provider."]);
        if let Some(u) = public_url {
            let id = format!("{}/realms/{}", u.as_str().trim_end_matches('/'), self.realm.realm);
            head.comment("Keycloak's IdP entity ID, which the SPs stored.");
            head.kv("entity_id", s(&id));
            self.add(
                Severity::Attention,
                "SAML identity provider",
                format!("entity ID kept as Keycloak's `{id}`; the SSO endpoint moves to {}saml/sso", u),
                "update the IdP SSO URL at each SP (or upload {public_url}saml/metadata) until realm URLs are served",
            );
        } else {
            self.add(
                Severity::Attention,
                "SAML identity provider",
                "SPs stored Keycloak's entity ID `https://<host>/realms/<realm>`; without the public URL it is unknown",
                "set saml.entity_id to that value, or import again with --public-url",
            );
        }
        match key {
            Some(Key { key_file, cert_file: Some(cert) }) => {
                let key_saml =
                    key_file.parent().and_then(|p| p.parent()).map(|k| k.join("saml/idp.key")).unwrap_or_default();
                head.kv("cert_file", s(&cert.display().to_string())).kv("key_file", s(&key_saml.display().to_string()));
            }
            _ => {
                head.kv("keys_dir", s(&self.abs("keys/saml").display().to_string()));
            }
        }
        head.finish() + &sps
    }

    fn saml_client(&mut self, c: &Client, names: &mut BTreeSet<String>) -> String {
        let subject = format!("SAML client `{}`", c.client_id);
        let mut base = c
            .attr("saml_idp_initiated_sso_url_name")
            .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
            .unwrap_or_else(|| sp_name(&c.client_id));
        if base.is_empty() {
            base = "sp".into();
        }
        let mut name = base.clone();
        let mut i = 2;
        while !names.insert(name.clone()) {
            name = format!("{base}-{i}");
            i += 1;
        }
        let mut sec = Section::new(
            "[[saml.service_providers]]",
            &[&format!("From the Keycloak SAML client \"{}\".", c.client_id)],
        );
        sec.kv("name", s(&name));
        if let Some(n) = c.name.as_deref().filter(|n| !n.is_empty() && !n.starts_with("${")) {
            sec.kv("display_name", s(n));
        }
        let ram_role = self.ram_role(c);
        let ram_user = ram_user(&c.client_id);
        if let Some(ram) = &ram_role {
            sec.kv("preset", s("aliyun-ram-role"));
            if c.client_id.ends_with(":international") {
                sec.kv("site", s("intl"));
            }
            sec.kv("account_id", s(&ram.account)).kv("provider_name", s(&ram.provider));
            sec.kv("role_mapping", inline(&ram.mapping));
            if let Some(d) = ram.session_duration {
                sec.kv("session_duration", d.to_string());
            }
            if ram.mapping.is_empty() {
                self.add(
                    Severity::Blocking,
                    &subject,
                    "RAM roles found, but no group holds them, so nobody could assume a role",
                    "fill role_mapping = { \"<group>\" = \"<RAM role name>\" }",
                );
            }
            self.add(
                Severity::Converted,
                &subject,
                format!("Alibaba Cloud RAM role SSO → preset aliyun-ram-role ({} group(s) mapped)", ram.mapping.len()),
                "",
            );
        } else if let Some((account, intl)) = &ram_user {
            sec.kv("preset", s("aliyun-ram-user")).kv("account_id", s(account));
            if *intl {
                sec.kv("site", s("intl"));
            }
            self.add(
                Severity::Attention,
                &subject,
                "Alibaba Cloud RAM user SSO → preset aliyun-ram-user: NameID is <username>@<auxiliary_domain>",
                "set auxiliary_domain if the RAM account uses a domain alias; check the NameID matches the RAM users",
            );
        } else {
            sec.kv("entity_id", s(&c.client_id));
            let acs: Vec<String> = ["saml_assertion_consumer_url_post", "saml_assertion_consumer_url_redirect"]
                .iter()
                .filter_map(|k| c.attr(k))
                .chain(c.admin_url.clone().filter(|u| u.starts_with("http")))
                .collect();
            let mut acs_unique = Vec::new();
            for a in acs {
                if !acs_unique.contains(&a) {
                    acs_unique.push(a);
                }
            }
            if acs_unique.is_empty() {
                self.add(
                    Severity::Blocking,
                    &subject,
                    "no assertion consumer URL (Keycloak took it from each AuthnRequest)",
                    "set acs_urls to the SP's AssertionConsumerService URL(s), or metadata_file to its metadata",
                );
                acs_unique.push(format!("https://{}/acs-url-missing", sp_name(&c.client_id)));
            }
            sec.kv("acs_urls", arr(&acs_unique));
            if let Some(slo) = c
                .attr("saml_single_logout_service_url_post")
                .or_else(|| c.attr("saml_single_logout_service_url_redirect"))
            {
                sec.kv("slo_url", s(&slo));
            }
            let (format, template) = match c.attr("saml_name_id_format").as_deref() {
                Some("email") => ("email", "{email}"),
                Some("transient") => ("transient", "{subject}"),
                Some("persistent") => {
                    self.add(
                        Severity::Attention,
                        &subject,
                        "persistent NameID: Keycloak sent a per-user `G-…` value; fedgate sends the user's `sub`",
                        "the SP sees new users unless it matches on another attribute; the old values are in \
                         sub-map.json when users were exported",
                    );
                    ("persistent", "{subject}")
                }
                _ => ("unspecified", "{username}"),
            };
            sec.kv("nameid_format", s(format));
            let mut template = template.to_string();
            let attributes = self.saml_mappers(c, &subject, &mut template);
            sec.kv("nameid_template", s(&template));
            sec.kv("attributes", inline(&attributes));
        }
        if let Some(relay) = c.attr("saml_idp_initiated_sso_relay_state") {
            sec.kv("default_relay_state", s(&relay));
        }
        if ram_role.is_none() {
            sec.kv("sign_response", (c.attr("saml.server.signature").is_none_or(|v| v == "true")).to_string());
            match c.attr("saml.signature.algorithm").as_deref() {
                Some("RSA_SHA1") => {
                    sec.kv("signature_algorithm", s("rsa-sha1"));
                }
                None | Some("RSA_SHA256") => {}
                Some(other) => self.add(
                    Severity::Attention,
                    &subject,
                    format!("signature algorithm {other}; fedgate signs with RSA-SHA256 (or RSA-SHA1)"),
                    "check the SP accepts RSA-SHA256",
                ),
            }
        }
        if c.flag("saml.client.signature") {
            match c
                .attr("saml.signing.certificate")
                .as_deref()
                .and_then(keys::decode)
                .filter(|d| keys::is_certificate(d))
            {
                Some(der) => {
                    let rel = format!("saml-sp/{name}.crt");
                    let path = self.file(
                        &rel,
                        keys::pem("CERTIFICATE", &der).into_bytes(),
                        false,
                        &format!("the signing certificate of SAML SP {name}"),
                    );
                    sec.kv("certificate_file", s(&path.display().to_string())).kv("want_authn_requests_signed", "true");
                }
                None => self.add(
                    Severity::Attention,
                    &subject,
                    "the SP signs its requests, but the export holds no certificate; signatures are not checked",
                    "set certificate_file (or metadata_file) and want_authn_requests_signed = true",
                ),
            }
        }
        if c.flag("saml.encrypt") {
            self.add(
                Severity::Blocking,
                &subject,
                "encrypted assertions; fedgate sends signed, unencrypted assertions over TLS",
                "turn off \"encrypt assertions\" at the SP (if it insists, keep Keycloak for it)",
            );
        }
        if c.flag("saml.artifact.binding") {
            self.add(Severity::Unsupported, &subject, "artifact binding", "the SP must accept HTTP-POST responses");
        }
        if c.attr("saml_single_logout_service_url_redirect").is_some()
            && c.attr("saml_single_logout_service_url_post").is_none()
        {
            self.add(
                Severity::Attention,
                &subject,
                "the SP's logout URL is for HTTP-Redirect; fedgate sends LogoutResponses with HTTP-POST",
                "check the SP accepts POST at that URL",
            );
        }
        self.add(
            Severity::Converted,
            &subject,
            format!("→ [[saml.service_providers]] name = \"{name}\" (IdP-initiated: /saml/init/{name})"),
            "",
        );
        sec.finish()
    }

    /// SAML attribute mappers → `attributes` (name → template); a NameID mapper changes `template`.
    fn saml_mappers(&mut self, c: &Client, subject: &str, template: &mut String) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for m in &c.protocol_mappers {
            let msub = format!("{subject} mapper `{}`", m.name);
            let attr_name = m.get("attribute.name").unwrap_or_else(|| m.name.clone());
            if m.get("attribute.nameformat").is_some_and(|f| f != "Basic") || m.get("friendly.name").is_some() {
                self.add(
                    Severity::Unsupported,
                    &msub,
                    "attribute NameFormat / FriendlyName (not in this fedgate release)",
                    "attributes are sent with the name only; check the SP matches on the name",
                );
            }
            let value = match m.protocol_mapper.as_str() {
                "saml-user-property-mapper" => match m.get("user.attribute").as_deref() {
                    Some("username") => Some("{username}".to_string()),
                    Some("email") => Some("{email}".into()),
                    Some("firstName") => Some("{given_name}".into()),
                    Some("lastName") => Some("{family_name}".into()),
                    other => {
                        self.add(
                            Severity::Unsupported,
                            &msub,
                            format!("user property `{}`", other.unwrap_or("")),
                            "left out",
                        );
                        None
                    }
                },
                "saml-user-attribute-mapper" => {
                    let a = m.get("user.attribute").unwrap_or_default();
                    match self.model_to_ldap.get(&a).cloned() {
                        Some(ldap_attr) => {
                            let claim = claim_name(&a);
                            self.ldap_claims.insert(claim.clone(), ldap_attr);
                            Some(format!("{{{claim}}}"))
                        }
                        None => {
                            self.add(
                                Severity::Attention,
                                &msub,
                                format!("user attribute `{a}`, which no LDAP mapper fills"),
                                "add it to [ldap.claims] and to the SP's attributes as \"{claim}\"",
                            );
                            None
                        }
                    }
                }
                "saml-role-list-mapper" => Some("{roles}".into()),
                "saml-group-membership-mapper" => {
                    if m.get("full.path").is_none_or(|v| v == "true") {
                        self.add(
                            Severity::Attention,
                            &msub,
                            "Keycloak sent `/full/path` group values; fedgate sends plain group names",
                            "check the SP's group rules",
                        );
                    }
                    Some("{groups}".into())
                }
                "saml-hardcode-attribute-mapper" => m.get("attribute.value").filter(|v| !v.contains('{')),
                "saml-user-attribute-nameid-mapper" => {
                    if let Some(a) = m.get("mapper.nameid.user.attribute").or_else(|| m.get("user.attribute")) {
                        *template = match a.as_str() {
                            "username" => "{username}".into(),
                            "email" => "{email}".into(),
                            other => format!("{{{}}}", claim_name(other)),
                        };
                    }
                    continue;
                }
                other => {
                    self.add(
                        Severity::Unsupported,
                        &msub,
                        format!("protocol mapper `{other}`"),
                        "the attribute is left out",
                    );
                    None
                }
            };
            if let Some(v) = value {
                out.insert(attr_name, v);
            }
        }
        out
    }

    fn ram_role(&mut self, c: &Client) -> Option<Ram> {
        let has_mapper = c.protocol_mappers.iter().any(|m| m.get("attribute.name").is_some_and(|n| n == ROLE_ATTR));
        let ram_entity =
            c.client_id == "urn:alibaba:cloudcomputing" || c.client_id == "urn:alibaba:cloudcomputing:international";
        if !has_mapper && !ram_entity {
            return None;
        }
        let mut ram = Ram::default();
        let grants = self.group_grants();
        let mut accounts = BTreeSet::new();
        let mut providers = BTreeSet::new();
        for (group, (realm_roles, client_roles)) in &grants {
            let held = realm_roles.iter().chain(client_roles.get(&c.client_id).into_iter().flatten());
            for role in held {
                if let Some((account, role_name, provider)) = parse_ram_role(role) {
                    accounts.insert(account);
                    providers.insert(provider);
                    ram.mapping.insert(group.clone(), role_name);
                }
            }
        }
        ram.account = accounts.iter().next().cloned().unwrap_or_default();
        ram.provider = providers.iter().next().cloned().unwrap_or_default();
        if accounts.len() > 1 || providers.len() > 1 {
            self.add(
                Severity::Attention,
                format!("SAML client `{}`", c.client_id),
                "RAM roles of several accounts or SAML providers; fedgate's preset has one of each",
                "split into one service provider per account",
            );
        }
        if ram.account.is_empty() {
            self.add(
                Severity::Blocking,
                format!("SAML client `{}`", c.client_id),
                "looks like Alibaba Cloud RAM role SSO, but no role named `acs:ram::<account>:role/…` was found",
                "set account_id, provider_name and role_mapping",
            );
            ram.account = "0".into();
            ram.provider = "fedgate".into();
        }
        ram.session_duration = c
            .protocol_mappers
            .iter()
            .find(|m| m.get("attribute.name").is_some_and(|n| n == SESSION_DURATION_ATTR))
            .and_then(|m| m.get("attribute.value"))
            .and_then(|v| v.parse().ok());
        let _ = ROLE_SESSION_NAME_ATTR;
        Some(ram)
    }

    /// Realm-wide features fedgate does not have.
    fn realm_features(&mut self) {
        let r = self.realm;
        for idp in &r.identity_providers {
            let (severity, note) = if idp.enabled == Some(false) {
                (Severity::Attention, "disabled in Keycloak")
            } else {
                (Severity::Blocking, "users who sign in through it could not sign in")
            };
            self.add(
                severity,
                format!("identity provider `{}`", idp.alias),
                format!("brokered sign-in through `{}` ({note}); fedgate has no upstream sign-in yet", idp.provider_id),
                "keep Keycloak for these users, or move them to the LDAP directory",
            );
        }
        for flow in r.authentication_flows.iter().filter(|f| !f.built_in && f.top_level) {
            self.add(
                Severity::Unsupported,
                format!("authentication flow `{}`", flow.alias),
                "custom authentication flow",
                "fedgate signs in with username and password against LDAP; check what the flow enforced",
            );
        }
        if r.browser_flow.as_deref().is_some_and(|f| f != "browser") {
            self.add(
                Severity::Attention,
                "realm",
                format!("browser logins ran the flow `{}`", r.browser_flow.as_deref().unwrap_or("")),
                "fedgate's login is username + password; check nothing the flow enforced is lost",
            );
        }
        let otp_users = self.users.iter().filter(|u| u.credentials.iter().any(|c| c.kind == "otp")).count();
        let otp_default =
            r.required_actions.iter().any(|a| a.alias == "CONFIGURE_TOTP" && a.enabled && a.default_action);
        if otp_users > 0 || otp_default {
            self.add(
                Severity::Unsupported,
                "one-time passwords (OTP)",
                format!(
                    "{}{}",
                    if otp_default { "new users had to set up OTP; " } else { "" },
                    if otp_users > 0 { format!("{otp_users} user(s) have an OTP device") } else { String::new() }
                ),
                "fedgate has no second factor yet: users sign in with their password only",
            );
        }
        for a in r.required_actions.iter().filter(|a| a.enabled && a.default_action && a.alias != "CONFIGURE_TOTP") {
            self.add(
                Severity::Unsupported,
                format!("required action `{}`", a.alias),
                "given to every new user",
                "fedgate has no required actions",
            );
        }
        let pending = self.users.iter().filter(|u| !u.required_actions.is_empty()).count();
        if pending > 0 {
            self.add(
                Severity::Unsupported,
                "users",
                format!("{pending} user(s) have pending required actions (update password, verify e-mail, …)"),
                "they are not asked for them by fedgate",
            );
        }
        for (on, what, action) in [
            (r.registration_allowed == Some(true), "self-registration", "create users in the directory"),
            (
                r.reset_password_allowed == Some(true),
                "\"forgot password\" e-mails",
                "users reset passwords with the directory's tools",
            ),
            (r.verify_email == Some(true), "e-mail verification", "not needed for directory users"),
        ] {
            if on {
                self.add(Severity::Unsupported, "realm", what, action);
            }
        }
        for scope in r.client_scopes.iter().filter(|s| !BUILT_IN_SCOPES.contains(&s.name.as_str())) {
            let used = r.clients.iter().any(|c| {
                c.default_client_scopes.contains(&scope.name) || c.optional_client_scopes.contains(&scope.name)
            });
            if !used && !scope.protocol_mappers.is_empty() {
                self.add(
                    Severity::Attention,
                    format!("client scope `{}`", scope.name),
                    "a custom client scope no converted client uses",
                    "nothing converted; add claims in [ldap.claims] / [oidc.scope_claims] if needed",
                );
            }
        }
        for client in r.clients.iter().filter(|c| !skip_client(c)) {
            if let Some(p) = client.protocol.as_deref().filter(|p| !matches!(*p, "openid-connect" | "saml")) {
                self.add(
                    Severity::Blocking,
                    format!("client `{}`", client.client_id),
                    format!("protocol `{p}`"),
                    "not available in fedgate",
                );
            }
        }
    }
}

#[derive(Default)]
struct Ram {
    account: String,
    provider: String,
    mapping: BTreeMap<String, String>,
    session_duration: Option<u64>,
}

/// `acs:ram::<account>:role/<role>,acs:ram::<account>:saml-provider/<provider>` (either order) →
/// (account, role, provider).
fn parse_ram_role(value: &str) -> Option<(String, String, String)> {
    let (a, b) = value.split_once(',')?;
    let part = |p: &str, kind: &str| -> Option<(String, String)> {
        let rest = p.trim().strip_prefix("acs:ram::")?;
        let (account, tail) = rest.split_once(':')?;
        let name = tail.strip_prefix(kind)?;
        (!account.is_empty() && !name.is_empty()).then(|| (account.to_string(), name.to_string()))
    };
    let (role, provider) = match (part(a, "role/"), part(b, "saml-provider/")) {
        (Some(r), Some(p)) => (r, p),
        _ => (part(b, "role/")?, part(a, "saml-provider/")?),
    };
    Some((role.0, role.1, provider.1))
}

/// `https://signin[-intl].aliyun.com/<account>/saml/SSO` → (account, intl).
fn ram_user(entity: &str) -> Option<(String, bool)> {
    for (host, intl) in [("https://signin.aliyun.com/", false), ("https://signin-intl.aliyun.com/", true)] {
        if let Some(account) = entity.strip_prefix(host).and_then(|r| r.strip_suffix("/saml/SSO"))
            && !account.is_empty()
            && account.bytes().all(|b| b.is_ascii_digit())
        {
            return Some((account.to_string(), intl));
        }
    }
    None
}

fn expand_composites(realm: &Realm, rr: &mut BTreeSet<String>, cr: &mut BTreeMap<String, BTreeSet<String>>) {
    // Bounded: each pass adds at least one role or stops.
    for _ in 0..32 {
        let mut added = false;
        for role in &realm.roles.realm {
            if !rr.contains(&role.name) {
                continue;
            }
            if let Some(c) = &role.composites {
                for r in &c.realm {
                    added |= rr.insert(r.clone());
                }
                for (client, roles) in &c.client {
                    for r in roles {
                        added |= cr.entry(client.clone()).or_default().insert(r.clone());
                    }
                }
            }
        }
        if !added {
            break;
        }
    }
}

fn skip_client(c: &Client) -> bool {
    BUILT_IN_CLIENTS.contains(&c.client_id.as_str()) || (c.bearer_only && c.client_id.ends_with("-realm"))
}

/// The combined user filter: object classes and the custom filter.
fn user_filter(comp: &Component) -> Option<String> {
    let mut parts: Vec<String> = comp
        .get("userObjectClasses")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| format!("(objectClass={c})"))
        .collect();
    if let Some(f) = comp.get("customUserSearchFilter") {
        parts.push(paren(&f));
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(format!("(&{})", parts.concat())),
    }
}

fn paren(filter: &str) -> String {
    let f = filter.trim();
    if f.starts_with('(') { f.to_string() } else { format!("({f})") }
}

/// A claim name usable in templates (`{name}`): letters, digits and `_`.
fn claim_name(attr: &str) -> String {
    attr.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// A file name from a client id.
fn file_safe(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
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

#[cfg(test)]
pub(super) fn parse_ram_role_for_tests(v: &str) -> Option<(String, String, String)> {
    parse_ram_role(v)
}
