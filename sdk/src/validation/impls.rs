//! Validation rules per kind. Each rule reports at the exact field path, and
//! every rule runs, so one rejection lists everything that is wrong.

use std::collections::BTreeSet;

use super::artifacts;
use super::common::{
    check, key_path, too_large, validate_env, validate_payload, validate_secret_refs,
    validate_selector, validate_timeout, validate_workdir,
};
use super::limits::{
    MAX_AGENT_CAPACITY, MAX_BACKOFF_FACTOR, MAX_LOG_TAIL_BYTES, MAX_RESULTS, MAX_RESULTS_BYTES,
    MAX_RETRY_LIMIT, MAX_WORKFLOW_TASKS,
};
use super::metadata::validate_envelope;
use super::names::{self, shown};
use super::{FieldErrors, Validate, dag};
use crate::objects::workflow::{WorkflowPhase, WorkflowState, evaluate_when, param_refs};
use crate::objects::{
    AgentSpec, EventSpec, LockSpec, TaskRunSpec, TaskRunStatus, WorkflowSpec, WorkflowTask,
};
use crate::resource::Object;

impl Validate for AgentSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        if !object.metadata.namespace.is_empty() {
            errs.push(
                "metadata.namespace",
                format!(
                    "must be empty: Agents are cluster-scoped (is {})",
                    shown(&object.metadata.namespace)
                ),
            );
        }
        let spec = &object.spec;
        if !spec.address.is_empty() {
            // `https://` marks an agent whose logs port serves TLS.
            let host_port = spec
                .address
                .strip_prefix("https://")
                .unwrap_or(&spec.address);
            check(
                &mut errs,
                "spec.address",
                host_port,
                names::validate_host_port,
            );
        }
        if spec.capacity == 0 {
            errs.push(
                "spec.capacity",
                "must be at least 1 (cordon the agent to stop new work instead)",
            );
        } else if spec.capacity > MAX_AGENT_CAPACITY {
            errs.push(
                "spec.capacity",
                format!(
                    "must be at most {MAX_AGENT_CAPACITY} (is {})",
                    spec.capacity
                ),
            );
        }
        for (i, taint) in spec.taints.iter().enumerate() {
            let at = format!("spec.taints[{i}]");
            check(
                &mut errs,
                format!("{at}.key"),
                &taint.key,
                names::validate_label_key,
            );
            check(
                &mut errs,
                format!("{at}.value"),
                &taint.value,
                names::validate_label_value,
            );
        }
        errs.into_result()
    }
}

impl Validate for LockSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        if object.spec.lease_duration_seconds == Some(0) {
            errs.push(
                "spec.leaseDurationSeconds",
                "must be at least 1 (a zero lease would expire as it is taken)",
            );
        }
        errs.into_result()
    }
}

/// Largest `spec.message` of an Event.
const MAX_EVENT_MESSAGE_BYTES: usize = 4 * 1024;
/// Longest `spec.reason` of an Event.
const MAX_EVENT_REASON_LEN: usize = 128;

impl Validate for EventSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        let spec = &object.spec;
        let involved = &spec.involved_object;
        if involved.kind.is_empty() {
            errs.push("spec.involvedObject.kind", "must not be empty");
        }
        if involved.name.is_empty() {
            errs.push("spec.involvedObject.name", "must not be empty");
        }
        if spec.reason.is_empty() {
            errs.push("spec.reason", "must not be empty");
        } else if !spec.reason.starts_with(|c: char| c.is_ascii_uppercase())
            || !spec.reason.chars().all(|c| c.is_ascii_alphanumeric())
            || spec.reason.len() > MAX_EVENT_REASON_LEN
        {
            errs.push(
                "spec.reason",
                format!(
                    "invalid value {}: must be CamelCase: an uppercase letter, then letters \
                     and digits only, at most {MAX_EVENT_REASON_LEN} characters (e.g. TaskStarted)",
                    shown(&spec.reason)
                ),
            );
        }
        if spec.message.len() > MAX_EVENT_MESSAGE_BYTES {
            errs.push(
                "spec.message",
                too_large(spec.message.len(), MAX_EVENT_MESSAGE_BYTES),
            );
        }
        if spec.count == 0 {
            errs.push("spec.count", "must be at least 1");
        }
        errs.into_result()
    }
}

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
        Backoff, LabelSelector, LabelSelectorRequirement, LuaPayload, Payload, RetryPolicy,
        SelectorOperator, Taint, TaskRunPhase,
    };

    /// The field paths of a rejection, in order; empty when accepted.
    fn fields(result: Result<(), FieldErrors>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(errs) => {
                assert!(!errs.is_empty(), "an error must say what is wrong");
                errs.0.into_iter().map(|e| e.field).collect()
            }
        }
    }

    /// The one error of a rejection, as `field: message`.
    fn only_error<S: Validate>(object: &Object<S>) -> String {
        let errs = S::validate(object).expect_err("must be rejected");
        assert_eq!(errs.0.len(), 1, "{errs}");
        errs.to_string()
    }

    fn shell(script: &str) -> Payload {
        Payload {
            shell: Some(script.into()),
            lua: None,
            command: None,
        }
    }

    fn lua(script: &str) -> Payload {
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

    fn taskrun(run: Payload) -> Object<TaskRunSpec> {
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

    fn task(name: &str, deps: &[&str]) -> WorkflowTask {
        WorkflowTask {
            name: name.into(),
            run: shell("true"),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            ..WorkflowTask::default()
        }
    }

    fn workflow(tasks: Vec<WorkflowTask>) -> Object<WorkflowSpec> {
        Object::new(
            "wf1",
            WorkflowSpec {
                tasks,
                ..WorkflowSpec::default()
            },
        )
    }

    fn agent(capacity: u32) -> Object<AgentSpec> {
        Object::new(
            "agent-1",
            AgentSpec {
                address: "10.0.0.5:7000".into(),
                capacity,
                ..AgentSpec::default()
            },
        )
    }

    fn with_status(mut o: Object<TaskRunSpec>, phase: TaskRunPhase) -> Object<TaskRunSpec> {
        o.status = Some(TaskRunStatus {
            phase,
            ..TaskRunStatus::default()
        });
        o
    }

    // ---- every kind: the envelope ----

    #[test]
    fn valid_objects_of_every_kind_are_accepted() {
        let mut tr = taskrun(shell("echo hi"));
        tr.spec.agent_selector = Some(LabelSelector {
            match_labels: [("zone".into(), "eu-west".into())].into(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "gpu".into(),
                operator: SelectorOperator::Exists,
                values: vec![],
            }],
        });
        tr.spec.agent_name = Some("agent-1".into());
        tr.spec.env = [("LC_ALL".into(), "C".into())].into();
        tr.spec.timeout = Some(Duration::from_secs(30));
        tr.status = Some(TaskRunStatus {
            results: [("out".into(), "42".into())].into(),
            log_tail: Some("done\n".into()),
            ..TaskRunStatus::default()
        });
        assert_eq!(fields(TaskRunSpec::validate(&tr)), Vec::<String>::new());
        assert_eq!(
            fields(TaskRunSpec::validate(&taskrun(lua("return 1")))),
            Vec::<String>::new()
        );

        let mut wf = workflow(vec![
            task("fetch", &[]),
            task("test", &["fetch"]),
            task("lint", &["fetch"]),
            task("package", &["test", "lint"]),
        ]);
        wf.spec.finally = vec![task("notify", &[]), task("cleanup", &["notify"])];
        wf.spec.params = [("greeting".into(), "hello".into())].into();
        wf.spec.tasks[1].retries = Some(RetryPolicy {
            limit: 100,
            backoff: Some(Backoff {
                duration: Duration::from_secs(1),
                factor: Some(1.0),
                max: None,
            }),
            ..RetryPolicy::default()
        });
        wf.spec.tasks[3].locks = vec!["release".into()];
        assert_eq!(fields(WorkflowSpec::validate(&wf)), Vec::<String>::new());

        assert_eq!(fields(AgentSpec::validate(&agent(1))), Vec::<String>::new());
        assert_eq!(
            fields(AgentSpec::validate(&agent(MAX_AGENT_CAPACITY))),
            Vec::<String>::new()
        );

        let mut lock = Object::new("leader", LockSpec::default());
        lock.spec.lease_duration_seconds = Some(15);
        assert_eq!(fields(LockSpec::validate(&lock)), Vec::<String>::new());
    }

    #[test]
    fn every_kind_checks_api_version_kind_and_name() {
        fn envelope_fields<S: Validate>(mut o: Object<S>) -> Vec<String> {
            o.api_version = "v1".into();
            o.kind = "Other".into();
            o.metadata.name = "Bad_Name".into();
            fields(S::validate(&o))
        }
        let want = ["apiVersion", "kind", "metadata.name"];
        assert_eq!(envelope_fields(taskrun(shell("x")))[..3], want);
        assert_eq!(envelope_fields(workflow(vec![task("a", &[])]))[..3], want);
        assert_eq!(envelope_fields(agent(1))[..3], want);
        assert_eq!(
            envelope_fields(Object::new("l", LockSpec::default()))[..3],
            want
        );
    }

    #[test]
    fn invalid_names_are_refused_at_metadata_name() {
        for bad in ["Bad_Name", "-x", &"a".repeat(254)] {
            let mut o = taskrun(shell("x"));
            o.metadata.name = bad.to_string();
            assert_eq!(
                fields(TaskRunSpec::validate(&o)),
                ["metadata.name"],
                "{bad}"
            );
        }
        let mut o = taskrun(shell("x"));
        o.metadata.name = "-x".into();
        assert!(only_error(&o).starts_with("metadata.name: invalid value \"-x\": "));
        o.metadata.name = "a".repeat(254);
        assert!(
            only_error(&o).contains("must be no more than 253 characters (is 254)"),
            "{}",
            only_error(&o)
        );
    }

    #[test]
    fn generate_name_stands_in_for_an_empty_name() {
        let mut o = taskrun(shell("x"));
        o.metadata.name.clear();
        assert_eq!(fields(TaskRunSpec::validate(&o)), ["metadata.name"]);
        o.metadata.generate_name = "build-".into();
        assert_eq!(fields(TaskRunSpec::validate(&o)), Vec::<String>::new());
        o.metadata.generate_name = "-build".into();
        assert_eq!(fields(TaskRunSpec::validate(&o)), ["metadata.generateName"]);
    }

    #[test]
    fn invalid_label_keys_and_values_are_refused_by_key() {
        let mut o = taskrun(shell("x"));
        o.metadata.labels = [
            ("app/x".to_string(), "ok".to_string()),
            ("bad key".to_string(), "ok".to_string()),
            ("good".to_string(), "bad value".to_string()),
            ("x".to_string(), "y".repeat(64)),
        ]
        .into();
        assert_eq!(
            fields(TaskRunSpec::validate(&o)),
            [
                "metadata.labels[\"bad key\"]",
                "metadata.labels[\"good\"]",
                "metadata.labels[\"x\"]",
            ]
        );
        o.metadata.labels = [("app/x!".to_string(), "v".to_string())].into();
        assert_eq!(
            fields(TaskRunSpec::validate(&o)),
            ["metadata.labels[\"app/x!\"]"]
        );
    }

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

    // ---- Agent and Lock ----

    #[test]
    fn agent_capacity_bounds() {
        assert_eq!(
            only_error(&agent(0)),
            "spec.capacity: must be at least 1 (cordon the agent to stop new work instead)"
        );
        assert_eq!(
            fields(AgentSpec::validate(&agent(MAX_AGENT_CAPACITY + 1))),
            ["spec.capacity"]
        );
    }

    #[test]
    fn agent_is_cluster_scoped() {
        let mut o = agent(1);
        o.metadata.namespace = "default".into();
        assert_eq!(
            only_error(&o),
            "metadata.namespace: must be empty: Agents are cluster-scoped (is \"default\")"
        );
    }

    #[test]
    fn agent_address_and_taints() {
        let mut o = agent(1);
        o.spec.address = String::new();
        assert_eq!(fields(AgentSpec::validate(&o)), Vec::<String>::new());
        for bad in ["nohost", "host:99999", "http://host:80"] {
            o.spec.address = bad.into();
            assert_eq!(fields(AgentSpec::validate(&o)), ["spec.address"], "{bad}");
        }
        o.spec.address = "https://10.0.0.5:7000".into();
        assert_eq!(fields(AgentSpec::validate(&o)), Vec::<String>::new());
        o.spec.address = "[::1]:7000".into();
        o.spec.taints = vec![
            Taint {
                key: "sloth.dev/spot".into(),
                value: "true".into(),
                effect: "NoSchedule".into(),
            },
            Taint {
                key: "bad key".into(),
                value: "-x".into(),
                effect: String::new(),
            },
        ];
        assert_eq!(
            fields(AgentSpec::validate(&o)),
            ["spec.taints[1].key", "spec.taints[1].value"]
        );
    }

    #[test]
    fn lock_lease_duration_is_positive() {
        let mut o = Object::new("l", LockSpec::default());
        o.spec.lease_duration_seconds = Some(0);
        assert_eq!(
            fields(LockSpec::validate(&o)),
            ["spec.leaseDurationSeconds"]
        );
    }

    // ---- Event ----

    fn event(reason: &str, message: &str) -> Object<EventSpec> {
        let mut o = Object::new(
            "wf1.0123456789abcdef",
            EventSpec {
                involved_object: crate::objects::ObjectReference {
                    kind: "Workflow".into(),
                    namespace: "default".into(),
                    name: "wf1".into(),
                    uid: String::new(),
                },
                reason: reason.into(),
                message: message.into(),
                count: 1,
                ..EventSpec::default()
            },
        );
        o.metadata.namespace = "default".into();
        o
    }

    #[test]
    fn event_valid_is_accepted() {
        assert_eq!(
            fields(EventSpec::validate(&event("TaskStarted", "task a started"))),
            Vec::<String>::new()
        );
        assert_eq!(
            fields(EventSpec::validate(&event("Retry2", &"x".repeat(4096)))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn event_reason_must_be_camel_case() {
        for bad in ["", "started", "Task Started", "Task-Started", "Été"] {
            assert_eq!(
                fields(EventSpec::validate(&event(bad, "m"))),
                ["spec.reason"],
                "{bad:?}"
            );
        }
        assert!(only_error(&event("task_started", "m")).contains("CamelCase"));
    }

    #[test]
    fn event_message_is_capped_and_involved_object_named() {
        let e = only_error(&event("Big", &"x".repeat(4097)));
        assert!(
            e.starts_with("spec.message: is too large: 4097 bytes, the limit is 4096"),
            "{e}"
        );
        let mut o = event("Started", "m");
        o.spec.involved_object.kind.clear();
        o.spec.involved_object.name.clear();
        o.spec.count = 0;
        assert_eq!(
            fields(EventSpec::validate(&o)),
            [
                "spec.involvedObject.kind",
                "spec.involvedObject.name",
                "spec.count"
            ]
        );
    }

    // ---- through the kinds registry ----

    #[test]
    fn admit_names_the_path_of_an_unknown_field() {
        let admit = kinds::lookup("taskrun").expect("taskrun kind").admit;
        let errs = admit(json!({
            "apiVersion": "sloth.dev/v1",
            "kind": "TaskRun",
            "metadata": {"name": "t1"},
            "spec": {"run": {"shell": "true"}, "comand": "ls"}
        }))
        .expect_err("unknown field");
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert_eq!(errs.0[0].field, "spec.comand", "{errs}");
        assert!(
            errs.to_string().starts_with(
                "spec.comand: unknown field `comand`, expected one of `run`, `agentSelector`"
            ),
            "{errs}"
        );

        let admit = kinds::lookup("wf").expect("workflow kind").admit;
        let errs = admit(json!({
            "apiVersion": "sloth.dev/v1",
            "kind": "Workflow",
            "metadata": {"name": "w"},
            "spec": {"tasks": [
                {"name": "a", "run": {"shell": "true"}},
                {"name": "b", "run": {"shell": "true"}},
                {"name": "c", "run": {"shell": "true"}, "dependsOn": "a"}
            ]}
        }))
        .expect_err("dependsOn must be a list");
        assert_eq!(errs.0[0].field, "spec.tasks[2].dependsOn", "{errs}");
        let errs = admit(json!({
            "apiVersion": "sloth.dev/v1",
            "kind": "Workflow",
            "metadata": {"name": "w"},
            "spec": {"tasks": [{"name": "a"}]}
        }))
        .expect_err("run is required");
        assert_eq!(errs.to_string(), "spec.tasks[0]: missing field `run`");
    }

    #[test]
    fn admit_runs_validation_and_returns_canonical_json() {
        let admit = kinds::lookup("tr").expect("taskrun kind").admit;
        let errs = admit(json!({
            "apiVersion": "sloth.dev/v1",
            "kind": "TaskRun",
            "metadata": {"name": "t1"},
            "spec": {"run": {"shell": "true", "lua": {"script": "return 1"}}}
        }))
        .expect_err("both payloads");
        assert_eq!(
            errs.to_string(),
            "spec.run: must set exactly one of shell, lua or command, not several"
        );
        let ok = admit(json!({
            "apiVersion": "sloth.dev/v1",
            "kind": "TaskRun",
            "metadata": {"name": "t1"},
            "spec": {"run": {"shell": "true"}, "timeout": "30s"}
        }))
        .expect("valid");
        assert_eq!(ok["spec"]["timeout"], "30s");

        let check_update = kinds::lookup("taskrun").expect("kind").check_update;
        let old = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t1"}, "spec": {"run": {"shell": "true"}, "agentName": "a1"},
            "status": {"phase": "Failed"}});
        let new = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t1"}, "spec": {"run": {"shell": "true"}, "agentName": "a2"},
            "status": {"phase": "Pending"}});
        let errs = check_update(&old, &new).expect_err("immutable and terminal");
        let got: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, ["spec.agentName", "status.phase", "spec"]);
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

    #[test]
    fn backoff_factors_and_workdirs_are_bounded() {
        let mut wf = workflow(vec![task("a", &[])]);
        wf.spec.tasks[0].retries = Some(RetryPolicy {
            limit: 2,
            backoff: Some(Backoff {
                factor: Some(1e308),
                ..Backoff::default()
            }),
            ..RetryPolicy::default()
        });
        wf.spec.tasks[0].workdir = Some("../../../../etc".into());
        assert_eq!(
            fields(WorkflowSpec::validate(&wf)),
            [
                "spec.tasks[0].retries.backoff.factor",
                "spec.tasks[0].workdir"
            ]
        );
        let mut tr = taskrun(shell("true"));
        tr.spec.workdir = Some("src/../..".into());
        assert_eq!(fields(TaskRunSpec::validate(&tr)), ["spec.workdir"]);
        tr.spec.workdir = Some("src/app".into());
        assert!(TaskRunSpec::validate(&tr).is_ok());
    }

    #[test]
    fn admit_checks_the_kind_of_every_registered_kind() {
        for info in kinds::KINDS {
            let errs = (info.admit)(json!({
                "apiVersion": "sloth.dev/v1",
                "kind": "Nope",
                "metadata": {"name": "n"},
                "spec": {}
            }))
            .expect_err(info.kind);
            // Specs with required fields fail in decoding, before validation.
            assert!(
                errs.0
                    .iter()
                    .any(|e| e.field == "kind" || e.field == "spec"),
                "{}: {errs}",
                info.kind
            );
        }
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
