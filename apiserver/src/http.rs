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
    match state.store.current_revision().await {
        Ok(_) => (StatusCode::OK, "ok".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
    }
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    let revision = state.store.current_revision().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(revision),
    )
}
