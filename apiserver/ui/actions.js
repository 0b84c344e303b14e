// The writes the dashboard offers, each through the REST API (so RBAC and
// audit apply) and each the same write slothctl makes.

import { ApiError, collection, objectPath, request } from "./api.js";

/** Attempts before a run of conflicts is reported (as slothctl). */
const ATTEMPTS = 5;

/**
 * Reads an object, lets `change` edit it (returning false when nothing is
 * to be done) and writes it back by compare-and-swap on its
 * resourceVersion, reading again after a 409 Conflict.
 */
async function update(plural, ns, name, change) {
  let last = null;
  for (let i = 0; i < ATTEMPTS; i++) {
    const object = await request("GET", objectPath(plural, ns, name));
    const outcome = change(object);
    if (outcome !== true) return outcome;
    try {
      await request("PUT", objectPath(plural, ns, name), object);
      return "done";
    } catch (e) {
      if (!(e instanceof ApiError) || e.code !== 409) throw e;
      last = e;
    }
  }
  throw last;
}

/** `slothctl cancel workflow NAME`: spec.state = Cancelled. */
export function cancelWorkflow(ns, name) {
  return update("workflows", ns, name, (wf) => {
    if ((wf.spec || {}).state === "Cancelled") return "already cancelled";
    const phase = (wf.status || {}).phase;
    if (["Succeeded", "Failed", "Cancelled"].includes(phase)) return `already finished (${phase})`;
    wf.spec.state = "Cancelled";
    return true;
  });
}

/** `slothctl cordon|uncordon AGENT`: spec.unschedulable. */
export function setCordoned(name, unschedulable) {
  return update("agents", "", name, (agent) => {
    agent.spec = agent.spec || {};
    if (Boolean(agent.spec.unschedulable) === unschedulable) return "unchanged";
    agent.spec.unschedulable = unschedulable;
    return true;
  });
}

/** A fresh name for a copy of `name` (as generateName would), at most 63 characters. */
export function copyName(name) {
  const base = name.replace(/-rerun-[a-z0-9]{5}$/, "").slice(0, 51);
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(5)),
    (b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
  return `${base}-rerun-${suffix}`;
}

/** Re-runs a workflow: creates a copy under a new name, without its status. */
export async function rerunWorkflow(workflow) {
  const m = workflow.metadata;
  const spec = JSON.parse(JSON.stringify(workflow.spec || {}));
  delete spec.state;
  const copy = {
    apiVersion: workflow.apiVersion || "sloth.dev/v1",
    kind: "Workflow",
    metadata: {
      name: copyName(m.name),
      namespace: m.namespace,
      labels: m.labels || {},
      annotations: Object.assign({}, m.annotations || {}, { "sloth.dev/rerun-of": m.name }),
    },
    spec,
  };
  const created = await request("POST", collection("workflows", m.namespace), copy);
  return created.metadata.name;
}

/** Deletes a TaskRun. */
export function deleteTaskRun(ns, name) {
  return request("DELETE", objectPath("taskruns", ns, name));
}
