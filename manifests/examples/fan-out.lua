-- Fan out over the agents, then gather: one task per agent in parallel,
-- each reporting its machine, and a last task that reads every report.
--   slothctl apply -f manifests/examples/fan-out.lua

local agents = { "build-1", "test-1" }

local probes = {}
local names = {}
for _, agent in ipairs(agents) do
  local name = "probe_" .. agent:gsub("-", "_")
  table.insert(names, name)
  table.insert(probes, task(name)
    :delegate_to(agent)
    :command(function(this, params, input)
      local kernel = exec.run("uname -sr")
      return kernel.success, "probed " .. this.agent, {
        agent = this.agent,
        kernel = (kernel.stdout:gsub("%s+$", "")),
      }
    end))
end

local gather = task("gather")
  :depends_on(names)
  :command(function(this, params, input)
    local seen = {}
    for task_name, results in pairs(input) do
      table.insert(seen, results.agent)
    end
    table.sort(seen)
    log.info("reports from " .. table.concat(seen, ", "))
    return true, "gathered " .. #seen .. " reports", { agents = table.concat(seen, ",") }
  end)

table.insert(probes, gather)
workflow.define("fan_out"):description("one probe per agent, then gather"):tasks(probes)
