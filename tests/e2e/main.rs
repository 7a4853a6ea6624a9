//! fedgate's end-to-end tests: one binary, real slapd, the real gateway, real independent clients.

mod attacks;
mod browser;
mod foundation;
mod import;
mod ldap;
mod limits;
mod login;
mod logout;
mod oidc;
mod proxy;
mod saml;
mod scim;
mod upstream_login;
