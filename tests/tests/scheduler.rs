//! The scheduler and agent-lifecycle controllers (`sloth-apiserver
//! --controllers`) with real agents: selectors, spreading a pool under
//! LeastLoaded, Unschedulable with a reason and a retry when agents change,
//! and NotReady when an agent stops renewing its heartbeat.

use std::collections::HashMap;
use std::time::Duration;

use sloth_sdk::objects::{
    AgentPhase, AgentSpec, LabelSelector, TaskRun, TaskRunPhase, TaskRunSpec,
};
use sloth_sdk::{Api, Client, ListParams};
use sloth_tests::{Agent, ApiServer, runtime, send_signal, wait_until};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(30);

struct Cluster {
    agents: Vec<Agent>,
    client: Client,
    server: ApiServer,
    rt: Runtime,
}

impl Cluster {
    /// An apiserver with its controllers and one agent per (name, labels, capacity).
    fn start(agents: &[(&str, &str, u32)]) -> Self {
        let server = ApiServer::start_with(&["--controllers"]);
        let rt = runtime();
        let client = server.client_in(&rt);
        let mut cluster = Self {
            agents: Vec::new(),
            client,
            server,
            rt,
        };
        for (name, labels, capacity) in agents {
            cluster.add_agent(name, labels, *capacity, &[]);
        }
        cluster
    }

    fn add_agent(&mut self, name: &str, labels: &str, capacity: u32, extra: &[&str]) {
        let capacity = capacity.to_string();
        let mut args = vec!["--labels", labels, "--capacity", &capacity];
        args.extend_from_slice(extra);
        self.agents.push(Agent::start(&self.server, name, &args));
    }

    fn taskruns(&self) -> Api<TaskRunSpec> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn create(&self, taskrun: &TaskRun) {
        self.rt
            .block_on(self.taskruns().create(taskrun))
            .expect("create taskrun");
    }

    fn wait(&self, name: &str, what: &str, pred: impl Fn(&TaskRun) -> bool) -> TaskRun {
        let api = self.taskruns();
        wait_until(DEADLINE, || {
            self.rt.block_on(api.get(name)).ok().filter(|t| pred(t))
        })
        .unwrap_or_else(|| {
            panic!(
                "taskrun {name} never {what}; now: {:#?}\napiserver log:\n{}",
                self.rt.block_on(api.get(name)),
                self.server.log()
            )
        })
    }

    fn succeeded(&self, name: &str) -> TaskRun {
        let tr = self.wait(name, "finished", |t| {
            t.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        });
        assert_eq!(
            tr.status_or_default().phase,
            TaskRunPhase::Succeeded,
            "{tr:#?}"
        );
        tr
    }
}

fn taskrun(name: &str, selector: &[(&str, &str)], script: &str) -> TaskRun {
    TaskRun::new(
        name,
        TaskRunSpec {
            agent_selector: (!selector.is_empty()).then(|| LabelSelector {
                match_labels: selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..LabelSelector::default()
            }),
            ..TaskRunSpec::shell(script)
        },
    )
}

/// The highest `concurrent=N` the agent logged: its own record of how many
/// TaskRuns it ran at once.
fn max_concurrent(agent: &Agent) -> u32 {
    agent
        .log()
        .lines()
        .filter_map(|line| line.split("concurrent=").nth(1))
        .filter_map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn agent_selector_places_the_taskrun_on_the_matching_agent() {
    let c = Cluster::start(&[("alpha", "role=build", 2), ("beta", "role=test", 2)]);
    c.create(&taskrun(
        "for-test",
        &[("role", "test")],
        "echo on $SLOTH_AGENT",
    ));
    c.create(&taskrun("for-build", &[("role", "build")], "true"));
    let tr = c.succeeded("for-test");
    assert_eq!(tr.spec.agent_name.as_deref(), Some("beta"));
    assert!(
        tr.status_or_default()
            .log_tail
            .unwrap_or_default()
            .contains("on beta")
    );
    assert_eq!(
        c.succeeded("for-build").spec.agent_name.as_deref(),
        Some("alpha")
    );
}

#[test]
fn a_pool_of_forty_spreads_over_both_agents_within_capacity() {
    let c = Cluster::start(&[("p1", "pool=x", 2), ("p2", "pool=x", 2)]);
    let names: Vec<String> = (0..40).map(|i| format!("pool-{i:02}")).collect();
    for name in &names {
        c.create(&taskrun(name, &[("pool", "x")], "sleep 0.05"));
    }
    let mut per_agent: HashMap<String, usize> = HashMap::new();
    for name in &names {
        let tr = c.succeeded(name);
        *per_agent
            .entry(tr.spec.agent_name.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let (p1, p2) = (per_agent.get("p1").copied(), per_agent.get("p2").copied());
    assert_eq!(p1.unwrap_or(0) + p2.unwrap_or(0), 40, "{per_agent:?}");
    // LeastLoaded with equal capacity keeps both busy.
    assert!(p1 >= Some(10) && p2 >= Some(10), "lopsided: {per_agent:?}");
    for agent in &c.agents {
        assert!(
            max_concurrent(agent) <= 2,
            "agent {} exceeded capacity 2:\n{}",
            agent.name(),
            agent.log()
        );
    }
}

#[test]
fn unschedulable_says_why_and_binds_once_a_matching_agent_appears() {
    let mut c = Cluster::start(&[("cpu-1", "role=cpu", 1)]);
    c.create(&taskrun("needs-gpu", &[("role", "gpu")], "echo gpu"));
    let pending = c.wait("needs-gpu", "was marked Unschedulable", |t| {
        t.status_or_default()
            .conditions
            .iter()
            .any(|c| c.reason == "Unschedulable")
    });
    let condition = pending
        .status_or_default()
        .conditions
        .into_iter()
        .find(|c| c.reason == "Unschedulable")
        .expect("condition");
    assert_eq!(condition.message, "no agent matches role=gpu");
    assert_eq!(pending.status_or_default().phase, TaskRunPhase::Pending);
    assert_eq!(pending.spec.agent_name, None);

    c.add_agent("gpu-1", "role=gpu", 1, &[]);
    let done = c.succeeded("needs-gpu");
    assert_eq!(done.spec.agent_name.as_deref(), Some("gpu-1"));
}

#[test]
fn full_agents_are_reported_and_work_waits_for_capacity() {
    let c = Cluster::start(&[("solo", "role=solo", 1)]);
    c.create(&taskrun("first", &[("role", "solo")], "sleep 2"));
    c.wait("first", "ran", |t| {
        t.status_or_default().phase == TaskRunPhase::Running
    });
    c.create(&taskrun("second", &[("role", "solo")], "true"));
    let waiting = c.wait("second", "was reported waiting", |t| {
        t.status_or_default()
            .conditions
            .iter()
            .any(|c| c.reason == "Unschedulable")
    });
    let message = waiting.status_or_default().conditions[0].message.clone();
    assert!(message.contains("1 full"), "{message}");
    c.succeeded("first");
    assert_eq!(
        c.succeeded("second").spec.agent_name.as_deref(),
        Some("solo")
    );
    assert_eq!(max_concurrent(&c.agents[0]), 1);
}

#[test]
fn an_agent_that_stops_renewing_its_heartbeat_becomes_not_ready() {
    let mut c = Cluster::start(&[]);
    c.add_agent("fragile", "role=x", 1, &["--lease-seconds", "2"]);
    let agents: Api<AgentSpec> = Api::all(c.client.clone());
    let phase = |c: &Cluster| {
        c.rt.block_on(agents.get("fragile"))
            .ok()
            .map(|a| a.status_or_default().phase)
    };
    assert!(
        wait_until(DEADLINE, || (phase(&c) == Some(AgentPhase::Ready))
            .then_some(()))
        .is_some()
    );
    c.agents[0].kill9();
    let not_ready = wait_until(DEADLINE, || {
        (phase(&c) == Some(AgentPhase::NotReady)).then_some(())
    });
    assert!(
        not_ready.is_some(),
        "agent still {:?}; apiserver log:\n{}",
        phase(&c),
        c.server.log()
    );
    let listed =
        c.rt.block_on(agents.list(&ListParams::default()))
            .expect("list");
    let condition = listed.items[0]
        .status_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(condition.reason, "HeartbeatExpired", "{condition:?}");
}

#[test]
fn an_unschedulable_taskrun_binds_within_seconds_once_its_lapsed_agent_renews() {
    let mut c = Cluster::start(&[]);
    c.add_agent("sleepy", "role=s", 1, &["--lease-seconds", "2"]);
    let agents: Api<AgentSpec> = Api::all(c.client.clone());
    let phase = |c: &Cluster| {
        c.rt.block_on(agents.get("sleepy"))
            .ok()
            .map(|a| a.status_or_default().phase)
    };
    let is = |c: &Cluster, wanted: AgentPhase| {
        wait_until(DEADLINE, || (phase(c) == Some(wanted)).then_some(())).is_some()
    };
    assert!(is(&c, AgentPhase::Ready), "agent never Ready");
    // Frozen, it cannot renew its heartbeat: its lease lapses.
    let pid = c.agents[0].pid().expect("agent running");
    send_signal(pid, "STOP");
    assert!(
        is(&c, AgentPhase::NotReady),
        "agent still {:?}; apiserver log:\n{}",
        phase(&c),
        c.server.log()
    );
    c.create(&taskrun("waits", &[("role", "s")], "true"));
    c.wait("waits", "was marked Unschedulable", |t| {
        t.status_or_default()
            .conditions
            .iter()
            .any(|k| k.type_ == "Scheduled" && k.reason == "Unschedulable")
    });
    send_signal(pid, "CONT");
    assert!(is(&c, AgentPhase::Ready), "agent not Ready again");
    let ready = std::time::Instant::now();
    // Woken by the agent's change, not by the 30 s recheck.
    let api = c.taskruns();
    let bound = wait_until(Duration::from_secs(10), || {
        c.rt.block_on(api.get("waits"))
            .ok()
            .filter(|t| t.spec.agent_name.is_some())
    });
    assert!(
        bound.is_some(),
        "not bound within 10 s of its agent turning Ready again ({:?} so far)",
        ready.elapsed()
    );
    c.succeeded("waits");
}
