//! What the garbage collector reads of a Workflow: its metadata (name and
//! uid, for owner references), `spec.ttlAfterFinished`, and when and how it
//! finished. Both collector loops watch every Workflow; decoding only this
//! skips the tasks, which a large DAG's status writes would otherwise make
//! them decode on every write (1,000 tasks with 47,500 dependency names).

use serde::{Deserialize, Serialize};
use sloth_sdk::duration::Duration;
use sloth_sdk::objects::WorkflowPhase;
use sloth_sdk::{Object, Spec, Time};

/// The part of a Workflow's spec the collector reads; other fields are
/// skipped, not refused (the apiserver checked them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowLifetime {
    /// See `WorkflowSpec::ttl_after_finished`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_after_finished: Option<Duration>,
}

/// The part of a Workflow's status the collector reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowEnd {
    /// See `WorkflowStatus::phase`.
    #[serde(default)]
    pub phase: WorkflowPhase,
    /// See `WorkflowStatus::completion_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

impl Spec for WorkflowLifetime {
    type Status = WorkflowEnd;
    const KIND: &'static str = "Workflow";
}

/// A Workflow as the garbage collector sees it.
pub type WorkflowView = Object<WorkflowLifetime>;

#[cfg(test)]
mod tests {
    use sloth_sdk::client::to_typed;
    use sloth_sdk::objects::{Workflow, WorkflowSpec, WorkflowStatus};
    use sloth_sdk::resource::DynamicObject;

    use super::*;

    #[test]
    fn a_whole_workflow_decodes_into_its_lifetime() {
        let mut wf = Workflow::new(
            "wf",
            WorkflowSpec {
                ttl_after_finished: Some(Duration::from_secs(60)),
                tasks: vec![sloth_sdk::objects::WorkflowTask {
                    name: "a".into(),
                    run: sloth_sdk::objects::Payload::shell("true"),
                    ..Default::default()
                }],
                ..WorkflowSpec::default()
            },
        );
        wf.metadata.uid = "u1".into();
        let completed = chrono::Utc::now();
        wf.status = Some(WorkflowStatus {
            phase: WorkflowPhase::Succeeded,
            completion_time: Some(completed),
            ..WorkflowStatus::default()
        });
        let json = serde_json::to_vec(&wf).expect("encode");
        let dynamic: DynamicObject = serde_json::from_slice(&json).expect("decode");
        let view: WorkflowView = to_typed(dynamic).expect("a Workflow reads as its lifetime");
        assert_eq!(view.metadata.uid, "u1");
        assert_eq!(view.spec.ttl_after_finished, Some(Duration::from_secs(60)));
        let status = view.status.expect("status");
        assert_eq!(status.phase, WorkflowPhase::Succeeded);
        assert_eq!(status.completion_time, Some(completed));
    }
}
