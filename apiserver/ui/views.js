// What each view shows: its kind's plural, whether it is namespaced, its
// columns, its filters and the actions a row offers.

const meta = (o) => o.metadata || {};
const spec = (o) => o.spec || {};
const status = (o) => o.status || {};

/** "3m", "2h", "5d" since an RFC 3339 time; "" when absent. */
export function age(time) {
  if (!time) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  if (!Number.isFinite(s)) return "";
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function bytes(n) {
  if (!n) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export const labels = (o) => Object.entries(meta(o).labels || {}).map(([k, v]) => `${k}=${v}`).join(" ");

/** A coloured phase badge (a column value that is an object becomes a badge). */
const badge = (phase) => ({ badge: phase || "Pending" });

/** Tasks finished (Succeeded, Failed or Skipped) of all tasks, finally included. */
export function progress(wf) {
  const total = (spec(wf).tasks || []).length + (spec(wf).finally || []).length;
  const done = Object.values(status(wf).tasks || {})
    .filter((t) => ["Succeeded", "Failed", "Skipped"].includes(t.phase)).length;
  return `${done}/${total}`;
}

export const taskRunAgent = (tr) => spec(tr).agentName || status(tr).agent || "";

const workflowOf = (tr) => (meta(tr).labels || {})["sloth.dev/workflow"] || "";

/** Whether `o`'s labels match a selector `k=v,k2=v2` (or `k` for presence). */
export function matchesLabels(o, selector) {
  const have = meta(o).labels || {};
  return selector.split(",").map((s) => s.trim()).filter(Boolean).every((term) => {
    const [k, v] = term.split("=").map((s) => s.trim());
    return v === undefined ? k in have : have[k] === v;
  });
}

const TASKRUN_PHASES = ["", "Pending", "Scheduled", "Running", "Succeeded", "Failed"];

/** The views, in the order of the navigation bar. */
export const VIEWS = {
  agents: {
    title: "Agents", plural: "agents", namespaced: false,
    columns: [
      ["Name", (o) => meta(o).name],
      ["Status", (o) => badge(status(o).phase || "Unknown")],
      ["Schedulable", (o) => (spec(o).unschedulable ? "cordoned" : "yes")],
      ["Running", (o) => `${status(o).running || 0}/${spec(o).capacity || status(o).allocatable || 0}`],
      ["Heartbeat", (o) => age(status(o).lastHeartbeatTime)],
      ["CPU", (o) => { const r = status(o).resources; return r ? `${r.cpu} (load ${Number(r.load1 || 0).toFixed(2)})` : ""; }],
      ["Memory free", (o) => { const r = status(o).resources; return r ? `${bytes(r.memoryAvailableBytes)} / ${bytes(r.memoryBytes)}` : ""; }],
      ["Disk free", (o) => bytes((status(o).resources || {}).diskAvailableBytes)],
      ["Labels", labels],
    ],
    actions: (o, can) => (can("update", "agents")
      ? [spec(o).unschedulable ? ["uncordon", "Uncordon"] : ["cordon", "Cordon"]] : []),
  },
  workflows: {
    title: "Workflows", plural: "workflows", namespaced: true, dag: true,
    columns: [
      ["Name", (o) => meta(o).name],
      ["Phase", (o) => badge(status(o).phase)],
      ["Progress", progress],
      ["Started", (o) => age(status(o).startTime)],
      ["Age", (o) => age(meta(o).creationTimestamp)],
      ["Labels", labels],
    ],
    actions: (o, can) => {
      const out = [];
      const finished = ["Succeeded", "Failed", "Cancelled"].includes(status(o).phase);
      if (can("update", "workflows") && !finished && spec(o).state !== "Cancelled") out.push(["cancel", "Cancel"]);
      if (can("create", "workflows")) out.push(["rerun", "Re-run"]);
      return out;
    },
  },
  taskruns: {
    title: "TaskRuns", plural: "taskruns", namespaced: true, logs: true,
    filters: [
      ["phase", "Phase", TASKRUN_PHASES, (o, v) => (status(o).phase || "Pending") === v],
      ["agent", "Agent", null, (o, v) => taskRunAgent(o).includes(v)],
      ["workflow", "Workflow", null, (o, v) => workflowOf(o).includes(v)],
      ["labels", "Labels k=v", null, matchesLabels],
    ],
    columns: [
      ["Name", (o) => meta(o).name],
      ["Phase", (o) => badge(status(o).phase)],
      ["Agent", taskRunAgent],
      ["Workflow", workflowOf],
      ["Exit", (o) => (status(o).exitCode ?? "")],
      ["Age", (o) => age(meta(o).creationTimestamp)],
      ["Reason", (o) => status(o).reason || ""],
    ],
    // Reading the log is a view, not a write: offered to every reader.
    panels: [["log", "Log"]],
    actions: (o, can) => (can("delete", "taskruns") ? [["delete", "Delete"]] : []),
  },
  events: {
    title: "Events", plural: "events", namespaced: true,
    sort: (a, b) => String(spec(b).lastTimestamp || "").localeCompare(String(spec(a).lastTimestamp || "")),
    columns: [
      ["Last seen", (o) => age(spec(o).lastTimestamp || meta(o).creationTimestamp)],
      ["Type", (o) => spec(o).type || ""],
      ["Reason", (o) => spec(o).reason || ""],
      ["Object", (o) => { const r = spec(o).involvedObject || {}; return `${(r.kind || "").toLowerCase()}/${r.name || ""}`; }],
      ["Count", (o) => spec(o).count || 1],
      ["Message", (o) => spec(o).message || ""],
    ],
  },
  locks: {
    title: "Locks", plural: "locks", namespaced: true,
    columns: [
      ["Name", (o) => meta(o).name],
      ["Namespace", (o) => meta(o).namespace],
      ["Holder", (o) => spec(o).holderIdentity || ""],
      ["Lease", (o) => (spec(o).leaseDurationSeconds ? `${spec(o).leaseDurationSeconds}s` : "")],
      ["Renewed", (o) => age(spec(o).renewTime)],
      ["Transitions", (o) => spec(o).leaseTransitions || 0],
    ],
  },
  cronworkflows: {
    title: "CronWorkflows", plural: "cronworkflows", namespaced: true,
    columns: [
      ["Name", (o) => meta(o).name],
      ["Schedule", (o) => `${spec(o).schedule || ""}${spec(o).timezone ? ` ${spec(o).timezone}` : ""}`],
      ["Suspended", (o) => (spec(o).suspend ? "yes" : "no")],
      ["Active", (o) => (status(o).active || []).join(" ")],
      ["Last schedule", (o) => age(status(o).lastScheduleTime)],
      ["Last success", (o) => age(status(o).lastSuccessfulTime)],
    ],
  },
  stacks: {
    title: "Stacks", plural: "stacks", namespaced: true,
    columns: [
      ["Name", (o) => meta(o).name],
      ["Runs", (o) => status(o).runs || 0],
      ["Current", (o) => status(o).current || ""],
      ["Outputs", (o) => Object.entries(status(o).outputs || {}).map(([k, v]) => `${k}=${v}`).join(" ")],
      ["Age", (o) => age(meta(o).creationTimestamp)],
    ],
  },
  state: {
    title: "State", plural: "stateentries", namespaced: true,
    columns: [
      ["Key", (o) => spec(o).key || meta(o).name],
      ["Value", (o) => JSON.stringify(spec(o).value ?? null)],
      ["Expires", (o) => spec(o).expiresAt || ""],
      ["Updated by", (o) => spec(o).updatedBy || ""],
    ],
  },
};
