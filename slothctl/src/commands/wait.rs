//! `slothctl wait KIND NAME [--timeout DURATION]`: watches a TaskRun or a
//! Workflow until it finishes. Exit 0 when it succeeded, 1 when it failed
//! (or was cancelled, deleted, or does not exist), 2 when the timeout
//! (default 5m) passes first.
//!
//! With `--for=condition=C[=V]|delete|jsonpath='{EXPR}'=V` (kubectl's), any
//! kind: exit 0 once the condition holds, 1 when the object is gone (but
//! for `delete`), 2 on timeout.

use sloth_sdk::DynamicObject;
use sloth_sdk::duration::Duration;

use super::Context;
use super::follow::{self, Tracker, status_text};
use crate::cli::WaitArgs;
use crate::error::{self, CliError};
use crate::kind;
use crate::printer::emit;
use crate::printer::jsonpath::{Template, text};

pub(crate) async fn run(ctx: &Context, args: WaitArgs) -> anyhow::Result<()> {
    let names: Vec<String> = args.name.iter().cloned().collect();
    let (kind, names) = kind::resolve_args(&args.kind, &names)?;
    if let Some(spec) = &args.for_ {
        let condition =
            Condition::parse(spec).map_err(|e| CliError::usage(format!("--for: {e}")))?;
        return wait_for(ctx, kind, &names, &args.timeout, &condition).await;
    }
    if !matches!(kind.kind, "TaskRun" | "Workflow") {
        return Err(CliError::usage(format!(
            "wait works on taskruns and workflows, not {}",
            kind.plural
        ))
        .into());
    }
    let (name, timeout) = target(kind, &names, &args.timeout)?;
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

/// What `--for` waits for.
#[derive(Debug)]
enum Condition {
    Delete,
    /// `status.conditions[type]` has this status (case-insensitive).
    Status {
        type_: String,
        status: String,
    },
    /// The expression selects this value (or anything, when None).
    JsonPath {
        template: Template,
        value: Option<String>,
    },
}

impl Condition {
    fn parse(spec: &str) -> Result<Self, String> {
        if spec == "delete" {
            return Ok(Self::Delete);
        }
        if let Some(rest) = spec.strip_prefix("condition=") {
            let (type_, status) = rest.split_once('=').unwrap_or((rest, "True"));
            if type_.is_empty() {
                return Err("condition=TYPE needs a TYPE, e.g. condition=Succeeded".into());
            }
            return Ok(Self::Status {
                type_: type_.to_string(),
                status: status.to_string(),
            });
        }
        if let Some(rest) = spec.strip_prefix("jsonpath=") {
            // `{.status.phase}=Succeeded`: the value follows the closing brace.
            let (expr, value) = match rest.rfind('}') {
                Some(end) => {
                    let value = rest[end + 1..].strip_prefix('=');
                    (&rest[..=end], value)
                }
                None => match rest.split_once('=') {
                    Some((expr, value)) => (expr, Some(value)),
                    None => (rest, None),
                },
            };
            return Ok(Self::JsonPath {
                template: Template::relaxed(expr)?,
                value: value.map(str::to_string),
            });
        }
        Err(format!(
            "unknown condition {spec:?}: use condition=TYPE[=VALUE], delete, or jsonpath='{{EXPR}}'=VALUE"
        ))
    }

    /// Whether `object` (None: gone) meets the condition.
    fn met(&self, object: Option<&DynamicObject>) -> bool {
        let Some(object) = object else {
            return matches!(self, Self::Delete);
        };
        match self {
            Self::Delete => false,
            Self::Status { type_, status } => object
                .status
                .get("conditions")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        let field = |f: &str| c.get(f).and_then(serde_json::Value::as_str);
                        field("type").is_some_and(|t| t.eq_ignore_ascii_case(type_))
                            && field("status").is_some_and(|s| s.eq_ignore_ascii_case(status))
                    })
                }),
            Self::JsonPath { template, value } => {
                let Ok(json) = serde_json::to_value(object) else {
                    return false;
                };
                let found = template.values(&json);
                match value {
                    None => !found.is_empty(),
                    Some(value) => found.iter().any(|v| &text(v) == value),
                }
            }
        }
    }
}

/// `wait --for`: any kind, one object.
async fn wait_for(
    ctx: &Context,
    kind: &'static sloth_sdk::kinds::KindInfo,
    names: &[String],
    timeout_text: &str,
    condition: &Condition,
) -> anyhow::Result<()> {
    let (name, timeout) = target(kind, names, timeout_text)?;
    let namespace = kind::scope(kind, &ctx.namespace, false);
    let mut tracker = Tracker::new(ctx, kind, namespace, name);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = if timeout.is_zero() {
            Ok(tracker.next_state(ctx).await)
        } else {
            tokio::time::timeout_at(deadline, tracker.next_state(ctx)).await
        };
        let Ok(state) = next else {
            return Err(timed_out(kind.singular, name, timeout_text, "").into());
        };
        let state = state?;
        if condition.met(state.as_ref()) {
            let what = if matches!(condition, Condition::Delete) {
                "deleted"
            } else {
                "condition met"
            };
            return Ok(emit(&format!("{}/{name} {what}\n", kind.singular))?);
        }
        if state.is_none() {
            return Err(CliError::failed(format!("{} {name} is gone", kind.singular)).into());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out(kind.singular, name, timeout_text, "").into());
        }
    }
}

/// The one object to wait for, and the timeout.
fn target<'a>(
    kind: &sloth_sdk::kinds::KindInfo,
    names: &'a [String],
    timeout: &str,
) -> Result<(&'a String, std::time::Duration), CliError> {
    let [name] = names else {
        return Err(CliError::usage(format!(
            "wait {} NAME: give one name",
            kind.singular
        )));
    };
    let timeout: Duration = timeout
        .parse()
        .map_err(|e| CliError::usage(format!("--timeout: {e}")))?;
    Ok((name, timeout.as_std()))
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
pub(crate) fn verdict(singular: &str, object: &DynamicObject) -> Result<String, String> {
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
    fn for_conditions_parse_and_match() {
        let tr = object(
            "TaskRun",
            json!({"phase": "Succeeded", "conditions": [{"type": "Succeeded", "status": "True"}]}),
        );
        let met = |spec: &str| Condition::parse(spec).expect(spec).met(Some(&tr));
        assert!(met("condition=Succeeded"));
        assert!(met("condition=succeeded=true"));
        assert!(!met("condition=Succeeded=False"));
        assert!(!met("condition=Ready"));
        assert!(met("jsonpath={.status.phase}=Succeeded"));
        assert!(met(".status.phase=Succeeded"
            .replace(".status", "jsonpath=.status")
            .as_str()));
        assert!(!met("jsonpath={.status.phase}=Failed"));
        assert!(met("jsonpath={.status.phase}"));
        assert!(!met("delete"));
        assert!(Condition::parse("delete").expect("delete").met(None));
        assert!(!Condition::parse("condition=X").expect("x").met(None));
        for bad in ["ready", "condition=", "jsonpath={.a"] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
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
