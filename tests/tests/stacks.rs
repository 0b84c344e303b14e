//! Stacks with real processes: one Workflow of a stack runs at a time
//! (the next waits in Pending with reason StackBusy), each run is recorded
//! in the Stack's history with who applied it, a successful run's outputs
//! become the Stack's outputs, and the next runs read them (env
//! `SLOTH_STACK_OUTPUT_<NAME>` and Lua `stack.get_output`). Restarts keep
//! all of it.

use std::time::Duration;

use serde_json::Value;
use sloth_tests::{Agent, ApiServer, Controllers, Run, ctl, run_to_end, slothctl, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// A workflow whose task sleeps, records the stack output it saw and
/// writes its own `url` result, which `spec.outputs` publishes.
fn deploy_yaml(name: &str, url: &str, sleep: u32) -> String {
    format!(
        "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata:\n  name: {name}\nspec:\n  outputs:\n    \
         url: \"$(tasks.up.results.url)\"\n  tasks:\n    - name: up\n      run:\n        shell: |\n          \
         sleep {sleep}\n          echo \"seen=${{SLOTH_STACK_OUTPUT_URL:-none}}\" >> \"$SLOTH_RESULTS\"\n          \
         echo \"stack=$SLOTH_STACK\" >> \"$SLOTH_RESULTS\"\n          \
         echo url={url} >> \"$SLOTH_RESULTS\"\n"
    )
}

/// `slothctl apply --stack STACK -f -` as user `user`.
fn apply_as(server: &ApiServer, user: &str, stack: &str, yaml: &str) -> Run {
    let mut cmd = slothctl(server);
    cmd.args(["apply", "--stack", stack, "-f", "-"])
        .env("USER", user);
    run_to_end(cmd, Some(yaml), Duration::from_secs(30))
}

fn get_json(server: &ApiServer, kind: &str, name: &str) -> Value {
    let run = ctl(server, &["get", kind, name, "-o", "json"]);
    if run.code == 0 {
        run.json()
    } else {
        Value::Null
    }
}

fn succeeded(server: &ApiServer, name: &str) -> Value {
    wait_until(DEADLINE, || {
        let wf = get_json(server, "wf", name);
        match wf["status"]["phase"].as_str() {
            Some("Succeeded") => Some(wf),
            Some("Failed") => panic!("{name} failed: {wf}"),
            _ => None,
        }
    })
    .unwrap_or_else(|| panic!("{name} never succeeded: {}", get_json(server, "wf", name)))
}

fn result(server: &ApiServer, workflow: &str, key: &str) -> String {
    let tr = get_json(server, "tr", &format!("{workflow}-up-1"));
    tr["status"]["results"][key]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn a_stack_runs_one_workflow_at_a_time_and_records_history_and_outputs() {
    let mut server = ApiServer::start();
    let _agent = Agent::start(&server, "w1", &["--capacity", "4"]);
    let mut controllers = Controllers::start(&server, "c1", &[]);

    apply_as(
        &server,
        "alice",
        "prod",
        &deploy_yaml("deploy-1", "http://one", 3),
    )
    .ok();
    apply_as(
        &server,
        "bob",
        "prod",
        &deploy_yaml("deploy-2", "http://two", 0),
    )
    .ok();
    // While deploy-1 runs, deploy-2 waits.
    let busy = wait_until(DEADLINE, || {
        let wf = get_json(&server, "wf", "deploy-2");
        let reason = wf["status"]["conditions"][0]["reason"]
            .as_str()
            .map(str::to_string);
        (reason.as_deref() == Some("StackBusy")).then_some(wf)
    })
    .expect("deploy-2 waited with reason StackBusy");
    assert_eq!(busy["status"]["phase"], "Pending", "{busy}");
    assert!(
        busy["status"]["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deploy-1")),
        "{busy}"
    );

    let one = succeeded(&server, "deploy-1");
    let two = succeeded(&server, "deploy-2");
    let end_one = one["status"]["completionTime"].as_str().expect("end");
    let start_two = two["status"]["startTime"].as_str().expect("start");
    assert!(
        end_one <= start_two,
        "overlap: deploy-1 ended {end_one}, deploy-2 started {start_two}"
    );
    // Each run saw the outputs of the one before it.
    assert_eq!(result(&server, "deploy-1", "seen"), "none");
    assert_eq!(result(&server, "deploy-2", "seen"), "http://one");
    assert_eq!(result(&server, "deploy-2", "stack"), "prod");

    let stack = wait_until(DEADLINE, || {
        let s = get_json(&server, "stack", "prod");
        (s["status"]["runs"] == 2 && s["status"]["current"].is_null()).then_some(s)
    })
    .expect("both runs recorded");
    let history = stack["status"]["history"].as_array().expect("history");
    let seen: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|r| {
            (
                r["workflow"].as_str().unwrap_or_default(),
                r["phase"].as_str().unwrap_or_default(),
                r["appliedBy"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("deploy-1", "Succeeded", "alice"),
            ("deploy-2", "Succeeded", "bob")
        ]
    );
    assert_eq!(stack["status"]["outputs"]["url"], "http://two");

    let table = ctl(&server, &["get", "stacks"]).ok();
    assert_eq!(
        words(table.lines()[0]),
        ["NAME", "LAST", "RUN", "PHASE", "RUNS", "AGE"]
    );
    assert_eq!(
        words(table.lines()[1])[..4],
        ["prod", "deploy-2", "Succeeded", "2"]
    );
    let described = ctl(&server, &["describe", "stack", "prod"]).ok();
    for needle in ["History:", "deploy-1", "alice", "APPLIED BY", "http://two"] {
        assert!(
            described.stdout.contains(needle),
            "{needle}: {}",
            described.stdout
        );
    }
    let missing = ctl(&server, &["describe", "stack", "nope"]).code(1);
    assert!(missing.stderr.contains("nope"), "{missing:#?}");

    // Restarts keep history and outputs, and the next run reads them (Lua).
    controllers.kill9();
    server.restart_same_ports();
    controllers.start_again();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("deploy.lua");
    std::fs::write(
        &file,
        r#"
local up = task("up"):command(function(this, params)
  return true, "read", { seen = stack.get_output("url", "none"), name = stack.name() }
end):build()
workflow.define("deploy-3", { stack = "prod", tasks = { up } })
"#,
    )
    .expect("write");
    let mut cmd = slothctl(&server);
    cmd.args(["apply", "-f", file.to_str().expect("path")])
        .env("USER", "carol");
    run_to_end(cmd, None, Duration::from_secs(30)).ok();
    succeeded(&server, "deploy-3");
    assert_eq!(result(&server, "deploy-3", "seen"), "http://two");
    assert_eq!(result(&server, "deploy-3", "name"), "prod");
    let stack = wait_until(DEADLINE, || {
        let s = get_json(&server, "stack", "prod");
        (s["status"]["runs"] == 3).then_some(s)
    })
    .expect("three runs recorded");
    assert_eq!(
        stack["status"]["history"][2]["appliedBy"], "carol",
        "{stack}"
    );
    assert_eq!(
        stack["status"]["history"][0]["workflow"], "deploy-1",
        "{stack}"
    );
    // No spec.outputs in deploy-3: the stack keeps the last ones.
    assert_eq!(stack["status"]["outputs"]["url"], "http://two", "{stack}");
}

#[test]
fn history_is_bounded_and_bad_stacks_are_refused() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "w1", &["--capacity", "4"]);
    let _controllers = Controllers::start(&server, "c1", &[]);
    let stack = "apiVersion: sloth.dev/v1\nkind: Stack\nmetadata:\n  name: small\nspec:\n  historyLimit: 2\n";
    let mut cmd = slothctl(&server);
    cmd.args(["apply", "-f", "-"]);
    run_to_end(cmd, Some(stack), Duration::from_secs(30)).ok();
    for i in 1..=3 {
        let name = format!("small-{i}");
        apply_as(
            &server,
            "dora",
            "small",
            &deploy_yaml(&name, &format!("http://{i}"), 0),
        )
        .ok();
    }
    for i in 1..=3 {
        succeeded(&server, &format!("small-{i}"));
    }
    let recorded = wait_until(DEADLINE, || {
        let s = get_json(&server, "stack", "small");
        (s["status"]["runs"] == 3).then_some(s)
    })
    .expect("three runs");
    let names: Vec<&str> = recorded["status"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|r| r["workflow"].as_str())
        .collect();
    assert_eq!(names, ["small-2", "small-3"]);
    assert_eq!(recorded["status"]["outputs"]["url"], "http://3");

    // Bad input names the field; nothing is stored.
    let bad = stack
        .replace("historyLimit: 2", "historyLimit: 0")
        .replace("small", "tiny");
    let mut cmd = slothctl(&server);
    cmd.args(["apply", "-f", "-"]);
    let run = run_to_end(cmd, Some(&bad), Duration::from_secs(30)).code(2);
    assert!(run.stderr.contains("spec.historyLimit"), "{run:#?}");
    let run = apply_as(&server, "dora", "Not_A_Name", &deploy_yaml("bad-1", "x", 0)).code(2);
    assert!(run.stderr.contains("--stack"), "{run:#?}");
    let yaml = deploy_yaml("bad-2", "x", 0).replace("spec:\n", "spec:\n  stack: Bad_Stack\n");
    let mut cmd = slothctl(&server);
    cmd.args(["apply", "-f", "-"]);
    let run = run_to_end(cmd, Some(&yaml), Duration::from_secs(30)).code(2);
    assert!(run.stderr.contains("spec.stack"), "{run:#?}");
    ctl(&server, &["get", "wf", "bad-1"]).code(1);
    ctl(&server, &["get", "wf", "bad-2"]).code(1);
    ctl(&server, &["get", "stack", "tiny"]).code(1);
}
