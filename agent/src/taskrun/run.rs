//! A claimed TaskRun from its preparation (directories, Secrets, artifacts)
//! to its terminal status: what every payload kind shares.

use std::path::{Path, PathBuf};

use chrono::Utc;
use sloth_sdk::Time;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_sdk::validation::limits::MAX_LOG_TAIL_BYTES;
use tokio::sync::watch;

use super::stopped::{stop_message, stop_reason};
use super::workdir::{cwd_for, prepare};
use super::{Ctx, PayloadKind, reason};
use crate::concurrency::{RunKey, StopReason};
use crate::results::{RESULTS_ENV, RESULTS_FILE};
use crate::{logs, secrets};

/// The agent's environment variable that puts every run in check mode.
pub(super) const CHECK_MODE_ENV: &str = "SLOTH_CHECK_MODE";

/// A prepared run, handed to the payload's runner.
pub(super) struct Launch<'a> {
    pub ctx: &'a Ctx,
    pub key: &'a RunKey,
    pub spec: &'a TaskRunSpec,
    pub run_dir: &'a Path,
    pub cwd: PathBuf,
    pub output: PathBuf,
    /// The payload's environment (spec, Secrets, SLOTH_* variables).
    pub env: Vec<(String, String)>,
    /// Where the payload writes its results (absolute: it may `cd`).
    pub results_file: PathBuf,
    pub check_mode: bool,
    pub secrets: crate::lua::Secrets,
    pub masks: crate::masking::Masks,
    pub stop: watch::Receiver<Option<StopReason>>,
    /// The status every terminal status starts from.
    pub base: TaskRunStatus,
}

/// Prepares and runs a claimed TaskRun; returns its terminal status.
pub(super) async fn run_claimed(
    ctx: &Ctx,
    key: &RunKey,
    taskrun: &TaskRun,
    payload: PayloadKind<'_>,
    stop: watch::Receiver<Option<StopReason>>,
    start: Time,
) -> TaskRunStatus {
    let spec = &taskrun.spec;
    let run_dir = logs::run_dir(&ctx.work_dir, key);
    let base = TaskRunStatus {
        phase: TaskRunPhase::Failed,
        agent: Some(ctx.agent.clone()),
        start_time: taskrun
            .status
            .as_ref()
            .and_then(|s| s.start_time)
            .or(Some(start)),
        ..TaskRunStatus::default()
    };
    let failed = |reason: &str, message: String| TaskRunStatus {
        reason: reason.into(),
        message,
        completion_time: Some(Utc::now()),
        ..base.clone()
    };
    let cwd = match cwd_for(&run_dir, spec.workdir.as_deref(), &ctx.workdir_roots) {
        Ok(cwd) => cwd,
        Err(message) => return failed(reason::ERROR, message),
    };
    if let Err(message) = prepare(&run_dir, &cwd).await {
        return failed(reason::ERROR, message);
    }
    if let Some(message) = not_to_start(ctx, &stop) {
        return failed(message.0, message.1);
    }
    // Secrets are read before anything runs: a missing one fails the run
    // with a reason naming it.
    let delivery = match deliver(ctx, key, spec).await {
        Ok(delivery) => delivery,
        Err(refused) => return failed(refused.reason, refused.message),
    };
    let secret_files = match secrets::write_files(&run_dir, spec, &delivery.secrets) {
        Ok(files) => files,
        Err(refused) => return failed(refused.reason, refused.message),
    };
    if let Err(f) =
        crate::artifacts::materialize(&ctx.client, &ctx.blobs, key, spec, &run_dir, &cwd).await
    {
        secrets::remove_files(&secret_files);
        return failed(f.reason, f.message);
    }
    let masks = delivery.masks.clone();
    let launch = launch(ctx, key, spec, &run_dir, cwd.clone(), delivery, stop, base);
    let status = match payload {
        PayloadKind::Lua(lua) => super::lua_payload::run(launch, lua).await,
        PayloadKind::Process(argv) => super::process_payload::run(launch, argv.argv()).await,
    };
    secrets::remove_files(&secret_files);
    let status = with_artifacts(ctx, key, spec, &cwd, status).await;
    mask_status(&masks, status)
}

/// Why a prepared run must not start (a stop request came, or the lease is
/// not current), as the reason and message of its Failed status.
fn not_to_start(
    ctx: &Ctx,
    stop: &watch::Receiver<Option<StopReason>>,
) -> Option<(&'static str, String)> {
    if let Some(why) = *stop.borrow() {
        return Some((
            stop_reason(why),
            format!("{}; it was not started", stop_message(why)),
        ));
    }
    if !ctx.fence.holds() {
        return Some((
            reason::LEASE_LOST,
            "the agent's heartbeat lease was not current when the run was to start; \
             it was not started"
                .into(),
        ));
    }
    None
}

/// The run's environment on top of the agent's: the spec's, the delivered
/// Secrets', then SLOTH_TASKRUN, SLOTH_NAMESPACE, SLOTH_AGENT, the results
/// file and check mode.
#[allow(clippy::too_many_arguments)]
fn launch<'a>(
    ctx: &'a Ctx,
    key: &'a RunKey,
    spec: &'a TaskRunSpec,
    run_dir: &'a Path,
    cwd: PathBuf,
    delivery: secrets::Delivery,
    stop: watch::Receiver<Option<StopReason>>,
    base: TaskRunStatus,
) -> Launch<'a> {
    // The script may `cd` anywhere: give it an absolute path.
    let results_file = std::path::absolute(run_dir)
        .unwrap_or_else(|_| run_dir.to_path_buf())
        .join(RESULTS_FILE);
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(delivery.env);
    env.extend([
        ("SLOTH_TASKRUN".to_string(), key.name.clone()),
        ("SLOTH_NAMESPACE".to_string(), key.namespace.clone()),
        ("SLOTH_AGENT".to_string(), ctx.agent.clone()),
        (
            RESULTS_ENV.to_string(),
            results_file.to_string_lossy().into_owned(),
        ),
    ]);
    let check_mode = spec.check_mode || check_mode_env();
    if check_mode {
        // Shell payloads and programs see it too.
        env.push((CHECK_MODE_ENV.to_string(), "1".to_string()));
    }
    Launch {
        ctx,
        key,
        spec,
        run_dir,
        cwd,
        output: run_dir.join(logs::OUTPUT_FILE),
        env,
        results_file,
        check_mode,
        secrets: delivery.secrets,
        masks: delivery.masks,
        stop,
        base,
    }
}

/// After a success: the declared artifacts uploaded and listed in the
/// status, or the run failed when one cannot be.
async fn with_artifacts(
    ctx: &Ctx,
    key: &RunKey,
    spec: &TaskRunSpec,
    cwd: &Path,
    status: TaskRunStatus,
) -> TaskRunStatus {
    if status.phase != TaskRunPhase::Succeeded || spec.artifacts.is_none() {
        return status;
    }
    match crate::artifacts::upload(&ctx.client, &ctx.blobs, key, spec, cwd).await {
        Ok(artifacts) => TaskRunStatus {
            artifacts,
            ..status
        },
        Err(f) => TaskRunStatus {
            phase: TaskRunPhase::Failed,
            reason: f.reason.into(),
            message: f.message,
            ..status
        },
    }
}

/// The Secrets of a run, when it references any (none: nothing is read).
async fn deliver(
    ctx: &Ctx,
    key: &RunKey,
    spec: &TaskRunSpec,
) -> Result<secrets::Delivery, secrets::Undeliverable> {
    if spec.secret_use().names().is_empty() {
        return Ok(secrets::Delivery::default());
    }
    let fetched = secrets::fetch(&ctx.client, &key.namespace, spec).await?;
    secrets::resolve(spec, fetched)
}

/// `status` with every delivered value hidden (message, results, log tail).
fn mask_status(masks: &crate::masking::Masks, status: TaskRunStatus) -> TaskRunStatus {
    if masks.is_empty() {
        return status;
    }
    TaskRunStatus {
        message: masks.text(&status.message),
        results: masks.map(status.results),
        log_tail: status.log_tail.map(|t| masks.text(&t)),
        ..status
    }
}

/// The last bytes of a run's output, for `status.logTail`.
pub(super) async fn read_log_tail(key: &RunKey, output: &Path) -> Option<String> {
    match logs::read_tail(output, MAX_LOG_TAIL_BYTES).await {
        Ok(tail) => Some(tail).filter(|t| !t.is_empty()),
        Err(e) => {
            tracing::warn!("cannot read the output of taskrun {key}: {e}");
            None
        }
    }
}

/// True when the agent runs with SLOTH_CHECK_MODE set to 1, true or yes.
fn check_mode_env() -> bool {
    std::env::var(CHECK_MODE_ENV).is_ok_and(|v| check_mode_on(&v))
}

/// SLOTH_CHECK_MODE's values that turn check mode on.
fn check_mode_on(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_mode_env_values() {
        for on in ["1", "true", "TRUE", " yes "] {
            assert!(super::check_mode_on(on), "{on}");
        }
        for off in ["", "0", "false", "no", "2"] {
            assert!(!super::check_mode_on(off), "{off}");
        }
    }
}
