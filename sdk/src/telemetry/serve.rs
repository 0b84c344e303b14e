//! A plain-HTTP `/metrics` (and `/healthz`) endpoint for the processes that
//! have no HTTP port of their own: sloth-controllers and sloth-agent.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::metrics::{CONTENT_TYPE, registry, render};

/// Binds `addr` (port 0: one the OS picks) and serves `registry` there until
/// `shutdown`. Returns the bound address; binding errors are the caller's.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&registry)) }
            }),
        );
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok(bound)
}

/// The `--metrics-address` endpoint of a binary: its registry (build and
/// process metrics, plus what `register` adds) served at `addr` until
/// `shutdown`. Logs the bound address; binding errors are the caller's.
pub async fn serve_metrics(
    component: &'static str,
    addr: SocketAddr,
    register: impl FnOnce(&mut Registry),
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let mut registry = registry(component);
    register(&mut registry);
    let bound = serve(addr, Arc::new(registry), shutdown).await?;
    // Tests read this line to learn the port the OS picked.
    tracing::info!("serving metrics on http://{bound}/metrics");
    Ok(bound)
}
