//! Sloth's controllers: they reconcile desired state through the API.
#![forbid(unsafe_code)]

pub mod lifecycle;
pub mod lifecycle_controller;
pub mod scheduler;

use sloth_sdk::Client;
use tokio_util::sync::CancellationToken;

/// Runs every controller until `shutdown` fires and they have finished.
pub async fn run_all(client: Client, shutdown: CancellationToken) {
    tokio::join!(
        scheduler::controller::run(client.clone(), shutdown.clone()),
        lifecycle_controller::run(client, shutdown),
    );
}
