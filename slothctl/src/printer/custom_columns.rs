//! `-o custom-columns=HEADER:EXPR,...` as kubectl prints them: the headers
//! as given, one row per object, several values of one expression joined
//! by commas, `<none>` when an expression selects nothing.

use serde_json::Value;

use super::columns::NONE;
use super::jsonpath::{Template, text};

/// Parsed columns.
#[derive(Debug)]
pub(crate) struct Columns {
    columns: Vec<(String, Template)>,
}

impl Columns {
    /// `NAME:.metadata.name,PHASE:.status.phase`.
    pub(crate) fn parse(spec: &str) -> Result<Self, String> {
        let mut columns = Vec::new();
        for part in split_columns(spec) {
            let Some((header, expr)) = part.split_once(':') else {
                return Err(format!(
                    "custom-columns: expected HEADER:EXPRESSION, got {part:?} \
                     (e.g. NAME:.metadata.name,PHASE:.status.phase)"
                ));
            };
            let header = header.trim();
            if header.is_empty() {
                return Err(format!("custom-columns: {part:?} has no header"));
            }
            let template =
                Template::relaxed(expr).map_err(|e| format!("custom-columns {header}: {e}"))?;
            columns.push((header.to_string(), template));
        }
        if columns.is_empty() {
            return Err("custom-columns: give at least one HEADER:EXPRESSION".to_string());
        }
        Ok(Self { columns })
    }

    pub(crate) fn headers(&self) -> Vec<String> {
        self.columns.iter().map(|(h, _)| h.clone()).collect()
    }

    /// One object's cells.
    pub(crate) fn row(&self, object: &Value) -> Vec<String> {
        self.columns
            .iter()
            .map(|(_, template)| {
                let values = template.values(object);
                if values.is_empty() {
                    NONE.to_string()
                } else {
                    values.into_iter().map(text).collect::<Vec<_>>().join(",")
                }
            })
            .collect()
    }
}

/// Splits on the commas between columns, not those inside brackets or
/// quotes (`[?(@.type=="A")]`, `['a,b']`).
fn split_columns(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in super::jsonpath::unquoted(spec.char_indices()) {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_show_values_joined_or_none() {
        let c = Columns::parse(
            r#"NAME:.metadata.name,OK:.status.conditions[?(@.status=="True")].type,AGENT:.status.agent"#,
        )
        .expect("columns");
        assert_eq!(c.headers(), ["NAME", "OK", "AGENT"]);
        let object = json!({"metadata": {"name": "a"}, "status": {"conditions": [
            {"type": "Scheduled", "status": "True"}, {"type": "Succeeded", "status": "True"}]}});
        assert_eq!(c.row(&object), ["a", "Scheduled,Succeeded", NONE]);
    }

    #[test]
    fn bad_specs_name_the_column() {
        assert!(Columns::parse("NAME").is_err());
        assert!(Columns::parse(":.a").is_err());
        assert!(Columns::parse("").is_err());
        let e = Columns::parse("X:.a[").expect_err("bad path");
        assert!(e.contains("custom-columns X"), "{e}");
    }
}
