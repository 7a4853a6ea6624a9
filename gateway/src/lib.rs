//! fedgate's gateway: configuration, the HTTP server, the login UI and sessions, the authenticating proxy, and
//! the wiring of the protocol crates (`federation`) and the directory (`ldap-mapper`).
//!
//! Modules form one-way layers; a module imports only from layers below it (`docs/architecture.md`, checked by
//! the `layers` test):
//!
//! | layer | modules |
//! |---|---|
//! | 7 command line | [`cli`] |
//! | 6 composition | [`app`] |
//! | 5 features | [`login`], [`oidc`], [`saml`], [`proxy`], [`scim`], [`health`], [`import`] |
//! | 4 shared state | [`state`] |
//! | 3 forwarding engine, upstream identity providers | [`upstream`], [`broker`] |
//! | 2 HTTP | [`http`] |
//! | 1 core, no HTTP | [`domain`] |
//! | 0 configuration | [`config`] |

pub mod app;
pub mod broker;
pub mod cli;
pub mod config;
pub mod domain;
pub(crate) mod health;
pub mod http;
pub mod import;
pub(crate) mod login;
pub(crate) mod oidc;
pub(crate) mod proxy;
pub(crate) mod saml;
pub mod scim;
pub mod state;
pub(crate) mod upstream;

pub use app::{Running, install_crypto_provider, start, start_on};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod layers;
