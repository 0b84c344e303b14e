//! The real `slothctl` against the real `sloth-apiserver` (no controllers,
//! so nothing moves on its own): `cancel workflow`, `get events`, the
//! workflow and lock columns, `describe` with its Tasks and Events tables,
//! and selecting a workflow's TaskRuns by label.

use chrono::{SecondsFormat, TimeDelta, Utc};
use sloth_tests::{ApiServer, ctl, ctl_stdin};

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn ago(seconds: i64) -> String {
    (Utc::now() - TimeDelta::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn cancel_workflow_sets_the_state_once_and_refuses_other_kinds() {
    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("workflow.yaml")]).ok();

    let run = ctl(&server, &["cancel", "workflow", "build"]).ok();
    assert_eq!(run.stdout, "workflow.sloth.dev/build cancelled\n");
    let json = ctl(&server, &["get", "wf", "build", "-o", "json"])
        .ok()
        .json();
    assert_eq!(json["spec"]["state"], "Cancelled", "{json}");
    for alias in ["wf/build", "workflows"] {
        let args: Vec<&str> = if alias.contains('/') {
            vec!["cancel", alias]
        } else {
            vec!["cancel", alias, "build"]
        };
        let run = ctl(&server, &args).ok();
        assert_eq!(run.stdout, "workflow.sloth.dev/build already cancelled\n");
    }

    let run = ctl(&server, &["cancel", "wf", "missing"]).code(1);
    assert!(run.stderr.contains(r#""missing""#), "{run:#?}");
    let run = ctl(&server, &["cancel", "wf", "build", "-n", "other"]).code(1);
    assert!(run.stderr.contains("not found"), "{run:#?}");
    let run = ctl(&server, &["cancel", "taskrun", "x"]).code(2);
    assert!(run.stderr.contains("TaskRun"), "{run:#?}");
    assert_eq!(run.stdout, "");
    ctl(&server, &["cancel", "nope", "x"]).code(2);
}

#[test]
fn workflow_columns_events_and_describe_tables() {
    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("workflow.yaml")]).ok();

    let table = ctl(&server, &["get", "workflows"]).ok();
    assert_eq!(
        words(table.lines()[0]),
        ["NAME", "PHASE", "PROGRESS", "AGE", "DURATION"]
    );
    let row = words(table.lines()[1]);
    assert_eq!(
        [row[0], row[1], row[2], row[4]],
        ["build", "Pending", "0/2", "<none>"]
    );

    let events = format!(
        "apiVersion: sloth.dev/v1\n\
         kind: Event\n\
         metadata: {{name: build.0000000000000001}}\n\
         spec:\n\
         \x20 involvedObject: {{kind: Workflow, name: build, namespace: default}}\n\
         \x20 reason: TaskFailed\n\
         \x20 message: task test failed\n\
         \x20 type: Warning\n\
         \x20 count: 3\n\
         \x20 source: workflow-controller\n\
         \x20 firstTimestamp: {first}\n\
         \x20 lastTimestamp: {last}\n\
         ---\n\
         apiVersion: sloth.dev/v1\n\
         kind: Event\n\
         metadata: {{name: build.0000000000000002}}\n\
         spec:\n\
         \x20 involvedObject: {{kind: Workflow, name: build}}\n\
         \x20 reason: Started\n\
         \x20 message: workflow started\n\
         \x20 source: workflow-controller\n\
         \x20 lastTimestamp: {older}\n\
         ---\n\
         apiVersion: sloth.dev/v1\n\
         kind: Event\n\
         metadata: {{name: other.0000000000000003}}\n\
         spec:\n\
         \x20 involvedObject: {{kind: TaskRun, name: other}}\n\
         \x20 reason: Scheduled\n\
         \x20 message: bound to a1\n",
        first = ago(600),
        last = ago(30),
        older = ago(120),
    );
    ctl_stdin(&server, &["apply", "-f", "-"], &events).ok();

    let table = ctl(&server, &["get", "events"]).ok();
    let lines = table.lines();
    assert_eq!(
        words(lines[0]),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    // Oldest first: the TaskRun event was created just now, so it is last.
    assert_eq!(lines.len(), 4, "{table:#?}");
    assert_eq!(
        words(lines[1])[1..],
        ["Normal", "Started", "workflow/build", "workflow", "started"]
    );
    assert_eq!(
        words(lines[2])[1..],
        [
            "Warning",
            "TaskFailed",
            "workflow/build",
            "task",
            "test",
            "failed"
        ]
    );
    assert!(lines[3].contains("taskrun/other"), "{table:#?}");
    let names = ctl(&server, &["get", "ev", "-o", "name"]).ok();
    assert!(
        names.stdout.contains("event/build.0000000000000001\n"),
        "{names:#?}"
    );

    let describe = ctl(&server, &["describe", "workflow", "build"]).ok();
    let text = &describe.stdout;
    let tasks = text.find("\nTasks:\n").expect("Tasks section");
    let events = text.find("\nEvents:\n").expect("Events section");
    assert!(tasks < events, "{text}");
    let task_lines: Vec<Vec<&str>> = text[tasks..events].lines().skip(2).map(words).collect();
    assert_eq!(
        task_lines,
        [
            ["NAME", "PHASE", "ATTEMPT", "TASKRUN", "REASON"],
            ["fetch", "Pending", "0", "<none>", "<none>"],
            ["test", "Pending", "0", "<none>", "<none>"],
        ]
    );
    let event_lines: Vec<&str> = text[events..].lines().skip(2).collect();
    assert_eq!(event_lines.len(), 3, "{text}");
    assert_eq!(
        words(event_lines[0]),
        ["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]
    );
    assert!(event_lines[1].contains("Started"), "{text}");
    assert!(
        event_lines[2].contains("TaskFailed") && event_lines[2].contains("(x3 over 10m)"),
        "{text}"
    );
    assert!(
        !text.contains("Scheduled"),
        "another object's event: {text}"
    );

    // A TaskRun with no events.
    ctl(&server, &["apply", "-f", &fixture("taskruns.yaml")]).ok();
    let describe = ctl(&server, &["describe", "tr", "hello"]).ok();
    assert!(
        describe.stdout.ends_with("\nEvents:            <none>\n"),
        "{describe:#?}"
    );
}

#[test]
fn lock_columns_show_holder_and_time_left() {
    let server = ApiServer::start();
    let locks = format!(
        "apiVersion: sloth.dev/v1\n\
         kind: Lock\n\
         metadata: {{name: held}}\n\
         spec: {{holderIdentity: ctl-1, leaseDurationSeconds: 3600, renewTime: {renewed}}}\n\
         ---\n\
         apiVersion: sloth.dev/v1\n\
         kind: Lock\n\
         metadata: {{name: lapsed}}\n\
         spec: {{holderIdentity: ctl-2, leaseDurationSeconds: 15, renewTime: {lapsed}}}\n\
         ---\n\
         apiVersion: sloth.dev/v1\n\
         kind: Lock\n\
         metadata: {{name: free}}\n\
         spec: {{leaseDurationSeconds: 15}}\n",
        renewed = ago(0),
        lapsed = ago(600),
    );
    ctl_stdin(&server, &["apply", "-f", "-"], &locks).ok();
    let table = ctl(&server, &["get", "locks"]).ok();
    let rows: Vec<Vec<&str>> = table.lines().into_iter().map(words).collect();
    assert_eq!(rows[0], ["NAME", "HOLDER", "EXPIRES", "AGE"]);
    assert_eq!(rows[1][..3], ["free", "<none>", "<none>"]);
    assert_eq!(rows[2][0], "held");
    assert!(
        ["59m", "60m"].contains(&rows[2][2]),
        "time left: {table:#?}"
    );
    assert_eq!(rows[3][..3], ["lapsed", "ctl-2", "expired"]);
}

#[test]
fn a_workflows_taskruns_are_selected_by_label() {
    let server = ApiServer::start();
    let taskruns = "apiVersion: sloth.dev/v1\n\
         kind: TaskRun\n\
         metadata: {name: build-fetch-1, labels: {sloth.dev/workflow: build}}\n\
         spec: {run: {shell: 'true'}}\n\
         ---\n\
         apiVersion: sloth.dev/v1\n\
         kind: TaskRun\n\
         metadata: {name: deploy-push-1, labels: {sloth.dev/workflow: deploy}}\n\
         spec: {run: {shell: 'true'}}\n";
    ctl_stdin(&server, &["apply", "-f", "-"], taskruns).ok();
    let run = ctl(
        &server,
        &[
            "get",
            "taskruns",
            "-l",
            "sloth.dev/workflow=build",
            "-o",
            "name",
        ],
    )
    .ok();
    assert_eq!(run.stdout, "taskrun/build-fetch-1\n");
}

/// A client and a reference to the Workflow `build` of the fixture, applied.
async fn applied_workflow(
    server: &ApiServer,
) -> (sloth_sdk::Client, sloth_sdk::objects::ObjectReference) {
    use sloth_sdk::objects::{ObjectReference, WorkflowSpec};
    let client = server.client();
    let workflow = sloth_sdk::Api::<WorkflowSpec>::namespaced(client.clone(), "default")
        .get("build")
        .await
        .expect("workflow");
    (client, ObjectReference::from_obj(&workflow))
}

#[test]
fn recorded_events_aggregate_and_show_in_describe() {
    use sloth_sdk::Api;
    use sloth_sdk::events::{Recorder, event_name};
    use sloth_sdk::objects::{EventSpec, EventType};

    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("workflow.yaml")]).ok();
    let rt = sloth_tests::runtime();
    let (reference, event) = rt.block_on(async {
        let (client, reference) = applied_workflow(&server).await;
        let recorder = Recorder::new(client.clone(), "test-recorder");
        for _ in 0..3 {
            recorder
                .record(
                    &reference,
                    EventType::Warning,
                    "TaskFailed",
                    "task test failed",
                )
                .await;
        }
        recorder
            .record(&reference, EventType::Normal, "Started", "workflow started")
            .await;
        // Invalid (lowercase reason): logged, not returned, nothing written.
        recorder
            .record(&reference, EventType::Normal, "bad reason", "x")
            .await;
        let name = event_name(&reference, "TaskFailed", "task test failed");
        let event = Api::<EventSpec>::namespaced(client, "default")
            .get(&name)
            .await
            .expect("event");
        (reference, event)
    });
    assert_eq!(reference.kind, "Workflow");
    assert_eq!(event.spec.count, 3);
    assert_eq!(event.spec.type_, EventType::Warning);
    assert_eq!(event.spec.source, "test-recorder");
    assert_eq!(event.spec.involved_object, reference);
    assert!(event.spec.first_timestamp <= event.spec.last_timestamp);

    let names = ctl(&server, &["get", "events", "-o", "name"]).ok();
    assert_eq!(names.lines().len(), 2, "{names:#?}");
    let describe = ctl(&server, &["describe", "wf", "build"]).ok();
    assert!(
        describe.stdout.contains("(x3 over ") && describe.stdout.contains("test-recorder"),
        "{describe:#?}"
    );
}

/// Events recorded in the background (as the workflow controller does, so
/// that its reconciles do not wait for them) are all written, also when
/// more are queued than are written at once.
#[test]
fn events_recorded_in_the_background_are_all_written() {
    use sloth_sdk::events::Recorder;
    use sloth_sdk::objects::{EventSpec, EventType};
    use sloth_sdk::{Api, ListParams};

    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("workflow.yaml")]).ok();
    let rt = sloth_tests::runtime();
    let written = rt.block_on(async {
        let (client, reference) = applied_workflow(&server).await;
        let recorder = Recorder::new(client.clone(), "background-test");
        for i in 0..40 {
            recorder
                .record_in_background(
                    &reference,
                    EventType::Normal,
                    "TaskSucceeded",
                    &format!("task t{i} succeeded"),
                )
                .await;
        }
        let events = Api::<EventSpec>::namespaced(client, "default");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let count = events
                .list(&ListParams::default())
                .await
                .map(|l| l.items.len())
                .unwrap_or(0);
            if count >= 40 || tokio::time::Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    assert_eq!(written, 40);
}
