//! Sloth's wire protocol: generated gRPC types and service stubs.

pub mod codec;

/// Version 1 of the resource API.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("sloth.v1");
}
