//! Reading what a Lua payload returned (`ok, message, results`, a table
//! verdict, a task's return) and the text of a Lua error with its position.

use super::*;

/// What a workflow file's task returned: as [`returned()`], except that
/// returning nothing (or `nil`) fails, naming the function's line.
pub(crate) fn returned_from_task(lua: &Lua, values: MultiValue, command: &Value) -> LuaOutcome {
    if matches!(values.front(), None | Some(Value::Nil))
        && matches!(values.get(1), None | Some(Value::Nil))
    {
        let at = match command {
            Value::Function(f) => {
                let info = f.info();
                let src = info.short_src.unwrap_or_default();
                format!("{src}:{}: ", info.line_defined.unwrap_or(0))
            }
            _ => String::new(),
        };
        return LuaOutcome::Returned {
            ok: false,
            message: format!(
                "{at}the task's function returned nil: return true or false [, message [, outputs]]"
            ),
            results: BTreeMap::new(),
        };
    }
    returned(lua, values)
}

/// The verdict of a table returned first: its `success` field (what
/// `exec.run` returns), with its stdout and stderr as the message.
pub(super) fn table_verdict(table: &Table) -> Option<(bool, String)> {
    let success = match table.get::<Value>("success").ok()? {
        Value::Boolean(b) => b,
        Value::Nil => return None,
        _ => true,
    };
    let text = |key: &str| {
        table
            .get::<Option<String>>(key)
            .ok()
            .flatten()
            .map(|s| s.trim_end().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut message: Vec<String> = Vec::new();
    if let Some(code) = table.get::<Option<i64>>("exit_code").ok().flatten() {
        message.push(format!("exit code {code}"));
    }
    message.extend(text("stdout"));
    message.extend(text("stderr"));
    let message = if message.is_empty() {
        format!("success = {success}")
    } else {
        message.join("\n")
    };
    Some((success, message))
}

/// Reads `ok, message, results` from what the code returned.
pub(super) fn returned(lua: &Lua, values: MultiValue) -> LuaOutcome {
    let values = values.into_vec();
    let get = |i: usize| values.get(i).cloned().unwrap_or(Value::Nil);
    let verdict = match get(0) {
        Value::Table(t) => table_verdict(&t),
        _ => None,
    };
    let ok = match get(0) {
        _ if verdict.is_some() => verdict.as_ref().is_some_and(|v| v.0),
        Value::Boolean(b) => b,
        // `return nil, "message"` fails; a bare `return nil` does not.
        Value::Nil => matches!(get(1), Value::Nil),
        _ => true,
    };
    let message = match get(1) {
        Value::Nil if verdict.is_some() => verdict.map(|v| v.1),
        Value::Nil => None,
        other => lua
            .coerce_string(other.clone())
            .ok()
            .flatten()
            .map(|s| s.to_string_lossy())
            .or_else(|| Some(format!("({})", type_name(&other)))),
    };
    let message = message.unwrap_or_else(|| {
        if ok {
            "the Lua code completed".into()
        } else {
            "the Lua code returned false".into()
        }
    });
    match results_of(lua, &get(2)) {
        Ok(results) => LuaOutcome::Returned {
            ok,
            message,
            results,
        },
        Err(problem) => LuaOutcome::InvalidResults(problem),
    }
}

/// The results table as `status.results`: string keys with string, number
/// or boolean values, under the same rules and caps as shell results.
pub(super) fn results_of(lua: &Lua, value: &Value) -> Result<BTreeMap<String, String>, String> {
    let table = match value {
        Value::Nil => return Ok(BTreeMap::new()),
        Value::Table(t) => t,
        other => {
            return Err(format!("results must be a table, got {}", type_name(other)));
        }
    };
    let mut results = BTreeMap::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| describe_error(&e))?;
        let key = match key {
            Value::String(s) => s.to_string_lossy(),
            other => {
                let shown = lua
                    .coerce_string(other.clone())
                    .ok()
                    .flatten()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_else(|| type_name(&other).to_string());
                return Err(format!(
                    "result key {shown} is a {}, not a string",
                    type_name(&other)
                ));
            }
        };
        let text = match &value {
            Value::String(s) => s.to_string_lossy(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(_) | Value::Number(_) => lua
                .coerce_string(value.clone())
                .ok()
                .flatten()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default(),
            Value::Table(_) => {
                return Err(format!(
                    "result {key:?} is a nested table (values must be strings, numbers or booleans; use json.encode)"
                ));
            }
            other => {
                return Err(format!(
                    "result {key:?} is a {} (values must be strings, numbers or booleans)",
                    type_name(other)
                ));
            }
        };
        crate::results::check_key(&key).map_err(|why| format!("bad result: {why}"))?;
        results.insert(key, text);
        crate::results::check_caps(&results)?;
    }
    Ok(results)
}

/// The text of a Lua error: its message (with the position `chunk:LINE:`
/// of the Lua code that raised it) and its traceback.
pub(crate) fn describe_error(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::MemoryError(message) => format!(
            "out of memory (the limit is {} MiB): {message}",
            MEMORY_LIMIT / (1024 * 1024)
        ),
        mlua::Error::CallbackError { traceback, cause } => {
            let inner = describe_error(cause);
            let inner = match position(traceback) {
                Some(at) if !has_position(&inner) => format!("{at} {inner}"),
                _ => inner,
            };
            if inner.contains("stack traceback:") {
                inner
            } else {
                format!("{inner}\n{traceback}")
            }
        }
        mlua::Error::WithContext { context, cause } => {
            format!("{context}: {}", describe_error(cause))
        }
        mlua::Error::ExternalError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// The text starts with a position `chunk:LINE:`.
pub(super) fn has_position(text: &str) -> bool {
    let first = text.lines().next().unwrap_or_default();
    first.split(':').nth(1).is_some_and(|n| {
        !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !first.starts_with(' ')
    })
}

/// `chunk:LINE:` of the first Lua frame in a traceback.
pub(super) fn position(traceback: &str) -> Option<String> {
    traceback.lines().skip(1).find_map(|line| {
        let line = line.trim_start();
        if line.starts_with("[C]") {
            return None;
        }
        let (place, _) = line.split_once(": ")?;
        let (_, number) = place.rsplit_once(':')?;
        number.parse::<u32>().is_ok().then(|| format!("{place}:"))
    })
}
