//! Event search: the filters of `GET /v1/events` and `GET /v1/events/stats`, the one SQL
//! `WHERE` builder both backends use through sqlx's `QueryBuilder` (so placeholders are right
//! for each database), and the `Store` methods `query`, `seq_bounds` and `stats` with their
//! SQL (`search_queries!`), used by the events and export API, `respond` and the digest.

use serde::Serialize;
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{Store, StoreError, StoredRow, dispatch};

/// Filters of `GET /v1/events`. Results are newest first; `before_seq` is the cursor.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact category.
    pub category: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Exact severity.
    pub severity: Option<String>,
    /// Exact outcome.
    pub outcome: Option<String>,
    /// Exact organization id.
    pub organization_id: Option<String>,
    /// Exact user id.
    pub user_id: Option<String>,
    /// Exact ip.
    pub ip: Option<String>,
    /// Exact request id.
    pub request_id: Option<String>,
    /// Exact id of the API key that sent the event.
    pub ingest_key: Option<String>,
    /// timestamp >= since (epoch ms).
    pub since: Option<i64>,
    /// timestamp < until (epoch ms).
    pub until: Option<i64>,
    /// Only rows with seq < before_seq (pagination cursor).
    pub before_seq: Option<i64>,
    /// Only rows with seq in this range (derived from since/until by `Store::query`).
    pub seq_range: Option<(i64, i64)>,
    /// The posting blocks a lookup by [`Self::posting_field`] probes (set by the lookup,
    /// store/lookup.rs, from the blocks' filters); None: every block.
    pub posting_blocks: Option<Vec<i64>>,
    /// Max rows.
    pub limit: i64,
}

impl EventFilter {
    /// The field (and value) a lookup through the posting table probes for, when the filter
    /// has one: the most selective first (request ids are near unique, organizations few).
    pub fn posting_field(&self) -> Option<(&'static str, &str)> {
        [
            ("request_id", &self.request_id),
            ("user_id", &self.user_id),
            ("ip", &self.ip),
            ("ingest_key", &self.ingest_key),
            ("organization_id", &self.organization_id),
        ]
        .into_iter()
        .find_map(|(field, v)| v.as_deref().map(|v| (field, v)))
    }
}

/// Filters of `GET /v1/events/stats`.
#[derive(Debug, Clone, Default)]
pub struct StatsFilter {
    /// timestamp >= since (epoch ms).
    pub since: Option<i64>,
    /// timestamp < until (epoch ms).
    pub until: Option<i64>,
    /// Restrict to one organization.
    pub organization_id: Option<String>,
    /// Restrict to one category (lowercase).
    pub category: Option<String>,
    /// Width of time buckets, ms.
    pub bucket_ms: i64,
    /// How many top IPs / users to return.
    pub top: i64,
    /// Whose events: the applications' ([`Origin::App`]), the server's own
    /// ([`Origin::Vigil`]) or both.
    pub origin: Origin,
}

/// Who wrote an event, as `GET /v1/events/stats?origin=` selects it. The server's own
/// events (alerts, responses, configuration, audit, system; written by
/// `event::system_event`) carry `"source":"vigil"` and no `ingest_key`; every event a
/// client sends has had its key id in `ingest_key` since issue 21. `source` alone is not
/// enough (a client may send `source: "vigil"`), nor is a missing `ingest_key` (events
/// stored before it was recorded have none), so an event is the server's own when it has
/// both: no `ingest_key` and `"source":"vigil"` in its canonical bytes (`source` is not an
/// indexed column; the test is a byte search of `canon`, only on rows without a key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    /// Every event (the default of the API).
    #[default]
    All,
    /// Events sent by clients.
    App,
    /// The server's own events.
    Vigil,
}

impl Origin {
    /// Parses `app`, `vigil` or `all`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Self::All),
            "app" => Some(Self::App),
            "vigil" => Some(Self::Vigil),
            _ => None,
        }
    }
}

/// SQL true for the server's own events (same text for SQLite, where `LIKE` reads the blob
/// as text, and PostgreSQL, where `bytea LIKE bytea` compares bytes). Canonical JSON is
/// compact with sorted keys, so the top-level member is exactly these bytes.
const SERVER_EVENT_SQL: &str = "(ingest_key IS NULL AND canon LIKE '%\"source\":\"vigil\"%')";

/// A value and how many events carry it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Count {
    pub value: String,
    /// Number of events.
    pub count: i64,
}

/// A time bucket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Bucket start (RFC 3339).
    pub start: String,
    /// Number of events.
    pub count: i64,
}

/// Response of `GET /v1/events/stats`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Stats {
    /// Events matched.
    pub total: i64,
    pub by_category: Vec<Count>,
    pub by_severity: Vec<Count>,
    pub by_outcome: Vec<Count>,
    pub by_action: Vec<Count>,
    /// What the four groupings above left out past their [`GROUP_LIMIT`] most frequent
    /// values (categories and actions are chosen by clients, so their number is not
    /// bounded).
    pub other: OtherCounts,
    /// failures / total (0 when empty).
    pub failure_rate: f64,
    /// Events with severity high or critical.
    pub high_risk: i64,
    /// Most frequent IPs.
    pub top_ips: Vec<Count>,
    /// Most frequent users.
    pub top_users: Vec<Count>,
    /// Events per time bucket, ascending.
    pub buckets: Vec<Bucket>,
    /// (category, events, failures) of the 100 categories with most events (most first,
    /// ties by category), when the groupings were made in one pass (the security report
    /// uses them; not part of the API answer).
    #[serde(skip)]
    pub failures_by_category: Option<Vec<(String, i64, i64)>>,
}

/// The grouping columns of [`Stats`], in the order they are filled.
pub const GROUPED_COLUMNS: [&str; 4] = ["category", "severity", "outcome", "action"];

/// Most values a grouping of [`Stats`] lists (the most frequent first); the rest are summed
/// in [`Stats::other`].
pub const GROUP_LIMIT: i64 = 100;

/// The values of one grouping past its [`GROUP_LIMIT`] most frequent.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Other {
    /// Distinct values left out.
    pub values: i64,
    /// Events carrying them.
    pub count: i64,
}

/// [`Other`] per grouping of [`Stats`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct OtherCounts {
    pub by_category: Other,
    pub by_severity: Other,
    pub by_outcome: Other,
    pub by_action: Other,
}

/// One grouping as the database answers it: the top rows, each with the number of groups
/// and the events of all groups (window functions over the grouped rows).
pub(crate) fn top_and_other(rows: Vec<(String, i64, i64, i64)>) -> (Vec<Count>, Other) {
    let (groups, all) = rows.first().map_or((0, 0), |r| (r.2, r.3));
    let top: Vec<Count> = rows.into_iter().map(|(value, count, _, _)| Count { value, count }).collect();
    let listed: i64 = top.iter().map(|c| c.count).sum();
    let other = Other { values: (groups - top.len() as i64).max(0), count: (all - listed).max(0) };
    (top, other)
}

/// Most (category, severity, outcome, action) combinations [`Stats`] groups in one pass
/// over the events; past it (clients choose categories and actions, so their number is
/// not bounded) each column is grouped by its own query.
pub const COMBINATION_LIMIT: usize = 20_000;

/// The four groupings, the failures and the high-risk count from one pass: the rows of
/// `GROUP BY category, severity, outcome, action` as (category, severity, outcome, action,
/// events). Each grouping lists its [`GROUP_LIMIT`] most frequent values (ties by value,
/// byte order) and sums the rest in [`Other`], as the per-column queries do. Returns
/// ([category, severity, outcome, action], total, failures, high risk).
pub(crate) fn fold_combinations(
    rows: &[(String, String, String, String, i64)],
) -> ([(Vec<Count>, Other); 4], i64, i64, i64) {
    let mut maps: [std::collections::HashMap<&str, i64>; 4] = Default::default();
    let (mut total, mut failures, mut high_risk) = (0i64, 0i64, 0i64);
    for (category, severity, outcome, action, n) in rows {
        for (map, value) in maps.iter_mut().zip([category, severity, outcome, action]) {
            *map.entry(value.as_str()).or_default() += n;
        }
        total += n;
        if outcome == "failure" {
            failures += n;
        }
        if severity == "high" || severity == "critical" {
            high_risk += n;
        }
    }
    let grouping = |map: &std::collections::HashMap<&str, i64>| {
        let mut all: Vec<(&str, i64)> = map.iter().map(|(v, n)| (*v, *n)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let groups = all.len() as i64;
        let sum: i64 = all.iter().map(|x| x.1).sum();
        let top = all.into_iter().take(GROUP_LIMIT as usize).map(|(v, n)| (v.to_owned(), n, groups, sum)).collect();
        top_and_other(top)
    };
    let [c, s, o, a] = &maps;
    ([grouping(c), grouping(s), grouping(o), grouping(a)], total, failures, high_risk)
}

/// (category, events, failures) from the rows of [`fold_combinations`]: the 100 categories
/// with most events, most first, ties by category (byte order).
pub(crate) fn failures_by_category(rows: &[(String, String, String, String, i64)]) -> Vec<(String, i64, i64)> {
    let mut by: std::collections::HashMap<&str, (i64, i64)> = std::collections::HashMap::new();
    for (category, _, outcome, _, n) in rows {
        let e = by.entry(category.as_str()).or_default();
        e.0 += n;
        if outcome == "failure" {
            e.1 += n;
        }
    }
    let mut out: Vec<(String, i64, i64)> = by.into_iter().map(|(c, (n, f))| (c.to_owned(), n, f)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(100);
    out
}

/// Appends ` WHERE ...` (always valid: starts with `1=1`) for an event filter. With
/// `postings` (SQLite), a filter on a high-cardinality field is served by the posting table
/// (`store::postings`); the column comparison stays, so the result is exact.
pub fn push_event_filter<DB: Database>(qb: &mut QueryBuilder<DB>, f: &EventFilter, postings: bool)
where
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    qb.push(" WHERE 1=1");
    if postings
        && let Some((field, value)) = f.posting_field()
        && let (Some(blocks), Some(tag)) = (&f.posting_blocks, super::postings::tag(field))
    {
        super::lookup::push_block_probe(qb, super::postings::term(tag, value), blocks);
    } else if postings && let Some((field, value)) = f.posting_field() {
        let hi = [f.before_seq.map(|b| b - 1), f.seq_range.map(|r| r.1)].into_iter().flatten().min();
        let lo = f.seq_range.map(|r| r.0);
        push_posting_lookup(qb, field, value, lo, hi);
    }
    let exact = [
        ("category", &f.category),
        ("action", &f.action),
        ("severity", &f.severity),
        ("outcome", &f.outcome),
        ("organization_id", &f.organization_id),
        ("user_id", &f.user_id),
        ("ip", &f.ip),
        ("request_id", &f.request_id),
        ("ingest_key", &f.ingest_key),
    ];
    for (column, value) in exact {
        if let Some(v) = value {
            qb.push(format_args!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    push_time_range(qb, f.since, f.until);
    if let Some(before) = f.before_seq {
        qb.push(" AND seq < ").push_bind(before);
    }
    if let Some((lo, hi)) = f.seq_range {
        qb.push(" AND seq >= ").push_bind(lo).push(" AND seq <= ").push_bind(hi);
    }
}

/// Appends ` AND seq IN (...)`: the seqs the posting table holds for `field = value`, one
/// probe of `(block, term)` per block from the newest block down to the oldest (bounded by
/// `lo`/`hi` seqs when known).
fn push_posting_lookup<DB: Database>(
    qb: &mut QueryBuilder<DB>,
    field: &str,
    value: &str,
    lo: Option<i64>,
    hi: Option<i64>,
) where
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let Some(tag) = super::postings::tag(field) else { return };
    // SQLite: CROSS JOIN keeps the loop order (blocks outside, one probe each) and MIN/MAX
    // of two values are scalar; PostgreSQL has no CROSS JOIN ... ON (it picks that order
    // itself) and spells those LEAST/GREATEST.
    let (join, least, greatest) =
        if DB::NAME == "SQLite" { ("CROSS JOIN", "MIN", "MAX") } else { ("JOIN", "LEAST", "GREATEST") };
    qb.push(" AND seq IN (WITH RECURSIVE b(x) AS (SELECT ");
    match hi {
        Some(hi) => qb
            .push(format_args!("{least}((SELECT MAX(block) FROM postings), "))
            .push_bind(super::postings::block(hi.max(0)))
            .push(")"),
        None => qb.push("(SELECT MAX(block) FROM postings)"),
    };
    qb.push(" UNION ALL SELECT x - 1 FROM b WHERE x > ");
    match lo {
        Some(lo) => qb
            .push(format_args!("{greatest}((SELECT MIN(block) FROM postings), "))
            .push_bind(super::postings::block(lo.max(0)))
            .push(")"),
        None => qb.push("(SELECT MIN(block) FROM postings)"),
    };
    qb.push(format_args!(") SELECT p.seq FROM b {join} postings p ON p.block = b.x AND p.term = "))
        .push_bind(super::postings::term(tag, value))
        .push(")");
}

/// Appends ` WHERE ...` for a stats filter.
pub fn push_stats_filter<DB: Database>(qb: &mut QueryBuilder<DB>, f: &StatsFilter, postings: bool)
where
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    qb.push(" WHERE 1=1");
    if postings && let Some(org) = &f.organization_id {
        push_posting_lookup(qb, "organization_id", org, None, None);
    }
    if let Some(org) = &f.organization_id {
        qb.push(" AND organization_id = ").push_bind(org.clone());
    }
    if let Some(category) = &f.category {
        qb.push(" AND category = ").push_bind(category.clone());
    }
    match f.origin {
        Origin::All => {}
        Origin::App => {
            qb.push(format_args!(" AND NOT {SERVER_EVENT_SQL}"));
        }
        Origin::Vigil => {
            qb.push(format_args!(" AND {SERVER_EVENT_SQL}"));
        }
    }
    push_time_range(qb, f.since, f.until);
}

pub fn push_time_range<DB: Database>(qb: &mut QueryBuilder<DB>, since: Option<i64>, until: Option<i64>)
where
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    if let Some(since) = since {
        qb.push(" AND ts >= ").push_bind(since);
    }
    if let Some(until) = until {
        qb.push(" AND ts < ").push_bind(until);
    }
}

impl Store {
    /// Filtered query, newest first. A time filter is first turned into the seq range of
    /// the matching events (one index-only pass over `ts`), so the newest-first walk over
    /// seq touches only that range instead of sorting every match.
    pub async fn query(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
        if filter.since.is_some() || filter.until.is_some() {
            let bounds = dispatch!(self, s => s.seq_bounds(filter.since, filter.until).await)?;
            let Some(range) = bounds else { return Ok(Vec::new()) };
            let narrowed = EventFilter { seq_range: Some(range), ..filter.clone() };
            return self.query_in_range(&narrowed).await;
        }
        self.query_in_range(filter).await
    }

    async fn query_in_range(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
        match self {
            // A lookup by a posting field: the blocks its filters name, newest first (lookup.rs).
            Store::Postgres(s) if !s.uses_postings() => s.query(filter).await,
            _ if filter.posting_field().is_some() && filter.posting_blocks.is_none() => {
                self.query_by_postings(filter).await
            }
            _ => dispatch!(self, s => s.query(filter).await),
        }
    }

    /// The seq range of events whose time is in `[since, until)`.
    pub async fn seq_bounds(&self, since: Option<i64>, until: Option<i64>) -> Result<Option<(i64, i64)>, StoreError> {
        dispatch!(self, s => s.seq_bounds(since, until).await)
    }

    /// Aggregate statistics.
    pub async fn stats(&self, filter: &StatsFilter) -> Result<Stats, StoreError> {
        dispatch!(self, s => s.stats(filter).await)
    }
}

/// Needs `event_queries!` (events.rs) expanded in the same module: `SELECT_EVENTS`, `stored_row`.
macro_rules! search_queries {
    ($store:ty, $db:ty, reader: $reader:ident, fence: $fence:literal, postings: $postings:ident) => {
        impl $store {
            pub(super) async fn seq_bounds(
                &self,
                since: Option<i64>,
                until: Option<i64>,
            ) -> Result<Option<(i64, i64)>, StoreError> {
                // The subquery, fenced on PostgreSQL with OFFSET 0, makes the planner read the
                // window from the `ts` index; a bare MIN(seq) lets PostgreSQL walk the primary
                // key from seq 1 until the first row in the window (400 ms at 1M events).
                let mut qb = QueryBuilder::<$db>::new("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM (SELECT seq FROM events WHERE 1=1");
                query::push_time_range(&mut qb, since, until);
                qb.push(concat!($fence, ") w"));
                let row = qb.build().fetch_one(&self.$reader).await?;
                Ok(row.get::<Option<i64>, _>("lo").zip(row.get::<Option<i64>, _>("hi")))
            }

            pub(super) async fn query(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(SELECT_EVENTS);
                query::push_event_filter(&mut qb, filter, self.$postings());
                qb.push(" ORDER BY seq DESC LIMIT ").push_bind(filter.limit);
                // Not cached: see `scan` (a tampered column type must not fail the query).
                let rows = qb.build().persistent(false).fetch_all(&self.$reader).await?;
                Ok(rows.iter().map(stored_row).collect())
            }

            pub(super) async fn stats(&self, f: &StatsFilter) -> Result<Stats, StoreError> {
                let mut stats = Stats::default();
                let counts = |column: &str, limit: i64| {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {column} AS value, COUNT(*) AS n FROM events"));
                    query::push_stats_filter(&mut qb, f, self.$postings());
                    qb.push(format_args!(" AND {column} IS NOT NULL GROUP BY {column} ORDER BY n DESC, {column} LIMIT "))
                        .push_bind(limit);
                    qb
                };
                // One pass for the four groupings and the totals (each column's own query
                // reads every row of the range again: 1M rows read 7 times made a week's
                // report take 5 s); per-column queries when the combinations are too many.
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT category, severity, outcome, action, COUNT(*) AS n FROM events",
                );
                query::push_stats_filter(&mut qb, f, self.$postings());
                qb.push(" GROUP BY category, severity, outcome, action LIMIT ")
                    .push_bind(query::COMBINATION_LIMIT as i64 + 1);
                let combinations: Vec<(String, String, String, String, i64)> = qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| (r.get("category"), r.get("severity"), r.get("outcome"), r.get("action"), r.get("n")))
                    .collect();
                let (grouped, mut failures) = if combinations.len() <= query::COMBINATION_LIMIT {
                    let (grouped, total, failures, high_risk) = query::fold_combinations(&combinations);
                    (stats.total, stats.high_risk) = (total, high_risk);
                    stats.failures_by_category = Some(query::failures_by_category(&combinations));
                    (grouped, failures)
                } else {
                    (self.grouped_by_column(f).await?, 0)
                };
                let [category, severity, outcome, action] = grouped;
                (stats.by_category, stats.other.by_category) = category;
                (stats.by_severity, stats.other.by_severity) = severity;
                (stats.by_outcome, stats.other.by_outcome) = outcome;
                (stats.by_action, stats.other.by_action) = action;
                if combinations.len() > query::COMBINATION_LIMIT {
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT COUNT(*) AS total, \
                         CAST(COALESCE(SUM(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failures, \
                         CAST(COALESCE(SUM(CASE WHEN severity IN ('high', 'critical') THEN 1 ELSE 0 END), 0) AS BIGINT) \
                         AS high_risk FROM events",
                    );
                    query::push_stats_filter(&mut qb, f, self.$postings());
                    let row = qb.build().fetch_one(&self.$reader).await?;
                    (stats.total, failures, stats.high_risk) = (row.get("total"), row.get("failures"), row.get("high_risk"));
                }
                stats.failure_rate = if stats.total > 0 { failures as f64 / stats.total as f64 } else { 0.0 };
                stats.top_ips = self.fetch_counts(counts("ip", f.top)).await?;
                stats.top_users = self.fetch_counts(counts("user_id", f.top)).await?;
                let mut qb = QueryBuilder::<$db>::new("SELECT (ts / ");
                qb.push_bind(f.bucket_ms).push(") * ").push_bind(f.bucket_ms).push(" AS b, COUNT(*) AS n FROM events");
                query::push_stats_filter(&mut qb, f, self.$postings());
                qb.push(" GROUP BY b ORDER BY b LIMIT 10000");
                stats.buckets = qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| query::Bucket { start: crate::event::format_rfc3339_ms(r.get("b")), count: r.get("n") })
                    .collect();
                Ok(stats)
            }

            /// The four groupings, one query per column (when the combinations are too many
            /// for one pass).
            async fn grouped_by_column(&self, f: &StatsFilter) -> Result<[(Vec<Count>, query::Other); 4], StoreError> {
                let mut grouped = Vec::new();
                for column in query::GROUPED_COLUMNS {
                    let mut qb = QueryBuilder::<$db>::new(format!(
                        "SELECT value, n, COUNT(*) OVER () AS groups, CAST(SUM(n) OVER () AS BIGINT) AS all_n \
                         FROM (SELECT {column} AS value, COUNT(*) AS n FROM events"
                    ));
                    query::push_stats_filter(&mut qb, f, self.$postings());
                    qb.push(format_args!(" AND {column} IS NOT NULL GROUP BY {column}) g ORDER BY n DESC, value LIMIT "))
                        .push_bind(query::GROUP_LIMIT);
                    let rows = qb.build().fetch_all(&self.$reader).await?;
                    grouped.push(query::top_and_other(
                        rows.iter().map(|r| (r.get("value"), r.get("n"), r.get("groups"), r.get("all_n"))).collect(),
                    ));
                }
                Ok(grouped.try_into().expect("four grouped columns"))
            }

            async fn fetch_counts(&self, mut qb: QueryBuilder<$db>) -> Result<Vec<Count>, StoreError> {
                let rows = qb.build().fetch_all(&self.$reader).await?;
                Ok(rows.iter().map(|r| Count { value: r.get("value"), count: r.get("n") }).collect())
            }
        }
    };
}

pub(crate) use search_queries;

#[cfg(test)]
mod tests {
    use super::{Count, Other, top_and_other};

    #[test]
    fn one_pass_groupings_match_what_the_per_column_queries_answer() {
        let row = |c: &str, s: &str, o: &str, a: &str, n| (c.to_owned(), s.to_owned(), o.to_owned(), a.to_owned(), n);
        let mut rows = vec![
            row("authentication", "low", "failure", "login_failed", 6),
            row("authentication", "low", "success", "login_success", 3),
            row("authorization", "high", "failure", "permission_denied", 1),
            row("admin", "critical", "success", "b", 1),
        ];
        // 150 distinct actions of one event each: 100 listed, 50 in `other`.
        rows.extend((0..150).map(|i| row("data_access", "medium", "success", &format!("read_{i:03}"), 1)));
        let ([category, severity, outcome, action], total, failures, high_risk) = super::fold_combinations(&rows);
        assert_eq!((total, failures, high_risk), (161, 7, 2));
        assert_eq!(category.0[0], Count { value: "data_access".into(), count: 150 });
        assert_eq!(category.0[1], Count { value: "authentication".into(), count: 9 });
        assert_eq!(category.1, Other::default());
        assert_eq!(severity.0[0].value, "medium");
        assert_eq!(
            outcome.0,
            vec![Count { value: "success".into(), count: 154 }, Count { value: "failure".into(), count: 7 }]
        );
        assert_eq!(action.0.len(), 100);
        assert_eq!(action.0[0], Count { value: "login_failed".into(), count: 6 });
        // Ties by value, byte order: "b" before "permission_denied" before "read_000".
        assert_eq!((action.0[2].value.as_str(), action.0[3].value.as_str()), ("b", "permission_denied"));
        assert_eq!(action.1, Other { values: 54, count: 54 });
        let rates = super::failures_by_category(&rows);
        assert_eq!(rates[..2], [("data_access".to_owned(), 150, 0), ("authentication".to_owned(), 9, 6)]);
        assert_eq!(rates[2..], [("admin".to_owned(), 1, 0), ("authorization".to_owned(), 1, 1)]);
    }

    #[test]
    fn the_rest_past_the_top_values_is_summed_in_other() {
        // 3 groups of 10, 5 and 1 events: the database answers the top 2 (LIMIT).
        let rows = vec![("a".to_owned(), 10, 3, 16), ("b".to_owned(), 5, 3, 16)];
        let (top, other) = top_and_other(rows);
        assert_eq!(top, vec![Count { value: "a".into(), count: 10 }, Count { value: "b".into(), count: 5 }]);
        assert_eq!(other, Other { values: 1, count: 1 });
        assert_eq!(top_and_other(Vec::new()), (Vec::new(), Other::default()));
    }
}
