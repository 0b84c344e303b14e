-- Results between tasks: a Lua task returns a results table, the next one
-- receives it as `input`, and a shell task uses it as $(tasks.T.results.K).
--   slothctl apply -f manifests/examples/results.lua

workflow.define("results_relay", {
  description = "pass values from task to task",
  tasks = {
    task("measure"):command(function(this, params, input)
      local files = fs.ls(".")
      return true, "measured", { count = #files, unit = "files" }
    end),
    task("double"):depends_on({ "measure" }):command(function(this, params, input)
      local doubled = tonumber(input.measure.count) * 2
      return true, "doubled", { doubled = doubled }
    end),
    task("report"):depends_on({ "double" })
      :command("echo measured $(tasks.measure.results.count) $(tasks.measure.results.unit), doubled $(tasks.double.results.doubled)"),
  },
})
