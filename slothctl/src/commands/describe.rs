//! `slothctl describe KIND NAME`: kubectl-style sections.

use chrono::Utc;
use serde_json::Value;
use sloth_sdk::kinds::KindInfo;
use sloth_sdk::meta::DEFAULT_NAMESPACE;
use sloth_sdk::{DynamicObject, Error as SdkError, ListParams};

use super::{Context, check_selectors};
use crate::cli::DescribeArgs;
use crate::error::{CliError, Failures};
use crate::kind;
use crate::printer::age::{age, parse_time};
use crate::printer::{columns, emit, output, table};

/// Width of the label column (`Resource Version:` plus two spaces).
const LABEL_WIDTH: usize = 19;

pub(crate) async fn run(ctx: &Context, args: DescribeArgs) -> anyhow::Result<()> {
    let (kind, names) = kind::resolve_args(&args.kind, &args.names)?;
    check_selectors(&args.selector, "")?;
    let namespace = kind::scope(
        kind,
        &ctx.namespace,
        args.all_namespaces && names.is_empty(),
    );
    let mut failures = Failures::default();
    let params = ListParams {
        label_selector: args.selector.clone(),
        ..ListParams::default()
    };
    let (objects, _) =
        super::get::fetch(ctx, kind, namespace, &names, &params, &mut failures).await?;
    if names.is_empty() && objects.is_empty() {
        eprintln!("{}", super::get::no_resources(kind, namespace));
    }
    let now = Utc::now();
    let mut texts = Vec::new();
    for object in &objects {
        let events = if kind.kind == "Event" {
            None
        } else {
            match list_events(ctx, kind, object).await {
                Ok(events) => Some(events),
                Err(e) => {
                    eprintln!("warning: cannot list events: {}", ctx.error(e));
                    None
                }
            }
        };
        texts.push(describe(kind, object, events.as_deref(), now)?);
    }
    emit(&texts.join("\n"))?;
    Ok(failures.finish()?)
}

/// The Events about `object`, from the server (filtered again client-side
/// by [`events_of`] when described).
async fn list_events(
    ctx: &Context,
    kind: &KindInfo,
    object: &DynamicObject,
) -> Result<Vec<DynamicObject>, SdkError> {
    let namespace = if object.metadata.namespace.is_empty() {
        DEFAULT_NAMESPACE
    } else {
        &object.metadata.namespace
    };
    let params = ListParams {
        field_selector: format!(
            "spec.involvedObject.kind={},spec.involvedObject.name={}",
            kind.kind, object.metadata.name
        ),
        ..ListParams::default()
    };
    Ok(ctx
        .client
        .list_all("Event", namespace, &params)
        .await?
        .items)
}

/// The description of one object, ending in a newline. `events`: the Events
/// listed for it (only those about it are shown), or None to leave the
/// Events section out.
pub(crate) fn describe(
    kind: &KindInfo,
    object: &DynamicObject,
    events: Option<&[DynamicObject]>,
    now: chrono::DateTime<Utc>,
) -> Result<String, CliError> {
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
    if kind.kind == "Secret" {
        let hidden = meta
            .annotations
            .contains_key(sloth_sdk::well_known::VALUES_HIDDEN);
        out.push_str(&secret_data(&object.spec, hidden));
    } else {
        out.push_str(&section("Spec", &object.spec)?);
    }
    let mut status = object.status.clone();
    let conditions = status
        .as_object_mut()
        .and_then(|s| s.remove("conditions"))
        .unwrap_or(Value::Null);
    let history = match kind.kind {
        "Stack" => status.as_object_mut().and_then(|s| s.remove("history")),
        _ => None,
    };
    out.push_str(&section("Status", &status)?);
    out.push_str(&conditions_table(&conditions));
    if kind.kind == "Stack" {
        out.push_str(&stack_history_table(history.as_ref(), now));
    }
    if kind.kind == "Workflow" {
        out.push_str(&tasks_table(&object.spec, &object.status));
    }
    if let Some(events) = events {
        out.push_str(&events_table(&events_of(kind, object, events), now));
    }
    Ok(out)
}

/// A Stack's `History:` as WORKFLOW PHASE STARTED FINISHED APPLIED BY,
/// oldest first.
fn stack_history_table(history: Option<&Value>, now: chrono::DateTime<Utc>) -> String {
    let when = |run: &Value, field: &str| {
        parse_time(run.get(field)).map_or_else(
            || "<none>".to_string(),
            |t| format!("{} ({} ago)", rfc3339(t), age(Some(t), now)),
        )
    };
    let rows: Vec<Vec<String>> = history
        .and_then(Value::as_array)
        .map(|runs| {
            runs.iter()
                .map(|run| {
                    vec![
                        text(run, "workflow"),
                        or_none(text(run, "phase")),
                        when(run, "startTime"),
                        when(run, "completionTime"),
                        or_none(text(run, "appliedBy")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    titled_table(
        "History",
        &["WORKFLOW", "PHASE", "STARTED", "FINISHED", "APPLIED BY"],
        &rows,
    )
}

/// A Secret's type and its keys with the size of each value, never the
/// values (a viewer, whose values the server withholds, sees `<hidden>`).
fn secret_data(spec: &Value, hidden: bool) -> String {
    let type_ = spec.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    let mut out = format!("{:<LABEL_WIDTH$}{type_}\n", "Type:");
    let data = spec.get("data").and_then(Value::as_object);
    let rows: Vec<Vec<String>> = data
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let size = match value.as_str().map(sloth_sdk::objects::secret::decode) {
                _ if hidden => "<hidden>".to_string(),
                Some(Ok(bytes)) => format!("{} bytes", bytes.len()),
                _ => "<invalid>".to_string(),
            };
            vec![key.clone(), size]
        })
        .collect();
    out.push_str(&titled_table("Data", &["KEY", "SIZE"], &rows));
    out
}

/// `Title:` and a table indented by two spaces, or `Title: <none>`.
fn titled_table(title: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let label = format!("{title}:");
    if rows.is_empty() {
        return format!("{label:<LABEL_WIDTH$}<none>\n");
    }
    let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
    let mut out = format!("{label}\n");
    for line in table::render(Some(&headers), rows).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A string field of a JSON object, or "".
fn text(value: &Value, field: &str) -> String {
    match value.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `<none>` for "".
fn or_none(value: String) -> String {
    if value.is_empty() {
        "<none>".to_string()
    } else {
        value
    }
}

/// A Workflow's `Tasks:` as NAME PHASE ATTEMPT TASKRUN REASON, in spec order
/// (`spec.tasks`, then `spec.finally`); tasks the status does not name yet
/// are Pending.
fn tasks_table(spec: &Value, status: &Value) -> String {
    let states = status.get("tasks").unwrap_or(&Value::Null);
    let rows: Vec<Vec<String>> = ["tasks", "finally"]
        .iter()
        .filter_map(|list| spec.get(list).and_then(Value::as_array))
        .flatten()
        .map(|task| {
            let name = text(task, "name");
            let state = states.get(&name).unwrap_or(&Value::Null);
            let phase = text(state, "phase");
            let attempt = text(state, "attempt");
            vec![
                name,
                if phase.is_empty() {
                    "Pending".to_string()
                } else {
                    phase
                },
                if attempt.is_empty() {
                    "0".to_string()
                } else {
                    attempt
                },
                or_none(text(state, "taskRun")),
                or_none(text(state, "reason")),
            ]
        })
        .collect();
    titled_table(
        "Tasks",
        &["NAME", "PHASE", "ATTEMPT", "TASKRUN", "REASON"],
        &rows,
    )
}

/// The Events about `object`: its kind and name (and uid, when both sides
/// have one), oldest first.
pub(crate) fn events_of<'a>(
    kind: &KindInfo,
    object: &DynamicObject,
    events: &'a [DynamicObject],
) -> Vec<&'a DynamicObject> {
    let meta = &object.metadata;
    let mut out: Vec<&DynamicObject> = events
        .iter()
        .filter(|e| {
            let involved = e.spec.get("involvedObject").unwrap_or(&Value::Null);
            let uid = text(involved, "uid");
            let namespace = text(involved, "namespace");
            text(involved, "kind") == kind.kind
                && text(involved, "name") == meta.name
                && (namespace.is_empty() || namespace == meta.namespace)
                && (uid.is_empty() || meta.uid.is_empty() || uid == meta.uid)
        })
        .collect();
    out.sort_by(|a, b| {
        columns::event_time(a)
            .cmp(&columns::event_time(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    out
}

/// `Events:` as TYPE REASON AGE FROM MESSAGE, like kubectl: AGE is when
/// it last happened, with `(xN over AGE)` for repeats.
fn events_table(events: &[&DynamicObject], now: chrono::DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let spec = &e.spec;
            let count = spec.get("count").and_then(Value::as_u64).unwrap_or(1);
            let mut when = age(columns::event_time(e), now);
            if count > 1 {
                let first =
                    parse_time(spec.get("firstTimestamp")).or(e.metadata.creation_timestamp);
                when = format!("{when} (x{count} over {})", age(first, now));
            }
            let type_ = text(spec, "type");
            vec![
                if type_.is_empty() {
                    "Normal".to_string()
                } else {
                    type_
                },
                text(spec, "reason"),
                when,
                text(spec, "source"),
                text(spec, "message"),
            ]
        })
        .collect();
    titled_table(
        "Events",
        &["TYPE", "REASON", "AGE", "FROM", "MESSAGE"],
        &rows,
    )
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

    fn now() -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn event(name: &str, involved: Value, extra: Value) -> DynamicObject {
        let mut spec = json!({"involvedObject": involved, "reason": "Started",
                              "message": "started", "source": "workflow-controller"});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2025-01-01T11:00:00Z"},
            "spec": spec
        }))
        .expect("event")
    }

    fn workflow() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Workflow",
            "metadata": {"name": "build", "namespace": "default", "uid": "u-1",
                         "creationTimestamp": "2025-01-01T11:00:00Z"},
            "spec": {"tasks": [{"name": "fetch", "run": {"shell": "true"}},
                               {"name": "test", "run": {"shell": "true"}, "dependsOn": ["fetch"]}],
                     "finally": [{"name": "notify", "run": {"shell": "true"}}]},
            "status": {"phase": "Running", "startTime": "2025-01-01T11:00:01Z",
                       "tasks": {"fetch": {"phase": "Succeeded", "taskRun": "build-fetch-1", "attempt": 1},
                                 "test": {"phase": "Failed", "taskRun": "build-test-2", "attempt": 2,
                                          "reason": "ExitCode"}}}
        }))
        .expect("workflow")
    }

    #[test]
    fn workflow_tasks_in_spec_order_with_pending_ones() {
        let kind = crate::kind::resolve("wf").expect("kind");
        let text = describe(kind, &workflow(), Some(&[]), now()).expect("describe");
        assert!(
            text.contains(
                "Tasks:\n\
                 \x20 NAME     PHASE       ATTEMPT   TASKRUN         REASON\n\
                 \x20 fetch    Succeeded   1         build-fetch-1   <none>\n\
                 \x20 test     Failed      2         build-test-2    ExitCode\n\
                 \x20 notify   Pending     0         <none>          <none>\n\
                 Events:            <none>\n"
            ),
            "{text}"
        );
        // The Tasks table comes after the existing sections.
        let conditions = text.find("\nConditions:").expect("conditions");
        let tasks = text.find("\nTasks:").expect("tasks");
        assert!(conditions < tasks, "{text}");
        // Other kinds have no Tasks table.
        let tr = crate::kind::resolve("tr").expect("kind");
        let mut object = workflow();
        object.kind = "TaskRun".into();
        assert!(
            !describe(tr, &object, None, now())
                .expect("describe")
                .contains("Tasks:")
        );
    }

    #[test]
    fn workflow_events_only_its_own_oldest_first() {
        let kind = crate::kind::resolve("wf").expect("kind");
        let events = [
            event(
                "build.2",
                json!({"kind": "Workflow", "name": "build", "namespace": "default", "uid": "u-1"}),
                json!({"type": "Warning", "reason": "TaskFailed", "message": "task test failed",
                       "count": 2, "firstTimestamp": "2025-01-01T11:50:00Z",
                       "lastTimestamp": "2025-01-01T11:59:00Z"}),
            ),
            event(
                "build.1",
                json!({"kind": "Workflow", "name": "build"}),
                json!({"lastTimestamp": "2025-01-01T11:00:02Z"}),
            ),
            // Another object's events: another name, kind, or uid (an
            // earlier workflow of the same name).
            event(
                "other.1",
                json!({"kind": "Workflow", "name": "other"}),
                json!({}),
            ),
            event(
                "build.3",
                json!({"kind": "TaskRun", "name": "build"}),
                json!({}),
            ),
            event(
                "build.4",
                json!({"kind": "Workflow", "name": "build", "uid": "u-0"}),
                json!({}),
            ),
        ];
        let text = describe(kind, &workflow(), Some(&events), now()).expect("describe");
        let at = text.find("Events:\n").expect("events");
        assert_eq!(
            &text[at..],
            "Events:\n\
             \x20 TYPE      REASON       AGE                 FROM                  MESSAGE\n\
             \x20 Normal    Started      59m                 workflow-controller   started\n\
             \x20 Warning   TaskFailed   60s (x2 over 10m)   workflow-controller   task test failed\n"
        );
    }
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
        let text = describe(kind, &object, Some(&[]), now()).expect("describe");
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
                "Conditions",
                "Events"
            ]
        );
        assert!(text.ends_with("\nEvents:            <none>\n"), "{text}");
        let text = describe(kind, &object, None, now()).expect("describe");
        assert!(!text.contains("Events:"), "{text}");
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
