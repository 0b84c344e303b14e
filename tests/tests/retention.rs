//! Retention with real processes: `sloth-controllers --taskrun-ttl` deletes
//! finished ad-hoc TaskRuns, `spec.ttlAfterFinished` overrides it, a
//! Workflow's TaskRuns stay with their Workflow; the agent removes the run
//! directory of a deleted TaskRun, and at start the directories of
//! TaskRuns deleted while it was down.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sloth_tests::{Agent, ApiServer, Controllers, ctl, ctl_stdin, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// `TaskRun default/NAME` bound to agent a1, running `script`.
fn taskrun(name: &str, script: &str, ttl: Option<&str>) -> String {
    let ttl = ttl.map_or(String::new(), |t| format!("\n  ttlAfterFinished: {t}"));
    format!(
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {{name: {name}}}\n\
         spec:\n  agentName: a1\n  run: {{shell: '{script}'}}{ttl}\n"
    )
}

fn apply(server: &ApiServer, yaml: &str) {
    ctl_stdin(server, &["apply", "-f", "-"], yaml).ok();
}

/// The TaskRun as JSON, None once it is gone.
fn get(server: &ApiServer, name: &str) -> Option<Value> {
    let run = ctl(server, &["get", "taskrun", name, "-o", "json"]);
    (run.code == 0).then(|| run.json())
}

fn phase(taskrun: &Value) -> &str {
    taskrun["status"]["phase"].as_str().unwrap_or_default()
}

fn wait_succeeded(server: &ApiServer, agent: &Agent, name: &str) {
    wait_until(DEADLINE, || {
        get(server, name).filter(|t| phase(t) == "Succeeded")
    })
    .unwrap_or_else(|| panic!("{name} never succeeded; agent log:\n{}", agent.log()));
}

fn run_dir(agent: &Agent, name: &str) -> PathBuf {
    agent.work_dir().join("default").join(name)
}

fn wait_gone(what: &str, gone: impl Fn() -> bool, log: impl Fn() -> String) {
    wait_until(DEADLINE, || gone().then_some(()))
        .unwrap_or_else(|| panic!("{what} was never removed; log:\n{}", log()));
}

#[test]
fn finished_ad_hoc_taskruns_expire_and_their_run_directories_go() {
    let server = ApiServer::start();
    let controllers = Controllers::start(&server, "c1", &["--taskrun-ttl", "2s"]);
    let mut agent = Agent::start(&server, "a1", &[]);

    // Kept by its own TTL, and a Workflow's TaskRun: both finish first.
    apply(&server, &taskrun("kept", "echo kept", Some("1h")));
    wait_succeeded(&server, &agent, "kept");
    apply(
        &server,
        "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {name: wf}\n\
         spec:\n  tasks:\n    - {name: only, run: {shell: 'echo owned'}}\n",
    );
    let owned = wait_until(DEADLINE, || {
        let wf = ctl(&server, &["get", "workflow", "wf", "-o", "json"]);
        (wf.code == 0 && phase(&wf.json()) == "Succeeded").then_some(())?;
        let listed = ctl(
            &server,
            &[
                "get",
                "taskruns",
                "-l",
                "sloth.dev/workflow=wf",
                "-o",
                "json",
            ],
        )
        .ok()
        .json();
        listed["items"][0]["metadata"]["name"]
            .as_str()
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("the workflow never finished; log:\n{}", controllers.log()));

    // The ad-hoc one finishes last and expires 2s later...
    apply(&server, &taskrun("adhoc", "echo adhoc", None));
    wait_succeeded(&server, &agent, "adhoc");
    assert!(run_dir(&agent, "adhoc").join("output.log").is_file());
    wait_gone(
        "taskrun adhoc",
        || get(&server, "adhoc").is_none(),
        || controllers.log(),
    );
    // ... and its run directory with it.
    wait_gone(
        "the run directory of adhoc",
        || !run_dir(&agent, "adhoc").exists(),
        || agent.log(),
    );
    // The others finished earlier, yet stay: their own TTL, their Workflow.
    assert!(get(&server, "kept").is_some(), "kept was deleted");
    assert!(get(&server, &owned).is_some(), "{owned} was deleted");
    assert!(run_dir(&agent, "kept").is_dir());

    // An explicit delete removes the run directory too.
    ctl(&server, &["delete", "taskrun", "kept"]).ok();
    wait_gone(
        "the run directory of kept",
        || !run_dir(&agent, "kept").exists(),
        || agent.log(),
    );

    // Deleted while the agent is down: removed when it starts again.
    apply(&server, &taskrun("stale", "echo stale", Some("1h")));
    wait_succeeded(&server, &agent, "stale");
    assert!(
        agent.stop(),
        "the agent did not stop; log:\n{}",
        agent.log()
    );
    ctl(&server, &["delete", "taskrun", "stale"]).ok();
    assert!(run_dir(&agent, "stale").is_dir());
    agent.start_again();
    wait_gone(
        "the run directory of stale",
        || !run_dir(&agent, "stale").exists(),
        || agent.log(),
    );
}

#[test]
fn the_agent_caps_the_output_it_keeps() {
    let server = ApiServer::start();
    let agent = Agent::start(&server, "a1", &["--max-output-bytes", "150K"]);
    // Three runs of 100 KB each, one after the other.
    for name in ["out-1", "out-2", "out-3"] {
        apply(&server, &taskrun(name, "yes | head -c 100000", Some("1h")));
        wait_succeeded(&server, &agent, name);
    }
    let output = |name: &str| run_dir(&agent, name).join("output.log");
    // At most 150 KB stays: the oldest outputs go first, the newest stays.
    wait_gone(
        "the oldest output",
        || !output("out-1").exists() && !output("out-2").exists(),
        || agent.log(),
    );
    assert!(output("out-3").is_file());
}

#[test]
fn single_node_mode_takes_the_taskrun_ttl_too() {
    let server = ApiServer::start_with(&["--controllers", "--taskrun-ttl", "2s"]);
    let agent = Agent::start(&server, "a1", &[]);
    apply(&server, &taskrun("single", "echo single", None));
    wait_succeeded(&server, &agent, "single");
    wait_gone(
        "the finished ad-hoc TaskRun single",
        || get(&server, "single").is_none(),
        || server.log(),
    );
}
