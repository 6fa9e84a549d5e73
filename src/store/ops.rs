//! The `pending_ops` queue. Every state change is its own committed write, made
//! before the next network call, so a crash loses no op and at worst repeats
//! one (idempotent) remark call.
//!
//! Users write this table by hand, so it is read defensively: each row's
//! values are checked one by one (SQLite's type affinity lets an integer, a
//! BLOB or invalid UTF-8 into a TEXT column), and a row that cannot be an op
//! is failed with the reason while the rows after it go on.
//!
//! An op names its contact by `contact_id`, or by any `user_name` the
//! contact ever had (user names change at every login, and a re-link leaves
//! a `relinked` row in `contact_changes` from the old name to the contact's
//! stable `contact_id`), or by both; the one not given is filled in when
//! the op is applied.

use std::collections::HashSet;
use std::fmt::Write as _;

use sqlx::{Connection, FromRow, SqliteConnection};

use super::{CONTACT_LOOKUP, ContactLookup, Error, Store, now};
use crate::contact::Kind;

/// A queued remark edit; at least one of `user_name` and `contact_id` is
/// given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOp {
    pub id: i64,
    /// As the user queued it: the contact's name now or in an earlier login.
    pub user_name: Option<String>,
    pub contact_id: Option<i64>,
    pub remark_name: String,
    pub attempts: i64,
}

impl PendingOp {
    /// The contact as the op names it, for messages.
    pub fn who(&self) -> String {
        match (&self.user_name, self.contact_id) {
            (Some(name), _) => name.clone(),
            (None, Some(id)) => format!("contact_id {id}"),
            (None, None) => "nobody".into(),
        }
    }
}

/// The contact an op resolves to, as the cache knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub contact_id: i64,
    /// The contact's name in the current login: the call and the read-back
    /// use it.
    pub user_name: String,
    pub kind: Kind,
    /// Why the row is marked deleted, if it is.
    pub deleted: Option<Deletion>,
}

/// Why a contact's row is marked deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// A full sync or webwxsync no longer listed it.
    Gone,
    /// The re-link of a new login (at `at`) found no row of the new login
    /// it could link to this one with confidence: the person may have left,
    /// or may still be a friend under a new row (a missed link).
    /// `candidates` of the new rows came close (`wxsync identity` lists
    /// them).
    Unlinked { at: String, candidates: i64 },
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
    contact_id_type: String,
    contact_id: Option<Vec<u8>>,
    remark_name_type: String,
    remark_name: Option<Vec<u8>>,
    attempts: i64,
}

impl RawOp {
    fn decode(self) -> Result<PendingOp, Malformed> {
        let decoded = (|| {
            let user_name = match self.user_name_type.as_str() {
                "null" => None,
                sql_type => Some(text("user_name", sql_type, self.user_name)?),
            };
            let contact_id = integer("contact_id", &self.contact_id_type, self.contact_id)?;
            if user_name.is_none() && contact_id.is_none() {
                return Err("neither user_name nor contact_id is given".to_owned());
            }
            let remark_name = text("remark_name", &self.remark_name_type, self.remark_name)?;
            Ok((user_name, contact_id, remark_name))
        })();
        match decoded {
            Ok((user_name, contact_id, remark_name)) => Ok(PendingOp {
                id: self.id,
                user_name,
                contact_id,
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
        return Err(not_a(column, sql_type, &bytes, "text"));
    }
    String::from_utf8(bytes)
        .map_err(|e| format!("{column} is not valid UTF-8 (hex {})", hex(e.as_bytes())))
}

/// A column's value as an integer (`None` when NULL), or why it is not one.
/// `bytes` is the value cast to a BLOB: an integer's decimal digits.
fn integer(column: &str, sql_type: &str, bytes: Option<Vec<u8>>) -> Result<Option<i64>, String> {
    let bytes = bytes.unwrap_or_default();
    match sql_type {
        "null" => Ok(None),
        "integer" => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|digits| digits.parse().ok())
            .map(Some)
            .ok_or_else(|| not_a(column, sql_type, &bytes, "an integer")),
        _ => Err(not_a(column, sql_type, &bytes, "an integer")),
    }
}

/// "user_name is a blob (hex 0102), not text".
fn not_a(column: &str, sql_type: &str, bytes: &[u8], wanted: &str) -> String {
    let article = if sql_type == "integer" { "an" } else { "a" };
    format!(
        "{column} is {article} {sql_type} (hex {}), not {wanted}",
        hex(bytes)
    )
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
             typeof(contact_id) AS contact_id_type, \
             CAST(contact_id AS BLOB) AS contact_id, \
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
               SELECT id, user_name, contact_id FROM pending_ops \
               WHERE status = 'pending' AND id <= ?1 \
                 AND (typeof(user_name) = 'text' OR typeof(contact_id) = 'integer') \
             ), \
             relinked AS ( \
               SELECT old_value, contact_id FROM contact_changes WHERE id IN ( \
                 SELECT max(id) FROM contact_changes \
                 WHERE change = 'relinked' AND old_value IN (SELECT user_name FROM p) \
                 GROUP BY old_value) \
             ), \
             who AS ( \
               SELECT p.id, coalesce('c' || p.contact_id, 'c' || c.contact_id, 'c' || r.contact_id, \
                                     'n' || p.user_name) AS contact \
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
    pub async fn op_target_named(&self, user_name: &str) -> Result<Option<Target>, Error> {
        let mut row = sqlx::query_as::<_, ContactLookup>(sqlx::AssertSqlSafe(format!(
            "{CONTACT_LOOKUP} WHERE user_name = ?"
        )))
        .bind(user_name)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_none() {
            row = sqlx::query_as::<_, ContactLookup>(sqlx::AssertSqlSafe(format!(
                "{CONTACT_LOOKUP} WHERE contact_id = ({RELINKED_FROM})"
            )))
            .bind(user_name)
            .fetch_optional(&self.pool)
            .await?;
        }
        self.target(row).await
    }

    /// The contact whose `contact_id` is `id`.
    pub async fn op_target_id(&self, id: i64) -> Result<Option<Target>, Error> {
        let row = sqlx::query_as::<_, ContactLookup>(sqlx::AssertSqlSafe(format!(
            "{CONTACT_LOOKUP} WHERE contact_id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        self.target(row).await
    }

    async fn target(&self, row: Option<ContactLookup>) -> Result<Option<Target>, Error> {
        let Some(row) = row else {
            return Ok(None);
        };
        let Some(kind) = Kind::parse(&row.kind) else {
            return Ok(None);
        };
        // A re-link marks the rows it leaves unlinked deleted in the write
        // that finishes its run, at that run's `finished_at`.
        let deleted = match &row.deleted_at {
            None => None,
            Some(at) => {
                let unlinked: Option<(String, i64)> = sqlx::query_as(
                    "SELECT finished_at, (SELECT count(*) FROM identity_candidates \
                                          WHERE old_contact_id = ?1) \
                     FROM sync_runs WHERE unlinked > 0 AND finished_at = ?2 LIMIT 1",
                )
                .bind(row.contact_id)
                .bind(at)
                .fetch_optional(&self.pool)
                .await?;
                Some(match unlinked {
                    Some((at, candidates)) => Deletion::Unlinked { at, candidates },
                    None => Deletion::Gone,
                })
            }
        };
        Ok(Some(Target {
            contact_id: row.contact_id,
            user_name: row.user_name,
            kind,
            deleted,
        }))
    }

    /// Fills in the way of naming the contact that the op was not given.
    pub async fn op_named(&self, id: i64, target: &Target) -> Result<(), Error> {
        sqlx::query(
            "UPDATE pending_ops SET user_name = coalesce(user_name, ?), \
             contact_id = coalesce(contact_id, ?) WHERE id = ?",
        )
        .bind(&target.user_name)
        .bind(target.contact_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
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
        self.op_ended(id, "failed", reason).await
    }

    /// Ends an op the server accepted but that could not be read back.
    pub async fn op_unverified(&self, id: i64, reason: &str) -> Result<(), Error> {
        self.op_ended(id, "unverified", reason).await
    }

    async fn op_ended(&self, id: i64, status: &str, reason: &str) -> Result<(), Error> {
        sqlx::query("UPDATE pending_ops SET status = ?, last_error = ?, done_at = ? WHERE id = ?")
            .bind(status)
            .bind(reason)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks an op done and stores the verified remark on its contact, with
    /// its `contact_changes` row (`source` = `remark`) when the remark
    /// changed, in one transaction. When the server's own news of the edit
    /// (an increment, or a full sync) stored it first, since `sent_at`, that
    /// history row is the edit's and says so.
    pub async fn op_done(
        &self,
        op: &PendingOp,
        contact_id: i64,
        sent_at: &str,
    ) -> Result<(), Error> {
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
        if stored
            .as_ref()
            .is_some_and(|(_, old)| *old == op.remark_name)
        {
            sqlx::query(
                "UPDATE contact_changes SET source = 'remark' WHERE id = ( \
                   SELECT max(id) FROM contact_changes \
                   WHERE contact_id = ? AND change = 'updated' AND field = 'remark_name' \
                     AND new_value = ? AND source IN ('increment', 'full_sync') AND at >= ?)",
            )
            .bind(contact_id)
            .bind(&op.remark_name)
            .bind(sent_at)
            .execute(&mut *tx)
            .await?;
        } else if let Some((user_name, old)) = stored {
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
    use sqlx::sqlite::SqlitePool;

    use super::*;
    use crate::store::MIGRATOR;

    /// id, user_name, contact_id, remark_name, status, last_error.
    type Queued = (i64, String, Option<i64>, String, String, Option<String>);

    /// Migration 0004 on a cache with queued edits: each keeps its values
    /// and status and gains the contact_id its user_name names now, or named
    /// before a re-link; the new table takes ops by contact_id alone and
    /// the `unverified` status, and refuses an op that names nobody.
    #[tokio::test]
    async fn migration_0004_gives_queued_edits_their_contact_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = SqlitePool::connect(&url).await.unwrap();
        MIGRATOR.run_to(3, &pool).await.unwrap();
        for sql in [
            "INSERT INTO contacts (user_name, kind, first_seen_at, updated_at, contact_id) \
             VALUES ('@now', 'friend', 't', 't', 7), ('@later', 'friend', 't', 't', 8)",
            "INSERT INTO contact_changes (at, contact_id, user_name, source, change, old_value, \
             new_value) VALUES ('t', 8, '@later', 'login', 'relinked', '@before', '@later')",
            "INSERT INTO pending_ops (id, user_name, remark_name, status, last_error) VALUES \
             (1, '@now', 'a', 'pending', NULL), (2, '@before', 'b', 'done', NULL), \
             (3, '@nobody', 'c', 'failed', 'no contact @nobody')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = Store::open(&path).await.unwrap();
        let rows: Vec<Queued> = sqlx::query_as(
            "SELECT id, user_name, contact_id, remark_name, status, last_error \
                 FROM pending_ops ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let row = |id, name: &str, contact, remark: &str, status: &str, error: Option<&str>| {
            let (name, remark, status) = (name.into(), remark.into(), status.into());
            (id, name, contact, remark, status, error.map(String::from))
        };
        assert_eq!(
            rows,
            [
                row(1, "@now", Some(7), "a", "pending", None),
                row(2, "@before", Some(8), "b", "done", None),
                row(
                    3,
                    "@nobody",
                    None,
                    "c",
                    "failed",
                    Some("no contact @nobody")
                ),
            ]
        );
        sqlx::query(
            "INSERT INTO pending_ops (contact_id, remark_name, status) VALUES (7, 'd', 'unverified')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let nobody = sqlx::query("INSERT INTO pending_ops (remark_name) VALUES ('e')")
            .execute(store.pool())
            .await
            .unwrap_err();
        assert!(
            nobody
                .to_string()
                .contains("user_name or contact_id must be given"),
            "{nobody}"
        );
    }

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
