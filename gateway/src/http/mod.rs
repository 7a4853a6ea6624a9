//! The HTTP layer: the server and its accept loop, one request's context and finish step, errors → responses,
//! pages, cookies, metrics, canonical paths, the gateway's own paths, redirect-target policy and the outbound
//! HTTP client. It depends on `config` and `domain`, and knows nothing of the features above it.

pub mod cookies;
pub(crate) mod error;
pub(crate) mod metrics;
pub(crate) mod outbound;
pub(crate) mod pages;
pub mod path;
pub(crate) mod paths;
pub(crate) mod redirect;
pub(crate) mod request;
pub(crate) mod server;
