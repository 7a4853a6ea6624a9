//! `fedgate import keycloak` end to end: realm exports shaped like Keycloak's own (a partial export from the admin
//! console, a `kc.sh export` with users and keys, a pre-17 export with `userFederationProviders`) go through the
//! real binary; the generated configuration passes `fedgate check-config`, runs against the test slapd, and the
//! imported clients sign users in with a real OIDC relying party (openid-client, code + PKCE) and a real SAML SP
//! (pysaml2). Every unsupported item must be in the report, and masked secrets make the exit status non-zero.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use e2e::gateway::{Gateway, browser, fedgate_bin, http};
use e2e::node;
use e2e::slapd::Slapd;
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const BYE: &str = "http://127.0.0.1:9/bye";
const SP_ENTITY: &str = "http://127.0.0.1:9/sp";
const SP_ACS: &str = "http://127.0.0.1:9/acs";
const SECRET: &str = "kc-generated-client-secret-0123456789";
const LDAP_ID: &str = "8a2b6f0e-1d2c-4c2e-9b4a-1d2c3e4f5a6b";

/// The LDAP provider as Keycloak exports it (values are lists of strings).
fn ldap_component(slapd: &Slapd, bind_credential: &str, import: bool) -> Value {
    let mappers = json!([
        {"id": "m-user", "name": "username", "providerId": "user-attribute-ldap-mapper", "subComponents": {},
         "config": {"ldap.attribute": ["uid"], "user.model.attribute": ["username"], "read.only": ["true"]}},
        {"id": "m-mail", "name": "email", "providerId": "user-attribute-ldap-mapper", "subComponents": {},
         "config": {"ldap.attribute": ["mail"], "user.model.attribute": ["email"], "read.only": ["true"]}},
        {"id": "m-first", "name": "first name", "providerId": "user-attribute-ldap-mapper", "subComponents": {},
         "config": {"ldap.attribute": ["givenName"], "user.model.attribute": ["firstName"]}},
        {"id": "m-groups", "name": "groups", "providerId": "group-ldap-mapper", "subComponents": {},
         "config": group_mapper_config()}
    ]);
    let config = json!({
        "enabled": ["true"], "vendor": ["other"], "connectionUrl": [slapd.url()], "bindDn": [slapd.service_dn()],
        "bindCredential": [bind_credential], "authType": ["simple"], "usersDn": ["ou=people,dc=example,dc=org"],
        "usernameLDAPAttribute": ["uid"], "rdnLDAPAttribute": ["uid"], "uuidLDAPAttribute": ["entryUUID"],
        "userObjectClasses": ["inetOrgPerson, organizationalPerson"], "searchScope": ["1"],
        "importEnabled": [import.to_string()], "editMode": ["READ_ONLY"], "startTls": ["false"],
        "connectionTimeout": ["2000"], "readTimeout": ["2000"], "pagination": ["true"]
    });
    json!({"id": LDAP_ID, "name": "corp-ldap", "providerId": "ldap",
           "subComponents": {"org.keycloak.storage.ldap.mappers.LDAPStorageMapper": mappers}, "config": config})
}

fn group_mapper_config() -> Value {
    json!({"groups.dn": ["ou=groups,dc=example,dc=org"], "group.name.ldap.attribute": ["cn"],
           "group.object.classes": ["groupOfNames"], "membership.ldap.attribute": ["member"],
           "membership.attribute.type": ["DN"], "membership.user.ldap.attribute": ["uid"],
           "user.roles.retrieve.strategy": ["LOAD_GROUPS_BY_MEMBER_ATTRIBUTE"], "preserve.group.inheritance": ["true"],
           "mode": ["READ_ONLY"], "groups.path": ["/"]})
}

fn oidc_client(secret: &str) -> Value {
    let attributes = json!({"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": BYE});
    json!({"clientId": "app", "name": "Imported app", "enabled": true, "clientAuthenticatorType": "client-secret",
           "secret": secret, "redirectUris": [REDIRECT], "webOrigins": ["+"], "standardFlowEnabled": true,
           "implicitFlowEnabled": false, "directAccessGrantsEnabled": false, "serviceAccountsEnabled": false,
           "publicClient": false, "protocol": "openid-connect", "attributes": attributes,
           "defaultClientScopes": ["web-origins", "acr", "profile", "roles", "basic", "email"],
           "optionalClientScopes": ["address", "phone", "offline_access", "microprofile-jwt"]})
}

fn saml_client() -> Value {
    let attributes = json!({"saml.server.signature": "true", "saml.signature.algorithm": "RSA_SHA256",
        "saml_name_id_format": "username", "saml_idp_initiated_sso_url_name": "sp",
        "saml_assertion_consumer_url_post": SP_ACS, "saml.client.signature": "false", "saml.encrypt": "false"});
    let mappers = json!([
        {"name": "mail", "protocol": "saml", "protocolMapper": "saml-user-property-mapper",
         "config": {"user.attribute": "email", "attribute.name": "mail", "attribute.nameformat": "Basic"}},
        {"name": "groups", "protocol": "saml", "protocolMapper": "saml-group-membership-mapper",
         "config": {"attribute.name": "groups", "full.path": "false", "single": "false"}}
    ]);
    json!({"clientId": SP_ENTITY, "name": "Test SP", "enabled": true, "protocol": "saml",
           "redirectUris": ["http://127.0.0.1:9/*"], "attributes": attributes, "protocolMappers": mappers})
}

/// The realm around the parts: roles held by groups, the built-in clients every realm has.
fn realm(name: &str, clients: Vec<Value>, components: Value) -> Value {
    let mut all = vec![
        json!({"clientId": "account", "publicClient": true, "redirectUris": [format!("/realms/{name}/account/*")]}),
        json!({"clientId": "admin-cli", "publicClient": true}),
        json!({"clientId": "broker", "bearerOnly": true}),
        json!({"clientId": "realm-management", "bearerOnly": true}),
        json!({"clientId": "security-admin-console", "publicClient": true, "redirectUris": ["/admin/corp/console/*"]}),
    ];
    all.extend(clients);
    let roles = json!({"realm": [
        {"name": format!("default-roles-{name}"), "composite": true, "composites": {"realm": ["offline_access", "uma_authorization"]}},
        {"name": "offline_access"}, {"name": "uma_authorization"}, {"name": "admin"}, {"name": "researcher"}
    ]});
    let groups = json!([
        {"name": "ai-admins", "path": "/ai-admins", "realmRoles": ["admin"], "subGroups": []},
        {"name": "ai-researchers", "path": "/ai-researchers", "realmRoles": ["researcher"], "subGroups": []}
    ]);
    json!({"id": format!("{name}-id"), "realm": name, "enabled": true, "accessTokenLifespan": 300,
           "ssoSessionIdleTimeout": 1800, "ssoSessionMaxLifespan": 36000, "bruteForceProtected": true,
           "failureFactor": 5, "waitIncrementSeconds": 60, "maxDeltaTimeSeconds": 600,
           "roles": roles, "groups": groups, "clients": all, "components": components})
}

struct Imported {
    dir: tempfile::TempDir,
    status: i32,
    report: String,
}

impl Imported {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().canonicalize().unwrap().join(rel)
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.path("out/config.toml")).unwrap()
    }
}

/// Runs the real `fedgate import keycloak` on `export` (and `users`).
fn import(export: &Value, users: Option<&Value>) -> Imported {
    let dir = tempfile::tempdir().unwrap();
    let export_path = dir.path().join("realm-export.json");
    std::fs::write(&export_path, serde_json::to_vec_pretty(export).unwrap()).unwrap();
    let mut cmd = Command::new(fedgate_bin().unwrap());
    cmd.args(["import", "keycloak"]).arg(&export_path).arg("--out").arg(dir.path().join("out"));
    if let Some(u) = users {
        let p = dir.path().join("realm-users-0.json");
        std::fs::write(&p, serde_json::to_vec_pretty(u).unwrap()).unwrap();
        cmd.arg("--users").arg(p);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("IMPORT-REPORT.md"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let report = std::fs::read_to_string(dir.path().join("out/IMPORT-REPORT.md")).unwrap();
    Imported { status: out.status.code().unwrap_or(-1), report, dir }
}

fn check_config(path: &Path) -> (bool, String) {
    let out = Command::new(fedgate_bin().unwrap()).args(["check-config", "--config"]).arg(path).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The blocking section of a report.
fn blocking(report: &str) -> &str {
    report.split("## Blocking").nth(1).map(|s| s.split("\n## ").next().unwrap_or(s)).unwrap_or("")
}

/// openid-client's code flow with PKCE through the gateway, the RP configured with the issuer it had under
/// Keycloak (the imported config turns realm mode on); returns what the RP saw.
async fn oidc_login(gw: &Gateway, realm: &str, secret: &str, user: &str) -> Value {
    let env = [
        ("ISSUER", format!("{}/realms/{realm}", gw.base)),
        ("CLIENT_ID", "app".to_string()),
        ("CLIENT_SECRET", secret.to_string()),
        ("REDIRECT_URI", REDIRECT.to_string()),
        ("POST_LOGOUT", BYE.to_string()),
        ("USER_NAME", user.to_string()),
        ("PASSWORD", format!("{user}-password")),
        ("ALG", "RS256".to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node::run("oidc-rp.mjs", &env, 60)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap()
}

fn check_oidc(seen: &Value, user: &str, roles: Value, sub: Option<&str>) {
    assert_eq!(seen["ok"], true, "{seen}");
    if let Some(sub) = sub {
        assert_eq!(seen["id_token"]["sub"], sub, "the `sub` Keycloak issued is kept: {seen}");
    }
    assert_eq!(seen["id_token"]["preferred_username"], user, "{seen}");
    assert_eq!(seen["issuer"].as_str().map(|i| i.contains("/realms/")), Some(true), "the realm issuer: {seen}");
    // Keycloak-shaped tokens (claims_profile = "keycloak") carry roles in the access token, not the ID token.
    assert_eq!(seen["id_token"].get("roles"), None, "{seen}");
    assert_eq!(seen["userinfo"]["roles"], roles, "[roles] came from the groups' realm roles: {seen}");
    assert_eq!(seen["logout"]["location"], format!("{BYE}?state=bye"), "post.logout.redirect.uris kept: {seen}");
}

/// pysaml2 signs `user` in SP-initiated at the imported SAML client; returns what the SP accepted.
async fn saml_login(gw: &Gateway, user: &str) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("idp.xml");
    let metadata = http().get(gw.url("/saml/metadata")).send().await.unwrap().text().await.unwrap();
    std::fs::write(&md, &metadata).unwrap();
    let md_s = md.to_str().unwrap().to_string();
    let req = {
        let md_s = md_s.clone();
        tokio::task::spawn_blocking(move || crate::saml::pysaml2(&["request", &md_s, SP_ENTITY, SP_ACS], None))
            .await
            .unwrap()
    };
    let c = browser();
    let r = c.get(req["url"].as_str().unwrap()).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let rd = crate::saml::percent_decode(loc.split("rd=").nth(1).unwrap());
    let login = crate::login::login(&c, gw, user, &format!("{user}-password"), &rd).await;
    let html = c.get(gw.url(login.headers()["location"].to_str().unwrap())).send().await.unwrap().text().await.unwrap();
    let (action, xml, _) = crate::saml::posted(&html);
    assert_eq!(action, SP_ACS);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let req_id = req["id"].as_str().unwrap().to_string();
    let seen = tokio::task::spawn_blocking(move || {
        crate::saml::pysaml2(&["consume", &md_s, SP_ENTITY, SP_ACS, &req_id], Some(&b64))
    })
    .await
    .unwrap();
    (seen, metadata)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_export_masked_secrets_block_then_the_filled_config_signs_users_in() {
    let slapd = Slapd::start().unwrap();
    let mut components = json!({"org.keycloak.storage.UserStorageProvider": [
        ldap_component(&slapd, "**********", false),
        {"id": "krb", "name": "corp-kerberos", "providerId": "kerberos", "config": {"enabled": ["true"]}}
    ]});
    let second = ldap_component(&slapd, "**********", false);
    let mut second = second.as_object().unwrap().clone();
    second.insert("id".into(), json!("second-ldap"));
    second.insert("name".into(), json!("partner-ldap"));
    components["org.keycloak.storage.UserStorageProvider"].as_array_mut().unwrap().push(Value::Object(second));
    let mut legacy_client = oidc_client("**********");
    legacy_client["clientId"] = json!("jwt-app");
    legacy_client["clientAuthenticatorType"] = json!("client-jwt");
    legacy_client["implicitFlowEnabled"] = json!(true);
    legacy_client["attributes"]["oauth2.device.authorization.grant.enabled"] = json!("true");
    legacy_client["attributes"]["standard.token.exchange.enabled"] = json!("true");
    legacy_client["attributes"]["backchannel.logout.url"] = json!("http://127.0.0.1:9/backchannel");
    legacy_client["redirectUris"] = json!(["http://127.0.0.1:9/*"]);
    let mut export = realm("corp", vec![oidc_client("**********"), legacy_client, saml_client()], components);
    export["identityProviders"] = json!([{"alias": "upstream", "providerId": "keycloak-oidc", "enabled": true}]);
    export["authenticationFlows"] = json!([{"alias": "browser", "builtIn": true, "topLevel": true}, {"alias": "corp browser", "builtIn": false, "topLevel": true}]);
    export["requiredActions"] = json!([{"alias": "CONFIGURE_TOTP", "enabled": true, "defaultAction": true}]);
    export["components"]["org.keycloak.keys.KeyProvider"] = json!([{"id": "k", "name": "rsa-generated", "providerId": "rsa-generated", "config": {"privateKey": ["**********"], "priority": ["100"]}}]);

    let imported = import(&export, None);
    assert_eq!(imported.status, 2, "masked secrets block the cut-over:\n{}", imported.report);
    let report = &imported.report;
    let block = blocking(report);
    for item in [
        "LDAP provider `corp-ldap` bindCredential",
        "OIDC client `app` secret",
        "user federation `partner-ldap`",
        "identity provider `upstream`",
        "client-jwt",
    ] {
        assert!(block.contains(item), "blocking item {item:?} missing:\n{report}");
    }
    for item in [
        "Kerberos",
        "implicit flow",
        "device authorization grant",
        "token exchange",
        "custom authentication flow",
        "one-time passwords (OTP)",
        "trailing wildcard kept (redirect_uri_rules = \"keycloak\"): http://127.0.0.1:9/*",
        "→ [keycloak] realm = \"corp\"",
        "f:8a2b6f0e-1d2c-4c2e-9b4a-1d2c3e4f5a6b:<username>` (import off); kept by ldap.subject_template",
        "the private key is masked",
    ] {
        assert!(report.contains(item), "{item:?} missing from the report:\n{report}");
    }
    let config = imported.config();
    assert!(
        config.contains("backchannel_logout_uri = \"http://127.0.0.1:9/backchannel\""),
        "the client's back-channel logout URL is kept:\n{config}"
    );
    assert!(!config.contains("**********") && !config.contains("account-console") && !config.contains("admin-cli"));

    // The admin does what the report says: the real bind password and the app's secret go into the named files.
    let bind_file = imported.path("out/secrets/ldap-bind-password");
    assert!(report.contains(&bind_file.display().to_string()), "the report names the file to fill");
    std::fs::write(&bind_file, "service-password\n").unwrap();
    std::fs::write(imported.path("out/secrets/oidc-app"), format!("{SECRET}\n")).unwrap();
    let (ok, out) = check_config(&imported.path("out/config.toml"));
    assert!(ok, "{out}\n{config}");

    let gw = Gateway::start(&config).await.unwrap();
    check_oidc(
        &oidc_login(&gw, "corp", SECRET, "alice").await,
        "alice",
        json!(["admin"]),
        Some(&format!("f:{LDAP_ID}:alice")),
    );
    let (seen, _) = saml_login(&gw, "bob").await;
    assert_eq!(seen["name_id"], "bob", "{seen}");
    assert_eq!(seen["attributes"]["mail"], json!(["bob@example.org"]));
    assert_eq!(seen["attributes"]["groups"], json!(["ai-researchers", "staff"]));
    drop(slapd);
}

/// An RSA key as Keycloak's `rsa-generated` provider exports it (base64 PKCS#8) and its certificate (base64 DER).
fn realm_key() -> (String, String, String) {
    let key = federation::oidc::SigningKey::generate(federation::oidc::SigningAlgorithm::RS256).unwrap();
    let pem = key.to_pem();
    let kp = rcgen::KeyPair::from_pem(&pem).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "corp");
    let cert = params.self_signed(&kp).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    (b64, base64::engine::general_purpose::STANDARD.encode(cert.der()), key.kid().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_export_keeps_the_signing_key_and_the_keycloak_ids() {
    let slapd = Slapd::start().unwrap();
    let (private_key, certificate, kid) = realm_key();
    let components = json!({
        "org.keycloak.storage.UserStorageProvider": [ldap_component(&slapd, "service-password", true)],
        "org.keycloak.keys.KeyProvider": [
            {"id": "hmac", "name": "hmac-generated", "providerId": "hmac-generated", "config": {"secret": ["c2VjcmV0"], "algorithm": ["HS512"]}},
            {"id": "rsa", "name": "rsa-generated", "providerId": "rsa-generated",
             "config": {"privateKey": [private_key], "certificate": [certificate], "priority": ["100"], "keyUse": ["SIG"]}}
        ]
    });
    let export = realm("corp", vec![oidc_client(SECRET), saml_client()], components);
    let users = json!({"realm": "corp", "users": [
        {"id": "0b8f7a52-1111-4e5e-9c33-3a1f1d2f5b7e", "username": "alice", "enabled": true, "federationLink": LDAP_ID,
         "attributes": {"LDAP_ID": ["6a3c1b7e-aaaa-4f00-8000-000000000001"], "LDAP_ENTRY_DN": ["uid=alice,ou=people,dc=example,dc=org"]},
         "credentials": [], "realmRoles": ["default-roles-corp"], "groups": ["/ai-admins"]}
    ]});
    let imported = import(&export, Some(&users));
    assert_eq!(imported.status, 0, "nothing blocks:\n{}", imported.report);
    let map: Value = serde_json::from_slice(&std::fs::read(imported.path("out/sub-map.json")).unwrap()).unwrap();
    assert_eq!(map["by_ldap_id"]["6a3c1b7e-aaaa-4f00-8000-000000000001"], "0b8f7a52-1111-4e5e-9c33-3a1f1d2f5b7e");
    assert!(imported.report.contains("sub-map.json"), "{}", imported.report);
    let (ok, out) = check_config(&imported.path("out/config.toml"));
    assert!(ok, "{out}");

    let gw = Gateway::start(&imported.config()).await.unwrap();
    let jwks: Value = http().get(gw.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str(), "the gateway signs with the realm's key: {jwks}");
    check_oidc(
        &oidc_login(&gw, "corp", SECRET, "alice").await,
        "alice",
        json!(["admin"]),
        Some("0b8f7a52-1111-4e5e-9c33-3a1f1d2f5b7e"),
    );
    let (seen, metadata) = saml_login(&gw, "alice").await;
    assert_eq!(seen["name_id"], "alice", "{seen}");
    assert!(metadata.contains(&certificate[..64]), "SAML metadata publishes the realm certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_export_with_user_federation_providers_signs_users_in() {
    let slapd = Slapd::start().unwrap();
    let (private_key, certificate, kid) = realm_key();
    let mut client = oidc_client("password");
    client.as_object_mut().unwrap().remove("defaultClientScopes");
    client.as_object_mut().unwrap().remove("optionalClientScopes");
    let provider = json!({"displayName": "ldap-corp", "providerName": "ldap", "priority": 1, "fullSyncPeriod": -1,
        "config": {"connectionUrl": slapd.url(), "bindDn": slapd.service_dn(), "bindCredential": "service-password",
                   "usersDn": "ou=people,dc=example,dc=org", "userObjectClasses": "inetOrgPerson, organizationalPerson",
                   "usernameLDAPAttribute": "uid", "uuidLDAPAttribute": "entryUUID", "rdnLDAPAttribute": "uid",
                   "searchScope": "1", "vendor": "other", "editMode": "WRITABLE", "authType": "simple"}});
    let mappers = json!([
        {"name": "email", "federationMapperType": "user-attribute-ldap-mapper", "federationProviderDisplayName": "ldap-corp",
         "config": {"ldap.attribute": "mail", "user.model.attribute": "email"}},
        {"name": "groups", "federationMapperType": "group-ldap-mapper", "federationProviderDisplayName": "ldap-corp",
         "config": {"groups.dn": "ou=groups,dc=example,dc=org", "group.name.ldap.attribute": "cn",
                    "group.object.classes": "groupOfNames", "membership.ldap.attribute": "member", "mode": "READ_ONLY"}}
    ]);
    let mut export = realm("ldap-demo", vec![client, saml_client()], json!({}));
    export["privateKey"] = json!(private_key);
    export["certificate"] = json!(certificate);
    export["userFederationProviders"] = json!([provider]);
    export["userFederationMappers"] = mappers;
    let imported = import(&export, None);
    assert_eq!(imported.status, 2, "the 8-character client secret blocks:\n{}", imported.report);
    let block = blocking(&imported.report);
    assert!(block.contains("OIDC client `app` secret") && block.contains("8 characters"), "{}", imported.report);
    assert!(imported.report.contains("WRITABLE"), "{}", imported.report);
    assert!(imported.report.contains("no user export"), "import defaults to on in old exports: {}", imported.report);
    let (ok, out) = check_config(&imported.path("out/config.toml"));
    assert!(ok, "{out}");

    // The report says to hand the newly generated secret to the app; the app uses it.
    let secret = std::fs::read_to_string(imported.path("out/secrets/oidc-app")).unwrap().trim().to_string();
    assert!(secret.len() >= 32 && secret != "password");
    let gw = Gateway::start(&imported.config()).await.unwrap();
    let jwks: Value = http().get(gw.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str(), "the legacy realm key signs: {jwks}");
    let seen = oidc_login(&gw, "ldap-demo", &secret, "alice").await;
    check_oidc(&seen, "alice", json!(["admin"]), None);
    assert_eq!(seen["id_token"]["sub"].as_str().unwrap().len(), 36, "no user export: the entryUUID: {seen}");
    let (seen, _) = saml_login(&gw, "bob").await;
    assert_eq!(seen["name_id"], "bob", "{seen}");
}

/// The attack: whoever can name a client in Keycloak (an admin of one client, or dynamic client registration, where
/// a SAML client's id is the entity ID of metadata the registrant wrote) puts a newline and TOML in the id. The
/// import must carry it as a value, never as configuration of its own: here, an extra OIDC client for the
/// attacker's site and a proxy route in front of everything.
#[test]
fn names_from_the_export_cannot_write_configuration() {
    let injected = "\n[[oidc.clients]]\nclient_id = \"evil\"\nclient_secret = \"evil-secret-0123456789abcdef\"\n\
                    redirect_uris = [\"https://evil.example/cb\"]\n[proxy]\nupstream = \"http://evil.example\"\n#";
    let mut client = oidc_client(SECRET);
    client["clientId"] = json!(format!("app{injected}"));
    let mut sp = saml_client();
    sp["clientId"] = json!(format!("{SP_ENTITY}{injected}"));
    let mut ldap = json!({"id": LDAP_ID, "name": format!("corp-ldap{injected}"), "providerId": "ldap",
        "subComponents": {}, "config": {"connectionUrl": ["ldap://127.0.0.1:9"], "usersDn": ["ou=people,dc=example,dc=org"],
        "usernameLDAPAttribute": ["uid"], "vendor": ["other"], "authType": ["none"]}});
    ldap["config"]["enabled"] = json!(["true"]);
    let export = realm("corp", vec![client, sp], json!({"org.keycloak.storage.UserStorageProvider": [ldap]}));
    let imported = import(&export, None);
    let config = imported.config();
    let parsed: toml::Table = toml::from_str(&config).unwrap_or_else(|e| panic!("{e}\n{config}"));
    let clients = parsed["oidc"]["clients"].as_array().unwrap();
    assert!(clients.iter().all(|c| c["client_id"].as_str() != Some("evil")), "an injected client:\n{config}");
    assert!(clients.iter().any(|c| c["client_id"].as_str() == Some(&format!("app{injected}"))), "{config}");
    assert!(!parsed.contains_key("proxy"), "an injected [proxy]:\n{config}");
}

/// Keycloak gave each user a persistent NameID per SAML client (`G-<uuid>`, the user attribute
/// `saml.persistent.name.id.for.<clientId>`): after the import, the SP receives the same value for a user in the
/// export, and a computed persistent NameID for one who is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloaks_saml_persistent_nameids_reach_the_sp() {
    let slapd = Slapd::start().unwrap();
    let components =
        json!({"org.keycloak.storage.UserStorageProvider": [ldap_component(&slapd, "service-password", true)]});
    let mut sp = saml_client();
    sp["attributes"]["saml_name_id_format"] = json!("persistent");
    let export = realm("corp", vec![oidc_client(SECRET), sp], components);
    let kept = "G-5d1a3f7c-3b9e-4c1e-8f0a-2b6d9e4c7a11";
    let users = json!({"realm": "corp", "users": [
        {"id": "0b8f7a52-1111-4e5e-9c33-3a1f1d2f5b7e", "username": "alice", "enabled": true, "federationLink": LDAP_ID,
         "attributes": {"LDAP_ID": ["6a3c1b7e-aaaa-4f00-8000-000000000001"],
                        format!("saml.persistent.name.id.for.{SP_ENTITY}"): [kept]},
         "credentials": [], "realmRoles": [], "groups": []}
    ]});
    let imported = import(&export, Some(&users));
    assert_eq!(imported.status, 0, "nothing blocks:\n{}", imported.report);
    assert!(imported.report.contains("1 of Keycloak's per-user `G-…` NameIDs kept"), "{}", imported.report);
    let (ok, out) = check_config(&imported.path("out/config.toml"));
    assert!(ok, "{out}");

    let gw = Gateway::start(&imported.config()).await.unwrap();
    const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
    let (seen, _) = saml_login(&gw, "alice").await;
    assert_eq!(seen["name_id"], kept, "Keycloak's NameID for alice at this SP: {seen}");
    assert_eq!(seen["format"], PERSISTENT, "{seen}");
    let (seen, _) = saml_login(&gw, "bob").await;
    assert_eq!(seen["format"], PERSISTENT, "{seen}");
    let bob = seen["name_id"].as_str().unwrap();
    assert!(!bob.is_empty() && !bob.starts_with("G-") && bob != "bob", "bob is not in the export: {seen}");
    drop(slapd);
}

/// Client ids become secret file names: one of 300 characters made a name over the 255-byte limit, so the import
/// failed, and `a/b` and `a_b` shared `secrets/oidc-a_b` (one client's secret written over the other's). Now a long
/// or unsafe id becomes its safe characters, cut, plus a short hash of the id: the import completes, every client
/// has its own file, and the config points each client at its own secret.
#[test]
fn long_and_unsafe_client_ids_get_bounded_distinct_secret_files() {
    let long = "x".repeat(300);
    let mut clients = Vec::new();
    for (id, secret) in [
        (long.as_str(), "long-client-secret-0123456789abcdef"),
        ("a/b", "slash-secret-0123456789abcdefgh"),
        ("a_b", "under-secret-0123456789abcdefgh"),
    ] {
        let mut c = oidc_client(secret);
        c["clientId"] = json!(id);
        clients.push(c);
    }
    let imported = import(&realm("corp", clients, json!({})), None);
    let config = imported.config();
    let files: Vec<PathBuf> =
        std::fs::read_dir(imported.path("out/secrets")).unwrap().map(|e| e.unwrap().path()).collect();
    for (id, secret) in [(long.as_str(), "long-client-secret"), ("a/b", "slash-secret"), ("a_b", "under-secret")] {
        let file = files
            .iter()
            .find(|f| std::fs::read_to_string(f).unwrap().starts_with(secret))
            .unwrap_or_else(|| panic!("no secret file for {id:?} among {files:?}: {}", imported.report));
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 80, "{name}");
        assert!(config.contains(&format!("client_secret_file = \"{}\"", file.display())), "{id}: {config}");
    }
}

/// The secrets and private keys an import writes are the operator's alone: each file 0600 in a directory 0700
/// (`secrets/`, `keys/oidc/`, `keys/saml/`), as `fedgate serve` creates its own key directory; other local users
/// cannot even list which clients have secrets. Certificates stay readable.
#[test]
fn imported_secrets_and_keys_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let (private_key, certificate, _) = realm_key();
    let components = json!({"org.keycloak.keys.KeyProvider": [
        {"id": "rsa", "name": "rsa-generated", "providerId": "rsa-generated",
         "config": {"privateKey": [private_key], "certificate": [certificate], "priority": ["100"], "keyUse": ["SIG"]}}
    ]});
    let imported = import(&realm("corp", vec![oidc_client(SECRET)], components), None);
    let mode = |rel: &str| {
        let meta = std::fs::metadata(imported.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}\n{}", imported.report));
        meta.permissions().mode() & 0o777
    };
    for dir in ["out/secrets", "out/keys/oidc", "out/keys/saml"] {
        assert_eq!(mode(dir), 0o700, "{dir} is {:o}", mode(dir));
    }
    for file in ["out/keys/oidc/active.pem", "out/keys/saml/idp.key"] {
        assert_eq!(mode(file), 0o600, "{file} is {:o}", mode(file));
    }
    let secrets: Vec<PathBuf> =
        std::fs::read_dir(imported.path("out/secrets")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!secrets.is_empty(), "{}", imported.report);
    for f in secrets {
        let m = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{} is {m:o}", f.display());
    }
    assert_eq!(mode("out/keys/saml/idp.crt") & 0o044, 0o044, "the certificate is public");
}

/// A realm as a company runs it: a confidential web app whose tokens an API checks (Keycloak's audience mapper
/// adds the API to `aud`; client roles held by groups; full-path group mapper), a public SPA with PKCE, the
/// bearer-only API itself, Alibaba Cloud RAM user SSO and role SSO, an LDAP federation with a group mapper.
fn company_realm(slapd: &Slapd) -> Value {
    const RAM_ROLE: &str = "acs:ram::1234567890123456:role/AdminRole,acs:ram::1234567890123456:saml-provider/corp-kc";
    let webapp = json!({"clientId": "webapp", "name": "Web app", "enabled": true,
        "clientAuthenticatorType": "client-secret", "secret": SECRET, "redirectUris": [REDIRECT], "webOrigins": ["+"],
        "standardFlowEnabled": true, "publicClient": false, "protocol": "openid-connect",
        "attributes": {"post.logout.redirect.uris": BYE},
        "protocolMappers": [
            {"name": "orders-api audience", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
             "config": {"included.client.audience": "orders-api", "id.token.claim": "false", "access.token.claim": "true"}},
            {"name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper",
             "config": {"full.path": "true", "claim.name": "groups", "id.token.claim": "true", "access.token.claim": "true"}},
            {"name": "client roles", "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-client-role-mapper",
             "config": {"usermodel.clientRoleMapping.clientId": "webapp", "claim.name": "resource_access.${client_id}.roles",
                        "multivalued": "true", "access.token.claim": "true"}}
        ],
        "defaultClientScopes": ["web-origins", "acr", "profile", "roles", "basic", "email"],
        "optionalClientScopes": ["offline_access"]});
    let spa = json!({"clientId": "spa", "enabled": true, "publicClient": true, "protocol": "openid-connect",
        "redirectUris": ["http://127.0.0.1:9/spa/"], "webOrigins": ["+"], "standardFlowEnabled": true,
        "attributes": {"pkce.code.challenge.method": "S256"},
        "defaultClientScopes": ["web-origins", "acr", "profile", "roles", "basic", "email"]});
    let api = json!({"clientId": "orders-api", "enabled": true, "bearerOnly": true, "protocol": "openid-connect"});
    let ram_user = json!({"clientId": "https://signin-intl.aliyun.com/1234567890123456/saml/SSO", "enabled": true,
        "protocol": "saml", "attributes": {"saml.server.signature": "true", "saml.signature.algorithm": "RSA_SHA256",
        "saml_name_id_format": "username", "saml_idp_initiated_sso_url_name": "ram-user",
        "saml_assertion_consumer_url_post": "https://signin-intl.aliyun.com/saml/SSO"}});
    let ram_role = json!({"clientId": "urn:alibaba:cloudcomputing:international", "enabled": true, "protocol": "saml",
    "attributes": {"saml.server.signature": "true", "saml.signature.algorithm": "RSA_SHA256",
    "saml_name_id_format": "username", "saml_idp_initiated_sso_url_name": "ram-role",
    "saml_assertion_consumer_url_post": "https://signin.alibabacloud.com/saml-role/sso"},
    "protocolMappers": [
        {"name": "role", "protocol": "saml", "protocolMapper": "saml-role-list-mapper",
         "config": {"attribute.name": "https://www.aliyun.com/SAML-Role/Attributes/Role",
                    "attribute.nameformat": "URI Reference", "single": "true"}},
        {"name": "session name", "protocol": "saml", "protocolMapper": "saml-user-property-mapper",
         "config": {"user.attribute": "username", "attribute.name": "https://www.aliyun.com/SAML-Role/Attributes/RoleSessionName",
                    "attribute.nameformat": "URI Reference"}}
    ]});
    let components =
        json!({"org.keycloak.storage.UserStorageProvider": [ldap_component(slapd, "service-password", false)]});
    let mut export = realm("corp", vec![webapp, spa, api, ram_user, ram_role], components);
    export["roles"]["realm"].as_array_mut().unwrap().push(json!({"name": RAM_ROLE}));
    export["roles"]["client"] = json!({"webapp": [{"name": "editor"}], "orders-api": [{"name": "read"}]});
    export["groups"] = json!([
        {"name": "ai-admins", "path": "/ai-admins", "realmRoles": ["admin", RAM_ROLE],
         "clientRoles": {"webapp": ["editor"], "orders-api": ["read"]}, "subGroups": []},
        {"name": "ai-researchers", "path": "/ai-researchers", "realmRoles": ["researcher"], "subGroups": []}
    ]);
    export
}

/// `user`'s tokens for `client` from the code flow with PKCE at the realm's endpoints, as the app did it with
/// Keycloak (same paths, only the host changed).
async fn realm_code_flow(gw: &Gateway, client: &str, secret: Option<&str>, redirect: &str, user: &str) -> Value {
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let realm = format!("{}/realms/corp/protocol/openid-connect", gw.base);
    let c = browser();
    let r = crate::login::login(&c, gw, user, &format!("{user}-password"), "").await;
    assert_eq!(r.status(), 303, "{user} signs in");
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let r = c
        .get(format!(
            "{realm}/auth?response_type=code&client_id={client}&redirect_uri={}&scope=openid&state=s&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256",
            enc(redirect)
        ))
        .send()
        .await
        .unwrap();
    let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    let url = url::Url::parse(&loc).unwrap_or_else(|_| panic!("{client}: no code, {} {loc}", r.status()));
    let code = url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap();
    let mut req = http().post(format!("{realm}/token")).form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
        ("client_id", client),
    ]);
    if let Some(secret) = secret {
        req = req.basic_auth(client, Some(secret));
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{client}'s token request");
    r.json().await.unwrap()
}

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The cut-over a company makes: `fedgate import keycloak` on its realm, then only the host name changes. Each
/// client keeps Keycloak's URLs and reads what it read before: the web app's access token carries
/// `realm_access.roles`, `resource_access.webapp.roles` (client roles held by groups), `azp`, `typ`, `sid`,
/// `preferred_username` and, from the audience mapper, the API in `aud`; the API (keycloak-connect, bearer-only,
/// checking its audience as Keycloak's adapters do) accepts those tokens by realm role; the SPA gets tokens with
/// PKCE alone; RAM role SSO gets the role the group held and RAM user SSO its NameID. Before, the importer dropped
/// the audience mapper and the client roles, and the API refused every token ("wrong audience").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_realm_moves_by_changing_the_host_name() {
    let slapd = Slapd::start().unwrap();
    let imported = import(&company_realm(&slapd), None);
    let report = &imported.report;
    assert_eq!(imported.status, 0, "nothing blocks this realm:\n{report}");
    for item in ["audience `orders-api` → audiences", "client roles held by groups → client_roles", "aliyun-ram-role"]
    {
        assert!(report.contains(item), "{item:?} missing from the report:\n{report}");
    }
    assert!(report.contains("orders-api: read"), "the bearer-only API's own roles are named as not carried:\n{report}");
    let (ok, out) = check_config(&imported.path("out/config.toml"));
    let config = imported.config();
    assert!(ok, "{out}\n{config}");
    let gw = Gateway::start(&config).await.unwrap();
    // Discovery says what the provider does not take, where OIDC Discovery's defaults would claim it does.
    let d: Value =
        http().get(gw.url("/realms/corp/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(d["prompt_values_supported"], json!(["none", "login", "consent", "select_account"]), "{d}");
    assert_eq!(d["request_uri_parameter_supported"], false, "{d}");

    // The web app.
    let tokens = realm_code_flow(&gw, "webapp", Some(SECRET), REDIRECT, "alice").await;
    let at = payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(at["iss"], format!("{}/realms/corp", gw.base), "{at}");
    assert_eq!(at["realm_access"], json!({"roles": ["admin"]}), "{at}");
    assert_eq!(at["resource_access"], json!({"webapp": {"roles": ["editor"]}}), "{at}");
    let aud: Vec<&str> = at["aud"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(aud.contains(&"orders-api"), "the audience mapper's API is in aud: {at}");
    assert_eq!((at["azp"].as_str(), at["typ"].as_str()), (Some("webapp"), Some("Bearer")), "{at}");
    assert_eq!(at["preferred_username"], "alice", "{at}");
    assert!(at["sid"].as_str().is_some_and(|s| !s.is_empty()), "{at}");
    let id = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!((id["typ"].as_str(), id["azp"].as_str()), (Some("ID"), Some("webapp")), "{id}");
    assert_eq!(id["sid"], at["sid"], "one session id in both tokens");

    // The API, bearer-only, protected by Keycloak's Node.js adapter checking its audience.
    let bob = realm_code_flow(&gw, "webapp", Some(SECRET), REDIRECT, "bob").await;
    let app_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env = [
        ("BASE", gw.base.clone()),
        ("REALM", "corp".to_string()),
        ("CLIENT_ID", "orders-api".to_string()),
        ("APP_PORT", app_port.to_string()),
        ("TOKENS", json!({"alice": tokens["access_token"], "bob": bob["access_token"]}).to_string()),
        ("PUBLIC_KEY_FROM_REALM", String::new()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node::run("keycloak-connect.mjs", &env, 60)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(seen["alice"]["realm-admin"], 200, "the API takes the web app's token: {seen}");
    assert_eq!(seen["bob"]["realm-admin"], 403, "bob is no admin: {seen}");
    assert_eq!(seen["bob"]["realm-researcher"], 200, "{seen}");

    // The SPA: a public client, PKCE and no secret.
    let spa = realm_code_flow(&gw, "spa", None, "http://127.0.0.1:9/spa/", "bob").await;
    let at = payload(spa["access_token"].as_str().unwrap());
    assert_eq!(
        (at["azp"].as_str(), at["realm_access"]["roles"][0].as_str()),
        (Some("spa"), Some("researcher")),
        "{at}"
    );

    // Alibaba Cloud RAM, at Keycloak's IdP-initiated URLs.
    let c = browser();
    crate::login::login(&c, &gw, "alice", "alice-password", "").await;
    let r = c.get(gw.url("/realms/corp/protocol/saml/clients/ram-role")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (action, xml, _) = crate::saml::posted(&r.text().await.unwrap());
    assert_eq!(action, "https://signin.alibabacloud.com/saml-role/sso");
    assert!(xml.contains("acs:ram::1234567890123456:role/") && xml.contains("saml-provider/corp-kc"), "{xml}");
    assert_eq!(crate::saml::get(&xml, "saml:Issuer", ""), format!("{}/realms/corp", gw.base), "Keycloak's entity ID");
    let r = c.get(gw.url("/realms/corp/protocol/saml/clients/ram-user")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (action, xml, _) = crate::saml::posted(&r.text().await.unwrap());
    assert_eq!(action, "https://signin-intl.aliyun.com/saml/SSO");
    assert!(crate::saml::get(&xml, "saml:NameID", "").starts_with("alice@"), "{xml}");
    drop(slapd);
}
