//! fedgate's protocol core: an OpenID Connect provider ([`oidc`]) and a SAML 2.0 identity provider ([`saml`]).
//!
//! This crate knows the protocols and nothing of HTTP servers or LDAP. It takes a [`Principal`] (built by the gateway
//! from a directory user), the configuration it needs, keys, and `now`, and returns documents, tokens and decisions.
//! Storage sits behind small traits so the gateway can choose the backend.

pub mod key_file;
pub mod oidc;
pub mod principal;
pub mod saml;
pub mod scim;
pub mod template;

pub use fedgate_types::{ConfigIssue, Secret};
pub use principal::Principal;
