//! `slothctl cordon AGENT...` and `uncordon AGENT...`: set an Agent's
//! `spec.unschedulable` by compare-and-swap, retrying on conflicts (the
//! agent itself updates its object).

use serde_json::Value;
use sloth_sdk::Error as SdkError;

use super::Context;
use crate::cli::CordonArgs;
use crate::error::{CliError, Failures};
use crate::kind;
use crate::printer::emit;

/// Attempts before a run of conflicts is reported.
const ATTEMPTS: usize = 10;

pub(crate) async fn run(
    ctx: &Context,
    args: CordonArgs,
    unschedulable: bool,
) -> anyhow::Result<()> {
    let mut names = Vec::new();
    for arg in &args.agents {
        let (kind, found) = match kind::split_type_name(arg) {
            (_, Some(_)) => kind::resolve_args(arg, &[])?,
            (name, None) => kind::resolve_args("agent", &[name.to_string()])?,
        };
        if kind.kind != "Agent" {
            return Err(CliError::usage(format!("{arg:?} is not an agent")).into());
        }
        names.extend(found);
    }
    let mut failures = Failures::default();
    for name in names {
        match set(ctx, &name, unschedulable).await {
            Ok(changed) => emit(&format!(
                "agent/{name} {}\n",
                message(unschedulable, changed)
            ))?,
            Err(e) => failures.report(e)?,
        }
    }
    Ok(failures.finish()?)
}

/// What is printed after the agent's name.
fn message(unschedulable: bool, changed: bool) -> &'static str {
    match (unschedulable, changed) {
        (true, true) => "cordoned",
        (true, false) => "already cordoned",
        (false, true) => "uncordoned",
        (false, false) => "already uncordoned",
    }
}

/// Sets `spec.unschedulable`; returns whether anything changed.
async fn set(ctx: &Context, name: &str, unschedulable: bool) -> Result<bool, CliError> {
    update_agent(ctx, name, |agent| {
        let current = agent["spec"].get("unschedulable").and_then(Value::as_bool) == Some(true);
        if current == unschedulable {
            return false;
        }
        agent["spec"]["unschedulable"] = Value::Bool(unschedulable);
        true
    })
    .await
}

/// Applies `change` to Agent `name` (as JSON) and writes it by
/// compare-and-swap, reading it again after a conflict; `change` returns
/// whether it changed anything. Returns whether the Agent was written.
pub(crate) async fn update_agent(
    ctx: &Context,
    name: &str,
    change: impl Fn(&mut Value) -> bool,
) -> Result<bool, CliError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let agent = ctx
            .client
            .get("Agent", "", name)
            .await
            .map_err(|e| match e {
                SdkError::NotFound(_) => CliError::failed(format!("agent {name:?} not found")),
                e => ctx.error(e),
            })?;
        let mut value = serde_json::to_value(&agent)
            .map_err(|e| CliError::failed(format!("cannot encode agent {name}: {e}")))?;
        if !change(&mut value) {
            return Ok(false);
        }
        match ctx.client.update(&value).await {
            Ok(_) => return Ok(true),
            Err(e @ SdkError::Conflict(_)) => last = Some(e),
            Err(e) => return Err(ctx.error(e)),
        }
    }
    Err(last.map_or_else(
        || CliError::failed(format!("agent {name} could not be updated")),
        |e| ctx.error(e),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_whether_anything_changed() {
        assert_eq!(message(true, true), "cordoned");
        assert_eq!(message(true, false), "already cordoned");
        assert_eq!(message(false, true), "uncordoned");
        assert_eq!(message(false, false), "already uncordoned");
    }
}
