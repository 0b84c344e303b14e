//! `template.render(str, vars)`: replaces `{{ name }}` and `{{ a.b }}` by
//! values from `vars`; an unknown variable is an error naming it.

use std::rc::Rc;

use mlua::{Lua, Table, Value};

use super::{ModuleTable, RunCtx, fail, type_name};

const F: &str = "template.render";

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "template")?;
    m.add(F, |lua, _, args| {
        let text = args.string(1, "template")?;
        let vars = match args.get(2) {
            Value::Nil => lua.create_table()?,
            _ => args.table(2, "vars")?,
        };
        render(lua, &text, &vars)
    })?;
    Ok(m.into_table())
}

/// The value at the dotted `path` in `vars`, as text.
fn lookup(lua: &Lua, vars: &Table, path: &str) -> mlua::Result<Option<String>> {
    let mut current = Value::Table(vars.clone());
    for part in path.split('.') {
        let Value::Table(table) = current else {
            return Ok(None);
        };
        current = match part.parse::<i64>() {
            Ok(index) => table.get::<Value>(index)?,
            Err(_) => table.get::<Value>(part)?,
        };
    }
    Ok(match current {
        Value::Nil => None,
        Value::String(s) => Some(s.to_str()?.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        v @ (Value::Integer(_) | Value::Number(_)) => {
            lua.coerce_string(v)?.map(|s| s.to_string_lossy())
        }
        other => {
            return Err(fail(
                F,
                format!(
                    "variable {path:?} is a {}, not a string, number or boolean",
                    type_name(&other)
                ),
            ));
        }
    })
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

pub(super) fn render(lua: &Lua, text: &str, vars: &Table) -> mlua::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut unknown: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            let line = 1 + text[..text.len() - rest.len() + start]
                .matches('\n')
                .count();
            return Err(fail(F, format!("unclosed \"{{{{\" on line {line}")));
        };
        let path = after[..end].trim();
        if !valid_path(path) {
            return Err(fail(
                F,
                format!(
                    "{{{{ {path} }}}} is not a variable name (use {{{{ name }}}} or {{{{ a.b }}}})"
                ),
            ));
        }
        match lookup(lua, vars, path)? {
            Some(value) => out.push_str(&value),
            None => {
                if !unknown.iter().any(|u| u == path) {
                    unknown.push(path.to_string());
                }
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|u| format!("{u:?}")).collect();
        return Err(fail(
            F,
            format!(
                "unknown variable{} {}",
                if names.len() > 1 { "s" } else { "" },
                names.join(", ")
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, state};

    #[test]
    fn renders_names_and_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let out: String = lua
            .load(
                r#"return template.render("Hello {{ name }}, v{{app.version}} x{{ n }} {{ok}} {{ list.2 }} {{name}}",
                   {name = "Ann", app = {version = "1.2"}, n = 3, ok = true, list = {"a", "b"}})"#,
            )
            .eval()
            .expect("render");
        assert_eq!(out, "Hello Ann, v1.2 x3 true b Ann");
        let plain: String = lua
            .load("return template.render('no vars { here }')")
            .eval()
            .expect("render");
        assert_eq!(plain, "no vars { here }");
    }

    #[test]
    fn unknown_variables_and_bad_arguments_are_named() {
        assert_errors(&[
            (
                "template.render('{{ a }} {{ b.c }} {{ a }}', {b = {}})",
                "template.render: unknown variables \"a\", \"b.c\"",
            ),
            (
                "template.render('{{ a.b }}', {a = 'x'})",
                "unknown variable \"a.b\"",
            ),
            (
                "template.render('x\\n{{ a', {a = 1})",
                "template.render: unclosed \"{{\" on line 2",
            ),
            ("template.render('{{ a b }}', {})", "is not a variable name"),
            (
                "template.render('{{ t }}', {t = {}})",
                "variable \"t\" is a table",
            ),
            (
                "template.render()",
                "template.render: argument 1 (template) must be a string, got nil",
            ),
            (
                "template.render('x', 'y')",
                "template.render: argument 2 (vars) must be a table, got string",
            ),
        ]);
    }
}
