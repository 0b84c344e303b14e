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

mod api;
mod calls;
mod codec;
mod params;

pub use api::Api;
pub use codec::to_typed;
use codec::{decode_dynamic, decode_event, envelope, is_transport_failure, to_value, with_causes};
pub use params::{
    DEFAULT_PAGE_SIZE, ListParams, LogChunk, LogOptions, LogStream, ObjectList, WatchEvent,
    WatchParams,
};

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

    /// The stub of the server at `index`, with the token and message limits.
    fn stub(&self, index: usize) -> Grpc {
        ResourcesClient::with_interceptor(
            self.servers[index].channel.clone(),
            self.credentials.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The stub of each server, the preferred one first: for calls that
    /// cannot be replayed by [`Client::call`] (an upload streams a file,
    /// which is reopened for the next server).
    pub(crate) fn stubs(&self) -> Vec<(String, Grpc)> {
        let start = self.preferred.load(Ordering::Relaxed);
        (0..self.servers.len())
            .map(|i| {
                let index = (start + i) % self.servers.len();
                (self.servers[index].url.clone(), self.stub(index))
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
            match call(self.stub(index)).await {
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
}
