//! The real `slothctl` against the real `sloth-apiserver`: apply, get (every
//! output form, selectors, watch), describe, delete, the exit codes of the
//! contract (0 ok, 1 server said no, 2 invalid input and nothing sent, 3 no
//! server), and objects surviving a restart.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sloth_tests::{
    AGENT_COLUMNS, ApiServer, LineReader, Run, ctl, ctl_stdin, run_to_end, slothctl, slothctl_at,
};

/// How long one slothctl run or one awaited line may take.
const DEADLINE: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a prepared slothctl to completion within the deadline.
fn finish(cmd: Command, input: Option<&str>) -> Run {
    run_to_end(cmd, input, DEADLINE)
}

/// A `get -w` running in the background; killed when dropped.
struct Watch {
    child: Child,
    lines: LineReader,
}

impl Watch {
    fn start(server: &ApiServer, args: &[&str]) -> Self {
        let mut child = slothctl(server)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slothctl get -w");
        let lines = LineReader::new(child.stdout.take().expect("stdout"));
        Self { child, lines }
    }

    /// Lines up to and including the first that contains every word.
    fn wait_for(&self, words: &[&str]) -> Vec<String> {
        self.lines
            .wait_for(DEADLINE, |line| words.iter().all(|w| line.contains(w)))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first column of every table row after the header.
fn names_in_table(run: &Run) -> Vec<String> {
    run.lines()
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn version_prints_the_package_version() {
    let run = finish(
        {
            let mut cmd = slothctl_at("http://127.0.0.1:9");
            cmd.args(["version", "--client"]);
            cmd
        },
        None,
    )
    .ok();
    assert_eq!(
        run.stdout,
        format!("Client Version: {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn apply_creates_then_reports_unchanged_and_configured() {
    let server = ApiServer::start();
    let file = fixture("taskruns.yaml");
    let run = ctl(&server, &["apply", "-f", &file]).ok();
    assert_eq!(
        run.lines(),
        [
            "taskrun.sloth.dev/hello created",
            "taskrun.sloth.dev/world created",
            "taskrun.sloth.dev/other created",
        ]
    );
    let run = ctl(&server, &["apply", "-f", &file]).ok();
    assert_eq!(
        run.lines(),
        [
            "taskrun.sloth.dev/hello unchanged",
            "taskrun.sloth.dev/world unchanged",
            "taskrun.sloth.dev/other unchanged",
        ]
    );
    let uid_before = ctl(&server, &["get", "tr", "hello", "-o", "json"])
        .ok()
        .json()["metadata"]["uid"]
        .clone();

    // A changed spec and a changed label are both "configured".
    let text = std::fs::read_to_string(&file)
        .expect("fixture")
        .replace("echo hello", "echo hello again")
        .replace(
            "  name: other\n",
            "  name: other\n  labels:\n    tier: misc\n",
        );
    let run = ctl_stdin(&server, &["apply", "-f", "-"], &text).ok();
    assert_eq!(
        run.lines(),
        [
            "taskrun.sloth.dev/hello configured",
            "taskrun.sloth.dev/world unchanged",
            "taskrun.sloth.dev/other configured",
        ]
    );
    let hello = ctl(&server, &["get", "tr", "hello", "-o", "json"])
        .ok()
        .json();
    assert_eq!(hello["spec"]["run"]["shell"], "echo hello again");
    assert_eq!(hello["metadata"]["generation"], 2);
    assert_eq!(
        hello["metadata"]["uid"], uid_before,
        "an update keeps the object"
    );
}

#[test]
fn apply_reads_directories_in_name_order_and_generates_names() {
    let server = ApiServer::start();
    let run = ctl(&server, &["apply", "-f", &fixture("apply-dir")]).ok();
    assert_eq!(
        run.lines(),
        [
            "agent.sloth.dev/builder-1 created",
            "lock.sloth.dev/deploy created"
        ]
    );
    let run = ctl(&server, &["get", "agents"]).ok();
    assert_eq!(run.header(), AGENT_COLUMNS);
    let row: Vec<_> = run.lines()[1].split_whitespace().collect();
    assert_eq!(
        row[..5],
        [
            "builder-1",
            "Unknown",
            "127.0.0.1:50051",
            "role=build",
            "0/4"
        ]
    );
    let run = ctl(&server, &["get", "locks"]).ok();
    let row: Vec<_> = run.lines()[1].split_whitespace().collect();
    assert_eq!(row[..3], ["deploy", "ci", "<unknown>"]);

    let adhoc = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  generateName: adhoc-\nspec:\n  run:\n    shell: date\n";
    for _ in 0..2 {
        let run = ctl_stdin(&server, &["apply", "-f", "-"], adhoc).ok();
        let line = run.stdout.trim();
        assert!(
            line.starts_with("taskrun.sloth.dev/adhoc-") && line.ends_with(" created"),
            "{run:#?}"
        );
    }
    let run = ctl(&server, &["get", "tr", "-o", "name"]).ok();
    assert_eq!(
        run.lines().len(),
        2,
        "generateName always creates: {run:#?}"
    );
}

#[test]
fn get_prints_tables_yaml_json_names_and_selects_by_label() {
    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("taskruns.yaml")]).ok();
    ctl(
        &server,
        &["apply", "-n", "team", "-f", &fixture("workflow.yaml")],
    )
    .ok();

    let table = ctl(&server, &["get", "taskruns"]).ok();
    let header: Vec<_> = table.lines()[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "AGENT", "EXIT", "AGE"]);
    assert_eq!(names_in_table(&table), ["hello", "other", "world"]);
    let row: Vec<_> = table.lines()[1].split_whitespace().collect();
    assert_eq!(row[..4], ["hello", "Pending", "<none>", "<none>"]);
    for alias in ["tr", "taskrun", "TaskRun"] {
        let again = ctl(&server, &["get", alias]).ok();
        assert_eq!(names_in_table(&again), names_in_table(&table), "{alias}");
    }
    let wide = ctl(&server, &["get", "tr", "-o", "wide"]).ok();
    assert!(
        wide.lines()[0].contains("AGE   REASON   DURATION   TASK"),
        "{wide:#?}"
    );

    let yaml = ctl(&server, &["get", "tr", "hello", "-o", "yaml"]).ok();
    assert!(
        yaml.stdout
            .starts_with("apiVersion: sloth.dev/v1\nkind: TaskRun\n"),
        "{yaml:#?}"
    );
    assert!(yaml.stdout.contains("  name: hello\n"), "{yaml:#?}");
    assert!(yaml.stdout.contains("shell: echo hello\n"), "{yaml:#?}");
    let yaml_list = ctl(&server, &["get", "tr", "-o", "yaml"]).ok();
    assert!(
        yaml_list.stdout.starts_with("apiVersion: v1\n"),
        "{yaml_list:#?}"
    );
    assert!(yaml_list.stdout.contains("kind: List\n"), "{yaml_list:#?}");

    let one = ctl(&server, &["get", "tr", "hello", "-o", "json"])
        .ok()
        .json();
    assert_eq!(one["kind"], "TaskRun");
    assert_eq!(one["metadata"]["namespace"], "default");
    assert!(
        !one["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    let list = ctl(&server, &["get", "tr", "-o", "json", "-l", "app=cli-test"])
        .ok()
        .json();
    assert_eq!(list["kind"], "List");
    let names: Vec<_> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["hello", "world"]);

    let run = ctl(&server, &["get", "tr", "-o", "name", "-l", "app!=cli-test"]).ok();
    assert_eq!(run.stdout, "taskrun/other\n");
    let run = ctl(
        &server,
        &[
            "get",
            "tr",
            "--field-selector",
            "metadata.name=world",
            "-o",
            "name",
        ],
    )
    .ok();
    assert_eq!(run.stdout, "taskrun/world\n");

    // Namespaces: -n, and -A with a NAMESPACE column.
    let run = ctl(&server, &["get", "wf"]).ok();
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.trim(),
        "No resources found in default namespace."
    );
    let run = ctl(&server, &["get", "wf", "-n", "team"]).ok();
    let row: Vec<_> = run.lines()[1].split_whitespace().collect();
    assert_eq!(row[..3], ["build", "Pending", "0/2"]);
    let run = ctl(&server, &["get", "wf", "-A"]).ok();
    assert!(run.lines()[0].starts_with("NAMESPACE   NAME"), "{run:#?}");
    assert!(run.lines()[1].starts_with("team        build"), "{run:#?}");
    let run = ctl(&server, &["get", "tr", "-A", "-o", "name"]).ok();
    assert_eq!(run.lines().len(), 3);
}

#[test]
fn describe_shows_metadata_spec_status_and_conditions() {
    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("workflow.yaml")]).ok();
    let run = ctl(&server, &["describe", "wf", "build"]).ok();
    let labels: Vec<_> = run
        .lines()
        .iter()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(
        labels,
        [
            "Name",
            "Namespace",
            "Labels",
            "Annotations",
            "UID",
            "Resource Version",
            "Generation",
            "Created",
            "Spec",
            "Status",
            "Conditions",
            "Tasks",
            "Events"
        ]
    );
    assert!(
        run.stdout.contains("Labels:            app=cli-test\n"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("\n  - dependsOn:\n    - fetch\n"),
        "{run:#?}"
    );
    let run = ctl(&server, &["describe", "wf", "nope"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr.trim(),
        r#"Error from server (NotFound): workflows "nope" not found"#
    );
}

#[test]
fn get_of_a_missing_object_exits_1() {
    let server = ApiServer::start();
    let run = ctl(&server, &["get", "tr", "x"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.trim(),
        r#"Error from server (NotFound): taskruns "x" not found"#
    );
}

#[test]
fn delete_by_name_and_by_file() {
    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("taskruns.yaml")]).ok();
    ctl(&server, &["apply", "-f", &fixture("workflow.yaml")]).ok();

    let run = ctl(&server, &["delete", "tr", "hello"]).ok();
    assert_eq!(run.stdout, "taskrun.sloth.dev/hello deleted\n");
    let run = ctl(&server, &["delete", "tr", "hello"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr.trim(),
        r#"Error from server (NotFound): taskruns "hello" not found"#
    );
    ctl(&server, &["delete", "tr", "hello", "--ignore-not-found"]).ok();

    let run = ctl(&server, &["delete", "-f", &fixture("workflow.yaml")]).ok();
    assert_eq!(run.stdout, "workflow.sloth.dev/build deleted\n");
    let run = ctl(&server, &["delete", "tr", "-l", "app=cli-test"]).ok();
    assert_eq!(run.stdout, "taskrun.sloth.dev/world deleted\n");

    // The file names one object that is gone: the rest is deleted, exit 1.
    let run = ctl(&server, &["delete", "-f", &fixture("taskruns.yaml")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "taskrun.sloth.dev/other deleted\n");
    assert_eq!(run.stderr.lines().count(), 2, "{run:#?}");

    let run = ctl(&server, &["get", "tr"]).ok();
    assert_eq!(run.stdout, "");
    let run = ctl(&server, &["delete", "tr"]);
    assert_eq!(run.code, 2, "{run:#?}");
}

#[test]
fn apply_with_an_invalid_second_document_writes_nothing() {
    let server = ApiServer::start();
    let run = ctl(
        &server,
        &["apply", "-f", &fixture("invalid-second-doc.yaml")],
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(run.stdout, "");
    let line = run.stderr.trim();
    assert!(
        line.starts_with("error: ")
            && line.contains(r#"invalid-second-doc.yaml (document 2, Workflow "build"): "#)
            && line.contains(r#"spec.tasks[1].dependsOn[0]: unknown task "tset""#),
        "{run:#?}"
    );
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one error per bad document: {run:#?}"
    );
    for kind in ["tr", "wf"] {
        let run = ctl(&server, &["get", kind, "-o", "name"]).ok();
        assert_eq!(run.stdout, "", "document 1 must not have been written");
    }
}

#[test]
fn invalid_input_exits_2_naming_file_line_and_field() {
    let server = ApiServer::start();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["apply", "-f", "malformed.yaml"],
            &["malformed.yaml (document 1): invalid YAML", "line 5 column"],
        ),
        (
            &["apply", "-f", "unknown-kind.yaml"],
            &[
                "unknown-kind.yaml (document 1, Widget \"w\")",
                r#"unknown kind "Widget""#,
            ],
        ),
        (
            &["apply", "-f", "unknown-field.yaml"],
            &[r#"unknown-field.yaml (document 1, TaskRun "typo"): spec.comand: unknown field"#],
        ),
        (
            &["apply", "-f", "invalid-name.yaml"],
            &[r#"(document 1, TaskRun "Not_A_Valid_Name"): metadata.name: "#],
        ),
        (
            &["apply", "-f", "cycle.yaml"],
            &[
                r#"cycle.yaml (document 1, Workflow "loop"): spec.tasks"#,
                "cycle",
            ],
        ),
        (
            &["apply", "-f", "workflow.lua"],
            &["workflow.lua", "workflow.define"],
        ),
        (
            &["apply", "-f", "no-such-file.yaml"],
            &[r#""no-such-file.yaml" does not exist"#],
        ),
        (
            &["get", "foo"],
            &[
                r#"error: unknown resource type "foo" (known: Agent, Workflow, TaskRun, Lock, Event, StateEntry, CronWorkflow, Stack, Secret)"#,
            ],
        ),
        (&["get", "tr", "-l", "a b"], &["invalid label selector"]),
        (&["get", "tr", "-o", "xml"], &["xml"]),
        (&["apply"], &["--filename"]),
    ];
    for (args, wanted) in cases {
        let mut cmd = slothctl(&server);
        cmd.current_dir(fixture("")).args(*args);
        let run = finish(cmd, None);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, "", "{args:?}");
        for w in *wanted {
            assert!(run.stderr.contains(w), "{args:?}: want {w:?} in {run:#?}");
        }
    }
    // Several bad files: every one is reported, and still nothing is written.
    let mut cmd = slothctl(&server);
    cmd.current_dir(fixture("")).args([
        "apply",
        "-f",
        "taskruns.yaml",
        "-f",
        "malformed.yaml",
        "-f",
        "cycle.yaml",
    ]);
    let run = finish(cmd, None);
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 2, "{run:#?}");
    for kind in ["tr", "wf"] {
        let run = ctl(&server, &["get", kind, "-A", "-o", "name"]).ok();
        assert_eq!(run.stdout, "", "nothing may be written");
    }
}

#[test]
fn a_server_that_is_not_running_exits_3() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        &["get", "tr"][..],
        &["get", "tr", "x"],
        &["get", "tr", "-w"],
        &["apply", "-f", &fixture("taskruns.yaml")],
        &["delete", "tr", "x"],
    ] {
        let mut cmd = slothctl_at(&url);
        cmd.args(args);
        let run = finish(cmd, None);
        assert_eq!(run.code, 3, "{args:?}: {run:#?}");
        assert!(
            run.stderr
                .starts_with(&format!("error: cannot reach any Sloth server at {url}")),
            "{args:?}: {run:#?}"
        );
    }
}

#[test]
fn get_watch_prints_the_list_then_each_change() {
    let server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("workflow.yaml")]).ok();
    let watch = Watch::start(&server, &["get", "wf", "-w"]);
    let seen = watch.wait_for(&["build", "Pending"]);
    assert!(seen[0].starts_with("NAME"), "header first: {seen:?}");
    let by_name = Watch::start(&server, &["get", "wf", "build", "-w", "-o", "name"]);
    by_name.wait_for(&["workflow/build"]);
    let run = ctl(&server, &["get", "wf", "nope", "-w"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr.trim(),
        r#"Error from server (NotFound): workflows "nope" not found"#
    );

    let json_watch = Watch::start(
        &server,
        &["get", "tr", "-w", "-o", "json", "--output-watch-events"],
    );
    // Nothing to list yet: the header comes with the first event.
    let events = Watch::start(&server, &["get", "tr", "-w", "--output-watch-events"]);

    ctl(&server, &["apply", "-f", &fixture("taskruns.yaml")]).ok();
    let seen = json_watch.wait_for(&["\"other\""]);
    let first: Value = serde_json::from_str(&seen[0]).expect("one JSON object a line");
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "hello");
    let seen = events.wait_for(&["ADDED", "other"]);
    let header: Vec<_> = seen[0].split_whitespace().collect();
    assert_eq!(header, ["EVENT", "NAME", "PHASE", "AGENT", "EXIT", "AGE"]);

    let changed = std::fs::read_to_string(fixture("workflow.yaml"))
        .expect("fixture")
        .replace("echo test", "echo tested");
    ctl_stdin(&server, &["apply", "-f", "-"], &changed).ok();
    watch.wait_for(&["build"]);
    by_name.wait_for(&["workflow/build"]);

    ctl(&server, &["delete", "tr", "world"]).ok();
    events.wait_for(&["DELETED", "world"]);
    let seen = json_watch.wait_for(&["\"DELETED\""]);
    assert!(
        seen.last().is_some_and(|l| l.contains("\"world\"")),
        "{seen:?}"
    );
}

#[test]
fn get_watch_resumes_after_the_server_restarts() {
    let mut server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("taskruns.yaml")]).ok();
    let watch = Watch::start(&server, &["get", "tr", "-w", "-o", "name"]);
    watch.wait_for(&["taskrun/world"]);

    server.restart_same_ports();
    let adhoc = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: after-restart\nspec:\n  run:\n    shell: date\n";
    ctl_stdin(&server, &["apply", "-f", "-"], adhoc).ok();
    let seen = watch.wait_for(&["taskrun/after-restart"]);
    // Resumed from its last resourceVersion: nothing seen before is repeated.
    assert_eq!(seen, ["taskrun/after-restart"], "{seen:?}");
}

#[test]
fn restart_with_the_same_data_dir_keeps_objects_and_uids() {
    let mut server = ApiServer::start();
    ctl(&server, &["apply", "-f", &fixture("taskruns.yaml")]).ok();
    let uids = |server: &ApiServer| -> Vec<(String, String)> {
        let list = ctl(server, &["get", "tr", "-o", "json"]).ok().json();
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                let text = |f: &str| i["metadata"][f].as_str().unwrap_or_default().to_string();
                (text("name"), text("uid"))
            })
            .collect()
    };
    let before = uids(&server);
    assert_eq!(before.len(), 3);
    server.restart();
    assert_eq!(uids(&server), before);
    let run = ctl(&server, &["apply", "-f", &fixture("taskruns.yaml")]).ok();
    assert!(
        run.lines().iter().all(|l| l.ends_with(" unchanged")),
        "{run:#?}"
    );

    server.kill9();
    server.start_again();
    assert_eq!(uids(&server), before);
}

#[test]
fn reapplying_keeps_the_binding_the_scheduler_made() {
    let server = ApiServer::start();
    let file = fixture("taskruns.yaml");
    ctl(&server, &["apply", "-f", &file]).ok();
    // Bind one TaskRun as the scheduler does: spec.agentName, by CAS.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = server.client();
        let mut hello = tokio::time::timeout(DEADLINE, client.get("TaskRun", "default", "hello"))
            .await
            .expect("deadline")
            .expect("get");
        hello.spec["agentName"] = "a1".into();
        let body = serde_json::to_value(&hello).expect("json");
        tokio::time::timeout(DEADLINE, client.update(&body))
            .await
            .expect("deadline")
            .expect("bind");
    });
    let run = ctl(&server, &["apply", "-f", &file]).ok();
    assert!(
        run.lines().iter().all(|l| l.ends_with(" unchanged")),
        "{run:#?}"
    );
    let run = ctl(&server, &["get", "tr", "hello"]).ok();
    let row: Vec<_> = run.lines()[1].split_whitespace().collect();
    assert_eq!(row[..3], ["hello", "Pending", "a1"]);
}
