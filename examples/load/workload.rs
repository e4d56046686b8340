//! Workload W1 for the load tool: a deterministic event generator (splitmix64, no `rand`)
//! that also computes which alerts the example rules must raise on it.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Value, json};

/// Tuesday 2025-01-07 10:00:00 UTC, in epoch milliseconds (a minute boundary, business hours).
const START_MS: i64 = 1_736_244_000_000;
/// Pool of addresses for ordinary failed logins: 198.18.0.0/15 (reserved for benchmarks).
const NORMAL_FAIL_POOL: u64 = 1 << 17;
const USERS: u64 = 20_000;
const ORGS: u64 = 250;
const API_KEYS: u64 = 20;

/// splitmix64: tiny, fast, good enough for a workload generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
fn mix(a: u64, b: u64) -> u64 {
    Rng(a ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03)).next()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    LoginOk,
    LoginFailed,
    PermissionDenied,
    DataRead,
    ApiKeyUsed,
    ApiKeyCreated,
    Payment,
}
/// Composition of every block of 100 consecutive events (shuffled per block).
const MIX: &[(Kind, usize)] = &[
    (Kind::LoginOk, 70),
    (Kind::LoginFailed, 10),
    (Kind::PermissionDenied, 5),
    (Kind::DataRead, 10),
    (Kind::ApiKeyUsed, 2),
    (Kind::ApiKeyCreated, 1),
    (Kind::Payment, 2),
];

/// A brute-force burst: failed login number `first + k * step` (k < count), counted over all
/// failed logins of the stream, comes from `ip`. Residues mod 100 differ, so slots never collide.
struct Plant {
    ip: &'static str,
    first: u64,
    step: u64,
    count: u64,
}
const PLANTS: &[Plant] = &[
    Plant { ip: "203.0.113.10", first: 1_001, step: 400, count: 8 },
    Plant { ip: "203.0.113.66", first: 2_000, step: 600, count: 25 },
    Plant { ip: "203.0.113.20", first: 4_002, step: 400, count: 8 },
    Plant { ip: "203.0.113.30", first: 7_003, step: 400, count: 8 },
];
fn planted_ip(failure: u64) -> Option<&'static str> {
    PLANTS
        .iter()
        .find(|p| {
            failure >= p.first && (failure - p.first).is_multiple_of(p.step) && (failure - p.first) / p.step < p.count
        })
        .map(|p| p.ip)
}

/// (rule, severity, dedup_key)
pub(crate) type AlertKey = (String, String, String);

const CITIES: &[(&str, &str, f64, f64)] = &[
    ("US", "New York", 40.7128, -74.006),
    ("US", "San Francisco", 37.7749, -122.4194),
    ("GB", "London", 51.5072, -0.1276),
    ("DE", "Berlin", 52.52, 13.405),
    ("FR", "Paris", 48.8566, 2.3522),
    ("JP", "Tokyo", 35.6762, 139.6503),
    ("BR", "Sao Paulo", -23.5505, -46.6333),
    ("IN", "Bengaluru", 12.9716, 77.5946),
    ("AU", "Sydney", -33.8688, 151.2093),
    ("CA", "Toronto", 43.6532, -79.3832),
    ("NL", "Amsterdam", 52.3676, 4.9041),
    ("SG", "Singapore", 1.3521, 103.8198),
];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];
const API_CLIENTS: &[&str] =
    &["okhttp/4.12.0", "python-requests/2.32.3", "Go-http-client/1.1", "acme-billing-sdk/3.4.1 (node 20.11.1)"];
const ROLES: &[&str] = &["editor", "billing_manager", "project_owner", "analyst", "support_agent"];
const TABLES: &[&str] = &["customers", "invoices", "orders", "tickets", "projects", "shipments"];
const ENDPOINTS: &[&str] =
    &["/api/v1/reports", "/api/v1/orders", "/api/v1/invoices", "/api/v1/customers/search", "/api/v1/exports"];

/// Deterministic W1 event stream; also computes the alerts `brute_force` must raise.
pub(crate) struct Generator {
    seed: u64,
    /// Time of the first event, epoch ms (a minute boundary).
    start_ms: i64,
    index: u64,
    block: Vec<Kind>,
    failures: u64,
    key_uses: u64,
    /// Failed-login times per IP within the last hour (reference sliding windows).
    windows: HashMap<String, VecDeque<i64>>,
    fired: HashSet<AlertKey>,
    /// (index of the event whose arrival crosses the threshold, alert)
    expected: Vec<(u64, AlertKey)>,
}

impl Generator {
    pub(crate) fn new(seed: u64) -> Self {
        Generator {
            seed,
            start_ms: START_MS,
            index: 0,
            block: Vec::new(),
            failures: 0,
            key_uses: 0,
            windows: HashMap::new(),
            fired: HashSet::new(),
            expected: Vec::new(),
        }
    }

    /// The same stream with its first event at `start_ms` (floored to the minute, so API
    /// keys keep their 5-55 s window) instead of 2025-01-07 10:00 UTC; `None` keeps it.
    pub(crate) fn starting_at(mut self, start_ms: Option<i64>) -> Self {
        if let Some(ms) = start_ms {
            self.start_ms = ms - ms.rem_euclid(60_000);
        }
        self
    }

    // Long by design: the W1 event mix as one table of cases, one arm per event kind.
    pub(crate) fn next_event(&mut self) -> Value {
        let i = self.index;
        self.index += 1;
        if i.is_multiple_of(100) {
            self.block = MIX.iter().flat_map(|&(k, n)| std::iter::repeat_n(k, n)).collect();
            let mut rng = Rng(mix(self.seed ^ 0xB10C, i / 100));
            for j in (1..self.block.len()).rev() {
                self.block.swap(j, rng.below(j as u64 + 1) as usize);
            }
        }
        let mut kind = self.block[(i % 100) as usize];
        // API keys are used only 5..55 s into each minute (exactly 50 uses per key per
        // minute), so a batch that commits late never adds to a minute `api_key_anomaly`
        // has already closed; those slots become payments (same 5% bucket).
        if kind == Kind::ApiKeyUsed && !(50..550).contains(&(i / 100 % 600)) {
            kind = Kind::Payment;
        }
        let mut rng = Rng(mix(self.seed, i));
        let ts = self.start_ms + i as i64;
        let user = rng.below(USERS);
        let (country, city, lat, lon) = CITIES[(mix(self.seed ^ 0x6E0, user) % CITIES.len() as u64) as usize];
        let user_ua = BROWSERS[(mix(self.seed ^ 0x0A, user) % BROWSERS.len() as u64) as usize];
        let session = mix(self.seed ^ 0x5E55, user ^ ((i / 1_800_000) << 32));
        let mut ev = json!({
            "event_id": format!("w1-{}-{i:010}", self.seed),
            "timestamp": ts,
            "severity": "low",
            "organization_id": format!("org_{:04}", user % ORGS),
            "user_id": format!("usr_{user:06}"),
            "session_id": format!("sess_{session:016x}"),
            "request_id": format!("req_{:016x}{:04x}", rng.next(), rng.next() as u16),
            "ip": format!("100.{}.{}.{}", 64 + user / 65536, (user / 256) % 256, user % 256),
            "user_agent": user_ua,
            "geo": {"country": country, "city": city, "lat": lat, "lon": lon},
        });
        let fields = match kind {
            Kind::LoginOk => json!({
                "category": "authentication", "action": "login_success", "outcome": "success",
                "source": "auth-service", "resource": "/api/v1/auth/login",
                "details": {"method": *rng.pick(&["password", "sso", "passkey"]), "mfa_used": rng.below(4) != 0,
                            "duration_ms": 40 + rng.below(400)},
            }),
            Kind::LoginFailed => {
                let failure = self.failures;
                self.failures += 1;
                let ip = match planted_ip(failure) {
                    Some(ip) => ip.to_string(),
                    None => {
                        let n = failure % NORMAL_FAIL_POOL;
                        format!("198.{}.{}.{}", 18 + n / 65536, (n / 256) % 256, n % 256)
                    }
                };
                self.observe_failure(i, &ip, ts);
                ev["ip"] = json!(ip);
                ev["severity"] = json!("medium");
                json!({
                    "category": "authentication", "action": "login_failed", "outcome": "failure",
                    "source": "auth-service", "resource": "/api/v1/auth/login",
                    "reason": "invalid_credentials", "error_code": "AUTH_401",
                    "details": {"method": "password", "failure_reason": *rng.pick(&["wrong_password", "unknown_user", "mfa_rejected"]),
                                "attempt": 1 + rng.below(3)},
                })
            }
            Kind::PermissionDenied => {
                ev["severity"] = json!("medium");
                json!({
                    "category": "authorization", "action": "permission_denied", "outcome": "failure",
                    "source": "api-gateway", "resource": format!("/api/v1/projects/prj_{:05}/settings", rng.below(50_000)),
                    "resource_type": "project", "reason": "missing_role",
                    "details": {"required_role": *rng.pick(ROLES), "user_role": "viewer", "policy": "rbac-v2"},
                })
            }
            Kind::DataRead => {
                let table = *rng.pick(TABLES);
                json!({
                    "category": "data_access", "action": "record_read", "outcome": "success",
                    "source": "records-service", "resource": format!("/api/v1/{table}/{}", rng.below(1_000_000)),
                    "resource_type": table,
                    "details": {"record_count": 1 + rng.below(5), "sensitive": false, "query_ms": 1 + rng.below(40)},
                })
            }
            Kind::ApiKeyUsed => {
                let key = self.key_uses % API_KEYS;
                self.key_uses += 1;
                ev["user_agent"] = json!(API_CLIENTS[(key % API_CLIENTS.len() as u64) as usize]);
                ev["user_id"] = json!(format!("svc_{key:02}"));
                json!({
                    "category": "api_key_management", "action": "api_key_used", "outcome": "success",
                    "api_key_id": format!("key_{key:02}"), "source": "api-gateway", "resource": *rng.pick(ENDPOINTS),
                    "resource_type": "api", "details": {"scope": "read", "http_method": "GET", "status": 200, "latency_ms": 5 + rng.below(80)},
                })
            }
            Kind::ApiKeyCreated => json!({
                "category": "api_key_management", "action": "api_key_created", "outcome": "success",
                "api_key_id": format!("key_n{:08x}", rng.next() as u32), "source": "console", "resource": "/api/v1/keys",
                "resource_type": "api_key", "details": {"scopes": ["read", "write"], "expires_in_days": 90, "created_by": format!("usr_{user:06}")},
            }),
            Kind::Payment => json!({
                "category": "financial_operation", "action": "payment_created", "outcome": "success",
                "source": "billing-service", "resource": format!("/api/v1/payments/pay_{:08x}", rng.next() as u32),
                "resource_type": "payment",
                "details": {"amount_cents": 100 + rng.below(50_000), "currency": *rng.pick(&["EUR", "USD", "GBP"]), "payment_method": "card", "merchant": "m_0042"},
            }),
        };
        if let (Value::Object(ev), Value::Object(fields)) = (&mut ev, fields) {
            ev.extend(fields);
        }
        ev
    }

    /// Reference `brute_force` (rules/brute_force): > 5 failures in 5 min -> P2 `ip:<ip>`,
    /// > 20 in 1 h -> P1 `ip:<ip>:1h`, each once per IP.
    fn observe_failure(&mut self, index: u64, ip: &str, ts: i64) {
        let window = self.windows.entry(ip.to_string()).or_default();
        window.push_back(ts);
        while window.front().is_some_and(|&t| t <= ts - 3_600_000) {
            window.pop_front();
        }
        let in_5m = window.iter().rev().take_while(|&&t| t > ts - 300_000).count();
        for (hit, sev, dedup) in
            [(in_5m > 5, "P2", format!("ip:{ip}")), (window.len() > 20, "P1", format!("ip:{ip}:1h"))]
        {
            let key = ("brute_force".to_string(), sev.to_string(), dedup);
            if hit && self.fired.insert(key.clone()) {
                self.expected.push((index, key));
            }
        }
    }

    /// The next `n` events as one JSON array body.
    pub(crate) fn batch(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * 640);
        out.push(b'[');
        for k in 0..n {
            if k > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &self.next_event()).expect("serialize");
        }
        out.push(b']');
        out
    }

    /// Alerts expected once the first `sent` events are stored.
    pub(crate) fn expected_for(&self, sent: u64) -> Vec<AlertKey> {
        let mut v: Vec<AlertKey> = self.expected.iter().filter(|(i, _)| *i < sent).map(|(_, k)| k.clone()).collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    const N: u64 = 200_000;

    /// The default run (seed 42, 200k events), parsed back from its bytes, and the generator.
    fn default_run() -> &'static (Vec<Value>, Vec<AlertKey>, usize) {
        static RUN: OnceLock<(Vec<Value>, Vec<AlertKey>, usize)> = OnceLock::new();
        RUN.get_or_init(|| {
            let mut g = Generator::new(42);
            let mut bytes = 0;
            let events = (0..N)
                .map(|_| {
                    let raw = serde_json::to_vec(&g.next_event()).unwrap();
                    bytes += raw.len();
                    serde_json::from_slice(&raw).unwrap()
                })
                .collect();
            (events, g.expected_for(N), bytes)
        })
    }

    #[test]
    fn same_seed_same_bytes() {
        let a = Generator::new(7).batch(3000);
        assert_eq!(a, Generator::new(7).batch(3000));
        assert_ne!(a, Generator::new(8).batch(3000));
    }

    #[test]
    fn mix_proportions_within_one_percent() {
        let (events, _, _) = default_run();
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        for e in events {
            *counts
                .entry((e["category"].as_str().unwrap().into(), e["action"].as_str().unwrap().into()))
                .or_default() += 1;
        }
        let share = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(c, a)| counts.get(&(c.to_string(), a.to_string())).copied().unwrap_or(0)).sum::<u64>()
                as f64
                / N as f64
        };
        let expect = [
            (share(&[("authentication", "login_success")]), 0.70),
            (share(&[("authentication", "login_failed")]), 0.10),
            (share(&[("authorization", "permission_denied")]), 0.05),
            (share(&[("data_access", "record_read")]), 0.10),
            (
                share(&[
                    ("api_key_management", "api_key_used"),
                    ("api_key_management", "api_key_created"),
                    ("financial_operation", "payment_created"),
                ]),
                0.05,
            ),
        ];
        for (got, want) in expect {
            assert!((got - want).abs() <= 0.01, "share {got} vs {want}");
        }
        assert_eq!(counts.len(), 7, "{counts:?}");
    }

    #[test]
    fn events_are_about_600_bytes() {
        let (_, _, bytes) = default_run();
        let mean = *bytes as f64 / N as f64;
        assert!((560.0..=640.0).contains(&mean), "mean event size {mean}");
    }

    /// Naive reference: per IP, sorted failure times; max count in any window of `w` ms.
    fn crossings(events: &[Value], w: i64, limit: usize) -> (Vec<String>, usize) {
        let mut per_ip: HashMap<String, Vec<i64>> = HashMap::new();
        for e in events.iter().filter(|e| e["action"] == "login_failed") {
            per_ip.entry(e["ip"].as_str().unwrap().into()).or_default().push(e["timestamp"].as_i64().unwrap());
        }
        let (mut over, mut max_normal) = (Vec::new(), 0);
        for (ip, mut ts) in per_ip {
            ts.sort();
            let (mut lo, mut best) = (0, 0);
            for hi in 0..ts.len() {
                while ts[lo] <= ts[hi] - w {
                    lo += 1;
                }
                best = best.max(hi - lo + 1);
            }
            if best > limit {
                over.push(ip.clone());
            }
            if !ip.starts_with("203.0.113.") {
                max_normal = max_normal.max(best);
            }
        }
        over.sort();
        (over, max_normal)
    }

    #[test]
    fn only_planted_ips_cross_brute_force_thresholds() {
        let (events, expected, _) = default_run();
        let (p2, normal_5m) = crossings(events, 300_000, 5);
        let (p1, normal_1h) = crossings(events, 3_600_000, 20);
        assert_eq!(p2, ["203.0.113.10", "203.0.113.20", "203.0.113.30", "203.0.113.66"]);
        assert_eq!(p1, ["203.0.113.66"]);
        assert!(normal_5m <= 1 && normal_1h <= 1, "{normal_5m} {normal_1h}");
        let mut want: Vec<AlertKey> =
            p2.iter().map(|ip| ("brute_force".into(), "P2".into(), format!("ip:{ip}"))).collect();
        want.extend(p1.iter().map(|ip| ("brute_force".into(), "P1".into(), format!("ip:{ip}:1h"))));
        want.sort();
        assert_eq!(expected, &want);
        // A short run only expects what its prefix really contains.
        let mut g = Generator::new(42);
        g.batch(40_000);
        assert_eq!(g.expected_for(40_000), [("brute_force".into(), "P2".into(), "ip:203.0.113.10".into())]);
    }

    #[test]
    fn other_rules_stay_silent() {
        let (events, _, _) = default_run();
        let mut geo: HashMap<&str, &Value> = HashMap::new();
        let mut records: HashMap<&str, u64> = HashMap::new();
        let mut key_minute: HashMap<(&str, i64), u64> = HashMap::new();
        for e in events {
            let text = e.to_string();
            assert!(!text.contains('\'') && !text.to_lowercase().contains("select") && !text.contains("--"), "{text}");
            assert!(!text.contains("admin") && e["action"] != "account_locked");
            match e["action"].as_str().unwrap() {
                "login_success" => {
                    assert_eq!(**geo.entry(e["user_id"].as_str().unwrap()).or_insert(&e["geo"]), e["geo"])
                }
                "record_read" => {
                    assert_eq!(e["details"]["sensitive"], false);
                    *records.entry(e["user_id"].as_str().unwrap()).or_default() +=
                        e["details"]["record_count"].as_u64().unwrap();
                }
                "api_key_used" => {
                    let t = e["timestamp"].as_i64().unwrap() - START_MS;
                    assert!((5_000..55_000).contains(&(t % 60_000)), "api_key_used at {t}");
                    let minute = t / 60_000;
                    *key_minute.entry((e["api_key_id"].as_str().unwrap(), minute)).or_default() += 1;
                }
                _ => {}
            }
        }
        // The whole run spans < 1 h, so the per-user total bounds any hourly window.
        assert!(records.values().all(|&r| r <= 1000));
        // Complete minutes: every key exactly 50 uses (3 complete minutes in 200 s).
        let full: Vec<u64> = key_minute.iter().filter(|((_, m), _)| *m < 3).map(|(_, &c)| c).collect();
        assert_eq!(full.len(), 3 * API_KEYS as usize);
        assert!(full.iter().all(|&c| c == 50), "{full:?}");
    }
}
