//! Limits Lua code cannot escape, shared by slothctl (evaluating workflow
//! files) and the agent (running payloads).
//!
//! A hook runs every few thousand instructions and asks `check` whether the
//! code must stop (a budget, a deadline, a stop signal). Once it must, it
//! must for good: the decision is sticky, so the hook raises again wherever
//! the code is, and `pcall`, `xpcall` and `coroutine.resume` re-raise it
//! instead of returning it. Running out of memory is final in the same way:
//! `while true do pcall(allocate_too_much) end` stops at once rather than
//! looping until some other budget runs out.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{HookTriggers, Lua, Value, VmState};

/// The message Lua raises when an allocation fails.
const LUA_MEMORY_ERROR: &[u8] = b"not enough memory";

/// Where `check` is called from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// The hook, after `every` more instructions, at this line if known.
    Instructions {
        /// The Lua line running, when known.
        line: Option<usize>,
    },
    /// A protected call (`pcall`...) caught an error.
    Caught,
}

/// Sets `memory_limit` (bytes) and calls `check` every `every` instructions
/// and whenever a protected call catches an error; once `check` (or the memory limit) fails, the code stops with that error
/// and cannot catch it.
pub fn install(
    lua: &Lua,
    memory_limit: usize,
    every: u32,
    check: impl Fn(Checkpoint) -> mlua::Result<()> + 'static,
) -> mlua::Result<()> {
    lua.set_memory_limit(memory_limit)?;
    let stop = Rc::new(Stop {
        error: RefCell::new(None),
        check: Box::new(check),
        memory_limit,
    });
    let hook_stop = Rc::clone(&stop);
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(every),
        move |_, debug| {
            let line = debug.current_line();
            hook_stop
                .checked(Checkpoint::Instructions { line })
                .map(|()| VmState::Continue)
        },
    )?;
    let reraise = lua.create_function(move |_, caught: Value| stop.after_catch(&caught))?;
    lua.load(
        r#"
        local reraise = ...
        local raw_pcall, raw_xpcall = pcall, xpcall
        local raw_resume = coroutine and coroutine.resume
        local pack, unpack = table.pack, table.unpack
        local function pass(r)
          if not r[1] then reraise(r[2]) end
          return unpack(r, 1, r.n)
        end
        pcall = function(...) return pass(pack(raw_pcall(...))) end
        xpcall = function(...) return pass(pack(raw_xpcall(...))) end
        if coroutine then
          coroutine.resume = function(...) return pass(pack(raw_resume(...))) end
        end
        "#,
    )
    .set_name("=sloth-limits")
    .call::<()>(reraise)
}

struct Stop {
    /// Why the code must stop, once it must.
    error: RefCell<Option<mlua::Error>>,
    check: Box<dyn Fn(Checkpoint) -> mlua::Result<()>>,
    memory_limit: usize,
}

impl Stop {
    fn checked(&self, at: Checkpoint) -> mlua::Result<()> {
        if let Some(error) = self.error.borrow().as_ref() {
            return Err(error.clone());
        }
        if let Err(error) = (self.check)(at) {
            *self.error.borrow_mut() = Some(error.clone());
            return Err(error);
        }
        Ok(())
    }

    /// Called with what a protected call caught: raises again when the code
    /// must stop, or when it ran out of memory.
    fn after_catch(&self, caught: &Value) -> mlua::Result<()> {
        if is_memory_error(caught) {
            let mut error = self.error.borrow_mut();
            if error.is_none() {
                *error = Some(mlua::Error::runtime(format!(
                    "not enough memory: the Lua memory limit of {} MiB was reached",
                    self.memory_limit / (1024 * 1024)
                )));
            }
        }
        self.checked(Checkpoint::Caught)
    }
}

fn is_memory_error(value: &Value) -> bool {
    match value {
        Value::String(s) => s.as_bytes().as_ref() == LUA_MEMORY_ERROR,
        Value::Error(e) => matches!(**e, mlua::Error::MemoryError(_)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A state whose check fails after `budget` calls.
    fn limited(budget: u32) -> Lua {
        let lua = Lua::new();
        let calls = Cell::new(0u32);
        install(&lua, 16 * 1024 * 1024, 1_000, move |_| {
            calls.set(calls.get() + 1);
            if calls.get() > budget {
                return Err(mlua::Error::runtime("budget spent"));
            }
            Ok(())
        })
        .expect("install");
        lua
    }

    fn message(e: &mlua::Error) -> String {
        match e {
            mlua::Error::CallbackError { cause, .. } => message(cause),
            other => other.to_string(),
        }
    }

    #[test]
    fn pcall_cannot_swallow_the_stop() {
        let lua = limited(100);
        let e = lua
            .load("while true do pcall(function() while true do end end) end")
            .exec()
            .expect_err("stopped");
        assert!(message(&e).contains("budget spent"), "{e}");
    }

    #[test]
    fn xpcall_and_coroutines_cannot_swallow_the_stop() {
        for code in [
            "while true do xpcall(function() while true do end end, function(m) return m end) end",
            "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
        ] {
            let lua = limited(100);
            let e = lua.load(code).exec().expect_err("stopped");
            assert!(message(&e).contains("budget spent"), "{code}: {e}");
        }
    }

    #[test]
    fn a_caught_memory_error_stops_the_code() {
        let lua = limited(u32::MAX);
        let e = lua
            .load(
                "while true do pcall(function() local t = {} \
                 while true do t[#t+1] = string.rep('x', 1e6) end end) end",
            )
            .exec()
            .expect_err("stopped");
        let text = message(&e);
        assert!(
            text.contains("memory limit of 16 MiB"),
            "names the limit: {text}"
        );
    }

    #[test]
    fn ordinary_errors_are_still_caught() {
        let lua = limited(u32::MAX);
        let (ok, caught): (bool, String) = lua
            .load("local ok, e = pcall(error, 'plain', 0) return ok, e")
            .eval()
            .expect("runs");
        assert!(!ok);
        assert_eq!(caught, "plain");
    }
}
