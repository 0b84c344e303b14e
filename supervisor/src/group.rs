//! The payload's process group: whether it is alive, and the record of its
//! id that lets a restarted agent find it.

use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::killpg;
use nix::unistd::Pid;

/// How long a process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// True while any process of group `pgid` exists (zombies included).
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// /proc/PID/stat), which tells a process from a later one with the same id.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold anything.
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Records `pid PROCESS_START_TIME` of the group's leader.
pub(crate) fn write_pid_file(path: &Path, pid: u32) -> std::io::Result<()> {
    let start = process_start_time(pid).unwrap_or_default();
    std::fs::write(path, format!("{pid} {start}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_skips_odd_command_names() {
        let mut fields = vec!["S".to_string()];
        fields.extend((4..=21).map(|n| n.to_string()));
        fields.push("987654".into());
        fields.push("23".into());
        let stat = format!("42 (a) b (c)) {}", fields.join(" "));
        assert_eq!(parse_start_time(&stat), Some(987_654));
        assert!(process_start_time(std::process::id()).is_some());
    }
}
