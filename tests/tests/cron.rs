//! CronWorkflows with real processes: an apiserver, controllers (one or
//! two, leader-elected) and an agent. Timing is judged by the scheduled
//! times the Workflows carry in their names (`<cron>-<unix time>`), not by
//! when a loaded machine got round to running them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use sloth_sdk::objects::{LockSpec, WorkflowSpec};
use sloth_sdk::{Api, Client, ListParams};
use sloth_tests::{Agent, ApiServer, Controllers, ctl, ctl_stdin, runtime, wait_until};
use tokio::runtime::Runtime;

const DEADLINE: Duration = Duration::from_secs(60);

fn cron_yaml(name: &str, schedule: &str, extra_spec: &str, command: &str) -> String {
    format!(
        "apiVersion: sloth.dev/v1\nkind: CronWorkflow\nmetadata:\n  name: {name}\nspec:\n  \
         schedule: \"{schedule}\"\n{extra_spec}  workflowSpec:\n    tasks:\n      - name: t\n        \
         run:\n          shell: \"{command}\"\n"
    )
}

/// The Workflows of cron `name` now: name -> object.
fn workflows_of(rt: &Runtime, client: &Client, name: &str) -> BTreeMap<String, Value> {
    let api: Api<WorkflowSpec> = Api::namespaced(client.clone(), "default");
    let params = ListParams {
        label_selector: format!("sloth.dev/cronworkflow={name}"),
        ..ListParams::default()
    };
    rt.block_on(api.list(&params))
        .map(|list| {
            list.items
                .into_iter()
                .map(|wf| {
                    let value = serde_json::to_value(&wf).unwrap_or_default();
                    (wf.metadata.name, value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The scheduled unix time in a Workflow name `<cron>-<unix time>`.
fn scheduled(cron: &str, workflow: &str) -> Option<i64> {
    workflow.strip_prefix(cron)?.strip_prefix('-')?.parse().ok()
}

fn phase(wf: &Value) -> &str {
    wf["status"]["phase"].as_str().unwrap_or("Pending")
}

fn is_final(wf: &Value) -> bool {
    matches!(phase(wf), "Succeeded" | "Failed" | "Cancelled")
}

/// Polls the cron's Workflows until `enough` holds of every scheduled time
/// seen so far (names are never reused, so a set of names survives the
/// history limit's deletions).
fn collect_until(
    rt: &Runtime,
    client: &Client,
    cron: &str,
    seen: &mut BTreeSet<i64>,
    enough: impl Fn(&BTreeSet<i64>) -> bool,
) -> bool {
    wait_until(DEADLINE, || {
        for name in workflows_of(rt, client, cron).keys() {
            if let Some(t) = scheduled(cron, name) {
                seen.insert(t);
            }
        }
        enough(seen).then_some(())
    })
    .is_some()
}

fn setup() -> (ApiServer, Runtime, Client, Agent, Controllers) {
    let server = ApiServer::start();
    let rt = runtime();
    let client = server.client_in(&rt);
    let agent = Agent::start(&server, "w1", &["--capacity", "4"]);
    let controllers = Controllers::start(&server, "c1", &[]);
    (server, rt, client, agent, controllers)
}

/// Three runs whose scheduled times fall within `window` seconds.
fn three_within(times: &BTreeSet<i64>, window: i64) -> bool {
    let t: Vec<i64> = times.iter().copied().collect();
    t.windows(3).any(|w| w[2] - w[0] <= window)
}

#[test]
fn every_2s_runs_three_times_in_11s_keeps_history_and_suspends() {
    let (server, rt, client, _agent, _controllers) = setup();
    let yaml = cron_yaml("tick", "@every 2s", "  successfulHistoryLimit: 2\n", "true");
    ctl_stdin(&server, &["apply", "-f", "-"], &yaml).ok();

    let mut seen = BTreeSet::new();
    assert!(
        collect_until(&rt, &client, "tick", &mut seen, |s| s.len() >= 5),
        "fewer than 5 runs: {seen:?}"
    );
    assert!(
        three_within(&seen, 11),
        "no 3 runs within 11 s of schedule: {seen:?}"
    );
    assert!(
        seen.iter().all(|t| t % 2 == 0),
        "@every 2s fires at even unix seconds: {seen:?}"
    );
    // The history limit: at most 2 succeeded Workflows are kept.
    let kept = wait_until(DEADLINE, || {
        let wfs = workflows_of(&rt, &client, "tick");
        let succeeded = wfs.values().filter(|w| phase(w) == "Succeeded").count();
        (succeeded <= 2
            && wfs
                .values()
                .all(|w| w["metadata"]["labels"]["sloth.dev/cronworkflow"] == "tick"))
        .then_some(wfs)
    });
    assert!(
        kept.is_some(),
        "more than 2 succeeded kept: {:?}",
        workflows_of(&rt, &client, "tick").keys()
    );

    // The columns.
    let table = ctl(&server, &["get", "cronworkflows"]).ok();
    let header: Vec<&str> = table.lines()[0]
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "SCHEDULE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "NEXT",
            "AGE"
        ]
    );
    assert!(table.lines()[1].starts_with("tick "), "{table:#?}");
    assert!(table.lines()[1].contains("@every 2s"), "{table:#?}");
    let status = ctl(&server, &["get", "cwf", "tick", "-o", "json"])
        .ok()
        .json();
    assert!(status["status"]["lastScheduleTime"].is_string(), "{status}");
    assert!(
        status["status"]["lastSuccessfulTime"].is_string(),
        "{status}"
    );

    // Suspend: no run scheduled after the suspension took effect.
    let suspended = cron_yaml(
        "tick",
        "@every 2s",
        "  successfulHistoryLimit: 2\n  suspend: true\n",
        "true",
    );
    ctl_stdin(&server, &["apply", "-f", "-"], &suspended).ok();
    let at = chrono::Utc::now().timestamp();
    let table = ctl(&server, &["get", "cronworkflows", "tick"]).ok();
    assert!(table.lines()[1].contains(" true "), "{table:#?}");
    // A reconcile that read the CronWorkflow before the suspension may
    // still create a run (its time is at most when that reconcile ran,
    // just after `at` on a slow machine); none after.
    let later = wait_until(Duration::from_secs(8), || {
        workflows_of(&rt, &client, "tick")
            .keys()
            .filter_map(|n| scheduled("tick", n))
            .find(|t| *t > at + 3)
    });
    assert_eq!(later, None, "a run was scheduled while suspended");
}

#[test]
fn a_six_field_schedule_fires_on_its_seconds() {
    let (server, rt, client, _agent, _controllers) = setup();
    let yaml = cron_yaml(
        "secs",
        "*/3 * * * * *",
        "  timezone: Europe/Paris\n  successfulHistoryLimit: 10\n",
        "true",
    );
    ctl_stdin(&server, &["apply", "-f", "-"], &yaml).ok();
    let mut seen = BTreeSet::new();
    assert!(
        collect_until(&rt, &client, "secs", &mut seen, |s| s.len() >= 2),
        "fewer than 2 runs: {seen:?}"
    );
    assert!(
        seen.iter().all(|t| t % 3 == 0),
        "*/3 seconds: every scheduled time is a multiple of 3: {seen:?}"
    );
    // Each Workflow says when it was scheduled and who owns it.
    let wfs = workflows_of(&rt, &client, "secs");
    let (name, wf) = wfs.iter().next().expect("a workflow");
    let t = scheduled("secs", name).expect("scheduled");
    let annotated = wf["metadata"]["annotations"]["sloth.dev/scheduled-time"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp());
    assert_eq!(annotated, Some(t), "{wf}");
    assert_eq!(wf["metadata"]["ownerReferences"][0]["kind"], "CronWorkflow");
    assert_eq!(wf["metadata"]["ownerReferences"][0]["name"], "secs");
}

#[test]
fn forbid_never_overlaps_runs() {
    let (server, rt, client, _agent, _controllers) = setup();
    let yaml = cron_yaml(
        "slow",
        "@every 1s",
        "  concurrencyPolicy: Forbid\n  successfulHistoryLimit: 20\n",
        "sleep 2",
    );
    ctl_stdin(&server, &["apply", "-f", "-"], &yaml).ok();
    let mut max_active = 0;
    let finished = wait_until(Duration::from_secs(90), || {
        let wfs = workflows_of(&rt, &client, "slow");
        max_active = max_active.max(wfs.values().filter(|w| !is_final(w)).count());
        let done: Vec<Value> = wfs
            .values()
            .filter(|w| phase(w) == "Succeeded")
            .cloned()
            .collect();
        (done.len() >= 3).then_some(done)
    })
    .expect("3 runs finished");
    assert!(max_active <= 1, "{max_active} runs were active at once");
    let mut spans: Vec<(String, String)> = finished
        .iter()
        .map(|w| {
            (
                w["status"]["startTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                w["status"]["completionTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "runs overlapped: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}

fn holder(rt: &Runtime, client: &Client) -> Option<String> {
    let locks: Api<LockSpec> = Api::namespaced(client.clone(), "sloth-system");
    rt.block_on(locks.get("sloth-controllers"))
        .ok()
        .and_then(|l| l.spec.holder_identity)
}

#[test]
fn a_leader_kill_never_fires_a_time_twice() {
    let server = ApiServer::start();
    let rt = runtime();
    let client = server.client_in(&rt);
    let _agent = Agent::start(&server, "w1", &["--capacity", "4"]);
    let lease = ["--lease-duration", "3s"];
    let mut c1 = Controllers::start(&server, "c1", &lease);
    let mut c2 = Controllers::start(&server, "c2", &lease);
    let first = wait_until(DEADLINE, || holder(&rt, &client)).expect("nobody leads");

    let yaml = cron_yaml("ha", "@every 1s", "  successfulHistoryLimit: 100\n", "true");
    ctl_stdin(&server, &["apply", "-f", "-"], &yaml).ok();
    // Every creation of a Workflow of the cron, by name, as a watch sees it.
    let created: std::sync::Arc<std::sync::Mutex<BTreeMap<String, usize>>> = Default::default();
    let watcher = {
        let created = created.clone();
        let api: Api<WorkflowSpec> = Api::namespaced(client.clone(), "default");
        rt.spawn(async move {
            use futures_util::StreamExt;
            let params = sloth_sdk::WatchParams {
                label_selector: "sloth.dev/cronworkflow=ha".into(),
                ..Default::default()
            };
            let mut events = Box::pin(sloth_sdk::watcher::watch_objects(&api, "default", params));
            while let Some(event) = events.next().await {
                let wfs = match event {
                    Ok(sloth_sdk::watcher::Event::Applied(wf)) => vec![wf],
                    Ok(sloth_sdk::watcher::Event::Restarted(wfs)) => wfs,
                    _ => continue,
                };
                let mut seen = created.lock().expect("lock");
                for wf in wfs {
                    // Each change is an event; a creation is a new uid.
                    let key = format!("{}/{}", wf.metadata.name, wf.metadata.uid);
                    *seen.entry(key).or_default() += 1;
                }
            }
        })
    };
    let mut seen = BTreeSet::new();
    assert!(collect_until(&rt, &client, "ha", &mut seen, |s| s.len() >= 2));
    let (leader, survivor) = if first == "c1" {
        (&mut c1, "c2")
    } else {
        (&mut c2, "c1")
    };
    leader.kill9();
    let before = *seen.iter().max().expect("runs");
    wait_until(DEADLINE, || holder(&rt, &client).filter(|h| h == survivor))
        .expect("the survivor took over");
    assert!(
        collect_until(&rt, &client, "ha", &mut seen, |s| s
            .iter()
            .filter(|t| **t > before)
            .count()
            >= 3),
        "no runs after the failover: {seen:?}"
    );
    watcher.abort();
    // One Workflow per scheduled time, never deleted and created again.
    let created = created.lock().expect("lock").clone();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for key in created.keys() {
        let name = key.split('/').next().unwrap_or_default().to_string();
        *by_name.entry(name).or_default() += 1;
    }
    assert!(
        by_name.values().all(|n| *n == 1),
        "a scheduled time fired twice: {by_name:?}"
    );
    let wfs = workflows_of(&rt, &client, "ha");
    assert_eq!(
        wfs.len(),
        seen.len(),
        "every scheduled time seen has exactly one Workflow"
    );
}

#[test]
fn a_manual_run_and_restarts_keep_the_schedule() {
    let (mut server, rt, client, _agent, mut controllers) = setup();
    // 03:00 every day: never during the test.
    let yaml = cron_yaml("nightly", "0 3 * * *", "", "echo manual");
    ctl_stdin(&server, &["apply", "-f", "-"], &yaml).ok();
    let run = ctl(
        &server,
        &[
            "create",
            "workflow",
            "nightly-now",
            "--from",
            "cronworkflow/nightly",
        ],
    )
    .ok();
    assert_eq!(run.stdout, "workflow/nightly-now created\n");
    let done = wait_until(DEADLINE, || {
        let wf = ctl(&server, &["get", "wf", "nightly-now", "-o", "json"]).json();
        (phase(&wf) == "Succeeded").then_some(wf)
    })
    .expect("the manual run succeeded");
    assert_eq!(
        done["metadata"]["labels"]["sloth.dev/cronworkflow"],
        "nightly"
    );
    assert_eq!(
        done["metadata"]["ownerReferences"][0]["kind"],
        "CronWorkflow"
    );
    let status = wait_until(DEADLINE, || {
        let cron = ctl(&server, &["get", "cwf", "nightly", "-o", "json"]).json();
        cron["status"]["lastSuccessfulTime"]
            .is_string()
            .then_some(cron)
    })
    .expect("lastSuccessfulTime recorded");
    assert!(status["status"]["lastScheduleTime"].is_null(), "{status}");

    // Bad --from and unknown crons.
    let run = ctl(
        &server,
        &["create", "workflow", "x", "--from", "workflow/nightly"],
    )
    .code(2);
    assert!(run.stderr.contains("cronworkflow/NAME"), "{run:#?}");
    let run = ctl(
        &server,
        &["create", "workflow", "x", "--from", "cronworkflow/nope"],
    )
    .code(1);
    assert!(run.stderr.contains("\"nope\" not found"), "{run:#?}");

    // A second cron; then everything restarts and the schedule goes on
    // from the stored status, never repeating a time.
    let yaml = cron_yaml(
        "tock",
        "@every 2s",
        "  successfulHistoryLimit: 50\n",
        "true",
    );
    ctl_stdin(&server, &["apply", "-f", "-"], &yaml).ok();
    let mut seen = BTreeSet::new();
    assert!(collect_until(&rt, &client, "tock", &mut seen, |s| !s.is_empty()));
    controllers.kill9();
    server.restart_same_ports();
    let last = *seen.iter().max().expect("a run");
    controllers.start_again();
    assert!(
        collect_until(&rt, &client, "tock", &mut seen, |s| s
            .iter()
            .filter(|t| **t > last)
            .count()
            >= 2),
        "no runs after the restart: {seen:?}"
    );
    let cron = ctl(&server, &["get", "cwf", "tock", "-o", "json"])
        .ok()
        .json();
    let last_schedule = cron["status"]["lastScheduleTime"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp())
        .expect("lastScheduleTime");
    assert!(last_schedule > last, "{cron}");
    assert!(
        ctl(&server, &["get", "wf", "nightly-now"]).code == 0,
        "the manual run survived the restart"
    );

    // Deleting a CronWorkflow deletes its Workflows (owner references).
    ctl(&server, &["delete", "cronworkflow", "nightly"]).ok();
    let gone = wait_until(DEADLINE, || {
        (ctl(&server, &["get", "wf", "nightly-now"]).code == 1).then_some(())
    });
    assert!(
        gone.is_some(),
        "the workflow of a deleted cronworkflow remained"
    );
    assert!(
        !workflows_of(&rt, &client, "tock").is_empty(),
        "another cron's runs stay"
    );
}

#[test]
fn bad_schedules_and_lua_crons() {
    let server = ApiServer::start();
    for (spec, field, word) in [
        ("", "spec.schedule", "61"),
        (
            "  timezone: Mars/Olympus\n",
            "spec.timezone",
            "Mars/Olympus",
        ),
    ] {
        let schedule = if field == "spec.schedule" {
            "61 * * * *"
        } else {
            "@hourly"
        };
        let yaml = cron_yaml("bad", schedule, spec, "true");
        let run = ctl_stdin(&server, &["apply", "-f", "-"], &yaml).code(2);
        assert!(
            run.stderr.contains(field) && run.stderr.contains(word),
            "{run:#?}"
        );
    }
    let yaml = cron_yaml("bad", "@hourly", "  concurrencyPolicy: Sometimes\n", "true");
    let run = ctl_stdin(&server, &["apply", "-f", "-"], &yaml).code(2);
    assert!(run.stderr.contains("spec.concurrencyPolicy"), "{run:#?}");
    ctl(&server, &["get", "cwf", "bad"]).code(1);

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("nightly.lua");
    std::fs::write(
        &file,
        r#"
local build = task("build"):command("echo build"):build()
workflow.define("nightly", { schedule = "0 3 * * *", timezone = "UTC",
  concurrency_policy = "Forbid", tasks = { build } })
"#,
    )
    .expect("write");
    let path = file.to_str().expect("path");
    let run = ctl(&server, &["apply", "-f", path]).ok();
    assert!(run.stdout.contains("nightly"), "{run:#?}");
    let cron = ctl(&server, &["get", "cwf", "nightly", "-o", "json"])
        .ok()
        .json();
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cron["spec"]["workflowSpec"]["tasks"][0]["name"], "build");
    std::fs::write(
        &file,
        r#"workflow.define("x", { schedule = "every day", tasks = { task("a"):command("true"):build() } })"#,
    )
    .expect("write");
    let run = ctl(&server, &["apply", "-f", path]).code(2);
    assert!(run.stderr.contains("spec.schedule"), "{run:#?}");
}

#[test]
fn replace_cancels_the_active_run_for_the_next() {
    let (server, rt, client, _agent, _controllers) = setup();
    let yaml = cron_yaml(
        "redo",
        "@every 2s",
        "  concurrencyPolicy: Replace\n  failedHistoryLimit: 10\n",
        "sleep 60",
    );
    ctl_stdin(&server, &["apply", "-f", "-"], &yaml).ok();
    // Two runs replaced, each by the next scheduled one.
    let wfs = wait_until(DEADLINE, || {
        let wfs = workflows_of(&rt, &client, "redo");
        let cancelled = wfs.values().filter(|w| phase(w) == "Cancelled").count();
        (cancelled >= 2).then_some(wfs)
    })
    .expect("runs were replaced");
    let newest = wfs
        .keys()
        .max_by_key(|n| scheduled("redo", n))
        .expect("runs");
    for (name, wf) in &wfs {
        if name != newest && !is_final(wf) {
            // Replaced just now: its cancellation is under way.
            assert_eq!(
                wf["spec"]["state"], "Cancelled",
                "{name} not replaced: {wf}"
            );
        }
    }
    assert!(
        wfs.values().all(|w| phase(w) != "Succeeded"),
        "a replaced run finished: {wfs:?}"
    );
}
