//! Tests of validation across kinds: every kind's envelope, names and
//! labels, and `admit`.

use serde_json::json;

use crate::duration::Duration;
use crate::kinds;
use crate::objects::{
    AgentSpec, Backoff, LabelSelector, LabelSelectorRequirement, LockSpec, RetryPolicy,
    SelectorOperator, TaskRunSpec, TaskRunStatus, WorkflowSpec,
};
use crate::resource::Object;
use crate::validation::Validate;
use crate::validation::limits::MAX_AGENT_CAPACITY;
use crate::validation::testing::*;

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
