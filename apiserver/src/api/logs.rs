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

use super::log_tail::LastLines;
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
/// requires (`sloth_sdk::logs_auth`). With `tail_lines`, the stream starts
/// with the last lines of the output so far, as one chunk.
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
    let agent = AgentCall {
        client: AgentLogsClient::new(channel),
        keys: agent_keys(agent_name),
    };
    let refused = |status: tonic::Status| match status.code() {
        tonic::Code::NotFound => ApiError::BadRequest(format!(
            "agent {agent_name:?} has no output for this taskrun: {}",
            status.message()
        )),
        _ => unreachable(&status.message()),
    };
    if request.tail_lines <= 0 {
        return agent.logs(request).await.map_err(refused);
    }
    // The tail: the output so far, read whole and cut to its last lines;
    // then, when following, the rest from where that read ended.
    let limit = usize::try_from(request.tail_lines).unwrap_or(usize::MAX);
    let so_far = pb::LogsRequest {
        follow: false,
        split_streams: false,
        tail_lines: 0,
        ..request.clone()
    };
    let mut chunks = agent.logs(so_far).await.map_err(refused)?;
    let mut last = LastLines::new(limit);
    let mut end = request.offset;
    let mut plain_bytes = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|status| unreachable(&status.message()))?;
        last.push(&chunk.data);
        plain_bytes += i64::try_from(chunk.data.len()).unwrap_or(i64::MAX);
        end = if chunk.next_offset > 0 {
            chunk.next_offset
        } else {
            // An agent older than next_offset: the plain bytes read.
            request.offset.saturating_add(plain_bytes)
        };
    }
    let tail = pb::LogChunk {
        data: last.into_bytes(),
        next_offset: end,
        ..pb::LogChunk::default()
    };
    let head = futures_util::stream::once(async move { Ok(tail) });
    if !request.follow {
        return Ok(head.boxed());
    }
    let rest = pb::LogsRequest {
        offset: end,
        split_streams: false,
        tail_lines: 0,
        ..request
    };
    let rest = agent.logs(rest).await.map_err(refused)?;
    Ok(head.chain(rest).boxed())
}

/// Calls to one agent's log service, each carrying a proof made with each
/// of the agent's keys (`sloth_sdk::logs_auth`).
struct AgentCall {
    client: AgentLogsClient<tonic::transport::Channel>,
    keys: Vec<Vec<u8>>,
}

impl AgentCall {
    async fn logs(
        &self,
        request: pb::LogsRequest,
    ) -> Result<BoxStream<'static, Result<pb::LogChunk, tonic::Status>>, tonic::Status> {
        let mut call = tonic::Request::new(request);
        let now = chrono::Utc::now().timestamp();
        for key in &self.keys {
            let proof = logs_auth::sign(key, now, &call.get_ref().namespace, &call.get_ref().name);
            if let Ok(value) = proof.parse() {
                call.metadata_mut().append(logs_auth::METADATA_KEY, value);
            }
        }
        let stream = self.client.clone().logs(call).await?.into_inner();
        Ok(stream.boxed())
    }
}
