//! The `SambaDc` fixture: a real Active Directory domain controller (Debian's Samba AD DC), provisioned once per
//! test binary run into a temp dir and shared by every AD test.
//!
//! - Domain `CORP.TEST`, NetBIOS domain `CORP`, DC `dc1`, base `DC=corp,DC=test`, `--use-rfc2307`,
//!   `--dns-backend=NONE`. Every path (private, lock, state, cache, pid, binddns, log) is inside the temp dir:
//!   `samba-tool domain provision --targetdir` writes an smb.conf there with those paths; ours adds
//!   `interfaces = 127.0.0.1`, `bind interfaces only = yes`, `server services = ldap` (no SMB, KDC, DNS, RPC)
//!   and `tls certfile/keyfile/cafile` from a generated test CA (certificate SAN 127.0.0.1), so LDAPS is
//!   verified for real.
//! - The temp dir outlives the run (a `static` is never dropped); the next run removes it.
//! - Started as a child in the foreground, one process (`samba -i -M single`), stopped by PID on
//!   [`SambaDc::stop`]. Its stdin is a pipe the fixture holds: `samba -i` terminates on EOF there, so the DC also
//!   goes away when the test binary exits (a `static` is never dropped).
//! - Samba's ports are fixed (389, 636): the AD tests take [`SambaDc::shared`]'s lock and so run one at a time,
//!   and the fixture fails loudly when something else already listens there.
//!
//! What provisioning needed in this sandbox (as root, Debian 12, Samba 4.17): `samba-vfs-modules` besides
//! `samba`, `samba-ad-provision`, `samba-dsdb-modules` (provision sets the sysvol ACLs through the `acl_xattr`
//! VFS module, and fails with "The object name is not found" without it); an smb.conf written *before*
//! provisioning must already have `[netlogon]`/`[sysvol]`, so the fixture lets provision write it (with
//! `--option`s) and only adds the TLS lines afterwards. Nothing else (no DNS forwarder, no role-check override).
//! It must run as root (ports 389/636 are privileged, and provisioning sets file ownership and ACLs); `scripts/setup`
//! and CI run as root, and the fixture says so otherwise.
//! `samba -i` alone forks a prefork master and workers: `-M single` keeps it to the one PID we stop.
//! Provisioning takes ~6 s, the users ~1 s each (`samba-tool` is Python).
//!
//! Users (password `<name>-Pass1!`), all under `CN=Users,DC=corp,DC=test`:
//! - alice (Alice Liddell, alice@corp.test, UPN alice@corp.test): staff
//! - bob: ai-researchers, which is itself a member of staff (nested)
//! - dora: disabled; ed: expired (`setexpiry --days=0`); max: must change the password at next logon;
//!   lou: locked out (lockout threshold 3, then three wrong binds)
//! - svc-fedgate: the service account fedgate searches with

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::tls::TestPki;

/// The domain's base DN.
pub const BASE_DN: &str = "DC=corp,DC=test";
/// The Users container.
pub const USERS_DN: &str = "CN=Users,DC=corp,DC=test";
/// The NetBIOS domain.
pub const NETBIOS: &str = "CORP";
/// The service account's password.
const SERVICE_PASSWORD: &str = "svc-fedgate-Pass1!";

/// The password of a seeded user.
pub fn password(user: &str) -> String {
    format!("{user}-Pass1!")
}

/// A running Samba AD DC.
pub struct SambaDc {
    dir: tempfile::TempDir,
    pki: TestPki,
    conf: PathBuf,
    child: Mutex<Option<(Child, ChildStdin)>>,
}

static SHARED: OnceLock<Result<SambaDc, String>> = OnceLock::new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl SambaDc {
    /// The DC every AD test shares (provisioned and started on first use) and the lock that makes those tests run
    /// one at a time; hold the guard for the whole test.
    pub async fn shared() -> anyhow::Result<(&'static SambaDc, tokio::sync::MutexGuard<'static, ()>)> {
        let guard = SERIAL.lock().await;
        let dc = tokio::task::spawn_blocking(|| SHARED.get_or_init(|| Self::provision().map_err(|e| format!("{e:#}"))))
            .await?
            .as_ref()
            .map_err(|e| anyhow::anyhow!("Samba AD DC fixture: {e}"))?;
        dc.ensure_running()?;
        Ok((dc, guard))
    }

    fn provision() -> anyhow::Result<Self> {
        for bin in ["samba", "samba-tool"] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {bin} || test -x /usr/sbin/{bin}")])
                .output()?
                .status
                .code()
                != Some(0)
            {
                bail!(
                    "{bin} not found: apt-get install samba samba-ad-provision samba-dsdb-modules samba-vfs-modules \
                     ldb-tools (or run scripts/setup)"
                );
            }
        }
        let uid = Command::new("id").arg("-u").output().context("running id -u")?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            bail!(
                "the Samba AD DC fixture needs root (privileged ports 389 and 636, file ownership and ACLs in provisioning)"
            );
        }
        for port in [389, 636] {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                bail!("127.0.0.1:{port} is already taken: the Samba AD DC needs LDAP's fixed ports 389 and 636");
            }
        }
        remove_stale_dirs();
        let dir = tempfile::Builder::new().prefix("fedgate-samba.").tempdir()?;
        let d = dir.path();
        let started = Instant::now();
        let opt = |k: &str, v: &str| format!("--option={k}={v}");
        run(Command::new("samba-tool")
            .args(["domain", "provision", "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307"])
            .args(["--realm=CORP.TEST", "--domain=CORP", "--host-name=dc1", "--adminpass=Adm1n-Pass1!"])
            .arg(format!("--targetdir={}", d.display()))
            .args([
                opt("interfaces", "127.0.0.1"),
                opt("bind interfaces only", "yes"),
                opt("server services", "ldap"),
                opt("pid directory", &d.join("pid").display().to_string()),
                opt("log file", &d.join("log.samba").display().to_string()),
            ]))
        .context("samba-tool domain provision")?;
        let pki = TestPki::generate(d, "samba")?;
        let conf = d.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).context("reading the provisioned smb.conf")?;
        let tls = format!(
            "[global]\n\ttls enabled = yes\n\ttls keyfile = {}\n\ttls certfile = {}\n\ttls cafile = {}\n",
            pki.key_pem.display(),
            pki.cert_pem.display(),
            pki.ca_pem.display()
        );
        std::fs::write(&conf, text.replacen("[global]\n", &tls, 1))?;
        std::fs::create_dir_all(d.join("pid"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Samba refuses a private key others can read.
            std::fs::set_permissions(&pki.key_pem, std::fs::Permissions::from_mode(0o600))?;
        }
        let dc = Self { dir, pki, conf, child: Mutex::new(None) };
        dc.seed()?;
        dc.ensure_running()?;
        dc.lock_out("lou")?;
        eprintln!("samba fixture: provisioned and seeded in {:?}", started.elapsed());
        Ok(dc)
    }

    /// `samba-tool <args> -s <our smb.conf>`.
    pub fn tool(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new("samba-tool").args(args).arg("-s").arg(&self.conf))
    }

    fn seed(&self) -> anyhow::Result<()> {
        let pw = password;
        self.tool(&["user", "create", "svc-fedgate", SERVICE_PASSWORD])?;
        self.tool(&[
            "user",
            "create",
            "alice",
            &pw("alice"),
            "--given-name=Alice",
            "--surname=Liddell",
            "--mail-address=alice@corp.test",
            "--use-username-as-cn",
        ])?;
        for u in ["bob", "dora", "ed", "max", "lou"] {
            self.tool(&["user", "create", u, &pw(u), "--use-username-as-cn"])?;
        }
        self.tool(&["group", "add", "staff"])?;
        self.tool(&["group", "add", "ai-researchers"])?;
        self.tool(&["group", "addmembers", "staff", "alice,ai-researchers"])?;
        self.tool(&["group", "addmembers", "ai-researchers", "bob"])?;
        self.tool(&["user", "disable", "dora"])?;
        self.tool(&["user", "setexpiry", "ed", "--days=0"])?;
        self.tool(&[
            "user",
            "setpassword",
            "max",
            &format!("--newpassword={}", pw("max")),
            "--must-change-at-next-login",
        ])?;
        self.tool(&["domain", "passwordsettings", "set", "--account-lockout-threshold=3"])?;
        Ok(())
    }

    /// Three wrong binds as `user`: with the threshold 3, the account is locked out.
    fn lock_out(&self, user: &str) -> anyhow::Result<()> {
        for _ in 0..3 {
            let out = Command::new("ldapwhoami")
                .args(["-x", "-H", &self.ldaps_url(), "-D", &format!("CN={user},{USERS_DN}"), "-w", "wrong"])
                .env("LDAPTLS_CACERT", &self.pki.ca_pem)
                .output()
                .context("running ldapwhoami (apt-get install ldap-utils)")?;
            anyhow::ensure!(!out.status.success(), "a wrong password bound as {user}");
        }
        Ok(())
    }

    /// Starts samba if it is not running (first use, or after [`SambaDc::stop`]), and waits for LDAPS.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        self.start_with(&self.conf)
    }

    /// Restarts the DC with the certificate Samba generates itself (`tls enabled = yes` without a certificate of
    /// ours: a CN-only certificate, no subjectAltName, as on a lab DC) and returns Samba's generated CA. Call
    /// [`SambaDc::stop`] then [`SambaDc::ensure_running`] to go back to the test CA's certificate.
    pub fn restart_with_self_generated_certificate(&self) -> anyhow::Result<PathBuf> {
        let d = self.dir.path().join("self-generated-tls");
        std::fs::create_dir_all(&d)?;
        let text = std::fs::read_to_string(&self.conf)?;
        let alt = self.dir.path().join("etc/smb-self-generated.conf");
        let text = text
            .replace(&self.pki.key_pem.display().to_string(), &d.join("key.pem").display().to_string())
            .replace(&self.pki.cert_pem.display().to_string(), &d.join("cert.pem").display().to_string())
            .replace(&self.pki.ca_pem.display().to_string(), &d.join("ca.pem").display().to_string());
        std::fs::write(&alt, text)?;
        self.stop();
        self.start_with(&alt)?;
        let ca = d.join("ca.pem");
        anyhow::ensure!(ca.exists(), "samba did not generate {}", ca.display());
        Ok(ca)
    }

    fn start_with(&self, conf: &Path) -> anyhow::Result<()> {
        let mut slot = self.child.lock().map_err(|_| anyhow::anyhow!("samba fixture lock poisoned"))?;
        if let Some((child, _)) = slot.as_mut() {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
            *slot = None;
        }
        for port in [389, 636] {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                bail!("127.0.0.1:{port} is already taken: the Samba AD DC needs LDAP's fixed ports 389 and 636");
            }
        }
        let log = std::fs::File::create(self.dir.path().join("samba.out"))?;
        let mut child = Command::new("samba")
            .args(["-i", "-M", "single", "--no-process-group", "-s"])
            .arg(conf)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting samba")?;
        let stdin = child.stdin.take().context("samba has no stdin pipe")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", 636)).is_err() {
            if let Some(status) = child.try_wait()? {
                let out = std::fs::read_to_string(self.dir.path().join("samba.out")).unwrap_or_default();
                bail!("samba exited ({status}) before listening on 636:\n{out}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("samba did not listen on 127.0.0.1:636 within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *slot = Some((child, stdin));
        Ok(())
    }

    /// Stops samba (by PID; the data stays, [`SambaDc::ensure_running`] starts it again).
    pub fn stop(&self) {
        let Ok(mut slot) = self.child.lock() else { return };
        if let Some((mut child, stdin)) = slot.take() {
            drop(stdin);
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `ldaps://127.0.0.1:636`.
    pub fn ldaps_url(&self) -> String {
        "ldaps://127.0.0.1:636".into()
    }

    /// The test CA that signed the DC's certificate.
    pub fn ca_pem(&self) -> &Path {
        &self.pki.ca_pem
    }

    /// `user`'s objectGUID as `samba-tool user show` prints it.
    pub fn object_guid(&self, user: &str) -> anyhow::Result<String> {
        let out = self.tool(&["user", "show", user, "--attributes=objectGUID"])?;
        out.lines()
            .find_map(|l| l.strip_prefix("objectGUID: "))
            .map(|g| g.trim().to_string())
            .with_context(|| format!("no objectGUID in: {out}"))
    }

    /// The `[ldap]` section for a gateway using this DC over LDAPS with the test CA, plus `extra`.
    pub fn ldap_toml(&self, extra: &str) -> String {
        format!(
            "[ldap]\npreset = \"active-directory\"\nurls = [\"{}\"]\nca_file = \"{}\"\n\
             bind_dn = \"CN=svc-fedgate,{USERS_DN}\"\nbind_password = \"{SERVICE_PASSWORD}\"\n\
             users_dn = \"{USERS_DN}\"\nnetbios_domain = \"{NETBIOS}\"\nconnect_timeout = \"2s\"\n\
             operation_timeout = \"5s\"\n{extra}\n",
            self.ldaps_url(),
            self.ca_pem().display()
        )
    }
}

/// The shared DC lives in a `static`, which is never dropped, so its temp dir (~35 MB) outlives the test binary:
/// each run removes those of earlier runs (older than 10 minutes, so a run going on now keeps its own).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if old && e.file_name().to_string_lossy().starts_with("fedgate-samba.") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::io::stderr().flush();
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
