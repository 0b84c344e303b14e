//! `log`: leveled lines in the TaskRun's log (`log.info("x")` writes
//! `[INFO] x`).

use std::rc::Rc;

use mlua::{Lua, MultiValue, Table};

use super::{RunCtx, join_args};

/// The functions and the tag each writes.
pub const LEVELS: &[(&str, &str)] = &[
    ("debug", "DEBUG"),
    ("info", "INFO"),
    ("warn", "WARN"),
    ("warning", "WARN"),
    ("error", "ERROR"),
    ("success", "SUCCESS"),
];

pub fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (name, tag) in LEVELS {
        let c = ctx.clone();
        let func = format!("log.{name}");
        t.set(
            *name,
            lua.create_function(move |lua, args: MultiValue| {
                if args.is_empty() {
                    return Err(super::fail(
                        &func,
                        "argument 1 (message) must be given, got nothing",
                    ));
                }
                let text = join_args(lua, args, " ")?;
                for line in text.split('\n') {
                    c.out.line(&format!("[{tag}] {line}"));
                }
                Ok(())
            })?,
        )?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, state};

    #[test]
    fn levels_are_tagged_in_the_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        lua.load(
            r#"log.debug("d") log.info("x", 1, true) log.warn("w") log.warning("w2")
               log.error("e") log.success("s") log.info("two\nlines") print("plain")"#,
        )
        .exec()
        .expect("log");
        let log = std::fs::read_to_string(dir.path().join("output.log")).expect("read");
        assert_eq!(
            log,
            "[DEBUG] d\n[INFO] x 1 true\n[WARN] w\n[WARN] w2\n[ERROR] e\n[SUCCESS] s\n[INFO] two\n[INFO] lines\nplain\n"
        );
    }

    #[test]
    fn a_message_is_required() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        assert_error(
            &lua,
            "log.info()",
            "log.info: argument 1 (message) must be given",
        );
        assert_error(&lua, "log.error()", "log.error: argument 1 (message)");
    }
}
