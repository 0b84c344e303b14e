//! The HTTP/JSON face of the resource service, shaped like Kubernetes'
//! (docs/api.md, "REST API").
//!
//! A thin adapter: every call becomes a `tonic::Request` carrying the HTTP
//! caller's headers (bearer token) and peer (client certificate) exactly
//! as the gRPC server would, and goes to the same [`GrpcService`] handlers,
//! so authentication, RBAC, audit, limits, admission and the watch cache
//! are one code path. This module only translates paths, bodies and
//! answers.

mod body;
mod call;
mod logs;
mod objects;
mod openapi;
mod paths;
mod query;
mod rules;
mod status;
mod stream;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio_util::sync::CancellationToken;

use crate::access::guard::Guard;
use crate::api::grpc::GrpcService;
use crate::api::http::HttpPeer;
use call::Caller;
use paths::Target;
use query::Params;
use status::Failure;

pub use body::MAX_BODY_BYTES;

/// What the REST handlers share.
#[derive(Clone, Debug)]
pub struct Rest {
    service: GrpcService,
    guard: Arc<Guard>,
    shutdown: CancellationToken,
    /// Origins allowed cross-origin requests; empty: CORS off.
    cors_origins: Vec<HeaderValue>,
}

impl Rest {
    pub fn new(service: GrpcService, guard: Arc<Guard>, shutdown: CancellationToken) -> Self {
        Self {
            service,
            guard,
            shutdown,
            cors_origins: Vec::new(),
        }
    }

    /// Allows cross-origin requests from `origins` (browsers' CORS).
    pub fn with_cors_origins(mut self, origins: Vec<HeaderValue>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// The routes under `paths::PREFIX` (`/apis/sloth.dev/v1`), and the
    /// OpenAPI document.
    pub fn router(self) -> Router {
        let cors = cors_layer(&self.cors_origins);
        let mut router = Router::new();
        for path in openapi::OPENAPI_PATHS {
            router = router.route(path, get(openapi::serve));
        }
        let router = router
            .route(&format!("{}/{{*rest}}", paths::PREFIX), any(handle))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self);
        match cors {
            Some(cors) => router.layer(cors),
            None => router,
        }
    }
}

fn cors_layer(origins: &[HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::header;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
    )
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    State(rest): State<Rest>,
    ConnectInfo(peer): ConnectInfo<HttpPeer>,
    method: Method,
    Path(tail): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let Query(params) =
            params.map_err(|e| Failure::bad_request(format!("bad query parameters: {e}")))?;
        let target = paths::parse(&tail).map_err(|e| Failure::not_found(e.to_string()))?;
        let body = body.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
                )
            } else {
                Failure::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        let caller = Caller::new(headers, peer.info().clone());
        dispatch(&rest, &caller, &method, target, &params, &body).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch(
    rest: &Rest,
    caller: &Caller,
    method: &Method,
    target: Target,
    params: &Params,
    body: &[u8],
) -> Result<Response, Failure> {
    use objects::Subresource::{Main, Status};
    match (target, method.clone()) {
        (Target::Collection { kind, namespace }, Method::GET) if params.watch()? => {
            watch::watch(rest, caller, kind, &namespace, params).await
        }
        (Target::Collection { kind, namespace }, Method::GET) => {
            objects::list(rest, caller, kind, &namespace, params).await
        }
        (Target::Collection { kind, namespace }, Method::POST) => {
            objects::create(rest, caller, kind, &namespace, params, body).await
        }
        (Target::Object(path) | Target::Status(path), Method::GET) => {
            objects::get(rest, caller, &path).await
        }
        (Target::Object(path), Method::PUT) => {
            objects::update(rest, caller, &path, Main, params, body).await
        }
        (Target::Status(path), Method::PUT) => {
            objects::update(rest, caller, &path, Status, params, body).await
        }
        (Target::Object(path), Method::PATCH) => {
            objects::patch(rest, caller, &path, Main, params, body).await
        }
        (Target::Status(path), Method::PATCH) => {
            objects::patch(rest, caller, &path, Status, params, body).await
        }
        (Target::Object(path), Method::DELETE) => objects::delete(rest, caller, &path, body).await,
        (Target::Log(path), Method::GET) => logs::logs(rest, caller, &path, params).await,
        (Target::RulesReview, Method::GET) => rules::review(rest, caller, params),
        (target, method) => Err(Failure::method_not_allowed(&method, &describe(&target))),
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Collection { kind, .. } => format!("the {} collection", kind.plural),
        Target::Object(p) => format!("{} {:?}", p.kind.plural, p.name),
        Target::Status(p) => format!("the status of {} {:?}", p.kind.plural, p.name),
        Target::Log(p) => format!("the log of {} {:?}", p.kind.plural, p.name),
        Target::RulesReview => "selfsubjectrulesreview".to_string(),
    }
}
