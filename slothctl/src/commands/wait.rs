//! `slothctl wait KIND NAME [--timeout DURATION]`: watches a TaskRun or a
//! Workflow until it finishes. Exit 0 when it succeeded, 1 when it failed
//! (or was cancelled, deleted, or does not exist), 2 when the timeout
//! (default 5m) passes first.

use sloth_sdk::DynamicObject;
use sloth_sdk::duration::Duration;

use super::Context;
use super::follow::{self, Tracker, status_text};
use crate::cli::WaitArgs;
use crate::error::{self, CliError};
use crate::kind;
use crate::printer::emit;

pub async fn run(ctx: &Context, args: WaitArgs) -> anyhow::Result<()> {
    let names: Vec<String> = args.name.iter().cloned().collect();
    let (kind, names) = kind::resolve_args(&args.kind, &names)?;
    if !matches!(kind.kind, "TaskRun" | "Workflow") {
        return Err(CliError::usage(format!(
            "wait works on taskruns and workflows, not {}",
            kind.plural
        ))
        .into());
    }
    let [name] = names.as_slice() else {
        return Err(CliError::usage(format!("wait {} NAME: give one name", kind.singular)).into());
    };
    let timeout: Duration = args
        .timeout
        .parse()
        .map_err(|e| CliError::usage(format!("--timeout: {e}")))?;
    let timeout = timeout.as_std();
    let namespace = kind::scope(kind, &ctx.namespace, false);
    let mut tracker = Tracker::new(ctx, kind, namespace, name);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_phase = String::new();
    let finished = loop {
        // With --timeout 0 the current state is read, however long that takes.
        let next = if timeout.is_zero() {
            Ok(tracker.next(ctx).await)
        } else {
            tokio::time::timeout_at(deadline, tracker.next(ctx)).await
        };
        match next {
            Ok(object) => {
                let object = object?;
                last_phase = follow::phase(&object).to_string();
                if follow::is_terminal(&last_phase) {
                    break object;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(timed_out(kind.singular, name, &args.timeout, &last_phase).into());
                }
            }
            Err(_) => {
                return Err(timed_out(kind.singular, name, &args.timeout, &last_phase).into());
            }
        }
    };
    match verdict(kind.singular, &finished) {
        Ok(line) => Ok(emit(&format!("{line}\n"))?),
        Err(message) => Err(CliError::failed(message).into()),
    }
}

fn timed_out(singular: &str, name: &str, timeout: &str, phase: &str) -> CliError {
    let phase = if phase.is_empty() {
        String::new()
    } else {
        format!(" (phase {phase})")
    };
    CliError {
        code: error::TIMED_OUT,
        message: format!("error: timed out after {timeout} waiting for {singular} {name}{phase}"),
    }
}

/// What a finished object means: Ok with the line to print when it
/// succeeded, Err with the reason it did not.
pub fn verdict(singular: &str, object: &DynamicObject) -> Result<String, String> {
    let name = &object.metadata.name;
    let phase = follow::phase(object);
    if phase == "Succeeded" {
        return Ok(format!("{singular}/{name} succeeded"));
    }
    let mut text = format!(
        "{singular} {name} {}",
        if phase == "Cancelled" {
            "was cancelled"
        } else {
            "failed"
        }
    );
    let reason = status_text(object, "reason");
    let message = status_text(object, "message");
    for part in [reason, message] {
        if !part.is_empty() {
            text.push_str(": ");
            text.push_str(part);
        }
    }
    if let Some(code) = object
        .status
        .get("exitCode")
        .and_then(serde_json::Value::as_i64)
        && message.is_empty()
    {
        text.push_str(&format!(" (exit code {code})"));
    }
    if reason.is_empty()
        && message.is_empty()
        && let Some(condition) = failed_condition(object)
    {
        text.push_str(": ");
        text.push_str(&condition);
    }
    Err(text)
}

/// `REASON: MESSAGE` of a Workflow's condition that explains a failure,
/// when its status has no reason of its own.
fn failed_condition(object: &DynamicObject) -> Option<String> {
    let conditions = object.status.get("conditions")?.as_array()?;
    conditions.iter().rev().find_map(|c| {
        let text = |f: &str| c.get(f).and_then(serde_json::Value::as_str).unwrap_or("");
        let parts: Vec<&str> = [text("reason"), text("message")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty() && text("type") != "Ready").then(|| parts.join(": "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn object(kind: &str, status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "kind": kind, "metadata": {"name": "x"}, "spec": {}, "status": status
        }))
        .expect("object")
    }

    #[test]
    fn verdicts_name_the_reason() {
        assert_eq!(
            verdict("taskrun", &object("TaskRun", json!({"phase": "Succeeded"}))),
            Ok("taskrun/x succeeded".to_string())
        );
        assert_eq!(
            verdict(
                "taskrun",
                &object(
                    "TaskRun",
                    json!({"phase": "Failed", "reason": "Error", "exitCode": 3})
                )
            ),
            Err("taskrun x failed: Error (exit code 3)".to_string())
        );
        assert_eq!(
            verdict(
                "workflow",
                &object("Workflow", json!({"phase": "Cancelled"}))
            ),
            Err("workflow x was cancelled".to_string())
        );
        assert_eq!(
            verdict(
                "workflow",
                &object(
                    "Workflow",
                    json!({"phase": "Failed", "conditions": [
                    {"type": "Failed", "status": "True", "reason": "TaskFailed", "message": "build failed"}]})
                )
            ),
            Err("workflow x failed: TaskFailed: build failed".to_string())
        );
    }

    #[test]
    fn timeouts_exit_2() {
        let e = timed_out("taskrun", "x", "1s", "Running");
        assert_eq!(e.code, 2);
        assert_eq!(
            e.message,
            "error: timed out after 1s waiting for taskrun x (phase Running)"
        );
    }
}
