//! Sloth's API server: storage, admission, the gRPC resource service and the
//! HTTP endpoints.

pub mod access;
pub mod api;
pub mod artifacts;
pub mod cache;
pub mod encryption;
pub mod error;
pub mod maintenance;
pub mod metrics;
pub mod registry;
pub mod store;
