//! Retention of ad-hoc TaskRuns: a finished TaskRun that no Workflow owns
//! (`slothctl run`, a TaskRun applied by hand) is deleted `--taskrun-ttl`
//! (default 24h) after its completion, or `spec.ttlAfterFinished` after it
//! when set. The agent that ran it then removes its run directory.
//!
//! A Workflow's TaskRuns are never expired here: they are its history and
//! its attempts, and go with it (its `ttlAfterFinished`, then the owner
//! garbage collection in `gc`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::Client;
use sloth_sdk::objects::{TaskRun, TaskRunSpec};
use tokio_util::sync::CancellationToken;

use crate::expiry;
use crate::gc::{Ttl, judge_due, workflow_owners};

/// How long finished ad-hoc TaskRuns are kept by default.
pub const DEFAULT_TASKRUN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Judges at `now` whether `taskrun` is due for deletion, with `default`
/// as the TTL when its spec sets none.
pub fn judge(taskrun: &TaskRun, default: Duration, now: DateTime<Utc>) -> Ttl {
    if taskrun.metadata.deletion_timestamp.is_some() || workflow_owners(taskrun).next().is_some() {
        return Ttl::Keep;
    }
    let Some(status) = taskrun.status.as_ref().filter(|s| s.phase.is_terminal()) else {
        return Ttl::Keep;
    };
    // A TaskRun failed before it ever ran (AgentLost while pending, say)
    // may have no completion time: count from its creation then.
    let Some(finished) = status
        .completion_time
        .or(taskrun.metadata.creation_timestamp)
    else {
        return Ttl::Keep;
    };
    let ttl = taskrun
        .spec
        .ttl_after_finished
        .map_or(default, |ttl| ttl.as_std());
    judge_due(ttl, finished, now)
}

/// Deletes finished ad-hoc TaskRuns past their TTL until `shutdown`.
pub async fn run(client: Client, default_ttl: Duration, shutdown: CancellationToken) {
    expiry::run::<TaskRunSpec, _, _, _>(
        client,
        "taskrun-ttl",
        move |taskrun, now| judge(taskrun, default_ttl, now),
        |_, taskrun| async move {
            tracing::info!(
                taskrun = %format!("{}/{}", taskrun.namespace(), taskrun.name()),
                "deleted a finished taskrun past its TTL"
            );
        },
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{DAY, at};
    use sloth_sdk::OwnerReference;
    use sloth_sdk::objects::{TaskRunPhase, TaskRunStatus};

    fn finished(phase: TaskRunPhase, completed: Option<i64>) -> TaskRun {
        let mut tr = TaskRun::new("t", TaskRunSpec::default());
        tr.metadata.namespace = "ns".into();
        tr.metadata.creation_timestamp = Some(at(0));
        tr.status = Some(TaskRunStatus {
            phase,
            completion_time: completed.map(at),
            ..TaskRunStatus::default()
        });
        tr
    }

    #[test]
    fn a_finished_ad_hoc_taskrun_expires_the_default_ttl_after_completion() {
        for phase in [TaskRunPhase::Succeeded, TaskRunPhase::Failed] {
            let tr = finished(phase, Some(100));
            assert_eq!(judge(&tr, DAY, at(200)), Ttl::DueAt(at(86_500)));
            assert_eq!(judge(&tr, DAY, at(86_500)), Ttl::Delete);
        }
        // No completion time: counted from creation.
        assert_eq!(
            judge(&finished(TaskRunPhase::Failed, None), DAY, at(86_400)),
            Ttl::Delete
        );
    }

    #[test]
    fn spec_ttl_after_finished_overrides_the_default() {
        let mut tr = finished(TaskRunPhase::Succeeded, Some(100));
        tr.spec.ttl_after_finished = Some(sloth_sdk::duration::Duration::from_secs(5));
        assert_eq!(judge(&tr, DAY, at(104)), Ttl::DueAt(at(105)));
        assert_eq!(judge(&tr, DAY, at(105)), Ttl::Delete);
    }

    #[test]
    fn unfinished_deleting_and_workflow_owned_taskruns_are_kept() {
        for phase in [
            TaskRunPhase::Pending,
            TaskRunPhase::Scheduled,
            TaskRunPhase::Running,
        ] {
            assert_eq!(
                judge(&finished(phase, Some(0)), Duration::ZERO, at(10)),
                Ttl::Keep
            );
        }
        let mut owned = finished(TaskRunPhase::Succeeded, Some(0));
        owned.metadata.owner_references = vec![OwnerReference {
            api_version: sloth_sdk::API_VERSION.into(),
            kind: "Workflow".into(),
            name: "w".into(),
            uid: "u".into(),
            controller: Some(true),
        }];
        owned.spec.ttl_after_finished = Some(sloth_sdk::duration::Duration::from_secs(0));
        assert_eq!(judge(&owned, Duration::ZERO, at(10)), Ttl::Keep);
        let mut deleting = finished(TaskRunPhase::Succeeded, Some(0));
        deleting.metadata.deletion_timestamp = Some(at(1));
        assert_eq!(judge(&deleting, Duration::ZERO, at(10)), Ttl::Keep);
    }
}
