//! The workflow controller's side of Stacks: a Workflow of a stack starts
//! only once it holds the stack (taken by compare-and-swap on the Stack's
//! `status.current`, so two never run at once), waits in phase Pending
//! with reason StackBusy otherwise, and when it finishes records its run
//! (and on success its outputs) and frees the stack.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use sloth_sdk::meta::Condition;
use sloth_sdk::objects::stack::STACK_BUSY;
use sloth_sdk::objects::{
    Stack, StackSpec, TaskRun, Workflow, WorkflowPhase, WorkflowSpec, WorkflowStatus,
};
use sloth_sdk::runtime::{ObjectRef, Store};
use sloth_sdk::{Api, Client, Error};

use super::history;

/// How often a waiting Workflow looks at its stack again.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);
/// The condition a Workflow carries once its run is in its stack's history.
pub const RECORDED: &str = "StackRecorded";

/// What a Workflow of a stack may do now.
#[derive(Debug)]
pub enum Gate {
    /// It holds the stack: run, giving new TaskRuns this environment.
    Run(BTreeMap<String, String>),
    /// Another holds the stack or is ahead in line.
    Busy(String),
}

/// The Stack named `name` in `namespace`, created on first use.
async fn get_or_create(api: &Api<StackSpec>, namespace: &str, name: &str) -> Result<Stack, Error> {
    match api.get(name).await {
        Err(Error::NotFound(_)) => {}
        other => return other,
    }
    let mut stack = Stack::new(name, StackSpec::default());
    stack.metadata.namespace = namespace.to_string();
    match api.create(&stack).await {
        Ok(created) => {
            tracing::info!(stack = name, "created stack on first use");
            Ok(created)
        }
        Err(Error::AlreadyExists(_)) => api.get(name).await,
        Err(e) => Err(e),
    }
}

/// Decides whether `wf` (unfinished, of stack `stack`) runs now, taking the
/// stack when it is free and `wf` is first in line.
pub async fn gate(
    client: &Client,
    wf: &Workflow,
    stack: &str,
    workflows: &Store<WorkflowSpec>,
) -> Result<Gate, Error> {
    let api: Api<StackSpec> = Api::namespaced(client.clone(), wf.namespace());
    let current = get_or_create(&api, wf.namespace(), stack).await?;
    let status = current.status_or_default();
    let run = |s: &Stack| Gate::Run(history::env(stack, &s.status_or_default().outputs));
    match status.current.as_deref() {
        Some(holder) if holder == wf.name() => return Ok(run(&current)),
        // Started under the stack already (it is only freed by the run's
        // end or deletion): never stop a running workflow here.
        _ if history::has_started(wf) => return Ok(run(&current)),
        Some(holder) => {
            if holds(client, workflows, wf.namespace(), holder).await? {
                return Ok(Gate::Busy(format!(
                    "stack {stack} is busy: workflow {holder} runs"
                )));
            }
            // Deleted while it held the stack: free it, then go on.
            let mut freed = current.clone();
            freed.status = Some(history::freed(&status, holder));
            api.update_status(&freed).await?;
            tracing::info!(stack, holder, "freed a stack whose workflow is gone");
            return Ok(Gate::Busy(format!("stack {stack} was freed; retrying")));
        }
        None => {}
    }
    let stack_workflows: Vec<std::sync::Arc<Workflow>> = workflows
        .state()
        .into_iter()
        .filter(|w| w.namespace() == wf.namespace() && w.spec.stack.as_deref() == Some(stack))
        .collect();
    let refs: Vec<&Workflow> = stack_workflows.iter().map(AsRef::as_ref).collect();
    if let Some(ahead) = history::ahead_of(wf, &refs) {
        return Ok(Gate::Busy(format!(
            "stack {stack} is busy: workflow {} was created earlier and goes first",
            ahead.name()
        )));
    }
    let mut taken = current.clone();
    taken.status = Some(history::started(
        &status,
        wf,
        current.spec.history_limit(),
        Utc::now(),
    ));
    match api.update_status(&taken).await {
        Ok(updated) => {
            tracing::info!(stack, workflow = wf.name(), "workflow took the stack");
            Ok(run(&updated))
        }
        Err(Error::Conflict(_)) => Ok(Gate::Busy(format!(
            "stack {stack} changed while being taken; retrying"
        ))),
        Err(e) => Err(e),
    }
}

/// Whether workflow `name` still exists (so may still hold its stack).
async fn holds(
    client: &Client,
    workflows: &Store<WorkflowSpec>,
    namespace: &str,
    name: &str,
) -> Result<bool, Error> {
    if workflows.get(&ObjectRef::new(namespace, name)).is_some() {
        return Ok(true);
    }
    match Api::<WorkflowSpec>::namespaced(client.clone(), namespace)
        .get(name)
        .await
    {
        Ok(_) => Ok(true),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The status of a Workflow waiting for its stack.
pub fn busy_status(wf: &Workflow, message: String) -> WorkflowStatus {
    let old = wf.status_or_default();
    let mut conditions: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| c.type_ != crate::workflow::plan::CONDITION)
        .cloned()
        .collect();
    let transition = old
        .conditions
        .iter()
        .find(|c| c.type_ == crate::workflow::plan::CONDITION && c.reason == STACK_BUSY)
        .and_then(|c| c.last_transition_time)
        .unwrap_or_else(Utc::now);
    conditions.push(Condition {
        type_: crate::workflow::plan::CONDITION.into(),
        status: "Unknown".into(),
        reason: STACK_BUSY.into(),
        message,
        last_transition_time: Some(transition),
    });
    WorkflowStatus {
        phase: WorkflowPhase::Pending,
        conditions,
        observed_generation: wf.metadata.generation,
        ..WorkflowStatus::default()
    }
}

/// Whether `wf`'s run is already in its stack's history.
pub fn is_recorded(wf: &Workflow) -> bool {
    wf.status_or_default()
        .conditions
        .iter()
        .any(|c| c.type_ == RECORDED && c.status == "True")
}

/// Records finished `wf` in its stack (outputs on success, from its
/// TaskRuns' results) and frees the stack; then marks `wf` recorded.
pub async fn record_finish(
    client: &Client,
    wf: &Workflow,
    stack: &str,
    taskruns: &[&TaskRun],
) -> Result<(), Error> {
    let api: Api<StackSpec> = Api::namespaced(client.clone(), wf.namespace());
    // A run that declares no outputs leaves the stack's as they were.
    let outputs = if wf.phase() == WorkflowPhase::Succeeded && !wf.spec.outputs.is_empty() {
        match history::outputs(wf, &history::results(taskruns)) {
            Ok(outputs) => Some(outputs),
            Err(missing) => {
                tracing::warn!(
                    workflow = wf.name(),
                    stack,
                    "outputs not recorded: {missing}"
                );
                None
            }
        }
    } else {
        None
    };
    let current = get_or_create(&api, wf.namespace(), stack).await?;
    let mut next = current.clone();
    next.status = Some(history::finished(
        &current.status_or_default(),
        wf,
        outputs,
        current.spec.history_limit(),
    ));
    if next.status != current.status {
        api.update_status(&next).await?;
    }
    tracing::info!(stack, workflow = wf.name(), "recorded the run in its stack");
    let mut marked = wf.clone();
    let mut status = wf.status_or_default();
    status.conditions.push(Condition {
        type_: RECORDED.into(),
        status: "True".into(),
        reason: "Recorded".into(),
        message: format!("the run is in stack {stack}'s history"),
        last_transition_time: Some(Utc::now()),
    });
    marked.status = Some(status);
    match Api::<WorkflowSpec>::namespaced(client.clone(), wf.namespace())
        .update_status(&marked)
        .await
    {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
