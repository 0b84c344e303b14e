//! Chaos, end to end: workflows of ledger tasks run on a fleet of three etcd
//! members, two apiservers, two `sloth-controllers` and three agents while
//! the test, one disruption at a time, kill -9s or SIGSTOPs an apiserver,
//! the controller leader, an agent or an etcd member, and heals it again.
//!
//! It asserts the promises that must survive any of that:
//! - every task ends (its workflow finishes);
//! - no task's ledger shows two attempts overlapping: each attempt writes
//!   its TaskRun name on every tick, so once a later attempt has written,
//!   no earlier attempt may write again;
//! - no acknowledged object is lost: every create the API answered with
//!   success is still stored at the end.
//!
//! The schedule comes from a seed printed at the start; set
//! `SLOTH_CHAOS_SEED` to replay it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use sloth_sdk::objects::{LockSpec, WorkflowSpec};
use sloth_sdk::{Api, Client, ListParams};
use sloth_tests::{EtcdFleet, run_to_end, runtime, send_signal, slothctl_at, wait_until};

/// How long disruptions go on.
const CHAOS_FOR: Duration = Duration::from_secs(45);
/// How long the workflows may take to finish once the fleet is healed.
const SETTLE: Duration = Duration::from_secs(120);
const WORKFLOWS: usize = 4;
/// Workflows start this far apart, so that tasks run all through the chaos.
const WORKFLOW_EVERY: Duration = Duration::from_secs(10);
/// Tasks per workflow: two in parallel, then two in a row.
const TASKS: [(&str, &str); 4] = [("a", ""), ("b", ""), ("c", "[a, b]"), ("d", "[c]")];
/// Ticks per attempt, a quarter of a second each: an attempt outlives an
/// agent's lease, so disruptions hit running payloads.
const TICKS: usize = 48;
const AGENT_LEASE_SECONDS: &str = "5";

struct Fleet {
    cluster: EtcdFleet,
    ledgers: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Self {
        Self {
            cluster: EtcdFleet::start(
                &["a1", "a2", "a3"],
                &["--capacity", "3", "--lease-seconds", AGENT_LEASE_SECONDS],
            ),
            ledgers: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Every task writes its TaskRun's name (which ends in the attempt) to
    /// the task's own ledger on each tick; retries cover lost agents.
    fn workflow_yaml(&self, name: &str) -> String {
        let mut yaml = format!(
            "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n  tasks:\n"
        );
        for (task, deps) in TASKS {
            let ledger = self.ledgers.path().join(format!("{name}-{task}"));
            let deps = if deps.is_empty() {
                String::new()
            } else {
                format!(", dependsOn: {deps}")
            };
            yaml.push_str(&format!(
                "    - {{name: {task}{deps}, retries: {{limit: 8, retryOn: OnAgentLost}}, \
                 run: {{shell: 'for i in $(seq {TICKS}); do echo \"$SLOTH_TASKRUN $i\" >> {}; sleep 0.25; done'}}}}\n",
                ledger.display()
            ));
        }
        yaml
    }

    /// The attempts (TaskRun names) in the order their lines were written.
    fn ledger(&self, workflow: &str, task: &str) -> Vec<String> {
        std::fs::read_to_string(self.ledgers.path().join(format!("{workflow}-{task}")))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_string))
            .collect()
    }

    fn leader_index(&self) -> Option<usize> {
        let api: Api<LockSpec> = Api::namespaced(self.cluster.client.clone(), "sloth-system");
        let holder = self
            .cluster
            .rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), api.get("sloth-controllers")).await
            })
            .ok()?
            .ok()?
            .spec
            .holder_identity?;
        self.cluster
            .controllers
            .iter()
            .position(|c| c.id() == holder)
    }
}

/// Whether a ledger holds two attempts that overlap: an attempt that
/// writes again after another attempt has written. Returns the offending
/// pair.
fn overlap(ledger: &[String]) -> Option<(String, String)> {
    let mut finished: Vec<&str> = Vec::new();
    let mut current: Option<&str> = None;
    for attempt in ledger {
        if current == Some(attempt.as_str()) {
            continue;
        }
        if let Some(earlier) = finished.iter().find(|a| **a == attempt.as_str()) {
            return Some((earlier.to_string(), current.unwrap_or_default().to_string()));
        }
        if let Some(previous) = current {
            finished.push(previous);
        }
        current = Some(attempt);
    }
    None
}

#[test]
fn overlap_finds_an_attempt_that_writes_after_its_retry_started() {
    let ledger = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    assert_eq!(overlap(&ledger("w-a-1 w-a-1 w-a-2 w-a-2 w-a-3")), None);
    assert_eq!(
        overlap(&ledger("w-a-1 w-a-2 w-a-1")),
        Some(("w-a-1".to_string(), "w-a-2".to_string()))
    );
    assert_eq!(
        overlap(&ledger("w-a-1 w-a-2 w-a-3 w-a-2")),
        Some(("w-a-2".to_string(), "w-a-3".to_string()))
    );
}

/// One disruption and how to heal it.
#[derive(Debug, Clone, Copy)]
enum Target {
    ApiServer(usize),
    Leader,
    Agent(usize),
    EtcdMember(usize),
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Kill9,
    Stop,
}

fn pid_of(fleet: &Fleet, target: Target) -> Option<u32> {
    match target {
        Target::ApiServer(i) => fleet.cluster.servers[i].pid(),
        Target::Leader => fleet
            .leader_index()
            .and_then(|i| fleet.cluster.controllers[i].pid()),
        Target::Agent(i) => fleet.cluster.agents[i].pid(),
        Target::EtcdMember(i) => fleet.cluster.etcd.pid(i),
    }
}

/// Disrupts `target` for `hold`, then heals it.
fn disrupt(fleet: &mut Fleet, target: Target, action: Action, hold: Duration) {
    match action {
        Action::Stop => {
            let Some(pid) = pid_of(fleet, target) else {
                return;
            };
            send_signal(pid, "STOP");
            std::thread::sleep(hold);
            send_signal(pid, "CONT");
        }
        Action::Kill9 => {
            match target {
                Target::ApiServer(i) => fleet.cluster.servers[i].kill9(),
                Target::Leader => match fleet.leader_index() {
                    Some(i) => fleet.cluster.controllers[i].kill9(),
                    None => return,
                },
                Target::Agent(i) => fleet.cluster.agents[i].kill9(),
                Target::EtcdMember(i) => fleet.cluster.etcd.kill9(i),
            }
            std::thread::sleep(hold);
            match target {
                Target::ApiServer(i) => fleet.cluster.servers[i].start_again_same_ports(),
                Target::Leader => {
                    for c in &mut fleet.cluster.controllers {
                        if c.pid().is_none() {
                            c.start_again();
                        }
                    }
                }
                Target::Agent(i) => fleet.cluster.agents[i].start_again(),
                Target::EtcdMember(i) => fleet.cluster.etcd.start_again(i),
            }
        }
    }
}

/// The load the chaos hits: applies workflow `chaos-N` every
/// [`WORKFLOW_EVERY`] and creates a marker object every tenth of a second
/// until `until`; returns the markers the API acknowledged and the
/// workflows applied.
fn drive_load(urls: &str, workflows: &[String], until: Instant) -> (Vec<String>, usize) {
    let rt = runtime();
    let client = {
        let _enter = rt.enter();
        Client::new(&urls.split(',').collect::<Vec<_>>()).expect("client")
    };
    let mut acknowledged = Vec::new();
    let mut applied = 0;
    let mut next_workflow = Instant::now();
    let mut n = 0;
    while Instant::now() < until {
        if applied < workflows.len() && Instant::now() >= next_workflow {
            let mut apply = slothctl_at(urls);
            apply.args(["apply", "-f", "-"]);
            // A failure here is an unreachable fleet: try again next round.
            if run_to_end(apply, Some(&workflows[applied]), SETTLE).code == 0 {
                applied += 1;
                next_workflow = Instant::now() + WORKFLOW_EVERY;
            }
        }
        n += 1;
        let name = format!("marker-{n}");
        let lock = json!({
            "apiVersion": "sloth.dev/v1",
            "kind": "Lock",
            "metadata": {"name": name, "namespace": "chaos"},
            "spec": {"holderIdentity": "chaos-test", "leaseDurationSeconds": 3600},
        });
        let created = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), client.create(&lock)).await
        });
        if matches!(created, Ok(Ok(_))) {
            acknowledged.push(name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (acknowledged, applied)
}

#[test]
fn tasks_end_never_overlap_and_no_acknowledged_write_is_lost_under_chaos() {
    let seed = std::env::var("SLOTH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("chaos seed: {seed} (replay with SLOTH_CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let mut fleet = Fleet::start();
    let urls = fleet.cluster.urls();
    let workflows: Vec<String> = (0..WORKFLOWS)
        .map(|w| fleet.workflow_yaml(&format!("chaos-{w}")))
        .collect();
    let chaos_end = Instant::now() + CHAOS_FOR;
    let load = {
        let urls = urls.clone();
        std::thread::spawn(move || drive_load(&urls, &workflows, chaos_end))
    };
    let mut schedule = Vec::new();
    while Instant::now() < chaos_end {
        // Agents, where the payloads run, are hit twice as often.
        let target = match rng.usize(0..5) {
            0 => Target::ApiServer(rng.usize(0..2)),
            1 => Target::Leader,
            2 | 3 => Target::Agent(rng.usize(0..3)),
            _ => Target::EtcdMember(rng.usize(0..3)),
        };
        let action = if rng.bool() {
            Action::Kill9
        } else {
            Action::Stop
        };
        // Agents are held past their lease now and then, so that the
        // controllers declare them lost while their payloads may still run.
        let hold = match target {
            Target::Agent(_) => Duration::from_millis(rng.u64(2_000..12_000)),
            _ => Duration::from_millis(rng.u64(300..3_000)),
        };
        let step = format!("{target:?} {action:?} {hold:?}");
        eprintln!("chaos: {step}");
        schedule.push(step);
        disrupt(&mut fleet, target, action, hold);
        std::thread::sleep(Duration::from_millis(rng.u64(500..2_000)));
    }
    let (acknowledged, applied) = load.join().expect("load thread");
    let context = || {
        format!(
            "seed {seed}; schedule:\n{}\n{}",
            schedule.join("\n"),
            fleet.cluster.logs()
        )
    };

    assert!(applied > 0, "no workflow could be applied\n{}", context());
    // Every task ends.
    let workflows: Api<WorkflowSpec> = Api::namespaced(fleet.cluster.client.clone(), "default");
    for w in 0..applied {
        let name = format!("chaos-{w}");
        let done = wait_until(SETTLE, || {
            fleet
                .cluster
                .rt
                .block_on(workflows.get(&name))
                .ok()
                .filter(|wf| {
                    wf.status
                        .as_ref()
                        .is_some_and(|s| s.completion_time.is_some())
                })
        })
        .unwrap_or_else(|| panic!("workflow {name} never finished\n{}", context()));
        let phases: BTreeMap<_, _> = done
            .status_or_default()
            .tasks
            .iter()
            .map(|(task, status)| (task.clone(), format!("{:?}", status.phase)))
            .collect();
        eprintln!("{name}: {:?} {phases:?}", done.status_or_default().phase);
    }

    // No ledger shows two overlapping attempts.
    for w in 0..applied {
        for (task, _) in TASKS {
            let ledger = fleet.ledger(&format!("chaos-{w}"), task);
            let mut attempts = ledger.clone();
            attempts.dedup();
            eprintln!("chaos-{w} task {task}: attempts in ledger order {attempts:?}");
            if let Some((earlier, later)) = overlap(&ledger) {
                panic!(
                    "chaos-{w} task {task}: {earlier} wrote again after {later} started: {attempts:?}\n{}",
                    context()
                );
            }
        }
    }

    // No acknowledged object is lost.
    assert!(
        !acknowledged.is_empty(),
        "no marker was ever acknowledged\n{}",
        context()
    );
    let locks: Api<LockSpec> = Api::namespaced(fleet.cluster.client.clone(), "chaos");
    let stored: Vec<String> = fleet
        .cluster
        .rt
        .block_on(locks.list(&ListParams::default()))
        .unwrap_or_else(|e| panic!("list markers: {e}\n{}", context()))
        .items
        .into_iter()
        .map(|l| l.metadata.name)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost: {lost:?}\n{}",
        context()
    );
}
