//! Runs one process payload (`bash -c SCRIPT`, or a `command` argv executed
//! directly, with no shell) under a supervisor process
//! (`sloth-supervise`, see [`crate::supervisor`]) that keeps it in its
//! own process group, with stdout and stderr copied into one log file
//! (each write recorded with its stream, see [`crate::output_copy`]), a
//! timeout, and a stop request that both end the whole group (SIGTERM, then
//! SIGKILL after a grace). The supervisor also kills the group when the
//! agent dies or cannot renew its heartbeat lease in time.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::concurrency::StopReason;
use crate::fence::Deadlines;
use crate::process_group::{KILL_GRACE, kill_recorded_group};
use crate::supervisor::Message;

/// How long a supervisor may take, beyond [`KILL_GRACE`], to end after a
/// stop before the agent kills it and the group itself.
pub(crate) const SUPERVISOR_SLACK: Duration = Duration::from_secs(5);

/// Bound on one write to a supervisor's pipe.
const WRITE_LIMIT: Duration = Duration::from_secs(1);

/// One process payload to run.
#[derive(Clone, Debug)]
pub(crate) struct ShellJob {
    /// The program and its arguments: `bash -c SCRIPT` for a shell payload
    /// ([`shell_argv`]), the TaskRun's own argv for a `command` payload.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Added to the agent's own environment (later entries win).
    pub env: Vec<(String, String)>,
    /// stdout and stderr are appended here (with their index beside it).
    pub output: PathBuf,
    /// Where the process group id is recorded, so that a restarted agent can
    /// kill a run its previous incarnation left behind.
    pub pid_file: PathBuf,
    pub timeout: Option<Duration>,
    /// The supervisor's executable.
    pub supervisor: crate::supervisor::Executable,
    /// Secret values hidden in the output.
    pub masks: crate::masking::Masks,
}

/// The argv that runs `script` with bash.
pub(crate) fn shell_argv(script: &str) -> Vec<String> {
    vec!["bash".into(), "-c".into(), script.into()]
}

/// How long copying what the run left in its output pipes may take.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The program exited by itself with this status.
    Exited(ExitStatus),
    /// The timeout passed; the group was killed.
    TimedOut { after: Duration, status: ExitStatus },
    /// A stop request came; the group was killed.
    Stopped {
        reason: StopReason,
        status: ExitStatus,
    },
    /// The supervisor could not be started.
    NotStarted(String),
}

/// Runs `job` until `deadlines.kill` at the latest (followed as it moves);
/// `on_start` is called with the supervisor's process id once it runs and
/// its result is held until the run has ended.
pub(crate) async fn run<G>(
    job: &ShellJob,
    mut stop: watch::Receiver<Option<StopReason>>,
    mut deadlines: watch::Receiver<Deadlines>,
    on_start: impl FnOnce(u32) -> G,
) -> Outcome {
    let fence_at = deadlines.borrow_and_update().kill;
    let (sinks, copying) = match crate::output_copy::start(&job.output, job.masks.clone()) {
        Ok(started) => started,
        Err(e) => {
            return Outcome::NotStarted(format!(
                "cannot set up the output log {}: {e}",
                job.output.display()
            ));
        }
    };
    let spawned = spawn(job, fence_at, sinks);
    let mut child = match spawned {
        Ok(child) => child,
        Err(message) => return Outcome::NotStarted(message),
    };
    let Some(pid) = child.id() else {
        return Outcome::NotStarted("the supervisor exited before it could be tracked".into());
    };
    let mut pipe = child.stdin.take();
    let _running = on_start(pid);
    let started = Instant::now();
    let timeout = async {
        match job.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    // Why the run was ended early (Err: the timeout, after this long).
    let mut ended: Option<Result<StopReason, Duration>> = None;
    let mut give_up = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut following = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.ok(),
            () = &mut timeout, if ended.is_none() => {
                ended = Some(Err(started.elapsed()));
                give_up = Instant::now() + KILL_GRACE + SUPERVISOR_SLACK;
                tell(&mut pipe, Message::Stop).await;
            }
            reason = stop_requested(&mut stop), if ended.is_none() => {
                ended = Some(Ok(reason));
                give_up = Instant::now() + KILL_GRACE + SUPERVISOR_SLACK;
                tell(&mut pipe, Message::Stop).await;
            }
            changed = deadlines.changed(), if following && pipe.is_some() => match changed {
                Ok(()) => {
                    let at = deadlines.borrow_and_update().kill;
                    tell(&mut pipe, Message::Fence(at)).await;
                }
                // Nobody extends the deadline any more: the last one stands.
                Err(_) => following = false,
            },
            () = tokio::time::sleep_until(give_up) => {
                tracing::warn!(pid, "the supervisor did not end in time; killing it and its payload");
                let _ = child.start_kill();
                give_up = Instant::now() + SUPERVISOR_SLACK;
            }
        }
    };
    // A supervisor killed from outside leaves its payload: end it here.
    kill_recorded_group(&job.pid_file).await;
    if !copying.drain(OUTPUT_DRAIN).await {
        tracing::warn!("the output of the run could not be copied in time");
    }
    let status = status.unwrap_or_else(|| ExitStatus::from_raw(Signal::SIGKILL as i32));
    match ended {
        None => Outcome::Exited(status),
        Some(Err(after)) => Outcome::TimedOut { after, status },
        Some(Ok(reason)) => Outcome::Stopped { reason, status },
    }
}

/// Writes `message` to the supervisor; a pipe that fails is dropped (the
/// supervisor is gone or stuck, and ends the payload when it sees EOF).
async fn tell(pipe: &mut Option<ChildStdin>, message: Message) {
    let Some(writer) = pipe.as_mut() else {
        return;
    };
    let line = message.line();
    match tokio::time::timeout(WRITE_LIMIT, writer.write_all(line.as_bytes())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cannot write to a supervisor");
            pipe.take();
        }
        Err(_) => {
            tracing::warn!("a supervisor does not read its pipe; closing it");
            pipe.take();
        }
    }
}

fn spawn(
    job: &ShellJob,
    fence_at: crate::fence::BootMs,
    sinks: crate::output_copy::Sinks,
) -> Result<Child, String> {
    let Some((program, args)) = job.argv.split_first() else {
        return Err("the payload has no program to run (empty argv)".into());
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command: tokio::process::Command = job
        .supervisor
        .command(fence_at, Some(&job.pid_file), program, &args)
        .into();
    command
        .current_dir(&job.cwd)
        .envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(sinks.stdout))
        .stderr(Stdio::from(sinks.stderr))
        .kill_on_drop(false);
    command.spawn().map_err(|e| {
        format!(
            "cannot start the supervisor of {program} in {}: {e}",
            job.cwd.display()
        )
    })
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::process_group::{POLL, describe, exit_code};

    fn job(dir: &Path, script: &str, timeout: Option<Duration>) -> ShellJob {
        ShellJob {
            argv: shell_argv(script),
            cwd: dir.to_path_buf(),
            env: vec![("GREETING".into(), "hi".into())],
            output: dir.join("output.log"),
            pid_file: dir.join("pid"),
            timeout,
            supervisor: crate::supervisor::testing::supervisor(),
            masks: Default::default(),
        }
    }

    fn no_stop() -> watch::Receiver<Option<StopReason>> {
        watch::channel(None).1
    }

    fn unfenced() -> watch::Receiver<Deadlines> {
        watch::channel(Deadlines::NEVER).1
    }

    #[tokio::test]
    async fn exit_codes_and_output_by_stream() {
        let dir = tempfile::tempdir().expect("temp dir");
        let j = job(
            dir.path(),
            "echo out; echo err >&2; echo $GREETING; exit 3",
            None,
        );
        let outcome = run(&j, no_stop(), unfenced(), |_| ()).await;
        let Outcome::Exited(status) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            (exit_code(status), describe(status)),
            (3, "exited with code 3".into())
        );
        // Each stream in order; between them, in the order the agent read.
        let log = std::fs::read(&j.output).expect("log");
        let index = crate::output_index::Index::load(&j.output).await;
        let (stdout, stderr) = crate::output_index::split_by_stream(&log, &index);
        assert_eq!((stdout.as_str(), stderr.as_str()), ("out\nhi\n", "err\n"));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let j = job(
            dir.path(),
            "sleep 300 & echo $! > child.pid; wait",
            Some(Duration::from_millis(300)),
        );
        let outcome = run(&j, no_stop(), unfenced(), |_| ()).await;
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
        let task = tokio::spawn(async move { run(&j, rx, unfenced(), |_| ()).await });
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
        let outcome = run(&j, no_stop(), unfenced(), |_| ()).await;
        assert!(
            matches!(&outcome, Outcome::NotStarted(m) if m.contains("cannot start the supervisor of bash")),
            "{outcome:?}"
        );
    }
}
