//! The Logs call: finds the agent a TaskRun is bound to and relays the
//! output stream from that agent's own gRPC port.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use sloth_proto::v1 as pb;
use sloth_proto::v1::agent_logs_client::AgentLogsClient;
use sloth_sdk::logs_auth;
use sloth_sdk::tls::{ClientTls, Connector};
use tonic::transport::Endpoint;

use crate::error::ApiError;
use crate::registry::resources::Resources;

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

/// Streams the output of TaskRun `namespace/name` from its agent. The call
/// carries a proof made with each of `agent_keys(agent)` (the digests of
/// the agent's tokens), which an agent with a token but no certificate
/// requires (`sloth_sdk::logs_auth`).
pub async fn logs(
    resources: &Resources,
    dialer: &AgentDialer,
    request: pb::LogsRequest,
    agent_keys: impl Fn(&str) -> Vec<Vec<u8>>,
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
    let mut call = tonic::Request::new(request);
    let now = chrono::Utc::now().timestamp();
    for key in agent_keys(agent_name) {
        let proof = logs_auth::sign(&key, now, &call.get_ref().namespace, &call.get_ref().name);
        if let Ok(value) = proof.parse() {
            call.metadata_mut().append(logs_auth::METADATA_KEY, value);
        }
    }
    let stream = AgentLogsClient::new(channel)
        .logs(call)
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
