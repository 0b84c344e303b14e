//! `slothctl agent stop NAME` reaches the agent through the API, not a
//! signal: the [`STOP_ANNOTATION`] on its own Agent object, which the agent
//! watches. Its value is the grace period the running TaskRuns get.

use std::time::Duration;

use futures_util::StreamExt;
use sloth_sdk::objects::{Agent, AgentSpec};
use sloth_sdk::watcher::{Event, watch_objects};
use sloth_sdk::well_known::STOP_ANNOTATION;
use sloth_sdk::{Api, Client, WatchParams};
use tokio_util::sync::CancellationToken;

/// The grace an annotation without a readable duration gets.
pub(crate) const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(300);

/// The grace `agent` asks for, when a stop is requested.
pub(crate) fn requested(agent: &Agent) -> Option<Duration> {
    let value = agent.metadata.annotations.get(STOP_ANNOTATION)?;
    Some(match sloth_sdk::duration::parse_flag(value.trim()) {
        Ok(grace) => grace,
        Err(e) => {
            tracing::warn!(
                "annotation {STOP_ANNOTATION}={value:?} is not a duration ({e}); \
                 stopping with a grace of {DEFAULT_STOP_GRACE:?}"
            );
            DEFAULT_STOP_GRACE
        }
    })
}

/// Watches Agent `name` until a stop is requested (returns its grace) or
/// `cancel` fires (None).
pub(crate) async fn wait(
    client: Client,
    name: &str,
    cancel: CancellationToken,
) -> Option<Duration> {
    let api: Api<AgentSpec> = Api::all(client);
    let params = WatchParams {
        field_selector: format!("metadata.name={name}"),
        ..WatchParams::default()
    };
    let mut events = watch_objects(&api, "", params);
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return None,
            event = events.next() => event,
        };
        let grace = match event {
            Some(Ok(Event::Restarted(agents))) => agents.iter().find_map(requested),
            Some(Ok(Event::Applied(agent))) => requested(&agent),
            Some(Ok(_)) => None,
            Some(Err(e)) => {
                tracing::warn!("watching agent {name:?} for stop requests: {e}");
                None
            }
            None => {
                tracing::error!(
                    "the watch of agent {name:?} ended: `slothctl agent stop` will not reach it"
                );
                return None;
            }
        };
        if grace.is_some() {
            return grace;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(annotation: Option<&str>) -> Agent {
        let mut agent = Agent::new("a1", AgentSpec::default());
        if let Some(value) = annotation {
            agent
                .metadata
                .annotations
                .insert(STOP_ANNOTATION.to_string(), value.to_string());
        }
        agent
    }

    #[test]
    fn the_annotation_carries_the_grace() {
        assert_eq!(requested(&agent(None)), None);
        assert_eq!(
            requested(&agent(Some("90s"))),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            requested(&agent(Some("soon"))),
            Some(DEFAULT_STOP_GRACE),
            "a stop is a stop even with a bad grace"
        );
    }
}
