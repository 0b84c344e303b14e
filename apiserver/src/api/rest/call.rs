//! The HTTP caller as a gRPC request: the same metadata (the
//! `authorization` header) and the same peer extension (address and client
//! certificate) the gRPC server hands its handlers, so the guard
//! authenticates both faces alike.

use axum::http::HeaderMap;
use sloth_sdk::tls::PeerInfo;
use tonic::metadata::MetadataMap;

use super::status::Failure;
use crate::access::auth::User;
use crate::access::guard::{Guard, HttpRefusal};

/// Who made an HTTP request.
#[derive(Debug)]
pub(super) struct Caller {
    headers: HeaderMap,
    peer: PeerInfo,
}

impl Caller {
    pub(super) fn new(headers: HeaderMap, peer: PeerInfo) -> Self {
        Self { headers, peer }
    }

    pub(super) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// `message` as a gRPC request from this caller.
    pub(super) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut extensions = tonic::Extensions::new();
        extensions.insert(self.peer.clone());
        tonic::Request::from_parts(
            MetadataMap::from_headers(self.headers.clone()),
            extensions,
            message,
        )
    }

    /// Who the caller is, for answers that are not one gRPC call (the
    /// rules review, the OpenAPI document): 401 or 429 as the handlers
    /// would answer.
    pub(super) fn authenticate(&self, guard: &Guard) -> Result<User, Failure> {
        guard
            .authenticate_http(self.headers.clone(), &self.peer)
            .map_err(|refusal| match refusal {
                HttpRefusal::Unauthenticated(e) => Failure::from(tonic::Status::unauthenticated(e)),
                HttpRefusal::Throttled(e) => Failure::from(tonic::Status::resource_exhausted(e)),
            })
    }
}
