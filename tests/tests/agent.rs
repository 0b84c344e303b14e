//! The real `sloth-agent` against a real apiserver: registration and
//! heartbeats, running shell TaskRuns to their terminal status, timeouts and
//! deletion killing process groups, capacity, restarts that never run a
//! TaskRun twice, logs relayed by the apiserver, and graceful shutdown.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use sloth_sdk::duration::Duration as SlothDuration;
use sloth_sdk::objects::{AgentPhase, AgentSpec, LockSpec, TaskRun, TaskRunPhase, TaskRunSpec};
use sloth_sdk::{Api, Client};
use sloth_tests::{Agent, ApiServer, binary, process_gone, runtime, shell_bound_to, wait_until};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(30);

/// An apiserver, one agent `a1` on it, and a client. Fields drop in order:
/// the agent is killed first.
struct Cluster {
    agent: Agent,
    client: Client,
    _server: ApiServer,
    rt: Runtime,
}

impl Cluster {
    fn start(agent_args: &[&str]) -> Self {
        let server = ApiServer::start();
        let rt = runtime();
        let client = server.client_in(&rt);
        // The tests' absolute workdirs are temporary directories.
        let temp = std::env::temp_dir();
        let mut args = vec![
            "--allow-workdir-root",
            temp.to_str().expect("utf-8 temp dir"),
        ];
        args.extend_from_slice(agent_args);
        let agent = Agent::start(&server, "a1", &args);
        Self {
            agent,
            client,
            _server: server,
            rt,
        }
    }

    fn taskruns(&self, namespace: &str) -> Api<TaskRunSpec> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn create(&self, namespace: &str, taskrun: &TaskRun) -> TaskRun {
        self.rt
            .block_on(self.taskruns(namespace).create(taskrun))
            .expect("create taskrun")
    }

    /// Polls TaskRun `namespace/name` until `pred` holds.
    fn wait(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&TaskRun) -> bool,
    ) -> TaskRun {
        let api = self.taskruns(namespace);
        wait_until(DEADLINE, || {
            self.rt.block_on(api.get(name)).ok().filter(|t| pred(t))
        })
        .unwrap_or_else(|| {
            panic!(
                "taskrun {namespace}/{name} never {what}; now: {:#?}\nagent log:\n{}",
                self.rt.block_on(api.get(name)),
                self.agent.log()
            )
        })
    }

    fn finished(&self, namespace: &str, name: &str) -> TaskRun {
        self.wait(namespace, name, "finished", |t| phase(t).is_terminal())
    }

    fn running(&self, namespace: &str, name: &str) -> TaskRun {
        self.wait(namespace, name, "ran", |t| {
            phase(t) == TaskRunPhase::Running
        })
    }
}

fn phase(taskrun: &TaskRun) -> TaskRunPhase {
    taskrun.phase()
}

/// A shell TaskRun bound to agent `a1` (so it skips scheduling).
fn shell(name: &str, script: &str) -> TaskRun {
    shell_bound_to(name, "a1", script)
}

fn in_dir(mut taskrun: TaskRun, dir: &Path) -> TaskRun {
    taskrun.spec.workdir = Some(dir.display().to_string());
    taskrun
}

/// Waits for a file another process writes and returns its trimmed text.
fn read_when_written(path: &Path) -> String {
    wait_until(DEADLINE, || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .unwrap_or_else(|| panic!("{} was never written", path.display()))
    .trim()
    .to_string()
}

fn assert_process_ends(pid: u32, agent: &Agent) {
    assert!(
        wait_until(DEADLINE, || process_gone(pid).then_some(())).is_some(),
        "process {pid} is still alive; agent log:\n{}",
        agent.log()
    );
}

fn status_of(taskrun: &TaskRun) -> sloth_sdk::objects::TaskRunStatus {
    taskrun.status_or_default()
}

#[test]
fn agent_registers_ready_and_renews_its_lock() {
    let mut c = Cluster::start(&[
        "--labels",
        "zone=eu-west,gpu=true",
        "--capacity",
        "3",
        "--lease-seconds",
        "3",
    ]);
    let agents: Api<AgentSpec> = Api::all(c.client.clone());
    let agent = c.rt.block_on(agents.get("a1")).expect("agent object");
    assert_eq!(
        agent.metadata.labels.get("zone").map(String::as_str),
        Some("eu-west")
    );
    assert_eq!(
        agent.metadata.labels.get("gpu").map(String::as_str),
        Some("true")
    );
    assert_eq!(agent.spec.capacity, 3);
    assert_eq!(agent.spec.address, c.agent.logs_address());
    assert!(
        agent.spec.address.starts_with("127.0.0.1:"),
        "{}",
        agent.spec.address
    );
    let status = agent.status_or_default();
    assert_eq!(status.phase, AgentPhase::Ready);
    assert_eq!((status.running, status.allocatable), (0, 3));
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert!(status.last_heartbeat_time.is_some());
    let resources = status.resources.expect("resources");
    assert!(
        resources.cpu >= 1 && resources.memory_bytes > 0,
        "{resources:?}"
    );
    assert!(resources.disk_available_bytes > 0, "{resources:?}");

    let locks: Api<LockSpec> = Api::namespaced(c.client.clone(), "sloth-system");
    let lock =
        c.rt.block_on(locks.get("agent-a1"))
            .expect("heartbeat lock");
    // Held by the agent's instance id, kept in its work dir.
    let instance =
        std::fs::read_to_string(c.agent.work_dir().join("instance-id")).expect("instance id file");
    assert_eq!(lock.spec.holder_identity.as_deref(), Some(instance.trim()));
    assert_eq!(lock.spec.lease_duration_seconds, Some(3));
    assert!(lock.spec.acquire_time.is_some());
    let first = lock.spec.renew_time.expect("renewTime");
    let renewed = wait_until(DEADLINE, || {
        c.rt.block_on(locks.get("agent-a1"))
            .ok()
            .and_then(|l| l.spec.renew_time)
            .filter(|t| *t > first)
    });
    assert!(
        renewed.is_some(),
        "the lock was not renewed; agent log:\n{}",
        c.agent.log()
    );

    // A cordon is the user's: a restarted agent keeps it, and updates the rest.
    let mut cordoned = c.rt.block_on(agents.get("a1")).expect("agent object");
    cordoned.spec.unschedulable = true;
    c.rt.block_on(agents.replace(&cordoned)).expect("cordon");
    assert!(
        c.agent.stop(),
        "agent did not exit 0; log:\n{}",
        c.agent.log()
    );
    c.agent.start_again();
    let agent = c.rt.block_on(agents.get("a1")).expect("agent object");
    assert!(agent.spec.unschedulable, "the cordon was dropped");
    assert_eq!(agent.spec.address, c.agent.logs_address());
    assert_eq!(agent.status_or_default().phase, AgentPhase::Ready);
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, flag) in [
        (vec!["--name", "a1", "--labels", "bad key=v"], "--labels"),
        (vec!["--name", "a1", "--labels", "gpu"], "--labels"),
        (vec!["--name", "a1", "--capacity", "0"], "--capacity"),
        (vec!["--name", "Bad_Name"], "--name"),
    ] {
        let out = Command::new(binary("sloth-agent"))
            .args(&args)
            .env_remove("SLOTH_SERVER")
            .output()
            .expect("run sloth-agent");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn shell_taskrun_succeeds_with_exit_code_and_log_tail() {
    let c = Cluster::start(&[]);
    c.create("default", &shell("hello", "echo hello; echo oops >&2"));
    let done = c.finished("default", "hello");
    let status = status_of(&done);
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(status.reason, "Completed");
    assert_eq!(status.agent.as_deref(), Some("a1"));
    assert_eq!(status.log_tail.as_deref(), Some("hello\noops\n"));
    let (start, end) = (
        status.start_time.expect("start"),
        status.completion_time.expect("end"),
    );
    assert!(start <= end);
}

#[test]
fn failing_script_fails_with_its_exit_code() {
    let c = Cluster::start(&[]);
    c.create("default", &shell("three", "echo about to fail; exit 3"));
    let status = status_of(&c.finished("default", "three"));
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.exit_code, Some(3));
    assert_eq!(status.reason, "Error");
    assert!(status.message.contains("code 3"), "{}", status.message);
    assert_eq!(status.log_tail.as_deref(), Some("about to fail\n"));
}

#[test]
fn env_and_workdir_are_honoured() {
    let c = Cluster::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut tr = in_dir(
        shell(
            "env",
            "echo \"$GREETING $SLOTH_TASKRUN $SLOTH_NAMESPACE $SLOTH_AGENT\" > seen.txt; pwd >> seen.txt",
        ),
        dir.path(),
    );
    tr.spec.env.insert("GREETING".into(), "hi".into());
    c.create("team-a", &tr);
    assert_eq!(
        status_of(&c.finished("team-a", "env")).phase,
        TaskRunPhase::Succeeded
    );
    let seen = std::fs::read_to_string(dir.path().join("seen.txt")).expect("seen.txt");
    let cwd = std::fs::canonicalize(dir.path()).expect("canonical dir");
    assert_eq!(seen, format!("hi env team-a a1\n{}\n", cwd.display()));

    // Without spec.workdir, a fresh directory per TaskRun under the work dir.
    c.create("team-a", &shell("where", "pwd; ls"));
    let status = status_of(&c.finished("team-a", "where"));
    let work = std::fs::canonicalize(c.agent.work_dir()).expect("work dir");
    assert_eq!(
        status.log_tail.as_deref(),
        Some(
            format!(
                "{}\noutput.log\n",
                work.join("team-a").join("where").display()
            )
            .as_str()
        )
    );
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let c = Cluster::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut tr = in_dir(
        shell("slow", "sleep 300 & echo $! > child.pid; wait"),
        dir.path(),
    );
    tr.spec.timeout = Some(SlothDuration::from_secs(1));
    c.create("default", &tr);
    let status = status_of(&c.finished("default", "slow"));
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "TimedOut");
    assert!(status.message.contains("1s"), "{}", status.message);
    let child: u32 = read_when_written(&dir.path().join("child.pid"))
        .parse()
        .expect("pid");
    assert_process_ends(child, &c.agent);
}

#[test]
fn deleting_a_running_taskrun_kills_it() {
    let c = Cluster::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    c.create(
        "default",
        &in_dir(shell("doomed", "echo $$ > pid; sleep 300"), dir.path()),
    );
    c.running("default", "doomed");
    let pid: u32 = read_when_written(&dir.path().join("pid"))
        .parse()
        .expect("pid");
    assert!(!process_gone(pid), "the script is not running");
    c.rt.block_on(c.taskruns("default").delete("doomed"))
        .expect("delete");
    assert_process_ends(pid, &c.agent);
}

#[test]
fn capacity_one_is_never_exceeded() {
    let c = Cluster::start(&["--capacity", "1"]);
    let names = ["q1", "q2", "q3", "q4"];
    for name in names {
        c.create("default", &shell(name, "sleep 0.3"));
    }
    let mut spans = Vec::new();
    for name in names {
        let status = status_of(&c.finished("default", name));
        assert_eq!(status.phase, TaskRunPhase::Succeeded, "{name}: {status:#?}");
        spans.push((
            status.start_time.expect("start"),
            status.completion_time.expect("end"),
        ));
    }
    let log = c.agent.log();
    let concurrent: Vec<u32> = log
        .lines()
        .filter_map(|line| line.split("concurrent=").nth(1))
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(concurrent.len(), 4, "log:\n{log}");
    assert_eq!(concurrent.iter().max(), Some(&1), "log:\n{log}");
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlapped: {spans:#?}");
    }
}

#[test]
fn a_restarted_agent_fails_the_run_it_lost_and_never_runs_it_twice() {
    let mut c = Cluster::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    c.create(
        "default",
        &in_dir(
            shell("long", "echo started >> marker; echo $$ > pid; sleep 30"),
            dir.path(),
        ),
    );
    c.running("default", "long");
    let pid: u32 = read_when_written(&dir.path().join("pid"))
        .parse()
        .expect("pid");
    c.agent.kill9();
    c.agent.start_again();
    let status = status_of(&c.finished("default", "long"));
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "AgentRestarted");
    assert_eq!(status.agent.as_deref(), Some("a1"));
    // What the dead agent left running is cleaned up, and nothing ran again.
    assert_process_ends(pid, &c.agent);
    let marker = std::fs::read_to_string(dir.path().join("marker")).expect("marker");
    assert_eq!(marker, "started\n");

    // The restarted agent runs new work.
    c.create("default", &shell("after", "echo fine"));
    assert_eq!(
        status_of(&c.finished("default", "after")).phase,
        TaskRunPhase::Succeeded
    );
    let marker = std::fs::read_to_string(dir.path().join("marker")).expect("marker");
    assert_eq!(marker, "started\n");
}

#[test]
fn logs_are_followed_through_the_apiserver_to_the_end() {
    let c = Cluster::start(&[]);
    c.create(
        "default",
        &shell(
            "talky",
            "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done",
        ),
    );
    c.running("default", "talky");
    let want = "line 1\nline 2\nline 3\nline 4\nline 5\n";
    let text = c.rt.block_on(async {
        // The output file appears right after the Running claim.
        let mut stream = None;
        for _ in 0..100 {
            match c.client.logs("default", "talky", true, 0).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let mut stream = stream.expect("logs stream");
        let mut all = Vec::new();
        let collect = async {
            while let Some(chunk) = stream.next().await {
                all.extend(chunk.expect("chunk"));
            }
        };
        tokio::time::timeout(DEADLINE, collect)
            .await
            .expect("the follow ended");
        String::from_utf8(all).expect("utf-8")
    });
    assert_eq!(text, want, "agent log:\n{}", c.agent.log());
    assert_eq!(
        status_of(&c.finished("default", "talky")).phase,
        TaskRunPhase::Succeeded
    );

    // From an offset, without following.
    let tail =
        c.rt.block_on(sloth_tests::read_logs(&c.client, "default", "talky", 7));
    assert_eq!(tail, &want[7..]);

    // A TaskRun that never started a process has no output: its working
    // directory cannot be made.
    let mut lua = shell("no-output", "true");
    lua.spec.workdir = Some("/proc/sloth-cannot-create-this".into());
    c.create("default", &lua);
    c.finished("default", "no-output");
    let err =
        c.rt.block_on(c.client.logs("default", "no-output", false, 0))
            .err()
            .expect("no output");
    assert!(err.to_string().contains("no output"), "{err}");
}

#[test]
fn sigterm_lets_running_taskruns_finish_and_exits_0() {
    let mut c = Cluster::start(&[]);
    c.create("default", &shell("finishing", "sleep 1; echo done"));
    c.running("default", "finishing");
    assert!(
        c.agent.stop(),
        "agent did not exit 0; log:\n{}",
        c.agent.log()
    );
    let status = status_of(&c.finished("default", "finishing"));
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    assert_eq!(status.log_tail.as_deref(), Some("done\n"));
    // It says goodbye: NotReady, and its lease is given up (the Lock stays,
    // without a holder, so it still tells the agent was there).
    let agents: Api<AgentSpec> = Api::all(c.client.clone());
    let agent = c.rt.block_on(agents.get("a1")).expect("agent object");
    assert_eq!(agent.status_or_default().phase, AgentPhase::NotReady);
    let locks: Api<LockSpec> = Api::namespaced(c.client.clone(), "sloth-system");
    let lock =
        c.rt.block_on(locks.get("agent-a1"))
            .expect("heartbeat lock");
    assert_eq!(lock.spec.holder_identity, None, "{lock:?}");
}

#[test]
fn apiserver_stops_gracefully_while_a_log_is_followed() {
    let mut c = Cluster::start(&[]);
    c.create("default", &shell("long", "echo started; sleep 30"));
    c.running("default", "long");
    let mut stream =
        c.rt.block_on(c.client.logs("default", "long", true, 0))
            .expect("follow logs");
    let first =
        c.rt.block_on(async { tokio::time::timeout(DEADLINE, stream.next()).await })
            .expect("output before the deadline")
            .expect("stream open")
            .expect("chunk");
    assert!(String::from_utf8_lossy(&first).contains("started"));
    assert!(
        c._server.stop(),
        "apiserver did not exit 0 on SIGTERM while a log was followed:\n{}",
        c._server.log()
    );
}
