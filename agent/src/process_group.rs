//! The process group a payload runs in: whether it is alive, ending it
//! (SIGTERM, then SIGKILL after a grace), the id recorded for a restarted
//! agent, and how its leader's exit status reads.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;

use sloth_supervisor::process_start_time;
pub(crate) use sloth_supervisor::{KILL_GRACE, group_alive};

/// How often a dying process group is looked at.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// SIGTERM to the group, then SIGKILL to whatever remains after
/// [`KILL_GRACE`].
async fn terminate_group(pgid: Pid) {
    if killpg(pgid, Signal::SIGTERM) == Err(Errno::ESRCH) {
        return;
    }
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline && group_alive(pgid) {
        tokio::time::sleep(POLL).await;
    }
    if group_alive(pgid) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// Kills the process group recorded in `pid_file` by an earlier run, if that
/// very process (same id and start time) still leads it. Returns whether a
/// group was found.
pub(crate) async fn kill_recorded_group(pid_file: &Path) -> bool {
    let Ok(text) = tokio::fs::read_to_string(pid_file).await else {
        return false;
    };
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(pid)), Some(Ok(start))) = (fields.next(), fields.next()) else {
        return false;
    };
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    if pid <= 1 || start == 0 || process_start_time(pid) != Some(start) {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    terminate_group(Pid::from_raw(raw)).await;
    true
}

/// The exit code to report: the code, or 128 + the signal, as shells do.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// "exited with code 3" or "killed by signal 9 (SIGKILL)".
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {signal} ({})", name.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "ended without an exit code".into(),
    }
}
