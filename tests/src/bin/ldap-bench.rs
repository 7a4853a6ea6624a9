//! Benchmark helper for scripts/bench (not a test):
//!   ldap-bench serve N            start the test slapd with N bulk users, print its [ldap] section as JSON, and
//!                                 keep it running until standard input closes
//!   ldap-bench ceiling URL BASE_DN SERVICE_DN SERVICE_PW N CONC SECS
//!                                 the raw LDAP ceiling for what one login needs (search as the service account,
//!                                 then bind as the user) with CONC concurrent workers on pooled connections
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::slapd::{Slapd, SlapdOptions};
use ldap3::{LdapConnAsync, Scope, SearchEntry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1000);
            let slapd = Slapd::start_with(SlapdOptions { bulk_users: n, ..Default::default() })?;
            println!(
                "{}",
                serde_json::json!({ "pid": slapd.pid(), "url": slapd.url(), "base": slapd.base_dn(), "service_dn": slapd.service_dn(), "service_pw": "service-password", "toml": slapd.ldap_toml("pool_size = 32") })
            );
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            drop(slapd);
            Ok(())
        }
        Some("ceiling") => {
            let [url, base, sdn, spw, n, conc, secs] =
                <[String; 7]>::try_from(args[2..9].to_vec()).map_err(|_| anyhow::anyhow!("arguments"))?;
            let (n, conc, secs): (u64, usize, u64) = (n.parse()?, conc.parse()?, secs.parse()?);
            let done = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut tasks = Vec::new();
            for w in 0..conc {
                let (url, base, sdn, spw, done) = (url.clone(), base.clone(), sdn.clone(), spw.clone(), done.clone());
                tasks.push(tokio::spawn(async move {
                    let (c1, mut search) = LdapConnAsync::new(&url).await?;
                    ldap3::drive!(c1);
                    let (c2, mut bind) = LdapConnAsync::new(&url).await?;
                    ldap3::drive!(c2);
                    search.simple_bind(&sdn, &spw).await?.success()?;
                    let mut i = w as u64;
                    while Instant::now() < deadline {
                        i = (i * 7919 + 13) % n + 1;
                        let filter = format!("(&(objectClass=inetOrgPerson)(uid=user{i}))");
                        let (entries, _) = search
                            .search(&format!("ou=people,{base}"), Scope::OneLevel, &filter, vec!["*", "entryUUID"])
                            .await?
                            .success()?;
                        let dn = entries
                            .into_iter()
                            .next()
                            .map(|e| SearchEntry::construct(e).dn)
                            .ok_or_else(|| anyhow::anyhow!("user{i} missing"))?;
                        bind.simple_bind(&dn, &format!("pw-{i}")).await?.success()?;
                        // The groups search a login also does.
                        let gf = format!("(&(objectClass=groupOfNames)(member={}))", ldap3::ldap_escape(&dn));
                        search
                            .search(&format!("ou=groups,{base}"), Scope::Subtree, &gf, vec!["cn"])
                            .await?
                            .success()?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            println!(
                "{}",
                serde_json::json!({ "logins": done.load(Ordering::Relaxed), "secs": secs, "rate": done.load(Ordering::Relaxed) as f64 / secs as f64 })
            );
            Ok(())
        }
        _ => anyhow::bail!("usage: ldap-bench serve N | ldap-bench ceiling URL BASE SERVICE_DN SERVICE_PW N CONC SECS"),
    }
}
