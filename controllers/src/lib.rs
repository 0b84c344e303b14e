//! Sloth's controllers: they reconcile desired state through the API.
#![forbid(unsafe_code)]

pub mod leader;
pub mod lifecycle;
pub mod lifecycle_controller;
pub mod scheduler;
pub mod workflow;

use sloth_sdk::Client;
use tokio_util::sync::CancellationToken;

/// Runs every controller while this process is the elected leader, until
/// `shutdown`.
pub async fn run_elected(client: Client, election: leader::Election, shutdown: CancellationToken) {
    let lead_client = client.clone();
    leader::run_elected(client, election, shutdown, move |term| {
        run_all(lead_client.clone(), term)
    })
    .await;
}

/// Runs every controller until `shutdown` fires and they have finished.
pub async fn run_all(client: Client, shutdown: CancellationToken) {
    tokio::join!(
        scheduler::controller::run(client.clone(), shutdown.clone()),
        lifecycle_controller::run(client, shutdown),
    );
}
