//! Runs one shell payload: `bash -c SCRIPT` in its own process group, with
//! stdout and stderr appended to one log file, a timeout, and a stop request
//! that both kill the whole group (SIGTERM, then SIGKILL after a grace).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::concurrency::StopReason;

/// How long a process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How often a dying process group is looked at.
const POLL: Duration = Duration::from_millis(50);

/// One shell payload to run.
#[derive(Clone, Debug)]
pub struct ShellJob {
    pub script: String,
    pub cwd: PathBuf,
    /// Added to the agent's own environment (later entries win).
    pub env: Vec<(String, String)>,
    /// stdout and stderr are appended here.
    pub output: PathBuf,
    /// Where the process group id is recorded, so that a restarted agent can
    /// kill a run its previous incarnation left behind.
    pub pid_file: PathBuf,
    pub timeout: Option<Duration>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The shell exited by itself with this status.
    Exited(ExitStatus),
    /// The timeout passed; the group was killed.
    TimedOut { after: Duration, status: ExitStatus },
    /// A stop request came; the group was killed.
    Stopped {
        reason: StopReason,
        status: ExitStatus,
    },
    /// The shell could not be started.
    NotStarted(String),
}

/// Runs `job`; `on_start` is called with the process id once it runs and
/// its result is held until the process has ended.
pub async fn run<G>(
    job: &ShellJob,
    mut stop: watch::Receiver<Option<StopReason>>,
    on_start: impl FnOnce(u32) -> G,
) -> Outcome {
    let mut child = match spawn(job) {
        Ok(child) => child,
        Err(message) => return Outcome::NotStarted(message),
    };
    let Some(pid) = child.id() else {
        return Outcome::NotStarted("the shell exited before it could be tracked".into());
    };
    let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    if let Err(e) = write_pid_file(&job.pid_file, pid) {
        tracing::warn!(path = %job.pid_file.display(), error = %e, "cannot record the process group");
    }
    let _running = on_start(pid);
    let started = Instant::now();
    let timeout = async {
        match job.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => {
            let status = match status {
                Ok(status) => status,
                Err(e) => {
                    // Cannot happen for a child we spawned; kill what may remain.
                    tracing::warn!(pid, error = %e, "cannot wait for the shell");
                    terminate_group(pgid, None).await;
                    return Outcome::NotStarted(format!("cannot wait for the shell: {e}"));
                }
            };
            // Background processes the script left behind end with the run.
            terminate_group(pgid, None).await;
            return Outcome::Exited(status);
        }
        () = timeout => Err(started.elapsed()),
        reason = stop_requested(&mut stop) => Ok(reason),
    };
    let status = terminate_group(pgid, Some(&mut child))
        .await
        .unwrap_or_else(|| ExitStatus::from_raw(Signal::SIGKILL as i32));
    match outcome {
        Err(after) => Outcome::TimedOut { after, status },
        Ok(reason) => Outcome::Stopped { reason, status },
    }
}

fn spawn(job: &ShellJob) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.output)
        .map_err(|e| format!("cannot open the output log {}: {e}", job.output.display()))?;
    let stderr = log
        .try_clone()
        .map_err(|e| format!("cannot share the output log: {e}"))?;
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("-c")
        .arg(&job.script)
        .current_dir(&job.cwd)
        .envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(false);
    command
        .spawn()
        .map_err(|e| format!("cannot start bash in {}: {e}", job.cwd.display()))
}

async fn stop_requested(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    loop {
        if let Some(reason) = *stop.borrow_and_update() {
            return reason;
        }
        if stop.changed().await.is_err() {
            // Nobody can ask any more.
            return std::future::pending().await;
        }
    }
}

/// True while any process of group `pgid` exists (zombies included).
fn group_alive(pgid: Pid) -> bool {
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// SIGTERM to the group, then SIGKILL to whatever remains after
/// [`KILL_GRACE`]; reaps `leader` when given and returns its status.
async fn terminate_group(pgid: Pid, mut leader: Option<&mut Child>) -> Option<ExitStatus> {
    if killpg(pgid, Signal::SIGTERM) == Err(Errno::ESRCH) && leader.is_none() {
        return None;
    }
    let deadline = Instant::now() + KILL_GRACE;
    let mut status = None;
    if let Some(child) = leader.as_deref_mut() {
        status = tokio::time::timeout_at(deadline, child.wait())
            .await
            .ok()
            .and_then(Result::ok);
    }
    // Once the leader is gone, give the rest of the group the same grace.
    if leader.is_none() || status.is_some() {
        while Instant::now() < deadline && group_alive(pgid) {
            tokio::time::sleep(POLL).await;
        }
    }
    if group_alive(pgid) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    if let (None, Some(child)) = (status, leader) {
        status = child.wait().await.ok();
    }
    status
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// /proc/PID/stat), which tells a process from a later one with the same id.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold anything.
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub(crate) fn write_pid_file(path: &Path, pid: u32) -> std::io::Result<()> {
    let start = process_start_time(pid).unwrap_or_default();
    std::fs::write(path, format!("{pid} {start}\n"))
}

/// Kills the process group recorded in `pid_file` by an earlier run, if that
/// very process (same id and start time) still leads it. Returns whether a
/// group was found.
pub async fn kill_recorded_group(pid_file: &Path) -> bool {
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
    terminate_group(Pid::from_raw(raw), None).await;
    true
}

/// The exit code to report: the code, or 128 + the signal, as shells do.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// "exited with code 3" or "killed by signal 9 (SIGKILL)".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {signal} ({})", name.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "ended without an exit code".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &Path, script: &str, timeout: Option<Duration>) -> ShellJob {
        ShellJob {
            script: script.into(),
            cwd: dir.to_path_buf(),
            env: vec![("GREETING".into(), "hi".into())],
            output: dir.join("output.log"),
            pid_file: dir.join("pid"),
            timeout,
        }
    }

    fn no_stop() -> watch::Receiver<Option<StopReason>> {
        watch::channel(None).1
    }

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

    #[tokio::test]
    async fn exit_codes_and_interleaved_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        let j = job(
            dir.path(),
            "echo out; echo err >&2; echo $GREETING; exit 3",
            None,
        );
        let outcome = run(&j, no_stop(), |_| ()).await;
        let Outcome::Exited(status) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            (exit_code(status), describe(status)),
            (3, "exited with code 3".into())
        );
        let log = std::fs::read_to_string(&j.output).expect("log");
        assert_eq!(log, "out\nerr\nhi\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let j = job(
            dir.path(),
            "sleep 300 & echo $! > child.pid; wait",
            Some(Duration::from_millis(300)),
        );
        let outcome = run(&j, no_stop(), |_| ()).await;
        let Outcome::TimedOut { status, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(exit_code(status), 128 + 15);
        let child: u32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        let gone = || {
            std::fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |s| {
                s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
            })
        };
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while !gone() && std::time::Instant::now() < end {
            tokio::time::sleep(POLL).await;
        }
        assert!(gone(), "background child {child} survived");
    }

    #[tokio::test]
    async fn stop_request_kills_and_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let j = job(dir.path(), "trap '' TERM; sleep 300", None);
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(async move { run(&j, rx, |_| ()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send_replace(Some(StopReason::Deleted));
        let outcome = task.await.expect("task");
        let Outcome::Stopped { reason, status } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(reason, StopReason::Deleted);
        assert!(status.signal().is_some(), "{status:?}");
    }

    #[tokio::test]
    async fn missing_cwd_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut j = job(dir.path(), "true", None);
        j.cwd = dir.path().join("missing");
        let outcome = run(&j, no_stop(), |_| ()).await;
        assert!(
            matches!(&outcome, Outcome::NotStarted(m) if m.contains("cannot start bash")),
            "{outcome:?}"
        );
    }
}
