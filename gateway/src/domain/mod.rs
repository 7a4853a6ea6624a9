//! The core layer: what the gateway knows and decides without HTTP. Time, who a user is (principal,
//! identity), sessions and their store, login throttling, the directory, and the protocol requests waiting for a
//! login. It depends on `config` only.

pub mod clock;
pub(crate) mod directory;
pub(crate) mod identity;
pub mod logout_outbox;
pub(crate) mod pending;
pub(crate) mod principal;
pub(crate) mod replay;
pub mod session;
pub mod store;
pub(crate) mod throttle;
pub mod upstream_names;
