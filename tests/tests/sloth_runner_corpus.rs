//! sloth-runner workflow files as users bring them (tests/fixtures/
//! sloth-runner/b_*.lua): applied with slothctl and run end to end on real
//! agents, each with its expected outcome asserted. Two agents, started
//! the way the seeds start them: `alpha` (`--capabilities build,docker`,
//! zone=eu) and `beta` (`--capabilities test`, zone=us).

use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{TaskRun, TaskRunStatus};
use sloth_tests::{WorkflowCluster, ctl, ctl_stdin, sloth_runner_fixture};

const DEADLINE: Duration = Duration::from_secs(120);

fn fixture_arg(name: &str) -> String {
    sloth_runner_fixture(name).display().to_string()
}

/// The cluster with agents `alpha` and `beta`, in that order.
fn start() -> WorkflowCluster {
    WorkflowCluster::start(
        &[
            (
                "alpha",
                &["--capabilities", "build,docker", "--labels", "zone=eu"],
            ),
            ("beta", &["--capabilities", "test", "--labels", "zone=us"]),
        ],
        DEADLINE,
    )
}

fn status(tr: &TaskRun) -> TaskRunStatus {
    tr.status.clone().unwrap_or_default()
}

fn agent(tr: &TaskRun) -> String {
    status(tr).agent.unwrap_or_default()
}

fn result(tr: &TaskRun, key: &str) -> String {
    status(tr)
        .results
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("no result {key:?}: {:#?}", tr.status))
}

fn log(tr: &TaskRun) -> String {
    status(tr).log_tail.unwrap_or_default()
}

#[test]
fn the_corpus_runs_end_to_end_with_the_expected_outcomes() {
    let c = start();
    let beta_port = c.agents[1]
        .logs_address()
        .rsplit_once(':')
        .map(|(_, port)| port.to_string())
        .expect("a port");
    // delegate_to({address = "localhost:PORT"}) against an agent that
    // reports 127.0.0.1:PORT.
    let address = format!("address=localhost:{beta_port}");
    let values = fixture_arg("b_lib/b_values.yaml");
    for (file, extra) in [
        ("b_fluent_outputs.lua", vec![]),
        ("b_define_table.lua", vec![]),
        ("b_define_builder.lua", vec![]),
        ("b_taskdefinitions.lua", vec![]),
        ("b_params.lua", vec!["--param", "target=prod"]),
        ("b_values.lua", vec!["--values", values.as_str()]),
        ("b_delegate_name.lua", vec![]),
        ("b_delegate_address.lua", vec!["--param", address.as_str()]),
        ("b_capability.lua", vec![]),
        ("b_modules.lua", vec![]),
        ("b_import.lua", vec![]),
        ("b_fs_exec.lua", vec![]),
        ("b_parallel.lua", vec![]),
        ("b_workspace.lua", vec![]),
        ("b_run_if.lua", vec![]),
        ("b_retries.lua", vec![]),
    ] {
        c.apply_file(&sloth_runner_fixture(file), &extra).ok();
    }
    let stdin = std::fs::read_to_string(sloth_runner_fixture("b_stdin.lua")).expect("read");
    let applied = ctl_stdin(&c.server, &["apply", "-f", "-"], &stdin).ok();
    assert!(applied.stdout.contains("b-stdin created"), "{applied:#?}");

    let ok = WorkflowPhase::Succeeded;
    let runs = c.ended("b-fluent-outputs", ok);
    assert_eq!(result(&runs["test"], "tested"), "2.0.1/app.tar.gz");
    assert!(log(&runs["build"]).contains("building on"), "{runs:#?}");
    assert!(log(&runs["test"]).contains("testing 2.0.1"));

    let runs = c.ended("b-define-table", ok);
    assert!(log(&runs["hello"]).contains("hello-from-table"));
    assert!(status(&runs["hello"]).completion_time <= status(&runs["after"]).start_time);

    let runs = c.ended("b-define-builder", ok);
    assert!(log(&runs["one"]).contains("one"));
    assert_eq!(result(&runs["two"], "n"), "2");

    let runs = c.ended("b-legacy", ok);
    assert!(log(&runs["prepare"]).contains("preparing-legacy"));
    assert_eq!(result(&runs["finish"], "group"), "legacy");

    let runs = c.ended("b-params", ok);
    assert_eq!(result(&runs["show"], "target"), "prod");
    assert_eq!(result(&runs["show"], "replicas"), "1");

    // --values: read while slothctl evaluates (the task's name) and on the
    // agent (the results).
    let runs = c.ended("b-values", ok);
    let deploy = &runs["deploy-staging"];
    assert_eq!(result(deploy, "env"), "staging");
    assert_eq!(result(deploy, "image"), "registry.local/app:1.2");

    let runs = c.ended("b-delegate-name", ok);
    assert_eq!(agent(&runs["on-beta"]), "beta");

    let runs = c.ended("b-delegate-address", ok);
    assert_eq!(agent(&runs["by-address"]), "beta");
    assert_eq!(result(&runs["by-address"], "agent"), "beta");

    let runs = c.ended("b-capability", ok);
    assert_eq!(agent(&runs["compile"]), "alpha");
    assert_eq!(agent(&runs["check"]), "beta");
    assert_eq!(agent(&runs["in-us"]), "beta");

    // Modules beside the file: used at the top level (the description) and
    // inside the task on the agent, from the bundle.
    let runs = c.ended("b-modules", ok);
    assert_eq!(result(&runs["use"], "shout"), "SLOTH!");
    assert_eq!(status(&runs["use"]).message, "HELLO!");
    let wf = c.workflow("b-modules").expect("workflow");
    assert_eq!(
        wf.metadata.annotations.get("sloth.dev/description"),
        Some(&"MODULES!".to_string())
    );
    assert_eq!(
        wf.metadata.annotations.get("sloth.dev/lua-modules"),
        Some(&"b_lib/strings.lua".to_string())
    );

    let runs = c.ended("b-import", ok);
    assert_eq!(result(&runs["double"], "doubled"), "42");

    let runs = c.ended("b-fs-exec", ok);
    let files = &runs["files"];
    assert_eq!(result(files, "missing"), "nil");
    assert_eq!(result(files, "err"), "yes");
    assert_eq!(result(files, "removed"), "true");
    assert_eq!(result(files, "argv"), "a-b");
    assert_eq!(result(files, "shell"), "SHELL");

    let runs = c.ended("b-parallel", ok);
    assert_eq!(result(&runs["fan"], "joined"), "first,second,42");

    let runs = c.ended("b-workspace", ok);
    assert!(
        result(&runs["in-ws"], "pwd").ends_with("/ws/build"),
        "{runs:#?}"
    );
    assert_eq!(result(&runs["in-ws"], "marker"), "here");
    assert!(log(&runs["shell-ws"]).trim_end().ends_with("/ws/shell"));

    let runs = c.ended("b-run-if", WorkflowPhase::Failed);
    let skipped = status(&runs["skipped"]);
    assert_eq!(
        (
            format!("{:?}", skipped.phase),
            skipped.message.contains("skipped")
        ),
        ("Succeeded".to_string(), true),
        "{skipped:#?}"
    );
    assert!(log(&runs["runs"]).contains("ran-because-true"));
    let aborted = status(&runs["aborted"]);
    assert!(aborted.message.contains("aborted"), "{aborted:#?}");
    assert!(!log(&runs["aborted"]).contains("should-not-run"));

    let runs = c.ended("b-retries", ok);
    assert_eq!(runs["flaky"].spec.attempt, 2);
    assert_eq!(result(&runs["flaky"], "attempt"), "2");

    let runs = c.ended("b-stdin", ok);
    assert!(log(&runs["from-stdin"]).contains("read-from-stdin"));
}

#[test]
fn unknown_targets_are_warned_about_naming_the_agents_and_bad_input_writes_nothing() {
    let c = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };

    // An agent name and a capability nobody has: applied, with a warning
    // that names what exists.
    let unknown = write(
        "unknown.lua",
        r#"workflow.define("unknown-targets", { tasks = {
  task("a"):delegate_to("nobody"):command("true"):build(),
  task("b"):agent_selector("gpu"):command("true"):build(),
} })"#,
    );
    let run = ctl(&c.server, &["apply", "-f", &unknown]).ok();
    for want in [
        "task \"a\": no agent matches sloth.dev/agent=nobody",
        "task \"b\": no agent matches capability gpu",
        "alpha (",
        "capabilities build,docker",
        "beta (",
    ] {
        assert!(run.stderr.contains(want), "{want:?}: {run:#?}");
    }

    // An address no agent reports: refused, naming the agents; nothing written.
    let address = write(
        "address.lua",
        r#"workflow.define("no-such-address", { tasks = {
  task("a"):delegate_to({ address = "localhost:1" }):command("true"):build(),
} })"#,
    );
    let run = ctl(&c.server, &["apply", "-f", &address]).code(2);
    assert!(run.stderr.contains("localhost:1"), "{run:#?}");
    assert!(run.stderr.contains("beta ("), "{run:#?}");
    assert!(c.workflow("no-such-address").is_none());

    // A module that is not beside the file: the file and line, nothing written.
    let missing = write(
        "missing.lua",
        "\n\nlocal h = require(\"not_here\")\nworkflow.define(\"missing-module\", { tasks = { task(\"a\"):command(\"true\"):build() } })\n",
    );
    let run = ctl(&c.server, &["apply", "-f", &missing]).code(2);
    assert!(run.stderr.contains("missing.lua:3:"), "{run:#?}");
    assert!(run.stderr.contains("not_here.lua"), "{run:#?}");
    assert!(c.workflow("missing-module").is_none());

    // --values that is not a mapping: the flag and file named, nothing written.
    let values = write("values.yaml", "- a\n- b\n");
    let ok_file = fixture_arg("b_values.lua");
    let run = ctl(&c.server, &["apply", "-f", &ok_file, "--values", &values]).code(2);
    assert!(run.stderr.contains("--values"), "{run:#?}");
    assert!(run.stderr.contains("values.yaml"), "{run:#?}");
    assert!(c.workflow("b-values").is_none());

    // render lists the bundled modules with the objects.
    let modules = fixture_arg("b_modules.lua");
    let run = ctl(&c.server, &["render", "-f", &modules]).ok();
    assert!(run.stdout.contains("b_lib/strings.lua"), "{run:#?}");
    assert!(run.stdout.contains("function M.shout"), "{run:#?}");
}
