use std::path::Path;

use serde_json::{Value, json};

use super::export::{Realm, User, UsersFile};
use super::report::Severity;
use super::*;

/// A partial export as Keycloak 26's admin console writes it (groups, roles and clients included; secrets masked),
/// with an LDAP provider, a group mapper, an OIDC and a SAML client.
fn partial() -> Value {
    serde_json::from_str(include_str!("testdata/partial-export.json")).unwrap()
}

fn realm(v: Value) -> Realm {
    serde_json::from_value(v).unwrap()
}

fn options(dir: &Path) -> Options {
    Options { out_dir: dir.to_path_buf(), public_url: None }
}

fn run(v: Value, users: Option<&[User]>) -> Conversion {
    convert(&realm(v), users, &options(Path::new("/out")))
}

fn has(c: &Conversion, severity: Severity, subject: &str, what: &str) -> bool {
    c.report.findings.iter().any(|f| f.severity == severity && f.subject.contains(subject) && f.what.contains(what))
}

/// The generated TOML parsed as a table (no validation: secret files are not on disk in a pure conversion).
fn table(c: &Conversion) -> toml::Table {
    c.config.parse().unwrap_or_else(|e| panic!("{e}\n{}", c.config))
}

#[test]
fn ldap_provider_and_group_mapper_become_the_ldap_section() {
    let c = run(partial(), None);
    let t = table(&c);
    let ldap = t["ldap"].as_table().unwrap();
    assert_eq!(ldap["urls"].as_array().unwrap().len(), 2, "the failover list is split");
    assert_eq!(ldap["preset"].as_str(), Some("openldap"));
    assert_eq!(ldap["bind_dn"].as_str(), Some("cn=fedgate,ou=services,dc=example,dc=org"));
    assert_eq!(ldap["bind_password_file"].as_str(), Some("/out/secrets/ldap-bind-password"));
    assert_eq!(ldap["users_dn"].as_str(), Some("ou=people,dc=example,dc=org"));
    assert_eq!(ldap["scope"].as_str(), Some("one"));
    assert_eq!(
        ldap["user_filter"].as_str(),
        Some("(&(objectClass=inetOrgPerson)(objectClass=organizationalPerson)(!(employeeType=robot)))")
    );
    assert_eq!(ldap["username_attribute"].as_str(), Some("uid"));
    assert_eq!(ldap["unique_id_attribute"].as_str(), Some("entryUUID"));
    assert_eq!(ldap["email_attribute"].as_str(), Some("mail"));
    assert_eq!(ldap["given_name_attribute"].as_str(), Some("givenName"));
    assert_eq!(ldap["group_strategy"].as_str(), Some("search"));
    assert_eq!(ldap["groups_dn"].as_str(), Some("ou=groups,dc=example,dc=org"));
    assert_eq!(ldap["group_filter"].as_str(), Some("(objectClass=groupOfNames)"));
    assert_eq!(ldap["group_member_attribute"].as_str(), Some("member"));
    assert_eq!(ldap["nested_groups"].as_bool(), Some(true));
    assert_eq!(ldap["claims"]["department"].as_str(), Some("departmentNumber"));
    assert!(ldap["claims"].get("createTimestamp").is_none(), "Keycloak's bookkeeping attributes are not claims");
    assert!(has(&c, Severity::Blocking, "bindCredential", "masked"));
    assert!(has(&c, Severity::Converted, "`sub`", "f:8a2b6f0e-ldap-4c2e-9b4a-1d2c3e4f5a6b:<username>"));
    assert_eq!(ldap["subject_template"].as_str(), Some("f:8a2b6f0e-ldap-4c2e-9b4a-1d2c3e4f5a6b:{username}"));
}

#[test]
fn memberof_strategy_uid_membership_and_active_directory() {
    let mut v = partial();
    let comp = &mut v["components"]["org.keycloak.storage.UserStorageProvider"][0];
    comp["config"]["vendor"] = json!(["ad"]);
    comp["config"]["searchScope"] = json!(["2"]);
    let mapper = &mut comp["subComponents"]["org.keycloak.storage.ldap.mappers.LDAPStorageMapper"][6]["config"];
    mapper["user.roles.retrieve.strategy"] = json!(["GET_GROUPS_FROM_USER_MEMBEROF_ATTRIBUTE"]);
    mapper["membership.attribute.type"] = json!(["UID"]);
    mapper["membership.ldap.attribute"] = json!(["memberUid"]);
    mapper["groups.ldap.filter"] = json!(["(cn=ai-*)"]);
    mapper["group.object.classes"] = json!(["posixGroup, groupOfNames"]);
    let c = run(v, None);
    let t = table(&c);
    let ldap = t["ldap"].as_table().unwrap();
    assert_eq!(ldap["preset"].as_str(), Some("active-directory"));
    assert_eq!(ldap["scope"].as_str(), Some("sub"));
    assert_eq!(ldap["group_strategy"].as_str(), Some("member_of"));
    assert_eq!(ldap["group_member_attribute"].as_str(), Some("memberUid"));
    assert_eq!(
        ldap["group_filter"].as_str(),
        Some("(&(|(objectClass=posixGroup)(objectClass=groupOfNames))(cn=ai-*))")
    );
    assert!(!has(&c, Severity::Attention, "groups", "memberUid"), "memberUid is what fedgate reads by name");
}

#[test]
fn realm_roles_held_by_groups_become_roles_with_composites_and_subgroups() {
    let c = run(partial(), None);
    let t = table(&c);
    let roles = t["roles"].as_table().unwrap();
    assert_eq!(roles["admin"].as_array().unwrap().len(), 1);
    let researcher: Vec<&str> = roles["researcher"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(
        researcher,
        ["ai-admins", "ai-researchers", "ml-team"],
        "composite admin ⊃ researcher; subgroups inherit"
    );
    assert!(!roles.contains_key("offline_access") && !roles.contains_key("default-roles-corp"));
    assert!(!roles.keys().any(|r| r.starts_with("acs:ram")), "RAM roles go to the preset's role_mapping");
    // `app` is converted: its roles become its client_roles (resource_access.app.roles), not a loss.
    assert!(!has(&c, Severity::Unsupported, "client roles", "app: editor"));
    let app = t["oidc"]["clients"].as_array().unwrap().iter().find(|c| c["client_id"].as_str() == Some("app")).unwrap();
    assert!(app["client_roles"]["editor"].as_array().is_some_and(|g| !g.is_empty()), "{app:?}");
    assert!(!has(&c, Severity::Unsupported, "client roles", "acs:ram"), "RAM roles are the preset's business");
}

#[test]
fn oidc_clients_convert_and_built_in_ones_are_skipped() {
    let c = run(partial(), None);
    let t = table(&c);
    let clients = t["oidc"]["clients"].as_array().unwrap();
    let ids: Vec<&str> = clients.iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["app", "spa"], "account, admin-cli and realm-management are skipped");
    assert!(!c.report.findings.iter().any(|f| f.subject.contains("admin-cli") || f.subject.contains("`account`")));
    let app = &clients[0];
    assert_eq!(app["name"].as_str(), Some("Team app"));
    assert_eq!(app["client_secret_file"].as_str(), Some("/out/secrets/oidc-app"));
    assert_eq!(
        app["redirect_uris"].as_array().unwrap(),
        &vec![toml::Value::from("https://app.example.com/callback"), toml::Value::from("https://app.example.com/*")],
        "a trailing wildcard is kept, under Keycloak's rules"
    );
    assert_eq!(app["redirect_uri_rules"].as_str(), Some("keycloak"));
    assert_eq!(app["claims_profile"].as_str(), Some("keycloak"), "tokens keep Keycloak's shape");
    assert_eq!(t["keycloak"]["realm"].as_str(), Some("corp"), "realm mode: apps keep their issuer");
    let post: Vec<&str> =
        app["post_logout_redirect_uris"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(
        post,
        ["https://app.example.com/bye", "https://app.example.com/callback", "https://app.example.com/*"],
        "`+` adds the redirect URIs"
    );
    let grants: Vec<&str> = app["grant_types"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(grants, ["authorization_code", "refresh_token", "client_credentials"]);
    assert_eq!(app["require_pkce"].as_bool(), Some(true));
    let scopes: Vec<&str> = app["scopes"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(scopes.contains(&"offline_access") && scopes.contains(&"department"), "{scopes:?}");
    assert_eq!(t["oidc"]["scope_claims"]["department"].as_array().unwrap().len(), 1);
    assert_eq!(t["oidc"]["access_token_ttl"].as_str(), Some("5m"));
    assert_eq!(t["oidc"]["refresh_token_ttl"].as_str(), Some("30m"));
    let spa = &clients[1];
    assert_eq!(spa["public"].as_bool(), Some(true));
    assert_eq!(spa["redirect_uris"][0].as_str(), Some("https://spa.example.com/cb"), "relative URIs use rootUrl");
    assert!(!spa["scopes"].as_array().unwrap().iter().any(|s| s.as_str() == Some("offline_access")));
    assert!(has(&c, Severity::Blocking, "OIDC client `app` secret", "masked"));
    assert!(has(&c, Severity::Attention, "client `app`", "https://app.example.com/*"));
    assert!(has(&c, Severity::Unsupported, "OIDC client `app`", "direct access grants"));
    assert_eq!(app["backchannel_logout_uri"].as_str(), Some("https://app.example.com/bcl"));
    assert_eq!(app["backchannel_logout_session_required"].as_bool(), Some(true), "Keycloak's default");
    assert!(!has(&c, Severity::Unsupported, "OIDC client `app`", "logout"), "back-channel logout is converted");
    assert!(has(&c, Severity::Converted, "mapper `aud`", "audience `api` → audiences"));
    assert_eq!(app["audiences"].as_array().unwrap()[0].as_str(), Some("api"), "Keycloak's audience mapper");
    assert!(has(&c, Severity::Attention, "OIDC client `app`", "client-specific access-token lifetime"));
}

#[test]
fn secrets_in_clear_are_kept_placeholders_and_short_ones_are_blocking() {
    let mut v = partial();
    v["clients"][3]["secret"] = json!("k3ycl0ak-generated-secret-0123456789");
    let c = run(v.clone(), None);
    let file = c.files.iter().find(|f| f.path == Path::new("secrets/oidc-app")).unwrap();
    assert_eq!(file.contents, b"k3ycl0ak-generated-secret-0123456789\n");
    assert!(file.private);
    assert!(!has(&c, Severity::Blocking, "OIDC client `app` secret", ""));
    assert!(!c.config.contains("k3ycl0ak"), "secrets go to files, never into config.toml");

    v["clients"][3]["secret"] = json!("${vault.app_secret}");
    let c = run(v.clone(), None);
    assert!(has(&c, Severity::Blocking, "OIDC client `app` secret", "placeholder `${vault.app_secret}`"));
    v["components"]["org.keycloak.storage.UserStorageProvider"][0]["config"]["bindDn"] = json!(["${env.LDAP_BIND_DN}"]);
    let c = run(v.clone(), None);
    assert!(has(&c, Severity::Blocking, "LDAP provider `ldap`", "bindDn is a placeholder `${env.LDAP_BIND_DN}`"));
    v["clients"][3]["secret"] = json!("password");
    let c = run(v, None);
    assert!(has(&c, Severity::Blocking, "OIDC client `app` secret", "8 characters"));
    let file = c.files.iter().find(|f| f.path == Path::new("secrets/oidc-app")).unwrap();
    assert!(file.contents.len() > 40 && file.contents != b"password\n", "a new random secret");
}

#[test]
fn unsupported_client_settings_are_named() {
    let mut v = partial();
    let app = &mut v["clients"][3];
    app["clientAuthenticatorType"] = json!("client-jwt");
    app["implicitFlowEnabled"] = json!(true);
    app["attributes"]["pkce.code.challenge.method"] = json!("plain");
    app["attributes"]["oauth2.device.authorization.grant.enabled"] = json!("true");
    app["attributes"]["standard.token.exchange.enabled"] = json!("true");
    app["redirectUris"] = json!(["*"]);
    let c = run(v, None);
    assert!(has(&c, Severity::Blocking, "OIDC client `app`", "client-jwt"));
    assert!(has(&c, Severity::Blocking, "OIDC client `app`", "PKCE method `plain`"));
    assert!(has(&c, Severity::Blocking, "OIDC client `app`", "no exact redirect URI"));
    assert!(has(&c, Severity::Unsupported, "OIDC client `app`", "implicit flow"));
    assert!(has(&c, Severity::Unsupported, "OIDC client `app`", "device authorization grant"));
    assert!(has(&c, Severity::Unsupported, "OIDC client `app`", "token exchange"));
    let t = table(&c);
    let grants = t["oidc"]["clients"][0]["grant_types"].as_array().unwrap();
    assert_eq!(grants, &vec![toml::Value::from("client_credentials")], "no code flow without a redirect URI");
}

#[test]
fn saml_client_converts_with_its_mappers() {
    let c = run(partial(), None);
    let t = table(&c);
    let sps = t["saml"]["service_providers"].as_array().unwrap();
    let wiki = &sps[0];
    assert_eq!(wiki["name"].as_str(), Some("wiki"), "the IdP-initiated URL name");
    assert_eq!(wiki["display_name"].as_str(), Some("Wiki"));
    assert_eq!(wiki["entity_id"].as_str(), Some("https://wiki.example.com/saml"));
    assert_eq!(wiki["acs_urls"].as_array().unwrap().len(), 1);
    assert_eq!(wiki["slo_url"].as_str(), Some("https://wiki.example.com/saml/slo"));
    assert_eq!(wiki["nameid_format"].as_str(), Some("email"));
    assert_eq!(wiki["nameid_template"].as_str(), Some("{email}"));
    assert_eq!(wiki["sign_response"].as_bool(), Some(true));
    let attrs = wiki["attributes"].as_table().unwrap();
    assert_eq!(attrs["mail"].as_str(), Some("{email}"));
    assert_eq!(attrs["Role"].as_str(), Some("{roles}"));
    assert_eq!(attrs["groups"].as_str(), Some("{groups}"));
    assert_eq!(attrs["department"].as_str(), Some("{department}"));
    assert_eq!(attrs["tenant"].as_str(), Some("corp"));
    assert!(t["saml"].get("entity_id").is_none(), "unknown without a public URL");
    assert!(has(&c, Severity::Attention, "SAML identity provider", "without the public URL"));
}

#[test]
fn saml_signing_certificate_encryption_and_sha1() {
    let mut v = partial();
    let wiki = &mut v["clients"][5]["attributes"];
    let cert = rcgen_cert_b64();
    wiki["saml.client.signature"] = json!("true");
    wiki["saml.signing.certificate"] = json!(cert);
    wiki["saml.encrypt"] = json!("true");
    wiki["saml.signature.algorithm"] = json!("RSA_SHA1");
    let c = run(v, None);
    let t = table(&c);
    let wiki = &t["saml"]["service_providers"][0];
    assert_eq!(wiki["certificate_file"].as_str(), Some("/out/saml-sp/wiki.crt"));
    assert_eq!(wiki["want_authn_requests_signed"].as_bool(), Some(true));
    assert_eq!(wiki["signature_algorithm"].as_str(), Some("rsa-sha1"));
    let pem = c.files.iter().find(|f| f.path == Path::new("saml-sp/wiki.crt")).unwrap();
    assert!(String::from_utf8_lossy(&pem.contents).starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(wiki.get("encrypt_assertions").is_none(), "no encryption certificate in the export");
    assert!(has(&c, Severity::Blocking, "SAML client `https://wiki.example.com/saml`", "encrypted assertions"));
}

#[test]
fn saml_encryption_name_formats_and_friendly_names_are_kept() {
    let mut v = partial();
    v["clients"][5]["attributes"]["saml.encrypt"] = json!("true");
    v["clients"][5]["attributes"]["saml.encryption.certificate"] = json!(rcgen_cert_b64());
    let mail = &mut v["clients"][5]["protocolMappers"][0]["config"];
    mail["attribute.nameformat"] = json!("URI Reference");
    mail["friendly.name"] = json!("email");
    let c = run(v, None);
    let t = table(&c);
    let wiki = &t["saml"]["service_providers"][0];
    assert_eq!(wiki["encrypt_assertions"].as_bool(), Some(true));
    assert_eq!(wiki["encryption_certificate_file"].as_str(), Some("/out/saml-sp/wiki-encryption.crt"));
    assert!(!has(&c, Severity::Blocking, "SAML client `https://wiki.example.com/saml`", "encrypted assertions"));
    assert_eq!(wiki["attribute_name_format"].as_str(), Some("basic"), "Keycloak's default NameFormat");
    let mail = &wiki["attributes"]["mail"];
    assert_eq!(mail["value"].as_str(), Some("{email}"));
    assert_eq!(mail["name_format"].as_str(), Some("uri"));
    assert_eq!(mail["friendly_name"].as_str(), Some("email"));
    assert_eq!(wiki["attributes"]["groups"].as_str(), Some("{groups}"), "Basic and no FriendlyName: the template");
}

#[test]
fn ram_role_sso_is_recognised_as_the_preset() {
    let c = run(partial(), None);
    let t = table(&c);
    let ram = &t["saml"]["service_providers"][1];
    assert_eq!(ram["name"].as_str(), Some("aliyun"));
    assert_eq!(ram["preset"].as_str(), Some("aliyun-ram-role"));
    assert_eq!(ram["account_id"].as_str(), Some("1234567890123456"));
    assert_eq!(ram["provider_name"].as_str(), Some("corp-kc"));
    assert_eq!(ram["role_mapping"]["ai-admins"].as_str(), Some("AdminRole"));
    assert_eq!(ram["session_duration"].as_integer(), Some(3600));
    assert!(ram.get("attributes").is_none() && ram.get("entity_id").is_none(), "the preset fills them");
    assert_eq!(
        super::convert::parse_ram_role("acs:ram::1:saml-provider/p,acs:ram::1:role/R"),
        Some(("1".into(), "R".into(), "p".into())),
        "either order"
    );
}

#[test]
fn realm_features_fedgate_lacks_are_reported() {
    let c = run(partial(), None);
    assert!(has(&c, Severity::Blocking, "identity provider `google`", "no clientId"), "brokered, not convertible");
    assert!(has(&c, Severity::Unsupported, "authentication flow `browser with webauthn`", "custom"));
    assert!(has(&c, Severity::Attention, "key provider `rsa-generated`", "masked"));
    assert!(has(&c, Severity::Unsupported, "realm brute-force detection", "growing"));
    let t = table(&c);
    assert_eq!(t["login"]["max_failures"].as_integer(), Some(5));
    assert_eq!(t["login"]["window"].as_str(), Some("12h"));
    assert_eq!(t["session"]["absolute_timeout"].as_str(), Some("10h"));
}

#[test]
fn legacy_user_federation_providers_convert_like_components() {
    let v = json!({
        "id": "ldap-demo", "realm": "ldap-demo", "enabled": true,
        "privateKey": "not base64!",
        "clients": [{"clientId": "ldap-app", "enabled": true, "redirectUris": ["/ldap-portal/*"], "secret": "password"}],
        "userFederationProviders": [{"displayName": "ldap-apacheds", "providerName": "ldap", "priority": 1,
            "config": {"searchScope": "1", "usersDn": "ou=People,dc=keycloak,dc=org", "userObjectClasses": "inetOrgPerson",
                       "usernameLDAPAttribute": "uid", "bindDn": "uid=admin,ou=system", "bindCredential": "secret",
                       "vendor": "other", "editMode": "WRITABLE", "uuidLDAPAttribute": "entryUUID",
                       "connectionUrl": "ldap://localhost:10389", "syncRegistrations": "true", "authType": "simple"}}],
        "userFederationMappers": [
            {"name": "email", "federationMapperType": "user-attribute-ldap-mapper", "federationProviderDisplayName": "ldap-apacheds",
             "config": {"ldap.attribute": "mail", "user.model.attribute": "email"}},
            {"name": "realm roles", "federationMapperType": "role-ldap-mapper", "federationProviderDisplayName": "ldap-apacheds",
             "config": {"roles.dn": "ou=RealmRoles,dc=keycloak,dc=org", "use.realm.roles.mapping": "true"}}
        ]
    });
    let c = run(v, None);
    let t = table(&c);
    assert_eq!(t["ldap"]["urls"][0].as_str(), Some("ldap://localhost:10389"));
    assert_eq!(t["ldap"]["users_dn"].as_str(), Some("ou=People,dc=keycloak,dc=org"));
    assert_eq!(t["ldap"]["email_attribute"].as_str(), Some("mail"));
    let bind = c.files.iter().find(|f| f.path == Path::new("secrets/ldap-bind-password")).unwrap();
    assert_eq!(bind.contents, b"secret\n");
    assert!(has(&c, Severity::Attention, "mapper `realm roles`", "ou=RealmRoles"));
    assert!(has(&c, Severity::Unsupported, "LDAP provider `ldap-apacheds`", "WRITABLE"));
    assert!(has(&c, Severity::Attention, "LDAP provider `ldap-apacheds`", "no user export"), "import defaults to on");
    assert!(has(&c, Severity::Blocking, "OIDC client `ldap-app`", "no exact redirect URI"));
    assert!(has(&c, Severity::Attention, "realm privateKey", "not an RSA key"));
}

#[test]
fn a_full_export_keeps_the_key_and_writes_the_sub_map() {
    let key = federation::oidc::SigningKey::generate(federation::oidc::SigningAlgorithm::RS256).unwrap();
    let pem = key.to_pem();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut v = partial();
    v["components"]["org.keycloak.storage.UserStorageProvider"][0]["config"]["importEnabled"] = json!(["true"]);
    v["components"]["org.keycloak.keys.KeyProvider"] = json!([
        {"id": "k0", "name": "rsa-enc-generated", "providerId": "rsa-enc-generated", "config": {"privateKey": ["x"], "algorithm": ["RSA-OAEP"]}},
        {"id": "k1", "name": "rsa-generated", "providerId": "rsa-generated",
         "config": {"privateKey": [b64], "certificate": [rcgen_cert_b64()], "priority": ["100"], "algorithm": ["RS256"]}}
    ]);
    let users: UsersFile = serde_json::from_value(json!({"realm": "corp", "users": [
        {"id": "0b8f7a52-1111-4e5e-9c33-3a1f1d2f5b7e", "username": "alice", "federationLink": "8a2b6f0e-ldap-4c2e-9b4a-1d2c3e4f5a6b",
         "attributes": {"LDAP_ID": ["6a3c1b7e-aaaa-4f00-8000-000000000001"], "LDAP_ENTRY_DN": ["uid=alice,ou=people,dc=example,dc=org"],
                        "saml.persistent.name.id.for.https://wiki.example.com/saml": ["G-1234"]},
         "credentials": [{"type": "otp", "secretData": "{\"value\":\"x\"}"}], "requiredActions": [], "realmRoles": ["default-roles-corp"]},
        {"id": "local-1", "username": "breakglass", "credentials": [{"type": "password"}], "requiredActions": ["UPDATE_PASSWORD"]}
    ]}))
    .unwrap();
    let users = users.into_users();
    let c = run(v, Some(&users));
    let active = c.files.iter().find(|f| f.path == Path::new("keys/oidc/active.pem")).unwrap();
    let reread = federation::oidc::SigningKey::from_pem(&active.contents, "test").unwrap();
    assert_eq!(reread.kid(), key.kid(), "the same key");
    assert!(active.private);
    let t = table(&c);
    assert_eq!(t["oidc"]["keys_dir"].as_str(), Some("/out/keys/oidc"));
    assert_eq!(t["saml"]["cert_file"].as_str(), Some("/out/keys/saml/idp.crt"));
    assert_eq!(t["saml"]["key_file"].as_str(), Some("/out/keys/saml/idp.key"));
    let map = c.files.iter().find(|f| f.path == Path::new("sub-map.json")).unwrap();
    let map: Value = serde_json::from_slice(&map.contents).unwrap();
    assert_eq!(map["by_ldap_id"]["6a3c1b7e-aaaa-4f00-8000-000000000001"], "0b8f7a52-1111-4e5e-9c33-3a1f1d2f5b7e");
    assert_eq!(map["by_username"]["alice"], "0b8f7a52-1111-4e5e-9c33-3a1f1d2f5b7e");
    assert_eq!(map["saml_persistent_nameids"]["https://wiki.example.com/saml"]["alice"], "G-1234");
    assert_eq!(t["ldap"]["subject_map_file"].as_str(), Some("/out/sub-map.json"));
    assert!(t["ldap"].get("subject_template").is_none());
    assert!(map["by_username"].get("breakglass").is_none(), "local users are not LDAP users");
    assert!(has(&c, Severity::Attention, "users", "1 user(s) stored in Keycloak itself"));
    assert!(has(&c, Severity::Unsupported, "one-time passwords", "1 user(s) have an OTP device"));
    assert!(has(&c, Severity::Unsupported, "users", "pending required actions"));
}

#[test]
fn a_pkcs1_key_is_wrapped_into_pkcs8() {
    let key = federation::oidc::SigningKey::generate(federation::oidc::SigningAlgorithm::RS256).unwrap();
    let pkcs8 = super::keys::decode(&key.to_pem()).unwrap();
    // PKCS#8 PrivateKeyInfo: the RSAPrivateKey is the OCTET STRING after the 26-byte header of a 2048-bit key.
    let pkcs1 = pkcs8[26..].to_vec();
    assert_eq!(pkcs1[0], 0x30);
    assert_eq!(super::keys::rsa_pkcs8(pkcs1), Some(pkcs8));
    assert_eq!(super::keys::rsa_pkcs8(b"junk".to_vec()), None);
}

#[test]
fn the_written_output_passes_check_config_and_the_report_lists_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = partial();
    v["attributes"] = json!({"frontendUrl": "https://sso.example.com"});
    let out = dir.path().canonicalize().unwrap();
    let report = write(convert(&realm(v), None, &options(&out)), &out).unwrap();
    let loaded = crate::config::load(&out.join("config.toml"));
    assert!(loaded.is_ok(), "{:?}\n{}", loaded.err(), std::fs::read_to_string(out.join("config.toml")).unwrap());
    assert!(report.blocking() >= 3, "masked bind credential, masked client secret, google");
    let md = std::fs::read_to_string(out.join("IMPORT-REPORT.md")).unwrap();
    assert!(md.starts_with("# Keycloak import report: realm `corp`"));
    let blocking = md.split("## Needs attention").next().unwrap();
    assert!(blocking.contains("bindCredential") && blocking.contains("identity provider `google`"), "{md}");
    assert!(md.contains(&out.join("secrets/oidc-app").display().to_string()), "the report names the secret file");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(out.join("secrets/oidc-app")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let cfg = loaded.unwrap();
    assert_eq!(
        cfg.saml.unwrap().entity_id.as_deref(),
        Some("https://sso.example.com/realms/corp"),
        "Keycloak's IdP entity ID"
    );
    assert!(matches!(write(convert(&realm(partial()), None, &options(&out)), &out), Err(ImportError::Exists { .. })));
}

/// A self-signed certificate, base64 DER as Keycloak exports certificates.
fn rcgen_cert_b64() -> String {
    let key = federation::oidc::SigningKey::generate(federation::oidc::SigningAlgorithm::RS256).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, key.to_pem()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(&path)
        .args(["-subj", "/CN=test", "-days", "2", "-outform", "DER"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

#[test]
fn unreadable_or_foreign_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.json");
    let e = read_json::<Realm>(&missing).unwrap_err();
    assert!(matches!(e, ImportError::Read { .. }) && e.to_string().contains("absent.json"), "{e}");
    let html = dir.path().join("export.html");
    std::fs::write(&html, "<html>not json</html>").unwrap();
    let e = read_json::<Realm>(&html).unwrap_err();
    assert!(e.to_string().contains("is not a Keycloak export"), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the parser's reason is kept as the source");
    let users: UsersFile = serde_json::from_str(r#"[{"id": "1", "username": "a"}]"#).unwrap();
    assert_eq!(users.into_users().len(), 1, "a bare list of users is read too");
}

/// Sets `key` to `value` in the `config` of every protocol mapper named `mapper` and every component whose config
/// has `key` already (component configs hold arrays).
fn set_everywhere(v: &mut Value, mapper: &str, key: &str, value: &str) {
    match v {
        Value::Object(o) => {
            if o.get("protocolMapper").and_then(Value::as_str) == Some(mapper)
                && let Some(Value::Object(cfg)) = o.get_mut("config")
            {
                cfg.insert(key.into(), json!(value));
            }
            if let Some(Value::Object(cfg)) = o.get_mut("config")
                && cfg.get(key).is_some_and(Value::is_array)
            {
                cfg.insert(key.into(), json!([value]));
            }
            o.values_mut().for_each(|x| set_everywhere(x, mapper, key, value));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| set_everywhere(x, mapper, key, value)),
        _ => {}
    }
}

#[test]
fn group_mappers_full_path_and_the_ldap_groups_path_are_kept() {
    // The test export's mappers say `full.path: false`: names.
    let c = run(partial(), None);
    let t = table(&c);
    assert!(t["oidc"]["clients"][0].get("group_format").is_none(), "names are the default");
    assert_eq!(t["saml"]["service_providers"][0]["attributes"]["groups"].as_str(), Some("{groups}"));
    assert!(t["ldap"].get("groups_path").is_none(), "groups.path \"/\" is the default");
    // Keycloak's default, `full.path: true`, and groups placed under `/ldap`.
    let mut v = partial();
    set_everywhere(&mut v, "oidc-group-membership-mapper", "full.path", "true");
    set_everywhere(&mut v, "saml-group-membership-mapper", "full.path", "true");
    set_everywhere(&mut v, "-", "groups.path", "/ldap");
    let c = run(v, None);
    let t = table(&c);
    assert_eq!(t["oidc"]["clients"][0]["group_format"].as_str(), Some("path"), "{}", c.config);
    assert_eq!(t["saml"]["service_providers"][0]["attributes"]["groups"].as_str(), Some("{group_paths}"));
    assert_eq!(t["ldap"]["groups_path"].as_str(), Some("/ldap"));
    assert!(has(&c, Severity::Attention, "", "group paths start with it"));
}

/// OpenID Connect identity providers become `[[upstream.oidc]]` entries (issuer, client, secret file, scopes,
/// Google's hosted domain); another Keycloak's issuer comes from its authorization URL; providers fedgate cannot
/// sign in through (OAuth-only, SAML, a multi-tenant Microsoft app, client-jwt authentication) block the cut-over.
#[test]
fn oidc_identity_providers_become_upstream_sign_in_entries() {
    let mut v = partial();
    v["identityProviders"] = json!([
        {"alias": "google", "providerId": "google", "enabled": true, "displayName": "Google",
         "config": {"clientId": "g-client", "clientSecret": "g-secret", "hostedDomain": "example.org"}},
        {"alias": "entra id", "providerId": "oidc", "enabled": true, "trustEmail": true,
         "config": {"clientId": "e-client", "clientSecret": "e-secret", "clientAuthMethod": "client_secret_post",
                    "issuer": "https://login.microsoftonline.com/tenant-1/v2.0/", "defaultScope": "profile email"}},
        {"alias": "corp-kc", "providerId": "keycloak-oidc", "enabled": true,
         "config": {"clientId": "k-client", "clientSecret": "k-secret",
                    "authorizationUrl": "https://old-sso.example.org/realms/corp/protocol/openid-connect/auth"}},
        {"alias": "github", "providerId": "github", "enabled": true, "config": {"clientId": "x"}},
        {"alias": "jwt", "providerId": "oidc", "enabled": true,
         "config": {"clientId": "j", "issuer": "https://j.example", "clientAuthMethod": "private_key_jwt"}},
        {"alias": "ms-common", "providerId": "microsoft", "enabled": true, "config": {"clientId": "m", "clientSecret": "m"}},
        {"alias": "off", "providerId": "oidc", "enabled": false, "config": {}}
    ]);
    let c = run(v, None);
    let t = table(&c);
    let ups = t["upstream"]["oidc"].as_array().unwrap();
    let names: Vec<&str> = ups.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["google", "entra-id", "corp-kc"], "{}", c.config);
    assert_eq!(ups[0]["issuer"].as_str(), Some("https://accounts.google.com"));
    assert_eq!(ups[0]["display_name"].as_str(), Some("Google"));
    assert_eq!(ups[0]["allowed_email_domains"].as_array().unwrap()[0].as_str(), Some("example.org"));
    assert_eq!(ups[0]["client_secret_file"].as_str(), Some("/out/secrets/upstream-google"));
    assert_eq!(ups[1]["issuer"].as_str(), Some("https://login.microsoftonline.com/tenant-1/v2.0"));
    let scopes: Vec<&str> = ups[1]["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(scopes, ["openid", "profile", "email"]);
    assert_eq!(ups[2]["issuer"].as_str(), Some("https://old-sso.example.org/realms/corp"));
    let secret = c.files.iter().find(|f| f.path == Path::new("secrets/upstream-corp-kc")).unwrap();
    assert_eq!(secret.contents, b"k-secret\n");
    assert!(secret.private);
    assert!(has(&c, Severity::Converted, "identity provider `corp-kc`", "[[upstream.oidc]]"));
    assert!(has(&c, Severity::Attention, "identity provider `corp-kc`", "/login/corp-kc/callback"));
    assert!(has(&c, Severity::Blocking, "identity provider `github`", "not an OpenID Connect provider"));
    assert!(has(&c, Severity::Blocking, "identity provider `jwt`", "private_key_jwt"));
    assert!(has(&c, Severity::Blocking, "identity provider `ms-common`", "multi-tenant"));
    assert!(has(&c, Severity::Attention, "identity provider `off`", "disabled"));
    assert!(!has(&c, Severity::Blocking, "identity provider `google`", ""), "nothing blocks google");
}
