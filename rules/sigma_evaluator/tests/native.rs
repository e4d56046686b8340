//! The evaluator run natively under the SDK harness (same state semantics as the host).

use sigma_evaluator::SigmaEvaluator;
use vigil_sdk::Severity;
use vigil_sdk::testing::{Harness, TestEvent};

fn peer_rules() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/sigma/peer");
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("---\n")
}

fn harness(text: &str) -> Harness<SigmaEvaluator> {
    let config = serde_json::json!({"name": "sigma_test", "sigma": text}).to_string();
    let mut h = Harness::<SigmaEvaluator>::new().config(&config);
    h.init().unwrap_or_else(|e| panic!("refused: {e}"));
    h
}

fn refusal(text: &str) -> String {
    let config = serde_json::json!({"name": "sigma_test", "sigma": text}).to_string();
    let mut h = Harness::<SigmaEvaluator>::new().config(&config);
    h.init().expect_err("should be refused")
}

#[test]
fn peer_rules_detect_and_correlate() {
    let mut h = harness(&peer_rules());
    let m = h.manifest().clone();
    assert_eq!(m.name, "sigma_test");
    assert_eq!(m.severity, Severity::P1);
    assert!(m.fields.contains(&"ip".to_owned()) && m.fields.contains(&"details".to_owned()), "{:?}", m.fields);
    assert_eq!(m.windows_ms, vec![300_000, 3_600_000]);
    // Rules whose condition pins the action subscribe to it (the host offers them nothing
    // else); the others to their logsource category.
    let clauses: Vec<(Vec<String>, Vec<String>)> =
        m.subscribe.iter().map(|c| (c.categories.clone(), c.actions.clone())).collect();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert!(clauses.contains(&(s(&["authentication"]), s(&["login_failed"]))), "{clauses:?}");
    assert!(clauses.contains(&(s(&["data_access"]), s(&[]))), "{clauses:?}");
    // Five failed logins from one IP: no correlation yet (gte 6), and failed_login only
    // feeds the correlation (generate: false), so no alert at all.
    let fails = |n: usize, ip: &str| -> Vec<TestEvent> {
        (0..n)
            .map(|i| {
                TestEvent::new("authentication", "login_failed").ip(ip).user(&format!("u{i}")).at_ms(1_000 + i as i64)
            })
            .collect()
    };
    let out = h.run_detailed(fails(5, "10.0.0.1"));
    assert!(out.matched.iter().all(|m| *m), "each failed login matches");
    assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    let out = h.run_detailed(fails(2, "10.0.0.1"));
    assert_eq!(out.alerts.len(), 1, "the sixth fires once: {:?}", out.alerts);
    let a = &out.alerts[0];
    assert_eq!(a.title, "Brute force from one IP");
    assert_eq!(a.severity, Some(Severity::P2));
    assert_eq!(a.dedup_key.as_deref(), Some("sigma:5b0a1f8e-0c41-4b9a-9a51-0f1c2a7d0002:10.0.0.1"));
    assert_eq!(a.event_seqs.len(), 6);
    // Another IP: its own group.
    assert!(h.run(fails(5, "10.0.0.2")).is_empty());

    // Detections that alert on their own.
    let sqli = TestEvent::new("data_access", "record_read").resource("/api/items?id=1' OR 1=1 --");
    let alerts = h.run([sqli]);
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].title.as_str(), alerts[0].severity), ("SQL injection probe", Some(Severity::P1)));
    let near = TestEvent::new("data_access", "record_read").resource("/api/items?id=1 OR 2");
    assert!(h.run([near]).is_empty());
    let q = TestEvent::new("data_access", "search").detail("q", "x UNION SELECT password");
    assert_eq!(h.run([q]).len(), 1);
    let admin = TestEvent::new("authorization", "permission_denied").resource("/admin/users");
    assert_eq!(h.run([admin])[0].title, "Admin resource denied");
    let not_admin = TestEvent::new("authorization", "permission_denied").resource("/api/admin");
    assert!(h.run([not_admin]).is_empty());
    let wrong_category = TestEvent::new("data_access", "permission_denied").resource("/admin/users");
    assert!(h.run([wrong_category]).is_empty(), "logsource.category must equal the event's category");
    let sensitive = TestEvent::new("data_access", "record_read").detail("sensitive", true);
    assert_eq!(h.run([sensitive])[0].title, "Sensitive data access");
    let not_sensitive = TestEvent::new("data_access", "record_read").detail("sensitive", false);
    assert!(h.run([not_sensitive]).is_empty());
}

#[test]
fn value_count_counts_distinct_users() {
    let mut h = harness(&peer_rules());
    let lock = |u: usize| {
        TestEvent::new("authentication", "account_locked").user(&format!("user{u}")).at_ms(10_000 + u as i64)
    };
    // The same user 20 times: one distinct value.
    assert!(h.run((0..20).map(|_| lock(1))).is_empty());
    let alerts = h.run((2..=10).map(lock));
    assert!(alerts.is_empty(), "10 distinct users is not > 10");
    let alerts = h.run([lock(11)]);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].title, "Coordinated lockouts");
    assert_eq!(alerts[0].severity, Some(Severity::P1));
}

#[test]
fn modifiers_and_conditions() {
    let rule = r#"
title: Modifiers
name: mods
logsource:
  product: vigil
detection:
  sel_re:
    user_agent|re|i: '^SQLMAP/'
  sel_cidr:
    ip|cidr: 10.1.0.0/16
  sel_num:
    details.record_count|gte: 100
  sel_exists:
    details.token|exists: true
  sel_b64:
    details.payload|base64offset|contains: 'whoami'
  sel_all:
    resource|contains|all: ['/export', 'format=csv']
  sel_ends:
    resource|endswith: '.sql'
  filter:
    user_id|startswith: 'svc-'
  condition: (1 of sel_* ) and not filter
level: medium
tags: [attack.t1190, attack.t1110.001]
"#;
    let mut h = harness(rule);
    assert_eq!(h.manifest().mitre, vec!["T1190".to_owned(), "T1110.001".to_owned()]);
    let ev = |f: fn(TestEvent) -> TestEvent| f(TestEvent::new("network", "request").user("alice"));
    let hits = [
        ev(|e| e.field("user_agent", "sqlmap/1.7")),
        ev(|e| e.ip("10.1.2.3")),
        ev(|e| e.detail("record_count", 150)),
        ev(|e| e.detail("token", "x")),
        ev(|e| e.detail("payload", "d2hvYW1p")),
        ev(|e| e.resource("/export?format=csv")),
        ev(|e| e.resource("/dump/all.SQL")),
    ];
    for (i, e) in hits.into_iter().enumerate() {
        assert_eq!(h.run([e]).len(), 1, "hit {i}");
    }
    let misses = [
        ev(|e| e.field("user_agent", "Mozilla sqlmap")),
        ev(|e| e.ip("10.2.0.1")),
        ev(|e| e.detail("record_count", 99)),
        ev(|e| e.resource("/export?format=json")),
        TestEvent::new("network", "request").user("svc-backup").ip("10.1.2.3"),
    ];
    for (i, e) in misses.into_iter().enumerate() {
        assert!(h.run([e]).is_empty(), "miss {i}");
    }
}

#[test]
fn temporal_correlations() {
    let text = r#"
title: Payment failed
name: payment_failed
logsource: {category: payment}
detection:
  sel: {action: payment_failed}
  condition: sel
---
title: Payment succeeded
name: payment_succeeded
logsource: {category: payment}
detection:
  sel: {action: payment_succeeded}
  condition: sel
---
title: Failure then success
correlation:
  type: temporal_ordered
  rules: [payment_failed, payment_succeeded]
  group-by: [user_id]
  timespan: 10m
level: high
"#;
    let mut h = harness(text);
    let ev = |a: &str, u: &str, t: i64| TestEvent::new("payment", a).user(u).at_ms(t);
    // Success before failure: no alert; failure then success within 10 minutes: alert.
    assert!(h.run([ev("payment_succeeded", "a", 1_000), ev("payment_failed", "a", 2_000)]).is_empty());
    let alerts = h.run([ev("payment_succeeded", "a", 3_000)]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].dedup_key.as_deref(), Some("sigma:Failure then success:a"));
    // Too late.
    assert!(h.run([ev("payment_failed", "b", 10_000), ev("payment_succeeded", "b", 10_000 + 11 * 60_000)]).is_empty());
}

#[test]
fn refusals_name_the_rule_and_line() {
    let e = refusal(
        "title: Bad field\nlogsource: {product: app}\ndetection:\n  sel:\n    CommandLine|contains: x\n  condition: sel\n",
    );
    assert!(e.contains("\"Bad field\"") && e.contains("line 5") && e.contains("CommandLine"), "{e}");
    let e = refusal(
        "title: Bad modifier\nlogsource: {product: app}\ndetection:\n  sel:\n    ip|frobnicate: x\n  condition: sel\n",
    );
    assert!(e.contains("Bad modifier") && e.contains("line 5") && e.contains("frobnicate"), "{e}");
    let e = refusal("title: Win\nlogsource: {product: windows}\ndetection:\n  sel: {ip: x}\n  condition: sel\n");
    assert!(e.contains("line 2") && e.contains("windows"), "{e}");
    let e = refusal(
        "title: Ok\nname: ok\nlogsource: {product: app}\ndetection:\n  sel: {ip: x}\n  condition: sel\n---\ntitle: Sum\ncorrelation:\n  type: value_sum\n  rules: [ok]\n  timespan: 5m\n  condition: {gte: 5, field: details.n}\n",
    );
    assert!(e.contains("Sum") && e.contains("value_sum") && e.contains("line 10"), "{e}");
    let e = refusal(
        "title: Ref\ncorrelation:\n  type: event_count\n  rules: [missing]\n  timespan: 5m\n  condition: {gte: 5}\n---\ntitle: Ok\nlogsource: {product: app}\ndetection:\n  sel: {ip: x}\n  condition: sel\n",
    );
    assert!(e.contains("missing") && e.contains("line 4"), "{e}");
    let e = refusal(
        "title: Cidr\nlogsource: {product: app}\ndetection:\n  sel:\n    ip|cidr: 10.0.0.0/99\n  condition: sel\n",
    );
    assert!(e.contains("Cidr") && e.contains("line 5") && e.contains("CIDR"), "{e}");
    let e = refusal(
        "title: Re\nlogsource: {product: app}\ndetection:\n  sel:\n    ip: x\n  other:\n    user_agent|re: '(unclosed'\n  condition: sel or other\n",
    );
    assert!(e.contains("line 7"), "{e}");
    let e = refusal(
        "title: Lone\ncorrelation:\n  type: event_count\n  rules:\n    - failed_login\n  timespan: 5m\n  condition: {gte: 6}\n",
    );
    assert!(e.contains("Lone") && e.contains("failed_login") && e.contains("line 5"), "{e}");
    let e = refusal("title: Broken\ndetection: [\n");
    assert!(e.contains("line"), "{e}");
    let e = refusal("title: Cond\nlogsource: {product: app}\ndetection:\n  sel: {ip: x}\n  condition: sel and nope\n");
    assert!(e.contains("Cond") && e.contains("nope"), "{e}");
}

#[test]
fn pipelines_map_field_names() {
    let text = r#"
name: vigil_fields
transformations:
  - type: field_name_mapping
    mapping:
      SourceIp: ip
      TargetUserName: user_id
---
title: Mapped
logsource: {product: app}
detection:
  sel:
    SourceIp: 192.0.2.1
    TargetUserName: root
  condition: sel
"#;
    let mut h = harness(text);
    assert_eq!(h.run([TestEvent::new("authentication", "login_failed").ip("192.0.2.1").user("root")]).len(), 1);
    assert!(h.run([TestEvent::new("authentication", "login_failed").ip("192.0.2.1").user("bob")]).is_empty());
}

#[test]
fn temporal_and_grouped_value_count() {
    let text = r#"
title: Recon
name: recon
logsource: {category: network}
detection:
  sel: {action: port_scan}
  condition: sel
---
title: Exploit
name: exploit
logsource: {category: network}
detection:
  sel: {action: exploit_attempt}
  condition: sel
---
title: Recon and exploit from one IP
correlation:
  type: temporal
  rules: [recon, exploit]
  group-by: [ip]
  timespan: 5m
  condition: recon and exploit
level: critical
---
title: One IP tries many users
correlation:
  type: value_count
  rules: [exploit]
  group-by: [ip]
  timespan: 1h
  condition:
    field: user_id
    gte: 3
  generate: true
level: high
"#;
    let mut h = harness(text);
    let ev = |a: &str, ip: &str, user: &str, t: i64| TestEvent::new("network", a).ip(ip).user(user).at_ms(t);
    // Either order fires the temporal correlation once both were seen within 5 minutes.
    let out = h.run([ev("exploit_attempt", "1.1.1.1", "a", 1_000), ev("port_scan", "1.1.1.1", "a", 2_000)]);
    let titles: Vec<&str> = out.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(titles, ["Exploit", "Recon and exploit from one IP"], "generate: true keeps the exploit's own alert");
    assert_eq!(out[1].severity, Some(Severity::P1));
    // Too far apart: nothing.
    let out = h.run([ev("port_scan", "2.2.2.2", "a", 0), ev("exploit_attempt", "2.2.2.2", "a", 400_000)]);
    assert_eq!(out.iter().filter(|a| a.title.starts_with("Recon and")).count(), 0, "{out:?}");
    // Three distinct users from one IP in an hour; the same users again do not fire twice.
    let out = h.run([ev("exploit_attempt", "3.3.3.3", "b", 10_000), ev("exploit_attempt", "3.3.3.3", "c", 11_000)]);
    assert_eq!(out.iter().filter(|a| a.title == "One IP tries many users").count(), 0);
    let out = h.run([ev("exploit_attempt", "3.3.3.3", "d", 12_000), ev("exploit_attempt", "3.3.3.3", "b", 13_000)]);
    let many: Vec<_> = out.iter().filter(|a| a.title == "One IP tries many users").collect();
    assert_eq!(many.len(), 1, "{out:?}");
    assert_eq!(many[0].dedup_key.as_deref(), Some("sigma:One IP tries many users:3.3.3.3"));
}

/// Three stages of an intrusion as detection rules, and a temporal correlation over them
/// per IP with `condition`.
fn stages(condition: &str) -> String {
    let mut text = String::new();
    for (name, action) in [("stage_recon", "port_scan"), ("stage_exploit", "exploit_attempt"), ("exfil", "bulk_export")]
    {
        text.push_str(&format!(
            "title: {name}\nname: {name}\nlogsource: {{category: network}}\ndetection:\n  sel: {{action: {action}}}\n  \
             condition: sel\n---\n"
        ));
    }
    text.push_str(&format!(
        "title: Intrusion\ncorrelation:\n  type: temporal\n  rules: [stage_recon, stage_exploit, exfil]\n  \
         group-by: [ip]\n  timespan: 5m\n  condition: {condition}\nlevel: high\n"
    ));
    text
}

fn intrusions(h: &mut Harness<SigmaEvaluator>, actions: &[&str], ip: &str) -> usize {
    let events = actions.iter().enumerate().map(|(i, a)| TestEvent::new("network", a).ip(ip).at_ms(i as i64 * 1000));
    h.run(events).iter().filter(|a| a.title == "Intrusion").count()
}

#[test]
fn temporal_conditions_count_rules_with_1_of_n_of_and_all_of() {
    // `1 of stage_*`: either stage (not exfil) fires it.
    let mut h = harness(&stages("1 of stage_* and exfil"));
    assert_eq!(intrusions(&mut h, &["bulk_export"], "1.1.1.1"), 0, "exfil alone");
    assert_eq!(intrusions(&mut h, &["exploit_attempt"], "1.1.1.1"), 1, "a stage, then exfil already seen");
    assert_eq!(intrusions(&mut h, &["port_scan", "exploit_attempt"], "2.2.2.2"), 0, "no exfil");
    // `all of stage_*`: both stages.
    let mut h = harness(&stages("all of stage_*"));
    assert_eq!(intrusions(&mut h, &["port_scan", "bulk_export"], "3.3.3.3"), 0);
    assert_eq!(intrusions(&mut h, &["exploit_attempt"], "3.3.3.3"), 1);
    // `2 of them`: any two of the three, once.
    let mut h = harness(&stages("2 of them"));
    assert_eq!(intrusions(&mut h, &["bulk_export", "bulk_export"], "4.4.4.4"), 0, "one rule twice is one");
    assert_eq!(intrusions(&mut h, &["port_scan", "exploit_attempt"], "4.4.4.4"), 1, "fires as the second rule comes");
    // `all of them` and `not`.
    let mut h = harness(&stages("all of them"));
    assert_eq!(intrusions(&mut h, &["port_scan", "exploit_attempt"], "5.5.5.5"), 0);
    assert_eq!(intrusions(&mut h, &["bulk_export"], "5.5.5.5"), 1);
    let mut h = harness(&stages("all of stage_* and not exfil"));
    assert_eq!(intrusions(&mut h, &["port_scan", "exploit_attempt"], "6.6.6.6"), 1);
    assert_eq!(intrusions(&mut h, &["bulk_export", "port_scan", "exploit_attempt"], "7.7.7.7"), 0);
}

#[test]
fn temporal_conditions_naming_no_rule_of_the_correlation_are_refused() {
    for (condition, says) in [
        ("1 of lateral_*", "`1 of lateral_*` in the condition matches none of the correlation's rules"),
        ("4 of them", "`4 of them` in the condition can never hold: only 3 of the correlation's rules match"),
        ("stage_recon and typo", "the condition names \"typo\", which is not in the correlation's rules"),
    ] {
        let e = refusal(&stages(condition));
        assert!(e.contains("Sigma correlation \"Intrusion\"") && e.contains(says), "{condition}: {e}");
        assert!(e.contains("(line 28)"), "the condition's line: {e}");
    }
}

#[test]
fn vigil_dedup_by_gives_each_value_its_own_alert() {
    let rule = |dedup: &str| {
        format!(
            "title: High severity event\nname: high_severity\nlogsource: {{product: app}}\n{dedup}detection:\n  \
             sel: {{severity: [high, critical]}}\n  condition: sel\nlevel: high\n"
        )
    };
    let ev = |ip: &str, user: &str| TestEvent::new("system", "x").field("severity", "high").ip(ip).user(user);
    // Without it, every match folds into one alert.
    let mut h = harness(&rule(""));
    let keys: Vec<_> = h.run([ev("1.1.1.1", "a"), ev("2.2.2.2", "b")]).into_iter().map(|a| a.dedup_key).collect();
    assert_eq!(keys, [Some("sigma:high_severity".to_owned()), Some("sigma:high_severity".to_owned())]);
    // One field, or several: the values join the key, and the alert shows them.
    let mut h = harness(&rule("vigil.dedup_by: ip\n"));
    let alerts = h.run([ev("1.1.1.1", "a"), ev("2.2.2.2", "b")]);
    assert_eq!(alerts[0].dedup_key.as_deref(), Some("sigma:high_severity:1.1.1.1"));
    assert_eq!(alerts[1].dedup_key.as_deref(), Some("sigma:high_severity:2.2.2.2"));
    assert_eq!(alerts[1].field_value("ip").and_then(|v| v.as_str()), Some("2.2.2.2"));
    let mut h = harness(&rule("vigil.dedup_by: [user_id, ip]\n"));
    let alerts = h.run([ev("1.1.1.1", "a"), TestEvent::new("system", "x").field("severity", "critical")]);
    assert_eq!(alerts[0].dedup_key.as_deref(), Some("sigma:high_severity:a,1.1.1.1"));
    assert_eq!(alerts[1].dedup_key.as_deref(), Some("sigma:high_severity:,"), "absent values are empty");
    // Refused: a field Vigil does not have, a wrong shape, an unknown vigil. attribute.
    for (dedup, says) in [
        ("vigil.dedup_by: SourceIp\n", "field \"SourceIp\" is not a Vigil event field"),
        ("vigil.dedup_by: {a: 1}\n", "`vigil.dedup_by` must be a field name or a list of 1 to 4 of them"),
        ("vigil.dedup_by: [ip, user_id, api_key_id, session_id, source]\n", "list of 1 to 4"),
        ("vigil.dedupe_by: ip\n", "unknown attribute \"vigil.dedupe_by\""),
    ] {
        let e = refusal(&rule(dedup));
        assert!(e.contains("\"High severity event\" (line 4)") && e.contains(says), "{dedup}: {e}");
    }
}
