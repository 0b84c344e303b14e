//! The sandboxed Lua state slothctl evaluates workflow files in: the base
//! library without file loading, `string`, `table`, `math` and `utf8`; the
//! agent's modules as stubs that refuse to run; a memory limit and an
//! instruction and time budget.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use mlua::{Lua, LuaOptions, StdLib};

use super::limits::Checkpoint;

use super::{AGENT_MODULES, INSTRUCTION_LIMIT, MEMORY_LIMIT, TIME_LIMIT};

/// How many instructions run between two budget checks.
const CHECK_EVERY: u32 = 10_000;

/// Lines printed by the file.
pub(super) type Printed = Rc<RefCell<Vec<String>>>;

const STUBS: &str = r#"
local modules = ...
local stubs = {}
for _, module in ipairs(modules) do
  local stub = setmetatable({}, {
    __index = function(_, fn)
      return function()
        error(module .. "." .. tostring(fn) .. " is not available while slothctl reads the workflow file", 2)
      end
    end,
    __newindex = function() end,
  })
  stubs[module] = stub
  _G[module] = stub
end
function require(name)
  local stub = stubs[name]
  if stub == nil then
    error("require: module '" .. tostring(name) .. "' is not available while slothctl reads the workflow file", 2)
  end
  return stub
end
"#;

/// A fresh sandboxed state for evaluating `chunk_name`, and where its
/// `print` output goes.
pub(super) fn new_state(chunk_name: &str) -> mlua::Result<(Lua, Printed)> {
    let lua = Lua::new_with(
        StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8,
        LuaOptions::new(),
    )?;
    let globals = lua.globals();
    for name in ["dofile", "loadfile", "load", "collectgarbage"] {
        globals.raw_set(name, mlua::Nil)?;
    }
    let printed: Printed = Rc::default();
    let sink = Rc::clone(&printed);
    globals.raw_set(
        "print",
        lua.create_function(move |_, args: mlua::Variadic<mlua::Value>| {
            let words = args
                .iter()
                .map(|v| v.to_string())
                .collect::<mlua::Result<Vec<_>>>()?;
            sink.borrow_mut().push(words.join("\t"));
            Ok(())
        })?,
    )?;
    lua.load(STUBS)
        .set_name("=sloth-sandbox")
        .call::<()>(AGENT_MODULES.to_vec())?;

    // The same limits as on the agent: `pcall` and caught memory errors
    // cannot get around them.
    let chunk = chunk_name.to_string();
    let started = Instant::now();
    let ran = Cell::new(0u64);
    super::limits::install(&lua, MEMORY_LIMIT, CHECK_EVERY, move |at| {
        let line = match at {
            Checkpoint::Instructions { line } => {
                ran.set(ran.get() + u64::from(CHECK_EVERY));
                line
            }
            Checkpoint::Caught => None,
        };
        if ran.get() <= INSTRUCTION_LIMIT && started.elapsed() <= TIME_LIMIT {
            return Ok(());
        }
        let at = line.map_or(String::new(), |line| format!(":{line}"));
        Err(mlua::Error::runtime(format!(
            "{chunk}{at}: the workflow file ran too long (over {INSTRUCTION_LIMIT} \
             Lua instructions or {}s) and was stopped: is there an endless loop?",
            TIME_LIMIT.as_secs()
        )))
    })?;
    Ok((lua, printed))
}
