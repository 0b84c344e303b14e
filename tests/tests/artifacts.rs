//! Workspaces and artifacts end to end (issue 17): an apiserver with its
//! controllers and two agents. A workspace reaches every task (ignored and
//! `.git` content does not, nested files and modes do); a build task's
//! artifacts on agent 1 are unpacked for the test task on agent 2;
//! `slothctl cp` copies a file and a directory back; `run --workspace`;
//! a Lua workflow with `workspace = "."`; one blob for a workspace applied
//! twice; the size limit names its flag.

use std::path::Path;
use std::time::Duration;

use sloth_tests::files::{incompressible_file, write_file};
use sloth_tests::{Agent, ApiServer, Run, run_to_end, slothctl};

/// Generous: the machine is shared and loaded.
const DEADLINE: Duration = Duration::from_secs(120);

fn sh(server: &ApiServer, args: &[&str]) -> Run {
    let mut cmd = slothctl(server);
    cmd.args(args);
    run_to_end(cmd, None, DEADLINE)
}

fn cluster() -> (ApiServer, Agent, Agent) {
    let server = ApiServer::start_with(&["--controllers"]);
    let a1 = Agent::start(&server, "a1", &["--labels", "role=build"]);
    let a2 = Agent::start(&server, "a2", &["--labels", "role=test"]);
    (server, a1, a2)
}

/// A workspace: nested files, an executable script with mode 0750, an
/// ignored 5 MB directory, an ignored log file and a `.git` directory.
fn workspace(dir: &Path) {
    write_file(&dir.join("data.txt"), "hello from the workspace\n");
    write_file(&dir.join("nested/deep/file.txt"), "deep file\n");
    write_file(&dir.join("run.sh"), "#!/bin/sh\necho ran\n");
    std::fs::set_permissions(
        dir.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .expect("chmod");
    incompressible_file(&dir.join("big/blob.bin"), 5 * 1024 * 1024);
    write_file(&dir.join("debug.log"), "ignored\n");
    write_file(&dir.join(".git/HEAD"), "ref: refs/heads/main\n");
    write_file(&dir.join(".slothignore"), "# not for the agents\nbig/\n*.log\n");
}

const PIPELINE: &str = r#"
apiVersion: sloth.dev/v1
kind: Workflow
metadata: {name: ci}
spec:
  tasks:
    - name: build
      agentSelector: {matchLabels: {role: build}}
      run:
        shell: |
          set -e
          test -f data.txt
          test "$(cat nested/deep/file.txt)" = "deep file"
          test "$(stat -c %a run.sh)" = 750
          ./run.sh
          test ! -e big && test ! -e debug.log && test ! -e .git
          mkdir -p dist/lib
          echo "built on $SLOTH_AGENT" > dist/app.bin
          echo lib > dist/lib/x.so
          echo "report" > out.txt
      artifacts: {paths: [out.txt, dist/]}
    - name: test
      dependsOn: [build]
      agentSelector: {matchLabels: {role: test}}
      run:
        shell: |
          set -e
          test "$(cat out.txt)" = report
          grep -q "built on a1" dist/app.bin
          test "$(cat dist/lib/x.so)" = lib
          test -f data.txt
          echo "tested on $SLOTH_AGENT"
"#;

#[test]
fn a_workspace_and_artifacts_flow_across_two_agents_and_cp_copies_them_back() {
    let (server, _a1, _a2) = cluster();
    let temp = tempfile::tempdir().expect("temp dir");
    let ws = temp.path().join("ws");
    workspace(&ws);
    let manifest = temp.path().join("ci.yaml");
    write_file(&manifest, PIPELINE);
    let ws_arg = ws.display().to_string();
    let applied = sh(
        &server,
        &["apply", "-f", &manifest.display().to_string(), "--workspace", &ws_arg],
    )
    .ok();
    assert!(applied.stderr.contains("uploaded"), "{applied:#?}");
    let waited = sh(&server, &["wait", "workflow", "ci", "--timeout", "100s"]);
    let build = sh(&server, &["get", "taskrun", "ci-build-1", "-o", "json"]).json();
    let test = sh(&server, &["get", "taskrun", "ci-test-1", "-o", "json"]).json();
    assert_eq!(waited.code, 0, "{waited:#?}\nbuild: {build}\ntest: {test}");
    assert_eq!(build["status"]["agent"], "a1", "{build}");
    assert_eq!(test["status"]["agent"], "a2", "{test}");
    let artifacts = build["status"]["artifacts"].as_array().expect("artifacts");
    let paths: Vec<&str> = artifacts.iter().filter_map(|a| a["path"].as_str()).collect();
    assert_eq!(paths, ["out.txt", "dist"], "{build}");
    assert_eq!(test["spec"]["inputs"].as_array().map(Vec::len), Some(2), "{test}");

    let wide = sh(&server, &["get", "taskrun", "ci-build-1", "-o", "wide"]).ok();
    let header: Vec<&str> = wide.lines()[0].split_whitespace().collect();
    let row: Vec<&str> = wide.lines()[1].split_whitespace().collect();
    assert_eq!(header.last(), Some(&"ARTIFACTS"), "{wide:#?}");
    assert_eq!(row.last(), Some(&"2"), "{wide:#?}");

    let out = temp.path().join("copied");
    std::fs::create_dir_all(&out).expect("mkdir");
    let file = out.join("report.txt");
    sh(&server, &["cp", "ci-build-1:out.txt", &file.display().to_string()]).ok();
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "report\n");
    let dir = out.join("dist");
    sh(&server, &["cp", "ci-build-1:dist/", &dir.display().to_string()]).ok();
    assert_eq!(
        std::fs::read_to_string(dir.join("app.bin")).expect("read"),
        "built on a1\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("lib/x.so")).expect("read"), "lib\n");
    // A file inside a directory artifact, into an existing directory.
    sh(&server, &["cp", "ci-build-1:dist/lib/x.so", &out.display().to_string()]).ok();
    assert_eq!(std::fs::read_to_string(out.join("x.so")).expect("read"), "lib\n");
    let missing = sh(&server, &["cp", "ci-build-1:nope.txt", &out.display().to_string()]).code(1);
    assert!(missing.stderr.contains("out.txt, dist"), "{missing:#?}");
}

#[test]
fn run_with_a_workspace_and_a_lua_workflow_with_workspace_dot() {
    let (server, _a1, _a2) = cluster();
    let temp = tempfile::tempdir().expect("temp dir");
    let ws = temp.path().join("ws");
    write_file(&ws.join("data.txt"), "from run --workspace\n");
    let run = sh(
        &server,
        &["run", "--workspace", &ws.display().to_string(), "--agent", "a2", "--", "cat data.txt"],
    )
    .ok();
    assert!(run.stdout.contains("from run --workspace"), "{run:#?}");

    let project = temp.path().join("project");
    write_file(&project.join("data.txt"), "next to the Lua file\n");
    write_file(
        &project.join("wf.lua"),
        r#"
local check = task("check"):command("cat data.txt && test -f wf.lua"):build()
workflow.define("lua-ws", { workspace = ".", tasks = { check } })
"#,
    );
    sh(&server, &["apply", "-f", &project.join("wf.lua").display().to_string()]).ok();
    let waited = sh(&server, &["wait", "workflow", "lua-ws", "--timeout", "100s"]);
    let logs = sh(&server, &["logs", "lua-ws-check-1"]);
    assert_eq!(waited.code, 0, "{waited:#?}\n{logs:#?}");
    assert!(logs.stdout.contains("next to the Lua file"), "{logs:#?}");
    let wf = sh(&server, &["get", "workflow", "lua-ws", "-o", "json"]).json();
    assert!(
        wf["spec"]["workspace"]["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
        "{wf}"
    );
    assert!(
        wf["metadata"]["annotations"].get("sloth.dev/workspace-dir").is_none(),
        "the local directory is not sent: {wf}"
    );
}

/// The blob files of the default file store.
fn blobs(server: &ApiServer) -> usize {
    std::fs::read_dir(server.data_dir().join("artifacts/blobs/sha256"))
        .map(|d| d.filter_map(Result::ok).count())
        .unwrap_or(0)
}

#[test]
fn a_workspace_applied_twice_is_stored_once_and_the_size_limit_names_its_flag() {
    let server = ApiServer::start_with(&["--max-artifact-bytes", "2000000"]);
    let temp = tempfile::tempdir().expect("temp dir");
    let ws = temp.path().join("ws");
    write_file(&ws.join("data.txt"), "same bytes\n");
    let manifest = temp.path().join("wf.yaml");
    write_file(
        &manifest,
        "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {name: twice}\nspec:\n  tasks:\n    - name: a\n      run: {shell: cat data.txt}\n",
    );
    let args = |ws: &Path| {
        vec![
            "apply".to_string(),
            "-f".to_string(),
            manifest.display().to_string(),
            "--workspace".to_string(),
            ws.display().to_string(),
        ]
    };
    let first: Vec<String> = args(&ws);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let run = sh(&server, &first).ok();
    assert!(run.stderr.contains("uploaded"), "{run:#?}");
    let run = sh(&server, &first).ok();
    assert!(run.stderr.contains("already stored"), "{run:#?}");
    assert_eq!(blobs(&server), 1);

    let big = temp.path().join("big");
    incompressible_file(&big.join("blob.bin"), 3_000_000);
    let second = args(&big);
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let refused = sh(&server, &second).code(1);
    assert!(refused.stderr.contains("--max-artifact-bytes=2000000"), "{refused:#?}");
    assert_eq!(blobs(&server), 1, "nothing of the refused upload is stored");
}
