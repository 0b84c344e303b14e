//! Lists larger than one gRPC message (4 MiB): 80 TaskRuns, each with about
//! 60 KB of output in its `status.logTail`. `slothctl get` pages through
//! them, and after an apiserver restart on the same ports the agent and
//! the controllers (which list everything again) still run new work.

use std::time::Duration;

use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec};
use sloth_sdk::{Api, Client};
use sloth_tests::{Agent, ApiServer, ctl, run_to_end, runtime, slothctl, wait_until};
use tokio::runtime::Runtime;

/// How long the whole batch may take to run on a loaded machine.
const BATCH_DEADLINE: Duration = Duration::from_secs(180);
/// How long one command or one TaskRun may take.
const DEADLINE: Duration = Duration::from_secs(60);

const TASKRUNS: usize = 80;
/// Bytes of output each TaskRun prints (the logTail keeps up to 64 KiB).
const OUTPUT_BYTES: usize = 60_000;

fn big_output(name: &str) -> TaskRun {
    TaskRun::new(
        name,
        TaskRunSpec {
            agent_name: Some("a1".into()),
            ..TaskRunSpec::shell(format!(
                "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {OUTPUT_BYTES}"
            ))
        },
    )
}

fn phase(taskrun: &TaskRun) -> TaskRunPhase {
    taskrun.phase()
}

/// Creates the TaskRuns and waits (object by object, never by a list)
/// until each has succeeded with its output in `logTail`.
fn run_batch(rt: &Runtime, client: &Client, agent: &Agent) {
    let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
    for i in 0..TASKRUNS {
        rt.block_on(api.create(&big_output(&format!("big-{i:02}"))))
            .expect("create taskrun");
    }
    let start = std::time::Instant::now();
    for i in 0..TASKRUNS {
        let name = format!("big-{i:02}");
        let left = BATCH_DEADLINE.saturating_sub(start.elapsed());
        let done = wait_until(left, || {
            rt.block_on(api.get(&name))
                .ok()
                .filter(|t| phase(t).is_terminal())
        })
        .unwrap_or_else(|| panic!("{name} never finished; agent log:\n{}", agent.log()));
        assert_eq!(phase(&done), TaskRunPhase::Succeeded, "{name}: {done:#?}");
        let tail = done
            .status
            .as_ref()
            .and_then(|s| s.log_tail.as_ref())
            .map_or(0, String::len);
        assert!(tail >= OUTPUT_BYTES - 1, "{name} keeps only {tail} bytes");
    }
}

#[test]
fn more_than_a_message_of_taskruns_is_listed_in_pages_and_survives_a_restart() {
    // Single-node mode: the controllers restart with the apiserver, so they
    // must list every TaskRun again.
    let mut server = ApiServer::start_with(&["--controllers"]);
    let rt = runtime();
    let client = server.client_in(&rt);
    let agent = Agent::start(&server, "a1", &["--capacity", "8"]);
    run_batch(&rt, &client, &agent);

    // More than 4 MiB of TaskRuns in all: one answer could not carry them.
    let table = ctl(&server, &["get", "taskruns"]).ok();
    let rows = table
        .lines()
        .iter()
        .filter(|l| l.starts_with("big-"))
        .count();
    assert_eq!(rows, TASKRUNS, "{}", table.stderr);
    let mut json = slothctl(&server);
    json.args(["get", "taskruns", "-o", "json"]);
    let json = run_to_end(json, None, DEADLINE).ok();
    let listed = json.json();
    let items = listed["items"].as_array().map_or(0, Vec::len);
    assert_eq!(items, TASKRUNS);
    let bytes = json.stdout.len();
    assert!(bytes > 4 * 1024 * 1024, "only {bytes} bytes listed");

    // The agent's watch breaks and resumes; the controllers list again.
    server.restart_same_ports();
    let mut run = slothctl(&server);
    run.args(["run", "--agent", "a1", "--", "echo", "after-restart"]);
    let run = run_to_end(run, None, DEADLINE);
    assert_eq!(
        run.code,
        0,
        "run after the restart failed: {}\n{}\nagent log:\n{}",
        run.stdout,
        run.stderr,
        agent.log()
    );
    assert!(run.stdout.contains("after-restart"), "{}", run.stdout);
    // A TaskRun the scheduler places: the controllers have synced.
    let mut run = slothctl(&server);
    run.args(["run", "-l", "sloth.dev/agent=a1", "--", "echo", "scheduled"]);
    let run = run_to_end(run, None, DEADLINE);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("scheduled"), "{}", run.stdout);
}
