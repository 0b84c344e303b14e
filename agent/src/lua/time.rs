//! `time`: the clock, and sleeping that the timeout and a stop interrupt.

use std::rc::Rc;

use mlua::{Lua, Table};

use super::{ModuleTable, RunCtx};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "time")?;
    m.add("time.now", |_, _, _| {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default())
    })?;
    m.add("time.sleep", |_, c, args| {
        c.ctl.sleep(args.seconds(1, "seconds")?)
    })?;
    Ok(m.into_table())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::Ctl;
    use super::super::testing::{assert_errors, state, state_with};

    #[test]
    fn now_and_sleep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let (before, slept): (f64, f64) = lua
            .load("local a = time.now() time.sleep(0.1) time.sleep('10ms') time.sleep(0) return a, time.now() - a")
            .eval()
            .expect("time");
        assert!(before > 1.7e9, "{before}");
        assert!((0.1..5.0).contains(&slept), "{slept}");
    }

    #[test]
    fn sleep_stops_at_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state_with(dir.path(), Ctl::new(Some(Duration::from_millis(100)), None));
        let started = Instant::now();
        let e = lua.load("time.sleep(60)").exec().expect_err("interrupted");
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "time.sleep()",
                "time.sleep: argument 1 (seconds) must be a number of seconds, got nil",
            ),
            (
                "time.sleep(-1)",
                "time.sleep: argument 1 (seconds) must be a non-negative number",
            ),
            (
                "time.sleep({})",
                "time.sleep: argument 1 (seconds) must be a number of seconds, got table",
            ),
        ]);
    }
}
