//! Turning everything wrong with a configuration into one list a person can act on: unknown keys (with the
//! nearest known key), values of the wrong type (with the expected form), and semantic problems from `validate()`.
//! Secrets are never echoed.

use std::fmt;

use figment::Figment;
use figment::error::{Actual, Kind};
use serde_json::Value;

use super::Config;

/// One problem: the key path, the bad value (redacted for secrets), what is wrong, the fix, and where the value
/// came from. The same type the libraries report their sections' problems in.
pub use fedgate_types::ConfigIssue;

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<ConfigIssue>,
}

impl ConfigError {
    /// An error with one problem.
    pub fn single(problem: ConfigIssue) -> Self {
        Self { problems: vec![problem] }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "invalid configuration ({n} problem{}):", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            writeln!(f, "  - {p:#}")?;
        }
        Ok(())
    }
}

/// Extracts and validates; collects unknown keys, type errors (one per section) and `validate()` problems.
pub(super) fn load_figment(figment: &Figment) -> Result<Config, ConfigError> {
    let mut problems = unknown_keys(figment);
    let mut config = Config::default();
    // Extract section by section so that a bad value in one section does not hide problems in the others.
    let data: Value = match figment.extract() {
        Ok(v) => v,
        Err(e) => {
            problems.extend(from_figment_error(figment, e, ""));
            return Err(ConfigError { problems });
        }
    };
    let mut typed_ok = true;
    if let Value::Object(map) = &data {
        for section in map.keys() {
            if let Err(e) = extract_section(figment, section, &mut config) {
                typed_ok = false;
                problems.extend(from_figment_error(figment, *e, section));
            }
        }
    }
    if typed_ok {
        problems.extend(config.validate());
    }
    if problems.is_empty() { Ok(config) } else { Err(ConfigError { problems }) }
}

fn extract_section(figment: &Figment, section: &str, config: &mut Config) -> Result<(), Box<figment::Error>> {
    macro_rules! sections {
        ($($name:ident),*) => {
            match section {
                $(stringify!($name) => config.$name = figment.extract_inner(section).map_err(Box::new)?,)*
                _ => {} // unknown sections are reported by `unknown_keys`
            }
        };
    }
    sections!(
        server, log, directory, roles, session, login, ui, store, oidc, ldap, saml, proxy, scim, keycloak, upstream
    );
    Ok(())
}

fn from_figment_error(figment: &Figment, err: figment::Error, section: &str) -> Vec<ConfigIssue> {
    err.into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            if !section.is_empty() {
                // figment reports `extract_inner` paths with the section appended; put it in front, once.
                if path.len() > 1 && path.last().map(String::as_str) == Some(section) {
                    path.pop();
                }
                if path.first().map(String::as_str) != Some(section) {
                    path.insert(0, section.to_string());
                }
            }
            let key = path.join(".");
            let source = e.metadata.as_ref().map(|m| describe_source(m, &key));
            let (value, problem, fix) = describe_kind(&key, &e.kind);
            let value = value.or_else(|| {
                figment
                    .find_value(&key)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string).or_else(|| Some(format!("{v:?}"))))
            });
            let mut p = ConfigIssue::new(if key.is_empty() { "(file)".into() } else { key }, value, problem, fix);
            p.source = source.or_else(|| figment.find_metadata(&p.key).map(|m| describe_source(m, &p.key)));
            p
        })
        .collect()
}

fn describe_kind(key: &str, kind: &Kind) -> (Option<String>, String, String) {
    let hint = fix_hint(key);
    match kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => (
            actual_value(actual),
            format!("invalid value: expected {expected}"),
            hint.unwrap_or_else(|| format!("set it to {expected}")),
        ),
        Kind::UnknownVariant(got, expected) => {
            (Some(got.clone()), "not one of the allowed values".into(), format!("use one of: {}", expected.join(", ")))
        }
        Kind::MissingField(field) => {
            (None, format!("missing required key {field}"), format!("add {field} to this section"))
        }
        Kind::Message(msg) => {
            (None, msg.clone(), hint.unwrap_or_else(|| "see config.toml for the expected form".into()))
        }
        other => (None, other.to_string(), hint.unwrap_or_else(|| "see config.toml for the expected form".into())),
    }
}

fn actual_value(actual: &Actual) -> Option<String> {
    Some(match actual {
        Actual::Str(s) => s.clone(),
        Actual::Char(c) => c.to_string(),
        Actual::Bool(b) => b.to_string(),
        Actual::Signed(i) => i.to_string(),
        Actual::Unsigned(u) => u.to_string(),
        Actual::Float(f) => f.to_string(),
        other => other.to_string(),
    })
}

/// Key-specific advice for values that did not parse.
fn fix_hint(key: &str) -> Option<String> {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    if leaf == "listen" {
        return Some("use HOST:PORT, e.g. \"127.0.0.1:8080\" or \"[::]:8443\"".into());
    }
    if leaf.ends_with("url") || leaf.ends_with("urls") || leaf.ends_with("upstream") {
        return Some("use an absolute URL with a scheme, e.g. \"https://sso.example.com\"".into());
    }
    let durations = ["timeout", "ttl", "lockout", "window", "lifetime", "interval", "skew", "grace"];
    if durations.iter().any(|d| leaf.contains(d)) {
        return Some("use a duration like \"30s\", \"15m\" or \"12h\"".into());
    }
    None
}

fn describe_source(meta: &figment::Metadata, key: &str) -> String {
    match &meta.source {
        Some(figment::Source::File(path)) => format!("in {}", path.display()),
        _ if meta.name.contains("environment") => {
            format!("from environment variable {}{}", super::ENV_PREFIX, key.replace('.', "__").to_uppercase())
        }
        _ => meta.name.to_string(),
    }
}

/// Walks the merged configuration against the keys a fully populated default configuration serializes to, and
/// reports every key the gateway does not know, with the nearest known key.
fn unknown_keys(figment: &Figment) -> Vec<ConfigIssue> {
    let Ok(schema) = serde_json::to_value(Config::schema_sample()) else { return Vec::new() };
    let Ok(data) = figment.extract::<Value>() else { return Vec::new() };
    let mut all_known = Vec::new();
    collect_paths(&schema, "", &mut all_known);
    let mut out = Vec::new();
    walk(figment, &data, &schema, "", &all_known, &mut out);
    out
}

fn collect_paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (k, v) in map {
                let path = join(prefix, k);
                out.push(path.clone());
                collect_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                collect_paths(first, prefix, out);
            }
        }
        _ => {}
    }
}

fn walk(figment: &Figment, data: &Value, schema: &Value, prefix: &str, all: &[String], out: &mut Vec<ConfigIssue>) {
    match (data, schema) {
        // An empty object in the schema is a free-form map (e.g. `[roles]`, `[ldap.claims]`).
        (Value::Object(d), Value::Object(s)) if !s.is_empty() => {
            for (k, v) in d {
                let path = join(prefix, k);
                match s.get(k) {
                    Some(sv) => walk(figment, v, sv, &path, all, out),
                    None => out.push(unknown(figment, &path, k, s.keys(), all)),
                }
            }
        }
        (Value::Array(items), Value::Array(s)) => {
            if let Some(elem_schema) = s.first() {
                for (i, item) in items.iter().enumerate() {
                    walk(figment, item, elem_schema, &format!("{prefix}[{i}]"), all, out);
                }
            }
        }
        _ => {}
    }
}

fn unknown<'a>(
    figment: &Figment,
    path: &str,
    leaf: &str,
    siblings: impl Iterator<Item = &'a String>,
    all: &[String],
) -> ConfigIssue {
    let parent = path.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
    let sibling = siblings
        .map(|s| (strsim::jaro_winkler(leaf, s), s))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, s)| join(parent, s));
    // A known key of the same name in another section ("server.users_dn" → "ldap.users_dn").
    let elsewhere = || all.iter().find(|p| p.rsplit('.').next() == Some(leaf)).cloned();
    let fix = match sibling.or_else(elsewhere) {
        Some(s) => format!("did you mean {s}?"),
        None if parent.is_empty() => "remove it; known sections are listed in config.toml".into(),
        None => format!("remove it; see the [{parent}] section of config.toml for the known keys"),
    };
    let mut p = ConfigIssue::new(path, None, format!("unknown key {path}"), fix);
    let lookup = path.split('[').next().unwrap_or(path);
    p.source = figment.find_metadata(lookup).map(|m| describe_source(m, lookup));
    p
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}
