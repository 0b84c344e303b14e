//! Property tests over what the apiserver does with the raw JSON of a
//! Create, Update or UpdateStatus request: whatever the bytes, decoding and
//! admission end in an object or a typed `ApiError`, never a panic.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use sloth_apiserver::error::ApiError;
use sloth_apiserver::registry::objects;
use sloth_apiserver::registry::resources::{Resources, Selectors, resolve_kind};
use sloth_apiserver::store::Store;
use sloth_apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore};

/// A modest case count, and no regression files written into the tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn valid_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "sloth.dev/v1", "kind": "Agent",
            "metadata": {"name": "a1", "labels": {"role": "build"}},
            "spec": {"address": "h:1", "capacity": 4,
                "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
        json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t", "namespace": "team", "labels": {"app": "web"}},
            "spec": {"run": {"shell": "uptime"}, "timeout": "30s", "env": {"LC_ALL": "C"},
                "agentSelector": {"matchLabels": {"role": "build"},
                    "matchExpressions": [{"key": "gpu", "operator": "Exists"}]}},
            "status": {"phase": "Running"}}),
        json!({"apiVersion": "sloth.dev/v1", "kind": "Workflow",
            "metadata": {"name": "w"},
            "spec": {"params": {"greeting": "hi"}, "timeout": "10m",
                "tasks": [
                    {"name": "fetch", "run": {"shell": "echo $(params.greeting)"}},
                    {"name": "test", "dependsOn": ["fetch"], "run": {"shell": "true"},
                        "retries": {"limit": 2, "backoff": {"duration": "1s", "factor": 2, "max": "10s"}}}
                ],
                "finally": [{"name": "report", "run": {"shell": "true"}}]}}),
        json!({"apiVersion": "sloth.dev/v1", "kind": "Lock",
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}),
    ]
}

/// JSON values of bounded depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            ".{0,8}",
            Just("Agent".to_string()),
            Just("TaskRun".to_string()),
            Just("30s".to_string()),
            Just("-1s".to_string()),
            Just("99999999999999999999h".to_string()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,6}",
                    Just("kind".to_string()),
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("status".to_string()),
                    Just("name".to_string()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One change to a valid object: a value replaced at a path (made of keys
/// and array indices, taken modulo what exists), or a key removed.
#[derive(Clone, Debug)]
enum Mutation {
    Set(Vec<usize>, Value),
    Remove(Vec<usize>),
    AddKey(Vec<usize>, String, Value),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let path = prop::collection::vec(any::<usize>(), 0..5);
    let mutation = prop_oneof![
        (path.clone(), json_value()).prop_map(|(p, v)| Mutation::Set(p, v)),
        path.clone().prop_map(Mutation::Remove),
        (path, "[a-zA-Z]{1,8}", json_value()).prop_map(|(p, k, v)| Mutation::AddKey(p, k, v)),
    ];
    prop::collection::vec(mutation, 1..5)
}

/// The node `path` leads to, indices taken modulo the children there.
fn walk<'a>(mut node: &'a mut Value, path: &[usize]) -> &'a mut Value {
    for &step in path {
        let len = match &*node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if len == 0 {
            break;
        }
        node = match node {
            Value::Array(a) => &mut a[step % len],
            Value::Object(o) => o
                .values_mut()
                .nth(step % len)
                .expect("the index is below the length"),
            other => other,
        };
    }
    node
}

fn mutate(mut value: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        match m {
            Mutation::Set(path, v) => *walk(&mut value, path) = v.clone(),
            Mutation::Remove(path) => {
                let (last, parent) = path.split_last().map_or((0, &[][..]), |(l, p)| (*l, p));
                match walk(&mut value, parent) {
                    Value::Object(o) if !o.is_empty() => {
                        let key = o.keys().nth(last % o.len()).cloned().unwrap_or_default();
                        o.remove(&key);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        let at = last % a.len();
                        a.remove(at);
                    }
                    _ => {}
                }
            }
            Mutation::AddKey(path, key, v) => {
                if let Value::Object(o) = walk(&mut value, path) {
                    o.insert(key.clone(), v.clone());
                }
            }
        }
    }
    value
}

/// The store-free part of Create, Update and UpdateStatus, step by step as
/// `Resources` runs it: parse, find the kind, prepare, admit, encode, and
/// check an update against a valid stored object of the same kind.
fn decode_and_admit(json: &[u8]) -> Result<Value, ApiError> {
    let requested = objects::parse_request(json)?;
    let kind_name = requested
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("TaskRun");
    let kind = resolve_kind(kind_name)?;
    let namespace = objects::effective_namespace(kind, objects::meta_str(&requested, "namespace"));
    let name = objects::meta_str(&requested, "name").to_string();
    let mut created = requested.clone();
    objects::prepare_create(&mut created, kind, &name, &namespace);
    let admitted = (kind.admit)(created).map_err(|errors| ApiError::Invalid {
        kind: kind.kind.to_string(),
        name: name.clone(),
        errors,
    });
    if let Ok(admitted) = &admitted {
        let bytes = objects::to_store(&mut admitted.clone())?;
        objects::check_size(bytes.len())?;
        let stored = objects::decode_stored(&bytes, 7)?;
        for merge in [objects::merge_update, objects::merge_status] {
            let merged = merge(&stored, &requested);
            if let Ok(candidate) = (kind.admit)(merged) {
                let _ = (kind.check_update)(&stored, &candidate);
            }
        }
    }
    let _ = Selectors::parse("app=web,gpu", "metadata.name=t")?.matches(&requested);
    admitted
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_decode_to_an_object_or_a_typed_error(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = decode_and_admit(&bytes);
    }

    #[test]
    fn arbitrary_json_values_are_admitted_or_refused_without_panic(value in json_value()) {
        let bytes = serde_json::to_vec(&value).expect("encode");
        let result = decode_and_admit(&bytes);
        if !value.is_object() {
            prop_assert!(matches!(result, Err(ApiError::BadRequest(_))), "{:?}", result);
        }
    }

    #[test]
    fn mutated_valid_objects_are_admitted_or_refused_without_panic(
        base in prop::sample::select(valid_objects()),
        mutations in mutations(),
    ) {
        let value = mutate(base, &mutations);
        let bytes = serde_json::to_vec(&value).expect("encode");
        let _ = decode_and_admit(&bytes);
    }
}

#[test]
fn the_valid_objects_used_as_seeds_are_admitted() {
    for value in valid_objects() {
        let bytes = serde_json::to_vec(&value).expect("encode");
        decode_and_admit(&bytes).expect("seed is admitted");
    }
}

#[test]
fn deeply_nested_json_is_a_bad_request_not_a_stack_overflow() {
    for depth in [10_000, 100_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!(
                "{{\"kind\":\"TaskRun\",\"spec\":{}1{}}}",
                open.repeat(depth),
                close.repeat(depth)
            );
            let e = decode_and_admit(text.as_bytes()).expect_err("too deep");
            assert!(matches!(e, ApiError::BadRequest(_)), "{e:?}");
            assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
        }
    }
}

#[test]
fn oversized_bodies_are_refused_before_decoding() {
    let big = vec![b' '; objects::MAX_OBJECT_BYTES + 1];
    let e = decode_and_admit(&big).expect_err("too large");
    assert!(e.to_string().contains("too large"), "{e}");
}

proptest! {
    // Each case writes to a real store: fewer cases.
    #![proptest_config(config(48))]

    #[test]
    fn create_update_and_update_status_through_the_store_never_panic(
        base in prop::sample::select(valid_objects()),
        mutations in mutations(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::TempDir::new().expect("temporary directory");
            let store: Arc<dyn Store> =
                EmbeddedStore::open(&dir.path().join("sloth.redb"), EmbeddedOptions::default())
                    .await
                    .expect("open the store");
            let resources = Resources::new(store);
            let valid = serde_json::to_vec(&base).expect("encode");
            resources.create("", &valid).await.expect("the seed is created");
            let bytes = serde_json::to_vec(&mutate(base, &mutations)).expect("encode");
            let _ = resources.create("", &bytes).await;
            let _ = resources.update("", &bytes, "").await;
            let _ = resources.update_status("", &bytes, "").await;
        });
    }
}
