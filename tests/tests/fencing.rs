//! Fencing: one attempt of a task never overlaps another. A ledger task
//! appends its lines to a shared file; its agent is killed (-9) or frozen
//! (SIGSTOP) mid-run, the workflow retries it on the other agent
//! (`retryOn: OnAgentLost`), and no line of the first attempt may follow
//! the second attempt's first line. Also: a restarted agent kills what its
//! previous life left before it reports Ready; a second process under a
//! live agent's name exits naming the holder; SIGTERM marks the agent
//! NotReady once.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sloth_sdk::objects::{
    AgentPhase, AgentSpec, TaskRun, TaskRunPhase, TaskRunSpec, Workflow, WorkflowPhase,
    WorkflowSpec,
};
use sloth_sdk::{Api, Client, ListParams};
use sloth_tests::{
    Agent, ApiServer, Controllers, LineReader, binary, run_to_end, runtime, slothctl, wait_exit,
    wait_until, workflow_yaml,
};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(60);

/// Short leases so that a lost agent is declared lost within seconds:
/// agents hold a 3 s lease (self-fence at 2 s, supervisors kill at 2.5 s);
/// the controllers declare AgentLost 1 s after the lease ran out.
const CONTROLLER_ARGS: &[&str] = &["--lease-duration", "3s", "--agent-lost-grace", "1s"];
const AGENT_ARGS: &[&str] = &["--capacity", "2", "--lease-seconds", "3"];

/// Fields drop in order: agents first.
struct Cluster {
    agents: Vec<Agent>,
    controllers: Option<Controllers>,
    client: Client,
    rt: Runtime,
    server: ApiServer,
    /// Holds the ledger.
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(agents: usize, with_controllers: bool) -> Self {
        let server = ApiServer::start();
        let rt = runtime();
        let client = server.client_in(&rt);
        let controllers =
            with_controllers.then(|| Controllers::start(&server, "c1", CONTROLLER_ARGS));
        let agents = (1..=agents)
            .map(|i| Agent::start(&server, &format!("a{i}"), AGENT_ARGS))
            .collect();
        Self {
            agents,
            controllers,
            client,
            rt,
            server,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn ledger(&self) -> std::path::PathBuf {
        self.dir.path().join("ledger")
    }

    fn agent_index(&self, name: &str) -> usize {
        self.agents
            .iter()
            .position(|a| a.name() == name)
            .expect("known agent")
    }

    fn logs(&self) -> String {
        let mut out = format!("--- apiserver\n{}", self.server.log());
        if let Some(c) = &self.controllers {
            out.push_str(&format!("\n--- controllers\n{}", c.log()));
        }
        for a in &self.agents {
            out.push_str(&format!("\n--- agent {}\n{}", a.name(), a.log()));
        }
        out
    }

    fn taskrun(&self, name: &str) -> Option<TaskRun> {
        let api: Api<TaskRunSpec> = Api::namespaced(self.client.clone(), "default");
        self.rt.block_on(api.get(name)).ok()
    }

    fn workflow(&self, name: &str) -> Option<Workflow> {
        let api: Api<WorkflowSpec> = Api::namespaced(self.client.clone(), "default");
        self.rt.block_on(api.get(name)).ok()
    }

    fn agent_object(&self, name: &str) -> Option<sloth_sdk::objects::Agent> {
        let api: Api<AgentSpec> = Api::all(self.client.clone());
        self.rt.block_on(api.get(name)).ok()
    }

    /// Applies a workflow of one ledger task that is retried on agent loss.
    /// Attempt 1 would write for 20 s, attempt 2 for 2 s.
    fn apply_ledger_workflow(&self) {
        let ledger = self.ledger();
        let script = format!(
            r#"L={ledger}; a=${{SLOTH_TASKRUN##*-}}; echo "start $a $$ $SLOTH_AGENT" >> "$L"; n=100; [ "$a" = 1 ] || n=10; i=0; while [ $i -lt $n ]; do echo "tick $a" >> "$L"; sleep 0.2; i=$((i+1)); done; echo "end $a" >> "$L""#,
            ledger = ledger.display()
        );
        let yaml = workflow_yaml(
            "ledger",
            &format!(
                r#"  tasks:
    - name: work
      retries: {{limit: 1, retryOn: OnAgentLost}}
      run: {{shell: {script:?}}}
"#
            ),
        );
        let mut cmd = slothctl(&self.server);
        cmd.args(["apply", "-f", "-"]);
        run_to_end(cmd, Some(&yaml), DEADLINE).ok();
    }

    /// Waits until attempt 1 wrote its first lines; returns its agent and pid.
    fn first_attempt_started(&self) -> (String, i32) {
        let line = wait_until(DEADLINE, || {
            let text = std::fs::read_to_string(self.ledger()).ok()?;
            let start = text
                .lines()
                .find(|l| l.starts_with("start 1 "))?
                .to_string();
            text.lines().any(|l| l == "tick 1").then_some(start)
        })
        .unwrap_or_else(|| panic!("attempt 1 never started\n{}", self.logs()));
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[3].to_string(), fields[2].parse().expect("pid"))
    }

    fn finished_workflow(&self) -> Workflow {
        wait_until(DEADLINE, || {
            self.workflow("ledger").filter(|w| {
                matches!(
                    w.status_or_default().phase,
                    WorkflowPhase::Succeeded | WorkflowPhase::Failed
                )
            })
        })
        .unwrap_or_else(|| panic!("workflow ledger never finished\n{}", self.logs()))
    }

    /// Asserts that the retry ran elsewhere, succeeded, and never overlapped
    /// attempt 1 in the ledger.
    fn assert_attempts_did_not_overlap(&self, victim: &str) {
        let wf = self.finished_workflow();
        assert_eq!(
            wf.status_or_default().phase,
            WorkflowPhase::Succeeded,
            "{wf:#?}\n{}",
            self.logs()
        );
        let first = self.taskrun("ledger-work-1").expect("attempt 1");
        assert_eq!(first.status_or_default().reason, "AgentLost");
        let second = self.taskrun("ledger-work-2").expect("attempt 2");
        let st = second.status_or_default();
        assert_eq!(st.phase, TaskRunPhase::Succeeded);
        assert_ne!(
            st.agent.as_deref(),
            Some(victim),
            "the retry ran on the lost agent"
        );
        let ledger = std::fs::read_to_string(self.ledger()).expect("ledger");
        assert_no_overlap(&ledger);
    }
}

/// The attempt a ledger line belongs to.
fn attempt(line: &str) -> Option<&str> {
    line.split_whitespace().nth(1)
}

fn assert_no_overlap(ledger: &str) {
    let lines: Vec<&str> = ledger.lines().collect();
    let second = lines
        .iter()
        .position(|l| attempt(l) == Some("2"))
        .unwrap_or_else(|| panic!("attempt 2 wrote nothing:\n{ledger}"));
    let late: Vec<&&str> = lines[second..]
        .iter()
        .filter(|l| attempt(l) == Some("1"))
        .collect();
    assert!(
        late.is_empty(),
        "attempt 1 wrote {} lines after attempt 2 started:\n{ledger}",
        late.len()
    );
    assert!(
        !lines.contains(&"end 1"),
        "attempt 1 ran to its end:\n{ledger}"
    );
    assert!(
        lines.contains(&"end 2"),
        "attempt 2 did not finish:\n{ledger}"
    );
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
    })
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
fn a_killed_agents_attempt_never_overlaps_its_retry() {
    let mut c = Cluster::start(2, true);
    c.apply_ledger_workflow();
    let (victim, pid) = c.first_attempt_started();
    let index = c.agent_index(&victim);
    c.agents[index].kill9();
    // The supervisor saw its pipe close: the payload is gone at once.
    assert!(
        wait_until(Duration::from_secs(10), || process_gone(pid).then_some(())).is_some(),
        "the payload {pid} outlived its agent"
    );
    c.assert_attempts_did_not_overlap(&victim);
}

#[test]
fn a_frozen_agents_attempt_is_killed_before_its_lease_runs_out() {
    let c = Cluster::start(2, true);
    c.apply_ledger_workflow();
    let (victim, pid) = c.first_attempt_started();
    let index = c.agent_index(&victim);
    let agent_pid = c.agents[index].pid().expect("running");
    signal(agent_pid, "STOP");
    c.assert_attempts_did_not_overlap(&victim);
    // Killed by its supervisor while the agent was still frozen.
    let gone = process_gone(pid);
    signal(agent_pid, "CONT");
    assert!(
        gone,
        "the payload {pid} of the frozen agent still ran\n{}",
        c.logs()
    );
    // The agent carries on, with its lease back.
    assert!(
        wait_until(DEADLINE, || {
            c.agent_object(&victim)
                .filter(|a| a.status_or_default().phase == AgentPhase::Ready)
        })
        .is_some(),
        "agent {victim} did not come back\n{}",
        c.logs()
    );
}

/// The start time of `pid` (field 22 of /proc/PID/stat), as the agent
/// records it next to a process group id.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let (_, rest) = stat.rsplit_once(')').expect("comm");
    rest.split_whitespace()
        .nth(19)
        .and_then(|t| t.parse().ok())
        .expect("start time")
}

#[test]
fn a_restarted_agent_kills_leftover_groups_before_it_is_ready() {
    let mut c = Cluster::start(1, false);
    c.agents[0].kill9();
    // A process group an earlier life left, recorded in a run directory of
    // a TaskRun that is no longer Running here (so nothing else would end it).
    let mut leftover = Command::new("sleep")
        .arg("300")
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .expect("start sleep");
    let run_dir = c.agents[0].work_dir().join("default").join("gone");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    std::fs::write(
        run_dir.join(".sloth-pgid"),
        format!("{} {}\n", leftover.id(), start_time(leftover.id())),
    )
    .expect("pid file");
    c.agents[0].start_again();
    // start_again returned on the ready line: the group must be gone by now.
    let status = leftover.try_wait().expect("try_wait");
    let _ = leftover.kill();
    let _ = leftover.wait();
    assert!(
        status.is_some(),
        "the leftover group still ran when the agent said ready\n{}",
        c.logs()
    );
}

/// Starts a second `sloth-agent --name NAME` with its own work dir.
fn second_agent(server: &ApiServer, name: &str, work_dir: &Path) -> Child {
    Command::new(binary("sloth-agent"))
        .args(["--name", name, "--server", server.grpc_url()])
        .args([
            "--bind-address",
            "127.0.0.1",
            "--port",
            "0",
            "--lease-seconds",
            "3",
        ])
        .arg("--work-dir")
        .arg(work_dir)
        .env_remove("SLOTH_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the second agent")
}

#[test]
fn a_second_agent_under_a_live_name_exits_naming_the_holder() {
    let c = Cluster::start(1, false);
    let api: Api<TaskRunSpec> = Api::namespaced(c.client.clone(), "default");
    let taskrun = TaskRun::new(
        "busy",
        TaskRunSpec {
            agent_name: Some("a1".into()),
            ..TaskRunSpec::shell("sleep 3; echo done")
        },
    );
    c.rt.block_on(api.create(&taskrun)).expect("create");
    wait_until(DEADLINE, || {
        c.taskrun("busy")
            .filter(|t| t.status_or_default().phase == TaskRunPhase::Running)
    })
    .expect("running");
    let other_dir = tempfile::tempdir().expect("temp dir");
    let mut second = second_agent(&c.server, "a1", other_dir.path());
    let stderr = sloth_tests::drain(second.stderr.take().expect("stderr"));
    let stdout = LineReader::new(second.stdout.take().expect("stdout"));
    let code = wait_exit(&mut second, DEADLINE);
    if code.is_none() {
        // Still running: it took the name over. End it to read its stderr.
        let _ = second.kill();
        let _ = second.wait();
    }
    let stderr = stderr.join().expect("stderr");
    assert!(
        code.is_some_and(|c| c != 0),
        "the second a1 did not exit non-zero ({code:?}); its stdout: {:?}\n{stderr}",
        stdout.next_line(Duration::from_millis(10))
    );
    let holder =
        std::fs::read_to_string(c.agents[0].work_dir().join("instance-id")).expect("instance id");
    assert!(
        stderr.contains(holder.trim()) && stderr.contains("already running"),
        "the error does not name the holder {holder:?}:\n{stderr}"
    );
    // The first a1 and its run are untouched.
    let done = wait_until(DEADLINE, || {
        c.taskrun("busy")
            .filter(|t| t.status_or_default().phase.is_terminal())
    })
    .expect("finished");
    let st = done.status_or_default();
    assert_eq!(st.phase, TaskRunPhase::Succeeded, "{st:#?}\n{}", c.logs());
    let agent = c.agent_object("a1").expect("agent");
    assert_eq!(agent.spec.address, c.agents[0].logs_address());
}

#[test]
fn sigterm_marks_the_agent_not_ready_once() {
    let mut c = Cluster::start(1, true);
    let ready = wait_until(DEADLINE, || {
        c.agent_object("a1")
            .filter(|a| a.status_or_default().phase == AgentPhase::Ready)
    });
    assert!(ready.is_some(), "a1 never Ready\n{}", c.logs());
    assert!(c.agents[0].stop(), "a1 did not exit 0\n{}", c.logs());
    // Watch the phase for longer than lease + grace: it stays NotReady.
    let mut phases: Vec<AgentPhase> = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(8);
    let mut last = None;
    while std::time::Instant::now() < end {
        if let Some(agent) = c.agent_object("a1") {
            let phase = agent.status_or_default().phase;
            if phases.last() != Some(&phase) {
                phases.push(phase);
            }
            last = Some(agent);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(phases, vec![AgentPhase::NotReady], "{}", c.logs());
    let status = last.expect("agent").status_or_default();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("shut down"),
        "not a true message: {ready:?}"
    );
    let listed =
        c.rt.block_on(Api::<AgentSpec>::all(c.client.clone()).list(&ListParams::default()))
            .expect("list");
    assert_eq!(listed.items.len(), 1);
}
