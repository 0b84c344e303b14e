//! Batching a workflow's progress into fewer status writes.
//!
//! A large DAG's Workflow is most of a megabyte, and every status write
//! moves it through the apiserver, its store and every Workflow watcher.
//! Once a status write became cheap enough (status-only admission, no spec
//! sent), the controller wrote it on nearly every TaskRun event: 56 writes
//! for a 1,000-task workflow of 20 layers instead of 21, each one more
//! copy of the object for everyone. Progress that decides nothing (a task
//! of a running layer turning Running or Succeeded, with no TaskRun to
//! create or stop) now waits up to [`PROGRESS_BATCH`] for the next write;
//! anything else (a layer's creates, a failure, a retry, the workflow's
//! own phase) is written at once.

use std::time::Duration;

use sloth_sdk::Condition;
use sloth_sdk::objects::workflow::{TaskPhase, TaskStatus, WorkflowStatus};

/// How long a workflow's progress-only change may wait to be written.
pub const PROGRESS_BATCH: Duration = Duration::from_millis(500);

/// Whether `new` differs from `old` only by tasks moving forward within
/// their attempt (Pending -> Running -> Succeeded), and the conditions'
/// messages that count them ("12 of 50 tasks succeeded").
pub fn progress_only(old: &WorkflowStatus, new: &WorkflowStatus) -> bool {
    let same_outside_tasks = old.phase == new.phase
        && old.conditions.len() == new.conditions.len()
        && old
            .conditions
            .iter()
            .zip(&new.conditions)
            .all(|(a, b)| same_but_message(a, b))
        && old.start_time == new.start_time
        && old.completion_time == new.completion_time
        && old.observed_generation == new.observed_generation;
    same_outside_tasks
        && old.tasks.len() == new.tasks.len()
        && new.tasks.iter().all(|(name, task)| {
            old.tasks
                .get(name)
                .is_some_and(|before| before == task || moved_forward(before, task))
        })
}

fn same_but_message(a: &Condition, b: &Condition) -> bool {
    a.type_ == b.type_
        && a.status == b.status
        && a.reason == b.reason
        && a.last_transition_time == b.last_transition_time
}

/// The same attempt, further along; or the first attempt's TaskRun, which
/// the last write's reconcile created, now seen.
fn moved_forward(before: &TaskStatus, after: &TaskStatus) -> bool {
    let same_attempt = before.task_run == after.task_run && before.attempt == after.attempt;
    let first_seen = before.task_run.is_none() && after.task_run.is_some() && after.attempt <= 1;
    let forward = matches!(
        (&before.phase, &after.phase),
        (
            TaskPhase::Pending,
            TaskPhase::Running | TaskPhase::Succeeded
        ) | (TaskPhase::Running, TaskPhase::Succeeded)
    ) || (first_seen && before.phase == after.phase);
    (same_attempt || first_seen) && before.reason == after.reason && forward
}

#[cfg(test)]
mod tests {
    use sloth_sdk::objects::workflow::WorkflowPhase;

    use super::*;

    fn task(phase: TaskPhase, attempt: u32, reason: &str) -> TaskStatus {
        TaskStatus {
            phase,
            task_run: Some(format!("wf-a-{attempt}")),
            attempt,
            reason: reason.into(),
        }
    }

    fn status(tasks: &[(&str, TaskStatus)]) -> WorkflowStatus {
        WorkflowStatus {
            phase: WorkflowPhase::Running,
            tasks: tasks
                .iter()
                .map(|(name, t)| ((*name).to_string(), t.clone()))
                .collect(),
            ..WorkflowStatus::default()
        }
    }

    #[test]
    fn tasks_moving_forward_in_their_attempt_are_progress() {
        let old = status(&[
            ("a", task(TaskPhase::Pending, 1, "")),
            ("b", task(TaskPhase::Running, 1, "")),
            ("c", task(TaskPhase::Succeeded, 1, "")),
        ]);
        let new = status(&[
            ("a", task(TaskPhase::Running, 1, "")),
            ("b", task(TaskPhase::Succeeded, 1, "")),
            ("c", task(TaskPhase::Succeeded, 1, "")),
        ]);
        assert!(progress_only(&old, &new));
        // The TaskRun the last write's reconcile created, now seen.
        let not_started = status(&[("a", TaskStatus::default())]);
        assert!(progress_only(
            &not_started,
            &status(&[("a", task(TaskPhase::Pending, 1, ""))])
        ));
        assert!(progress_only(
            &not_started,
            &status(&[("a", task(TaskPhase::Running, 1, ""))])
        ));
        // The Ready condition's count moves with them.
        let ready = |message: &str, reason: &str| Condition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: None,
        };
        let (mut old, mut new) = (old, new);
        old.conditions = vec![ready("1 of 3 tasks succeeded", "Running")];
        new.conditions = vec![ready("2 of 3 tasks succeeded", "Running")];
        assert!(progress_only(&old, &new));
        new.conditions = vec![ready("failed: b", "TaskFailed")];
        assert!(!progress_only(&old, &new), "a condition's reason");
    }

    #[test]
    fn failures_retries_new_tasks_and_phase_changes_are_written_at_once() {
        let old = status(&[("a", task(TaskPhase::Running, 1, ""))]);
        let failed = status(&[("a", task(TaskPhase::Failed, 1, ""))]);
        assert!(!progress_only(&old, &failed), "a failure");
        let retry = status(&[("a", task(TaskPhase::Running, 2, "Retrying"))]);
        assert!(!progress_only(&old, &retry), "a retry");
        let backoff = status(&[("a", task(TaskPhase::Running, 1, "Backoff"))]);
        assert!(!progress_only(&old, &backoff), "a reason");
        let more = status(&[
            ("a", task(TaskPhase::Running, 1, "")),
            ("b", task(TaskPhase::Pending, 1, "")),
        ]);
        assert!(!progress_only(&old, &more), "a new task");
        let mut done = status(&[("a", task(TaskPhase::Succeeded, 1, ""))]);
        done.phase = WorkflowPhase::Succeeded;
        assert!(!progress_only(&old, &done), "the workflow's phase");
        let back = status(&[("a", task(TaskPhase::Pending, 1, ""))]);
        assert!(!progress_only(&old, &back), "a step back");
        let not_started = TaskStatus::default();
        let mut second = task(TaskPhase::Pending, 2, "");
        second.task_run = Some("wf-a-2".into());
        assert!(
            !progress_only(&status(&[("a", not_started)]), &status(&[("a", second)])),
            "a second attempt"
        );
    }
}
