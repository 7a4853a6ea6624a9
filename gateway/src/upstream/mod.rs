//! The forwarding engine under the proxy: upstream clients and their connection pools, request and response
//! header hygiene, identity headers. It forwards what it is given; who may be forwarded is decided above it
//! (`proxy`), which also says when a WebSocket tunnel must close ([`tunnel::TunnelGuard`]).

pub mod forward;
pub mod pool;
pub mod tunnel;

pub use forward::{IdentityHeaders, ResponseBody, Upstream};
