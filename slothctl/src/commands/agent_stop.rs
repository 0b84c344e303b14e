//! `slothctl agent stop NAME [--grace D]`: asks an agent, through the API,
//! to stop. The agent watches its own Agent object for the
//! [`STOP_ANNOTATION`]: it takes no new work (the scheduler treats it as
//! cordoned), lets its running TaskRuns finish for up to the grace period,
//! marks itself NotReady and exits 0.

use serde_json::Value;
use sloth_sdk::well_known::STOP_ANNOTATION;

use super::Context;
use super::cordon::update_agent;
use crate::cli::AgentStopArgs;
use crate::printer::emit;

pub(crate) async fn run(ctx: &Context, args: AgentStopArgs) -> anyhow::Result<()> {
    let grace = sloth_sdk::duration::Duration::from(args.grace).to_string();
    let name = args.name;
    let changed = update_agent(ctx, &name, |agent| request_stop(agent, &grace)).await?;
    let message = if changed {
        format!("agent/{name} stopping (running taskruns get up to {grace})\n")
    } else {
        format!("agent/{name} already stopping\n")
    };
    emit(&message)?;
    Ok(())
}

/// Puts the stop annotation with `grace` on `agent`; false when it is there
/// already with that grace.
fn request_stop(agent: &mut Value, grace: &str) -> bool {
    let metadata = &mut agent["metadata"];
    if metadata["annotations"]
        .get(STOP_ANNOTATION)
        .and_then(Value::as_str)
        == Some(grace)
    {
        return false;
    }
    if !metadata["annotations"].is_object() {
        metadata["annotations"] = Value::Object(serde_json::Map::new());
    }
    metadata["annotations"][STOP_ANNOTATION] = Value::String(grace.to_string());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_request_is_an_annotation_with_the_grace() {
        let mut agent = json!({"metadata": {"name": "a1"}, "spec": {}});
        assert!(request_stop(&mut agent, "5m"));
        assert_eq!(agent["metadata"]["annotations"][STOP_ANNOTATION], "5m");
        assert!(!request_stop(&mut agent, "5m"), "already asked");
        assert!(request_stop(&mut agent, "10s"), "a new grace");
        let mut kept = json!({"metadata": {"annotations": {"x": "y"}}});
        assert!(request_stop(&mut kept, "1m"));
        assert_eq!(kept["metadata"]["annotations"]["x"], "y");
    }
}
