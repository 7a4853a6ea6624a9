//! LDAP and Active Directory access for fedgate.
//!
//! Binds users against the directory, searches under a configurable Users DN, and maps one entry (attributes,
//! groups) to one [`MappedUser`], with groups turned into roles by a [`RoleMap`]. No HTTP, no tokens.

pub mod ad;
pub mod client;
pub mod config;
pub mod directory;
pub mod dn;
pub mod error;
pub mod filter;
pub mod mapping;
pub mod roles;
pub mod subject;
pub mod user;

pub use config::{ConfigIssue, LdapConfig, Preset, Secret};
pub use directory::{LdapDirectory, LoginTarget, ProbeReport};
pub use error::{Error, Result};
pub use roles::RoleMap;
pub use user::MappedUser;
