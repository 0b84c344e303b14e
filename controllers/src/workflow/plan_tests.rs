//! The planner over scripted observations: each test plays the part of the
//! agents by writing TaskRun statuses, and moves the clock by hand.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sloth_sdk::duration::Duration as SpecDuration;
use sloth_sdk::objects::common::Payload;
use sloth_sdk::objects::workflow::{
    Backoff, RetryOn, RetryPolicy, TaskPhase, WorkflowPhase, WorkflowSpec, WorkflowState,
    WorkflowTask,
};
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunStatus, Workflow};

use super::*;
use sloth_sdk::well_known::HOOK_LABEL;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
}

fn secs(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(s as i64)
}

fn task(name: &str, deps: &[&str]) -> WorkflowTask {
    WorkflowTask {
        name: name.into(),
        run: Payload {
            shell: Some(format!("echo {name}")),
            lua: None,
            command: None,
        },
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        ..Default::default()
    }
}

fn workflow(tasks: Vec<WorkflowTask>) -> Workflow {
    let mut wf = Workflow::new(
        "wf",
        WorkflowSpec {
            tasks,
            ..Default::default()
        },
    );
    wf.metadata.namespace = "default".into();
    wf.metadata.uid = "uid-1".into();
    wf.metadata.generation = 1;
    wf
}

/// A cluster as the controller would observe it: the workflow (with the
/// status last written) and its TaskRuns.
struct World {
    wf: Workflow,
    runs: BTreeMap<String, TaskRun>,
    now: DateTime<Utc>,
}

fn lua_input(taskrun: &TaskRun) -> &BTreeMap<String, BTreeMap<String, String>> {
    &taskrun.spec.run.lua.as_ref().expect("a Lua payload").input
}

impl World {
    fn new(wf: Workflow) -> Self {
        Self {
            wf,
            runs: BTreeMap::new(),
            now: t0(),
        }
    }

    /// Plans, then applies the plan as the controller would.
    fn step(&mut self) -> Plan {
        let runs: Vec<&TaskRun> = self.runs.values().collect();
        let plan = plan(&self.wf, &runs, self.now);
        for new in &plan.create {
            self.runs
                .entry(new.taskrun.name().to_string())
                .or_insert_with(|| new.taskrun.clone());
        }
        for stop in &plan.stop {
            self.finish(&stop.taskrun, TaskRunPhase::Failed, stop.reason);
        }
        self.wf.status = Some(plan.status.clone());
        plan
    }

    /// The Lua `input` of the TaskRun `name`: its upstream tasks' results.
    fn lua_input(&self, name: &str) -> &BTreeMap<String, BTreeMap<String, String>> {
        lua_input(&self.runs[name])
    }

    fn created(plan: &Plan) -> Vec<String> {
        plan.create
            .iter()
            .map(|n| n.taskrun.name().to_string())
            .collect()
    }

    fn set(&mut self, name: &str, phase: TaskRunPhase, reason: &str, results: &[(&str, &str)]) {
        let now = self.now;
        let tr = self
            .runs
            .get_mut(name)
            .unwrap_or_else(|| panic!("no taskrun {name}"));
        tr.status = Some(TaskRunStatus {
            phase,
            reason: reason.into(),
            completion_time: phase.is_terminal().then_some(now),
            results: results
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        });
    }

    fn finish(&mut self, name: &str, phase: TaskRunPhase, reason: &str) {
        self.set(name, phase, reason, &[]);
    }

    fn task_phase(&self, name: &str) -> TaskPhase {
        self.wf.status_or_default().tasks[name].phase
    }

    fn phase(&self) -> WorkflowPhase {
        self.wf.status_or_default().phase
    }
}

#[test]
fn diamond_runs_in_dependency_order_with_the_middle_in_parallel() {
    let mut w = World::new(workflow(vec![
        task("d", &["b", "c"]),
        task("b", &["a"]),
        task("c", &["a"]),
        task("a", &[]),
    ]));
    assert_eq!(World::created(&w.step()), ["wf-a-1"]);
    assert_eq!(w.phase(), WorkflowPhase::Running);
    assert!(
        World::created(&w.step()).is_empty(),
        "an attempt that exists is not created again"
    );
    w.finish("wf-a-1", TaskRunPhase::Succeeded, "Completed");
    assert_eq!(World::created(&w.step()), ["wf-b-1", "wf-c-1"]);
    w.finish("wf-b-1", TaskRunPhase::Succeeded, "Completed");
    assert!(World::created(&w.step()).is_empty(), "d waits for c");
    w.finish("wf-c-1", TaskRunPhase::Succeeded, "Completed");
    assert_eq!(World::created(&w.step()), ["wf-d-1"]);
    w.finish("wf-d-1", TaskRunPhase::Succeeded, "Completed");
    let plan = w.step();
    assert_eq!(w.phase(), WorkflowPhase::Succeeded);
    assert!(plan.status.completion_time.is_some());
    assert_eq!(plan.requeue_after, None);
    let tr = &w.runs["wf-b-1"];
    assert_eq!(tr.metadata.labels[WORKFLOW_LABEL], "wf");
    assert_eq!(tr.metadata.labels[TASK_LABEL], "b");
    assert_eq!(tr.metadata.owner_references[0].uid, "uid-1");
    assert_eq!(tr.spec.attempt, 1);
}

#[test]
fn retries_follow_the_backoff_schedule_then_fail_and_skip_downstream() {
    let mut flaky = task("flaky", &[]);
    flaky.retries = Some(RetryPolicy {
        limit: 2,
        backoff: Some(Backoff {
            duration: SpecDuration::from_secs(10),
            factor: Some(2.0),
            max: None,
        }),
        retry_on: RetryOn::OnFailure,
    });
    let mut w = World::new(workflow(vec![
        flaky,
        task("after", &["flaky"]),
        task("other", &[]),
    ]));
    assert_eq!(World::created(&w.step()), ["wf-flaky-1", "wf-other-1"]);
    w.finish("wf-flaky-1", TaskRunPhase::Failed, "Error");
    let plan = w.step();
    assert!(World::created(&plan).is_empty(), "waits out the backoff");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(10)));
    assert_eq!(plan.status.tasks["flaky"].reason, reason::BACKOFF);
    assert_eq!(w.task_phase("flaky"), TaskPhase::Running);
    w.now += secs(9);
    assert!(World::created(&w.step()).is_empty());
    w.now += secs(1);
    assert_eq!(World::created(&w.step()), ["wf-flaky-2"]);
    assert_eq!(w.runs["wf-flaky-2"].spec.attempt, 2);
    w.finish("wf-flaky-2", TaskRunPhase::Failed, "Error");
    assert_eq!(
        w.step().requeue_after,
        Some(Duration::from_secs(20)),
        "doubled"
    );
    w.now += secs(20);
    assert_eq!(World::created(&w.step()), ["wf-flaky-3"]);
    w.finish("wf-flaky-3", TaskRunPhase::Failed, "Error");
    let plan = w.step();
    assert!(
        World::created(&plan).is_empty(),
        "limit 2 means 3 attempts in all"
    );
    assert_eq!(w.task_phase("flaky"), TaskPhase::Failed);
    assert_eq!(w.task_phase("after"), TaskPhase::Skipped);
    assert_eq!(plan.status.tasks["after"].reason, reason::UPSTREAM_FAILED);
    assert_eq!(
        w.phase(),
        WorkflowPhase::Running,
        "the independent branch carries on"
    );
    w.finish("wf-other-1", TaskRunPhase::Succeeded, "Completed");
    let plan = w.step();
    assert_eq!(w.phase(), WorkflowPhase::Failed);
    assert_eq!(plan.status.conditions[0].reason, reason::TASK_FAILED);
    assert!(plan.status.conditions[0].message.contains("flaky"));
    assert_eq!(
        w.runs.keys().filter(|k| k.starts_with("wf-flaky-")).count(),
        3
    );
}

#[test]
fn on_agent_lost_policy_retries_only_lost_agents() {
    let mut t = task("t", &[]);
    t.retries = Some(RetryPolicy {
        limit: 3,
        backoff: None,
        retry_on: RetryOn::OnAgentLost,
    });
    let mut w = World::new(workflow(vec![t]));
    w.step();
    w.finish("wf-t-1", TaskRunPhase::Failed, "AgentLost");
    assert_eq!(World::created(&w.step()), ["wf-t-2"]);
    w.finish("wf-t-2", TaskRunPhase::Failed, "Error");
    assert!(World::created(&w.step()).is_empty());
    assert_eq!(w.phase(), WorkflowPhase::Failed);
}

#[test]
fn skips_propagate_through_the_whole_downstream() {
    let mut w = World::new(workflow(vec![
        task("a", &[]),
        task("b", &["a"]),
        task("c", &["b"]),
        task("d", &["c", "x"]),
        task("x", &[]),
    ]));
    w.step();
    w.finish("wf-a-1", TaskRunPhase::Failed, "Error");
    w.finish("wf-x-1", TaskRunPhase::Succeeded, "Completed");
    w.step();
    for name in ["b", "c", "d"] {
        assert_eq!(w.task_phase(name), TaskPhase::Skipped, "{name}");
    }
    assert_eq!(w.phase(), WorkflowPhase::Failed);
}

#[test]
fn fail_fast_stops_the_independent_branches_but_runs_finally() {
    let mut wf = workflow(vec![
        task("a", &[]),
        task("slow", &[]),
        task("later", &["slow"]),
    ]);
    wf.spec.fail_fast = true;
    wf.spec.finally = vec![task("cleanup", &[])];
    let mut w = World::new(wf);
    assert_eq!(World::created(&w.step()), ["wf-a-1", "wf-slow-1"]);
    w.finish("wf-a-1", TaskRunPhase::Failed, "Error");
    let plan = w.step();
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(plan.stop[0].taskrun, "wf-slow-1");
    assert_eq!(plan.stop[0].reason, reason::FAIL_FAST);
    let plan = w.step();
    assert_eq!(w.task_phase("later"), TaskPhase::Skipped);
    assert_eq!(World::created(&plan), ["wf-cleanup-1"]);
    w.finish("wf-cleanup-1", TaskRunPhase::Succeeded, "Completed");
    w.step();
    assert_eq!(w.phase(), WorkflowPhase::Failed);
}

#[test]
fn finally_runs_after_the_dag_whatever_its_outcome() {
    let mut wf = workflow(vec![task("a", &[]), task("b", &["a"])]);
    wf.spec.finally = vec![task("notify", &[]), task("archive", &["notify"])];
    let mut w = World::new(wf);
    assert_eq!(
        World::created(&w.step()),
        ["wf-a-1"],
        "finally waits for the DAG"
    );
    w.finish("wf-a-1", TaskRunPhase::Failed, "Error");
    assert_eq!(World::created(&w.step()), ["wf-notify-1"]);
    w.finish("wf-notify-1", TaskRunPhase::Succeeded, "Completed");
    assert_eq!(World::created(&w.step()), ["wf-archive-1"]);
    w.finish("wf-archive-1", TaskRunPhase::Succeeded, "Completed");
    w.step();
    assert_eq!(w.phase(), WorkflowPhase::Failed, "the DAG failed");
}

#[test]
fn cancel_stops_running_runs_and_skips_the_rest() {
    let mut wf = workflow(vec![task("a", &[]), task("b", &["a"])]);
    wf.spec.finally = vec![task("cleanup", &[])];
    let mut w = World::new(wf);
    w.step();
    w.finish("wf-a-1", TaskRunPhase::Running, "");
    w.wf.spec.state = WorkflowState::Cancelled;
    let plan = w.step();
    assert_eq!(plan.stop.len(), 1);
    assert_eq!(plan.stop[0].reason, reason::CANCELLED);
    assert_eq!(
        w.phase(),
        WorkflowPhase::Running,
        "until the run is seen stopped"
    );
    let plan = w.step();
    assert!(plan.create.is_empty());
    assert_eq!(w.phase(), WorkflowPhase::Cancelled);
    assert_eq!(w.task_phase("b"), TaskPhase::Skipped);
    assert_eq!(w.task_phase("cleanup"), TaskPhase::Skipped);
    assert_eq!(plan.status.tasks["a"].reason, reason::CANCELLED);
}

#[test]
fn workflow_timeout_stops_everything_and_fails_with_timed_out() {
    let mut wf = workflow(vec![task("a", &[]), task("b", &["a"])]);
    wf.spec.timeout = Some(SpecDuration::from_secs(60));
    let mut w = World::new(wf);
    let plan = w.step();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    w.finish("wf-a-1", TaskRunPhase::Running, "");
    w.now += secs(30);
    assert_eq!(w.step().requeue_after, Some(Duration::from_secs(30)));
    w.now += secs(30);
    let plan = w.step();
    assert_eq!(plan.stop[0].reason, reason::TIMED_OUT);
    let plan = w.step();
    assert_eq!(w.phase(), WorkflowPhase::Failed);
    assert_eq!(plan.status.conditions[0].reason, reason::TIMED_OUT);
    assert_eq!(w.task_phase("b"), TaskPhase::Skipped);
}

#[test]
fn results_flow_downstream_and_imply_the_dependency() {
    let mut build = task("build", &[]);
    build.run.shell = Some("echo version=1.2 >> $SLOTH_RESULTS".into());
    let mut deploy = task("deploy", &[]);
    deploy.run.shell = Some("deploy $(tasks.build.results.version) to $(params.env)".into());
    let mut wf = workflow(vec![deploy, build]);
    wf.spec.params = [("env".to_string(), "prod".to_string())].into();
    let mut w = World::new(wf);
    assert_eq!(World::created(&w.step()), ["wf-build-1"]);
    w.set(
        "wf-build-1",
        TaskRunPhase::Succeeded,
        "Completed",
        &[("version", "1.2")],
    );
    w.step();
    assert_eq!(
        w.runs["wf-deploy-1"].spec.run.shell.as_deref(),
        Some("deploy 1.2 to prod")
    );
}

#[test]
fn a_missing_result_fails_the_task_without_a_taskrun() {
    let mut use_it = task("use", &[]);
    use_it.run.shell = Some("echo $(tasks.build.results.nope)".into());
    let mut w = World::new(workflow(vec![
        task("build", &[]),
        use_it,
        task("after", &["use"]),
    ]));
    w.step();
    w.finish("wf-build-1", TaskRunPhase::Succeeded, "Completed");
    let plan = w.step();
    assert!(plan.create.is_empty());
    assert_eq!(plan.status.tasks["use"].reason, reason::MISSING_RESULT);
    assert_eq!(w.task_phase("after"), TaskPhase::Skipped);
    assert_eq!(w.phase(), WorkflowPhase::Failed);
}

#[test]
fn when_false_skips_the_task() {
    let mut deploy = task("deploy", &[]);
    deploy.when = Some("$(params.env) == prod".into());
    let mut wf = workflow(vec![deploy]);
    wf.spec.params = [("env".to_string(), "staging".to_string())].into();
    let mut w = World::new(wf);
    assert!(w.step().create.is_empty());
    assert_eq!(w.task_phase("deploy"), TaskPhase::Skipped);
    assert_eq!(w.phase(), WorkflowPhase::Succeeded);
}

#[test]
fn concurrency_caps_unfinished_taskruns() {
    let mut wf = workflow(vec![task("a", &[]), task("b", &[]), task("c", &[])]);
    wf.spec.concurrency = Some(2);
    let mut w = World::new(wf);
    assert_eq!(World::created(&w.step()), ["wf-a-1", "wf-b-1"]);
    assert!(World::created(&w.step()).len() <= 2);
    w.finish("wf-a-1", TaskRunPhase::Succeeded, "Completed");
    assert_eq!(World::created(&w.step()), ["wf-c-1"]);
}

#[test]
fn a_finished_workflow_is_left_alone() {
    let mut w = World::new(workflow(vec![task("a", &[])]));
    w.step();
    w.finish("wf-a-1", TaskRunPhase::Succeeded, "Completed");
    let done = w.step().status;
    w.now += secs(3600);
    w.wf.spec.state = WorkflowState::Cancelled;
    let plan = w.step();
    assert_eq!(plan.status, done);
    assert!(plan.create.is_empty() && plan.stop.is_empty());
}

#[test]
fn a_lua_task_gets_its_upstream_results_as_input() {
    let mut lua = task("report", &["build"]);
    lua.run = Payload {
        shell: None,
        lua: Some(sloth_sdk::objects::common::LuaPayload {
            script: "return function(this, params, input) end".into(),
            ..Default::default()
        }),
        command: None,
    };
    let mut w = World::new(workflow(vec![task("build", &[]), task("other", &[]), lua]));
    w.step();
    w.set(
        "wf-build-1",
        TaskRunPhase::Succeeded,
        "Completed",
        &[("image", "app:2")],
    );
    w.set(
        "wf-other-1",
        TaskRunPhase::Succeeded,
        "Completed",
        &[("x", "1")],
    );
    w.step();
    let input = w.lua_input("wf-report-1");
    assert_eq!(input.len(), 1, "only its own upstream: {input:?}");
    assert_eq!(input["build"]["image"], "app:2");
}

#[test]
fn dependents_start_with_their_upstream_artifacts_and_the_workspace() {
    let mut build = task("build", &[]);
    build.artifacts = Some(sloth_sdk::objects::ArtifactsSpec {
        paths: vec!["dist/".into()],
    });
    let mut wf = workflow(vec![build, task("test", &["build"]), task("other", &[])]);
    wf.spec.workspace = Some(sloth_sdk::objects::BlobRef {
        digest: format!("sha256:{}", "a".repeat(64)),
        size: 10,
    });
    let mut w = World::new(wf);
    let plan = w.step();
    let first = &plan.create[0].taskrun;
    assert_eq!(first.spec.workspace, w.wf.spec.workspace, "the workspace");
    assert_eq!(
        first.spec.artifacts.as_ref().map(|a| a.paths.clone()),
        Some(vec!["dist/".to_string()])
    );
    w.finish("wf-other-1", TaskRunPhase::Succeeded, "Completed");
    w.finish("wf-build-1", TaskRunPhase::Succeeded, "Completed");
    let artifact = sloth_sdk::objects::ArtifactStatus {
        path: "dist".into(),
        digest: format!("sha256:{}", "b".repeat(64)),
        size: 5,
    };
    if let Some(status) = w
        .runs
        .get_mut("wf-build-1")
        .and_then(|tr| tr.status.as_mut())
    {
        status.artifacts = vec![artifact.clone()];
    }
    let plan = w.step();
    assert_eq!(World::created(&plan), ["wf-test-1"]);
    let inputs = &plan.create[0].taskrun.spec.inputs;
    assert_eq!(inputs.len(), 1);
    assert_eq!(
        (
            inputs[0].task.as_str(),
            inputs[0].path.as_str(),
            inputs[0].digest.as_str()
        ),
        ("build", "dist", artifact.digest.as_str())
    );
}

fn with_hooks(mut wf: Workflow, names: &[&str]) -> Workflow {
    wf.spec.hooks = names
        .iter()
        .map(|name| sloth_sdk::objects::workflow::WorkflowHook {
            name: name.to_string(),
            run: Payload {
                shell: None,
                lua: Some(sloth_sdk::objects::common::LuaPayload {
                    script: String::new(),
                    entry: Some(format!("wf/hook:{name}")),
                    ..Default::default()
                }),
                command: None,
            },
            agent_selector: None,
        })
        .collect();
    wf
}

#[test]
fn workflow_hooks_run_one_at_a_time_around_the_tasks() {
    let wf = with_hooks(
        workflow(vec![task("a", &[]), task("b", &["a"])]),
        &[
            "on_start",
            "on_task_start",
            "on_task_complete",
            "on_complete",
        ],
    );
    let mut w = World::new(wf);
    let mut order = Vec::new();
    // Each step creates exactly one TaskRun, which then succeeds.
    for _ in 0..20 {
        let created = World::created(&w.step());
        if created.is_empty() {
            break;
        }
        assert_eq!(created.len(), 1, "one at a time: {created:?}");
        w.set(&created[0], TaskRunPhase::Succeeded, "", &[("k", "v")]);
        order.push(created[0].clone());
        assert_eq!(w.phase(), WorkflowPhase::Running);
    }
    assert_eq!(
        order,
        [
            "wf-hook-on-start",
            "wf-hook-on-task-start-a",
            "wf-a-1",
            "wf-hook-on-task-complete-a",
            "wf-hook-on-task-start-b",
            "wf-b-1",
            "wf-hook-on-task-complete-b",
            "wf-hook-on-complete",
        ]
    );
    w.step();
    assert_eq!(w.phase(), WorkflowPhase::Succeeded);
    // Hooks are not tasks.
    assert_eq!(w.wf.status_or_default().tasks.len(), 2);
    let complete = &w.runs["wf-hook-on-complete"];
    assert_eq!(complete.metadata.labels[HOOK_LABEL], "on_complete");
    assert!(!complete.metadata.labels.contains_key(TASK_LABEL));
    let input = lua_input(complete);
    assert_eq!(input["_hook"]["success"], "true");
    assert_eq!(input["a"]["k"], "v");
}

#[test]
fn the_phase_waits_for_on_complete_which_gets_the_failure() {
    let wf = with_hooks(workflow(vec![task("a", &[])]), &["on_complete"]);
    let mut w = World::new(wf);
    w.step();
    w.finish("wf-a-1", TaskRunPhase::Failed, "Error");
    let plan = w.step();
    assert_eq!(World::created(&plan), ["wf-hook-on-complete"]);
    assert_eq!(w.phase(), WorkflowPhase::Running, "held for on_complete");
    assert_eq!(w.wf.status_or_default().completion_time, None);
    let input = w.lua_input("wf-hook-on-complete");
    assert_eq!(input["_hook"]["success"], "false");
    // A restart sees the same TaskRun: nothing new is created.
    assert!(World::created(&w.step()).is_empty());
    w.finish("wf-hook-on-complete", TaskRunPhase::Failed, "Error");
    w.step();
    assert_eq!(w.phase(), WorkflowPhase::Failed);
    let status = w.wf.status_or_default();
    assert!(status.completion_time.is_some());
    let message = &status.conditions[0].message;
    assert!(
        message.contains("workflow hooks failed: on_complete"),
        "{message}"
    );
}
