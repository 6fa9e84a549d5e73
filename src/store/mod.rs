//! The SQLite cache: opening it (private files, pragmas, migrations), writing
//! sync results and reading the summaries `wxsync status` prints.
//!
//! Every write that spans several rows happens in one `BEGIN IMMEDIATE`
//! transaction, so a reader with `sqlite3` sees either the old state or the
//! new one, and a failure leaves the file as it was.

/// Starts a statement with `stored (g)`: the `group_contact_id` of every
/// group with member rows, then a NULL; one index seek per group, rather
/// than a scan of every member row.
macro_rules! stored_groups {
    () => {
        "WITH RECURSIVE stored (g) AS (
             SELECT min(group_contact_id) FROM main.memberships
             UNION ALL
             SELECT (SELECT min(group_contact_id) FROM main.memberships WHERE group_contact_id > g)
             FROM stored WHERE g IS NOT NULL)"
    };
}

mod avatars;
mod columns;
mod export;
mod guard;
mod identity;
mod ops;
mod pairing;
mod plan;
mod push;
mod relink;
mod runs;
mod stage;
mod write;

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Sqlite, SqlitePool, Transaction};

pub use avatars::{AvatarCounts, AvatarImage, AvatarWanted, AvatarWriter, avatar_seq};
pub use export::ExportRow;
pub use guard::WaitingDeletion;
pub use identity::{Decision, IdentityError, Shown, Undecided, Unlinked};
pub use ops::{Deletion, Malformed, NextOp, PendingOp, QueueWatch, Target};
pub use plan::{FullSync, Plan};
pub use push::{PushRecord, PushState};
pub use runs::{Activity, Counts, OpCounts, RunStats, SyncRun};
pub use stage::{Source, Stage, name_key};

/// Turns off SQLite's count of the memory it holds, which nothing here
/// reads: every allocation SQLite makes took a process-wide mutex for it,
/// and a re-link's two connections, building and binding text side by
/// side, waited on each other there (SQLite lists the setting among its
/// recommended ones). Call it before the first connection opens; after
/// that SQLite refuses it and nothing changes.
pub fn uncount_memory() {
    // SAFETY: sqlite3_config only sets a global before SQLite initializes
    // (the caller is single-threaded then); afterwards it returns
    // SQLITE_MISUSE without changing anything.
    unsafe {
        libsqlite3_sys::sqlite3_config(
            libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
            std::ffi::c_int::from(0u8),
        );
    }
}

/// What the remark queue and `wxsync identity` read of a contact they look up.
#[derive(sqlx::FromRow)]
struct ContactLookup {
    contact_id: i64,
    user_name: String,
    kind: String,
    deleted_at: Option<String>,
}

/// Selects [`ContactLookup`]s; the caller adds the `WHERE` clause.
const CONTACT_LOOKUP: &str = "SELECT contact_id, user_name, kind, deleted_at FROM contacts";

/// How long a writer waits for another connection's lock (a user's
/// `sqlite3` session, say) before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a wxsync database (it holds other tables: {tables}); \
         it was left untouched: give --database a new file"
    )]
    Foreign { path: PathBuf, tables: String },
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
    #[error("cannot decode stored rows: {0}")]
    Decode(serde_json::Error),
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
    /// migration it lacks. A new file is created mode 0600 (SQLite gives its
    /// `-wal` and `-shm` the same mode) in a directory created 0700 if
    /// missing: an address book with remarks is personal data. A file that
    /// holds another application's tables is refused before anything —
    /// journal mode, migrations — is written to it.
    pub async fn open(path: &Path) -> Result<Store, Error> {
        create_private(path)?;
        refuse_foreign(path).await?;
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

/// Creates the database file (0600) and its directory (0700) if missing;
/// an existing file keeps the mode its owner gave it.
fn create_private(path: &Path) -> Result<(), Error> {
    let err = |path: &Path, source| Error::Create {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(dir, e))?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(path, e)),
    }
}

/// Looks at the file, reading only (no journal mode set, nothing written;
/// not a read-only connection, which could not recover a WAL file after a
/// crash): tables but no wxsync migration history means another
/// application's database.
async fn refuse_foreign(path: &Path) -> Result<(), Error> {
    let open_err = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(open_err)?;
    let look = async {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .fetch_all(&mut conn)
        .await?;
        let ours = if tables.iter().any(|t| t == "_sqlx_migrations") {
            let first: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 1")
                    .fetch_optional(&mut conn)
                    .await?;
            // An empty history (an interrupted first run) with nothing
            // else beside it is ours as well.
            first.as_deref() == MIGRATOR.iter().next().map(|m| m.checksum.as_ref())
                || (first.is_none() && tables.len() == 1)
        } else {
            tables.is_empty()
        };
        Ok::<_, sqlx::Error>((ours, tables))
    };
    let looked = look.await;
    let _ = conn.close().await;
    let (ours, tables) = looked.map_err(open_err)?;
    if ours {
        Ok(())
    } else {
        Err(Error::Foreign {
            path: path.to_owned(),
            tables: tables.join(", "),
        })
    }
}

/// Now, as stored in every timestamp column: UTC, ISO 8601, milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache written before `memberships.member_contact_id` existed gets
    /// it filled in by its migration: a live contact's id, NULL for a
    /// member whose row is marked deleted and for a stranger; and every row
    /// keeps its group's `contact_id` once the rows are found by it (0009).
    #[tokio::test]
    async fn an_older_cache_gets_member_and_group_contact_ids_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        MIGRATOR.run_to(3, &pool).await.unwrap();
        for sql in [
            "INSERT INTO contacts (user_name, kind, first_seen_at, updated_at, contact_id,
                 deleted_at)
             VALUES ('@friend', 'friend', 'x', 'x', 7, NULL), ('@gone', 'friend', 'x', 'x', 8, 'x'),
                    ('@@group', 'group', 'x', 'x', 9, NULL)",
            "INSERT INTO memberships (group_user_name, member_user_name)
             VALUES ('@@group', '@friend'), ('@@group', '@gone'), ('@@group', '@stranger')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = Store::open(&path).await.unwrap();
        let ids: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT member_user_name, member_contact_id FROM memberships ORDER BY 1",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let expected = [("@friend", Some(7)), ("@gone", None), ("@stranger", None)];
        let expected: Vec<(String, Option<i64>)> = expected
            .iter()
            .map(|(m, id)| (m.to_string(), *id))
            .collect();
        assert_eq!(ids, expected);
        let groups: Vec<i64> =
            sqlx::query_scalar("SELECT group_contact_id FROM memberships ORDER BY rowid")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(groups, [9, 9, 9]);
    }
}
