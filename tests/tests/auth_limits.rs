//! Authentication limits end to end, with real processes: failed
//! authentications are rate-limited per source address (gRPC
//! ResourceExhausted, HTTP 429) and audited once per window; every client
//! binary takes its token from a file (`--token-file`, SLOTH_TOKEN_FILE)
//! so that it stays out of `ps`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sloth_sdk::Error;
use sloth_tests::{
    Agent, ApiServer, CTL_DEADLINE, Controllers, Run, binary, client_with_token, http_get_with,
    run_to_end, runtime, wait_until,
};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const CTL_TOKEN: &str = "controllers-token-0123456789abcdef";
const A1_TOKEN: &str = "agent-a1-token-0123456789abcdef";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

fn tokens_file(dir: &Path) -> PathBuf {
    write(
        dir,
        "tokens.csv",
        &format!(
            "{ADMIN_TOKEN},alice,admin\n{CTL_TOKEN},system:controllers,admin\n\
             {A1_TOKEN},agent:a1,agent\n"
        ),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `slothctl --server URL ARGS` with `envs`, a temporary HOME and no token
/// from the environment.
fn slothctl(url: &str, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(binary("slothctl"));
    cmd.args(["--server", url])
        .args(args)
        .env("HOME", home.path())
        .env_remove("SLOTH_SERVER")
        .env_remove("SLOTH_TOKEN")
        .env_remove("SLOTH_TOKEN_FILE")
        .envs(envs.iter().copied());
    run_to_end(cmd, None, CTL_DEADLINE)
}

#[test]
fn failed_authentications_are_throttled_per_address_and_audited_once_per_window() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_file(temp.path());
    let audit = temp.path().join("audit.log");
    let server =
        ApiServer::start_with(&["--token-file", path(&tokens), "--audit-log", path(&audit)]);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let client_with = |token: &str| client_with_token(server.grpc_url(), token);
    let guesser = client_with("guess-0000000000000000");

    let started = Instant::now();
    let (mut unauthenticated, mut throttled) = (0, 0);
    for _ in 0..40 {
        match rt.block_on(guesser.get("Agent", "", "a1")) {
            Err(Error::Unauthenticated(_)) => unauthenticated += 1,
            Err(Error::Server { message, .. }) if message.contains("too many failed") => {
                assert!(
                    message.contains("too many failed authentications from 127.0.0.1"),
                    "{message}"
                );
                throttled += 1;
            }
            other => panic!("unexpected answer to a wrong token: {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        (10..=10 + 2 * elapsed.as_secs() as usize + 2).contains(&unauthenticated),
        "a burst of 10, then about 2 per second: {unauthenticated} in {elapsed:?}"
    );
    assert!(throttled >= 20, "{throttled} throttled in {elapsed:?}");

    // The HTTP port's authenticated endpoint: 429 for the same address.
    let (code, body) = http_get_with(
        server.http_url(),
        "/metrics",
        &["Authorization: Bearer guess-1"],
    );
    assert_eq!(code, 429, "{body}");

    // Audited once per 10 s window, not per refused call.
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let audited = lines
        .iter()
        .filter(|l| l["result"] == "ResourceExhausted")
        .count();
    let windows = 1 + started.elapsed().as_secs() as usize / 10;
    assert!(
        (1..=windows).contains(&audited),
        "{audited} audit lines for {throttled} throttled calls over {windows} windows: {lines:#?}"
    );

    // The address gets its turn back as the bucket refills.
    let admin = client_with(ADMIN_TOKEN);
    let back = wait_until(Duration::from_secs(20), || {
        match rt.block_on(admin.get("Agent", "", "a1")) {
            Ok(_) | Err(Error::NotFound(_)) => Some(()),
            Err(Error::Server { message, .. }) if message.contains("too many failed") => None,
            Err(e) => panic!("{e}"),
        }
    });
    assert!(back.is_some(), "the admin never got through again");
}

#[test]
fn every_client_binary_reads_its_token_from_a_file() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_file(temp.path());
    let server = ApiServer::start_with(&["--token-file", path(&tokens)]);
    let url = server.grpc_url();
    let admin_file = write(temp.path(), "admin.token", &format!("{ADMIN_TOKEN}\n"));
    let ctl_file = write(temp.path(), "controllers.token", CTL_TOKEN);
    let a1_file = write(temp.path(), "a1.token", &format!("  {A1_TOKEN}\n"));

    let _controllers = Controllers::start(&server, "c1", &["--token-file", path(&ctl_file)]);
    let agent = Agent::start(&server, "a1", &["--token-file", path(&a1_file)]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", agent.pid().expect("agent pid")))
        .expect("agent cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(A1_TOKEN),
        "the token is not on the agent's command line"
    );

    // slothctl: the flag, then the environment variable; the controllers
    // schedule and the agent runs, both authenticated by their files.
    let ran = wait_until(Duration::from_secs(60), || {
        let run = slothctl(
            url,
            &[
                "--token-file",
                path(&admin_file),
                "run",
                "--agent",
                "a1",
                "--",
                "echo",
                "from-file",
            ],
            &[],
        );
        (run.code == 0).then_some(run)
    })
    .expect("a run with every token read from a file");
    assert!(ran.stdout.contains("from-file"), "{ran:#?}");
    let by_env = slothctl(
        url,
        &["get", "agents"],
        &[("SLOTH_TOKEN_FILE", path(&admin_file))],
    )
    .ok();
    assert!(by_env.stdout.contains("a1"), "{by_env:#?}");

    // A missing file, or a token given twice, is a usage error naming it.
    let missing = slothctl(
        url,
        &["--token-file", "/nonexistent/token", "get", "agents"],
        &[],
    );
    assert_ne!(missing.code, 0, "{missing:#?}");
    assert!(
        missing.stderr.contains("/nonexistent/token"),
        "{missing:#?}"
    );
    let both = slothctl(
        url,
        &[
            "--token",
            ADMIN_TOKEN,
            "--token-file",
            path(&admin_file),
            "get",
            "agents",
        ],
        &[],
    );
    assert_ne!(both.code, 0, "{both:#?}");
    assert!(both.stderr.contains("--token-file"), "{both:#?}");
}
