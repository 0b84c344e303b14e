//! `pkg`.

use std::rc::Rc;

use mlua::{Lua, Table};

use super::RunCtx;

pub fn module(lua: &Lua, _ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    lua.create_table()
}
