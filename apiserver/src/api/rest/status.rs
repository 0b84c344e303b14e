//! Errors as Kubernetes-shaped `Status` objects, with the HTTP status that
//! matches the gRPC code the shared handlers answered.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The HTTP status and Kubernetes `reason` of a gRPC code.
/// `InvalidArgument` is 422 Invalid when the error names fields, else 400.
pub(super) fn http_of(code: tonic::Code, has_causes: bool) -> (StatusCode, &'static str) {
    use tonic::Code;
    match code {
        Code::Ok => (StatusCode::OK, ""),
        Code::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "AlreadyExists"),
        Code::Aborted => (StatusCode::CONFLICT, "Conflict"),
        Code::InvalidArgument if has_causes => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
        Code::InvalidArgument | Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "BadRequest"),
        Code::OutOfRange => (StatusCode::GONE, "Expired"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "Forbidden"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
        Code::Unimplemented => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    }
}

/// A failure answered as a `Status` object.
#[derive(Debug)]
pub(super) struct Failure {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// `[{"field", "message"}]`.
    pub causes: Vec<Value>,
}

impl Failure {
    pub(super) fn new(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            causes: Vec::new(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub(super) fn method_not_allowed(method: &axum::http::Method, what: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
    }

    /// The `Status` object.
    pub(super) fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.status.as_u16(),
        });
        if !self.causes.is_empty() {
            status["details"] = json!({"causes": self.causes});
        }
        status
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        // Field errors travel as the details (crate::error): 422 with causes.
        let causes: Vec<Value> = serde_json::from_slice(status.details()).unwrap_or_default();
        let (http, reason) = http_of(status.code(), !causes.is_empty());
        Self {
            status: http,
            reason,
            message: status.message().to_string(),
            causes,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_json().to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_object_is_422_with_its_field_paths() {
        let causes = json!([{"field": "spec.tasks[0].name", "message": "required"}]);
        let status = tonic::Status::with_details(
            tonic::Code::InvalidArgument,
            "TaskRun \"x\" is invalid",
            serde_json::to_vec(&causes).expect("json").into(),
        );
        let body = Failure::from(status).to_json();
        assert_eq!(body["code"], 422);
        assert_eq!(body["reason"], "Invalid");
        assert_eq!(body["details"]["causes"], causes);
        let plain = Failure::from(tonic::Status::invalid_argument("bad selector")).to_json();
        assert_eq!(plain["code"], 400);
        assert!(plain.get("details").is_none());
    }

    #[test]
    fn codes_map_to_the_statuses_kubernetes_clients_expect() {
        use tonic::Code;
        for (code, http) in [
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::OutOfRange, 410),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
        ] {
            assert_eq!(http_of(code, false).0.as_u16(), http, "{code:?}");
        }
    }
}
