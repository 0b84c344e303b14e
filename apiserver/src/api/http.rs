//! HTTP endpoints: `/healthz` (the process is up), `/readyz` (the store
//! answers, accepts writes, and the server is not shutting down), `/metrics` (Prometheus;
//! for authenticated callers when credentials are configured).

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use sloth_sdk::tls::{Conn, PeerInfo};
use tokio::sync::mpsc;

use crate::access::guard::{Guard, HttpRefusal};
use crate::metrics::Metrics;
use crate::store::Store;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Debug)]
struct HttpState {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    guard: Arc<Guard>,
}

/// The router for the HTTP port; with `rest`, the REST API too.
pub fn router(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    guard: Arc<Guard>,
    rest: Option<crate::api::rest::Rest>,
) -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/version", get(version))
        .merge(crate::api::ui::router())
        .with_state(HttpState {
            store,
            metrics,
            shutdown,
            guard,
        });
    match rest {
        Some(rest) => router.merge(rest.router()),
        None => router,
    }
}

/// `/version`: public, as `/healthz` (no object is named).
async fn version() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::api::version::json().to_string(),
    )
}

/// Connections accepted (and TLS-handshaked) by [`sloth_sdk::tls::accept`],
/// as axum serves them.
pub struct ConnListener {
    conns: mpsc::Receiver<Conn>,
    local_addr: std::net::SocketAddr,
}

impl ConnListener {
    pub fn new(conns: mpsc::Receiver<Conn>, local_addr: std::net::SocketAddr) -> Self {
        Self { conns, local_addr }
    }
}

/// The peer of an HTTP connection.
#[derive(Clone, Debug)]
pub struct HttpPeer(PeerInfo);

impl HttpPeer {
    pub fn info(&self) -> &PeerInfo {
        &self.0
    }
}

impl axum::serve::Listener for ConnListener {
    type Io = Conn;
    type Addr = HttpPeer;

    async fn accept(&mut self) -> (Conn, HttpPeer) {
        match self.conns.recv().await {
            Some(conn) => {
                let peer = HttpPeer(conn.peer().clone());
                (conn, peer)
            }
            // The accept loop ended at shutdown; the server stops serving
            // through its own graceful shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<HttpPeer> {
        Ok(HttpPeer(PeerInfo {
            remote_addr: self.local_addr,
            certificate: None,
        }))
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, ConnListener>>
    for HttpPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, ConnListener>) -> Self {
        stream.remote_addr().clone()
    }
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_string());
    }
    if let Some(fault) = state.store.fault() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store is read-only after an I/O error: {fault}"),
        );
    }
    // Bounded: a load balancer's health check must get an answer even
    // while the store hangs (etcd without quorum).
    match tokio::time::timeout(READY_TIMEOUT, state.store.current_revision()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok".to_string()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store: no answer within {READY_TIMEOUT:?}"),
        ),
    }
}

async fn metrics_text(
    State(state): State<HttpState>,
    ConnectInfo(HttpPeer(peer)): ConnectInfo<HttpPeer>,
    headers: HeaderMap,
) -> axum::response::Response {
    match state.guard.authenticate_http(headers, &peer) {
        Ok(_) => {}
        Err(HttpRefusal::Unauthenticated(e)) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("unauthenticated: {e}\n"),
            )
                .into_response();
        }
        Err(HttpRefusal::Throttled(e)) => {
            return (StatusCode::TOO_MANY_REQUESTS, format!("{e}\n")).into_response();
        }
    }
    let revision = state.store.current_revision().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(revision),
    )
        .into_response()
}
