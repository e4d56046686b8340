//! `new_country_login`: a user's successful login from a country not seen for them lately.
//!
//! Offered `action=login_success` only: other successful `category=authentication` events
//! (token refreshes, API key checks, MFA steps) are not logins and are not offered. Reads
//! `user_id` and `geo.country` (an ISO 3166 code: 2 or 3 ASCII letters, compared
//! case-insensitively); a login missing either, or with another country text, is ignored.
//!
//! Alerts (P3) when the user has not logged in from that country within the last
//! `lookback_days` (30): never, or only more than that long ago. Each user first goes
//! through a learning period: from the first login of the user the rule sees until
//! `learning_days` (7) later, logins only teach the rule their countries and never alert.
//! The login that alerts makes the country known, so a second login from it does not alert
//! again; the dedup key is `user:<user_id>:country:<CC>`.
//!
//! All memory is host state (`ctx.last_seen()`), none in the rule value, so it survives
//! hot reloads; the manifest declares a 30-day window so a restart replays 30 days of
//! events to rebuild it. Per user, `user:<user_id>` holds `first_ms,last_ms,last_country`
//! (the first and latest login times and the latest login's country); per user and
//! country, `country:<CC>:<user_id>` was last set at the latest login from that country.
//! Late events never move either back in time. Under the host's state limits (LRU
//! eviction) a user's entry may go, which starts a new learning period for the user
//! (quiet), or a (user, country) entry, which makes that country new again.
//!
//! Automated response, on by default: with `user_decision` = `require_mfa` (the default)
//! the alert also asks the app to require a second factor from that user for
//! `user_decision_minutes` (60), tied to the alert (`user:<user_id>:country:<CC>`); one
//! decision per user while it stands. On by default because it is mild and temporary: a
//! travelling user answers the prompt once, a stolen password used from abroad does not
//! get further. `lock` stops the account instead (a person should decide that: travel is
//! common); `off` issues nothing.
//!
//! Configuration: `lookback_days` (30, 1..=30), `learning_days` (7, 0..=30),
//! `user_decision` (`require_mfa`, `lock` or `off`), `user_decision_minutes` (60).

use vigil_sdk::time::DAY_MS;
use vigil_sdk::{Alert, Config, Context, Decision, DecisionKind, Event, Manifest, Rule, Scope, Severity, Subscription};

/// Longest `lookback_days`: the declared window, so a restart replays what it needs.
const MAX_LOOKBACK_DAYS: i64 = 30;

/// The rule; only configuration, all memory is host state.
pub struct NewCountryLogin {
    lookback_ms: i64,
    learning_ms: i64,
    /// What to decide on the user when it fires (`None`: nothing).
    user_decision: Option<DecisionKind>,
    /// For how long, in ms.
    decision_ms: i64,
    /// State keys and value, rebuilt per event in buffers reused across events.
    user_key: String,
    country_key: String,
    value: Vec<u8>,
}

/// Marker of the binary stored form of a [`Profile`].
const BINARY: u8 = 0xB1;

/// What the rule remembers of one user, kept in last-seen state (see [`Profile::encode_into`]).
struct Profile {
    first_ms: i64,
    last_ms: i64,
    last_country: Code,
}

/// A country code (2 or 3 ASCII letters, upper case), held inline: no allocation per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Code {
    bytes: [u8; 3],
    len: u8,
}

impl Code {
    fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Profile {
    /// Reads the stored form: binary (a `0xB1` marker byte, which never starts UTF-8 text,
    /// then `first_ms` and `last_ms` as little-endian i64, then the country), or the text
    /// form `"first,last,country"` of earlier versions (state kept across a hot reload).
    fn decode(value: &[u8]) -> Option<Profile> {
        if let [BINARY, rest @ ..] = value {
            let int = |r: std::ops::Range<usize>| {
                rest.get(r).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_le_bytes)
            };
            return Some(Profile {
                first_ms: int(0..8)?,
                last_ms: int(8..16)?,
                last_country: country_code(std::str::from_utf8(rest.get(16..)?).ok()?)?,
            });
        }
        Profile::parse(std::str::from_utf8(value).ok()?)
    }

    fn parse(text: &str) -> Option<Profile> {
        let mut p = text.splitn(3, ',');
        Some(Profile {
            first_ms: p.next()?.parse().ok()?,
            last_ms: p.next()?.parse().ok()?,
            last_country: country_code(p.next()?)?,
        })
    }

    /// Writes the stored (binary) form into `out`, reused across events: no allocation and
    /// no number formatting per event.
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(BINARY);
        out.extend_from_slice(&self.first_ms.to_le_bytes());
        out.extend_from_slice(&self.last_ms.to_le_bytes());
        out.extend_from_slice(self.last_country.as_str().as_bytes());
    }
}

impl Rule for NewCountryLogin {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Successful login from a country not seen for the user in 30 days, after 7 days of learning")
            .severity(Severity::P3)
            .mitre(["T1078"])
            .fields(["user_id", "geo.country", "geo.city", "ip"])
            .subscribe(Subscription::action("login_success"))
            // Last-seen state is not windowed; 30 days of replay rebuild the lookback.
            .windows_ms([MAX_LOOKBACK_DAYS * DAY_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["lookback_days", "learning_days", "user_decision", "user_decision_minutes"])?;
        let lookback_days = config.i64_or("lookback_days", 30)?;
        let learning_days = config.i64_or("learning_days", 7)?;
        if !(1..=MAX_LOOKBACK_DAYS).contains(&lookback_days) {
            return Err(format!("lookback_days must be within 1..={MAX_LOOKBACK_DAYS}"));
        }
        if !(0..=MAX_LOOKBACK_DAYS).contains(&learning_days) {
            return Err(format!("learning_days must be within 0..={MAX_LOOKBACK_DAYS}"));
        }
        let user_decision =
            config.decision_or("user_decision", "require_mfa", &[DecisionKind::RequireMfa, DecisionKind::Lock])?;
        let decision_ms = config.decision_minutes_or("user_decision_minutes", 60)?;
        Ok(NewCountryLogin {
            lookback_ms: lookback_days * DAY_MS,
            learning_ms: learning_days * DAY_MS,
            user_decision,
            decision_ms,
            user_key: String::with_capacity(64),
            country_key: String::with_capacity(64),
            value: Vec::with_capacity(64),
        })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(user) = ev.user_id().filter(|u| !u.is_empty()) else { return false };
        let Some(country) = ev.get("geo.country").and_then(country_code) else { return false };
        let now = ev.time_ms();
        let last = ctx.last_seen();

        // Keys and the stored value are built in buffers reused across events.
        self.user_key.clear();
        self.user_key.push_str("user:");
        self.user_key.push_str(user);
        let previous = last.get(&self.user_key).and_then(|s| Profile::decode(&s.value));
        self.country_key.clear();
        self.country_key.push_str("country:");
        self.country_key.push_str(country.as_str());
        self.country_key.push(':');
        self.country_key.push_str(user);
        let country_seen_ms = last.get(&self.country_key).map(|s| s.time_ms);

        // Learn first: the user's first and latest login, and this country's latest login.
        let profile = match &previous {
            None => Profile { first_ms: now, last_ms: now, last_country: country },
            Some(p) if now >= p.last_ms => {
                Profile { first_ms: p.first_ms.min(now), last_ms: now, last_country: country }
            }
            Some(p) => Profile { first_ms: p.first_ms.min(now), last_ms: p.last_ms, last_country: p.last_country },
        };
        profile.encode_into(&mut self.value);
        last.set(&self.user_key, &self.value);
        if country_seen_ms.is_none_or(|t| now >= t) {
            // Only the time of the country's latest login matters.
            last.set(&self.country_key, b"");
        }

        // A first sighting of the user, or a login within the learning period, only learns.
        let learning = previous.is_none() || now - profile.first_ms < self.learning_ms;
        // Seen within the lookback (a later login from there, for a late event, counts too).
        let recent = country_seen_ms.is_some_and(|t| now - t <= self.lookback_ms);
        if learning || recent {
            return false;
        }

        let days_ago = country_seen_ms.map(|t| (now - t) / DAY_MS);
        let when = match days_ago {
            Some(d) => format!("last seen {d} days ago"),
            None => "never seen before".to_owned(),
        };
        let previous_country = previous.map(|p| p.last_country).filter(|c| *c != country);
        let title = format!("New country login: {user} logged in from {country} ({when})");
        let dedup_key = format!("user:{user}:country:{country}");
        ctx.emit(
            Alert::new(title.as_str())
                .severity(Severity::P3)
                .dedup_key(dedup_key.as_str())
                .field("user_id", user)
                .field("country", country.as_str())
                .field("city", ev.get("geo.city"))
                .field("ip", ev.ip())
                .field("previous_country", previous_country.map(|c| c.as_str().to_owned()))
                .field("country_last_seen_days_ago", days_ago)
                .field("user_known_days", (now - profile.first_ms) / DAY_MS)
                .action("Require additional verification (step-up MFA) for the session")
                .action("Email the user asking to confirm the login")
                .action("Monitor the account for suspicious activity"),
        );
        if let Some(kind) = self.user_decision {
            let decision =
                Decision::new(Scope::User, user, kind).duration(self.decision_ms).reason(title).alert(dedup_key);
            ctx.decide_once(decision);
        }
        true
    }
}

/// `geo.country` as an upper-case code: 2 or 3 ASCII letters after trimming, else `None`.
fn country_code(text: &str) -> Option<Code> {
    let code = text.trim().as_bytes();
    if !(2..=3).contains(&code.len()) || !code.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let mut bytes = [0u8; 3];
    for (b, c) in bytes.iter_mut().zip(code) {
        *b = c.to_ascii_uppercase();
    }
    Some(Code { bytes, len: code.len() as u8 })
}

vigil_sdk::export_rule!(NewCountryLogin);

#[cfg(test)]
mod tests {
    use vigil_sdk::Value;
    use vigil_sdk::testing::{Harness, TestEvent};
    use vigil_sdk::time::HOUR_MS;

    use super::*;

    #[test]
    fn stored_profiles_round_trip_and_read_the_old_text_form() {
        let p = Profile { first_ms: 1_767_225_600_000, last_ms: -5, last_country: country_code("FR").unwrap() };
        let mut buf = Vec::new();
        p.encode_into(&mut buf);
        let back = Profile::decode(&buf).unwrap();
        assert_eq!((back.first_ms, back.last_ms, back.last_country.as_str()), (1_767_225_600_000, -5, "FR"));
        assert_eq!(country_code(" de ").map(|c| c.to_string()).as_deref(), Some("DE"));
        let old = Profile::decode(b"1767225600000,1767225600001,DE").unwrap();
        assert_eq!(
            (old.first_ms, old.last_ms, old.last_country.as_str()),
            (1_767_225_600_000, 1_767_225_600_001, "DE")
        );
        assert!(Profile::decode(&[BINARY, 1, 2]).is_none());
    }

    fn login(user: &str, country: &str, t: i64) -> TestEvent {
        TestEvent::new("authentication", "login_success")
            .outcome("success")
            .user(user)
            .country(country)
            .ip("203.0.113.7")
            .at_ms(t)
    }

    fn day(d: i64) -> i64 {
        d * DAY_MS
    }

    /// A harness where `user` logged in from `country` at day 0 and day 8 (learned, known).
    fn learned(user: &str, country: &str) -> Harness<NewCountryLogin> {
        let mut h = Harness::<NewCountryLogin>::new();
        assert!(h.run([login(user, country, 0), login(user, country, day(8))]).is_empty());
        h
    }

    fn int(a: &Alert, name: &str) -> Option<i64> {
        a.field_value(name).and_then(Value::as_i64)
    }

    fn text<'a>(a: &'a Alert, name: &str) -> Option<&'a str> {
        a.field_value(name).and_then(Value::as_str)
    }

    #[test]
    fn new_country_after_learning_fires_once() {
        let mut h = learned("alice", "US");
        let step = h.step(login("alice", "BR", day(8) + HOUR_MS).field("geo.city", "Sao Paulo"));
        assert!(step.matched);
        assert_eq!(step.alerts.len(), 1, "{:?}", step.alerts);
        let a = &step.alerts[0];
        assert_eq!(a.severity, Some(Severity::P3));
        assert_eq!(a.dedup_key.as_deref(), Some("user:alice:country:BR"));
        assert_eq!(a.title, "New country login: alice logged in from BR (never seen before)");
        assert_eq!(a.event_seqs, [3]);
        assert_eq!(text(a, "country"), Some("BR"));
        assert_eq!(text(a, "city"), Some("Sao Paulo"));
        assert_eq!(text(a, "previous_country"), Some("US"));
        assert_eq!(text(a, "ip"), Some("203.0.113.7"));
        assert_eq!(int(a, "user_known_days"), Some(8));
        assert_eq!(a.field_value("country_last_seen_days_ago"), None, "never seen");
        // Now known: later logins from there, and back home, are quiet.
        assert!(h.run([login("alice", "BR", day(9)), login("alice", "US", day(10))]).is_empty());
    }

    #[test]
    fn by_default_a_new_country_requires_mfa_tied_to_the_alert_once_while_it_stands() {
        let mut h = learned("alice", "US");
        let out = h.run_detailed([login("alice", "BR", day(8) + HOUR_MS)]);
        assert_eq!(out.decisions.len(), 1, "{:?}", out.decisions);
        let (a, d) = (&out.alerts[0], &out.decisions[0]);
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::User, "alice", DecisionKind::RequireMfa));
        assert_eq!(d.duration_ms, HOUR_MS);
        assert_eq!(d.dedup_key.as_deref(), Some("user:alice:country:BR"));
        assert_eq!(d.dedup_key, a.dedup_key, "tied to the alert");
        assert_eq!(d.event_seqs, [3], "the login from the new country");
        assert!(d.reason.contains("from BR"), "{}", d.reason);
        assert!(h.invalid_decisions().is_empty());
        // A third country within the hour: an alert, the requirement already stands.
        let again = h.run_detailed([login("alice", "JP", day(8) + HOUR_MS + 60_000)]);
        assert_eq!((again.alerts.len(), again.decisions.len()), (1, 0));
        // Known countries and the learning period decide nothing.
        let quiet = h.run_detailed([login("alice", "US", day(9))]);
        assert!(quiet.alerts.is_empty() && quiet.decisions.is_empty());
        let mut fresh = Harness::<NewCountryLogin>::new();
        assert!(fresh.run_detailed([login("bob", "US", 0), login("bob", "FR", day(1))]).decisions.is_empty());
    }

    #[test]
    fn the_decision_can_lock_for_longer_or_be_off() {
        let config = r#"{"user_decision": "lock", "user_decision_minutes": 30, "learning_days": 0}"#;
        let mut h = Harness::<NewCountryLogin>::new().config(config);
        let d = h.run_detailed([login("carol", "US", 0), login("carol", "DE", day(1))]).decisions;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].kind, d[0].duration_ms), (DecisionKind::Lock, HOUR_MS / 2));
        let mut off = Harness::<NewCountryLogin>::new().config(r#"{"user_decision": "off", "learning_days": 0}"#);
        let out = off.run_detailed([login("carol", "US", 0), login("carol", "DE", day(1))]);
        assert_eq!((out.alerts.len(), out.decisions.len()), (1, 0), "the alert is the same");
        for bad in [r#"{"user_decision": "throttle"}"#, r#"{"user_decision_minutes": 43201}"#] {
            assert!(Harness::<NewCountryLogin>::new().config(bad).init().is_err(), "{bad}");
        }
    }

    #[test]
    fn learning_period_only_learns() {
        let mut h = Harness::<NewCountryLogin>::new();
        let out = h.run_detailed([
            // The first login ever, then new countries within the 7 days: learned, quiet.
            login("bob", "US", 0),
            login("bob", "FR", day(3)),
            login("bob", "BR", day(7) - 1),
        ]);
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
        assert_eq!(out.matched, [false, false, false]);
        // Countries learned during learning stay known afterwards.
        assert!(h.run([login("bob", "FR", day(7)), login("bob", "BR", day(12))]).is_empty());
        // The learning period ends exactly 7 days after the first login.
        let alerts = h.run([login("bob", "JP", day(12) + 1)]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("user:bob:country:JP"));
        let mut edge = Harness::<NewCountryLogin>::new();
        assert!(edge.run([login("carol", "US", 0)]).is_empty());
        assert_eq!(edge.run([login("carol", "DE", day(7))]).len(), 1, "day 7 is past the learning period");
    }

    #[test]
    fn first_login_ever_never_fires_even_without_learning_period() {
        let mut h = Harness::<NewCountryLogin>::new().config(r#"{"learning_days": 0}"#);
        assert!(h.run([login("dave", "US", day(100))]).is_empty(), "nothing known about dave yet");
        assert_eq!(h.run([login("dave", "CA", day(100) + 1)]).len(), 1, "no learning period: next new country fires");
    }

    #[test]
    fn country_seen_within_thirty_days_does_not_fire_and_older_does() {
        // Seen 29 days and exactly 30 days ago: still known.
        for gap in [day(29), day(30)] {
            let mut h = learned("erin", "US");
            assert!(h.run([login("erin", "DE", day(9))]).len() == 1, "DE is new at day 9");
            assert!(h.run([login("erin", "DE", day(9) + gap)]).is_empty(), "gap {gap}");
        }
        // Seen 30 days and 1 ms ago: new again, with how long ago it was seen.
        let mut h = learned("erin", "US");
        assert_eq!(h.run([login("erin", "DE", day(9))]).len(), 1);
        let alerts = h.run([login("erin", "US", day(30)), login("erin", "DE", day(9) + day(30) + 1)]);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].title, "New country login: erin logged in from DE (last seen 30 days ago)");
        assert_eq!(int(&alerts[0], "country_last_seen_days_ago"), Some(30));
        assert_eq!(text(&alerts[0], "previous_country"), Some("US"));
    }

    #[test]
    fn regular_logins_keep_a_country_known() {
        // Weekly logins from two countries for three months never fire.
        let mut h = Harness::<NewCountryLogin>::new();
        let events = (0..13).flat_map(|w| [login("frank", "US", day(7 * w)), login("frank", "CA", day(7 * w + 3))]);
        assert!(h.run(events).is_empty());
        // A country last seen in week 0 only is new again three months later.
        assert!(h.run([login("frank", "MX", day(1))]).is_empty(), "learned in week 0");
        assert_eq!(h.run([login("frank", "MX", day(91))]).len(), 1);
    }

    #[test]
    fn country_codes_are_normalised_and_bad_ones_ignored() {
        let mut h = learned("gina", "US");
        let out = h.run_detailed([
            login("gina", " us ", day(9)),
            login("gina", "United States", day(9)),
            login("gina", "", day(9)),
            login("gina", "U1", day(9)),
            TestEvent::new("authentication", "login_success").user("gina").at_ms(day(9)),
            TestEvent::new("authentication", "login_success").country("FR").at_ms(day(9)),
            login("", "FR", day(9)),
        ]);
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
        assert_eq!(out.offered, [true; 7]);
        assert_eq!(out.matched, [false; 7]);
        // Lower case is the same country, and alerts carry the upper-case code.
        let alerts = h.run([login("gina", "fr", day(9)), login("gina", "FR", day(9) + 1)]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("user:gina:country:FR"));
        // Three-letter codes are accepted too.
        assert_eq!(h.run([login("gina", "deu", day(10))]).len(), 1);
    }

    #[test]
    fn users_are_learned_apart() {
        let mut h = learned("hank", "US");
        // ivy is new: her first login from anywhere only starts her learning period.
        assert!(h.run([login("ivy", "BR", day(9))]).is_empty());
        // hank has never been in BR, though ivy was.
        assert_eq!(h.run([login("hank", "BR", day(9))]).len(), 1);
        // ivy has never been in US, though hank was; she is still learning.
        assert!(h.run([login("ivy", "US", day(10))]).is_empty());
        assert_eq!(h.run([login("ivy", "JP", day(16))]).len(), 1);
    }

    #[test]
    fn only_successful_logins_are_offered() {
        let mut h = learned("jack", "US");
        let failed = TestEvent::new("authentication", "login_failed").outcome("failure").user("jack").country("RU");
        let refresh = TestEvent::new("authentication", "token_refresh").outcome("success").user("jack").country("RU");
        assert!(!h.step(failed.at_ms(day(9))).offered);
        assert!(!h.step(refresh.at_ms(day(9))).offered);
        // Neither taught the rule RU.
        assert_eq!(h.run([login("jack", "RU", day(9))]).len(), 1);
    }

    #[test]
    fn late_events_do_not_fire_or_rewind_state() {
        let mut h = learned("kate", "US");
        assert_eq!(h.run([login("kate", "DE", day(20))]).len(), 1);
        // A late DE login (before the one at day 20) and a late login from a country seen
        // later: neither is new, and neither moves the last sighting back.
        assert!(h.run([login("kate", "DE", day(15)), login("kate", "US", day(1))]).is_empty());
        assert!(h.run([login("kate", "DE", day(49))]).is_empty(), "DE last seen at day 20, not 15");
        // A late login from day 1 does not restart kate's learning period either.
        assert_eq!(h.run([login("kate", "IT", day(49))]).len(), 1);
    }

    #[test]
    fn memory_is_host_state_and_survives_reload() {
        let mut h = learned("liam", "US");
        h.reload().unwrap();
        assert!(h.run([login("liam", "US", day(9))]).is_empty(), "US still known after reload");
        assert_eq!(h.run([login("liam", "NL", day(9))]).len(), 1, "learning not restarted by reload");
        // One user entry, one entry per (user, country) and the standing MFA decision.
        assert_eq!(h.state().len(), 4);
        let mut quiet = Harness::<NewCountryLogin>::new().config(r#"{"user_decision": "off"}"#);
        quiet.run([login("liam", "US", 0), login("liam", "US", day(8)), login("liam", "NL", day(9))]);
        assert_eq!(quiet.state().len(), 3, "without decisions, no decision entry");
    }

    #[test]
    fn configuration() {
        let mut h = Harness::<NewCountryLogin>::new().config(r#"{"lookback_days": 7, "learning_days": 1}"#);
        assert!(h.run([login("mia", "US", 0), login("mia", "CA", day(1) - 1)]).is_empty(), "learning");
        assert!(h.run([login("mia", "CA", day(8) - 1)]).is_empty(), "seen within 7 days");
        assert_eq!(h.run([login("mia", "CA", day(15))]).len(), 1, "not seen within 7 days");
        for bad in [
            r#"{"lookback": 30}"#,
            r#"{"lookback_days": 0}"#,
            r#"{"lookback_days": 31}"#,
            r#"{"learning_days": -1}"#,
            r#"{"learning_days": "7"}"#,
        ] {
            assert!(Harness::<NewCountryLogin>::new().config(bad).init().is_err(), "{bad}");
        }
        let unknown = Harness::<NewCountryLogin>::new().config(r#"{"lookback": 30}"#).init().unwrap_err();
        assert!(unknown.contains("`lookback`"), "{unknown}");
    }

    #[test]
    fn manifest_declares_what_it_reads() {
        let m = NewCountryLogin::manifest();
        assert_eq!(m.name, "new_country_login");
        assert_eq!(m.severity, Severity::P3);
        assert_eq!(m.longest_window_ms(), 30 * DAY_MS);
        assert!(m.matches("authentication", "login_success", "success"));
        assert!(!m.matches("authentication", "mfa_verified", "success"));
        let mut h = learned("noah", "US");
        h.run([login("noah", "FR", day(9)).field("geo.city", "Paris")]);
        assert_eq!(h.lazy_field_reads(), 0, "every field read is declared");
    }
}
