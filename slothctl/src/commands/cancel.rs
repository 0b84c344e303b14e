//! `slothctl cancel workflow NAME...`: set a Workflow's `spec.state` to
//! `Cancelled` by compare-and-swap, re-reading and retrying on conflicts
//! (the workflow controller writes the same object).

use serde_json::Value;
use sloth_sdk::Error as SdkError;
use sloth_sdk::kinds::KindInfo;

use super::Context;
use crate::cli::CancelArgs;
use crate::error::{CliError, Failures};
use crate::kind;
use crate::printer::emit;

/// Attempts before a run of conflicts is reported.
const ATTEMPTS: usize = 5;

/// The value of `spec.state` that cancels a workflow.
const CANCELLED: &str = "Cancelled";

pub(crate) async fn run(ctx: &Context, args: CancelArgs) -> anyhow::Result<()> {
    let (kind, names) = kind::resolve_args(&args.kind, &args.names)?;
    check_kind(kind)?;
    if names.is_empty() {
        return Err(CliError::usage("a workflow name is required: cancel workflow NAME").into());
    }
    let mut failures = Failures::default();
    for name in names {
        match cancel(ctx, &name).await {
            Ok(outcome) => emit(&format!(
                "{} {}\n",
                kind::qualified_name(kind, &name),
                message(&outcome)
            ))?,
            Err(e) => failures.report(e)?,
        }
    }
    Ok(failures.finish()?)
}

/// Only workflows can be cancelled (a usage error naming the kind otherwise).
fn check_kind(kind: &KindInfo) -> Result<(), CliError> {
    if kind.kind == "Workflow" {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "cannot cancel a {}: only workflows can be cancelled",
            kind.kind
        )))
    }
}

/// What a cancel did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Cancelled,
    AlreadyCancelled,
    /// Nothing to cancel: the workflow ended in this phase.
    Finished(String),
}

/// What is printed after the workflow's name.
fn message(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Cancelled => "cancelled".into(),
        Outcome::AlreadyCancelled => "already cancelled".into(),
        Outcome::Finished(phase) => {
            format!("already finished ({phase}): nothing to cancel, unchanged")
        }
    }
}

/// Whether a Workflow's spec is already cancelled.
fn is_cancelled(spec: &Value) -> bool {
    spec.get("state").and_then(Value::as_str) == Some(CANCELLED)
}

/// The phase a Workflow ended in, if it has ended.
fn finished_phase(status: &Value) -> Option<&str> {
    status
        .get("phase")
        .and_then(Value::as_str)
        .filter(|p| matches!(*p, "Succeeded" | "Failed" | "Cancelled"))
}

/// Sets `spec.state: Cancelled` unless the workflow is cancelled or has
/// finished already.
async fn cancel(ctx: &Context, name: &str) -> Result<Outcome, CliError> {
    let namespace = &ctx.namespace;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let workflow = ctx
            .client
            .get("Workflow", namespace, name)
            .await
            .map_err(|e| match e {
                SdkError::NotFound(_) => CliError::failed(format!(
                    "workflow {name:?} not found in namespace {namespace:?}"
                )),
                e => ctx.error(e),
            })?;
        if is_cancelled(&workflow.spec) {
            return Ok(Outcome::AlreadyCancelled);
        }
        if let Some(phase) = finished_phase(&workflow.status) {
            return Ok(Outcome::Finished(phase.to_string()));
        }
        let mut value = serde_json::to_value(&workflow)
            .map_err(|e| CliError::failed(format!("cannot encode workflow {name}: {e}")))?;
        value["spec"]["state"] = Value::String(CANCELLED.to_string());
        match ctx.client.update(&value).await {
            Ok(_) => return Ok(Outcome::Cancelled),
            Err(e @ SdkError::Conflict(_)) => last = Some(e),
            Err(SdkError::NotFound(_)) => {
                return Err(CliError::failed(format!(
                    "workflow {name:?} not found in namespace {namespace:?}"
                )));
            }
            Err(e) => return Err(ctx.error(e)),
        }
    }
    Err(last.map_or_else(
        || CliError::failed(format!("workflow {name} could not be cancelled")),
        |e| {
            ctx.error(e)
                .with_context(&format!("cannot cancel workflow {name}"))
        },
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error;

    #[test]
    fn only_workflows_can_be_cancelled() {
        for alias in ["workflow", "workflows", "wf", "Workflow"] {
            let kind = kind::resolve(alias).expect(alias);
            assert_eq!(check_kind(kind), Ok(()), "{alias}");
        }
        let e = check_kind(kind::resolve("tr").expect("tr")).expect_err("taskrun");
        assert_eq!(e.code, error::USAGE);
        assert_eq!(
            e.message,
            "error: cannot cancel a TaskRun: only workflows can be cancelled"
        );
    }

    #[test]
    fn state_and_messages() {
        assert!(is_cancelled(&json!({"tasks": [], "state": "Cancelled"})));
        assert!(!is_cancelled(&json!({"tasks": [], "state": "Running"})));
        assert!(!is_cancelled(&json!({"tasks": []})));
        assert_eq!(message(&Outcome::Cancelled), "cancelled");
        assert_eq!(message(&Outcome::AlreadyCancelled), "already cancelled");
        assert!(message(&Outcome::Finished("Succeeded".into())).contains("Succeeded"));
        assert_eq!(
            finished_phase(&json!({"phase": "Succeeded"})),
            Some("Succeeded")
        );
        assert_eq!(finished_phase(&json!({"phase": "Running"})), None);
        assert_eq!(finished_phase(&json!(null)), None);
        let kind = kind::resolve("wf").expect("wf");
        assert_eq!(
            format!(
                "{} {}",
                kind::qualified_name(kind, "x"),
                message(&Outcome::Cancelled)
            ),
            "workflow.sloth.dev/x cancelled"
        );
    }
}
