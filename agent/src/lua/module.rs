//! How every Lua module fills its table: a function is added under its full
//! name (`"json.encode"`, as it appears in its errors and the docs), and is
//! called with the run's context and its arguments ([`Args`]), whose errors
//! name it. A module file then holds only its own functions.

use std::rc::Rc;

use mlua::{IntoLua, IntoLuaMulti, Lua, MultiValue, Table};

use super::{Args, RunCtx};

/// The table of one module, being filled.
pub(crate) struct ModuleTable<'lua> {
    lua: &'lua Lua,
    ctx: Rc<RunCtx>,
    /// The module's name: every function's full name starts with it and a dot.
    name: &'static str,
    table: Table,
}

impl<'lua> ModuleTable<'lua> {
    /// An empty table for module `name`.
    pub(crate) fn new(lua: &'lua Lua, ctx: &Rc<RunCtx>, name: &'static str) -> mlua::Result<Self> {
        Ok(Self {
            lua,
            ctx: ctx.clone(),
            name,
            table: lua.create_table()?,
        })
    }

    /// Adds `func` (`"module.function"`) as `function`: `f` gets the Lua
    /// state, the run's context and the arguments named `func`.
    pub(crate) fn add<R, F>(&self, func: &'static str, f: F) -> mlua::Result<()>
    where
        R: IntoLuaMulti,
        F: Fn(&Lua, &RunCtx, Args) -> mlua::Result<R> + 'static,
    {
        let key = func
            .strip_prefix(self.name)
            .and_then(|rest| rest.strip_prefix('.'));
        debug_assert!(key.is_some(), "{func} is not a function of {}", self.name);
        let ctx = self.ctx.clone();
        let function = self
            .lua
            .create_function(move |lua, args: MultiValue| f(lua, &ctx, Args::new(func, args)))?;
        self.table.set(key.unwrap_or(func), function)
    }

    /// Sets a plain value (a constant such as `json.null`).
    pub(crate) fn set(&self, key: &str, value: impl IntoLua) -> mlua::Result<()> {
        self.table.set(key, value)
    }

    /// Makes each `(alias, name)` another name of function `name` (the
    /// names upstream sloth-runner or Ansible use).
    pub(crate) fn aliases(&self, aliases: &[(&str, &str)]) -> mlua::Result<()> {
        for (alias, name) in aliases {
            self.table
                .set(*alias, self.table.get::<mlua::Function>(*name)?)?;
        }
        Ok(())
    }

    /// The filled table.
    pub(crate) fn into_table(self) -> Table {
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::state;
    use super::*;

    #[test]
    fn functions_are_keyed_by_their_short_name_and_named_in_full_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, ctx) = state(dir.path());
        let m = ModuleTable::new(&lua, &ctx, "demo").expect("table");
        m.add("demo.echo", |_, _, args| args.string(1, "text"))
            .expect("add");
        m.aliases(&[("say", "echo")]).expect("aliases");
        lua.globals().set("demo", m.into_table()).expect("global");
        let echoed: String = lua.load("return demo.say('hi')").eval().expect("echo");
        assert_eq!(echoed, "hi");
        let e = lua.load("demo.echo(1)").exec().expect_err("not a string");
        assert!(
            e.to_string()
                .contains("demo.echo: argument 1 (text) must be a string, got number"),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "other.echo is not a function of demo")]
    fn a_function_of_another_module_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, ctx) = state(dir.path());
        let m = ModuleTable::new(&lua, &ctx, "demo").expect("table");
        let _ = m.add("other.echo", |_, _, args| args.string(1, "text"));
    }
}
