//! Workflow hooks of sloth-runner files (issue 15): `on_start`,
//! `on_task_start`, `on_task_complete` and `on_complete` run as hook
//! TaskRuns (label `sloth.dev/hook`) on a real agent, in order, and are
//! never tasks of the workflow. Each `c_*` fixture in
//! tests/fixtures/sloth-runner/ states its expected outcome.

use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, Workflow};
use sloth_sdk::well_known::{HOOK_LABEL, TASK_LABEL};
use sloth_tests::{FixtureCluster, ctl, wait_until};

const DEADLINE: Duration = Duration::from_secs(120);

/// Waits for the Workflow `name` to finish; returns it with all the
/// TaskRuns it owns (tasks' and hooks').
fn finished(c: &FixtureCluster, name: &str) -> (Workflow, Vec<TaskRun>) {
    (c.cluster.finished(name), c.cluster.taskruns_of(name))
}

fn phase(tr: &TaskRun) -> TaskRunPhase {
    tr.status.clone().unwrap_or_default().phase
}

/// The hook TaskRuns (name, hook label), sorted by name.
fn hook_runs(runs: &[TaskRun]) -> Vec<(String, String)> {
    let mut hooks: Vec<(String, String)> = runs
        .iter()
        .filter_map(|tr| {
            let hook = tr.metadata.labels.get(HOOK_LABEL)?;
            assert!(
                !tr.metadata.labels.contains_key(TASK_LABEL),
                "a hook TaskRun is not a task: {:?}",
                tr.metadata.labels
            );
            Some((tr.metadata.name.clone(), hook.clone()))
        })
        .collect();
    hooks.sort();
    hooks
}

#[test]
fn workflow_hooks_run_in_order_as_hook_taskruns_builder_form() {
    let c = FixtureCluster::start(DEADLINE);
    c.apply("c_workflow_hooks_fluent.sloth.lua", &[]);
    let (wf, runs) = finished(&c, "hooks-fluent-wf");
    let status = wf.status_or_default();
    assert_eq!(status.phase, WorkflowPhase::Succeeded, "{:#?}", wf.status);
    assert_eq!(
        c.marker("order.txt").as_deref(),
        Some(
            "start\ntask_start build\nbuild\ntask_complete build true\n\
             task_start test\ntest\ntask_complete test true\ncomplete true v=1.2\n"
        )
    );
    // Hooks are not tasks: status.tasks has the two tasks only.
    let tasks: Vec<&String> = status.tasks.keys().collect();
    assert_eq!(tasks, ["build", "test"]);
    let condition = status.conditions.iter().find(|c| c.type_ == "Succeeded");
    assert_eq!(
        condition.map(|c| c.message.as_str()),
        Some("all tasks completed")
    );
    assert_eq!(
        hook_runs(&runs),
        [
            (
                "hooks-fluent-wf-hook-on-complete".to_string(),
                "on_complete".to_string()
            ),
            ("hooks-fluent-wf-hook-on-start".into(), "on_start".into()),
            (
                "hooks-fluent-wf-hook-on-task-complete-build".into(),
                "on_task_complete".into()
            ),
            (
                "hooks-fluent-wf-hook-on-task-complete-test".into(),
                "on_task_complete".into()
            ),
            (
                "hooks-fluent-wf-hook-on-task-start-build".into(),
                "on_task_start".into()
            ),
            (
                "hooks-fluent-wf-hook-on-task-start-test".into(),
                "on_task_start".into()
            ),
        ]
    );
    assert!(runs.iter().all(|tr| phase(tr) == TaskRunPhase::Succeeded));
    // The workflow ended only after on_complete's TaskRun finished.
    let on_complete = runs
        .iter()
        .find(|tr| tr.metadata.labels.get(HOOK_LABEL).map(String::as_str) == Some("on_complete"))
        .expect("on_complete ran");
    let done = on_complete
        .status
        .clone()
        .unwrap_or_default()
        .completion_time;
    assert!(
        done.is_some() && status.completion_time >= done,
        "{status:#?}"
    );
}

#[test]
fn on_complete_of_a_failed_workflow_gets_false_and_hook_failures_are_recorded() {
    let c = FixtureCluster::start(DEADLINE);
    c.apply("c_workflow_hooks_table.sloth.lua", &[]);
    let (wf, runs) = finished(&c, "hooks-table-wf");
    let status = wf.status_or_default();
    assert_eq!(status.phase, WorkflowPhase::Failed, "{:#?}", wf.status);
    assert_eq!(
        c.marker("table.txt").as_deref(),
        Some("start\nbroken\ncomplete false\n")
    );
    assert_eq!(status.tasks.keys().collect::<Vec<_>>(), ["broken"]);
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Succeeded")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.starts_with("failed: broken"), "{message}");
    assert!(
        message.contains("workflow hooks failed: on_task_complete"),
        "{message}"
    );
    let failed_hook = runs
        .iter()
        .find(|tr| tr.metadata.name == "hooks-table-wf-hook-on-task-complete-broken")
        .expect("the on_task_complete hook TaskRun");
    assert_eq!(phase(failed_hook), TaskRunPhase::Failed);
    let events = wait_until(DEADLINE, || {
        let out = ctl(&c.cluster.server, &["get", "events"]).ok().stdout;
        out.contains("workflow hook on_task_complete failed")
            .then_some(out)
    });
    assert!(events.is_some(), "a HookFailed Event for the workflow hook");
}

#[test]
fn a_workflow_hook_that_is_not_a_function_is_refused_with_file_and_line() {
    let c = FixtureCluster::start(DEADLINE);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.sloth.lua");
    std::fs::write(
        &file,
        "local t = task(\"a\"):command(\"true\"):build()\n\
         workflow.define(\"bad\"):tasks({ t })\n  :on_complete(\"not a function\")\n",
    )
    .expect("write");
    let out = ctl(
        &c.cluster.server,
        &["apply", "-f", file.to_str().expect("utf-8")],
    );
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("bad.sloth.lua:3:")
            && out.stderr.contains("on_complete: expected a function"),
        "{}",
        out.stderr
    );
    assert!(c.cluster.workflow("bad").is_none(), "nothing was written");
}
