//! The SQLite cache: opening it (pragmas, migrations), writing sync results
//! and reading the summaries `wxsync status` prints.
//!
//! Every write that spans several rows happens in one `BEGIN IMMEDIATE`
//! transaction, so a reader with `sqlite3` sees either the old state or the
//! new one, and a failure leaves the file as it was.

mod identity;
mod ops;
mod runs;
mod stage;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool, Transaction};

pub use ops::{PendingOp, QueueWatch, Target};
pub use runs::{Activity, Counts, OpCounts, RunStats, SyncRun};
pub use stage::{Source, Stage};
pub use write::{FullSync, Plan};

/// How long a writer waits for another connection's lock (a user's
/// `sqlite3` session, say) before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot bring the database {path} up to date: {source}")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot encode staged rows: {0}")]
    Encode(serde_json::Error),
    /// The deletion guard held a full sync's result back (docs/storage.md).
    #[error("{reason}")]
    Held { reason: String },
}

/// Rows a write changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    pub inserted: u64,
    /// Rows whose data changed (restored ones included).
    pub updated: u64,
    /// Rows newly marked deleted.
    pub deleted: u64,
    /// Rows of a previous login linked to this login's names.
    pub relinked: u64,
    pub memberships_changed: u64,
    /// How long the final write held the lock.
    pub write_lock_ms: u64,
}

/// A handle on the cache; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// How every connection is opened, for the ones a [`Stage`] owns.
    options: SqliteConnectOptions,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies any
    /// migration it lacks.
    pub async fn open(path: &Path) -> Result<Store, Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        MIGRATOR.run(&pool).await.map_err(|source| Error::Migrate {
            path: path.to_owned(),
            source,
        })?;
        Ok(Store { pool, options })
    }

    /// A connection of its own, outside the pool.
    async fn connect(&self) -> Result<SqliteConnection, Error> {
        Ok(self.options.connect().await?)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Takes the write lock at once, so a transaction that reads before it
    /// writes cannot fail half-way on a lock upgrade.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, Error> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Now, as stored in every timestamp column: UTC, ISO 8601, milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
