//! `slothctl get KIND [NAME...]`: tables, YAML, JSON or names; `-w` hands
//! over to [`super::watch`].

use chrono::Utc;
use sloth_sdk::kinds::KindInfo;
use sloth_sdk::{DynamicObject, Error as SdkError, ListParams};

use super::{Context, check_selectors, watch};
use crate::cli::GetArgs;
use crate::error::{CliError, Failures};
use crate::kind;
use crate::printer::columns::{self, Options};
use crate::printer::jsonpath::Template;
use crate::printer::{Format, Output, emit, output, table};

pub(crate) async fn run(ctx: &Context, args: GetArgs) -> anyhow::Result<()> {
    let (kind, names) = kind::resolve_args(&args.kind, &args.names)?;
    check_selectors(&args.selector, &args.field_selector)?;
    let selected = !args.selector.is_empty() || !args.field_selector.is_empty();
    if !names.is_empty() && selected {
        return Err(CliError::usage("selectors cannot be used together with names").into());
    }
    if !names.is_empty() && args.all_namespaces && kind.namespaced {
        return Err(CliError::usage(
            "an object cannot be retrieved by name across all namespaces; use -n NS",
        )
        .into());
    }
    if args.output_watch_events && !args.watch {
        return Err(CliError::usage("--output-watch-events needs --watch").into());
    }
    let sort_by = args
        .sort_by
        .as_deref()
        .map(Template::relaxed)
        .transpose()
        .map_err(|e| CliError::usage(format!("--sort-by: {e}")))?;
    let namespace = kind::scope(kind, &ctx.namespace, args.all_namespaces);
    let options = Options {
        wide: args.output.format() == Some(Format::Wide),
        namespace: args.all_namespaces && kind.namespaced,
        event: args.output_watch_events,
        labels: args.show_labels,
    };
    if args.watch {
        return watch::run(ctx, kind, namespace, &names, &args, options).await;
    }

    let mut failures = Failures::default();
    let params = ListParams {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        ..ListParams::default()
    };
    let (mut objects, resource_version) =
        fetch(ctx, kind, namespace, &names, &params, &mut failures).await?;

    if let Some(sort_by) = &sort_by {
        sort(&mut objects, sort_by)?;
    } else if kind.kind == "Event" {
        columns::sort_events(&mut objects);
    }
    let single = names.len() == 1;
    let tabular = matches!(
        args.output,
        Output::Plain(Format::Table | Format::Wide) | Output::CustomColumns(_)
    );
    if objects.is_empty() && names.is_empty() && tabular {
        eprintln!("{}", no_resources(kind, namespace));
    } else if !(objects.is_empty() && single) {
        let text = render(
            kind,
            &objects,
            single,
            &resource_version,
            &args.output,
            options,
            !args.no_headers,
        )?;
        emit(&text)?;
    }
    Ok(failures.finish()?)
}

/// The objects `names` (a missing one is reported in `failures`), or with
/// no names every one `params` selects; with the list's resourceVersion.
pub(super) async fn fetch(
    ctx: &Context,
    kind: &KindInfo,
    namespace: &str,
    names: &[String],
    params: &ListParams,
    failures: &mut Failures,
) -> Result<(Vec<DynamicObject>, String), CliError> {
    if names.is_empty() {
        let list = ctx
            .client
            .list_all(kind.kind, namespace, params)
            .await
            .map_err(|e| ctx.error(e))?;
        return Ok((list.items, list.resource_version));
    }
    let mut objects = Vec::new();
    for name in names {
        match ctx.client.get(kind.kind, namespace, name).await {
            Ok(object) => objects.push(object),
            Err(e @ SdkError::NotFound(_)) => failures.report(ctx.error(e))?,
            Err(e) => return Err(ctx.error(e)),
        }
    }
    Ok((objects, String::new()))
}

/// kubectl's `--sort-by`: by the first value the expression selects,
/// numbers as numbers, anything else as text; objects without one first.
/// The sort is stable, so equal keys keep the server's order (by name).
fn sort(objects: &mut [DynamicObject], by: &Template) -> Result<(), CliError> {
    let mut keyed = objects
        .iter()
        .map(|o| {
            let value = output::to_value(o)?;
            let key = by.values(&value).first().map(|v| SortKey::of(v));
            Ok((key, o.clone()))
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    for (slot, (_, object)) in objects.iter_mut().zip(keyed) {
        *slot = object;
    }
    Ok(())
}

/// What `--sort-by` compares: numbers before text.
#[derive(Debug, PartialEq, PartialOrd)]
enum SortKey {
    Number(f64),
    Text(String),
}

impl SortKey {
    fn of(value: &serde_json::Value) -> Self {
        match value.as_f64() {
            Some(n) => Self::Number(n),
            None => Self::Text(crate::printer::jsonpath::text(value)),
        }
    }
}

/// kubectl's message for an empty table (on stderr).
pub(crate) fn no_resources(kind: &KindInfo, namespace: &str) -> String {
    if kind.namespaced && !namespace.is_empty() {
        format!("No resources found in {namespace} namespace.")
    } else {
        "No resources found".to_string()
    }
}

/// The whole output of a non-watching get. `single`: one object was asked
/// for by name, so YAML and JSON show it alone rather than in a List.
pub(crate) fn render(
    kind: &KindInfo,
    objects: &[DynamicObject],
    single: bool,
    resource_version: &str,
    output: &Output,
    options: Options,
    headers: bool,
) -> Result<String, CliError> {
    let value = || match (single, objects) {
        (true, [one]) => output::to_value(one),
        _ => output::list(objects, resource_version),
    };
    let format = match output {
        Output::Plain(format) => *format,
        Output::JsonPath(template) => return Ok(template.render(&value()?)),
        Output::CustomColumns(columns) => {
            let rows = objects
                .iter()
                .map(|o| Ok(columns.row(&output::to_value(o)?)))
                .collect::<Result<Vec<_>, CliError>>()?;
            let header = columns.headers();
            return Ok(table::render(headers.then_some(header.as_slice()), &rows));
        }
    };
    Ok(match format {
        Format::Table | Format::Wide => {
            let now = Utc::now();
            let rows: Vec<_> = objects
                .iter()
                .map(|o| columns::row(kind, o, options, "", now))
                .collect();
            let header = columns::headers(kind, options);
            table::render(headers.then_some(header.as_slice()), &rows)
        }
        Format::Yaml | Format::Json => {
            let value = value()?;
            if format == Format::Yaml {
                output::yaml(&value)?
            } else {
                output::json_pretty(&value)?
            }
        }
        Format::Name => objects
            .iter()
            .map(|o| output::name(kind, o) + "\n")
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::printer::output::tests::taskrun;

    #[test]
    fn single_objects_print_alone_and_lists_as_lists() {
        let kind = kind::resolve("tr").expect("kind");
        let one = [taskrun("a")];
        let o = Options::default();
        let text =
            render(kind, &one, true, "", &Output::Plain(Format::Yaml), o, true).expect("yaml");
        assert!(text.starts_with("apiVersion: sloth.dev/v1\n"), "{text}");
        let text = render(
            kind,
            &one,
            false,
            "3",
            &Output::Plain(Format::Json),
            o,
            true,
        )
        .expect("json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["metadata"]["name"], "a");
        let two = [taskrun("a"), taskrun("b")];
        let text =
            render(kind, &two, false, "", &Output::Plain(Format::Name), o, true).expect("name");
        assert_eq!(text, "taskrun/a\ntaskrun/b\n");
        let text = render(
            kind,
            &two,
            false,
            "",
            &Output::Plain(Format::Table),
            o,
            false,
        )
        .expect("table");
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("a "), "{text}");
    }

    #[test]
    fn sort_by_orders_numbers_numerically_and_missing_first() {
        let mut objects: Vec<DynamicObject> =
            [("a", json!(10)), ("b", json!(9)), ("c", json!(null))]
                .into_iter()
                .map(|(name, code)| {
                    let mut o = taskrun(name);
                    if !code.is_null() {
                        o.status = json!({"exitCode": code});
                    }
                    o
                })
                .collect();
        sort(
            &mut objects,
            &Template::relaxed(".status.exitCode").expect("expr"),
        )
        .expect("sort");
        let names: Vec<_> = objects.iter().map(|o| o.metadata.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
    }

    #[test]
    fn workflow_label_selectors_are_accepted() {
        // The label the workflow controller puts on the TaskRuns it creates.
        assert!(check_selectors("sloth.dev/workflow=build", "").is_ok());
        assert!(check_selectors("sloth.dev/workflow in (a,b)", "status.phase!=Failed").is_ok());
        let selector =
            sloth_sdk::selector::Labels::parse("sloth.dev/workflow=build").expect("parse");
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("sloth.dev/workflow".to_string(), "build".to_string());
        assert!(selector.matches(&labels));
        labels.insert("sloth.dev/workflow".to_string(), "other".to_string());
        assert!(!selector.matches(&labels));
    }

    #[test]
    fn events_print_without_a_name_column() {
        let kind = kind::resolve("events").expect("kind");
        let event: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Event",
            "metadata": {"name": "build.0123456789abcdef", "namespace": "default"},
            "spec": {"involvedObject": {"kind": "Workflow", "name": "build"},
                     "reason": "Started", "message": "workflow started",
                     "lastTimestamp": "2025-01-01T00:00:00Z"}
        }))
        .expect("event");
        let text = render(
            kind,
            std::slice::from_ref(&event),
            false,
            "",
            &Output::Plain(Format::Table),
            Options::default(),
            true,
        )
        .expect("table");
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        assert!(
            header.starts_with("LAST SEEN   TYPE     REASON    OBJECT           MESSAGE"),
            "{text}"
        );
        let row = lines.next().unwrap_or_default();
        assert!(
            row.contains("   Normal   Started   workflow/build   workflow started"),
            "{text}"
        );
        let text = render(
            kind,
            &[event],
            false,
            "",
            &Output::Plain(Format::Name),
            Options::default(),
            true,
        )
        .expect("name");
        assert_eq!(text, "event/build.0123456789abcdef\n");
    }

    #[test]
    fn empty_messages_name_the_namespace() {
        let tr = kind::resolve("tr").expect("kind");
        let agent = kind::resolve("agent").expect("kind");
        assert_eq!(
            no_resources(tr, "default"),
            "No resources found in default namespace."
        );
        assert_eq!(no_resources(tr, ""), "No resources found");
        assert_eq!(no_resources(agent, ""), "No resources found");
    }
}
