//! `sloth-bench` runs each scenario end to end at a tiny size: the harness
//! starts and stops its processes and prints one JSON object as its last
//! stdout line with every field present and sane. Timings are not checked.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sloth_tests::{Etcd, binary, run_to_end};

/// Runs `sloth-bench ARGS` and returns the JSON of its last stdout line.
fn bench(args: &[&str]) -> Value {
    let mut cmd = Command::new(binary("sloth-bench"));
    cmd.args(args).env("RUST_LOG", "warn");
    let run = run_to_end(cmd, None, Duration::from_secs(90)).ok();
    let last = run
        .stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stdout: {run:#?}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {run:#?}"))
}

/// A non-negative finite number.
#[track_caller]
fn number(json: &Value, field: &str) -> f64 {
    let v = json[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing or not a number in {json}"));
    assert!(v.is_finite() && v >= 0.0, "{field} = {v} in {json}");
    v
}

#[track_caller]
fn positive(json: &Value, field: &str) -> f64 {
    let v = number(json, field);
    assert!(v > 0.0, "{field} = {v} in {json}");
    v
}

#[track_caller]
fn check_e2e(json: &Value, taskruns: u64) {
    assert_eq!(json["scenario"], "e2e");
    assert_eq!(json["taskruns"].as_u64(), Some(taskruns), "{json}");
    assert_eq!(json["errors"].as_u64(), Some(0), "{json}");
    positive(json, "throughput_per_s");
    let p50 = positive(json, "p50_ms");
    let p99 = positive(json, "p99_ms");
    assert!(p50 <= p99, "{json}");
    let start = positive(json, "p99_start_ms");
    assert!(
        start <= p99,
        "create->Running after create->Succeeded: {json}"
    );
    positive(json, "seconds");
    assert_eq!(
        json["stages_ms"]["agent_exec"]["n"].as_u64(),
        Some(taskruns),
        "{json}"
    );
    let cpu = &json["cpu_ms_per_taskrun"];
    for role in ["apiserver", "agent", "payloads", "total"] {
        positive(cpu, role);
    }
}

#[test]
fn e2e_embedded() {
    let json = bench(&[
        "e2e",
        "--store",
        "embedded",
        "--agents",
        "1",
        "--taskruns",
        "20",
    ]);
    check_e2e(&json, 20);
    assert_eq!(json["store"], "embedded");
}

#[test]
fn e2e_etcd_at_a_rate() {
    let etcd = Etcd::start();
    let endpoints = etcd.endpoints();
    let json = bench(&[
        "e2e",
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoints,
        "--agents",
        "1",
        "--taskruns",
        "20",
        "--rate",
        "100",
    ]);
    check_e2e(&json, 20);
    assert_eq!(json["store"], "etcd");
}

#[test]
fn run_latency() {
    let json = bench(&["run-latency", "--n", "5"]);
    assert_eq!(json["n"].as_u64(), Some(5), "{json}");
    assert_eq!(json["errors"].as_u64(), Some(0), "{json}");
    let p50 = positive(&json, "p50_ms");
    assert!(p50 <= positive(&json, "p99_ms"), "{json}");
}

#[test]
fn workflow() {
    let json = bench(&["workflow", "--tasks", "6", "--width", "2"]);
    assert_eq!(json["succeeded"], true, "{json}");
    assert_eq!(json["taskruns"].as_u64(), Some(6), "{json}");
    let seconds = positive(&json, "seconds");
    let overhead = number(&json, "overhead_ms_per_task");
    assert!(overhead * 6.0 <= seconds * 1000.0, "{json}");
    positive(&json, "critical_path_ms");
}

#[test]
fn agents() {
    let json = bench(&["agents", "--count", "20", "--duration", "2s"]);
    assert_eq!(json["watch_count"].as_u64(), Some(20), "{json}");
    assert_eq!(json["errors"].as_u64(), Some(0), "{json}");
    let rss = positive(&json, "apiserver_rss_mib");
    assert!(rss < 4096.0, "{json}");
    let cpu = number(&json, "apiserver_cpu_percent");
    assert!(cpu <= 100.0 * 64.0, "{json}");
    positive(&json, "heartbeat_p99_ms");
    // Every agent renewed at least once within the 2 s.
    assert!(json["heartbeats"]["n"].as_u64() >= Some(20), "{json}");
}

#[track_caller]
fn check_store(json: &Value, store: &str) {
    assert_eq!(json["store"], store);
    positive(json, "put_seq_per_s");
    positive(json, "put_conc_per_s");
    positive(json, "watch_p99_ms");
    assert_eq!(json["watch"]["n"].as_u64(), Some(51), "{json}");
}

#[test]
fn store_embedded() {
    let json = bench(&[
        "store",
        "--store",
        "embedded",
        "--ops",
        "200",
        "--watch-ops",
        "50",
    ]);
    check_store(&json, "embedded");
}

#[test]
fn store_etcd() {
    let etcd = Etcd::start();
    let endpoints = etcd.endpoints();
    let json = bench(&[
        "store",
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoints,
        "--ops",
        "200",
        "--watch-ops",
        "50",
    ]);
    check_store(&json, "etcd");
}

#[test]
fn agent_rss() {
    let json = bench(&["agent-rss", "--settle", "500ms"]);
    let rss = positive(&json, "agent_rss_mib");
    assert!(rss < 1024.0, "{json}");
}

#[test]
fn state() {
    let json = bench(&[
        "state",
        "--keys",
        "50",
        "--concurrency",
        "8",
        "--increments",
        "100",
        "--hot",
        "3",
    ]);
    assert_eq!(json["scenario"], "state");
    assert_eq!(json["keys"].as_u64(), Some(50), "{json}");
    for phase in ["set", "increment_spread", "increment_hot_key"] {
        positive(&json[phase], "per_s");
        let p50 = positive(&json[phase], "p50_ms");
        assert!(p50 <= positive(&json[phase], "p99_ms"), "{json}");
    }
    number(&json, "list_all_ms");
}
