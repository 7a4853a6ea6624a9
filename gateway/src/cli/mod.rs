//! The `fedgate` command line: `serve`, `check-config`, `hash-password`, `ldap probe`, `keys rotate`, `scim sync`,
//! `import keycloak`.
//! `main.rs` only calls [`run`].

pub mod telemetry;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::config;
use crate::domain::clock::SystemClock;

#[derive(Parser)]
#[command(
    name = "fedgate",
    version,
    about = "A federation gateway: LDAP / Active Directory logins for OIDC apps, SAML service providers \
             (Alibaba Cloud RAM included) and apps behind an authenticating proxy.",
    after_help = "Examples:\n  fedgate serve                          # uses ./config.toml (or $FEDGATE_CONFIG)\n  \
                  fedgate serve --config /etc/fedgate/config.toml\n  \
                  fedgate check-config --config config.toml\n  \
                  echo -n 's3cret' | fedgate hash-password\n  \
                  fedgate import keycloak realm-export.json --out /etc/fedgate\n  \
                  FEDGATE_SERVER__LISTEN=0.0.0.0:8080 fedgate serve"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway.
    Serve {
        /// Configuration file (default: $FEDGATE_CONFIG, else ./config.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Sidecar mode: proxy everything that is not a gateway path to this URL (= `[proxy] upstream`).
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Load and validate the configuration, print every problem, exit 1 if there is any.
    CheckConfig {
        /// Configuration file (default: $FEDGATE_CONFIG, else ./config.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Hash a password (read from standard input) for a `[[directory.users]]` entry.
    HashPassword,
    /// Diagnose the LDAP mapping.
    Ldap {
        #[command(subcommand)]
        command: LdapCommand,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// SCIM provisioning of directory users to `[[scim.targets]]`.
    Scim {
        #[command(subcommand)]
        command: ScimCommand,
    },
    /// Usernames held by accounts signed in through `[[upstream.oidc]]` providers.
    Upstream {
        #[command(subcommand)]
        command: UpstreamCommand,
    },
    /// Convert another identity server's configuration into a fedgate configuration.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
}

#[derive(Subcommand)]
enum UpstreamCommand {
    /// Free a username held by the upstream account that first signed in with it (a provider with
    /// `link = "none"`), so the next account to sign in with that name holds it: after a user was renamed or
    /// deleted at the provider and the name given to someone else, or to let another provider's account have it.
    /// With the embedded store, stop fedgate first (its state directory is locked while it runs); with Redis, run it
    /// any time.
    Release {
        /// The username (compared in any case and Unicode compatibility spelling).
        username: String,
        /// Configuration file (default: $FEDGATE_CONFIG, else ./config.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Convert a Keycloak realm export into DIR/config.toml, secret and key files, and DIR/IMPORT-REPORT.md
    /// listing what needs attention. Exits 2 when something blocks a cut-over (masked secrets, brokered
    /// identity providers, …), 1 on bad input.
    ///
    /// Examples:
    ///   fedgate import keycloak corp-realm.json --out fedgate-corp
    ///   kc.sh export --dir exp --realm corp --users different_files
    ///   fedgate import keycloak exp/corp-realm.json --users exp/corp-users-0.json \
    ///       --public-url https://sso.example.com/ --out fedgate-corp
    #[command(verbatim_doc_comment)]
    Keycloak {
        /// The realm export (admin console "Partial export", `kc.sh export`, or a pre-17 export).
        export: PathBuf,
        /// Users exported by `kc.sh export` (`<realm>-users-0.json`), to keep Keycloak's `sub` values.
        #[arg(long)]
        users: Option<PathBuf>,
        /// The URL apps reached Keycloak at (default: the realm's frontendUrl).
        #[arg(long)]
        public_url: Option<url::Url>,
        /// Output directory (created; must not hold a config.toml yet).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ScimCommand {
    /// Push directory users to the SCIM targets: create, update and deprovision. The first run (or --full) compares
    /// everything with the target's user list; later runs read only directory entries changed since the last one.
    ///
    /// Examples:
    ///   fedgate scim sync --dry-run          # print what would change, change nothing
    ///   fedgate scim sync --target ram       # one target
    ///   fedgate scim sync --full             # compare everything again
    #[command(verbatim_doc_comment)]
    Sync {
        /// Only this target (default: every target).
        #[arg(long)]
        target: Option<String>,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Compare every user with the target's list, even when an incremental run is possible.
        #[arg(long)]
        full: bool,
        /// Configuration file (default: $FEDGATE_CONFIG, else ./config.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LdapCommand {
    /// Bind the service account, find USERNAME, print the raw entry and what each configured attribute maps to
    /// (and what the entry has instead when one is missing); with --password-stdin, also test the user's bind.
    Probe {
        /// The login name to look up.
        username: String,
        /// Read the user's password from standard input and test the bind.
        #[arg(long)]
        password_stdin: bool,
        /// Configuration file (default: $FEDGATE_CONFIG, else ./config.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new active OIDC signing key in `oidc.keys_dir`; the old one stays in the JWKS as the previous key, so
    /// tokens it signed keep verifying. Restart (or roll) the gateway to start signing with the new key.
    Rotate {
        /// Configuration file (default: $FEDGATE_CONFIG, else ./config.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, upstream } => serve(config, upstream),
        Command::CheckConfig { config } => check_config(config),
        Command::HashPassword => hash_password(),
        Command::Keys { command: KeysCommand::Rotate { config } } => rotate_keys(config),
        Command::Ldap { command: LdapCommand::Probe { username, password_stdin, config } } => {
            ldap_probe(config, &username, password_stdin)
        }
        Command::Scim { command: ScimCommand::Sync { target, dry_run, full, config } } => {
            scim_sync(config, target.as_deref(), crate::scim::SyncOptions { full, dry_run })
        }
        Command::Upstream { command: UpstreamCommand::Release { username, config } } => {
            release_upstream_name(config, &username)
        }
        Command::Import { command: ImportCommand::Keycloak { export, users, public_url, out } } => {
            import_keycloak(&export, users.as_deref(), public_url, &out)
        }
    }
}

fn import_keycloak(
    export: &std::path::Path,
    users: Option<&std::path::Path>,
    public_url: Option<url::Url>,
    out: &std::path::Path,
) -> ExitCode {
    use crate::import::keycloak;
    let run = || -> Result<keycloak::Report, keycloak::ImportError> {
        let realm: keycloak::export::Realm = keycloak::read_json(export)?;
        let users = match users {
            Some(p) => Some(keycloak::read_json::<keycloak::export::UsersFile>(p)?.into_users()),
            None => None,
        };
        std::fs::create_dir_all(out).map_err(|source| keycloak::ImportError::Write { path: out.into(), source })?;
        let out_dir =
            std::fs::canonicalize(out).map_err(|source| keycloak::ImportError::Write { path: out.into(), source })?;
        let options = keycloak::Options { out_dir: out_dir.clone(), public_url };
        keycloak::write(keycloak::convert(&realm, users.as_deref(), &options), &out_dir)
    };
    match run() {
        Ok(report) => {
            println!(
                "wrote {}: {} blocking, {} to review, {} not supported, {} converted",
                out.join("config.toml").display(),
                report.blocking(),
                report.count(keycloak::Severity::Attention),
                report.count(keycloak::Severity::Unsupported),
                report.count(keycloak::Severity::Converted),
            );
            println!("read {} before switching", out.join("IMPORT-REPORT.md").display());
            if report.blocking() > 0 {
                eprintln!("fedgate: {} item(s) block the cut-over; see the report's first section", report.blocking());
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("fedgate: import failed: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn scim_sync(path: Option<PathBuf>, only: Option<&str>, options: crate::scim::SyncOptions) -> ExitCode {
    let (_, cfg) = match load_or_report(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (Some(scim), Some(ldap)) = (cfg.scim.clone(), cfg.ldap.clone()) else {
        eprintln!("fedgate: scim sync needs [ldap] and at least one [[scim.targets]] in the configuration");
        return ExitCode::FAILURE;
    };
    let targets: Vec<_> = scim.targets.iter().filter(|t| only.is_none_or(|n| t.name == n)).cloned().collect();
    if targets.is_empty() {
        let names: Vec<&str> = scim.targets.iter().map(|t| t.name.as_str()).collect();
        eprintln!(
            "fedgate: no scim target named {:?}; configured targets: {}",
            only.unwrap_or_default(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = telemetry::init(&cfg.log) {
        eprintln!("fedgate: {e:#}");
        return ExitCode::FAILURE;
    }
    crate::app::install_crypto_provider();
    let runtime = match runtime(Threads::Multi) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let roles = ldap_mapper::RoleMap::new(cfg.roles.clone());
    runtime.block_on(async move {
        let dir = match ldap_mapper::LdapDirectory::new(ldap, roles) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("fedgate: {}", e.chain());
                return ExitCode::FAILURE;
            }
        };
        let mut code = ExitCode::SUCCESS;
        for target in &targets {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match crate::scim::run(&dir, &scim, target, options, now).await {
                Ok(report) => {
                    print!("{report}");
                    if !report.is_clean() {
                        code = ExitCode::FAILURE;
                    }
                }
                Err(e) => {
                    eprintln!("fedgate: scim target {}: {e:#}", target.name);
                    code = ExitCode::FAILURE;
                }
            }
        }
        code
    })
}

fn load_or_report(path: Option<PathBuf>) -> Result<(PathBuf, config::Config), ExitCode> {
    let path = config::resolve_path(path.as_deref());
    match config::load(&path) {
        Ok(cfg) => Ok((path, cfg)),
        Err(e) => {
            eprintln!("fedgate: {} — {e}", path.display());
            Err(ExitCode::FAILURE)
        }
    }
}

fn serve(path: Option<PathBuf>, upstream: Option<String>) -> ExitCode {
    let started = Instant::now();
    let (path, mut cfg) = match load_or_report(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if let Some(u) = upstream {
        cfg.proxy.upstream = Some(u);
        let problems = cfg.proxy.validate();
        if !problems.is_empty() {
            eprintln!("fedgate: {}", config::ConfigError { problems });
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = telemetry::init(&cfg.log) {
        eprintln!("fedgate: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match runtime(Threads::Multi) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async move {
        let public_url = cfg.server.public_url.clone();
        let running = crate::app::start(cfg, Arc::new(SystemClock), crate::http::server::shutdown_signal()).await?;
        tracing::info!(
            listen = %running.addr,
            public_url = %public_url,
            config = %path.display(),
            directory = running.state.directory.kind(),
            startup_ms = started.elapsed().as_secs_f64() * 1000.0,
            "fedgate listening on http{}://{}",
            if running.state.config.server.tls.is_some() { "s" } else { "" },
            running.addr,
        );
        running.wait().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("fedgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    let (path, cfg) = match load_or_report(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    println!("{}: configuration is valid", path.display());
    println!("  listen:     {}", cfg.server.listen);
    println!("  public_url: {}", cfg.server.public_url);
    println!("  tls:        {}", if cfg.server.tls.is_some() { "on (rustls)" } else { "off" });
    match &cfg.directory {
        Some(d) => println!("  directory:  static demo directory with {} user(s)", d.users.len()),
        None => match &cfg.ldap {
            Some(l) => println!("  directory:  LDAP {} (users under {})", l.urls.join(", "), l.users_dn),
            None => println!("  directory:  none"),
        },
    }
    println!("  roles:      {}", cfg.roles.keys().cloned().collect::<Vec<_>>().join(", "));
    match &cfg.oidc {
        Some(o) => println!(
            "  oidc:       {} client(s), {} signing keys in {}",
            o.clients.len(),
            o.signing_algorithm.as_str(),
            o.keys_dir.display()
        ),
        None => println!("  oidc:       off"),
    }
    match &cfg.saml {
        Some(s) => println!(
            "  saml:       {} service provider(s): {}",
            s.service_providers.len(),
            s.service_providers.iter().map(|sp| sp.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
        None => println!("  saml:       off"),
    }
    let routes = cfg.proxy.effective_routes();
    if routes.is_empty() {
        println!("  proxy:      off");
    } else {
        for r in routes {
            println!("  proxy:      {}{} → {}", r.host.as_deref().unwrap_or("*"), r.path_prefix, r.upstream);
        }
    }
    match &cfg.scim {
        Some(s) if !s.targets.is_empty() => {
            for t in &s.targets {
                let every =
                    t.interval.map(|i| format!(", every {}", humantime::format_duration(i))).unwrap_or_default();
                println!(
                    "  scim:       {} → {} (deprovision: {}{every})",
                    t.name,
                    t.base_url(),
                    t.deprovision().as_str()
                );
            }
        }
        _ => println!("  scim:       off"),
    }
    println!(
        "  sessions:   idle {} / absolute {}, at most {}",
        humantime::format_duration(cfg.session.idle_timeout),
        humantime::format_duration(cfg.session.absolute_timeout),
        cfg.session.max_sessions
    );
    ExitCode::SUCCESS
}

fn read_secret_line() -> Result<String, ExitCode> {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("fedgate: could not read standard input: {e}");
        return Err(ExitCode::FAILURE);
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn ldap_probe(path: Option<PathBuf>, username: &str, password_stdin: bool) -> ExitCode {
    let (_, cfg) = match load_or_report(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some(ldap) = cfg.ldap.clone() else {
        eprintln!("fedgate: no [ldap] section in the configuration: nothing to probe");
        return ExitCode::FAILURE;
    };
    let password = if password_stdin {
        match read_secret_line() {
            Ok(p) => Some(p),
            Err(code) => return code,
        }
    } else {
        None
    };
    crate::app::install_crypto_provider();
    let runtime = match runtime(Threads::One) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let urls = ldap.urls.join(", ");
    let roles = ldap_mapper::RoleMap::new(cfg.roles.clone());
    let result = runtime.block_on(async move {
        let dir = ldap_mapper::LdapDirectory::new(ldap, roles)?;
        dir.probe(username, password.as_deref()).await
    });
    match result {
        Ok(report) => {
            println!("directory: {urls}");
            print!("{report}");
            if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("fedgate: ldap probe failed: {}", e.chain());
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (input is shown; pipe it in to avoid that): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    if let Err(e) = stdin.lock().read_line(&mut line) {
        eprintln!("fedgate: could not read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if password.is_empty() {
        eprintln!("fedgate: the password is empty; nothing hashed");
        return ExitCode::FAILURE;
    }
    match crate::domain::directory::hash_password(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fedgate: hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rotate_keys(path: Option<PathBuf>) -> ExitCode {
    let (_, cfg) = match load_or_report(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some(oidc) = cfg.oidc else {
        eprintln!("fedgate: no [oidc] section: there are no OIDC signing keys to rotate");
        return ExitCode::FAILURE;
    };
    match federation::oidc::KeySet::rotate(&oidc.keys_dir, oidc.signing_algorithm) {
        Ok(keys) => {
            println!(
                "new active key {} ({}) in {}",
                keys.active().kid(),
                oidc.signing_algorithm.as_str(),
                oidc.keys_dir.display()
            );
            if let Some(prev) = keys.previous() {
                println!("previous key {} stays published in the JWKS", prev.kid());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fedgate: key rotation failed in oidc.keys_dir = {}: {e}", oidc.keys_dir.display());
            ExitCode::FAILURE
        }
    }
}

fn release_upstream_name(path: Option<PathBuf>, username: &str) -> ExitCode {
    let (_, cfg) = match load_or_report(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let store = match crate::domain::store::open(&cfg.store) {
        Ok(Some(store)) => store,
        Ok(None) => {
            eprintln!(
                "fedgate: store.kind = \"memory\" keeps the held names in the running process only; restarting it frees \
                 every name"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("fedgate: {}", crate::domain::store::Chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let rt = match runtime(Threads::One) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let folded = crate::domain::throttle::fold_username(username);
    let names = crate::domain::upstream_names::UpstreamNames::new(store);
    match rt.block_on(names.release(&folded)) {
        Ok(Some(holder)) => {
            println!("released {username} (held by {holder})");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("{username} is not held by any upstream account");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fedgate: {}", crate::domain::store::Chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// How many worker threads a command's async runtime has.
enum Threads {
    /// One per core (`serve`, `scim sync`).
    Multi,
    /// The calling thread only (one-shot diagnostics).
    One,
}

/// The async runtime of a command; a failure is reported and becomes the exit code.
fn runtime(threads: Threads) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = match threads {
        Threads::Multi => tokio::runtime::Builder::new_multi_thread(),
        Threads::One => tokio::runtime::Builder::new_current_thread(),
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("fedgate: could not start the async runtime: {e}");
        ExitCode::FAILURE
    })
}
