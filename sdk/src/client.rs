//! The gRPC client: a dynamic `Client` with endpoint failover, and a typed
//! `Api<S>` over it.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use sloth_proto::v1 as pb;
use sloth_proto::v1::resources_client::ResourcesClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;
use crate::resource::{DynamicObject, Object, Spec};
use crate::tls::{ClientTls, ClientTlsFiles, Connector};

/// Largest message the client accepts (a page of a list).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug)]
struct Server {
    url: String,
    channel: Channel,
}

/// How a client proves who it is and checks whom it talks to.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// With it, servers are dialed over TLS (URLs without a scheme become
    /// `https://`).
    pub tls: Option<ClientTlsFiles>,
    /// Sent as `authorization: Bearer <token>` on every call.
    pub token: Option<String>,
}

/// Adds the bearer token, when there is one, to every call.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    authorization: Option<AsciiMetadataValue>,
}

impl tonic::service::Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Credentials {
    fn new(token: Option<&str>) -> Result<Self, Error> {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::default());
        };
        let mut value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| {
                Error::Credentials("the token has characters a header cannot carry".into())
            })?;
        // Kept out of debug output and header compression tables.
        value.set_sensitive(true);
        Ok(Self {
            authorization: Some(value),
        })
    }
}

pub(crate) type Grpc = ResourcesClient<InterceptedService<Channel, Credentials>>;

/// A connection to one or more apiservers. Calls go to the last server that
/// answered and fail over to the next when one is unreachable. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    servers: Arc<[Server]>,
    preferred: Arc<AtomicUsize>,
    credentials: Credentials,
}

/// Objects per list page when `ListParams::limit` is 0.
pub const DEFAULT_PAGE_SIZE: i64 = 500;

/// Options of a list call.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: String,
    pub field_selector: String,
    /// Most objects per page; 0: `DEFAULT_PAGE_SIZE`. The server may return
    /// fewer (each page is also bounded by bytes) with a continue token.
    pub limit: i64,
    pub continue_token: String,
    /// Empty: the latest data. "0": any recent data, which the apiserver
    /// serves from its watch cache (cheaper; what watchers list with).
    pub resource_version: String,
}

impl ListParams {
    /// The page size sent to the server.
    pub fn page_size(&self) -> i64 {
        if self.limit > 0 {
            self.limit
        } else {
            DEFAULT_PAGE_SIZE
        }
    }
}

/// Options of a watch call.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    pub label_selector: String,
    pub field_selector: String,
    pub allow_bookmarks: bool,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ObjectList<K> {
    pub items: Vec<K>,
    /// The revision the list is consistent with; watch from here.
    pub resource_version: String,
    pub continue_token: String,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// Every event up to this resourceVersion has been delivered.
    Bookmark(String),
}

impl<K> WatchEvent<K> {
    /// The resourceVersion a resumed watch should start after.
    pub fn map<T>(self, f: impl FnOnce(K) -> T) -> WatchEvent<T> {
        match self {
            Self::Added(k) => WatchEvent::Added(f(k)),
            Self::Modified(k) => WatchEvent::Modified(f(k)),
            Self::Deleted(k) => WatchEvent::Deleted(f(k)),
            Self::Bookmark(rv) => WatchEvent::Bookmark(rv),
        }
    }
}

fn normalize_url(url: &str, tls: bool) -> String {
    let url = url.trim();
    if url.contains("://") {
        url.to_string()
    } else if tls {
        format!("https://{url}")
    } else {
        format!("http://{url}")
    }
}

impl Client {
    /// A client for the given server URLs (`http://host:port` or `host:port`)
    /// without credentials. Connections are made lazily, on first use; call
    /// this inside a Tokio runtime.
    pub fn new<S: AsRef<str>>(urls: &[S]) -> Result<Self, Error> {
        Self::with_options(urls, &ClientOptions::default())
    }

    /// A client with TLS and/or a bearer token. TLS files are read now (a
    /// bad file is an error here) and again when they change on disk.
    pub fn with_options<S: AsRef<str>>(urls: &[S], options: &ClientOptions) -> Result<Self, Error> {
        let tls = match &options.tls {
            Some(files) => Some(Arc::new(
                ClientTls::load(files.clone()).map_err(|e| Error::Credentials(e.to_string()))?,
            )),
            None => None,
        };
        let mut servers = Vec::new();
        for url in urls
            .iter()
            .map(AsRef::as_ref)
            .filter(|u| !u.trim().is_empty())
        {
            let url = normalize_url(url, tls.is_some());
            if url.starts_with("https://") && tls.is_none() {
                return Err(Error::Credentials(format!(
                    "{url} is a TLS server: give the CA that signed its certificate (--ca-file)"
                )));
            }
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| Error::BadEndpoint(url.clone(), e.to_string()))?
                .http2_keep_alive_interval(Duration::from_secs(20))
                .keep_alive_timeout(Duration::from_secs(10));
            servers.push(Server {
                url,
                channel: endpoint.connect_with_connector_lazy(Connector::new(tls.clone())),
            });
        }
        if servers.is_empty() {
            return Err(Error::BadEndpoint(String::new(), "no server given".into()));
        }
        Ok(Self {
            servers: servers.into(),
            preferred: Arc::new(AtomicUsize::new(0)),
            credentials: Credentials::new(options.token.as_deref())?,
        })
    }

    /// The server URLs, comma-separated, for messages.
    pub fn endpoints(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The stub of each server, the preferred one first: for calls that
    /// cannot be replayed by [`Client::call`] (an upload streams a file,
    /// which is reopened for the next server).
    pub(crate) fn stubs(&self) -> Vec<(String, Grpc)> {
        let start = self.preferred.load(Ordering::Relaxed);
        (0..self.servers.len())
            .map(|i| {
                let server = &self.servers[(start + i) % self.servers.len()];
                let grpc = ResourcesClient::with_interceptor(
                    server.channel.clone(),
                    self.credentials.clone(),
                )
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
                (server.url.clone(), grpc)
            })
            .collect()
    }

    /// Runs `call` against the preferred server, then each other one while
    /// servers are unreachable.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Grpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.servers.len() {
            let index = (start + i) % self.servers.len();
            let grpc = ResourcesClient::with_interceptor(
                self.servers[index].channel.clone(),
                self.credentials.clone(),
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
            match call(grpc).await {
                Ok(response) => {
                    if index != start {
                        self.preferred.store(index, Ordering::Relaxed);
                    }
                    return Ok(response.into_inner());
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    last = format!("{}: {}", self.servers[index].url, with_causes(&status));
                }
                Err(status) if is_transport_failure(&status) => {
                    // The connection broke (a TLS handshake refused, say):
                    // tonic's own message is only "transport error".
                    return Err(Error::Server {
                        code: status.code(),
                        message: format!(
                            "{}: {}; the connection failed: if the server serves TLS it \
                             needs --ca-file, and --cert-file/--key-file when it requires \
                             client certificates",
                            self.servers[index].url,
                            with_causes(&status)
                        ),
                    });
                }
                Err(status) => return Err(Error::from_status(status)),
            }
        }
        Err(Error::Unavailable {
            endpoints: self.endpoints(),
            message: last,
        })
    }

    pub async fn create(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.create_as(object, false).await
    }

    /// A server-side dry run of [`Client::create`]: admitted and validated
    /// by the apiserver (RBAC included), stored nowhere.
    pub async fn create_dry_run(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.create_as(object, true).await
    }

    async fn create_as(&self, object: &Value, dry_run: bool) -> Result<DynamicObject, Error> {
        let envelope = envelope(object)?;
        let out = self
            .call(|mut c| {
                let object = Some(envelope.clone());
                async move { c.create(pb::CreateRequest { object, dry_run }).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    pub async fn get(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<DynamicObject, Error> {
        let request = pb::GetRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let out = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.get(request).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// Lists one page (at most `params.page_size()` objects); an empty
    /// `namespace` lists every namespace.
    pub async fn list(
        &self,
        kind: &str,
        namespace: &str,
        params: &ListParams,
    ) -> Result<ObjectList<DynamicObject>, Error> {
        let request = pb::ListRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            limit: params.page_size(),
            continue_token: params.continue_token.clone(),
            resource_version: params.resource_version.clone(),
        };
        let out = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.list(request).await }
            })
            .await?;
        Ok(ObjectList {
            items: out
                .items
                .iter()
                .map(decode_dynamic)
                .collect::<Result<_, _>>()?,
            resource_version: out.resource_version,
            continue_token: out.continue_token,
        })
    }

    /// Lists every page, following continue tokens.
    pub async fn list_all(
        &self,
        kind: &str,
        namespace: &str,
        params: &ListParams,
    ) -> Result<ObjectList<DynamicObject>, Error> {
        let mut params = params.clone();
        let mut all = self.list(kind, namespace, &params).await?;
        while !all.continue_token.is_empty() {
            params.continue_token = std::mem::take(&mut all.continue_token);
            let page = self.list(kind, namespace, &params).await?;
            all.items.extend(page.items);
            all.continue_token = page.continue_token;
        }
        Ok(all)
    }

    /// Replaces spec and metadata; `metadata.resourceVersion`, when set, must
    /// be current.
    pub async fn update(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.update_as(object, false).await
    }

    /// A server-side dry run of [`Client::update`]: checked as an update
    /// (precondition, admission, immutable fields), stored nowhere.
    pub async fn update_dry_run(&self, object: &Value) -> Result<DynamicObject, Error> {
        self.update_as(object, true).await
    }

    async fn update_as(&self, object: &Value, dry_run: bool) -> Result<DynamicObject, Error> {
        let envelope = envelope(object)?;
        let out = self
            .call(|mut c| {
                let object = Some(envelope.clone());
                async move { c.update(pb::UpdateRequest { object, dry_run }).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// Replaces status only.
    pub async fn update_status(&self, object: &Value) -> Result<DynamicObject, Error> {
        let envelope = envelope(object)?;
        let out = self
            .call(|mut c| {
                let object = Some(envelope.clone());
                async move {
                    c.update_status(pb::UpdateRequest {
                        object,
                        dry_run: false,
                    })
                    .await
                }
            })
            .await?;
        decode_dynamic(&out)
    }

    pub async fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<DynamicObject, Error> {
        let request = pb::DeleteRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            resource_version: resource_version.unwrap_or_default().to_string(),
        };
        let out = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.delete(request).await }
            })
            .await?;
        decode_dynamic(&out)
    }

    /// Watches changes after `resource_version` (empty: the current state as
    /// Added events first). The stream ends when the server closes it.
    pub async fn watch(
        &self,
        kind: &str,
        namespace: &str,
        params: &WatchParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<DynamicObject>, Error>>, Error> {
        let request = pb::WatchRequest {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            resource_version: resource_version.to_string(),
            allow_bookmarks: params.allow_bookmarks,
        };
        let stream = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.watch(request).await }
            })
            .await?;
        Ok(stream
            .map(|item| match item {
                Ok(event) => decode_event(event),
                Err(status) => Err(Error::from_status(status)),
            })
            .boxed())
    }
}

/// What [`Client::logs_with`] asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the TaskRun finishes.
    pub follow: bool,
    /// Start at this byte offset of the plain output.
    pub offset: i64,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// > 0: only lines written in the last this many seconds.
    pub since_seconds: i64,
    /// Tag each chunk with the stream that wrote it (not with dated lines).
    pub split_streams: bool,
}

/// Which of a payload's streams wrote a [`LogChunk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// Not known: the combined output (not asked for, or an older agent).
    Combined,
    Stdout,
    Stderr,
}

/// A part of a TaskRun's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    pub data: Vec<u8>,
    pub stream: LogStream,
    /// Where a resumed read goes on in the plain output; None from agents
    /// that do not say (count the bytes then).
    pub next_offset: Option<i64>,
}

impl From<pb::LogChunk> for LogChunk {
    fn from(chunk: pb::LogChunk) -> Self {
        let stream = match pb::LogStream::try_from(chunk.stream) {
            Ok(pb::LogStream::Stdout) => LogStream::Stdout,
            Ok(pb::LogStream::Stderr) => LogStream::Stderr,
            _ => LogStream::Combined,
        };
        Self {
            data: chunk.data,
            stream,
            next_offset: (chunk.next_offset > 0).then_some(chunk.next_offset),
        }
    }
}

impl Client {
    /// The output of TaskRun `namespace/name` from `offset` on, as chunks of
    /// bytes; with `follow`, until the TaskRun finishes.
    pub async fn logs(
        &self,
        namespace: &str,
        name: &str,
        follow: bool,
        offset: i64,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, Error>>, Error> {
        let options = LogOptions {
            follow,
            offset,
            ..LogOptions::default()
        };
        self.logs_with(namespace, name, &options).await
    }

    /// [`Client::logs`] with per-line times: each line prefixed with when
    /// it was written, or only the lines of the last `since_seconds`.
    pub async fn logs_with(
        &self,
        namespace: &str,
        name: &str,
        options: &LogOptions,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, Error>>, Error> {
        let chunks = self.log_chunks(namespace, name, options).await?;
        Ok(chunks.map(|item| item.map(|chunk| chunk.data)).boxed())
    }

    /// [`Client::logs_with`] as chunks that say which stream wrote them
    /// (with `split_streams`) and where a resumed read goes on.
    pub async fn log_chunks(
        &self,
        namespace: &str,
        name: &str,
        options: &LogOptions,
    ) -> Result<BoxStream<'static, Result<LogChunk, Error>>, Error> {
        let request = pb::LogsRequest {
            namespace: namespace.to_string(),
            name: name.to_string(),
            follow: options.follow,
            offset: options.offset,
            timestamps: options.timestamps,
            since_seconds: options.since_seconds,
            split_streams: options.split_streams,
        };
        let stream = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.logs(request).await }
            })
            .await?;
        Ok(stream
            .map(|item| item.map(LogChunk::from).map_err(Error::from_status))
            .boxed())
    }
}

impl Client {
    /// The version of the server answering (`(release, apiVersion)`).
    pub async fn server_version(&self) -> Result<(String, String), Error> {
        let info = self
            .call(|mut c| async move { c.version(pb::VersionRequest {}).await })
            .await?;
        Ok((info.version, info.api_version))
    }

    /// A consistent copy of the apiserver's embedded store (admin only):
    /// the revision it is consistent with, and the redb file's bytes.
    pub async fn backup(&self) -> Result<(i64, BoxStream<'static, Result<Vec<u8>, Error>>), Error> {
        let mut stream = self
            .call(|mut c| async move { c.backup(pb::BackupRequest {}).await })
            .await?;
        // The first chunk carries the revision (a store is never empty:
        // redb writes its header).
        let first = match stream.next().await {
            Some(chunk) => chunk.map_err(Error::from_status)?,
            None => pb::BackupChunk::default(),
        };
        let revision = first.revision;
        let rest = stream.map(|item| item.map(|chunk| chunk.data).map_err(Error::from_status));
        Ok((
            revision,
            futures_util::stream::once(async move { Ok(first.data) })
                .chain(rest)
                .boxed(),
        ))
    }
}

/// A status's message followed by its causes, when it has any.
fn with_causes(status: &tonic::Status) -> String {
    crate::error::with_causes(status.message(), std::error::Error::source(status))
}

/// A status made by the client's transport rather than sent by a server
/// (Sloth's servers never answer Cancelled).
fn is_transport_failure(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unknown => std::error::Error::source(status).is_some(),
        tonic::Code::Cancelled => true,
        // Bytes that are not HTTP/2 (a TLS alert to a plaintext client).
        tonic::Code::Internal => status.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

fn envelope(object: &Value) -> Result<pb::Object, Error> {
    let text = |path: &[&str]| {
        let mut node = object;
        for part in path {
            node = match node.get(part) {
                Some(n) => n,
                None => return String::new(),
            };
        }
        node.as_str().unwrap_or_default().to_string()
    };
    let json = serde_json::to_vec(object).map_err(|e| Error::decode("object", e))?;
    Ok(pb::Object {
        kind: text(&["kind"]),
        namespace: text(&["metadata", "namespace"]),
        name: text(&["metadata", "name"]),
        resource_version: text(&["metadata", "resourceVersion"]),
        json,
    })
}

fn decode_dynamic(object: &pb::Object) -> Result<DynamicObject, Error> {
    serde_json::from_slice(&object.json)
        .map_err(|e| Error::decode(format!("{} {:?}", object.kind, object.name), e))
}

fn decode_event(event: pb::WatchEvent) -> Result<WatchEvent<DynamicObject>, Error> {
    use pb::watch_event::Type;
    let kind = Type::try_from(event.r#type)
        .map_err(|_| Error::decode("watch event", format!("unknown type {}", event.r#type)))?;
    if kind == Type::Bookmark {
        return Ok(WatchEvent::Bookmark(event.resource_version));
    }
    let object = event
        .object
        .as_ref()
        .ok_or_else(|| Error::decode("watch event", "no object"))
        .and_then(decode_dynamic)?;
    Ok(match kind {
        Type::Added => WatchEvent::Added(object),
        Type::Modified => WatchEvent::Modified(object),
        Type::Deleted => WatchEvent::Deleted(object),
        Type::Bookmark => WatchEvent::Bookmark(event.resource_version),
    })
}

/// Converts a dynamic object to a typed one. Only `spec` and `status` are
/// decoded, from the values they already are (moved, not copied): every
/// watch event of every typed watch goes through here, and a Workflow's
/// can be close to 1 MiB.
pub fn to_typed<S: Spec>(object: DynamicObject) -> Result<Object<S>, Error> {
    let DynamicObject {
        api_version,
        kind,
        metadata,
        spec,
        status,
    } = object;
    let what = || format!("{} {:?}", S::KIND, metadata.name);
    if spec.is_null() {
        return Err(Error::decode(what(), "missing field `spec`"));
    }
    let spec = serde_json::from_value(spec).map_err(|e| Error::decode(what(), e))?;
    let status = match status {
        serde_json::Value::Null => None,
        status => Some(serde_json::from_value(status).map_err(|e| Error::decode(what(), e))?),
    };
    Ok(Object {
        api_version,
        kind,
        metadata,
        spec,
        status,
    })
}

fn to_value<S: Spec>(object: &Object<S>) -> Result<Value, Error> {
    serde_json::to_value(object).map_err(|e| Error::decode(S::KIND, e))
}

/// Typed access to one kind, in one namespace or across all.
#[derive(Clone, Debug)]
pub struct Api<S> {
    client: Client,
    namespace: String,
    _kind: PhantomData<fn() -> S>,
}

impl<S: Spec> Api<S> {
    /// Objects of a namespaced kind in `namespace`.
    pub fn namespaced(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            _kind: PhantomData,
        }
    }

    /// Objects in every namespace, or of a cluster-scoped kind.
    pub fn all(client: Client) -> Self {
        Self::namespaced(client, "")
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn with_namespace(&self, object: &Object<S>) -> Result<Value, Error> {
        let mut value = to_value(object)?;
        if !self.namespace.is_empty() && object.metadata.namespace.is_empty() {
            value["metadata"]["namespace"] = Value::String(self.namespace.clone());
        }
        Ok(value)
    }

    pub async fn get(&self, name: &str) -> Result<Object<S>, Error> {
        to_typed(self.client.get(S::KIND, &self.namespace, name).await?)
    }

    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<Object<S>>, Error> {
        let list = self
            .client
            .list_all(S::KIND, &self.namespace, params)
            .await?;
        Ok(ObjectList {
            items: list
                .items
                .into_iter()
                .map(to_typed)
                .collect::<Result<_, _>>()?,
            resource_version: list.resource_version,
            continue_token: list.continue_token,
        })
    }

    pub async fn create(&self, object: &Object<S>) -> Result<Object<S>, Error> {
        to_typed(self.client.create(&self.with_namespace(object)?).await?)
    }

    /// Replaces spec and metadata (compare-and-swap on resourceVersion when set).
    pub async fn replace(&self, object: &Object<S>) -> Result<Object<S>, Error> {
        to_typed(self.client.update(&self.with_namespace(object)?).await?)
    }

    /// Replaces status only (compare-and-swap on resourceVersion when set).
    pub async fn update_status(&self, object: &Object<S>) -> Result<Object<S>, Error> {
        to_typed(
            self.client
                .update_status(&self.with_namespace(object)?)
                .await?,
        )
    }

    pub async fn delete(&self, name: &str) -> Result<Object<S>, Error> {
        to_typed(
            self.client
                .delete(S::KIND, &self.namespace, name, None)
                .await?,
        )
    }

    /// One watch stream after `resource_version`; see [`crate::watcher`] for a
    /// stream that survives disconnects.
    pub async fn watch(
        &self,
        params: &WatchParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<Object<S>>, Error>>, Error> {
        let stream = self
            .client
            .watch(S::KIND, &self.namespace, params, resource_version)
            .await?;
        Ok(stream
            .map(|item| {
                item.and_then(|event| match event {
                    WatchEvent::Added(o) => to_typed(o).map(WatchEvent::Added),
                    WatchEvent::Modified(o) => to_typed(o).map(WatchEvent::Modified),
                    WatchEvent::Deleted(o) => to_typed(o).map(WatchEvent::Deleted),
                    WatchEvent::Bookmark(rv) => Ok(WatchEvent::Bookmark(rv)),
                })
            })
            .boxed())
    }
}
