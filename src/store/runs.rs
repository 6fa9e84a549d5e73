//! The `sync_runs` log, the summaries `wxsync status` reads, and the
//! retention of the change history.

use std::time::Duration;

use serde::Serialize;
use sqlx::FromRow;
use tracing::warn;

use super::{BUSY_TIMEOUT, Error, Store, now};

/// How long a bookkeeping write ([`Store::fail_run`], the daemon's
/// timestamps) keeps trying while another connection holds the write lock
/// (each try waits [`BUSY_TIMEOUT`]).
const PATIENCE: Duration = Duration::from_secs(120);

/// What a full sync saw, recorded with its run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub contacts: u64,
    pub groups: u64,
    pub memberships: u64,
    pub member_count_mismatches: u64,
    /// Contact list entries without a `UserName` (skipped).
    pub unnamed: u64,
    /// Groups asked for that webwxbatchgetcontact never described.
    pub unread_groups: u64,
    /// Groups whose `MemberCount` differs from the list received, groups
    /// not described and lists with unnamed entries, in words.
    pub notes: Option<String>,
}

impl RunStats {
    /// Whether the server's answer was whole: only then does a full sync
    /// mark deleted what it did not see. An unreadable entry, or a group
    /// the server would not describe, is no evidence that anyone left.
    pub fn complete(&self) -> bool {
        self.unnamed == 0 && self.unread_groups == 0
    }
}

/// One `sync_runs` row.
#[derive(Clone, Debug, FromRow, Serialize, PartialEq, Eq)]
pub struct SyncRun {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub contacts: i64,
    pub groups: i64,
    pub memberships: i64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    pub member_count_mismatches: i64,
    pub notes: Option<String>,
    pub error: Option<String>,
    pub relinked: i64,
    pub unlinked: i64,
    pub memberships_changed: i64,
    pub write_lock_ms: Option<i64>,
    pub deletion_digest: Option<String>,
    /// On a run the deletion guard held back: what it would have deleted,
    /// and from when a scheduled sync with the same answer applies it.
    pub deletion_contacts: Option<i64>,
    pub deletion_memberships: Option<i64>,
    pub deletion_applies_from: Option<String>,
}

/// Live (not deleted) rows in the cache.
#[derive(Clone, Debug, FromRow, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub contacts: i64,
    pub friends: i64,
    pub groups: i64,
    pub memberships: i64,
    pub deleted: i64,
}

/// When the daemon last heard from the server between full syncs.
#[derive(Clone, Debug, Default, FromRow, Serialize, PartialEq, Eq)]
pub struct Activity {
    pub last_keepalive_at: Option<String>,
    pub last_increment_at: Option<String>,
}

#[derive(Clone, Debug, FromRow, Serialize, PartialEq, Eq)]
pub struct OpCounts {
    pub pending: i64,
    pub failed: i64,
    /// Accepted by the server but never read back.
    pub unverified: i64,
}

impl Store {
    /// Opens a `running` row for a new full sync. A row another process left
    /// `running` (it was killed) is closed as failed first.
    pub async fn start_run(&self) -> Result<i64, Error> {
        let now = now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE sync_runs SET status = 'failed', finished_at = ?, \
             error = 'interrupted: the process stopped before the sync finished' \
             WHERE status = 'running'",
        )
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let id = sqlx::query_scalar("INSERT INTO sync_runs (started_at) VALUES (?) RETURNING id")
            .bind(&now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Closes a run as failed; the contacts are left as they were. A sync
    /// that failed because another connection held the write lock must not
    /// leave its row `running` for the same reason, so this waits for the
    /// lock [`patiently`].
    pub async fn fail_run(&self, run_id: i64, error: &str) -> Result<(), Error> {
        patiently("the failed sync", || {
            sqlx::query(
                "UPDATE sync_runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
            )
            .bind(now())
            .bind(error)
            .bind(run_id)
            .execute(&self.pool)
        })
        .await
    }

    /// Deletes the `contact_changes` rows older than `retention`; returns
    /// how many. One statement, on the `at` index: a short write.
    pub async fn prune_history(&self, retention: Duration) -> Result<u64, Error> {
        let cutoff = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| chrono::Utc::now().checked_sub_signed(r));
        let Some(cutoff) = cutoff else {
            return Ok(0);
        };
        let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let done = sqlx::query("DELETE FROM contact_changes WHERE at < ?")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// When the newest successful full sync began: contact changes that
    /// arrived before it are already in the cache.
    pub async fn last_ok_sync_started(&self) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT started_at FROM sync_runs WHERE status = 'ok' ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn last_run(&self) -> Result<Option<SyncRun>, Error> {
        Ok(
            sqlx::query_as::<_, SyncRun>("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn counts(&self) -> Result<Counts, Error> {
        Ok(sqlx::query_as::<_, Counts>(
            "SELECT \
               (SELECT count(*) FROM contacts WHERE deleted_at IS NULL) AS contacts, \
               (SELECT count(*) FROM contacts WHERE deleted_at IS NULL AND kind = 'friend') AS friends, \
               (SELECT count(*) FROM contacts WHERE deleted_at IS NULL AND kind = 'group') AS groups, \
               (SELECT count(*) FROM memberships) AS memberships, \
               (SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL) AS deleted",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn activity(&self) -> Result<Activity, Error> {
        Ok(sqlx::query_as::<_, Activity>(
            "SELECT last_keepalive_at, last_increment_at FROM daemon_state WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or_default())
    }

    /// Records that a synccheck was answered. Bookkeeping like this waits
    /// for the write lock [`patiently`], as every other write does: a long
    /// write elsewhere (a re-linking sync, a user's open transaction) delays
    /// it but does not drop it.
    pub async fn touch_keepalive(&self) -> Result<(), Error> {
        let at = now();
        patiently("the keepalive", || {
            sqlx::query("UPDATE daemon_state SET last_keepalive_at = ? WHERE id = 1")
                .bind(&at)
                .execute(&self.pool)
        })
        .await
    }

    /// Records that contact changes from webwxsync were stored; waits for
    /// the lock as [`Store::touch_keepalive`] does.
    pub async fn touch_increment(&self) -> Result<(), Error> {
        let at = now();
        patiently("the stored increment", || {
            sqlx::query("UPDATE daemon_state SET last_increment_at = ? WHERE id = 1")
                .bind(&at)
                .execute(&self.pool)
        })
        .await
    }

    pub async fn op_counts(&self) -> Result<OpCounts, Error> {
        Ok(sqlx::query_as::<_, OpCounts>(
            "SELECT \
               (SELECT count(*) FROM pending_ops WHERE status = 'pending') AS pending, \
               (SELECT count(*) FROM pending_ops WHERE status = 'failed') AS failed, \
               (SELECT count(*) FROM pending_ops WHERE status = 'unverified') AS unverified",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The account's own nick name, as the cache knows it ('' before any).
    pub async fn own_nick_name(&self) -> Result<String, Error> {
        Ok(sqlx::query_scalar(
            "SELECT nick_name FROM contacts WHERE kind = 'self' \
             ORDER BY deleted_at IS NOT NULL, contact_id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or_default())
    }

    /// How many remark edits ended `failed`, and how many `unverified`, at
    /// or after `since` (a timestamp as stored).
    pub async fn ops_ended_badly_since(&self, since: &str) -> Result<(i64, i64), Error> {
        Ok(sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status = 'unverified')
             FROM pending_ops WHERE status IN ('failed', 'unverified') AND done_at >= ?",
        )
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }
}

/// Runs a one-statement bookkeeping write, trying again while another
/// connection holds the write lock (each try waits [`BUSY_TIMEOUT`] for it),
/// for up to [`PATIENCE`]; `what` names the record in the log.
pub(super) async fn patiently<F, Fut>(what: &str, mut write: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>>,
{
    let started = std::time::Instant::now();
    loop {
        match write().await {
            Err(e) if is_locked(&e) && started.elapsed() + BUSY_TIMEOUT <= PATIENCE => {
                warn!(
                    "another connection still holds the database lock; waiting for it to record {what}"
                );
            }
            done => return Ok(done.map(drop)?),
        }
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED: another connection holds a lock.
fn is_locked(e: &sqlx::Error) -> bool {
    let code = match e {
        sqlx::Error::Database(d) => d.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    // The primary code is the low byte of an extended one.
    code.is_some_and(|c| matches!(c & 0xff, 5 | 6))
}
