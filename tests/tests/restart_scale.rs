//! A restart with many finished TaskRuns stored (issue 22): the restarted
//! controllers do work in proportion to what is left to do, not to what
//! is stored. The scheduler reconciles only TaskRuns left to place, the
//! owner garbage collector only Workflow-owned ones, and the TaskRun TTL
//! controller only the ones due (here none: the default TTL is a day).
//! Counted from the apiserver's reconcile metrics (in-process controllers,
//! fresh counters after the restart).

use std::time::Duration;

use futures_util::StreamExt;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_sdk::{Api, Error};
use sloth_tests::{Agent, ApiServer, http_get, runtime, shell_bound_to, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
/// Finished TaskRuns stored before the restart.
const STORED: usize = 1_000;
/// Reconciles a controller may run after the restart: the new TaskRun's
/// few, and slack for a relist; far below `STORED`.
const FEW: f64 = 50.0;

/// A shell `true` TaskRun for any agent.
fn shell_true(name: &str) -> TaskRun {
    let mut tr = shell_bound_to(name, "", "true");
    tr.spec.agent_name = None;
    tr
}

/// Stores TaskRun `name` as bound to an agent that does not exist and
/// Succeeded, as a long-finished TaskRun is.
async fn store_finished(api: &Api<TaskRunSpec>, name: String) {
    let tr = shell_bound_to(&name, "retired", "true");
    let mut tr = api.create(&tr).await.expect("create a finished taskrun");
    let now = chrono::Utc::now();
    tr.status = Some(TaskRunStatus {
        phase: TaskRunPhase::Succeeded,
        agent: Some("retired".into()),
        start_time: Some(now),
        completion_time: Some(now),
        exit_code: Some(0),
        ..TaskRunStatus::default()
    });
    match api.update_status(&tr).await {
        Ok(_) => {}
        Err(Error::Conflict(_)) => panic!("nothing else writes {name}"),
        Err(e) => panic!("finish {name}: {e}"),
    }
}

/// `sloth_controller_reconcile_duration_seconds_count` of `controller`
/// (0 when it has not reconciled anything yet).
fn reconciles(metrics: &str, controller: &str) -> f64 {
    let prefix = format!(
        "sloth_controller_reconcile_duration_seconds_count{{controller=\"{controller}\"}} "
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn after_a_restart_the_controllers_do_not_work_through_every_finished_taskrun() {
    let mut server = ApiServer::start_with(&["--controllers"]);
    let rt = runtime();
    let api: Api<TaskRunSpec> = {
        let _enter = rt.enter();
        Api::namespaced(server.client(), "default")
    };
    rt.block_on(
        futures_util::stream::iter(0..STORED)
            .map(|i| store_finished(&api, format!("done-{i}")))
            .buffer_unordered(32)
            .collect::<Vec<()>>(),
    );
    let _agent = Agent::start(&server, "a1", &[]);

    server.restart_same_ports();
    rt.block_on(api.create(&shell_true("after-restart")))
        .expect("create a taskrun after the restart");
    let succeeded = wait_until(DEADLINE, || {
        let tr = rt.block_on(api.get("after-restart")).ok()?;
        (tr.status_or_default().phase == TaskRunPhase::Succeeded).then_some(())
    });
    assert!(
        succeeded.is_some(),
        "the TaskRun made after the restart never succeeded: {:#?}\napiserver log:\n{}",
        rt.block_on(api.get("after-restart")),
        server.log()
    );

    let (code, metrics) = http_get(server.http_url(), "/metrics");
    assert_eq!(code, 200, "{metrics}");
    for controller in ["scheduler", "taskrun-gc", "taskrun-ttl"] {
        let count = reconciles(&metrics, controller);
        assert!(
            count <= FEW,
            "{controller} ran {count} reconciles after the restart with {STORED} finished \
             TaskRuns stored; expected at most {FEW}"
        );
    }
    // The scheduler did place the new TaskRun (the counters are live).
    assert!(reconciles(&metrics, "scheduler") >= 1.0, "{metrics}");
}
