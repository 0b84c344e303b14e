//! Validation of CronWorkflows, Stacks, and a Workflow's stack fields.

use super::common::{check, key_path};
use super::metadata::validate_envelope;
use super::names::{self, shown};
use super::{FieldErrors, Validate};
use crate::objects::{CronWorkflowSpec, StackSpec, Workflow, WorkflowSpec};
use crate::resource::Object;
use crate::schedule::Schedule;

/// Longest CronWorkflow name: its Workflows are `<name>-<unix time>` and
/// their TaskRuns add the task name and attempt (as Kubernetes' 52 for
/// CronJobs).
pub const MAX_CRONWORKFLOW_NAME_LEN: usize = 52;
/// Largest `spec.historyLimit` of a Stack: the history lives in one object.
pub const MAX_STACK_HISTORY: u32 = 1000;

impl Validate for CronWorkflowSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        let name = object.name();
        if name.len() > MAX_CRONWORKFLOW_NAME_LEN {
            errs.push(
                "metadata.name",
                format!(
                    "must be at most {MAX_CRONWORKFLOW_NAME_LEN} characters (is {}): the \
                     Workflows it creates add a unix time to it",
                    name.len()
                ),
            );
        }
        let spec = &object.spec;
        if let Err(e) = Schedule::parse(&spec.schedule, &spec.timezone) {
            errs.push(e.field(), e.to_string());
        }
        // The Workflow it would create, checked as the server will check it.
        let mut workflow = Workflow::new(format!("{name}-1700000000"), spec.workflow_spec.clone());
        workflow.metadata.namespace = object.namespace().to_string();
        if let Err(inner) = WorkflowSpec::validate(&workflow) {
            for e in inner.0 {
                if let Some(rest) = e.field.strip_prefix("spec") {
                    errs.push(format!("spec.workflowSpec{rest}"), e.message);
                }
            }
        }
        errs.into_result()
    }
}

impl Validate for StackSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        check(
            &mut errs,
            "metadata.name",
            object.name(),
            names::validate_dns1123_label,
        );
        if let Some(limit) = object.spec.history_limit
            && !(1..=MAX_STACK_HISTORY).contains(&limit)
        {
            errs.push(
                "spec.historyLimit",
                format!("must be from 1 to {MAX_STACK_HISTORY} (is {limit})"),
            );
        }
        errs.into_result()
    }
}

/// `spec.stack` names a Stack; `spec.outputs` keys become environment
/// variables (`SLOTH_STACK_OUTPUT_<NAME>`), so they are identifiers. A
/// workflow outside any stack may declare outputs (`apply --stack` may put
/// it in one); they are recorded only in a stack.
pub(super) fn validate_workflow_stack(spec: &WorkflowSpec, errs: &mut FieldErrors) {
    if let Some(stack) = &spec.stack {
        check(errs, "spec.stack", stack, names::validate_dns1123_label);
    }
    for (key, value) in &spec.outputs {
        check(
            errs,
            key_path("spec.outputs", key),
            key,
            names::validate_identifier,
        );
        for r in crate::objects::workflow::result_refs(value) {
            if !spec
                .tasks
                .iter()
                .chain(&spec.finally)
                .any(|t| t.name == r.task)
            {
                errs.push(
                    key_path("spec.outputs", key),
                    format!(
                        "{} references task {} that the workflow does not have",
                        shown(value),
                        shown(&r.task)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{CronWorkflow, Payload, Stack, WorkflowTask};

    fn cron(name: &str, schedule: &str, timezone: &str) -> CronWorkflow {
        let mut c = CronWorkflow::new(
            name,
            CronWorkflowSpec {
                schedule: schedule.into(),
                timezone: timezone.into(),
                workflow_spec: WorkflowSpec {
                    tasks: vec![WorkflowTask {
                        name: "a".into(),
                        run: Payload {
                            shell: Some("true".into()),
                            lua: None,
                            command: None,
                        },
                        ..WorkflowTask::default()
                    }],
                    ..WorkflowSpec::default()
                },
                ..CronWorkflowSpec::default()
            },
        );
        c.metadata.namespace = "default".into();
        c
    }

    fn fields(result: Result<(), FieldErrors>) -> Vec<String> {
        result
            .err()
            .map_or_else(Vec::new, |e| e.0.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn cronworkflows_name_the_bad_field() {
        assert!(CronWorkflowSpec::validate(&cron("ok", "@every 5s", "UTC")).is_ok());
        assert_eq!(
            fields(CronWorkflowSpec::validate(&cron("c", "* * *", ""))),
            ["spec.schedule"]
        );
        assert_eq!(
            fields(CronWorkflowSpec::validate(&cron(
                "c",
                "@daily",
                "Nowhere/City"
            ))),
            ["spec.timezone"]
        );
        assert_eq!(
            fields(CronWorkflowSpec::validate(&cron(
                &"c".repeat(53),
                "@daily",
                ""
            ))),
            ["metadata.name"]
        );
        let mut no_tasks = cron("c", "@daily", "");
        no_tasks.spec.workflow_spec.tasks.clear();
        assert_eq!(
            fields(CronWorkflowSpec::validate(&no_tasks)),
            ["spec.workflowSpec.tasks"]
        );
    }

    #[test]
    fn stacks_and_workflow_stack_fields() {
        let mut stack = Stack::new(
            "prod",
            StackSpec {
                history_limit: Some(0),
            },
        );
        stack.metadata.namespace = "default".into();
        assert_eq!(fields(StackSpec::validate(&stack)), ["spec.historyLimit"]);
        let mut errs = FieldErrors::default();
        let spec = WorkflowSpec {
            stack: Some("Prod_1".into()),
            outputs: [
                ("1bad".to_string(), "x".to_string()),
                ("url".to_string(), "$(tasks.nope.results.u)".to_string()),
            ]
            .into(),
            ..WorkflowSpec::default()
        };
        validate_workflow_stack(&spec, &mut errs);
        let named: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "spec.stack",
                r#"spec.outputs["1bad"]"#,
                r#"spec.outputs["url"]"#
            ]
        );
    }
}
