//! `/metrics` read by an independent parser: the official Python client's (`prometheus_client` in tests/.venv,
//! driven by `tests/metrics_check.py`), which also checks that every family is one group. A missing venv is a loud
//! failure.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

/// The exposition formats `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// A parsed exposition: family name (as the parser names it: counters without `_total`) → type, help, samples.
#[derive(Debug)]
pub struct Exposition(Map<String, Value>);

/// Parses `text` in `format` and checks that each family is one group; the error names every problem found.
pub fn parse(text: &str, format: Format) -> anyhow::Result<Exposition> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = root.join(".venv/bin/python");
    if !py.exists() {
        bail!("{} missing: run scripts/setup (python venv with prometheus-client)", py.display());
    }
    let mut child = Command::new(py)
        .arg(root.join("metrics_check.py"))
        .arg(match format {
            Format::Text => "text",
            Format::OpenMetrics => "openmetrics",
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting metrics_check.py")?;
    child.stdin.take().context("no stdin")?.write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{format:?} exposition refused:\n{}\n--- the exposition:\n{text}", String::from_utf8_lossy(&out.stderr));
    }
    match serde_json::from_slice(&out.stdout)? {
        Value::Object(families) => Ok(Exposition(families)),
        other => bail!("metrics_check.py printed {other}"),
    }
}

impl Exposition {
    /// The type of family `name` (`counter`, `gauge`, `histogram`, …), if it is there.
    pub fn family_type(&self, name: &str) -> Option<&str> {
        self.0.get(name)?["type"].as_str()
    }

    /// The value of the sample called `sample` whose labels include all of `labels`, if exactly one matches.
    pub fn value(&self, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found =
            self.0.values().flat_map(|f| f["samples"].as_array().into_iter().flatten()).filter(|s| {
                s[0] == sample && labels.iter().all(|(k, v)| s[1].get(*k).and_then(Value::as_str) == Some(*v))
            });
        let first = found.next()?;
        if found.next().is_some() {
            return None;
        }
        first[2].as_f64()
    }

    /// The label sets of the samples called `sample`.
    pub fn label_sets(&self, sample: &str) -> Vec<&Map<String, Value>> {
        self.0
            .values()
            .flat_map(|f| f["samples"].as_array().into_iter().flatten())
            .filter(|s| s[0] == sample)
            .filter_map(|s| s[1].as_object())
            .collect()
    }
}
