-- The table form of sloth-runner files: one Workflow per group, names
-- with underscores becoming dashes (maintenance_build -> maintenance-build).
--   slothctl apply -f manifests/examples/taskdefs.lua

TaskDefinitions = {
  maintenance_build = {
    description = "Clean up the build agent",
    delegate_to = "build-1",
    tasks = {
      { name = "disk_usage", command = "df -h / | tail -1", timeout = "30s" },
      { name = "clean_tmp", command = "echo cleaning; true", depends_on = { "disk_usage" } },
    },
  },
  maintenance_test = {
    description = "Check the test agent",
    delegate_to = "test-1",
    tasks = {
      {
        name = "uptime",
        command = function(this, params, input)
          local out = exec.run("uptime")
          return out.success, "checked", { uptime = (out.stdout:gsub("%s+$", "")) }
        end,
      },
    },
  },
}
