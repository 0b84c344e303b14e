//! The supervisor's one loop, on one thread: poll(2) on the agent's pipe
//! and on a signalfd for SIGCHLD, with the nearest deadline as the timeout.
//! No thread per event source and no allocation per wake-up: it is started
//! once per payload, so what it costs is paid on every run.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::group::{KILL_GRACE, group_alive, write_pid_file};
use crate::{BootMs, Message, NO_PID_FILE};

/// How often a group left behind by the program is looked at.
const POLL: Duration = Duration::from_millis(50);

/// The exit code when the supervisor itself cannot do its job.
const FAILED: i32 = 125;

/// The longest line the agent writes, with room to spare; longer ones are
/// dropped (they are no message).
const MAX_LINE: usize = 256;

/// Runs the supervisor with `args` (`FENCE_AT_MS PID_FILE PROGRAM
/// [ARGS...]`); `name` prefixes its messages. Never returns: exits as the
/// program did.
pub fn main(name: &str, args: impl Iterator<Item = OsString>) -> ! {
    let mut args = args;
    let (Some(fence_at), Some(pid_file), Some(program)) = (args.next(), args.next(), args.next())
    else {
        fail(
            name,
            "usage: FENCE_AT_MS PID_FILE PROGRAM [ARGS...] (started by sloth-agent)",
        );
    };
    let Some(fence_at) = fence_at.to_str().and_then(|s| s.parse().ok()).map(BootMs) else {
        fail(name, "FENCE_AT_MS must be a number of milliseconds");
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
            eprintln!("{name}: cannot start {}: {e}", program.to_string_lossy());
            std::process::exit(cannot_start_code(&e))
        }
    };
    // Blocked only now (the program starts with an empty mask either way):
    // SIGCHLD is read from the signalfd, and the supervisor outlives a
    // Ctrl-C meant for the agent, ending only with its payload.
    let blocked = SigSet::from_iter([
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ]);
    if let Err(e) = blocked.thread_block() {
        eprintln!("{name}: cannot block signals: {e}");
    }
    let exits = match SignalFd::with_flags(
        &SigSet::from(Signal::SIGCHLD),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("{name}: cannot watch the program's exit: {e}");
            let _ = killpg(leader(&child), Signal::SIGKILL);
            std::process::exit(FAILED)
        }
    };
    if let Some(pid_file) = &pid_file
        && let Err(e) = write_pid_file(pid_file, child.id())
    {
        eprintln!(
            "{name}: cannot record the process group in {}: {e}",
            pid_file.display()
        );
    }
    let status = Supervisor {
        name,
        pgid: leader(&child),
        fence_at,
        status: None,
        kill_at: None,
        killed: false,
        agent_gone: false,
        line: Vec::with_capacity(MAX_LINE),
    }
    .run(&mut child, &exits);
    mirror(status)
}

fn leader(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
}

struct Supervisor<'a> {
    name: &'a str,
    pgid: Pid,
    fence_at: BootMs,
    /// The program's, once it has ended.
    status: Option<ExitStatus>,
    /// SIGKILL for the group once this passes (after a SIGTERM).
    kill_at: Option<Instant>,
    killed: bool,
    /// The pipe from the agent closed.
    agent_gone: bool,
    /// A line from the agent, read so far.
    line: Vec<u8>,
}

impl Supervisor<'_> {
    /// Watches the payload's group until the program has ended and its group
    /// is empty (or killed); returns the program's exit status.
    fn run(mut self, child: &mut Child, exits: &SignalFd) -> ExitStatus {
        loop {
            // Before every wait: a SIGCHLD that came before the signalfd
            // existed is not queued on it.
            if self.status.is_none() {
                self.reap(child);
            }
            if let Some(status) = self.status
                && (self.killed || !group_alive(self.pgid))
            {
                return status;
            }
            if !self.killed && self.fence_at.passed() {
                eprintln!(
                    "{}: the agent's heartbeat lease was not renewed in time; \
                     the process group was killed (fencing)",
                    self.name
                );
                self.kill();
            }
            if !self.killed && self.kill_at.is_some_and(|at| Instant::now() >= at) {
                self.kill();
            }
            let stdin = std::io::stdin();
            let mut fds = [
                PollFd::new(exits.as_fd(), PollFlags::POLLIN),
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            ];
            let watched = if self.agent_gone { 1 } else { 2 };
            match poll(&mut fds[..watched], self.timeout()) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("{}: cannot wait: {e}", self.name);
                    self.kill();
                    // Bounded: the group was just SIGKILLed.
                    return child
                        .wait()
                        .unwrap_or_else(|_| ExitStatus::from_raw(Signal::SIGKILL as i32));
                }
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            if ready(&fds[0]) {
                // Drained only: the reap at the loop's top reads the status.
                while let Ok(Some(_)) = exits.read_signal() {}
            }
            if watched == 2 && ready(&fds[1]) {
                self.read_agent();
            }
        }
    }

    /// How long to sleep: until the nearest deadline, and no longer than
    /// [`POLL`] while a group outlives its leader.
    fn timeout(&self) -> PollTimeout {
        let mut wait = self.fence_at.remaining();
        if let Some(at) = self.kill_at {
            wait = wait.min(at.saturating_duration_since(Instant::now()));
        }
        if self.status.is_some() || self.killed {
            wait = wait.min(POLL);
        }
        // Rounded up: waking a millisecond early would spin.
        let millis = wait.as_nanos().div_ceil(1_000_000);
        PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
    }

    fn reap(&mut self, child: &mut Child) {
        match child.try_wait() {
            Ok(None) => {}
            Ok(Some(exit)) => {
                self.status = Some(exit);
                // What the program left in its group ends with it.
                if self.kill_at.is_none()
                    && !self.killed
                    && killpg(self.pgid, Signal::SIGTERM) != Err(Errno::ESRCH)
                {
                    self.kill_at = Some(Instant::now() + KILL_GRACE);
                }
            }
            Err(e) => {
                eprintln!("{}: cannot wait for the program: {e}", self.name);
                self.kill();
                self.status = Some(ExitStatus::from_raw(Signal::SIGKILL as i32));
            }
        }
    }

    /// Reads what the agent wrote and acts on each whole line.
    fn read_agent(&mut self) {
        let mut buf = [0u8; 512];
        match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
            Ok(0) | Err(Errno::EBADF | Errno::EIO | Errno::EINVAL) => {
                self.agent_gone = true;
                if !self.killed {
                    self.kill();
                }
            }
            Ok(n) => {
                for &byte in &buf[..n] {
                    if byte == b'\n' {
                        if let Some(message) = Message::parse(&self.line) {
                            self.on(message);
                        }
                        self.line.clear();
                    } else if self.line.len() < MAX_LINE {
                        self.line.push(byte);
                    }
                }
            }
            Err(_) => {}
        }
    }

    fn on(&mut self, message: Message) {
        match message {
            Message::Fence(at) => self.fence_at = at,
            Message::Stop => {
                if self.kill_at.is_none() && !self.killed {
                    let _ = killpg(self.pgid, Signal::SIGTERM);
                    self.kill_at = Some(Instant::now() + KILL_GRACE);
                }
            }
        }
    }

    fn kill(&mut self) {
        let _ = killpg(self.pgid, Signal::SIGKILL);
        self.killed = true;
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

fn fail(name: &str, message: &str) -> ! {
    eprintln!("{name}: {message}");
    std::process::exit(FAILED)
}
