//! The arguments of a module function and the options tables they take,
//! with checks whose errors name the function (`module.function: ...`) and
//! the argument or option.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};

/// The Lua type name of `value`, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        Value::UserData(_) | Value::LightUserData(_) => "userdata",
        _ => "value",
    }
}

/// A Lua error raised by `func`: `func: message`.
pub(crate) fn fail(func: &str, message: impl fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("{func}: {message}"))
}

/// The arguments of one module function, with checks whose errors name the
/// function and the argument.
pub(crate) struct Args {
    func: &'static str,
    values: Vec<Value>,
}

impl Args {
    pub(crate) fn new(func: &'static str, values: MultiValue) -> Self {
        Self {
            func,
            values: values.into_vec(),
        }
    }

    /// The function's name, for error messages.
    pub(crate) fn func(&self) -> &'static str {
        self.func
    }

    /// Whether no argument was given (not even nil).
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The arguments as given, for functions that take any number of them.
    pub(crate) fn into_values(self) -> MultiValue {
        MultiValue::from_vec(self.values)
    }

    /// Argument `n` (1-based), nil when absent.
    pub(crate) fn get(&self, n: usize) -> Value {
        self.values.get(n - 1).cloned().unwrap_or(Value::Nil)
    }

    fn bad(&self, n: usize, name: &str, want: &str, got: &Value) -> mlua::Error {
        fail(
            self.func,
            format!(
                "argument {n} ({name}) must be {want}, got {}",
                type_name(got)
            ),
        )
    }

    /// A string argument (numbers are not converted).
    pub(crate) fn string(&self, n: usize, name: &str) -> mlua::Result<String> {
        match self.get(n) {
            Value::String(s) => Ok(s.to_str()?.to_string()),
            other => Err(self.bad(n, name, "a string", &other)),
        }
    }

    /// A string argument, or nil.
    pub(crate) fn opt_string(&self, n: usize, name: &str) -> mlua::Result<Option<String>> {
        match self.get(n) {
            Value::Nil => Ok(None),
            Value::String(s) => Ok(Some(s.to_str()?.to_string())),
            other => Err(self.bad(n, name, "a string or nil", &other)),
        }
    }

    /// A string or number argument, as text.
    pub(crate) fn text(&self, n: usize, name: &str) -> mlua::Result<String> {
        match self.get(n) {
            Value::String(s) => Ok(s.to_str()?.to_string()),
            Value::Integer(i) => Ok(i.to_string()),
            Value::Number(x) => Ok(x.to_string()),
            other => Err(self.bad(n, name, "a string", &other)),
        }
    }

    /// A table argument, or nil.
    pub(crate) fn opt_table(&self, n: usize, name: &str) -> mlua::Result<Option<Table>> {
        match self.get(n) {
            Value::Nil => Ok(None),
            Value::Table(t) => Ok(Some(t)),
            other => Err(self.bad(n, name, "a table or nil", &other)),
        }
    }

    /// A boolean argument, or nil.
    pub(crate) fn opt_bool(&self, n: usize, name: &str) -> mlua::Result<Option<bool>> {
        match self.get(n) {
            Value::Nil => Ok(None),
            Value::Boolean(b) => Ok(Some(b)),
            other => Err(self.bad(n, name, "a boolean or nil", &other)),
        }
    }

    /// The options table argument `n` (or nil), refusing keys not in `known`.
    pub(crate) fn options(&self, n: usize, known: &[&str]) -> mlua::Result<Option<Table>> {
        let opts = self.opt_table(n, "options")?;
        check_options(self.func, opts.as_ref(), known)?;
        Ok(opts)
    }

    /// Argument `n` as a JSON value (a table becomes an object or an
    /// array); when it has no JSON form the error says the argument
    /// `cannot` (e.g. "cannot be encoded") and why.
    pub(crate) fn json(
        &self,
        lua: &Lua,
        n: usize,
        name: &str,
        cannot: &str,
    ) -> mlua::Result<serde_json::Value> {
        lua.from_value(self.get(n))
            .map_err(|e| self.fail(format!("argument {n} ({name}) {cannot}: {e}")))
    }

    /// A table argument.
    pub(crate) fn table(&self, n: usize, name: &str) -> mlua::Result<Table> {
        match self.get(n) {
            Value::Table(t) => Ok(t),
            other => Err(self.bad(n, name, "a table", &other)),
        }
    }

    /// A function argument.
    pub(crate) fn function(&self, n: usize, name: &str) -> mlua::Result<mlua::Function> {
        match self.get(n) {
            Value::Function(f) => Ok(f),
            other => Err(self.bad(n, name, "a function", &other)),
        }
    }

    /// An error `module.function: message`.
    pub(crate) fn fail(&self, message: impl fmt::Display) -> mlua::Error {
        fail(self.func, message)
    }

    /// A non-negative number of seconds.
    pub(crate) fn seconds(&self, n: usize, name: &str) -> mlua::Result<Duration> {
        seconds_of(self.func, &format!("argument {n} ({name})"), &self.get(n))
    }
}

/// `value` as a non-negative number of seconds (a number, or a duration
/// string like "30s" or "1m30s"); `what` names it in errors.
pub(super) fn seconds_of(func: &str, what: &str, value: &Value) -> mlua::Result<Duration> {
    let secs = match value {
        Value::Integer(i) => *i as f64,
        Value::Number(x) => *x,
        Value::String(s) => {
            let text = s.to_str()?.to_string();
            return text
                .parse::<sloth_sdk::duration::Duration>()
                .map(|d| d.0)
                .map_err(|e| {
                    fail(
                        func,
                        format!(
                            "{what} must be a number of seconds or a duration like \"30s\": {e}"
                        ),
                    )
                });
        }
        other => {
            return Err(fail(
                func,
                format!(
                    "{what} must be a number of seconds, got {}",
                    type_name(other)
                ),
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(fail(
            func,
            format!("{what} must be a non-negative number of seconds, got {secs}"),
        ));
    }
    Ok(Duration::from_secs_f64(secs.min(1e9)))
}

/// Option `key` of an options table: a number of seconds, or nil.
pub(crate) fn opt_seconds(
    func: &str,
    opts: Option<&Table>,
    key: &str,
) -> mlua::Result<Option<Duration>> {
    let Some(opts) = opts else { return Ok(None) };
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(None),
        v => seconds_of(func, &format!("option {key}"), &v).map(Some),
    }
}

/// Option `key` of an options table: a string, or nil.
pub(crate) fn opt_string_field(
    func: &str,
    opts: Option<&Table>,
    key: &str,
) -> mlua::Result<Option<String>> {
    let Some(opts) = opts else { return Ok(None) };
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_string())),
        other => Err(fail(
            func,
            format!("option {key} must be a string, got {}", type_name(&other)),
        )),
    }
}

/// Option `key` of an options table: a table of string keys to string (or
/// number, or boolean) values, or nil.
pub(crate) fn opt_string_map(
    func: &str,
    opts: Option<&Table>,
    key: &str,
) -> mlua::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    let Some(opts) = opts else { return Ok(map) };
    let table = match opts.get::<Value>(key)? {
        Value::Nil => return Ok(map),
        Value::Table(t) => t,
        other => {
            return Err(fail(
                func,
                format!("option {key} must be a table, got {}", type_name(&other)),
            ));
        }
    };
    for pair in table.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Value::String(k) = k else {
            return Err(fail(
                func,
                format!("option {key}: keys must be strings, got {}", type_name(&k)),
            ));
        };
        let k = k.to_str()?.to_string();
        let v = match v {
            Value::String(s) => s.to_str()?.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Number(x) => x.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => {
                return Err(fail(
                    func,
                    format!(
                        "option {key}.{k} must be a string, got {}",
                        type_name(&other)
                    ),
                ));
            }
        };
        map.insert(k, v);
    }
    Ok(map)
}

/// Refuses option keys not in `known`.
pub(crate) fn check_options(func: &str, opts: Option<&Table>, known: &[&str]) -> mlua::Result<()> {
    let Some(opts) = opts else { return Ok(()) };
    for pair in opts.pairs::<Value, Value>() {
        let (key, _) = pair?;
        let name = match &key {
            Value::String(s) => s.to_string_lossy(),
            other => format!("({})", type_name(other)),
        };
        if !known.contains(&name.as_str()) {
            return Err(fail(
                func,
                format!("unknown option {name:?} (known: {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}
