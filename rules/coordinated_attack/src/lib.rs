//! `coordinated_attack`: many different accounts locked out within an hour.
//!
//! Tracks the distinct `user_id`s of `action=account_locked` events over a 1-hour window
//! and alerts (P1) when their number crosses `threshold` (10): a password-spraying or
//! credential-stuffing campaign rather than one forgetful user.
//!
//! Automated response ("Enable IP blocking"), on by default as a throttle: when the
//! threshold is crossed the rule throttles (`ip_decision` = `throttle`) the IPs the
//! lockouts of the last hour came from (the newest 16 of them) for `ip_decision_minutes`
//! (30), and then, while more than `threshold` accounts stay locked out within the hour,
//! the IP of every further lockout; one decision per IP while it stands, each tied to the
//! P1 alert (`account_locked:distinct_users`) and naming that IP's lockouts. On by default
//! because a campaign across many accounts is not one user's mistake and the responder is
//! being paged anyway, while a throttle (429 with `Retry-After`) is mild, temporary and
//! reversible: a legitimate user behind one of those addresses is slowed down, not shut
//! out. `"ip_decision": "block"` turns the IPs away instead (403: a person should usually
//! make that call, an office NAT may be among them), `"off"` decides nothing (then the rule
//! keeps no per-IP state). Lockouts without an IP, or with one longer than 45 bytes or
//! holding whitespace, are counted but decide nothing.

use vigil_sdk::time::HOUR_MS;
use vigil_sdk::{
    Alert, Config, Context, DecideStatus, Decision, DecisionKind, Event, Level, Manifest, Rule, Scope, Severity,
    Subscription,
};

const WINDOW_MS: i64 = HOUR_MS;
const KEY: &str = "account_locked";
const DEDUP_KEY: &str = "account_locked:distinct_users";
/// Last-seen key of the IPs of the recent lockouts (`<time_ms> <ip>` lines, oldest first).
const IPS_KEY: &str = "recent_ips";
/// Most IPs remembered, hence decided on at the crossing.
const TRACKED_IPS: usize = 16;
/// Longest last-seen value kept as it is (longer ones are stored hashed).
const MAX_STORED_BYTES: usize = 1024;
/// Longest IP tracked: a textual IPv6 address with an IPv4 tail.
const MAX_IP_BYTES: usize = 45;

/// The rule.
pub struct CoordinatedAttack {
    threshold: i64,
    /// What to decide on the attacking IPs (`None`: nothing).
    ip_decision: Option<DecisionKind>,
    /// For how long, in ms.
    decision_ms: i64,
}

impl Rule for CoordinatedAttack {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("More than 10 distinct accounts locked out within an hour")
            .severity(Severity::P1)
            .mitre(["T1110.003", "T1110.004"])
            .fields(["user_id", "ip"])
            .subscribe(Subscription::action("account_locked"))
            .windows_ms([WINDOW_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["threshold", "ip_decision", "ip_decision_minutes"])?;
        let threshold = config.i64_or("threshold", 10)?;
        if threshold < 0 {
            return Err("threshold must not be negative".to_owned());
        }
        let ip_decision =
            config.decision_or("ip_decision", "throttle", &[DecisionKind::Throttle, DecisionKind::Block])?;
        let decision_ms = config.decision_minutes_or("ip_decision_minutes", 30)?;
        Ok(CoordinatedAttack { threshold, ip_decision, decision_ms })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(user) = ev.user_id().filter(|u| !u.is_empty()) else { return false };
        let users = ctx.distinct(WINDOW_MS);
        let before = users.count(KEY);
        let after = users.add(KEY, user);
        let crossed = before <= self.threshold && after > self.threshold;
        if crossed {
            ctx.emit(
                Alert::new(format!("Coordinated attack: {after} accounts locked out within an hour"))
                    .severity(Severity::P1)
                    .dedup_key(DEDUP_KEY)
                    .event_seqs(users.seqs(KEY))
                    .field("distinct_users", after)
                    .field("window", "1h")
                    .field("last_user_id", user)
                    .field("last_ip", ev.ip())
                    .action("Look for password spraying: one IP or ASN across many accounts")
                    .action("Consider blocking the source IPs and forcing password resets")
                    .action("Check for successful logins of the affected accounts"),
            );
        }
        let Some(kind) = self.ip_decision else { return true };
        let ip = ev.ip().filter(|ip| trackable(ip));
        if let Some(ip) = ip {
            ctx.window(WINDOW_MS).add(ip_key(ip), 1);
        }
        if crossed {
            for (_, attacker) in &remember(ctx, ip) {
                self.decide(ctx, kind, attacker, after);
            }
        } else if let Some(ip) = ip {
            remember(ctx, Some(ip));
            if after > self.threshold {
                self.decide(ctx, kind, ip, after);
            }
        }
        true
    }
}

impl CoordinatedAttack {
    /// Decides `kind` on `ip` unless this rule's previous decision on it still stands.
    fn decide(&self, ctx: &Context, kind: DecisionKind, ip: &str, accounts: i64) {
        let decided = format!("decided:{ip}");
        let previous = ctx.last_seen().get(&decided);
        if previous.is_some_and(|p| p.as_str() == Some(kind.as_str()) && p.time_ms + self.decision_ms > ctx.time_ms()) {
            return;
        }
        let lockouts = ctx.window(WINDOW_MS).seqs(ip_key(ip));
        let decision = Decision::new(Scope::Ip, ip, kind)
            .duration(self.decision_ms)
            .reason(format!(
                "Coordinated attack: {accounts} accounts locked out within an hour, {} of the lockouts from {ip}",
                lockouts.len()
            ))
            .alert(DEDUP_KEY)
            .event_seqs(lockouts);
        match ctx.decide(decision) {
            DecideStatus::Accepted => ctx.last_seen().set(&decided, kind.as_str()),
            status => ctx.log(Level::Info, &format!("{kind} decision on {ip} not accepted: {status:?}")),
        }
    }
}

/// Whether `ip` can be remembered and decided on: 1 to 45 bytes, no whitespace or
/// control characters.
fn trackable(ip: &str) -> bool {
    !ip.is_empty() && ip.len() <= MAX_IP_BYTES && !ip.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The IPs of the lockouts of the last hour, oldest first, as `(time_ms, ip)`: at most
/// [`TRACKED_IPS`], the newest. With `ip`, first adds it (now) and stores the list.
fn remember(ctx: &Context, ip: Option<&str>) -> Vec<(i64, String)> {
    let now = ctx.time_ms();
    let stored = ctx.last_seen().get(IPS_KEY);
    let mut recent: Vec<(i64, String)> = stored
        .as_ref()
        .and_then(|s| s.as_str())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (t, addr) = line.split_once(' ')?;
            Some((t.parse().ok()?, addr.to_owned()))
        })
        .filter(|(t, addr)| *t > now - WINDOW_MS && Some(addr.as_str()) != ip)
        .collect();
    let Some(ip) = ip else { return recent };
    recent.push((now, ip.to_owned()));
    let excess = recent.len().saturating_sub(TRACKED_IPS);
    recent.drain(..excess);
    let mut text = encode(&recent);
    while text.len() > MAX_STORED_BYTES && recent.len() > 1 {
        recent.remove(0);
        text = encode(&recent);
    }
    ctx.last_seen().set(IPS_KEY, text);
    recent
}

fn encode(recent: &[(i64, String)]) -> String {
    recent.iter().map(|(t, ip)| format!("{t} {ip}")).collect::<Vec<_>>().join("\n")
}

vigil_sdk::export_rule!(CoordinatedAttack);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};
    use vigil_sdk::time::MINUTE_MS;

    use super::*;

    fn lock(user: usize, t: i64) -> TestEvent {
        lock_from(user, "6.6.6.6", t)
    }

    fn lock_from(user: usize, ip: &str, t: i64) -> TestEvent {
        TestEvent::new("authentication", "account_locked").user(&format!("user{user}")).ip(ip).at_ms(t)
    }

    #[test]
    fn eleven_distinct_users_in_an_hour_fire_once() {
        let mut h = Harness::<CoordinatedAttack>::new();
        let alerts = h.run((0..15).map(|u| lock(u, u as i64 * MINUTE_MS)));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].severity, Some(Severity::P1));
        assert_eq!(alerts[0].field_value("distinct_users").and_then(|v| v.as_i64()), Some(11));
        assert_eq!(alerts[0].event_seqs, (1..=11).collect::<Vec<i64>>(), "one lockout per distinct user");
    }

    #[test]
    fn ten_users_or_repeats_of_one_user_do_not_fire() {
        let mut h = Harness::<CoordinatedAttack>::new();
        assert!(h.run((0..10).map(|u| lock(u, u as i64 * 1000))).is_empty());
        assert!(h.run((0..30).map(|i| lock(3, 20_000 + i))).is_empty(), "repeats count once");
    }

    #[test]
    fn eleven_users_spread_over_two_hours_do_not_fire() {
        let mut h = Harness::<CoordinatedAttack>::new();
        assert!(h.run((0..11).map(|u| lock(u, u as i64 * 12 * MINUTE_MS))).is_empty());
    }

    #[test]
    fn the_crossing_throttles_the_attacking_ips_tied_to_the_alert() {
        let mut h = Harness::<CoordinatedAttack>::new();
        let ips = ["6.6.6.1", "6.6.6.2", "2001:db8::7"];
        let before = h.run_detailed((0..10).map(|u| lock_from(u, ips[u % 3], u as i64 * MINUTE_MS)));
        assert!(before.alerts.is_empty() && before.decisions.is_empty(), "nothing before the threshold");
        let out = h.run_detailed([lock_from(10, ips[1], 10 * MINUTE_MS)]);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.decisions.len(), 3, "every IP of the campaign: {:?}", out.decisions);
        // Oldest last lockout first.
        let values: Vec<&str> = out.decisions.iter().map(|d| d.value.as_str()).collect();
        assert_eq!(values, ["2001:db8::7", "6.6.6.1", "6.6.6.2"]);
        for d in &out.decisions {
            assert_eq!((d.scope, d.kind, d.duration_ms), (Scope::Ip, DecisionKind::Throttle, 30 * MINUTE_MS));
            assert_eq!(d.dedup_key.as_deref(), Some(DEDUP_KEY));
            assert_eq!(d.dedup_key, out.alerts[0].dedup_key, "tied to the P1 alert");
        }
        assert_eq!(out.decisions[0].event_seqs, [3, 6, 9], "that IP's lockouts");
        assert_eq!(out.decisions[2].event_seqs, [2, 5, 8, 11]);
        assert!(out.decisions[2].reason.contains("11 accounts"), "{}", out.decisions[2].reason);
        assert!(h.invalid_decisions().is_empty());

        // While the campaign lasts: a new IP is throttled, the decided ones are not again.
        let later = h.run_detailed([
            lock_from(11, ips[0], 11 * MINUTE_MS),
            lock_from(12, "203.0.113.9", 12 * MINUTE_MS),
            lock_from(13, "203.0.113.9", 13 * MINUTE_MS),
        ]);
        assert!(later.alerts.is_empty());
        assert_eq!(later.decisions.len(), 1, "{:?}", later.decisions);
        assert_eq!(
            (later.decisions[0].value.as_str(), later.decisions[0].event_seqs.as_slice()),
            ("203.0.113.9", &[13][..])
        );
        // Once a throttle has run out, the IP is throttled again if it goes on.
        let again = h.run_detailed([lock_from(14, ips[0], 41 * MINUTE_MS)]);
        assert_eq!(again.decisions.len(), 1, "{:?}", again.decisions);
        assert_eq!(again.decisions[0].value, "6.6.6.1");
    }

    #[test]
    fn at_most_sixteen_ips_at_the_crossing_and_untrackable_ips_are_skipped() {
        let mut h = Harness::<CoordinatedAttack>::new().config(r#"{"threshold": 20}"#);
        let mut events: Vec<_> = (0..20).map(|u| lock_from(u, &format!("10.0.0.{u}"), u as i64 * 1000)).collect();
        events.push(lock_from(20, "not an ip", 20_000));
        events.push(TestEvent::new("authentication", "account_locked").user("user21").at_ms(21_000));
        let out = h.run_detailed(events);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.decisions.len(), 16, "the newest 16: {:?}", out.decisions);
        assert_eq!(out.decisions[0].value, "10.0.0.4");
        assert_eq!(out.decisions[15].value, "10.0.0.19");
    }

    #[test]
    fn the_decision_can_be_a_block_or_turned_off() {
        let campaign = || (0..11).map(|u| lock(u, u as i64 * MINUTE_MS));
        let mut block =
            Harness::<CoordinatedAttack>::new().config(r#"{"ip_decision": "block", "ip_decision_minutes": 90}"#);
        let d = block.run_detailed(campaign()).decisions;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (d[0].value.as_str(), d[0].kind, d[0].duration_ms),
            ("6.6.6.6", DecisionKind::Block, 90 * MINUTE_MS)
        );
        assert_eq!(d[0].event_seqs, (1..=11).collect::<Vec<i64>>());

        let mut off = Harness::<CoordinatedAttack>::new().config(r#"{"ip_decision": "off"}"#);
        let out = off.run_detailed(campaign().chain([lock(11, 12 * MINUTE_MS)]));
        assert_eq!(out.alerts.len(), 1, "the alert is the same");
        assert!(out.decisions.is_empty(), "{:?}", out.decisions);
        assert_eq!(off.state().len(), 1, "only the distinct users");
        for bad in [r#"{"ip_decision": "lock"}"#, r#"{"ip_decision_minutes": 0}"#, r#"{"block_ips": true}"#] {
            assert!(Harness::<CoordinatedAttack>::new().config(bad).init().is_err(), "{bad}");
        }
    }
}
