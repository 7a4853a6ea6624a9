//! Token lifetimes and OpenID Connect clients → `[oidc]` and `[[oidc.clients]]`.

use super::*;

impl Converter<'_> {
    pub(super) fn oidc(&mut self, key: Option<&Key>) -> String {
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
        // Tokens shaped as Keycloak made them (realm_access, resource_access, azp, typ, …), so apps read them as before.
        sec.kv("claims_profile", s("keycloak"));
        if redirects.iter().any(|u| u.ends_with('*')) {
            sec.kv("redirect_uri_rules", s("keycloak"));
        }
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
        // Keycloak's group-membership mapper writes `/full/path`s unless `full.path` is false.
        if mappers.iter().any(|m| {
            m.protocol_mapper == "oidc-group-membership-mapper" && m.get("full.path").is_none_or(|v| v == "true")
        }) {
            sec.kv("group_format", s("path"));
        }
        for m in mappers {
            if let Some(scope) = self.oidc_mapper(&subject, m)
                && !scopes.contains(&scope)
            {
                scopes.push(scope);
            }
        }
        sec.kv("scopes", arr(&scopes));
        // Keycloak's audience mappers: the APIs this app calls with its access tokens check `aud` for themselves.
        let mut audiences: Vec<String> = Vec::new();
        for m in c.protocol_mappers.iter().chain(
            self.realm
                .client_scopes
                .iter()
                .filter(|s| all_scopes.contains(&&s.name))
                .flat_map(|s| s.protocol_mappers.iter()),
        ) {
            if m.protocol_mapper != "oidc-audience-mapper" || m.get("access.token.claim").is_some_and(|v| v == "false")
            {
                continue;
            }
            let target = m
                .get("included.client.audience")
                .filter(|a| !a.is_empty())
                .or_else(|| m.get("included.custom.audience").filter(|a| !a.is_empty()));
            if let Some(a) = target.filter(|a| *a != c.client_id && !audiences.contains(a)) {
                audiences.push(a);
            }
        }
        if !audiences.is_empty() {
            sec.kv("audiences", arr(&audiences));
        }
        // Client roles held by groups: Keycloak's `resource_access.<client>.roles`.
        let mut client_roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, (_, crs)) in self.group_grants() {
            for role in crs.get(&c.client_id).into_iter().flatten() {
                client_roles.entry(role.clone()).or_default().insert(group.clone());
            }
        }
        if !client_roles.is_empty() {
            let table: Vec<String> = client_roles
                .iter()
                .map(|(role, groups)| format!("{} = {}", s(role), arr(&groups.iter().cloned().collect::<Vec<_>>())))
                .collect();
            sec.kv("client_roles", format!("{{ {} }}", table.join(", ")));
            self.add(
                Severity::Converted,
                &subject,
                format!("client roles held by groups → client_roles ({})", client_roles.len()),
                "",
            );
        }
        // Keycloak's logout notifications; both "session required" flags default to on there.
        let required = |key: &str| if c.attr(key).as_deref() == Some("false") { "false" } else { "true" };
        if let Some(url) = c.attr("backchannel.logout.url").filter(|u| !u.is_empty()) {
            sec.kv("backchannel_logout_uri", s(&url));
            sec.kv("backchannel_logout_session_required", required("backchannel.logout.session.required"));
        }
        if let Some(url) =
            c.attr("frontchannel.logout.url").filter(|u| !u.is_empty() && c.frontchannel_logout != Some(false))
        {
            sec.kv("frontchannel_logout_uri", s(&url));
            sec.kv("frontchannel_logout_session_required", required("frontchannel.logout.session.required"));
        }
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
                let shape = if full { "`/full/path` values (group_format = \"path\")" } else { "group names" };
                if claim != "groups" {
                    self.add(
                        Severity::Attention,
                        &msub,
                        format!(
                            "Keycloak sent `{claim}` with {shape}; fedgate sends them as `groups` for scope `groups`"
                        ),
                        "make the app read `groups`",
                    );
                } else {
                    self.add(Severity::Converted, &msub, format!("`groups` with {shape} for scope `groups`"), "");
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
                let target = m
                    .get("included.client.audience")
                    .filter(|a| !a.is_empty())
                    .or_else(|| m.get("included.custom.audience"))
                    .unwrap_or_default();
                if m.get("access.token.claim").is_some_and(|v| v == "false") {
                    self.add(
                        Severity::Attention,
                        &msub,
                        format!("audience `{target}` only in introspection, not in access tokens"),
                        "fedgate adds `audiences` to the access token (and so to introspection): nothing to do",
                    );
                } else {
                    self.add(Severity::Converted, &msub, format!("audience `{target}` → audiences"), "");
                }
                None
            }
            // Keycloak's default `resource_access.${client_id}.roles`: the Keycloak profile writes it from
            // client_roles.
            "oidc-usermodel-client-role-mapper"
                if m.get("claim.name").is_none_or(|c| c.is_empty() || c.starts_with("resource_access.")) =>
            {
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
        let mut wildcards = Vec::new();
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
                Some(u) if is_path_wildcard(&u) => wildcards.push(u),
                _ => dropped.push(uri.clone()),
            }
        }
        if !wildcards.is_empty() {
            self.add(
                Severity::Attention,
                format!("client `{}`", c.client_id),
                format!(
                    "redirect URIs with a trailing wildcard kept (redirect_uri_rules = \"keycloak\"): {}",
                    wildcards.join(", ")
                ),
                "prefer the exact URLs the app sends: a prefix match lets any page under it receive codes",
            );
            exact.extend(wildcards);
        }
        if !dropped.is_empty() {
            self.add(
                Severity::Attention,
                format!("client `{}`", c.client_id),
                format!(
                    "redirect URIs that are not absolute or wildcard the host were left out: {}",
                    dropped.join(", ")
                ),
                "add the exact URLs the app sends as redirect_uri / post_logout_redirect_uri",
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
}

/// A Keycloak redirect URI whose only `*` ends it, after the host: what `redirect_uri_rules = "keycloak"` accepts.
fn is_path_wildcard(uri: &str) -> bool {
    let Some(prefix) = uri.strip_suffix('*') else { return false };
    !prefix.contains('*')
        && url::Url::parse(prefix).is_ok_and(|u| u.host_str().is_some() && u.fragment().is_none())
        && prefix.split_once("://").is_some_and(|(_, rest)| rest.contains('/'))
}
