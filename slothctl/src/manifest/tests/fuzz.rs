//! Property tests over manifest reading (slothctl has no library target, so
//! they live in the crate): whatever a file or stdin holds, reading and
//! checking it ends in documents or error messages, never a panic, a stack
//! overflow or an unbounded allocation.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::manifest::parse::*;
use crate::manifest::read::*;
use crate::manifest::resolve::*;
use crate::manifest::*;

/// A modest case count, and no regression files written into the tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// How long the fixed hostile inputs may take, in debug builds on a slow
/// machine: they are refused early, not after expanding.
const QUICK: Duration = Duration::from_secs(10);

const TASKRUN_YAML: &str = include_str!("../../../../manifests/examples/adhoc-taskruns.yaml");
const WORKFLOW_YAML: &str = include_str!("../../../../manifests/examples/hello-workflow.yaml");
const AGENT_YAML: &str = "apiVersion: sloth.dev/v1\nkind: Agent\nmetadata: {name: a1, labels: {role: build}}\nspec:\n  address: 'h:1'\n  capacity: 4\n  taints: [{key: k, value: v, effect: NoSchedule}]\n";
const LOCK_JSON: &str = r#"{"apiVersion":"sloth.dev/v1","kind":"Lock","metadata":{"name":"l","namespace":"team"},"spec":{"holderIdentity":"me","leaseDurationSeconds":15}}"#;
const LUA_FILES: &[&str] = &[
    include_str!("../../../../manifests/examples/ci-pipeline.lua"),
    include_str!("../../../../manifests/examples/fan-out.lua"),
    include_str!("../../../../manifests/examples/results.lua"),
    include_str!("../../../../manifests/examples/taskdefs.lua"),
];

/// Parses `text` as YAML and as JSON and resolves whatever was found, both
/// ways; only asserts that every step returns.
fn read_and_resolve(text: &str) {
    for json in [false, true] {
        if let Ok(docs) = parse("f.yaml", text, json) {
            let _ = resolve_all(docs.clone(), None, Check::Admit);
            let _ = resolve_all(docs, Some("team"), Check::Identity);
        }
    }
}

/// Text made of YAML's structural tokens, so generated input reaches the
/// anchors, aliases, tags, flow collections and document markers.
fn yaml_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("---\n".to_string()),
        Just("...\n".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a".to_string()),
        Just("!!str ".to_string()),
        Just("!tag ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(", ".to_string()),
        Just("? ".to_string()),
        Just("|\n".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("kind: TaskRun\n".to_string()),
        Just("kind: List\nitems:\n".to_string()),
        Just("metadata: {name: x}\n".to_string()),
        Just("99999999999999999999999999999999999999999".to_string()),
        Just("-1e999".to_string()),
        Just(".nan".to_string()),
        "[a-z0-9]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|parts| parts.concat())
}

/// One edit of a valid manifest's text.
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 0usize..8).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), yaml_like()).prop_map(|(at, text)| Edit::Insert(at, text)),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..6)
}

/// Applies `edits` at char boundaries (positions taken modulo the length).
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len() + 1;
        match edit {
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            Edit::Insert(at, text) => {
                let at = at % len;
                chars.splice(at..at, text.chars());
            }
            Edit::Truncate(at) => chars.truncate(at % len),
        }
    }
    chars.into_iter().collect()
}

fn valid_manifest() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![TASKRUN_YAML, WORKFLOW_YAML, AGENT_YAML, LOCK_JSON])
}

/// JSON values of bounded depth, as a YAML or JSON document could hold.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-zA-Z0-9 :#&*!?|>'\"{},\\[\\]é-]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z0-9 :&*!'\"é-]{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_strings_never_panic_the_manifest_reader(text in any::<String>()) {
        read_and_resolve(&text);
    }

    #[test]
    fn yaml_token_soup_never_panics_the_manifest_reader(text in yaml_like()) {
        read_and_resolve(&text);
    }

    #[test]
    fn arbitrary_stdin_bytes_are_read_or_refused_without_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let result = read_stdin(&mut bytes.as_slice(), &Params::new());
        if std::str::from_utf8(&bytes).is_err() {
            prop_assert!(result.is_err(), "invalid UTF-8 must be refused");
        }
        if let Ok(docs) = result {
            let _ = resolve_all(docs, None, Check::Admit);
        }
    }

    #[test]
    fn mutated_valid_manifests_never_panic_the_reader_or_admission(
        base in valid_manifest(),
        edits in edits(),
    ) {
        read_and_resolve(&mutate(base, &edits));
    }

    #[test]
    fn budgeted_yaml_decoding_equals_plain_decoding(value in json_value()) {
        // Printed as YAML and as JSON (which is YAML too), what the budgeted
        // decoder returns is what serde_json::Value's own Deserialize does.
        let yaml = serde_norway::to_string(&value).expect("encode as YAML");
        let json = serde_json::to_string(&value).expect("encode as JSON");
        for text in [yaml, json] {
            let plain: Value = serde_norway::from_str(&text).expect("plain decoding");
            let budgeted = parse_yaml("v.yaml", &text).expect("budgeted decoding");
            prop_assert_eq!(budgeted, vec![(1, plain)], "{}", text);
        }
    }
}

proptest! {
    // Each case starts a Lua interpreter: fewer cases.
    #![proptest_config(config(64))]

    #[test]
    fn arbitrary_lua_source_never_panics(source in prop_oneof![any::<String>(), yaml_like()]) {
        let _ = parse_lua("f.lua", &source, &Params::new());
    }

    #[test]
    fn mutated_lua_workflow_files_never_panic(
        base in prop::sample::select(LUA_FILES.to_vec()),
        edits in edits(),
    ) {
        let params = Params::from([("env".to_string(), "prod".to_string())]);
        if let Ok(docs) = parse_lua("f.lua", &mutate(base, &edits), &params) {
            let _ = resolve_all(docs, None, Check::Admit);
        }
    }
}

#[test]
fn the_examples_used_as_seeds_are_valid() {
    for text in [TASKRUN_YAML, WORKFLOW_YAML, AGENT_YAML, LOCK_JSON] {
        let docs = parse("seed.yaml", text, false).expect("seed parses");
        resolve_all(docs, None, Check::Admit).expect("seed is admitted");
    }
    for text in LUA_FILES {
        let docs = parse_lua("seed.lua", text, &Params::new()).expect("seed evaluates");
        resolve_all(docs, None, Check::Admit).expect("seed is admitted");
    }
}

/// Asserts `text` is refused as YAML within [`QUICK`], with `want` in the
/// message.
fn refused_quickly(text: &str, want: &[&str]) {
    let started = Instant::now();
    let e = parse("bomb.yaml", text, false).expect_err("hostile YAML is refused");
    let took = started.elapsed();
    assert!(took < QUICK, "took {took:?}");
    assert!(
        want.iter().any(|w| e.contains(w)),
        "expected one of {want:?} in {e}"
    );
    assert!(
        e.starts_with("error: bomb.yaml") && e.contains("invalid YAML"),
        "{e}"
    );
}

#[test]
fn nested_alias_bomb_is_refused_quickly() {
    // The classic "billion laughs": 9 levels of 9 aliases, 9^9 leaves.
    let mut text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string();
    for level in 1..10 {
        let prev = format!("*a{}", level - 1);
        let items = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    refused_quickly(
        &text,
        &["repetition limit exceeded", "expands to more than 64 MiB"],
    );
}

#[test]
fn wide_alias_bomb_within_serde_norway_limits_is_refused_by_the_expansion_budget() {
    // One anchored list of 20k strings repeated by 20k aliases: 4e8 values
    // from ~140 KB, few enough alias jumps that serde_norway's own
    // repetition limit (100 per event) lets it through.
    let items = vec!["xxxxxxxx"; 20_000].join(", ");
    let aliases = vec!["*a"; 20_000].join(", ");
    let text = format!("big: &a [{items}]\nrepeat: [{aliases}]\n");
    refused_quickly(&text, &["expands to more than 64 MiB"]);
}

#[test]
fn long_string_alias_bomb_is_refused_by_the_expansion_budget() {
    let long = "x".repeat(1024 * 1024);
    let aliases = vec!["*s"; 1000].join(", ");
    let text = format!("s: &s {long}\nrepeat: [{aliases}]\n");
    refused_quickly(&text, &["expands to more than 64 MiB"]);
}

#[test]
fn modest_aliases_still_decode() {
    let text = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: a, labels: &l {app: web}, annotations: *l}\nspec:\n  run: {shell: 'true'}\n";
    let docs = parse("ok.yaml", text, false).expect("aliases within budget decode");
    assert_eq!(docs[0].value["metadata"]["annotations"]["app"], "web");
    resolve_all(docs, None, Check::Admit).expect("admitted");
}

#[test]
fn deeply_nested_flow_collections_are_refused_without_overflowing_the_stack() {
    for depth in [1_000, 100_000] {
        let text = "[".repeat(depth) + &"]".repeat(depth);
        refused_quickly(&text, &["more than 256 nested"]);
        refused_quickly(&"[".repeat(depth), &["more than 256 nested"]);
        // Was quadratic in libyaml's scanner: 100k levels took 30 s.
        let mapping = "{a: ".repeat(depth) + &"}".repeat(depth);
        refused_quickly(&mapping, &["more than 256 nested"]);
        let json = parse("deep.json", &text, true).expect_err("deep JSON is refused");
        assert!(json.contains("recursion limit exceeded"), "{json}");
    }
    // Under the bracket guard, serde_norway's own limit (128) refuses it.
    let text = "[".repeat(200) + &"]".repeat(200);
    refused_quickly(&text, &["recursion limit exceeded"]);
    let block: String = (0..1_000)
        .map(|i| format!("{}- \n", " ".repeat(i)))
        .collect();
    refused_quickly(&block, &["recursion limit exceeded"]);
}

#[test]
fn oversized_manifests_are_refused_before_parsing() {
    let big = "#".repeat(MAX_MANIFEST_BYTES + 1);
    let e = parse("big.yaml", &big, false).expect_err("too large");
    assert!(e.contains("larger than the limit of 8 MiB"), "{e}");
    let e = read_stdin(&mut std::io::repeat(b' '), &Params::new()).expect_err("endless stdin");
    assert!(e[0].contains("<stdin>: the manifest is larger"), "{e:?}");
    let at_limit = " ".repeat(MAX_MANIFEST_BYTES);
    assert!(
        parse("ok.yaml", &at_limit, false)
            .expect("at the limit")
            .is_empty()
    );
}
