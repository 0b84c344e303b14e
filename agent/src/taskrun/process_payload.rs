//! A process payload (a `shell` script run by bash, or a `command` argv
//! executed directly) under its supervisor, and its terminal status: the
//! exit code, the results file, a timeout or a stop.

use chrono::Utc;
use sloth_sdk::objects::{TaskRunPhase, TaskRunStatus};

use super::reason;
use super::run::{Launch, read_log_tail};
use super::stopped::{stop_message, stop_reason};
use crate::process_group::{describe, exit_code};
use crate::results::{self, RESULTS_ENV};
use crate::supervised::{self, Outcome, ShellJob};

/// Runs `argv` (the program first); returns the terminal status.
pub(super) async fn run(launch: Launch<'_>, argv: Vec<String>) -> TaskRunStatus {
    let Launch { ctx, key, spec, .. } = launch;
    let job = ShellJob {
        argv,
        cwd: launch.cwd,
        env: launch.env,
        output: launch.output.clone(),
        pid_file: launch.run_dir.join(super::PGID_FILE),
        timeout: spec.timeout.map(|t| t.as_std()).filter(|t| !t.is_zero()),
        supervisor: ctx.supervisor.clone(),
        masks: launch.masks,
    };
    let slots = ctx.slots.clone();
    let outcome = supervised::run(&job, launch.stop, ctx.fence.subscribe(), |pid| {
        let (guard, concurrent) = slots.process_started();
        tracing::info!("taskrun {key} started pid={pid} concurrent={concurrent}");
        guard
    })
    .await;
    let completion = Utc::now();
    let log_tail = read_log_tail(key, &launch.output).await;
    let exited = matches!(outcome, Outcome::Exited(_));
    let parsed = match outcome {
        Outcome::NotStarted(_) => Ok(None),
        _ => results::read(&launch.results_file).await,
    };
    let (mut phase, mut why, exit_code, mut message) = match outcome {
        Outcome::Exited(status) if status.success() => (
            TaskRunPhase::Succeeded,
            reason::COMPLETED,
            Some(0),
            describe(status),
        ),
        Outcome::Exited(status) => (
            TaskRunPhase::Failed,
            reason::ERROR,
            Some(exit_code(status)),
            describe(status),
        ),
        Outcome::TimedOut { status, .. } => (
            TaskRunPhase::Failed,
            reason::TIMED_OUT,
            Some(exit_code(status)),
            format!(
                "timed out after {}; its process group was killed ({})",
                spec.timeout.unwrap_or_default(),
                describe(status)
            ),
        ),
        Outcome::Stopped {
            reason: stop,
            status,
        } => (
            TaskRunPhase::Failed,
            stop_reason(stop),
            Some(exit_code(status)),
            format!(
                "{}; its process group was killed ({})",
                stop_message(stop),
                describe(status)
            ),
        ),
        Outcome::NotStarted(message) => (TaskRunPhase::Failed, reason::ERROR, None, message),
    };
    let results = match parsed {
        Ok(results) => results.unwrap_or_default(),
        // The process ran to its end: its results are part of its outcome.
        Err(invalid) if exited => {
            phase = TaskRunPhase::Failed;
            why = reason::INVALID_RESULTS;
            message = format!("invalid ${RESULTS_ENV} file: {invalid} (the process {message})");
            Default::default()
        }
        // Killed or timed out: that stays the reason.
        Err(invalid) => {
            message = format!("{message}; ${RESULTS_ENV} ignored: {invalid}");
            Default::default()
        }
    };
    TaskRunStatus {
        phase,
        reason: why.into(),
        message,
        exit_code,
        completion_time: Some(completion),
        log_tail,
        results,
        ..launch.base
    }
}
