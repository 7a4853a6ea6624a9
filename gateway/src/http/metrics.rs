//! Request metrics in Prometheus text format: counts per route, method and status, and latency histograms per route.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters of one route: requests by (method, status) and the latency histogram.
#[derive(Default)]
struct RouteStats {
    requests: BTreeMap<(String, u16), u64>,
    latency: Histogram,
}

/// Request counters are kept in this many shards, one picked per thread, so that worker threads do not contend for
/// one lock on every request; `/metrics` adds them up.
const SHARDS: usize = 8;

/// The shard of the calling thread.
fn shard() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// What a SCIM sync run reports to the metrics (the provisioning module's report, reduced to counts).
#[derive(Debug, Clone, Copy)]
pub struct ScimRun<'a> {
    /// Target name.
    pub target: &'a str,
    /// The run went to its end (it may still have failed for single users).
    pub completed: bool,
    /// Users created or adopted.
    pub created: u64,
    /// Users updated.
    pub updated: u64,
    /// Users deactivated or deleted.
    pub deprovisioned: u64,
    /// Users that failed.
    pub failed: u64,
}

/// The gateway's counters. Updating them from a request allocates nothing once a route has been seen.
#[derive(Default)]
pub struct Metrics {
    routes: [Mutex<std::collections::HashMap<String, RouteStats>>; SHARDS],
    events: Mutex<BTreeMap<(&'static str, String), u64>>,
    scim: Mutex<BTreeMap<String, ScimStats>>,
}

/// Provisioning counters of one SCIM target.
#[derive(Default)]
struct ScimStats {
    last_success: Option<i64>,
    runs_ok: u64,
    runs_failed: u64,
    created: u64,
    updated: u64,
    deprovisioned: u64,
    failed: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let Ok(mut routes) = self.routes[shard()].lock() else { return };
        let stats = match routes.get_mut(route) {
            Some(s) => s,
            None => routes.entry(route.to_string()).or_default(),
        };
        match stats.requests.iter_mut().find(|((m, s), _)| m == method && *s == status) {
            Some((_, n)) => *n += 1,
            None => {
                stats.requests.insert((method.to_string(), status), 1);
            }
        }
        let h = &mut stats.latency;
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts an event such as a login outcome (`fedgate_events_total{event="login",outcome="success"}`).
    pub fn event(&self, event: &'static str, outcome: &str) {
        if let Ok(mut m) = self.events.lock() {
            *m.entry((event, outcome.to_string())).or_default() += 1;
        }
    }

    /// Records a finished SCIM sync that started at Unix time `started`.
    pub fn scim_run(&self, run: &ScimRun<'_>, started: i64) {
        if let Ok(mut m) = self.scim.lock() {
            let s = m.entry(run.target.to_string()).or_default();
            if run.completed {
                s.last_success = Some(started);
                s.runs_ok += 1;
            } else {
                s.runs_failed += 1;
            }
            s.created += run.created;
            s.updated += run.updated;
            s.deprovisioned += run.deprovisioned;
            s.failed += run.failed;
        }
    }

    /// Records a SCIM sync that stopped before changing anything.
    pub fn scim_failed(&self, target: &str) {
        if let Ok(mut m) = self.scim.lock() {
            m.entry(target.to_string()).or_default().runs_failed += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, sessions: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP fedgate_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE fedgate_http_requests_total counter\n");
        let mut merged: BTreeMap<String, RouteStats> = BTreeMap::new();
        for shard in &self.routes {
            let Ok(routes) = shard.lock() else { continue };
            for (route, stats) in routes.iter() {
                let m = merged.entry(route.clone()).or_default();
                for (k, n) in &stats.requests {
                    *m.requests.entry(k.clone()).or_default() += n;
                }
                for (i, c) in stats.latency.counts.iter().enumerate() {
                    m.latency.counts[i] += c;
                }
                m.latency.count += stats.latency.count;
                m.latency.sum += stats.latency.sum;
            }
        }
        let sorted: Vec<(&String, &RouteStats)> = merged.iter().collect();
        for (route, stats) in &sorted {
            for ((method, status), n) in &stats.requests {
                let _ = writeln!(
                    out,
                    "fedgate_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    label(route),
                    label(method)
                );
            }
        }
        out.push_str("# HELP fedgate_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE fedgate_http_request_duration_seconds histogram\n");
        {
            for (route, stats) in &sorted {
                let h = &stats.latency;
                let r = label(route);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "fedgate_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "fedgate_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "fedgate_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
                let _ = writeln!(out, "fedgate_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
            }
        }
        out.push_str("# HELP fedgate_events_total Security-relevant events by outcome.\n");
        out.push_str("# TYPE fedgate_events_total counter\n");
        if let Ok(m) = self.events.lock() {
            for ((event, outcome), n) in m.iter() {
                let _ = writeln!(out, "fedgate_events_total{{event=\"{event}\",outcome=\"{}\"}} {n}", label(outcome));
            }
        }
        if let Ok(m) = self.scim.lock()
            && !m.is_empty()
        {
            out.push_str(
                "# HELP fedgate_scim_last_success_timestamp_seconds Start of the last SCIM sync that completed.\n",
            );
            out.push_str("# TYPE fedgate_scim_last_success_timestamp_seconds gauge\n");
            for (t, s) in m.iter() {
                if let Some(ts) = s.last_success {
                    let _ =
                        writeln!(out, "fedgate_scim_last_success_timestamp_seconds{{target=\"{}\"}} {ts}", label(t));
                }
            }
            out.push_str(
                "# HELP fedgate_scim_runs_total SCIM sync runs by outcome.\n# TYPE fedgate_scim_runs_total counter\n",
            );
            out.push_str("# HELP fedgate_scim_users_total Users provisioned by action.\n# TYPE fedgate_scim_users_total counter\n");
            for (t, s) in m.iter() {
                let t = label(t);
                let _ = writeln!(out, "fedgate_scim_runs_total{{target=\"{t}\",outcome=\"ok\"}} {}", s.runs_ok);
                let _ = writeln!(out, "fedgate_scim_runs_total{{target=\"{t}\",outcome=\"failed\"}} {}", s.runs_failed);
                for (action, n) in [
                    ("created", s.created),
                    ("updated", s.updated),
                    ("deprovisioned", s.deprovisioned),
                    ("failed", s.failed),
                ] {
                    let _ = writeln!(out, "fedgate_scim_users_total{{target=\"{t}\",action=\"{action}\"}} {n}");
                }
            }
        }
        out.push_str("# HELP fedgate_sessions Live sessions in the session store.\n# TYPE fedgate_sessions gauge\n");
        let _ = writeln!(out, "fedgate_sessions {sessions}");
        out
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_add_up() {
        let m = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        m.observe("/app", "GET", 200, Duration::from_micros(300));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render(0);
        assert!(
            text.contains("fedgate_http_requests_total{route=\"/app\",method=\"GET\",status=\"200\"} 1200\n"),
            "{text}"
        );
        assert!(text.contains("fedgate_http_request_duration_seconds_count{route=\"/app\"} 1200\n"), "{text}");
        assert!(text.contains("fedgate_http_request_duration_seconds_bucket{route=\"/app\",le=\"0.0005\"} 1200\n"));
    }
}
