//! HTTP routes, one module per area; each exposes `router()`.

pub mod account;
pub mod health;
pub mod login;
pub mod oidc;
pub mod saml;
