//! The `pending_ops` queue. Every state change is its own committed write, made
//! before the next network call, so a crash loses no op and at worst repeats
//! one (idempotent) remark call.
//!
//! Users write this table by hand, so it is read defensively: each row's
//! values are checked one by one (SQLite's type affinity lets an integer, a
//! BLOB or invalid UTF-8 into a TEXT column), and a row that cannot be an op
//! is failed with the reason while the rows after it go on.
//!
//! An op may name its contact by any `user_name` the contact ever had: user
//! names change at every login, and a re-link leaves a `relinked` row in
//! `contact_changes` from the old name to the contact's stable `contact_id`.

use std::collections::HashSet;
use std::fmt::Write as _;

use sqlx::{Connection, FromRow, SqliteConnection};

use super::{CONTACT_ROW, ContactRow, Error, Store, now};
use crate::contact::Kind;

/// A queued remark edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOp {
    pub id: i64,
    /// As the user queued it: the contact's name now or in an earlier login.
    pub user_name: String,
    pub remark_name: String,
    pub attempts: i64,
}

/// The contact an op resolves to, as the cache knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub contact_id: i64,
    /// The contact's name in the current login: the call and the read-back
    /// use it.
    pub user_name: String,
    pub kind: Kind,
    pub deleted: bool,
}

/// A `pending_ops` row that cannot be an op, failed with `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub id: i64,
    pub reason: String,
}

/// What [`Store::next_op`] did on the way to the next op.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NextOp {
    /// The oldest pending op still to apply.
    pub op: Option<PendingOp>,
    /// Rows failed because a value is not text or not UTF-8.
    pub malformed: Vec<Malformed>,
    /// How many ops a later op for the same contact replaced.
    pub superseded: u64,
}

/// A pending row with its values as stored: their types and raw bytes.
#[derive(FromRow)]
struct RawOp {
    id: i64,
    user_name_type: String,
    user_name: Option<Vec<u8>>,
    remark_name_type: String,
    remark_name: Option<Vec<u8>>,
    attempts: i64,
}

impl RawOp {
    fn decode(self) -> Result<PendingOp, Malformed> {
        let decoded = text("user_name", &self.user_name_type, self.user_name).and_then(|u| {
            Ok((
                u,
                text("remark_name", &self.remark_name_type, self.remark_name)?,
            ))
        });
        match decoded {
            Ok((user_name, remark_name)) => Ok(PendingOp {
                id: self.id,
                user_name,
                remark_name,
                attempts: self.attempts,
            }),
            Err(reason) => Err(Malformed {
                id: self.id,
                reason,
            }),
        }
    }
}

/// A column's value as a string, or why it is not one.
fn text(column: &str, sql_type: &str, bytes: Option<Vec<u8>>) -> Result<String, String> {
    let bytes = bytes.unwrap_or_default();
    if sql_type != "text" {
        return Err(format!(
            "{column} is {} {sql_type} (hex {}), not text",
            if sql_type == "integer" { "an" } else { "a" },
            hex(&bytes)
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| format!("{column} is not valid UTF-8 (hex {})", hex(e.as_bytes())))
}

/// Up to 32 bytes in hex, enough to find the row's value again.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for b in bytes.iter().take(32) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > 32 {
        out.push('…');
    }
    out
}

/// The latest `relinked` history row that took the contact away from a name.
const RELINKED_FROM: &str = "SELECT contact_id FROM contact_changes \
     WHERE change = 'relinked' AND old_value = ? ORDER BY id DESC LIMIT 1";

impl Store {
    /// The oldest pending op to apply. On the way, fails every pending row
    /// that is not an op (with the reason) and supersedes every op that a
    /// later op for the same contact replaces.
    pub async fn next_op(&self) -> Result<NextOp, Error> {
        let rows = sqlx::query_as::<_, RawOp>(
            "SELECT id, typeof(user_name) AS user_name_type, \
             CAST(user_name AS BLOB) AS user_name, \
             typeof(remark_name) AS remark_name_type, \
             CAST(remark_name AS BLOB) AS remark_name, attempts \
             FROM pending_ops WHERE status = 'pending' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut next = NextOp::default();
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(next);
        };
        let mut ops = Vec::new();
        for row in rows {
            match row.decode() {
                Ok(op) => ops.push(op),
                Err(bad) => {
                    self.op_failed(bad.id, &bad.reason).await?;
                    next.malformed.push(bad);
                }
            }
        }
        let superseded = self.supersede_ops(last).await?;
        next.superseded = superseded.len() as u64;
        next.op = ops.into_iter().find(|op| !superseded.contains(&op.id));
        Ok(next)
    }

    /// Marks every pending op up to id `last` that a later one (also up to
    /// `last`: rows past it have not been checked yet) for the same contact
    /// replaces as `superseded`; returns their ids. Two names of one contact
    /// are the same contact.
    async fn supersede_ops(&self, last: i64) -> Result<HashSet<i64>, Error> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "WITH p AS ( \
               SELECT id, user_name FROM pending_ops \
               WHERE status = 'pending' AND id <= ?1 AND typeof(user_name) = 'text' \
             ), \
             relinked AS ( \
               SELECT old_value, contact_id FROM contact_changes WHERE id IN ( \
                 SELECT max(id) FROM contact_changes \
                 WHERE change = 'relinked' AND old_value IN (SELECT user_name FROM p) \
                 GROUP BY old_value) \
             ), \
             who AS ( \
               SELECT p.id, coalesce('c' || c.contact_id, 'c' || r.contact_id, 'n' || p.user_name) \
                 AS contact \
               FROM p \
               LEFT JOIN contacts c ON c.user_name = p.user_name \
               LEFT JOIN relinked r ON r.old_value = p.user_name \
             ), \
             latest AS (SELECT contact, max(id) AS keep FROM who GROUP BY contact) \
             UPDATE pending_ops SET status = 'superseded', \
               last_error = 'replaced by op ' || latest.keep || ', a later edit of the same contact' \
             FROM who JOIN latest ON latest.contact = who.contact \
             WHERE pending_ops.id = who.id AND who.id < latest.keep \
             RETURNING pending_ops.id",
        )
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().collect())
    }

    /// The contact `user_name` names: the row that has the name now, else
    /// the contact a re-link took it from.
    pub async fn op_target(&self, user_name: &str) -> Result<Option<Target>, Error> {
        let mut row = sqlx::query_as::<_, ContactRow>(sqlx::AssertSqlSafe(format!(
            "{CONTACT_ROW} WHERE user_name = ?"
        )))
        .bind(user_name)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_none() {
            row = sqlx::query_as::<_, ContactRow>(sqlx::AssertSqlSafe(format!(
                "{CONTACT_ROW} WHERE contact_id = ({RELINKED_FROM})"
            )))
            .bind(user_name)
            .fetch_optional(&self.pool)
            .await?;
        }
        Ok(row.and_then(|r| {
            Some(Target {
                contact_id: r.contact_id,
                user_name: r.user_name,
                kind: Kind::parse(&r.kind)?,
                deleted: r.deleted_at.is_some(),
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

    /// Marks an op done and stores the verified remark on its contact, with
    /// its `contact_changes` row when the remark changed, in one transaction.
    pub async fn op_done(&self, op: &PendingOp, contact_id: i64) -> Result<(), Error> {
        let now = now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE pending_ops SET status = 'done', last_error = NULL, done_at = ? WHERE id = ?",
        )
        .bind(&now)
        .bind(op.id)
        .execute(&mut *tx)
        .await?;
        let stored: Option<(String, String)> =
            sqlx::query_as("SELECT user_name, remark_name FROM contacts WHERE contact_id = ?")
                .bind(contact_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((user_name, old)) = stored.filter(|(_, old)| *old != op.remark_name) {
            sqlx::query("UPDATE contacts SET remark_name = ?, updated_at = ? WHERE contact_id = ?")
                .bind(&op.remark_name)
                .bind(&now)
                .bind(contact_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO contact_changes \
                 (at, contact_id, user_name, source, change, field, old_value, new_value) \
                 VALUES (?, ?, ?, 'remark', 'updated', 'remark_name', ?, ?)",
            )
            .bind(&now)
            .bind(contact_id)
            .bind(&user_name)
            .bind(&old)
            .bind(&op.remark_name)
            .execute(&mut *tx)
            .await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_are_not_utf8_text_are_named_with_their_bytes() {
        assert_eq!(
            text("user_name", "text", Some(b"@a".to_vec())).unwrap(),
            "@a"
        );
        assert_eq!(
            text("remark_name", "text", Some(vec![b'a', 0xff])).unwrap_err(),
            "remark_name is not valid UTF-8 (hex 61ff)"
        );
        assert_eq!(
            text("remark_name", "blob", Some(vec![1, 2])).unwrap_err(),
            "remark_name is a blob (hex 0102), not text"
        );
        assert_eq!(
            text("user_name", "integer", Some(b"42".to_vec())).unwrap_err(),
            "user_name is an integer (hex 3432), not text"
        );
        assert!(hex(&[0; 40]).ends_with('…'));
    }
}
