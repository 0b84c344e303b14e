//! The Logs call: finds the agent a TaskRun is bound to and relays the
//! output stream from that agent's own gRPC port.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use sloth_proto::v1 as pb;
use sloth_proto::v1::agent_logs_client::AgentLogsClient;
use sloth_sdk::tls::{ClientTls, Connector};
use tonic::transport::Endpoint;

use crate::error::ApiError;
use crate::resources::Resources;

/// How long dialing an agent may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut node = value;
    for part in path {
        match node.get(part) {
            Some(next) => node = next,
            None => return "",
        }
    }
    node.as_str().unwrap_or_default()
}

/// How the apiserver dials agents: agents that report an `https://`
/// address are dialed with TLS, presenting the apiserver's certificate and
/// checking that the agent's certificate is issued to the agent's name.
#[derive(Clone, Debug, Default)]
pub struct AgentDialer {
    tls: Option<Arc<ClientTls>>,
}

impl AgentDialer {
    pub fn new(tls: Option<Arc<ClientTls>>) -> Self {
        Self { tls }
    }
}

/// Streams the output of TaskRun `namespace/name` from its agent.
pub async fn logs(
    resources: &Resources,
    dialer: &AgentDialer,
    request: pb::LogsRequest,
) -> Result<BoxStream<'static, Result<pb::LogChunk, tonic::Status>>, ApiError> {
    let taskrun = resources
        .get("TaskRun", &request.namespace, &request.name)
        .await?;
    let agent_name = match text(&taskrun.value, &["status", "agent"]) {
        "" => text(&taskrun.value, &["spec", "agentName"]),
        name => name,
    };
    if agent_name.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "taskrun {:?} is not bound to an agent yet: no logs",
            request.name
        )));
    }
    let agent = resources.get("Agent", "", agent_name).await?;
    let address = text(&agent.value, &["spec", "address"]);
    if address.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "agent {agent_name:?} reports no address (sloth-agent --report-address)"
        )));
    }
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::Unavailable(format!("agent {agent_name:?} at {address}: {e}"))
    };
    if url.starts_with("https://") && dialer.tls.is_none() {
        return Err(ApiError::Unavailable(format!(
            "agent {agent_name:?} serves TLS at {address}, but this apiserver has no \
             --tls-ca-file to check its certificate with"
        )));
    }
    let connector = Connector::new(dialer.tls.clone()).with_server_name(agent_name);
    let channel = Endpoint::from_shared(url.clone())
        .map_err(|e| unreachable(&e))?
        .connect_timeout(DIAL_TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|e| {
            use std::error::Error as _;
            unreachable(&sloth_sdk::error::with_causes(&e.to_string(), e.source()))
        })?;
    let stream = AgentLogsClient::new(channel)
        .logs(request)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::NotFound => ApiError::BadRequest(format!(
                "agent {agent_name:?} has no output for this taskrun: {}",
                status.message()
            )),
            _ => unreachable(&status.message()),
        })?
        .into_inner();
    Ok(stream.boxed())
}
