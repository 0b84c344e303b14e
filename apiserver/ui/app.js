// The dashboard's shell: sign-in, navigation by URL hash, one list+watch
// per open view, the table, the workflow DAG and the TaskRun log panel.

import { ApiError, ListWatch, clearToken, collection, followLog, rules, setToken, token } from "./api.js";
import { cancelWorkflow, deleteTaskRun, rerunWorkflow, setCordoned } from "./actions.js";
import { drawDag } from "./dag.js";
import { VIEWS } from "./views.js";

const $ = (id) => document.getElementById(id);

/** Everything about the view on screen; replaced when the view changes. */
let current = null;
let access = { user: "", can: () => false };

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function namespace() { return $("namespace").value.trim(); }

function showLogin(message) {
  if (current) { current.watch.stop(); if (current.stopLog) current.stopLog(); current = null; }
  $("nav").hidden = true;
  $("session").hidden = true;
  $("view").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function signIn(t) {
  setToken(t);
  try {
    access = await rules(namespace());
  } catch (e) {
    clearToken();
    showLogin(e instanceof ApiError && e.code === 401 ? "That token was not accepted." : `Cannot sign in: ${e.message}`);
    return;
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("session").hidden = false;
  $("user").textContent = access.user;
  open();
}

/** Opens the view named by the URL hash (Workflows by default). */
function open() {
  if (!token()) { showLogin(); return; }
  const name = location.hash.slice(1) in VIEWS ? location.hash.slice(1) : "workflows";
  const view = VIEWS[name];
  if (current) { current.watch.stop(); if (current.stopLog) current.stopLog(); }
  for (const a of $("nav").querySelectorAll("a")) a.classList.toggle("active", a.dataset.view === name);
  $("view").hidden = false;
  $("view").dataset.view = name;
  $("view-title").textContent = view.title;
  $("view-error").textContent = "";
  $("detail").hidden = true;
  $("detail").replaceChildren();
  $("table").querySelector("thead").replaceChildren(
    h("tr", {}, ...view.columns.map(([title]) => h("th", {}, title)), h("th", { class: "actions" }, "")));
  $("table").querySelector("tbody").replaceChildren();
  current = { name, view, objects: [], selected: null, filter: {}, stopLog: null };
  setLive("connecting");
  $("count").textContent = "";
  renderFilters();
  const ns = view.namespaced ? namespace() : "";
  current.watch = new ListWatch(collection(view.plural, ns), (objects, state, code) => {
    if (!current || current.view !== view) return;
    if (code === 401) { clearToken(); showLogin(`Signed out: ${state}`); return; }
    current.objects = objects;
    setLive(state);
    render();
  });
}

function setLive(state) {
  const live = $("live");
  live.textContent = state === "live" ? "live" : state;
  live.className = `live ${state === "live" ? "ok" : "bad"}`;
}

function renderFilters() {
  const box = $("filters");
  box.replaceChildren();
  for (const [key, label, choices] of current.view.filters || []) {
    const input = choices
      ? h("select", { id: `filter-${key}` }, ...choices.map((c) => h("option", { value: c }, c || "any")))
      : h("input", { id: `filter-${key}`, placeholder: label, size: 12, spellcheck: "false" });
    input.addEventListener("input", () => { current.filter[key] = input.value.trim(); render(); });
    box.append(h("label", {}, `${label} `, input));
  }
}

function visible() {
  const { view, filter } = current;
  let rows = current.objects.filter((o) => (view.filters || []).every(([key, , , test]) => !filter[key] || test(o, filter[key])));
  rows = rows.sort(view.sort || ((a, b) => String(b.metadata.creationTimestamp || "").localeCompare(String(a.metadata.creationTimestamp || ""))
    || a.metadata.name.localeCompare(b.metadata.name)));
  return rows;
}

function cell(value) {
  if (value && typeof value === "object" && "badge" in value) {
    return h("td", {}, h("span", { class: `badge phase-${value.badge}` }, value.badge));
  }
  return h("td", {}, String(value ?? ""));
}

function render() {
  const { view } = current;
  const rows = visible();
  $("count").textContent = `${rows.length} of ${current.objects.length}`;
  const body = rows.map((o) => {
    const name = o.metadata.name;
    const panels = (view.panels || []).map(([panel, label]) =>
      h("button", { type: "button", "data-panel": panel, onclick: (e) => { e.stopPropagation(); showLog(o); } }, label));
    const buttons = (view.actions ? view.actions(o, access.can) : []).map(([action, label]) =>
      h("button", { type: "button", "data-action": action, onclick: (e) => { e.stopPropagation(); act(action, o); } }, label));
    const row = h("tr", { "data-name": name, class: current.selected === name ? "selected" : "" },
      ...view.columns.map(([title, f]) => { const td = cell(f(o)); td.dataset.label = title; return td; }),
      h("td", { class: "actions" }, ...panels, ...buttons));
    if (view.dag) row.addEventListener("click", () => { current.selected = name; render(); });
    return row;
  });
  $("table").querySelector("tbody").replaceChildren(...body);
  if (view.dag) renderDag(rows);
}

function renderDag(rows) {
  if (!rows.some((o) => o.metadata.name === current.selected)) current.selected = rows.length ? rows[0].metadata.name : null;
  const wf = rows.find((o) => o.metadata.name === current.selected);
  const detail = $("detail");
  detail.hidden = !wf;
  if (!wf) return;
  for (const tr of $("table").querySelectorAll("tbody tr")) tr.classList.toggle("selected", tr.dataset.name === current.selected);
  const phase = (wf.status || {}).phase || "Pending";
  detail.replaceChildren(
    h("h2", {}, `${wf.metadata.name} `, h("span", { class: `badge phase-${phase}`, id: "dag-phase" }, phase)),
    h("div", { class: "dag-wrap" }, drawDag(wf)));
}

function showLog(o) {
  if (current.stopLog) current.stopLog();
  const pre = h("pre", { id: "log", class: "log" });
  const state = h("span", { id: "log-state", class: "live ok" }, "following");
  const close = h("button", { type: "button", onclick: () => { current.stopLog(); $("detail").hidden = true; } }, "Close");
  $("detail").replaceChildren(h("h2", {}, `Log of ${o.metadata.name} `, state, " ", close), pre);
  $("detail").hidden = false;
  current.stopLog = followLog(o.metadata.namespace, o.metadata.name, (text) => {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(text);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }, (error) => {
    state.textContent = error ? `stopped: ${error}` : "ended";
    state.className = `live ${error ? "bad" : "done"}`;
  });
}

async function act(action, o) {
  const m = o.metadata;
  $("view-error").textContent = "";
  try {
    if (action === "cancel") await cancelWorkflow(m.namespace, m.name);
    else if (action === "rerun") current.selected = await rerunWorkflow(o);
    else if (action === "delete") {
      if (!window.confirm(`Delete TaskRun ${m.name}?`)) return;
      await deleteTaskRun(m.namespace, m.name);
    } else if (action === "cordon" || action === "uncordon") await setCordoned(m.name, action === "cordon");
  } catch (e) {
    $("view-error").textContent = `${action} ${m.name}: ${e.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("token").value.trim());
    $("token").value = "";
  });
  $("logout").addEventListener("click", () => { clearToken(); access = { user: "", can: () => false }; location.hash = ""; showLogin(); });
  $("namespace").addEventListener("change", async () => {
    try { access = await rules(namespace()); } catch (_) { /* keep the rules we have */ }
    open();
  });
  window.addEventListener("hashchange", open);
  if (token()) signIn(token()); else showLogin();
});
