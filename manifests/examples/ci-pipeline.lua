-- A CI pipeline in the sloth-runner DSL: build on the build agent, test on
-- a test agent, deploy on the build agent with the version the build found.
--   slothctl apply -f manifests/examples/ci-pipeline.lua
--   slothctl wait workflow ci-pipeline --timeout 2m

local function version_of(text)
  return (text:gsub("%s+$", ""))
end

local build = task("build")
  :description("Compile and stamp a version")
  :delegate_to("build-1")
  :timeout("1m")
  :command(function(this, params, input)
    local out = exec.run("echo 1.4.$(date +%j)")
    if not out.success then
      return false, "cannot compute the version: " .. out.stderr
    end
    log.info("building version " .. version_of(out.stdout) .. " on " .. this.agent)
    return true, "built", { version = version_of(out.stdout) }
  end)

local test = task("test")
  :depends_on({ "build" })
  :agent_selector({ role = "test" })
  :retries(1)
  :timeout("1m")
  :command(function(this, params, input)
    local out = exec.run("echo testing " .. input.build.version)
    print(out.stdout)
    return out.success, "tested " .. input.build.version, { tested = input.build.version }
  end)

local deploy = task("deploy")
  :depends_on({ "test" })
  :delegate_to("build-1")
  :command("echo deploying $(tasks.build.results.version) to $(params.env)")

workflow.define("ci_pipeline", {
  description = "build -> test -> deploy",
  params = { env = "staging" },
  tasks = { build, test, deploy },
})
