//! Agent restrictions end to end, with real processes (like Kubernetes'
//! NodeRestriction): an agent's credentials cannot claim another agent's
//! name, cannot touch `restricted.sloth.dev/` labels (admins set them with
//! `slothctl label`, and they place work), and cannot create, take or
//! delete a Lock held by anyone but itself or a TaskRun bound to it; every
//! refusal is audited exactly once. A workflow task whose lock is deleted
//! is stopped with reason LockLost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sloth_sdk::{Client, Error};
use sloth_tests::{
    Agent, ApiServer, CTL_DEADLINE, Run, binary, client_with_token, ctl, run_to_end, runtime,
    wait_until,
};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const A1_TOKEN: &str = "agent-a1-token-0123456789abcdef";
const A2_TOKEN: &str = "agent-a2-token-0123456789abcdef";
const DEADLINE: Duration = Duration::from_secs(90);

fn tokens_file(dir: &Path) -> PathBuf {
    let path = dir.join("tokens.csv");
    std::fs::write(
        &path,
        format!(
            "{ADMIN_TOKEN},alice,admin\n{A1_TOKEN},agent:a1,agent\n{A2_TOKEN},agent:a2,agent\n"
        ),
    )
    .expect("write tokens");
    path
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `slothctl --server URL --token ADMIN ARGS` with a temporary HOME.
fn admin_ctl(url: &str, args: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(binary("slothctl"));
    cmd.args(["--server", url, "--token", ADMIN_TOKEN])
        .args(args)
        .env("HOME", home.path())
        .env_remove("SLOTH_SERVER")
        .env_remove("SLOTH_TOKEN");
    run_to_end(cmd, None, CTL_DEADLINE)
}

fn client(url: &str, token: &str) -> Client {
    client_with_token(url, token)
}

fn lock(name: &str, holder: &str) -> Value {
    json!({
        "apiVersion": "sloth.dev/v1", "kind": "Lock",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 300,
                 "acquireTime": chrono::Utc::now(), "renewTime": chrono::Utc::now()}
    })
}

#[track_caller]
fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, Error>, words: &[&str]) {
    let e = result.expect_err("refused");
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
    for word in words {
        assert!(e.to_string().contains(word), "{word:?} not in: {e}");
    }
}

#[test]
fn an_agent_cannot_claim_names_restricted_labels_or_others_locks() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_file(temp.path());
    let audit = temp.path().join("audit.log");
    let server = ApiServer::start_with(&[
        "--controllers",
        "--token-file",
        path(&tokens),
        "--audit-log",
        path(&audit),
    ]);
    let url = server.grpc_url().to_string();
    let mut a1 = Agent::start(&server, "a1", &["--token", A1_TOKEN]);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let as_a1 = client(&url, A1_TOKEN);
    let admin = client(&url, ADMIN_TOKEN);

    // Another agent's name, and a restricted label: refused, nothing stored.
    let stored = rt.block_on(as_a1.get("Agent", "", "a1")).expect("get a1");
    let mut claim = serde_json::to_value(&stored).expect("json");
    claim["metadata"]["labels"]["sloth.dev/agent"] = json!("s2");
    claim["metadata"]["labels"]["role"] = json!("gpu");
    assert_forbidden(
        rt.block_on(as_a1.update(&claim)),
        &["sloth.dev/agent", "\"a1\"", "agents \"a1\" is forbidden"],
    );
    let mut secure = serde_json::to_value(&stored).expect("json");
    secure["metadata"]["labels"]["restricted.sloth.dev/tier"] = json!("secure");
    assert_forbidden(
        rt.block_on(as_a1.update(&secure)),
        &["add label \"restricted.sloth.dev/tier\"", "slothctl label"],
    );
    let after = rt.block_on(admin.get("Agent", "", "a1")).expect("get a1");
    assert_eq!(
        after
            .metadata
            .labels
            .get("sloth.dev/agent")
            .map(String::as_str),
        Some("a1")
    );
    assert!(!after.metadata.labels.contains_key("role"));

    // The admin labels it; the agent can neither change nor remove that,
    // and keeps it when it restarts (it registers again).
    let out = admin_ctl(
        &url,
        &["label", "agent", "a1", "restricted.sloth.dev/tier=secure"],
    )
    .ok();
    assert_eq!(out.stdout.trim(), "agent/a1 labeled", "{out:#?}");
    let again = admin_ctl(
        &url,
        &["label", "agent/a1", "restricted.sloth.dev/tier=other"],
    );
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(again.stderr.contains("--overwrite is false"), "{again:#?}");
    let labeled = rt.block_on(as_a1.get("Agent", "", "a1")).expect("get a1");
    let mut removed = serde_json::to_value(&labeled).expect("json");
    removed["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("restricted.sloth.dev/tier");
    assert_forbidden(
        rt.block_on(as_a1.update(&removed)),
        &["remove label \"restricted.sloth.dev/tier\""],
    );
    a1.stop();
    a1.start_again();
    let kept = rt.block_on(admin.get("Agent", "", "a1")).expect("get a1");
    assert_eq!(
        kept.metadata
            .labels
            .get("restricted.sloth.dev/tier")
            .map(String::as_str),
        Some("secure"),
        "{}",
        a1.log()
    );
    // The label places work: a selector on it runs on a1.
    let ran = wait_until(DEADLINE, || {
        let run = admin_ctl(
            &url,
            &[
                "run",
                "-l",
                "restricted.sloth.dev/tier=secure",
                "--",
                "echo",
                "placed",
            ],
        );
        (run.code == 0).then_some(run)
    })
    .expect("the labelled agent runs the task");
    assert!(ran.stdout.contains("placed"), "{ran:#?}");

    // Locks: a lock held by a workflow task bound to another agent can be
    // neither deleted nor taken over; a1 may hold locks for itself and for
    // TaskRuns bound to it, not for another agent's.
    rt.block_on(admin.create(&json!({
        "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
        "metadata": {"name": "deploy-eu", "namespace": "default"},
        "spec": {"run": {"shell": "sleep 300"}, "agentName": "a2"}
    })))
    .expect("a TaskRun bound to a2");
    rt.block_on(admin.create(&lock("production", "TaskRun/default/deploy-eu")))
        .expect("admin creates the lock");
    assert_forbidden(
        rt.block_on(as_a1.delete("Lock", "default", "production", None)),
        &[
            "locks \"production\" is forbidden",
            "TaskRun/default/deploy-eu",
        ],
    );
    let held = rt
        .block_on(as_a1.get("Lock", "default", "production"))
        .expect("get lock");
    let mut taken = serde_json::to_value(&held).expect("json");
    taken["spec"]["holderIdentity"] = json!("a1");
    assert_forbidden(rt.block_on(as_a1.update(&taken)), &["production"]);
    assert_forbidden(
        rt.block_on(as_a1.create(&lock("for-a2", "TaskRun/default/deploy-eu"))),
        &["bound to agent \"a2\""],
    );
    assert_forbidden(
        rt.block_on(as_a1.create(&lock("as-a2", "a2"))),
        &["\"as-a2\"", "\"a2\""],
    );
    rt.block_on(as_a1.create(&lock("own", "a1")))
        .expect("a1 holds a lock for itself");
    rt.block_on(as_a1.delete("Lock", "default", "own", None))
        .expect("and deletes it");
    let still = rt
        .block_on(admin.get("Lock", "default", "production"))
        .expect("the lock is still there");
    assert_eq!(
        still.spec.get("holderIdentity"),
        Some(&json!("TaskRun/default/deploy-eu"))
    );
    // A Lua task's lock (held by its TaskRun, bound to a1) still works.
    let lua = ctl_lua(&url);
    assert!(lua.stdout.contains("locked"), "{lua:#?}");

    // A refused status write of a TaskRun bound to another agent, like
    // every refusal above, is audited exactly once.
    let bound = rt
        .block_on(admin.get("TaskRun", "default", "deploy-eu"))
        .expect("get");
    let mut forged = serde_json::to_value(&bound).expect("json");
    forged["status"] = json!({"phase": "Failed", "message": "forged"});
    assert_forbidden(
        rt.block_on(as_a1.update_status(&forged)),
        &["bound to agent"],
    );
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let refusals = |verb: &str, name: &str| {
        lines
            .iter()
            .filter(|l| {
                l["user"] == "agent:a1"
                    && l["verb"] == verb
                    && l["name"] == name
                    && l["result"] != "ok"
            })
            .count()
    };
    assert_eq!(refusals("updatestatus", "deploy-eu"), 1, "{lines:#?}");
    assert_eq!(refusals("delete", "production"), 1, "{lines:#?}");
    assert_eq!(refusals("create", "for-a2"), 1, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l["verb"] == "delete"
            && l["name"] == "production"
            && l["result"] == "forbidden"),
        "{lines:#?}"
    );
}

/// Runs a Lua task on a1 that takes a lock, as the admin.
fn ctl_lua(url: &str) -> Run {
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = temp.path().join("lua.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: lua-lock}\n\
         spec:\n  agentName: a1\n  run:\n    lua:\n      script: |\n        lock.with('deploy-lua', function() print('locked') end)\n",
    )
    .expect("write manifest");
    admin_ctl(url, &["apply", "-f", path(&manifest)]).ok();
    let waited = admin_ctl(url, &["wait", "taskrun", "lua-lock", "--timeout", "60s"]);
    assert_eq!(waited.code, 0, "{waited:#?}");
    admin_ctl(url, &["logs", "lua-lock"])
}

#[test]
fn a_task_whose_lock_is_deleted_is_stopped_with_reason_lock_lost() {
    let server = ApiServer::start_with(&["--controllers"]);
    let _agent = Agent::start(&server, "a1", &[]);
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = temp.path().join("wf.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata: {name: deploy}\n\
         spec:\n  tasks:\n    - name: deploy\n      locks: [production]\n      run: {shell: sleep 300}\n",
    )
    .expect("write manifest");
    ctl(&server, &["apply", "-f", path(&manifest)]).ok();
    let taskrun = wait_until(DEADLINE, || {
        let out = ctl(&server, &["get", "taskruns", "-o", "json"]);
        out.json()["items"].as_array()?.iter().find_map(|tr| {
            (tr["status"]["phase"] == "Running")
                .then(|| tr["metadata"]["name"].as_str().map(str::to_string))
                .flatten()
        })
    })
    .expect("the task runs");
    let holder = ctl(&server, &["get", "lock", "production", "-o", "json"]).ok();
    assert_eq!(
        holder.json()["spec"]["holderIdentity"],
        json!(format!("TaskRun/default/{taskrun}"))
    );

    ctl(&server, &["delete", "lock", "production"]).ok();
    let status = wait_until(DEADLINE, || {
        let tr = ctl(&server, &["get", "taskrun", &taskrun, "-o", "json"]).json();
        (tr["status"]["phase"] == "Failed").then(|| tr["status"].clone())
    })
    .expect("the task is stopped");
    assert_eq!(status["reason"], "LockLost", "{status:#}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("production")),
        "{status:#}"
    );
}

#[test]
fn a_lua_task_whose_lock_is_deleted_is_stopped_with_reason_lock_lost() {
    let server = ApiServer::start();
    let _agent = Agent::start(&server, "a1", &[]);
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = temp.path().join("lua.yaml");
    // A lease of 3 s is renewed every second: the loss is seen within one.
    std::fs::write(
        &manifest,
        "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: lua-holder}\n\
         spec:\n  agentName: a1\n  run:\n    lua:\n      script: |\n        \
         lock.acquire('db', {lease = 3})\n        print('holding')\n        \
         while true do time.sleep(0.1) end\n",
    )
    .expect("write manifest");
    ctl(&server, &["apply", "-f", path(&manifest)]).ok();
    wait_until(DEADLINE, || {
        let lock = ctl(&server, &["get", "lock", "db", "-o", "json"]);
        (lock.code == 0
            && lock.json()["spec"]["holderIdentity"] == json!("TaskRun/default/lua-holder"))
        .then_some(())
    })
    .expect("the Lua task holds the lock");

    ctl(&server, &["delete", "lock", "db"]).ok();
    let status = wait_until(DEADLINE, || {
        let tr = ctl(&server, &["get", "taskrun", "lua-holder", "-o", "json"]).json();
        (tr["status"]["phase"] == "Failed").then(|| tr["status"].clone())
    })
    .expect("the Lua task is stopped");
    assert_eq!(status["reason"], "LockLost", "{status:#}");
    // Stopped, not re-taken: the lock stays deleted.
    let lock = ctl(&server, &["get", "lock", "db"]);
    assert_ne!(lock.code, 0, "the lock was taken back: {lock:#?}");
}
