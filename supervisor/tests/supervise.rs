//! The `sloth-supervise` binary against its protocol: real processes, a
//! real pipe standing for the agent.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use sloth_supervisor::{BootMs, Launcher, Message, group_alive};

fn launcher() -> Launcher {
    Launcher::dedicated(PathBuf::from(env!("CARGO_BIN_EXE_sloth-supervise")))
}

fn start(fence_at: BootMs, script: &str, dir: &Path) -> Child {
    launcher()
        .command(fence_at, Some(&dir.join("pid")), "bash", &["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the supervisor")
}

fn payload_pid(dir: &Path) -> i32 {
    let path = dir.join("pid");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < end, "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(pgid: i32) {
    let end = Instant::now() + Duration::from_secs(10);
    while group_alive(Pid::from_raw(pgid)) {
        assert!(Instant::now() < end, "group {pgid} survived");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_payload_dies_when_the_agent_pipe_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = start(BootMs::NEVER, "sleep 300 & sleep 300", dir.path());
    let pgid = payload_pid(dir.path());
    drop(child.stdin.take());
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    wait_gone(pgid);
}

#[test]
fn the_payload_dies_at_the_fencing_deadline_unless_extended() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut child = start(
        BootMs::now().after(Duration::from_millis(300)),
        "sleep 300",
        dir.path(),
    );
    let pgid = payload_pid(dir.path());
    let mut stdin = child.stdin.take().expect("stdin");
    let extended = BootMs::now().after(Duration::from_millis(1500));
    stdin
        .write_all(Message::Fence(extended).line().as_bytes())
        .expect("write");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    wait_gone(pgid);
}

#[test]
fn exit_codes_and_signals_are_mirrored() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Child::wait closes stdin, which would read as the agent gone.
    let mut child = start(BootMs::NEVER, "exit 7", dir.path());
    let _pipe = child.stdin.take();
    assert_eq!(child.wait().expect("wait").code(), Some(7));
    let mut child = start(BootMs::NEVER, "kill -USR1 $$", dir.path());
    let _pipe = child.stdin.take();
    assert_eq!(
        child.wait().expect("wait").signal(),
        Some(Signal::SIGUSR1 as i32)
    );
}

#[test]
fn stop_terminates_the_group_and_reports_the_signal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = start(BootMs::NEVER, "sleep 300 & wait", dir.path());
    let pgid = payload_pid(dir.path());
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(Message::Stop.line().as_bytes())
        .expect("write");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
    wait_gone(pgid);
}

#[test]
fn what_the_program_leaves_in_its_group_ends_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = start(BootMs::NEVER, "sleep 300 & exit 3", dir.path());
    let pgid = payload_pid(dir.path());
    let _pipe = child.stdin.take();
    assert_eq!(child.wait().expect("wait").code(), Some(3));
    wait_gone(pgid);
}

#[test]
fn a_missing_program_exits_127_and_bad_arguments_125() {
    let mut child = launcher()
        .command(BootMs::NEVER, None, "/nonexistent/program", &[])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let _pipe = child.stdin.take();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot start /nonexistent/program"),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sloth-supervise"))
        .args(["soon", "-", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FENCE_AT_MS"));
}

#[test]
fn the_supervisor_names_itself_and_the_payload_is_its_child() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = start(
        BootMs::NEVER,
        "cat /proc/$PPID/comm; echo $PPID",
        dir.path(),
    );
    // Held until the end: a closed pipe reads as the agent gone.
    let _pipe = child.stdin.take();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
        .expect("read");
    assert!(child.wait().expect("wait").success());
    assert_eq!(stdout, format!("sloth-supervise\n{}\n", child.id()));
}
