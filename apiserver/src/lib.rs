//! Sloth's API server: storage, admission, the gRPC resource service and the
//! HTTP endpoints.
#![forbid(unsafe_code)]

pub mod agent_writes;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod compaction;
pub mod encryption;
pub mod error;
pub mod grpc;
pub mod guard;
pub mod http;
pub mod keys;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod objects;
pub mod paging;
pub mod resources;
pub mod secret_access;
pub mod state_writes;
pub mod store;
pub mod version;
pub mod watch;
