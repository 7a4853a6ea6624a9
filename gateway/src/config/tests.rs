#![allow(clippy::result_large_err)]

use super::*;

fn problems(toml: &str) -> Vec<ConfigIssue> {
    match load_str(toml) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    }
}

const DEMO_USER: &str = r#"
[directory]
kind = "static"
[[directory.users]]
username = "alice"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$D3HfmYKUvfa0HBb+Rrj83A$wTu+oU9/AG19ohZ/F+lNhkVpTa9vh1GLef7qLG54jdw"
"#;

#[test]
fn the_shipped_config_toml_parses_and_validates() {
    let cfg = load_str(include_str!("../../../config.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.server.listen.port(), 8080);
    assert_eq!(cfg.directory.as_ref().map(|d| d.users.len()), Some(3));
    assert_eq!(cfg.roles["admin"], vec!["ai-admins".to_string()]);
}

#[test]
fn the_store_section_is_read() {
    // Every section must be extracted, not only known to the key check: a [store] that validated but was
    // ignored kept sessions in ./data/state whatever store.path or store.kind said.
    let cfg = load_str(&format!(
        "{DEMO_USER}\n[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1/0\"\npath = \"/x/state\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.store.kind, StoreKind::Redis);
    assert_eq!(cfg.store.url, "redis://127.0.0.1:1/0");
    assert_eq!(cfg.store.path, std::path::PathBuf::from("/x/state"));
}

#[test]
fn store_fsync_interval_is_always_or_a_duration_and_a_bad_value_names_the_key_and_the_fix() {
    use super::Fsync;
    let read = |v: &str| load_str(&format!("{DEMO_USER}\n[store]\nfsync_interval = \"{v}\"\n"));
    assert_eq!(load_str(DEMO_USER).unwrap().store.fsync_interval, Fsync::Every(std::time::Duration::from_secs(1)));
    assert_eq!(read("always").unwrap().store.fsync_interval, Fsync::Always);
    assert_eq!(read("250ms").unwrap().store.fsync_interval, Fsync::Every(std::time::Duration::from_millis(250)));
    let p = problems(&format!("{DEMO_USER}\n[store]\nfsync_interval = \"sometimes\"\n"));
    let bad = p.iter().find(|p| p.key == "store.fsync_interval").unwrap_or_else(|| panic!("{p:?}"));
    assert!(format!("{bad:?}").contains("always"), "{bad:?}");
    let p = problems(&format!("{DEMO_USER}\n[store]\nfsync_interval = \"0s\"\n"));
    let zero = p.iter().find(|p| p.key == "store.fsync_interval").unwrap_or_else(|| panic!("{p:?}"));
    assert!(zero.fix.contains("\"always\""), "{}", zero.fix);
}

#[test]
fn websocket_session_check_defaults_to_5s_and_a_value_out_of_range_names_the_key_and_the_fix() {
    assert_eq!(load_str(DEMO_USER).unwrap().proxy.websocket_session_check, std::time::Duration::from_secs(5));
    let read = |v: &str| problems(&format!("{DEMO_USER}\n[proxy]\nwebsocket_session_check = \"{v}\"\n"));
    assert!(read("1s").is_empty() && read("60s").is_empty());
    for bad in ["0s", "500ms", "2m"] {
        let p = read(bad);
        let issue = p.iter().find(|p| p.key == "proxy.websocket_session_check").unwrap_or_else(|| panic!("{p:?}"));
        assert!(issue.fix.contains("\"1s\" to \"60s\""), "{}", issue.fix);
    }
}

#[test]
fn redis_sentinel_needs_the_master_name_and_no_url_and_every_problem_is_named_at_once() {
    let store = |body: &str| format!("{DEMO_USER}\n[store]\nkind = \"redis\"\n{body}");
    let cfg = load_str(&store(
        "sentinels = [\"redis://10.0.0.1:26379\", \"redis://10.0.0.2:26379\"]\nsentinel_master = \"mymaster\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.store.uses_sentinels());
    assert_eq!(cfg.store.sentinel_master, "mymaster");

    let p = problems(&store(
        "url = \"redis://127.0.0.1:6379\"\ncluster = true\nsentinels = [\"redis://10.0.0.1:26379\", \"http://x\", \"rediss://10.0.0.3:26379\", \"redis://:pw@10.0.0.4:26379\"]\n",
    ));
    let named = |key: &str| p.iter().filter(|p| p.key == key).map(|p| format!("{p:?}")).collect::<Vec<_>>();
    assert!(named("store.sentinel_master").iter().any(|p| p.contains("mymaster")), "{p:?}");
    assert!(named("store.url").iter().any(|p| p.contains("remove url")), "{p:?}");
    assert_eq!(named("store.cluster").len(), 1, "{p:?}");
    let sentinels = named("store.sentinels");
    assert_eq!(sentinels.len(), 3, "the bad scheme, the mixed scheme and the credentials: {sentinels:?}");
    assert!(!format!("{p:?}").contains(":pw@"), "a password from a sentinel address was repeated: {p:?}");

    let p = problems(&store("sentinel_master = \"mymaster\"\n"));
    assert!(p.iter().any(|p| p.key == "store.sentinels"), "a master name without sentinels: {p:?}");
}

#[test]
fn unknown_keys_suggest_the_nearest_known_key() {
    let p = problems(&format!("{DEMO_USER}\n[session]\ncookie_nme = \"x\"\n[sesion]\n"));
    let keys: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.fix.as_str())).collect();
    assert!(keys.contains(&("session.cookie_nme", "did you mean session.cookie_name?")), "{keys:?}");
    assert!(keys.contains(&("sesion", "did you mean session?")), "{keys:?}");
}

#[test]
fn a_key_in_the_wrong_section_points_to_the_right_one() {
    let p = problems(&format!("{DEMO_USER}\n[server]\ncookie_name = \"x\"\n"));
    assert!(p.iter().any(|p| p.key == "server.cookie_name" && p.fix == "did you mean session.cookie_name?"), "{p:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(&format!(
        "{DEMO_USER}\n[server]\nlisten = \"nonsense\"\nlistn = 1\n[session]\nidle_timeout = \"forever\"\n[log]\nformat = \"xml\"\n"
    ));
    let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
    for k in ["server.listn", "server.listen", "session.idle_timeout", "log.format"] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let listen = p.iter().find(|p| p.key == "server.listen").unwrap();
    assert_eq!(listen.value.as_deref(), Some("nonsense"));
    assert!(listen.fix.contains("HOST:PORT"), "{}", listen.fix);
    let dur = p.iter().find(|p| p.key == "session.idle_timeout").unwrap();
    assert!(dur.fix.contains("\"30s\""), "{}", dur.fix);
}

#[test]
fn semantic_problems_are_collected_too() {
    let p = problems(&format!(
        "{DEMO_USER}\n[session]\nidle_timeout = \"2h\"\nabsolute_timeout = \"1h\"\ncookie_name = \"bad name\"\ncookie_domain = \"example.com; SameSite=None\"\n[roles]\nadmin = []\n"
    ));
    let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
    for k in ["session.absolute_timeout", "session.cookie_name", "session.cookie_domain", "roles.admin"] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
}

#[test]
fn secrets_are_never_echoed() {
    let p = ConfigIssue::new("ldap.bind_password", Some("hunter2".into()), "x", "y");
    assert_eq!(p.value.as_deref(), Some("<redacted>"));
    let shown = format!("{p}");
    assert!(!shown.contains("hunter2"));
    let p = problems("[directory]\n[[directory.users]]\nusername = \"a\"\npassword_hash = \"plaintext-oops\"\n");
    let hash = p.iter().find(|p| p.key == "directory.users[0].password_hash").unwrap();
    assert!(hash.value.is_none() || hash.value.as_deref() == Some("<redacted>"));
    assert!(!format!("{hash}").contains("plaintext-oops"));
}

#[test]
fn no_directory_is_an_error_that_says_what_to_add() {
    let p = problems("");
    assert!(p.iter().any(|p| p.key == "ldap" && p.fix.contains("[ldap]")), "{p:?}");
}

#[test]
fn environment_overrides_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("fedgate.toml", &format!("{DEMO_USER}\n[server]\nlisten = \"127.0.0.1:9000\"\n"))?;
        jail.set_env("FEDGATE_SERVER__LISTEN", "127.0.0.1:9100");
        jail.set_env("FEDGATE_SESSION__IDLE_TIMEOUT", "5m");
        jail.set_env("FEDGATE_CONFIG", "fedgate.toml");
        let path = resolve_path(None);
        assert_eq!(path, PathBuf::from("fedgate.toml"));
        let cfg = load(&path).map_err(|e| e.to_string())?;
        assert_eq!(cfg.server.listen.port(), 9100);
        assert_eq!(cfg.session.idle_timeout, std::time::Duration::from_secs(300));
        Ok(())
    });
}

#[test]
fn an_unknown_environment_key_is_reported_with_its_variable() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("fedgate.toml", DEMO_USER)?;
        jail.set_env("FEDGATE_SESSION__IDLE_TIMEOUTT", "5m");
        let err = load(Path::new("fedgate.toml")).expect_err("must fail");
        let p = err.problems.iter().find(|p| p.key == "session.idle_timeoutt").expect("reported");
        assert_eq!(p.fix, "did you mean session.idle_timeout?");
        assert!(p.source.as_deref().unwrap_or("").contains("FEDGATE_SESSION__IDLE_TIMEOUTT"), "{p:?}");
        Ok(())
    });
}

#[test]
fn a_missing_file_is_one_clear_problem() {
    let err = load(Path::new("/nonexistent/fedgate.toml")).err().unwrap();
    assert_eq!(err.problems.len(), 1);
    assert!(err.to_string().contains("configuration file not found"));
}

#[test]
fn limits_on_what_clients_can_make_the_gateway_hold_are_checked() {
    let p = problems(&format!(
        "{DEMO_USER}\n[server]\nheader_read_timeout = \"0s\"\nidle_timeout = \"2h\"\nbody_read_timeout = \"0s\"\nmax_connections = 0\n\
         max_header_bytes = 100\n[session]\nmax_pending_bytes = 1000\n[saml]\nmax_relay_state_bytes = 40\n"
    ));
    let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "server.header_read_timeout",
        "server.idle_timeout",
        "server.body_read_timeout",
        "server.max_connections",
        "server.max_header_bytes",
        "session.max_pending_bytes",
        "saml.max_relay_state_bytes",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let relay = p.iter().find(|p| p.key == "saml.max_relay_state_bytes").unwrap();
    assert!(relay.problem.contains("80"), "{}", relay.problem);
    let ok = load_str(&format!("{DEMO_USER}\n[saml]\nmax_relay_state_bytes = 1024\n")).unwrap();
    assert_eq!(ok.saml.unwrap().max_relay_state_bytes, 1024);
    let defaults = load_str(DEMO_USER).unwrap();
    assert_eq!(defaults.server.header_read_timeout, std::time::Duration::from_secs(10));
    assert_eq!(defaults.server.body_read_timeout, std::time::Duration::from_secs(30));
    assert_eq!(defaults.session.max_pending_bytes, 32 << 20);
}

#[test]
fn keycloak_realm_names_prefixes_and_public_url_paths_are_checked() {
    assert!(problems(&format!("{DEMO_USER}\n[keycloak]\nrealm = \"corp\"\npath_prefix = \"/auth\"\n")).is_empty());
    let p = problems(&format!(
        "{DEMO_USER}\n[server]\npublic_url = \"https://sso.example.com/sso\"\n[keycloak]\nrealm = \"c/orp\"\npath_prefix = \"/keycloak\"\n"
    ));
    let keys: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.value.as_deref())).collect();
    assert!(keys.contains(&("keycloak.realm", Some("c/orp"))), "{keys:?}");
    assert!(keys.contains(&("keycloak.path_prefix", Some("/keycloak"))), "{keys:?}");
    assert!(keys.contains(&("server.public_url", Some("https://sso.example.com/sso"))), "{keys:?}");
    let empty = problems(&format!("{DEMO_USER}\n[keycloak]\n"));
    assert!(empty.iter().any(|p| p.key == "keycloak.realm" && p.fix.contains("realm = \"corp\"")), "{empty:?}");
}

#[test]
fn upstream_only_configs_are_valid_and_bad_providers_name_key_value_and_fix() {
    let ok = "[login]\npassword = false\n[[upstream.oidc]]\nname = \"corp\"\nissuer = \"https://idp.example.com\"\nclient_id = \"fedgate\"\n";
    let cfg = load_str(ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.upstream.oidc[0].scopes, ["openid", "profile", "email"]);
    assert_eq!(cfg.upstream.oidc[0].username_claim, "preferred_username");
    let bad = "[[upstream.oidc]]\nname = \"co rp\"\nissuer = \"http://idp.example.com\"\nclient_id = \"\"\nlink = \"ldap\"\nauthorization_params = { state = \"x\" }\nusername_claim = \"{email_local\"\n";
    let err = load_str(bad).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "upstream.oidc[0].name",
        "upstream.oidc[0].issuer",
        "upstream.oidc[0].client_id",
        "upstream.oidc[0].link",
        "upstream.oidc[0].authorization_params",
        "upstream.oidc[0].username_claim",
    ] {
        assert!(keys.contains(&k), "{k} missing in {err}");
    }
    let issuer = err.problems.iter().find(|p| p.key == "upstream.oidc[0].issuer").unwrap();
    assert_eq!(issuer.value.as_deref(), Some("http://idp.example.com"));
    assert!(!issuer.fix.is_empty());
    let none = load_str("[login]\npassword = false\n[directory]\nkind = \"static\"\n").unwrap_err();
    assert!(none.problems.iter().any(|p| p.key == "login.password"), "{none}");
}
