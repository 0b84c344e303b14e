//! Writing a Workflow's status without its spec.
//!
//! The status subresource takes only `status` from a write (and the
//! resourceVersion as precondition); the server keeps the stored spec and
//! metadata. A large DAG's spec is most of a megabyte (1,000 tasks, 47,500
//! dependency names), and the controller writes the status once per
//! finished layer: sending the spec along, and decoding it from the
//! answer, would cost an encode, a parse and a decode of it per write for
//! nothing.

use serde::{Deserialize, Serialize};
use sloth_sdk::objects::{Workflow, WorkflowStatus};
use sloth_sdk::{Api, Error, Object, Spec};

/// A Workflow without its spec: what a status write sends. Decoding the
/// server's answer into it skips the spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoSpec {}

impl Spec for NoSpec {
    type Status = WorkflowStatus;
    const KIND: &'static str = "Workflow";
}

/// The status write of `status` for `wf`, at `wf`'s resourceVersion.
pub fn status_write(wf: &Workflow, status: WorkflowStatus) -> Object<NoSpec> {
    Object {
        api_version: wf.api_version.clone(),
        kind: wf.kind.clone(),
        metadata: wf.metadata.clone(),
        spec: NoSpec {},
        status: Some(status),
    }
}

/// Writes `status` as `wf`'s status, if `wf` is still the stored revision
/// ([`Error::Conflict`] otherwise).
pub async fn write_status(
    client: &sloth_sdk::Client,
    wf: &Workflow,
    status: WorkflowStatus,
) -> Result<(), Error> {
    Api::<NoSpec>::namespaced(client.clone(), wf.namespace())
        .update_status(&status_write(wf, status))
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use sloth_sdk::objects::{WorkflowPhase, WorkflowSpec};

    use super::*;

    #[test]
    fn a_status_write_carries_the_status_and_the_precondition_but_no_tasks() {
        let mut wf = Workflow::new("wf", WorkflowSpec::default());
        wf.spec.tasks.push(sloth_sdk::objects::WorkflowTask {
            name: "a".into(),
            ..Default::default()
        });
        wf.metadata.namespace = "ns".into();
        wf.metadata.resource_version = "42".into();
        let status = WorkflowStatus {
            phase: WorkflowPhase::Running,
            ..WorkflowStatus::default()
        };
        let json = serde_json::to_value(status_write(&wf, status)).expect("encode");
        assert_eq!(json["kind"], "Workflow");
        assert_eq!(json["metadata"]["resourceVersion"], "42");
        assert_eq!(json["metadata"]["namespace"], "ns");
        assert_eq!(json["status"]["phase"], "Running");
        assert_eq!(json["spec"], serde_json::json!({}));
        // The server's answer, a whole Workflow, reads back without its spec.
        let answer = serde_json::to_value(&wf).expect("encode");
        let dynamic: sloth_sdk::DynamicObject = serde_json::from_value(answer).expect("decode");
        sloth_sdk::client::to_typed::<NoSpec>(dynamic).expect("a Workflow reads as NoSpec");
    }
}
