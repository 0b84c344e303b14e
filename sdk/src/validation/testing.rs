//! Builders and assertions shared by the validation tests of every kind.

use std::collections::BTreeMap;

use crate::objects::{
    AgentSpec, LuaPayload, Payload, TaskRunPhase, TaskRunSpec, TaskRunStatus, WorkflowSpec,
    WorkflowTask,
};
use crate::resource::Object;
use crate::validation::{FieldErrors, Validate};

/// The field paths of a rejection, in order; empty when accepted.
pub(super) fn fields(result: Result<(), FieldErrors>) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(errs) => {
            assert!(!errs.is_empty(), "an error must say what is wrong");
            errs.0.into_iter().map(|e| e.field).collect()
        }
    }
}

/// The one error of a rejection, as `field: message`.
pub(super) fn only_error<S: Validate>(object: &Object<S>) -> String {
    let errs = S::validate(object).expect_err("must be rejected");
    assert_eq!(errs.0.len(), 1, "{errs}");
    errs.to_string()
}

pub(super) fn shell(script: &str) -> Payload {
    Payload {
        shell: Some(script.into()),
        lua: None,
        command: None,
    }
}

pub(super) fn lua(script: &str) -> Payload {
    Payload {
        shell: None,
        lua: Some(LuaPayload {
            script: script.into(),
            entry: None,
            params: BTreeMap::new(),
            input: BTreeMap::new(),
            modules: Default::default(),
        }),
        command: None,
    }
}

pub(super) fn taskrun(run: Payload) -> Object<TaskRunSpec> {
    let mut o = Object::new(
        "tr1",
        TaskRunSpec {
            run,
            ..TaskRunSpec::default()
        },
    );
    o.metadata.namespace = "default".into();
    o
}

pub(super) fn task(name: &str, deps: &[&str]) -> WorkflowTask {
    WorkflowTask {
        name: name.into(),
        run: shell("true"),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        ..WorkflowTask::default()
    }
}

pub(super) fn workflow(tasks: Vec<WorkflowTask>) -> Object<WorkflowSpec> {
    Object::new(
        "wf1",
        WorkflowSpec {
            tasks,
            ..WorkflowSpec::default()
        },
    )
}

pub(super) fn agent(capacity: u32) -> Object<AgentSpec> {
    Object::new(
        "agent-1",
        AgentSpec {
            address: "10.0.0.5:7000".into(),
            capacity,
            ..AgentSpec::default()
        },
    )
}

pub(super) fn with_status(mut o: Object<TaskRunSpec>, phase: TaskRunPhase) -> Object<TaskRunSpec> {
    o.status = Some(TaskRunStatus {
        phase,
        ..TaskRunStatus::default()
    });
    o
}
