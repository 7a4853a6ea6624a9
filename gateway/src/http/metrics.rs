//! The gateway's metrics, kept in `prometheus-client` types in one [`Registry`] and encoded by that crate as the
//! Prometheus text format (0.0.4) or OpenMetrics 1.0 ([`Format`]): requests and latency per route, security events
//! by outcome, SCIM sync runs and users, live sessions. The encoder writes each family as one group (`# HELP`,
//! `# TYPE`, then all its samples), as both formats require.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4: what every scraper reads, and the default.
    Text,
    /// OpenMetrics 1.0 text, for a client that asks for it in `Accept` (Prometheus does).
    OpenMetrics,
}

impl Format {
    /// The format a client's `Accept` header asks for: the media range with the highest `q` that names one of
    /// ours (`application/openmetrics-text`, `text/plain`, `*/*`), else [`Format::Text`].
    pub fn negotiate(accept: Option<&str>) -> Self {
        let mut best = (0.0f32, Self::Text);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let format = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                Some("application/openmetrics-text") => Self::OpenMetrics,
                Some("text/plain" | "text/*" | "*/*") => Self::Text,
                _ => continue,
            };
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            // Equal preference goes to the first named, as clients list what they like best first.
            if q > best.0 {
                best = (q, format);
            }
        }
        best.1
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Encoding the metrics failed (the encoder refused a metric; writing into memory itself cannot fail).
#[derive(Debug, thiserror::Error)]
#[error("encoding the metrics failed")]
pub struct EncodeError(#[from] std::fmt::Error);

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: Box<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    target: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabels {
    target: Arc<str>,
    action: &'static str,
}

/// A route's metric handles as one shard keeps them: the latency histogram and a counter per (method, status)
/// seen. They are clones of the registry's metrics (one shared count each), so a request that finds its handles
/// here costs a lookup by route, a short scan and two updates, never the family's lock and label hashing.
struct RouteHandles {
    route: Arc<str>,
    latency: Histogram,
    requests: Vec<(Box<str>, u16, Counter)>,
}

/// Route handles are cached in this many shards, one picked per thread, so that worker threads do not contend for
/// one lock on every request.
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

/// The latency histogram of a new route.
fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The gateway's metrics. Recording a request allocates nothing once its thread's shard has seen the route, method
/// and status.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    events: Family<EventLabels, Counter>,
    scim_last_success: Family<TargetLabels, Gauge>,
    scim_runs: Family<RunLabels, Counter>,
    scim_users: Family<UserLabels, Counter>,
    sessions: Gauge,
    routes: [Mutex<HashMap<Box<str>, RouteHandles>>; SHARDS],
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let events = Family::default();
        let scim_last_success = Family::default();
        let scim_runs = Family::default();
        let scim_users = Family::default();
        let sessions = Gauge::default();
        // Counter names go in without `_total`: the encoder adds it (`fedgate_http_requests_total`). The help
        // texts get their final full stop from the registry.
        let mut registry = Registry::default();
        registry.register("fedgate_http_requests", "HTTP requests by route, method and status", requests.clone());
        registry.register("fedgate_http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        registry.register("fedgate_events", "Security-relevant events by outcome", events.clone());
        registry.register(
            "fedgate_scim_last_success_timestamp_seconds",
            "Start of the last SCIM sync that completed",
            scim_last_success.clone(),
        );
        registry.register("fedgate_scim_runs", "SCIM sync runs by outcome", scim_runs.clone());
        registry.register("fedgate_scim_users", "Users provisioned by action", scim_users.clone());
        registry.register("fedgate_sessions", "Live sessions in the session store", sessions.clone());
        Self {
            registry,
            requests,
            latency,
            events,
            scim_last_success,
            scim_runs,
            scim_users,
            sessions,
            routes: Default::default(),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Records one finished request: `fedgate_http_requests_total{route,method,status}` and
    /// `fedgate_http_request_duration_seconds{route}`.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let Ok(mut routes) = self.routes[shard()].lock() else { return };
        let handles = match routes.get_mut(route) {
            Some(h) => h,
            None => routes.entry(route.into()).or_insert_with(|| {
                let route: Arc<str> = route.into();
                let latency = self.latency.get_or_create_owned(&RouteLabels { route: route.clone() });
                RouteHandles { route, latency, requests: Vec::new() }
            }),
        };
        match handles.requests.iter().find(|(m, s, _)| **m == *method && *s == status) {
            Some((_, _, requests)) => {
                requests.inc();
            }
            None => {
                let labels = RequestLabels { route: handles.route.clone(), method: method.into(), status };
                let requests = self.requests.get_or_create_owned(&labels);
                requests.inc();
                handles.requests.push((labels.method, status, requests));
            }
        }
        handles.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts an event such as a login outcome (`fedgate_events_total{event="login",outcome="success"}`).
    pub fn event(&self, event: &'static str, outcome: &str) {
        self.events.get_or_create(&EventLabels { event, outcome: outcome.to_owned() }).inc();
    }

    /// The SCIM series of `target`, each present (at zero) from the target's first run on.
    fn scim_target(&self, target: &str) -> Arc<str> {
        let target: Arc<str> = target.into();
        for outcome in ["ok", "failed"] {
            self.scim_runs.get_or_create(&RunLabels { target: target.clone(), outcome }).inc_by(0);
        }
        for action in ["created", "updated", "deprovisioned", "failed"] {
            self.scim_users.get_or_create(&UserLabels { target: target.clone(), action }).inc_by(0);
        }
        target
    }

    /// Records a finished SCIM sync that started at Unix time `started`.
    pub fn scim_run(&self, run: &ScimRun<'_>, started: i64) {
        let target = self.scim_target(run.target);
        let outcome = if run.completed { "ok" } else { "failed" };
        self.scim_runs.get_or_create(&RunLabels { target: target.clone(), outcome }).inc();
        for (action, n) in [
            ("created", run.created),
            ("updated", run.updated),
            ("deprovisioned", run.deprovisioned),
            ("failed", run.failed),
        ] {
            self.scim_users.get_or_create(&UserLabels { target: target.clone(), action }).inc_by(n);
        }
        if run.completed {
            self.scim_last_success.get_or_create(&TargetLabels { target }).set(started);
        }
    }

    /// Records a SCIM sync that stopped before changing anything.
    pub fn scim_failed(&self, target: &str) {
        let target = self.scim_target(target);
        self.scim_runs.get_or_create(&RunLabels { target, outcome: "failed" }).inc();
    }

    /// Every metric in `format`, with `sessions` as the live session count.
    pub fn render(&self, sessions: u64, format: Format) -> Result<String, EncodeError> {
        self.sessions.set(i64::try_from(sessions).unwrap_or(i64::MAX));
        let mut out = String::new();
        match format {
            Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?,
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &self.registry)?,
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_add_up() {
        let m = Arc::new(Metrics::default());
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
        let text = m.render(0, Format::Text).unwrap();
        assert!(
            text.contains("fedgate_http_requests_total{route=\"/app\",method=\"GET\",status=\"200\"} 1200\n"),
            "{text}"
        );
        assert!(text.contains("fedgate_http_request_duration_seconds_count{route=\"/app\"} 1200\n"), "{text}");
        assert!(text.contains("fedgate_http_request_duration_seconds_bucket{route=\"/app\",le=\"0.0005\"} 1200\n"));
        assert!(text.contains("fedgate_http_request_duration_seconds_bucket{route=\"/app\",le=\"0.001\"} 1200\n"));
    }

    /// Every family is one group: its `# HELP` and `# TYPE` once, then all its samples, nothing of another family
    /// in between (the old hand-written SCIM block interleaved three families).
    #[test]
    fn each_family_is_one_group_in_both_formats() {
        let m = Metrics::default();
        m.observe("/login", "POST", 303, Duration::from_millis(3));
        m.observe("proxy */", "GET", 200, Duration::from_millis(1));
        m.event("login", "success");
        let run =
            |target, completed| ScimRun { target, completed, created: 2, updated: 1, deprovisioned: 0, failed: 0 };
        m.scim_run(&run("a", true), 1_700_000_000);
        m.scim_run(&run("b", false), 1_700_000_100);
        m.scim_failed("c");
        for format in [Format::Text, Format::OpenMetrics] {
            let text = m.render(3, format).unwrap();
            let mut seen: Vec<&str> = Vec::new();
            let mut family = "";
            for line in text.lines() {
                let name = match line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")) {
                    Some(rest) => rest.split(' ').next().unwrap(),
                    None if line == "# EOF" => continue,
                    None => {
                        let sample = line.split(['{', ' ']).next().unwrap();
                        assert!(sample.starts_with(family), "{sample} outside its family {family}:\n{text}");
                        continue;
                    }
                };
                if name != family {
                    assert!(!seen.contains(&name), "{name} appears twice:\n{text}");
                    seen.push(name);
                    family = name;
                }
            }
            assert_eq!(seen.len(), 7, "{text}");
        }
        let text = m.render(3, Format::Text).unwrap();
        for line in [
            "# TYPE fedgate_http_requests_total counter",
            "fedgate_events_total{event=\"login\",outcome=\"success\"} 1",
            "fedgate_scim_last_success_timestamp_seconds{target=\"a\"} 1700000000",
            "fedgate_scim_runs_total{target=\"b\",outcome=\"failed\"} 1",
            "fedgate_scim_runs_total{target=\"b\",outcome=\"ok\"} 0",
            "fedgate_scim_runs_total{target=\"c\",outcome=\"failed\"} 1",
            "fedgate_scim_users_total{target=\"c\",action=\"deprovisioned\"} 0",
            "fedgate_scim_users_total{target=\"a\",action=\"created\"} 2",
            "fedgate_sessions 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("fedgate_scim_last_success_timestamp_seconds{target=\"b\"}"), "{text}");
        let om = m.render(3, Format::OpenMetrics).unwrap();
        assert!(om.ends_with("# EOF\n") && om.contains("# TYPE fedgate_http_requests counter\n"), "{om}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.event("saml_response", "sp \"quoted\" \\ back\nslash");
        let text = m.render(0, Format::Text).unwrap();
        assert!(text.contains(r#"outcome="sp \"quoted\" \\ back\nslash"} 1"#), "{text}");
    }

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::Text);
        // What Prometheus sends.
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;\
                          version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text")), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/json")), Format::Text);
    }
}
