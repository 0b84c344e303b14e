//! The sloth-runner forms of placement, working directories, conditions
//! and modules beside the file, as Workflow objects.

use std::collections::BTreeMap;

use crate::lua::*;
use crate::well_known::capability_label;

fn eval(source: &str) -> Workflow {
    evaluate(source, "compat.lua", &BTreeMap::new())
        .expect("the file evaluates")
        .remove(0)
}

fn labels(wf: &Workflow, task: usize) -> BTreeMap<String, String> {
    wf.spec.tasks[task]
        .agent_selector
        .clone()
        .map(|s| s.match_labels)
        .unwrap_or_default()
}

#[test]
fn a_string_agent_selector_is_a_capability_and_a_table_mixes_both() {
    let wf = eval(
        r#"workflow.define("w", { tasks = {
          task("a"):agent_selector("build-agents"):command("true"):build(),
          task("b"):agent_selector({ "gpu", zone = "eu" }):command("true"):build(),
        } })"#,
    );
    assert_eq!(
        labels(&wf, 0),
        BTreeMap::from([(capability_label("build-agents"), "true".to_string())])
    );
    assert_eq!(
        labels(&wf, 1),
        BTreeMap::from([
            (capability_label("gpu"), "true".to_string()),
            ("zone".to_string(), "eu".to_string())
        ])
    );
    let e = evaluate(
        "workflow.define('w', { tasks = { task('a'):agent_selector(3):command('true'):build() } })",
        "compat.lua",
        &BTreeMap::new(),
    )
    .expect_err("refused");
    assert!(
        e.to_string().contains("compat.lua:1: agent_selector"),
        "{e}"
    );
}

#[test]
fn workspace_is_the_working_directory_and_async_is_accepted() {
    let wf = eval(
        r#"workflow.define("w", { tasks = {
          task("a"):workspace("ws/build"):async(true):command("true"):build(),
        } })"#,
    );
    assert_eq!(wf.spec.tasks[0].workdir.as_deref(), Some("ws/build"));
}

#[test]
fn conditions_wrap_the_command() {
    let wf = eval(
        r#"workflow.define("w", { tasks = {
          task("shell"):run_if("test -f x"):abort_if("test -f y"):command("echo hi"):build(),
          task("lua"):run_if(function() return false end):command("echo hi"):build(),
        } })"#,
    );
    let shell = wf.spec.tasks[0].run.shell.clone().expect("still shell");
    assert!(shell.contains("if ( test -f x ); then"), "{shell}");
    assert!(shell.contains("if ( test -f y ); then echo"), "{shell}");
    assert!(
        wf.spec.tasks[1].run.lua.is_some(),
        "a Lua condition makes it Lua"
    );
}

#[test]
fn modules_beside_the_file_are_bundled_into_every_lua_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("lib")).expect("mkdir");
    std::fs::write(dir.path().join("helpers.lua"), "return { name = 'w' }").expect("write");
    std::fs::write(dir.path().join("lib/init.lua"), "return 1").expect("write");
    std::fs::write(dir.path().join("late.lua"), "return 2").expect("write");
    let source = r#"
      local h = require("helpers")
      workflow.define(h.name, { tasks = {
        task("a"):command(function() return import("late.lua") end):build(),
        task("b"):command("true"):build(),
      } })
      require("lib")
    "#;
    let e =
        evaluate_beside(source, "wf.lua", &BTreeMap::new(), Some(dir.path())).expect("evaluates");
    let wf = &e.workflows[0];
    let lua = wf.spec.tasks[0].run.lua.as_ref().expect("lua");
    let paths: Vec<&str> = lua.modules.keys().map(String::as_str).collect();
    assert_eq!(paths, vec!["helpers.lua", "late.lua", "lib/init.lua"]);
    assert_eq!(
        wf.metadata.annotations[crate::well_known::MODULES_ANNOTATION],
        "helpers.lua,late.lua,lib/init.lua"
    );
    let err = evaluate_beside(
        "\nrequire('../etc/passwd')",
        "wf.lua",
        &BTreeMap::new(),
        Some(dir.path()),
    )
    .expect_err("refused");
    assert!(err.to_string().starts_with("wf.lua:2:"), "{err}");
}
