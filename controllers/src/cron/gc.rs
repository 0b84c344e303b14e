//! Garbage collection of a deleted CronWorkflow's Workflows: a Workflow
//! owned by a CronWorkflow (ownerReference of kind CronWorkflow) whose
//! owner is gone — none of that name and uid, in the cache and then on the
//! server — is deleted; its TaskRuns follow through [`crate::gc`].

use std::sync::Arc;
use std::time::Duration;

use sloth_sdk::objects::{CronWorkflow, CronWorkflowSpec, Workflow, WorkflowSpec};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, Store, reflector, store};
use sloth_sdk::watcher::watch_objects;
use sloth_sdk::well_known::CRONWORKFLOW_LABEL;
use sloth_sdk::{Api, Client, Error, Spec, WatchParams};
use tokio_util::sync::CancellationToken;

/// How soon a Workflow is looked at again while the CronWorkflow cache is
/// not filled yet, or after a lost compare-and-swap.
const RETRY: Duration = Duration::from_millis(500);

struct Ctx {
    client: Client,
    crons: Store<CronWorkflowSpec>,
}

/// The CronWorkflow that owns `wf`, if one does: (name, uid).
fn cron_owner(wf: &Workflow) -> Option<(&str, &str)> {
    wf.metadata
        .owner_references
        .iter()
        .find(|o| o.kind == CronWorkflowSpec::KIND)
        .map(|o| (o.name.as_str(), o.uid.as_str()))
}

fn is_owner(cron: Option<&CronWorkflow>, uid: &str) -> bool {
    cron.is_some_and(|c| c.metadata.uid == uid)
}

/// Deletes Workflows whose CronWorkflow is gone, until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let crons_api: Api<CronWorkflowSpec> = Api::all(client.clone());
    let workflows_api: Api<WorkflowSpec> = Api::all(client.clone());
    let (crons, writer) = store();
    let cron_events = reflector(
        writer,
        watch_objects(&crons_api, "", WatchParams::default()),
    );
    let owned = WatchParams {
        label_selector: CRONWORKFLOW_LABEL.into(),
        ..WatchParams::default()
    };
    let controller = Controller::new(workflows_api, "", owned)
        .observe(crate::metrics::global().controller("cron-gc"));
    let workflows = controller.store();
    controller
        // A deleted (or any changed) CronWorkflow: look at its Workflows.
        .watches_stream(cron_events, move |cron: &CronWorkflow| {
            workflows
                .state()
                .iter()
                .filter(|wf| {
                    wf.namespace() == cron.namespace()
                        && cron_owner(wf).is_some_and(|(name, _)| name == cron.name())
                })
                .map(|wf| ObjectRef::from_obj(wf.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |_, _: &Error, _| Action::backoff(),
            Arc::new(Ctx { client, crons }),
        )
        .await;
}

async fn reconcile(wf: Arc<Workflow>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some((name, uid)) = cron_owner(&wf) else {
        return Ok(Action::await_change());
    };
    if wf.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.crons.is_ready() {
        return Ok(Action::requeue(RETRY));
    }
    let namespace = wf.namespace();
    let cached = ctx.crons.get(&ObjectRef::new(namespace, name));
    if is_owner(cached.as_deref(), uid) {
        return Ok(Action::await_change());
    }
    // The cache may lag behind a CronWorkflow created just now.
    let fresh = match Api::<CronWorkflowSpec>::namespaced(ctx.client.clone(), namespace)
        .get(name)
        .await
    {
        Ok(cron) => Some(cron),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    if is_owner(fresh.as_ref(), uid) {
        return Ok(Action::await_change());
    }
    let deleted = ctx
        .client
        .delete(
            WorkflowSpec::KIND,
            namespace,
            wf.name(),
            Some(&wf.metadata.resource_version),
        )
        .await;
    match deleted {
        Ok(_) => {
            tracing::info!(workflow = %format!("{namespace}/{}", wf.name()), cronworkflow = name,
                "deleted a workflow whose cronworkflow is gone");
            Ok(Action::await_change())
        }
        Err(Error::NotFound(_)) => Ok(Action::await_change()),
        Err(Error::Conflict(_)) => Ok(Action::requeue(RETRY)),
        Err(e) => Err(e),
    }
}
