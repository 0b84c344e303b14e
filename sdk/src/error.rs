//! Errors of the client, mapped from gRPC status codes.

use tonic::Code;

/// What went wrong talking to the apiserver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A stale resourceVersion (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The object failed validation; the message names the field.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A watch or list from a compacted revision (HTTP 410): relist.
    #[error("expired: {0}")]
    Expired(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No apiserver could be reached.
    #[error("cannot reach any server ({endpoints}): {message}")]
    Unavailable { endpoints: String, message: String },
    /// The TLS files or token cannot be used.
    #[error("bad credentials: {0}")]
    Credentials(String),
    #[error("bad server address {0:?}: {1}")]
    BadEndpoint(String, String),
    #[error("cannot decode {what}: {message}")]
    Decode { what: String, message: String },
    #[error("server error ({code:?}): {message}")]
    Server { code: Code, message: String },
}

impl Error {
    /// Maps a gRPC status to the error users act on.
    pub fn from_status(status: tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            Code::NotFound => Self::NotFound(message),
            Code::AlreadyExists => Self::AlreadyExists(message),
            Code::Aborted => Self::Conflict(message),
            Code::InvalidArgument | Code::FailedPrecondition => Self::Invalid(message),
            Code::OutOfRange => Self::Expired(message),
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::Forbidden(message),
            Code::Unavailable => Self::Unavailable {
                endpoints: String::new(),
                message,
            },
            code => Self::Server { code, message },
        }
    }

    pub(crate) fn decode(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Decode {
            what: what.into(),
            message: e.to_string(),
        }
    }

    /// True when no server could be reached (slothctl exit code 3).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// `head` followed by each cause in `source`'s chain (skipping a cause the
/// text already says): tonic's own message for a failed connection is only
/// "transport error".
pub fn with_causes(head: &str, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut text = head.to_string();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
