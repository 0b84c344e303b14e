//! Lua workflow files end to end: the examples in manifests/examples/
//! (sloth-runner DSL, fluent and table forms) applied with slothctl, run by
//! the controllers on the quick start's two agents (`build-1` role=build,
//! `test-1` role=test): order, placement and results as the files say.

use std::path::Path;
use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{TaskRun, TaskRunStatus};
use sloth_tests::{WorkflowCluster, run_to_end, slothctl, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .join("manifests/examples")
        .join(name)
}

/// The quick start's cluster: agents `build-1` and `test-1`.
fn start() -> WorkflowCluster {
    WorkflowCluster::start(
        &[
            ("build-1", &["--labels", "role=build", "--capacity", "4"]),
            ("test-1", &["--labels", "role=test", "--capacity", "4"]),
        ],
        DEADLINE,
    )
}

/// `slothctl apply -f manifests/examples/FILE`; asserts exit 0.
fn apply(c: &WorkflowCluster, file: &str) {
    c.apply_file(&example(file), &[]).ok();
}

fn status(tr: &TaskRun) -> TaskRunStatus {
    tr.status.clone().unwrap_or_default()
}

fn agent(tr: &TaskRun) -> String {
    status(tr).agent.unwrap_or_default()
}

#[test]
fn the_fluent_ci_pipeline_runs_in_order_on_the_right_agents_with_results() {
    let c = start();
    apply(&c, "ci-pipeline.lua");
    let runs = c.ended("ci-pipeline", WorkflowPhase::Succeeded);
    let (build, test, deploy) = (&runs["build"], &runs["test"], &runs["deploy"]);
    assert_eq!(
        (agent(build), agent(test), agent(deploy)),
        ("build-1".into(), "test-1".into(), "build-1".into())
    );
    let version = status(build).results["version"].clone();
    assert!(version.starts_with("1.4."), "{version:?}");
    assert_eq!(status(build).message, "built");
    assert_eq!(
        status(test).results["tested"],
        version,
        "input reached the test"
    );
    assert!(status(build).completion_time <= status(test).start_time);
    assert!(status(test).completion_time <= status(deploy).start_time);
    let tail = status(deploy).log_tail.unwrap_or_default();
    assert!(
        tail.contains(&format!("deploying {version} to staging")),
        "{tail:?}"
    );
    assert!(
        status(build)
            .log_tail
            .unwrap_or_default()
            .contains("building version"),
        "log.info reaches the TaskRun log"
    );
    // The retries and timeout of the file made it into the objects.
    assert_eq!(
        test.spec.timeout.map(|t| t.to_string()).as_deref(),
        Some("1m")
    );
}

#[test]
fn fan_out_results_and_task_definitions_files_run() {
    let c = start();
    for file in ["fan-out.lua", "results.lua", "taskdefs.lua"] {
        apply(&c, file);
    }
    let fan = c.ended("fan-out", WorkflowPhase::Succeeded);
    assert_eq!(agent(&fan["probe_build_1"]), "build-1");
    assert_eq!(agent(&fan["probe_test_1"]), "test-1");
    assert_eq!(status(&fan["gather"]).results["agents"], "build-1,test-1");

    let relay = c.ended("results-relay", WorkflowPhase::Succeeded);
    let count: u32 = status(&relay["measure"]).results["count"]
        .parse()
        .expect("a count");
    assert_eq!(
        status(&relay["double"]).results["doubled"],
        (count * 2).to_string()
    );
    let tail = status(&relay["report"]).log_tail.unwrap_or_default();
    assert!(
        tail.contains(&format!("measured {count} files, doubled {}", count * 2)),
        "{tail:?}"
    );

    let build = c.ended("maintenance-build", WorkflowPhase::Succeeded);
    assert_eq!(agent(&build["disk_usage"]), "build-1");
    let test = c.ended("maintenance-test", WorkflowPhase::Succeeded);
    assert_eq!(agent(&test["uptime"]), "test-1");
    assert!(status(&test["uptime"]).results["uptime"].contains("load"));
}

#[test]
fn the_web_server_example_configures_serves_checks_and_stops() {
    let c = start();
    apply(&c, "web-server.lua");
    let runs = c.ended("web-server", WorkflowPhase::Succeeded);
    let (configure, serve) = (status(&runs["configure"]), status(&runs["serve"]));
    let port: u16 = configure.results["port"].parse().expect("port");
    assert_eq!(
        serve.results["page"],
        format!("hello from sloth on {}\n", {
            let out = std::process::Command::new("uname")
                .arg("-n")
                .output()
                .expect("uname");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
    );
    assert_eq!(serve.metrics.get("port"), Some(&f64::from(port)));
    assert!(
        serve.metrics.contains_key("startup_seconds"),
        "{:?}",
        serve.metrics
    );
    let conf = std::fs::read_to_string(format!("{}/site.conf", configure.results["dir"]))
        .expect("site.conf");
    assert!(
        conf.contains(&format!("listen=127.0.0.1:{port}\n")),
        "{conf}"
    );
    let env = std::fs::read_to_string(format!("{}/server.env", configure.results["dir"]))
        .expect("server.env");
    assert_eq!(env, "SERVER_TOKENS=off\n");
    // The server was stopped: nothing answers on its port any more.
    let stopped = wait_until(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    assert!(stopped.is_some(), "the server still answers on {port}");
}

#[test]
fn the_web_server_example_in_check_mode_changes_and_starts_nothing() {
    let c = start();
    let mut cmd = slothctl(&c.server);
    cmd.args(["apply", "--check", "-f"])
        .arg(example("web-server.lua"));
    run_to_end(cmd, None, DEADLINE).ok();
    let runs = c.ended("web-server", WorkflowPhase::Succeeded);
    let (configure, serve) = (status(&runs["configure"]), status(&runs["serve"]));
    assert!(runs["serve"].spec.check_mode);
    assert_eq!(configure.results["changed"], "dir,config,line,page");
    assert!(
        !Path::new(&configure.results["dir"]).exists(),
        "check mode created {}",
        configure.results["dir"]
    );
    assert!(
        serve.message.starts_with("check mode: would serve "),
        "{}",
        serve.message
    );
}
