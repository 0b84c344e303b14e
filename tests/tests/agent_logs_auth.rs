//! The agent's logs port serves only the apiserver. With tokens and no
//! agent certificates, a Logs call straight to the agent without the
//! apiserver's proof (or with one made with another key) is refused, while
//! `slothctl logs` through the apiserver works.

use std::process::Command;

use sloth_proto::v1::LogsRequest;
use sloth_proto::v1::agent_logs_client::AgentLogsClient;
use sloth_sdk::logs_auth;
use sloth_tests::{Agent, ApiServer, CTL_DEADLINE, Run, binary, run_to_end, runtime};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const A1_TOKEN: &str = "agent-a1-token-0123456789abcdef";

/// `slothctl --server URL --token ADMIN ARGS` with a temporary HOME.
fn admin(server: &ApiServer, args: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(binary("slothctl"));
    cmd.args(["--server", server.grpc_url(), "--token", ADMIN_TOKEN])
        .args(args)
        .env("HOME", home.path())
        .env_remove("SLOTH_SERVER")
        .env_remove("SLOTH_TOKEN");
    run_to_end(cmd, None, CTL_DEADLINE)
}

/// Calls the agent's logs port directly; returns the refusal's code.
fn direct_logs_call(address: &str, name: &str, proof: Option<String>) -> tonic::Code {
    let rt = runtime();
    rt.block_on(async {
        let mut client = AgentLogsClient::connect(format!("http://{address}"))
            .await
            .expect("connect to the logs port");
        let mut request = tonic::Request::new(LogsRequest {
            namespace: "default".into(),
            name: name.into(),
            follow: false,
            offset: 0,
            ..LogsRequest::default()
        });
        if let Some(proof) = proof {
            request.metadata_mut().insert(
                logs_auth::METADATA_KEY,
                proof.parse().expect("metadata value"),
            );
        }
        match client.logs(request).await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        }
    })
}

#[test]
fn the_logs_port_refuses_callers_other_than_the_apiserver_in_token_mode() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = temp.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{ADMIN_TOKEN},alice,admin\n{A1_TOKEN},agent:a1,agent\n"),
    )
    .expect("write tokens");
    let server = ApiServer::start_with(&[
        "--controllers",
        "--token-file",
        tokens.to_str().expect("utf-8"),
    ]);
    let agent = Agent::start(&server, "a1", &["--token", A1_TOKEN]);
    let run = admin(
        &server,
        &["run", "--agent", "a1", "--", "echo", "secret-output"],
    )
    .ok();
    assert!(run.stdout.contains("secret-output"), "{run:#?}");
    let name = admin(&server, &["get", "taskruns", "-o", "name"])
        .ok()
        .stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit('/').next())
        .expect("a taskrun")
        .to_string();
    // Through the apiserver: allowed.
    let relayed = admin(&server, &["logs", &name]).ok();
    assert!(relayed.stdout.contains("secret-output"), "{relayed:#?}");
    // Straight to the agent: no proof, a proof made with another key, and
    // a good proof for another TaskRun are all refused.
    let address = agent.logs_address();
    assert_eq!(
        direct_logs_call(address, &name, None),
        tonic::Code::Unauthenticated
    );
    let now = chrono::Utc::now().timestamp();
    let forged = logs_auth::sign(b"not the agent's key", now, "default", &name);
    assert_eq!(
        direct_logs_call(address, &name, Some(forged)),
        tonic::Code::Unauthenticated
    );
    let key = logs_auth::key_of_token(A1_TOKEN);
    let other = logs_auth::sign(&key, now, "default", "another-taskrun");
    assert_eq!(
        direct_logs_call(address, &name, Some(other)),
        tonic::Code::Unauthenticated
    );
    // The proof itself is what the agent checks: made with its key, it
    // reads (this is what the apiserver sends).
    let good = logs_auth::sign(&key, now, "default", &name);
    assert_eq!(
        direct_logs_call(address, &name, Some(good)),
        tonic::Code::Ok
    );
}
