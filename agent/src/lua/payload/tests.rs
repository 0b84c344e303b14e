use super::*;
use sloth_sdk::objects::LuaPayload;
use std::time::{Duration, Instant};

fn job(dir: &std::path::Path, script: &str, entry: Option<&str>) -> LuaJob {
    LuaJob {
        payload: LuaPayload {
            script: script.into(),
            entry: entry.map(str::to_string),
            params: BTreeMap::from([("name".to_string(), serde_json::json!("world"))]),
            input: BTreeMap::from([(
                "build".to_string(),
                BTreeMap::from([("version".to_string(), "1.2.3".to_string())]),
            )]),
            modules: Default::default(),
        },
        namespace: "default".into(),
        taskrun: "t1".into(),
        agent: "a1".into(),
        attempt: 2,
        cwd: dir.to_path_buf(),
        output: dir.join("output.log"),
        pid_file: Some(dir.join("pgid")),
        env: vec![("GREETING".into(), "hello".into())],
        timeout: Some(Duration::from_secs(20)),
        client: None,
        supervision: crate::supervisor::Supervision::unfenced(),
        secrets: Default::default(),
        masks: Default::default(),
        check_mode: false,
        metrics: crate::lua::MetricsSink::default(),
        hook_failures: Default::default(),
    }
}

#[test]
fn secrets_are_read_from_lua_and_masked_in_output_message_and_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut job = job(
        dir.path(),
        r#"
        local pw = secret.get("db", "password")
        print("pw is " .. pw .. " and " .. secrets.db.password)
        local ok, err = pcall(secret.get, "other", "k")
        print(err)
        return true, "used " .. pw, { leaked = pw }
        "#,
        None,
    );
    job.secrets = BTreeMap::from([(
        "db".to_string(),
        BTreeMap::from([("password".to_string(), b"hunter2".to_vec())]),
    )]);
    job.masks = crate::masking::Masks::new([&b"hunter2"[..]]);
    let outcome = run_blocking(job, None, None);
    let log = std::fs::read_to_string(dir.path().join("output.log")).expect("log");
    assert!(log.contains("pw is *** and ***"), "{log}");
    assert!(log.contains("\"other\" is not delivered"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    let LuaOutcome::Returned {
        ok,
        message,
        results,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(ok);
    assert_eq!(message, "used ***");
    assert_eq!(results["leaked"], "***");
}

fn run_script(script: &str, entry: Option<&str>) -> (LuaOutcome, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = job(dir.path(), script, entry);
    let outcome = run_blocking(j, None, None);
    let log = std::fs::read_to_string(dir.path().join("output.log")).unwrap_or_default();
    (outcome, log)
}

fn returned_ok(outcome: &LuaOutcome) -> (&str, &BTreeMap<String, String>) {
    match outcome {
        LuaOutcome::Returned {
            ok: true,
            message,
            results,
        } => (message, results),
        other => panic!("not a success: {other:?}"),
    }
}

#[test]
fn top_level_code_gets_this_params_and_input() {
    let (outcome, log) = run_script(
        r#"local this, params, input = ...
        print("hi", params.name, 3)
        return true, "done " .. this.taskrun .. " " .. this.attempt,
          {version = input.build.version, n = 3, x = 1.5, yes = true, agent = this.agent}"#,
        None,
    );
    let (message, results) = returned_ok(&outcome);
    assert_eq!(message, "done t1 2");
    assert_eq!(results["version"], "1.2.3");
    assert_eq!(results["n"], "3");
    assert_eq!(results["x"], "1.5");
    assert_eq!(results["yes"], "true");
    assert_eq!(results["agent"], "a1");
    assert_eq!(log, "hi\tworld\t3\n");
}

#[test]
fn a_returned_function_is_called() {
    let (outcome, _) = run_script(
        "return function(this, params, input) return true, params.name end",
        None,
    );
    assert_eq!(returned_ok(&outcome).0, "world");
}

#[test]
fn entry_names_a_global_function() {
    let script = r#"
        jobs = {}
        function jobs.build(this, params) return true, "built " .. params.name end
        function main(this) return false, "main failed" end"#;
    let (outcome, _) = run_script(script, Some("jobs.build"));
    assert_eq!(returned_ok(&outcome).0, "built world");
    let (outcome, _) = run_script(script, Some("main"));
    assert!(
        matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "main failed"),
        "{outcome:?}"
    );
    let (outcome, _) = run_script(script, Some("jobs.missing"));
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("\"jobs.missing\" is not a function")),
        "{outcome:?}"
    );
    let (outcome, _) = run_script(script, Some("main.x.y"));
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("main is a function, not a table")),
        "{outcome:?}"
    );
}

#[test]
fn nothing_returned_succeeds_and_nil_with_message_fails() {
    let (outcome, _) = run_script("local x = 1", None);
    assert_eq!(returned_ok(&outcome).0, "the Lua code completed");
    let (outcome, _) = run_script("return nil, 'nope'", None);
    assert!(
        matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "nope"),
        "{outcome:?}"
    );
    let (outcome, _) = run_script("return false", None);
    assert!(
        matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "the Lua code returned false"),
        "{outcome:?}"
    );
}

#[test]
fn bad_results_are_refused_by_name() {
    for (script, want) in [
        (
            "return true, 'x', {a = {b = 1}}",
            "result \"a\" is a nested table",
        ),
        ("return true, 'x', {1, 2}", "result key 1 is a number"),
        (
            "return true, 'x', 'str'",
            "results must be a table, got string",
        ),
        (
            "return true, 'x', {['bad key'] = 1}",
            "bad result: invalid key \"bad key\"",
        ),
        (
            "return true, 'x', {f = print}",
            "result \"f\" is a function",
        ),
        (
            "local r = {} for i = 1, 65 do r['k' .. i] = 'v' end return true, 'x', r",
            "too many results (at most 64)",
        ),
        (
            "return true, 'x', {k = string.rep('x', 17000)}",
            "results too large",
        ),
    ] {
        let (outcome, log) = run_script(script, None);
        assert!(
            matches!(&outcome, LuaOutcome::InvalidResults(m) if m.contains(want)),
            "{script}: {outcome:?}"
        );
        assert!(log.contains(want), "{log}");
    }
}

#[test]
fn errors_carry_the_line_and_a_traceback_and_go_to_the_log() {
    let (outcome, log) = run_script("local x = 1\nlocal y = = 2", None);
    let LuaOutcome::Error(message) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("t1.lua:2:"), "{message}");
    assert!(log.contains(message.as_str()), "{log}");
    let (outcome, log) = run_script("local x = 1\n\nerror('boom')", None);
    let LuaOutcome::Error(message) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(message.starts_with("t1.lua:3: boom"), "{message}");
    assert!(message.contains("stack traceback:"), "{message}");
    assert!(log.contains("t1.lua:3: boom"), "{log}");
    let (outcome, _) = run_script("local x = nil\nreturn x.y", None);
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("t1.lua:2: attempt to index")),
        "{outcome:?}"
    );
    let (outcome, _) = run_script(
        "lock.with = nil\nlocal function f()\n  error('inner')\nend\nlocal ok = pcall(f)\nreturn json.encode(setmetatable({}, {__index = function() f() end}).x)",
        None,
    );
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.starts_with("t1.lua:3: inner")),
        "{outcome:?}"
    );
    let (outcome, _) = run_script("\n\nexec.run(42)", None);
    let LuaOutcome::Error(message) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        message.starts_with("t1.lua:3: exec.run: argument 1 (cmd) must be a string, got number"),
        "{message}"
    );
}

#[test]
fn endless_loops_time_out_even_under_pcall_and_in_coroutines() {
    for script in [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "coroutine.wrap(function() while true do end end)()",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
        "time.sleep(100)",
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = job(dir.path(), script, None);
        j.timeout = Some(Duration::from_millis(300));
        let started = Instant::now();
        let outcome = run_blocking(j, None, None);
        assert_eq!(outcome, LuaOutcome::TimedOut, "{script}");
        assert!(started.elapsed() < Duration::from_secs(5), "{script}");
    }
}

#[test]
fn a_stop_interrupts_the_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = job(dir.path(), "while true do end", None);
    j.timeout = None;
    let (tx, rx) = watch::channel(None);
    let thread = std::thread::spawn(move || run_blocking(j, Some(rx), None));
    std::thread::sleep(Duration::from_millis(100));
    tx.send_replace(Some(StopReason::Deleted));
    let outcome = thread.join().expect("thread");
    assert_eq!(outcome, LuaOutcome::Stopped(StopReason::Deleted));
}

#[test]
fn a_caught_memory_error_stops_the_code() {
    let (outcome, _) = run_script(
        "while true do pcall(function() local t = {} \
         while true do t[#t+1] = string.rep('x', 1e6) end end) end",
        None,
    );
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("memory limit of 256 MiB")),
        "{outcome:?}"
    );
}

#[test]
fn memory_is_limited() {
    let (outcome, _) = run_script(
        "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end",
        None,
    );
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("memory")),
        "{outcome:?}"
    );
}

#[test]
fn dangerous_functions_are_replaced() {
    for (script, want) in [
        ("os.exit(1)", "os.exit is not available"),
        ("os.execute('true')", "use exec.run"),
        ("io.popen('true')", "use exec.run"),
        ("io.read()", "no standard input"),
    ] {
        let (outcome, _) = run_script(script, None);
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains(want)),
            "{script}: {outcome:?}"
        );
    }
    let (outcome, log) = run_script(
        "env.set('X_SLOTH', 'y') io.write('a', 1, '\\n') return true, os.getenv('X_SLOTH') .. os.getenv('GREETING')",
        None,
    );
    assert_eq!(returned_ok(&outcome).0, "yhello");
    assert_eq!(log, "a1\n");
}

#[test]
fn modules_are_requirable() {
    let (outcome, _) = run_script(
        "local fs = require('fs') local j = require('json') return fs == _G.fs and j == json, 'm'",
        None,
    );
    assert_eq!(returned_ok(&outcome).0, "m");
}

#[test]
fn dsl_entries_call_the_task_function_of_a_workflow_file() {
    let file = r#"
        local function version() return "1.2.3" end
        local build = task("build_app")
          :command(function(this, params, input)
            local out = exec.run("echo built")
            log.info("building " .. params.name)
            return true, out.stdout:gsub("\n", ""), { version = version(), from = input.build.version }
          end)
          :build()
        local broken = task("broken")
          :command(function() local x = nil; return x.y end)
          :build()
        workflow.define("ci_pipeline"):tasks({ build, broken })
    "#;
    let (outcome, log) = run_script(file, Some("ci-pipeline/build_app"));
    let (message, results) = returned_ok(&outcome);
    assert_eq!(message, "built");
    assert_eq!(results["version"], "1.2.3");
    assert_eq!(results["from"], "1.2.3");
    assert!(log.contains("[INFO] building world"), "{log}");
    let (outcome, _) = run_script(file, Some("ci-pipeline/broken"));
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("t1.lua:11: attempt to index")),
        "{outcome:?}"
    );
    let (outcome, _) = run_script(file, Some("ci-pipeline/missing"));
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("missing")),
        "{outcome:?}"
    );
    let (outcome, _) = run_script("task(", Some("w/t"));
    assert!(
        matches!(&outcome, LuaOutcome::Error(m) if m.contains("t1.lua:1:")),
        "{outcome:?}"
    );
}

#[test]
fn dsl_tasks_decide_by_exec_tables_fail_on_nil_and_legacy_gets_params_first() {
    let file = r#"
        workflow.define("w"):tasks({
          task("table_ok"):command(function() return { success = true, stdout = "out\n", exit_code = 0 } end):build(),
          task("table_bad"):command(function() return { success = false, stderr = "bad\n", exit_code = 2 } end):build(),
          task("nothing"):command(function() end):build(),
        })
        TaskDefinitions = { g = { tasks = { { name = "legacy",
          command = function(params, input) return true, params.name .. " " .. input.build.version end } } } }
    "#;
    let (outcome, _) = run_script(file, Some("w/table_ok"));
    assert_eq!(returned_ok(&outcome).0, "exit code 0\nout");
    let (outcome, _) = run_script(file, Some("w/table_bad"));
    assert!(
        matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "exit code 2\nbad"),
        "{outcome:?}"
    );
    let (outcome, _) = run_script(file, Some("w/nothing"));
    assert!(
        matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. }
            if message.starts_with("t1.lua:5: the task's function returned nil")),
        "{outcome:?}"
    );
    let (outcome, _) = run_script(file, Some("g/legacy"));
    assert_eq!(returned_ok(&outcome).0, "world 1.2.3");
}
