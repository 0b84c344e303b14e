use super::parse::*;
use super::read::*;
use super::resolve::*;
use super::*;

mod fuzz;

#[test]
fn lua_on_stdin_is_told_from_yaml_and_json() {
    assert!(looks_like_lua("-- pipeline\nworkflow.define('w', {})"));
    assert!(looks_like_lua("local x = 1\n"));
    assert!(looks_like_lua("TaskDefinitions = {}"));
    assert!(!looks_like_lua(
        "---\napiVersion: sloth.dev/v1\nkind: Workflow\n"
    ));
    assert!(!looks_like_lua("{\"kind\": \"Workflow\"}"));
    assert!(!looks_like_lua("local: x\nfunction: y\n"));
    assert!(looks_like_lua("#!/usr/bin/env sloth\nModern = { x = 1 }\n"));
    assert!(looks_like_lua("\nprint('hi')\n"));
    // Lua inside a YAML block scalar is still YAML.
    assert!(!looks_like_lua(
        "\napiVersion: sloth.dev/v1\nkind: TaskRun\nspec:\n  run:\n    lua:\n      script: |\n        local pw = 1\n        -- a comment\n"
    ));
    let docs = read_stdin(
        &mut "workflow.define('w', { tasks = { task('a'):command('true') } })".as_bytes(),
        &Params::new(),
    )
    .expect("lua");
    assert_eq!(docs[0].value["kind"], "Workflow");
}

const TASKRUN: &str = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: a\nspec:\n  run:\n    shell: 'true'\n";

fn read_paths(paths: &[String], stdin: &mut dyn Read) -> Result<Vec<Document>, Vec<String>> {
    let (docs, errors) = read_all(paths, stdin, &Params::new());
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(errors)
    }
}

#[test]
fn yaml_documents_are_numbered_as_they_appear_and_empty_ones_skipped() {
    let text = format!(
        "{TASKRUN}---\n# only a comment\n---\n{}",
        TASKRUN.replace("name: a", "name: b")
    );
    let docs = parse("x.yaml", &text, false).expect("parse");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].index, 1);
    assert_eq!(docs[1].index, 3);
    assert_eq!(docs[1].value["metadata"]["name"], "b");
    assert_eq!(docs[1].label(), r#"x.yaml (document 3, TaskRun "b")"#);
    assert!(parse("e.yaml", "", false).expect("empty").is_empty());
    assert!(
        parse("e.yaml", "---\n---\n", false)
            .expect("seps")
            .is_empty()
    );
}

#[test]
fn malformed_yaml_names_file_document_and_line() {
    let text = format!("{TASKRUN}---\nkind: TaskRun\nmetadata:\n  name: [unclosed\n");
    let e = parse("bad.yaml", &text, false).expect_err("bad yaml");
    assert!(
        e.starts_with("error: bad.yaml (document 2): invalid YAML"),
        "{e}"
    );
    assert!(e.contains("line 11"), "{e}");
    let e = parse("bad.yaml", "a: b: c\n", false).expect_err("bad yaml");
    assert!(e.contains("line 1 column"), "{e}");
}

#[test]
fn json_values_and_lists_are_expanded() {
    let one = serde_json::json!({"apiVersion": "sloth.dev/v1", "kind": "Lock", "metadata": {"name": "l"}, "spec": {}});
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [one, one]});
    let text = format!("{one}\n{list}");
    let docs = parse("x.json", &text, true).expect("parse");
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[2].index, 2);
    assert_eq!(docs[2].item, Some(1));
    assert_eq!(
        docs[2].label(),
        r#"x.json (document 2, items[1], Lock "l")"#
    );
    let e = parse("x.json", "{\n  \"a\": ,\n}", true).expect_err("bad json");
    assert!(
        e.contains("x.json (document 1): invalid JSON") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn invalid_document_is_named_by_index_and_field() {
    let bad = TASKRUN
        .replace("name: a", "name: b")
        .replace("shell: 'true'", "shell: x\n  comand: y");
    let text = format!("{TASKRUN}---\n{bad}");
    let docs = parse("w.yaml", &text, false).expect("parse");
    let errors = resolve_all(docs, None, Check::Admit).expect_err("invalid");
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert!(
        e.starts_with(r#"error: w.yaml (document 2, TaskRun "b"): spec"#),
        "{e}"
    );
    assert!(e.contains("comand"), "{e}");
}

#[test]
fn unknown_and_missing_kinds_are_named() {
    let docs = parse(
        "k.yaml",
        "kind: Foo\nmetadata: {name: x}\n---\nmetadata: {name: y}\n",
        false,
    )
    .expect("parse");
    let errors = resolve_all(docs, None, Check::Admit).expect_err("bad kinds");
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].contains(r#"(document 1, Foo "x"): kind: unknown kind "Foo""#),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("(document 2): kind: is required"),
        "{errors:?}"
    );
}

#[test]
fn namespaces_default_and_cluster_scoped_kinds_have_none() {
    let docs = parse("n.yaml", TASKRUN, false).expect("parse");
    let r = resolve(docs[0].clone(), None, Check::Admit).expect("ok");
    assert_eq!(r.namespace, "default");
    assert_eq!(r.value["metadata"]["namespace"], "default");
    let r = resolve(docs[0].clone(), Some("team"), Check::Admit).expect("ok");
    assert_eq!(r.namespace, "team");

    let mut pinned = docs[0].clone();
    pinned.value["metadata"]["namespace"] = "other".into();
    assert!(resolve(pinned.clone(), None, Check::Admit).is_ok());
    let e = resolve(pinned, Some("team"), Check::Admit).expect_err("mismatch");
    assert!(e.contains("metadata.namespace"), "{e}");

    let agent = "apiVersion: sloth.dev/v1\nkind: Agent\nmetadata: {name: a1, namespace: x}\nspec: {address: 'h:1'}\n";
    let docs = parse("a.yaml", agent, false).expect("parse");
    let r = resolve(docs[0].clone(), Some("team"), Check::Admit).expect("ok");
    assert_eq!(r.namespace, "");
    assert!(r.value["metadata"].get("namespace").is_none());
}

#[test]
fn names_are_required_except_generate_name_on_apply() {
    let text = TASKRUN.replace("name: a", "generateName: a-");
    let docs = parse("g.yaml", &text, false).expect("parse");
    let r = resolve(docs[0].clone(), None, Check::Admit).expect("apply");
    assert!(r.name.is_empty());
    let e = resolve(docs[0].clone(), None, Check::Identity).expect_err("delete");
    assert!(e.contains("metadata.name: is required"), "{e}");
}

#[test]
fn directories_read_manifest_and_lua_files_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write");
    };
    write("b.yaml", &TASKRUN.replace("name: a", "name: b"));
    write("a.yml", TASKRUN);
    write(
        "c.json",
        r#"{"apiVersion":"sloth.dev/v1","kind":"Lock","metadata":{"name":"c"},"spec":{}}"#,
    );
    write("notes.txt", "not a manifest");
    write(
        "wf.lua",
        "workflow.define('lua_wf'):tasks({ task('t'):command('true') })",
    );
    write("empty.lua.txt", "not read");
    let path = dir.path().display().to_string();
    let docs = read_paths(std::slice::from_ref(&path), &mut std::io::empty()).expect("read");
    let names: Vec<_> = docs
        .iter()
        .map(|d| d.value["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, ["a", "b", "c", "lua-wf"]);
    assert!(docs[0].source.ends_with("a.yml"));
    assert_eq!(docs[3].value["kind"], "Workflow");

    write("none.lua", "local x = 1");
    let lua = dir.path().join("none.lua").display().to_string();
    let e = read_paths(std::slice::from_ref(&lua), &mut std::io::empty()).expect_err("lua");
    assert!(e[0].contains("defines no workflow"), "{e:?}");
    write("none.lua", "local x = 1\nlocal = 2\n");
    let e = read_paths(&[lua], &mut std::io::empty()).expect_err("lua");
    assert!(
        e[0].starts_with("error: ") && e[0].contains("none.lua:2:"),
        "{e:?}"
    );
    let e = read_paths(&["/no/such/file.yaml".into()], &mut std::io::empty()).expect_err("missing");
    assert!(e[0].contains("does not exist"), "{e:?}");
}

#[test]
fn load_reports_problems_of_every_file_and_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(&bad_yaml, "kind: [\n").expect("write");
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(&invalid, format!("{TASKRUN}---\nkind: Nope\n")).expect("write");
    let paths = [bad_yaml, invalid].map(|p| p.display().to_string());
    let errors = load(
        &paths,
        &mut std::io::empty(),
        None,
        Check::Admit,
        &Params::new(),
    )
    .expect_err("bad");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("bad.yaml (document 1): invalid YAML"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("invalid.yaml (document 2, Nope)"),
        "{errors:?}"
    );
    let errors = load(
        &["-".into()],
        &mut "---\n".as_bytes(),
        None,
        Check::Admit,
        &Params::new(),
    )
    .expect_err("empty");
    assert_eq!(errors, ["error: no objects found in -"]);
}

#[test]
fn params_override_declared_workflow_params_and_are_lua_values() {
    let params = Params::from([("env".to_string(), "prod".to_string())]);
    let yaml = "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata:\n  name: w\nspec:\n  params:\n    env: dev\n    n: '1'\n  tasks:\n  - name: a\n    run:\n      shell: echo $(params.env)\n";
    let mut docs = parse("w.yaml", yaml, false).expect("yaml");
    override_params(&mut docs[0].value, &params);
    assert_eq!(docs[0].value["spec"]["params"]["env"], "prod");
    assert_eq!(docs[0].value["spec"]["params"]["n"], "1");
    let docs = parse_lua(
        "p.lua",
        "workflow.define('w'):tasks({ task('a'):command('deploy ' .. values.env) })",
        &params,
    )
    .expect("lua");
    assert_eq!(
        docs[0].value["spec"]["tasks"][0]["run"]["shell"],
        "deploy prod"
    );
    assert_eq!(docs[0].value["spec"]["params"]["env"], "prod");
}

#[test]
fn stdin_is_yaml_or_json() {
    let docs = read_paths(&["-".into()], &mut TASKRUN.as_bytes()).expect("yaml");
    assert_eq!(docs[0].source, STDIN);
    let json = r#"{"apiVersion":"sloth.dev/v1","kind":"Lock","metadata":{"name":"c"},"spec":{}}"#;
    let docs = read_paths(&["-".into()], &mut json.as_bytes()).expect("json");
    assert_eq!(docs[0].value["kind"], "Lock");
}
