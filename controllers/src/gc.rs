//! Garbage collection.
//!
//! - **Dependents by ownerReferences**: a TaskRun owned by a Workflow (an
//!   ownerReference of kind Workflow) whose owner is gone — no Workflow of
//!   that name and uid in the TaskRun's namespace, in the cache and then on
//!   the server — is deleted. The agent running it sees the deletion and
//!   kills its process group, so running dependents are stopped first.
//! - **ttlAfterFinished**: a Workflow with `spec.ttlAfterFinished` is
//!   deleted that long after it finished (Succeeded, Failed or Cancelled,
//!   from `status.completionTime`); its TaskRuns follow as above.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::objects::{TaskRun, TaskRunSpec, WorkflowPhase, WorkflowSpec};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, Store, reflector, store};
use sloth_sdk::watcher::{Event, watch_objects};
use sloth_sdk::{Api, Client, Error, OwnerReference, Spec, WatchParams};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::workflow_lifetime::{WorkflowLifetime, WorkflowView};

/// How soon a TaskRun is looked at again while the Workflow cache is not
/// filled yet, or after a lost compare-and-swap.
const RETRY: Duration = Duration::from_millis(500);

/// Slack after a TTL runs out before the Workflow is deleted.
const SLACK: Duration = Duration::from_millis(100);

/// The ownerReferences of `taskrun` that point at Workflows.
pub fn workflow_owners(taskrun: &TaskRun) -> impl Iterator<Item = &OwnerReference> {
    taskrun
        .metadata
        .owner_references
        .iter()
        .filter(|owner| owner.kind == WorkflowSpec::KIND)
}

/// Whether `owner` is the Workflow `found` (the Workflow of its name in the
/// dependent's namespace, if any): same name and same uid.
pub fn owner_is(owner: &OwnerReference, found: Option<&WorkflowView>) -> bool {
    found.is_some_and(|wf| wf.name() == owner.name && wf.metadata.uid == owner.uid)
}

/// A TaskRun is orphaned when it has Workflow owners and none of them is
/// alive; `lookup` finds the Workflow of a name in the TaskRun's namespace.
/// A TaskRun already being deleted is not collected again.
pub fn orphaned<'a>(taskrun: &TaskRun, lookup: impl Fn(&str) -> Option<&'a WorkflowView>) -> bool {
    if taskrun.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let mut owners = workflow_owners(taskrun).peekable();
    owners.peek().is_some() && owners.all(|owner| !owner_is(owner, lookup(&owner.name)))
}

/// What the TTL asks of a Workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No TTL, or not finished yet: nothing until it changes.
    Keep,
    /// Due at this time: look again then.
    DueAt(DateTime<Utc>),
    /// Due: delete it.
    Delete,
}

/// Judges `workflow`'s `ttlAfterFinished` at `now`.
pub fn judge_ttl(workflow: &WorkflowView, now: DateTime<Utc>) -> Ttl {
    let Some(ttl) = workflow.spec.ttl_after_finished else {
        return Ttl::Keep;
    };
    if workflow.metadata.deletion_timestamp.is_some() {
        return Ttl::Keep;
    }
    let status = workflow.status_or_default();
    let finished = matches!(
        status.phase,
        WorkflowPhase::Succeeded | WorkflowPhase::Failed | WorkflowPhase::Cancelled
    );
    let (true, Some(completed)) = (finished, status.completion_time) else {
        return Ttl::Keep;
    };
    judge_due(ttl.as_std(), completed, now)
}

/// Judges at `now` something that finished at `completed` and is to be
/// deleted `ttl` later.
pub fn judge_due(ttl: Duration, completed: DateTime<Utc>, now: DateTime<Utc>) -> Ttl {
    let due = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| completed.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if due <= now {
        Ttl::Delete
    } else {
        Ttl::DueAt(due)
    }
}

/// Acts on a TTL judgment of an object: nothing, a requeue for when it is
/// due, or its deletion, with its resourceVersion as precondition (a
/// changed object is judged again). Returns what next, and whether the
/// object was deleted now.
pub async fn expire(
    client: &Client,
    kind: &str,
    meta: &sloth_sdk::ObjectMeta,
    judgment: Ttl,
    now: DateTime<Utc>,
) -> Result<(Action, bool), Error> {
    match judgment {
        Ttl::Keep => return Ok((Action::await_change(), false)),
        Ttl::DueAt(due) => {
            let wait = (due - now).to_std().unwrap_or_default() + SLACK;
            return Ok((Action::requeue(wait), false));
        }
        Ttl::Delete => {}
    }
    let deleted = client
        .delete(
            kind,
            &meta.namespace,
            &meta.name,
            Some(&meta.resource_version),
        )
        .await;
    match deleted {
        Ok(_) => Ok((Action::await_change(), true)),
        Err(Error::NotFound(_)) => Ok((Action::await_change(), false)),
        // Changed meanwhile: its event brings it back here.
        Err(Error::Conflict(_)) => Ok((Action::requeue(RETRY), false)),
        Err(e) => Err(e),
    }
}

struct TaskRunCtx {
    client: Client,
    workflows: Store<WorkflowLifetime>,
}

struct WorkflowCtx {
    client: Client,
}

/// Runs both garbage collectors until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    tokio::join!(
        run_dependents(client.clone(), shutdown.clone()),
        run_ttl(client, shutdown),
    );
}

/// Deletes TaskRuns whose owning Workflow is gone.
async fn run_dependents(client: Client, shutdown: CancellationToken) {
    let taskruns: Api<TaskRunSpec> = Api::all(client.clone());
    let workflows: Api<WorkflowLifetime> = Api::all(client.clone());
    // Only TaskRuns a Workflow owns can be orphaned: ad-hoc ones are
    // neither cached nor reconciled here.
    let owned = crate::relevant::only(
        watch_objects(&taskruns, "", WatchParams::default()),
        |taskrun: &TaskRun| workflow_owners(taskrun).next().is_some(),
    );
    let controller =
        Controller::from_stream(owned).observe(crate::metrics::global().controller("taskrun-gc"));
    let taskrun_cache = controller.store();
    // The Workflow cache is filled by the same stream that triggers the
    // TaskRun reconciles, so a reconcile caused by a deletion never finds
    // the deleted Workflow still cached.
    let (workflow_cache, writer) = store();
    let (relisted, relists) = mpsc::unbounded_channel::<()>();
    let workflow_events = reflector(
        writer,
        watch_objects(&workflows, "", WatchParams::default()),
    )
    .filter(move |item| match item {
        Ok(Event::Deleted(_)) => true,
        // Workflows deleted while the watch was down: look at every
        // TaskRun again.
        Ok(Event::Restarted(_)) => {
            let _ = relisted.send(());
            false
        }
        _ => false,
    });
    let ctx = Arc::new(TaskRunCtx {
        client,
        workflows: workflow_cache,
    });
    controller
        .watches_stream(workflow_events, move |workflow: &WorkflowView| {
            dependents_of(&taskrun_cache, workflow)
        })
        .reconcile_all_on(UnboundedReceiverStream::new(relists))
        .graceful_shutdown_on(shutdown)
        .run(reconcile_taskrun, |_, _: &Error, _| Action::backoff(), ctx)
        .await;
}

/// The cached TaskRuns that name `workflow` (by namespace and name) as owner.
fn dependents_of(taskruns: &Store<TaskRunSpec>, workflow: &WorkflowView) -> Vec<ObjectRef> {
    taskruns
        .state()
        .iter()
        .filter(|tr| {
            tr.namespace() == workflow.namespace()
                && workflow_owners(tr).any(|owner| owner.name == workflow.name())
        })
        .map(|tr| ObjectRef::from_obj(tr.as_ref()))
        .collect()
}

async fn reconcile_taskrun(taskrun: Arc<TaskRun>, ctx: Arc<TaskRunCtx>) -> Result<Action, Error> {
    if workflow_owners(&taskrun).next().is_none() {
        return Ok(Action::await_change());
    }
    if !ctx.workflows.is_ready() {
        return Ok(Action::requeue(RETRY));
    }
    let namespace = taskrun.namespace();
    let cached: Vec<Arc<WorkflowView>> = workflow_owners(&taskrun)
        .filter_map(|owner| {
            ctx.workflows
                .get(&ObjectRef::new(namespace, owner.name.as_str()))
        })
        .collect();
    let find = |name: &str| cached.iter().map(Arc::as_ref).find(|wf| wf.name() == name);
    if !orphaned(&taskrun, find) {
        return Ok(Action::await_change());
    }
    // The cache may lag behind a Workflow created just now: ask the server.
    let api: Api<WorkflowLifetime> = Api::namespaced(ctx.client.clone(), namespace);
    let mut fresh = Vec::new();
    for owner in workflow_owners(&taskrun) {
        match api.get(&owner.name).await {
            Ok(wf) => fresh.push(wf),
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let find = |name: &str| fresh.iter().find(|wf| wf.name() == name);
    if !orphaned(&taskrun, find) {
        return Ok(Action::await_change());
    }
    // Precondition on the copy judged: a TaskRun recreated under the same
    // name is judged afresh.
    let deleted = ctx
        .client
        .delete(
            TaskRunSpec::KIND,
            namespace,
            taskrun.name(),
            Some(&taskrun.metadata.resource_version),
        )
        .await;
    match deleted {
        Ok(_) => {
            let owners: Vec<&str> = workflow_owners(&taskrun).map(|o| o.name.as_str()).collect();
            tracing::info!(
                taskrun = %format!("{namespace}/{}", taskrun.name()),
                owner = %owners.join(","),
                "deleted a taskrun whose workflow is gone"
            );
            Ok(Action::await_change())
        }
        Err(Error::NotFound(_)) => Ok(Action::await_change()),
        Err(Error::Conflict(_)) => Ok(Action::requeue(RETRY)),
        Err(e) => Err(e),
    }
}

/// Deletes finished Workflows once their `ttlAfterFinished` has passed.
async fn run_ttl(client: Client, shutdown: CancellationToken) {
    let workflows: Api<WorkflowLifetime> = Api::all(client.clone());
    Controller::new(workflows, "", WatchParams::default())
        .observe(crate::metrics::global().controller("workflow-gc"))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile_workflow,
            |_, _: &Error, _| Action::backoff(),
            Arc::new(WorkflowCtx { client }),
        )
        .await;
}

async fn reconcile_workflow(
    workflow: Arc<WorkflowView>,
    ctx: Arc<WorkflowCtx>,
) -> Result<Action, Error> {
    let now = Utc::now();
    let judgment = judge_ttl(&workflow, now);
    let (action, deleted) = expire(
        &ctx.client,
        WorkflowSpec::KIND,
        &workflow.metadata,
        judgment,
        now,
    )
    .await?;
    if deleted {
        tracing::info!(
            workflow = %format!("{}/{}", workflow.namespace(), workflow.name()),
            ttl = %workflow.spec.ttl_after_finished.unwrap_or_default(),
            "deleted a finished workflow past its ttlAfterFinished"
        );
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;
    use crate::workflow_lifetime::WorkflowEnd;

    fn workflow(name: &str, uid: &str) -> WorkflowView {
        let mut wf = WorkflowView::new(name, WorkflowLifetime::default());
        wf.metadata.namespace = "ns".into();
        wf.metadata.uid = uid.into();
        wf
    }

    fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: sloth_sdk::API_VERSION.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
        }
    }

    fn taskrun(owners: Vec<OwnerReference>) -> TaskRun {
        let mut tr = TaskRun::new("t", TaskRunSpec::default());
        tr.metadata.namespace = "ns".into();
        tr.metadata.owner_references = owners;
        tr
    }

    #[test]
    fn a_taskrun_without_workflow_owner_is_never_collected() {
        assert!(!orphaned(&taskrun(vec![]), |_| None));
        assert!(!orphaned(
            &taskrun(vec![owner("CronWorkflow", "c", "u1")]),
            |_| None
        ));
    }

    #[test]
    fn a_taskrun_whose_workflow_is_gone_is_collected() {
        let tr = taskrun(vec![owner("Workflow", "w", "u1")]);
        assert!(orphaned(&tr, |_| None));
        let alive = workflow("w", "u1");
        assert!(!orphaned(&tr, |name| (name == "w").then_some(&alive)));
        // Same name, another uid: the owner was deleted and recreated.
        let successor = workflow("w", "u2");
        assert!(orphaned(&tr, |name| (name == "w").then_some(&successor)));
        let mut deleting = tr.clone();
        deleting.metadata.deletion_timestamp = Some(at(0));
        assert!(!orphaned(&deleting, |_| None));
    }

    #[test]
    fn a_taskrun_is_kept_while_any_workflow_owner_lives() {
        let tr = taskrun(vec![
            owner("Workflow", "a", "u1"),
            owner("Workflow", "b", "u2"),
        ]);
        let b = workflow("b", "u2");
        assert!(!orphaned(&tr, |name| (name == "b").then_some(&b)));
    }

    fn finished(phase: WorkflowPhase, completed: Option<i64>, ttl: Option<u64>) -> WorkflowView {
        let mut wf = workflow("w", "u1");
        wf.spec.ttl_after_finished = ttl.map(sloth_sdk::duration::Duration::from_secs);
        wf.status = Some(WorkflowEnd {
            phase,
            completion_time: completed.map(at),
        });
        wf
    }

    #[test]
    fn ttl_counts_from_completion_of_finished_workflows() {
        for phase in [
            WorkflowPhase::Succeeded,
            WorkflowPhase::Failed,
            WorkflowPhase::Cancelled,
        ] {
            let wf = finished(phase, Some(10), Some(60));
            assert_eq!(judge_ttl(&wf, at(20)), Ttl::DueAt(at(70)), "{phase:?}");
            assert_eq!(judge_ttl(&wf, at(70)), Ttl::Delete, "{phase:?}");
        }
        assert_eq!(
            judge_ttl(
                &finished(WorkflowPhase::Succeeded, Some(10), Some(0)),
                at(10)
            ),
            Ttl::Delete
        );
    }

    #[test]
    fn ttl_keeps_unfinished_or_ttl_less_workflows() {
        assert_eq!(
            judge_ttl(
                &finished(WorkflowPhase::Running, Some(10), Some(1)),
                at(100)
            ),
            Ttl::Keep
        );
        assert_eq!(
            judge_ttl(&finished(WorkflowPhase::Pending, None, Some(1)), at(100)),
            Ttl::Keep
        );
        assert_eq!(
            judge_ttl(&finished(WorkflowPhase::Succeeded, Some(10), None), at(100)),
            Ttl::Keep
        );
        assert_eq!(
            judge_ttl(&finished(WorkflowPhase::Failed, None, Some(1)), at(100)),
            Ttl::Keep
        );
        assert_eq!(judge_ttl(&workflow("w", "u"), at(100)), Ttl::Keep);
    }
}
