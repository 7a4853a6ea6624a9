//! SAML clients → `[saml]` and `[[saml.service_providers]]`, Alibaba Cloud RAM recognised as its presets.

use super::*;

impl Converter<'_> {
    pub(super) fn saml(&mut self, key: Option<&Key>, public_url: Option<&url::Url>) -> String {
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
            Some(Key { saml_key_file, cert_file: Some(cert), .. }) => {
                head.kv("cert_file", s(&cert.display().to_string()))
                    .kv("key_file", s(&saml_key_file.display().to_string()));
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
            if let Some(slo) = c.attr("saml_single_logout_service_url_post") {
                sec.kv("slo_url", s(&slo));
            } else if let Some(slo) = c.attr("saml_single_logout_service_url_redirect") {
                sec.kv("slo_url", s(&slo)).kv("slo_binding", s("redirect"));
            }
            let (format, template) = match c.attr("saml_name_id_format").as_deref() {
                Some("email") => ("email", "{email}"),
                Some("transient") => ("transient", "{subject}"),
                Some("persistent") => {
                    self.add(
                        Severity::Attention,
                        &subject,
                        "persistent NameID: Keycloak sent a per-user `G-…` value; fedgate sends it to the users in \
                         sub-map.json (from --users) and the user's `sub` to everyone else",
                        "export the users and import with --users if you have not, or the SP sees new users",
                    );
                    ("persistent", "{subject}")
                }
                _ => ("unspecified", "{username}"),
            };
            sec.kv("nameid_format", s(format));
            let mut template = template.to_string();
            let attributes = self.saml_mappers(c, &subject, &mut template);
            sec.kv("nameid_template", s(&template));
            // Keycloak's attribute mappers send NameFormat Basic unless told otherwise.
            sec.kv("attribute_name_format", s("basic"));
            sec.kv("attributes", inline_values(&attributes));
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
            match c
                .attr("saml.encryption.certificate")
                .as_deref()
                .and_then(keys::decode)
                .filter(|d| keys::is_certificate(d))
            {
                Some(der) => {
                    let rel = format!("saml-sp/{name}-encryption.crt");
                    let path = self.file(
                        &rel,
                        keys::pem("CERTIFICATE", &der).into_bytes(),
                        false,
                        &format!("the encryption certificate of SAML SP {name}"),
                    );
                    sec.kv("encrypt_assertions", "true")
                        .kv("encryption_certificate_file", s(&path.display().to_string()));
                }
                None => self.add(
                    Severity::Blocking,
                    &subject,
                    "encrypted assertions, but the export holds no encryption certificate",
                    "set encryption_certificate_file (or metadata_file with the SP's encryption key) and \
                     encrypt_assertions = true",
                ),
            }
        }
        if c.flag("saml.artifact.binding") {
            self.add(Severity::Unsupported, &subject, "artifact binding", "the SP must accept HTTP-POST responses");
        }
        self.add(
            Severity::Converted,
            &subject,
            format!("→ [[saml.service_providers]] name = \"{name}\" (IdP-initiated: /saml/init/{name})"),
            "",
        );
        sec.finish()
    }
    /// SAML attribute mappers → `attributes` (name → TOML value: the template, or a table with the mapper's
    /// NameFormat and FriendlyName when they differ from Keycloak's default); a NameID mapper changes `template`.
    fn saml_mappers(&mut self, c: &Client, subject: &str, template: &mut String) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for m in &c.protocol_mappers {
            let msub = format!("{subject} mapper `{}`", m.name);
            let attr_name = m.get("attribute.name").unwrap_or_else(|| m.name.clone());
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
                    // Keycloak's default is the full path (`/eng/ai-admins`).
                    if m.get("full.path").is_none_or(|v| v == "true") {
                        Some("{group_paths}".into())
                    } else {
                        Some("{groups}".into())
                    }
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
                out.insert(attr_name, attribute_value(&v, m));
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
        Some(ram)
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
pub(in crate::import::keycloak) fn parse_ram_role(value: &str) -> Option<(String, String, String)> {
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
pub(super) fn ram_user(entity: &str) -> Option<(String, bool)> {
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

/// One attribute's TOML value: `"template"`, or `{ value, name_format, friendly_name }` when the Keycloak mapper
/// set a NameFormat other than Basic or a FriendlyName.
fn attribute_value(template: &str, m: &ProtocolMapper) -> String {
    let format = match m.get("attribute.nameformat").as_deref() {
        Some("URI Reference") => Some("uri"),
        Some("Unspecified") => Some("unspecified"),
        _ => None,
    };
    let friendly = m.get("friendly.name").filter(|f| !f.is_empty());
    if format.is_none() && friendly.is_none() {
        return s(template);
    }
    let mut parts = vec![format!("value = {}", s(template))];
    if let Some(f) = format {
        parts.push(format!("name_format = {}", s(f)));
    }
    if let Some(f) = friendly {
        parts.push(format!("friendly_name = {}", s(&f)));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// An inline table whose values are TOML text already.
fn inline_values(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "{}".into();
    }
    format!("{{ {} }}", map.iter().map(|(k, v)| format!("{} = {v}", s(k))).collect::<Vec<_>>().join(", "))
}
