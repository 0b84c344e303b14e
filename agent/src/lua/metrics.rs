//! `metrics`: gauges, counters and timers a task records; they end up in
//! the TaskRun's `status.metrics` (at most [`MAX_METRICS`] names).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mlua::{Lua, MultiValue, Table, Value};

use super::{Args, ModuleTable, RunCtx, fail, type_name};

/// Most metric names one run records: the status stays small.
pub(super) const MAX_METRICS: usize = 64;

/// Longest metric name.
pub(super) const MAX_NAME: usize = 100;

/// The values of one run, shared with the agent that reports them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sink(Arc<Mutex<BTreeMap<String, f64>>>);

impl Sink {
    pub(crate) fn values(&self) -> BTreeMap<String, f64> {
        match self.0.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sets (or, with `add`, adds to) `name`; the new value.
    fn update(&self, func: &str, name: &str, value: f64, add: bool) -> mlua::Result<f64> {
        let mut guard = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !guard.contains_key(name) && guard.len() >= MAX_METRICS {
            return Err(fail(
                func,
                format!("a task records at most {MAX_METRICS} metrics; {name:?} is one too many"),
            ));
        }
        let slot = guard.entry(name.to_string()).or_insert(0.0);
        *slot = if add { *slot + value } else { value };
        Ok(*slot)
    }
}

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "metrics")?;
    m.add("metrics.gauge", gauge)?;
    m.add("metrics.counter", counter)?;
    m.add("metrics.timer", timer)?;
    m.add("metrics.get", get)?;
    m.add("metrics.all", all)?;
    Ok(m.into_table())
}

fn name_arg(args: &Args) -> mlua::Result<String> {
    let name = args.string(1, "name")?;
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if !valid {
        return Err(args.fail(format!(
            "argument 1 (name) {name:?} must be 1 to {MAX_NAME} letters, digits, '_', '.', ':' or '-'"
        )));
    }
    Ok(name)
}

fn number_arg(args: &Args, n: usize, name: &str, default: Option<f64>) -> mlua::Result<f64> {
    let value = match (args.get(n), default) {
        (Value::Nil, Some(d)) => d,
        (Value::Integer(i), _) => i as f64,
        (Value::Number(x), _) => x,
        (other, _) => {
            return Err(args.fail(format!(
                "argument {n} ({name}) must be a number, got {}",
                type_name(&other)
            )));
        }
    };
    if !value.is_finite() {
        return Err(args.fail(format!("argument {n} ({name}) must be finite")));
    }
    Ok(value)
}

/// `metrics.gauge(name, value)`: sets the value.
fn gauge(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<f64> {
    let name = name_arg(&args)?;
    let value = number_arg(&args, 2, "value", None)?;
    ctx.metrics.update(args.func(), &name, value, false)
}

/// `metrics.counter(name, [increment = 1])`: adds; the new total.
fn counter(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<f64> {
    let name = name_arg(&args)?;
    let by = number_arg(&args, 2, "increment", Some(1.0))?;
    if by < 0.0 {
        return Err(args.fail("argument 2 (increment) must not be negative"));
    }
    ctx.metrics.update(args.func(), &name, by, true)
}

/// `metrics.timer(name, function)`: calls it and records its seconds,
/// returning what it returned; `metrics.timer(name, seconds)` records.
fn timer(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<MultiValue> {
    let name = name_arg(&args)?;
    if let Value::Function(f) = args.get(2) {
        let started = Instant::now();
        let values: MultiValue = f.call(())?;
        ctx.metrics
            .update(args.func(), &name, started.elapsed().as_secs_f64(), false)?;
        return Ok(values);
    }
    let seconds = number_arg(&args, 2, "function or seconds", None)?;
    let value = ctx.metrics.update(args.func(), &name, seconds, false)?;
    Ok(MultiValue::from_vec(vec![Value::Number(value)]))
}

/// `metrics.get(name)`: the value, or nil.
fn get(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Option<f64>> {
    let name = name_arg(&args)?;
    Ok(ctx.metrics.values().get(&name).copied())
}

/// `metrics.all()`: every value by name.
fn all(lua: &Lua, ctx: &RunCtx, _: Args) -> mlua::Result<Table> {
    lua.create_table_from(ctx.metrics.values())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, state};
    use super::*;

    #[test]
    fn gauges_counters_and_timers_reach_the_sink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, ctx) = state(dir.path());
        lua.load(
            r#"
            metrics.gauge("queue.depth", 7)
            assert(metrics.counter("files") == 1)
            assert(metrics.counter("files", 2) == 3)
            local a, b = metrics.timer("step", function() return 1, 2 end)
            assert(a == 1 and b == 2)
            metrics.timer("manual", 1.5)
            assert(metrics.get("manual") == 1.5 and metrics.get("none") == nil)
            assert(metrics.all()["queue.depth"] == 7)
            "#,
        )
        .exec()
        .expect("metrics");
        let values = ctx.metrics.values();
        assert_eq!(values.get("files"), Some(&3.0));
        assert_eq!(values.get("queue.depth"), Some(&7.0));
        assert!(values.get("step").is_some_and(|s| *s >= 0.0));
        assert_eq!(values.len(), 4);
    }

    #[test]
    fn bounded_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        lua.load(format!(
            "for i = 1, {MAX_METRICS} do metrics.gauge('m' .. i, i) end"
        ))
        .exec()
        .expect("fill");
        assert_error(&lua, "metrics.gauge('one_more', 1)", "at most 64 metrics");
        lua.load("metrics.gauge('m1', 5)")
            .exec()
            .expect("update an existing one");
        for (code, want) in [
            (
                "metrics.gauge()",
                "metrics.gauge: argument 1 (name) must be a string",
            ),
            (
                "metrics.gauge('a b', 1)",
                "metrics.gauge: argument 1 (name) \"a b\" must be",
            ),
            (
                "metrics.gauge('m1', 'x')",
                "metrics.gauge: argument 2 (value) must be a number",
            ),
            (
                "metrics.gauge('m1', 0/0)",
                "metrics.gauge: argument 2 (value) must be finite",
            ),
            (
                "metrics.counter('m1', -1)",
                "metrics.counter: argument 2 (increment) must not be negative",
            ),
            (
                "metrics.timer('m1', {})",
                "metrics.timer: argument 2 (function or seconds) must be a number",
            ),
        ] {
            assert_error(&lua, code, want);
        }
    }
}
