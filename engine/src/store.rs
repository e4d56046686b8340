//! Storage: the append-only event log with its hash chain, and the tables of the services
//! built on it (checkpoints, API keys, rules, alerts, notifications, silences, decisions,
//! the allowlist).
//!
//! `ingest` hands validated, masked events to the `Sequencer` (ledger/sequencer.rs), the one
//! writer per log, which assigns `seq`, builds the canonical bytes (ledger/canon.rs) and the
//! chain (ledger/chain.rs) and writes one transaction per group through [`Store`], an enum
//! over the two concrete backends (store/sqlite.rs, store/postgres.rs). `api` reads through
//! the same enum.
//!
//! The store is organised by aggregate: each table family has one file holding its row
//! types, its `Store` methods and its SQL, as a macro (`event_queries!`, `alert_queries!`...)
//! that sqlite.rs and postgres.rs each expand once for their own connection types.

/// A closed set of values a table stores as text: `as_str` is what is written, `parse`
/// reads it back (exactly: no other spelling is accepted), `ALL` lists the values.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored (and API) text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The texts of every value.
            pub fn names() -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().map(|v| v.as_str())
            }

            /// Reads the stored text back (`None`: not one of [`Self::ALL`]).
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod alert_changes;
pub mod alert_stats;
pub mod alerts;
pub mod allowlist;
pub mod block_filters;
pub mod checkpoints;
pub mod cluster;
pub mod decisions;
pub mod escalations;
pub mod events;
pub mod forwarders;
pub mod keys;
mod lookup;
pub mod outbox;
pub mod outbox_claims;
pub mod postgres;
pub mod postings;
pub mod query;
pub mod report_stats;
pub mod rules;
pub mod silences;
pub mod sqlite;

pub use alert_changes::AlertChange;
pub use alert_stats::AlertStats;
pub use alerts::{AlertFilter, AlertRow, AlertStatus, AlertWrite};
pub use checkpoints::Checkpoint;
pub use escalations::EscalationRow;
pub use events::{EventKey, Head, IndexedColumns, StoredRow, decode_canon};
pub use keys::ApiKeyRow;
pub use outbox::{NotificationFilter, NotificationRow, NotificationStatus};
pub use query::{EventFilter, Origin, Stats, StatsFilter};
pub use report_stats::{PeriodFigures, SlaMs};
pub use rules::StoredRule;
pub use silences::SilenceRow;

/// Errors of the storage layer. Messages never reach API clients verbatim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database has no space left (SQLite `SQLITE_FULL`, PostgreSQL `53100`). Nothing of
    /// the failed statement or transaction was stored; writes succeed again once space
    /// returns. Answered 507.
    #[error("the database is out of space: {0}")]
    Full(String),
    /// The database cannot be reached now (connection refused or lost, pool timeout,
    /// server shutting down or starting). Answered 503 with `Retry-After`.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A migration failed.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The database URL is not one we support.
    #[error("unsupported database url (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// Stored data is not what the store wrote (corruption or tampering).
    #[error("corrupt row at seq {seq}: {problem}")]
    Corrupt {
        /// Where: the seq of an event, the id of a row of another table (the problem names
        /// the table).
        seq: i64,
        /// What.
        problem: String,
    },
    /// A group commit failed; the batch was not stored (the cause is logged).
    #[error("the batch could not be stored: {0}")]
    WriteFailed(String),
    /// The sequencer is gone (server shutting down).
    #[error("the sequencer has stopped")]
    SequencerStopped,
    /// The log is on integrity hold: client writes are refused until an operator accepts.
    #[error(
        "the log is on integrity hold: the database does not match what this server signed; \
         see GET /v1/integrity/verify, then `vigil integrity accept --reason ...`"
    )]
    OnHold,
    /// Cluster mode: this writer's lease on the partition expired or was taken over; nothing
    /// of the transaction was stored and this writer never writes the partition again.
    #[error("partition {partition}: the lease (epoch {epoch}) is no longer held; nothing was stored")]
    Fenced {
        /// The partition.
        partition: i32,
        /// The epoch the writer held.
        epoch: i64,
    },
    /// Cluster mode cannot run as configured (the message says why).
    #[error("cluster: {0}")]
    Cluster(String),
    /// I/O error (data directory, key files).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// For conditions that are not one batch's fault (out of space, database unreachable,
    /// on hold, stopping): the same error again, to answer every request of a group.
    pub fn shared(&self) -> Option<StoreError> {
        match self {
            Self::Full(m) => Some(Self::Full(m.clone())),
            Self::Unavailable(m) => Some(Self::Unavailable(m.clone())),
            Self::OnHold => Some(Self::OnHold),
            Self::SequencerStopped => Some(Self::SequencerStopped),
            Self::Fenced { partition, epoch } => Some(Self::Fenced { partition: *partition, epoch: *epoch }),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    /// Classifies database errors: out of space and unreachable are conditions an operator
    /// fixes without touching the data, so they get their own variants (and statuses).
    fn from(err: sqlx::Error) -> Self {
        match classify(&err) {
            ErrorClass::Full => Self::Full(err.to_string()),
            ErrorClass::Unavailable => Self::Unavailable(err.to_string()),
            ErrorClass::Other => Self::Database(err),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ErrorClass {
    Full,
    Unavailable,
    Other,
}

/// Appends `(id, id, ...)`, each id bound, to a statement that wrote `IN` before it.
pub(crate) fn push_ids<DB: sqlx::Database>(qb: &mut sqlx::QueryBuilder<DB>, ids: &[i64])
where
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    qb.push("(");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    qb.push(")");
}

fn classify(err: &sqlx::Error) -> ErrorClass {
    match err {
        sqlx::Error::Io(e) if e.raw_os_error() == Some(28) => ErrorClass::Full,
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => ErrorClass::Unavailable,
        sqlx::Error::Database(db) => classify_code(db.code().as_deref().unwrap_or(""), db.message()),
        _ => ErrorClass::Other,
    }
}

/// SQLite reports its (extended) result code as a number of at most four digits,
/// PostgreSQL its five-character SQLSTATE.
fn classify_code(code: &str, message: &str) -> ErrorClass {
    if code.len() < 5
        && let Ok(n) = code.parse::<i64>()
    {
        return match n & 0xff {
            13 => ErrorClass::Full, // SQLITE_FULL
            // SQLITE_IOERR (a failed write or fsync: often ENOSPC on a full disk),
            // SQLITE_BUSY / SQLITE_LOCKED (another process holds the file), SQLITE_READONLY
            // (the file or its directory made read-only), SQLITE_CANTOPEN.
            10 if message.contains("full") => ErrorClass::Full,
            10 | 5 | 6 | 8 | 14 => ErrorClass::Unavailable,
            _ => ErrorClass::Other,
        };
    }
    match code {
        "53100" => ErrorClass::Full,
        // insufficient resources, connection exceptions, operator intervention (shutdown,
        // crash shutdown, cannot connect now), a read-only (standby) server, transaction
        // rollbacks (serialization failure, deadlock).
        c if c.starts_with("53")
            || c.starts_with("08")
            || c.starts_with("57P")
            || c.starts_with("40")
            || c == "25006" =>
        {
            ErrorClass::Unavailable
        }
        _ => ErrorClass::Other,
    }
}

/// Reads one row by column name, for the decoders of tables whose text columns hold a
/// closed set of values (alerts, decisions, notifications): a value of the wrong type, or
/// text that is not one of its column's values (a tampered database), is a
/// [`StoreError::Corrupt`] naming the table, the row id and the column, never a panic.
pub(crate) struct Columns<'r, R> {
    row: &'r R,
    table: &'static str,
    id: i64,
}

impl<'r, R: sqlx::Row> Columns<'r, R>
where
    for<'n> &'n str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    /// The reader of a row of `table`, whose id is in column `id`.
    pub(crate) fn new(row: &'r R, table: &'static str) -> Result<Self, StoreError> {
        Self::keyed(row, table, "id")
    }

    /// The reader of a row of `table`, whose id is in column `id_column` (a joined query).
    pub(crate) fn keyed(row: &'r R, table: &'static str, id_column: &str) -> Result<Self, StoreError> {
        let id = row.try_get::<i64, _>(id_column).map_err(|e| StoreError::Corrupt {
            seq: 0,
            problem: format!("{table}: a row without a readable id ({id_column}): {e}"),
        })?;
        Ok(Self { row, table, id })
    }

    /// The row's id.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Column `name`.
    pub(crate) fn get<T>(&self, name: &str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        self.row.try_get(name).map_err(|e| self.corrupt(format!("column {name}: {e}")))
    }

    /// Column `name`, text that `parse` reads as one of the values `expected` lists.
    pub(crate) fn parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: impl IntoIterator<Item = &'static str>,
    ) -> Result<T, StoreError> {
        let text: String = self.get(name)?;
        parse(&text).ok_or_else(|| {
            let expected: Vec<&str> = expected.into_iter().collect();
            self.corrupt(format!("{name} {text:?} is not one of {}", expected.join(", ")))
        })
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt { seq: self.id, problem: format!("{} row {}: {what}", self.table, self.id) }
    }
}

/// The storage backend: one concrete store per database, no `sqlx::Any`.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL.
    Postgres(postgres::PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}
pub(crate) use dispatch;

impl Store {
    /// Opens (and migrates) the database named by `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::open(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::PgStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(url.chars().take(16).collect()))
        }
    }

    /// Opens an existing database to read only (backtests): SQLite is opened read-only, never
    /// created and never migrated; PostgreSQL as [`Store::open`] does (it never creates a
    /// database).
    pub async fn open_read_only(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::open_read_only(url).await?))
        } else {
            Self::open(url).await
        }
    }

    /// The file a `sqlite:` URL names (None for other URLs or an unparsable one).
    pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
        url.starts_with("sqlite:").then(|| sqlite::SqliteStore::path(url)).flatten()
    }

    /// Backend name for metrics and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Liveness of the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use super::{AlertStatus, ErrorClass, NotificationStatus, classify, classify_code};
    use crate::store::decisions::DecisionStatus;

    #[test]
    fn stored_texts_read_back_exactly() {
        for s in AlertStatus::ALL {
            assert_eq!(AlertStatus::parse(s.as_str()), Some(*s));
        }
        for s in DecisionStatus::ALL {
            assert_eq!(DecisionStatus::parse(&s.to_string()), Some(*s));
        }
        for s in NotificationStatus::ALL {
            assert_eq!(NotificationStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(AlertStatus::names().collect::<Vec<_>>(), ["open", "acknowledged", "resolved"]);
        assert_eq!(NotificationStatus::names().count(), 7);
        assert_eq!(AlertStatus::parse("Open"), None, "no other spelling");
        assert_eq!(DecisionStatus::parse(""), None);
    }

    #[test]
    fn database_errors_are_classified_by_code() {
        assert_eq!(classify_code("13", "database or disk is full"), ErrorClass::Full);
        assert_eq!(classify_code("778", "disk I/O error"), ErrorClass::Unavailable);
        assert_eq!(classify_code("5", "database is locked"), ErrorClass::Unavailable);
        assert_eq!(classify_code("8", "attempt to write a readonly database"), ErrorClass::Unavailable);
        assert_eq!(classify_code("25006", "cannot execute INSERT in a read-only transaction"), ErrorClass::Unavailable);
        assert_eq!(classify_code("1811", "trigger"), ErrorClass::Other);
        assert_eq!(classify_code("19", "UNIQUE constraint failed"), ErrorClass::Other);
        assert_eq!(classify_code("53100", "could not extend file"), ErrorClass::Full);
        assert_eq!(
            classify_code("57P01", "terminating connection due to administrator command"),
            ErrorClass::Unavailable
        );
        assert_eq!(classify_code("08006", "connection failure"), ErrorClass::Unavailable);
        assert_eq!(classify_code("23505", "duplicate key"), ErrorClass::Other);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), ErrorClass::Unavailable);
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(classify(&sqlx::Error::Io(enospc)), ErrorClass::Full);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&sqlx::Error::Io(refused)), ErrorClass::Unavailable);
    }
}
