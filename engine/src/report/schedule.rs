//! Scheduled security reports (`[[reports.schedule]]`): the report of each completed day,
//! week or month, queued in the outbox (`store::outbox`) once per period and receiver,
//! under a deterministic idempotency key (`report-security-<period>-<date>-<receiver>`),
//! so a restart or a crash never queues it twice and the receiver sees one stable
//! `webhook-id` / `Message-ID` even when a delivery is retried. The outbox worker
//! (`route`) delivers it like any notification (retries, breaker, dead letters); each
//! receiver kind renders it (`route::receivers`).
//!
//! A report is due at its slot: `at` (UTC) on the day after a day, on `weekday` after an
//! ISO week, on the 1st after a month. A slot missed while the server was down is sent when
//! it starts: walking back from the latest slot, every slot after the newest one already
//! queued is sent (oldest first, at most [`MAX_CATCH_UP`]); when none of those is queued
//! (a new schedule, or a longer outage), only the latest is. Times come from the server's
//! `Clock`, so tests move time instead of waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use time::{Date, OffsetDateTime};
use tokio::sync::Notify;

use super::{Period, PeriodKind, ReportSources, security_report};
use crate::clock::Clock;
use crate::config::{Config, ReportSchedule, ReportsConfig, parse_time_of_day, parse_weekday};
use crate::event::format_rfc3339_ms;
use crate::ledger::IntegrityStatus;
use crate::store::{NotificationRow, NotificationStatus, Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// Most missed slots of one schedule and receiver sent when the server starts.
pub const MAX_CATCH_UP: usize = 7;

/// The notification kind of a scheduled report.
pub const KIND: &str = "report";

/// When a schedule's reports are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub kind: PeriodKind,
    /// Ms after midnight UTC.
    pub at_ms: i64,
    /// Weekly: days from Monday (0..6).
    pub weekday: u8,
}

impl Slots {
    /// From a validated `[[reports.schedule]]` entry (defaults: 06:00, Monday).
    pub fn of(s: &ReportSchedule) -> Self {
        let kind = match s.period.as_str() {
            "week" => PeriodKind::Week,
            "month" => PeriodKind::Month,
            _ => PeriodKind::Day,
        };
        Self {
            kind,
            at_ms: s.at.as_deref().and_then(parse_time_of_day).unwrap_or(6 * 3_600_000),
            weekday: s.weekday.as_deref().and_then(parse_weekday).unwrap_or(0),
        }
    }

    /// The newest slot at or before `now` (epoch ms).
    pub fn latest(&self, now: i64) -> i64 {
        let midnight = now - now.rem_euclid(DAY_MS);
        match self.kind {
            PeriodKind::Day => {
                let slot = midnight + self.at_ms;
                if slot > now { slot - DAY_MS } else { slot }
            }
            PeriodKind::Week => {
                let today = i64::from(date_of(now).weekday().number_days_from_monday());
                let slot = midnight - (today - i64::from(self.weekday)).rem_euclid(7) * DAY_MS + self.at_ms;
                if slot > now { slot - 7 * DAY_MS } else { slot }
            }
            PeriodKind::Month => {
                let slot = first_of_month(date_of(now)) + self.at_ms;
                if slot > now { self.previous(slot) } else { slot }
            }
        }
    }

    /// The slot before `slot`.
    pub fn previous(&self, slot: i64) -> i64 {
        match self.kind {
            PeriodKind::Day => slot - DAY_MS,
            PeriodKind::Week => slot - 7 * DAY_MS,
            PeriodKind::Month => first_of_month(date_of(slot - slot.rem_euclid(DAY_MS) - DAY_MS)) + self.at_ms,
        }
    }

    /// The period the report of `slot` covers: the completed day, ISO week or month before it.
    pub fn period(&self, slot: i64) -> Period {
        let day = date_of(slot);
        let back = match self.kind {
            PeriodKind::Week => time::Duration::days(7),
            PeriodKind::Day | PeriodKind::Month => time::Duration::days(1),
        };
        Period::of(self.kind, day - back)
    }
}

fn date_of(ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).map_or(Date::MIN, OffsetDateTime::date)
}

fn first_of_month(date: Date) -> i64 {
    Period::of(PeriodKind::Month, date).from
}

/// The idempotency key of the report of `period` for `receiver`.
pub fn key(period: &Period, receiver: &str) -> String {
    format!("report-security-{}-{}-{receiver}", period.kind.name(), period.date_text())
}

/// Queues the scheduled reports as they fall due.
pub struct ReportScheduler {
    store: Store,
    integrity: Arc<IntegrityStatus>,
    config: ReportsConfig,
    retention_days: u32,
    archive: Option<serde_json::Value>,
    clock: Clock,
    /// The outbox worker's wake-up.
    wake: Arc<Notify>,
    external_url: String,
    /// Per (schedule, receiver): the newest slot known to be queued (no store read until
    /// the next slot).
    done: std::sync::Mutex<HashMap<(usize, String), i64>>,
    stopped: AtomicBool,
}

impl ReportScheduler {
    /// A scheduler for `[[reports.schedule]]`; `wake` wakes the outbox worker.
    pub fn new(config: &Config, store: Store, integrity: Arc<IntegrityStatus>, wake: Arc<Notify>) -> Self {
        Self {
            store,
            integrity,
            config: config.reports.clone(),
            retention_days: config.hot_days(),
            archive: config
                .retention
                .archive
                .as_ref()
                .map(|a| serde_json::json!({"location": a.describe(), "hot_days": config.hot_days(), "keep_days": a.keep_days})),
            clock: config.clock.clone(),
            wake,
            external_url: config.alerts.external_url.trim_end_matches('/').to_owned(),
            done: std::sync::Mutex::default(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Queues every report that is due and not queued yet; returns how many it queued.
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut reports: HashMap<String, Value> = HashMap::new();
        let mut queued = 0;
        for (i, schedule) in self.config.schedule.iter().enumerate() {
            let slots = Slots::of(schedule);
            let latest = slots.latest(now);
            for receiver in &schedule.receivers {
                let memo = (i, receiver.clone());
                if self.done().get(&memo) == Some(&latest) {
                    continue;
                }
                for slot in self.missing(&slots, latest, receiver).await? {
                    let period = slots.period(slot);
                    // One report per period, whichever receivers it goes to.
                    let cache = format!("{}-{}", period.kind.name(), period.date_text());
                    let report = match reports.get(&cache) {
                        Some(r) => r.clone(),
                        None => {
                            let r = security_report(&self.sources(), &period, now).await?;
                            reports.insert(cache, r.clone());
                            r
                        }
                    };
                    let mut row = self.row(&period, receiver, report, now);
                    if self.store.insert_notification_once(&mut row).await? {
                        queued += 1;
                        tracing::info!(receiver = %receiver, period = period.kind.name(), date = %period.date_text(),
                            "Scheduled security report queued");
                    }
                }
                self.done().insert(memo, latest);
            }
        }
        if queued > 0 {
            self.wake.notify_waiters();
        }
        Ok(queued)
    }

    /// The slots from `latest` back that are not queued for `receiver`, oldest first (see
    /// the module doc).
    async fn missing(&self, slots: &Slots, latest: i64, receiver: &str) -> Result<Vec<i64>, StoreError> {
        let mut missing = Vec::new();
        let mut slot = latest;
        for _ in 0..MAX_CATCH_UP {
            if self.store.notification_by_key(&key(&slots.period(slot), receiver)).await?.is_some() {
                missing.reverse();
                return Ok(missing);
            }
            missing.push(slot);
            slot = slots.previous(slot);
        }
        missing.truncate(1);
        Ok(missing)
    }

    fn row(&self, period: &Period, receiver: &str, report: Value, now: i64) -> NotificationRow {
        let query = format!("period={}&date={}", period.kind.name(), period.date_text());
        let payload = json!({
            "period": period.kind.name(),
            "date": period.date_text(),
            "from": format_rfc3339_ms(period.from),
            "to": format_rfc3339_ms(period.to),
            "link": format!("{}/v1/reports/security?{query}&format=html", self.external_url),
            "dashboard": format!("{}/#/reports?{query}", self.external_url),
            "report": report,
        });
        NotificationRow {
            receiver: receiver.to_owned(),
            kind: KIND.into(),
            idempotency_key: key(period, receiver),
            payload: payload.to_string(),
            status: NotificationStatus::Pending,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
            ..Default::default()
        }
    }

    fn sources(&self) -> ReportSources<'_> {
        ReportSources {
            store: &self.store,
            integrity: &self.integrity,
            config: &self.config,
            retention_days: self.retention_days,
            archive: self.archive.clone(),
        }
    }

    fn done(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, String), i64>> {
        self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks every `tick` (and whenever a manual clock moves) until stopped. A failing
    /// store is logged and retried after 30 ticks (one line per try, not one per tick, while
    /// the database is down).
    pub fn spawn(self: Arc<Self>, tick: Duration) {
        if self.config.schedule.is_empty() {
            return;
        }
        tokio::spawn(async move {
            while !self.stopped.load(Ordering::Acquire) {
                let wait = match self.run_due().await {
                    Ok(_) => tick,
                    Err(e) => {
                        tracing::warn!(error = %e, "Scheduled reports could not be queued; retried in 30 ticks");
                        tick * 30
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.clock.moved() => {}
                }
            }
        });
    }

    /// Stops the task after its current pass (what is queued stays queued).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }
}

/// The figures of a report a short message carries (Slack, PagerDuty, the text of an
/// email), as (label, value) lines. Values can hold attacker text (the top IP and user):
/// each receiver escapes them for its format.
pub fn summary(report: &Value) -> Vec<(&'static str, String)> {
    let e = &report["events"];
    let a = &report["alerts"];
    let pct = |v: &Value| v.as_f64().map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0));
    let secs = |v: &Value| v.as_f64().map_or_else(|| "-".to_owned(), |f| format!("{f:.0} s"));
    let top = |list: &Value| {
        list.get(0).map_or_else(
            || "-".to_owned(),
            |c| format!("{} ({})", c["value"].as_str().unwrap_or_default(), c["count"].as_i64().unwrap_or(0)),
        )
    };
    let by_sev = ["P1", "P2", "P3", "P4"]
        .iter()
        .map(|p| format!("{p} {}", a["by_severity"][p].as_i64().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ");
    let privileged = report["privileged_users"]
        .as_array()
        .map_or(0, |u| u.iter().filter(|u| u["new_ips"].as_array().is_some_and(|ips| !ips.is_empty())).count());
    let d = &report["decisions"];
    vec![
        ("Period", format!("{} to {} (UTC)", text(&report["from"]), text(&report["to"]))),
        ("Events", e["total"].as_i64().unwrap_or(0).to_string()),
        ("Failure rate", pct(&e["failure_rate"])),
        ("High or critical", e["high_risk"].as_i64().unwrap_or(0).to_string()),
        ("Alerts", format!("{} ({by_sev})", a["total"].as_i64().unwrap_or(0))),
        ("SLA attainment", pct(&report["response"]["sla_attainment"])),
        ("Integrity", text(&report["integrity"]["status"])),
        (
            "MTTA / MTTR",
            format!("{} / {}", secs(&report["response"]["mtta_seconds"]), secs(&report["response"]["mttr_seconds"])),
        ),
        (
            "Decisions",
            format!(
                "{} issued, {} lifted, {} expired",
                d["issued"].as_i64().unwrap_or(0),
                d["lifted"].as_i64().unwrap_or(0),
                d["expired"].as_i64().unwrap_or(0)
            ),
        ),
        ("Top IP", top(&e["top_ips"])),
        ("Top user", top(&e["top_users"])),
        ("Privileged users on new IPs", privileged.to_string()),
    ]
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-05T07:00:00Z, a Monday.
    const MON_0700: i64 = 1_767_596_400_000;
    const H: i64 = 3_600_000;

    fn slots(period: &str, at: &str, weekday: Option<&str>) -> Slots {
        Slots::of(&ReportSchedule {
            period: period.into(),
            receivers: vec![],
            at: Some(at.into()),
            weekday: weekday.map(str::to_owned),
        })
    }

    fn day(ms: i64) -> String {
        format_rfc3339_ms(ms)
    }

    #[test]
    fn a_daily_report_covers_the_day_before_its_slot() {
        let s = slots("day", "06:00", None);
        let latest = s.latest(MON_0700);
        assert_eq!(day(latest), "2026-01-05T06:00:00.000Z");
        assert_eq!(s.period(latest).date_text(), "2026-01-04");
        // Before 06:00 the latest slot is yesterday's.
        assert_eq!(day(s.latest(MON_0700 - 2 * H)), "2026-01-04T06:00:00.000Z");
        // Exactly at the slot, it is due.
        assert_eq!(s.latest(MON_0700 - H), MON_0700 - H);
        assert_eq!(s.period(s.previous(latest)).date_text(), "2026-01-03");
    }

    #[test]
    fn a_weekly_report_covers_the_last_complete_iso_week_whatever_its_weekday() {
        let monday = slots("week", "06:30", None);
        let latest = monday.latest(MON_0700);
        assert_eq!(day(latest), "2026-01-05T06:30:00.000Z");
        let week = monday.period(latest);
        assert_eq!((week.kind, week.date_text()), (PeriodKind::Week, "2025-12-29".to_owned()));
        // Sent on Wednesdays: on Monday the newest slot is the Wednesday before, reporting
        // the week before that one (the week holding it was not over yet).
        let wednesday = slots("week", "06:00", Some("wed"));
        let latest = wednesday.latest(MON_0700);
        assert_eq!(day(latest), "2025-12-31T06:00:00.000Z");
        assert_eq!(wednesday.period(latest).date_text(), "2025-12-22");
        assert_eq!(day(wednesday.previous(latest)), "2025-12-24T06:00:00.000Z");
    }

    #[test]
    fn a_monthly_report_goes_out_on_the_first_and_covers_the_month_before() {
        let s = slots("month", "00:15", None);
        let latest = s.latest(MON_0700);
        assert_eq!(day(latest), "2026-01-01T00:15:00.000Z");
        assert_eq!(s.period(latest).date_text(), "2025-12-01");
        let before = s.previous(latest);
        assert_eq!(day(before), "2025-12-01T00:15:00.000Z");
        assert_eq!(s.period(before).date_text(), "2025-11-01");
        // On the 1st before its time, the newest slot is the month before's.
        assert_eq!(day(s.latest(latest - 60_000)), "2025-12-01T00:15:00.000Z");
    }

    #[test]
    fn keys_name_the_period_date_and_receiver() {
        let s = slots("day", "06:00", None);
        assert_eq!(key(&s.period(s.latest(MON_0700)), "chat"), "report-security-day-2026-01-04-chat");
    }

    #[test]
    fn the_summary_lists_figures_without_formatting_them() {
        let hostile = "<script>alert(1)</script>";
        let report = json!({"from": "2026-01-04T00:00:00.000Z", "to": "2026-01-05T00:00:00.000Z",
            "events": {"total": 12, "failure_rate": 0.25, "high_risk": 1, "top_ips": [{"value": "203.0.113.7", "count": 6}],
                "top_users": [{"value": hostile, "count": 3}]},
            "alerts": {"total": 2, "by_severity": {"P1": 1, "P2": 1}},
            "response": {"sla_attainment": 0.5, "mtta_seconds": 600.0, "mttr_seconds": null},
            "decisions": {"issued": 1, "lifted": 0, "expired": 0}, "integrity": {"status": "ok"}});
        let lines: HashMap<&str, String> = summary(&report).into_iter().collect();
        assert_eq!(lines["Events"], "12");
        assert_eq!(lines["Failure rate"], "25.0%");
        assert_eq!(lines["Top user"], format!("{hostile} (3)"), "escaping is the receiver's job");
        assert_eq!(lines["Alerts"], "2 (P1 1, P2 1, P3 0, P4 0)");
        assert_eq!(lines["MTTA / MTTR"], "600 s / -");
        assert_eq!(lines["Integrity"], "ok");
    }
}
