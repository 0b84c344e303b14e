//! State values: what a command line means, how values print, and which
//! values are storable.

use serde_json::Value;

/// Largest value, JSON-encoded, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Checks a value: anything JSON but null, at most [`MAX_VALUE_BYTES`].
pub fn validate_value(value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Err("must be a string, number, boolean, array or object, not null".into());
    }
    let len = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if len > MAX_VALUE_BYTES {
        return Err(format!(
            "must be at most {MAX_VALUE_BYTES} bytes as JSON (is {len})"
        ));
    }
    Ok(())
}

/// A value as typed on a command line: JSON when the text is a JSON number,
/// boolean, array, object or quoted string (`5`, `true`, `{"a":1}`,
/// `"5"`), else the text itself as a string. `null` is refused (delete the
/// key instead); `as_string` keeps the text a string whatever it looks like.
pub fn parse_value(text: &str, as_string: bool) -> Result<Value, String> {
    if as_string {
        return Ok(Value::String(text.to_string()));
    }
    let value = match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => {
            return Err(
                "null is not a value (use `state delete` to remove a key, or --string to \
                 store the text \"null\")"
                    .into(),
            );
        }
        Ok(value) => value,
        Err(_) => Value::String(text.to_string()),
    };
    validate_value(&value)?;
    Ok(value)
}

/// A value as `state get` prints it: strings as they are, everything else
/// as compact JSON.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn command_line_values_are_typed_like_json() {
        assert_eq!(parse_value("5", false), Ok(json!(5)));
        assert_eq!(parse_value("-2.5", false), Ok(json!(-2.5)));
        assert_eq!(parse_value("true", false), Ok(json!(true)));
        assert_eq!(parse_value(r#"{"a":[1]}"#, false), Ok(json!({"a": [1]})));
        assert_eq!(parse_value(r#""5""#, false), Ok(json!("5")));
        assert_eq!(parse_value("v1.2.3", false), Ok(json!("v1.2.3")));
        assert_eq!(parse_value("", false), Ok(json!("")));
        assert_eq!(parse_value("5", true), Ok(json!("5")));
        assert!(
            parse_value("null", false)
                .expect_err("null")
                .contains("null")
        );
        assert_eq!(parse_value("null", true), Ok(json!("null")));
        let big = format!("[{}1]", "1,".repeat(MAX_VALUE_BYTES));
        assert!(parse_value(&big, false).is_err());
    }

    #[test]
    fn values_print_plainly() {
        assert_eq!(render_value(&json!("v1")), "v1");
        assert_eq!(render_value(&json!(5)), "5");
        assert_eq!(render_value(&json!({"a": true})), r#"{"a":true}"#);
    }
}
