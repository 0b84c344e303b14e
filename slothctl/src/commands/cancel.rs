//! `slothctl cancel workflow NAME...`: set a Workflow's `spec.state` to
//! `Cancelled` by compare-and-swap, re-reading and retrying on conflicts
//! (the workflow controller writes the same object).

use serde_json::Value;
use sloth_sdk::Error as SdkError;
use sloth_sdk::kinds::KindInfo;

use super::Context;
use crate::cli::CancelArgs;
use crate::error::{self, CliError};
use crate::kind;
use crate::printer::emit;

/// Attempts before a run of conflicts is reported.
const ATTEMPTS: usize = 5;

/// The value of `spec.state` that cancels a workflow.
const CANCELLED: &str = "Cancelled";

pub async fn run(ctx: &Context, args: CancelArgs) -> anyhow::Result<()> {
    let (kind, names) = kind::resolve_args(&args.kind, &args.names)?;
    check_kind(kind)?;
    if names.is_empty() {
        return Err(CliError::usage("a workflow name is required: cancel workflow NAME").into());
    }
    let mut failed = false;
    for name in names {
        match cancel(ctx, &name).await {
            Ok(changed) => emit(&format!(
                "{} {}\n",
                kind::qualified_name(kind, &name),
                message(changed)
            ))?,
            Err(e) if e.code == error::FAILED => {
                eprintln!("{e}");
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failed {
        return Err(CliError::reported(error::FAILED).into());
    }
    Ok(())
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

/// What is printed after the workflow's name.
fn message(changed: bool) -> &'static str {
    if changed {
        "cancelled"
    } else {
        "already cancelled"
    }
}

/// Whether a Workflow's spec is already cancelled.
fn is_cancelled(spec: &Value) -> bool {
    spec.get("state").and_then(Value::as_str) == Some(CANCELLED)
}

/// Sets `spec.state: Cancelled`; returns whether anything changed.
async fn cancel(ctx: &Context, name: &str) -> Result<bool, CliError> {
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
            return Ok(false);
        }
        let mut value = serde_json::to_value(&workflow)
            .map_err(|e| CliError::failed(format!("cannot encode workflow {name}: {e}")))?;
        value["spec"]["state"] = Value::String(CANCELLED.to_string());
        match ctx.client.update(&value).await {
            Ok(_) => return Ok(true),
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
        assert_eq!(message(true), "cancelled");
        assert_eq!(message(false), "already cancelled");
        let kind = kind::resolve("wf").expect("wf");
        assert_eq!(
            format!("{} {}", kind::qualified_name(kind, "x"), message(true)),
            "workflow.sloth.dev/x cancelled"
        );
    }
}
