//! Validation of Workflows: tasks, hooks, params and `when` references,
//! and the graph (see `dag`).

use std::collections::BTreeSet;

use super::artifacts;
use super::common::{
    check, key_path, validate_env, validate_payload, validate_secret_refs, validate_selector,
    validate_timeout, validate_workdir,
};
use super::limits::{MAX_BACKOFF_FACTOR, MAX_RETRY_LIMIT, MAX_WORKFLOW_TASKS};
use super::metadata::validate_envelope;
use super::names::{self};
use super::{FieldErrors, Validate, dag};
use crate::objects::workflow::{WorkflowPhase, WorkflowState, evaluate_when, param_refs};
use crate::objects::{WorkflowSpec, WorkflowTask};
use crate::resource::Object;

impl Validate for WorkflowSpec {
    /// A finished workflow cannot be cancelled: `spec.state: Cancelled`
    /// next to `phase: Succeeded` would contradict itself.
    fn validate_update(old: &Object<Self>, new: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        let phase = old.phase();
        if matches!(phase, WorkflowPhase::Succeeded | WorkflowPhase::Failed)
            && new.spec.state == WorkflowState::Cancelled
            && old.spec.state != WorkflowState::Cancelled
        {
            errs.push(
                "spec.state",
                format!("cannot become Cancelled: the workflow has finished ({phase:?})"),
            );
        }
        errs.into_result()
    }

    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        let spec = &object.spec;
        for name in spec.params.keys() {
            check(
                &mut errs,
                key_path("spec.params", name),
                name,
                names::validate_identifier,
            );
        }
        if spec.tasks.is_empty() {
            errs.push("spec.tasks", "must have at least one task");
        }
        let total = spec.tasks.len() + spec.finally.len();
        if total > MAX_WORKFLOW_TASKS {
            errs.push(
                "spec.tasks",
                format!(
                    "must have at most {MAX_WORKFLOW_TASKS} tasks, counting spec.finally (has {total}); \
                     split the work into several workflows"
                ),
            );
        }
        dag::validate_graph(&spec.tasks, &spec.finally, &mut errs);
        for (i, task) in spec.tasks.iter().enumerate() {
            validate_task(task, &format!("spec.tasks[{i}]"), &mut errs);
            validate_task_refs(task, &spec.params, &format!("spec.tasks[{i}]"), &mut errs);
        }
        for (i, task) in spec.finally.iter().enumerate() {
            validate_task(task, &format!("spec.finally[{i}]"), &mut errs);
            validate_task_refs(task, &spec.params, &format!("spec.finally[{i}]"), &mut errs);
        }
        for (i, task) in spec.tasks.iter().enumerate() {
            let at = format!("spec.tasks[{i}].artifacts");
            artifacts::validate_artifacts(task.artifacts.as_ref(), &at, &mut errs);
        }
        artifacts::validate_upstream_clashes(&spec.tasks, "spec.tasks", &mut errs);
        artifacts::validate_blob_ref(spec.workspace.as_ref(), "spec.workspace", &mut errs);
        validate_timeout(spec.timeout, "spec.timeout", &mut errs);
        for (i, name) in spec.secrets.iter().enumerate() {
            check(
                &mut errs,
                format!("spec.secrets[{i}]"),
                name,
                names::validate_name,
            );
        }
        if spec.concurrency == Some(0) {
            errs.push(
                "spec.concurrency",
                "must be at least 1 (omit it for no limit); 0 would never start a task",
            );
        }
        super::cron::validate_workflow_stack(spec, &mut errs);
        validate_hooks(&spec.hooks, &mut errs);
        errs.into_result()
    }
}

/// Each hook is a known one, at most once, with a valid payload.
fn validate_hooks(hooks: &[crate::objects::workflow::WorkflowHook], errs: &mut FieldErrors) {
    use crate::objects::workflow::WORKFLOW_HOOKS;
    for (i, hook) in hooks.iter().enumerate() {
        let path = format!("spec.hooks[{i}]");
        if !WORKFLOW_HOOKS.contains(&hook.name.as_str()) {
            errs.push(
                format!("{path}.name"),
                format!(
                    "unknown workflow hook {:?} (known: {})",
                    hook.name,
                    WORKFLOW_HOOKS.join(", ")
                ),
            );
        } else if hooks[..i].iter().any(|h| h.name == hook.name) {
            errs.push(
                format!("{path}.name"),
                format!("hook {:?} is given twice", hook.name),
            );
        }
        validate_payload(&hook.run, &format!("{path}.run"), errs);
    }
}

/// `$(params.NAME)` references name declared params, and `when` reads.
fn validate_task_refs(
    task: &WorkflowTask,
    params: &std::collections::BTreeMap<String, String>,
    path: &str,
    errs: &mut FieldErrors,
) {
    let mut unknown = BTreeSet::new();
    for text in task.substituted_texts() {
        for name in param_refs(text) {
            if !params.contains_key(name) && unknown.insert(name.to_string()) {
                errs.push(
                    path.to_string(),
                    format!("$(params.{name}) names a param that spec.params does not declare"),
                );
            }
        }
    }
    if let Some(when) = &task.when
        && let Err(why) = evaluate_when(when)
    {
        errs.push(format!("{path}.when"), why);
    }
}

/// Everything about one task except its name and `dependsOn`, which need the
/// whole graph (see `dag`).
fn validate_task(task: &WorkflowTask, path: &str, errs: &mut FieldErrors) {
    validate_payload(&task.run, &format!("{path}.run"), errs);
    if let Some(selector) = &task.agent_selector {
        validate_selector(selector, &format!("{path}.agentSelector"), errs);
    }
    if let Some(retries) = &task.retries {
        if retries.limit > MAX_RETRY_LIMIT {
            errs.push(
                format!("{path}.retries.limit"),
                format!("must be at most {MAX_RETRY_LIMIT} (is {})", retries.limit),
            );
        }
        if let Some(factor) = retries.backoff.as_ref().and_then(|b| b.factor)
            && !(factor.is_finite() && (1.0..=MAX_BACKOFF_FACTOR).contains(&factor))
        {
            errs.push(
                format!("{path}.retries.backoff.factor"),
                format!(
                    "must be a number from 1 to {MAX_BACKOFF_FACTOR} (is {factor}); \
                     1 keeps the delay constant"
                ),
            );
        }
    }
    validate_timeout(task.timeout, &format!("{path}.timeout"), errs);
    validate_env(&task.env, &format!("{path}.env"), errs);
    validate_secret_refs(task.secret_use(), path, errs);
    validate_workdir(task.workdir.as_deref(), &format!("{path}.workdir"), errs);
    let mut locks = BTreeSet::new();
    for (i, lock) in task.locks.iter().enumerate() {
        let at = format!("{path}.locks[{i}]");
        if !locks.insert(lock.as_str()) {
            // Taking the same lock twice would wait on itself forever.
            errs.push(at, format!("duplicate lock {lock:?}"));
        } else {
            check(errs, at, lock, names::validate_name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::duration::Duration;
    use crate::kinds;
    use crate::objects::{
        Backoff, LabelSelector, LabelSelectorRequirement, Payload, RetryPolicy, SelectorOperator,
        WorkflowSpec, WorkflowTask,
    };

    use crate::validation::Validate;
    use crate::validation::testing::*;

    // ---- Workflow ----

    #[test]
    fn workflow_needs_a_task() {
        assert_eq!(
            only_error(&workflow(vec![])),
            "spec.tasks: must have at least one task"
        );
    }

    #[test]
    fn workflow_three_cycle_is_named() {
        let wf = workflow(vec![
            task("start", &[]),
            task("a", &["start", "c"]),
            task("b", &["a"]),
            task("c", &["b"]),
        ]);
        assert_eq!(
            only_error(&wf),
            "spec.tasks: dependency cycle: a -> c -> b -> a"
        );
        let wf = workflow(vec![
            task("a", &["b"]),
            task("b", &["c"]),
            task("c", &["a"]),
        ]);
        assert_eq!(
            only_error(&wf),
            "spec.tasks: dependency cycle: a -> b -> c -> a"
        );
    }

    #[test]
    fn workflow_self_dependency() {
        let wf = workflow(vec![task("a", &[]), task("b", &["a", "b"])]);
        assert_eq!(
            only_error(&wf),
            "spec.tasks[1].dependsOn[1]: task \"b\" cannot depend on itself"
        );
    }

    #[test]
    fn workflow_duplicate_task_names() {
        let wf = workflow(vec![
            task("x", &[]),
            task("y", &[]),
            task("z", &[]),
            task("x", &[]),
        ]);
        assert_eq!(
            only_error(&wf),
            "spec.tasks[3].name: duplicate task name \"x\" (first at spec.tasks[0])"
        );
        let mut wf = workflow(vec![task("x", &[])]);
        wf.spec.finally = vec![task("x", &[])];
        assert_eq!(
            only_error(&wf),
            "spec.finally[0].name: duplicate task name \"x\" (first at spec.tasks[0])"
        );
    }

    #[test]
    fn workflow_unknown_dependency() {
        let wf = workflow(vec![
            task("a", &[]),
            task("b", &["a"]),
            task("c", &["x", "a"]),
        ]);
        assert_eq!(
            only_error(&wf),
            "spec.tasks[2].dependsOn[0]: unknown task \"x\""
        );
        let wf = workflow(vec![task("a", &[]), task("b", &["a", "a"])]);
        assert_eq!(
            only_error(&wf),
            "spec.tasks[1].dependsOn[1]: duplicate dependency \"a\""
        );
    }

    #[test]
    fn workflow_task_names_are_written_names() {
        let wf = workflow(vec![
            task("Build_App", &[]),
            task("a.b", &[]),
            task("", &[]),
            task(&"t".repeat(64), &[]),
            task("_x", &[]),
            task("a b", &[]),
            task("next", &["Build_App", "_x"]),
        ]);
        // "next" names tasks that exist, however badly named.
        assert_eq!(
            fields(WorkflowSpec::validate(&wf)),
            [
                "spec.tasks[2].name",
                "spec.tasks[3].name",
                "spec.tasks[4].name",
                "spec.tasks[5].name"
            ]
        );
    }

    #[test]
    fn workflow_finally_is_kept_apart_from_the_dag() {
        let mut wf = workflow(vec![task("build", &["report"])]);
        wf.spec.finally = vec![
            task("report", &["build"]),
            task("notify", &["report", "ghost"]),
            task("x", &["y"]),
            task("y", &["x"]),
        ];
        let errs = WorkflowSpec::validate(&wf).expect_err("finally edges");
        let got: Vec<String> = errs.0.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            got,
            [
                "spec.tasks[0].dependsOn[0]",
                "spec.finally[0].dependsOn[0]",
                "spec.finally[1].dependsOn[1]",
                "spec.finally",
            ],
            "{errs}"
        );
        assert!(
            errs.0[0].message.contains("finally task \"report\""),
            "{errs}"
        );
        assert!(
            errs.0[1]
                .message
                .contains("only depend on other finally tasks"),
            "{errs}"
        );
        assert_eq!(errs.0[3].message, "dependency cycle: x -> y -> x");
    }

    #[test]
    fn workflow_task_fields_are_checked_at_the_task_path() {
        let mut wf = workflow(vec![task("a", &[]), task("b", &["a"])]);
        let b = &mut wf.spec.tasks[1];
        b.run = Payload::default();
        b.retries = Some(RetryPolicy {
            limit: 101,
            backoff: Some(Backoff {
                duration: Duration::from_secs(1),
                factor: Some(0.5),
                max: None,
            }),
            ..RetryPolicy::default()
        });
        b.timeout = Some(Duration::from_secs(0));
        b.env = [("1BAD".to_string(), String::new())].into();
        b.agent_selector = Some(LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "gpu".into(),
                operator: SelectorOperator::NotIn,
                values: vec![],
            }],
        });
        b.locks = vec!["db".into(), "db".into(), "Bad_Lock".into()];
        wf.spec.finally = vec![task("f", &[])];
        wf.spec.finally[0].run = shell("");
        assert_eq!(
            fields(WorkflowSpec::validate(&wf)),
            [
                "spec.tasks[1].run",
                "spec.tasks[1].agentSelector.matchExpressions[0].values",
                "spec.tasks[1].retries.limit",
                "spec.tasks[1].retries.backoff.factor",
                "spec.tasks[1].timeout",
                "spec.tasks[1].env[\"1BAD\"]",
                "spec.tasks[1].locks[1]",
                "spec.tasks[1].locks[2]",
                "spec.finally[0].run.shell",
            ]
        );
        let b = &mut wf.spec.tasks[1];
        b.retries = Some(RetryPolicy {
            limit: 1,
            backoff: Some(Backoff {
                duration: Duration::from_secs(1),
                factor: Some(f64::NAN),
                max: None,
            }),
            ..RetryPolicy::default()
        });
        let errs = WorkflowSpec::validate(&wf).expect_err("nan");
        assert!(
            errs.0
                .iter()
                .any(|e| e.field == "spec.tasks[1].retries.backoff.factor"),
            "{errs}"
        );
    }

    #[test]
    fn workflow_params_timeout_concurrency_and_size() {
        let mut wf = workflow(vec![task("a", &[])]);
        wf.spec.params = [
            ("ok_1".to_string(), String::new()),
            ("bad-name".to_string(), String::new()),
        ]
        .into();
        wf.spec.timeout = Some(Duration::from_secs(0));
        wf.spec.concurrency = Some(0);
        assert_eq!(
            fields(WorkflowSpec::validate(&wf)),
            [
                "spec.params[\"bad-name\"]",
                "spec.timeout",
                "spec.concurrency"
            ]
        );

        let many: Vec<WorkflowTask> = (0..MAX_WORKFLOW_TASKS)
            .map(|i| task(&format!("t{i}"), &[]))
            .collect();
        let mut wf = workflow(many);
        assert_eq!(fields(WorkflowSpec::validate(&wf)), Vec::<String>::new());
        wf.spec.finally = vec![task("one-more", &[])];
        assert_eq!(fields(WorkflowSpec::validate(&wf)), ["spec.tasks"]);
    }

    #[test]
    fn workflow_long_chain_is_accepted() {
        let tasks: Vec<WorkflowTask> = (0..MAX_WORKFLOW_TASKS)
            .map(|i| {
                if i == 0 {
                    task("t0", &[])
                } else {
                    task(&format!("t{i}"), &[&format!("t{}", i - 1)])
                }
            })
            .collect();
        assert_eq!(
            fields(WorkflowSpec::validate(&workflow(tasks))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_finished_workflow_cannot_be_cancelled() {
        let check_update = kinds::lookup("workflow").expect("kind").check_update;
        let wf = |state: &str, phase: &str| {
            json!({"apiVersion": "sloth.dev/v1",
            "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"tasks": [{"name": "a", "run": {"shell": "true"}}], "state": state},
            "status": {"phase": phase}})
        };
        let e = check_update(&wf("Running", "Succeeded"), &wf("Cancelled", "Succeeded"))
            .expect_err("finished");
        assert!(e.to_string().contains("spec.state"), "{e}");
        assert!(check_update(&wf("Running", "Running"), &wf("Cancelled", "Running")).is_ok());
    }

    // ---- workflow references ----

    #[test]
    fn result_references_must_name_known_upstream_tasks_without_cycles() {
        let mut use_unknown = task("deploy", &[]);
        use_unknown.run = shell("echo $(tasks.nope.results.v)");
        let errs = fields(WorkflowSpec::validate(&workflow(vec![use_unknown])));
        assert_eq!(errs, ["spec.tasks[0].run.shell"]);

        let mut a = task("a", &[]);
        a.env = [("V".into(), "$(tasks.b.results.v)".into())].into();
        let b = task("b", &["a"]);
        let errs = fields(WorkflowSpec::validate(&workflow(vec![a, b])));
        assert_eq!(errs, ["spec.tasks"], "a cycle through a result reference");

        let mut ok = task("deploy", &[]);
        ok.run = shell("deploy $(tasks.build.results.image)");
        let mut wf = workflow(vec![task("build", &[]), ok]);
        let mut report = task("report", &[]);
        report.run = shell("echo $(tasks.build.results.image)");
        wf.spec.finally = vec![report];
        assert_eq!(fields(WorkflowSpec::validate(&wf)), Vec::<String>::new());
    }

    #[test]
    fn params_must_be_declared_and_when_must_read() {
        let mut t = task("t", &[]);
        t.run = shell("echo $(params.env) $(date)");
        t.when = Some("$(params.env) prod".into());
        let errs = fields(WorkflowSpec::validate(&workflow(vec![t.clone()])));
        assert_eq!(errs, ["spec.tasks[0]", "spec.tasks[0].when"]);
        t.when = Some("$(params.env) == prod".into());
        let mut wf = workflow(vec![t]);
        wf.spec.params = [("env".into(), "prod".into())].into();
        assert_eq!(fields(WorkflowSpec::validate(&wf)), Vec::<String>::new());
    }
}
