//! `error_spike`: failures of one source in a minute far above its usual rate.
//!
//! Offered every `outcome=failure` event, whatever its category or action. Counts them per
//! `source` (the emitting service; failures without one are ignored) per calendar minute of
//! event time. When a minute ends its count joins the source's baseline (running mean and
//! stddev of failures per minute, `ctx.baseline()`), and so does every idle minute between
//! it and the source's next failure, as 0 (at most 60 per gap, which bounds the work), so
//! the mean is failures per minute, not failures per minute that had failures.
//!
//! Once the baseline holds `min_history_minutes` (10) minutes, a minute fires once (P2),
//! on the failure that makes its count both at least `min_failures` (10; so 0 -> 1 or
//! 1 -> 6 is no spike) and above `multiplier` (5) x the baseline mean. Each later minute
//! that spikes fires again under the same dedup key, `source:<source>`, which the host
//! groups. Every minute joins the baseline, spikes included, so a lasting new rate stops
//! firing as the baseline catches up. A late failure of a minute already closed is not
//! counted.
//!
//! State is host state only: last-seen `source:<source>` holds the open minute as
//! `"minute,count,fired"`, and the baseline has the same key. The manifest declares a
//! 1-hour window, so a restart replays an hour of events to rebuild the baseline.
//!
//! Configuration: `multiplier` (5, >= 1), `min_history_minutes` (10, >= 0),
//! `min_failures` (10, >= 1).

use vigil_sdk::time::{HOUR_MS, MINUTE_MS};
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

/// Idle minutes (no failure) of one gap added to the baseline as 0, at most.
pub const MAX_IDLE_MINUTES: i64 = 60;

/// The rule.
pub struct ErrorSpike {
    multiplier: f64,
    min_history_minutes: u64,
    min_failures: i64,
    /// The state key, rebuilt per event in place (no allocation per event).
    key: String,
}

/// The open minute of one source, kept in last-seen state: binary (see [`Minute::encode`]),
/// or the text form `"minute,count,fired"` of earlier versions.
struct Minute {
    minute: i64,
    count: i64,
    fired: bool,
}

impl Minute {
    fn decode(value: &[u8]) -> Option<Minute> {
        if let Ok(b) = <&[u8; 17]>::try_from(value) {
            let int = |r: std::ops::Range<usize>| <[u8; 8]>::try_from(&b[r]).ok().map(i64::from_le_bytes);
            return Some(Minute { minute: int(0..8)?, count: int(8..16)?, fired: b[16] == 1 });
        }
        Minute::parse(std::str::from_utf8(value).ok()?)
    }

    fn parse(text: &str) -> Option<Minute> {
        let mut p = text.split(',');
        Some(Minute { minute: p.next()?.parse().ok()?, count: p.next()?.parse().ok()?, fired: p.next()? == "1" })
    }

    /// `minute` and `count` as little-endian i64, then `fired` as one byte: 17 bytes, no
    /// number formatting per event.
    fn encode(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[..8].copy_from_slice(&self.minute.to_le_bytes());
        out[8..16].copy_from_slice(&self.count.to_le_bytes());
        out[16] = u8::from(self.fired);
        out
    }
}

impl Rule for ErrorSpike {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Failures per minute of one source above 5x its baseline (at least 10, after 10 minutes)")
            .severity(Severity::P2)
            .mitre(["T1499", "T1190"])
            .fields(["source", "category", "action", "error_code"])
            .subscribe(Subscription::all().outcomes(["failure"]))
            // Minutes are counted in last-seen state; the baseline needs history to replay.
            .windows_ms([MINUTE_MS, HOUR_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["multiplier", "min_history_minutes", "min_failures"])?;
        let multiplier = config.f64_or("multiplier", 5.0)?;
        let min_history = config.i64_or("min_history_minutes", 10)?;
        let min_failures = config.i64_or("min_failures", 10)?;
        if multiplier.is_nan() || multiplier < 1.0 {
            return Err("multiplier must be >= 1".to_owned());
        }
        let min_history_minutes = u64::try_from(min_history).map_err(|_| "min_history_minutes must be >= 0")?;
        if min_failures < 1 {
            return Err("min_failures must be >= 1".to_owned());
        }
        Ok(ErrorSpike { multiplier, min_history_minutes, min_failures, key: String::with_capacity(64) })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(source) = ev.get("source").filter(|s| !s.is_empty()) else { return false };
        self.key.clear();
        self.key.push_str("source:");
        self.key.push_str(source);
        let key = self.key.as_str();
        let minute = ev.time_ms().div_euclid(MINUTE_MS);
        let baseline = ctx.baseline();
        let stored = ctx.last_seen().get(key).and_then(|s| Minute::decode(&s.value));
        let mut cur = match stored {
            Some(m) if m.minute == minute => m,
            Some(m) if m.minute > minute => return false, // a late failure of a closed minute
            Some(m) => {
                baseline.observe(key, m.count as f64);
                for _ in 0..(minute - m.minute - 1).min(MAX_IDLE_MINUTES) {
                    baseline.observe(key, 0.0);
                }
                Minute { minute, count: 0, fired: false }
            }
            None => Minute { minute, count: 0, fired: false },
        };
        cur.count += 1;
        let stats = baseline.get(key);
        let spike = stats.count >= self.min_history_minutes
            && cur.count >= self.min_failures
            && cur.count as f64 > self.multiplier * stats.mean;
        if spike && !cur.fired {
            cur.fired = true;
            let mean = (stats.mean * 100.0).round() / 100.0;
            let title = format!("Error spike: {source} failed {} times this minute (baseline {mean}/min)", cur.count);
            ctx.emit(
                Alert::new(title)
                    .severity(Severity::P2)
                    .dedup_key(key)
                    .field("source", source)
                    .field("failures_this_minute", cur.count)
                    .field("minute_start_ms", minute * MINUTE_MS)
                    .field("baseline_per_minute", mean)
                    .field("baseline_stddev", (stats.stddev * 100.0).round() / 100.0)
                    .field("baseline_minutes", stats.count)
                    .field("multiplier", self.multiplier)
                    .field("last_category", ev.category())
                    .field("last_action", ev.action())
                    .field("last_error_code", ev.get("error_code"))
                    .action("Check recent deployments and configuration changes of the source")
                    .action("Review the failures' error codes and stack traces")
                    .action("Roll back if a deployment caused it; if not, look for an attack (probing, brute force)"),
            );
        }
        ctx.last_seen().set(key, cur.encode());
        true
    }
}

vigil_sdk::export_rule!(ErrorSpike);

#[cfg(test)]
mod tests {
    use vigil_sdk::Value;
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    fn failure(source: &str, t: i64) -> TestEvent {
        TestEvent::new("integration", "webhook_delivery")
            .outcome("failure")
            .field("source", source)
            .field("error_code", "E_TIMEOUT")
            .at_ms(t)
    }

    /// `counts[m]` failures of `source` in minute `start_minute + m`, evenly spread.
    fn minutes(source: &str, start_minute: i64, counts: &[i64]) -> Vec<TestEvent> {
        let mut out = Vec::new();
        for (m, &n) in counts.iter().enumerate() {
            for i in 0..n {
                out.push(failure(source, (start_minute + m as i64) * MINUTE_MS + i * (MINUTE_MS / n)));
            }
        }
        out
    }

    fn int(a: &Alert, name: &str) -> Option<i64> {
        a.field_value(name).and_then(Value::as_i64)
    }

    fn num(a: &Alert, name: &str) -> Option<f64> {
        a.field_value(name).and_then(Value::as_f64)
    }

    #[test]
    fn five_times_the_baseline_fires_once_in_the_minute() {
        let mut h = Harness::<ErrorSpike>::new();
        assert!(h.run(minutes("payments", 0, &[2; 10])).is_empty());
        let alerts = h.run(minutes("payments", 10, &[30]));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.severity, Some(Severity::P2));
        assert_eq!(a.dedup_key.as_deref(), Some("source:payments"));
        // Baseline 2/min: the limit is 10, so the 11th failure fires.
        assert_eq!(int(a, "failures_this_minute"), Some(11));
        assert_eq!(a.event_seqs, [20 + 11]);
        assert_eq!(num(a, "baseline_per_minute"), Some(2.0));
        assert_eq!(int(a, "baseline_minutes"), Some(10));
        assert_eq!(int(a, "minute_start_ms"), Some(10 * MINUTE_MS));
        assert_eq!(a.field_value("source").and_then(Value::as_str), Some("payments"));
        assert_eq!(a.field_value("last_error_code").and_then(Value::as_str), Some("E_TIMEOUT"));
        assert_eq!(a.title, "Error spike: payments failed 11 times this minute (baseline 2/min)");
    }

    #[test]
    fn exactly_five_times_the_baseline_does_not_fire() {
        let mut h = Harness::<ErrorSpike>::new();
        assert!(h.run(minutes("api", 0, &[4; 10])).is_empty());
        assert!(h.run(minutes("api", 10, &[20])).is_empty(), "20 is not above 5 x 4");
        let mut h = Harness::<ErrorSpike>::new();
        h.run(minutes("api", 0, &[4; 10]));
        let alerts = h.run(minutes("api", 10, &[21]));
        assert_eq!(alerts.len(), 1);
        assert_eq!(int(&alerts[0], "failures_this_minute"), Some(21));
    }

    #[test]
    fn small_counts_are_no_spike() {
        // A failure every other minute: a baseline of 0.5/min.
        let history: Vec<i64> = (0..20).map(|m| (m + 1) % 2).collect();
        let mut h = Harness::<ErrorSpike>::new();
        assert!(h.run(minutes("auth", 0, &history)).is_empty());
        // 9 failures is 18x the baseline but below min_failures (10).
        assert!(h.run(minutes("auth", 20, &[9])).is_empty());
        // The 10th failure of a minute is enough.
        let alerts = h.run(minutes("auth", 21, &[10]));
        assert_eq!(alerts.len(), 1);
        assert_eq!(int(&alerts[0], "failures_this_minute"), Some(10));
        // 0 -> 1 after a quiet hour, and a handful, are not spikes either.
        let mut h = Harness::<ErrorSpike>::new();
        assert!(h.run(minutes("quiet", 0, &[1])).is_empty());
        assert!(h.run(minutes("quiet", 70, &[1])).is_empty());
        assert!(h.run(minutes("quiet", 140, &[6])).is_empty());
    }

    #[test]
    fn needs_ten_minutes_of_history_idle_ones_included() {
        // One failure at minute 0: at minute 9 the history is 9 minutes (1 + 8 idle).
        let mut h = Harness::<ErrorSpike>::new();
        assert!(h.run(minutes("search", 0, &[1])).is_empty());
        assert!(h.run(minutes("search", 9, &[50])).is_empty(), "9 minutes of history");
        // At minute 10 it is 10 minutes (1 + 9 idle): the burst fires.
        let mut h = Harness::<ErrorSpike>::new();
        h.run(minutes("search", 0, &[1]));
        let alerts = h.run(minutes("search", 10, &[50]));
        assert_eq!(alerts.len(), 1);
        assert_eq!(int(&alerts[0], "baseline_minutes"), Some(10));
        assert_eq!(num(&alerts[0], "baseline_per_minute"), Some(0.1));
        // A brand-new source bursting has no history: learning, no alert.
        assert!(h.run(minutes("new_service", 10, &[500])).is_empty());
    }

    #[test]
    fn idle_minutes_count_as_zero_up_to_an_hour() {
        let mut h = Harness::<ErrorSpike>::new();
        // 10 failures/min for 10 minutes, then quiet for 1000 minutes.
        assert!(h.run(minutes("batch", 0, &[10; 10])).is_empty());
        let alerts = h.run(minutes("batch", 1010, &[12]));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        // 10 busy minutes + 60 idle ones (capped): mean 100 / 70 = 1.43, limit 7.1.
        assert_eq!(int(&alerts[0], "baseline_minutes"), Some(70));
        assert_eq!(num(&alerts[0], "baseline_per_minute"), Some(1.43));
        assert_eq!(int(&alerts[0], "failures_this_minute"), Some(10), "min_failures is the larger bound");
    }

    #[test]
    fn sources_have_their_own_baselines() {
        let mut h = Harness::<ErrorSpike>::new();
        let mut events = minutes("busy", 0, &[100; 10]);
        events.extend(minutes("calm", 0, &[1; 10]));
        assert!(h.run(events).is_empty());
        // 110 failures: a lot, but normal for busy.
        assert!(h.run(minutes("busy", 10, &[110])).is_empty());
        let alerts = h.run(minutes("calm", 10, &[20]));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("source:calm"));
    }

    #[test]
    fn each_spiking_minute_fires_under_one_dedup_key() {
        let mut h = Harness::<ErrorSpike>::new();
        h.run(minutes("db", 0, &[2; 10]));
        let alerts = h.run(minutes("db", 10, &[40, 40, 3]));
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert!(alerts.iter().all(|a| a.dedup_key.as_deref() == Some("source:db")));
        // The first spike joined the baseline: mean (20 + 40) / 11 = 5.45, limit 27.3.
        assert_eq!(int(&alerts[1], "failures_this_minute"), Some(28));
        // Spikes join the baseline, so a lasting 40/min stops firing: at minute 13 the mean
        // is (20 + 40 + 40 + 3) / 13 = 7.92 (limit 39.6, the 40th failure fires), from
        // minute 14 it is 10.2 (limit 51).
        let lasting = h.run(minutes("db", 13, &[40; 10]));
        assert_eq!(lasting.len(), 1, "{lasting:?}");
        assert_eq!(int(&lasting[0], "failures_this_minute"), Some(40));
        assert_eq!(int(&lasting[0], "minute_start_ms"), Some(13 * MINUTE_MS));
    }

    #[test]
    fn only_failures_with_a_source_are_counted() {
        let mut h = Harness::<ErrorSpike>::new();
        h.run(minutes("edge", 0, &[1; 10]));
        let t = 10 * MINUTE_MS;
        let ok = TestEvent::new("integration", "webhook_delivery").outcome("success").field("source", "edge");
        let unknown = TestEvent::new("system", "job").outcome("unknown").field("source", "edge");
        let no_source = TestEvent::new("system", "job").outcome("failure");
        let out = h.run_detailed([ok.at_ms(t), unknown.at_ms(t), no_source.at_ms(t)]);
        assert_eq!(out.offered, [false, false, true]);
        assert_eq!(out.matched, [false, false, false]);
        // Failures of any category and action count together for their source.
        let mixed = (0..12).map(|i| {
            let ev = if i % 2 == 0 {
                TestEvent::new("authentication", "login_failed")
            } else {
                TestEvent::new("data_access", "read")
            };
            ev.outcome("failure").field("source", "edge").at_ms(t + i)
        });
        let alerts = h.run(mixed);
        assert_eq!(alerts.len(), 1);
        assert_eq!(int(&alerts[0], "failures_this_minute"), Some(10));
        assert_eq!(alerts[0].field_value("last_category").and_then(Value::as_str), Some("data_access"));
        assert_eq!(alerts[0].field_value("last_action").and_then(Value::as_str), Some("read"));
    }

    #[test]
    fn late_failures_of_closed_minutes_are_not_counted() {
        let mut h = Harness::<ErrorSpike>::new();
        h.run(minutes("cdn", 0, &[2; 11]));
        // Minute 10 is open; failures stamped in minute 3 arrive late.
        let late: Vec<_> = (0..30).map(|i| failure("cdn", 3 * MINUTE_MS + i)).collect();
        let out = h.run_detailed(late);
        assert!(out.alerts.is_empty());
        assert!(out.matched.iter().all(|m| !m));
        // Minute 10 still holds its own 2 failures: 9 more make 11 > 10 (5 x 2).
        let alerts = h.run((0..9).map(|i| failure("cdn", 10 * MINUTE_MS + 50_000 + i)));
        assert_eq!(alerts.len(), 1);
        assert_eq!(int(&alerts[0], "failures_this_minute"), Some(11));
    }

    #[test]
    fn state_survives_reload() {
        let mut h = Harness::<ErrorSpike>::new();
        h.run(minutes("mail", 0, &[2; 10]));
        h.reload().unwrap();
        assert_eq!(h.run(minutes("mail", 10, &[30])).len(), 1);
        assert_eq!(h.state().len(), 2, "one open minute and one baseline per source");
    }

    #[test]
    fn configuration() {
        let config = r#"{"multiplier": 2, "min_history_minutes": 3, "min_failures": 3}"#;
        let mut h = Harness::<ErrorSpike>::new().config(config);
        assert!(h.run(minutes("s", 0, &[2, 2])).is_empty());
        assert!(h.run(minutes("s", 2, &[10])).is_empty(), "2 minutes of history");
        let mut h = Harness::<ErrorSpike>::new().config(config);
        h.run(minutes("s", 0, &[2, 2, 2]));
        let alerts = h.run(minutes("s", 3, &[10]));
        assert_eq!(alerts.len(), 1);
        assert_eq!(int(&alerts[0], "failures_this_minute"), Some(5), "above 2 x 2");
        assert_eq!(num(&alerts[0], "multiplier"), Some(2.0));
        for bad in [
            r#"{"factor": 5}"#,
            r#"{"multiplier": 0.5}"#,
            r#"{"multiplier": "5"}"#,
            r#"{"min_history_minutes": -1}"#,
            r#"{"min_failures": 0}"#,
        ] {
            assert!(Harness::<ErrorSpike>::new().config(bad).init().is_err(), "{bad}");
        }
        let unknown = Harness::<ErrorSpike>::new().config(r#"{"factor": 5}"#).init().unwrap_err();
        assert!(unknown.contains("`factor`"), "{unknown}");
    }

    #[test]
    fn manifest_and_declared_fields() {
        let m = ErrorSpike::manifest();
        assert_eq!(m.severity, Severity::P2);
        assert!(m.matches("anything", "at_all", "failure"));
        assert!(!m.matches("anything", "at_all", "success"));
        let mut h = Harness::<ErrorSpike>::new();
        h.run(minutes("x", 0, &[1; 10]));
        assert_eq!(h.run(minutes("x", 10, &[10])).len(), 1);
        assert_eq!(h.lazy_field_reads(), 0);
    }
}
