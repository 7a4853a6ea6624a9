//! The realm's RSA signing key and certificate, when the export carries them → key files for OIDC and SAML.

use super::*;

impl Converter<'_> {
    pub(super) fn keys(&mut self) -> Option<Key> {
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
        let saml_key_file = self.file(
            "keys/saml/idp.key",
            keys::pem("PRIVATE KEY", &der).into_bytes(),
            true,
            "the realm's RSA signing key (SAML)",
        );
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
        Some(Key { key_file, saml_key_file, cert_file })
    }
}
