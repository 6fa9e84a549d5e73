//! The `pending_ops` queue. Every state change is its own committed write, made
//! before the next network call, so a crash loses no op and at worst repeats
//! one (idempotent) remark call.

use sqlx::{Connection, FromRow, SqliteConnection};

use super::{Error, Store, now};
use crate::contact::Kind;

/// A queued remark edit.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct PendingOp {
    pub id: i64,
    pub user_name: String,
    pub remark_name: String,
    pub attempts: i64,
}

/// What the cache knows about an op's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub deleted: bool,
}

impl Store {
    /// Marks every pending op that a later pending op for the same contact
    /// replaces as `superseded`; returns how many.
    pub async fn supersede_ops(&self) -> Result<u64, Error> {
        let done = sqlx::query(
            "UPDATE pending_ops SET status = 'superseded', \
             last_error = 'replaced by op ' || (SELECT max(p.id) FROM pending_ops p \
               WHERE p.user_name = pending_ops.user_name AND p.status = 'pending') \
               || ', a later edit of the same contact' \
             WHERE status = 'pending' AND id < (SELECT max(p.id) FROM pending_ops p \
               WHERE p.user_name = pending_ops.user_name AND p.status = 'pending')",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The oldest pending op.
    pub async fn next_op(&self) -> Result<Option<PendingOp>, Error> {
        Ok(sqlx::query_as::<_, PendingOp>(
            "SELECT id, user_name, remark_name, attempts FROM pending_ops \
             WHERE status = 'pending' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn op_target(&self, user_name: &str) -> Result<Option<Target>, Error> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT kind, deleted_at FROM contacts WHERE user_name = ?")
                .bind(user_name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(kind, deleted_at)| {
            Some(Target {
                kind: Kind::parse(&kind)?,
                deleted: deleted_at.is_some(),
            })
        }))
    }

    /// Counts a call about to be made.
    pub async fn op_attempt(&self, id: i64) -> Result<(), Error> {
        sqlx::query("UPDATE pending_ops SET attempts = attempts + 1 WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Leaves an op pending with the reason it will be retried.
    pub async fn op_retry(&self, id: i64, reason: &str) -> Result<(), Error> {
        sqlx::query("UPDATE pending_ops SET last_error = ? WHERE id = ?")
            .bind(reason)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn op_failed(&self, id: i64, reason: &str) -> Result<(), Error> {
        sqlx::query(
            "UPDATE pending_ops SET status = 'failed', last_error = ?, done_at = ? WHERE id = ?",
        )
        .bind(reason)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks an op done and stores the verified remark, in one transaction.
    pub async fn op_done(&self, op: &PendingOp) -> Result<(), Error> {
        let now = now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE pending_ops SET status = 'done', last_error = NULL, done_at = ? WHERE id = ?",
        )
        .bind(&now)
        .bind(op.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE contacts SET remark_name = ?, updated_at = ? \
             WHERE user_name = ? AND remark_name != ?",
        )
        .bind(&op.remark_name)
        .bind(&now)
        .bind(&op.user_name)
        .bind(&op.remark_name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A connection of its own for [`QueueWatch`]: `PRAGMA data_version` is
    /// per connection.
    pub async fn queue_watch(&self) -> Result<QueueWatch, Error> {
        let conn = self.pool.acquire().await?.detach();
        Ok(QueueWatch {
            conn,
            version: None,
        })
    }
}

/// Tells cheaply whether anyone (a user's `sqlite3`, say) committed to the
/// database since the last look.
pub struct QueueWatch {
    conn: SqliteConnection,
    version: Option<i64>,
}

impl QueueWatch {
    /// True on the first call and whenever another connection has committed
    /// since the previous call.
    pub async fn changed(&mut self) -> Result<bool, Error> {
        let v: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut self.conn)
            .await?;
        Ok(self.version.replace(v) != Some(v))
    }

    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}
