//! SCIM provisioning end to end: the real `fedgate scim sync` binary reads the real slapd and writes to a real SCIM
//! 2.0 server (scim2-server from PyPI), which is then asked what it holds.

use std::path::Path;
use std::process::Command;

use e2e::gateway::{Gateway, browser, fedgate_bin, http};
use e2e::metrics;
use e2e::scim::{ScimServer, ScimServerOptions};
use e2e::slapd::{Slapd, SlapdOptions};
use e2e::upstream::EchoUpstream;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "scim-test-token";

/// A configuration with `[ldap]` for `slapd` and one target called `test` (`target` adds keys to it).
fn config(slapd: &Slapd, state_dir: &Path, target: &str) -> String {
    format!(
        "[log]\nlevel = \"warn\"\n[roles]\nadmin = [\"ai-admins\"]\n{}\n[scim]\nstate_dir = {:?}\n[[scim.targets]]\nname = \"test\"\n{target}\n",
        slapd.ldap_toml(""),
        state_dir.display().to_string(),
    )
}

fn bearer_target(server: &ScimServer, extra: &str) -> String {
    format!("base_url = \"{}\"\nbearer_token = \"{TOKEN}\"\n{extra}", server.base_url())
}

/// Runs `fedgate scim sync ARGS` with `toml`; returns (success, stdout + stderr).
fn sync(toml: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fedgate.toml");
    std::fs::write(&path, toml).unwrap();
    let out =
        Command::new(fedgate_bin().unwrap()).args(["scim", "sync", "--config"]).arg(&path).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn names(users: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = users.iter().map(|u| u["userName"].as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

const EVERYONE: [&str; 5] = ["alice", "bob", "carol", "dave", "nomail"];

fn writes(stats: &Value) -> u64 {
    ["POST", "PUT", "PATCH", "DELETE"].iter().map(|m| stats["requests"][m].as_u64().unwrap_or(0)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_full_sync_incremental_change_and_deactivation() {
    let slapd = Slapd::start().unwrap();
    let server = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let state = tempfile::tempdir().unwrap();
    let toml = config(&slapd, state.path(), &bearer_target(&server, ""));

    // Dry run: the plan is printed, nothing is written, no state is saved.
    let (ok, out) = sync(&toml, &["--dry-run"]);
    assert!(ok, "{out}");
    for u in EVERYONE {
        assert!(out.contains(&format!("create     {u} ")), "{out}");
    }
    assert!(out.contains("would: 5 created"), "{out}");
    assert!(server.users().await.unwrap().is_empty());
    assert_eq!(writes(&server.stats().await.unwrap()), 0);
    assert!(!state.path().join("test.json").exists());

    // First real run: a full sync creates everyone, with the mapped attributes.
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("full sync") && out.contains("did: 5 created"), "{out}");
    let users = server.users().await.unwrap();
    assert_eq!(names(&users), EVERYONE);
    let alice = server.user("alice").await.unwrap().unwrap();
    assert_eq!(alice["displayName"], "Alice Liddell");
    assert_eq!(alice["emails"][0]["value"], "alice@example.org");
    assert_eq!(alice["active"], true);
    let external_id = alice["externalId"].as_str().unwrap();
    assert_eq!(external_id.len(), 36, "externalId is the entryUUID: {external_id}");
    assert!(server.user("nomail").await.unwrap().unwrap().get("emails").is_none());

    // A changed attribute: the next run is incremental and writes only that user.
    slapd
        .modify(
            "dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: robert@example.org\n",
        )
        .unwrap();
    let before = writes(&server.stats().await.unwrap());
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("incremental sync") && out.contains("did: 0 created, 1 updated, 0 deprovisioned"), "{out}");
    assert_eq!(writes(&server.stats().await.unwrap()) - before, 1, "only bob is written");
    assert_eq!(server.user("bob").await.unwrap().unwrap()["emails"][0]["value"], "robert@example.org");

    // A user removed from LDAP is deactivated (deprovision = "deactivate" by default), not deleted.
    slapd.modify("dn: uid=dave,ou=people,dc=example,dc=org\nchangetype: delete\n").unwrap();
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("1 deprovisioned"), "{out}");
    let dave = server.user("dave").await.unwrap().expect("dave is still there");
    assert_eq!(dave["active"], false);
    assert_eq!(server.user("alice").await.unwrap().unwrap()["active"], true);

    // A hand-made account on the target is never touched; a full run reports it as not managed and changes nothing.
    let r = http()
        .post(format!("{}/Users", server.base_url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "root-admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let before = writes(&server.stats().await.unwrap());
    let (ok, out) = sync(&toml, &["--full"]);
    assert!(ok, "{out}");
    assert!(out.contains("did: 0 created, 0 updated, 0 deprovisioned; 5 unchanged, 1 not managed"), "{out}");
    assert_eq!(writes(&server.stats().await.unwrap()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_mode_the_deprovision_ratio_and_a_directory_outage() {
    let mut slapd = Slapd::start().unwrap();
    let server = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let state = tempfile::tempdir().unwrap();
    let toml = config(&slapd, state.path(), &bearer_target(&server, "deprovision = \"delete\""));
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert_eq!(names(&server.users().await.unwrap()), EVERYONE);

    // Two of five gone (40 %) is more than the default max_deprovision_ratio (0.2): the run stops, nothing changes.
    for u in ["dave", "nomail"] {
        slapd.modify(&format!("dn: uid={u},ou=people,dc=example,dc=org\nchangetype: delete\n")).unwrap();
    }
    let before = writes(&server.stats().await.unwrap());
    let (ok, out) = sync(&toml, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("deprovision 2 of the 5") && out.contains("max_deprovision_ratio = 0.2"), "{out}");
    assert_eq!(writes(&server.stats().await.unwrap()), before);
    assert_eq!(server.users().await.unwrap().len(), 5);

    // The directory down: the run fails before any write, and says nothing was changed.
    slapd.stop();
    let (ok, out) = sync(&toml, &["--full"]);
    assert!(!ok, "{out}");
    assert!(out.contains("reading the directory failed") && out.contains("nothing was changed"), "{out}");
    assert_eq!(server.users().await.unwrap().len(), 5);
    slapd.restart().unwrap();

    // With the limit raised, the two are deleted.
    let toml =
        config(&slapd, state.path(), &bearer_target(&server, "deprovision = \"delete\"\nmax_deprovision_ratio = 0.5"));
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("2 deprovisioned"), "{out}");
    assert_eq!(names(&server.users().await.unwrap()), ["alice", "bob", "carol"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_client_credentials_throttling_and_a_target_failing_mid_run() {
    let slapd = Slapd::start().unwrap();
    let server = ScimServer::start(ScimServerOptions {
        client: Some(("fedgate-app".into(), "app-secret".into())),
        ..Default::default()
    })
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let secret = state.path().join("client_secret");
    std::fs::write(&secret, "app-secret\n").unwrap();
    let target = format!(
        "base_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"fedgate-app\"\nclient_secret_file = {:?}\nscope = \"/acs/scim\"\nupdate_method = \"put\"",
        server.base_url(),
        server.token_url(),
        secret.display().to_string()
    );
    let toml = config(&slapd, state.path(), &target);

    // The target fails every write after the first two: two users land, three fail with the server's detail.
    server.control(json!({"fail_writes_after": 2, "throttle": 2, "retry_after": "1"})).await.unwrap();
    let (ok, out) = sync(&toml, &[]);
    assert!(!ok, "a run with failures exits non-zero: {out}");
    assert!(out.contains("did: 2 created") && out.contains("3 failed"), "{out}");
    assert!(out.contains("HTTP 500") && out.contains("injected failure: the store is down"), "{out}");
    let stats = server.stats().await.unwrap();
    assert_eq!(stats["throttled"], 2, "429s were answered by waiting Retry-After and retrying");
    assert_eq!(stats["tokens_issued"], 1, "one token, cached for the whole run");
    assert_eq!(server.users().await.unwrap().len(), 2);

    // The target recovers: the next (incremental) run retries exactly the three that failed.
    server.control(json!({"reset": true})).await.unwrap();
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("incremental sync") && out.contains("did: 3 created"), "{out}");
    assert_eq!(names(&server.users().await.unwrap()), EVERYONE, "no duplicates, nobody missing");

    // A wrong client secret is a clear error naming the token endpoint, and nothing is written.
    std::fs::write(&secret, "wrong").unwrap();
    let (ok, out) = sync(&toml, &["--full"]);
    assert!(!ok, "{out}");
    assert!(out.contains("token endpoint") && out.contains("invalid_client"), "{out}");
}

/// `fedgate serve` runs the periodic sync, and `/metrics` after a login, a failed login, a proxied request and that
/// run parses with the official client's parsers, each family one group (the SCIM families once were interleaved),
/// in both the text format and OpenMetrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_periodic_sync_and_reports_it_in_metrics() {
    let slapd = Slapd::start().unwrap();
    let server = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let up = EchoUpstream::start().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let route = format!("[[proxy.routes]]\npath_prefix = \"/app\"\nupstream = \"{}\"\n", up.base);
    let toml = config(&slapd, state.path(), &bearer_target(&server, "interval = \"1h\"")) + &route;
    let gw = Gateway::start(&toml).await.unwrap();

    let alice = browser();
    let r = crate::login::login(&alice, &gw, "alice", "alice-password", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = crate::login::login(&browser(), &gw, "bob", "wrong", "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(alice.get(gw.url("/app/x")).send().await.unwrap().status(), StatusCode::OK);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let m = http().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if m.contains("fedgate_scim_last_success_timestamp_seconds") || std::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let m = metrics::parse(&text, metrics::Format::Text).unwrap();
    for (family, kind) in [
        ("fedgate_http_requests", "counter"),
        ("fedgate_http_request_duration_seconds", "histogram"),
        ("fedgate_events", "counter"),
        ("fedgate_scim_last_success_timestamp_seconds", "gauge"),
        ("fedgate_scim_runs", "counter"),
        ("fedgate_scim_users", "counter"),
        ("fedgate_sessions", "gauge"),
    ] {
        assert_eq!(m.family_type(family), Some(kind), "{family}:\n{text}");
    }
    let requests = "fedgate_http_requests_total";
    assert_eq!(m.value(requests, &[("route", "/login"), ("method", "POST"), ("status", "303")]), Some(1.0));
    assert_eq!(m.value(requests, &[("route", "/login"), ("method", "POST"), ("status", "401")]), Some(1.0));
    assert_eq!(m.value(requests, &[("route", "proxy */app"), ("method", "GET"), ("status", "200")]), Some(1.0));
    let latency = "fedgate_http_request_duration_seconds";
    assert_eq!(m.value(&format!("{latency}_count"), &[("route", "proxy */app")]), Some(1.0));
    assert_eq!(m.value(&format!("{latency}_bucket"), &[("route", "proxy */app"), ("le", "+Inf")]), Some(1.0));
    let les = m.label_sets(&format!("{latency}_bucket"));
    assert_eq!(les.iter().filter(|l| l["route"] == "/login").count(), 13, "12 buckets and +Inf");
    assert_eq!(m.value("fedgate_events_total", &[("event", "login"), ("outcome", "success")]), Some(1.0));
    assert_eq!(m.value("fedgate_events_total", &[("event", "login"), ("outcome", "failure")]), Some(1.0));
    assert!(m.value("fedgate_sessions", &[]).is_some_and(|n| n >= 0.0), "{text}");
    let started = m.value("fedgate_scim_last_success_timestamp_seconds", &[("target", "test")]).unwrap();
    assert!(started > 1.7e9, "{started}");
    assert_eq!(m.value("fedgate_scim_runs_total", &[("target", "test"), ("outcome", "ok")]), Some(1.0));
    assert_eq!(m.value("fedgate_scim_runs_total", &[("target", "test"), ("outcome", "failed")]), Some(0.0));
    for (action, n) in [("created", 5.0), ("updated", 0.0), ("deprovisioned", 0.0), ("failed", 0.0)] {
        assert_eq!(m.value("fedgate_scim_users_total", &[("target", "test"), ("action", action)]), Some(n), "{action}");
    }

    // What Prometheus asks for: OpenMetrics, which its strict parser reads (one group per family, `# EOF`).
    let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;\
                      q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let r = http().get(gw.url("/metrics")).header("accept", prometheus).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let om = metrics::parse(&r.text().await.unwrap(), metrics::Format::OpenMetrics).unwrap();
    assert_eq!(om.value("fedgate_scim_users_total", &[("target", "test"), ("action", "created")]), Some(5.0));
    let r = http().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");

    assert_eq!(names(&server.users().await.unwrap()), EVERYONE);
    gw.stop().await.unwrap();
}

#[test]
fn scim_config_errors_name_the_key_the_value_and_the_fix() {
    let err = gateway::config::load_str(
        "[scim]\n[[scim.targets]]\nname = \"bad name\"\nbase_url = \"scim.example.com\"\nbearer_token = \"t\"\n\
         token_url = \"https://x/token\"\nmax_deprovision_ratio = 2.0\nuser_name = \"{user}@{auxiliary_domain}\"\n\
         users_filter = \"employeeType=staff\"\n",
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "scim.targets[0].name",
        "scim.targets[0].base_url = \"scim.example.com\": not an absolute http(s) URL",
        "both a bearer token and OAuth client credentials",
        "scim.targets[0].max_deprovision_ratio = \"2\"",
        "uses {auxiliary_domain} but auxiliary_domain is not set",
        "scim.targets[0].users_filter",
        "[ldap] is not configured",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("\"t\""), "the bearer token is not printed: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_by_nested_group_and_ldap_filter() {
    let slapd = Slapd::start().unwrap();
    // ai-researchers has bob directly and carol through the nested ml-team group; alice is in ai-admins.
    let by_group = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let state = tempfile::tempdir().unwrap();
    let toml = config(&slapd, state.path(), &bearer_target(&by_group, "groups = [\"ai-researchers\", \"ai-admins\"]"));
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert_eq!(names(&by_group.users().await.unwrap()), ["alice", "bob", "carol"]);
    // nomail has no mail attribute.
    let by_filter = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let state = tempfile::tempdir().unwrap();
    let toml = config(&slapd, state.path(), &bearer_target(&by_filter, "users_filter = \"(mail=*)\""));
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert_eq!(names(&by_filter.users().await.unwrap()), ["alice", "bob", "carol", "dave"]);
}

#[test]
fn the_cli_names_unknown_targets_and_check_config_lists_the_targets() {
    let slapd = Slapd::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let toml = config(
        &slapd,
        state.path(),
        "base_url = \"http://127.0.0.1:9/scim/v2\"\nbearer_token = \"t\"\ndeprovision = \"delete\"",
    );
    let (ok, out) = sync(&toml, &["--target", "ram"]);
    assert!(!ok);
    assert!(out.contains("no scim target named \"ram\"; configured targets: test"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fedgate.toml");
    std::fs::write(&path, &toml).unwrap();
    let out = Command::new(fedgate_bin().unwrap()).args(["check-config", "--config"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("scim:       test → http://127.0.0.1:9/scim/v2 (deprovision: delete)"), "{text}");
}

/// The Alibaba Cloud RAM preset, pointed at the test server: OAuth client credentials with scope `/acs/scim`, only
/// `userName` (lower-cased), `displayName` and `externalId` sent, changes written with PUT (RAM has no PATCH), and
/// users who left deleted (RAM users have no disabled state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_ram_preset_sends_only_what_ram_maps() {
    let slapd = Slapd::start().unwrap();
    let server = ScimServer::start(ScimServerOptions {
        client: Some(("ram-app".into(), "ram-secret".into())),
        ..Default::default()
    })
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let target = format!(
        "preset = \"aliyun-ram\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"ram-app\"\nclient_secret = \"ram-secret\"",
        server.base_url(),
        server.token_url()
    );
    let toml = config(&slapd, state.path(), &target);
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    let alice = server.user("alice").await.unwrap().expect("alice provisioned");
    let mut keys: Vec<&str> = alice.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["displayName", "externalId", "id", "meta", "schemas", "userName"], "{alice}");
    assert_eq!(alice["displayName"], "Alice Liddell");

    // A changed e-mail is nothing RAM holds: no write. A changed display name is written with PUT.
    slapd
        .modify(
            "dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: robert@example.org\n",
        )
        .unwrap();
    let (ok, out) = sync(&toml, &[]);
    assert!(ok && out.contains("did: 0 created, 0 updated"), "{out}");
    slapd
        .modify("dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: cn\ncn: Robert Builder\n")
        .unwrap();
    let (ok, out) = sync(&toml, &[]);
    assert!(ok && out.contains("did: 0 created, 1 updated"), "{out}");
    assert_eq!(server.user("bob").await.unwrap().unwrap()["displayName"], "Robert Builder");

    slapd.modify("dn: uid=dave,ou=people,dc=example,dc=org\nchangetype: delete\n").unwrap();
    let (ok, out) = sync(&toml, &[]);
    assert!(ok && out.contains("1 deprovisioned"), "{out}");
    assert!(server.user("dave").await.unwrap().is_none(), "dave was deleted");
    let stats = server.stats().await.unwrap();
    assert_eq!(stats["requests"]["PUT"], 1, "{stats}");
    assert!(stats["requests"].get("PATCH").is_none(), "{stats}");
    assert_eq!(stats["requests"]["DELETE"], 1, "{stats}");
}

/// A directory that caps the service account at slapd's default 500 entries: the listing is refused as a whole,
/// with the fix, and nothing is written (a short list would look like users who left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_limited_directory_read_changes_nothing_and_says_how_to_fix_it() {
    let slapd =
        Slapd::start_with(SlapdOptions { bulk_users: 600, default_size_limit: true, ..Default::default() }).unwrap();
    let server = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (ok, out) = sync(&config(&slapd, state.path(), &bearer_target(&server, "")), &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("size limit exceeded after 500 entries") && out.contains("size=unlimited"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(writes(&server.stats().await.unwrap()), 0);
}

/// The target goes away between runs: the first writes fail as "unreachable", the run stops early instead of
/// trying every user, exits non-zero, and keeps the last successful run's time so the next run reads the same
/// changes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_stops_the_run_early() {
    let slapd = Slapd::start().unwrap();
    let server = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let state = tempfile::tempdir().unwrap();
    let toml = config(&slapd, state.path(), &bearer_target(&server, ""));
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    let before = std::fs::read_to_string(state.path().join("test.json")).unwrap();
    drop(server);
    for u in EVERYONE {
        slapd
            .modify(&format!("dn: uid={u},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: {u}@new.example.org\n"))
            .unwrap();
    }
    let (ok, out) = sync(&toml, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("stopped early") && out.contains("could not reach the target"), "{out}");
    assert!(out.contains("unreachable: "), "{out}");
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("test.json")).unwrap()).unwrap();
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(after["last_success"], before["last_success"], "the failed run does not count as a success");
    assert_eq!(after["retry"].as_array().unwrap().len(), 5, "every changed user is retried next run");
}

/// The state file names every provisioned user and their ids at the target: it is 0600 in a state directory made
/// 0700, and its temporary file is never opened through a symlink someone planted in the state directory (which
/// would make fedgate, often root, overwrite the file it points to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_is_private_and_a_planted_symlink_is_not_followed() {
    use std::os::unix::fs::PermissionsExt as _;
    let slapd = Slapd::start().unwrap();
    let server = ScimServer::start(ScimServerOptions { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("scim-state");
    let victim = dir.path().join("victim.conf");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("test.json.tmp")).unwrap();
    let toml = config(&slapd, &state, &bearer_target(&server, ""));
    let (ok, out) = sync(&toml, &[]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "the sync wrote through the planted symlink");
    let mode = std::fs::metadata(state.join("test.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the state file is {mode:o}");
    let fresh = dir.path().join("new-state");
    let (ok, out) = sync(&config(&slapd, &fresh, &bearer_target(&server, "")), &["--full"]);
    assert!(ok, "{out}");
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "a new state directory is {mode:o}");
}
