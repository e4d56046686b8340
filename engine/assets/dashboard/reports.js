// Vigil dashboard: the Reports page. The security report of a day, ISO week or month
// (GET /v1/reports/security) with its charts drawn here as SVG, and the compliance evidence
// of the same period per framework (GET /v1/reports/compliance). Loaded after pages.js and
// before app.js (its helpers: h, s, page, table, kv, api, qs, hbars, COLORS). Same rule as
// the other pages: every value from the API is inserted as text, never as HTML. The
// printable page and the JSON are fetched with the key (never put in a URL) and saved as
// files: a link could not carry the key.
"use strict";

const REPORT_PERIODS = ["day", "week", "month"];
const FRAMEWORKS = { "pci-dss": "PCI DSS v4.0", soc2: "SOC 2", iso27001: "ISO 27001:2022", gdpr: "GDPR" };

function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}

// Moves a YYYY-MM-DD date by one period (UTC).
function shiftDate(date, period, step) {
  const d = new Date(`${date}T00:00:00Z`);
  if (period === "day") d.setUTCDate(d.getUTCDate() + step);
  else if (period === "week") d.setUTCDate(d.getUTCDate() + 7 * step);
  else d.setUTCMonth(d.getUTCMonth() + step, 1);
  return d.toISOString().slice(0, 10);
}

function percent(v) {
  return v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`;
}

function seconds(v) {
  if (v === null || v === undefined) return "—";
  if (v < 120) return `${Math.round(v)} s`;
  if (v < 7200) return `${Math.round(v / 60)} min`;
  return `${(v / 3600).toFixed(1)} h`;
}

// Every bucket of the period (the report lists only those with events), as columns.
function timeline(report) {
  const from = Date.parse(report.from), to = Date.parse(report.to);
  const step = report.events.bucket_seconds * 1000;
  const counts = new Map(report.events.buckets.map((b) => [Date.parse(b.start), b.count]));
  const starts = [];
  for (let t = from; t < to; t += step) starts.push(t);
  const width = 960, height = 200, pad = { l: 40, r: 10, t: 10, b: 22 };
  const max = Math.max(1, ...starts.map((t) => counts.get(t) || 0));
  const w = (width - pad.l - pad.r) / Math.max(1, starts.length);
  const y = (n) => height - pad.b - (n / max) * (height - pad.t - pad.b);
  const label = (t) => (step < 86400e3 ? new Date(t).toISOString().slice(11, 16) : new Date(t).toISOString().slice(5, 10));
  const svg = s("svg", { class: "chart", id: "report-timeline", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Events per ${step < 86400e3 ? "hour" : "day"}` });
  svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: y(0), y2: y(0), stroke: "#d9dde3" }));
  svg.append(s("text", { x: 2, y: y(max) + 10 }, String(max)), s("text", { x: 2, y: y(0) }, "0"));
  starts.forEach((t, i) => {
    const n = counts.get(t) || 0;
    svg.append(s("rect", { x: pad.l + i * w + 0.5, y: y(n), width: Math.max(1, w - 1), height: y(0) - y(n), fill: COLORS[0], "data-count": n },
      s("title", {}, `${new Date(t).toISOString().slice(0, 16).replace("T", " ")} UTC: ${n}`)));
  });
  const every = Math.max(1, Math.ceil(starts.length / 12));
  starts.forEach((t, i) => {
    if (i % every === 0) svg.append(s("text", { x: pad.l + i * w, y: height - 6 }, label(t)));
  });
  return svg;
}

// `{name: n}` as the [{value, count}] hbars draws.
function pairs(obj, order) {
  const keys = order || Object.keys(obj || {});
  return keys.map((k) => ({ value: k, count: (obj || {})[k] || 0 }));
}

// Downloads a report from the API (with the key) as a file.
async function download(button, path, name) {
  button.disabled = true;
  try {
    const res = await fetch(path, { headers: { Authorization: `Bearer ${session.key}` }, cache: "no-store" });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    toast(`Download failed: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

function panel(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

async function reportsPage(params) {
  const period = REPORT_PERIODS.includes(params.get("period")) ? params.get("period") : "day";
  const date = /^\d{4}-\d{2}-\d{2}$/.test(params.get("date") || "") ? params.get("date") : todayUtc();
  const framework = FRAMEWORKS[params.get("framework")] ? params.get("framework") : "pci-dss";
  const go = (p) => { location.hash = `#/reports${qs({ period, date, framework, ...p })}`; };
  const dateInput = h("input", { type: "date", id: "report-date", value: date, "aria-label": "Date in the period (UTC)",
    onchange: (e) => { if (e.target.value) go({ date: e.target.value }); } });
  const query = qs({ period, date });
  const controls = h("div", { class: "row" },
    h("div", { class: "row", role: "group", "aria-label": "Period" },
      REPORT_PERIODS.map((p) => h("button", { type: "button", "aria-pressed": String(p === period), "data-period": p, onclick: () => go({ period: p }) }, p))),
    h("button", { type: "button", "aria-label": "Previous period", onclick: () => go({ date: shiftDate(date, period, -1) }) }, "←"),
    dateInput,
    h("button", { type: "button", "aria-label": "Next period", onclick: () => go({ date: shiftDate(date, period, 1) }) }, "→"),
    h("button", { type: "button", id: "download-html", onclick: (e) => download(e.target, `/v1/reports/security${query}&format=html`, `vigil-security-report-${period}-${date}.html`) }, "Printable report (HTML)"),
    h("button", { type: "button", id: "download-json", onclick: (e) => download(e.target, `/v1/reports/security${query}`, `vigil-security-report-${period}-${date}.json`) }, "JSON"));
  page("Reports", controls, h("p", { class: "muted" }, "Loading…"));
  const [r, evidence] = await Promise.all([
    api("GET", `/v1/reports/security${query}`),
    api("GET", `/v1/reports/compliance${qs({ framework, period, date })}`),
  ]);
  const e = r.events, a = r.alerts, resp = r.response, d = r.decisions, integ = r.integrity;
  const sevRows = resp.by_severity.map((x) => h("tr", { "data-severity": x.severity },
    h("td", {}, sev(x.severity)), h("td", { class: "num" }, x.alerts), h("td", {}, seconds(x.mttd_seconds)), h("td", {}, seconds(x.mtta_seconds)),
    h("td", {}, seconds(x.mttr_seconds)), h("td", {}, seconds(x.sla_seconds)), h("td", { class: "num" }, x.sla_met), h("td", { class: "num" }, x.sla_missed),
    h("td", {}, percent(x.sla_attainment))));
  const ruleRows = a.by_rule.map((x) => h("tr", {}, h("td", {}, x.rule), h("td", { class: "num" }, x.alerts),
    h("td", { class: "num" }, x.false_positives), h("td", {}, percent(x.false_positive_rate))));
  const failureRows = e.failure_rates.map((x) => h("tr", {}, h("td", {}, x.category), h("td", { class: "num" }, x.events),
    h("td", { class: "num" }, x.failures), h("td", {}, percent(x.failure_rate))));
  const privRows = r.privileged_users.map((u) => h("tr", {}, h("td", {}, u.user_id), h("td", {}, u.new_ips.join(", ") || "—"),
    h("td", {}, u.new_countries.join(", ") || "—")));
  const attainment = resp.by_severity.filter((x) => x.sla_attainment !== null).map((x) => ({ value: x.severity, count: Math.round(x.sla_attainment * 100) }));
  page("Reports", controls,
    h("p", { class: "muted", id: "report-period" }, `${r.period} of ${r.date}: ${r.from} to ${r.to} (UTC), generated ${r.generated_at}`),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "label" }, "Events"), h("div", { class: "value", id: "report-total" }, e.total)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Failure rate"), h("div", { class: "value", id: "report-failure-rate" }, percent(e.failure_rate))),
      h("div", { class: "card" }, h("div", { class: "label" }, "High or critical"), h("div", { class: "value" }, e.high_risk)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Alerts"), h("div", { class: "value", id: "report-alerts" }, a.total)),
      h("div", { class: "card" }, h("div", { class: "label" }, "SLA attainment"), h("div", { class: "value" }, percent(resp.sla_attainment))),
      h("div", { class: "card" }, h("div", { class: "label" }, "Integrity"), h("div", { class: `value ${integ.status === "ok" ? "ok" : "bad"}`, id: "report-integrity" }, integ.status))),
    panel(`Events per ${e.bucket_seconds < 86400 ? "hour" : "day"}`, timeline(r)),
    h("div", { class: "grid2" },
      panel("By category", hbars(e.by_category, "Events by category")),
      panel("By severity", hbars(e.by_severity, "Events by severity")),
      panel("By outcome", hbars(e.by_outcome, "Events by outcome")),
      panel("Top actions", hbars(e.top_actions, "Top actions")),
      panel("Top IPs", hbars(e.top_ips, "Top IPs")),
      panel("Top users", hbars(e.top_users, "Top users")),
      panel("Alerts by severity", hbars(pairs(a.by_severity, ["P1", "P2", "P3", "P4"]), "Alerts by severity")),
      panel("Alerts by status", hbars(pairs(a.by_status), "Alerts by status")),
      panel("Alerts by disposition", hbars(pairs(a.by_disposition), "Alerts by disposition")),
      panel("SLA attainment, %", hbars(attainment, "SLA attainment per severity"))),
    panel("Failure rate by category", table(["Category", { label: "Events", num: true }, { label: "Failures", num: true }, "Failure rate"], failureRows, "No events.")),
    panel("Response times per severity", table(["Severity", { label: "Alerts", num: true }, "MTTD", "MTTA", "MTTR", "SLA", { label: "Met", num: true }, { label: "Missed", num: true }, "Attainment"], sevRows)),
    panel("Alerts by rule", table(["Rule", { label: "Alerts", num: true }, { label: "False positives", num: true }, "False-positive rate"], ruleRows, "No alerts.")),
    panel("Privileged users: new IPs and countries", table(["User", "New IPs", "New countries"], privRows, "No privileged user seen, or none configured.")),
    h("div", { class: "grid2" },
      panel("Decisions", kv([["Issued", d.issued], ["Lifted", d.lifted], ["Expired", d.expired],
        ["Issued by kind", Object.entries(d.issued_by_kind).map(([k, n]) => `${k} ${n}`).join(", ") || "—"]])),
      panel("Integrity", kv([["Status", h("strong", { class: integ.status === "ok" ? "ok" : "bad" }, integ.status)],
        ["Checkpoints signed in the period", integ.checkpoints_in_period],
        ["Last checkpoint (seq)", integ.last_checkpoint ? integ.last_checkpoint.seq : null],
        ["Last verification", integ.last_verify ? `${integ.last_verify.status} at ${integ.last_verify.at}` : null],
        ["Hold since", integ.hold_since]]))),
    complianceSection(evidence, framework, go));
}

function complianceSection(c, framework, go) {
  const ev = c.evidence;
  const figure = {
    logged: `${ev.logged.total} events${ev.logged.seq_range ? ` (seq ${ev.logged.seq_range.from}–${ev.logged.seq_range.to})` : ""}`,
    integrity: ev.integrity.status,
    checkpoints: `${ev.checkpoints.length} signed`,
    log_access: `${ev.log_access.length} reads recorded`,
    rule_changes: `${ev.rule_changes.length} changes`,
    alert_response: `SLA attainment ${percent(ev.alert_response.sla_attainment)}`,
    retention: `${ev.retention.retention_days} days live` + (ev.retention.archive ? `, then archived (${ev.retention.archive.location})` : ", then deleted (no archive)"),
  };
  const rows = c.controls.map((x) => h("tr", { "data-control": x.id },
    h("td", {}, h("strong", {}, x.id)), h("td", {}, x.title),
    h("td", {}, h("ul", { class: "plain" }, x.evidence.map((k) => h("li", {}, `${k}: ${figure[k] ?? "—"}`)))),
    h("td", {}, x.endpoints.map((p) => h("code", {}, p)).flatMap((el, i) => (i ? [", ", el] : [el])))));
  const access = ev.log_access.map((x) => h("tr", {}, h("td", {}, x.at), h("td", {}, actor(x.actor)), h("td", { class: "num" }, x.seq)));
  return h("section", { class: "panel", id: "compliance" },
    h("h2", {}, `Compliance evidence: ${FRAMEWORKS[framework]}`),
    h("div", { class: "row", role: "group", "aria-label": "Framework" },
      Object.entries(FRAMEWORKS).map(([k, label]) => h("button", { type: "button", "aria-pressed": String(k === framework), "data-framework": k, onclick: () => go({ framework: k }) }, label)),
      h("button", { type: "button", id: "download-evidence", onclick: (e) => download(e.target, `/v1/reports/compliance${qs({ framework, period: c.period, date: c.date })}`, `vigil-evidence-${framework}-${c.period}-${c.date}.json`) }, "Evidence (JSON)")),
    table(["Control", "What it asks", "Evidence in this period", "Proved by"], rows),
    h("h3", {}, "Who read the log"),
    table(["At", "Key", { label: "Chain seq", num: true }], access, "No reads of the log recorded in the period."));
}
