-- The sloth-runner workflow DSL: `task(...)` builders, `workflow.define`
-- and the `TaskDefinitions` table form. Loaded by `sloth_sdk::lua::install`
-- with `(where, check_duration)`:
--   where(level) -> short_src, line of the function `level` calls up;
--   check_duration(text) -> true | nil, why.
-- Returns the DSL state table that Rust reads once the file has run.
local where, check_duration = ...

local error, type, pairs, ipairs, tostring, setmetatable, getmetatable, rawset, rawget, select =
    error, type, pairs, ipairs, tostring, setmetatable, getmetatable, rawset, rawget, select
local format, gsub, lower, find, sort = string.format, string.gsub, string.lower, string.find, table.sort

local state = { workflows = {}, warnings = {}, tasks = {} }

-- "file:line" of the code that called the DSL function calling at().
local function at(level)
  local src, line = where((level or 2) + 1)
  return { src = src or "?", line = line or 0 }
end

local function fail(pos, message)
  if pos.line == 0 then
    -- A tail call hid the caller: name the file only.
    error(format("%s: %s", state.chunk or pos.src, message), 0)
  end
  error(format("%s:%d: %s", pos.src, pos.line, message), 0)
end

local function warn(pos, message)
  state.warnings[#state.warnings + 1] = format("%s:%d: %s", pos.src, pos.line, message)
end

-- A task name as written: letters of either case, digits, '_', '-', '.',
-- starting and ending with a letter or digit, at most 63 characters.
local function check_task_name(pos, what, name)
  if type(name) ~= "string" or name == "" then
    fail(pos, format("%s: expected a task name, got %s", what, describe(name)))
  end
  if #name > 63 or not find(name, "^[%w]$") and not find(name, "^[%w][%w_%.%-]*[%w]$") then
    fail(pos, format("%s: invalid task name %q: use 1 to 63 letters, digits, '_', '-' or '.', starting and ending with a letter or digit", what, name))
  end
  return name
end

local function describe(value)
  local t = type(value)
  if t == "string" then
    return format("the string %q", value)
  end
  return "a " .. t
end

local function want_string(pos, what, value)
  if type(value) ~= "string" then
    fail(pos, format("%s: expected a string, got %s", what, describe(value)))
  end
  return value
end

-- A string, number or boolean, as text.
local function scalar(pos, what, value)
  local t = type(value)
  if t == "string" then
    return value
  elseif t == "number" or t == "boolean" then
    return tostring(value)
  end
  fail(pos, format("%s: expected a string, number or boolean, got %s", what, describe(value)))
end

local function string_map(pos, what, value)
  if type(value) ~= "table" then
    fail(pos, format("%s: expected a table of key = value, got %s", what, describe(value)))
  end
  local out = {}
  for k, v in pairs(value) do
    if type(k) ~= "string" then
      fail(pos, format("%s: keys must be strings, got %s", what, describe(k)))
    end
    out[k] = scalar(pos, what .. "." .. k, v)
  end
  return out
end

local function duration(pos, what, value)
  local text = want_string(pos, what, value)
  local ok, why = check_duration(text)
  if not ok then
    fail(pos, format("%s: invalid duration %q: %s", what, text, why))
  end
  return text
end

local function count(pos, what, value)
  if type(value) ~= "number" or value < 0 or value % 1 ~= 0 or value > 4294967295 then
    fail(pos, format("%s: expected a whole number >= 0, got %s", what, describe(value)))
  end
  return value
end

local PLACEMENTS = { leastloaded = "LeastLoaded", roundrobin = "RoundRobin", spread = "Spread" }

local function placement(pos, value)
  local text = want_string(pos, "placement", value)
  local policy = PLACEMENTS[lower((gsub(text, "[-_ ]", "")))]
  if not policy then
    fail(pos, format("placement: unknown policy %q (use LeastLoaded, RoundRobin or Spread)", text))
  end
  return policy
end

---------------------------------------------------------------- tasks

local task_data = setmetatable({}, { __mode = "k" })
local TaskMethods = {}
local task_mt = {
  __name = "task",
  __index = function(_, key)
    local method = TaskMethods[key]
    if method == nil then
      fail(at(2), format("unknown task method '%s'", tostring(key)))
    end
    return method
  end,
  __newindex = function(_, key)
    fail(at(2), format("cannot set '%s' on a task: call :%s(...)", tostring(key), tostring(key)))
  end,
}

local function new_task(pos, name)
  check_task_name(pos, "task", name)
  local data = {
    name = name, src = pos.src, line = pos.line, depends_on = {}, env = {}, locks = {},
  }
  local builder = setmetatable({}, task_mt)
  task_data[builder] = data
  state.tasks[#state.tasks + 1] = data
  return builder, data
end

local function data_of(self, method)
  local data = task_data[self]
  if not data then
    fail(at(3), format("task:%s must be called with ':' on a task, as in task(\"x\"):%s(...)", method, method))
  end
  return data
end

local function dependency_names(pos, value)
  if type(value) == "string" then
    return { value }
  end
  if type(value) ~= "table" then
    fail(pos, format("depends_on: expected a list of task names, got %s", describe(value)))
  end
  if task_data[value] then
    return { task_data[value].name }
  end
  local out = {}
  for i, dep in ipairs(value) do
    if task_data[dep] then
      out[#out + 1] = task_data[dep].name
    else
      out[#out + 1] = want_string(pos, format("depends_on[%d]", i), dep)
    end
  end
  return out
end

local BACKOFFS = { exponential = true, fixed = true, linear = true }

-- The label `sloth-agent --capabilities NAME` sets (well_known::CAPABILITY_LABEL_PREFIX).
local CAPABILITY_PREFIX = "capability.sloth.dev/"

-- `"a"` (a capability), `{"a", "b"}` (all of them), `{k = "v"}` (labels),
-- or a mix: the labels an agent must carry.
local function agent_selector(pos, value)
  if type(value) == "string" then
    value = { value }
  end
  if type(value) ~= "table" then
    fail(pos, format("agent_selector: expected a capability name, a list of them or a table of labels, got %s", describe(value)))
  end
  local labels = {}
  for k, v in pairs(value) do
    if type(k) == "number" then
      labels[CAPABILITY_PREFIX .. want_string(pos, format("agent_selector[%d]", k), v)] = "true"
    elseif type(k) == "string" then
      labels[k] = scalar(pos, "agent_selector." .. k, v)
    else
      fail(pos, format("agent_selector: keys must be strings, got %s", describe(k)))
    end
  end
  return labels
end

-- Setters shared by the builder methods and the table form: (data, pos, value).
local TaskSetters = {
  description = function(d, pos, v) d.description = want_string(pos, "description", v) end,
  command = function(d, pos, v)
    if type(v) == "string" or type(v) == "function" then
      d.command = v
    else
      fail(pos, format("command: expected a shell command (string) or a function, got %s", describe(v)))
    end
  end,
  depends_on = function(d, pos, v) d.depends_on = dependency_names(pos, v) end,
  retries = function(d, pos, v, strategy)
    d.retries = count(pos, "retries", v)
    if strategy ~= nil then
      strategy = want_string(pos, "retries strategy", strategy)
      if not BACKOFFS[strategy] then
        fail(pos, format("retries: unknown strategy %q (use exponential, fixed or linear)", strategy))
      end
      d.backoff = strategy
    end
  end,
  timeout = function(d, pos, v) d.timeout = duration(pos, "timeout", v) end,
  workdir = function(d, pos, v) d.workdir = want_string(pos, "workdir", v) end,
  -- sloth-runner's name for the task's working directory.
  workspace = function(d, pos, v) d.workdir = want_string(pos, "workspace", v) end,
  env = function(d, pos, v) d.env = string_map(pos, "env", v) end,
  delegate_to = function(d, pos, v)
    if type(v) == "string" then
      d.agent = v
    elseif type(v) == "table" then
      for k in pairs(v) do
        if k ~= "address" and k ~= "name" then
          fail(pos, format("delegate_to: unknown field '%s' (use an agent name, {name = ...} or {address = \"host:port\"})", tostring(k)))
        end
      end
      if v.address ~= nil then
        d.address = want_string(pos, "delegate_to.address", v.address)
      elseif v.name ~= nil then
        d.agent = want_string(pos, "delegate_to.name", v.name)
      else
        fail(pos, "delegate_to: expected an agent name, {name = ...} or {address = \"host:port\"}")
      end
    else
      fail(pos, format("delegate_to: expected an agent name or {address = \"host:port\"}, got %s", describe(v)))
    end
  end,
  agent_selector = function(d, pos, v) d.selector = agent_selector(pos, v) end,
  placement = function(d, pos, v) d.placement = placement(pos, v) end,
  when = function(d, pos, v) d.when = want_string(pos, "when", v) end,
  locks = function(d, pos, v)
    if type(v) == "string" then
      d.locks = { v }
      return
    end
    if type(v) ~= "table" then
      fail(pos, format("locks: expected a list of lock names, got %s", describe(v)))
    end
    local out = {}
    for i, name in ipairs(v) do
      out[i] = want_string(pos, format("locks[%d]", i), name)
    end
    d.locks = out
  end,
  -- Parameters of this task; in the TaskDefinitions form they are merged
  -- over the group's `params` (see docs/lua.md).
  params = function(d, pos, v) d.params = string_map(pos, "params", v) end,
}

-- Task hooks: run by the agent in the task's Lua state (see the agent's
-- lua/hooks.rs). `on_fail` is upstream's other spelling of on_failure.
local TASK_HOOKS = {
  on_success = "on_success", on_failure = "on_failure", on_fail = "on_failure",
  on_timeout = "on_timeout", pre_hook = "pre_hook", post_hook = "post_hook",
}
for spelling, hook in pairs(TASK_HOOKS) do
  TaskSetters[spelling] = function(d, pos, v)
    if type(v) ~= "function" then
      fail(pos, format("%s: expected a function, got %s", spelling, describe(v)))
    end
    d.hooks = d.hooks or {}
    d.hooks[hook] = v
  end
end

-- A condition: a function(this, params, input) run on the agent, or a
-- shell command whose exit status 0 means true.
local function condition(name)
  return function(d, pos, v)
    if type(v) ~= "function" and type(v) ~= "string" then
      fail(pos, format("%s: expected a function or a shell command, got %s", name, describe(v)))
    end
    d[name] = v
  end
end
TaskSetters.run_if = condition("run_if")
TaskSetters.abort_if = condition("abort_if")
-- Every task whose dependencies are done already runs at once; `async`
-- is accepted for that reason and changes nothing.
TaskSetters.async = function(d, pos, v)
  if type(v) ~= "boolean" then
    fail(pos, format("async: expected a boolean, got %s", describe(v)))
  end
end

-- Outputs packed after success and unpacked for dependent tasks:
-- :artifacts({"dist/", "report.txt"}) or :artifacts("out.txt").
TaskSetters.artifacts = function(d, pos, v)
  if type(v) == "string" then
    d.artifacts = { v }
    return
  end
  if type(v) ~= "table" then
    fail(pos, format("artifacts: expected a list of paths, got %s", describe(v)))
  end
  local out = {}
  for i, path in ipairs(v) do
    out[i] = want_string(pos, format("artifacts[%d]", i), path)
  end
  d.artifacts = out
end

for name, setter in pairs(TaskSetters) do
  TaskMethods[name] = function(self, ...)
    local data = data_of(self, name)
    if select("#", ...) == 0 then
      fail(at(2), format("%s: a value is required", name))
    end
    setter(data, at(2), ...)
    return self
  end
end

function TaskMethods.build(self)
  data_of(self, "build").built = true
  return self
end

-- A task written as a table: { name = ..., command = ..., ... }.
local function task_from_table(pos, path, t, defaults)
  if task_data[t] then
    return task_data[t]
  end
  if type(t) ~= "table" then
    fail(pos, format("%s: expected a task (task(\"name\")...) or a table, got %s", path, describe(t)))
  end
  for k in pairs(t) do
    if k ~= "name" and TaskSetters[k] == nil then
      local p = state.locate and state.locate(pos, tostring(k)) or pos
      fail(p, format("%s: unknown task field '%s'", path, tostring(k)))
    end
  end
  if type(t.name) ~= "string" or t.name == "" then
    fail(pos, format("%s.name: a task needs a name", path))
  end
  check_task_name(pos, path .. ".name", t.name)
  local _, data = new_task(pos, t.name)
  data.in_workflow = true
  for k, v in pairs(defaults or {}) do
    if t[k] == nil then
      TaskSetters[k](data, pos, v)
    end
  end
  for k, v in pairs(t) do
    if k ~= "name" then
      local p = state.locate and state.locate(pos, k) or pos
      TaskSetters[k](data, p, v)
    end
  end
  return data
end

function task(name)
  local pos = at(2)
  local builder = new_task(pos, name)
  return builder
end

---------------------------------------------------------------- workflows

local workflow_data = setmetatable({}, { __mode = "k" })
local WorkflowMethods = {}
local workflow_mt = {
  __name = "workflow",
  __index = function(_, key)
    local method = WorkflowMethods[key]
    if method == nil then
      fail(at(2), format("unknown workflow method '%s'", tostring(key)))
    end
    return method
  end,
  __newindex = function(_, key)
    fail(at(2), format("cannot set '%s' on a workflow: call :%s(...)", tostring(key), tostring(key)))
  end,
}

local function set_tasks(w, pos, list)
  if type(list) ~= "table" or task_data[list] then
    fail(pos, format("tasks: expected a list of tasks, got %s", describe(list)))
  end
  local out = {}
  for i, t in ipairs(list) do
    local data = task_from_table(pos, format("tasks[%d]", i), t)
    data.in_workflow = true
    out[#out + 1] = data
  end
  w.tasks = out
end

local WorkflowSetters = {
  description = function(w, pos, v) w.description = want_string(pos, "description", v) end,
  version = function(w, pos, v) w.version = scalar(pos, "version", v) end,
  tasks = set_tasks,
  params = function(w, pos, v) w.params = string_map(pos, "params", v) end,
  labels = function(w, pos, v) w.labels = string_map(pos, "labels", v) end,
  timeout = function(w, pos, v) w.timeout = duration(pos, "timeout", v) end,
  concurrency = function(w, pos, v) w.concurrency = count(pos, "concurrency", v) end,
  fail_fast = function(w, pos, v)
    if type(v) ~= "boolean" then
      fail(pos, format("fail_fast: expected a boolean, got %s", describe(v)))
    end
    w.fail_fast = v
  end,
  -- Secrets every task may read (the `secrets` global, secret.get):
  -- names only; the values never enter the Workflow.
  secrets = function(w, pos, v)
    if type(v) == "string" then
      w.secrets = { v }
      return
    end
    if type(v) ~= "table" then
      fail(pos, format("secrets: expected a list of Secret names, got %s", describe(v)))
    end
    local out = {}
    for i, name in ipairs(v) do
      out[i] = want_string(pos, format("secrets[%d]", i), name)
    end
    w.secrets = out
  end,
  config = function(w, pos, v)
    if type(v) ~= "table" then
      fail(pos, format("config: expected a table, got %s", describe(v)))
    end
    for k, value in pairs(v) do
      if k == "timeout" then
        w.timeout = duration(pos, "config.timeout", value)
      elseif k == "max_parallel_tasks" or k == "concurrency" then
        w.concurrency = count(pos, "config." .. k, value)
      elseif k == "fail_fast" then
        w.fail_fast = value == true
      else
        fail(pos, format("config: unknown field '%s' (known: timeout, max_parallel_tasks, fail_fast)", tostring(k)))
      end
    end
  end,
}
-- The directory (relative to this file) every task starts with, packed
-- and uploaded by slothctl apply.
WorkflowSetters.workspace = function(w, pos, v) w.workspace = want_string(pos, "workspace", v) end
-- Scheduling (the workflow becomes a CronWorkflow) and its stack.
local CONCURRENCY_POLICIES = { allow = "Allow", forbid = "Forbid", replace = "Replace" }
WorkflowSetters.schedule = function(w, pos, v) w.schedule = want_string(pos, "schedule", v) end
WorkflowSetters.timezone = function(w, pos, v) w.timezone = want_string(pos, "timezone", v) end
WorkflowSetters.concurrency_policy = function(w, pos, v)
  local text = want_string(pos, "concurrency_policy", v)
  w.concurrency_policy = CONCURRENCY_POLICIES[lower(text)]
  if not w.concurrency_policy then
    fail(pos, format("concurrency_policy: expected Allow, Forbid or Replace, got %q", text))
  end
end
WorkflowSetters.starting_deadline = function(w, pos, v)
  w.starting_deadline = duration(pos, "starting_deadline", v)
end
WorkflowSetters.suspend = function(w, pos, v)
  if type(v) ~= "boolean" then
    fail(pos, format("suspend: expected a boolean, got %s", describe(v)))
  end
  w.suspend = v
end
WorkflowSetters.successful_history_limit = function(w, pos, v)
  w.successful_history_limit = count(pos, "successful_history_limit", v)
end
WorkflowSetters.failed_history_limit = function(w, pos, v)
  w.failed_history_limit = count(pos, "failed_history_limit", v)
end
WorkflowSetters.stack = function(w, pos, v) w.stack = want_string(pos, "stack", v) end
WorkflowSetters.outputs = function(w, pos, v) w.outputs = string_map(pos, "outputs", v) end

-- Workflow hooks: each runs as a hook TaskRun whose entry is
-- `WORKFLOW/hook:NAME`; the agent calls `hooks[NAME]` (below) with the
-- hook's arguments the controller put in the payload's `input._hook`
-- (a key no task name can take).
local function hook_call(name, f)
  return function(_, _, input)
    input = input or {}
    local args = input._hook or {}
    local ok, message
    if name == "on_start" then
      ok, message = f()
    elseif name == "on_task_start" then
      ok, message = f(args.task)
    elseif name == "on_task_complete" then
      ok, message = f(args.task, args.success == "true")
    else
      local results = {}
      for task, values in pairs(input) do
        if task ~= "_hook" then results[task] = values end
      end
      ok, message = f(args.success == "true", results)
    end
    if type(message) ~= "string" then message = nil end
    if ok == false then
      return false, message or format("the workflow hook %s returned false", name)
    end
    return true, message
  end
end

for _, hook in ipairs({ "on_start", "on_complete", "on_task_start", "on_task_complete" }) do
  WorkflowSetters[hook] = function(w, pos, v)
    if type(v) ~= "function" then
      fail(pos, format("%s: expected a function, got %s", hook, describe(v)))
    end
    w.hooks = w.hooks or {}
    w.hooks[hook] = { name = "hook:" .. hook, command = hook_call(hook, v) }
  end
end
-- The agents workflow hooks run on (as agent_selector); any Ready agent
-- when not given.
WorkflowSetters.hooks_agent_selector = function(w, pos, v)
  w.hooks_selector = agent_selector(pos, v)
end
-- Not sloth-runner workflow hooks Sloth has an equivalent for: use
-- on_complete(success, results).
for _, hook in ipairs({ "on_success", "on_failure" }) do
  WorkflowSetters[hook] = function(w, pos, v)
    if type(v) ~= "function" then
      fail(pos, format("%s: expected a function, got %s", hook, describe(v)))
    end
    warn(pos, format("workflow '%s': %s is accepted but not run by Sloth (ignored): use on_complete(success, results)", w.name, hook))
  end
end

for name, setter in pairs(WorkflowSetters) do
  WorkflowMethods[name] = function(self, ...)
    local w = workflow_data[self]
    if not w then
      fail(at(2), format("workflow:%s must be called with ':' on a workflow", name))
    end
    if select("#", ...) == 0 then
      fail(at(2), format("%s: a value is required", name))
    end
    setter(w, at(2), ...)
    return self
  end
end

function WorkflowMethods.build(self)
  return self
end

local function register(pos, name)
  for _, w in ipairs(state.workflows) do
    if w.name == name then
      fail(pos, format("workflow '%s' is defined twice (first at line %d)", name, w.line))
    end
  end
  local w = { name = name, src = pos.src, line = pos.line, tasks = {} }
  state.workflows[#state.workflows + 1] = w
  return w
end

workflow = setmetatable({}, {
  __call = function()
    fail(at(2), "workflow is not a function: use workflow.define(\"name\", { tasks = {...} }) or workflow.define(\"name\"):tasks({...})")
  end,
})

function workflow.define(name, options)
  local pos = at(2)
  if type(name) ~= "string" or name == "" then
    fail(pos, format("workflow.define: expected a workflow name, got %s", describe(name)))
  end
  local w = register(pos, name)
  local builder = setmetatable({}, workflow_mt)
  workflow_data[builder] = w
  if options ~= nil then
    if type(options) ~= "table" then
      fail(pos, format("workflow.define: expected a table of options, got %s", describe(options)))
    end
    for k, v in pairs(options) do
      local setter = WorkflowSetters[k]
      if setter == nil then
        fail(pos, format("workflow.define: unknown workflow field '%s'", tostring(k)))
      end
      setter(w, pos, v)
    end
  end
  return builder
end

---------------------------------------------------------------- TaskDefinitions

local GROUP_FIELDS = {
  description = true, tasks = true, delegate_to = true, agent_selector = true,
  workdir = true, params = true, env = true, timeout = true,
  create_workdir_before_run = "ignored", clean_workdir_after_run = "ignored",
}

-- Records where `TaskDefinitions = {...}` is assigned, for error lines.
do
  local mt = getmetatable(_G)
  if mt == nil then
    setmetatable(_G, {
      __newindex = function(t, k, v)
        if k == "TaskDefinitions" then
          state.defs_pos = at(2)
        end
        rawset(t, k, v)
      end,
    })
  end
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      return nil, k
    end
    keys[#keys + 1] = k
  end
  sort(keys)
  return keys
end

local function read_task_definitions()
  local defs = rawget(_G, "TaskDefinitions")
  if defs == nil then
    return
  end
  local pos = state.defs_pos or { src = state.chunk or "?", line = 1 }
  -- Lua reports the assignment at its last line; start at its first.
  local start = state.locate({ src = pos.src, line = 1 }, "TaskDefinitions")
  if start.line <= pos.line then
    pos = start
  end
  if type(defs) ~= "table" then
    fail(pos, format("TaskDefinitions: expected a table of groups, got %s", describe(defs)))
  end
  local groups, bad = sorted_keys(defs)
  if not groups then
    fail(pos, format("TaskDefinitions: group names must be strings, got %s", describe(bad)))
  end
  for _, group in ipairs(groups) do
    local g = defs[group]
    local gpos = state.locate and state.locate(pos, group) or pos
    local path = "TaskDefinitions." .. group
    if type(g) ~= "table" then
      fail(gpos, format("%s: expected a table with description and tasks, got %s", path, describe(g)))
    end
    for k, v in pairs(g) do
      local known = GROUP_FIELDS[k]
      if not known then
        local p = state.locate and state.locate(gpos, tostring(k)) or gpos
        fail(p, format("%s: unknown field '%s'", path, tostring(k)))
      elseif known == "ignored" then
        warn(gpos, format("%s.%s is accepted but ignored by Sloth", path, k))
      end
    end
    local w = register(gpos, group)
    if g.description ~= nil then
      w.description = want_string(gpos, path .. ".description", g.description)
    end
    if g.params ~= nil then
      w.params = string_map(gpos, path .. ".params", g.params)
    end
    local defaults = {}
    for _, k in ipairs({ "delegate_to", "agent_selector", "workdir", "env", "timeout" }) do
      defaults[k] = g[k]
    end
    if type(g.tasks) ~= "table" then
      fail(gpos, format("%s.tasks: expected a list of tasks, got %s", path, describe(g.tasks)))
    end
    for i, t in ipairs(g.tasks) do
      local tpos = gpos
      if type(t) == "table" and type(rawget(t, "name")) == "string" and state.locate then
        tpos = state.locate(gpos, t.name, true)
      end
      local data = task_from_table(tpos, format("%s.tasks[%d]", path, i), t, defaults)
      -- The TaskDefinitions calling convention: command(params, input).
      data.legacy = true
      w.tasks[#w.tasks + 1] = data
    end
  end
end

---------------------------------------------------------------- finishing

---------------------------------------------------------------- conditions

local function shell_quote(text)
  return "'" .. gsub(text, "'", "'\\''") .. "'"
end

-- true when the condition holds: a function's truthy result, or a shell
-- command's exit status 0 (run on the agent).
local function holds(cond, ...)
  if type(cond) == "function" then
    return cond(...) and true or false
  end
  return exec.run(cond).success == true
end

-- The task's command with its run_if / abort_if checked first: a task
-- whose run_if is false succeeds without running ("skipped"), one whose
-- abort_if is true fails without running ("aborted").
local function guard(d)
  if (d.run_if == nil and d.abort_if == nil) or d.command == nil then
    return
  end
  local command, run_if, abort_if = d.command, d.run_if, d.abort_if
  if type(command) == "string" and type(run_if) ~= "function" and type(abort_if) ~= "function" then
    local script = command
    if run_if ~= nil then
      script = format("if ( %s ); then\n%s\nelse echo %s; fi", run_if, script,
        shell_quote(format("skipped: the run_if condition of task '%s' is false", d.name)))
    end
    if abort_if ~= nil then
      script = format("if ( %s ); then echo %s >&2; exit 1; fi\n%s", abort_if,
        shell_quote(format("aborted: the abort_if condition of task '%s' is true", d.name)), script)
    end
    d.command = script
    return
  end
  d.command = function(this, params, input)
    if abort_if ~= nil and holds(abort_if, this, params, input) then
      return false, format("aborted: the abort_if condition of task '%s' is true", d.name)
    end
    if run_if ~= nil and not holds(run_if, this, params, input) then
      return true, format("skipped: the run_if condition of task '%s' is false", d.name)
    end
    if type(command) == "function" then
      return command(this, params, input)
    end
    local r = exec.run(command)
    if r.stdout ~= "" then print((gsub(r.stdout, "\n$", ""))) end
    if r.stderr ~= "" then print((gsub(r.stderr, "\n$", ""))) end
    return r.success, format("exit code %d", r.exit_code)
  end
end

-- Called by Rust after the file ran: adds the TaskDefinitions groups and
-- checks what can only be checked at the end.
function state.finish()
  read_task_definitions()
  for _, d in ipairs(state.tasks) do
    guard(d)
  end
  for _, d in ipairs(state.tasks) do
    if not d.in_workflow then
      warn({ src = d.src, line = d.line }, format("task '%s' is not part of any workflow (ignored)", d.name))
    end
  end
end

-- Forgets what an earlier evaluation in the same state defined.
function state.reset(chunk, source)
  state.workflows = {}
  state.warnings = {}
  state.tasks = {}
  state.defs_pos = nil
  state.chunk = chunk
  state.source = source
  rawset(_G, "TaskDefinitions", nil)
end

-- The line, at or after `pos`, where `word` is written as a key
-- (`word =` or `["word"] =`) or, with `quoted`, as a string ("word");
-- `pos` itself when the source does not say.
function state.locate(pos, word, quoted)
  local source = state.source
  if type(source) ~= "string" or pos.src ~= state.chunk then
    return pos
  end
  local line = 1
  local start = 1
  while line < pos.line do
    local nl = find(source, "\n", start, true)
    if not nl then
      return pos
    end
    start = nl + 1
    line = line + 1
  end
  local escaped = gsub(word, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  while start <= #source do
    local nl = find(source, "\n", start, true) or (#source + 1)
    local text = source:sub(start, nl - 1)
    local found
    if quoted then
      found = find(text, "[\"']" .. escaped .. "[\"']")
    else
      found = find(text, "%f[%w_]" .. escaped .. "%s*=[^=]") or find(text, "%[%s*[\"']" .. escaped .. "[\"']%s*%]%s*=")
    end
    if found then
      return { src = pos.src, line = line }
    end
    start = nl + 1
    line = line + 1
  end
  return pos
end

return state
