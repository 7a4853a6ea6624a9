//! The `Slapd` fixture: Debian's real OpenLDAP `slapd`, started from a temp dir on a free 127.0.0.1 port (mdb
//! backend, memberof overlay), seeded with the users every test shares, optionally serving LDAPS and StartTLS with
//! a generated test CA, or an Active-Directory-like schema. Killed by PID on drop. A missing `slapd` is a loud
//! failure with the install hint.
//!
//! Seed (suffix `dc=example,dc=org`; passwords `<uid>-password`):
//! - alice (Alice Liddell, alice@example.org): ai-admins, staff
//! - bob (Bob Builder, bob@example.org): ai-researchers, staff
//! - carol (Carol Nested): ml-team, which is itself a member of ai-researchers; staff
//! - dave: staff only; nomail: no mail attribute
//! - service account `cn=fedgate,ou=services,dc=example,dc=org` / `service-password`
//!
//! AD flavour (suffix `dc=corp,dc=example`, container `cn=Users`): jdoe (enabled, "AI Admins"), disabled
//! (userAccountControl 514), expired (accountExpires in the past); passwords `<name>-password`.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;

use crate::tls::TestPki;

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";

/// What kind of directory to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlapdOptions {
    /// Also listen on LDAPS and accept StartTLS, with a generated test CA.
    pub tls: bool,
    /// Active-Directory-like schema and data instead of the OpenLDAP seed.
    pub ad: bool,
    /// Extra bulk users `user1..userN` (password `pw-<i>`, group staff) for benchmarks.
    pub bulk_users: usize,
    /// Leave the service account at slapd's default size limit (500 entries, paged searches included) instead of
    /// `size=unlimited`, as on a directory nobody prepared for provisioning.
    pub default_size_limit: bool,
}

/// A running slapd.
pub struct Slapd {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
    pki: Option<TestPki>,
    options: SlapdOptions,
    child: Option<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn ssha(password: &str) -> String {
    let salt: [u8; 8] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(password.len() as u8));
    let mut input = password.as_bytes().to_vec();
    input.extend_from_slice(&salt);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    let mut out = digest.as_ref().to_vec();
    out.extend_from_slice(&salt);
    format!("{{SSHA}}{}", base64::engine::general_purpose::STANDARD.encode(out))
}

impl Slapd {
    /// The OpenLDAP flavour, plain LDAP.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(SlapdOptions::default())
    }

    /// Starts slapd with `options`.
    pub fn start_with(options: SlapdOptions) -> anyhow::Result<Self> {
        if !Path::new(SLAPD).exists() {
            bail!("{SLAPD} not found: install OpenLDAP with `apt-get install slapd ldap-utils` (or run scripts/setup)");
        }
        let dir = tempfile::Builder::new().prefix("fedgate-slapd.").tempdir()?;
        std::fs::create_dir(dir.path().join("db"))?;
        let pki = if options.tls { Some(TestPki::generate(dir.path(), "slapd")?) } else { None };
        let mut s = Self {
            port: free_port()?,
            tls_port: if options.tls { Some(free_port()?) } else { None },
            dir,
            pki,
            options,
            child: None,
        };
        s.write_config()?;
        let mut ldif = if options.ad { ad_ldif() } else { seed_ldif() };
        for i in 1..=options.bulk_users {
            ldif.push('\n');
            let user = person(
                &format!("user{i}"),
                &format!("User {i}"),
                "Bulk",
                &format!("User{i}"),
                Some(&format!("user{i}@example.org")),
                &["staff"],
            );
            ldif.push_str(&user.replace(&ssha(&format!("user{i}-password")), &ssha(&format!("pw-{i}"))));
        }
        std::fs::write(s.dir.path().join("seed.ldif"), ldif)?;
        let out = Command::new(SLAPADD)
            .args(["-q", "-f"])
            .arg(s.dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(s.dir.path().join("seed.ldif"))
            .output()
            .context("running slapadd")?;
        if !out.status.success() {
            bail!("slapadd failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        s.launch()?;
        Ok(s)
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let d = self.dir.path();
        let mut conf = String::new();
        for schema in ["core", "cosine", "inetorgperson", "nis"] {
            writeln!(conf, "include /etc/ldap/schema/{schema}.schema")?;
        }
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        if self.options.ad {
            writeln!(conf, "include {}", fixtures.join("ad-lite.schema").display())?;
        }
        writeln!(conf, "modulepath /usr/lib/ldap\nmoduleload back_mdb")?;
        if !self.options.ad {
            writeln!(conf, "moduleload memberof")?;
        }
        writeln!(conf, "pidfile {}\nargsfile {}", d.join("slapd.pid").display(), d.join("slapd.args").display())?;
        if let Some(pki) = &self.pki {
            writeln!(conf, "TLSCACertificateFile {}", pki.ca_pem.display())?;
            writeln!(conf, "TLSCertificateFile {}", pki.cert_pem.display())?;
            writeln!(conf, "TLSCertificateKeyFile {}", pki.key_pem.display())?;
        }
        let suffix = self.base_dn();
        write!(
            conf,
            r#"
database mdb
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw {rootpw}
{limits}
directory {db}
maxsize 104857600
dbnosync
index objectClass eq
index uid,mail,cn eq
index member eq
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by self read
  by users read
  by * none
"#,
            rootpw = ssha("admin-password"),
            limits = if self.options.default_size_limit {
                String::new()
            } else {
                format!("limits dn.exact=\"cn=fedgate,ou=services,{suffix}\" size=unlimited")
            },
            db = d.join("db").display(),
        )?;
        if !self.options.ad {
            conf.push_str("overlay memberof\nmemberof-group-oc groupOfNames\nmemberof-member-ad member\nmemberof-memberof-ad memberOf\n");
        }
        // cn=Monitor counts the operations slapd served, so tests can check the work a login costs the directory.
        write!(conf, "\ndatabase monitor\naccess to *\n  by dn.exact=\"cn=admin,{suffix}\" read\n  by * none\n")?;
        std::fs::write(d.join("slapd.conf"), conf)?;
        Ok(())
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(p) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        // `-d 0` keeps slapd in the foreground, so the child's PID is slapd's own and Drop can kill it.
        let child = Command::new(SLAPD)
            .args(["-d", "0", "-f"])
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-h", &urls])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(self.dir.path().join("slapd.log"))?))
            .spawn()
            .context("starting slapd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        for port in ports {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                    let log = std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default();
                    bail!("slapd exited ({status}) before listening on {port}:\n{log}");
                }
                if Instant::now() > deadline {
                    bail!("slapd did not listen on 127.0.0.1:{port} within 15 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Stops slapd (the data stays; [`Slapd::restart`] brings it back on the same port).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts slapd again on the same ports with the same data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    /// slapd's process id (for benchmarks that read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Applies an LDIF change (`ldapmodify` as the directory's admin), e.g. to change or delete a user mid-test.
    pub fn modify(&self, ldif: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", &format!("cn=admin,{}", self.base_dn()), "-w", "admin-password"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running ldapmodify (apt-get install ldap-utils)")?;
        child.stdin.take().context("no stdin")?.write_all(ldif.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("ldapmodify failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// How many operations of `kind` (`Bind`, `Search`, …) slapd has completed so far, read from `cn=Monitor`.
    /// Each reading is itself one bind and one search, counted before it reports: subtract them from a difference.
    pub fn completed_operations(&self, kind: &str) -> anyhow::Result<u64> {
        let out = Command::new("ldapsearch")
            .args(["-x", "-LLL", "-H", &self.url(), "-D", &format!("cn=admin,{}", self.base_dn())])
            .args(["-w", "admin-password", "-s", "base", "-b", &format!("cn={kind},cn=Operations,cn=Monitor")])
            .arg("monitorOpCompleted")
            .output()
            .context("running ldapsearch (apt-get install ldap-utils)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("monitorOpCompleted: "))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| {
                format!("no monitorOpCompleted for {kind}: {text}{}", String::from_utf8_lossy(&out.stderr))
            })
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT` (TLS fixtures only).
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("ldaps://127.0.0.1:{p}"))
    }

    /// The test CA that signed slapd's certificate (TLS fixtures only).
    pub fn ca_pem(&self) -> Option<PathBuf> {
        self.pki.as_ref().map(|p| p.ca_pem.clone())
    }

    /// The suffix.
    pub fn base_dn(&self) -> &'static str {
        if self.options.ad { "dc=corp,dc=example" } else { "dc=example,dc=org" }
    }

    /// The service account fedgate searches with.
    pub fn service_dn(&self) -> String {
        format!("cn=fedgate,ou=services,{}", self.base_dn())
    }

    /// The `[ldap]` section for a gateway using this directory; keys that `extra` sets replace the defaults.
    pub fn ldap_toml(&self, extra: &str) -> String {
        let base = self.base_dn();
        let users = if self.options.ad { format!("cn=Users,{base}") } else { format!("ou=people,{base}") };
        let preset = if self.options.ad { "active-directory" } else { "openldap" };
        let defaults = [
            ("preset", format!("\"{preset}\"")),
            ("urls", format!("[\"{}\"]", self.url())),
            ("bind_dn", format!("\"{}\"", self.service_dn())),
            ("bind_password", "\"service-password\"".to_string()),
            ("users_dn", format!("\"{users}\"")),
            ("connect_timeout", "\"2s\"".to_string()),
            ("operation_timeout", "\"2s\"".to_string()),
        ];
        let set_by_extra = |key: &str| extra.lines().any(|l| l.split('=').next().map(str::trim) == Some(key));
        let mut out = String::from("[ldap]\n");
        for (k, v) in defaults.iter().filter(|(k, _)| !set_by_extra(k)) {
            out.push_str(&format!("{k} = {v}\n"));
        }
        out.push_str(extra);
        out.push('\n');
        out
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn person(uid: &str, cn: &str, given: &str, sn: &str, mail: Option<&str>, groups: &[&str]) -> String {
    let mut e = format!(
        "dn: uid={uid},ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\ngivenName: {given}\nsn: {sn}\nuserPassword: {}\n",
        ssha(&format!("{uid}-password"))
    );
    if let Some(m) = mail {
        e.push_str(&format!("mail: {m}\n"));
    }
    for g in groups {
        e.push_str(&format!("memberOf: cn={g},ou=groups,dc=example,dc=org\n"));
    }
    e
}

fn group(cn: &str, members: &[&str], member_of: &[&str]) -> String {
    let mut e = format!("dn: cn={cn},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: {cn}\n");
    for m in members {
        e.push_str(&format!("member: {m}\n"));
    }
    for g in member_of {
        e.push_str(&format!("memberOf: cn={g},ou=groups,dc=example,dc=org\n"));
    }
    e
}

fn seed_ldif() -> String {
    let p = |uid: &str| format!("uid={uid},ou=people,dc=example,dc=org");
    [
        "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n".to_string(),
        "dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n".into(),
        "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n".into(),
        "dn: ou=services,dc=example,dc=org\nobjectClass: organizationalUnit\nou: services\n".into(),
        format!(
            "dn: cn=fedgate,ou=services,dc=example,dc=org\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: fedgate\nuserPassword: {}\n",
            ssha("service-password")
        ),
        person("alice", "Alice Liddell", "Alice", "Liddell", Some("alice@example.org"), &["ai-admins", "staff"]),
        person("bob", "Bob Builder", "Bob", "Builder", Some("bob@example.org"), &["ai-researchers", "staff"]),
        person("carol", "Carol Nested", "Carol", "Nested", Some("carol@example.org"), &["ml-team", "staff"]),
        person("dave", "Dave Staff", "Dave", "Staff", Some("dave@example.org"), &["staff"]),
        person("nomail", "No Mail", "No", "Mail", None, &[]),
        group("ai-admins", &[&p("alice")], &[]),
        group("ai-researchers", &[&p("bob"), "cn=ml-team,ou=groups,dc=example,dc=org"], &[]),
        group("ml-team", &[&p("carol")], &["ai-researchers"]),
        group("staff", &[&p("alice"), &p("bob"), &p("carol"), &p("dave")], &[]),
    ]
    .join("\n")
}

fn ad_ldif() -> String {
    let base = "dc=corp,dc=example";
    let guid = |n: u8| base64::engine::general_purpose::STANDARD.encode([n; 16].map(|b| b.wrapping_add(0x10)));
    let user = |name: &str, n: u8, uac: u32, expires: &str, groups: &[&str]| {
        let mut e = format!(
            "dn: cn={name},cn=Users,{base}\nobjectClass: user\ncn: {name}\nsn: {name}\ngivenName: {name}\ndisplayName: {name} (AD)\nsAMAccountName: {name}\nuserPrincipalName: {name}@corp.example\nmail: {name}@corp.example\nobjectCategory: person\nuserAccountControl: {uac}\naccountExpires: {expires}\nobjectGUID:: {}\nuserPassword: {}\n",
            guid(n),
            ssha(&format!("{name}-password"))
        );
        for g in groups {
            e.push_str(&format!("memberOf: cn={g},cn=Users,{base}\n"));
        }
        e
    };
    // 2020-01-01 as a Windows FILETIME.
    let past = ((1_577_836_800i64 + 11_644_473_600) * 10_000_000).to_string();
    [
        format!("dn: {base}\nobjectClass: dcObject\nobjectClass: organization\no: Corp\ndc: corp\n"),
        format!("dn: cn=Users,{base}\nobjectClass: organizationalRole\ncn: Users\n"),
        format!("dn: ou=services,{base}\nobjectClass: organizationalUnit\nou: services\n"),
        format!(
            "dn: cn=fedgate,ou=services,{base}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: fedgate\nuserPassword: {}\n",
            ssha("service-password")
        ),
        user("jdoe", 1, 512, "0", &["AI Admins"]),
        user("disabled", 2, 514, "0", &["AI Admins"]),
        user("expired", 3, 512, &past, &["AI Admins"]),
        format!("dn: cn=AI Admins,cn=Users,{base}\nobjectClass: group\ncn: AI Admins\nmember: cn=jdoe,cn=Users,{base}\n"),
    ]
    .join("\n")
}
