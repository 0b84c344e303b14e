//! The table columns of CronWorkflows and Stacks.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sloth_sdk::DynamicObject;
use sloth_sdk::schedule::Schedule;

use super::age::{age, human_duration, parse_time};

pub(crate) const CRONWORKFLOW_HEADERS: &[&str] = &[
    "NAME",
    "SCHEDULE",
    "SUSPEND",
    "ACTIVE",
    "LAST SCHEDULE",
    "NEXT",
    "AGE",
];
pub(crate) const STACK_HEADERS: &[&str] = &["NAME", "LAST RUN", "PHASE", "RUNS", "AGE"];

const NONE: &str = super::columns::NONE;

/// SCHEDULE, SUSPEND, ACTIVE, LAST SCHEDULE (ago), NEXT (from now), AGE.
pub(crate) fn cronworkflow_row(object: &DynamicObject, now: DateTime<Utc>, out: &mut Vec<String>) {
    let spec = &object.spec;
    let status = &object.status;
    let schedule = str_of(spec, "schedule");
    let timezone = str_of(spec, "timezone");
    let suspend = spec.get("suspend").and_then(Value::as_bool) == Some(true);
    out.push(if timezone.is_empty() {
        schedule.to_string()
    } else {
        format!("{schedule} ({timezone})")
    });
    out.push(suspend.to_string());
    let active = status
        .get("active")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    out.push(active.to_string());
    let last = parse_time(status.get("lastScheduleTime"));
    out.push(last.map_or_else(|| NONE.to_string(), |t| age(Some(t), now)));
    let next = (!suspend)
        .then(|| Schedule::parse(schedule, timezone).ok())
        .flatten()
        .and_then(|s| s.next_after(now));
    out.push(next.map_or_else(
        || NONE.to_string(),
        |t| format!("in {}", human_duration(t - now)),
    ));
    out.push(age(object.metadata.creation_timestamp, now));
}

/// LAST RUN (the latest workflow), PHASE (its phase), RUNS, AGE.
pub(crate) fn stack_row(object: &DynamicObject, now: DateTime<Utc>, out: &mut Vec<String>) {
    let status = &object.status;
    let last = status
        .get("history")
        .and_then(Value::as_array)
        .and_then(|h| h.last());
    let field = |f: &str| {
        last.and_then(|run| run.get(f))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(NONE)
            .to_string()
    };
    out.push(field("workflow"));
    out.push(field("phase"));
    out.push(
        status
            .get("runs")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .to_string(),
    );
    out.push(age(object.metadata.creation_timestamp, now));
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::printer::columns::tests::now;

    #[test]
    fn cronworkflow_row_shows_last_and_next() {
        let cron: DynamicObject = serde_json::from_value(json!({
            "kind": "CronWorkflow",
            "metadata": {"name": "nightly", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"schedule": "0 3 * * *", "workflowSpec": {"tasks": []}},
            "status": {"lastScheduleTime": "2025-01-01T03:00:00Z", "active": ["nightly-1"]}
        }))
        .expect("object");
        let mut out = Vec::new();
        cronworkflow_row(&cron, now(), &mut out);
        assert_eq!(out, ["0 3 * * *", "false", "1", "9h", "in 15h", "12h"]);
    }

    #[test]
    fn stack_row_shows_the_latest_run() {
        let stack: DynamicObject = serde_json::from_value(json!({
            "kind": "Stack",
            "metadata": {"name": "prod", "creationTimestamp": "2025-01-01T11:00:00Z"},
            "spec": {},
            "status": {"runs": 7, "history": [{"workflow": "a", "phase": "Failed"},
                                              {"workflow": "b", "phase": "Succeeded"}]}
        }))
        .expect("object");
        let mut out = Vec::new();
        stack_row(&stack, now(), &mut out);
        assert_eq!(out, ["b", "Succeeded", "7", "60m"]);
    }
}
