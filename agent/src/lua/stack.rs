//! `stack`: the outputs of the stack a workflow's task runs for. The
//! workflow controller puts the stack's current outputs into every TaskRun
//! of a stack's workflow as `SLOTH_STACK_OUTPUT_<NAME>` (and the stack's
//! name as `SLOTH_STACK`); this module reads them, so it needs no API
//! access and sees the same values as a shell task.

use std::rc::Rc;

use mlua::{Lua, Table};

use super::{ModuleTable, RunCtx, env::lookup};

/// The environment variable holding output `name`.
fn output_var(name: &str) -> String {
    format!("SLOTH_STACK_OUTPUT_{}", name.to_ascii_uppercase())
}

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "stack")?;
    m.add("stack.get_output", |_, c, args| {
        let name = args.string(1, "name")?;
        let default = args.opt_string(2, "default")?;
        Ok(lookup(c, &output_var(&name)).or(default))
    })?;
    m.add("stack.name", |_, c, _| Ok(lookup(c, "SLOTH_STACK")))?;
    Ok(m.into_table())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_read_from_the_environment_by_upper_case_name() {
        assert_eq!(output_var("url"), "SLOTH_STACK_OUTPUT_URL");
        let dir = tempfile::tempdir().expect("dir");
        let out = super::super::Output::open(&dir.path().join("out")).expect("out");
        let ctx = Rc::new(RunCtx::new(
            dir.path().to_path_buf(),
            out,
            super::super::Ctl::new(None, None),
        ));
        ctx.env
            .borrow_mut()
            .insert("SLOTH_STACK_OUTPUT_URL".into(), Some("http://x".into()));
        ctx.env
            .borrow_mut()
            .insert("SLOTH_STACK".into(), Some("prod".into()));
        let lua = Lua::new();
        let m = module(&lua, &ctx).expect("module");
        lua.globals().set("stack", m).expect("global");
        let got: (Option<String>, String, Option<String>) = lua
            .load(r#"return stack.get_output("url"), stack.get_output("nope", "d"), stack.name()"#)
            .eval()
            .expect("runs");
        assert_eq!(
            got,
            (Some("http://x".into()), "d".into(), Some("prod".into()))
        );
    }
}
