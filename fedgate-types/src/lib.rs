//! The few small types both fedgate libraries (`federation`, `ldap-mapper`) and the gateway share, so each exists
//! once: a [`Secret`] string that never shows in `Debug`, a [`ConfigIssue`] a configuration check reports, and
//! unguessable [`random`] tokens with a constant-time comparison.
//!
//! This crate sits below both libraries, which must stay independent of each other; it knows nothing of HTTP,
//! configuration loading (figment) or log output (tracing-subscriber).

pub mod config_issue;
pub mod random;
pub mod secret;

pub use config_issue::ConfigIssue;
pub use random::secure_eq;
pub use secret::{Secret, SecretFileError};
