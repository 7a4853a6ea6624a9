//! Fixtures for fedgate's end-to-end tests: real processes and real servers on loopback, stopped on drop.

pub mod gateway;
pub mod metrics;
pub mod nginx;
pub mod node;
pub mod raw_http;
pub mod redis;
pub mod samba;
pub mod saml_sp;
pub mod scim;
pub mod slapd;
pub mod slow_link;
pub mod tls;
pub mod tmpfs;
pub mod upstream;
pub mod wsgi;
