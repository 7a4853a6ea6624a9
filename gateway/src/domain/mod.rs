//! The core layer: what the gateway knows and decides without HTTP. Time, randomness, who a user is (principal,
//! identity), sessions and their store, login throttling, the directory, and the protocol requests waiting for a
//! login. It depends on `config` only.

pub mod clock;
pub mod directory;
pub mod identity;
pub mod pending;
pub mod principal;
pub mod random;
pub mod session;
pub mod store;
pub mod throttle;
