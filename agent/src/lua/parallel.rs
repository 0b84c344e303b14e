//! `parallel({f1, f2, ...})` (sloth-runner's global): runs the functions as
//! coroutines, round-robin at each `coroutine.yield()`, and returns their
//! first results in order. One Lua state has one thread, so a module call
//! (`exec.run`) blocks the others until it returns; for work that must
//! really overlap, use separate tasks (docs/lua.md says so).

use mlua::Lua;

const PARALLEL: &str = r#"
local create, resume, status = coroutine.create, coroutine.resume, coroutine.status
return function(fns)
  if type(fns) ~= "table" then
    error("parallel: expected a list of functions, got " .. type(fns), 2)
  end
  local running, results, failures = {}, {}, {}
  for i, f in ipairs(fns) do
    if type(f) ~= "function" then
      error(("parallel: item %d is a %s, not a function"):format(i, type(f)), 2)
    end
    running[i] = create(f)
  end
  local left = #running
  while left > 0 do
    for i, co in ipairs(running) do
      if status(co) == "suspended" then
        local ok, value = resume(co)
        if not ok then
          failures[#failures + 1] = ("function %d: %s"):format(i, tostring(value))
        elseif status(co) == "dead" then
          results[i] = value
        end
        if status(co) == "dead" then
          left = left - 1
        end
      end
    end
  end
  if #failures > 0 then
    error("parallel: " .. table.concat(failures, "; "), 2)
  end
  return results
end
"#;

/// Installs the global `parallel`.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let parallel: mlua::Function = lua.load(PARALLEL).set_name("=parallel").eval()?;
    lua.globals().set("parallel", parallel)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, state};

    #[test]
    fn results_come_back_in_order_and_failures_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let got: Vec<String> = lua
            .load(
                r#"
                local order = {}
                local r = parallel({
                  function() order[#order + 1] = "a1"; coroutine.yield(); order[#order + 1] = "a2"; return "A" end,
                  function() order[#order + 1] = "b1"; return "B" end,
                })
                return { r[1], r[2], table.concat(order, ",") }
                "#,
            )
            .eval()
            .expect("parallel");
        assert_eq!(got, vec!["A", "B", "a1,b1,a2"]);
        assert_error(
            &lua,
            "parallel({function() return 1 end, function() error('boom') end})",
            "parallel: function 2: ",
        );
        assert_error(&lua, "parallel({1})", "item 1 is a number");
    }
}
