//! A payload's stdout and stderr kept apart (issue 21): `slothctl agent run`
//! prints the command's stdout on stdout and its stderr on stderr, red on a
//! terminal unless NO_COLOR; `slothctl logs` still shows the one combined
//! output. And `logs -f` with `--timestamps` or `--since`, dated by the
//! agent's record of each write.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sloth_tests::{Agent, ApiServer, LineReader, ctl, ctl_on_a_tty, slothctl, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// Writes to both streams, with the streams' lines interleaved.
const SCRIPT: &str = "sh -c 'echo out; echo err >&2; echo out2; echo err2 >&2'";

/// The TaskRun `agent run` created, from its `taskrun/NAME created` line.
fn created(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("taskrun/")?.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("no `created` line in {stderr:?}"))
        .to_string()
}

/// `slothctl agent run a1 SCRIPT` under a pseudo-terminal (`script`).
fn on_a_tty(server: &ApiServer, env: &[(&str, &str)]) -> sloth_tests::Run {
    ctl_on_a_tty(server, &format!("agent run a1 \"{SCRIPT}\""), env, DEADLINE)
}

#[test]
fn agent_run_keeps_stdout_and_stderr_apart_and_paints_stderr_red_on_a_tty() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "a1", &[]);

    // Piped: each stream on its own, each in order, no colour.
    let piped = ctl(&server, &["agent", "run", "a1", SCRIPT]).ok();
    assert_eq!(piped.stdout, "out\nout2\n", "{piped:#?}");
    let name = created(&piped.stderr);
    let errors: Vec<&str> = piped
        .stderr
        .lines()
        .filter(|l| !l.starts_with("taskrun/"))
        .collect();
    assert_eq!(errors, ["err", "err2"], "{piped:#?}");
    assert!(!piped.stderr.contains('\x1b'), "{piped:#?}");

    // `logs` is unchanged: the combined output, all on stdout.
    let logs = ctl(&server, &["logs", &name]).ok();
    let mut lines = logs.lines();
    lines.sort();
    assert_eq!(lines, ["err", "err2", "out", "out2"], "{logs:#?}");
    assert_eq!(logs.stderr, "", "{logs:#?}");

    // A terminal (stdout and stderr both on it): stderr's bytes in red.
    let tty = on_a_tty(&server, &[]);
    assert_eq!(tty.code, 0, "{tty:#?}");
    for line in ["err", "err2"] {
        assert!(
            tty.stdout.contains(&format!("\x1b[31m{line}\x1b[0m\r\n")),
            "{line} not red: {tty:#?}"
        );
    }
    for line in ["out", "out2"] {
        assert!(tty.stdout.contains(line), "{tty:#?}");
        assert!(
            !tty.stdout.contains(&format!("\x1b[31m{line}")),
            "{line} painted: {tty:#?}"
        );
    }
    let no_color = on_a_tty(&server, &[("NO_COLOR", "1")]);
    assert_eq!(no_color.code, 0, "{no_color:#?}");
    assert!(no_color.stdout.contains("err2"), "{no_color:#?}");
    assert!(!no_color.stdout.contains('\x1b'), "{no_color:#?}");
}

#[test]
fn lua_print_is_stdout_and_its_error_is_stderr() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "a1", &[]);
    let manifest = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: lua-streams\n\
                    spec:\n  agentName: a1\n  run:\n    lua:\n      script: |\n        \
                    print(\"said\")\n        error(\"broke\")\n";
    sloth_tests::ctl_stdin(&server, &["apply", "-f", "-"], manifest).ok();
    ctl(&server, &["wait", "tr", "lua-streams", "--timeout", "60s"]).code(1);
    // `logs -f` of a finished run prints it all (combined, on stdout) ...
    let logs = ctl(&server, &["logs", "lua-streams"]).ok();
    assert!(logs.stdout.starts_with("said\n"), "{logs:#?}");
    assert!(logs.stdout.contains("broke"), "{logs:#?}");
    // ... and the agent tags the error as stderr.
    let rt = sloth_tests::runtime();
    let _entered = rt.enter();
    let client = sloth_sdk::Client::new(&[server.grpc_url().to_string()]).expect("client");
    let chunks = rt.block_on(async {
        use futures_util::StreamExt;
        let options = sloth_sdk::LogOptions {
            split_streams: true,
            ..sloth_sdk::LogOptions::default()
        };
        let stream = client
            .log_chunks("default", "lua-streams", &options)
            .await
            .expect("logs");
        stream
            .map(|chunk| chunk.expect("chunk"))
            .collect::<Vec<_>>()
            .await
    });
    let text_of = |wanted: sloth_sdk::client::LogStream| -> String {
        chunks
            .iter()
            .filter(|c| c.stream == wanted)
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect()
    };
    assert_eq!(
        text_of(sloth_sdk::client::LogStream::Stdout),
        "said\n",
        "{chunks:?}"
    );
    assert!(
        text_of(sloth_sdk::client::LogStream::Stderr).contains("broke"),
        "{chunks:?}"
    );
    assert_eq!(
        text_of(sloth_sdk::client::LogStream::Combined),
        "",
        "{chunks:?}"
    );
}

/// Unix millis of an RFC 3339 time.
fn millis(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap_or_else(|e| panic!("{time:?} is not RFC 3339: {e}"))
        .timestamp_millis()
}

#[test]
fn logs_follow_dates_lines_as_they_are_written_and_since_filters_them() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "a1", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let manifest = format!(
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: dated\nspec:\n  \
         agentName: a1\n  run:\n    shell: |\n      echo first\n      \
         for i in $(seq 600); do [ -f {} ] && break; sleep 0.1; done\n      echo second\n",
        go.display()
    );
    sloth_tests::ctl_stdin(&server, &["apply", "-f", "-"], &manifest).ok();

    let mut follow = slothctl(&server);
    follow
        .args(["logs", "-f", "--timestamps", "dated"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = follow.spawn().expect("slothctl logs -f");
    let stdout = LineReader::new(child.stdout.take().expect("stdout"));
    let last = |mut seen: Vec<String>| seen.pop().expect("a line");
    let first = last(stdout.wait_for(DEADLINE, |l| l.ends_with(" first")));
    let first_seen = Instant::now();
    // A gap the dates must show, wide enough for a loaded machine.
    const GAP: Duration = Duration::from_secs(3);
    wait_until(GAP * 2, || (first_seen.elapsed() >= GAP).then_some(()));
    std::fs::write(&go, "").expect("write go");
    let second = last(stdout.wait_for(DEADLINE, |l| l.ends_with(" second")));
    let status = wait_until(DEADLINE, || child.try_wait().ok().flatten())
        .expect("logs -f ends with the TaskRun");
    assert!(status.success(), "{status:?}");
    let time = |line: &str| millis(line.split_once(' ').expect("TIME LINE").0);
    let apart = time(&second) - time(&first);
    assert!(
        apart >= GAP.as_millis() as i64 - 500,
        "dated {apart} ms apart: {first:?} {second:?}"
    );

    // --since with -f: the lines of the last D only.
    let recent = ctl(&server, &["logs", "-f", "--since", "1h", "dated"]).ok();
    assert_eq!(recent.stdout, "first\nsecond\n", "{recent:#?}");
    let none = ctl(&server, &["logs", "-f", "--since", "1s", "dated"]);
    let none = wait_until(DEADLINE, || {
        let run = ctl(&server, &["logs", "-f", "--since", "1s", "dated"]);
        (run.code == 0 && run.stdout.is_empty()).then_some(run)
    })
    .unwrap_or_else(|| panic!("old lines are still shown: {none:#?}"));
    assert_eq!(none.stdout, "");
}
