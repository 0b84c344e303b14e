//! Issue 21, second round of slothctl parity: `apply --dry-run=server`
//! (the apiserver admits without storing), `logs --timestamps`, `--since`,
//! `--tail N -f`, and the credential flags from `SLOTH_*` variables.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sloth_tests::{
    Agent, ApiServer, CTL_DEADLINE, LineReader, Run, binary, ctl, ctl_stdin, run_to_end, slothctl,
    wait_exit, wait_until,
};

const DEADLINE: Duration = Duration::from_secs(60);

const ADMIN: &str = "admin-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";

/// An apiserver that knows an admin and a viewer token; the directory
/// holding the token file lives as long as the server is used.
fn server_with_tokens() -> (ApiServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{ADMIN},alice,admin\n{VIEWER},bob,viewer\n"),
    )
    .expect("write tokens");
    let server = ApiServer::start_with(&["--token-file", tokens.to_str().expect("utf-8")]);
    (server, dir)
}

/// `slothctl --token TOKEN ARGS` with `input` on stdin.
fn ctl_as(server: &ApiServer, token: &str, args: &[&str], input: Option<&str>) -> Run {
    let mut cmd = slothctl(server);
    cmd.args(["--token", token]).args(args);
    run_to_end(cmd, input, CTL_DEADLINE)
}

fn taskrun(name: &str, agent: &str, shell: &str) -> String {
    format!(
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: {name}\nspec:\n  \
         agentName: {agent}\n  run:\n    shell: \"{shell}\"\n"
    )
}

#[test]
fn apply_dry_run_server_admits_without_storing() {
    let (server, _tokens) = server_with_tokens();
    let apply = |token: &str, manifest: &str| {
        ctl_as(
            &server,
            token,
            &["apply", "-f", "-", "--dry-run=server"],
            Some(manifest),
        )
    };
    let get = |name: &str| {
        ctl_as(
            &server,
            ADMIN,
            &["get", "taskrun", name, "-o", "json"],
            None,
        )
    };

    // A valid new object is reported and not stored.
    let created = apply(ADMIN, &taskrun("fresh", "a1", "true")).ok();
    assert!(
        created.stdout.contains("fresh created (server dry run)"),
        "{created:#?}"
    );
    assert_ne!(get("fresh").code, 0, "a dry run stored the object");

    // A change to a stored object is admitted, reported, and not stored.
    ctl_as(
        &server,
        ADMIN,
        &["apply", "-f", "-"],
        Some(&taskrun("bound", "a1", "true")),
    )
    .ok();
    let stored = get("bound").ok().json();
    let configured = apply(ADMIN, &taskrun("bound", "a1", "echo changed")).ok();
    assert!(
        configured
            .stdout
            .contains("bound configured (server dry run)"),
        "{configured:#?}"
    );
    assert_eq!(
        get("bound").ok().json(),
        stored,
        "a dry run changed the object"
    );

    // Only the server knows the stored object: moving a bound TaskRun to
    // another agent is refused there, naming the field.
    let refused = apply(ADMIN, &taskrun("bound", "a2", "true"));
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        refused.stderr.contains("spec.agentName") && refused.stderr.contains("immutable"),
        "{refused:#?}"
    );
    assert_eq!(get("bound").ok().json(), stored);

    // RBAC is checked too: a viewer may not even pretend to write.
    let forbidden = apply(VIEWER, &taskrun("fresh", "a1", "true"));
    assert_eq!(forbidden.code, 1, "{forbidden:#?}");
    assert!(forbidden.stderr.contains("Forbidden"), "{forbidden:#?}");
}

/// A TaskRun on agent `agent` that prints `before`, waits (at most a
/// minute) for the file `go` to exist, then prints `after`.
fn gated_taskrun(name: &str, agent: &str, before: &str, go: &Path, after: &str) -> String {
    let go = go.to_str().expect("utf-8 path");
    format!(
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: {name}\nspec:\n  \
         agentName: {agent}\n  run:\n    shell: |\n      {before}\n      \
         for i in $(seq 600); do [ -f {go} ] && break; sleep 0.1; done\n      {after}\n"
    )
}

/// Waits until `slothctl logs NAME` holds `text`.
fn wait_for_output(server: &ApiServer, name: &str, text: &str) {
    wait_until(DEADLINE, || {
        let run = ctl(server, &["logs", name]);
        (run.code == 0 && run.stdout.contains(text)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} never printed {text:?}: {:#?}",
            ctl(server, &["logs", name])
        )
    });
}

/// Unix millis of an RFC 3339 time.
fn millis(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap_or_else(|e| panic!("{time:?} is not RFC 3339: {e}"))
        .timestamp_millis()
}

#[test]
fn logs_timestamps_and_since_date_lines_and_leave_the_log_plain() {
    const GAP: Duration = Duration::from_secs(12);
    let server = ApiServer::start();
    let agent = Agent::start(&server, "a1", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    ctl_stdin(
        &server,
        &["apply", "-f", "-"],
        &gated_taskrun("dated", "a1", "echo old", &go, "echo new"),
    )
    .ok();
    wait_for_output(&server, "dated", "old\n");
    let seen_old = Instant::now();
    // A gap between the two lines, wide enough for a loaded machine.
    wait_until(GAP * 2, || (seen_old.elapsed() >= GAP).then_some(()));
    std::fs::write(&go, "").expect("write go");
    ctl(&server, &["wait", "tr", "dated", "--timeout", "60s"]).ok();

    let plain = ctl(&server, &["logs", "dated"]).ok();
    assert_eq!(plain.stdout, "old\nnew\n");
    let on_disk = agent.work_dir().join("default/dated/output.log");
    assert_eq!(
        std::fs::read_to_string(&on_disk).expect("output.log"),
        "old\nnew\n",
        "the log on disk stays what the payload wrote"
    );

    let stamped = ctl(&server, &["logs", "dated", "--timestamps"]).ok();
    let lines: Vec<(&str, &str)> = stamped
        .lines()
        .iter()
        .map(|l| l.split_once(' ').expect("TIME LINE"))
        .collect();
    assert_eq!(
        lines.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
        ["old", "new"],
        "{stamped:#?}"
    );
    for (time, _) in &lines {
        assert!(
            time.ends_with('Z') && time.len() == "2026-12-07T01:02:03.456Z".len(),
            "{stamped:#?}"
        );
    }
    let apart = millis(lines[1].0) - millis(lines[0].0);
    assert!(
        apart >= (GAP.as_millis() as i64) - 1000,
        "the lines are dated {apart} ms apart: {stamped:#?}"
    );

    // The old line is older than `since` by several seconds, the new one
    // younger by as much.
    let since = seen_old.elapsed().as_secs() - GAP.as_secs() / 2;
    let recent = ctl(&server, &["logs", "dated", "--since", &format!("{since}s")]).ok();
    assert_eq!(recent.stdout, "new\n", "--since {since}s");
    let all = ctl(&server, &["logs", "dated", "--since", "1h", "--timestamps"]).ok();
    assert_eq!(all.stdout, stamped.stdout);
    ctl(&server, &["logs", "dated", "--since", "soon"]).code(2);
}

#[test]
fn logs_tail_then_follow() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "a1", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    ctl_stdin(
        &server,
        &["apply", "-f", "-"],
        &gated_taskrun("tailed", "a1", "seq 1 5", &go, "echo six"),
    )
    .ok();
    wait_for_output(&server, "tailed", "5\n");

    let mut cmd = slothctl(&server);
    cmd.args(["logs", "tailed", "--tail", "2", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start slothctl logs -f");
    let lines = LineReader::new(child.stdout.take().expect("stdout"));
    let first = lines.wait_for(DEADLINE, |l| l == "5");
    assert_eq!(first, ["4", "5"], "the last two lines first");
    std::fs::write(&go, "").expect("write go");
    assert_eq!(lines.next_line(DEADLINE).as_deref(), Some("six"));
    assert_eq!(
        wait_exit(&mut child, DEADLINE),
        Some(0),
        "ends with the TaskRun"
    );
    assert_eq!(lines.next_line(DEADLINE), None, "nothing printed twice");
}

#[test]
fn credential_files_come_from_sloth_variables() {
    let temp = tempfile::tempdir().expect("temp dir");
    let certs = temp.path().join("certs");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let certs_cmd = |args: &[&str]| {
        let mut cmd = Command::new(binary("slothctl"));
        cmd.args(args).env("HOME", temp.path());
        run_to_end(cmd, None, CTL_DEADLINE).ok()
    };
    certs_cmd(&[
        "certs",
        "init",
        "--dir",
        &path(&certs),
        "--hosts",
        "127.0.0.1",
    ]);
    let server = ApiServer::start_with(&[
        "--tls-cert-file",
        &path(&certs.join("server.pem")),
        "--tls-key-file",
        &path(&certs.join("server-key.pem")),
        "--tls-ca-file",
        &path(&certs.join("ca.pem")),
    ]);
    let https = format!("https://{}", server.grpc_address());
    let get_agents = |env: &[(&str, String)]| {
        let mut cmd = Command::new(binary("slothctl"));
        cmd.args(["--server", &https, "get", "agents"])
            .env("HOME", temp.path())
            .env_remove("SLOTH_SERVER")
            .env_remove("SLOTH_CA_FILE")
            .env_remove("SLOTH_CERT_FILE")
            .env_remove("SLOTH_KEY_FILE");
        for (key, value) in env {
            cmd.env(key, value);
        }
        run_to_end(cmd, None, CTL_DEADLINE)
    };
    let ca = ("SLOTH_CA_FILE", path(&certs.join("ca.pem")));
    // Without a client certificate the handshake is refused.
    let refused = get_agents(std::slice::from_ref(&ca));
    assert_eq!(refused.code, 1, "{refused:#?}");
    get_agents(&[
        ca,
        ("SLOTH_CERT_FILE", path(&certs.join("client.pem"))),
        ("SLOTH_KEY_FILE", path(&certs.join("client-key.pem"))),
    ])
    .ok();
}
