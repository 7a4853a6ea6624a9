//! Realm-wide features fedgate does not have: flows, OTP, required actions, self-service.

use super::*;

impl Converter<'_> {
    /// Realm-wide features fedgate does not have.
    pub(super) fn realm_features(&mut self) {
        let r = self.realm;
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
