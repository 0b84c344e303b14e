// The REST API as the dashboard uses it: bearer-token requests, list+watch
// with resume, log follow, and the caller's RBAC rules. No cookies: the
// token lives in sessionStorage and goes in the Authorization header.

const BASE = "/apis/sloth.dev/v1";
const TOKEN_KEY = "sloth.token";

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(t) { sessionStorage.setItem(TOKEN_KEY, t); }
export function clearToken() { sessionStorage.removeItem(TOKEN_KEY); }

/** An error answer: the server's Status message, and its HTTP code. */
export class ApiError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

function headers(extra) {
  return Object.assign({ Authorization: `Bearer ${token()}` }, extra || {});
}

async function failure(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.message) message = body.message;
  } catch (_) { /* not a Status object */ }
  return new ApiError(resp.status, message);
}

/** The collection path of `plural` in `ns` ("" = all namespaces or cluster-scoped). */
export function collection(plural, ns) {
  return ns ? `${BASE}/namespaces/${encodeURIComponent(ns)}/${plural}` : `${BASE}/${plural}`;
}

/** The path of one object. */
export function objectPath(plural, ns, name) {
  return `${collection(plural, ns)}/${encodeURIComponent(name)}`;
}

/** One JSON request; throws ApiError on an error status. */
export async function request(method, path, body, contentType) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = contentType || "application/json";
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw await failure(resp);
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** The caller's name and a predicate `can(verb, resource)` from the rules review. */
export async function rules(ns) {
  const review = await request("GET", `${BASE}/selfsubjectrulesreview?namespace=${encodeURIComponent(ns || "default")}`);
  const status = (review && review.status) || {};
  const list = status.resourceRules || [];
  const has = (values, v) => (values || []).includes("*") || (values || []).includes(v);
  return {
    user: status.user || "",
    can: (verb, resource) => list.some((r) => has(r.verbs, verb) && has(r.resources, resource)),
  };
}

/** Reads a streamed body line by line until it ends or `signal` aborts. */
async function eachLine(resp, onLine) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) onLine(line);
    }
  }
}

const key = (o) => `${o.metadata.namespace || ""}/${o.metadata.name}`;
const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
});

/**
 * Keeps the objects of a collection current through ONE watch stream:
 * list, then watch from the list's resourceVersion; after a disconnect,
 * resume from the last version seen (bookmarks advance it); after 410
 * Gone, list again. `onChange(objects, state)` runs after each change;
 * `state` is "live", "reconnecting" or an error message (with its HTTP
 * code when the server refused: 401, 403). Stop with stop().
 */
export class ListWatch {
  constructor(path, onChange) {
    this.path = path;
    this.onChange = onChange;
    this.objects = new Map();
    this.abort = new AbortController();
    this.run();
  }

  stop() { this.abort.abort(); }

  emit(state, code) { this.onChange([...this.objects.values()], state, code); }

  async list() {
    const objects = new Map();
    let cont = "";
    let version = "";
    // Paged, as the server pages lists; bounded by the server's answers.
    do {
      const page = await request("GET", `${this.path}?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ""}`);
      for (const o of page.items || []) objects.set(key(o), o);
      cont = (page.metadata && page.metadata.continue) || "";
      version = (page.metadata && page.metadata.resourceVersion) || version;
    } while (cont);
    this.objects = objects;
    return version;
  }

  async run() {
    const signal = this.abort.signal;
    let version = null;
    let backoff = 500;
    while (!signal.aborted) {
      try {
        if (version === null) {
          version = await this.list();
          this.emit("live");
        }
        const url = `${this.path}?watch=true&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(version)}`;
        const resp = await fetch(url, { headers: headers(), signal, cache: "no-store" });
        if (resp.status === 410) { version = null; continue; }
        if (!resp.ok) throw await failure(resp);
        this.emit("live");
        backoff = 500;
        await eachLine(resp, (line) => {
          const event = JSON.parse(line);
          const object = event.object || {};
          if (event.type === "ERROR") {
            if (object.code === 410) version = null;
            throw new ApiError(object.code || 500, object.message || "watch error");
          }
          if (object.metadata && object.metadata.resourceVersion) version = object.metadata.resourceVersion;
          if (event.type === "BOOKMARK") return;
          if (event.type === "DELETED") this.objects.delete(key(object));
          else this.objects.set(key(object), object);
          this.emit("live");
        });
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.code === 410) version = null;
        if (e instanceof ApiError && (e.code === 401 || e.code === 403)) {
          this.emit(e.message, e.code);
          return;
        }
        this.emit("reconnecting");
      }
      if (signal.aborted) return;
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 10000);
    }
  }
}

/** Follows a TaskRun's log; `onText` gets each chunk. Returns a stop function. */
export function followLog(ns, name, onText, onEnd) {
  const abort = new AbortController();
  (async () => {
    try {
      const resp = await fetch(`${objectPath("taskruns", ns, name)}/log?follow=true`,
        { headers: headers(), signal: abort.signal, cache: "no-store" });
      if (!resp.ok) throw await failure(resp);
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        onText(decoder.decode(value, { stream: true }));
      }
      onEnd("");
    } catch (e) {
      if (!abort.signal.aborted) onEnd(e.message || String(e));
    }
  })();
  return () => abort.abort();
}
