//! The TaskRun commands of the real `slothctl` against a real apiserver and
//! agent: `run` streaming output and exiting with the command's code,
//! `logs [-f]`, `wait`, `cordon`/`uncordon`, and the seed-compatible
//! `agent list` / `agent run`. Tasks that must still be running while the
//! test looks wait for a gate file the test creates: no sleeps.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sloth_tests::{
    AGENT_COLUMNS, Agent, ApiServer, LineReader, Run, drain, run_to_end, slothctl, slothctl_at,
    wait_exit,
};

/// How long one slothctl run or one awaited line may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// An apiserver (with its controllers, for `-l`), agent `a1` labelled
/// `gpu=true`, and a directory for gate files. The agent is killed first.
struct Cluster {
    agent: Agent,
    server: ApiServer,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let server = ApiServer::start_with(&["--controllers"]);
        let agent = Agent::start(&server, "a1", &["--labels", "gpu=true", "--capacity", "4"]);
        Self {
            agent,
            server,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs slothctl to completion.
    fn ctl(&self, args: &[&str]) -> Run {
        let mut cmd = slothctl(&self.server);
        cmd.args(args);
        finish(cmd)
    }

    /// Starts slothctl in the background.
    fn spawn(&self, args: &[&str]) -> Background {
        let mut child = slothctl(&self.server)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start slothctl");
        let stdout = LineReader::new(child.stdout.take().expect("stdout"));
        let stderr = LineReader::new(child.stderr.take().expect("stderr"));
        Background {
            child,
            stdout,
            stderr,
        }
    }

    /// A file path the test creates to let a task go on.
    fn gate(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Creates TaskRun `name` on agent a1 running `script`.
    fn taskrun(&self, name: &str, script: &str) {
        let manifest = serde_json::json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": name},
            "spec": {"run": {"shell": script}, "agentName": "a1"}
        });
        let mut cmd = slothctl(&self.server);
        cmd.args(["apply", "-f", "-"]);
        let run = finish_with_input(cmd, &manifest.to_string());
        assert_eq!(run.code, 0, "apply failed: {run:#?}");
    }

    /// `get KIND NAME -o json`.
    fn json(&self, kind: &str, name: &str) -> Value {
        let run = self.ctl(&["get", kind, name, "-o", "json"]).ok();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:#?}"))
    }
}

/// A script that prints `before`, waits (boundedly) for `gate` to exist,
/// then prints `after`.
fn gated(before: &str, gate: &Path, after: &str) -> String {
    format!(
        "echo {before}; i=0; while [ ! -e {gate} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo {after}",
        gate = gate.display()
    )
}

fn open(gate: &Path) {
    std::fs::write(gate, b"go\n").expect("create gate file");
}

fn finish(cmd: Command) -> Run {
    finish_with(cmd, None)
}

fn finish_with_input(cmd: Command, input: &str) -> Run {
    finish_with(cmd, Some(input))
}

fn finish_with(cmd: Command, input: Option<&str>) -> Run {
    run_to_end(cmd, input, DEADLINE)
}

/// A slothctl still running; killed when dropped.
struct Background {
    child: Child,
    stdout: LineReader,
    stderr: LineReader,
}

impl Background {
    /// Whether the process is still running.
    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the exit code.
    #[track_caller]
    fn exit_code(&mut self) -> i32 {
        wait_exit(&mut self.child, DEADLINE)
            .unwrap_or_else(|| panic!("slothctl did not exit within {DEADLINE:?}"))
    }

    /// The rest of stdout, once it has exited.
    fn rest(&self) -> Vec<String> {
        std::iter::from_fn(|| self.stdout.next_line(Duration::from_secs(5))).collect()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_prints_the_output_and_exits_with_the_commands_code() {
    let c = Cluster::start();
    let run = c
        .ctl(&["run", "--agent", "a1", "--", "sh", "-c", "echo hi; exit 3"])
        .code(3);
    assert_eq!(run.stdout, "hi\n");
    let created = run.stderr.lines().next().unwrap_or_default();
    assert!(
        created.starts_with("taskrun/run-") && created.ends_with(" created"),
        "{run:#?}"
    );
    let name = created
        .trim_start_matches("taskrun/")
        .trim_end_matches(" created");
    let taskrun = c.json("tr", name);
    // Several words with no shell builtin first: executed directly, no
    // shell started (docs/slothctl.md, "run").
    assert_eq!(
        taskrun["spec"]["run"]["command"],
        serde_json::json!(["sh", "-c", "echo hi; exit 3"])
    );
    assert!(taskrun["spec"]["run"]["shell"].is_null(), "{taskrun:#}");
    assert_eq!(taskrun["status"]["exitCode"], 3);

    // Arguments reach the program as they were given.
    let run = c
        .ctl(&[
            "run", "--agent", "a1", "--", "printf", "[%s]\\n", "a b", "it's", "$HOME", "",
        ])
        .ok();
    assert_eq!(run.stdout, "[a b]\n[it's]\n[$HOME]\n[]\n");
    // One word is a script; --env and exit 0.
    let run = c
        .ctl(&[
            "run",
            "--agent",
            "a1",
            "--env",
            "WHO=sloth",
            "--",
            "echo hello $WHO && true",
        ])
        .ok();
    assert_eq!(run.stdout, "hello sloth\n");
}

#[test]
fn run_streams_output_while_the_command_runs() {
    let c = Cluster::start();
    let gate = c.gate("go");
    let script = gated("first", &gate, "second");
    let mut run = c.spawn(&["run", "--agent", "a1", "--", "bash", "-c", &script]);
    run.stdout.wait_for(DEADLINE, |l| l == "first");
    assert!(run.running(), "the command is still waiting for the gate");
    open(&gate);
    run.stdout.wait_for(DEADLINE, |l| l == "second");
    assert_eq!(run.exit_code(), 0, "agent log:\n{}", c.agent.log());

    // Output printed over a second arrives line by line, in order.
    let run = c
        .ctl(&[
            "run",
            "--agent",
            "a1",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done",
        ])
        .ok();
    assert_eq!(
        run.stdout, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n",
        "{run:#?}"
    );
}

/// A TCP proxy in front of the apiserver whose connections the test can
/// cut, as a network failure would, while it keeps accepting new ones.
struct Proxy {
    url: String,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let open = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let pipe = |from: &TcpStream, to: &TcpStream| {
                    let (mut from, mut to) = (
                        from.try_clone().expect("clone"),
                        to.try_clone().expect("clone"),
                    );
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                };
                pipe(&client, &server);
                pipe(&server, &client);
                let mut open = open.lock().expect("lock");
                open.push(client);
                open.push(server);
            }
        });
        Self { url, connections }
    }

    /// Breaks every connection made so far.
    fn cut(&self) {
        for stream in self.connections.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn run_resumes_watch_and_output_after_the_connection_breaks() {
    let c = Cluster::start();
    let proxy = Proxy::start(c.server.grpc_url());
    let gate = c.gate("go");
    let script = gated("before", &gate, "after");
    let mut child = slothctl_at(&proxy.url)
        .args(["run", "--agent", "a1", "--", "bash", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slothctl");
    let stdout = LineReader::new(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut run = Background {
        child,
        stdout,
        stderr: LineReader::new(std::io::empty()),
    };
    run.stdout.wait_for(DEADLINE, |l| l == "before");
    proxy.cut();
    open(&gate);
    let seen = run.stdout.wait_for(DEADLINE, |l| l == "after");
    assert_eq!(seen, ["after"], "nothing is printed twice");
    assert_eq!(run.exit_code(), 0, "agent log:\n{}", c.agent.log());
    assert!(run.rest().is_empty());
    let stderr = stderr.join().expect("stderr");
    assert!(stderr.starts_with("taskrun/run-"), "{stderr}");
}

#[test]
fn run_on_an_unknown_agent_fails_clearly_and_creates_nothing() {
    let c = Cluster::start();
    let run = c.ctl(&["run", "--agent", "nope", "--", "true"]).code(1);
    assert_eq!(run.stderr.trim(), r#"error: agent "nope" not found"#);
    let run = c.ctl(&["get", "taskruns", "-o", "name"]).ok();
    assert_eq!(run.stdout, "", "nothing was created");

    // Invalid input is exit 2, nothing sent.
    c.ctl(&["run", "--agent", "a1", "--timeout", "soon", "--", "true"])
        .code(2);
    c.ctl(&["run", "--", "true"]).code(2);
    c.ctl(&["run", "-l", "gpu in (", "--", "true"]).code(2);
    let run = c.ctl(&["get", "taskruns", "-o", "name"]).ok();
    assert_eq!(run.stdout, "");
}

#[test]
fn run_fails_with_the_reason_when_the_task_times_out() {
    let c = Cluster::start();
    let run = c
        .ctl(&[
            "run",
            "--agent",
            "a1",
            "--timeout",
            "500ms",
            "--",
            "sleep",
            "30",
        ])
        .code(1);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: taskrun run-") && last.contains(" failed: TimedOut: "),
        "{run:#?}"
    );
}

#[test]
fn run_with_a_selector_is_scheduled_and_says_why_it_waits() {
    let c = Cluster::start();
    let run = c
        .ctl(&["run", "-l", "gpu=true", "--", "echo", "placed"])
        .ok();
    assert_eq!(run.stdout, "placed\n");

    let waiting = c.spawn(&["run", "-l", "gpu=false", "--", "echo", "never"]);
    waiting.stderr.wait_for(DEADLINE, |l| {
        l.contains("Unschedulable") && l.contains("taskrun/run-")
    });
}

#[test]
fn logs_follow_a_running_task_to_its_end() {
    let c = Cluster::start();
    let gate = c.gate("go");
    c.taskrun("follow-me", &gated("one", &gate, "two"));
    let mut logs = c.spawn(&["logs", "-f", "follow-me"]);
    logs.stdout.wait_for(DEADLINE, |l| l == "one");
    assert!(logs.running(), "-f keeps following while the task runs");
    open(&gate);
    logs.stdout.wait_for(DEADLINE, |l| l == "two");
    assert_eq!(logs.exit_code(), 0);
    assert!(logs.rest().is_empty());

    // Without -f: what was written, at once.
    let run = c.ctl(&["logs", "taskrun/follow-me"]).ok();
    assert_eq!(run.stdout, "one\ntwo\n");
    let run = c.ctl(&["logs", "nope"]).code(1);
    assert!(run.stderr.contains("NotFound"), "{run:#?}");
    c.ctl(&["logs", "-f", "nope"]).code(1);
}

#[test]
fn wait_exits_0_1_or_2() {
    let c = Cluster::start();
    c.taskrun("good", "true");
    c.taskrun("bad", "exit 7");
    let gate = c.gate("go");
    c.taskrun("slow", &gated("started", &gate, "done"));

    let run = c.ctl(&["wait", "taskrun", "good"]).ok();
    assert_eq!(run.stdout, "taskrun/good succeeded\n");
    let run = c.ctl(&["wait", "tr/bad"]).code(1);
    assert_eq!(
        run.stderr.trim(),
        "error: taskrun bad failed: Error: exited with code 7"
    );
    let run = c.ctl(&["wait", "tr", "slow", "--timeout", "300ms"]).code(2);
    assert!(run.stderr.contains("timed out after 300ms"), "{run:#?}");
    c.ctl(&["wait", "tr", "nope", "--timeout", "5s"]).code(1);
    c.ctl(&["wait", "agent", "a1"]).code(2);

    // A wait in progress ends as soon as the task does.
    let mut waiting = c.spawn(&["wait", "tr", "slow", "--timeout", "30s"]);
    assert!(
        waiting.running(),
        "slow cannot finish before its gate opens"
    );
    open(&gate);
    assert_eq!(waiting.exit_code(), 0);
    waiting
        .stdout
        .wait_for(DEADLINE, |l| l == "taskrun/slow succeeded");
}

#[test]
fn cordon_and_uncordon_flip_unschedulable() {
    let c = Cluster::start();
    let run = c.ctl(&["cordon", "a1"]).ok();
    assert_eq!(run.stdout, "agent/a1 cordoned\n");
    assert_eq!(c.json("agent", "a1")["spec"]["unschedulable"], true);
    let run = c.ctl(&["get", "agents"]).ok();
    let row: Vec<&str> = run
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[0], "a1");
    assert!(row[1].ends_with(",SchedulingDisabled"), "{run:#?}");
    let run = c.ctl(&["cordon", "agent/a1"]).ok();
    assert_eq!(run.stdout, "agent/a1 already cordoned\n");

    let run = c.ctl(&["uncordon", "a1"]).ok();
    assert_eq!(run.stdout, "agent/a1 uncordoned\n");
    let unschedulable = &c.json("agent", "a1")["spec"]["unschedulable"];
    assert!(
        unschedulable.is_null() || unschedulable == false,
        "{unschedulable}"
    );
    let run = c.ctl(&["get", "agents"]).ok();
    assert!(!run.stdout.contains("SchedulingDisabled"), "{run:#?}");

    let run = c.ctl(&["cordon", "nope"]).code(1);
    assert_eq!(run.stderr.trim(), r#"error: agent "nope" not found"#);
}

#[test]
fn agent_list_and_agent_run_are_aliases() {
    let c = Cluster::start();
    let list = c.ctl(&["agent", "list"]).ok();
    let get = c.ctl(&["get", "agents"]).ok();
    // Widths may differ (the agent's status can change in between).
    assert_eq!(list.header(), get.header());
    assert_eq!(list.header(), AGENT_COLUMNS);
    let row: Vec<String> = list
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(row[0], "a1");
    assert_eq!(row[2], c.agent.logs_address());
    assert_eq!(
        row[3], "gpu=true,sloth.dev/agent=a1",
        "its own labels plus the name label"
    );

    let run = c.ctl(&["agent", "run", "a1", "echo x"]).ok();
    assert_eq!(run.stdout, "x\n");
    let run = c.ctl(&["agent", "run", "a1", "echo y; exit 4"]).code(4);
    assert_eq!(run.stdout, "y\n");
    c.ctl(&["agent", "run", "nope", "true"]).code(1);
}
