//! `slothctl label|annotate KIND NAME KEY=VALUE... KEY-... [--overwrite]`,
//! with kubectl's semantics: a new key is added, an existing one changes
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

/// Which map of the object's metadata the command changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Labels,
    Annotations,
}

impl Field {
    /// The metadata key.
    fn key(self) -> &'static str {
        match self {
            Self::Labels => "labels",
            Self::Annotations => "annotations",
        }
    }

    /// The noun in messages.
    fn noun(self) -> &'static str {
        match self {
            Self::Labels => "label",
            Self::Annotations => "annotation",
        }
    }

    /// The verb kubectl prints (`labeled`, `annotated`).
    fn done(self) -> &'static str {
        match self {
            Self::Labels => "labeled",
            Self::Annotations => "annotated",
        }
    }
}

/// What the command line asks for each label key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Set(String),
    Remove,
}

pub(crate) async fn run(ctx: &Context, args: LabelArgs, field: Field) -> anyhow::Result<()> {
    let noun = field.noun();
    let (kind_arg, rest) = args
        .args
        .split_first()
        .ok_or_else(|| CliError::usage(format!("{noun} needs KIND NAME KEY=VALUE...")))?;
    let (name, changes) = match kind::split_type_name(kind_arg) {
        (_, Some(name)) => (name.to_string(), rest),
        (_, None) => match rest.split_first() {
            Some((name, changes)) => (name.clone(), changes),
            None => {
                return Err(CliError::usage(format!("{noun} needs a NAME after the KIND")).into());
            }
        },
    };
    let kind = kind::resolve(kind::split_type_name(kind_arg).0)?;
    let changes = parse_changes(changes, field)?;
    let namespace = if kind.namespaced {
        ctx.namespace.as_str()
    } else {
        ""
    };
    let plural = kind.kind.to_lowercase();
    let outcome = write(
        ctx,
        (kind.kind, namespace, &name),
        &changes,
        args.overwrite,
        field,
    )
    .await?;
    emit(&format!("{plural}/{name} {outcome}\n"))?;
    Ok(())
}

/// `KEY=VALUE` and `KEY-` arguments, each key at most once. Keys are
/// qualified names for both fields; only label values are restricted.
fn parse_changes(args: &[String], field: Field) -> Result<BTreeMap<String, Change>, CliError> {
    let noun = field.noun();
    if args.is_empty() {
        return Err(CliError::usage(format!(
            "at least one {noun} update is required (KEY=VALUE or KEY-)"
        )));
    }
    let mut changes = BTreeMap::new();
    for arg in args {
        let (key, change) = match arg.split_once('=') {
            Some((key, value)) => {
                if field == Field::Labels {
                    validate_label_value(value).map_err(|e| {
                        CliError::usage(format!("invalid value of label {key:?} ({value:?}): {e}"))
                    })?;
                }
                (key, Change::Set(value.to_string()))
            }
            None => match arg.strip_suffix('-') {
                Some(key) => (key, Change::Remove),
                None => {
                    return Err(CliError::usage(format!(
                        "invalid {noun} update {arg:?}: use KEY=VALUE to set or KEY- to remove"
                    )));
                }
            },
        };
        validate_label_key(key)
            .map_err(|e| CliError::usage(format!("invalid {noun} key {key:?}: {e}")))?;
        if changes.insert(key.to_string(), change).is_some() {
            return Err(CliError::usage(format!(
                "{noun} {key:?} is given more than once"
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
    field: Field,
) -> Result<String, CliError> {
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
                    eprintln!("{} {key:?} not found.", field.noun());
                }
            }
        }
    }
    let done = field.done();
    Ok(match (labeled, unlabeled) {
        (true, _) => done.to_string(),
        (false, true) => format!("un{done}"),
        (false, false) => format!("not {done}"),
    })
}

async fn write(
    ctx: &Context,
    (kind, namespace, name): (&str, &str, &str),
    changes: &BTreeMap<String, Change>,
    overwrite: bool,
    field: Field,
) -> Result<String, CliError> {
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
            .entry(field.key())
            .or_insert_with(|| Value::Object(Map::new()));
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        let Some(labels) = labels.as_object_mut() else {
            return Err(CliError::failed(format!(
                "{kind} {name} has odd {}",
                field.key()
            )));
        };
        let outcome = apply(labels, changes, overwrite, field)?;
        if outcome.starts_with("not ") {
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
        parse_changes(
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            Field::Labels,
        )
        .expect("valid")
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
            assert!(parse_changes(&args, Field::Labels).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn annotation_values_are_free_text() {
        let args = vec!["note=any text, even: this".to_string(), "old-".to_string()];
        let c = parse_changes(&args, Field::Annotations).expect("valid");
        assert_eq!(c["note"], Change::Set("any text, even: this".into()));
        assert!(parse_changes(&args[..1], Field::Labels).is_err());
        let mut map = Map::new();
        assert_eq!(
            apply(&mut map, &c, false, Field::Annotations).expect("apply"),
            "annotated"
        );
    }

    #[test]
    fn an_existing_value_changes_only_with_overwrite() {
        let labels = json!({"role": "gpu", "zone": "eu"});
        let mut map = labels.as_object().expect("map").clone();
        let e = apply(&mut map, &changes(&["role=cpu"]), false, Field::Labels)
            .expect_err("no overwrite");
        assert!(e.to_string().contains("--overwrite is false"), "{e}");
        assert_eq!(
            apply(&mut map, &changes(&["role=cpu"]), true, Field::Labels).expect("overwrite"),
            "labeled"
        );
        assert_eq!(map["role"], "cpu");
        assert_eq!(
            apply(&mut map, &changes(&["zone-"]), false, Field::Labels).expect("remove"),
            "unlabeled"
        );
        assert_eq!(
            apply(&mut map, &changes(&["role=cpu"]), false, Field::Labels).expect("same"),
            "not labeled"
        );
    }
}
