//! `slothctl label KIND NAME KEY=VALUE... KEY-... [--overwrite]`, with
//! kubectl's semantics: a new label is added, an existing one changes
//! only with `--overwrite`, `KEY-` removes one. Written by compare-and-swap,
//! retried on conflicts (an agent updates its own object too).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sloth_sdk::Error as SdkError;
use sloth_sdk::validation::names::{validate_label_key, validate_label_value};

use super::Context;
use crate::cli::LabelArgs;
use crate::error::CliError;
use crate::kind;
use crate::printer::emit;

/// Attempts before a run of conflicts is reported.
const ATTEMPTS: usize = 10;

/// What the command line asks for each label key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Set(String),
    Remove,
}

pub async fn run(ctx: &Context, args: LabelArgs) -> anyhow::Result<()> {
    let (kind_arg, rest) = args
        .args
        .split_first()
        .ok_or_else(|| CliError::usage("label needs KIND NAME KEY=VALUE..."))?;
    let (name, changes) = match kind::split_type_name(kind_arg) {
        (_, Some(name)) => (name.to_string(), rest),
        (_, None) => match rest.split_first() {
            Some((name, changes)) => (name.clone(), changes),
            None => return Err(CliError::usage("label needs a NAME after the KIND").into()),
        },
    };
    let kind = kind::resolve(kind::split_type_name(kind_arg).0)?;
    let changes = parse_changes(changes)?;
    let namespace = if kind.namespaced {
        ctx.namespace.as_str()
    } else {
        ""
    };
    let plural = kind.kind.to_lowercase();
    let outcome = write(ctx, kind.kind, namespace, &name, &changes, args.overwrite).await?;
    emit(&format!("{plural}/{name} {outcome}\n"))?;
    Ok(())
}

/// `KEY=VALUE` and `KEY-` arguments, each key at most once.
fn parse_changes(args: &[String]) -> Result<BTreeMap<String, Change>, CliError> {
    if args.is_empty() {
        return Err(CliError::usage(
            "at least one label update is required (KEY=VALUE or KEY-)",
        ));
    }
    let mut changes = BTreeMap::new();
    for arg in args {
        let (key, change) = match arg.split_once('=') {
            Some((key, value)) => {
                validate_label_value(value).map_err(|e| {
                    CliError::usage(format!("invalid value of label {key:?} ({value:?}): {e}"))
                })?;
                (key, Change::Set(value.to_string()))
            }
            None => match arg.strip_suffix('-') {
                Some(key) => (key, Change::Remove),
                None => {
                    return Err(CliError::usage(format!(
                        "invalid label update {arg:?}: use KEY=VALUE to set or KEY- to remove"
                    )));
                }
            },
        };
        validate_label_key(key)
            .map_err(|e| CliError::usage(format!("invalid label key {key:?}: {e}")))?;
        if changes.insert(key.to_string(), change).is_some() {
            return Err(CliError::usage(format!(
                "label {key:?} is given more than once"
            )));
        }
    }
    Ok(changes)
}

/// `labels` with `changes` applied, or why not; the word kubectl prints.
fn apply(
    labels: &mut Map<String, Value>,
    changes: &BTreeMap<String, Change>,
    overwrite: bool,
) -> Result<&'static str, CliError> {
    let mut labeled = false;
    let mut unlabeled = false;
    for (key, change) in changes {
        match change {
            Change::Set(value) => match labels.get(key).and_then(Value::as_str) {
                Some(old) if old == value => {}
                Some(old) if !overwrite => {
                    return Err(CliError::failed(format!(
                        "{key:?} already has a value ({old}), and --overwrite is false"
                    )));
                }
                _ => {
                    labels.insert(key.clone(), Value::String(value.clone()));
                    labeled = true;
                }
            },
            Change::Remove => {
                if labels.remove(key).is_some() {
                    unlabeled = true;
                } else {
                    eprintln!("label {key:?} not found.");
                }
            }
        }
    }
    Ok(match (labeled, unlabeled) {
        (true, _) => "labeled",
        (false, true) => "unlabeled",
        (false, false) => "not labeled",
    })
}

async fn write(
    ctx: &Context,
    kind: &str,
    namespace: &str,
    name: &str,
    changes: &BTreeMap<String, Change>,
    overwrite: bool,
) -> Result<&'static str, CliError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let object = ctx
            .client
            .get(kind, namespace, name)
            .await
            .map_err(|e| match e {
                SdkError::NotFound(_) => {
                    CliError::failed(format!("{} {name:?} not found", kind.to_lowercase()))
                }
                e => ctx.error(e),
            })?;
        let mut value = serde_json::to_value(&object)
            .map_err(|e| CliError::failed(format!("cannot encode {kind} {name}: {e}")))?;
        let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err(CliError::failed(format!("{kind} {name} has no metadata")));
        };
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        let Some(labels) = labels.as_object_mut() else {
            return Err(CliError::failed(format!("{kind} {name} has odd labels")));
        };
        let outcome = apply(labels, changes, overwrite)?;
        if outcome == "not labeled" {
            return Ok(outcome);
        }
        match ctx.client.update(&value).await {
            Ok(_) => return Ok(outcome),
            Err(e @ SdkError::Conflict(_)) => last = Some(e),
            Err(e) => return Err(ctx.error(e)),
        }
    }
    Err(last.map_or_else(
        || CliError::failed(format!("{kind} {name} could not be updated")),
        |e| ctx.error(e),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(args: &[&str]) -> BTreeMap<String, Change> {
        parse_changes(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>()).expect("valid")
    }

    #[test]
    fn label_updates_parse_as_kubectl_spells_them() {
        let c = changes(&["restricted.sloth.dev/tier=secure", "role-", "empty="]);
        assert_eq!(c["restricted.sloth.dev/tier"], Change::Set("secure".into()));
        assert_eq!(c["role"], Change::Remove);
        assert_eq!(c["empty"], Change::Set(String::new()));
        for bad in [
            &["nochange"][..],
            &[],
            &["a=1", "a-"],
            &["bad key=1"],
            &["k=no way"],
        ] {
            let args: Vec<String> = bad.iter().map(|a| a.to_string()).collect();
            assert!(parse_changes(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_existing_value_changes_only_with_overwrite() {
        let labels = json!({"role": "gpu", "zone": "eu"});
        let mut map = labels.as_object().expect("map").clone();
        let e = apply(&mut map, &changes(&["role=cpu"]), false).expect_err("no overwrite");
        assert!(e.to_string().contains("--overwrite is false"), "{e}");
        assert_eq!(
            apply(&mut map, &changes(&["role=cpu"]), true).expect("overwrite"),
            "labeled"
        );
        assert_eq!(map["role"], "cpu");
        assert_eq!(
            apply(&mut map, &changes(&["zone-"]), false).expect("remove"),
            "unlabeled"
        );
        assert_eq!(
            apply(&mut map, &changes(&["role=cpu"]), false).expect("same"),
            "not labeled"
        );
    }
}
