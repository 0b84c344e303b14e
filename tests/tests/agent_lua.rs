//! Lua payloads on the real `sloth-agent`: a TaskRun with `run.lua` runs
//! its script (or entry) with `(this, params, input)` and the modules;
//! `ok, message, results` become its status; `print`/`log.*` go to its log;
//! errors, timeouts and endless loops fail it with the right reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sloth_sdk::Api;
use sloth_sdk::objects::{AgentSpec, LuaPayload, Payload, TaskRunPhase, TaskRunStatus};
use sloth_tests::OneAgent;

fn lua(script: &str) -> LuaPayload {
    LuaPayload {
        script: script.to_string(),
        ..LuaPayload::default()
    }
}

/// Creates a Lua TaskRun bound to `a1` and waits until it finished.
fn run(c: &OneAgent, name: &str, payload: LuaPayload, timeout: Option<Duration>) -> TaskRunStatus {
    let payload = Payload {
        shell: None,
        lua: Some(payload),
        command: None,
    };
    c.run(name, payload, timeout).status_or_default()
}

/// The whole output of a finished TaskRun, through the apiserver.
fn logs(c: &OneAgent, name: &str) -> String {
    c.rt.block_on(sloth_tests::read_logs(&c.client, "default", name, 0))
}

#[test]
fn exec_print_and_results_make_a_succeeded_taskrun() {
    let c = OneAgent::start();
    let status = run(
        &c,
        "greet",
        lua(r#"
            local this, params, input = ...
            local out = exec.run("echo hi")
            print("hello from " .. this.taskrun .. " on " .. this.agent)
            log.info("exit code " .. out.exit_code)
            return true, "done", {greeting = out.stdout, ok = out.success, n = 2}
        "#),
        None,
    );
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    assert_eq!(status.reason, "Completed");
    assert_eq!(status.message, "done");
    assert_eq!(status.results["greeting"], "hi\n");
    assert_eq!(status.results["ok"], "true");
    assert_eq!(status.results["n"], "2");
    let tail = status.log_tail.as_deref().unwrap_or_default();
    assert!(tail.contains("hello from greet on a1\n"), "{tail}");
    assert!(tail.contains("[INFO] exit code 0\n"), "{tail}");
    let log = logs(&c, "greet");
    assert_eq!(log, "hello from greet on a1\n[INFO] exit code 0\n");
}

#[test]
fn returning_false_fails_with_the_message() {
    let c = OneAgent::start();
    let status = run(&c, "full", lua(r#"return false, "disk full""#), None);
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "Error");
    assert_eq!(status.message, "disk full");
}

#[test]
fn an_endless_loop_is_stopped_by_the_timeout() {
    let c = OneAgent::start();
    let started = Instant::now();
    let status = run(
        &c,
        "endless",
        lua("while true do end"),
        Some(Duration::from_secs(2)),
    );
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "TimedOut");
    assert!(
        status.message.contains("timed out after 2s"),
        "{}",
        status.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn lua_errors_fail_with_the_line_and_the_traceback() {
    let c = OneAgent::start();
    let status = run(&c, "syntax", lua("local x = 1\nlocal y = = 2\n"), None);
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "LuaError");
    assert!(
        status.message.contains("syntax.lua:2:"),
        "{}",
        status.message
    );
    let log = logs(&c, "syntax");
    assert!(log.contains(&status.message), "{log}");

    let status = run(
        &c,
        "runtime",
        lua("local t = nil\n\nreturn t.field\n"),
        None,
    );
    assert_eq!(status.reason, "LuaError", "{status:#?}");
    assert!(
        status
            .message
            .starts_with("runtime.lua:3: attempt to index"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("stack traceback:"),
        "{}",
        status.message
    );
}

#[test]
fn entry_params_and_input_reach_the_function() {
    let c = OneAgent::start();
    let mut payload = lua(r#"
        function main(this, params, input)
          local text = template.render("{{ app }} {{ build.version }}", {app = params.app, build = input.build})
          fs.write("out.txt", text)
          return true, fs.read("out.txt"), {attempt = this.attempt}
        end
    "#);
    payload.entry = Some("main".into());
    payload.params = BTreeMap::from([("app".to_string(), serde_json::json!("web"))]);
    payload.input = BTreeMap::from([(
        "build".to_string(),
        BTreeMap::from([("version".to_string(), "1.2.3".to_string())]),
    )]);
    let status = run(&c, "entry", payload, None);
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    assert_eq!(status.message, "web 1.2.3");
    assert_eq!(status.results["attempt"], "0");
}

#[test]
fn invalid_results_fail_naming_the_problem() {
    let c = OneAgent::start();
    let status = run(
        &c,
        "nested",
        lua(r#"return true, "x", {info = {a = 1}}"#),
        None,
    );
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "InvalidResults");
    assert!(status.message.contains("\"info\""), "{}", status.message);
}

#[test]
fn a_workflow_file_task_is_called_by_its_entry() {
    let c = OneAgent::start();
    let mut payload = lua(r#"
        local function suffix() return "!" end
        local build = task("build")
          :command(function(this, params, input)
            return true, "built" .. suffix(), { where = this.agent }
          end)
          :build()
        workflow.define("ci", { tasks = { build } })
    "#);
    payload.entry = Some("ci/build".into());
    let status = run(&c, "dsl", payload, None);
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
    assert_eq!(status.message, "built!");
    assert_eq!(status.results["where"], "a1");
}

#[test]
fn the_agent_carries_its_name_label() {
    let c = OneAgent::start();
    let agents: Api<AgentSpec> = Api::all(c.client.clone());
    let agent = c.rt.block_on(agents.get("a1")).expect("agent a1");
    assert_eq!(
        agent
            .metadata
            .labels
            .get("sloth.dev/agent")
            .map(String::as_str),
        Some("a1"),
        "{:?}",
        agent.metadata.labels
    );
}
