//! Native test harness: runs a [`Rule`] on the build machine exactly as the host would.
//!
//! Events are filtered by the manifest's subscriptions ([`Manifest::matches`]), encoded into
//! an input area with [`crate::record`], evaluated by the same [`Runtime`] the wasm exports
//! use, against the same [`crate::state`]; the clock is the event time. Native only.
//!
//! Decisions are validated as the host validates them ([`crate::Decision::from_json`]);
//! every valid one is accepted: the harness has no decision rate limit and no server policy
//! (allowed scopes, longest duration, cap on active decisions), so `Context::decide`
//! answers `Accepted` or `Invalid` here, never `RateLimited` or `Refused`.

mod event;

pub use event::TestEvent;

use crate::abi::native::{NativeHost, swap_host};
use crate::alert::Alert;
use crate::decision::Decision;
use crate::manifest::{Kind, Manifest};
use crate::record::{LayoutError, RecordWriter, field_text};
use crate::rule::{Rule, Runtime};
use crate::state::{StateLimits, StateStore};
use crate::{INPUT_AREA_BYTES, MAX_EVENTS_PER_CALL};

/// What happened to a list of events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Per event: whether the subscriptions offered it to the rule.
    pub offered: Vec<bool>,
    /// Per event: the rule's verdict (`false` when not offered).
    pub matched: Vec<bool>,
    /// Alerts accepted, in order (severity and dedup key defaults filled in as by the host).
    pub alerts: Vec<Alert>,
    /// Decisions accepted (every valid one), in order.
    pub decisions: Vec<Decision>,
    /// Routing rules: `(event position, receiver)`.
    pub routes: Vec<(usize, String)>,
}

/// What happened to one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Whether the subscriptions offered it to the rule.
    pub offered: bool,
    /// The rule's verdict.
    pub matched: bool,
    /// Alerts accepted.
    pub alerts: Vec<Alert>,
    /// Decisions accepted (every valid one).
    pub decisions: Vec<Decision>,
    /// Receivers named (routing rules).
    pub routes: Vec<String>,
}

/// Runs rule `R` natively. State persists across calls, as in the host.
#[derive(Debug)]
pub struct Harness<R> {
    manifest: Manifest,
    config: String,
    runtime: Option<Runtime<R>>,
    host: NativeHost,
    next_seq: i64,
    clock_ms: i64,
    max_batch: usize,
    area: Vec<u8>,
    verdicts: Vec<u8>,
}

impl<R: Rule> Default for Harness<R> {
    fn default() -> Self {
        Harness::new()
    }
}

/// Puts a harness's host in place for one call and takes it back, even on panic.
struct HostGuard<'a>(&'a mut NativeHost);

impl<'a> HostGuard<'a> {
    fn install(host: &'a mut NativeHost) -> HostGuard<'a> {
        swap_host(host);
        HostGuard(host)
    }
}

impl Drop for HostGuard<'_> {
    fn drop(&mut self) {
        swap_host(self.0);
    }
}

impl<R: Rule> Harness<R> {
    /// A harness with configuration `{}`. Panics if the manifest is invalid.
    pub fn new() -> Harness<R> {
        let manifest = R::manifest();
        if let Err(e) = manifest.validate() {
            panic!("{e}");
        }
        let host = NativeHost { default_severity: Some(manifest.severity), ..NativeHost::default() };
        Harness {
            manifest,
            config: "{}".to_owned(),
            runtime: None,
            host,
            next_seq: 1,
            clock_ms: 0,
            max_batch: MAX_EVENTS_PER_CALL,
            area: vec![0; INPUT_AREA_BYTES],
            verdicts: vec![0; MAX_EVENTS_PER_CALL],
        }
    }

    /// Sets the configuration JSON (the rule is initialised on first use).
    pub fn config(mut self, json: &str) -> Harness<R> {
        json.clone_into(&mut self.config);
        self.runtime = None;
        self
    }

    /// Sets the state limits (drops existing state).
    pub fn state_limits(mut self, limits: StateLimits) -> Harness<R> {
        self.host.state = StateStore::new(limits);
        self
    }

    /// Gives the rule a server list it can ask with `Context::in_list`: `kind` is `ip`,
    /// `cidr` or `value` and `text` the file as the server reads it (one entry per line,
    /// `#` and `;` comments). Panics on an entry the server would refuse.
    pub fn list(mut self, name: &str, kind: &str, text: &str) -> Harness<R> {
        let list = crate::lists::TestList::parse(kind, text).unwrap_or_else(|e| panic!("list `{name}`: {e}"));
        self.host.lists.insert(name.to_owned(), list);
        self
    }

    /// Most events per evaluate call (1..=4096; default 4096).
    pub fn batch_size(mut self, n: usize) -> Harness<R> {
        self.max_batch = n.clamp(1, MAX_EVENTS_PER_CALL);
        self
    }

    /// Initialises the rule with the configuration, as `vigil_init` does.
    pub fn init(&mut self) -> Result<(), String> {
        let runtime = {
            let _guard = HostGuard::install(&mut self.host);
            Runtime::<R>::init(self.config.as_bytes())
        }?;
        let manifest = runtime.manifest();
        manifest.validate().map_err(|e| e.0)?;
        self.host.default_severity = Some(manifest.severity);
        self.manifest = manifest;
        self.runtime = Some(runtime);
        Ok(())
    }

    /// Re-initialises the rule keeping its state, as a hot reload does.
    pub fn reload(&mut self) -> Result<(), String> {
        self.runtime = None;
        self.init()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The rule's state.
    pub fn state(&self) -> &StateStore {
        &self.host.state
    }

    /// Log lines `(level, message)` so far.
    pub fn logs(&self) -> &[(i32, String)] {
        &self.host.logs
    }

    /// Alerts refused as invalid so far, with the reason.
    pub fn invalid_alerts(&self) -> &[String] {
        &self.host.invalid_alerts
    }

    /// Decisions refused as invalid so far, with the reason.
    pub fn invalid_decisions(&self) -> &[String] {
        &self.host.invalid_decisions
    }

    /// Lazy `field` host calls so far (fields read without being declared).
    pub fn lazy_field_reads(&self) -> u64 {
        self.host.lazy_reads
    }

    /// Runs events, returning the alerts. Panics if the rule refuses its configuration.
    pub fn run(&mut self, events: impl IntoIterator<Item = TestEvent>) -> Vec<Alert> {
        self.run_detailed(events).alerts
    }

    /// Runs one event.
    pub fn step(&mut self, event: TestEvent) -> Step {
        let mut o = self.run_detailed([event]);
        Step {
            offered: o.offered[0],
            matched: o.matched[0],
            alerts: std::mem::take(&mut o.alerts),
            decisions: std::mem::take(&mut o.decisions),
            routes: o.routes.into_iter().map(|(_, r)| r).collect(),
        }
    }

    /// Runs events in batches as the host does, reporting everything.
    pub fn run_detailed(&mut self, events: impl IntoIterator<Item = TestEvent>) -> Outcome {
        if self.runtime.is_none()
            && let Err(e) = self.init()
        {
            panic!("rule `{}` refused its configuration: {e}", self.manifest.name);
        }
        let mut outcome = Outcome::default();
        let mut offered = Vec::new();
        for (pos, mut ev) in events.into_iter().enumerate() {
            let seq = ev.seq.unwrap_or(self.next_seq);
            self.next_seq = self.next_seq.max(seq + 1);
            self.clock_ms = ev.time_ms.unwrap_or(self.clock_ms);
            ev.seq = Some(seq);
            ev.time_ms = Some(self.clock_ms);
            let text = |name| ev.text(name).unwrap_or_default();
            let is_offered = self.manifest.kind == Kind::Routing
                || self.manifest.matches(&text("category"), &text("action"), &text("outcome"));
            outcome.offered.push(is_offered);
            outcome.matched.push(false);
            if is_offered {
                offered.push((pos, ev));
            }
        }
        let mut start = 0;
        while start < offered.len() {
            start += self.evaluate_batch(&offered[start..], &mut outcome);
        }
        outcome
    }

    /// Writes as many of `events` as fit into one batch and evaluates it; returns how many.
    fn evaluate_batch(&mut self, events: &[(usize, TestEvent)], outcome: &mut Outcome) -> usize {
        let max = events.len().min(self.max_batch);
        let fields = &self.manifest.fields;
        let mut writer = RecordWriter::new(&mut self.area, fields.len(), max).expect("batch fits the input area");
        // Values are encoded from text, as the server's are: the ABI 1.5 flag, so rules'
        // own tests read values the way they do on the server.
        writer.set_utf8(true);
        for (_, ev) in &events[..max] {
            let texts: Vec<_> = fields.iter().map(|f| field_text(&ev.body, f)).collect();
            let values: Vec<Option<&[u8]>> = texts.iter().map(|t| t.as_deref().map(str::as_bytes)).collect();
            match writer.push(ev.seq.unwrap_or_default(), ev.time_ms.unwrap_or_default(), &values) {
                Ok(()) => {}
                Err(LayoutError::Full) if !writer.is_empty() => break,
                Err(e) => panic!("event does not fit the {INPUT_AREA_BYTES}-byte input area: {e}"),
            }
        }
        let n = writer.len();
        let batch = &events[..n];
        self.host.batch = batch.iter().map(|(_, ev)| ev.body.clone()).collect();
        let runtime = self.runtime.as_mut().expect("initialised in run_detailed");
        let result = {
            let _guard = HostGuard::install(&mut self.host);
            runtime.evaluate(&self.area, n, &mut self.verdicts)
        };
        if let Err(e) = result {
            panic!("evaluate failed: {e}");
        }
        for (i, (pos, _)) in batch.iter().enumerate() {
            outcome.matched[*pos] = self.verdicts[i] == 1;
        }
        outcome.alerts.append(&mut self.host.alerts);
        outcome.decisions.append(&mut self.host.decisions);
        for (index, receiver) in self.host.routes.drain(..) {
            outcome.routes.push((batch[index as usize].0, receiver));
        }
        self.host.batch.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Alert, Config, Context, Decision, Event, Level, Subscription, Value};

    /// Counts failed logins per user; reads `details.note` lazily; emits an oversized alert
    /// when asked to.
    struct Probe;

    impl Rule for Probe {
        fn manifest() -> Manifest {
            Manifest::detection("probe").fields(["user_id"]).subscribe(Subscription::action("login_failed"))
        }

        fn init(config: &Config) -> Result<Probe, String> {
            if config.bool_or("refuse", false)? { Err("refused on purpose".to_owned()) } else { Ok(Probe) }
        }

        fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
            let user = ev.user_id().unwrap_or("-");
            let n = ctx.window("1h").add(user, 1);
            let note = ev.get("details.note").map(str::to_owned);
            assert_eq!(ev.get("details.note").map(str::to_owned), note, "cached");
            if note.as_deref() == Some("huge") {
                ctx.emit(Alert::new("huge").field("blob", "x".repeat(20_000)));
            }
            ctx.log(Level::Debug, &format!("{user} {n}"));
            ctx.emit(Alert::new(format!("{user} {n}")).field("note", note));
            n % 2 == 1
        }
    }

    fn fail(user: &str) -> TestEvent {
        TestEvent::new("authentication", "login_failed").user(user)
    }

    #[test]
    fn offers_by_subscription_and_reports_verdicts_and_defaults() {
        let mut h = Harness::<Probe>::new();
        let out = h.run_detailed([fail("a"), TestEvent::new("authentication", "login_success"), fail("a").seq(10)]);
        assert_eq!(out.offered, [true, false, true]);
        assert_eq!(out.matched, [true, false, false]);
        assert_eq!(out.alerts.len(), 2);
        assert_eq!(out.alerts[0].severity, Some(crate::Severity::P3), "manifest default");
        assert_eq!(out.alerts[0].dedup_key.as_deref(), Some("a 1"), "title default");
        assert_eq!(out.alerts[1].event_seqs, [10]);
        assert_eq!(h.step(fail("a")).alerts[0].event_seqs, [11], "seqs continue after an explicit one");
        assert_eq!(h.logs().len(), 3);
    }

    #[test]
    fn lazy_fields_are_read_once_per_event_and_batches_agree() {
        let events = || (0..10).map(|i| fail(if i % 3 == 0 { "x" } else { "y" }).detail("note", i).at_ms(i * 1000));
        let mut one = Harness::<Probe>::new();
        let mut small = Harness::<Probe>::new().batch_size(3);
        let (a, b) = (one.run_detailed(events()), small.run_detailed(events()));
        assert_eq!(a, b);
        assert_eq!(one.lazy_field_reads(), 10);
        assert_eq!(a.alerts[9].field_value("note").and_then(Value::as_str), Some("9"), "numbers arrive as JSON text");
    }

    #[test]
    fn invalid_alerts_are_refused_state_survives_reload_and_config_is_checked() {
        let mut h = Harness::<Probe>::new();
        let alerts = h.run([fail("a").detail("note", "huge")]);
        assert_eq!(alerts.len(), 1, "the oversized alert was refused");
        assert_eq!(h.invalid_alerts().len(), 1);
        h.reload().unwrap();
        assert_eq!(h.run([fail("a")])[0].title, "a 2", "state kept across reload");
        assert_eq!(h.state().len(), 1);
        let mut refused = Harness::<Probe>::new().config(r#"{"refuse": true}"#);
        assert_eq!(refused.init(), Err("refused on purpose".to_owned()));
    }

    /// Blocks the IP of each failed login with an alert to go with it; leaves the reason
    /// out when `details.note` is `no_reason`; logs what `decide` answered.
    struct Decider;

    impl Rule for Decider {
        fn manifest() -> Manifest {
            Manifest::detection("decider").fields(["ip"]).subscribe(Subscription::action("login_failed"))
        }

        fn init(_: &Config) -> Result<Decider, String> {
            Ok(Decider)
        }

        fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
            let Some(ip) = ev.ip() else { return false };
            let key = format!("ip:{ip}");
            ctx.emit(Alert::new(format!("failed login from {ip}")).dedup_key(key.as_str()));
            let mut decision = Decision::block(crate::Scope::Ip, ip).duration("30m").alert(key);
            if ev.get("details.note") != Some("no_reason") {
                decision = decision.reason(format!("failed login from {ip}"));
            }
            let status = ctx.decide(decision);
            ctx.log(Level::Info, &format!("{status:?}"));
            true
        }
    }

    #[test]
    fn decisions_are_validated_recorded_and_tied_to_the_current_event() {
        let mut h = Harness::<Decider>::new();
        let out = h.run_detailed([fail("a").ip("10.0.0.1"), fail("b").ip("10.0.0.2").seq(7)]);
        assert_eq!(out.decisions.len(), 2);
        let d = &out.decisions[0];
        assert_eq!((d.scope, d.value.as_str(), d.kind), (crate::Scope::Ip, "10.0.0.1", crate::DecisionKind::Block));
        assert_eq!(d.duration_ms, 30 * 60_000);
        assert_eq!(d.dedup_key, out.alerts[0].dedup_key, "tied to its alert");
        assert_eq!(d.event_seqs, [1], "the current event's seq when none is named");
        assert_eq!(out.decisions[1].event_seqs, [7]);
        let step = h.step(fail("c").ip("10.0.0.3").detail("note", "no_reason"));
        assert!(step.decisions.is_empty(), "a decision without a reason is refused");
        assert_eq!(step.alerts.len(), 1);
        assert_eq!(h.invalid_decisions().len(), 1);
        assert!(h.invalid_decisions()[0].contains("reason"), "{:?}", h.invalid_decisions());
        let statuses: Vec<&str> = h.logs().iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(statuses, ["Accepted", "Accepted", "Invalid"]);
        assert_eq!(h.step(fail("d").ip("10.0.0.4")).decisions.len(), 1);
    }

    #[test]
    fn encodes_fields_like_the_host() {
        let ev = TestEvent::new("c", "a").geo(40.7128, -74.0).detail("n", 5).detail_json("o", r#"{"k": [1, "x"]}"#);
        assert_eq!(ev.text("geo.lat").as_deref(), Some("40.7128"));
        assert_eq!(ev.text("geo.lon").as_deref(), Some("-74.0"));
        assert_eq!(ev.text("details.o").as_deref(), Some(r#"{"k":[1,"x"]}"#));
        assert_eq!(ev.text("details").as_deref(), Some(r#"{"n":5,"o":{"k":[1,"x"]}}"#));
        let parsed = TestEvent::from_json(r#"{"action":"a","timestamp":"2024-03-04T09:15:00Z"}"#).unwrap();
        assert_eq!(parsed.time_ms(), Some(crate::time::utc_ms(2024, 3, 4, 9, 15, 0)));
    }

    /// Alerts when the event's `ip` is on the `drop` list, and says when a list is unknown.
    struct ListProbe;

    impl Rule for ListProbe {
        fn manifest() -> Manifest {
            Manifest::detection("list_probe").fields(["ip"]).subscribe(Subscription::action("login_failed"))
        }

        fn init(_: &Config) -> Result<ListProbe, String> {
            Ok(ListProbe)
        }

        fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
            let ip = ev.ip().unwrap_or_default();
            match (ctx.in_list("drop", ip), ctx.in_list("missing", ip)) {
                (Some(true), None) => {
                    ctx.emit(Alert::new("listed").dedup_key(format!("ip:{ip}")));
                    true
                }
                (Some(false), None) => false,
                other => panic!("unexpected answers {other:?}"),
            }
        }
    }

    #[test]
    fn the_harness_gives_rules_lists_in_the_servers_format() {
        let mut h = Harness::<ListProbe>::new().list(
            "drop",
            "cidr",
            "; Spamhaus DROP\n198.51.100.0/24 ; SBL1\n2001:db8::/32 # v6\n",
        );
        let alerts = h.run([fail("a").ip("198.51.100.9"), fail("b").ip("192.0.2.1"), fail("c").ip("2001:db8::5")]);
        let keys: Vec<_> = alerts.iter().map(|a| a.dedup_key.clone().unwrap_or_default()).collect();
        assert_eq!(keys, ["ip:198.51.100.9", "ip:2001:db8::5"]);
        let values = crate::lists::TestList::parse("value", "# hashes\nabc\n").unwrap();
        assert!(values.contains("abc") && !values.contains("abcd"));
        assert!(crate::lists::TestList::parse("ip", "10.0.0.0/8\n").is_err(), "a network in an ip list");
    }
}
