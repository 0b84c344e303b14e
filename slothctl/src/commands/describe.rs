//! `slothctl describe KIND NAME`: kubectl-style sections.

use chrono::Utc;
use serde_json::Value;
use sloth_sdk::kinds::KindInfo;
use sloth_sdk::{DynamicObject, Error as SdkError, ListParams};

use super::{Context, check_selectors};
use crate::cli::DescribeArgs;
use crate::error::{self, CliError};
use crate::kind;
use crate::printer::age::age;
use crate::printer::{emit, output, table};

/// Width of the label column (`Resource Version:` plus two spaces).
const LABEL_WIDTH: usize = 19;

pub async fn run(ctx: &Context, args: DescribeArgs) -> anyhow::Result<()> {
    let (kind, names) = kind::resolve_args(&args.kind, &args.names)?;
    check_selectors(&args.selector, "")?;
    let namespace = kind::scope(
        kind,
        &ctx.namespace,
        args.all_namespaces && names.is_empty(),
    );
    let mut failed = false;
    let mut objects = Vec::new();
    if names.is_empty() {
        let params = ListParams {
            label_selector: args.selector.clone(),
            ..ListParams::default()
        };
        let list = ctx
            .client
            .list_all(kind.kind, namespace, &params)
            .await
            .map_err(|e| ctx.error(e))?;
        if list.items.is_empty() {
            eprintln!("{}", super::get::no_resources(kind, namespace));
        }
        objects = list.items;
    } else {
        for name in &names {
            match ctx.client.get(kind.kind, namespace, name).await {
                Ok(object) => objects.push(object),
                Err(e @ SdkError::NotFound(_)) => {
                    eprintln!("{}", ctx.error(e));
                    failed = true;
                }
                Err(e) => return Err(ctx.error(e).into()),
            }
        }
    }
    let texts = objects
        .iter()
        .map(|o| describe(kind, o))
        .collect::<Result<Vec<_>, _>>()?;
    emit(&texts.join("\n"))?;
    if failed {
        return Err(CliError::reported(error::FAILED).into());
    }
    Ok(())
}

/// The description of one object, ending in a newline.
pub fn describe(kind: &KindInfo, object: &DynamicObject) -> Result<String, CliError> {
    let meta = &object.metadata;
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        let label = format!("{label}:");
        out.push_str(&format!("{label:<LABEL_WIDTH$}{value}\n"));
    };
    field("Name", &meta.name);
    if kind.namespaced {
        field("Namespace", &meta.namespace);
    }
    field("Labels", &pairs(&meta.labels));
    field("Annotations", &pairs(&meta.annotations));
    field("UID", &meta.uid);
    field("Resource Version", &meta.resource_version);
    field("Generation", &meta.generation.to_string());
    let now = Utc::now();
    let created = meta.creation_timestamp.map_or_else(
        || "<unknown>".to_string(),
        |t| format!("{} ({} ago)", rfc3339(t), age(Some(t), now)),
    );
    field("Created", &created);
    if let Some(t) = meta.deletion_timestamp {
        field("Deleting Since", &rfc3339(t));
    }
    if !meta.finalizers.is_empty() {
        field("Finalizers", &meta.finalizers.join(", "));
    }
    if !meta.owner_references.is_empty() {
        let owners: Vec<_> = meta
            .owner_references
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect();
        field("Owners", &owners.join(", "));
    }
    out.push_str(&section("Spec", &object.spec)?);
    let mut status = object.status.clone();
    let conditions = status
        .as_object_mut()
        .and_then(|s| s.remove("conditions"))
        .unwrap_or(Value::Null);
    out.push_str(&section("Status", &status)?);
    out.push_str(&conditions_table(&conditions));
    Ok(out)
}

/// `2025-01-01T12:00:00Z`.
fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `k=v` pairs, one a line aligned under the first, or `<none>`.
fn pairs(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "<none>".to_string();
    }
    let indent = format!("\n{:LABEL_WIDTH$}", "");
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(&indent)
}

/// `Title:` and the value as YAML indented by two spaces, or `<none>`.
fn section(title: &str, value: &Value) -> Result<String, CliError> {
    let empty = match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    let label = format!("{title}:");
    if empty {
        return Ok(format!("{label:<LABEL_WIDTH$}<none>\n"));
    }
    let yaml = output::yaml(value)?;
    let mut out = format!("{label}\n");
    for line in yaml.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// `Conditions:` as a TYPE STATUS REASON MESSAGE table.
fn conditions_table(conditions: &Value) -> String {
    let items = conditions.as_array().map(Vec::as_slice).unwrap_or_default();
    let label = "Conditions:";
    if items.is_empty() {
        return format!("{label:<LABEL_WIDTH$}<none>\n");
    }
    let text = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            vec![
                text(c, "type"),
                text(c, "status"),
                text(c, "reason"),
                text(c, "message"),
            ]
        })
        .collect();
    let headers: Vec<String> = ["TYPE", "STATUS", "REASON", "MESSAGE"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = format!("{label}\n");
    for line in table::render(Some(&headers), &rows).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_in_kubectl_order() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "a", "namespace": "default", "uid": "u-1", "resourceVersion": "9",
                         "generation": 2, "labels": {"app": "x", "tier": "y"},
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"run": {"shell": "make"}},
            "status": {"phase": "Failed", "exitCode": 2,
                       "conditions": [{"type": "Succeeded", "status": "False", "reason": "Error", "message": "exit 2"}]}
        }))
        .expect("object");
        let kind = crate::kind::resolve("tr").expect("kind");
        let text = describe(kind, &object).expect("describe");
        let labels: Vec<_> = text
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(|l| l.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            labels,
            [
                "Name",
                "Namespace",
                "Labels",
                "Annotations",
                "UID",
                "Resource Version",
                "Generation",
                "Created",
                "Spec",
                "Status",
                "Conditions"
            ]
        );
        assert!(
            text.contains("Labels:            app=x\n                   tier=y\n"),
            "{text}"
        );
        assert!(text.contains("Spec:\n  run:\n    shell: make\n"), "{text}");
        assert!(
            text.contains("Status:\n  exitCode: 2\n  phase: Failed\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  TYPE        STATUS   REASON   MESSAGE\n  Succeeded   False    Error    exit 2\n"
            ),
            "{text}"
        );
    }
}
