// Vigil dashboard. Plain JavaScript, no dependencies, no network access beyond this
// server's API. Every value from the API is inserted as text (never as HTML): events carry
// attacker-controlled strings. The API key lives in sessionStorage (this tab only), is sent
// as `Authorization: Bearer`, and never appears in a URL. The pages are in pages.js
// and reports.js (loaded first); this file holds the helpers, the API client, login and the router.
"use strict";

const SESSION = "vigil.session";
const main = document.getElementById("main");
let session = load();

function load() {
  try { return JSON.parse(sessionStorage.getItem(SESSION)) || null; } catch (_) { return null; }
}

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") {
      // CSSOM, not the style attribute: the Content-Security-Policy allows no inline styles.
      for (const decl of String(v).split(";")) {
        const at = decl.indexOf(":");
        if (at > 0) el.style.setProperty(decl.slice(0, at).trim(), decl.slice(at + 1).trim());
      }
    }
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function toast(message, isError) {
  const box = h("div", { class: isError ? "error" : "" }, message);
  document.getElementById("toast").append(box);
  setTimeout(() => box.remove(), isError ? 8000 : 4000);
}

function page(title, ...children) {
  main.replaceChildren(h("h1", {}, title), ...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  document.title = `${title} · Vigil`;
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "Nothing to show.");
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: x.num ? "num" : "" }, x.label || x)))),
    h("tbody", {}, rows));
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function json(value) {
  return h("pre", { tabindex: "0" }, JSON.stringify(value, null, 2));
}

function short(hash) {
  return hash ? h("code", { title: hash }, String(hash).slice(0, 12) + "…") : "—";
}

function sev(severity) {
  return h("span", { class: `sev ${severity}` }, severity);
}

function age(iso) {
  if (!iso) return "—";
  let secs = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (secs < 60) return `${Math.floor(secs)}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m`;
  return `${Math.floor(secs / 86400)}d ${Math.floor((secs % 86400) / 3600)}h`;
}

function can(role) {
  return !!(session && session.allows && session.allows[role]);
}

// Time left until an RFC 3339 instant ("29m left"), or "expired".
function left(iso) {
  if (!iso) return "—";
  const secs = (Date.parse(iso) - Date.now()) / 1000;
  if (!(secs > 0)) return "expired";
  if (secs < 60) return `${Math.floor(secs)}s left`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m left`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m left`;
  return `${Math.floor(secs / 86400)}d ${Math.floor((secs % 86400) / 3600)}h left`;
}

// Key names by key id. Names of keys are admin information (GET /v1/keys needs the admin
// role), so only an admin's dashboard shows them; other roles see the key ids the API
// records as actors. Loaded once per login.
let keyNames = null;

async function loadKeyNames() {
  if (keyNames || !can("admin")) return;
  try {
    const data = await api("GET", "/v1/keys");
    keyNames = new Map(data.keys.map((k) => [k.id, k.name]));
  } catch (_) {
    keyNames = new Map();
  }
}

// An actor as text: a key's name (its id in the tooltip) when known, else the id as sent.
function actor(id) {
  if (!id) return "—";
  const name = keyNames && keyNames.get(id);
  return name ? h("span", { class: "actor", title: `key ${id}` }, name) : h("span", { class: "actor" }, id);
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body, contentType) {
  const headers = { Authorization: `Bearer ${session.key}` };
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    payload = body;
    headers["Content-Type"] = contentType || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: String(res.status), message: res.statusText };
    if (res.status === 401) logout("Your key is no longer accepted; log in again.");
    throw new ApiError(res.status, err.code, err.message || res.statusText);
  }
  return data;
}

function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

// Runs an action from a button: disables it while running, reports the outcome.
async function act(button, label, fn) {
  button.disabled = true;
  try {
    await fn();
    toast(label);
    await route();
  } catch (e) {
    toast(`${label} failed: ${e.message}`, true);
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- login

function loginPage(message) {
  document.getElementById("top").hidden = true;
  const input = h("input", { id: "key", type: "password", name: "key", autocomplete: "off", required: true, "aria-describedby": "key-help" });
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      try {
        const res = await fetch("/v1/whoami", { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
        const data = await res.json();
        if (!res.ok) throw new Error(data.error ? data.error.message : res.statusText);
        session = { key, key_id: data.key_id, role: data.role, allows: data.allows };
        sessionStorage.setItem(SESSION, JSON.stringify(session));
        input.value = "";
        if (!location.hash || location.hash === "#/login") location.hash = data.allows.read ? "#/alerts" : "#/overview";
        else route();
      } catch (e) {
        error.textContent = `Login failed: ${e.message}`;
        input.focus();
      }
    },
  },
  h("label", { for: "key" }, "API key", input),
  h("small", { id: "key-help", class: "muted" }, "Kept for this tab only (sessionStorage); sent as a Bearer token."),
  h("button", { type: "submit", class: "primary" }, "Log in"),
  error);
  main.replaceChildren(h("div", { class: "login panel" }, h("h1", {}, "Vigil"), form));
  document.title = "Log in · Vigil";
  input.focus();
}

function logout(message) {
  session = null;
  keyNames = null;
  sessionStorage.removeItem(SESSION);
  loginPage(message);
}

document.getElementById("logout").addEventListener("click", () => logout("Logged out."));

// ---------------------------------------------------------------- router

const PAGES = { overview: overviewPage, alerts: alertsPage, decisions: decisionsPage, events: eventsPage, reports: reportsPage, rules: rulesPage, integrity: integrityPage, receivers: receiversPage };

async function route() {
  if (!session) return loginPage();
  const top = document.getElementById("top");
  top.hidden = false;
  await loadKeyNames();
  if (!session) return;
  const me = keyNames && keyNames.get(session.key_id);
  document.getElementById("who").textContent = `${me ? `${me} · ` : ""}${session.key_id} (${session.role})`;
  const hash = location.hash.replace(/^#\/?/, "");
  const [pathPart, query] = hash.split("?");
  const parts = pathPart.split("/").filter(Boolean);
  const name = parts[0] || (can("read") ? "alerts" : "overview");
  for (const a of top.querySelectorAll("nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const params = new URLSearchParams(query || "");
  try {
    if (!can("read")) {
      page("No read access", h("p", {}, `The key ${session.key_id} has the ${session.role} role; the dashboard needs read, respond or admin.`));
      return;
    }
    if (name === "alerts" && parts[1]) await alertPage(parts[1]);
    else if (PAGES[name]) await PAGES[name](params);
    else page("Not found", h("p", {}, "No such page."));
  } catch (e) {
    if (!session) return;
    page("Error", h("p", { class: "error", role: "alert" }, e.message));
  }
}

window.addEventListener("hashchange", route);
route();

// Live pages refresh every 30 s while the tab is visible and nobody is typing or choosing.
const LIVE = ["overview", "alerts", "decisions", "receivers", "integrity"];
setInterval(() => {
  const name = location.hash.replace(/^#\/?/, "").split(/[/?]/)[0] || "alerts";
  const busy = main.contains(document.activeElement) && document.activeElement !== main;
  if (session && !document.hidden && !busy && LIVE.includes(name) && !location.hash.includes("/alerts/")) route();
}, 30000);
