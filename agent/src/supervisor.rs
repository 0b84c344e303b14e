//! `sloth-agent supervise`: the small process between the agent and one
//! payload, so that a payload never outlives its agent's lease.
//!
//! The agent starts `sloth-agent supervise FENCE_AT PID_FILE PROGRAM ARGS..`
//! with a pipe on its stdin. The supervisor starts the program in a new
//! process group (recorded in PID_FILE for a restarted agent), and then:
//!
//! - `stop` on the pipe: SIGTERM to the group, SIGKILL after [`KILL_GRACE`];
//! - `fence MS` on the pipe: the new deadline (CLOCK_BOOTTIME ms) granted by
//!   the agent's latest heartbeat renewal;
//! - the deadline passes (the agent is frozen or cut off) or the pipe closes
//!   (the agent died): SIGKILL to the whole group at once.
//!
//! When the program ends, what it left in its group gets the same
//! SIGTERM-then-SIGKILL, and the supervisor exits as the program did (same
//! code, or killed by the same signal), so the agent sees the program's own
//! exit status. SIGTERM, SIGINT and SIGHUP are blocked: the supervisor
//! outlives a Ctrl-C meant for the agent and ends only with its payload.

use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::unistd::Pid;

use crate::fence::{BootMs, Deadlines};
use crate::process_group::{self, KILL_GRACE, group_alive};
use tokio::sync::watch;

/// The supervisors' executable: the running agent's own, even after its
/// file was replaced on disk (an upgrade), so both ends speak one protocol.
pub(crate) const OWN_EXECUTABLE: &str = "/proc/self/exe";

/// The hidden subcommand (`sloth-agent supervise ...`).
pub(crate) const SUBCOMMAND: &str = "supervise";

/// How often a group left behind by the program is looked at.
const POLL: Duration = Duration::from_millis(50);

/// The PID_FILE argument that records nothing.
const NO_PID_FILE: &str = "-";

/// The exit code when the supervisor itself cannot do its job.
const FAILED: i32 = 125;

/// A line the agent writes to a supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// The payload may run until this point.
    Fence(BootMs),
    /// Stop the payload (timeout or stop request).
    Stop,
}

impl Message {
    pub(crate) fn line(self) -> String {
        match self {
            Self::Fence(at) => format!("fence {}\n", at.0),
            Self::Stop => "stop\n".to_string(),
        }
    }

    fn parse(line: &str) -> Option<Self> {
        match line.trim().split_once(' ') {
            Some(("fence", ms)) => ms.parse().ok().map(|ms| Self::Fence(BootMs(ms))),
            None if line.trim() == "stop" => Some(Self::Stop),
            _ => None,
        }
    }
}

/// What starting payloads under supervisors needs: the supervisor's
/// executable (the agent's own) and the deadlines to pass on.
#[derive(Clone, Debug)]
pub(crate) struct Supervision {
    pub program: PathBuf,
    pub deadlines: watch::Receiver<Deadlines>,
}

impl Supervision {
    /// Supervisors without a fencing deadline, for tests.
    #[cfg(test)]
    pub(crate) fn unfenced() -> Self {
        let (keep, deadlines) = watch::channel(Deadlines::NEVER);
        // The deadline never moves: the sender may go.
        drop(keep);
        Self {
            program: testing::agent_binary(),
            deadlines,
        }
    }
}

/// The command that runs `program args` under a supervisor started as
/// `supervisor` (the agent's own executable); `pid_file` None records
/// nothing.
pub(crate) fn command(
    supervisor: &Path,
    fence_at: BootMs,
    pid_file: Option<&Path>,
    program: &str,
    args: &[&str],
) -> std::process::Command {
    let mut command = std::process::Command::new(supervisor);
    command
        .arg0("sloth-agent")
        .arg(SUBCOMMAND)
        .arg(fence_at.0.to_string())
        .arg(pid_file.unwrap_or(Path::new(NO_PID_FILE)))
        .arg(program)
        .args(args);
    command
}

enum Event {
    Exited(std::io::Result<ExitStatus>),
    Message(Message),
    /// The pipe from the agent closed: the agent is gone.
    AgentGone,
}

/// Runs the supervisor; `args` follow the subcommand. Never returns.
pub(crate) fn main(args: Vec<OsString>) -> ! {
    let mut args = args.into_iter();
    let (Some(fence_at), Some(pid_file), Some(program)) = (args.next(), args.next(), args.next())
    else {
        fail("usage: sloth-agent supervise FENCE_AT_MS PID_FILE PROGRAM [ARGS...]");
    };
    let Some(fence_at) = fence_at.to_str().and_then(|s| s.parse().ok()).map(BootMs) else {
        fail("FENCE_AT_MS must be a number of milliseconds");
    };
    let pid_file = (pid_file != NO_PID_FILE).then(|| PathBuf::from(pid_file));
    // The program's stdout and stderr are the supervisor's (the run's log).
    let mut child = match std::process::Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "sloth-agent supervise: cannot start {}: {e}",
                program.to_string_lossy()
            );
            std::process::exit(cannot_start_code(&e))
        }
    };
    // Blocked only now: the program would inherit the mask. The threads
    // started below inherit it.
    let blocked = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]);
    if let Err(e) = blocked.thread_block() {
        eprintln!("sloth-agent supervise: cannot block signals: {e}");
    }
    let pid = child.id();
    let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    if let Some(pid_file) = &pid_file
        && let Err(e) = process_group::write_pid_file(pid_file, pid)
    {
        eprintln!(
            "sloth-agent supervise: cannot record the process group in {}: {e}",
            pid_file.display()
        );
    }
    let (tx, events) = mpsc::channel();
    let exited = tx.clone();
    std::thread::spawn(move || {
        let _ = exited.send(Event::Exited(child.wait()));
    });
    std::thread::spawn(move || read_agent(&tx));
    let status = supervise(pgid, fence_at, &events);
    mirror(status)
}

/// Forwards the agent's lines until its pipe closes.
fn read_agent(tx: &mpsc::Sender<Event>) {
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Event::AgentGone);
                return;
            }
            Ok(_) => {
                if let Some(message) = Message::parse(&line)
                    && tx.send(Event::Message(message)).is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Watches the payload's group until the program has ended and its group
/// is empty (or killed); returns the program's exit status.
fn supervise(pgid: Pid, mut fence_at: BootMs, events: &mpsc::Receiver<Event>) -> ExitStatus {
    let killed_status = ExitStatus::from_raw(Signal::SIGKILL as i32);
    let mut status: Option<ExitStatus> = None;
    // SIGKILL for the group once this passes (after a SIGTERM).
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let kill = |killed: &mut bool| {
        let _ = killpg(pgid, Signal::SIGKILL);
        *killed = true;
    };
    loop {
        if let Some(status) = status
            && (killed || !group_alive(pgid))
        {
            return status;
        }
        if !killed && fence_at.passed() {
            eprintln!(
                "sloth-agent supervise: the agent's heartbeat lease was not renewed in time; \
                 the process group was killed (fencing)"
            );
            kill(&mut killed);
        }
        if !killed && kill_at.is_some_and(|at| Instant::now() >= at) {
            kill(&mut killed);
        }
        let mut wait = fence_at.remaining();
        if let Some(at) = kill_at {
            wait = wait.min(at.saturating_duration_since(Instant::now()));
        }
        if status.is_some() {
            wait = wait.min(POLL);
        }
        match events.recv_timeout(wait) {
            Ok(Event::Exited(Ok(exit))) => {
                status = Some(exit);
                // What the program left in its group ends with it.
                if kill_at.is_none()
                    && !killed
                    && killpg(pgid, Signal::SIGTERM) != Err(Errno::ESRCH)
                {
                    kill_at = Some(Instant::now() + KILL_GRACE);
                }
            }
            Ok(Event::Exited(Err(e))) => {
                eprintln!("sloth-agent supervise: cannot wait for the program: {e}");
                kill(&mut killed);
                status = Some(killed_status);
            }
            Ok(Event::Message(Message::Fence(at))) => fence_at = at,
            Ok(Event::Message(Message::Stop)) => {
                if kill_at.is_none() && !killed {
                    let _ = killpg(pgid, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + KILL_GRACE);
                }
            }
            Ok(Event::AgentGone) if !killed => kill(&mut killed),
            Ok(Event::AgentGone) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                kill(&mut killed);
                return status.unwrap_or(killed_status);
            }
        }
    }
}

/// Exits as the program did: its code, or killed by its signal (without a
/// core file of the supervisor); 128 + the signal when that cannot be.
fn mirror(status: ExitStatus) -> ! {
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    let signal = status.signal().unwrap_or(Signal::SIGKILL as i32);
    if let Ok(signal) = Signal::try_from(signal) {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
        let _ = SigSet::from(signal).thread_unblock();
        let _ = nix::sys::signal::raise(signal);
    }
    std::process::exit(128 + signal)
}

/// The exit code for a program that cannot be started, as shells report
/// it: 127 when it is not found, 126 when it cannot be executed.
fn cannot_start_code(e: &std::io::Error) -> i32 {
    match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        std::io::ErrorKind::PermissionDenied => 126,
        _ => FAILED,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("sloth-agent supervise: {message}");
    std::process::exit(FAILED)
}

#[cfg(test)]
pub(crate) mod testing {
    //! The agent binary, built once, for tests that start supervisors.

    use std::path::PathBuf;
    use std::sync::OnceLock;

    /// `target/<profile>/sloth-agent`, built by cargo when the unit tests
    /// run (they are a different executable).
    pub(crate) fn agent_binary() -> PathBuf {
        static PATH: OnceLock<PathBuf> = OnceLock::new();
        PATH.get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe
                .parent()
                .and_then(std::path::Path::parent)
                .expect("test executable lives in target/<profile>/deps")
                .to_path_buf();
            let mut build = std::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            );
            // The whole workspace's binaries, as scripts/test.sh and the
            // e2e harness build them: `-p sloth-agent` alone would resolve
            // the sdk's features differently and rebuild half the tree.
            build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
                "build",
                "--quiet",
                "--workspace",
                "--bins",
            ]);
            if dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "cargo build --workspace --bins failed");
            dir.join("sloth-agent")
        })
        .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [Message::Fence(BootMs(1234)), Message::Stop] {
            assert_eq!(Message::parse(&message.line()), Some(message));
        }
        assert_eq!(Message::parse("fence soon\n"), None);
        assert_eq!(Message::parse("hello\n"), None);
    }

    fn start(fence_at: BootMs, script: &str, dir: &Path) -> std::process::Child {
        command(
            &testing::agent_binary(),
            fence_at,
            Some(&dir.join("pid")),
            "bash",
            &["-c", script],
        )
        .stdin(Stdio::piped())
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
        use std::io::Write;
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
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(Message::Stop.line().as_bytes())
            .expect("write");
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
        wait_gone(pgid);
    }
}
