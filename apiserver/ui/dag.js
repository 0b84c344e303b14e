// A workflow's DAG as SVG: tasks in columns by depth (longest chain of
// dependencies), edges from each dependency, nodes coloured by the task's
// phase (CSS classes phase-<Phase>), finally-tasks in a last column.

const NS = "http://www.w3.org/2000/svg";
const NODE_W = 150;
const NODE_H = 34;
const GAP_X = 50;
const GAP_Y = 14;
const PAD = 10;

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Column of each task: 0 without dependencies, else 1 + deepest dependency. */
export function depths(tasks) {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const depth = new Map();
  const visiting = new Set();
  const of = (name) => {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name) || !byName.has(name)) return 0; // cycles are refused by admission
    visiting.add(name);
    const deps = byName.get(name).dependsOn || [];
    const d = deps.length ? 1 + Math.max(...deps.map(of)) : 0;
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  tasks.forEach((t) => of(t.name));
  return depth;
}

/** The SVG element of `workflow`'s DAG. */
export function drawDag(workflow) {
  const spec = workflow.spec || {};
  const states = (workflow.status || {}).tasks || {};
  const tasks = spec.tasks || [];
  const finals = spec.finally || [];
  const depth = depths(tasks);
  const lastColumn = tasks.length ? Math.max(...depth.values()) + 1 : 0;
  const columns = [];
  const place = (name, col) => {
    columns[col] = columns[col] || [];
    columns[col].push(name);
  };
  tasks.forEach((t) => place(t.name, depth.get(t.name)));
  finals.forEach((t) => place(t.name, lastColumn));
  const at = new Map();
  columns.forEach((names, col) => names.forEach((name, row) => at.set(name, {
    x: PAD + col * (NODE_W + GAP_X),
    y: PAD + row * (NODE_H + GAP_Y),
  })));
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const width = PAD * 2 + Math.max(1, columns.length) * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + rows * (NODE_H + GAP_Y) - GAP_Y;
  const svg = el("svg", { class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `DAG of workflow ${workflow.metadata.name}` });
  const defs = el("defs", {});
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
  marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const t of tasks) {
    for (const dep of t.dependsOn || []) {
      const from = at.get(dep);
      const to = at.get(t.name);
      if (!from || !to) continue;
      const x1 = from.x + NODE_W;
      const y1 = from.y + NODE_H / 2;
      const x2 = to.x;
      const y2 = to.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      svg.appendChild(el("path", { class: "edge", "marker-end": "url(#arrow)",
        d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}` }));
    }
  }
  for (const t of [...tasks, ...finals]) {
    const p = at.get(t.name);
    const state = states[t.name] || {};
    const phase = state.phase || "Pending";
    const g = el("g", { class: `task phase-${phase}`, "data-task": t.name, "data-phase": phase,
      transform: `translate(${p.x} ${p.y})` });
    g.appendChild(el("title", {}, `${t.name}: ${phase}${state.taskRun ? ` (${state.taskRun})` : ""}`));
    g.appendChild(el("rect", { width: NODE_W, height: NODE_H, rx: 6 }));
    const label = t.name.length > 18 ? `${t.name.slice(0, 17)}…` : t.name;
    g.appendChild(el("text", { x: 10, y: 15 }, label));
    g.appendChild(el("text", { x: 10, y: 28, class: "phase" }, phase));
    svg.appendChild(g);
  }
  return svg;
}
