//! fedgate's end-to-end tests: one binary, real slapd, the real gateway, real independent clients.

mod ad;
mod attack_run;
mod attack_run3;
mod attack_run4;
mod attack_run5;
mod attacks;
mod browser;
mod foundation;
mod import;
mod keycloak;
mod ldap;
mod limits;
mod login;
mod logout;
mod oidc;
mod proxy;
mod replicas;
mod saml;
mod scim;
mod store;
mod upstream_login;
