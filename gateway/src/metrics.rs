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

/// The gateway's counters. Cheap to update from every request.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    events: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut h) = self.latency.lock() {
            let h = h.entry(route.to_string()).or_default();
            let secs = elapsed.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// Counts an event such as a login outcome (`fedgate_events_total{event="login",outcome="success"}`).
    pub fn event(&self, event: &'static str, outcome: &str) {
        if let Ok(mut m) = self.events.lock() {
            *m.entry((event, outcome.to_string())).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, sessions: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP fedgate_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE fedgate_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, method, status), n) in m.iter() {
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
        if let Ok(h) = self.latency.lock() {
            for (route, h) in h.iter() {
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
        out.push_str("# HELP fedgate_sessions Live sessions in the session store.\n# TYPE fedgate_sessions gauge\n");
        let _ = writeln!(out, "fedgate_sessions {sessions}");
        out
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
