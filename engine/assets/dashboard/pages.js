// Vigil dashboard: the pages (overview, alerts, decisions, events, rules, integrity,
// receivers). Loaded before app.js, which holds the DOM and API helpers they call, the login
// page and the router that picks a page from the URL hash. Same rule as app.js: every value
// from the API is inserted as text, never as HTML.
"use strict";

// ---------------------------------------------------------------- overview

const COLORS = ["#1d4ed8", "#b91c1c", "#15803d", "#a16207", "#7c3aed", "#0e7490", "#be185d", "#4b5563"];

function stackedBars(buckets, series, width, height) {
  // buckets: [start ms]; series: [{name, color, counts: Map(start -> n)}]
  const pad = { l: 36, r: 28, t: 8, b: 22 };
  const totals = buckets.map((b) => series.reduce((sum, x) => sum + (x.counts.get(b) || 0), 0));
  const max = Math.max(1, ...totals);
  const w = (width - pad.l - pad.r) / Math.max(1, buckets.length);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Events per bucket by category" });
  const y = (n) => height - pad.b - (n / max) * (height - pad.t - pad.b);
  svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: y(0), y2: y(0), stroke: "#d9dde3" }));
  svg.append(s("text", { x: 2, y: y(max) + 10 }, String(max)), s("text", { x: 2, y: y(0) }, "0"));
  buckets.forEach((b, i) => {
    let acc = 0;
    for (const x of series) {
      const n = x.counts.get(b) || 0;
      if (!n) continue;
      const top = y(acc + n);
      svg.append(s("rect", { x: pad.l + i * w + 0.5, y: top, width: Math.max(1, w - 1), height: y(acc) - top, fill: x.color },
        s("title", {}, `${new Date(b).toISOString().slice(11, 16)} ${x.name}: ${n}`)));
      acc += n;
    }
  });
  const ticks = Math.min(6, buckets.length);
  for (let t = 0; t < ticks; t++) {
    const i = Math.floor((t * (buckets.length - 1)) / Math.max(1, ticks - 1));
    const d = new Date(buckets[i]);
    svg.append(s("text", { x: pad.l + i * w, y: height - 6 }, d.toISOString().slice(11, 16)));
  }
  return svg;
}

function hbars(items, label) {
  if (!items.length) return h("p", { class: "muted" }, "No data.");
  const max = Math.max(1, ...items.map((x) => x.count));
  return h("div", { class: "bars", role: "list", "aria-label": label },
    items.map((x) => h("div", { role: "listitem" },
      h("span", { class: "mono", title: x.value }, x.value),
      h("span", { class: "bar", style: `width:${(100 * x.count) / max}%`, "aria-hidden": "true" }),
      h("span", { class: "num" }, x.count))));
}

async function overviewPage() {
  const range = sessionStorage.getItem("vigil.range") || "1h";
  const spans = { "1h": [3600e3, "minute", 60e3], "24h": [86400e3, "hour", 3600e3], "7d": [7 * 86400e3, "day", 86400e3] };
  const [span, bucket, width] = spans[range] || spans["1h"];
  const now = Date.now();
  const since = new Date(Math.floor((now - span) / width) * width + width).toISOString();
  // Whose events: the applications' by default; Vigil's own (alerts, responses,
  // configuration, audit, system) on request (`GET /v1/events/stats?origin=`).
  const origins = { app: "Application events", vigil: "Vigil's own events", all: "All events" };
  const origin = origins[sessionStorage.getItem("vigil.origin")] ? sessionStorage.getItem("vigil.origin") : "app";
  const picker = h("div", { class: "row" },
    h("div", { class: "row", role: "group", "aria-label": "Time range" },
      Object.keys(spans).map((r) => h("button", {
        type: "button", "aria-pressed": String(r === range),
        onclick: () => { sessionStorage.setItem("vigil.range", r); route(); },
      }, `Last ${r}`))),
    h("div", { class: "row", role: "group", "aria-label": "Whose events", id: "origin" },
      Object.entries(origins).map(([o, label]) => h("button", {
        type: "button", "aria-pressed": String(o === origin), "data-origin": o,
        onclick: () => { sessionStorage.setItem("vigil.origin", o); route(); },
      }, label))));
  page("Overview", picker, h("p", { class: "muted" }, "Loading…"));
  const stats = await api("GET", `/v1/events/stats${qs({ since, bucket, top: 10, origin })}`);
  const cats = stats.by_category.slice(0, 6);
  const per = await Promise.all(cats.map((c) => api("GET", `/v1/events/stats${qs({ since, bucket, category: c.value, top: 1, origin })}`)));
  const starts = [];
  for (let t = Date.parse(since); t <= now; t += width) starts.push(t);
  const series = cats.map((c, i) => ({
    name: c.value, color: COLORS[i % COLORS.length],
    counts: new Map(per[i].buckets.map((b) => [Math.floor(Date.parse(b.start) / width) * width, b.count])),
  }));
  let open = { alerts: [] };
  if (can("read")) open = await api("GET", "/v1/alerts?status=open&limit=1000");
  const bySev = ["P1", "P2", "P3", "P4"].map((p) => ({ value: p, count: open.alerts.filter((a) => a.severity === p).length }));
  page("Overview", picker,
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "label" }, `${origins[origin]} (last ${range})`), h("div", { class: "value", id: "events-total" }, stats.total)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Failure rate"), h("div", { class: "value" }, `${(stats.failure_rate * 100).toFixed(1)}%`)),
      h("div", { class: "card" }, h("div", { class: "label" }, "High-risk events"), h("div", { class: "value" }, stats.high_risk)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Open alerts"), h("div", { class: "value", id: "open-alerts" }, open.alerts.length))),
    h("section", { class: "panel", "aria-labelledby": "per-bucket" },
      h("h2", { id: "per-bucket" }, `Events per ${bucket} by category`),
      stackedBars(starts, series, 960, 220),
      h("div", { class: "legend" }, series.map((x) => h("span", { style: `--c:${x.color}` }, x.name)))),
    h("div", { class: "grid2" },
      h("section", { class: "panel" }, h("h2", {}, "Open alerts by severity"), hbars(bySev, "Open alerts by severity")),
      h("section", { class: "panel" }, h("h2", {}, "Events by outcome"), hbars(stats.by_outcome, "Events by outcome")),
      h("section", { class: "panel" }, h("h2", {}, "Top IPs"), hbars(stats.top_ips, "Top IPs")),
      h("section", { class: "panel" }, h("h2", {}, "Top users"), hbars(stats.top_users, "Top users"))));
}

// ---------------------------------------------------------------- alerts

// Whether resolving with a disposition lifts the alert's active decisions unless changed.
const LIFT_BY_DEFAULT = { true_positive: false, false_positive: true, benign: true };

// `comment` is a text input (the alert page) or null (the list): ack and resolve send it.
function alertActions(a, comment) {
  if (!can("respond")) return null;
  const buttons = [];
  const note = () => (comment && comment.value.trim() ? { comment: comment.value.trim() } : {});
  if (comment) buttons.push(h("label", { class: "lift-offer" }, "Comment", comment));
  if (a.status === "open") {
    buttons.push(h("button", { type: "button", "data-action": "ack", onclick: (e) => act(e.target, `Alert ${a.id} acknowledged`, () => api("POST", `/v1/alerts/${a.id}/ack`, note())) }, "Acknowledge"));
  }
  if (a.status !== "resolved") {
    const select = h("select", { "aria-label": `Disposition for alert ${a.id}` },
      h("option", { value: "true_positive" }, "true positive"),
      h("option", { value: "false_positive" }, "false positive"),
      h("option", { value: "benign" }, "benign"));
    // Resolving offers to lift the decisions the alert caused: unchecked for a true positive
    // (the block stands), checked for a false positive or benign activity (nobody to block).
    // The box follows the disposition chosen; what is sent is exactly what it shows.
    const active = (a.decisions || []).filter((d) => d.status === "active").length;
    const lift = h("input", { type: "checkbox", "data-lift": a.id });
    const offer = active ? h("label", { class: "lift-offer" }, lift, ` lift ${active} decision${active > 1 ? "s" : ""}`) : null;
    lift.checked = LIFT_BY_DEFAULT[select.value];
    select.addEventListener("change", () => { lift.checked = LIFT_BY_DEFAULT[select.value]; });
    buttons.push(h("span", { class: "inline-form" }, select, offer,
      h("button", { type: "button", "data-action": "resolve", onclick: (e) => act(e.target, `Alert ${a.id} resolved`, () => api("POST", `/v1/alerts/${a.id}/resolve`, {
        disposition: select.value, lift_decisions: !!(offer && lift.checked), ...note(),
      })) }, "Resolve")));
    const hours = h("select", { "aria-label": `Silence duration for alert ${a.id}` },
      [1, 4, 24, 168].map((n) => h("option", { value: n }, n < 168 ? `${n} h` : "7 d")));
    buttons.push(h("span", { class: "inline-form" }, hours,
      h("button", { type: "button", "data-action": "silence", onclick: (e) => act(e.target, `Alerts like ${a.id} silenced`, () => api("POST", "/v1/silences", {
        matchers: [{ name: "dedup_key", op: "=", value: a.dedup_key }],
        ends_at: new Date(Date.now() + Number(hours.value) * 3600e3).toISOString(),
        created_by: `dashboard (${session.key_id})`,
        comment: `silenced from the dashboard for ${hours.value} h (alert ${a.id})`,
      })) }, "Silence")));
  } else {
    buttons.push(h("button", { type: "button", "data-action": "reopen", onclick: (e) => act(e.target, `Alert ${a.id} reopened`, () => api("POST", `/v1/alerts/${a.id}/reopen`, note())) }, "Reopen"));
  }
  return h("div", { class: "actions" }, buttons);
}

// Who owns an alert: whoever acknowledged it (or resolved it without an ack).
function owner(a) {
  const who = a.acked_by || a.resolved_by;
  return who ? actor(who) : h("span", { class: "muted" }, "unassigned");
}

async function alertsPage(params) {
  const status = params.get("status") || "open";
  const severity = params.get("severity") || "";
  const cursor = params.get("cursor") || "";
  const go = (p) => { location.hash = `#/alerts${qs({ status, severity, ...p })}`; };
  const tabs = h("div", { class: "row", role: "group", "aria-label": "Status" },
    ["open", "acknowledged", "resolved"].map((st) => h("button", { type: "button", "aria-pressed": String(st === status), onclick: () => go({ status: st, cursor: "" }) }, st)),
    h("label", {}, "Severity", h("select", { id: "severity", onchange: (e) => go({ severity: e.target.value, cursor: "" }) },
      ["", "P1", "P2", "P3", "P4"].map((p) => h("option", { value: p, selected: p === severity }, p || "any")))));
  const data = await api("GET", `/v1/alerts${qs({ status, severity, cursor, limit: 50 })}`);
  const headers = ["Severity", "Title", "Rule", "Status", "Age", { label: "Count", num: true }, "Owner"];
  if (can("respond")) headers.push("Actions");
  const rows = data.alerts.map((a) => h("tr", { "data-alert": a.id },
    h("td", {}, sev(a.severity)),
    h("td", {}, h("a", { href: `#/alerts/${a.id}` }, a.title)),
    h("td", {}, a.rule),
    h("td", {}, h("span", { class: `status ${a.status}` }, a.status)),
    h("td", { title: a.first_seen }, age(a.first_seen)),
    h("td", { class: "num" }, a.count),
    h("td", { "data-col": "owner" }, owner(a)),
    can("respond") ? h("td", {}, alertActions(a)) : null));
  page("Alerts", tabs, h("div", { class: "panel" }, table(headers, rows, `No ${status} alerts.`)),
    data.next_cursor ? h("button", { type: "button", onclick: () => go({ cursor: data.next_cursor }) }, "Older alerts") : null);
}

async function alertPage(id) {
  const a = await api("GET", `/v1/alerts/${encodeURIComponent(id)}`);
  const chain = a.chain || {};
  const comment = h("input", { type: "text", id: "alert-comment", maxlength: 4096, placeholder: "optional, kept in the history" });
  page(`Alert ${a.id}`,
    h("p", {}, sev(a.severity), " ", h("strong", {}, a.title), " ", h("span", { class: `status ${a.status}`, id: "alert-status" }, a.status)),
    alertActions(a, comment),
    h("section", { class: "panel" }, kv([
      ["Rule", `${a.rule} ${a.rule_version}`], ["Rule SHA-256", short(a.rule_sha256)],
      ["Count", a.count], ["First seen", a.first_seen], ["Last seen", `${a.last_seen} (${age(a.last_seen)} ago)`],
      ["Dedup key", h("code", {}, a.dedup_key)], ["Owner", h("span", { id: "alert-owner" }, owner(a))],
      ["Acknowledged", a.acked_by ? [actor(a.acked_by), ` at ${a.acked_at}`] : null],
      ["Resolved", a.resolved_by ? [actor(a.resolved_by), ` at ${a.resolved_at} (${a.disposition})`] : null],
      ["Silenced by", a.silenced_by], ["Receivers", (a.receivers || []).join(", ")],
      ["Escalation policy", a.escalation_policy],
      ["Suggested actions", (a.actions || []).length ? h("ul", { id: "suggested-actions" }, a.actions.map((x) => h("li", {}, x))) : null],
      ["Chain", chain.state === "chained" ? `seq ${chain.seq}, ${chain.consistent ? "consistent" : "INCONSISTENT with the chain"}` : chain.state],
    ])),
    h("h2", {}, "Fields"), json(a.fields || {}),
    h("h2", {}, "History"),
    h("div", { class: "panel" }, table(["Time", "Actor", "Action", "Status", "Comment / reason", "Chain seq"], (a.history || []).map(historyRow), "No history.")),
    h("h2", {}, `Triggering events (${(a.events || []).length})`),
    h("div", { class: "panel" }, table(["Seq", "Time", "Action", "User", "IP", "Resource", "Event"], (a.events || []).map((e) =>
      h("tr", {}, h("td", {}, e.seq), h("td", {}, e.timestamp), h("td", {}, e.action), h("td", {}, clip(e.user_id)), h("td", {}, e.ip || "—"),
        h("td", { "data-col": "resource" }, clip(e.resource)),
        h("td", {}, h("details", {}, h("summary", {}, "JSON"), json(e))))), "No events kept.")),
    h("h2", {}, "Decisions"),
    h("div", { class: "panel" }, decisionTable(a.decisions || [], "No decisions go with this alert.")),
    h("h2", {}, "Notifications"),
    h("div", { class: "panel" }, table(["Receiver", "Kind", "Status", "Attempts", "Updated", "Last error"], (a.notifications || []).map((n) =>
      h("tr", {}, h("td", {}, n.receiver), h("td", {}, n.kind), h("td", {}, n.status), h("td", { class: "num" }, n.attempts), h("td", {}, n.updated_at), h("td", {}, n.last_error || "—"))), "No notifications.")));
}

// A long value on one line, cut with an ellipsis; the whole value in its tooltip.
function clip(value) {
  return value ? h("span", { class: "clip", title: value }, value) : "—";
}

// One change of an alert's history as a readable row: the status it moved to, the comment
// (or reason) a person gave, the rest of the details as short `name: value` text.
const STATUS_OF = { acknowledged: "→ acknowledged", resolved: "→ resolved", reopened: "→ open" };

function historyRow(c) {
  const d = c.details && typeof c.details === "object" ? c.details : {};
  let status = STATUS_OF[c.action] || "";
  if (c.action === "resolved" && d.disposition) status += ` (${String(d.disposition).replace("_", " ")})`;
  const said = d.comment ?? d.reason ?? null;
  const rest = Object.entries(d).filter(([k, v]) => !["comment", "reason", "disposition"].includes(k) && v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return h("tr", { "data-change": c.id },
    h("td", { title: c.at }, c.at), h("td", {}, actor(c.actor)), h("td", {}, c.action.replace(/_/g, " ")),
    h("td", {}, status || "—"),
    h("td", { class: "comment long" }, said ? h("div", { class: "said" }, said) : null,
      rest.length ? h("div", { class: "muted clip", title: rest.join("\n") }, rest.join(" · ")) : (said ? null : "—")),
    h("td", {}, c.chain_seq ?? "pending"));
}

// ---------------------------------------------------------------- decisions

function decisionTable(list, empty) {
  const headers = ["Id", "Scope", "Value", "Kind", "Status", "Expires", "Issued by", "Alert", "Reason"];
  const respond = can("respond");
  if (respond) headers.push("");
  const rows = list.map((d) => h("tr", { "data-decision": d.id },
    h("td", {}, d.id), h("td", {}, d.scope), h("td", { class: "mono" }, clip(d.value)), h("td", {}, d.kind),
    h("td", {}, h("span", { class: `status ${d.status}` }, d.status), d.end_reason ? ` (${d.end_reason})` : ""),
    d.status === "active"
      ? h("td", { title: d.expires_at, "data-col": "expires" }, left(d.expires_at), h("div", { class: "muted" }, d.expires_at))
      : h("td", { "data-col": "expires" }, d.ended_at || d.expires_at),
    h("td", {}, actor(d.actor)), h("td", {}, d.alert_id ? h("a", { href: `#/alerts/${d.alert_id}` }, d.alert_id) : "—"), h("td", {}, d.reason),
    respond ? h("td", {}, d.status === "active" ? liftButton(d) : null) : null));
  return table(headers, rows, empty);
}

function liftButton(d) {
  const reason = h("input", { type: "text", "aria-label": `Reason to lift decision ${d.id}`, placeholder: "reason", required: true });
  return h("span", { class: "inline-form" }, reason, h("button", { type: "button", "data-action": "lift", onclick: (e) => {
    if (!reason.value.trim()) { toast("A reason is required to lift a decision", true); reason.focus(); return; }
    act(e.target, `Decision ${d.id} lifted`, () => api("DELETE", `/v1/decisions/${d.id}`, { reason: reason.value }));
  } }, "Lift"));
}

async function decisionsPage(params) {
  const status = params.get("status") || "active";
  const go = (p) => { location.hash = `#/decisions${qs({ status, ...p })}`; };
  const tabs = h("div", { class: "row", role: "group", "aria-label": "Status" },
    ["active", "expired", "lifted", "simulated", "all"].map((st) => h("button", { type: "button", "aria-pressed": String(st === status), onclick: () => go({ status: st }) }, st)));
  const data = await api("GET", `/v1/decisions${qs({ status, limit: 200 })}`);
  let form = null;
  if (can("respond")) {
    const field = (label, el) => h("label", {}, label, el);
    const scope = h("select", { name: "scope" }, ["ip", "user", "api_key", "session", "organization"].map((v) => h("option", { value: v }, v)));
    const kind = h("select", { name: "kind" }, ["block", "throttle", "require_mfa", "lock"].map((v) => h("option", { value: v }, v)));
    const value = h("input", { type: "text", name: "value", required: true });
    const minutes = h("input", { type: "number", name: "minutes", min: 1, value: 60, required: true });
    const reason = h("input", { type: "text", name: "reason", required: true });
    form = h("form", { class: "panel row", id: "decide", onsubmit: (e) => {
      e.preventDefault();
      act(e.submitter || e.target, "Decision issued", () => api("POST", "/v1/decisions", {
        scope: scope.value, value: value.value, kind: kind.value, duration_secs: Number(minutes.value) * 60, reason: reason.value,
      }));
    } }, field("Scope", scope), field("Value", value), field("Kind", kind), field("Minutes", minutes), field("Reason", reason),
      h("button", { type: "submit" }, "Issue"));
  }
  page("Decisions", tabs, form, h("div", { class: "panel" }, decisionTable(data.decisions, `No ${status} decisions.`)));
}

// ---------------------------------------------------------------- events

const EVENT_FILTERS = ["category", "action", "severity", "outcome", "organization_id", "user_id", "ip", "request_id", "since", "until", "limit"];

async function eventsPage(params) {
  const values = Object.fromEntries(EVENT_FILTERS.map((k) => [k, params.get(k) || ""]));
  const cursor = params.get("cursor") || "";
  const field = (name, label) => {
    if (name === "severity" || name === "outcome") {
      const opts = name === "severity" ? ["", "low", "medium", "high", "critical"] : ["", "success", "failure", "unknown"];
      return h("label", {}, label, h("select", { name }, opts.map((o) => h("option", { value: o, selected: o === values[name] }, o || "any"))));
    }
    return h("label", {}, label, h("input", { name, value: values[name], placeholder: name === "since" || name === "until" ? "2026-12-01T10:00:00Z" : "" }));
  };
  const form = h("form", {
    class: "filters panel", role: "search", "aria-label": "Event filters",
    onsubmit: (ev) => {
      ev.preventDefault();
      const data = new FormData(ev.target);
      location.hash = `#/events${qs(Object.fromEntries(EVENT_FILTERS.map((k) => [k, data.get(k)])))}`;
    },
  }, EVENT_FILTERS.map((k) => field(k, k.replace("_", " "))), h("button", { type: "submit", class: "primary" }, "Filter"));
  const data = await api("GET", `/v1/events${qs({ ...values, cursor })}`);
  const detail = h("section", { id: "event-detail", "aria-live": "polite" });
  // Cluster mode: an event is (partition, seq); every event then names its partition.
  const partitioned = data.events.some((e) => e.partition !== undefined);
  const rows = data.events.map((e) => h("tr", { "data-seq": e.seq, "data-partition": e.partition ?? "" },
    partitioned ? h("td", { class: "num" }, e.partition) : null,
    h("td", { class: "num" }, e.seq), h("td", {}, e.timestamp || "—"), h("td", {}, e.category || "—"), h("td", {}, e.action || (e.damaged ? "DAMAGED" : "—")),
    h("td", {}, e.severity || "—"), h("td", {}, e.outcome || "—"), h("td", {}, e.user_id || "—"), h("td", {}, e.ip || "—"),
    h("td", {}, h("button", { type: "button", onclick: () => showEvent(detail, e) }, "View"))));
  const seqs = data.events.map((e) => e.seq);
  const verifyPage = seqs.length && !partitioned ? h("button", { type: "button", onclick: (ev) => verifyRange(ev.target, detail, Math.min(...seqs), Math.max(...seqs)) }, `Verify seqs ${Math.min(...seqs)}–${Math.max(...seqs)}`) : null;
  page("Events", form,
    h("div", { class: "row" }, h("span", { class: "muted", id: "event-count" }, `${data.events.length} event(s)`), verifyPage,
      cursor ? h("button", { type: "button", onclick: () => { location.hash = `#/events${qs(values)}`; } }, "Newest") : null,
      data.next_cursor ? h("button", { type: "button", onclick: () => { location.hash = `#/events${qs({ ...values, cursor: data.next_cursor })}`; } }, "Older") : null),
    h("div", { class: "panel" }, table([...(partitioned ? ["Partition"] : []), "Seq", "Time", "Category", "Action", "Severity", "Outcome", "User", "IP", ""], rows, "No events match.")),
    detail);
}

function showEvent(target, e) {
  target.replaceChildren(h("div", { class: "panel" },
    h("h2", { tabindex: "-1" }, e.partition === undefined ? `Event ${e.seq}` : `Event ${e.seq} of partition ${e.partition}`),
    kv([["Hash", h("code", {}, e.hash)], ["Previous hash", h("code", {}, e.prev_hash)], ["Event id", e.event_id]]),
    h("div", { class: "row" }, h("button", { type: "button", onclick: (ev) => verifyRange(ev.target, target, e.seq, e.seq, true, e.partition) }, `Verify seq ${e.seq}`)),
    h("div", { id: "verify-result" }),
    json(e)));
  target.querySelector("h2").focus();
}

async function verifyRange(button, target, from, to, keep, partition) {
  button.disabled = true;
  try {
    const r = await api("GET", `/v1/integrity/verify${qs({ from, to, partition })}`);
    // Cluster mode without `partition`: every partition's report, failures naming theirs.
    const each = r.partitions ? h("div", { id: "verify-partitions" }, table(["Partition", "Range", "Result", { label: "Rows", num: true }, { label: "Failures", num: true }],
      r.partitions.map((p) => h("tr", { "data-partition": p.partition }, h("td", { class: "num" }, p.partition), h("td", {}, `${p.from}–${p.to}`),
        h("td", {}, h("strong", { class: p.status === "ok" ? "ok" : "bad" }, p.status)), h("td", { class: "num" }, p.verified), h("td", { class: "num" }, p.failure_count))))) : null;
    const withPartition = r.failures.some((f) => f.partition !== undefined);
    const result = h("div", { class: "panel", id: "verify-result", role: "status" },
      h("p", {}, "Verify ", r.partitions ? `${r.partitions.length} partitions: ` : `${r.partition !== undefined ? `partition ${r.partition}, ` : ""}${r.from}–${r.to}: `, h("strong", { class: r.status === "ok" ? "ok" : "bad" }, r.status), ` (${r.verified} row(s), ${r.failure_count} failure(s))`),
      each,
      r.failures.length ? table([...(withPartition ? ["Partition"] : []), "Seq", "Kind", "Expected", "Actual"], r.failures.map((f) => h("tr", {}, withPartition ? h("td", {}, f.partition) : null, h("td", {}, f.seq), h("td", {}, f.kind), h("td", { class: "mono" }, f.expected), h("td", { class: "mono" }, f.actual)))) : null);
    const old = target.querySelector("#verify-result");
    if (keep && old) old.replaceWith(result); else target.replaceChildren(result);
  } catch (e) {
    toast(`Verify failed: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- rules

async function rulesPage() {
  const [data, open] = await Promise.all([api("GET", "/v1/rules"), api("GET", "/v1/alerts?status=open&limit=1000")]);
  const openBy = new Map();
  for (const a of open.alerts) openBy.set(a.rule, (openBy.get(a.rule) || 0) + 1);
  const admin = can("admin");
  const headers = ["Rule", "Severity", "MITRE ATT&CK", "Status", { label: "Events", num: true }, { label: "Matches", num: true },
    { label: "Alerts", num: true }, { label: "Open alerts", num: true }, { label: "ns/event", num: true }, { label: "Faults", num: true }, "SHA-256"];
  if (admin) headers.push("");
  const rows = data.rules.map((r) => {
    const st = r.stats || {};
    const mitre = Array.isArray(r.mitre) ? r.mitre : (r.mitre ? [r.mitre] : []);
    return h("tr", { "data-rule": r.name },
      h("td", { class: "long" }, h("strong", {}, r.name), h("span", { class: "muted" }, ` ${r.version || ""} ${r.kind ? `· ${r.kind}` : ""}`),
        r.description ? h("div", { class: "muted", "data-col": "description" }, r.description) : null),
      h("td", { "data-col": "severity" }, r.severity ? sev(r.severity) : "—"),
      h("td", { "data-col": "mitre" }, mitre.length ? h("span", { class: "tags" }, mitre.map((m) => h("span", { class: "tag", title: "MITRE ATT&CK technique" }, m))) : "—"),
      h("td", { class: r.status === "active" ? "ok" : "bad" }, r.status, r.quarantine ? h("div", { class: "muted" }, r.quarantine.reason) : null),
      h("td", { class: "num", "data-col": "events" }, st.events ?? 0), h("td", { class: "num" }, st.matches ?? 0),
      h("td", { class: "num", "data-col": "alerts", title: "raised since the server started" }, st.alerts ?? 0),
      h("td", { class: "num", "data-col": "open" }, openBy.get(r.name) ? h("a", { href: `#/alerts?status=open` }, openBy.get(r.name)) : 0),
      h("td", { class: "num" }, st.ns_per_event ?? 0),
      h("td", { class: "num" }, st.faults ?? 0), h("td", {}, short(r.sha256)),
      admin ? h("td", {}, h("button", {
        type: "button", class: "danger", "data-action": "delete",
        onclick: (e) => { if (confirm(`Delete rule ${r.name}? Its detection stops now.`)) act(e.target, `Rule ${r.name} deleted`, () => api("DELETE", `/v1/rules/${encodeURIComponent(r.name)}`)); },
      }, "Delete")) : null);
  });
  let deploy = null;
  if (admin) {
    const name = h("input", { name: "name", required: true, pattern: "[A-Za-z0-9_.-]{1,64}" });
    const file = h("input", { name: "module", type: "file", accept: ".wasm,application/wasm", required: true });
    deploy = h("form", {
      class: "panel inline-form", "aria-label": "Deploy a rule",
      onsubmit: (ev) => {
        ev.preventDefault();
        const f = file.files[0];
        if (!f) return;
        act(ev.submitter || ev.target.querySelector("button"), `Rule ${name.value} deployed`, async () => api("PUT", `/v1/rules/${encodeURIComponent(name.value)}`, await f.arrayBuffer(), "application/wasm"));
      },
    }, h("label", {}, "Rule name", name), h("label", {}, "Module (.wasm)", file), h("button", { type: "submit", class: "primary" }, "Deploy"));
  }
  page("Rules", deploy, h("div", { class: "panel" }, table(headers, rows, "No rules deployed.")));
}

// ---------------------------------------------------------------- integrity

async function integrityPage() {
  const st = await api("GET", "/v1/integrity/status");
  const cp = st.last_checkpoint;
  const lv = st.last_verify;
  const result = h("div", { id: "verify-area" });
  page("Integrity",
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "label" }, "Head seq"), h("div", { class: "value", id: "head-seq" }, st.head.seq)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Last checkpoint age"), h("div", { class: "value" }, st.checkpoint_age_seconds == null ? "none" : `${Math.round(st.checkpoint_age_seconds)} s`)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Unsigned events"), h("div", { class: "value" }, st.unsigned_events)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Writes"), h("div", { class: `value ${st.hold ? "bad" : "ok"}` }, st.hold ? "ON HOLD" : "accepted"))),
    h("section", { class: "panel" }, h("h2", {}, "Head"), kv([["Seq", st.head.seq], ["Hash", h("code", {}, st.head.hash)]])),
    h("section", { class: "panel" }, h("h2", {}, "Last signed checkpoint"), cp ? kv([
      ["Id", cp.id], ["Seq", cp.seq], ["Hash", h("code", {}, cp.hash)], ["Made", new Date(cp.created_at).toISOString()],
      ["Key id", cp.key_id], ["Signature", short(cp.signature)],
    ]) : h("p", { class: "muted" }, "No checkpoint yet.")),
    h("section", { class: "panel" }, h("h2", {}, "Last verify"), lv ? kv([
      ["At", lv.at], ["Result", h("strong", { class: lv.status === "ok" ? "ok" : "bad" }, lv.status)], ["Range", `${lv.from}–${lv.to}`],
      ["Rows", lv.verified], ["Failures", lv.failure_count], ["By", lv.by],
    ]) : h("p", { class: "muted" }, "No verification since the server started."),
    h("div", { class: "row" }, h("button", { type: "button", class: "primary", onclick: async (e) => { await verifyRange(e.target, result); } }, "Verify the whole log")),
    result),
    st.partitions ? h("section", { class: "panel", id: "partitions" }, h("h2", {}, "Partitions"),
      table(["Partition", { label: "Head seq", num: true }, "Last checkpoint", { label: "Unsigned events", num: true }, "Writer", { label: "Epoch", num: true }, ""],
        st.partitions.map((p) => h("tr", { "data-partition": p.partition },
          h("td", { class: "num" }, p.partition), h("td", { class: "num" }, p.head.seq),
          h("td", {}, p.last_checkpoint ? `seq ${p.last_checkpoint.seq}, ${Math.round(p.checkpoint_age_seconds)} s ago` : "none"),
          h("td", { class: "num" }, p.unsigned_events), h("td", {}, p.owner || "—"), h("td", { class: "num" }, p.epoch ?? "—"),
          h("td", {}, h("button", { type: "button", onclick: async (e) => { await verifyRange(e.target, result, undefined, undefined, false, p.partition); } }, "Verify"))))))
      : null,
    st.hold ? h("section", { class: "panel" }, h("h2", { class: "bad" }, "Integrity hold"), json(st.hold)) : null);
}

// ---------------------------------------------------------------- receivers

async function receiversPage() {
  const [data, dead] = await Promise.all([api("GET", "/v1/receivers"), api("GET", "/v1/notifications?status=dead&limit=1000")]);
  const deadBy = new Map();
  for (const n of dead.notifications) deadBy.set(n.receiver, (deadBy.get(n.receiver) || 0) + 1);
  const admin = can("admin");
  const headers = ["Receiver", "Kind", "Circuit", { label: "Recent failures", num: true }, { label: "Delivered", num: true }, { label: "Failed", num: true }, { label: "Dead letters", num: true }, "Last error"];
  if (admin) headers.push("Circuit actions");
  const rows = data.receivers.map((r) => {
    const c = r.circuit || {};
    const cmd = (action, label) => h("button", { type: "button", "data-action": action, onclick: (e) => act(e.target, `${r.name}: ${label}`, () => api("POST", `/v1/receivers/${encodeURIComponent(r.name)}/circuit`, { action })) }, label);
    return h("tr", { "data-receiver": r.name },
      h("td", {}, h("strong", {}, r.name)), h("td", {}, r.kind),
      h("td", {}, h("span", { class: `state ${c.state || ""}` }, c.state || "—"), c.forced ? ` (forced ${c.forced})` : ""),
      h("td", { class: "num" }, c.recent_failures ?? 0), h("td", { class: "num" }, c.delivered ?? 0), h("td", { class: "num" }, c.failed ?? 0),
      h("td", { class: "num" }, deadBy.get(r.name) || 0), h("td", {}, c.last_error ? `${c.last_error} (${c.last_error_at})` : "—"),
      admin ? h("td", {}, h("div", { class: "actions" }, cmd("reset", "Reset"), cmd("force_open", "Force open"), cmd("force_close", "Force close"))) : null);
  });
  const deadRows = dead.notifications.map((n) => h("tr", {},
    h("td", {}, n.id), h("td", {}, n.receiver), h("td", {}, n.alert_id ? h("a", { href: `#/alerts/${n.alert_id}` }, n.alert_id) : "—"), h("td", {}, n.kind),
    h("td", { class: "num" }, n.attempts), h("td", {}, n.last_error || "—"),
    can("respond") ? h("td", {}, h("button", { type: "button", "data-action": "retry", onclick: (e) => act(e.target, `Notification ${n.id} queued again`, () => api("POST", `/v1/notifications/${n.id}/retry`)) }, "Retry")) : null));
  const deadHeaders = ["Id", "Receiver", "Alert", "Kind", { label: "Attempts", num: true }, "Last error"];
  if (can("respond")) deadHeaders.push("");
  page("Receivers", h("div", { class: "panel" }, table(headers, rows, "No receivers configured.")),
    h("h2", {}, "Dead letters"), h("div", { class: "panel" }, table(deadHeaders, deadRows, "No dead letters.")));
}
