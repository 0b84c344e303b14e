//! Operating agents the seeds' way: `sloth-agent start --master HOST:PORT`,
//! `--daemon` explaining the systemd unit, `slothctl agent stop` through
//! the API, the version in the agent's status, and `sloth-controllers
//! --agent-gc-after` deleting agents NotReady that long.

use std::process::{Command, Stdio};
use std::time::Duration;

use sloth_sdk::objects::{AgentPhase, AgentSpec, LockSpec, TaskRunPhase, TaskRunSpec};
use sloth_sdk::{Api, Error};
use sloth_tests::{
    Agent, ApiServer, Controllers, LineReader, binary, ctl, ctl_on_a_tty, run_to_end, runtime,
    shell_bound_to, wait_until,
};

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn daemon_explains_the_systemd_unit_and_exits_2() {
    let mut cmd = Command::new(binary("sloth-agent"));
    cmd.args(["start", "--master", "127.0.0.1:1", "--daemon"]);
    let run = run_to_end(cmd, None, DEADLINE);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("does not daemonize"), "{run:#?}");
    assert!(run.stderr.contains("sloth-agent.service"), "{run:#?}");
    assert!(run.stderr.contains("scripts/install.sh agent"), "{run:#?}");
}

#[test]
fn start_with_a_bare_master_address_registers_and_reports_its_version() {
    let server = ApiServer::start();
    let work = tempfile::tempdir().expect("temp dir");
    // The seeds' spelling: `agent start --master HOST:PORT` (no http://).
    let mut child = Command::new(binary("sloth-agent"))
        .args([
            "start",
            "--name",
            "seed-1",
            "--master",
            server.grpc_address(),
        ])
        .args(["--bind-address", "127.0.0.1", "--port", "0"])
        .arg("--work-dir")
        .arg(work.path())
        .env_remove("SLOTH_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sloth-agent");
    let reader = LineReader::new(child.stdout.take().expect("stdout"));
    let ready = reader.next_line(DEADLINE);
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.expect("the agent printed no ready line");
    assert!(ready.starts_with("agent seed-1 ready"), "{ready}");
    let rt = runtime();
    let agents: Api<AgentSpec> = {
        let _enter = rt.enter();
        Api::all(server.client())
    };
    let agent = rt.block_on(agents.get("seed-1")).expect("agent object");
    assert_eq!(
        agent.status_or_default().version,
        env!("CARGO_PKG_VERSION"),
        "{agent:#?}"
    );
}

#[test]
fn agent_stop_lets_the_running_task_finish_then_the_agent_exits_0() {
    let server = ApiServer::start();
    let mut agent = Agent::start(&server, "a1", &[]);
    let rt = runtime();
    let client = server.client_in(&rt);
    let taskruns: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
    let release = tempfile::tempdir().expect("temp dir");
    let go = release.path().join("go");
    // Runs until the test creates `go` (bounded: at most 120s).
    let script = format!(
        "for i in $(seq 1200); do [ -e '{}' ] && break; sleep 0.1; done; echo finished",
        go.display()
    );
    rt.block_on(taskruns.create(&shell_bound_to("long", "a1", &script)))
        .expect("create taskrun");
    let phase = |name: &str| {
        rt.block_on(taskruns.get(name))
            .ok()
            .and_then(|t| t.status)
            .map(|s| s.phase)
    };
    wait_until(DEADLINE, || {
        (phase("long") == Some(TaskRunPhase::Running)).then_some(())
    })
    .unwrap_or_else(|| panic!("the taskrun never ran; agent log:\n{}", agent.log()));

    let stop = ctl(&server, &["agent", "stop", "a1", "--grace", "2m"]).ok();
    assert!(stop.stdout.contains("agent/a1 stopping"), "{stop:#?}");
    wait_until(DEADLINE, || {
        agent.log().contains("stop requested").then_some(())
    })
    .unwrap_or_else(|| panic!("the agent never saw the stop; log:\n{}", agent.log()));
    // It drains: the running task goes on, nothing new starts.
    rt.block_on(taskruns.create(&shell_bound_to("late", "a1", "echo late")))
        .expect("create taskrun");
    assert_eq!(
        agent.wait_exit(Duration::ZERO),
        None,
        "the agent exited while its task ran; log:\n{}",
        agent.log()
    );
    assert_eq!(phase("long"), Some(TaskRunPhase::Running));

    std::fs::write(&go, "").expect("release the task");
    let code = agent.wait_exit(DEADLINE);
    assert_eq!(code, Some(0), "agent log:\n{}", agent.log());
    let long = rt.block_on(taskruns.get("long")).expect("taskrun");
    let status = long.status.expect("status");
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    assert_eq!(status.log_tail.as_deref(), Some("finished\n"));
    assert_ne!(
        phase("late"),
        Some(TaskRunPhase::Succeeded),
        "a stopping agent took new work"
    );
    // It marked itself stopped.
    let agents: Api<AgentSpec> = Api::all(client);
    let stored = rt.block_on(agents.get("a1")).expect("agent object");
    let stored_status = stored.status_or_default();
    assert_eq!(stored_status.phase, AgentPhase::NotReady, "{stored:#?}");
    assert!(
        stored_status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == "AgentStopped"),
        "{stored:#?}"
    );

    // Started again, it runs: the stop was for the run that ended.
    agent.start_again();
    wait_until(DEADLINE, || {
        (phase("late") == Some(TaskRunPhase::Succeeded)).then_some(())
    })
    .unwrap_or_else(|| panic!("the restarted agent ran nothing; log:\n{}", agent.log()));
}

#[test]
fn agent_stop_of_an_unknown_agent_fails_with_exit_1() {
    let server = ApiServer::start();
    let run = ctl(&server, &["agent", "stop", "nobody"]).code(1);
    assert!(run.stderr.contains("\"nobody\" not found"), "{run:#?}");
    let run = ctl(&server, &["agent", "stop", "a1", "--grace", "soon"]).code(2);
    assert!(run.stderr.contains("--grace"), "{run:#?}");
}

#[test]
fn controllers_delete_agents_not_ready_past_agent_gc_after() {
    let server = ApiServer::start();
    let _controllers = Controllers::start(&server, "c1", &["--agent-gc-after", "2s"]);
    let rt = runtime();
    let client = server.client_in(&rt);
    let agents: Api<AgentSpec> = Api::all(client.clone());
    let locks: Api<LockSpec> = Api::namespaced(client, "sloth-system");
    let mut gone = Agent::start(&server, "gone", &[]);
    let stays = Agent::start(&server, "stays", &[]);
    assert!(gone.stop(), "log:\n{}", gone.log());
    wait_until(DEADLINE, || {
        matches!(rt.block_on(agents.get("gone")), Err(Error::NotFound(_))).then_some(())
    })
    .unwrap_or_else(|| panic!("agent gone was never deleted"));
    wait_until(DEADLINE, || {
        matches!(
            rt.block_on(locks.get("agent-gone")),
            Err(Error::NotFound(_))
        )
        .then_some(())
    })
    .unwrap_or_else(|| panic!("the heartbeat lock of agent gone was never deleted"));
    // A Ready agent stays, however old.
    let kept = rt.block_on(agents.get("stays")).expect("agent stays");
    assert_eq!(kept.status_or_default().phase, AgentPhase::Ready);
    drop(stays);
}

/// `slothctl agent run` under a pseudo-terminal (`script`), with `env`.
fn agent_run_on_a_tty(server: &ApiServer, env: &[(&str, &str)]) -> sloth_tests::Run {
    ctl_on_a_tty(server, "agent run a1 'echo out; exit 3'", env, DEADLINE)
}

#[test]
fn agent_run_frames_and_colours_output_on_a_tty_only() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "a1", &[]);
    let tty = agent_run_on_a_tty(&server, &[]);
    assert_eq!(tty.code, 3, "{tty:#?}");
    assert!(
        tty.stdout
            .contains("\x1b[1;36m==> a1: echo out; exit 3\x1b[0m"),
        "{tty:#?}"
    );
    assert!(tty.stdout.contains("out"), "{tty:#?}");
    assert!(tty.stdout.contains("\x1b[1;31m<== exit 3 in "), "{tty:#?}");

    let no_color = agent_run_on_a_tty(&server, &[("NO_COLOR", "1")]);
    assert_eq!(no_color.code, 3, "{no_color:#?}");
    assert!(
        no_color.stdout.contains("==> a1: echo out; exit 3"),
        "{no_color:#?}"
    );
    assert!(no_color.stdout.contains("<== exit 3 in "), "{no_color:#?}");
    assert!(!no_color.stdout.contains('\x1b'), "{no_color:#?}");

    // Piped: the command's output alone, no frame, no colour.
    let plain = ctl(&server, &["agent", "run", "a1", "echo out; exit 3"]).code(3);
    assert_eq!(plain.stdout, "out\n", "{plain:#?}");
    assert!(!plain.stderr.contains("==>"), "{plain:#?}");
    assert!(!plain.stderr.contains('\x1b'), "{plain:#?}");
}
