//! `api_key_anomaly`: an API key used far more in a minute than it usually is.
//!
//! Counts `action=api_key_used` per `api_key_id` per calendar minute (event time). When a
//! minute ends its count joins the key's baseline (running mean and stddev of the minutes
//! in which the key was used). Once the baseline holds `min_history_minutes` (10) minutes,
//! a minute whose count exceeds mean + `stddev_factor` (3) x stddev fires once (P2).
//!
//! Automated response, on by default: with `key_decision` = `throttle` (the default) the
//! alert also asks the apps to rate-limit that API key for `key_decision_minutes` (30),
//! tied to the alert (`api_key:<api_key_id>`); one decision per key while it stands. On by
//! default because it is mild and temporary: a legitimate new workload slows down instead
//! of failing, a leaked key stops being useful at volume, and the throttle lapses on its
//! own. `block` refuses the key outright (revoking a key a business depends on is for a
//! person to decide, as the alert's actions say); `off` issues nothing.

use vigil_sdk::time::{HOUR_MS, MINUTE_MS};
use vigil_sdk::{Alert, Config, Context, Decision, DecisionKind, Event, Manifest, Rule, Scope, Severity, Subscription};

/// The rule.
pub struct ApiKeyAnomaly {
    min_history_minutes: u64,
    stddev_factor: f64,
    /// What to decide on the key when it fires (`None`: nothing).
    key_decision: Option<DecisionKind>,
    /// For how long, in ms.
    decision_ms: i64,
}

/// The current minute of one key, kept in last-seen state as `"minute,count,fired"`.
struct Minute {
    minute: i64,
    count: i64,
    fired: bool,
}

impl Minute {
    fn parse(text: &str) -> Option<Minute> {
        let mut p = text.split(',');
        Some(Minute { minute: p.next()?.parse().ok()?, count: p.next()?.parse().ok()?, fired: p.next()? == "1" })
    }

    fn encode(&self) -> String {
        format!("{},{},{}", self.minute, self.count, u8::from(self.fired))
    }
}

impl Rule for ApiKeyAnomaly {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("API key requests in a minute above mean + 3 stddev of its previous minutes")
            .severity(Severity::P2)
            .mitre(["T1078.004", "T1552"])
            .fields(["api_key_id", "ip", "user_id"])
            .subscribe(Subscription::action("api_key_used"))
            // Minutes are counted in last-seen state; the baseline needs history to replay.
            .windows_ms([MINUTE_MS, HOUR_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["min_history_minutes", "stddev_factor", "key_decision", "key_decision_minutes"])?;
        let min_history = config.i64_or("min_history_minutes", 10)?;
        let stddev_factor = config.f64_or("stddev_factor", 3.0)?;
        let min_history_minutes = u64::try_from(min_history).map_err(|_| "min_history_minutes must be >= 0")?;
        if stddev_factor.is_nan() || stddev_factor < 0.0 {
            return Err("stddev_factor must be >= 0".to_owned());
        }
        let key_decision =
            config.decision_or("key_decision", "throttle", &[DecisionKind::Throttle, DecisionKind::Block])?;
        let decision_ms = config.decision_minutes_or("key_decision_minutes", 30)?;
        Ok(ApiKeyAnomaly { min_history_minutes, stddev_factor, key_decision, decision_ms })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(api_key) = ev.api_key_id().filter(|k| !k.is_empty()) else { return false };
        let key = format!("api_key:{api_key}");
        let minute = ev.time_ms().div_euclid(MINUTE_MS);
        let stored = ctx.last_seen().get(&key).and_then(|s| Minute::parse(s.as_str()?));
        let mut cur = match stored {
            Some(m) if m.minute == minute => m,
            Some(m) if m.minute > minute => return true, // a late event of a closed minute
            Some(m) => {
                ctx.baseline().observe(&key, m.count as f64);
                Minute { minute, count: 0, fired: false }
            }
            None => Minute { minute, count: 0, fired: false },
        };
        cur.count += 1;
        let stats = ctx.baseline().get(&key);
        let limit = stats.mean + self.stddev_factor * stats.stddev;
        let anomalous = stats.count >= self.min_history_minutes && cur.count as f64 > limit;
        if anomalous && !cur.fired {
            cur.fired = true;
            let title = format!("API key anomaly: {api_key} made {} requests in a minute", cur.count);
            ctx.emit(
                Alert::new(title.as_str())
                    .severity(Severity::P2)
                    .dedup_key(key.as_str())
                    .field("api_key_id", api_key)
                    .field("requests_this_minute", cur.count)
                    .field("baseline_mean", (stats.mean * 100.0).round() / 100.0)
                    .field("baseline_stddev", (stats.stddev * 100.0).round() / 100.0)
                    .field("baseline_minutes", stats.count)
                    .field("ip", ev.ip())
                    .action("Check whether the key's owner started a new workload")
                    .action("If not, revoke and rotate the key")
                    .action("Review what the key accessed during the spike"),
            );
            if let Some(kind) = self.key_decision {
                let reason = format!("{title} (baseline {:.1} +/- {:.1})", stats.mean, stats.stddev);
                let decision = Decision::new(Scope::ApiKey, api_key, kind)
                    .duration(self.decision_ms)
                    .reason(reason)
                    .alert(key.as_str());
                ctx.decide_once(decision);
            }
        }
        ctx.last_seen().set(&key, cur.encode());
        true
    }
}

vigil_sdk::export_rule!(ApiKeyAnomaly);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    fn used(key: &str, t: i64) -> TestEvent {
        TestEvent::new("api", "api_key_used").api_key(key).ip("9.9.9.9").at_ms(t)
    }

    /// `counts[m]` requests in minute `m`, evenly spread.
    fn minutes(key: &str, start_minute: i64, counts: &[i64]) -> Vec<TestEvent> {
        let mut out = Vec::new();
        for (m, &n) in counts.iter().enumerate() {
            for i in 0..n {
                out.push(used(key, (start_minute + m as i64) * MINUTE_MS + i * (MINUTE_MS / n.max(1))));
            }
        }
        out
    }

    const HISTORY: [i64; 10] = [10, 12, 9, 11, 10, 8, 12, 10, 11, 9];

    #[test]
    fn spike_after_ten_minutes_of_history_fires_once() {
        let mut h = Harness::<ApiKeyAnomaly>::new();
        assert!(h.run(minutes("k1", 0, &HISTORY)).is_empty());
        let alerts = h.run(minutes("k1", 10, &[60]));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].severity, Some(Severity::P2));
        // mean 10.2, stddev ~1.25: the limit is ~13.96, so the 14th request fires.
        assert_eq!(alerts[0].field_value("requests_this_minute").and_then(|v| v.as_i64()), Some(14));
    }

    #[test]
    fn by_default_the_key_is_throttled_tied_to_the_alert_once_while_it_stands() {
        let mut h = Harness::<ApiKeyAnomaly>::new();
        assert!(h.run_detailed(minutes("k1", 0, &HISTORY)).decisions.is_empty(), "normal minutes decide nothing");
        let out = h.run_detailed(minutes("k1", 10, &[60]));
        assert_eq!(out.decisions.len(), 1, "{:?}", out.decisions);
        let (a, d) = (&out.alerts[0], &out.decisions[0]);
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::ApiKey, "k1", DecisionKind::Throttle));
        assert_eq!(d.duration_ms, 30 * MINUTE_MS);
        assert_eq!(d.dedup_key.as_deref(), Some("api_key:k1"));
        assert_eq!(d.dedup_key, a.dedup_key, "tied to the alert");
        assert_eq!(d.event_seqs, a.event_seqs, "the request that crossed the limit");
        assert!(d.reason.starts_with("API key anomaly: k1 made 14 requests in a minute"), "{}", d.reason);
        assert!(h.invalid_decisions().is_empty());
        // The next minute spikes again: a new alert, the throttle already stands.
        let again = h.run_detailed(minutes("k1", 11, &[80]));
        assert_eq!((again.alerts.len(), again.decisions.len()), (1, 0));
    }

    #[test]
    fn the_decision_can_block_for_longer_or_be_off() {
        let config = r#"{"key_decision": "block", "key_decision_minutes": 5}"#;
        let mut h = Harness::<ApiKeyAnomaly>::new().config(config);
        h.run(minutes("k1", 0, &HISTORY));
        let d = h.run_detailed(minutes("k1", 10, &[60])).decisions;
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].kind, d[0].duration_ms), (DecisionKind::Block, 5 * MINUTE_MS));
        let mut off = Harness::<ApiKeyAnomaly>::new().config(r#"{"key_decision": "off"}"#);
        off.run(minutes("k1", 0, &HISTORY));
        let out = off.run_detailed(minutes("k1", 10, &[60]));
        assert_eq!((out.alerts.len(), out.decisions.len()), (1, 0), "the alert is the same");
        for bad in [r#"{"key_decision": "lock"}"#, r#"{"key_decision_minutes": "5"}"#] {
            assert!(Harness::<ApiKeyAnomaly>::new().config(bad).init().is_err(), "{bad}");
        }
    }

    #[test]
    fn normal_minutes_do_not_fire() {
        let mut h = Harness::<ApiKeyAnomaly>::new();
        assert!(h.run(minutes("k1", 0, &HISTORY)).is_empty());
        assert!(h.run(minutes("k1", 10, &[13, 12])).is_empty());
    }

    #[test]
    fn no_alert_before_ten_minutes_of_history() {
        let mut h = Harness::<ApiKeyAnomaly>::new();
        assert!(h.run(minutes("k2", 0, &HISTORY[..9])).is_empty());
        assert!(h.run(minutes("k2", 9, &[100])).is_empty(), "only 9 minutes of history");
    }

    #[test]
    fn keys_have_their_own_baselines() {
        let mut h = Harness::<ApiKeyAnomaly>::new();
        assert!(h.run(minutes("busy", 0, &[100, 110, 90, 105, 95, 100, 100, 102, 98, 100])).is_empty());
        assert!(h.run(minutes("busy", 10, &[110])).is_empty());
        assert!(h.run(minutes("quiet", 0, &HISTORY)).is_empty());
        assert_eq!(h.run(minutes("quiet", 10, &[40])).len(), 1);
    }
}
