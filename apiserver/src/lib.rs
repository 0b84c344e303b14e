//! Sloth's API server: storage, admission, the gRPC resource service and the
//! HTTP endpoints.
#![forbid(unsafe_code)]

pub mod store;
