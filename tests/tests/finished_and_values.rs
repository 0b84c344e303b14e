//! Finished objects and bad values end to end, with real processes: a
//! finished TaskRun's spec, results and log tail cannot be rewritten; a
//! finished workflow is not cancelled; durations, backoff factors, label
//! selectors and workdirs outside their bounds are refused naming the
//! field; an agent runs no task outside its run directory unless allowed.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sloth_sdk::Error;
use sloth_tests::{Agent, ApiServer, Run, ctl, runtime, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);

fn apply(server: &ApiServer, dir: &Path, name: &str, manifest: &str) -> Run {
    let file = dir.join(name);
    std::fs::write(&file, manifest).expect("write manifest");
    ctl(server, &["apply", "-f", file.to_str().expect("utf-8 path")])
}

fn get(server: &ApiServer, kind: &str, name: &str) -> Value {
    ctl(server, &["get", kind, name, "-o", "json"]).ok().json()
}

/// Waits until `kind/name` reaches a final phase; returns the object.
fn finished(server: &ApiServer, kind: &str, name: &str) -> Value {
    wait_until(DEADLINE, || {
        let object = get(server, kind, name);
        matches!(
            object["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Cancelled")
        )
        .then_some(object)
    })
    .unwrap_or_else(|| panic!("{kind} {name} did not finish"))
}

#[track_caller]
fn assert_refused(run: &Run, words: &[&str]) {
    assert_ne!(run.code, 0, "{run:#?}");
    for word in words {
        assert!(run.stderr.contains(word), "{word:?}: {run:#?}");
    }
}

#[test]
fn finished_taskruns_and_workflows_stay_as_they_ended() {
    let server = ApiServer::start_with(&["--controllers"]);
    let _agent = Agent::start(&server, "a1", &[]);
    let temp = tempfile::tempdir().expect("temp dir");
    let taskrun = |shell: &str| {
        format!(
            "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {{name: done}}\n\
             spec: {{agentName: a1, run: {{shell: '{shell}'}}}}\n"
        )
    };
    apply(&server, temp.path(), "tr.yaml", &taskrun("echo done")).ok();
    let done = finished(&server, "taskrun", "done");
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");

    // A new spec: refused, naming the field; nothing stored.
    let rerun = apply(&server, temp.path(), "tr2.yaml", &taskrun("echo again"));
    assert_refused(
        &rerun,
        &[
            "spec",
            "immutable once the TaskRun has finished (Succeeded)",
        ],
    );
    let after = get(&server, "taskrun", "done");
    assert_eq!(after["metadata"]["generation"], 1, "{after:#}");
    assert_eq!(after["spec"]["run"]["shell"], "echo done");

    // Its results and log tail: refused through the status endpoint too.
    let rt = runtime();
    let _in_runtime = rt.enter();
    let client = server.client();
    let stored = rt
        .block_on(client.get("TaskRun", "default", "done"))
        .expect("get");
    let mut forged = serde_json::to_value(&stored).expect("json");
    forged["status"]["logTail"] = json!("forged\n");
    forged["status"]["results"] = json!({"version": "6.6.6"});
    let e = rt
        .block_on(client.update_status(&forged))
        .expect_err("rewrite the record");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    for field in ["status.results", "status.logTail"] {
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    assert_eq!(
        get(&server, "taskrun", "done")["status"]["logTail"],
        done["status"]["logTail"]
    );

    // A finished workflow: cancel changes nothing and says so; the server
    // refuses the write too.
    apply(
        &server,
        temp.path(),
        "wf.yaml",
        "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {name: quick}\n\
         spec: {tasks: [{name: a, run: {shell: 'true'}}]}\n",
    )
    .ok();
    assert_eq!(
        finished(&server, "workflow", "quick")["status"]["phase"],
        "Succeeded"
    );
    let cancel = ctl(&server, &["cancel", "workflow", "quick"]).ok();
    assert!(
        cancel.stdout.contains("already finished (Succeeded)"),
        "{cancel:#?}"
    );
    let wf = get(&server, "workflow", "quick");
    assert_ne!(wf["spec"]["state"], "Cancelled", "{wf:#}");
    assert_eq!(wf["status"]["phase"], "Succeeded");
    let mut cancelled = wf.clone();
    cancelled["spec"]["state"] = json!("Cancelled");
    let e = rt
        .block_on(client.update(&cancelled))
        .expect_err("cancel a finished workflow");
    assert!(e.to_string().contains("spec.state"), "{e}");
}

#[test]
fn out_of_bounds_values_are_refused_naming_the_field() {
    let server = ApiServer::start_with(&["--controllers"]);
    let agent = Agent::start(&server, "a1", &[]);
    let temp = tempfile::tempdir().expect("temp dir");
    let taskrun = |name: &str, extra: &str| {
        format!(
            "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {{name: {name}}}\n\
             spec: {{agentName: a1, run: {{shell: pwd}}, {extra}}}\n"
        )
    };
    for (i, (extra, words)) in [
        ("timeout: 99999999999999h", &["spec.timeout", "30 days"][..]),
        ("timeout: 1h1h", &["spec.timeout", "largest down"]),
        ("workdir: ../../../../etc", &["spec.workdir", ".."]),
    ]
    .into_iter()
    .enumerate()
    {
        let run = apply(
            &server,
            temp.path(),
            &format!("bad{i}.yaml"),
            &taskrun("bad", extra),
        );
        assert_refused(&run, words);
    }
    let backoff = apply(
        &server,
        temp.path(),
        "wf.yaml",
        "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  tasks:\n\
         \x20   - name: a\n      run: {shell: 'true'}\n      retries: {limit: 2, backoff: {duration: 1s, factor: 1e308}}\n",
    );
    assert_refused(&backoff, &["retries.backoff.factor", "from 1 to 10"]);
    let selector = ctl(&server, &["get", "taskruns", "-l", "a=b=c"]);
    assert_refused(&selector, &["a=b=c"]);
    let none = ctl(&server, &["get", "taskruns", "-o", "json"]).ok().json();
    assert_eq!(none["items"], json!([]), "nothing was stored");

    // The server refuses what slothctl would: a client that skips it.
    let rt = runtime();
    let _in_runtime = rt.enter();
    let client = server.client();
    for (field, value) in [("timeout", "1h1h"), ("workdir", "a/../../b")] {
        let e = rt
            .block_on(client.create(&json!({
                "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
                "metadata": {"name": "raw", "namespace": "default"},
                "spec": {"run": {"shell": "pwd"}, field: value}
            })))
            .expect_err("invalid");
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        assert!(e.to_string().contains(&format!("spec.{field}")), "{e}");
    }

    // The agent: a relative workdir is inside the run directory; an
    // absolute one runs nowhere unless the agent allows its root.
    apply(
        &server,
        temp.path(),
        "in.yaml",
        &taskrun("inside", "workdir: sub/dir"),
    )
    .ok();
    let inside = finished(&server, "taskrun", "inside");
    let work = std::fs::canonicalize(agent.work_dir()).expect("work dir");
    assert_eq!(
        inside["status"]["logTail"],
        json!(format!("{}/default/inside/sub/dir\n", work.display())),
        "{inside:#}"
    );
    apply(
        &server,
        temp.path(),
        "etc.yaml",
        &taskrun("etc", "workdir: /etc"),
    )
    .ok();
    let etc = finished(&server, "taskrun", "etc");
    assert_eq!(etc["status"]["phase"], "Failed", "{etc:#}");
    assert!(
        etc["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--allow-workdir-root")),
        "{etc:#}"
    );
}
