//! `state`: the state store (`sloth_sdk::state`) from Lua, with upstream
//! sloth-runner's names. Keys live in the TaskRun's own namespace, and
//! every write names the TaskRun (`spec.updatedBy`), which is what lets the
//! apiserver accept it from this agent. Increments and compare-and-swap are
//! atomic across TaskRuns and agents (CAS on the resourceVersion, retried).

use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, Table, Value};
use sloth_sdk::state::StateStore;
use sloth_sdk::state::store::StateError;

use super::{Args, ModuleTable, RunCtx, type_name};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "state")?;
    m.add("state.get", |lua, c, args| {
        let key = args.string(1, "key")?;
        let default = args.get(2);
        let entry = call(c, &args, |s| async move { s.get(&key).await })?;
        match entry {
            Some(entry) => lua.to_value(&entry.spec.value),
            None => Ok(default),
        }
    })?;
    m.add("state.set", |lua, c, args| {
        let ttl = match args.get(3) {
            Value::Nil => None,
            _ => Some(ttl_arg(&args, 3)?),
        };
        set(lua, c, &args, ttl)
    })?;
    m.add("state.set_with_ttl", |lua, c, args| {
        let ttl = ttl_arg(&args, 3)?;
        set(lua, c, &args, Some(ttl))
    })?;
    m.add("state.delete", |_, c, args| {
        let key = args.string(1, "key")?;
        call(c, &args, |s| async move { s.delete(&key).await })
    })?;
    m.add("state.exists", |_, c, args| {
        let key = args.string(1, "key")?;
        let entry = call(c, &args, |s| async move { s.get(&key).await })?;
        Ok(entry.is_some())
    })?;
    m.add("state.keys", |lua, c, args| {
        let prefix = args.opt_string(1, "prefix")?.unwrap_or_default();
        let entries = call(c, &args, |s| async move { s.list(&prefix).await })?;
        lua.create_sequence_from(entries.into_iter().map(|e| e.spec.key))
    })?;
    m.add("state.increment", |_, c, args| {
        let key = args.string(1, "key")?;
        let by = match args.get(2) {
            Value::Nil => 1,
            value => integer(&value).ok_or_else(|| {
                args.fail(format!(
                    "argument 2 (by) must be an integer, got {}",
                    shown(&value)
                ))
            })?,
        };
        call(c, &args, |s| async move { s.increment(&key, by).await })
    })?;
    m.add("state.compare_and_swap", |lua, c, args| {
        let key = args.string(1, "key")?;
        let old = match args.get(2) {
            Value::Nil => None,
            _ => Some(stored(lua, &args, 2, "old")?),
        };
        let new = stored(lua, &args, 3, "new")?;
        call(c, &args, |s| async move {
            s.compare_and_swap(&key, old.as_ref(), &new).await
        })
    })?;
    m.add("state.clear", |_, c, args| {
        let prefix = args.opt_string(1, "prefix")?.unwrap_or_default();
        call(c, &args, |s| async move { s.clear(&prefix).await })
    })?;
    Ok(m.into_table())
}

fn set(lua: &Lua, ctx: &RunCtx, args: &Args, ttl: Option<Duration>) -> mlua::Result<bool> {
    let key = args.string(1, "key")?;
    let value = stored(lua, args, 2, "value")?;
    call(ctx, args, |s| async move {
        s.set(&key, &value, ttl).await.map(|()| true)
    })
}

/// Argument `n` as a TTL: a positive number of seconds or a duration
/// string ("30s").
fn ttl_arg(args: &Args, n: usize) -> mlua::Result<Duration> {
    let value = args.get(n);
    let positive = match &value {
        Value::Integer(i) => *i > 0,
        Value::Number(x) => *x > 0.0,
        Value::String(_) => true,
        _ => false,
    };
    let ttl = if positive {
        args.seconds(n, "ttl")?
    } else {
        Duration::ZERO
    };
    if ttl.is_zero() {
        return Err(args.fail(format!(
            "argument {n} (ttl) must be a positive number of seconds or a duration \
             like \"30s\", got {}",
            shown(&value)
        )));
    }
    Ok(ttl)
}

/// Argument `n` as a value to store: anything but nil (a table becomes a
/// JSON object or array).
fn stored(lua: &Lua, args: &Args, n: usize, name: &str) -> mlua::Result<serde_json::Value> {
    if args.get(n).is_nil() {
        return Err(args.fail(format!(
            "argument {n} ({name}) must not be nil (state.delete removes a key)"
        )));
    }
    args.json(lua, n, name, "cannot be stored")
}

/// A whole number, from a Lua integer or an integral float.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => Some(*i),
        // In range and integral: the cast is exact.
        Value::Number(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(*x as i64),
        _ => None,
    }
}

/// A value for an error message: numbers as they are, else the type.
fn shown(value: &Value) -> String {
    match value {
        Value::Integer(i) => i.to_string(),
        Value::Number(x) => x.to_string(),
        other => type_name(other).to_string(),
    }
}

/// Runs one store operation on the agent's runtime and waits for it,
/// failing as soon as the task must stop.
fn call<T, F, Fut>(ctx: &RunCtx, args: &Args, op: F) -> mlua::Result<T>
where
    T: Send + 'static,
    F: FnOnce(StateStore) -> Fut,
    Fut: Future<Output = Result<T, StateError>> + Send + 'static,
{
    let api = ctx.api.as_ref().ok_or_else(|| {
        args.fail("the state store needs the API, which this Lua state has no client for")
    })?;
    let store = StateStore::new(api.client.clone(), &ctx.namespace).written_by(ctx.holder());
    let (tx, rx) = mpsc::channel();
    let work = op(store);
    api.handle.spawn(async move {
        let _ = tx.send(work.await);
    });
    ctx.ctl.wait(&rx)?.map_err(|e| args.fail(e))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, state};

    #[test]
    fn bad_arguments_are_named_and_nothing_is_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        assert_error(
            &lua,
            "state.get()",
            "state.get: argument 1 (key) must be a string, got nil",
        );
        assert_error(
            &lua,
            "state.set('k')",
            "state.set: argument 2 (value) must not be nil",
        );
        for ttl in ["0", "-5", "'0s'", "{}"] {
            assert_error(
                &lua,
                &format!("state.set_with_ttl('k', 1, {ttl})"),
                "state.set_with_ttl: argument 3 (ttl) must be a positive number of seconds",
            );
        }
        assert_error(
            &lua,
            "state.set('k', 1, 0)",
            "state.set: argument 3 (ttl) must be a positive",
        );
        assert_error(
            &lua,
            "state.increment('k', 1.5)",
            "state.increment: argument 2 (by) must be an integer, got 1.5",
        );
        assert_error(
            &lua,
            "state.compare_and_swap('k', 1)",
            "state.compare_and_swap: argument 3 (new) must not be nil",
        );
        assert_error(
            &lua,
            "state.keys(5)",
            "state.keys: argument 1 (prefix) must be a string or nil",
        );
        // Without an API client (a plain Lua state), the error says so.
        assert_error(
            &lua,
            "state.get('k')",
            "state.get: the state store needs the API",
        );
        assert_error(
            &lua,
            "require('state').exists('k')",
            "state.exists: the state store needs the API",
        );
    }
}
