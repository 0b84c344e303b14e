//! Sloth on a real etcd: the whole stack runs a workflow on `--store
//! etcd`, and etcd's faults (away at start, quorum lost) are clear errors,
//! never a crash or a write reported as done.

use std::time::Duration;

use sloth_sdk::Api;
use sloth_sdk::objects::WorkflowSpec;
use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_tests::{Agent, ApiServer, Etcd, http_get, run_to_end, runtime, slothctl, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

fn on_etcd(etcd: &Etcd, extra: &[&str]) -> ApiServer {
    let endpoints = etcd.endpoints();
    let mut args = vec!["--store", "etcd", "--etcd-endpoints", endpoints.as_str()];
    args.extend_from_slice(extra);
    ApiServer::start_with(&args)
}

#[test]
fn a_workflow_runs_on_the_etcd_store() {
    let etcd = Etcd::start();
    let server = on_etcd(&etcd, &["--controllers", "--etcd-prefix", "/it"]);
    let _agent = Agent::start(&server, "a1", &["--capacity", "2"]);
    let mut apply = slothctl(&server);
    apply.args(["apply", "-f", "-"]);
    run_to_end(
        apply,
        Some(
            r#"
apiVersion: sloth.dev/v1
kind: Workflow
metadata: {name: on-etcd}
spec:
  tasks:
    - {name: one, run: {shell: 'echo n=1 >> "$SLOTH_RESULTS"'}}
    - {name: two, run: {shell: 'echo got $(tasks.one.results.n)'}}
"#,
        ),
        DEADLINE,
    )
    .ok();
    let rt = runtime();
    let client = server.client_in(&rt);
    let workflows: Api<WorkflowSpec> = Api::namespaced(client, "default");
    let done = wait_until(DEADLINE, || {
        rt.block_on(workflows.get("on-etcd")).ok().filter(|w| {
            w.status
                .as_ref()
                .is_some_and(|s| s.completion_time.is_some())
        })
    })
    .unwrap_or_else(|| panic!("the workflow never finished\n{}", server.log()));
    assert_eq!(done.status_or_default().phase, WorkflowPhase::Succeeded);
    // The objects live under the prefix in etcd.
    assert!(http_get(server.http_url(), "/readyz").0 == 200);
}

#[test]
fn an_unreachable_etcd_at_start_is_reported_and_not_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = ApiServer::start_with(&["--store", "etcd", "--etcd-endpoints", &endpoint]);
    let (status, body) = http_get(server.http_url(), "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store"), "{body}");
    let log = server.log();
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let mut get = slothctl(&server);
    get.args(["get", "workflows"]);
    let run = run_to_end(get, None, DEADLINE);
    assert_ne!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("etcd"), "{run:#?}");
}

#[test]
fn a_write_without_quorum_is_an_error() {
    let mut etcd = Etcd::start_cluster(3);
    let server = on_etcd(&etcd, &[]);
    let mut apply = slothctl(&server);
    apply.args(["apply", "-f", "-"]);
    let lock = "apiVersion: sloth.dev/v1\nkind: Lock\nmetadata: {name: before}\nspec: {}\n";
    run_to_end(apply, Some(lock), DEADLINE).ok();
    etcd.kill9(1);
    etcd.kill9(2);
    let mut apply = slothctl(&server);
    apply.args(["apply", "-f", "-"]);
    let after = "apiVersion: sloth.dev/v1\nkind: Lock\nmetadata: {name: after}\nspec: {}\n";
    let run = run_to_end(apply, Some(after), DEADLINE);
    assert_ne!(
        run.code, 0,
        "a write without quorum was reported as done: {run:#?}"
    );
    assert!(!run.stdout.contains("created"), "{run:#?}");
    wait_until(DEADLINE, || {
        (http_get(server.http_url(), "/readyz").0 == 503).then_some(())
    })
    .unwrap_or_else(|| panic!("/readyz stayed ready without quorum\n{}", server.log()));
}
