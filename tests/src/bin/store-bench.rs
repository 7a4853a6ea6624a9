//! Benchmark helper for scripts/bench (not a test): the embedded state store's crates measured directly, without
//! HTTP in the way, and a fast way to fill a store with sessions for the start-up measurement.
//!   store-bench fill ENGINE PATH N      N sessions written through the session store (64 at a time), then the
//!                                       process exits without closing the store, as after `kill -9`
//!   store-bench open ENGINE PATH        time to open a store (after `fill`: recovery after a crash)
//!   store-bench latency ENGINE PATH     per-write latency (one writer) and writes/s (16 concurrent writers)
//!   store-bench churn ENGINE PATH SECS RATE
//!                                       sessions with a 2 s TTL written for SECS by 16 writers, RATE per second in
//!                                       all (0: as fast as they go); disk use (allocated blocks) each second
//! ENGINE: fjall (fsync every 1 s) or fjall-always (fsync before each answer). The redb side of BENCHMARKS.md's
//! comparison was measured with this helper at commit 7b1ab2a, where redb was still in the tree.
//! Prints one JSON line.
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway::config::Fsync;
use gateway::domain::session::{AuthMethod, Lifetimes, Session, SessionStore as _};
use gateway::domain::store::KvStore;
use gateway::domain::store::embedded::EmbeddedKv;
use gateway::domain::store::sessions::KvSessionStore;

enum Store {
    Fjall(EmbeddedKv),
}

impl Store {
    fn open(engine: &str, path: &Path) -> anyhow::Result<Self> {
        Ok(match engine {
            "fjall" => Self::Fjall(EmbeddedKv::open(path, Fsync::Every(Duration::from_secs(1)))?),
            "fjall-always" => Self::Fjall(EmbeddedKv::open(path, Fsync::Always)?),
            other => anyhow::bail!("unknown engine {other:?}: fjall or fjall-always"),
        })
    }

    fn kv(&self) -> Arc<dyn KvStore> {
        match self {
            Self::Fjall(kv) => Arc::new(kv.clone()),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Self::Fjall(kv) => kv.disk_space().unwrap_or(0),
        }
    }
}

fn user(i: u64) -> ldap_mapper::MappedUser {
    ldap_mapper::MappedUser {
        username: format!("user{i}"),
        unique_id: format!("00000000-0000-4000-8000-{i:012}"),
        dn: format!("uid=user{i},ou=people,dc=example,dc=org"),
        email: Some(format!("user{i}@example.org")),
        display_name: Some(format!("User Number {i}")),
        given_name: Some("User".into()),
        family_name: Some(format!("Number {i}")),
        groups: vec!["staff".into(), "developers".into(), "vpn-users".into()],
        group_dns: Vec::new(),
        group_paths: vec!["/staff".into(), "/developers".into(), "/vpn-users".into()],
        saml_persistent_nameids: Default::default(),
        roles: vec!["user".into()],
        claims: Default::default(),
    }
}

/// Runs `writers` tasks that each call `op(i)` until `stop` says so; returns the operations done.
async fn hammer<F, Fut>(writers: u64, op: F, stop: impl Fn(u64) -> bool + Send + Sync + 'static) -> u64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let (op, stop, next) = (Arc::new(op), Arc::new(stop), Arc::new(AtomicU64::new(0)));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (op, stop, next) = (Arc::clone(&op), Arc::clone(&stop), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if stop(i) {
                        return Ok::<_, anyhow::Error>(());
                    }
                    op(i).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await.map_err(anyhow::Error::from).and_then(|r| r) {
            eprintln!("store-bench: {e:#}");
            std::process::exit(1);
        }
    }
    next.load(Ordering::Relaxed).saturating_sub(writers)
}

/// The bytes the files under `dir` occupy on the disk (allocated blocks, as `du` counts them): fjall sizes each new
/// journal file to 64 MiB sparsely, so file lengths would count space that holds nothing.
fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, engine, path, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: store-bench fill|open|latency|churn ENGINE PATH [N|SECS]");
    };
    let path = Path::new(path);
    let t0 = Instant::now();
    let store = Store::open(engine, path)?;
    let open_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let kv = store.kv();
    let lifetimes = Lifetimes { idle: Duration::from_secs(8 * 3600), absolute: Duration::from_secs(12 * 3600) };
    match mode.as_str() {
        "open" => println!("{{\"open_ms\":{open_ms:.2}}}"),
        "fill" => {
            let n: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(100_000);
            let sessions = Arc::new(KvSessionStore::new(Arc::clone(&kv), lifetimes, Duration::ZERO, 0));
            let t = Instant::now();
            let done = hammer(
                64,
                move |i| {
                    let sessions = Arc::clone(&sessions);
                    async move {
                        let s = Session::new(user(i), AuthMethod::Password, time::OffsetDateTime::now_utc());
                        sessions.insert(&fedgate_types::random::token(), s).await.map_err(anyhow::Error::from)
                    }
                },
                move |i| i >= n,
            )
            .await;
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"sessions\":{done},\"secs\":{secs:.2},\"per_sec\":{:.0},\"bytes\":{}}}",
                done as f64 / secs,
                store.bytes()
            );
            // Leave without closing the store, as a killed process would.
            std::process::exit(0);
        }
        "latency" => {
            let value = vec![0x5Au8; 700];
            let mut lat = Vec::with_capacity(2000);
            for i in 0..2000 {
                let t = Instant::now();
                kv.put(&format!("lat{i}"), value.clone(), Duration::from_secs(3600)).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            lat.sort_by(f64::total_cmp);
            let mean = lat.iter().sum::<f64>() / lat.len() as f64;
            let (p50, p99) = (lat[lat.len() / 2], lat[lat.len() * 99 / 100]);
            let t = Instant::now();
            let secs = 3.0;
            let kv2 = Arc::clone(&kv);
            let done = hammer(
                16,
                move |i| {
                    let (kv, value) = (Arc::clone(&kv2), vec![0x5Au8; 700]);
                    async move { kv.put(&format!("c{i}"), value, Duration::from_secs(3600)).await.map_err(Into::into) }
                },
                move |_| t.elapsed().as_secs_f64() > secs,
            )
            .await;
            let rate = done as f64 / t.elapsed().as_secs_f64();
            println!(
                "{{\"write_us_mean\":{mean:.0},\"write_us_p50\":{p50:.0},\"write_us_p99\":{p99:.0},\"writes_per_sec_16\":{rate:.0}}}"
            );
        }
        "churn" => {
            let secs: f64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(30.0);
            let rate: f64 = rest.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0.0);
            let sessions = Arc::new(KvSessionStore::new(
                Arc::clone(&kv),
                Lifetimes { idle: Duration::from_secs(2), absolute: Duration::from_secs(2) },
                Duration::ZERO,
                0,
            ));
            let t = Instant::now();
            let sizes = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
            let sampler = {
                let sizes = Arc::clone(&sizes);
                let dir = path.to_path_buf();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let b = allocated_bytes(&dir);
                        if let Ok(mut s) = sizes.lock() {
                            s.push(b);
                        }
                    }
                })
            };
            let done = hammer(
                16,
                move |i| {
                    let sessions = Arc::clone(&sessions);
                    async move {
                        if rate > 0.0 {
                            tokio::time::sleep_until((t + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                        }
                        let s = Session::new(user(i), AuthMethod::Password, time::OffsetDateTime::now_utc());
                        sessions.insert(&fedgate_types::random::token(), s).await.map_err(anyhow::Error::from)
                    }
                },
                move |_| t.elapsed().as_secs_f64() > secs,
            )
            .await;
            sampler.abort();
            let sizes = sizes.lock().map(|s| s.clone()).unwrap_or_default();
            let mb = |b: u64| b as f64 / 1e6;
            let max = sizes.iter().copied().max().unwrap_or(0);
            let last = sizes.last().copied().unwrap_or(0);
            let at = |frac: f64| sizes.get(((sizes.len() as f64) * frac) as usize).copied().unwrap_or(0);
            println!(
                "{{\"written\":{done},\"per_sec\":{:.0},\"mb_quarter\":{:.1},\"mb_half\":{:.1},\"mb_last\":{:.1},\"mb_max\":{:.1},\"live_at_end\":{}}}",
                done as f64 / secs,
                mb(at(0.25)),
                mb(at(0.5)),
                mb(last),
                mb(max),
                (done as f64 / secs * 2.0) as u64
            );
        }
        other => anyhow::bail!("unknown mode {other:?}"),
    }
    Ok(())
}
