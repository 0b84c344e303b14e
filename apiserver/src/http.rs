//! HTTP endpoints: `/healthz` (the process is up), `/readyz` (the store
//! answers and the server is not shutting down), `/metrics` (Prometheus).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Debug)]
struct HttpState {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

/// The router for the HTTP port.
pub fn router(store: Arc<dyn Store>, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState {
            store,
            metrics,
            shutdown,
        })
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_string());
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

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    let revision = state.store.current_revision().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(revision),
    )
}
