//! The LDAP user-storage provider and its mappers → `[ldap]`; how Keycloak computed `sub` and how it is kept.

use super::*;

impl Converter<'_> {
    pub(super) fn directory(&mut self) -> String {
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
            None if self.realm.identity_providers.iter().any(super::upstream::convertible) => {
                self.add(
                    Severity::Attention,
                    "user federation",
                    "the realm has no LDAP provider: users sign in only through its identity providers \
                     ([[upstream.oidc]]); the password form is off",
                    "add an [ldap] section if some users signed in with a password",
                );
                String::new()
            }
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
        for key in ["connectionUrl", "bindDn", "usersDn", "customUserSearchFilter"] {
            if let Some(v) = comp.get(key).filter(|v| v.contains("${")) {
                self.add(
                    Severity::Blocking,
                    &subject,
                    format!("{key} is a placeholder `{v}` that Keycloak resolved from its environment"),
                    "replace it in config.toml ([ldap]) with the real value",
                );
            }
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
        if let Some(p) = m.get("groups.path").filter(|p| p != "/" && !p.is_empty()) {
            let p = if p.starts_with('/') { p } else { format!("/{p}") };
            kv("groups_path", s(p.trim_end_matches('/')));
            self.add(
                Severity::Attention,
                subject,
                format!("Keycloak placed these groups under `{p}`: group paths start with it (ldap.groups_path)"),
                "fedgate builds the rest of a path from the group's place under groups_dn, not from \
                 group-in-group membership; compare a user's paths with `fedgate ldap probe <user>`",
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
                    (k.strip_prefix("saml.persistent.name.id.for."), crate::import::keycloak::export::first(v))
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
            let n: usize = persistent.values().map(BTreeMap::len).sum();
            self.add(
                Severity::Converted,
                "SAML persistent NameIDs",
                format!(
                    "{n} of Keycloak's per-user `G-…` NameIDs kept in sub-map.json; sent to their SPs as the \
                     persistent NameID"
                ),
                "",
            );
        }
        vec![("subject_map_file", s(&path.display().to_string()))]
    }
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
