//! What etcd's errors mean to the store.

use crate::store::StoreError;

/// The kinds of etcd failure the store answers differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Classified {
    /// "mvcc: required revision has been compacted"
    Compacted,
    /// "mvcc: required revision is a future revision"
    Future,
    Other,
}

pub(super) fn classify(e: &etcd_client::Error) -> Classified {
    let text = e.to_string();
    if text.contains("required revision has been compacted") {
        Classified::Compacted
    } else if text.contains("required revision is a future revision") {
        Classified::Future
    } else {
        Classified::Other
    }
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

/// Whether a failed call may be tried again: always when the connection
/// could not be made (the request was not sent), and on any unavailability
/// when the call is a read.
pub(super) fn retryable(e: &etcd_client::Error, read: bool) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            let unsent =
                status.code() == tonic::Code::Unavailable && status.message().contains("connect");
            unsent || (read && status.code() == tonic::Code::Unavailable)
        }
        _ => false,
    }
}
