//! `log`: leveled lines in the TaskRun's log (`log.info("x")` writes
//! `[INFO] x`).

use std::rc::Rc;

use mlua::{Lua, Table};

use super::{ModuleTable, RunCtx, join_args};

/// The functions and the tag each writes.
pub(super) const LEVELS: &[(&str, &str)] = &[
    ("log.debug", "DEBUG"),
    ("log.info", "INFO"),
    ("log.warn", "WARN"),
    ("log.warning", "WARN"),
    ("log.error", "ERROR"),
    ("log.success", "SUCCESS"),
];

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "log")?;
    for (func, tag) in LEVELS {
        m.add(func, move |lua, c, args| {
            if args.is_empty() {
                return Err(args.fail("argument 1 (message) must be given, got nothing"));
            }
            let text = join_args(lua, args.into_values(), " ")?;
            for line in text.split('\n') {
                c.out.line(&format!("[{tag}] {line}"));
            }
            Ok(())
        })?;
    }
    Ok(m.into_table())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, exec_ok};

    #[test]
    fn levels_are_tagged_in_the_output() {
        let log = exec_ok(
            r#"log.debug("d") log.info("x", 1, true) log.warn("w") log.warning("w2")
               log.error("e") log.success("s") log.info("two\nlines") print("plain")"#,
        );
        assert_eq!(
            log,
            "[DEBUG] d\n[INFO] x 1 true\n[WARN] w\n[WARN] w2\n[ERROR] e\n[SUCCESS] s\n[INFO] two\n[INFO] lines\nplain\n"
        );
    }

    #[test]
    fn a_message_is_required() {
        assert_errors(&[
            ("log.info()", "log.info: argument 1 (message) must be given"),
            ("log.error()", "log.error: argument 1 (message)"),
        ]);
    }
}
