//! Active Directory for real: a Samba AD DC (see `e2e::samba`) over verified LDAPS. Logon names (sAMAccountName,
//! UPN, `CORP\user`), nested groups through the in-chain rule, objectGUID as `sub`, AD's bind refusals (disabled,
//! expired, locked out, must change password) in the log, `fedgate ldap probe` and the login page, and outage /
//! recovery. The tests share one DC on the fixed ports 389/636 and run one at a time (the fixture's lock).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::gateway::{GatewayProcess, ProcessOptions, browser, csrf_from, fedgate_bin};
use e2e::samba::{SambaDc, password};
use ldap_mapper::ad::BindRefusal;
use ldap_mapper::{Error, LdapDirectory, RoleMap};
use reqwest::StatusCode;

fn directory(dc: &SambaDc, extra: &str) -> LdapDirectory {
    directory_from(&dc.ldap_toml(extra))
}

fn directory_from(toml: &str) -> LdapDirectory {
    gateway::install_crypto_provider();
    let cfg = gateway::config::load_str(toml).unwrap_or_else(|e| panic!("{e}"));
    let roles = RoleMap::new(BTreeMap::from([
        ("employee".to_string(), vec!["staff".to_string()]),
        ("researcher".to_string(), vec!["ai-researchers".to_string()]),
    ]));
    LdapDirectory::new(cfg.ldap.expect("[ldap] present"), roles).unwrap()
}

#[tokio::test]
async fn logon_names_nested_groups_and_object_guid() {
    let (dc, _serial) = SambaDc::shared().await.unwrap();
    let dir = directory(dc, "");
    let guid = dc.object_guid("alice").unwrap();
    let mut dns = Vec::new();
    for name in ["alice", "ALICE", "alice@corp.test", "Alice@CORP.TEST", "CORP\\alice", "corp\\alice"] {
        let target = dir.find_login(name).await.unwrap();
        dns.push(target.dn().map(str::to_lowercase).unwrap_or_else(|| panic!("{name} found nobody")));
        let u = dir.finish_login(target, &password("alice")).await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(u.username, "alice", "{name}");
        assert_eq!(u.unique_id.to_lowercase(), guid.to_lowercase(), "{name}: objectGUID as the unique id");
        assert_eq!(u.email.as_deref(), Some("alice@corp.test"));
        assert_eq!(u.roles, vec!["employee"], "{name}");
    }
    dns.dedup();
    assert_eq!(dns, vec![format!("cn=alice,{}", e2e::samba::USERS_DN.to_lowercase())], "one entry: one throttle key");
    // Another domain's down-level name, and filter syntax in any part, find nobody.
    for name in ["OTHER\\alice", "CORP\\*", "*@corp.test", "alice)(cn=*", "CORP\\alice)(|(cn=*"] {
        assert!(dir.find_login(name).await.unwrap().dn().is_none(), "{name} must find nobody");
    }
    // bob is in ai-researchers, itself in staff: the in-chain rule gives both.
    let bob = dir.authenticate("bob@corp.test", &password("bob")).await.unwrap();
    assert_eq!(bob.roles, vec!["employee", "researcher"]);
    assert!(bob.groups.contains(&"staff".to_string()), "{:?}", bob.groups);
    // A wrong password is still just that.
    assert!(matches!(dir.authenticate("CORP\\alice", "nope").await, Err(Error::InvalidCredentials)));
}

#[tokio::test]
async fn bind_refusals_are_read_from_ad() {
    let (dc, _serial) = SambaDc::shared().await.unwrap();
    let dir = directory(dc, "");
    for (user, want) in [
        ("dora", BindRefusal::AccountDisabled),
        ("ed", BindRefusal::AccountExpired),
        ("max", BindRefusal::MustChangePassword),
        ("lou", BindRefusal::LockedOut),
    ] {
        match dir.authenticate(user, &password(user)).await {
            Err(Error::AdBindRefused(r)) => assert_eq!(r, want, "{user}"),
            other => panic!("{user}: {other:?}"),
        }
    }
    // The must-change user with a wrong password gets the generic refusal (AD checks the password first).
    assert!(matches!(dir.authenticate("max", "wrong").await, Err(Error::InvalidCredentials)));

    // `fedgate ldap probe` says which it is.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("fedgate.toml");
    std::fs::write(&cfg, format!("[roles]\nemployee = [\"staff\"]\n{}", dc.ldap_toml(""))).unwrap();
    for (user, says) in [("dora", "account disabled (AD data 533)"), ("max", "must be changed at next logon")] {
        let mut child = std::process::Command::new(fedgate_bin().unwrap())
            .args(["ldap", "probe", user, "--password-stdin", "--config"])
            .arg(&cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(format!("{}\n", password(user)).as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(says), "{user}: {text}");
        assert!(!text.contains(&password(user)), "the password is never printed");
    }
}

async fn login(base: &str, user: &str, pw: &str) -> (StatusCode, String) {
    let c = browser();
    let html = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_from(&html).unwrap();
    let r = c
        .post(format!("{base}/login"))
        .form(&[("username", user), ("password", pw), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_and_the_log_say_what_ad_said() {
    let (dc, _serial) = SambaDc::shared().await.unwrap();
    let body = format!(
        "[log]\nlevel = \"info\"\n[ui]\npassword_help_url = \"https://passwords.corp.test/change\"\n\
         [roles]\nemployee = [\"staff\"]\n{}",
        dc.ldap_toml("")
    );
    let mut gw =
        GatewayProcess::start_with(&body, ProcessOptions { capture: true, ..Default::default() }).await.unwrap();
    gw.collect_output();
    for name in ["alice", "alice@corp.test", "CORP\\alice"] {
        let (status, _) = login(&gw.base, name, &password("alice")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{name} signs in");
    }
    for (user, reason) in [("dora", "account disabled"), ("ed", "account expired"), ("lou", "account locked out")] {
        let (status, page) = login(&gw.base, user, &password(user)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(page.contains("Invalid username or password."), "{user}: the generic refusal");
        let want = format!("reason=\"{reason}\"");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gw.output_so_far().lines().any(|l| l.contains(&want) && l.contains(user)) {
            assert!(Instant::now() < deadline, "{user}: no log line with {want}:\n{}", gw.output_so_far());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (status, page) = login(&gw.base, "max", &password("max")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Password change required"), "{page}");
    assert!(page.contains("https://passwords.corp.test/change"), "the [ui] help link: {page}");
    let (status, page) = login(&gw.base, "max", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!page.contains("Password change required"), "only the password's owner learns it has expired");
    let log = gw.output_so_far();
    assert!(log.contains("reason=\"password must be changed at next logon\""), "{log}");
    assert!(!log.contains(&password("max")), "passwords are never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_503_and_logins_recover_without_restart() {
    let (dc, _serial) = SambaDc::shared().await.unwrap();
    let body = format!("[roles]\nemployee = [\"staff\"]\n{}", dc.ldap_toml(""));
    let gw = GatewayProcess::start_with(&body, ProcessOptions::default()).await.unwrap();
    assert_eq!(login(&gw.base, "alice", &password("alice")).await.0, StatusCode::SEE_OTHER);
    dc.stop();
    let (status, page) = login(&gw.base, "alice", &password("alice")).await;
    dc.ensure_running().unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = login(&gw.base, "alice", &password("alice")).await;
        if status == StatusCode::SEE_OTHER {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The SCIM client's listing reads AD: every person in scope with nested groups resolved, and an incremental
/// listing (`whenChanged`) returns only what changed since.
#[tokio::test]
async fn listing_from_ad_and_when_changed_increments() {
    use ldap_mapper::directory::ListQuery;
    let (dc, _serial) = SambaDc::shared().await.unwrap();
    let dir = directory(dc, "");
    let all = dir.list_users(&ListQuery::default()).await.unwrap();
    let names: Vec<&str> = all.users.iter().map(|u| u.username.as_str()).collect();
    for u in ["alice", "bob", "dora", "max", "svc-fedgate"] {
        assert!(names.contains(&u), "{u} missing from {names:?}");
    }
    let bob = all.users.iter().find(|u| u.username == "bob").unwrap();
    assert_eq!(bob.roles, vec!["employee", "researcher"], "nested groups in a listing too");
    assert!(all.skipped.is_empty(), "{:?}", all.skipped);

    // whenChanged has one-second resolution: start the window on a fresh second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    dc.tool(&["user", "setexpiry", "alice", "--noexpiry"]).unwrap();
    let changed = dir.list_users(&ListQuery { changed_since: Some(since), ..Default::default() }).await.unwrap();
    let names: Vec<&str> = changed.users.iter().map(|u| u.username.as_str()).collect();
    assert!(names.contains(&"alice"), "alice changed: {names:?}");
    assert!(!names.contains(&"bob"), "bob did not change: {names:?}");
}

/// Samba's self-generated DC certificate names the DC only in its CN: rustls refuses it, and the error says how to
/// fix it (a certificate with the name or IP in subjectAltName, `ca_file`).
#[tokio::test]
async fn a_dc_certificate_without_subject_alt_name_is_refused_with_the_fix() {
    let (dc, _serial) = SambaDc::shared().await.unwrap();
    struct Restore(&'static SambaDc);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.stop();
            self.0.ensure_running().expect("samba back with the test CA's certificate");
        }
    }
    let _restore = Restore(dc);
    let ca = dc.restart_with_self_generated_certificate().unwrap();
    let toml = dc.ldap_toml("").replace(&dc.ca_pem().display().to_string(), &ca.display().to_string());
    let dir = directory_from(&toml);
    let err = dir.authenticate("alice", &password("alice")).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let why = err.chain();
    assert!(why.contains("NotValidForName") || why.contains("not valid for name"), "{why}");
    assert!(why.contains("subjectAltName") && why.contains("ldap.ca_file"), "the fix: {why}");
}
