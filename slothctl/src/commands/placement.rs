//! Where the tasks of an applied Workflow can run, checked against the
//! agents the server knows: `delegate_to({address = ...})` is matched to the
//! agent reporting that address (after normalising `localhost`, loopback
//! and host names), and a task whose selector no agent matches is reported
//! as a warning naming the agents that exist (an agent may still join).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::Value;
use sloth_sdk::DynamicObject;
use sloth_sdk::well_known::CAPABILITY_LABEL_PREFIX;

/// How long one host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One endpoint an address stands for: every loopback address is one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Endpoint {
    ip: IpAddr,
    port: u16,
}

/// The endpoints `address` (`host:port`, `[v6]:port`) stands for: an IP as
/// written (loopback as 127.0.0.1), `localhost` as loopback, another host
/// name as what it resolves to. Empty when it cannot be read or resolved.
pub(crate) async fn endpoints(address: &str) -> BTreeSet<Endpoint> {
    let Some((host, port)) = split_host_port(address) else {
        return BTreeSet::new();
    };
    if let Some(ip) = literal_ip(host) {
        return BTreeSet::from([endpoint(ip, port)]);
    }
    let lookup = tokio::net::lookup_host((host.to_string(), port));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(found)) => found.map(|a| endpoint(a.ip(), a.port())).collect(),
        _ => BTreeSet::new(),
    }
}

fn endpoint(ip: IpAddr, port: u16) -> Endpoint {
    let ip = if ip.is_loopback() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    };
    Endpoint { ip, port }
}

/// An IP literal, or loopback for `localhost`.
fn literal_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.trim().rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// The agent whose reported address stands for the same endpoint as
/// `address`, by name: an exact match first, then a normalised one.
pub(crate) async fn agent_at(agents: &[DynamicObject], address: &str) -> Option<String> {
    if let Some(agent) = agents.iter().find(|a| reported(a) == Some(address)) {
        return Some(agent.metadata.name.clone());
    }
    let wanted = endpoints(address).await;
    if wanted.is_empty() {
        return None;
    }
    for agent in agents {
        let Some(theirs) = reported(agent) else {
            continue;
        };
        if !endpoints(theirs).await.is_disjoint(&wanted) {
            return Some(agent.metadata.name.clone());
        }
    }
    None
}

fn reported(agent: &DynamicObject) -> Option<&str> {
    agent.spec.get("address").and_then(Value::as_str)
}

/// The agents, as a warning shows them: `a1 (127.0.0.1:50051; capabilities
/// build)`.
pub(crate) fn describe_agents(agents: &[DynamicObject]) -> String {
    if agents.is_empty() {
        return "no agents are registered".to_string();
    }
    let shown: Vec<String> = agents
        .iter()
        .map(|a| {
            let mut parts = vec![reported(a).unwrap_or("no address").to_string()];
            let capabilities: Vec<&str> = a
                .metadata
                .labels
                .keys()
                .filter_map(|k| k.strip_prefix(CAPABILITY_LABEL_PREFIX))
                .collect();
            if !capabilities.is_empty() {
                parts.push(format!("capabilities {}", capabilities.join(",")));
            }
            format!("{} ({})", a.metadata.name, parts.join("; "))
        })
        .collect();
    format!("agents: {}", shown.join(", "))
}

/// One warning per task of a Workflow (or CronWorkflow) `object` whose
/// `agentSelector.matchLabels` no agent carries.
pub(crate) fn unmatched_tasks(object: &Value, agents: &[DynamicObject]) -> Vec<String> {
    let spec = match object.get("kind").and_then(Value::as_str) {
        Some("Workflow") => object.get("spec"),
        Some("CronWorkflow") => object.get("spec").and_then(|s| s.get("workflowSpec")),
        _ => None,
    };
    let Some(tasks) = spec.and_then(|s| s.get("tasks")).and_then(Value::as_array) else {
        return Vec::new();
    };
    let name = object
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut warnings = Vec::new();
    for task in tasks {
        let Some(labels) = task
            .get("agentSelector")
            .and_then(|s| s.get("matchLabels"))
            .and_then(Value::as_object)
            .filter(|l| !l.is_empty())
        else {
            continue;
        };
        let matches = |agent: &DynamicObject| {
            labels
                .iter()
                .all(|(k, v)| agent.metadata.labels.get(k).map(String::as_str) == v.as_str())
        };
        if agents.iter().any(matches) {
            continue;
        }
        let wanted: Vec<String> = labels
            .iter()
            .map(|(k, v)| match k.strip_prefix(CAPABILITY_LABEL_PREFIX) {
                Some(capability) => format!("capability {capability}"),
                None => format!("{k}={}", v.as_str().unwrap_or_default()),
            })
            .collect();
        warnings.push(format!(
            "workflow {name:?}, task {:?}: no agent matches {} yet ({}); the task waits \
             until one does",
            task.get("name").and_then(Value::as_str).unwrap_or_default(),
            wanted.join(", "),
            describe_agents(agents)
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_and_loopback_are_one_endpoint() {
        let a = endpoints("localhost:50051").await;
        assert_eq!(a, endpoints("127.0.0.1:50051").await);
        assert_eq!(a, endpoints("[::1]:50051").await);
        assert_eq!(a, endpoints("127.0.0.2:50051").await);
        assert_ne!(a, endpoints("127.0.0.1:50052").await);
        assert!(endpoints("nonsense").await.is_empty());
        assert!(endpoints(":80").await.is_empty());
    }
}
