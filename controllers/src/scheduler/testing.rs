//! Object builders for the scheduler's unit tests.

use std::sync::Arc;

use sloth_sdk::objects::{
    Agent, AgentPhase, AgentSpec, AgentStatus, LabelSelector, Payload, TaskRun, TaskRunSpec,
};

pub(super) fn agent(
    name: &str,
    labels: &[(&str, &str)],
    capacity: u32,
    ready: bool,
    cordoned: bool,
) -> Arc<Agent> {
    let mut a = Agent::new(
        name,
        AgentSpec {
            capacity,
            unschedulable: cordoned,
            ..AgentSpec::default()
        },
    );
    for (k, v) in labels {
        a.metadata.labels.insert(k.to_string(), v.to_string());
    }
    a.status = Some(AgentStatus {
        phase: if ready {
            AgentPhase::Ready
        } else {
            AgentPhase::NotReady
        },
        ..AgentStatus::default()
    });
    Arc::new(a)
}

pub(super) fn taskrun_with_selector(labels: &[(&str, &str)]) -> TaskRun {
    TaskRun::new(
        "t",
        TaskRunSpec {
            run: Payload {
                shell: Some("true".into()),
                lua: None,
                command: None,
            },
            agent_selector: Some(LabelSelector {
                match_labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..LabelSelector::default()
            }),
            ..TaskRunSpec::default()
        },
    )
}
