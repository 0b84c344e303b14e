//! Tests of the Lua DSL reader; the sloth-runner forms in `tests/compat.rs`.

use std::collections::BTreeMap;

use super::*;
use crate::objects::common::PlacementPolicy;
use crate::well_known::{DESCRIPTION_ANNOTATION, ORIGINAL_NAME_ANNOTATION, VERSION_ANNOTATION};

mod compat;

fn eval(source: &str) -> Result<Vec<Workflow>, DslError> {
    evaluate(source, "pipeline.lua", &BTreeMap::new())
}

fn eval_ok(source: &str) -> Vec<Workflow> {
    eval(source).expect("the file evaluates")
}

fn eval_err(source: &str) -> DslError {
    eval(source).expect_err("the file is refused")
}

const FLUENT: &str = r#"
local function helper() return "x" end
local build = task("build_it")
  :description("Build it")
  :command("make build")
  :timeout("5m")
  :retries(2)
  :workdir("/src")
  :env({ CC = "gcc", N = 3 })
  :delegate_to("builder-1")
  :build()
local test = task("test")
  :command(function(this, params, input) return true, helper() end)
  :depends_on({ "build_it" })
  :agent_selector({ os = "linux" })
  :placement("Spread")
  :build()
workflow.define("ci_pipeline")
  :description("CI")
  :version("1.0")
  :tasks({ build, test })
"#;

#[test]
fn fluent_form_maps_every_method() {
    let wfs = eval_ok(FLUENT);
    assert_eq!(wfs.len(), 1);
    let wf = &wfs[0];
    assert_eq!(wf.metadata.name, "ci-pipeline");
    assert_eq!(wf.metadata.namespace, "");
    assert_eq!(wf.metadata.annotations[DESCRIPTION_ANNOTATION], "CI");
    assert_eq!(wf.metadata.annotations[VERSION_ANNOTATION], "1.0");
    let build = &wf.spec.tasks[0];
    assert_eq!(build.name, "build_it");
    assert_eq!(build.run.shell.as_deref(), Some("make build"));
    assert_eq!(build.timeout.map(|d| d.as_std().as_secs()), Some(300));
    assert_eq!(build.retries.as_ref().map(|r| r.limit), Some(2));
    assert_eq!(build.workdir.as_deref(), Some("/src"));
    assert_eq!(build.env["N"], "3");
    assert_eq!(
        build
            .agent_selector
            .as_ref()
            .expect("selector")
            .match_labels[AGENT_LABEL],
        "builder-1"
    );
    let test = &wf.spec.tasks[1];
    assert_eq!(test.depends_on, ["build_it"]);
    let lua = test.run.lua.as_ref().expect("a Lua payload");
    assert_eq!(lua.script, FLUENT);
    assert_eq!(lua.entry.as_deref(), Some("ci_pipeline/test"));
    assert_eq!(
        test.agent_selector.as_ref().expect("selector").match_labels["os"],
        "linux"
    );
    assert_eq!(
        test.placement.as_ref().map(|p| p.policy),
        Some(PlacementPolicy::Spread)
    );
}

#[test]
fn define_with_options_and_builder_without_terminal_call() {
    let wfs = eval_ok(
        r#"
workflow.define("one", {
  description = "first",
  params = { env = "staging", n = 2 },
  tasks = { task("a"):command("echo a"), { name = "b", command = "echo b", depends_on = { "a" } } },
})
workflow.define("two"):tasks({ task("c"):command("echo c") })
"#,
    );
    assert_eq!(
        wfs.iter()
            .map(|w| w.metadata.name.as_str())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(wfs[0].spec.params["env"], "staging");
    assert_eq!(wfs[0].spec.params["n"], "2");
    assert_eq!(wfs[0].spec.tasks[1].depends_on, ["a"]);
    assert_eq!(wfs[1].spec.tasks[0].name, "c");
}

#[test]
fn task_definitions_make_one_workflow_per_group() {
    let wfs = eval_ok(
        r#"
TaskDefinitions = {
  deploy_app = {
    description = "Deploy",
    delegate_to = "web_1",
    tasks = {
      { name = "fetch_code", command = "git pull", timeout = "1m" },
      { name = "restart", command = function() return true end, depends_on = { "fetch_code" }, retries = 1 },
    },
  },
  backup = { tasks = { { name = "dump", command = "pg_dump", delegate_to = "db" } } },
}
"#,
    );
    assert_eq!(
        wfs.iter()
            .map(|w| w.metadata.name.as_str())
            .collect::<Vec<_>>(),
        ["backup", "deploy-app"]
    );
    let deploy = &wfs[1];
    assert_eq!(deploy.spec.tasks[0].name, "fetch_code");
    assert_eq!(deploy.spec.tasks[1].depends_on, ["fetch_code"]);
    assert_eq!(
        deploy.spec.tasks[1]
            .run
            .lua
            .as_ref()
            .and_then(|l| l.entry.as_deref()),
        Some("deploy_app/restart")
    );
    let selector = |w: &Workflow, i: usize| {
        w.spec.tasks[i]
            .agent_selector
            .as_ref()
            .expect("selector")
            .match_labels[AGENT_LABEL]
            .clone()
    };
    assert_eq!(selector(deploy, 0), "web_1");
    assert_eq!(selector(&wfs[0], 0), "db");
}

#[test]
fn values_are_a_global_and_override_params() {
    let values = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let wfs = evaluate(
        r#"
local target = values.env or "dev"
workflow.define("deploy", { params = { env = "dev", region = "eu" },
  tasks = { task("go"):command("deploy " .. target) } })
"#,
        "d.lua",
        &values,
    )
    .expect("evaluates");
    assert_eq!(wfs[0].spec.params["env"], "prod");
    assert_eq!(wfs[0].spec.params["region"], "eu");
    assert_eq!(
        wfs[0].spec.tasks[0].run.shell.as_deref(),
        Some("deploy prod")
    );
}

#[test]
fn unknown_task_method_names_the_line() {
    let e = eval_err("local t = task('a')\n  :command('x')\n  :retrys(3)\n");
    assert_eq!(
        e.to_string(),
        "pipeline.lua:3: unknown task method 'retrys'"
    );
    assert_eq!(e.line(), Some(3));
    let e = eval_err("workflow.define('w')\n:descripton('x')\n");
    assert_eq!(
        e.to_string(),
        "pipeline.lua:2: unknown workflow method 'descripton'"
    );
}

#[test]
fn unknown_task_field_is_an_error_with_a_line() {
    let e = eval_err(
        "TaskDefinitions = {\n  g = {\n    tasks = {\n      { name = 'a', command = 'x',\n        retrys = 2 },\n    },\n  },\n}\n",
    );
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(e.message().contains("unknown task field 'retrys'"), "{e}");
    let e = eval_err(
        "workflow.define('w', { tasks = { { name = 'a', command = 'x', bogus = 1 } } })\n",
    );
    assert!(e.to_string().starts_with("pipeline.lua:1:"), "{e}");
    assert!(e.message().contains("'bogus'"), "{e}");
    let e = eval_err("workflow.define('w', { taks = {} })\n");
    assert!(e.message().contains("unknown workflow field 'taks'"), "{e}");
}

#[test]
fn bad_timeout_names_the_line() {
    let e = eval_err("\ntask('a'):command('x'):timeout('soon')\n");
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(e.message().contains("invalid duration \"soon\""), "{e}");
}

#[test]
fn syntax_and_runtime_errors_name_file_and_line() {
    let e = eval_err("local x = 1\nlocal = 2\n");
    assert_eq!((e.chunk(), e.line()), ("pipeline.lua", Some(2)), "{e}");
    let e = eval_err("local x = 1\n\nlocal y = nil + 1\n");
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.message().contains("arithmetic"), "{e}");
    let e = eval_err("error('boom')");
    assert_eq!(e.to_string(), "pipeline.lua:1: boom");
}

#[test]
fn an_endless_loop_is_stopped() {
    let started = std::time::Instant::now();
    let e = eval_err("local n = 0\nwhile true do\n  n = n + 1\nend\n");
    assert!(e.message().contains("endless loop"), "{e}");
    assert!(e.line().is_some_and(|l| (2..=4).contains(&l)), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn memory_is_limited() {
    let e = eval_err("local t = {}\nfor i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end\n");
    assert!(
        e.message().contains("memory") || e.message().contains("endless loop"),
        "{e}"
    );
}

/// [`eval_err`] on a thread, failing the test instead of hanging if the
/// evaluation outlives a generous deadline.
fn eval_err_bounded(source: &'static str) -> DslError {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(eval_err(source)));
    receiver
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the evaluation is stopped in time")
}

#[test]
fn pcall_cannot_swallow_the_time_budget() {
    let e = eval_err_bounded("while true do\n  pcall(function() while true do end end)\nend\n");
    assert_eq!(e.chunk(), "pipeline.lua");
    assert!(e.message().contains("ran too long"), "{e}");
}

#[test]
fn a_caught_memory_error_stops_the_file() {
    let e = eval_err_bounded(
        "while true do pcall(function()\n  local t = {}\n  \
         while true do t[#t+1] = string.rep('x', 1e6) end\nend) end\n",
    );
    assert_eq!(e.chunk(), "pipeline.lua");
    assert!(
        e.message().contains("memory limit of 64 MiB was reached"),
        "{e}"
    );
}

#[test]
fn the_sandbox_has_no_os_io_or_file_loading() {
    for code in [
        "os.execute('true')",
        "io.open('/etc/passwd')",
        "dofile('/etc/passwd')",
        "loadfile('/etc/passwd')",
        "load('return 1')",
        "debug.getinfo(1)",
        "package.loadlib('x', 'y')",
    ] {
        let e = eval_err(code);
        assert_eq!(e.line(), Some(1), "{code}: {e}");
        assert!(e.message().contains("nil"), "{code}: {e}");
    }
    let e = eval_err("require('socket')");
    assert!(e.message().contains("not available"), "{e}");
}

#[test]
fn agent_modules_exist_but_refuse_to_run_at_load_time() {
    let e = eval_err("local run = exec.run\n\nexec.run('ls')\n");
    assert_eq!(
        e.to_string(),
        "pipeline.lua:3: exec.run is not available while slothctl reads the workflow file"
    );
    let e = eval_err("local fs = require('fs')\nfs.read('/x')\n");
    assert_eq!(e.line(), Some(2), "{e}");
    // Referenced inside a task function: fine.
    let wfs = eval_ok(
        "workflow.define('w'):tasks({ task('a'):command(function() return exec.run('ls').success end) })",
    );
    assert_eq!(wfs.len(), 1);
    for module in AGENT_MODULES {
        let e = eval_err(&format!("{module}.anything()"));
        assert!(
            e.message()
                .starts_with(&format!("{module}.anything is not available")),
            "{e}"
        );
    }
}

#[test]
fn print_is_captured() {
    let e = evaluate_file(
        "print('hello', 1)\nworkflow.define('w'):tasks({ task('a'):command('x') })",
        "p.lua",
        &BTreeMap::new(),
    )
    .expect("evaluates");
    assert_eq!(e.printed, ["hello\t1"]);
}

#[test]
fn task_hooks_make_a_lua_task_and_are_found_by_the_agent() {
    let source = "workflow.define('W_1'):tasks({ task('A_b'):command('x'):on_success(function() end)\n:on_fail(function() end):pre_hook(function() end) })\ntask('lonely'):command('y')";
    let e = evaluate_file(source, "h.lua", &BTreeMap::new()).expect("evaluates");
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    assert!(
        e.warnings[0].contains("'lonely' is not part of any workflow"),
        "{:?}",
        e.warnings
    );
    let wf = &e.workflows[0];
    assert_eq!(wf.metadata.name, "w-1");
    assert_eq!(wf.metadata.annotations[ORIGINAL_NAME_ANNOTATION], "W_1");
    let lua = wf.spec.tasks[0]
        .run
        .lua
        .as_ref()
        .expect("a shell task with hooks runs as Lua");
    assert_eq!(lua.entry.as_deref(), Some("W_1/A_b"));
    let state = mlua::Lua::new();
    let entry = task_entry(&state, source, "h.lua", "w-1/A_b").expect("found by object name");
    assert_eq!(
        entry.hooks.keys().collect::<Vec<_>>(),
        ["on_failure", "on_success", "pre_hook"]
    );
    assert!(!entry.legacy);
    assert!(matches!(entry.command, mlua::Value::String(_)));
}

#[test]
fn task_names_are_checked_with_the_line() {
    for (source, want) in [
        (
            "task('bad name')",
            "t.lua:1: task: invalid task name \"bad name\"",
        ),
        ("\ntask('_x')", "t.lua:2: task: invalid task name \"_x\""),
        (
            "TaskDefinitions = { g = { tasks = { { name = 'a/b', command = 'x' } } } }",
            "invalid task name \"a/b\"",
        ),
    ] {
        let e = evaluate(source, "t.lua", &BTreeMap::new()).expect_err(source);
        assert!(e.to_string().contains(want), "{source}: {e}");
    }
    let long = format!("task('{}')", "a".repeat(64));
    assert!(evaluate(&long, "t.lua", &BTreeMap::new()).is_err());
}

#[test]
fn task_definitions_params_merge_task_over_group_over_values() {
    let source = "TaskDefinitions = { g = { params = { a = 'group', b = 'group' }, tasks = {\n { name = 't', params = { a = 'task' }, command = function(params) return true end } } } }";
    let values = BTreeMap::from([
        ("a".to_string(), "cli".to_string()),
        ("b".to_string(), "cli".to_string()),
        ("c".to_string(), "cli".to_string()),
    ]);
    let wfs = evaluate(source, "t.lua", &values).expect("evaluates");
    let params = &wfs[0].spec.tasks[0].run.lua.as_ref().expect("lua").params;
    let text = |k: &str| params[k].as_str().unwrap_or_default().to_string();
    assert_eq!(
        (text("a"), text("b"), text("c")),
        ("task".into(), "group".into(), "cli".into())
    );
    let state = mlua::Lua::new();
    assert!(
        task_entry(&state, source, "t.lua", "g/t")
            .expect("found")
            .legacy
    );
}

#[test]
fn delegation_by_address_is_recorded_then_resolved() {
    let e = evaluate_file(
        "workflow.define('w'):tasks({ task('a'):command('x'):delegate_to({ address = '10.0.0.1:50051' }) })",
        "a.lua",
        &BTreeMap::new(),
    )
    .expect("evaluates");
    assert_eq!(
        e.delegations,
        [AddressDelegation {
            workflow: "w".into(),
            task: "a".into(),
            address: "10.0.0.1:50051".into()
        }]
    );
    let mut wf = e.workflows[0].clone();
    assert!(wf.spec.tasks[0].agent_selector.is_none());
    assert_eq!(address_delegations(&wf).expect("annotation"), e.delegations);
    let mut missing = wf.clone();
    let why = resolve_addresses(&mut missing, |_| None).expect_err("no agent");
    assert!(why.contains("10.0.0.1:50051"), "{why}");
    resolve_addresses(&mut wf, |a| {
        (a == "10.0.0.1:50051").then(|| "agent-7".to_string())
    })
    .expect("resolved");
    assert!(!wf.metadata.annotations.contains_key(ADDRESS_ANNOTATION));
    assert_eq!(
        wf.spec.tasks[0]
            .agent_selector
            .as_ref()
            .expect("selector")
            .match_labels[AGENT_LABEL],
        "agent-7"
    );
}

#[test]
fn errors_for_bad_arguments_and_empty_workflows() {
    let e = eval_err("task('a'):retries(-1)");
    assert!(e.message().contains("retries"), "{e}");
    let e = eval_err("task('a'):placement('Nearest')");
    assert!(e.message().contains("Nearest"), "{e}");
    let e = eval_err("workflow.define('w')\n");
    assert_eq!(e.to_string(), "pipeline.lua:1: workflow 'w' has no tasks");
    let e = eval_err("workflow.define('w'):tasks({task('a'):command('x')})\nworkflow.define('w')");
    assert!(e.message().contains("defined twice"), "{e}");
    let e = eval_err("task('a').command('x')");
    assert!(e.message().contains("':'"), "{e}");
}

#[test]
fn task_function_returns_the_function_of_an_entry() {
    let lua = mlua::Lua::new();
    let source = "local greeting = 'hi'\nlocal function helper(n) return greeting .. ' ' .. n end\nworkflow.define('w_x'):tasks({ task('say_it'):command(function(this, params) return true, helper(params.who) end) })";
    let f = task_function(&lua, source, "t.lua", "w-x/say_it").expect("found");
    let params = lua.create_table().expect("table");
    params.set("who", "bob").expect("set");
    let (ok, message): (bool, String) = f.call((mlua::Nil, params)).expect("called");
    assert!(ok);
    assert_eq!(message, "hi bob");
    let e = task_function(&lua, source, "t.lua", "w-x/nope").expect_err("no such task");
    assert!(e.message().contains("say_it"), "{e}");
    let e = task_function(&lua, source, "t.lua", "other/x").expect_err("no such workflow");
    assert!(e.message().contains("w_x"), "{e}");
    let e = task_function(&lua, "error('x')", "t.lua", "a/b").expect_err("runtime error");
    assert_eq!(e.to_string(), "t.lua:1: x");
}

#[test]
fn arbitrary_text_never_panics() {
    let mut seed = 7u64;
    let alphabet: Vec<char> = "task(\"x\"):command('y')workflow.define{}=,;. \n0123456789TaskDefinitions while do end -- [[ ]]"
        .chars()
        .collect();
    for _ in 0..300 {
        let mut text = String::new();
        for _ in 0..(seed % 80) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push(alphabet[((seed >> 33) as usize) % alphabet.len()]);
        }
        let _ = eval(&text);
    }
}

#[test]
fn positions_are_split_from_messages() {
    assert_eq!(split_position("a.lua:12: boom"), Some((12, "boom")));
    assert_eq!(split_position("C:\\x.lua:3: boom"), Some((3, "boom")));
    assert_eq!(split_position("no position"), None);
}

#[test]
fn calling_workflow_points_at_workflow_define() {
    let e = eval_err("\nlocal w = workflow { name = 'x', tasks = {} }\n");
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(e.message().contains("workflow.define"), "{e}");
    // A tail call hides the line: the file is still named.
    let e = eval_err("\nreturn workflow { name = 'x', tasks = {} }\n");
    assert_eq!(e.chunk(), "pipeline.lua");
    assert!(
        e.to_string()
            .starts_with("pipeline.lua: workflow is not a function"),
        "{e}"
    );
}

#[test]
fn a_schedule_makes_a_cronworkflow_and_stack_options_set_the_spec() {
    let source = r#"
local up = task("up"):command("echo url=x >> \"$SLOTH_RESULTS\""):build()
workflow.define("nightly", { schedule = "0 3 * * *", timezone = "Europe/Paris",
  concurrency_policy = "replace", starting_deadline = "5m", suspend = true,
  successful_history_limit = 5, failed_history_limit = 2, tasks = { up } })
workflow.define("deploy", { stack = "prod", outputs = { url = "$(tasks.up.results.url)" },
  tasks = { up } })
"#;
    let evaluation = evaluate_file(source, "pipeline.lua", &BTreeMap::new()).expect("evaluates");
    let cron = &evaluation.schedules["nightly"];
    assert_eq!(cron.schedule, "0 3 * * *");
    assert_eq!(cron.timezone, "Europe/Paris");
    assert_eq!(
        cron.concurrency_policy,
        crate::objects::ConcurrencyPolicy::Replace
    );
    assert_eq!(cron.starting_deadline, Some("5m".parse().expect("d")));
    assert!(cron.suspend);
    assert_eq!(
        (cron.successful_history_limit, cron.failed_history_limit),
        (Some(5), Some(2))
    );
    let nightly = &evaluation.workflows[0];
    let object = evaluation.object(nightly).expect("encodes");
    assert_eq!(object["kind"], "CronWorkflow");
    assert_eq!(object["spec"]["workflowSpec"]["tasks"][0]["name"], "up");
    let deploy = &evaluation.workflows[1];
    assert!(!evaluation.schedules.contains_key("deploy"));
    assert_eq!(
        evaluation.object(deploy).expect("encodes")["kind"],
        "Workflow"
    );
    assert_eq!(deploy.spec.stack.as_deref(), Some("prod"));
    assert_eq!(deploy.spec.outputs["url"], "$(tasks.up.results.url)");

    let bad = eval_err(
        r#"workflow.define("x", { concurrency_policy = "Sometimes", tasks = { task("a"):command("true"):build() } })"#,
    );
    assert!(bad.to_string().contains("concurrency_policy"), "{bad}");
}

#[test]
fn a_workspace_and_artifacts_are_declared_in_lua() {
    let source = r#"
local build = task("build"):command("make"):artifacts({ "dist/", "report.txt" }):build()
local one = task("one"):command("true"):artifacts("out.txt"):build()
workflow.define("ci", { workspace = "src", tasks = { build, one,
  { name = "t", command = "true", artifacts = { "x" } } } })
"#;
    let evaluation = evaluate_file(source, "pipeline.lua", &BTreeMap::new()).expect("evaluates");
    assert_eq!(
        evaluation.workspaces.get("ci").map(String::as_str),
        Some("src")
    );
    let tasks = &evaluation.workflows[0].spec.tasks;
    let paths = |i: usize| tasks[i].artifacts.as_ref().map(|a| a.paths.clone());
    assert_eq!(
        paths(0),
        Some(vec!["dist/".to_string(), "report.txt".to_string()])
    );
    assert_eq!(paths(1), Some(vec!["out.txt".to_string()]));
    assert_eq!(paths(2), Some(vec!["x".to_string()]));
    let e = eval_err(r#"task("b"):command("x"):artifacts(3)"#);
    assert!(
        e.to_string()
            .contains("artifacts: expected a list of paths"),
        "{e}"
    );
}
