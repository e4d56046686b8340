//! GeoIP/ASN enrichment and `[[lists]]` on both backends, with MaxMind DB files the tests
//! build themselves (`vigil_tests::mmdb`): events with an `ip` and no `geo` get a location
//! and their AS from every input (`POST /v1/events`, `?format=ocsf`, OTLP, syslog), a sent
//! `geo` is kept, private and unknown addresses get nothing; list hits land in
//! `details.threat_lists`; changed files are reloaded, bad ones keep the previous copy;
//! the location rules fire for events that carry only an IP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use vigil::config::{ListConfig, ListKind, SyslogInput};
use vigil::ingest::enrich::Mmdb;
use vigil_tests::mmdb::MmdbWriter;
use vigil_tests::{Backend, TestApp, both_backends, example_rules, spawn_app_with};

both_backends!(every_input_is_enriched_and_a_sent_geo_is_kept,);

const PARIS: &str = "81.2.69.142";
const BERLIN: &str = "2a02:8100::1";
const TOKYO: &str = "175.16.199.9";

/// A GeoLite2-City layout database: Paris (v4), Berlin (v6), Tokyo (v4).
fn city_db() -> Vec<u8> {
    let city = |iso: &str, name: &str, lat: f64, lon: f64| {
        json!({
            "city": {"geoname_id": 1, "names": {"de": format!("{name}-de"), "en": name, "ja": "x"}},
            "continent": {"code": "EU", "names": {"en": "Europe"}},
            "country": {"geoname_id": 2, "iso_code": iso, "names": {"en": iso}},
            "location": {"accuracy_radius": 20, "latitude": lat, "longitude": lon, "time_zone": "Europe/Paris"},
            "subdivisions": [{"iso_code": "75", "names": {"en": "x"}}],
        })
    };
    MmdbWriter::new("GeoLite2-City")
        .insert("81.2.69.0/24", city("FR", "Paris", 48.8566, 2.3522))
        .insert("2a02:8100::/32", city("DE", "Berlin", 52.52, 13.405))
        .insert("175.16.199.0/24", city("JP", "Tokyo", 35.6895, 139.6917))
        .build()
}

/// A GeoLite2-ASN layout database.
fn asn_db() -> Vec<u8> {
    MmdbWriter::new("GeoLite2-ASN")
        .insert(
            "81.2.69.0/24",
            json!({"autonomous_system_number": 20712, "autonomous_system_organization": "Andrews & Arnold Ltd"}),
        )
        .build()
}

fn temp_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vigil-enrich-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes a file whole and atomically (a new inode: what a downloader's rename does).
fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn list(name: &str, path: PathBuf, kind: ListKind) -> ListConfig {
    ListConfig { name: name.into(), path, kind, max_entries: 1000, max_bytes: 1 << 20 }
}

/// The stored `geo.country` and `details.threat_lists` of event `probe-<n>`.
async fn geo_of(app: &TestApp, n: usize) -> anyhow::Result<(Value, Value)> {
    let e = event_by_id(app, &format!("probe-{n}")).await?;
    Ok((e["geo"]["country"].clone(), e["details"]["threat_lists"].clone()))
}

async fn event_by_id(app: &TestApp, id: &str) -> anyhow::Result<Value> {
    let (_, body) = app.get("/v1/events?limit=200").await?;
    let found = body["events"].as_array().unwrap().iter().find(|e| e["event_id"] == id).cloned();
    found.ok_or_else(|| anyhow::anyhow!("event {id} not stored: {body}"))
}

async fn every_input_is_enriched_and_a_sent_geo_is_kept(backend: Backend) -> anyhow::Result<()> {
    let dir = temp_dir()?;
    std::fs::write(dir.join("city.mmdb"), city_db())?;
    std::fs::write(dir.join("asn.mmdb"), asn_db())?;
    std::fs::write(dir.join("drop.txt"), "; Spamhaus DROP\n81.2.69.0/24 ; SBL1\n")?;
    std::fs::write(dir.join("feodo.txt"), "# abuse.ch\n81.2.69.142\n")?;
    let d = dir.clone();
    let app = spawn_app_with(backend, move |c| {
        c.enrich.geoip_db = Some(d.join("city.mmdb"));
        c.enrich.asn_db = Some(d.join("asn.mmdb"));
        c.lists =
            vec![list("drop", d.join("drop.txt"), ListKind::Cidr), list("feodo", d.join("feodo.txt"), ListKind::Ip)];
        c.inputs.syslog =
            vec![SyslogInput { name: "geo".into(), address: "127.0.0.1:0".into(), ..SyslogInput::default() }];
    })
    .await?;
    let login =
        |id: &str, ip: &str| json!({"event_id": id, "category": "authentication", "action": "login_success", "ip": ip});
    let mut sent_geo = login("sent-geo", PARIS);
    sent_geo["geo"] = json!({"country": "NZ"});
    let mut own_asn = login("own-asn", PARIS);
    own_asn["details"] = json!({"asn": 1, "note": "kept"});
    let batch = json!([login("paris", PARIS), login("berlin", BERLIN), login("private", "10.1.2.3"),
                       login("unknown", "8.8.8.8"), sent_geo, own_asn, {"event_id": "no-ip", "category": "a", "action": "b"}]);
    let (status, body) = app.post_events(&batch).await?;
    assert_eq!(status, 201, "{body}");

    let paris = event_by_id(&app, "paris").await?;
    assert_eq!(paris["geo"], json!({"city": "Paris", "country": "FR", "lat": 48.8566, "lon": 2.3522}), "{paris}");
    assert_eq!(paris["details"]["asn"], 20712);
    assert_eq!(paris["details"]["as_org"], "Andrews & Arnold Ltd");
    assert_eq!(paris["details"]["threat_lists"], json!(["drop", "feodo"]), "both lists, in configuration order");
    let berlin = event_by_id(&app, "berlin").await?;
    assert_eq!(berlin["geo"]["country"], "DE", "IPv6: {berlin}");
    assert_eq!(berlin["geo"]["city"], "Berlin");
    assert!(berlin.get("details").is_none_or(Value::is_null), "no AS, no list: {berlin}");
    for id in ["private", "unknown", "no-ip"] {
        let ev = event_by_id(&app, id).await?;
        assert!(ev.get("geo").is_none_or(Value::is_null), "{id} got a location: {ev}");
        assert!(ev.get("details").is_none_or(Value::is_null), "{id} got details: {ev}");
    }
    let kept = event_by_id(&app, "sent-geo").await?;
    assert_eq!(kept["geo"], json!({"country": "NZ"}), "a sent geo is not changed");
    let own = event_by_id(&app, "own-asn").await?;
    assert_eq!(own["details"]["asn"], 1, "the client's own asn is kept: {own}");
    assert_eq!(own["details"]["as_org"], "Andrews & Arnold Ltd");
    assert_eq!(own["details"]["note"], "kept");

    // OCSF in.
    let ocsf = json!({"class_uid": 3002, "activity_id": 1, "status_id": 1, "time": 1767600000000i64,
        "metadata": {"uid": "ocsf-tokyo", "version": "1.3.0", "product": {"name": "idp"}},
        "user": {"uid": "ocsf-user"}, "src_endpoint": {"ip": TOKYO}});
    let req = app.client.post(app.url("/v1/events?format=ocsf")).json(&ocsf);
    let (status, body) = app.send(req, &app.admin_key).await?;
    assert_eq!(status, 201, "{body}");
    let (_, listed) = app.get("/v1/events?user_id=ocsf-user").await?;
    assert_eq!(listed["events"][0]["geo"]["country"], "JP", "{listed}");

    // OTLP/JSON in.
    let attrs = json!([{"key": "event.category", "value": {"stringValue": "authentication"}},
                       {"key": "event.action", "value": {"stringValue": "login_success"}},
                       {"key": "user.id", "value": {"stringValue": "otlp-user"}},
                       {"key": "client.address", "value": {"stringValue": BERLIN}}]);
    let otlp = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1767600000123000000",
        "body": {"stringValue": "signed in"}, "attributes": attrs}]}]}]});
    let req = app.client.post(app.url("/v1/logs")).json(&otlp);
    let (status, body) = app.send(req, &app.admin_key).await?;
    assert_eq!(status, 200, "{body}");
    let (_, listed) = app.get("/v1/events?user_id=otlp-user").await?;
    assert_eq!(listed["events"][0]["geo"]["city"], "Berlin", "{listed}");

    // Syslog in.
    let mut conn = tokio::net::TcpStream::connect(app.server.inputs.syslog_addr("geo").unwrap()).await?;
    let line = format!(
        "<86>1 2026-01-05T11:00:00Z host sshd 1 - - {{\"category\":\"authentication\",\"action\":\"login_success\",\"user_id\":\"syslog-user\",\"ip\":\"{PARIS}\"}}\n"
    );
    conn.write_all(line.as_bytes()).await?;
    conn.flush().await?;
    let listed = app.wait_for("/v1/events?user_id=syslog-user", 10, |b| b["events"][0]["geo"].is_object()).await?;
    assert_eq!(listed["events"][0]["geo"]["country"], "FR", "{listed}");
    assert_eq!(listed["events"][0]["details"]["threat_lists"], json!(["drop", "feodo"]), "{listed}");

    // Hits and misses are counted (paris, own-asn, tokyo, syslog: hits; unknown: a miss).
    assert!(app.metric("vigil_enrich_geo_hits_total").await?.unwrap_or(0) >= 5);
    assert_eq!(app.metric("vigil_enrich_geo_misses_total").await?, Some(1), "8.8.8.8 only; private is not asked");
    assert!(app.metric("vigil_enrich_list_hits_total").await?.unwrap_or(0) >= 3);
    assert_eq!(app.verify().await?["status"], "ok");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn dbip_and_ipinfo_layouts_are_read() -> anyhow::Result<()> {
    // DB-IP's lite city database uses MaxMind's layout; IPinfo's are flat, with strings.
    let dbip = Mmdb::parse(city_db()).map_err(anyhow::Error::msg)?;
    let r = dbip.lookup(TOKYO.parse()?).unwrap();
    assert_eq!((r.country.as_deref(), r.city.as_deref()), (Some("JP"), Some("Tokyo")));
    let ipinfo = MmdbWriter::new("ipinfo standard_location.mmdb")
        .insert(
            "81.2.69.0/24",
            json!({"city": "London", "country": "gb", "lat": "51.5085", "lng": "-0.1257",
                                      "region": "England", "postal_code": "E1"}),
        )
        .insert(
            "8.8.8.0/24",
            json!({"asn": "AS15169", "as_name": "Google LLC", "country_code": "US", "as_domain": "google.com"}),
        )
        .build();
    let ipinfo = Mmdb::parse(ipinfo).map_err(anyhow::Error::msg)?;
    let r = ipinfo.lookup(PARIS.parse()?).unwrap();
    assert_eq!(r.country.as_deref(), Some("GB"));
    assert_eq!(r.city.as_deref(), Some("London"));
    assert_eq!((r.lat, r.lon), (Some(51.5085), Some(-0.1257)));
    let r = ipinfo.lookup("8.8.8.8".parse()?).unwrap();
    assert_eq!((r.asn, r.as_org.as_deref(), r.country.as_deref()), (Some(15169), Some("Google LLC"), Some("US")));
    assert!(ipinfo.lookup("9.9.9.9".parse()?).is_none());
    // Out-of-range or wrong values are dropped, not stored.
    let bad = MmdbWriter::new("x")
        .insert("1.0.0.0/8", json!({"country": {"iso_code": "FRA"}, "location": {"latitude": 95.0, "longitude": 2.0}}))
        .build();
    let r = Mmdb::parse(bad).map_err(anyhow::Error::msg)?.lookup("1.2.3.4".parse()?).unwrap();
    assert_eq!((r.country, r.lat, r.lon), (None, None, Some(2.0)));
    // Not a database: refused with a reason.
    for junk in [b"not an mmdb".to_vec(), city_db()[..200].to_vec(), {
        let mut b = city_db();
        b[10] ^= 0xff;
        b[11] ^= 0xff;
        b
    }] {
        assert!(Mmdb::parse(junk).is_err());
    }
    Ok(())
}

#[tokio::test]
async fn changed_files_are_reloaded_and_bad_ones_keep_the_previous_copy() -> anyhow::Result<()> {
    let dir = temp_dir()?;
    let db = dir.join("city.mmdb");
    let drop_list = dir.join("netset.txt");
    std::fs::write(&db, city_db())?;
    std::fs::write(&drop_list, "# firehol\n192.0.2.0/24\n")?;
    let (d, l) = (db.clone(), drop_list.clone());
    let app = spawn_app_with(Backend::Sqlite, move |c| {
        c.enrich.geoip_db = Some(d);
        c.enrich.reload_secs = 1;
        c.lists = vec![list("firehol", l, ListKind::Cidr)];
    })
    .await?;
    let probe =
        |n: usize, ip: &str| json!({"event_id": format!("probe-{n}"), "category": "a", "action": "b", "ip": ip});
    app.post_events(&json!([probe(0, PARIS), probe(100, "198.51.100.7")])).await?;
    assert_eq!(geo_of(&app, 0).await?.0, "FR");
    assert_eq!(geo_of(&app, 100).await?.1, Value::Null);

    // Paris moves to Germany; the list gains a network.
    let moved =
        MmdbWriter::new("GeoLite2-Country").insert("81.2.69.0/24", json!({"country": {"iso_code": "DE"}})).build();
    replace(&db, &moved)?;
    replace(&drop_list, b"192.0.2.0/24\n198.51.100.0/24 # new\n")?;
    let mut n = 1;
    loop {
        app.post_events(&json!([probe(n, PARIS), probe(100 + n, "198.51.100.7")])).await?;
        let (country, lists) = (geo_of(&app, n).await?.0, geo_of(&app, 100 + n).await?.1);
        if country == "DE" && lists == json!(["firehol"]) {
            break;
        }
        anyhow::ensure!(n < 60, "not reloaded: {country} {lists}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A corrupt database, a hostile list, then missing files: the loaded copies stay.
    replace(&db, b"\xAB\xCD\xEFMaxMind.com garbage")?;
    replace(&drop_list, b"not an address\n")?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    std::fs::remove_file(&db)?;
    std::fs::remove_file(&drop_list)?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.post_events(&json!([probe(99, PARIS), probe(199, "198.51.100.7")])).await?;
    assert_eq!(geo_of(&app, 99).await?.0, "DE");
    assert_eq!(geo_of(&app, 199).await?.1, json!(["firehol"]));
    assert!(app.metric("vigil_enrich_reload_failures_total").await?.unwrap_or(0) >= 4, "counted");
    let (status, _) = app.get("/healthz").await?;
    assert_eq!(status, 200, "still serving");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn bad_files_stop_config_check_and_the_start_with_a_clear_error() -> anyhow::Result<()> {
    let dir = temp_dir()?;
    std::fs::write(dir.join("bad.txt"), "1.2.3.4\n1.2.3.0/24\n")?;
    std::fs::write(dir.join("big.txt"), "10.0.0.1\n".repeat(200))?;
    std::fs::write(dir.join("junk.mmdb"), b"junk")?;
    let mut config =
        vigil::config::Config { lists: vec![list("bad", dir.join("bad.txt"), ListKind::Ip)], ..Default::default() };
    let err = vigil::ingest::Enricher::load(&config).unwrap_err();
    assert!(err.contains("list `bad`") && err.contains("line 2"), "{err}");
    config.lists = vec![ListConfig { max_bytes: 100, ..list("big", dir.join("big.txt"), ListKind::Ip) }];
    assert!(vigil::ingest::Enricher::load(&config).unwrap_err().contains("at most 100"));
    config.lists = vec![list("gone", dir.join("missing.txt"), ListKind::Cidr)];
    assert!(vigil::ingest::Enricher::load(&config).unwrap_err().contains("missing.txt"));
    config.lists.clear();
    config.enrich.geoip_db = Some(dir.join("junk.mmdb"));
    assert!(vigil::ingest::Enricher::load(&config).unwrap_err().contains("enrich.geoip_db"));

    let toml = dir.join("vigil.toml");
    std::fs::write(
        &toml,
        format!("[[lists]]\nname = \"bad\"\npath = \"{}\"\nkind = \"ip\"\n", dir.join("bad.txt").display()),
    )?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["config", "check", "--config", toml.to_str().unwrap()])
        .env_remove("VIGIL_DATABASE_URL")
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("list `bad`") && text.contains("line 2: not an IP address"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test]
async fn location_rules_fire_for_events_carrying_only_an_ip() -> anyhow::Result<()> {
    let dir = temp_dir()?;
    std::fs::write(dir.join("city.mmdb"), city_db())?;
    let rules = example_rules()?;
    let d = dir.clone();
    let app = spawn_app_with(Backend::Sqlite, move |c| {
        c.rules_dir = Some(rules);
        c.enrich.geoip_db = Some(d.join("city.mmdb"));
        let table: toml::Table = toml::from_str("learning_days = 0").expect("a TOML table");
        c.rules.config.insert("new_country_login".into(), table);
    })
    .await?;
    let t0: i64 = 1_767_610_800_000;
    let login = |ip: &str, t: i64| {
        json!({"category": "authentication", "action": "login_success", "outcome": "success", "user_id": "mallory",
               "ip": ip, "timestamp": t})
    };
    // Paris, then Tokyo ten minutes later: 9700 km in 10 min, and a new country.
    let (status, body) = app.post_events(&json!([login(PARIS, t0), login(TOKYO, t0 + 600_000)])).await?;
    assert_eq!(status, 201, "{body}");
    let want = ["impossible_travel", "new_country_login"];
    let body = app
        .wait_for("/v1/alerts?limit=50", 20, |b| {
            want.iter().all(|r| b["alerts"].as_array().is_some_and(|a| a.iter().any(|x| x["rule"] == *r)))
        })
        .await?;
    for rule in want {
        assert!(body["alerts"].as_array().unwrap().iter().any(|a| a["rule"] == rule), "{rule} did not fire: {body}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A raw ABI 1.4 module asking `in_list` three questions per event and alerting on each
/// expected answer: `bad` holds 198.51.100.7 (1), not 192.0.2.1 (0), `nope` is no list (-1).
fn list_asker() -> Vec<u8> {
    let manifest = json!({"name": "list_asker", "version": "1.0.0", "kind": "detection", "severity": "P3",
        "fields": [], "subscribe": [{"categories": ["authentication"], "actions": [], "outcomes": []}]})
    .to_string();
    let escaped = |s: &str| s.bytes().map(|b| format!("\\{b:02x}")).collect::<String>();
    let texts = [
        "bad",
        "198.51.100.7",
        "192.0.2.1",
        "nope",
        r#"{"title":"on","dedup_key":"on"}"#,
        r#"{"title":"off","dedup_key":"off"}"#,
        r#"{"title":"none","dedup_key":"none"}"#,
    ];
    let mut data = String::new();
    let mut at = Vec::new();
    let mut offset = 4096;
    for t in texts {
        data.push_str(&format!("  (data (i32.const {offset}) \"{}\")\n", escaped(t)));
        at.push((offset, t.len()));
        offset += t.len() + 16;
    }
    let ask = |list: usize, value: usize| {
        format!(
            "(call $in_list (i32.const {}) (i32.const {}) (i32.const {}) (i32.const {}))",
            at[list].0, at[list].1, at[value].0, at[value].1
        )
    };
    let emit = |alert: usize| format!("(drop (call $emit (i32.const {}) (i32.const {})))", at[alert].0, at[alert].1);
    let wat = format!(
        r#"(module
  (import "vigil" "in_list" (func $in_list (param i32 i32 i32 i32) (result i32)))
  (import "vigil" "emit_alert" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 40)
  (global (export "VIGIL_ABI_MAJOR") i32 (i32.const 16))
  (global (export "VIGIL_ABI_MINOR") i32 (i32.const 20))
  (data (i32.const 16) "\01\00\00\00\04\00\00\00")
  (data (i32.const 1048576) "{manifest_bytes}")
{data}
  (func (export "vigil_manifest") (result i64)
    (i64.or (i64.shl (i64.const 1048576) (i64.const 32)) (i64.const {manifest_len})))
  (func (export "vigil_input_area") (result i64)
    (i64.or (i64.shl (i64.const 131072) (i64.const 32)) (i64.const 65536)))
  (func (export "vigil_verdicts") (result i64)
    (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.const 4096)))
  (func (export "vigil_init") (param i32) (result i32) (i32.const 0))
  (func (export "vigil_evaluate") (param $n i32) (result i32)
    (if (i32.eq {on} (i32.const 1)) (then {emit_on}))
    (if (i32.eq {off} (i32.const 0)) (then {emit_off}))
    (if (i32.eq {none} (i32.const -1)) (then {emit_none}))
    (i32.const 0))
)"#,
        manifest_bytes = escaped(&manifest),
        manifest_len = manifest.len(),
        on = ask(0, 1),
        off = ask(0, 2),
        none = ask(3, 1),
        emit_on = emit(4),
        emit_off = emit(5),
        emit_none = emit(6),
    );
    wat::parse_str(&wat).expect("valid WAT")
}

#[tokio::test]
async fn rules_ask_the_lists_through_the_in_list_import() -> anyhow::Result<()> {
    let dir = temp_dir()?;
    std::fs::write(dir.join("bad.txt"), "# test\n198.51.100.0/24 ; SBL1\n")?;
    let d = dir.clone();
    let app = spawn_app_with(Backend::Sqlite, move |c| {
        c.lists = vec![list("bad", d.join("bad.txt"), ListKind::Cidr)];
    })
    .await?;
    let (status, body) = app.put_rule("list_asker", list_asker()).await?;
    assert!(status == 200 || status == 201, "{body}");
    let (status, body) = app.post_events(&json!({"category": "authentication", "action": "login_failed"})).await?;
    assert_eq!(status, 201, "{body}");
    let body = app
        .wait_for("/v1/alerts?rule=list_asker", 20, |b| b["alerts"].as_array().is_some_and(|a| a.len() >= 3))
        .await?;
    let mut keys: Vec<&str> =
        body["alerts"].as_array().unwrap().iter().filter_map(|a| a["dedup_key"].as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["none", "off", "on"], "{body}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A Sigma rule sees list hits: `details.threat_lists|contains` (as docs/integrations.md
/// writes it) matches the event whose `ip` is on the list and not the one whose `ip` is not.
#[tokio::test]
async fn sigma_rules_match_the_list_hits_in_details() -> anyhow::Result<()> {
    let dir = temp_dir()?;
    std::fs::write(dir.join("drop.txt"), "; Spamhaus DROP List\n203.0.113.0/24 ; SBL9\n")?;
    let d = dir.clone();
    let app = spawn_app_with(Backend::Sqlite, move |c| {
        c.lists = vec![list("spamhaus_drop", d.join("drop.txt"), ListKind::Cidr)];
    })
    .await?;
    let rule = "title: Login from a listed network\n\
                logsource:\n  category: authentication\n\
                detection:\n  selection:\n    action: login_success\n    details.threat_lists|contains: spamhaus_drop\n  \
                condition: selection\n\
                level: high\n";
    let (status, body) = crate::sigma::put_sigma(&app, "listed_login", rule).await?;
    assert!(status == 200 || status == 201, "{body}");
    for (n, ip) in [(1, "198.51.100.7"), (2, "203.0.113.9")] {
        let event = json!({"event_id": format!("probe-{n}"), "category": "authentication", "action": "login_success",
                           "outcome": "success", "ip": ip, "user_id": format!("user-{n}")});
        let (status, body) = app.post_events(&event).await?;
        assert_eq!(status, 201, "{body}");
    }
    app.wait_for("/v1/alerts?rule=listed_login", 20, |b| b["alerts"].as_array().is_some_and(|a| !a.is_empty())).await?;
    // Give a wrong match time to arrive before counting (it would add to the same alert).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = app.get("/v1/alerts?rule=listed_login").await?;
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["count"], 1, "only the listed address's login matches: {body}");
    let listed = event_by_id(&app, "probe-2").await?;
    assert_eq!(alerts[0]["event_seqs"], json!([listed["seq"]]), "{body}");
    let (_, lists) = geo_of(&app, 2).await?;
    assert_eq!(lists, json!(["spamhaus_drop"]));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
