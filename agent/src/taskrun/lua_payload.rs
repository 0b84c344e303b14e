//! A Lua payload: run in the agent under a supervisor for the processes it
//! starts, and its terminal status.

use chrono::Utc;
use sloth_sdk::objects::{LuaPayload, TaskRunPhase, TaskRunStatus};

use super::reason;
use super::run::{Launch, read_log_tail};
use super::stopped::{stop_message, stop_reason};
use crate::lua::{self, LuaJob, LuaOutcome};
use crate::supervisor::Supervision;

/// Runs `payload`; returns the terminal status.
pub(super) async fn run(launch: Launch<'_>, payload: &LuaPayload) -> TaskRunStatus {
    let Launch { ctx, key, spec, .. } = launch;
    let metrics = lua::MetricsSink::default();
    let hooks = lua::HookSink::default();
    let job = LuaJob {
        payload: payload.clone(),
        namespace: key.namespace.clone(),
        taskrun: key.name.clone(),
        agent: ctx.agent.clone(),
        attempt: spec.attempt,
        cwd: std::path::absolute(&launch.cwd).unwrap_or(launch.cwd),
        output: launch.output.clone(),
        pid_file: Some(launch.run_dir.join(super::PGID_FILE)),
        env: launch.env,
        timeout: spec.timeout.map(|t| t.as_std()).filter(|t| !t.is_zero()),
        client: Some(ctx.client.clone()),
        supervision: Supervision {
            supervisor: ctx.supervisor.clone(),
            deadlines: ctx.fence.subscribe(),
        },
        secrets: launch.secrets,
        masks: launch.masks,
        check_mode: launch.check_mode,
        metrics: metrics.clone(),
        hook_failures: hooks.clone(),
    };
    let (running, concurrent) = ctx.slots.process_started();
    tracing::info!("taskrun {key} started (Lua) concurrent={concurrent}");
    let outcome = lua::run(job, launch.stop).await;
    drop(running);
    let log_tail = read_log_tail(key, &launch.output).await;
    let mut status = TaskRunStatus {
        completion_time: Some(Utc::now()),
        log_tail,
        metrics: metrics.values(),
        ..lua_status(outcome, spec.timeout.unwrap_or_default(), launch.base)
    };
    let failed_hooks = hooks.values();
    if !failed_hooks.is_empty() {
        status.conditions.push(sloth_sdk::Condition {
            type_: lua::HOOK_FAILED.into(),
            status: "True".into(),
            reason: lua::HOOK_FAILED.into(),
            message: failed_hooks.join("; "),
            last_transition_time: Some(Utc::now()),
        });
    }
    status
}

/// The terminal status of a Lua run (phase, reason, message, results) on
/// top of `base`.
fn lua_status(
    outcome: LuaOutcome,
    timeout: sloth_sdk::duration::Duration,
    base: TaskRunStatus,
) -> TaskRunStatus {
    let failed = |why: &str, message: String| TaskRunStatus {
        phase: TaskRunPhase::Failed,
        reason: why.into(),
        message,
        ..base.clone()
    };
    match outcome {
        LuaOutcome::Returned {
            ok: true,
            message,
            results,
        } => TaskRunStatus {
            phase: TaskRunPhase::Succeeded,
            reason: reason::COMPLETED.into(),
            message,
            results,
            ..base
        },
        LuaOutcome::Returned {
            ok: false,
            message,
            results,
        } => TaskRunStatus {
            results,
            ..failed(reason::ERROR, message)
        },
        LuaOutcome::InvalidResults(problem) => failed(
            reason::INVALID_RESULTS,
            format!("invalid results: {problem}"),
        ),
        LuaOutcome::Error(text) => failed(reason::LUA_ERROR, text),
        LuaOutcome::TimedOut => failed(
            reason::TIMED_OUT,
            format!("timed out after {timeout}; the Lua code was stopped"),
        ),
        LuaOutcome::Stopped(why) => failed(
            stop_reason(why),
            format!("{}; the Lua code was stopped", stop_message(why)),
        ),
        LuaOutcome::NotStarted(message) => failed(reason::ERROR, message),
    }
}
