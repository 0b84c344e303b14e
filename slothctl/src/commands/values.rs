//! `--values FILE`: a YAML mapping read into the workflow values (the Lua
//! global `values` and Workflow params). Params are text, so a scalar is
//! its text and a nested list or mapping its JSON encoding.

use std::path::Path;

use serde_json::Value;

use crate::manifest::{MAX_MANIFEST_BYTES, Params};

/// The values in `file`; the error names the file and what is wrong.
pub(crate) fn read(file: &Path) -> Result<Params, String> {
    let shown = file.display();
    let meta = std::fs::metadata(file).map_err(|e| format!("--values {shown}: {e}"))?;
    if meta.len() > MAX_MANIFEST_BYTES as u64 {
        return Err(format!(
            "--values {shown}: larger than {} MiB",
            MAX_MANIFEST_BYTES / (1024 * 1024)
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("--values {shown}: {e}"))?;
    parse(&text).map_err(|e| format!("--values {shown}: {e}"))
}

/// A YAML mapping of string keys as params.
pub(crate) fn parse(text: &str) -> Result<Params, String> {
    let value: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let map = match value {
        Value::Null => return Ok(Params::new()),
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "expected a mapping of names to values, got {}",
                kind(&other)
            ));
        }
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        _ => "something else",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_text_and_nested_values_json() {
        let values = parse("env: prod\nreplicas: 3\ndebug: false\nimage: {tag: v1}\n").expect("ok");
        assert_eq!(values["env"], "prod");
        assert_eq!(values["replicas"], "3");
        assert_eq!(values["debug"], "false");
        assert_eq!(values["image"], r#"{"tag":"v1"}"#);
        assert!(parse("- a\n- b\n").expect_err("list").contains("a list"));
        assert!(parse("a: [\n").is_err());
    }
}
