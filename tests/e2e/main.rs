//! fedgate's end-to-end tests: one binary, real slapd, the real gateway, real independent clients.

mod attacks;
mod browser;
mod foundation;
mod ldap;
mod limits;
mod login;
mod oidc;
mod proxy;
mod replicas;
mod saml;
mod scim;
mod store;
