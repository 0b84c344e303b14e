//! Which process supervises a payload: `sloth-supervise`, the small
//! dedicated binary beside the agent (docs/agents.md, Fencing), and a
//! `--supervisor` that names no executable stops the agent at start.

use std::process::Command;
use std::time::Duration;

use sloth_sdk::objects::{Payload, TaskRunPhase};
use sloth_tests::{OneAgent, binary, run_to_end};

const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn a_payloads_parent_is_sloth_supervise() {
    let c = OneAgent::start();
    let run = c.run(
        "parent",
        Payload {
            shell: Some("cat /proc/$PPID/comm; readlink /proc/$PPID/exe".into()),
            ..Payload::default()
        },
        None,
    );
    let status = run.status_or_default();
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    let tail = status.log_tail.unwrap_or_default();
    let expected = format!("sloth-supervise\n{}\n", binary("sloth-supervise").display());
    assert_eq!(tail, expected, "agent log:\n{}", c.agent.log());
    assert!(
        c.agent.log().contains("payloads run under sloth-supervise"),
        "{}",
        c.agent.log()
    );
}

#[test]
fn a_supervisor_flag_naming_no_executable_stops_the_agent_at_start() {
    let temp = tempfile::tempdir().expect("temp dir");
    let nowhere = temp.path().join("nowhere");
    let mut cmd = Command::new(binary("sloth-agent"));
    cmd.args([
        "--name",
        "a1",
        "--server",
        "http://127.0.0.1:1",
        "--port",
        "0",
    ])
    .arg("--work-dir")
    .arg(temp.path().join("work"))
    .arg("--supervisor")
    .arg(&nowhere)
    .env_remove("SLOTH_SERVER");
    let run = run_to_end(cmd, None, DEADLINE);
    assert_ne!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr.contains("--supervisor") && run.stderr.contains(&*nowhere.to_string_lossy()),
        "{run:#?}"
    );
}
