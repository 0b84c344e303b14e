//! The HTTP caller as a gRPC request: the same metadata (the
//! `authorization` header) and the same peer extension (address and client
//! certificate) the gRPC server hands its handlers, so the guard
//! authenticates both faces alike.

use axum::http::HeaderMap;
use sloth_sdk::tls::PeerInfo;
use tonic::metadata::MetadataMap;

/// Who made an HTTP request.
#[derive(Debug)]
pub struct Caller {
    headers: HeaderMap,
    peer: PeerInfo,
}

impl Caller {
    pub fn new(headers: HeaderMap, peer: PeerInfo) -> Self {
        Self { headers, peer }
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// `message` as a gRPC request from this caller.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut extensions = tonic::Extensions::new();
        extensions.insert(self.peer.clone());
        tonic::Request::from_parts(
            MetadataMap::from_headers(self.headers.clone()),
            extensions,
            message,
        )
    }
}
