//! Errors of the client, mapped from gRPC status codes.

use tonic::Code;

/// What went wrong talking to the apiserver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such object (or kind); the message names it.
    #[error("not found: {0}")]
    NotFound(String),
    /// A create found an object of that name.
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
    /// No valid credentials: a missing or wrong token or client certificate.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The user's role does not allow the call.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No apiserver could be reached.
    #[error("cannot reach any server ({endpoints}): {message}")]
    Unavailable {
        /// The servers tried, comma-separated; empty when a server itself
        /// answered Unavailable.
        endpoints: String,
        /// The last failure.
        message: String,
    },
    /// The TLS files or token cannot be used.
    #[error("bad credentials: {0}")]
    Credentials(String),
    /// The server URL (first) cannot be used, for the reason given.
    #[error("bad server address {0:?}: {1}")]
    BadEndpoint(String, String),
    /// A server's answer (or an object given) is not what its kind expects.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What could not be decoded (`watch event`, a kind and name).
        what: String,
        /// Why.
        message: String,
    },
    /// Any other failure the server reported, with its gRPC code.
    #[error("server error ({code:?}): {message}")]
    Server {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
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
            // gRPC's own answer to a message over the size limit is also
            // OutOfRange: it is no compacted revision, and relisting does
            // not help.
            Code::OutOfRange if is_too_large(&message) => Self::Server {
                code: Code::ResourceExhausted,
                message: format!("response too large: {message}"),
            },
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

    /// True when a retry may succeed: no server answered, or the server
    /// failed internally. Conflicts, invalid objects, missing objects and
    /// refused credentials are answers, not outages.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Server { .. })
    }
}

/// Whether a status message is gRPC's refusal of an over-sized message
/// (tonic: "encoded/decoded message length too large").
fn is_too_large(message: &str) -> bool {
    message.contains("message length too large")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_sized_answer_is_not_reported_as_expired() {
        let status = tonic::Status::out_of_range(
            "Error, encoded message length too large: found 4971935 bytes, the limit is: 4194304 bytes",
        );
        let error = Error::from_status(status);
        assert!(
            matches!(&error, Error::Server { code: Code::ResourceExhausted, message } if message.starts_with("response too large")),
            "{error:?}"
        );
        let expired =
            Error::from_status(tonic::Status::out_of_range("too old resource version: 3"));
        assert!(matches!(expired, Error::Expired(_)), "{expired:?}");
    }

    #[test]
    fn only_outages_and_server_failures_are_transient() {
        let status = |code| Error::from_status(tonic::Status::new(code, "m"));
        assert!(status(Code::Unavailable).is_transient());
        assert!(status(Code::Internal).is_transient());
        assert!(status(Code::DeadlineExceeded).is_transient());
        for code in [
            Code::NotFound,
            Code::AlreadyExists,
            Code::Aborted,
            Code::InvalidArgument,
            Code::OutOfRange,
            Code::Unauthenticated,
            Code::PermissionDenied,
        ] {
            assert!(!status(code).is_transient(), "{code:?}");
        }
        assert!(!Error::Credentials("c".into()).is_transient());
        assert!(!Error::decode("x", "y").is_transient());
    }
}
