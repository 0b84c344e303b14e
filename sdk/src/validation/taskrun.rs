//! Validation of TaskRuns: payload, selector, limits, and a finished
//! TaskRun kept as a record.

use super::artifacts;
use super::common::{
    check, too_large, validate_env, validate_payload, validate_secret_refs, validate_selector,
    validate_timeout, validate_workdir,
};
use super::limits::{MAX_LOG_TAIL_BYTES, MAX_RESULTS, MAX_RESULTS_BYTES};
use super::metadata::validate_envelope;
use super::names::{self, shown};
use super::{FieldErrors, Validate};
use crate::objects::{TaskRunSpec, TaskRunStatus};
use crate::resource::Object;

impl Validate for TaskRunSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        let spec = &object.spec;
        validate_payload(&spec.run, "spec.run", &mut errs);
        if let Some(selector) = &spec.agent_selector {
            validate_selector(selector, "spec.agentSelector", &mut errs);
        }
        if let Some(agent) = &spec.agent_name {
            check(&mut errs, "spec.agentName", agent, names::validate_name);
        }
        validate_timeout(spec.timeout, "spec.timeout", &mut errs);
        validate_env(&spec.env, "spec.env", &mut errs);
        validate_secret_refs(spec.secret_use(), "spec", &mut errs);
        validate_workdir(spec.workdir.as_deref(), "spec.workdir", &mut errs);
        artifacts::validate_artifacts(spec.artifacts.as_ref(), "spec.artifacts", &mut errs);
        artifacts::validate_blob_ref(spec.workspace.as_ref(), "spec.workspace", &mut errs);
        if let Some(status) = &object.status {
            validate_taskrun_status(status, &mut errs);
        }
        errs.into_result()
    }

    fn validate_update(old: &Object<Self>, new: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        if let Some(bound) = old.spec.agent_name.as_deref().filter(|a| !a.is_empty())
            && new.spec.agent_name.as_deref() != Some(bound)
        {
            errs.push(
                "spec.agentName",
                format!("is immutable once set (bound to {bound:?})"),
            );
        }
        let phase = |o: &Object<Self>| o.phase();
        let (was, now) = (phase(old), phase(new));
        if was.is_terminal() && now != was {
            errs.push(
                "status.phase",
                format!(
                    "cannot change from {} to {}: {} is a terminal phase",
                    was.as_str(),
                    now.as_str(),
                    was.as_str()
                ),
            );
        }
        if was.is_terminal() {
            finished_taskrun_unchanged(old, new, was.as_str(), &mut errs);
        }
        if let Some(bound) = new.spec.agent_name.as_deref()
            && let Some(agent) = new.status.as_ref().and_then(|s| s.agent.as_deref())
            && agent != bound
        {
            errs.push(
                "status.agent",
                format!(
                    "must equal spec.agentName {bound:?}, the agent the run is bound to (is {})",
                    shown(agent)
                ),
            );
        }
        errs.into_result()
    }
}

/// A finished TaskRun is a record: what ran (spec) and what it left
/// (results, log tail) never change; metadata (labels, finalizers) may.
fn finished_taskrun_unchanged(
    old: &Object<TaskRunSpec>,
    new: &Object<TaskRunSpec>,
    phase: &str,
    errs: &mut FieldErrors,
) {
    let why = format!("is immutable once the TaskRun has finished ({phase})");
    if old.spec != new.spec {
        errs.push("spec", format!("{why}; create a new TaskRun to run again"));
    }
    let status = |o: &Object<TaskRunSpec>| o.status.clone().unwrap_or_default();
    let (before, after) = (status(old), status(new));
    if before.results != after.results {
        errs.push("status.results", why.clone());
    }
    if before.log_tail != after.log_tail {
        errs.push("status.logTail", why);
    }
}

fn validate_taskrun_status(status: &TaskRunStatus, errs: &mut FieldErrors) {
    if status.results.len() > MAX_RESULTS {
        errs.push(
            "status.results",
            format!(
                "must have at most {MAX_RESULTS} entries (has {})",
                status.results.len()
            ),
        );
    }
    let bytes: usize = status.results.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_RESULTS_BYTES {
        errs.push(
            "status.results",
            format!(
                "total size of keys and values {}; keep large outputs in the log or an external store",
                too_large(bytes, MAX_RESULTS_BYTES)
            ),
        );
    }
    if let Some(tail) = &status.log_tail
        && tail.len() > MAX_LOG_TAIL_BYTES
    {
        errs.push(
            "status.logTail",
            format!(
                "{}; keep only the end of the log",
                too_large(tail.len(), MAX_LOG_TAIL_BYTES)
            ),
        );
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::duration::Duration;
    use crate::kinds;
    use crate::objects::{
        LabelSelector, LabelSelectorRequirement, Payload, SelectorOperator, TaskRunPhase,
        TaskRunSpec,
    };

    use crate::validation::Validate;
    use crate::validation::testing::*;

    // ---- TaskRun ----

    #[test]
    fn a_command_payload_is_a_non_empty_argv_and_excludes_the_others() {
        let command = |argv: &[&str]| Payload {
            command: Some(argv.iter().map(|a| a.to_string()).collect()),
            ..Payload::default()
        };
        assert!(TaskRunSpec::validate(&taskrun(command(&["make", "a b", "$X"]))).is_ok());
        assert_eq!(
            only_error(&taskrun(command(&[]))),
            "spec.run.command: must not be empty: give the program and its arguments, \
             e.g. [\"make\", \"test\"]"
        );
        assert_eq!(
            only_error(&taskrun(command(&["", "x"]))),
            "spec.run.command[0]: must name the program to run"
        );
        assert_eq!(
            only_error(&taskrun(command(&["echo", "a\0b"]))),
            "spec.run.command[1]: must not contain a NUL byte"
        );
        let mut both = taskrun(shell("make"));
        both.spec.run.command = command(&["make"]).command;
        assert_eq!(
            only_error(&both),
            "spec.run: must set exactly one of shell, lua or command, not several"
        );
        let big = "x".repeat(crate::validation::limits::MAX_SCRIPT_BYTES);
        assert_eq!(
            fields(TaskRunSpec::validate(&taskrun(command(&["echo", &big])))),
            ["spec.run.command"]
        );
    }

    #[test]
    fn taskrun_needs_exactly_one_of_shell_or_lua() {
        let mut both = taskrun(shell("echo"));
        both.spec.run.lua = lua("return 1").lua;
        assert_eq!(
            only_error(&both),
            "spec.run: must set exactly one of shell, lua or command, not several"
        );
        let neither = taskrun(Payload::default());
        assert_eq!(
            only_error(&neither),
            "spec.run: must set exactly one of shell, lua or command"
        );
        assert_eq!(
            only_error(&taskrun(shell(""))),
            "spec.run.shell: must not be empty"
        );
        assert_eq!(
            only_error(&taskrun(lua("  "))),
            "spec.run.lua.script: must not be empty"
        );
    }

    #[test]
    fn taskrun_selector_expressions_check_values_by_operator() {
        let mut o = taskrun(shell("x"));
        o.spec.agent_selector = Some(LabelSelector {
            match_labels: [("zone".into(), "eu west".into())].into(),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: SelectorOperator::In,
                    values: vec![],
                },
                LabelSelectorRequirement {
                    key: "gpu".into(),
                    operator: SelectorOperator::Exists,
                    values: vec!["true".into()],
                },
            ],
        });
        assert_eq!(
            fields(TaskRunSpec::validate(&o)),
            [
                "spec.agentSelector.matchLabels[\"zone\"]",
                "spec.agentSelector.matchExpressions[0].values",
                "spec.agentSelector.matchExpressions[1].values",
            ]
        );
    }

    #[test]
    fn taskrun_agent_name_env_timeout_and_script_size() {
        let mut o = taskrun(shell("x"));
        o.spec.agent_name = Some("Agent_1".into());
        o.spec.env = [
            ("OK_1".to_string(), String::new()),
            ("1BAD".to_string(), String::new()),
            ("with-dash".to_string(), String::new()),
        ]
        .into();
        o.spec.timeout = Some(Duration::from_secs(0));
        assert_eq!(
            fields(TaskRunSpec::validate(&o)),
            [
                "spec.agentName",
                "spec.timeout",
                "spec.env[\"1BAD\"]",
                "spec.env[\"with-dash\"]"
            ]
        );
        o.spec.agent_name = Some(String::new());
        o.spec.env.clear();
        o.spec.timeout = None;
        assert_eq!(fields(TaskRunSpec::validate(&o)), ["spec.agentName"]);

        let big = "x".repeat(crate::validation::limits::MAX_SCRIPT_BYTES + 1);
        assert_eq!(
            fields(TaskRunSpec::validate(&taskrun(shell(&big)))),
            ["spec.run.shell"]
        );
        assert_eq!(
            fields(TaskRunSpec::validate(&taskrun(lua(&big)))),
            ["spec.run.lua.script"]
        );
    }

    #[test]
    fn taskrun_status_results_and_log_tail_are_capped() {
        let mut o = with_status(taskrun(shell("x")), TaskRunPhase::Succeeded);
        let status = o.status.as_mut().expect("status");
        status.results = (0..=MAX_RESULTS)
            .map(|i| (format!("r{i}"), String::new()))
            .collect();
        status.log_tail = Some("l".repeat(MAX_LOG_TAIL_BYTES + 1));
        assert_eq!(
            fields(TaskRunSpec::validate(&o)),
            ["status.results", "status.logTail"]
        );
        let status = o.status.as_mut().expect("status");
        status.results = [("big".to_string(), "v".repeat(MAX_RESULTS_BYTES))].into();
        status.log_tail = Some("l".repeat(MAX_LOG_TAIL_BYTES));
        assert_eq!(fields(TaskRunSpec::validate(&o)), ["status.results"]);
        let status = o.status.as_mut().expect("status");
        status.results = [("ok".to_string(), "v".repeat(MAX_RESULTS_BYTES - 2))].into();
        assert_eq!(fields(TaskRunSpec::validate(&o)), Vec::<String>::new());
    }

    #[test]
    fn taskrun_terminal_phase_cannot_change() {
        let base = taskrun(shell("x"));
        let done = with_status(base.clone(), TaskRunPhase::Succeeded);
        let rerun = with_status(base.clone(), TaskRunPhase::Running);
        let errs = TaskRunSpec::validate_update(&done, &rerun).expect_err("terminal");
        assert_eq!(
            errs.to_string(),
            "status.phase: cannot change from Succeeded to Running: Succeeded is a terminal phase"
        );
        let failed = with_status(base.clone(), TaskRunPhase::Failed);
        assert_eq!(
            fields(TaskRunSpec::validate_update(&failed, &done)),
            ["status.phase"]
        );
        assert_eq!(
            fields(TaskRunSpec::validate_update(&failed, &base)),
            ["status.phase"],
            "dropping the status would reset the phase"
        );
        // Staying terminal (e.g. a label change) and moving forward are fine.
        assert_eq!(
            fields(TaskRunSpec::validate_update(&done, &done)),
            Vec::<String>::new()
        );
        assert_eq!(
            fields(TaskRunSpec::validate_update(&rerun, &failed)),
            Vec::<String>::new()
        );
        assert_eq!(
            fields(TaskRunSpec::validate_update(&base, &rerun)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn taskrun_agent_name_is_immutable_once_set() {
        let unbound = taskrun(shell("x"));
        let mut bound = unbound.clone();
        bound.spec.agent_name = Some("a1".into());
        let mut moved = unbound.clone();
        moved.spec.agent_name = Some("a2".into());

        assert_eq!(
            fields(TaskRunSpec::validate_update(&unbound, &bound)),
            Vec::<String>::new(),
            "binding is allowed"
        );
        let errs = TaskRunSpec::validate_update(&bound, &moved).expect_err("rebind");
        assert_eq!(
            errs.to_string(),
            "spec.agentName: is immutable once set (bound to \"a1\")"
        );
        assert_eq!(
            fields(TaskRunSpec::validate_update(&bound, &unbound)),
            ["spec.agentName"],
            "unbinding is a change too"
        );
        assert_eq!(
            fields(TaskRunSpec::validate_update(&bound, &bound)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn taskrun_status_agent_must_match_the_binding() {
        let mut bound = taskrun(shell("x"));
        bound.spec.agent_name = Some("a1".into());
        let mut elsewhere = with_status(bound.clone(), TaskRunPhase::Running);
        elsewhere.status.as_mut().expect("status").agent = Some("a2".into());
        assert_eq!(
            fields(TaskRunSpec::validate_update(&bound, &elsewhere)),
            ["status.agent"]
        );
        let mut here = elsewhere.clone();
        here.status.as_mut().expect("status").agent = Some("a1".into());
        assert_eq!(
            fields(TaskRunSpec::validate_update(&bound, &here)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_finished_taskrun_keeps_its_spec_results_and_log_tail() {
        let check_update = kinds::lookup("taskrun").expect("kind").check_update;
        let done = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t1"}, "spec": {"run": {"shell": "true"}, "agentName": "a1"},
            "status": {"phase": "Succeeded", "agent": "a1", "results": {"v": "1"},
                       "logTail": "ok\n"}});
        let mut respec = done.clone();
        respec["spec"]["run"]["shell"] = json!("rm -rf /");
        let mut rewritten = done.clone();
        rewritten["status"]["results"]["v"] = json!("2");
        rewritten["status"]["logTail"] = json!("forged\n");
        let fields = |new: &serde_json::Value| -> Vec<String> {
            check_update(&done, new)
                .err()
                .map(|e| e.0.iter().map(|e| e.field.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(fields(&respec), ["spec"]);
        assert_eq!(fields(&rewritten), ["status.results", "status.logTail"]);
        let e = check_update(&done, &respec).expect_err("spec");
        assert!(
            e.to_string()
                .contains("immutable once the TaskRun has finished (Succeeded)"),
            "{e}"
        );
        // Metadata (labels, finalizers) still changes.
        let mut labelled = done.clone();
        labelled["metadata"]["labels"] = json!({"keep": "yes"});
        assert!(check_update(&done, &labelled).is_ok());
    }
}
