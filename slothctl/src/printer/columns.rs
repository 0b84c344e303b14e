//! The table columns of each kind, read from an object's JSON so that the
//! client keeps working when a newer server adds fields.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sloth_sdk::DynamicObject;
use sloth_sdk::kinds::KindInfo;
use sloth_sdk::well_known::{ORIGINAL_NAME_ANNOTATION, TASK_LABEL};

use super::age::{age, elapsed, parse_time};

/// Shown for a value that is not set.
pub(crate) const NONE: &str = "<none>";

/// What a table shows besides the kind's own columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `-o wide`: the kind's extra columns.
    pub wide: bool,
    /// `--all-namespaces` on a namespaced kind: NAMESPACE first.
    pub namespace: bool,
    /// `--output-watch-events`: EVENT first.
    pub event: bool,
    /// `--show-labels`: LABELS last, `k=v,k=v` (kubectl's spelling).
    pub labels: bool,
}

/// The header line of `kind`'s table.
pub(crate) fn headers(kind: &KindInfo, options: Options) -> Vec<String> {
    // Each kind's columns, then the ones `-o wide` adds after them.
    let (own, wide): (&[&str], &[&str]) = match kind.kind {
        "TaskRun" => (
            &["NAME", "PHASE", "AGENT", "EXIT", "AGE"],
            &["REASON", "DURATION", "TASK", "ARTIFACTS"],
        ),
        "Workflow" => (
            &["NAME", "PHASE", "PROGRESS", "AGE", "DURATION"],
            &["STARTED", "AS WRITTEN"],
        ),
        "Agent" => (
            &[
                "NAME",
                "STATUS",
                "ADDRESS",
                "LABELS",
                "RUNNING/CAPACITY",
                "LAST HEARTBEAT",
                "AGE",
            ],
            &[],
        ),
        "Lock" => (
            &["NAME", "HOLDER", "EXPIRES", "AGE"],
            &["LEASE", "TRANSITIONS"],
        ),
        "Event" => (
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &["COUNT", "SOURCE", "NAME"],
        ),
        "StateEntry" => (&["NAME", "KEY", "VALUE", "AGE", "EXPIRES"], &[]),
        "CronWorkflow" => (super::cron_stack::CRONWORKFLOW_HEADERS, &[]),
        "Stack" => (super::cron_stack::STACK_HEADERS, &[]),
        "Secret" => (&["NAME", "KEYS", "AGE"], &["TYPE"]),
        _ => (&["NAME", "AGE"], &[]),
    };
    let mut out = Vec::new();
    if options.event {
        out.push("EVENT".to_string());
    }
    if options.namespace {
        out.push("NAMESPACE".to_string());
    }
    out.extend(own.iter().map(|s| s.to_string()));
    if options.wide {
        out.extend(wide.iter().map(|s| s.to_string()));
    }
    if options.labels {
        out.push("LABELS".to_string());
    }
    out
}

/// One object's row, matching [`headers`]; `event` fills the EVENT column.
pub(crate) fn row(
    kind: &KindInfo,
    object: &DynamicObject,
    options: Options,
    event: &str,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut out = kind_row(kind, object, options, event, now);
    if options.labels {
        out.push(labels_text(object));
    }
    out
}

/// `k=v,k=v` sorted by key, or `<none>`.
pub(crate) fn labels_text(object: &DynamicObject) -> String {
    let pairs: Vec<String> = object
        .metadata
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    or_none(Some(pairs.join(",")))
}

/// [`row`] without the LABELS column.
fn kind_row(
    kind: &KindInfo,
    object: &DynamicObject,
    options: Options,
    event: &str,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut out = Vec::new();
    if options.event {
        out.push(event.to_string());
    }
    if options.namespace {
        out.push(or_none(Some(object.metadata.namespace.clone())));
    }
    let spec = &object.spec;
    let status = &object.status;
    let created = object.metadata.creation_timestamp;
    let age_col = age(created, now);
    if kind.kind == "Event" {
        event_columns(object, options, now, &mut out);
        return out;
    }
    out.push(object.metadata.name.clone());
    match kind.kind {
        "TaskRun" => {
            out.push(text(status, "phase").unwrap_or_else(|| "Pending".into()));
            out.push(or_none(
                text(status, "agent").or_else(|| text(spec, "agentName")),
            ));
            out.push(or_none(text(status, "exitCode")));
            out.push(age_col);
            if options.wide {
                out.push(or_none(text(status, "reason")));
                out.push(or_none(run_time(status, now)));
                // The task's name as the author wrote it (`Build_App`).
                out.push(or_none(object.metadata.labels.get(TASK_LABEL).cloned()));
                let artifacts = status.get("artifacts").and_then(Value::as_array);
                out.push(artifacts.map_or(0, Vec::len).to_string());
            }
        }
        "Workflow" => {
            out.push(text(status, "phase").unwrap_or_else(|| "Pending".into()));
            out.push(task_counts(spec, status));
            out.push(age_col);
            out.push(or_none(run_time(status, now)));
            if options.wide {
                let started = parse_time(status.get("startTime"));
                out.push(or_none(started.map(|t| age(Some(t), now))));
                // `workflow.define("CI_Pipeline")` -> ci-pipeline: the name
                // as written, where the object's name had to be derived.
                let written = object.metadata.annotations.get(ORIGINAL_NAME_ANNOTATION);
                out.push(or_none(written.cloned()));
            }
        }
        "Agent" => {
            let mut phase = text(status, "phase").unwrap_or_else(|| "Unknown".into());
            if spec.get("unschedulable").and_then(Value::as_bool) == Some(true) {
                phase.push_str(",SchedulingDisabled");
            }
            out.push(phase);
            out.push(or_none(text(spec, "address")));
            out.push(labels_text(object));
            out.push(format!(
                "{}/{}",
                text(status, "running").unwrap_or_else(|| "0".into()),
                text(spec, "capacity").unwrap_or_else(|| "?".into()),
            ));
            let heartbeat = parse_time(status.get("lastHeartbeatTime"));
            out.push(or_none(heartbeat.map(|t| age(Some(t), now))));
            out.push(age_col);
        }
        "Lock" => {
            out.push(or_none(text(spec, "holderIdentity")));
            out.push(lock_expires(spec, now));
            out.push(age_col);
            if options.wide {
                out.push(or_none(
                    text(spec, "leaseDurationSeconds").map(|s| format!("{s}s")),
                ));
                out.push(text(spec, "leaseTransitions").unwrap_or_else(|| "0".into()));
            }
        }
        "StateEntry" => {
            out.push(text(spec, "key").unwrap_or_default());
            out.push(crate::commands::state::short_value(
                spec.get("value").unwrap_or(&Value::Null),
            ));
            out.push(age_col);
            out.push(crate::commands::state::expires(
                parse_time(spec.get("expiresAt")),
                now,
            ));
        }
        "CronWorkflow" => super::cron_stack::cronworkflow_row(object, now, &mut out),
        "Stack" => super::cron_stack::stack_row(object, now, &mut out),
        "Secret" => {
            let keys = spec
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len());
            out.push(keys.to_string());
            out.push(age_col);
            if options.wide {
                out.push(text(spec, "type").unwrap_or_else(|| "Opaque".into()));
            }
        }
        _ => out.push(age_col),
    }
    out
}

/// An Event's columns: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (and with
/// `-o wide` COUNT, SOURCE, NAME).
fn event_columns(
    object: &DynamicObject,
    options: Options,
    now: DateTime<Utc>,
    out: &mut Vec<String>,
) {
    let spec = &object.spec;
    out.push(age(event_time(object), now));
    out.push(text(spec, "type").unwrap_or_else(|| "Normal".into()));
    out.push(or_none(text(spec, "reason")));
    out.push(involved_object(spec));
    out.push(text(spec, "message").unwrap_or_default());
    if options.wide {
        out.push(text(spec, "count").unwrap_or_else(|| "1".into()));
        out.push(or_none(text(spec, "source")));
        out.push(object.metadata.name.clone());
    }
}

/// When an Event last happened: `lastTimestamp`, else `firstTimestamp`,
/// else when it was created.
pub(crate) fn event_time(event: &DynamicObject) -> Option<DateTime<Utc>> {
    parse_time(event.spec.get("lastTimestamp"))
        .or_else(|| parse_time(event.spec.get("firstTimestamp")))
        .or(event.metadata.creation_timestamp)
}

/// Sorts Events oldest first (the newest at the bottom, as kubectl does).
pub(crate) fn sort_events(events: &mut [DynamicObject]) {
    events.sort_by(|a, b| {
        event_time(a)
            .cmp(&event_time(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// `workflow/NAME`: the involved object as kubectl shows it.
fn involved_object(spec: &Value) -> String {
    let involved = spec.get("involvedObject").unwrap_or(&Value::Null);
    let kind = text(involved, "kind")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = text(involved, "name").unwrap_or_default();
    format!("{kind}/{name}")
}

/// Time left on a Lock's lease (`renewTime + leaseDurationSeconds - now`),
/// `expired` when past, `<none>` when no one holds it.
fn lock_expires(spec: &Value, now: DateTime<Utc>) -> String {
    if text(spec, "holderIdentity").is_none_or(|h| h.is_empty()) {
        return NONE.to_string();
    }
    let renewed = parse_time(spec.get("renewTime")).or_else(|| parse_time(spec.get("acquireTime")));
    let lease = spec.get("leaseDurationSeconds").and_then(Value::as_i64);
    let (Some(renewed), Some(lease)) = (renewed, lease) else {
        return super::age::UNKNOWN.to_string();
    };
    let left = renewed + chrono::TimeDelta::seconds(lease) - now;
    if left <= chrono::TimeDelta::zero() {
        "expired".to_string()
    } else {
        super::age::human_duration(left)
    }
}

/// `<none>` for a missing or empty value.
fn or_none(value: Option<String>) -> String {
    value
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| NONE.to_string())
}

/// A scalar field as text (strings as they are, numbers and booleans as JSON).
fn text(object: &Value, field: &str) -> Option<String> {
    match object.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// From `status.startTime` to `status.completionTime`, or to now.
fn run_time(status: &Value, now: DateTime<Utc>) -> Option<String> {
    elapsed(
        parse_time(status.get("startTime")),
        parse_time(status.get("completionTime")),
        now,
    )
}

/// `succeeded/total` over the workflow's tasks and finally tasks.
fn task_counts(spec: &Value, status: &Value) -> String {
    let count = |field: &str| {
        spec.get(field)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let total = count("tasks") + count("finally");
    let succeeded = status
        .get("tasks")
        .and_then(Value::as_object)
        .map_or(0, |tasks| {
            tasks
                .values()
                .filter(|t| t.get("phase").and_then(Value::as_str) == Some("Succeeded"))
                .count()
        });
    format!("{succeeded}/{total}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::printer::table::render;
    use serde_json::json;
    use sloth_sdk::kinds::lookup;

    /// The fixed "now" of the printer tests.
    pub(crate) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).expect("object")
    }

    fn kind(name: &str) -> &'static KindInfo {
        lookup(name).expect("kind")
    }

    #[test]
    fn taskrun_columns_plain_wide_and_all_namespaces() {
        let tr = object(json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "build-1", "namespace": "ci", "creationTimestamp": "2025-01-01T11:55:00Z"},
            "spec": {"run": {"shell": "make"}, "agentName": "a1"},
            "status": {"phase": "Failed", "agent": "a1", "exitCode": 2, "reason": "Error",
                       "startTime": "2025-01-01T11:58:00Z", "completionTime": "2025-01-01T11:59:30Z"}
        }));
        let pending = object(json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2025-01-01T11:59:15Z"},
            "spec": {"run": {"shell": "true"}}
        }));
        let tr_kind = kind("tr");
        let plain = Options::default();
        assert_eq!(
            headers(tr_kind, plain),
            ["NAME", "PHASE", "AGENT", "EXIT", "AGE"]
        );
        assert_eq!(
            row(tr_kind, &tr, plain, "", now()),
            ["build-1", "Failed", "a1", "2", "5m"]
        );
        assert_eq!(
            row(tr_kind, &pending, plain, "", now()),
            ["p", "Pending", NONE, NONE, "45s"]
        );
        let wide = Options {
            wide: true,
            ..plain
        };
        assert_eq!(
            row(tr_kind, &tr, wide, "", now()),
            [
                "build-1", "Failed", "a1", "2", "5m", "Error", "90s", NONE, "0"
            ]
        );
        let all = Options {
            namespace: true,
            event: true,
            ..plain
        };
        assert_eq!(headers(tr_kind, all)[..3], ["EVENT", "NAMESPACE", "NAME"]);
        assert_eq!(
            row(tr_kind, &tr, all, "ADDED", now())[..3],
            ["ADDED", "ci", "build-1"]
        );

        let text = render(
            Some(&headers(tr_kind, plain)),
            &[
                row(tr_kind, &tr, plain, "", now()),
                row(tr_kind, &pending, plain, "", now()),
            ],
        );
        assert_eq!(
            text,
            "NAME      PHASE     AGENT    EXIT     AGE\n\
             build-1   Failed    a1       2        5m\n\
             p         Pending   <none>   <none>   45s\n"
        );
    }

    #[test]
    fn workflow_columns_count_succeeded_tasks() {
        let wf = object(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Workflow",
            "metadata": {"name": "pipe", "creationTimestamp": "2025-01-01T07:00:00Z"},
            "spec": {"tasks": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "finally": [{"name": "z"}]},
            "status": {"phase": "Running", "startTime": "2025-01-01T11:00:00Z",
                       "tasks": {"a": {"phase": "Succeeded"}, "b": {"phase": "Running"}}}
        }));
        let k = kind("wf");
        assert_eq!(
            headers(k, Options::default()),
            ["NAME", "PHASE", "PROGRESS", "AGE", "DURATION"]
        );
        // Running: the duration so far.
        assert_eq!(
            row(k, &wf, Options::default(), "", now()),
            ["pipe", "Running", "1/4", "5h", "60m"]
        );
        let wide = Options {
            wide: true,
            ..Options::default()
        };
        assert_eq!(headers(k, wide)[4..], ["DURATION", "STARTED", "AS WRITTEN"]);
        assert_eq!(row(k, &wf, wide, "", now())[4..], ["60m", "60m", NONE]);

        // Finished: completionTime - startTime.
        let done = object(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Workflow",
            "metadata": {"name": "done", "creationTimestamp": "2025-01-01T11:00:00Z"},
            "spec": {"tasks": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Succeeded", "startTime": "2025-01-01T11:00:05Z",
                       "completionTime": "2025-01-01T11:03:25Z",
                       "tasks": {"a": {"phase": "Succeeded"}, "b": {"phase": "Succeeded"}}}
        }));
        assert_eq!(
            row(k, &done, Options::default(), "", now()),
            ["done", "Succeeded", "2/2", "60m", "3m20s"]
        );
        // Not started: no status at all.
        let new = object(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Workflow",
            "metadata": {"name": "new", "creationTimestamp": "2025-01-01T11:59:58Z"},
            "spec": {"tasks": [{"name": "a"}], "finally": [{"name": "z"}]}
        }));
        assert_eq!(
            row(k, &new, Options::default(), "", now()),
            ["new", "Pending", "0/2", "2s", NONE]
        );
    }

    #[test]
    fn event_columns_show_the_object_and_sort_by_last_seen() {
        let event = |name: &str, last: &str, type_: &str, kind: &str| {
            object(json!({
                "apiVersion": "sloth.dev/v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "default",
                             "creationTimestamp": "2025-01-01T10:00:00Z"},
                "spec": {"involvedObject": {"kind": kind, "name": "build", "namespace": "default"},
                         "reason": "TaskFailed", "message": "task a failed", "type": type_,
                         "count": 3, "source": "workflow-controller",
                         "firstTimestamp": "2025-01-01T10:00:00Z", "lastTimestamp": last}
            }))
        };
        let k = kind("ev");
        assert_eq!(
            headers(k, Options::default()),
            ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        );
        let warning = event("b.1", "2025-01-01T11:59:30Z", "Warning", "Workflow");
        assert_eq!(
            row(k, &warning, Options::default(), "", now()),
            [
                "30s",
                "Warning",
                "TaskFailed",
                "workflow/build",
                "task a failed"
            ]
        );
        let wide = Options {
            wide: true,
            namespace: true,
            ..Options::default()
        };
        assert_eq!(
            headers(k, wide),
            [
                "NAMESPACE",
                "LAST SEEN",
                "TYPE",
                "REASON",
                "OBJECT",
                "MESSAGE",
                "COUNT",
                "SOURCE",
                "NAME"
            ]
        );
        assert_eq!(
            row(k, &warning, wide, "", now())[6..],
            ["3", "workflow-controller", "b.1"]
        );

        let mut events = vec![
            event("c", "2025-01-01T11:59:00Z", "Normal", "TaskRun"),
            warning,
            event("a", "2025-01-01T11:00:00Z", "Normal", "TaskRun"),
        ];
        sort_events(&mut events);
        let names: Vec<_> = events.iter().map(|e| e.metadata.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "b.1"]);
        assert_eq!(
            row(k, &events[0], Options::default(), "", now())[3],
            "taskrun/build"
        );
    }

    #[test]
    fn secret_columns_count_keys_and_never_show_values() {
        let secret = object(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default",
                         "creationTimestamp": "2025-01-01T11:00:00Z"},
            "spec": {"data": {"password": "aHVudGVyMg==", "user": "YQ=="}}
        }));
        let k = kind("secrets");
        assert_eq!(headers(k, Options::default()), ["NAME", "KEYS", "AGE"]);
        assert_eq!(
            row(k, &secret, Options::default(), "", now()),
            ["db", "2", "60m"]
        );
        let wide = Options {
            wide: true,
            ..Options::default()
        };
        assert_eq!(headers(k, wide), ["NAME", "KEYS", "AGE", "TYPE"]);
        assert_eq!(row(k, &secret, wide, "", now())[3], "Opaque");
    }

    #[test]
    fn agent_and_lock_columns() {
        let agent = object(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Agent",
            "metadata": {"name": "a1", "labels": {"gpu": "true", "zone": "eu"},
                         "creationTimestamp": "2024-12-29T12:00:00Z"},
            "spec": {"address": "10.0.0.1:50051", "capacity": 4, "unschedulable": true},
            "status": {"phase": "Ready", "running": 1, "lastHeartbeatTime": "2025-01-01T11:59:57Z"}
        }));
        let k = kind("agents");
        assert_eq!(
            headers(k, Options::default()),
            [
                "NAME",
                "STATUS",
                "ADDRESS",
                "LABELS",
                "RUNNING/CAPACITY",
                "LAST HEARTBEAT",
                "AGE"
            ]
        );
        assert_eq!(
            row(k, &agent, Options::default(), "", now()),
            [
                "a1",
                "Ready,SchedulingDisabled",
                "10.0.0.1:50051",
                "gpu=true,zone=eu",
                "1/4",
                "3s",
                "3d"
            ]
        );
        let new_agent =
            object(json!({"kind": "Agent", "metadata": {"name": "a2"}, "spec": {"capacity": 2}}));
        assert_eq!(
            row(k, &new_agent, Options::default(), "", now()),
            ["a2", "Unknown", NONE, NONE, "0/2", NONE, "<unknown>"]
        );

        let lock = |spec: Value| {
            object(json!({
                "kind": "Lock",
                "metadata": {"name": "agent-a1", "creationTimestamp": "2025-01-01T11:00:00Z"},
                "spec": spec
            }))
        };
        let held = lock(json!({"holderIdentity": "a1", "leaseDurationSeconds": 15,
                               "renewTime": "2025-01-01T11:59:55Z", "leaseTransitions": 2}));
        let k = kind("lock");
        assert_eq!(
            headers(k, Options::default()),
            ["NAME", "HOLDER", "EXPIRES", "AGE"]
        );
        assert_eq!(
            row(k, &held, Options::default(), "", now()),
            ["agent-a1", "a1", "10s", "60m"]
        );
        let wide = Options {
            wide: true,
            ..Options::default()
        };
        assert_eq!(headers(k, wide)[4..], ["LEASE", "TRANSITIONS"]);
        assert_eq!(row(k, &held, wide, "", now())[4..], ["15s", "2"]);
        let lapsed = lock(json!({"holderIdentity": "a1", "leaseDurationSeconds": 15,
                                 "renewTime": "2025-01-01T11:58:00Z"}));
        assert_eq!(
            row(k, &lapsed, Options::default(), "", now())[1..3],
            ["a1", "expired"]
        );
        let long = lock(
            json!({"holderIdentity": "leader", "leaseDurationSeconds": 3600,
                               "acquireTime": "2025-01-01T11:30:00Z"}),
        );
        assert_eq!(row(k, &long, Options::default(), "", now())[2], "30m");
        let free = lock(json!({"leaseDurationSeconds": 15, "renewTime": "2025-01-01T11:59:55Z"}));
        assert_eq!(
            row(k, &free, Options::default(), "", now())[1..3],
            [NONE, NONE]
        );
    }
}
