//! Machine-readable forms: YAML, JSON and `kind/name`, for single objects,
//! lists (kubectl's `kind: List`) and watch events.

use serde_json::{Value, json};
use sloth_sdk::DynamicObject;
use sloth_sdk::kinds::KindInfo;

use crate::error::CliError;

/// An object as JSON.
pub(crate) fn to_value(object: &DynamicObject) -> Result<Value, CliError> {
    serde_json::to_value(object).map_err(|e| CliError::failed(format!("cannot encode object: {e}")))
}

/// kubectl's list form: `apiVersion: v1, kind: List, items: [...]`.
pub(crate) fn list(objects: &[DynamicObject], resource_version: &str) -> Result<Value, CliError> {
    let items = objects
        .iter()
        .map(to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    }))
}

/// A watch event as kubectl prints it with `--output-watch-events`.
pub(crate) fn event(kind: &str, object: &DynamicObject) -> Result<Value, CliError> {
    Ok(json!({"type": kind, "object": to_value(object)?}))
}

/// YAML text ending in a newline.
pub(crate) fn yaml(value: &Value) -> Result<String, CliError> {
    let mut text = serde_norway::to_string(value)
        .map_err(|e| CliError::failed(format!("cannot encode YAML: {e}")))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Indented JSON ending in a newline.
pub(crate) fn json_pretty(value: &Value) -> Result<String, CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failed(format!("cannot encode JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// One line of JSON (for watch output).
pub(crate) fn json_line(value: &Value) -> Result<String, CliError> {
    let mut text = serde_json::to_string(value)
        .map_err(|e| CliError::failed(format!("cannot encode JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// `taskrun/NAME`.
pub(crate) fn name(kind: &KindInfo, object: &DynamicObject) -> String {
    format!("{}/{}", kind.singular, object.metadata.name)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal TaskRun `name` in `default`, for printer tests.
    pub(crate) fn taskrun(name: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"run": {"shell": "true"}}
        }))
        .expect("object")
    }

    #[test]
    fn yaml_of_one_object_and_of_a_list() {
        let text = yaml(&to_value(&taskrun("a")).expect("value")).expect("yaml");
        assert!(
            text.starts_with("apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n"),
            "{text}"
        );
        assert!(text.contains("  name: a\n"), "{text}");
        let text = yaml(&list(&[taskrun("a"), taskrun("b")], "7").expect("list")).expect("yaml");
        assert!(text.starts_with("apiVersion: v1\n"), "{text}");
        assert!(
            text.contains("kind: List\n") && text.contains("name: b"),
            "{text}"
        );
        let back: Value = serde_norway::from_str(&text).expect("round trip");
        assert_eq!(back["items"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn names_and_events() {
        let kind = sloth_sdk::kinds::lookup("tr").expect("kind");
        assert_eq!(name(kind, &taskrun("x")), "taskrun/x");
        let line = json_line(&event("ADDED", &taskrun("x")).expect("event")).expect("json");
        assert!(
            line.starts_with(r#"{"object":"#) || line.starts_with(r#"{"type":"#),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
    }
}
