//! Clients, runtimes and objects the tests share.

use sloth_sdk::objects::{TaskRun, TaskRunSpec};

/// The columns of `slothctl get agents` (and `slothctl agent list`).
pub const AGENT_COLUMNS: [&str; 7] = [
    "NAME",
    "STATUS",
    "ADDRESS",
    "LABELS",
    "RUNNING/CAPACITY",
    "LAST HEARTBEAT",
    "AGE",
];

/// A Workflow manifest named `name`; `spec` is the YAML under `spec:`,
/// indented by two spaces.
pub fn workflow_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

/// A two-worker Tokio runtime for tests that also drive processes.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A client of the apiserver at `url` that authenticates with bearer
/// `token` (plain gRPC).
pub fn client_with_token(url: &str, token: &str) -> sloth_sdk::Client {
    sloth_sdk::Client::with_options(
        &[url],
        &sloth_sdk::ClientOptions {
            tls: None,
            token: Some(token.into()),
        },
    )
    .expect("client")
}

/// The whole output of a finished TaskRun from byte `offset` on, read
/// through the apiserver without following.
pub async fn read_logs(
    client: &sloth_sdk::Client,
    namespace: &str,
    name: &str,
    offset: i64,
) -> String {
    use futures_util::StreamExt;
    let mut stream = client
        .logs(namespace, name, false, offset)
        .await
        .expect("logs");
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        all.extend(chunk.expect("chunk"));
    }
    String::from_utf8(all).expect("utf-8")
}

/// A shell TaskRun bound to agent `agent` (so it skips scheduling).
pub fn shell_bound_to(name: &str, agent: &str, script: &str) -> TaskRun {
    TaskRun::new(
        name,
        TaskRunSpec {
            agent_name: Some(agent.into()),
            ..TaskRunSpec::shell(script)
        },
    )
}
