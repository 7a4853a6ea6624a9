//! Realm roles held by groups (composites expanded, subgroups inheriting) → `[roles]`.

use super::saml::parse_ram_role;
use super::*;

impl Converter<'_> {
    pub(super) fn roles(&mut self) -> String {
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
        // Roles of a converted OIDC client become its client_roles; the others (bearer-only APIs, SAML clients)
        // have no place in fedgate's tokens.
        let converted = |client: &str| {
            self.realm.clients.iter().any(|c| {
                c.client_id == client
                    && !c.bearer_only
                    && c.enabled != Some(false)
                    && c.protocol.as_deref().unwrap_or("openid-connect") == "openid-connect"
            })
        };
        let client_only: Vec<String> = client_roles
            .into_iter()
            .filter(|cr| !self.ram_client_role(cr))
            .filter(|cr| !cr.split_once(": ").is_some_and(|(client, _)| converted(client)))
            .collect();
        if !client_only.is_empty() {
            self.add(
                Severity::Unsupported,
                "client roles",
                format!(
                    "client roles of clients that are not OIDC clients here (bearer-only APIs, SAML clients) held by \
                     groups ({}) are not in tokens: Keycloak put every client's roles in `resource_access`, fedgate \
                     only the issuing client's",
                    client_only.join("; ")
                ),
                "map them as realm roles in [roles], or as client_roles of the app whose tokens the API reads",
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
    pub(super) fn group_grants(&self) -> BTreeMap<String, (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>)> {
        let mut out = BTreeMap::new();
        fn walk(
            g: &crate::import::keycloak::export::Group,
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
