//! LDAP user federation against a real slapd: logins, injection, groups and roles, the AD preset, TLS, outages,
//! configuration diagnostics and `fedgate ldap probe`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::gateway::{Gateway, GatewayProcess, ProcessOptions, browser, fedgate_bin};
use e2e::slapd::{Slapd, SlapdOptions};
use ldap_mapper::{Error, LdapConfig, LdapDirectory, RoleMap};
use reqwest::StatusCode;

fn roles() -> RoleMap {
    RoleMap::new(BTreeMap::from([
        ("admin".to_string(), vec!["ai-admins".to_string(), "AI Admins".to_string()]),
        ("researcher".to_string(), vec!["ai-researchers".to_string()]),
    ]))
}

/// The `[ldap]` section for `slapd` (plus `extra`) parsed exactly as the gateway parses it.
fn ldap_config(slapd: &Slapd, extra: &str) -> LdapConfig {
    let cfg = gateway::config::load_str(&slapd.ldap_toml(extra)).unwrap_or_else(|e| panic!("{e}"));
    cfg.ldap.expect("[ldap] present")
}

fn directory(slapd: &Slapd, extra: &str) -> LdapDirectory {
    gateway::install_crypto_provider();
    LdapDirectory::new(ldap_config(slapd, extra), roles()).unwrap()
}

#[tokio::test]
async fn logs_in_maps_attributes_and_refuses_bad_credentials() {
    let slapd = Slapd::start().unwrap();
    let dir = directory(&slapd, "");
    let alice = dir.authenticate("alice", "alice-password").await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert_eq!(alice.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(alice.dn, "uid=alice,ou=people,dc=example,dc=org");
    assert_eq!(alice.unique_id.len(), 36, "entryUUID: {}", alice.unique_id);
    assert_eq!(alice.roles, vec!["admin"]);
    assert!(alice.groups.contains(&"staff".to_string()));
    // Case-insensitive like LDAP, but the mapped name is the directory's own spelling.
    assert_eq!(dir.authenticate("ALICE", "alice-password").await.unwrap().username, "alice");
    for (user, pw) in [("alice", "wrong"), ("mallory", "x"), ("alice", "")] {
        assert!(matches!(dir.authenticate(user, pw).await, Err(Error::InvalidCredentials)), "{user}/{pw:?}");
    }
}

#[tokio::test]
async fn injection_attempts_never_authenticate_or_widen_the_search() {
    let slapd = Slapd::start().unwrap();
    let dir = directory(&slapd, "");
    let long = "a".repeat(10 * 1024);
    for attack in
        ["*", "alice)(uid=*", "admin*", "a*", "alice\0", "*)(|(uid=*", "alice)(|(objectClass=*)", long.as_str()]
    {
        for pw in ["alice-password", "*", "x"] {
            let r = dir.authenticate(attack, pw).await;
            assert!(
                matches!(r, Err(Error::InvalidCredentials)),
                "{:?}/{pw} gave {r:?}",
                &attack[..attack.len().min(20)]
            );
        }
        assert!(
            dir.lookup(attack).await.unwrap().is_none(),
            "lookup({:?}) found someone",
            &attack[..attack.len().min(20)]
        );
    }
}

#[tokio::test]
async fn nested_groups_grant_roles_with_both_group_strategies() {
    let slapd = Slapd::start().unwrap();
    for strategy in ["search", "member_of"] {
        let dir = directory(&slapd, &format!("group_strategy = \"{strategy}\""));
        let carol = dir.authenticate("carol", "carol-password").await.unwrap();
        assert!(carol.groups.contains(&"ml-team".to_string()), "{strategy}: {:?}", carol.groups);
        assert!(carol.groups.contains(&"ai-researchers".to_string()), "{strategy}: nested {:?}", carol.groups);
        assert_eq!(carol.roles, vec!["researcher"], "{strategy}");
        let bob = dir.authenticate("bob", "bob-password").await.unwrap();
        assert_eq!(bob.roles, vec!["researcher"], "{strategy}");
        let dave = dir.authenticate("dave", "dave-password").await.unwrap();
        assert!(dave.roles.is_empty(), "{strategy}");
        // Without nesting, carol only has her direct groups.
        let flat = directory(&slapd, &format!("group_strategy = \"{strategy}\"\nnested_groups = false"));
        assert!(flat.authenticate("carol", "carol-password").await.unwrap().roles.is_empty(), "{strategy}");
    }
}

#[tokio::test]
async fn active_directory_preset_maps_and_refuses_disabled_and_expired_accounts() {
    let slapd = Slapd::start_with(SlapdOptions { ad: true, ..Default::default() }).unwrap();
    // OpenLDAP has no in-chain matching rule, so nesting is off for this AD look-alike.
    let dir = directory(&slapd, "nested_groups = false\ngroups_dn = \"cn=Users,dc=corp,dc=example\"");
    let m = dir.mapping();
    assert_eq!((m.username.as_str(), m.unique_id.as_str()), ("sAMAccountName", "objectGUID"));
    let jdoe = dir.authenticate("jdoe", "jdoe-password").await.unwrap();
    assert_eq!(jdoe.username, "jdoe");
    assert_eq!(jdoe.display_name.as_deref(), Some("jdoe (AD)"));
    assert_eq!(jdoe.unique_id, "11111111-1111-1111-1111-111111111111", "objectGUID as text");
    assert_eq!(jdoe.groups, vec!["AI Admins"]);
    assert_eq!(jdoe.roles, vec!["admin"]);
    for user in ["disabled", "expired"] {
        let r = dir.authenticate(user, &format!("{user}-password")).await;
        assert!(matches!(r, Err(Error::AccountDisabled(_))), "{user}: {r:?}");
    }
}

#[tokio::test]
async fn ldaps_and_starttls_with_the_test_ca_and_a_wrong_ca_fails_clearly() {
    let slapd = Slapd::start_with(SlapdOptions { tls: true, ..Default::default() }).unwrap();
    let ca = slapd.ca_pem().unwrap();
    let ldaps =
        directory(&slapd, &format!("urls = [\"{}\"]\nca_file = \"{}\"", slapd.ldaps_url().unwrap(), ca.display()));
    assert_eq!(ldaps.authenticate("alice", "alice-password").await.unwrap().username, "alice");
    let starttls = directory(&slapd, &format!("start_tls = true\nca_file = \"{}\"", ca.display()));
    assert_eq!(starttls.authenticate("bob", "bob-password").await.unwrap().username, "bob");
    // A CA that did not sign slapd's certificate.
    let other = tempfile::tempdir().unwrap();
    let wrong = e2e::tls::TestPki::generate(other.path(), "other").unwrap();
    let bad = directory(
        &slapd,
        &format!("urls = [\"{}\"]\nca_file = \"{}\"", slapd.ldaps_url().unwrap(), wrong.ca_pem.display()),
    );
    let err = bad.authenticate("alice", "alice-password").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let why = err.chain();
    assert!(why.contains(&slapd.ldaps_url().unwrap()), "the error names the URL: {why}");
    assert!(why.to_lowercase().contains("certificate"), "the error says why: {why}");
}

#[tokio::test]
async fn an_outage_is_unavailable_not_wrong_password_and_recovery_needs_no_restart() {
    let mut slapd = Slapd::start().unwrap();
    let dir = directory(&slapd, "");
    dir.authenticate("alice", "alice-password").await.unwrap();
    slapd.stop();
    let r = dir.authenticate("bob", "bob-password").await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    assert!(dir.check().await.is_err());
    // A user looked up recently is still served from the cache (token refresh keeps working).
    assert_eq!(dir.lookup("alice").await.unwrap().map(|u| u.username).as_deref(), Some("alice"));
    slapd.restart().unwrap();
    // The backoff for the failed URL is short; the first login after the restart may wait for it.
    let mut ok = false;
    for _ in 0..40 {
        if dir.authenticate("bob", "bob-password").await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(ok, "logins work again after slapd restarts");
    dir.check().await.unwrap();
}

#[tokio::test]
async fn a_dead_first_url_fails_over_to_the_next() {
    let slapd = Slapd::start().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = directory(&slapd, &format!("urls = [\"ldap://127.0.0.1:{dead}\", \"{}\"]", slapd.url()));
    assert_eq!(dir.authenticate("alice", "alice-password").await.unwrap().username, "alice");
}

#[test]
fn a_users_dn_with_a_stray_space_is_reported_where_it_is() {
    let err = gateway::config::load_str(
        "[ldap]\nurls = [\"ldap://127.0.0.1:1\"]\nusers_dn = \"ou=people, dc=example,dc=org\"\n",
    )
    .unwrap_err();
    let p = err.problems.iter().find(|p| p.key == "ldap.users_dn").expect("users_dn reported");
    assert!(p.problem.contains("leading space in RDN 2: \" dc=example\""), "{}", p.problem);
    let err = gateway::config::load_str("[ldap]\nusers_dn = \" ou=people,dc=example,dc=org\"\n").unwrap_err();
    assert!(err.to_string().contains("has a leading space"), "{err}");
}

#[tokio::test]
async fn an_entry_without_the_username_attribute_never_becomes_a_user() {
    let slapd = Slapd::start().unwrap();
    // `userid` is an alias of `uid`: the search matches, but entries come back with `uid`, never `userid` —
    // Keycloak's "User returned from LDAP has null username".
    let dir = directory(&slapd, "username_attribute = \"userid\"");
    let err = dir.authenticate("alice", "alice-password").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Misconfigured { .. }), "{err:?}");
    assert!(msg.contains("uid=alice,ou=people,dc=example,dc=org"), "names the entry: {msg}");
    assert!(msg.contains("has no userid attribute"), "names the attribute: {msg}");
    assert!(msg.contains("uid"), "suggests what the entry has: {msg}");
}

fn probe(slapd: &Slapd, extra: &str, user: &str, password: Option<&str>) -> (bool, String) {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fedgate.toml");
    std::fs::write(&path, format!("[roles]\nadmin = [\"ai-admins\"]\n{}", slapd.ldap_toml(extra))).unwrap();
    let mut cmd = std::process::Command::new(fedgate_bin().unwrap());
    cmd.args(["ldap", "probe", user, "--config"]).arg(&path);
    if password.is_some() {
        cmd.arg("--password-stdin");
    }
    let mut child = cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    if let Some(pw) = password {
        writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ldap_probe_shows_the_mapping_and_what_is_missing() {
    let slapd = Slapd::start().unwrap();
    let (ok, out) = probe(&slapd, "", "alice", Some("alice-password"));
    assert!(ok, "{out}");
    assert!(out.contains("entry:  uid=alice,ou=people,dc=example,dc=org"), "{out}");
    assert!(out.contains("email_attribute (mail) → alice@example.org"), "{out}");
    assert!(out.contains("roles:        admin"), "{out}");
    assert!(!out.contains("{SSHA}"), "never prints a password hash: {out}");
    assert!(out.contains("bind:   ok"), "{out}");
    let (ok, out) = probe(&slapd, "email_attribute = \"email\"", "alice", None);
    assert!(!ok, "a problem makes it exit 1");
    assert!(out.contains("email_attribute = \"email\": the entry has no such attribute; it has:"), "{out}");
    assert!(out.contains("mail"), "{out}");
}

/// Issue 4 against LDAP: logins through the form, and a live session keeps working while LDAP is down.
#[tokio::test]
async fn while_ldap_is_down_logins_say_so_and_live_sessions_keep_working() {
    let mut slapd = Slapd::start().unwrap();
    let gw = Gateway::start(&format!(
        "[roles]\nadmin = [\"ai-admins\"]\nresearcher = [\"ai-researchers\"]\n{}",
        slapd.ldap_toml("")
    ))
    .await
    .unwrap();
    let ready: serde_json::Value =
        e2e::gateway::http().get(gw.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["directory"]["kind"], "ldap");
    assert_eq!(ready["status"], "ready");
    let c = browser();
    let r = crate::login::login(&c, &gw, "carol", "carol-password", "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = c.get(gw.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<span class=\"chip\">researcher</span>"), "nested group role shown");
    let r = crate::login::login(&browser(), &gw, "carol", "nope", "/").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    slapd.stop();
    let r = crate::login::login(&browser(), &gw, "bob", "bob-password", "/").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("cannot be reached"), "says the directory is unreachable");
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), StatusCode::OK, "the live session still works");
    assert_eq!(
        e2e::gateway::http().get(gw.url("/readyz")).send().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    slapd.restart().unwrap();
}

/// A real browser logs in with an LDAP user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_with_an_ldap_user() {
    let slapd = Slapd::start().unwrap();
    let gw = Gateway::start(&format!("[roles]\nadmin = [\"ai-admins\"]\n{}", slapd.ldap_toml(""))).await.unwrap();
    let seen = crate::browser::browser_login_round_trip(&gw, "alice", "alice-password").await;
    assert_eq!(seen["roles"], "admin");
}

/// TCP connections to 127.0.0.1:`port` in state ESTABLISHED, counted on the connecting side in `/proc/net/tcp`
/// (slapd listens on IPv4 loopback; each connection shows once with `port` as its remote end). The kernel lists
/// the table a page per read, so one listing is no snapshot (a socket closing early in it and one opening later
/// could both be seen); only connections in two listings in a row count: those were open at the same time.
fn established_to(port: u16) -> usize {
    let remote = format!(":{port:04X}");
    let listing = || -> std::collections::HashSet<(String, String)> {
        std::fs::read_to_string("/proc/net/tcp")
            .map(|table| {
                table
                    .lines()
                    .skip(1)
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.len() > 3 && f[2].ends_with(&remote) && f[3] == "01").then(|| (f[1].into(), f[2].into()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let first = listing();
    listing().intersection(&first).count()
}

/// Samples [`established_to`] in a loop on its own thread until dropped; `peak` is the most seen at once.
struct ConnectionSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectionSampler {
    fn start(port: u16) -> Self {
        let (stop, peak, samples) = (Arc::new(AtomicBool::new(false)), Arc::default(), Arc::default());
        let thread = std::thread::spawn({
            let (stop, peak, samples): (_, Arc<AtomicUsize>, Arc<AtomicUsize>) =
                (stop.clone(), Arc::clone(&peak), Arc::clone(&samples));
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(established_to(port), Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self { stop, peak, samples, thread: Some(thread) }
    }

    /// Stops sampling; (peak, number of samples).
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (self.peak.load(Ordering::Relaxed), self.samples.load(Ordering::Relaxed))
    }
}

impl Drop for ConnectionSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sends `n` form logins (users alice, bob, carol, dave in turn, right passwords) to the gateway at `base` all at
/// once: every request is written but its last byte on its own connection first, then the last bytes go out
/// together. Returns each answer's status code (0 when there was none).
async fn login_burst(base: &str, n: usize) -> Vec<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let authority = base.trim_start_matches("http://").to_string();
    // A CSRF cookie and token from the login form, as a browser would have them (the check is double-submit).
    let form = e2e::raw_http::get(base, "/login", &[]).await.unwrap();
    let csrf = form
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix("fedgate_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("the login form sets the CSRF cookie")
        .to_string();
    assert_eq!(e2e::gateway::csrf_from(&form.body).as_deref(), Some(csrf.as_str()));
    let mut streams = Vec::with_capacity(n);
    let mut lasts = Vec::with_capacity(n);
    for i in 0..n {
        let user = ["alice", "bob", "carol", "dave"][i % 4];
        let body = format!("username={user}&password={user}-password&csrf={csrf}");
        let request = format!(
            "POST /login HTTP/1.1\r\nHost: {authority}\r\nCookie: fedgate_csrf={csrf}\r\nContent-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (head, last) = request.as_bytes().split_at(request.len() - 1);
        let mut s = tokio::net::TcpStream::connect(&authority).await.unwrap();
        s.write_all(head).await.unwrap();
        streams.push(s);
        lasts.push(last[0]);
    }
    for (s, last) in streams.iter_mut().zip(&lasts) {
        s.write_all(&[*last]).await.unwrap();
    }
    let mut answers = tokio::task::JoinSet::new();
    for mut s in streams {
        answers.spawn(async move {
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(25), s.read_to_end(&mut buf)).await;
            let head = String::from_utf8_lossy(&buf[..buf.len().min(16)]).into_owned();
            head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0u16)
        });
    }
    answers.join_all().await
}

fn slapd_port(slapd: &Slapd) -> u16 {
    slapd.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("slapd URL has a port")
}

/// Issue 20: the pools bound the connections to the directory. 500 logins at once against `max_connections = 4`
/// never have more than 8 open (4 service-account connections for searches + 4 for user binds), seen from
/// outside the gateway in the kernel's socket table; all 500 succeed because each waits its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_logins_never_open_more_than_max_connections() {
    const MAX: usize = 4;
    let slapd = Slapd::start().unwrap();
    let port = slapd_port(&slapd);
    let body = format!(
        "[log]\nlevel = \"warn\"\n[roles]\nadmin = [\"ai-admins\"]\n{}",
        slapd.ldap_toml(&format!("max_connections = {MAX}\npool_wait_timeout = \"20s\""))
    );
    let gw = GatewayProcess::start_with(&body, ProcessOptions::default()).await.unwrap();
    let started = Instant::now();
    let sampler = ConnectionSampler::start(port);
    let statuses = login_burst(&gw.base, 500).await;
    let (peak, samples) = sampler.finish();
    let ok = statuses.iter().filter(|&&s| s == 303).count();
    let mut others: Vec<_> = statuses.iter().filter(|&&s| s != 303).collect();
    others.dedup();
    assert_eq!(ok, 500, "every login succeeds (other answers: {others:?}) in {:?}", started.elapsed());
    assert!(peak <= 2 * MAX, "{peak} connections to slapd at once ({samples} samples); at most {} allowed", 2 * MAX);
    assert!(samples >= 2 && peak >= 1, "the sampler saw the connections ({samples} samples, peak {peak})");
    eprintln!("500 logins in {:?}: peak {peak} connections to slapd over {samples} samples", started.elapsed());
}

/// When every connection stays busy for `pool_wait_timeout`, a login answers 503 "directory unavailable" (never
/// "wrong password") and the log says the pool was exhausted and which key to raise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_503_and_names_the_key_to_raise() {
    let slapd = Slapd::start().unwrap();
    let body = format!(
        "[log]\nlevel = \"warn\"\n[roles]\nadmin = [\"ai-admins\"]\n{}",
        slapd.ldap_toml("max_connections = 1\npool_wait_timeout = \"1ms\"")
    );
    let mut gw =
        GatewayProcess::start_with(&body, ProcessOptions { capture: true, ..Default::default() }).await.unwrap();
    gw.collect_output();
    let statuses = login_burst(&gw.base, 100).await;
    assert!(statuses.iter().all(|s| [303, 503].contains(s)), "only success or 503: {statuses:?}");
    assert!(statuses.contains(&503), "1 connection, 1 ms of patience, 100 logins at once: some wait too long");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.output_so_far().contains("ldap connection pool exhausted") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = gw.output_so_far();
    let line = log.lines().find(|l| l.contains("ldap connection pool exhausted")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("raise ldap.max_connections"), "{line}");
}
