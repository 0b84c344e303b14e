//! kubectl parity of the real `slothctl` against the real `sloth-apiserver`
//! (and an agent where output is needed): `-o jsonpath=`, `custom-columns=`,
//! `--sort-by`, `--show-labels`, `annotate`, `delete --all`, contexts and
//! `config`, `version` (client, server, `/version`), `wait --for=`, the
//! `Succeeded` condition, `logs --tail/-l`, and `completion`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sloth_tests::{Agent, ApiServer, Run, binary, ctl, ctl_stdin, http_get, run_to_end};

const DEADLINE: Duration = Duration::from_secs(60);

/// Three TaskRuns with labels to select, sort and print by.
const TASKRUNS: &str = "\
apiVersion: sloth.dev/v1
kind: TaskRun
metadata: {name: bravo, labels: {tier: web, rank: '10'}}
spec: {run: {shell: 'true'}, agentName: nowhere}
---
apiVersion: sloth.dev/v1
kind: TaskRun
metadata: {name: alpha, labels: {tier: db, rank: '9'}}
spec: {run: {shell: 'true'}, agentName: nowhere}
---
apiVersion: sloth.dev/v1
kind: TaskRun
metadata: {name: charlie}
spec: {run: {shell: 'true'}, agentName: nowhere}
";

fn seeded() -> ApiServer {
    let server = ApiServer::start();
    ctl_stdin(&server, &["apply", "-f", "-"], TASKRUNS).ok();
    server
}

/// `slothctl get tr [NAME] -o jsonpath=TEMPLATE` (no NAME when `name` is
/// empty); asserts exit 0 and returns stdout.
fn jsonpath(server: &ApiServer, name: &str, template: &str) -> String {
    let output = format!("jsonpath={template}");
    let mut args = vec!["get", "tr"];
    if !name.is_empty() {
        args.push(name);
    }
    args.extend(["-o", output.as_str()]);
    ctl(server, &args).ok().stdout
}

/// `slothctl ARGS` started on a thread (e.g. a `wait` that the test then
/// satisfies); join it for its [`Run`].
fn spawn_ctl(server: &ApiServer, args: &[&str]) -> std::thread::JoinHandle<Run> {
    let mut cmd = sloth_tests::slothctl(server);
    cmd.args(args);
    std::thread::spawn(move || run_to_end(cmd, None, DEADLINE))
}

#[test]
fn jsonpath_prints_lists_single_objects_and_ranges() {
    let server = seeded();
    assert_eq!(
        jsonpath(&server, "", "{.items[*].metadata.name}"),
        "alpha bravo charlie"
    );
    assert_eq!(
        jsonpath(&server, "bravo", "{.metadata.labels.tier}"),
        "web",
        "a named object is the template's root"
    );
    assert_eq!(
        jsonpath(
            &server,
            "",
            r#"{range .items[*]}{.metadata.name}{"\t"}{.metadata.labels.tier}{"\n"}{end}"#
        ),
        "alpha\tdb\nbravo\tweb\ncharlie\t\n"
    );
    let run = ctl(
        &server,
        &["get", "tr", "-o", "jsonpath={.items[0].metadata"],
    )
    .code(2);
    assert!(run.stderr.contains("unclosed"), "{run:#?}");
}

#[test]
fn custom_columns_sort_by_and_show_labels() {
    let server = seeded();
    let run = ctl(
        &server,
        &[
            "get",
            "tr",
            "-o",
            "custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier,AGENT:{.spec.agentName}",
        ],
    )
    .ok();
    assert_eq!(
        run.stdout,
        "NAME      TIER     AGENT\n\
         alpha     db       nowhere\n\
         bravo     web      nowhere\n\
         charlie   <none>   nowhere\n"
    );
    let run = ctl(
        &server,
        &[
            "get",
            "tr",
            "--no-headers",
            "--sort-by",
            ".metadata.labels.tier",
            "-o",
            "custom-columns=N:.metadata.name",
        ],
    )
    .ok();
    assert_eq!(
        run.lines(),
        ["charlie", "alpha", "bravo"],
        "missing first, then by text"
    );
    let run = ctl(
        &server,
        &["get", "tr", "--sort-by", "{.metadata.name}", "-o", "name"],
    )
    .ok();
    assert_eq!(
        run.lines(),
        ["taskrun/alpha", "taskrun/bravo", "taskrun/charlie"]
    );
    let run = ctl(&server, &["get", "tr", "--show-labels"]).ok();
    let lines = run.lines();
    assert!(lines[0].ends_with("   LABELS"), "{run:#?}");
    assert!(lines[1].ends_with("   rank=9,tier=db"), "{run:#?}");
    assert!(lines[3].ends_with("   <none>"), "{run:#?}");
    let run = ctl(&server, &["get", "tr", "-o", "custom-columns=NAME"]).code(2);
    assert!(run.stderr.contains("HEADER:EXPRESSION"), "{run:#?}");
}

#[test]
fn annotate_and_delete_all() {
    let server = seeded();
    let run = ctl(
        &server,
        &["annotate", "tr", "alpha", "note=any text: even this"],
    )
    .ok();
    assert_eq!(run.stdout, "taskrun/alpha annotated\n");
    assert_eq!(
        jsonpath(&server, "alpha", "{.metadata.annotations.note}"),
        "any text: even this"
    );
    ctl(&server, &["annotate", "tr", "alpha", "note=other"]).code(1);
    ctl(&server, &["annotate", "tr", "alpha", "note-"]).ok();

    // Another namespace keeps its objects.
    ctl_stdin(&server, &["apply", "-n", "keep", "-f", "-"], TASKRUNS).ok();
    ctl(&server, &["delete", "tr", "alpha", "--all"]).code(2);
    let run = ctl(&server, &["delete", "tr", "--all"]).ok();
    assert_eq!(run.lines().len(), 3, "{run:#?}");
    let run = ctl(&server, &["get", "tr", "-o", "name"]).ok();
    assert_eq!(run.stdout, "");
    let run = ctl(&server, &["get", "tr", "-n", "keep", "-o", "name"]).ok();
    assert_eq!(run.lines().len(), 3);
}

/// slothctl with only a config file (no --server), and a HOME without one.
fn ctl_with_config(config: &Path, args: &[&str]) -> Run {
    let home = config.parent().expect("dir").join("home");
    let mut cmd = Command::new(binary("slothctl"));
    cmd.args(args)
        .env("SLOTH_CONFIG", config)
        .env("HOME", home)
        .env_remove("SLOTH_SERVER")
        .env_remove("SLOTH_CONTEXT")
        .env_remove("SLOTH_NAMESPACE");
    run_to_end(cmd, None, DEADLINE)
}

#[test]
fn contexts_pick_server_and_namespace() {
    let server = seeded();
    ctl_stdin(&server, &["apply", "-n", "ci", "-f", "-"], TASKRUNS).ok();
    ctl(&server, &["delete", "tr", "charlie", "-n", "ci"]).ok();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("sloth.yaml");
    let url = server.grpc_url();

    let run = ctl_with_config(
        &config,
        &["config", "set-cluster", "local", "--server", url],
    )
    .ok();
    assert_eq!(run.stdout, "Cluster \"local\" set.\n");
    let run = ctl_with_config(
        &config,
        &[
            "config",
            "set-context",
            "ci",
            "--cluster",
            "local",
            "--namespace",
            "ci",
        ],
    )
    .ok();
    assert_eq!(run.stdout, "Context \"ci\" created.\n");
    ctl_with_config(
        &config,
        &["config", "set-context", "dead", "--cluster", "nowhere"],
    )
    .ok();
    ctl_with_config(
        &config,
        &[
            "config",
            "set-cluster",
            "nowhere",
            "--server",
            "127.0.0.1:9",
        ],
    )
    .ok();
    ctl_with_config(&config, &["config", "current-context"]).code(1);
    ctl_with_config(&config, &["config", "use-context", "nope"]).code(2);
    let run = ctl_with_config(&config, &["config", "use-context", "ci"]).ok();
    assert_eq!(run.stdout, "Switched to context \"ci\".\n");
    let run = ctl_with_config(&config, &["config", "current-context"]).ok();
    assert_eq!(run.stdout, "ci\n");
    let run = ctl_with_config(&config, &["config", "get-contexts"]).ok();
    assert_eq!(
        run.lines()[0],
        "CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE"
    );
    assert!(
        run.lines()[1].starts_with("*         ci     local     "),
        "{run:#?}"
    );

    // The current context's namespace holds two TaskRuns; default holds three.
    let run = ctl_with_config(&config, &["get", "tr", "-o", "name"]).ok();
    assert_eq!(run.lines(), ["taskrun/alpha", "taskrun/bravo"]);
    let run = ctl_with_config(&config, &["get", "tr", "-n", "default", "-o", "name"]).ok();
    assert_eq!(run.lines().len(), 3);
    // --context names another cluster: nothing listens there.
    ctl_with_config(&config, &["--context", "dead", "get", "tr"]).code(3);
    ctl_with_config(&config, &["--context", "missing", "get", "tr"]).code(2);
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("currentContext: ci"), "{text}");

    // The one-server form still works, with a top-level namespace.
    std::fs::write(&config, format!("server: {url}\nnamespace: ci\n")).expect("write");
    let run = ctl_with_config(&config, &["get", "tr", "-o", "name"]).ok();
    assert_eq!(run.lines(), ["taskrun/alpha", "taskrun/bravo"]);
}

#[test]
fn version_reports_client_and_server() {
    let server = ApiServer::start();
    let version = env!("CARGO_PKG_VERSION");
    let run = ctl(&server, &["version"]).ok();
    assert_eq!(
        run.stdout,
        format!("Client Version: {version}\nServer Version: {version}\nServer API: sloth.dev/v1\n")
    );
    assert_eq!(run.stderr, "", "no skew warning between equal versions");
    let (status, body) = http_get(server.http_url(), "/version");
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body,
        json!({"version": version, "apiVersion": "sloth.dev/v1"})
    );
}

#[test]
fn wait_for_conditions_jsonpath_and_delete() {
    let server = seeded();
    let rt = sloth_tests::runtime();

    // Nothing has happened yet: the timeout exits 2.
    let run = ctl(
        &server,
        &[
            "wait",
            "tr",
            "alpha",
            "--for=condition=Succeeded",
            "--timeout",
            "1s",
        ],
    )
    .code(2);
    assert!(run.stderr.contains("timed out"), "{run:#?}");
    ctl(&server, &["wait", "tr", "alpha", "--for=ready"]).code(2);

    // A status write (as an agent's) gets the Succeeded condition.
    let waiter = spawn_ctl(
        &server,
        &[
            "wait",
            "tr/alpha",
            "--for=condition=Succeeded",
            "--timeout",
            "50s",
        ],
    );
    rt.block_on(async {
        let client = server.client();
        let mut alpha = serde_json::to_value(
            client
                .get("TaskRun", "default", "alpha")
                .await
                .expect("get"),
        )
        .expect("json");
        alpha["status"] = json!({"phase": "Succeeded", "exitCode": 0});
        client.update_status(&alpha).await.expect("status");
    });
    let run = waiter.join().expect("waiter").ok();
    assert_eq!(run.stdout, "taskrun/alpha condition met\n");
    assert_eq!(
        jsonpath(
            &server,
            "alpha",
            r#"{.status.conditions[?(@.type=="Succeeded")].status}"#
        ),
        "True"
    );
    ctl(
        &server,
        &[
            "wait",
            "tr",
            "alpha",
            "--for=jsonpath={.status.exitCode}=0",
            "--timeout",
            "10s",
        ],
    )
    .ok();

    // Any kind: a label appearing, then the object going away.
    let waiter = spawn_ctl(
        &server,
        &[
            "wait",
            "tr",
            "bravo",
            "--for=jsonpath={.metadata.labels.go}=yes",
        ],
    );
    ctl(&server, &["label", "tr", "bravo", "go=yes"]).ok();
    waiter.join().expect("waiter").ok();
    let waiter = spawn_ctl(
        &server,
        &["wait", "tr", "bravo", "--for=delete", "--timeout", "50s"],
    );
    ctl(&server, &["delete", "tr", "bravo"]).ok();
    let run = waiter.join().expect("waiter").ok();
    assert_eq!(run.stdout, "taskrun/bravo deleted\n");
}

#[test]
fn logs_tail_and_selector() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "a1", &[]);
    let run = ctl(&server, &["run", "--agent", "a1", "--", "seq", "1", "5"]).ok();
    assert_eq!(run.stdout, "1\n2\n3\n4\n5\n");
    let name = jsonpath(&server, "", "{.items[0].metadata.name}");
    let run = ctl(&server, &["logs", &name, "--tail", "2"]).ok();
    assert_eq!(run.stdout, "4\n5\n");
    ctl(&server, &["label", "tr", &name, "batch=one"]).ok();
    let run = ctl(&server, &["logs", "-l", "batch=one", "--tail", "1"]).ok();
    assert_eq!(run.stdout, format!("==> taskrun/{name} <==\n5\n"));
    let run = ctl(
        &server,
        &["logs", "-l", "batch=one", "--tail", "1", "--prefix"],
    )
    .ok();
    assert_eq!(run.stdout, format!("[taskrun/{name}] 5\n"));
    ctl(&server, &["logs", "-l", "batch=none"]).code(1);
    let run = ctl(&server, &["logs", "wf/none"]).code(1);
    assert!(run.stderr.contains("sloth.dev/workflow=none"), "{run:#?}");
}

#[test]
fn completion_scripts_for_each_shell() {
    let server = ApiServer::start();
    let bash = ctl(&server, &["completion", "bash"]).ok().stdout;
    assert!(
        bash.contains("complete -F") && bash.contains("slothctl"),
        "{bash}"
    );
    let zsh = ctl(&server, &["completion", "zsh"]).ok().stdout;
    assert!(zsh.starts_with("#compdef slothctl"), "{zsh}");
    let fish = ctl(&server, &["completion", "fish"]).ok().stdout;
    assert!(fish.contains("complete -c slothctl"), "{fish}");
    ctl(&server, &["completion", "tcsh"]).code(2);
}

#[test]
fn apply_recursive_dry_run_and_diff() {
    let server = ApiServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let nested = dir.path().join("a").join("b");
    std::fs::create_dir_all(&nested).expect("dirs");
    let one = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: top}\n\
               spec: {run: {shell: 'echo top'}, agentName: nowhere}\n";
    let two = one.replace("top", "deep");
    std::fs::write(dir.path().join("top.yaml"), one).expect("write");
    std::fs::write(nested.join("deep.yaml"), &two).expect("write");
    let root = dir.path().to_str().expect("utf-8");

    // Without -R only the directory's own files are read.
    let run = ctl(&server, &["apply", "-f", root, "--dry-run=client"]).ok();
    assert_eq!(run.stdout, "taskrun.sloth.dev/top created (dry run)\n");
    let run = ctl(&server, &["apply", "-R", "-f", root, "--dry-run"]).ok();
    assert_eq!(
        run.lines(),
        [
            "taskrun.sloth.dev/top created (dry run)",
            "taskrun.sloth.dev/deep created (dry run)",
        ]
    );
    let run = ctl(&server, &["get", "tr", "-o", "name"]).ok();
    assert_eq!(run.stdout, "", "a dry run writes nothing");
    // The server dry run (tests/tests/cli_parity2.rs) stores nothing either.
    ctl(&server, &["apply", "-f", root, "--dry-run=server"]).ok();
    let run = ctl(&server, &["get", "tr", "-o", "name"]).ok();
    assert_eq!(run.stdout, "", "a server dry run writes nothing");

    ctl(&server, &["apply", "-R", "-f", root]).ok();
    let run = ctl(&server, &["apply", "-R", "-f", root, "--dry-run=client"]).ok();
    assert_eq!(
        run.lines(),
        [
            "taskrun.sloth.dev/top unchanged (dry run)",
            "taskrun.sloth.dev/deep unchanged (dry run)",
        ]
    );
    let run = ctl(&server, &["diff", "-f", root]).ok();
    assert_eq!(run.stdout, "", "nothing to change: exit 0, no output");

    std::fs::write(
        dir.path().join("top.yaml"),
        one.replace("echo top", "echo changed"),
    )
    .expect("write");
    let run = ctl(&server, &["diff", "-f", root]).code(1);
    assert!(
        run.stdout
            .starts_with("--- live/taskrun.sloth.dev/top\n+++ applied/taskrun.sloth.dev/top\n"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("\n-    shell: echo top\n+    shell: echo changed\n"),
        "{run:#?}"
    );
    let run = ctl(&server, &["apply", "-f", root, "--dry-run=client"]).ok();
    assert_eq!(run.stdout, "taskrun.sloth.dev/top configured (dry run)\n");
    assert_eq!(jsonpath(&server, "top", "{.spec.run.shell}"), "echo top");
}

/// slothctl edit with EDITOR set to a command that changes the file.
fn edit(server: &ApiServer, editor: &str, args: &[&str]) -> Run {
    let mut cmd = sloth_tests::slothctl(server);
    cmd.arg("edit")
        .args(args)
        .env("EDITOR", editor)
        .env_remove("VISUAL");
    run_to_end(cmd, None, DEADLINE)
}

#[test]
fn edit_checks_before_saving() {
    let server = seeded();
    let run = edit(
        &server,
        "sed -i 's/tier: db/tier: edited/'",
        &["tr", "alpha"],
    )
    .ok();
    assert_eq!(run.stdout, "taskrun.sloth.dev/alpha edited\n");
    assert_eq!(
        jsonpath(&server, "alpha", "{.metadata.labels.tier}"),
        "edited"
    );

    let run = edit(&server, "true", &["tr/alpha"]).ok();
    assert_eq!(run.stdout, "Edit cancelled, no changes made.\n");

    // An unknown field: refused before anything is sent, the edit kept.
    let before = ctl(&server, &["get", "tr", "alpha", "-o", "json"])
        .ok()
        .json();
    let run = edit(&server, "sed -i 's/shell:/shel:/'", &["tr", "alpha"]).code(2);
    assert!(run.stderr.contains("shel"), "{run:#?}");
    assert!(run.stderr.contains("it is kept in"), "{run:#?}");
    let after = ctl(&server, &["get", "tr", "alpha", "-o", "json"])
        .ok()
        .json();
    assert_eq!(before, after, "stored data intact");
    let run = edit(
        &server,
        "sed -i 's/name: alpha/name: renamed/'",
        &["tr", "alpha"],
    )
    .code(2);
    assert!(run.stderr.contains("cannot rename"), "{run:#?}");
    edit(&server, "false", &["tr", "alpha"]).code(1);
}
