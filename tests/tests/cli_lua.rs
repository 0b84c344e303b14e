//! `slothctl apply -f` and `render -f` on Lua workflow files (the
//! sloth-runner DSL) against a real apiserver: the Workflows created, one
//! per TaskDefinitions group, `--param`, delegation by agent address, and
//! Lua errors reported with file and line (exit 2, nothing written).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sloth_tests::{ApiServer, Run, ctl, run_to_end, slothctl, slothctl_at};

const DEADLINE: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> String {
    format!("{}/fixtures/lua/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn finish(cmd: Command, input: Option<&str>) -> Run {
    run_to_end(cmd, input, DEADLINE)
}

fn workflow(server: &ApiServer, name: &str) -> Value {
    ctl(server, &["get", "wf", name, "-o", "json"]).ok().json()
}

fn selector(task: &Value) -> &Value {
    &task["agentSelector"]["matchLabels"]
}

#[test]
fn apply_of_a_fluent_file_creates_the_workflow() {
    let server = ApiServer::start();
    let run = ctl(&server, &["apply", "-f", &fixture("fluent.lua")]).ok();
    assert!(run.stdout.contains("ci-pipeline created"), "{run:#?}");
    let wf = workflow(&server, "ci-pipeline");
    assert_eq!(wf["metadata"]["namespace"], "default");
    assert_eq!(
        wf["metadata"]["annotations"]["sloth.dev/description"],
        "Build and test"
    );
    let tasks = &wf["spec"]["tasks"];
    assert_eq!(tasks[0]["name"], "build_app");
    assert_eq!(tasks[0]["run"]["shell"], "make build");
    assert_eq!(tasks[0]["retries"]["limit"], 2);
    assert_eq!(tasks[0]["timeout"], "2m");
    assert_eq!(selector(&tasks[0])["sloth.dev/agent"], "builder");
    assert_eq!(tasks[1]["name"], "test");
    assert_eq!(tasks[1]["dependsOn"][0], "build_app");
    assert_eq!(selector(&tasks[1])["os"], "linux");
    assert_eq!(tasks[1]["env"]["CI"], "true");
    let lua = &tasks[1]["run"]["lua"];
    assert_eq!(lua["entry"], "ci_pipeline/test");
    let script = std::fs::read_to_string(fixture("fluent.lua")).expect("fixture");
    assert_eq!(lua["script"], script.as_str());
    // Applying again changes nothing.
    let run = ctl(&server, &["apply", "-f", &fixture("fluent.lua")]).ok();
    assert!(run.stdout.contains("unchanged"), "{run:#?}");
}

#[test]
fn task_definitions_make_one_workflow_per_group() {
    let server = ApiServer::start();
    let run = ctl(&server, &["apply", "-f", &fixture("taskdefs.lua")]).ok();
    assert_eq!(run.lines().len(), 2, "{run:#?}");
    let web = workflow(&server, "deploy-web");
    let tasks = &web["spec"]["tasks"];
    assert_eq!(tasks[0]["name"], "fetch_code");
    assert_eq!(tasks[1]["dependsOn"][0], "fetch_code");
    assert_eq!(selector(&tasks[1])["sloth.dev/agent"], "web-1");
    let backup = workflow(&server, "nightly-backup");
    assert_eq!(backup["spec"]["tasks"][0]["retries"]["limit"], 3);
}

#[test]
fn lua_errors_exit_2_with_file_and_line_and_write_nothing() {
    let server = ApiServer::start();
    for (file, at) in [
        ("syntax.lua", "syntax.lua:3:"),
        ("runtime.lua", "runtime.lua:4:"),
    ] {
        let run = ctl(&server, &["apply", "-f", &fixture(file)]).code(2);
        assert!(run.stderr.contains(at), "{run:#?}");
        assert!(run.stdout.is_empty(), "{run:#?}");
        let run = ctl(&server, &["render", "-f", &fixture(file)]).code(2);
        assert!(run.stderr.contains(at), "{run:#?}");
    }
    ctl(&server, &["get", "wf", "never-written"]).code(1);

    // A directory mixing YAML and a broken Lua file: nothing is written.
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a-lock.yaml", "b-workflow.lua"] {
        std::fs::copy(fixture(&format!("mixed/{name}")), dir.path().join(name)).expect("copy");
    }
    std::fs::write(
        dir.path().join("c-bad.lua"),
        "task('x')\n  :command('true')\n  :retrys(3)\n",
    )
    .expect("write");
    let path = dir.path().display().to_string();
    let run = ctl(&server, &["apply", "-f", &path]).code(2);
    assert!(
        run.stderr
            .contains("c-bad.lua:3: unknown task method 'retrys'"),
        "{run:#?}"
    );
    ctl(&server, &["get", "lock", "mixed-lock"]).code(1);
    ctl(&server, &["get", "wf", "mixed-lua"]).code(1);
}

#[test]
fn a_directory_mixing_yaml_and_lua_applies_both() {
    let server = ApiServer::start();
    let run = ctl(&server, &["apply", "-f", &fixture("mixed")]).ok();
    assert_eq!(run.lines().len(), 2, "{run:#?}");
    ctl(&server, &["get", "lock", "mixed-lock"]).ok();
    let wf = workflow(&server, "mixed-lua");
    assert_eq!(wf["spec"]["tasks"][0]["run"]["shell"], "echo hello");
}

#[test]
fn render_prints_yaml_that_apply_accepts() {
    // No server is needed to render.
    let mut cmd = slothctl_at("http://127.0.0.1:1");
    cmd.args(["render", "-f", &fixture("taskdefs.lua")]);
    let rendered = finish(cmd, None).ok();
    assert!(rendered.stdout.contains("\n---\n"), "{rendered:#?}");
    assert!(!rendered.stdout.contains("namespace"), "{rendered:#?}");

    let server = ApiServer::start();
    let mut cmd = slothctl(&server);
    cmd.args(["apply", "-f", "-"]);
    let run = finish(cmd, Some(&rendered.stdout)).ok();
    assert_eq!(run.lines().len(), 2, "{run:#?}");
    workflow(&server, "deploy-web");
    // The same objects from the Lua file: unchanged.
    let run = ctl(&server, &["apply", "-f", &fixture("taskdefs.lua")]).ok();
    assert!(
        run.lines().iter().all(|l| l.ends_with("unchanged")),
        "{run:#?}"
    );

    let mut cmd = slothctl_at("http://127.0.0.1:1");
    cmd.args(["render", "-f", &fixture("fluent.lua"), "-o", "json"]);
    let json = finish(cmd, None).ok().json();
    assert_eq!(json["kind"], "Workflow");
}

#[test]
fn params_override_defaults_and_set_lua_values() {
    let server = ApiServer::start();
    ctl(
        &server,
        &["apply", "-f", &fixture("params.lua"), "--param", "env=prod"],
    )
    .ok();
    let wf = workflow(&server, "deploy");
    assert_eq!(wf["spec"]["params"]["env"], "prod");
    assert_eq!(wf["spec"]["params"]["region"], "eu");
    assert_eq!(
        wf["spec"]["tasks"][0]["run"]["shell"],
        "deploy --env $(params.env) --target prod"
    );
    let run = ctl(&server, &["render", "-f", &fixture("params.lua")]).ok();
    assert!(run.stdout.contains("--target dev"), "{run:#?}");
    let run = ctl(
        &server,
        &["render", "-f", &fixture("params.lua"), "--param", "oops"],
    )
    .code(2);
    assert!(run.stderr.contains("KEY=VALUE"), "{run:#?}");
}

#[test]
fn delegation_by_address_resolves_to_the_agent_with_that_address() {
    let server = ApiServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("addr.lua");
    std::fs::write(
        &file,
        "workflow.define('by_address'):tasks({\n  task('a'):command('true'):delegate_to({ address = '10.9.9.9:50051' }),\n})\n",
    )
    .expect("write");
    let file = file.display().to_string();
    let run = ctl(&server, &["apply", "-f", &file]).code(2);
    assert!(run.stderr.contains("10.9.9.9:50051"), "{run:#?}");
    ctl(&server, &["get", "wf", "by-address"]).code(1);

    let agent = "apiVersion: sloth.dev/v1\nkind: Agent\nmetadata:\n  name: far-agent\nspec:\n  address: 10.9.9.9:50051\n";
    let mut cmd = slothctl(&server);
    cmd.args(["apply", "-f", "-"]);
    finish(cmd, Some(agent)).ok();
    let run = ctl(&server, &["render", "-f", &file]).ok();
    assert!(
        run.stdout.contains("sloth.dev/agent: far-agent"),
        "{run:#?}"
    );
    assert!(!run.stdout.contains("delegate-addresses"), "{run:#?}");
    ctl(&server, &["apply", "-f", &file]).ok();
    let wf = workflow(&server, "by-address");
    assert_eq!(
        selector(&wf["spec"]["tasks"][0])["sloth.dev/agent"],
        "far-agent"
    );

    // Resolving needs the server: unreachable is exit 3.
    let mut cmd = slothctl_at("http://127.0.0.1:1");
    cmd.args(["render", "-f", &file]);
    finish(cmd, None).code(3);
}

/// A file that catches the limit's error with `pcall` and carries on, and
/// one that catches running out of memory: both are stopped (exit 2, the
/// file and the limit named, nothing written) instead of running forever.
#[test]
fn pcall_cannot_swallow_the_lua_limits_of_render_and_apply() {
    // The time budget is 10 s; this deadline only bounds a failure.
    const LIMITED: Duration = Duration::from_secs(90);
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "spin.lua",
            "while true do pcall(function() while true do end end) end\n",
            "the workflow file ran too long",
        ),
        (
            "hog.lua",
            "while true do pcall(function()\n  local t = {}\n  \
             while true do t[#t+1] = string.rep('x', 1e6) end\nend) end\n",
            "the Lua memory limit of 64 MiB was reached",
        ),
    ];
    let server = ApiServer::start();
    for (name, code, limit) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, code).expect("write the file");
        let path = path.display().to_string();
        for verb in ["render", "apply"] {
            let mut cmd = slothctl(&server);
            cmd.args([verb, "-f", &path]);
            let run = run_to_end(cmd, None, LIMITED).code(2);
            assert!(
                run.stderr.contains(name) && run.stderr.contains(limit),
                "{verb} {name}: {run:#?}"
            );
        }
    }
    let listed = ctl(&server, &["get", "wf", "-o", "json"]).ok().json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
}
