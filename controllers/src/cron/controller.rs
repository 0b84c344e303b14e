//! The CronWorkflow controller's IO: it watches CronWorkflows and the
//! Workflows they created, deletes Workflows past the history limits,
//! creates the Workflow of a scheduled time that came, writes the status,
//! and sleeps until the next scheduled time (or a change).
//!
//! Only the elected leader runs it. The Workflow of a scheduled time is
//! named `<cron>-<unix time>`, so a new leader that runs a time the old one
//! already ran (before its status write) gets AlreadyExists: a time never
//! fires twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::events::Recorder;
use sloth_sdk::objects::{
    ConcurrencyPolicy, CronWorkflow, CronWorkflowSpec, EventType, ObjectReference, Workflow,
    WorkflowSpec,
};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, Store, reflector, store};
use sloth_sdk::schedule::Schedule;
use sloth_sdk::watcher::watch_objects;
use sloth_sdk::well_known::CRONWORKFLOW_LABEL;
use sloth_sdk::{Api, Client, Error, WatchParams};
use tokio_util::sync::CancellationToken;

use super::children::{self, owned_by};
use super::due::{Due, MAX_MISSED, decide};

/// The longest sleep between two looks at a CronWorkflow, so that a clock
/// jump or a lost timer costs at most this.
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// Wake a little after a scheduled time, never before it.
const SLACK: Duration = Duration::from_millis(20);

struct Ctx {
    client: Client,
    workflows: Store<WorkflowSpec>,
    recorder: Recorder,
}

/// Runs the CronWorkflow controller until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let crons: Api<CronWorkflowSpec> = Api::all(client.clone());
    let workflows_api: Api<WorkflowSpec> = Api::all(client.clone());
    let (workflows, writer) = store();
    let owned = WatchParams {
        label_selector: CRONWORKFLOW_LABEL.into(),
        ..WatchParams::default()
    };
    let workflow_events = reflector(writer, watch_objects(&workflows_api, "", owned));
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "cron-controller"),
        client,
        workflows,
    });
    Controller::new(crons, "", WatchParams::default())
        .observe(crate::metrics::global().controller("cron"))
        .watches_stream(workflow_events, |wf: &Workflow| {
            wf.metadata
                .labels
                .get(CRONWORKFLOW_LABEL)
                .map(|cron| ObjectRef::new(wf.namespace(), cron.as_str()))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |_, _: &Error, _| Action::backoff(), ctx)
        .await;
}

async fn reconcile(cron: Arc<CronWorkflow>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if cron.metadata.deletion_timestamp.is_some() || !ctx.workflows.is_ready() {
        return Ok(if ctx.workflows.is_ready() {
            Action::await_change()
        } else {
            Action::requeue(Duration::from_millis(200))
        });
    }
    let schedule = match Schedule::parse(&cron.spec.schedule, &cron.spec.timezone) {
        Ok(s) => s,
        // Admission refuses these; one stored by an older server waits.
        Err(e) => {
            tracing::warn!(cron = cron.name(), error = %e, "cannot read the schedule");
            return Ok(Action::await_change());
        }
    };
    let owned: Vec<Arc<Workflow>> = ctx
        .workflows
        .state()
        .into_iter()
        .filter(|wf| owned_by(wf, &cron))
        .collect();
    let refs: Vec<&Workflow> = owned.iter().map(Arc::as_ref).collect();
    let workflows: Api<WorkflowSpec> = Api::namespaced(ctx.client.clone(), cron.namespace());

    for name in children::beyond_history(
        &refs,
        cron.spec.successful_history_limit(),
        cron.spec.failed_history_limit(),
    ) {
        match workflows.delete(&name).await {
            Ok(_) => {
                tracing::info!(cron = cron.name(), workflow = %name, "deleted past the history limit")
            }
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }

    let old = cron.status_or_default();
    let mut status = old.clone();
    status.active = children::active(&refs);
    status.last_successful_time = children::last_successful(&refs, old.last_successful_time);
    let now = Utc::now();
    if !cron.spec.suspend {
        // Everything up to the newest time already run counts as run, even
        // if its status write was lost with the old leader.
        let since = [
            old.last_schedule_time,
            refs.iter()
                .filter_map(|wf| children::scheduled_time(wf))
                .max(),
            cron.metadata.creation_timestamp,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
        let deadline = cron.spec.starting_deadline.map(|d| d.as_std());
        match decide(&schedule, since, now, deadline) {
            Due::Nothing => {}
            Due::Run { at, missed } => {
                if missed > 0 {
                    // One stable message, so that repeats (Forbid holding
                    // runs back behind long ones) bump one Event's count.
                    tracing::info!(cron = cron.name(), missed, at = %at.to_rfc3339(), "missed schedules");
                    let message = "scheduled times were missed (controllers down, or Forbid \
                                   held runs back); only the latest of them is run";
                    record(&ctx, &cron, EventType::Warning, "MissedSchedules", message).await;
                }
                if start(&ctx, &cron, &workflows, &refs, at, &mut status).await? {
                    status.last_schedule_time = Some(at);
                }
            }
            Due::TooLate { at } => {
                let message = format!(
                    "skipped the run scheduled at {}: it is more than the starting deadline of {} late",
                    at.to_rfc3339(),
                    cron.spec.starting_deadline.unwrap_or_default()
                );
                record(&ctx, &cron, EventType::Warning, "MissedSchedule", &message).await;
                status.last_schedule_time = Some(at);
            }
            Due::TooManyMissed { at } => {
                let message = format!(
                    "more than {MAX_MISSED} scheduled times were missed (the controllers were \
                     down); none is run, the latest was {}",
                    at.to_rfc3339()
                );
                record(
                    &ctx,
                    &cron,
                    EventType::Warning,
                    "TooManyMissedSchedules",
                    &message,
                )
                .await;
                status.last_schedule_time = Some(at);
            }
        }
    }

    if status != old {
        let mut updated = (*cron).clone();
        updated.status = Some(status);
        match Api::<CronWorkflowSpec>::namespaced(ctx.client.clone(), cron.namespace())
            .update_status(&updated)
            .await
        {
            Ok(_) => {}
            Err(Error::Conflict(_)) => return Ok(Action::requeue(Duration::from_millis(100))),
            Err(Error::NotFound(_)) => return Ok(Action::await_change()),
            Err(e) => return Err(e),
        }
    }
    if cron.spec.suspend {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(sleep_until_next(&schedule, now)))
}

/// Starts the run of `at` under the concurrency policy; false when Forbid
/// holds it back (it runs once the active one finishes, if still within
/// the deadline, as Kubernetes does).
async fn start(
    ctx: &Ctx,
    cron: &CronWorkflow,
    workflows: &Api<WorkflowSpec>,
    owned: &[&Workflow],
    at: DateTime<Utc>,
    status: &mut sloth_sdk::objects::CronWorkflowStatus,
) -> Result<bool, Error> {
    let name = children::workflow_name(cron.name(), at);
    let active: Vec<&&Workflow> = owned
        .iter()
        .filter(|wf| !children::is_finished(wf) && wf.name() != name)
        .collect();
    match cron.spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if !active.is_empty() => {
            tracing::debug!(
                cron = cron.name(),
                "a run is active; Forbid holds the next back"
            );
            return Ok(false);
        }
        ConcurrencyPolicy::Replace => {
            for wf in active {
                match workflows.replace(&children::cancelled(wf)).await {
                    Ok(_) => {
                        let message = format!("cancelled {} to start {name} (Replace)", wf.name());
                        record(ctx, cron, EventType::Normal, "Replaced", &message).await;
                    }
                    Err(Error::Conflict(_) | Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        _ => {}
    }
    match workflows
        .create(&sloth_sdk::objects::cronworkflow::workflow_for(
            cron,
            &name,
            Some(at),
        ))
        .await
    {
        Ok(_) => {
            tracing::info!(cron = cron.name(), workflow = %name, "scheduled run created");
            let message = format!("created Workflow {name} for {}", at.to_rfc3339());
            record(ctx, cron, EventType::Normal, "WorkflowCreated", &message).await;
        }
        // Already fired (by this or an earlier leader).
        Err(Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    if !status.active.contains(&name) {
        status.active.push(name);
        status.active.sort();
    }
    Ok(true)
}

/// How long to sleep from `now` until just after the next scheduled time.
fn sleep_until_next(schedule: &Schedule, now: DateTime<Utc>) -> Duration {
    schedule
        .next_after(now)
        .and_then(|next| (next - now).to_std().ok())
        .map_or(MAX_SLEEP, |d| (d + SLACK).min(MAX_SLEEP))
}

async fn record(ctx: &Ctx, cron: &CronWorkflow, type_: EventType, reason: &str, message: &str) {
    ctx.recorder
        .record_in_background(&ObjectReference::from_obj(cron), type_, reason, message)
        .await;
}
