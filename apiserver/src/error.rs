//! API errors, worded as Kubernetes words them, with their gRPC codes.

use sloth_sdk::validation::FieldErrors;

use crate::store::StoreError;

/// Why an API call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{plural} {name:?} not found")]
    NotFound { plural: String, name: String },
    #[error("{plural} {name:?} already exists")]
    AlreadyExists { plural: String, name: String },
    #[error(
        "operation cannot be fulfilled on {plural} {name:?}: the object has been modified \
         (resourceVersion {given}, current {current}); get the latest version and try again"
    )]
    Conflict {
        plural: String,
        name: String,
        given: String,
        current: i64,
    },
    /// The object failed admission; the message names every bad field.
    #[error("{kind} {name:?} is invalid: {errors}")]
    Invalid {
        kind: String,
        name: String,
        errors: FieldErrors,
    },
    /// The request itself is malformed (unknown kind, bad selector, bad JSON).
    #[error("{0}")]
    BadRequest(String),
    /// The resourceVersion asked for is no longer in history: relist.
    #[error("too old resource version: {0}")]
    Expired(String),
    /// A peer the request needs (an agent) cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("server is shutting down")]
    ShuttingDown,
    /// The store refuses writes after an I/O error (a full disk); reads work.
    #[error("{0}")]
    StoreReadOnly(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The server is not set up for the request (Secrets without an
    /// encryption key).
    #[error("{0}")]
    FailedPrecondition(String),
}

impl ApiError {
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Conflict { .. } => Code::Aborted,
            Self::Invalid { .. } | Self::BadRequest(_) => Code::InvalidArgument,
            Self::Expired(_) => Code::OutOfRange,
            Self::ShuttingDown | Self::Unavailable(_) => Code::Unavailable,
            // As etcd answers writes while its NOSPACE alarm is raised; not
            // Unavailable, which clients read as "try another server".
            Self::StoreReadOnly(_) => Code::ResourceExhausted,
            Self::Internal(_) => Code::Internal,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
        }
    }
}

impl From<ApiError> for tonic::Status {
    /// An invalid object's field errors also travel as the status details
    /// (JSON `[{"field", "message"}]`), so that the REST face can answer 422
    /// with `details.causes` without parsing the message.
    fn from(e: ApiError) -> Self {
        let causes = match &e {
            ApiError::Invalid { errors, .. } => Some(field_causes(errors)),
            _ => None,
        };
        match causes {
            Some(causes) => tonic::Status::with_details(e.code(), e.to_string(), causes.into()),
            None => tonic::Status::new(e.code(), e.to_string()),
        }
    }
}

/// `[{"field": .., "message": ..}]` of every field error.
fn field_causes(errors: &FieldErrors) -> Vec<u8> {
    let causes: Vec<serde_json::Value> = errors
        .0
        .iter()
        .map(|e| serde_json::json!({"field": e.field, "message": e.message}))
        .collect();
    serde_json::to_vec(&causes).unwrap_or_default()
}

impl From<StoreError> for ApiError {
    /// Only for store errors that are faults here; answers such as Conflict
    /// or NotFound are mapped where the caller knows the object's name.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Expired { .. } => Self::Expired(e.to_string()),
            StoreError::FutureRevision { .. } => Self::BadRequest(e.to_string()),
            StoreError::Closed => Self::ShuttingDown,
            StoreError::ReadOnly(_) => Self::StoreReadOnly(e.to_string()),
            StoreError::Encryption(message) => Self::FailedPrecondition(message),
            other => Self::Internal(other.to_string()),
        }
    }
}
