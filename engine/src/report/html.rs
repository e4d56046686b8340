//! The security report as one printable HTML page (`GET /v1/reports/security?format=html`,
//! `vigil report --output html`): inline CSS and SVG charts, no script and no external
//! asset. Every string from the report (user ids, IPs, rule names, categories: all chosen
//! by whoever sends events or deploys rules) goes through [`escape_html`].

use std::fmt::Write as _;

use serde_json::Value;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#1d232a}h1{font-size:1.5em}\
h2{font-size:1.15em;border-bottom:1px solid #ccd;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccd;padding:.2em .6em;text-align:left;font-size:.9em}th{background:#eef}\
.grid{display:flex;flex-wrap:wrap;gap:1.5em}.ok{color:#176}.bad{color:#a11;font-weight:bold}\
@media print{body{margin:0}h2{break-after:avoid}}";

/// The whole page.
pub fn render(report: &Value) -> String {
    let text = |v: &Value| escape_html(&display(v));
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Vigil security report {} {}</title>\
         <style>{STYLE}</style></head><body><h1>Vigil security report: {} of {}</h1><p>From {} to {} (UTC), \
         generated {}.</p>",
        text(&report["period"]),
        text(&report["date"]),
        text(&report["period"]),
        text(&report["date"]),
        text(&report["from"]),
        text(&report["to"]),
        text(&report["generated_at"]),
    );
    events_section(&mut out, report);
    privileged_section(&mut out, &report["privileged_users"]);
    alerts_section(&mut out, &report["alerts"], &report["response"]);
    decisions_and_integrity(&mut out, &report["decisions"], &report["integrity"]);
    out.push_str("</body></html>\n");
    out
}

fn display(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `[{value, count}]` (event counts) as (label, number) pairs.
fn counts(v: &Value) -> Vec<(String, f64)> {
    v.as_array()
        .map(|a| a.iter().map(|c| (display(&c["value"]), c["count"].as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default()
}

/// `{name: n}` as pairs.
fn members(v: &Value) -> Vec<(String, f64)> {
    v.as_object().map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_f64().unwrap_or(0.0))).collect()).unwrap_or_default()
}

/// A horizontal bar chart (at most 15 bars), labels escaped.
pub fn bar_chart(title: &str, bars: &[(String, f64)]) -> String {
    let bars = &bars[..bars.len().min(15)];
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max).max(1.0);
    let height = 28 + bars.len() * 22;
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"460\" height=\"{height}\" role=\"img\" \
         aria-label=\"{t}\"><text x=\"0\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{t}</text>",
        t = escape_html(title)
    );
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = 26 + i * 22;
        let width = (n / max * 240.0).round();
        let short: String = label.chars().take(24).collect();
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"170\" y=\"{y}\" width=\"{width}\" height=\"16\" \
             fill=\"#3b6ea8\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 12,
            escape_html(&short),
            176.0 + width,
            y + 12,
        );
    }
    if bars.is_empty() {
        svg.push_str("<text x=\"0\" y=\"40\" font-size=\"12\">(none)</text>");
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Columns over time: one per bucket of the whole period (`from`..`to` by
/// `bucket_seconds`; the report lists only the buckets with events), with the first,
/// middle and last bucket's start under the axis.
fn column_chart(title: &str, report: &Value) -> String {
    let e = &report["events"];
    let parse = |v: &Value| v.as_str().and_then(crate::event::parse_time_unbounded);
    let counts: std::collections::HashMap<i64, f64> = e["buckets"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| Some((parse(&b["start"])?, b["count"].as_f64().unwrap_or(0.0)))).collect())
        .unwrap_or_default();
    let step = e["bucket_seconds"].as_i64().unwrap_or(3600).max(60) * 1000;
    let starts: Vec<i64> = match (parse(&report["from"]), parse(&report["to"])) {
        // At most 400 columns (a month of days is 31).
        (Some(from), Some(to)) if to > from => (0..((to - from) / step).min(400)).map(|i| from + i * step).collect(),
        _ => {
            let mut known: Vec<i64> = counts.keys().copied().collect();
            known.sort_unstable();
            known
        }
    };
    let points: Vec<f64> = starts.iter().map(|t| counts.get(t).copied().unwrap_or(0.0)).collect();
    let max = points.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let step_px = 600.0 / points.len().max(1) as f64;
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"620\" height=\"186\" role=\"img\" \
         aria-label=\"{t}\"><text x=\"0\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{t}</text>\
         <line x1=\"0\" y1=\"160\" x2=\"610\" y2=\"160\" stroke=\"#889\"/>",
        t = escape_html(title)
    );
    for (i, n) in points.iter().enumerate() {
        let h = (n / max * 130.0).round();
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{h}\" fill=\"#5a8f5a\"><title>{n}</title></rect>",
            i as f64 * step_px,
            160.0 - h,
            (step_px - 2.0).max(1.0)
        );
    }
    let label = |t: i64| {
        let text = crate::event::format_rfc3339_ms(t);
        if step < 86_400_000 { text[11..16].to_owned() } else { text[5..10].to_owned() }
    };
    if let (Some(first), Some(last)) = (starts.first(), starts.last()) {
        let middle = starts[starts.len() / 2];
        for (i, t) in [(0, *first), (starts.len() / 2, middle), (starts.len() - 1, *last)] {
            let _ = write!(svg, "<text x=\"{:.1}\" y=\"178\" font-size=\"11\">{}</text>", i as f64 * step_px, label(t));
        }
    }
    let _ = write!(svg, "<text x=\"0\" y=\"34\" font-size=\"11\">max {max}</text></svg></figure>");
    svg
}

/// A table of rows, each cell escaped.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><tr>");
    for h in headers {
        let _ = write!(t, "<th>{}</th>", escape_html(h));
    }
    t.push_str("</tr>");
    for row in rows {
        t.push_str("<tr>");
        for cell in row {
            let _ = write!(t, "<td>{}</td>", escape_html(cell));
        }
        t.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(t, "<tr><td colspan=\"{}\">(none)</td></tr>", headers.len());
    }
    t.push_str("</table>");
    t
}

fn count_rows(v: &Value) -> Vec<Vec<String>> {
    counts(v).into_iter().map(|(label, n)| vec![label, n.to_string()]).collect()
}

fn events_section(out: &mut String, report: &Value) {
    let e = &report["events"];
    let _ = write!(
        out,
        "<h2>Events</h2><p>{} events, failure rate {}, {} high or critical.</p>",
        display(&e["total"]),
        display(&e["failure_rate"]),
        display(&e["high_risk"])
    );
    out.push_str(&column_chart("Events over time", report));
    out.push_str("<div class=\"grid\">");
    out.push_str(&bar_chart("By category", &counts(&e["by_category"])));
    out.push_str(&bar_chart("By severity", &counts(&e["by_severity"])));
    out.push_str(&bar_chart("By outcome", &counts(&e["by_outcome"])));
    out.push_str(&bar_chart("Top actions", &counts(&e["top_actions"])));
    out.push_str("</div><h3>Failure rate by category</h3>");
    let rates: Vec<Vec<String>> = e["failure_rates"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        display(&r["category"]),
                        display(&r["events"]),
                        display(&r["failures"]),
                        display(&r["failure_rate"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["category", "events", "failures", "failure rate"], &rates));
    out.push_str("<div class=\"grid\"><div><h3>Top IPs</h3>");
    out.push_str(&table(&["ip", "events"], &count_rows(&e["top_ips"])));
    out.push_str("</div><div><h3>Top users</h3>");
    out.push_str(&table(&["user", "events"], &count_rows(&e["top_users"])));
    out.push_str("</div></div>");
}

fn privileged_section(out: &mut String, users: &Value) {
    out.push_str("<h2>Privileged users: new IPs and countries</h2>");
    let join =
        |v: &Value| v.as_array().map(|a| a.iter().map(display).collect::<Vec<_>>().join(", ")).unwrap_or_default();
    let rows: Vec<Vec<String>> = users
        .as_array()
        .map(|a| {
            a.iter().map(|u| vec![display(&u["user_id"]), join(&u["new_ips"]), join(&u["new_countries"])]).collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["user", "new IPs", "new countries"], &rows));
}

fn alerts_section(out: &mut String, a: &Value, r: &Value) {
    let _ = write!(out, "<h2>Alerts</h2><p>{} alerts.</p><div class=\"grid\">", display(&a["total"]));
    out.push_str(&bar_chart("By severity", &members(&a["by_severity"])));
    out.push_str(&bar_chart("By status", &members(&a["by_status"])));
    out.push_str(&bar_chart("By disposition", &members(&a["by_disposition"])));
    let attainment: Vec<(String, f64)> = r["by_severity"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["sla_attainment"].as_f64().map(|v| (display(&s["severity"]), (v * 100.0).round())))
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&bar_chart("SLA attainment, %", &attainment));
    out.push_str("</div><h3>Response times (seconds)</h3>");
    let rows: Vec<Vec<String>> = r["by_severity"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    [
                        "severity",
                        "alerts",
                        "mttd_seconds",
                        "mtta_seconds",
                        "mttr_seconds",
                        "sla_seconds",
                        "sla_met",
                        "sla_missed",
                    ]
                    .iter()
                    .map(|k| display(&s[*k]))
                    .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["severity", "alerts", "MTTD", "MTTA", "MTTR", "SLA", "met", "missed"], &rows));
    out.push_str("<h3>By rule</h3>");
    let rules: Vec<Vec<String>> = a["by_rule"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    ["rule", "alerts", "false_positives", "false_positive_rate"]
                        .iter()
                        .map(|k| display(&x[*k]))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["rule", "alerts", "false positives", "false-positive rate"], &rules));
}

fn decisions_and_integrity(out: &mut String, d: &Value, i: &Value) {
    let _ = write!(
        out,
        "<h2>Decisions</h2><p>{} issued, {} lifted, {} expired.</p>",
        display(&d["issued"]),
        display(&d["lifted"]),
        display(&d["expired"])
    );
    let status = display(&i["status"]);
    let class = if status == "ok" { "ok" } else { "bad" };
    let _ = write!(out, "<h2>Integrity</h2><p class=\"{class}\">Status: {}</p>", escape_html(&status));
    let rows = vec![
        vec!["checkpoints signed in the period".to_owned(), display(&i["checkpoints_in_period"])],
        vec!["last checkpoint (seq)".to_owned(), display(&i["last_checkpoint"]["seq"])],
        vec!["last verification".to_owned(), display(&i["last_verify"]["status"])],
        vec!["last verification at".to_owned(), display(&i["last_verify"]["at"])],
        vec!["hold since".to_owned(), display(&i["hold_since"])],
    ];
    out.push_str(&table(&["", ""], &rows));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacker_text_is_escaped_in_tables_and_charts() {
        let hostile = "<script>alert(1)</script>\"'&";
        let report = serde_json::json!({
            "period": "day", "date": "2026-01-05",
            "events": {"by_category": [{"value": hostile, "count": 3}], "top_users": [{"value": hostile, "count": 2}]},
            "alerts": {"by_rule": [{"rule": hostile, "alerts": 1}]},
            "privileged_users": [{"user_id": hostile, "new_ips": [hostile], "new_countries": []}],
        });
        let page = render(&report);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
        assert!(page.contains("<svg"));
        // No external asset: nothing is fetched (the only URL is the SVG namespace).
        assert!(!page.contains("src=") && !page.contains("href=") && !page.contains("url("));
    }

    #[test]
    fn the_timeline_has_a_column_for_every_hour_of_a_day_even_empty_ones() {
        let report = serde_json::json!({
            "from": "2026-01-05T00:00:00.000Z", "to": "2026-01-06T00:00:00.000Z",
            "events": {"bucket_seconds": 3600, "buckets": [{"start": "2026-01-05T03:00:00.000Z", "count": 7}]},
        });
        let chart = column_chart("Events over time", &report);
        assert_eq!(chart.matches("<rect").count(), 24, "{chart}");
        let tall: Vec<&str> = chart.split("<rect").skip(1).filter(|r| r.contains("height=\"130\"")).collect();
        assert_eq!(tall.len(), 1, "one column holds the events: {chart}");
        assert!(chart.split("<rect").nth(4).unwrap().contains("<title>7</title>"), "the fourth column is 03:00");
        assert!(chart.contains(">00:00<") && chart.contains(">23:00<"), "axis labels: {chart}");
    }
}
