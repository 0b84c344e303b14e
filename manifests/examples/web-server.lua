-- Configuration management with the infrastructure modules: configure a
-- "web server" in the configure task's run directory (template a config,
-- ensure a line in its environment file), start it on a free loopback port, check with infra_test that it
-- answers, and stop it. Every step is idempotent and reports `changed`;
-- with `slothctl apply --check` configure only reports what it would
-- change and serve starts nothing.
--   slothctl apply -f manifests/examples/web-server.lua
--   slothctl wait workflow web-server --timeout 2m
--   slothctl get taskrun web-server-serve-1 -o json   # status.results, status.metrics

local SITE_TEMPLATE = [[
# {{ name }}: managed by Sloth
listen={{ host }}:{{ port }}
root={{ root }}
]]

local configure = task("configure")
  :description("Write the site's config and page")
  :delegate_to("build-1")
  :timeout("1m")
  :command(function(this, params, input)
    -- The run's own (temporary) directory; the next task gets its path.
    local dir = this.workdir .. "/site"
    -- A free loopback port, from a random place in 20000-29999.
    local port
    local first = math.random(0, 9999)
    for i = 0, 99 do
      local p = 20000 + (first + i) % 10000
      if not net.tcp_check("127.0.0.1", p, 0.2) then port = p break end
    end
    if not port then return false, "no free port in 20000-29999" end
    local changed = {}
    local function step(name, r) if r.changed then changed[#changed + 1] = name end end
    step("dir", file_ops.mkdir(dir .. "/www", { mode = "0755" }))
    local config = template.render(SITE_TEMPLATE,
      { name = "demo", host = "127.0.0.1", port = port, root = dir .. "/www" })
    step("config", file_ops.write(dir .. "/site.conf", config, { mode = "0644" }))
    step("line", file_ops.line_in_file(dir .. "/server.env", { regexp = "^SERVER_TOKENS=", line = "SERVER_TOKENS=off" }))
    step("page", file_ops.write(dir .. "/www/index.html", "hello from sloth on " .. facts.hostname() .. "\n"))
    log.info("changed: " .. (#changed > 0 and table.concat(changed, ", ") or "nothing"))
    return true, "configured " .. dir, { dir = dir, port = port, changed = table.concat(changed, ",") }
  end)

local serve = task("serve")
  :depends_on({ "configure" })
  :delegate_to("build-1")
  :timeout("1m")
  :command(function(this, params, input)
    local dir, port = input.configure.dir, tonumber(input.configure.port)
    local url = "http://127.0.0.1:" .. port .. "/"
    if this.check_mode then
      return true, "check mode: would serve " .. dir .. "/www on " .. url
    end
    if not exec.run("command -v python3").success then
      return false, "python3 is needed to serve the page"
    end
    -- `set -m` puts the server in a process group of its own, so that it
    -- outlives this exec.run call (whose group ends with it); it is
    -- stopped below.
    local started = exec.run(string.format(
      "set -m; python3 -m http.server %d --bind 127.0.0.1 --directory %q >%q 2>&1 < /dev/null & echo $!",
      port, dir .. "/www", dir .. "/server.log"))
    local pid = started.stdout:gsub("%s+$", "")
    local up = metrics.timer("startup_seconds", function()
      for _ = 1, 100 do
        if net.tcp_check("127.0.0.1", port, 0.2) then return true end
        time.sleep(0.1)
      end
      return false
    end)
    infra_test.file_contains(dir .. "/server.env", "SERVER_TOKENS=off")
    infra_test.file_mode(dir .. "/site.conf", "0644")
    infra_test.port_is_listening(port)
    infra_test.http_status(url, 200)
    infra_test.http_contains(url, "hello from sloth")
    local page = up and net.get(url).body or ""
    exec.run("kill -- -" .. pid)
    metrics.gauge("port", port)
    -- A failed assertion above fails the task here, listing each.
    return true, "served and checked " .. url, { page = page, pid = pid }
  end)

workflow.define("web_server", {
  description = "configure a web server, start it, test it, stop it",
  tasks = { configure, serve },
})
