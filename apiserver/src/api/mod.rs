//! The API surface: the gRPC resource service, the HTTP port, log proxying
//! and version reporting.

pub mod grpc;
pub mod http;
mod log_tail;
pub mod logs;
pub mod rest;
pub mod ui;
pub mod version;
