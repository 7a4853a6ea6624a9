//! `IMPORT-REPORT.md`: every finding of a conversion, by how much it matters, each with what to do.

use std::fmt::Write as _;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The cut-over would break something until the admin acts (the command exits 2).
    Blocking,
    /// Works, but differently from Keycloak, or needs a decision.
    Attention,
    /// A Keycloak feature fedgate does not have; it was left out.
    Unsupported,
    /// Converted; said for the record.
    Converted,
}

impl Severity {
    fn heading(self) -> &'static str {
        match self {
            Self::Blocking => "Blocking: fix before switching",
            Self::Attention => "Needs attention",
            Self::Unsupported => "Not supported by fedgate (left out)",
            Self::Converted => "Converted",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// Where in the export (`client app`, `LDAP provider ldap`, `realm`).
    pub subject: String,
    /// What was found.
    pub what: String,
    /// What the admin should do (empty for converted items).
    pub action: String,
}

/// The findings of one conversion.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The realm's name.
    pub realm: String,
    /// Every finding, in the order found.
    pub findings: Vec<Finding>,
    /// Files written, relative to the output directory, with what each is.
    pub files: Vec<(String, String)>,
}

impl Report {
    /// Adds a finding.
    pub fn add(&mut self, severity: Severity, subject: impl Into<String>, what: impl Into<String>, action: &str) {
        self.findings.push(Finding {
            severity,
            subject: subject.into(),
            what: what.into(),
            action: action.to_string(),
        });
    }

    /// Whether anything blocks a cut-over.
    pub fn blocking(&self) -> usize {
        self.count(Severity::Blocking)
    }

    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Keycloak import report: realm `{}`\n", self.realm);
        let _ = writeln!(
            out,
            "{} blocking, {} to review, {} not supported, {} converted. {}\n",
            self.blocking(),
            self.count(Severity::Attention),
            self.count(Severity::Unsupported),
            self.count(Severity::Converted),
            if self.blocking() == 0 {
                "Nothing blocks the cut-over; read the items to review, then run `fedgate check-config`."
            } else {
                "Fix every blocking item, then run `fedgate check-config --config config.toml` and import again or \
                 edit config.toml."
            }
        );
        for severity in [Severity::Blocking, Severity::Attention, Severity::Unsupported, Severity::Converted] {
            let items: Vec<_> = self.findings.iter().filter(|f| f.severity == severity).collect();
            if items.is_empty() {
                continue;
            }
            let _ = writeln!(out, "## {}\n", severity.heading());
            for f in items {
                if f.action.is_empty() {
                    let _ = writeln!(out, "- **{}**: {}", f.subject, f.what);
                } else {
                    let _ = writeln!(out, "- **{}**: {}\n  → {}", f.subject, f.what, f.action);
                }
            }
            out.push('\n');
        }
        if !self.files.is_empty() {
            let _ = writeln!(out, "## Files written\n");
            for (path, what) in &self.files {
                let _ = writeln!(out, "- `{path}`: {what}");
            }
            out.push('\n');
        }
        out
    }
}
