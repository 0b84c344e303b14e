//! The gRPC face of the resource service, with per-request metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use sloth_proto::v1 as pb;
use sloth_proto::v1::resources_server::Resources as ResourcesRpc;
use sloth_sdk::tls::PeerInfo;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::access::agent_writes;
use crate::access::auth::Role;
use crate::access::auth::policy::{Attributes, Verb};
use crate::access::guard::{Admitted, Guard};
use crate::access::secret_access;
use crate::cache::WatchCache;
use crate::error::ApiError;
use crate::maintenance::backup::{BackupStream, Backups};
use crate::metrics::Metrics;
use crate::registry::paging::MAX_PAGE_BYTES;
use crate::registry::resources::{Commit, Resources, Selectors, Stored};
use crate::registry::watch::{self, WatchRequest};

mod convert;
mod target;

pub use convert::event_to_proto;
use convert::{
    ListSource, cached_to_proto, code_of, list_source, object_of, parse_revision, to_proto,
};
use target::Target;

/// The tonic service.
#[derive(Debug, Clone)]
pub struct GrpcService {
    resources: Resources,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    bookmark_interval: Duration,
    /// Serves watches when set; otherwise each watch is its own store watch.
    watch_cache: Option<Arc<WatchCache>>,
    guard: Arc<Guard>,
    agent_dialer: crate::api::logs::AgentDialer,
    /// Serves the blob calls when set.
    artifacts: Option<crate::artifacts::ArtifactStore>,
    /// Online backups; None on etcd (whose own snapshots serve).
    backups: Option<Arc<Backups>>,
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
            guard: Arc::new(Guard::open()),
            agent_dialer: crate::api::logs::AgentDialer::default(),
            artifacts: None,
            backups: None,
        }
    }

    /// Serves workspaces and artifacts from `store`.
    pub fn with_artifacts(mut self, store: crate::artifacts::ArtifactStore) -> Self {
        self.artifacts = Some(store);
        self
    }

    fn blob_calls(&self) -> crate::artifacts::rpc::BlobCalls<'_> {
        crate::artifacts::rpc::BlobCalls {
            store: self.artifacts.as_ref(),
            guard: &self.guard,
            resources: &self.resources,
        }
    }

    /// Serves `Backup` (the embedded store only).
    pub fn with_backups(mut self, backups: Arc<Backups>) -> Self {
        self.backups = Some(backups);
        self
    }

    /// Dials agents' logs ports with this TLS configuration.
    pub fn with_agent_dialer(mut self, dialer: crate::api::logs::AgentDialer) -> Self {
        self.agent_dialer = dialer;
        self
    }

    /// Authenticates, authorizes and audits every call through `guard`.
    pub fn with_guard(mut self, guard: Arc<Guard>) -> Self {
        self.guard = guard;
        self
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
        self.observe(verb, kind, start, code);
        if let Err(e) = result {
            tracing::debug!(verb, kind, error = %e, "request refused");
        }
    }

    fn observe(&self, verb: &'static str, kind: &str, start: Instant, code: tonic::Code) {
        let kind = sloth_sdk::kinds::lookup(kind).map_or("unknown", |k| k.kind);
        self.metrics.observe(verb, kind, code, start.elapsed());
    }

    /// Admits a call through the guard, counting a refusal in the metrics.
    fn admit<T>(
        &self,
        request: &Request<T>,
        call: &Attributes<'_>,
        start: Instant,
    ) -> Result<Admitted, Status> {
        self.guard
            .admit(
                request.metadata(),
                request.extensions().get::<PeerInfo>(),
                call,
            )
            .inspect_err(|status| self.observe(call.verb.name(), call.kind, start, status.code()))
    }

    /// Runs a call that carries an object (create, update, update-status):
    /// admits it, runs it, audits and records its metrics.
    async fn object_call<'a, F, Fut>(
        &'a self,
        verb: Verb,
        request: Request<Option<pb::Object>>,
        call: F,
    ) -> Result<Response<pb::Object>, Status>
    where
        F: FnOnce(&'a Resources, pb::Object) -> Fut,
        Fut: Future<Output = Result<Stored, ApiError>> + 'a,
    {
        let start = Instant::now();
        // Names are read from the body only when someone looks at them (an
        // open server without an audit log skips the second parse).
        let target = match request.get_ref() {
            Some(object) if self.guard.inspects_calls() => Target::of(object),
            Some(object) => Target::named(&object.kind, "", ""),
            None => Target::default(),
        };
        let attributes = target.attributes(verb, "");
        let admitted = self.admit(&request, &attributes, start)?;
        let object = request.into_inner();
        let result = async {
            let mut object = object_of(object)?;
            if admitted.bound_to.is_some() {
                let stored = self
                    .resources
                    .get(&target.kind, &target.namespace, &target.name)
                    .await?;
                self.guard
                    .check_bound(&admitted, &attributes, &stored.value)
                    .map_err(Refused)?;
            }
            if let Some(agent) = admitted.user.agent_name() {
                let requested = crate::registry::objects::parse_request(&object.json)?;
                let write = target.write(verb, Some(&requested));
                if let Some(revision) = self.judge_agent_write(&admitted, agent, write).await? {
                    // Judged at this revision: the write applies to it or
                    // fails with a conflict.
                    if object.resource_version.is_empty() {
                        object.resource_version = revision.to_string();
                    }
                }
            }
            let stored = call(&self.resources, object).await?;
            Ok(to_proto(&stored)?)
        }
        .await;
        // A refusal is audited where it is made; everything else below.
        let audited = matches!(result, Err(Refused(_)));
        let result = result.map_err(|e: Refusal| e.into_status());
        self.observe(
            verb.name(),
            &target.kind,
            start,
            result
                .as_ref()
                .map_or_else(Status::code, |_| tonic::Code::Ok),
        );
        if !audited {
            self.guard
                .completed(&admitted, &attributes, result.as_ref().map(|_| ()));
        }
        Ok(Response::new(result?))
    }

    /// Judges a write of an agent identity on the objects' content
    /// ([`crate::access::auth::restriction`]); a refusal is audited. The revision
    /// judged, if any.
    async fn judge_agent_write(
        &self,
        admitted: &Admitted,
        agent: &str,
        write: agent_writes::Write<'_>,
    ) -> Result<Option<i64>, Refusal> {
        match agent_writes::judge(&self.resources, agent, write).await {
            Ok(revision) => Ok(revision),
            Err(agent_writes::Refusal::Api(e)) => Err(e.into()),
            Err(agent_writes::Refusal::Forbidden(reason)) => {
                let call = Attributes {
                    verb: write.verb,
                    kind: write.kind,
                    namespace: write.namespace,
                    name: write.name,
                    field_selector: "",
                };
                Err(Refused(self.guard.refuse(admitted, &call, &reason)))
            }
        }
    }
}

impl GrpcService {
    /// For an agent's get of a Secret: refuses (and audits) unless an
    /// unfinished TaskRun bound to the agent references the Secret.
    async fn check_secret_use(
        &self,
        admitted: &Admitted,
        call: &Attributes<'_>,
        agent: &str,
    ) -> Result<(), Status> {
        let found = secret_access::referencing_run(
            &self.resources,
            self.watch_cache.as_deref(),
            agent,
            call.namespace,
            call.name,
        )
        .await
        .map_err(Status::from)?;
        match found {
            Some(_) => Ok(()),
            None => Err(self.guard.refuse(
                admitted,
                call,
                &format!("no unfinished TaskRun bound to agent {agent:?} references it"),
            )),
        }
    }
}

/// An API error, or a refusal the guard has already audited.
enum Refusal {
    Api(ApiError),
    Refused(Status),
}

use Refusal::Refused;

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl Refusal {
    fn into_status(self) -> Status {
        match self {
            Self::Api(e) => e.into(),
            Self::Refused(status) => status,
        }
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
        let commit = Commit::dry_run(request.get_ref().dry_run);
        self.object_call(Verb::Create, request.map(|r| r.object), |r, o| async move {
            r.create_as(&o.kind, &o.json, commit).await
        })
        .await
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let start = Instant::now();
        let target = {
            let r = request.get_ref();
            Target::named(&r.kind, &r.namespace, &r.name)
        };
        let attributes = target.attributes(Verb::Get, "");
        let admitted = self.admit(&request, &attributes, start)?;
        let r = request.into_inner();
        if let Some(agent) = &admitted.secret_for {
            self.check_secret_use(&admitted, &attributes, agent)
                .await
                .inspect_err(|status| self.observe("get", &r.kind, start, status.code()))?;
        }
        let result = self.resources.get(&r.kind, &r.namespace, &r.name).await;
        if let Ok(stored) = &result {
            self.guard
                .check_bound(&admitted, &attributes, &stored.value)
                .inspect_err(|status| self.observe("get", &r.kind, start, status.code()))?;
        }
        let redacts = secret_access::redacts(&admitted.user, &target.kind);
        let result = result.and_then(|mut s| {
            if redacts {
                secret_access::redact(&mut s.value);
            }
            to_proto(&s)
        });
        self.record("get", &r.kind, start, &result);
        Ok(Response::new(result?))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let start = Instant::now();
        let target = {
            let r = request.get_ref();
            Target::named(&r.kind, &r.namespace, "")
        };
        let field_selector = request.get_ref().field_selector.clone();
        let admitted = self.admit(
            &request,
            &target.attributes(Verb::List, &field_selector),
            start,
        )?;
        let redacts = secret_access::redacts(&admitted.user, &target.kind);
        let r = request.into_inner();
        let result = async {
            let selectors = Selectors::parse(&r.label_selector, &r.field_selector)?;
            let limit = usize::try_from(r.limit.max(0)).unwrap_or(usize::MAX);
            let cached = match (&self.watch_cache, list_source(&r)?) {
                (Some(cache), ListSource::AnyRecent) => {
                    // A cache that cannot start (its store watch failed, say
                    // an etcd member just died) must not fail a list the
                    // store, with its retries, can still answer.
                    match cache
                        .list(&r.kind, &r.namespace, &selectors, limit, MAX_PAGE_BYTES)
                        .await
                    {
                        Ok(listed) => listed,
                        Err(e) => {
                            tracing::debug!(kind = %r.kind, error = %e, "listing from the store: the watch cache cannot serve");
                            None
                        }
                    }
                }
                _ => None,
            };
            if let Some(page) = cached {
                return Ok(pb::ListResponse {
                    items: page
                        .items
                        .iter()
                        .map(|entry| cached_to_proto(page.kind, entry, redacts))
                        .collect::<Result<_, _>>()?,
                    resource_version: page.revision.to_string(),
                    continue_token: page.continue_token,
                });
            }
            let mut listed = self
                .resources
                .list(&r.kind, &r.namespace, &selectors, limit, &r.continue_token)
                .await?;
            if redacts {
                for item in &mut listed.items {
                    secret_access::redact(&mut item.value);
                }
            }
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
        let commit = Commit::dry_run(request.get_ref().dry_run);
        self.object_call(Verb::Update, request.map(|r| r.object), |r, o| async move {
            r.update_as(&o.kind, &o.json, &o.resource_version, commit)
                .await
        })
        .await
    }

    async fn update_status(
        &self,
        request: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        if request.get_ref().dry_run {
            return Err(Status::invalid_argument(
                "dry_run is for Create and Update, not UpdateStatus",
            ));
        }
        self.object_call(
            Verb::UpdateStatus,
            request.map(|r| r.object),
            |r, o| async move { r.update_status(&o.kind, &o.json, &o.resource_version).await },
        )
        .await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let start = Instant::now();
        let target = {
            let r = request.get_ref();
            Target::named(&r.kind, &r.namespace, &r.name)
        };
        let attributes = target.attributes(Verb::Delete, "");
        let admitted = self.admit(&request, &attributes, start)?;
        let mut r = request.into_inner();
        if let Some(agent) = admitted.user.agent_name() {
            let write = target.write(Verb::Delete, None);
            match self.judge_agent_write(&admitted, agent, write).await {
                Ok(Some(revision)) if r.resource_version.is_empty() => {
                    r.resource_version = revision.to_string();
                }
                Ok(_) => {}
                Err(refusal) => {
                    let audited = matches!(refusal, Refused(_));
                    let status = refusal.into_status();
                    self.observe("delete", &r.kind, start, status.code());
                    if !audited {
                        self.guard.completed(&admitted, &attributes, Err(&status));
                    }
                    return Err(status);
                }
            }
        }
        let result = self
            .resources
            .delete(&r.kind, &r.namespace, &r.name, &r.resource_version)
            .await
            .and_then(|s| to_proto(&s));
        self.record("delete", &r.kind, start, &result);
        let result = result.map_err(Status::from);
        self.guard
            .completed(&admitted, &attributes, result.as_ref().map(|_| ()));
        Ok(Response::new(result?))
    }

    type LogsStream = LogsStream;

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<LogsStream>, Status> {
        let start = Instant::now();
        let target = {
            let r = request.get_ref();
            Target::named("TaskRun", &r.namespace, &r.name)
        };
        self.admit(&request, &target.attributes(Verb::Logs, ""), start)?;
        let result = crate::api::logs::logs(
            &self.resources,
            &self.agent_dialer,
            request.into_inner(),
            |agent| self.guard.agent_logs_keys(agent),
        )
        .await;
        self.record("logs", "TaskRun", start, &result);
        // A followed log never ends by itself while the task runs; end it on
        // shutdown as watches end, so the server can stop gracefully.
        let stream = result?.take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(stream.boxed()))
    }

    async fn stat_blob(
        &self,
        request: Request<pb::BlobRequest>,
    ) -> Result<Response<pb::BlobInfo>, Status> {
        let start = Instant::now();
        let result = self.blob_calls().stat(request).await;
        self.observe("statblob", "Blob", start, code_of(&result));
        Ok(Response::new(result?))
    }

    async fn put_blob(
        &self,
        request: Request<tonic::Streaming<pb::BlobChunk>>,
    ) -> Result<Response<pb::BlobInfo>, Status> {
        let start = Instant::now();
        let result = self.blob_calls().put(request).await;
        self.observe("putblob", "Blob", start, code_of(&result));
        Ok(Response::new(result?))
    }

    type GetBlobStream = LogsStream;

    async fn get_blob(
        &self,
        request: Request<pb::BlobRequest>,
    ) -> Result<Response<LogsStream>, Status> {
        let start = Instant::now();
        let result = self.blob_calls().get(request).await;
        self.observe("getblob", "Blob", start, code_of(&result));
        let stream = result?.take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(stream.boxed()))
    }

    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let start = Instant::now();
        let call = Attributes {
            verb: Verb::Get,
            kind: "backup",
            namespace: "",
            name: "",
            field_selector: "",
        };
        let admitted = self.admit(&request, &call, start)?;
        let result = match (&self.backups, admitted.user.role) {
            (_, role) if role != Role::Admin => Err(Status::permission_denied(format!(
                "backup is forbidden: user {:?} (role {}) is not an admin",
                admitted.user.name,
                role.as_str()
            ))),
            (None, _) => Err(Status::failed_precondition(
                "this apiserver stores in etcd: back it up with `etcdctl snapshot save` \
                 (docs/operations.md); `slothctl admin backup` copies the embedded store",
            )),
            (Some(backups), _) => backups.stream().await,
        };
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        self.observe("backup", "backup", start, code);
        result.map(Response::new)
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let start = Instant::now();
        let target = {
            let r = request.get_ref();
            Target::named(&r.kind, &r.namespace, "")
        };
        let field_selector = request.get_ref().field_selector.clone();
        let attributes = target.attributes(Verb::Watch, &field_selector);
        let admitted = self.admit(&request, &attributes, start)?;
        let slot = self
            .guard
            .watch_slot(&admitted, &attributes)
            .inspect_err(|status| self.observe("watch", &target.kind, start, status.code()))?;
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
        let redacts = secret_access::redacts(&admitted.user, &target.kind);
        let stream = result?.map(move |item| {
            let _open = (&guard, &slot);
            item.and_then(|mut event| {
                // Only a redacted object is copied (and encoded) for this
                // watcher alone; the others share the cache's encoding.
                if redacts && let Some(object) = event.object_mut()? {
                    secret_access::redact(object);
                }
                Ok(event)
            })
            .and_then(event_to_proto)
            .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    /// Public, as `/version` on the HTTP port: it tells nothing about the
    /// objects, and a client needs it before its credentials work.
    async fn version(
        &self,
        _request: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionInfo>, Status> {
        Ok(Response::new(crate::api::version::info()))
    }
}

#[cfg(test)]
mod tests;
