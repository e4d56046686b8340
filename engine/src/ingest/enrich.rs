//! Enrichment of validated events before they are stored (DESIGN.md section 11): `geo` from
//! a GeoIP database when an event has an `ip` and no `geo`, `details.asn`/`as_org` from an
//! ASN database, and `details.threat_lists` naming the `[[lists]]` the `ip` is on. Every
//! input calls [`Enricher::apply`] right after validation and masking (`api::events`,
//! `api::otlp`, `inputs::syslog`); rules ask the lists through [`Enricher::lists`].
//!
//! Files are polled (modification time and size) every `[enrich] reload_secs`; a file that
//! is replaced, missing or corrupt keeps what was loaded before, with one warning per
//! change. At start every configured file must load (a clear error otherwise).

mod lists;
mod record;

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};

pub use lists::{List, MAX_VALUE_BYTES};
pub use record::Record;

use super::Masker;
use crate::config::{Config, ListKind};
use crate::event::NewEvent;

/// Largest MaxMind DB file read, bytes (the largest city databases are a few hundred MB).
pub const MAX_MMDB_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A MaxMind DB held in memory.
pub struct Mmdb(maxminddb::Reader<Vec<u8>>);

impl Mmdb {
    /// Reads and checks a database (its metadata, search tree and data section).
    pub fn parse(bytes: Vec<u8>) -> Result<Mmdb, String> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| format!("not a MaxMind DB file: {e}"))?;
        reader.verify().map_err(|e| format!("corrupt MaxMind DB file: {e}"))?;
        Ok(Mmdb(reader))
    }

    /// What the database says about `ip` (None: nothing, or an unreadable record).
    pub fn lookup(&self, ip: IpAddr) -> Option<Record> {
        self.0.lookup(ip).ok()?.decode::<Record>().ok().flatten()
    }
}

/// Size and modification time: a change of either means the file was replaced.
type Stamp = (Option<SystemTime>, u64);

/// A file loaded into `T`, reloaded when it changes.
struct Watched<T> {
    path: PathBuf,
    what: String,
    max_bytes: u64,
    parse: Box<dyn Fn(Vec<u8>) -> Result<T, String> + Send + Sync>,
    current: ArcSwapOption<T>,
    /// The stamp last tried (loaded or refused), so a bad file warns once.
    seen: Mutex<Option<Stamp>>,
}

impl<T> Watched<T> {
    fn new(
        path: &Path,
        what: String,
        max_bytes: u64,
        parse: impl Fn(Vec<u8>) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            path: path.to_owned(),
            what,
            max_bytes,
            parse: Box::new(parse),
            current: ArcSwapOption::empty(),
            seen: Mutex::new(None),
        }
    }

    fn stamp(&self) -> std::io::Result<Stamp> {
        let meta = std::fs::metadata(&self.path)?;
        Ok((meta.modified().ok(), meta.len()))
    }

    /// Reads and parses the file; the error says what is wrong, naming the file.
    fn read(&self) -> Result<(T, Stamp), String> {
        let at = |m: String| format!("{} `{}`: {m}", self.what, self.path.display());
        let stamp = self.stamp().map_err(|e| at(format!("cannot read it: {e}")))?;
        if stamp.1 > self.max_bytes {
            return Err(at(format!("{} bytes; at most {} are read", stamp.1, self.max_bytes)));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&self.path)
            .and_then(|f| f.take(self.max_bytes + 1).read_to_end(&mut bytes))
            .map_err(|e| at(format!("cannot read it: {e}")))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(at(format!("more than {} bytes", self.max_bytes)));
        }
        let parsed = (self.parse)(bytes).map_err(at)?;
        Ok((parsed, stamp))
    }

    /// Loads the file now (at start): an error stops the start.
    fn load(&self) -> Result<(), String> {
        let (value, stamp) = self.read()?;
        self.current.store(Some(Arc::new(value)));
        *self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stamp);
        Ok(())
    }

    /// Reloads the file if it changed since it was last tried; returns false when a change
    /// could not be loaded (the previous content stays, with one warning).
    fn reload_if_changed(&self) -> bool {
        let stamp = self.stamp().ok();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if stamp.is_some() && stamp == *seen {
            return true;
        }
        if stamp.is_none() {
            // Missing (being replaced, or removed): warn once, keep what is loaded.
            if seen.take().is_some() {
                tracing::warn!(file = %self.path.display(), what = %self.what, "Enrichment file missing; the loaded copy stays in use");
                return false;
            }
            return true;
        }
        match self.read() {
            // Changed while it was read (still being written): try again at the next poll.
            Ok((_, read_stamp)) if Some(read_stamp) != self.stamp().ok() => true,
            Ok((value, read_stamp)) => {
                self.current.store(Some(Arc::new(value)));
                *seen = Some(read_stamp);
                tracing::info!(file = %self.path.display(), what = %self.what, "Enrichment file reloaded");
                true
            }
            Err(problem) => {
                *seen = stamp;
                tracing::warn!(%problem, "Enrichment file not reloaded; the loaded copy stays in use");
                false
            }
        }
    }
}

/// Enrichment counters (`/metrics`).
#[derive(Debug, Default)]
pub struct EnrichStats {
    pub geo_hits: AtomicU64,
    pub geo_misses: AtomicU64,
    pub asn_hits: AtomicU64,
    pub asn_misses: AtomicU64,
    pub list_hits: AtomicU64,
    pub reload_failures: AtomicU64,
}

/// One `[[lists]]` entry, loaded.
struct NamedList {
    name: String,
    file: Watched<List>,
}

/// The GeoIP and ASN databases and the lists, as configured.
pub struct Enricher {
    geo: Option<Watched<Mmdb>>,
    asn: Option<Watched<Mmdb>>,
    lists: Vec<NamedList>,
    /// Counters.
    pub stats: EnrichStats,
    reloader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher").field("lists", &self.lists.len()).finish_non_exhaustive()
    }
}

impl Enricher {
    /// An enricher that does nothing (no databases, no lists).
    pub fn none() -> Self {
        Self { geo: None, asn: None, lists: Vec::new(), stats: EnrichStats::default(), reloader: Mutex::new(None) }
    }

    /// Loads every configured file; the error names the file and what is wrong with it
    /// (`vigil config check` and the start report it).
    pub fn load(config: &Config) -> Result<Self, String> {
        let mmdb = |path: &PathBuf, what: &str| {
            let w = Watched::new(path, what.to_owned(), MAX_MMDB_BYTES, Mmdb::parse);
            w.load().map(|()| w)
        };
        let geo = config.enrich.geoip_db.as_ref().map(|p| mmdb(p, "enrich.geoip_db")).transpose()?;
        let asn = config.enrich.asn_db.as_ref().map(|p| mmdb(p, "enrich.asn_db")).transpose()?;
        let mut lists = Vec::with_capacity(config.lists.len());
        for l in &config.lists {
            let (kind, max) = (l.kind, l.max_entries);
            let file = Watched::new(&l.path, format!("list `{}`", l.name), l.max_bytes, move |bytes: Vec<u8>| {
                List::parse(&bytes, kind, max)
            });
            file.load()?;
            lists.push(NamedList { name: l.name.clone(), file });
        }
        Ok(Self { geo, asn, lists, stats: EnrichStats::default(), reloader: Mutex::new(None) })
    }

    /// Whether anything is configured.
    pub fn is_active(&self) -> bool {
        self.geo.is_some() || self.asn.is_some() || !self.lists.is_empty()
    }

    /// Checks every file for a change and reloads the changed ones.
    pub fn reload(&self) {
        let files = self.geo.iter().chain(&self.asn).map(|w| w.reload_if_changed());
        let failed = files.chain(self.lists.iter().map(|l| l.file.reload_if_changed())).filter(|ok| !ok).count();
        self.stats.reload_failures.fetch_add(failed as u64, Ordering::Relaxed);
    }

    /// Polls the files every `every` on a blocking thread (a database read can take a
    /// while), until [`Enricher::stop`] or the enricher is dropped.
    pub fn start_reload(self: &Arc<Self>, every: Duration) {
        if !self.is_active() {
            return;
        }
        let me = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || me.reload()).await;
            }
        });
        *self.reloader.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    /// Stops polling the files.
    pub fn stop(&self) {
        if let Some(task) = self.reloader.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            task.abort();
        }
    }

    /// Whether `value` is on the list `name` (None: no such list).
    pub fn in_list(&self, name: &str, value: &str) -> Option<bool> {
        let list = self.lists.iter().find(|l| l.name == name)?;
        Some(list.file.current.load().as_ref().is_some_and(|l| l.contains(value)))
    }

    /// The names of the address lists `ip` is on, in configuration order.
    pub fn lists_of(&self, ip: IpAddr) -> Vec<&str> {
        self.lists
            .iter()
            .filter(|l| {
                l.file.current.load().as_ref().is_some_and(|list| list.kind != ListKind::Value && list.contains_ip(ip))
            })
            .map(|l| l.name.as_str())
            .collect()
    }

    /// Enriches validated events in place: `geo` when absent, `details.asn`/`as_org` when
    /// absent, `details.threat_lists` when the `ip` is on a list. Added text goes through
    /// the masker's value detectors like the client's own.
    pub fn apply(&self, events: &mut [NewEvent], masker: &Masker) {
        if !self.is_active() {
            return;
        }
        let geo = self.geo.as_ref().and_then(|w| w.current.load_full());
        let asn = self.asn.as_ref().and_then(|w| w.current.load_full());
        for ev in events {
            let Some(ip) = ev.fields.ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) else { continue };
            let routable = is_routable(ip);
            if let Some(db) = geo.as_deref().filter(|_| routable && ev.fields.geo.is_none()) {
                match db.lookup(ip).and_then(|r| geo_object(r, masker)) {
                    Some(bytes) => {
                        ev.fields.geo = Some(bytes);
                        self.stats.geo_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        self.stats.geo_misses.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let mut extra: Vec<(&str, Value)> = Vec::new();
            if let Some(db) = asn.as_deref().filter(|_| routable) {
                match db.lookup(ip).filter(|r| r.asn.is_some() || r.as_org.is_some()) {
                    Some(r) => {
                        self.stats.asn_hits.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = r.asn {
                            extra.push(("asn", Value::from(n)));
                        }
                        if let Some(org) = r.as_org {
                            extra.push(("as_org", Value::String(masker.mask_str(&org).unwrap_or(org))));
                        }
                    }
                    None => {
                        self.stats.asn_misses.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let hits = self.lists_of(ip);
            if !hits.is_empty() {
                self.stats.list_hits.fetch_add(1, Ordering::Relaxed);
                extra.push(("threat_lists", Value::from(hits)));
            }
            if !extra.is_empty() {
                add_details(ev, extra);
            }
        }
    }

    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let s = &self.stats;
        for (name, help, v) in [
            ("vigil_enrich_geo_hits_total", "Events given `geo` from the GeoIP database.", &s.geo_hits),
            (
                "vigil_enrich_geo_misses_total",
                "Events with a public `ip` and no `geo` the GeoIP database knew nothing about.",
                &s.geo_misses,
            ),
            ("vigil_enrich_asn_hits_total", "Events given `details.asn` from the ASN database.", &s.asn_hits),
            (
                "vigil_enrich_asn_misses_total",
                "Events with a public `ip` the ASN database did not know.",
                &s.asn_misses,
            ),
            ("vigil_enrich_list_hits_total", "Events whose `ip` was on at least one `[[lists]]` list.", &s.list_hits),
            (
                "vigil_enrich_reload_failures_total",
                "Changed enrichment files that could not be loaded (the previous copy stayed).",
                &s.reload_failures,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
    }
}

/// Whether a location database can know the address (not private, loopback, link-local,
/// shared, multicast or unspecified).
fn is_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_routable(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// The canonical `geo` object of a record (None: the record has no location).
fn geo_object(r: Record, masker: &Masker) -> Option<Box<[u8]>> {
    let mut geo = Map::new();
    if let Some(c) = r.country {
        geo.insert("country".into(), Value::String(c));
    }
    if let Some(city) = r.city {
        geo.insert("city".into(), Value::String(masker.mask_str(&city).unwrap_or(city)));
    }
    if let (Some(lat), Some(lon)) = (r.lat, r.lon) {
        geo.insert("lat".into(), serde_json::Number::from_f64(lat)?.into());
        geo.insert("lon".into(), serde_json::Number::from_f64(lon)?.into());
    }
    if geo.is_empty() {
        return None;
    }
    let mut bytes = Vec::with_capacity(64);
    crate::event::canonical::write_object(&geo, &mut bytes);
    Some(bytes.into_boxed_slice())
}

/// Adds members to an event's `details`: `asn` and `as_org` only when the client did not
/// send them, `threat_lists` always (the server's finding).
fn add_details(ev: &mut NewEvent, extra: Vec<(&str, Value)>) {
    let mut details: Map<String, Value> =
        ev.fields.details.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
    for (key, value) in extra {
        if key == "threat_lists" || !details.contains_key(key) {
            details.insert(key.to_owned(), value);
        }
    }
    let mut bytes = Vec::with_capacity(256);
    crate::event::canonical::write_object(&details, &mut bytes);
    ev.fields.details = Some(bytes.into_boxed_slice());
}
