//! A small controller on the sdk runtime: for every Workflow it logs the
//! phase and how many tasks it has, and looks again a minute later. The
//! runtime keeps a watch-fed cache, deduplicates work per object and backs
//! off after errors; the reconciler only decides. Stop it with Ctrl-C.
//!
//! ```sh
//! cargo run -p sloth-sdk --example workflow_reporter -- http://127.0.0.1:50053
//! ```

use std::sync::Arc;
use std::time::Duration;

use sloth_sdk::objects::{Workflow, WorkflowSpec};
use sloth_sdk::runtime::{Action, Controller};
use sloth_sdk::{Api, Client, Error, WatchParams};
use tokio_util::sync::CancellationToken;

/// What the reconciler needs besides the object: here only a prefix for
/// its lines; a real controller keeps its client here to write.
struct Context {
    prefix: String,
}

/// Level-triggered: judges the Workflow as it is now, whatever changed.
async fn reconcile(workflow: Arc<Workflow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let phase = workflow
        .status
        .as_ref()
        .map(|s| s.phase)
        .unwrap_or_default();
    println!(
        "{}{}/{}: {phase:?}, {} tasks",
        ctx.prefix,
        workflow.namespace(),
        workflow.name(),
        workflow.spec.tasks.len()
    );
    Ok(Action::requeue(Duration::from_secs(60)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50053".into());
    let client = Client::new(&[server])?;
    let workflows: Api<WorkflowSpec> = Api::all(client);
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    Controller::new(workflows, "", WatchParams::default())
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |_, _: &Error, _| Action::backoff(),
            Arc::new(Context {
                prefix: "workflow ".into(),
            }),
        )
        .await;
    Ok(())
}
