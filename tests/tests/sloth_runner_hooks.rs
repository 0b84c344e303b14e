//! Workflow hooks of sloth-runner files (issue 15): `on_start`,
//! `on_task_start`, `on_task_complete` and `on_complete` run as hook
//! TaskRuns (label `sloth.dev/hook`) on a real agent, in order, and are
//! never tasks of the workflow. Each `c_*` fixture in
//! tests/fixtures/sloth-runner/ states its expected outcome.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, Workflow, WorkflowSpec};
use sloth_sdk::well_known::{HOOK_LABEL, TASK_LABEL};
use sloth_sdk::{Api, Client, ListParams};
use sloth_tests::{Agent, ApiServer, ctl, runtime, wait_until};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(120);

struct Cluster {
    server: ApiServer,
    _agent: Agent,
    rt: Runtime,
    client: Client,
    out: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let server = ApiServer::start_with(&["--controllers"]);
        let agent = Agent::start(&server, "worker-1", &["--capacity", "4"]);
        let rt = runtime();
        let client = {
            let _enter = rt.enter();
            server.client()
        };
        Self {
            server,
            _agent: agent,
            rt,
            client,
            out: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn apply(&self, file: &str) {
        let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/sloth-runner")
            .join(file);
        let out = format!("out={}", self.out.path().display());
        let path = path.to_str().expect("utf-8 path");
        ctl(&self.server, &["apply", "-f", path, "--param", &out]).ok();
    }

    fn marker(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.path().join(name)).unwrap_or_default()
    }

    /// Waits for the Workflow `name` to finish; returns it with all the
    /// TaskRuns it owns (tasks' and hooks').
    fn finished(&self, name: &str) -> (Workflow, Vec<TaskRun>) {
        let api: Api<WorkflowSpec> = Api::namespaced(self.client.clone(), "default");
        let wf = wait_until(DEADLINE, || {
            self.rt.block_on(api.get(name)).ok().filter(|w| {
                w.status
                    .as_ref()
                    .is_some_and(|s| s.completion_time.is_some())
            })
        })
        .unwrap_or_else(|| panic!("{name} never finished\n{}", self.server.log()));
        let taskruns: Api<TaskRunSpec> = Api::namespaced(self.client.clone(), "default");
        let runs = self
            .rt
            .block_on(taskruns.list(&ListParams {
                label_selector: format!("sloth.dev/workflow={name}"),
                ..ListParams::default()
            }))
            .expect("list")
            .items;
        (wf, runs)
    }
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
    let c = Cluster::start();
    c.apply("c_workflow_hooks_fluent.sloth.lua");
    let (wf, runs) = c.finished("hooks-fluent-wf");
    let status = wf.status_or_default();
    assert_eq!(status.phase, WorkflowPhase::Succeeded, "{:#?}", wf.status);
    assert_eq!(
        c.marker("order.txt"),
        "start\ntask_start build\nbuild\ntask_complete build true\n\
         task_start test\ntest\ntask_complete test true\ncomplete true v=1.2\n"
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
    let c = Cluster::start();
    c.apply("c_workflow_hooks_table.sloth.lua");
    let (wf, runs) = c.finished("hooks-table-wf");
    let status = wf.status_or_default();
    assert_eq!(status.phase, WorkflowPhase::Failed, "{:#?}", wf.status);
    assert_eq!(c.marker("table.txt"), "start\nbroken\ncomplete false\n");
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
        let out = ctl(&c.server, &["get", "events"]).ok().stdout;
        out.contains("workflow hook on_task_complete failed")
            .then_some(out)
    });
    assert!(events.is_some(), "a HookFailed Event for the workflow hook");
}

#[test]
fn a_workflow_hook_that_is_not_a_function_is_refused_with_file_and_line() {
    let c = Cluster::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.sloth.lua");
    std::fs::write(
        &file,
        "local t = task(\"a\"):command(\"true\"):build()\n\
         workflow.define(\"bad\"):tasks({ t })\n  :on_complete(\"not a function\")\n",
    )
    .expect("write");
    let out = ctl(&c.server, &["apply", "-f", file.to_str().expect("utf-8")]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("bad.sloth.lua:3:")
            && out.stderr.contains("on_complete: expected a function"),
        "{}",
        out.stderr
    );
    let api: Api<WorkflowSpec> = Api::namespaced(c.client.clone(), "default");
    assert!(
        c.rt.block_on(api.get("bad")).is_err(),
        "nothing was written"
    );
}
