//! Writing TOML by hand, so the generated `config.toml` keeps its section order and explanatory comments; every
//! value goes through the `toml` crate's own quoting.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A TOML string literal.
pub fn s(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// `text` for a comment line: comments quote names from the export (client ids, provider names), which may hold
/// newlines; each control character is written escaped (`\n`), so nothing in a name can end the comment and
/// become configuration.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A TOML array of strings.
pub fn arr<S: AsRef<str>>(values: &[S]) -> String {
    format!("[{}]", values.iter().map(|v| s(v.as_ref())).collect::<Vec<_>>().join(", "))
}

/// An inline table of strings, keys quoted.
pub fn inline(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "{}".into();
    }
    format!("{{ {} }}", map.iter().map(|(k, v)| format!("{} = {}", s(k), s(v))).collect::<Vec<_>>().join(", "))
}

/// A duration in seconds as humantime (`"90s"`, `"5m"`, `"12h"`).
pub fn duration(seconds: u64) -> String {
    let text = if seconds != 0 && seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds != 0 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    };
    s(&text)
}

/// A section being written.
#[derive(Default)]
pub struct Section {
    out: String,
}

impl Section {
    /// Starts `[name]` (or `[[name]]` when `array`), with comment lines above it (each kept to one line).
    pub fn new(header: &str, comments: &[&str]) -> Self {
        let mut out = String::new();
        for c in comments {
            let _ = writeln!(out, "# {}", one_line(c));
        }
        let _ = writeln!(out, "{header}");
        Self { out }
    }

    /// `key = value` (value already TOML).
    pub fn kv(&mut self, key: &str, value: impl AsRef<str>) -> &mut Self {
        let _ = writeln!(self.out, "{key} = {}", value.as_ref());
        self
    }

    /// Lines already in TOML.
    pub fn raw(&mut self, text: &str) -> &mut Self {
        self.out.push_str(text);
        self
    }

    /// A comment line.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.out, "# {}", one_line(text));
        self
    }

    /// The text, with a blank line after it.
    pub fn finish(mut self) -> String {
        self.out.push('\n');
        self.out
    }
}
