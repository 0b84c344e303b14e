//! High availability on etcd, end to end: three etcd members, two
//! apiservers, two `sloth-controllers` and two agents, every client given
//! both apiservers (or a real HAProxy in front of them). While a sequential
//! workflow runs, one apiserver, the controller leader and one etcd member
//! are killed with SIGKILL: the workflow still completes, every task ran
//! exactly once (by the tasks' own ledger), and a `get -w` started before
//! the kills keeps printing.

use std::process::Stdio;
use std::time::Duration;

use sloth_sdk::objects::workflow::WorkflowPhase;
use sloth_sdk::objects::{LockSpec, TaskRunSpec, WorkflowSpec};
use sloth_sdk::{Api, Client, ListParams};
use sloth_tests::{
    Agent, ApiServer, Backend, Controllers, Etcd, HaProxy, LineReader, run_to_end, runtime,
    slothctl_at, wait_until,
};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(90);
const TASKS: usize = 8;

struct Fleet {
    etcd: Etcd,
    servers: Vec<ApiServer>,
    controllers: Vec<Controllers>,
    agents: Vec<Agent>,
    rt: Runtime,
    client: Client,
    ledger: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Self {
        let etcd = Etcd::start_cluster(3);
        let endpoints = etcd.endpoints();
        let servers: Vec<ApiServer> = (0..2)
            .map(|_| ApiServer::start_with(&["--store", "etcd", "--etcd-endpoints", &endpoints]))
            .collect();
        let urls = Self::urls_of(&servers);
        let controllers = ["c1", "c2"]
            .iter()
            .map(|id| {
                Controllers::start_at(
                    &urls,
                    id,
                    &["--lease-duration", "3s", "--agent-lost-grace", "2s"],
                )
            })
            .collect();
        let agents = ["a1", "a2"]
            .iter()
            .map(|name| Agent::start_at(&urls, name, &["--capacity", "2", "--lease-seconds", "5"]))
            .collect();
        let rt = runtime();
        let client = {
            let _enter = rt.enter();
            Client::new(&[servers[0].grpc_url(), servers[1].grpc_url()]).expect("client")
        };
        Self {
            etcd,
            servers,
            controllers,
            agents,
            rt,
            client,
            ledger: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn urls_of(servers: &[ApiServer]) -> String {
        servers
            .iter()
            .map(|s| s.grpc_url().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn urls(&self) -> String {
        Self::urls_of(&self.servers)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.servers.iter().enumerate() {
            out.push_str(&format!("--- apiserver {i}\n{}\n", s.log()));
        }
        for (i, c) in self.controllers.iter().enumerate() {
            out.push_str(&format!("--- controllers {i}\n{}\n", c.log()));
        }
        for a in &self.agents {
            out.push_str(&format!("--- agent {}\n{}\n", a.name(), a.log()));
        }
        out.push_str(&self.etcd.logs());
        out
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
        let api: Api<TaskRunSpec> = Api::namespaced(self.client.clone(), "default");
        self.rt.block_on(api.get(name)).is_ok()
    }

    fn leader(&self) -> String {
        let api: Api<LockSpec> = Api::namespaced(self.client.clone(), "sloth-system");
        wait_until(DEADLINE, || {
            self.rt
                .block_on(api.get("sloth-controllers"))
                .ok()
                .and_then(|l| l.spec.holder_identity)
        })
        .unwrap_or_else(|| panic!("no controller leader\n{}", self.logs()))
    }

    fn wait_succeeded(&self, name: &str) {
        let api: Api<WorkflowSpec> = Api::namespaced(self.client.clone(), "default");
        let done = wait_until(DEADLINE, || {
            self.rt.block_on(api.get(name)).ok().filter(|w| {
                w.status
                    .as_ref()
                    .is_some_and(|s| s.completion_time.is_some())
            })
        })
        .unwrap_or_else(|| panic!("workflow {name} never finished\n{}", self.logs()));
        assert_eq!(
            done.status_or_default().phase,
            WorkflowPhase::Succeeded,
            "{:#?}\n{}",
            done.status,
            self.logs()
        );
    }

    fn expected_ledger() -> Vec<String> {
        let mut names: Vec<String> = (1..=TASKS).map(|i| format!("s{i}")).collect();
        names.sort();
        names
    }
}

#[test]
fn a_workflow_survives_losing_an_apiserver_the_leader_and_an_etcd_member() {
    let mut fleet = Fleet::start();
    let urls = fleet.urls();
    let mut watch = slothctl_at(&urls);
    watch
        .args(["get", "taskruns", "-w", "-l", "sloth.dev/workflow=seq"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut watch = watch.spawn().expect("start slothctl get -w");
    let printed = LineReader::new(watch.stdout.take().expect("stdout"));

    let mut apply = slothctl_at(&urls);
    apply.args(["apply", "-f", "-"]);
    run_to_end(apply, Some(&fleet.workflow_yaml("seq")), DEADLINE).ok();
    wait_until(DEADLINE, || fleet.taskrun_exists("seq-s2-1").then_some(()))
        .unwrap_or_else(|| panic!("the workflow did not start\n{}", fleet.logs()));

    let leader = fleet.leader();
    fleet.servers[0].kill9();
    let index = if leader == "c1" { 0 } else { 1 };
    fleet.controllers[index].kill9();
    fleet.etcd.kill9(0);

    fleet.wait_succeeded("seq");
    assert_eq!(
        fleet.ledger_of("seq"),
        Fleet::expected_ledger(),
        "every task ran exactly once"
    );
    let api: Api<TaskRunSpec> = Api::namespaced(fleet.client.clone(), "default");
    let runs = fleet
        .rt
        .block_on(api.list(&ListParams {
            label_selector: "sloth.dev/workflow=seq".into(),
            ..ListParams::default()
        }))
        .expect("list");
    assert_eq!(runs.items.len(), TASKS, "one TaskRun per task");

    // The watch started before the kills still prints, without a restart.
    printed.wait_for(DEADLINE, |line| {
        line.contains("seq-s8-1") && line.contains("Succeeded")
    });
    assert!(
        watch.try_wait().expect("try_wait").is_none(),
        "slothctl get -w exited"
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn behind_haproxy_the_same_failures_need_only_the_balancer() {
    let mut fleet = Fleet::start();
    let balancer = HaProxy::start(
        &fleet
            .servers
            .iter()
            .map(|s| Backend {
                grpc: s.grpc_url().to_string(),
                http: s.http_url().to_string(),
            })
            .collect::<Vec<_>>(),
    );
    let mut watch = slothctl_at(balancer.url());
    watch
        .args(["get", "taskruns", "-w", "-l", "sloth.dev/workflow=lb"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut watch = watch.spawn().expect("start slothctl get -w");
    let printed = LineReader::new(watch.stdout.take().expect("stdout"));
    let mut apply = slothctl_at(balancer.url());
    apply.args(["apply", "-f", "-"]);
    run_to_end(apply, Some(&fleet.workflow_yaml("lb")), DEADLINE).ok();
    wait_until(DEADLINE, || fleet.taskrun_exists("lb-s2-1").then_some(()))
        .unwrap_or_else(|| panic!("the workflow did not start\n{}", fleet.logs()));
    let leader = fleet.leader();
    fleet.servers[0].kill9();
    let index = if leader == "c1" { 0 } else { 1 };
    fleet.controllers[index].kill9();
    fleet.etcd.kill9(0);

    let mut wait = slothctl_at(balancer.url());
    wait.args(["wait", "workflow", "lb", "--timeout", "80s"]);
    let run = run_to_end(wait, None, DEADLINE);
    assert_eq!(
        run.code,
        0,
        "{run:#?}\nhaproxy:\n{}\n{}",
        balancer.log(),
        fleet.logs()
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
    printed.wait_for(DEADLINE, |line| {
        line.contains("lb-s8-1") && line.contains("Succeeded")
    });
    assert!(
        watch.try_wait().expect("try_wait").is_none(),
        "slothctl get -w exited"
    );
    let _ = watch.kill();
    let _ = watch.wait();
}
