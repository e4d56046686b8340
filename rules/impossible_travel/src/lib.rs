//! `impossible_travel`: two logins of one user too far apart for the time between them.
//!
//! Remembers each user's last `action=login_success` location (`geo.lat`/`geo.lon`) and
//! time; alerts (P2) when the great-circle (haversine) distance from it to the new login,
//! over the time between them, needs more than `max_speed_kmh` (1000 km/h).
//!
//! Automated response, on by default: with `user_decision` = `require_mfa` (the default)
//! the alert also asks the app to require a second factor from that user for
//! `user_decision_minutes` (60), tied to the alert (`user:<user_id>`) and naming both
//! logins; one decision per user while it stands. On by default because it is mild and
//! temporary: the real user answers the prompt and carries on, while whoever holds the
//! password on the other side of the world cannot. `lock` (the seed's "lock account")
//! stops the account instead, which a person should usually decide (VPNs and corporate
//! proxies move logins across the map); `off` issues nothing.

use vigil_sdk::time::{DAY_MS, HOUR_MS};
use vigil_sdk::{Alert, Config, Context, Decision, DecisionKind, Event, Manifest, Rule, Scope, Severity, Subscription};

/// Mean Earth radius.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// The rule.
pub struct ImpossibleTravel {
    max_speed_kmh: f64,
    /// What to decide on the user when it fires (`None`: nothing).
    user_decision: Option<DecisionKind>,
    /// For how long, in ms.
    decision_ms: i64,
    /// The state key, rebuilt per event in place.
    key: String,
}

impl Rule for ImpossibleTravel {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Two logins of one user faster apart than 1000 km/h")
            .severity(Severity::P2)
            .mitre(["T1078"])
            .fields(["user_id", "geo.lat", "geo.lon", "geo.country", "ip"])
            .subscribe(Subscription::action("login_success"))
            // Last-seen state is not windowed; a day of replay rebuilds what matters.
            .windows_ms([DAY_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["max_speed_kmh", "user_decision", "user_decision_minutes"])?;
        let max_speed_kmh = config.f64_or("max_speed_kmh", 1000.0)?;
        if max_speed_kmh.is_nan() || max_speed_kmh <= 0.0 {
            return Err("max_speed_kmh must be positive".to_owned());
        }
        let user_decision =
            config.decision_or("user_decision", "require_mfa", &[DecisionKind::RequireMfa, DecisionKind::Lock])?;
        let decision_ms = config.decision_minutes_or("user_decision_minutes", 60)?;
        Ok(ImpossibleTravel { max_speed_kmh, user_decision, decision_ms, key: String::with_capacity(64) })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let (Some(user), Some((lat, lon))) = (ev.user_id(), ev.geo()) else { return false };
        // The key is rebuilt in place (no allocation per event).
        self.key.clear();
        self.key.push_str("user:");
        self.key.push_str(user);
        let key = self.key.as_str();
        let last = ctx.last_seen();
        let previous = last.get(key).and_then(|seen| {
            let (plat, plon, pseq) = decode_location(&seen.value)?;
            Some((plat, plon, pseq, seen.time_ms))
        });
        // Keep the newest login as the reference (late events do not move it back).
        if previous.is_none_or(|(.., t)| ev.time_ms() >= t) {
            last.set(key, encode_location(lat, lon, ev.seq()));
        }
        let Some((plat, plon, pseq, ptime)) = previous else { return false };
        let km = haversine_km(plat, plon, lat, lon);
        let hours = (ev.time_ms() - ptime).unsigned_abs() as f64 / HOUR_MS as f64;
        let speed = if hours > 0.0 {
            km / hours
        } else if km > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        if speed <= self.max_speed_kmh {
            return false;
        }
        let speed_field = if speed.is_finite() { Some(speed.round()) } else { None };
        let title = format!("Impossible travel: {user} logged in {:.0} km apart in {:.1} h", km, hours);
        let dedup_key = format!("user:{user}");
        ctx.emit(
            Alert::new(title.as_str())
                .severity(Severity::P2)
                .dedup_key(dedup_key.as_str())
                .field("user_id", user)
                .field("distance_km", km.round())
                .field("hours", (hours * 100.0).round() / 100.0)
                .field("speed_kmh", speed_field)
                .field("from", format!("{plat},{plon}"))
                .field("to", format!("{lat},{lon}"))
                .field("country", ev.get("geo.country"))
                .field("ip", ev.ip())
                .event_seqs([pseq, ev.seq()])
                .action("Ask the user whether both logins were theirs")
                .action("If not, end the user's sessions and reset the credentials")
                .action("Check whether the new IP is a VPN or proxy"),
        );
        if let Some(kind) = self.user_decision.filter(|_| !user.is_empty()) {
            let decision = Decision::new(Scope::User, user, kind)
                .duration(self.decision_ms)
                .reason(title)
                .alert(dedup_key)
                .event_seqs([pseq, ev.seq()]);
            ctx.decide_once(decision);
        }
        true
    }
}

/// `"lat,lon,seq"` as stored by `evaluate`.
/// The stored reference login: `lat, lon` (f64) and `seq` (i64), little-endian, 24 bytes
/// (binary, so no float is formatted or parsed per event).
fn encode_location(lat: f64, lon: f64, seq: i64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&lat.to_le_bytes());
    out[8..16].copy_from_slice(&lon.to_le_bytes());
    out[16..].copy_from_slice(&seq.to_le_bytes());
    out
}

/// Reads [`encode_location`]'s form, or the text form `"lat,lon,seq"` of version 1.0.0
/// (state kept across a hot reload from it).
fn decode_location(value: &[u8]) -> Option<(f64, f64, i64)> {
    if let Ok(b) = <&[u8; 24]>::try_from(value) {
        let f = |r: std::ops::Range<usize>| <[u8; 8]>::try_from(&b[r]).ok();
        return Some((f64::from_le_bytes(f(0..8)?), f64::from_le_bytes(f(8..16)?), i64::from_le_bytes(f(16..24)?)));
    }
    parse_location(std::str::from_utf8(value).ok()?)
}

fn parse_location(text: &str) -> Option<(f64, f64, i64)> {
    let mut parts = text.split(',');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Great-circle distance in km between two points in degrees.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

vigil_sdk::export_rule!(ImpossibleTravel);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    #[test]
    fn stored_locations_round_trip_and_read_the_old_text_form() {
        assert_eq!(decode_location(&encode_location(48.8566, -2.5, 42)), Some((48.8566, -2.5, 42)));
        assert_eq!(decode_location(b"40.7128,-74.006,7"), Some((40.7128, -74.006, 7)));
        assert_eq!(decode_location(b"garbage"), None);
    }

    const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
    const LONDON: (f64, f64) = (51.5074, -0.1278);
    const BOSTON: (f64, f64) = (42.3601, -71.0589);

    fn login(user: &str, (lat, lon): (f64, f64), t: i64) -> TestEvent {
        TestEvent::new("authentication", "login_success").user(user).geo(lat, lon).at_ms(t)
    }

    #[test]
    fn haversine_new_york_london() {
        let km = haversine_km(NEW_YORK.0, NEW_YORK.1, LONDON.0, LONDON.1);
        assert!((km - 5570.0).abs() < 10.0, "{km}");
    }

    #[test]
    fn new_york_then_london_an_hour_later_fires() {
        let mut h = Harness::<ImpossibleTravel>::new();
        let alerts = h.run([login("alice", NEW_YORK, 0), login("alice", LONDON, HOUR_MS)]);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].severity, Some(Severity::P2));
        assert_eq!(alerts[0].event_seqs, [1, 2]);
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("user:alice"));
    }

    #[test]
    fn plausible_trips_and_other_users_do_not_fire() {
        let mut h = Harness::<ImpossibleTravel>::new();
        let alerts = h.run([
            // New York -> Boston (~300 km) in one hour: 300 km/h.
            login("bob", NEW_YORK, 0),
            login("bob", BOSTON, HOUR_MS),
            // New York -> London in 8 hours: ~700 km/h, a flight.
            login("bob", LONDON, 9 * HOUR_MS),
            // Another user elsewhere at the same time.
            login("carol", NEW_YORK, 9 * HOUR_MS),
            // Same place, same time.
            login("carol", NEW_YORK, 9 * HOUR_MS),
        ]);
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    #[test]
    fn by_default_the_user_must_answer_mfa_tied_to_the_alert_once_while_it_stands() {
        let mut h = Harness::<ImpossibleTravel>::new();
        let out = h.run_detailed([login("alice", NEW_YORK, 0), login("alice", LONDON, HOUR_MS)]);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.decisions.len(), 1, "{:?}", out.decisions);
        let (a, d) = (&out.alerts[0], &out.decisions[0]);
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::User, "alice", DecisionKind::RequireMfa));
        assert_eq!(d.duration_ms, HOUR_MS);
        assert_eq!(d.dedup_key, a.dedup_key, "tied to the alert");
        assert_eq!(d.event_seqs, [1, 2], "both logins");
        assert!(d.reason.contains("Impossible travel: alice"), "{}", d.reason);
        assert!(h.invalid_decisions().is_empty());
        // Back in New York 10 minutes later: another alert, but the MFA requirement stands.
        let again = h.run_detailed([login("alice", NEW_YORK, HOUR_MS + 10 * 60_000)]);
        assert_eq!((again.alerts.len(), again.decisions.len()), (1, 0), "{:?}", again.decisions);
        // Once it expired, the next impossible trip asks again.
        let later = h.run_detailed([login("alice", LONDON, 3 * HOUR_MS), login("alice", NEW_YORK, 3 * HOUR_MS + 1)]);
        assert_eq!(later.decisions.len(), 1, "{:?}", later.decisions);
    }

    #[test]
    fn the_decision_can_lock_for_longer_or_be_off() {
        let config = r#"{"user_decision": "lock", "user_decision_minutes": 240}"#;
        let mut h = Harness::<ImpossibleTravel>::new().config(config);
        let d = h.run_detailed([login("bob", NEW_YORK, 0), login("bob", LONDON, HOUR_MS)]).decisions;
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].kind, d[0].duration_ms), (DecisionKind::Lock, 4 * HOUR_MS));
        let mut off = Harness::<ImpossibleTravel>::new().config(r#"{"user_decision": "off"}"#);
        let out = off.run_detailed([login("bob", NEW_YORK, 0), login("bob", LONDON, HOUR_MS)]);
        assert_eq!((out.alerts.len(), out.decisions.len()), (1, 0), "the alert is the same");
        for bad in [r#"{"user_decision": "block"}"#, r#"{"user_decision_minutes": 0}"#, r#"{"user_decision": 1}"#] {
            assert!(Harness::<ImpossibleTravel>::new().config(bad).init().is_err(), "{bad}");
        }
    }

    #[test]
    fn logins_without_geo_are_ignored() {
        let mut h = Harness::<ImpossibleTravel>::new();
        let no_geo = TestEvent::new("authentication", "login_success").user("dave").at_ms(0);
        assert!(!h.step(no_geo).matched);
        assert!(h.run([login("dave", LONDON, 10), login("dave", LONDON, 20)]).is_empty());
    }
}
