//! `secret.get(name, key)` and the `secrets` global (`secrets.db.password`):
//! the values of the Secrets the TaskRun references, fetched by the agent
//! before the run (a Secret the TaskRun does not reference is not there).
//! Everything the run prints or returns is masked (see `crate::masking`).

use std::rc::Rc;

use mlua::{Lua, Table};

use super::{ModuleTable, RunCtx};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "secret")?;
    m.add("secret.get", |lua, c, args| {
        let name = args.string(1, "name")?;
        let key = args.string(2, "key")?;
        let Some(secret) = c.secrets.get(&name) else {
            return Err(args.fail(format!(
                "Secret {name:?} is not delivered to this task: list it in the \
                 TaskRun's spec.secrets (or the task's secrets, or workflow.define's \
                 secrets option)"
            )));
        };
        let Some(value) = secret.get(&key) else {
            return Err(args.fail(format!("Secret {name:?} has no key {key:?}")));
        };
        lua.create_string(value)
    })?;
    Ok(m.into_table())
}

/// The `secrets` global: name -> key -> value, for the Secrets listed in
/// `spec.secrets` (sloth-runner's `secrets.NAME`).
pub(super) fn global(lua: &Lua, ctx: &RunCtx) -> mlua::Result<Table> {
    let all = lua.create_table()?;
    for (name, keys) in &ctx.secrets {
        let t = lua.create_table()?;
        for (key, value) in keys {
            t.set(key.as_str(), lua.create_string(value)?)?;
        }
        all.set(name.as_str(), t)?;
    }
    Ok(all)
}
