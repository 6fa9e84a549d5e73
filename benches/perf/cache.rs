//! The bench's own connection to the cache: what a user's `sqlite3` would
//! see, the data behind "rows changed", and the `sync_runs` rows wxsync
//! recorded; and the counted copy behind "rows rewritten".

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use wxsync::contact::COLUMNS;
use wxsync::store::SyncRun;

/// Physical row writes on the two data tables, counted by triggers the bench
/// adds to a copy of its throwaway cache ([`Counted`]): an UPDATE that sets a row to what it already
/// was counts, as it costs the same and holds the same lock.
const COUNTED: [&str; 2] = ["contacts", "memberships"];

/// The contact data a change shows in: every declared column, whether the
/// row is marked deleted (timestamps are left out: a row whose data did not
/// change did not change), its ids.
fn contact_data() -> String {
    let columns: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    format!(
        "{}, deleted_at IS NOT NULL AS deleted, contact_id, real_id",
        columns.join(", ")
    )
}

/// A copy of the data as it was, in a side database, for "rows changed".
fn snapshot() -> [String; 4] {
    [
        "DROP TABLE IF EXISTS before.contacts".into(),
        "DROP TABLE IF EXISTS before.memberships".into(),
        format!(
            "CREATE TABLE before.contacts AS SELECT {} FROM main.contacts",
            contact_data()
        ),
        "CREATE TABLE before.memberships AS SELECT * FROM main.memberships".into(),
    ]
}

/// Rows inserted, changed or removed since [`snapshot`], each counted once.
fn changed() -> String {
    let now = format!("SELECT {} FROM main.contacts", contact_data());
    format!(
        "SELECT \
           (SELECT count(*) FROM ( \
              SELECT user_name FROM ({now} EXCEPT SELECT * FROM before.contacts) \
              UNION \
              SELECT user_name FROM (SELECT * FROM before.contacts EXCEPT {now}))) \
         + (SELECT count(*) FROM ( \
              SELECT group_user_name, member_user_name FROM ( \
                SELECT * FROM main.memberships EXCEPT SELECT * FROM before.memberships) \
              UNION \
              SELECT group_user_name, member_user_name FROM ( \
                SELECT * FROM before.memberships EXCEPT SELECT * FROM main.memberships)))"
    )
}

/// The rows a `sync_runs` row says its run wrote.
pub fn reported_writes(run: &SyncRun) -> i64 {
    run.inserted + run.updated + run.deleted + run.memberships_changed
}

pub struct Cache {
    conn: SqliteConnection,
}

impl Cache {
    /// Opens the cache like a plain `sqlite3` shell: no busy timeout, so a
    /// write meets "database is locked" at once while wxsync holds the lock.
    pub async fn open(database: &Path) -> anyhow::Result<Cache> {
        let options = SqliteConnectOptions::new()
            .filename(database)
            .busy_timeout(Duration::ZERO);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        // A first read opens the WAL index (`-shm`), which the lock probe
        // needs, and this connection keeps it open between wxsync's runs.
        sqlx::query("SELECT count(*) FROM sqlite_schema")
            .execute(&mut conn)
            .await?;
        let side = database.with_extension("before.db");
        // The connection may not create files; an empty file is an empty database.
        std::fs::File::create(&side)?;
        sqlx::query("ATTACH ? AS before")
            .bind(side.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await?;
        Ok(Cache { conn })
    }

    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.conn.close().await?)
    }

    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// A copy of the cache as it is now (`VACUUM INTO`), for a run whose
    /// row writes are counted: see [`Counted`].
    pub async fn copy_to(&mut self, path: &Path) -> anyhow::Result<()> {
        // VACUUM INTO will not write over a file.
        let _ = std::fs::remove_file(path);
        sqlx::query("VACUUM main INTO ?")
            .bind(path.to_string_lossy().into_owned())
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Remembers the data as it is now, for [`Cache::rows_changed`].
    pub async fn snapshot(&mut self) -> anyhow::Result<()> {
        for statement in snapshot() {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    pub async fn rows_changed(&mut self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(changed()))
            .fetch_one(&mut self.conn)
            .await?)
    }

    pub async fn last_run(&mut self) -> anyhow::Result<SyncRun> {
        Ok(
            sqlx::query_as::<_, SyncRun>("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1")
                .fetch_one(&mut self.conn)
                .await?,
        )
    }

    pub async fn history_rows(&mut self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM contact_changes")
            .fetch_one(&mut self.conn)
            .await?)
    }

    /// Live friends' user names, oldest first.
    pub async fn friends(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_name FROM contacts WHERE kind = 'friend' AND deleted_at IS NULL \
             ORDER BY contact_id LIMIT ?",
        )
        .bind(n as i64)
        .fetch_all(&mut self.conn)
        .await?)
    }
}

/// A copy of the cache with triggers counting every row write on the data
/// tables. The counting runs on a copy, in a run of its own, so that the
/// timed run's write pays for no trigger.
pub struct Counted {
    conn: SqliteConnection,
}

impl Counted {
    /// Adds the counting triggers to the copy at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<Counted> {
        let mut conn =
            SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path)).await?;
        let mut statements = vec![
            "CREATE TABLE bench_row_writes (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL)".to_string(),
        ];
        for table in COUNTED {
            statements.push(format!(
                "INSERT INTO bench_row_writes VALUES ('{table}', 0)"
            ));
            for op in ["INSERT", "UPDATE", "DELETE"] {
                statements.push(format!(
                    "CREATE TRIGGER bench_{table}_{op} AFTER {op} ON {table} \
                     BEGIN UPDATE bench_row_writes SET n = n + 1 WHERE tbl = '{table}'; END"
                ));
            }
        }
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await?;
        }
        Ok(Counted { conn })
    }

    /// Row writes on both tables, and on `memberships` alone; and the run
    /// the copy recorded last.
    pub async fn finish(mut self) -> anyhow::Result<((i64, i64), SyncRun)> {
        let writes = sqlx::query_as(
            "SELECT sum(n), sum(n) FILTER (WHERE tbl = 'memberships') FROM bench_row_writes",
        )
        .fetch_one(&mut self.conn)
        .await?;
        let run = sqlx::query_as::<_, SyncRun>("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&mut self.conn)
            .await?;
        self.conn.close().await?;
        Ok((writes, run))
    }
}
