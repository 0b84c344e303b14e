//! The state store end to end, with real processes: `slothctl state` and
//! Lua's `state` module on a real agent; 20 concurrent increments (CLI
//! processes and Lua TaskRuns) giving exactly 20; a TTL read as absent the
//! moment it is due (before any controller deletes it), then deleted by
//! the controller; compare-and-swap refusing a stale value; entries kept
//! across an apiserver restart; bad input refused with the field named and
//! nothing written; viewers read but cannot write; an agent writes only for
//! the TaskRuns bound to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sloth_sdk::state::entry_name;
use sloth_sdk::{Client, Error};
use sloth_tests::{
    Agent, ApiServer, CTL_DEADLINE, Run, binary, client_with_token, ctl, run_to_end, runtime,
    wait_until,
};

const DEADLINE: Duration = Duration::from_secs(60);
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
const A1_TOKEN: &str = "agent-a1-token-0123456789abcdef";

/// `slothctl state ARGS` against `server`, without credentials.
fn state(server: &ApiServer, args: &[&str]) -> Run {
    let mut all = vec!["state"];
    all.extend_from_slice(args);
    ctl(server, &all)
}

#[test]
fn cli_state_reads_writes_and_refuses_bad_input() {
    let mut server = ApiServer::start();

    // Values typed like JSON; keys with `/` and `.`.
    state(&server, &["set", "app/db.host", "db-1.internal"]).ok();
    state(&server, &["set", "app/replicas", "3"]).ok();
    state(
        &server,
        &["set", "app/cfg", r#"{"tier":"gold","zones":["a","b"]}"#],
    )
    .ok();
    state(&server, &["set", "app/flag", "true"]).ok();
    state(&server, &["set", "other", "x"]).ok();
    let got = state(&server, &["get", "app/db.host"]).ok();
    assert_eq!(got.stdout, "db-1.internal\n");
    let cfg = state(&server, &["get", "app/cfg"]).ok();
    assert_eq!(
        serde_json::from_str::<Value>(&cfg.stdout).expect("json"),
        json!({"tier": "gold", "zones": ["a", "b"]})
    );
    let list = state(&server, &["list", "app/"]).ok();
    let lines = list.lines();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["KEY", "VALUE", "AGE", "EXPIRES"], "{list:#?}");
    let keys: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        ["app/cfg", "app/db.host", "app/flag", "app/replicas"],
        "{list:#?}"
    );
    assert!(lines[4].contains("<none>"), "{list:#?}");
    // The entries are ordinary objects.
    let raw = ctl(
        &server,
        &["get", "state", &entry_name("app/replicas"), "-o", "json"],
    )
    .ok();
    assert_eq!(
        raw.json()["spec"],
        json!({"key": "app/replicas", "value": 3})
    );

    // Missing keys: exit 1.
    state(&server, &["get", "nope"]).code(1);
    state(&server, &["delete", "nope"]).code(1);
    state(&server, &["delete", "other"]).ok();
    state(&server, &["get", "other"]).code(1);

    // Namespaces are separate.
    ctl(
        &server,
        &["state", "set", "app/replicas", "9", "-n", "team-a"],
    )
    .ok();
    let other_ns = ctl(&server, &["state", "get", "app/replicas", "-n", "team-a"]).ok();
    assert_eq!(other_ns.stdout, "9\n");
    assert_eq!(state(&server, &["get", "app/replicas"]).ok().stdout, "3\n");

    // Bad input: exit 2, the field named, nothing written.
    for (args, field) in [
        (&["set", "t", "v", "--ttl", "0"][..], "--ttl"),
        (&["set", "t", "v", "--ttl", "-5s"][..], "--ttl"),
        (&["set", "t", "v", "--ttl", "soon"][..], "--ttl"),
        (&["set", "t", "null"][..], "VALUE"),
        (
            &["set", "bad\u{7}key", "v"][..],
            "key: must not contain control",
        ),
        (&["set", "", "v"][..], "key: must not be empty"),
        (&["incr", "t", "x"][..], "BY"),
    ] {
        let out = state(&server, args).code(2);
        assert!(out.stderr.contains(field), "{args:?}: {out:#?}");
    }
    state(&server, &["get", "t"]).code(1);
    // Incrementing a non-integer fails and keeps the value.
    let out = state(&server, &["incr", "app/db.host"]).code(1);
    assert!(out.stderr.contains("not an integer"), "{out:#?}");
    assert_eq!(
        state(&server, &["get", "app/db.host"]).ok().stdout,
        "db-1.internal\n"
    );

    // Compare-and-swap: a stale OLD is refused and changes nothing.
    state(&server, &["cas", "app/replicas", "3", "4"]).ok();
    let stale = state(&server, &["cas", "app/replicas", "3", "5"]).code(1);
    assert!(stale.stderr.contains("is not 3"), "{stale:#?}");
    assert_eq!(state(&server, &["get", "app/replicas"]).ok().stdout, "4\n");
    state(&server, &["cas", "app/db.host", "db-1.internal", "db-2"]).ok();
    assert_eq!(
        state(&server, &["get", "app/db.host"]).ok().stdout,
        "db-2\n"
    );

    // 20 concurrent slothctl processes incrementing one key: exactly 20,
    // each printing a distinct new value.
    let children: Vec<_> = (0..20)
        .map(|_| {
            let mut cmd = sloth_tests::slothctl(&server);
            cmd.args(["state", "incr", "hits"]);
            std::thread::spawn(move || run_to_end(cmd, None, CTL_DEADLINE))
        })
        .collect();
    let mut printed: Vec<i64> = children
        .into_iter()
        .map(|c| {
            let run = c.join().expect("incr thread").ok();
            run.stdout.trim().parse().expect("a number")
        })
        .collect();
    printed.sort_unstable();
    assert_eq!(printed, (1..=20).collect::<Vec<i64>>());
    assert_eq!(state(&server, &["get", "hits"]).ok().stdout, "20\n");
    assert_eq!(state(&server, &["incr", "hits", "-5"]).ok().stdout, "15\n");

    // A TTL: present, then absent for every reader the moment it is due;
    // no controller runs here, so the object itself is still stored.
    state(&server, &["set", "lease", "held", "--ttl", "2s"]).ok();
    let listed = state(&server, &["list", "lease"]).ok();
    assert!(listed.stdout.contains("held"), "{listed:#?}");
    wait_until(DEADLINE, || {
        (state(&server, &["get", "lease"]).code == 1).then_some(())
    })
    .expect("the key reads as absent once its TTL is due");
    assert_eq!(state(&server, &["list", "lease"]).ok().lines().len(), 1);
    let stored = ctl(
        &server,
        &["get", "state", &entry_name("lease"), "-o", "json"],
    )
    .ok();
    assert_eq!(stored.json()["spec"]["value"], "held");
    // An expired key counts from 0 again.
    state(&server, &["set", "ticks", "41", "--ttl", "1s"]).ok();
    wait_until(DEADLINE, || {
        (state(&server, &["get", "ticks"]).code == 1).then_some(())
    })
    .expect("ticks expires");
    assert_eq!(state(&server, &["incr", "ticks"]).ok().stdout, "1\n");

    // A restart keeps every entry.
    server.restart();
    assert_eq!(state(&server, &["get", "hits"]).ok().stdout, "15\n");
    assert_eq!(state(&server, &["get", "app/replicas"]).ok().stdout, "4\n");
    let after = ctl(&server, &["state", "get", "app/replicas", "-n", "team-a"]).ok();
    assert_eq!(after.stdout, "9\n");
}

fn tokens_file(dir: &Path) -> PathBuf {
    let path = dir.join("tokens.csv");
    std::fs::write(
        &path,
        format!(
            "{ADMIN_TOKEN},alice,admin\n{VIEWER_TOKEN},vera,viewer\n{A1_TOKEN},agent:a1,agent\n"
        ),
    )
    .expect("write tokens");
    path
}

/// `slothctl --token TOKEN state ARGS`.
fn state_as(url: &str, token: &str, args: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(binary("slothctl"));
    cmd.args(["--server", url, "--token", token, "state"])
        .args(args)
        .env("HOME", home.path())
        .env_remove("SLOTH_SERVER")
        .env_remove("SLOTH_TOKEN");
    run_to_end(cmd, None, CTL_DEADLINE)
}

/// Creates a Lua TaskRun bound to `a1`.
fn lua_taskrun(admin: &Client, rt: &tokio::runtime::Runtime, ns: &str, name: &str, script: &str) {
    rt.block_on(admin.create(&json!({
        "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"run": {"lua": {"script": script}}, "agentName": "a1"}
    })))
    .unwrap_or_else(|e| panic!("create {ns}/{name}: {e}"));
}

/// Waits until TaskRun `ns/name` finished; its status.
fn finished(
    admin: &Client,
    rt: &tokio::runtime::Runtime,
    ns: &str,
    name: &str,
    agent: &Agent,
) -> Value {
    wait_until(DEADLINE, || {
        let tr = rt.block_on(admin.get("TaskRun", ns, name)).ok()?;
        matches!(tr.status["phase"].as_str(), Some("Succeeded" | "Failed")).then_some(tr.status)
    })
    .unwrap_or_else(|| panic!("{ns}/{name} never finished; agent log:\n{}", agent.log()))
}

const LUA_ALL: &str = r#"
state.set("app/db.host", "db1")
state.set("app/replicas", 3)
state.set("app/cfg", {tier = "gold", zones = {"a", "b"}})
state.set_with_ttl("app/tmp", "x", 300)
local r = {}
r.host = state.get("app/db.host")
r.missing = state.get("nope", "dflt")
r.exists = tostring(state.exists("app/replicas"))
r.absent = tostring(state.exists("nope"))
r.keys = table.concat(state.keys("app/"), ",")
r.inc = tostring(state.increment("app/replicas", 2))
r.cas_ok = tostring(state.compare_and_swap("app/replicas", 5, 6))
r.cas_stale = tostring(state.compare_and_swap("app/replicas", 5, 7))
r.cas_new = tostring(state.compare_and_swap("fresh", nil, "first"))
r.deleted = tostring(state.delete("app/tmp"))
r.tier = state.get("app/cfg").tier
local s = require("state")
s.set("gone/a", 1)
s.set("gone/b", 2)
r.cleared = tostring(s.clear("gone/"))
r.left = tostring(#s.keys("gone/"))
return true, "ok", r
"#;

#[test]
fn lua_state_rbac_and_expiry_by_the_controller() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_file(temp.path());
    let tokens = tokens.to_str().expect("utf-8 path");
    let server = ApiServer::start_with(&["--controllers", "--token-file", tokens]);
    let url = server.grpc_url().to_string();
    let agent = Agent::start(&server, "a1", &["--token", A1_TOKEN, "--capacity", "20"]);
    let rt = runtime();
    let _in_runtime = rt.enter();
    let admin = client_with_token(&url, ADMIN_TOKEN);

    // Every function of the module, in one TaskRun.
    lua_taskrun(&admin, &rt, "default", "all", LUA_ALL);
    let status = finished(&admin, &rt, "default", "all", &agent);
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let results = &status["results"];
    for (name, want) in [
        ("host", "db1"),
        ("missing", "dflt"),
        ("exists", "true"),
        ("absent", "false"),
        ("keys", "app/cfg,app/db.host,app/replicas,app/tmp"),
        ("inc", "5"),
        ("cas_ok", "true"),
        ("cas_stale", "false"),
        ("cas_new", "true"),
        ("deleted", "true"),
        ("tier", "gold"),
        ("cleared", "2"),
        ("left", "0"),
    ] {
        assert_eq!(results[name], want, "{name}: {status:#}");
    }
    // What Lua wrote, the CLI reads (and a viewer may read it).
    assert_eq!(
        state_as(&url, VIEWER_TOKEN, &["get", "app/replicas"])
            .ok()
            .stdout,
        "6\n"
    );
    assert_eq!(
        state_as(&url, VIEWER_TOKEN, &["get", "fresh"]).ok().stdout,
        "first\n"
    );
    state_as(&url, VIEWER_TOKEN, &["get", "app/tmp"]).code(1);

    // A TaskRun writes its own namespace.
    lua_taskrun(
        &admin,
        &rt,
        "team-a",
        "ns",
        r#"state.set("where", "team-a") return true"#,
    );
    assert_eq!(
        finished(&admin, &rt, "team-a", "ns", &agent)["phase"],
        "Succeeded"
    );
    let here = state_as(&url, ADMIN_TOKEN, &["get", "where", "-n", "team-a"]).ok();
    assert_eq!(here.stdout, "team-a\n");
    state_as(&url, ADMIN_TOKEN, &["get", "where"]).code(1);

    // 20 Lua TaskRuns incrementing one key at once: exactly 20.
    for i in 0..20 {
        lua_taskrun(
            &admin,
            &rt,
            "default",
            &format!("inc-{i}"),
            r#"return true, "ok", {n = tostring(state.increment("lua/hits"))}"#,
        );
    }
    let mut seen: Vec<i64> = (0..20)
        .map(|i| {
            let status = finished(&admin, &rt, "default", &format!("inc-{i}"), &agent);
            assert_eq!(status["phase"], "Succeeded", "{status:#}");
            status["results"]["n"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("n")
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<i64>>());
    assert_eq!(
        state_as(&url, ADMIN_TOKEN, &["get", "lua/hits"])
            .ok()
            .stdout,
        "20\n"
    );

    // A viewer cannot write: forbidden, nothing changed.
    for args in [
        &["set", "lua/hits", "0"][..],
        &["incr", "lua/hits"][..],
        &["delete", "lua/hits"][..],
    ] {
        let out = state_as(&url, VIEWER_TOKEN, args).code(1);
        assert!(out.stderr.contains("forbidden"), "{args:?}: {out:#?}");
    }
    assert_eq!(
        state_as(&url, VIEWER_TOKEN, &["get", "lua/hits"])
            .ok()
            .stdout,
        "20\n"
    );

    // The agent's own credentials write only for a TaskRun bound to it, in
    // that TaskRun's namespace.
    let as_a1 = client_with_token(&url, A1_TOKEN);
    rt.block_on(admin.create(&json!({
        "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
        "metadata": {"name": "elsewhere", "namespace": "default"},
        "spec": {"run": {"shell": "true"}, "agentName": "a2"}
    })))
    .expect("a TaskRun bound to a2");
    let entry = |key: &str, by: Option<&str>| {
        json!({
            "apiVersion": "sloth.dev/v1", "kind": "StateEntry",
            "metadata": {"name": entry_name(key), "namespace": "default"},
            "spec": {"key": key, "value": 1, "updatedBy": by}
        })
    };
    for (by, words) in [
        (None, "TaskRun/NAMESPACE/NAME"),
        (Some("TaskRun/default/elsewhere"), "bound to agent \"a2\""),
        (Some("TaskRun/team-a/ns"), "own namespace"),
    ] {
        let e = rt
            .block_on(as_a1.create(&entry("forged", by)))
            .expect_err("refused");
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        assert!(e.to_string().contains(words), "{words:?} not in {e}");
    }
    rt.block_on(as_a1.create(&entry("forged", Some("TaskRun/default/all"))))
        .expect("for a TaskRun bound to a1");
    let stamped = rt
        .block_on(admin.get("StateEntry", "default", &entry_name("lua/hits")))
        .expect("lua/hits");
    let e = rt
        .block_on(as_a1.delete("StateEntry", "default", &entry_name("fresh"), None))
        .map(|_| ());
    // Written last by TaskRun "all", bound to a1: its agent may delete it.
    e.expect("delete an entry a bound TaskRun wrote");
    assert!(
        stamped.spec["updatedBy"]
            .as_str()
            .is_some_and(|u| u.starts_with("TaskRun/default/inc-"))
    );

    // The controller deletes an expired entry.
    state_as(&url, ADMIN_TOKEN, &["set", "short", "x", "--ttl", "1s"]).ok();
    wait_until(DEADLINE, || {
        matches!(
            rt.block_on(admin.get("StateEntry", "default", &entry_name("short"))),
            Err(Error::NotFound(_))
        )
        .then_some(())
    })
    .expect("the state controller deletes the expired entry");
}
