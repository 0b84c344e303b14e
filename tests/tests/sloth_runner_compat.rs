//! sloth-runner workflow files as its documentation writes them (issue 15,
//! part A): names as written, the two calling conventions, what a task
//! returns, and task hooks. Each fixture in tests/fixtures/sloth-runner/
//! named `a_*` is applied with slothctl and run by the controllers on a
//! real agent; the test asserts the outcome its header comment states.

use std::collections::BTreeMap;
use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunStatus, Workflow};
use sloth_sdk::well_known::ORIGINAL_NAME_ANNOTATION;
use sloth_tests::{FixtureCluster, ctl, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);

/// Waits for the Workflow `name` to finish; returns it with its TaskRuns
/// by task name (the `sloth.dev/task` label: the name as written).
fn finished(c: &FixtureCluster, name: &str) -> (Workflow, BTreeMap<String, TaskRun>) {
    (c.cluster.finished(name), c.cluster.tasks_of(name))
}

fn status(tr: &TaskRun) -> TaskRunStatus {
    tr.status.clone().unwrap_or_default()
}

fn log(tr: &TaskRun) -> String {
    status(tr).log_tail.unwrap_or_default()
}

#[track_caller]
fn assert_phase(tr: &TaskRun, phase: TaskRunPhase) {
    assert_eq!(
        status(tr).phase,
        phase,
        "{}: {:#?}",
        tr.metadata.name,
        tr.status
    );
}

#[test]
fn names_keep_their_spelling_and_object_names_are_derived() {
    let c = FixtureCluster::start(DEADLINE);
    c.apply("a_names_fluent.sloth.lua", &[]);
    c.apply("a_names_table.sloth.lua", &[]);
    c.apply("a_names_collide.sloth.lua", &[]);

    let (wf, runs) = finished(&c, "ci-pipeline");
    assert_eq!(
        wf.status_or_default().phase,
        WorkflowPhase::Succeeded,
        "{:#?}",
        wf.status
    );
    assert_eq!(
        wf.metadata.annotations[ORIGINAL_NAME_ANNOTATION],
        "CI_Pipeline"
    );
    let status_tasks: Vec<String> = wf.status_or_default().tasks.keys().cloned().collect();
    assert_eq!(status_tasks, ["Build_App", "Test_App"]);
    assert_eq!(wf.spec.tasks[1].depends_on, ["Build_App"]);
    let (build, test) = (&runs["Build_App"], &runs["Test_App"]);
    assert_eq!(build.metadata.name, "ci-pipeline-build-app-1");
    assert_eq!(test.metadata.name, "ci-pipeline-test-app-1");
    assert_eq!(
        build.metadata.annotations[ORIGINAL_NAME_ANNOTATION],
        "Build_App"
    );
    assert_eq!(
        status(test).results["tested"],
        "1.2.3",
        "input.Build_App.version"
    );
    assert!(log(test).contains("testing version 1.2.3"), "{}", log(test));

    // describe and get show the name as written.
    let described = ctl(&c.cluster.server, &["describe", "workflow", "ci-pipeline"]).ok();
    assert!(
        described.stdout.contains("CI_Pipeline"),
        "{}",
        described.stdout
    );
    assert!(
        described.stdout.contains("Build_App"),
        "{}",
        described.stdout
    );

    let (wf, runs) = finished(&c, "deploy-prod");
    assert_eq!(
        wf.status_or_default().phase,
        WorkflowPhase::Succeeded,
        "{:#?}",
        runs
    );
    assert_eq!(
        wf.metadata.annotations[ORIGINAL_NAME_ANNOTATION],
        "Deploy.Prod"
    );
    assert_eq!(status(&runs["Apply.Config"]).results["region"], "eu-west");
    assert_eq!(
        runs["Apply.Config"].metadata.name,
        "deploy-prod-apply-config-1"
    );

    let (wf, runs) = finished(&c, "collide");
    assert_eq!(
        wf.status_or_default().phase,
        WorkflowPhase::Succeeded,
        "{:#?}",
        runs
    );
    let (dashed, underscored) = (&runs["build-app"], &runs["build_app"]);
    assert_eq!(dashed.metadata.name, "collide-build-app-1");
    assert_eq!(
        underscored.metadata.name, "collide-build-app-cd0ce8-1",
        "a hash suffix (as docs/lua.md shows)"
    );
    assert!(
        log(underscored).contains("underscored"),
        "{}",
        log(underscored)
    );
}

#[test]
fn task_definitions_get_params_and_input_and_fluent_tasks_get_this() {
    let c = FixtureCluster::start(DEADLINE);
    c.apply(
        "a_legacy_params.sloth.lua",
        &["--param", "target=staging", "--param", "owner=ops"],
    );
    c.apply("a_legacy_input.sloth.lua", &[]);

    let (wf, runs) = finished(&c, "deploy-group");
    assert_eq!(
        wf.status_or_default().phase,
        WorkflowPhase::Succeeded,
        "{:#?}",
        runs
    );
    let show = status(&runs["show_params"]);
    assert_eq!(
        (
            show.results["target"].as_str(),
            show.results["region"].as_str(),
            show.results["owner"].as_str()
        ),
        ("prod", "us-east", "ops"),
        "task params over group params over --param"
    );
    assert_eq!(show.message, "Remote task executed.");
    assert!(
        show.log_tail
            .unwrap_or_default()
            .contains("target=prod region=us-east")
    );

    let (wf, runs) = finished(&c, "data-flow");
    assert_eq!(
        wf.metadata.annotations[ORIGINAL_NAME_ANNOTATION],
        "Data_Flow"
    );
    assert_eq!(
        wf.status_or_default().phase,
        WorkflowPhase::Succeeded,
        "{:#?}",
        runs
    );
    assert_eq!(status(&runs["consume"]).results["got"], "42");
}

#[test]
fn returned_exec_results_decide_and_nil_or_errors_fail_with_the_line() {
    let c = FixtureCluster::start(DEADLINE);
    c.apply("a_exec_result.sloth.lua", &[]);
    c.apply("a_nil_return.sloth.lua", &[]);

    let (wf, runs) = finished(&c, "exec-result");
    assert_eq!(wf.status_or_default().phase, WorkflowPhase::Failed);
    assert_phase(&runs["passes"], TaskRunPhase::Succeeded);
    assert!(
        status(&runs["passes"]).message.contains("all good"),
        "{:#?}",
        runs["passes"].status
    );
    assert_phase(&runs["breaks"], TaskRunPhase::Failed);
    let message = status(&runs["breaks"]).message;
    assert!(
        message.contains("compiler said no") && message.contains("exit code 3"),
        "{message}"
    );

    let (_, runs) = finished(&c, "nil-return");
    assert_phase(&runs["forgot"], TaskRunPhase::Failed);
    let message = status(&runs["forgot"]).message;
    assert!(
        message.contains(":7: the task's function returned nil"),
        "{message}"
    );
    assert!(log(&runs["forgot"]).contains("did the work"));
    assert_phase(&runs["raises"], TaskRunPhase::Failed);
    let message = status(&runs["raises"]).message;
    assert!(message.contains(":12: disk full"), "{message}");
}

#[test]
fn task_hooks_run_on_the_agent_in_order_and_failures_are_recorded() {
    let c = FixtureCluster::start(DEADLINE);
    for file in [
        "a_hooks_fluent.sloth.lua",
        "a_hooks_table.sloth.lua",
        "a_hook_failure.sloth.lua",
        "a_hook_timeout.sloth.lua",
        "a_shell_hooks.sloth.lua",
    ] {
        c.apply(file, &[]);
    }

    let (_, runs) = finished(&c, "hooks-fluent");
    assert_phase(&runs["good"], TaskRunPhase::Succeeded);
    let good = log(&runs["good"]);
    let order: Vec<usize> = [
        "pre_hook ran",
        "main ran",
        "on_success saw n=1",
        "post_hook ok=true",
    ]
    .iter()
    .map(|line| {
        good.find(line)
            .unwrap_or_else(|| panic!("{line:?} not in {good}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{good}");
    assert_eq!(c.marker("good.success").as_deref(), Some("yes"));
    assert_phase(&runs["bad"], TaskRunPhase::Failed);
    assert_eq!(status(&runs["bad"]).message, "it broke");
    assert!(log(&runs["bad"]).contains("on_failure got: it broke"));
    assert_eq!(c.marker("bad.failure").as_deref(), Some("it broke"));
    assert_eq!(c.marker("bad.success"), None, "on_success of a failed task");

    let (_, runs) = finished(&c, "hooks-table");
    assert_phase(&runs["guarded"], TaskRunPhase::Failed);
    let message = status(&runs["guarded"]).message;
    assert!(
        message.contains("pre_hook failed: maintenance window closed"),
        "{message}"
    );
    assert_eq!(c.marker("guarded.ran"), None, "the command must not run");
    assert_phase(&runs["flaky"], TaskRunPhase::Failed);
    assert_eq!(c.marker("flaky.fail").as_deref(), Some("failed"));

    let (_, runs) = finished(&c, "hook-failure");
    assert_phase(&runs["lucky"], TaskRunPhase::Succeeded);
    let message = status(&runs["lucky"]).message;
    assert!(
        message.starts_with("deployed")
            && message.contains("hook on_success failed")
            && message.contains("notifier down"),
        "{message}"
    );
    assert!(log(&runs["lucky"]).contains("post_hook after a failed hook"));
    let condition = status(&runs["lucky"])
        .conditions
        .into_iter()
        .find(|c| c.type_ == "HookFailed")
        .expect("a HookFailed condition");
    assert!(condition.message.contains("notifier down"), "{condition:?}");
    let events = wait_until(DEADLINE, || {
        let out = ctl(&c.cluster.server, &["get", "events"]).ok().stdout;
        out.contains("HookFailed").then_some(out)
    })
    .expect("a HookFailed Event");
    assert!(
        events.contains("task lucky: hook on_success failed"),
        "{events}"
    );

    let (_, runs) = finished(&c, "hook-timeout");
    assert_phase(&runs["slow"], TaskRunPhase::Failed);
    assert_eq!(status(&runs["slow"]).reason, "TimedOut");
    assert_eq!(c.marker("slow.timeout").as_deref(), Some("cleaned"));

    let (_, runs) = finished(&c, "shell-hooks");
    assert_phase(&runs["greet"], TaskRunPhase::Succeeded);
    assert!(
        status(&runs["greet"])
            .message
            .contains("hello from the shell")
    );
    assert!(log(&runs["greet"]).contains("greeted"));
}
