//! Observability of the real binaries: `--log-format json`, no ANSI codes
//! in redirected logs, `SLOTH_*` variables in place of flags, and the
//! `/metrics` of the apiserver, sloth-controllers and sloth-agent
//! (prometheus-client: build, process, controller and agent metrics).

use std::process::Command;
use std::time::Duration;

use sloth_tests::{
    Agent, ApiServer, Controllers, binary, ctl, http_get, spawn_announcing, wait_exit, wait_until,
};

const DEADLINE: Duration = Duration::from_secs(60);

/// The value of an unlabelled sample, or of the sample with exactly
/// these labels (`name{labels}`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `http://ADDR/metrics` as the process logged it.
fn metrics_url(log: &str) -> Option<String> {
    let at = log.find("serving metrics on http://")? + "serving metrics on ".len();
    let url = log[at..].split_whitespace().next()?;
    Some(url.trim_end_matches("/metrics").to_string())
}

#[test]
fn every_flag_comes_from_sloth_variables_and_json_logs_are_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("apiserver.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    // No flag at all: listen addresses, data dir and log format from the
    // environment.
    let (mut child, out) = spawn_announcing(
        Command::new(binary("sloth-apiserver"))
            .env("SLOTH_LISTEN", "127.0.0.1:0")
            .env("SLOTH_HTTP_LISTEN", "127.0.0.1:0")
            .env("SLOTH_DATA_DIR", dir.path().join("data"))
            .env("SLOTH_LOG_FORMAT", "json"),
        log,
    );
    let line = out.next_line(DEADLINE).expect("listening line");
    assert!(line.contains("grpc=127.0.0.1:"), "{line}");
    assert!(
        dir.path().join("data").join("sloth.redb").is_file(),
        "SLOTH_DATA_DIR was not used"
    );
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .expect("http=")
        .to_string();
    assert_eq!(http_get(&format!("http://{http}"), "/healthz").0, 200);
    sloth_tests::send_signal(child.id(), "TERM");
    assert_eq!(wait_exit(&mut child, DEADLINE), Some(0));

    let text = std::fs::read_to_string(&log_path).expect("log");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "too few log lines:\n{text}");
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nlog:\n{text}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["fields"].is_object(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"message\":\"serving\"")),
        "{text}"
    );
}

#[test]
fn bad_log_format_is_refused_naming_the_flag() {
    let out = Command::new(binary("sloth-controllers"))
        .args(["--log-format", "xml"])
        .output()
        .expect("run sloth-controllers");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'xml' for '--log-format"),
        "{stderr}"
    );
}

#[test]
fn redirected_logs_carry_no_ansi_codes() {
    // The harness sends stderr to a file and sets no NO_COLOR for the
    // apiserver and agent: plain text all the same.
    let mut server = ApiServer::start_with(&["--controllers"]);
    let mut agent = Agent::start(&server, "a1", &[]);
    assert!(agent.stop() && server.stop());
    for (who, log) in [("apiserver", server.log()), ("agent", agent.log())] {
        assert!(log.contains("INFO"), "{who} log:\n{log}");
        assert!(!log.contains('\u{1b}'), "{who} log has ANSI codes:\n{log}");
    }
}

#[test]
fn metrics_of_apiserver_controllers_and_agent() {
    let server = ApiServer::start();
    let controllers = Controllers::start(&server, "c1", &["--metrics-address", "127.0.0.1:0"]);
    let agent = Agent::start(
        &server,
        "a1",
        &["--metrics-address", "127.0.0.1:0", "--labels", "pool=obs"],
    );
    let controllers_url = wait_until(DEADLINE, || metrics_url(&controllers.log()))
        .unwrap_or_else(|| panic!("no metrics address logged:\n{}", controllers.log()));
    let agent_url = wait_until(DEADLINE, || metrics_url(&agent.log()))
        .unwrap_or_else(|| panic!("no metrics address logged:\n{}", agent.log()));

    // Scheduled (-l), so that the scheduler binds them.
    ctl(&server, &["run", "-l", "pool=obs", "--", "true"]).ok();
    ctl(
        &server,
        &["run", "-l", "pool=obs", "--", "sh", "-c", "exit 3"],
    )
    .code(3);

    // The apiserver: build and process metrics, one watch gauge.
    let (status, text) = http_get(server.http_url(), "/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains("sloth_build_info{component=\"apiserver\",version=\""),
        "{text}"
    );
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(sample(&text, name).is_some(), "{name} missing:\n{text}");
    }
    assert!(!text.contains("sloth_client_watches"), "{text}");
    assert!(sample(&text, "sloth_apiserver_watches").is_some(), "{text}");

    // The controllers: the scheduler bound both runs.
    let text = wait_until(DEADLINE, || {
        let (_, text) = http_get(&controllers_url, "/metrics");
        (sample(&text, "sloth_scheduler_binds_total") == Some(2.0)).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "binds not counted:\n{}",
            http_get(&controllers_url, "/metrics").1
        )
    });
    assert!(
        text.contains("sloth_build_info{component=\"controllers\""),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sloth_scheduler_latency_seconds_count"),
        Some(2.0)
    );
    assert!(
        sample(
            &text,
            "sloth_controller_reconcile_duration_seconds_count{controller=\"scheduler\"}"
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    for series in [
        "sloth_controller_queue_depth{controller=\"scheduler\"}",
        "sloth_controller_reconcile_errors_total{controller=\"workflow\"}",
    ] {
        assert!(sample(&text, series).is_some(), "{series} missing:\n{text}");
    }

    // The agent: two runs started, one failed, none running; renewals timed.
    let text = wait_until(DEADLINE, || {
        let (_, text) = http_get(&agent_url, "/metrics");
        (sample(
            &text,
            "sloth_agent_heartbeat_renewal_duration_seconds_count",
        )
        .is_some_and(|n| n >= 1.0))
        .then_some(text)
    })
    .unwrap_or_else(|| panic!("no renewal timed:\n{}", http_get(&agent_url, "/metrics").1));
    assert!(
        text.contains("sloth_build_info{component=\"agent\""),
        "{text}"
    );
    for (series, want) in [
        ("sloth_agent_taskruns_started_total", 2.0),
        ("sloth_agent_taskruns_failed_total", 1.0),
        ("sloth_agent_taskruns_running", 0.0),
        (
            "sloth_agent_payload_duration_seconds_count{phase=\"Succeeded\"}",
            1.0,
        ),
        (
            "sloth_agent_payload_duration_seconds_count{phase=\"Failed\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }
}
