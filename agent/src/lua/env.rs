//! `env`: environment variables as the TaskRun's children see them.
//! `env.set` changes what `exec.run` children get, never the agent's own
//! environment.

use std::rc::Rc;

use mlua::{Lua, Table, Value};

use super::{ModuleTable, RunCtx};

/// `name` as the run's children would see it.
pub(super) fn lookup(ctx: &RunCtx, name: &str) -> Option<String> {
    match ctx.env.borrow().get(name) {
        Some(value) => value.clone(),
        None => std::env::var(name).ok(),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "env")?;
    m.add("env.get", |_, c, args| {
        let name = args.string(1, "name")?;
        let default = args.opt_string(2, "default")?;
        Ok(lookup(c, &name).or(default))
    })?;
    m.add("env.set", |_, c, args| {
        let name = args.string(1, "name")?;
        if !valid_name(&name) {
            return Err(args.fail(format!("argument 1 (name) {name:?} is not a variable name")));
        }
        let value = match args.get(2) {
            Value::Nil => None,
            _ => Some(args.text(2, "value")?),
        };
        if value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(args.fail("argument 2 (value) contains a NUL byte"));
        }
        c.env.borrow_mut().insert(name, value);
        Ok(())
    })?;
    Ok(m.into_table())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, exec_ok};

    #[test]
    fn set_is_seen_by_get_and_not_by_the_agent() {
        exec_ok(
            r#"
            assert(env.get("PATH") ~= nil)
            assert(env.get("SLOTH_NOT_SET_ANYWHERE") == nil)
            assert(env.get("SLOTH_NOT_SET_ANYWHERE", "dflt") == "dflt")
            env.set("SLOTH_LUA_TEST", "v1")
            assert(env.get("SLOTH_LUA_TEST") == "v1")
            env.set("SLOTH_LUA_TEST", 2)
            assert(env.get("SLOTH_LUA_TEST") == "2")
            env.set("PATH", nil)
            assert(env.get("PATH") == nil)
            "#,
        );
        assert!(std::env::var("SLOTH_LUA_TEST").is_err());
        assert!(std::env::var("PATH").is_ok());
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "env.get()",
                "env.get: argument 1 (name) must be a string, got nil",
            ),
            (
                "env.get('X', 1)",
                "env.get: argument 2 (default) must be a string or nil",
            ),
            (
                "env.set(1, 'x')",
                "env.set: argument 1 (name) must be a string, got number",
            ),
            (
                "env.set('A=B', 'x')",
                "env.set: argument 1 (name) \"A=B\" is not a variable name",
            ),
            (
                "env.set('A', {})",
                "env.set: argument 2 (value) must be a string, got table",
            ),
        ]);
    }
}
