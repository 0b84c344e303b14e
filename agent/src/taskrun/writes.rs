//! The agent's status writes for one TaskRun: the Running claim
//! (compare-and-swap on the resourceVersion seen), the terminal status, and
//! failing a run an earlier incarnation of this agent left Running.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sloth_sdk::Error;
use sloth_sdk::backoff::Backoff;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunStatus};
use sloth_sdk::validation::limits::MAX_LOG_TAIL_BYTES;

use super::{Ctx, PGID_FILE, claimable, key_of, phase_of, reason, running_on};
use crate::concurrency::RunKey;
use crate::{logs, process_group};

/// The pauses between retries of a failed call: 100ms doubling up to 5s.
const CALL_BACKOFF: Backoff = Backoff::fixed(Duration::from_millis(100), Duration::from_secs(5));

/// Status with the conditions of `current` kept, and those the run itself
/// reports (a Lua hook's `HookFailed`) added or replaced.
fn with_conditions(current: &TaskRun, status: &TaskRunStatus) -> TaskRunStatus {
    let mut conditions: Vec<_> = current
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    for own in &status.conditions {
        conditions.retain(|c| c.type_ != own.type_);
        conditions.push(own.clone());
    }
    TaskRunStatus {
        conditions,
        ..status.clone()
    }
}

/// Writes `status` (Running, or an immediate failure) by compare-and-swap
/// from the copy seen; re-reads on a conflict. Returns the TaskRun as
/// written, or None when someone else has it (or it is gone).
pub(super) async fn claim(ctx: &Ctx, taskrun: TaskRun, status: &TaskRunStatus) -> Option<TaskRun> {
    let key = key_of(&taskrun);
    let api = ctx.api(&key.namespace);
    let mut current = taskrun;
    let mut backoff = CALL_BACKOFF.retries();
    loop {
        if ctx.draining.is_cancelled() {
            return None;
        }
        if !claimable(&current, &ctx.agent) {
            // A write whose answer was lost may still have landed: the times
            // written are ours to the nanosecond.
            let ours = current.status.as_ref().is_some_and(|s| {
                s.phase == status.phase
                    && s.agent == status.agent
                    && s.start_time == status.start_time
                    && s.completion_time == status.completion_time
            });
            return ours.then_some(current);
        }
        let mut next = current.clone();
        next.status = Some(with_conditions(&current, status));
        match api.update_status(&next).await {
            Ok(won) => return Some(won),
            Err(Error::Conflict(_)) => match api.get(&key.name).await {
                // Deleted and created again under the same name: the new
                // TaskRun comes through the watch on its own.
                Ok(fresh) if fresh.metadata.uid != current.metadata.uid => return None,
                Ok(fresh) => current = fresh,
                Err(Error::NotFound(_)) => return None,
                Err(e) => {
                    tracing::warn!("cannot read taskrun {key} again: {e}");
                    backoff.wait().await;
                }
            },
            Err(Error::NotFound(_)) => return None,
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot claim taskrun {key} (will retry): {e}");
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!("cannot claim taskrun {key}: {e}");
                return None;
            }
        }
    }
}

/// Writes the terminal status, re-reading on conflicts and retrying while
/// the apiserver is away; gives up when the TaskRun is gone or already
/// terminal.
pub(super) async fn finish(ctx: &Ctx, key: &RunKey, claimed: TaskRun, status: TaskRunStatus) {
    let api = ctx.api(&key.namespace);
    let mut current = claimed;
    let mut backoff = CALL_BACKOFF.retries();
    loop {
        let mut next = current.clone();
        next.status = Some(with_conditions(&current, &status));
        match api.update_status(&next).await {
            Ok(_) => {
                tracing::info!(
                    "taskrun {key} {} ({}): {}",
                    status.phase.as_str(),
                    status.reason,
                    status.message
                );
                return;
            }
            Err(Error::Conflict(_)) => match api.get(&key.name).await {
                Ok(fresh) if phase_of(&fresh).is_terminal() => {
                    tracing::info!(
                        "taskrun {key} was already {}; its result here ({}) is dropped",
                        phase_of(&fresh).as_str(),
                        status.reason
                    );
                    return;
                }
                Ok(fresh) if fresh.metadata.uid == current.metadata.uid => current = fresh,
                Ok(_) | Err(Error::NotFound(_)) => {
                    tracing::info!("taskrun {key} was deleted; its result is dropped");
                    return;
                }
                Err(e) => {
                    tracing::warn!("cannot read taskrun {key} again: {e}");
                    backoff.wait().await;
                }
            },
            Err(Error::NotFound(_)) => {
                tracing::info!("taskrun {key} was deleted; its result is dropped");
                return;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot write the status of taskrun {key} (will retry): {e}");
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!("cannot write the status of taskrun {key}: {e}");
                return;
            }
        }
    }
}

/// Fails a TaskRun that is Running on this agent but not held by this
/// process: an earlier incarnation claimed it. It is never run again; what
/// is left of its processes is killed.
pub(crate) async fn fail_orphan(ctx: Arc<Ctx>, key: RunKey) {
    let api = ctx.api(&key.namespace);
    let mut backoff = CALL_BACKOFF.retries();
    loop {
        let current = match api.get(&key.name).await {
            Ok(current) => current,
            Err(Error::NotFound(_)) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot read taskrun {key} (will retry): {e}");
                backoff.wait().await;
                continue;
            }
            Err(e) => {
                tracing::error!("cannot read taskrun {key}: {e}");
                return;
            }
        };
        if !running_on(&current, &ctx.agent) || ctx.runs.contains(&key) {
            return;
        }
        let run_dir = logs::run_dir(&ctx.work_dir, &key);
        let killed = process_group::kill_recorded_group(&run_dir.join(PGID_FILE)).await;
        let tail = logs::read_tail(&run_dir.join(logs::OUTPUT_FILE), MAX_LOG_TAIL_BYTES)
            .await
            .ok()
            .filter(|t| !t.is_empty());
        let old = current.status_or_default();
        let mut message = format!(
            "agent {} restarted while this TaskRun was running; it is not run again",
            ctx.agent
        );
        if killed {
            message.push_str(" (the processes it left were killed)");
        }
        let mut next = current.clone();
        next.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Failed,
            reason: reason::AGENT_RESTARTED.into(),
            message,
            completion_time: Some(Utc::now()),
            log_tail: tail.or(old.log_tail.clone()),
            ..old
        });
        match api.update_status(&next).await {
            Ok(_) => {
                tracing::info!("taskrun {key} Failed ({})", reason::AGENT_RESTARTED);
                return;
            }
            Err(Error::Conflict(_)) => {}
            Err(Error::NotFound(_)) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot fail taskrun {key} (will retry): {e}");
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!("cannot fail taskrun {key}: {e}");
                return;
            }
        }
    }
}
