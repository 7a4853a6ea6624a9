//! Brokered identity providers (`identityProviders`) → `[[upstream.oidc]]`: the OpenID Connect ones (`oidc`,
//! `keycloak-oidc`, `google`, `microsoft` with a tenant) become upstream sign-in entries; the rest are reported.

use super::*;
use crate::import::keycloak::export::IdentityProvider;

impl Converter<'_> {
    /// One `[[upstream.oidc]]` per OpenID Connect identity provider of the realm.
    pub(super) fn upstream(&mut self) -> String {
        let mut out = String::new();
        let mut names = BTreeSet::new();
        for idp in &self.realm.identity_providers {
            let subject = format!("identity provider `{}`", idp.alias);
            if idp.enabled == Some(false) {
                self.add(Severity::Attention, &subject, "disabled in Keycloak; not converted", "nothing to do");
                continue;
            }
            match self.upstream_provider(idp, &subject, &mut names) {
                Ok(section) => out.push_str(&section),
                Err(why) => self.add(
                    Severity::Blocking,
                    &subject,
                    format!("brokered sign-in through `{}` ({why}): users who sign in through it could not sign in", idp.provider_id),
                    "keep Keycloak for these users, add the provider by hand as [[upstream.oidc]] (docs/upstream.md), or move them to the LDAP directory",
                ),
            }
        }
        out
    }

    fn upstream_provider(
        &mut self,
        idp: &IdentityProvider,
        subject: &str,
        names: &mut BTreeSet<String>,
    ) -> Result<String, String> {
        let issuer = issuer_of(idp)?;
        let client_id = idp.setting("clientId").ok_or("the export holds no clientId")?;
        match idp.setting("clientAuthMethod").as_deref() {
            None | Some("client_secret_basic") | Some("client_secret_post") => {}
            Some(other) => {
                return Err(format!("client authentication `{other}` at the provider; fedgate sends a client secret"));
            }
        }
        let name = upstream_name(&idp.alias, names);
        let mut sec = Section::new(
            "[[upstream.oidc]]",
            &[&format!("From the Keycloak identity provider \"{}\" ({}).", idp.alias, idp.provider_id)],
        );
        sec.kv("name", s(&name));
        if let Some(label) = idp.display_name.as_deref().filter(|l| !l.is_empty() && !l.starts_with("${")) {
            sec.kv("display_name", s(label));
        }
        sec.kv("issuer", s(&issuer)).kv("client_id", s(&client_id));
        let public = idp.setting("clientAuthMethod").is_none() && idp.setting("clientSecret").is_none();
        if !public {
            let file = self.secret(
                subject,
                idp.setting("clientSecret").as_deref(),
                &format!("secrets/upstream-{}", file_safe(&idp.alias)),
                1,
            );
            sec.kv("client_secret_file", s(&file.display().to_string()));
        }
        if let Some(scopes) = idp.setting("defaultScope") {
            let mut scopes: Vec<&str> = scopes.split_whitespace().collect();
            if !scopes.contains(&"openid") {
                scopes.insert(0, "openid");
            }
            sec.kv("scopes", arr(&scopes));
        }
        if let Some(domains) = idp.setting("hostedDomain") {
            let domains: Vec<&str> =
                domains.split([',', ' ']).map(str::trim).filter(|d| !d.is_empty() && *d != "*").collect();
            if !domains.is_empty() {
                sec.kv("allowed_email_domains", arr(&domains));
            }
        }
        if let Some(prompt) = idp.setting("prompt").filter(|p| !p.eq_ignore_ascii_case("unspecified")) {
            let mut params = BTreeMap::new();
            params.insert("prompt".to_string(), prompt);
            sec.kv("authorization_params", inline(&params));
        }
        let callback = match split_relative_path(self.options.public_url.clone()).0 {
            Some(url) => format!("{}/login/{name}/callback", url.as_str().trim_end_matches('/')),
            None => format!("<public_url>/login/{name}/callback"),
        };
        self.add(Severity::Converted, subject, format!("→ [[upstream.oidc]] \"{name}\" (issuer {issuer})"), "");
        self.add(
            Severity::Attention,
            subject,
            format!(
                "the provider redirects to Keycloak's broker endpoint today; register fedgate's callback {callback} \
                 as a redirect URI of client `{client_id}` at the provider"
            ),
            "add the redirect URI at the provider before switching the host name",
        );
        self.add(
            Severity::Attention,
            subject,
            "Keycloak's first-broker-login flow linked these users to accounts (by asking them); fedgate signs them \
             in as the provider names them (preferred_username, groups from the `groups` claim), link = \"none\"",
            "set link = \"ldap\" (link_claim, link_attribute) if they must become their LDAP accounts; check username_claim and groups_claim",
        );
        if idp.trust_email == Some(true) {
            self.add(
                Severity::Attention,
                subject,
                "Keycloak trusted this provider's e-mail addresses; fedgate trusts email_verified as the provider sends it",
                "nothing to do unless the provider omits email_verified for addresses it has not checked",
            );
        }
        Ok(sec.finish())
    }
}

/// Whether `idp` becomes an `[[upstream.oidc]]` entry (enabled, an OpenID Connect provider with an issuer, a
/// client id and a client authentication fedgate does).
pub(super) fn convertible(idp: &IdentityProvider) -> bool {
    idp.enabled != Some(false)
        && issuer_of(idp).is_ok()
        && idp.setting("clientId").is_some()
        && matches!(
            idp.setting("clientAuthMethod").as_deref(),
            None | Some("client_secret_basic") | Some("client_secret_post")
        )
}

/// The provider's issuer: `issuer` as Keycloak stored it, Google's and a Microsoft tenant's fixed ones, or for
/// another Keycloak (`keycloak-oidc`) the realm URL its authorization URL names.
fn issuer_of(idp: &IdentityProvider) -> Result<String, String> {
    match idp.provider_id.as_str() {
        "google" => return Ok("https://accounts.google.com".into()),
        "microsoft" => {
            return match idp
                .setting("tenantId")
                .filter(|t| !["common", "organizations", "consumers"].contains(&t.as_str()))
            {
                Some(t) => Ok(format!("https://login.microsoftonline.com/{t}/v2.0")),
                None => Err("a multi-tenant Microsoft provider has no single issuer; configure a tenant".into()),
            };
        }
        "oidc" | "keycloak-oidc" => {}
        other => return Err(format!("`{other}` is not an OpenID Connect provider fedgate can sign in through")),
    }
    if let Some(issuer) = idp.setting("issuer") {
        return Ok(issuer.trim_end_matches('/').to_string());
    }
    if idp.provider_id == "keycloak-oidc"
        && let Some(auth) = idp.setting("authorizationUrl")
        && let Some(realm) = auth.strip_suffix("/protocol/openid-connect/auth")
    {
        return Ok(realm.to_string());
    }
    Err("the export names no issuer (Keycloak's `issuer` setting); fedgate discovers the provider from it".into())
}

/// A URL-safe, unique provider name (`/login/{name}`) from a Keycloak alias.
fn upstream_name(alias: &str, taken: &mut BTreeSet<String>) -> String {
    let mut base: String = alias
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(56)
        .collect();
    if base.is_empty() || base.eq_ignore_ascii_case("callback") {
        base = format!("idp{base}");
    }
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.to_lowercase()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}
