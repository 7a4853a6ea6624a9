//! The HTTP layer: the server and its accept loop, one request's context and finish step, errors → responses,
//! pages, cookies, metrics, canonical paths, the gateway's own paths, redirect-target policy and the outbound
//! HTTP client. It depends on `config` and `domain`, and knows nothing of the features above it.

pub mod cookies;
pub mod error;
pub mod metrics;
pub mod outbound;
pub mod pages;
pub mod path;
pub mod paths;
pub mod redirect;
pub mod request;
pub mod server;
