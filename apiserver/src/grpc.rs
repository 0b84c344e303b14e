//! The gRPC face of the resource service, with per-request metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use sloth_proto::v1 as pb;
use sloth_proto::v1::resources_server::Resources as ResourcesRpc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::cache::WatchCache;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::resources::{Resources, Selectors, Stored};
use crate::watch::{self, EventType, ObjectEvent, WatchRequest};

/// The tonic service.
#[derive(Debug, Clone)]
pub struct GrpcService {
    resources: Resources,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    bookmark_interval: Duration,
    /// Serves watches when set; otherwise each watch is its own store watch.
    watch_cache: Option<Arc<WatchCache>>,
}

impl GrpcService {
    pub fn new(
        resources: Resources,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        bookmark_interval: Duration,
    ) -> Self {
        Self {
            resources,
            metrics,
            shutdown,
            bookmark_interval,
            watch_cache: None,
        }
    }

    /// Serves every watch from `cache` (one store watch per kind).
    pub fn with_watch_cache(mut self, cache: Arc<WatchCache>) -> Self {
        self.watch_cache = Some(cache);
        self
    }

    fn record<T>(
        &self,
        verb: &'static str,
        kind: &str,
        start: Instant,
        result: &Result<T, ApiError>,
    ) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.code(),
        };
        let kind = sloth_sdk::kinds::lookup(kind).map_or("unknown", |k| k.kind);
        self.metrics.observe(verb, kind, code, start.elapsed());
        if let Err(e) = result {
            tracing::debug!(verb, kind, error = %e, "request refused");
        }
    }

    /// Runs a call that carries an object (create, update, update-status),
    /// recording its metrics.
    async fn object_call<'a, F, Fut>(
        &'a self,
        verb: &'static str,
        object: Option<pb::Object>,
        call: F,
    ) -> Result<Response<pb::Object>, Status>
    where
        F: FnOnce(&'a Resources, pb::Object) -> Fut,
        Fut: Future<Output = Result<Stored, ApiError>> + 'a,
    {
        let start = Instant::now();
        let kind = object.as_ref().map(|o| o.kind.clone()).unwrap_or_default();
        let result = match object_of(object) {
            Ok(o) => call(&self.resources, o).await,
            Err(e) => Err(e),
        }
        .and_then(|s| to_proto(&s));
        self.record(verb, &kind, start, &result);
        Ok(Response::new(result?))
    }
}

fn to_proto(stored: &Stored) -> Result<pb::Object, ApiError> {
    let json = serde_json::to_vec(&stored.value)
        .map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")))?;
    Ok(pb::Object {
        kind: stored.kind.kind.to_string(),
        namespace: stored.namespace().to_string(),
        name: stored.name().to_string(),
        resource_version: stored.revision.to_string(),
        json,
    })
}

fn event_to_proto(event: ObjectEvent) -> Result<pb::WatchEvent, ApiError> {
    use pb::watch_event::Type;
    let event_type = match event.event_type {
        EventType::Added => Type::Added,
        EventType::Modified => Type::Modified,
        EventType::Deleted => Type::Deleted,
        EventType::Bookmark => Type::Bookmark,
    };
    let object = match event.object {
        Some(value) => Some(to_proto(&Stored {
            kind: event.kind,
            value,
            revision: event.revision,
        })?),
        None => None,
    };
    Ok(pb::WatchEvent {
        r#type: event_type as i32,
        object,
        resource_version: event.revision.to_string(),
    })
}

fn object_of(request: Option<pb::Object>) -> Result<pb::Object, ApiError> {
    request.ok_or_else(|| ApiError::BadRequest("request has no object".into()))
}

fn parse_revision(rv: &str) -> Result<Option<i64>, ApiError> {
    match rv {
        "" | "0" => Ok(None),
        rv => rv
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}"))),
    }
}

type LogsStream = futures_util::stream::BoxStream<'static, Result<pb::LogChunk, Status>>;

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ResourcesRpc for GrpcService {
    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        self.object_call("create", request.into_inner().object, |r, o| async move {
            r.create(&o.kind, &o.json).await
        })
        .await
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = self
            .resources
            .get(&r.kind, &r.namespace, &r.name)
            .await
            .and_then(|s| to_proto(&s));
        self.record("get", &r.kind, start, &result);
        Ok(Response::new(result?))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = async {
            let selectors = Selectors::parse(&r.label_selector, &r.field_selector)?;
            let limit = usize::try_from(r.limit.max(0)).unwrap_or(usize::MAX);
            let listed = self
                .resources
                .list(&r.kind, &r.namespace, &selectors, limit, &r.continue_token)
                .await?;
            Ok(pb::ListResponse {
                items: listed
                    .items
                    .iter()
                    .map(to_proto)
                    .collect::<Result<_, _>>()?,
                resource_version: listed.revision.to_string(),
                continue_token: listed.continue_token,
            })
        }
        .await;
        self.record("list", &r.kind, start, &result);
        Ok(Response::new(result?))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        self.object_call("update", request.into_inner().object, |r, o| async move {
            r.update(&o.kind, &o.json, &o.resource_version).await
        })
        .await
    }

    async fn update_status(
        &self,
        request: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        self.object_call(
            "updatestatus",
            request.into_inner().object,
            |r, o| async move { r.update_status(&o.kind, &o.json, &o.resource_version).await },
        )
        .await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = self
            .resources
            .delete(&r.kind, &r.namespace, &r.name, &r.resource_version)
            .await
            .and_then(|s| to_proto(&s));
        self.record("delete", &r.kind, start, &result);
        Ok(Response::new(result?))
    }

    type LogsStream = LogsStream;

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<LogsStream>, Status> {
        let start = Instant::now();
        let result = crate::logs::logs(&self.resources, request.into_inner()).await;
        self.record("logs", "TaskRun", start, &result);
        // A followed log never ends by itself while the task runs; end it on
        // shutdown as watches end, so the server can stop gracefully.
        let stream = result?.take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(stream.boxed()))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let start = Instant::now();
        let r = request.into_inner();
        let result = async {
            let request = WatchRequest {
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                selectors: Selectors::parse(&r.label_selector, &r.field_selector)?,
                resource_version: parse_revision(&r.resource_version)?,
                allow_bookmarks: r.allow_bookmarks,
                bookmark_interval: self.bookmark_interval,
            };
            match &self.watch_cache {
                Some(cache) => cache.watch(request).await,
                None => {
                    watch::watch(
                        &self.resources,
                        request,
                        &self.metrics,
                        self.shutdown.clone(),
                    )
                    .await
                }
            }
        }
        .await;
        self.record("watch", &r.kind, start, &result);
        let guard = self.metrics.watch_started();
        let stream = result?.map(move |item| {
            let _open = &guard;
            item.and_then(event_to_proto).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
