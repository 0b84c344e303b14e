//! High availability on etcd, end to end: three etcd members, two
//! apiservers, two `sloth-controllers` and two agents, every client given
//! both apiservers (or a real HAProxy in front of them). While a sequential
//! workflow runs, one apiserver, the controller leader and one etcd member
//! are killed with SIGKILL: the workflow still completes, every task ran
//! exactly once (by the tasks' own ledger), and a `get -w` started before
//! the kills keeps printing.

use std::process::{Child, Stdio};
use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{LockSpec, TaskRunSpec, WorkflowSpec};
use sloth_sdk::{Api, ListParams};
use sloth_tests::{Backend, EtcdFleet, HaProxy, LineReader, run_to_end, slothctl_at, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);
const TASKS: usize = 8;

struct Fleet {
    cluster: EtcdFleet,
    ledger: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Self {
        Self {
            cluster: EtcdFleet::start(&["a1", "a2"], &["--capacity", "2", "--lease-seconds", "5"]),
            ledger: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A workflow of TASKS tasks in a row; each appends its name to the
    /// ledger (the tasks' own record of having run) and takes a second.
    fn workflow_yaml(&self, name: &str) -> String {
        let ledger = self.ledger.path().join(name);
        let mut yaml = format!(
            "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n  tasks:\n"
        );
        for i in 1..=TASKS {
            let deps = if i == 1 {
                String::new()
            } else {
                format!(", dependsOn: [s{}]", i - 1)
            };
            yaml.push_str(&format!(
                "    - {{name: s{i}{deps}, run: {{shell: 'echo s{i} >> {}; sleep 1'}}}}\n",
                ledger.display()
            ));
        }
        yaml
    }

    fn ledger_of(&self, name: &str) -> Vec<String> {
        let mut lines: Vec<String> = std::fs::read_to_string(self.ledger.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    fn taskrun_exists(&self, name: &str) -> bool {
        let api: Api<TaskRunSpec> = Api::namespaced(self.cluster.client.clone(), "default");
        self.cluster.rt.block_on(api.get(name)).is_ok()
    }

    fn leader(&self) -> String {
        let api: Api<LockSpec> = Api::namespaced(self.cluster.client.clone(), "sloth-system");
        wait_until(DEADLINE, || {
            self.cluster
                .rt
                .block_on(api.get("sloth-controllers"))
                .ok()
                .and_then(|l| l.spec.holder_identity)
        })
        .unwrap_or_else(|| panic!("no controller leader\n{}", self.cluster.logs()))
    }

    fn wait_succeeded(&self, name: &str) {
        let api: Api<WorkflowSpec> = Api::namespaced(self.cluster.client.clone(), "default");
        let done = wait_until(DEADLINE, || {
            self.cluster.rt.block_on(api.get(name)).ok().filter(|w| {
                w.status
                    .as_ref()
                    .is_some_and(|s| s.completion_time.is_some())
            })
        })
        .unwrap_or_else(|| panic!("workflow {name} never finished\n{}", self.cluster.logs()));
        assert_eq!(
            done.status_or_default().phase,
            WorkflowPhase::Succeeded,
            "{:#?}\n{}",
            done.status,
            self.cluster.logs()
        );
    }

    /// Applies workflow `name` through `url`; once its second task exists,
    /// kills apiserver 0, the controllers' leader and etcd member 0.
    fn apply_then_kill_one_of_each(&mut self, url: &str, name: &str) {
        let mut apply = slothctl_at(url);
        apply.args(["apply", "-f", "-"]);
        run_to_end(apply, Some(&self.workflow_yaml(name)), DEADLINE).ok();
        let second = format!("{name}-s2-1");
        wait_until(DEADLINE, || self.taskrun_exists(&second).then_some(()))
            .unwrap_or_else(|| panic!("the workflow did not start\n{}", self.cluster.logs()));
        let leader = self.leader();
        self.cluster.servers[0].kill9();
        let index = if leader == "c1" { 0 } else { 1 };
        self.cluster.controllers[index].kill9();
        self.cluster.etcd.kill9(0);
    }

    fn expected_ledger() -> Vec<String> {
        let mut names: Vec<String> = (1..=TASKS).map(|i| format!("s{i}")).collect();
        names.sort();
        names
    }
}

/// `slothctl get taskruns -w` of workflow `name` through `url`: the child
/// and its printed lines.
fn watch_taskruns(url: &str, name: &str) -> (Child, LineReader) {
    let mut watch = slothctl_at(url);
    watch
        .args(["get", "taskruns", "-w", "-l"])
        .arg(format!("sloth.dev/workflow={name}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut watch = watch.spawn().expect("start slothctl get -w");
    let printed = LineReader::new(watch.stdout.take().expect("stdout"));
    (watch, printed)
}

/// Asserts that the watch started before the kills printed `last`
/// Succeeded without exiting; then ends it.
fn assert_watch_saw(mut watch: Child, printed: &LineReader, last: &str) {
    printed.wait_for(DEADLINE, |line| {
        line.contains(last) && line.contains("Succeeded")
    });
    assert!(
        watch.try_wait().expect("try_wait").is_none(),
        "slothctl get -w exited"
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn a_workflow_survives_losing_an_apiserver_the_leader_and_an_etcd_member() {
    let mut fleet = Fleet::start();
    let urls = fleet.cluster.urls();
    let (watch, printed) = watch_taskruns(&urls, "seq");
    fleet.apply_then_kill_one_of_each(&urls, "seq");

    fleet.wait_succeeded("seq");
    assert_eq!(
        fleet.ledger_of("seq"),
        Fleet::expected_ledger(),
        "every task ran exactly once"
    );
    let api: Api<TaskRunSpec> = Api::namespaced(fleet.cluster.client.clone(), "default");
    let runs = fleet
        .cluster
        .rt
        .block_on(api.list(&ListParams {
            label_selector: "sloth.dev/workflow=seq".into(),
            ..ListParams::default()
        }))
        .expect("list");
    assert_eq!(runs.items.len(), TASKS, "one TaskRun per task");

    // The watch started before the kills still prints, without a restart.
    assert_watch_saw(watch, &printed, "seq-s8-1");
}

#[test]
fn behind_haproxy_the_same_failures_need_only_the_balancer() {
    let mut fleet = Fleet::start();
    let balancer = HaProxy::start(
        &fleet
            .cluster
            .servers
            .iter()
            .map(|s| Backend {
                grpc: s.grpc_url().to_string(),
                http: s.http_url().to_string(),
            })
            .collect::<Vec<_>>(),
    );
    let (watch, printed) = watch_taskruns(balancer.url(), "lb");
    fleet.apply_then_kill_one_of_each(balancer.url(), "lb");

    let mut wait = slothctl_at(balancer.url());
    wait.args(["wait", "workflow", "lb", "--timeout", "80s"]);
    let run = run_to_end(wait, None, DEADLINE);
    assert_eq!(
        run.code,
        0,
        "{run:#?}\nhaproxy:\n{}\n{}",
        balancer.log(),
        fleet.cluster.logs()
    );
    assert_eq!(fleet.ledger_of("lb"), Fleet::expected_ledger());
    let mut get = slothctl_at(balancer.url());
    get.args([
        "get",
        "taskruns",
        "-l",
        "sloth.dev/workflow=lb",
        "-o",
        "name",
    ]);
    let listed = run_to_end(get, None, DEADLINE).ok();
    assert_eq!(listed.lines().len(), TASKS, "{listed:#?}");
    assert_watch_saw(watch, &printed, "lb-s8-1");
}
