//! The statements that name every contact column, written out once from
//! [`COLUMNS`] at first use, and the digest of a contact's values. Nothing
//! else in the store lists the columns; a column declared in
//! `crate::contact` reaches the stage, the digest, the write and the history
//! from here.

use std::sync::LazyLock;

use xxhash_rust::xxh3::Xxh3;

use super::Error;
use crate::contact::{COLUMNS, Column, History, Type, Value};

/// The SQL texts; see [`sql`].
pub(super) struct Sql {
    /// `CREATE TEMP TABLE stage_contacts`, keyed by `user_name`.
    pub stage_table: String,
    /// Stages the contacts of `?1`, a JSON array of objects keyed by column
    /// name ([`crate::contact::Contact::values`] serialized by the stage).
    pub stage_insert: String,
    /// Live contacts after rowid `?1`, at most `?2` of them: the last rowid,
    /// and every row as its values in [`COLUMNS`] order, each written
    /// `byte length:text` ([`parse_stored`] reads it).
    pub stored_chunk: String,
    /// Prepare: the staged contacts whose stored row differs (`changed_contacts`).
    pub prepare_updated: String,
    /// Prepare: one `updated` history row per changed column, column by
    /// column.
    pub updated_history: String,
    /// Apply: the new rows.
    pub insert: String,
    /// Apply: the changed and restored rows.
    pub update: String,
}

static SQL: LazyLock<Sql> = LazyLock::new(Sql::new);

/// The statements over the contact columns.
pub(super) fn sql() -> &'static Sql {
    &SQL
}

/// The column names with `prefix.` (or bare), joined by `, `, except those
/// in `except`.
pub(super) fn list(prefix: &str, except: &[&str]) -> String {
    join(
        COLUMNS.iter().filter(|c| !except.contains(&c.name)),
        ", ",
        |c| match prefix {
            "" => c.name.to_owned(),
            p => format!("{p}.{}", c.name),
        },
    )
}

fn join<'a>(
    columns: impl Iterator<Item = &'a Column>,
    sep: &str,
    f: impl Fn(&Column) -> String,
) -> String {
    columns.map(f).collect::<Vec<_>>().join(sep)
}

impl Sql {
    fn new() -> Sql {
        let all = || COLUMNS.iter();
        let stage_table = format!(
            "CREATE TEMP TABLE stage_contacts ({})",
            join(all(), ", ", |c| {
                let key = if c.name == "user_name" {
                    " PRIMARY KEY"
                } else {
                    ""
                };
                format!("{} {}{key} NOT NULL", c.name, c.ty.as_sql())
            })
        );
        let stage_insert = format!(
            "INSERT OR REPLACE INTO temp.stage_contacts ({}) SELECT {} FROM json_each(?1)",
            list("", &[]),
            join(all(), ", ", |c| format!("value->>'{}'", c.name)),
        );
        let stored_chunk = format!(
            "SELECT max(r), group_concat(f, '') FROM (
               SELECT rowid AS r, {} AS f
               FROM main.contacts WHERE deleted_at IS NULL AND rowid > ?1 ORDER BY rowid LIMIT ?2)
             HAVING count(*) > 0",
            join(all(), " || ", |c| format!(
                "octet_length({0}) || ':' || {0}",
                c.name
            )),
        );
        let prepare_updated = format!(
            "INSERT INTO temp.changed_contacts
             SELECT i.contact_id, s.user_name, c.deleted_at IS NOT NULL
             FROM temp.ident i JOIN temp.stage_contacts s ON s.user_name = i.user_name
             JOIN main.contacts c ON c.contact_id = i.contact_id
             WHERE i.fresh = 0
               AND (i.old_user_name IS NOT NULL
                    OR i.contact_id NOT IN (SELECT contact_id FROM temp.frozen))
               AND (c.deleted_at IS NOT NULL OR {})",
            join(all(), " OR ", |c| format!("c.{0} IS NOT s.{0}", c.name)),
        );
        // The changed contacts joined to their stored and staged rows once
        // (a stored row carries `raw`: one join per column read every one
        // of them again), then one branch per recorded column, in column
        // order, each in the changed contacts' order.
        let recorded: Vec<(&Column, String)> = all()
            .filter_map(|c| {
                let changed = match c.history {
                    History::NotRecorded => return None,
                    History::Recorded => format!("o_{0} IS NOT n_{0}", c.name),
                    History::RecordedApartFromUserName => format!(
                        "replace(o_{0}, o__user, '') IS NOT replace(n_{0}, n__user, '')",
                        c.name
                    ),
                };
                Some((c, changed))
            })
            .collect();
        let updated_history = format!(
            "WITH j AS MATERIALIZED (
                 SELECT d.contact_id, d.user_name, c.user_name AS o__user, s.user_name AS n__user,
                        {}
                 FROM temp.changed_contacts d
                 CROSS JOIN temp.stage_contacts s ON s.user_name = d.user_name
                 CROSS JOIN main.contacts c ON c.contact_id = d.contact_id)
             INSERT INTO temp.d_changes
                 (contact_id, user_name, change, field, old_value, new_value)
             {}",
            join(recorded.iter().map(|(c, _)| *c), ", ", |c| format!(
                "c.{0} AS o_{0}, s.{0} AS n_{0}",
                c.name
            )),
            recorded
                .iter()
                .map(|(c, changed)| format!(
                    "SELECT contact_id, user_name, 'updated', '{0}', CAST(o_{0} AS TEXT),
                            CAST(n_{0} AS TEXT)
                     FROM j WHERE {changed}",
                    c.name
                ))
                .collect::<Vec<_>>()
                .join(" UNION ALL "),
        );
        let insert = format!(
            "INSERT INTO main.contacts ({}, first_seen_at, updated_at, contact_id)
             SELECT {}, ?1, ?1, d.contact_id
             FROM temp.d_new d JOIN temp.stage_contacts s ON s.user_name = d.user_name",
            list("", &[]),
            list("s", &[]),
        );
        let update = format!(
            "UPDATE main.contacts SET {}, updated_at = ?1, deleted_at = NULL
             FROM temp.changed_contacts d JOIN temp.stage_contacts s ON s.user_name = d.user_name
             WHERE contacts.contact_id = d.contact_id",
            join(all(), ", ", |c| format!("{0} = s.{0}", c.name)),
        );
        Sql {
            stage_table,
            stage_insert,
            stored_chunk,
            prepare_updated,
            updated_history,
            insert,
            update,
        }
    }
}

/// One digest over every column of a contact; the same function for a
/// decoded record and a stored row, so equal digests mean an equal row.
pub(super) fn digest<'a>(values: impl IntoIterator<Item = Value<'a>>) -> u128 {
    let mut h = Xxh3::new();
    for v in values {
        match v {
            Value::Text(t) => {
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t.as_bytes());
            }
            Value::Integer(n) => h.update(&n.to_le_bytes()),
        }
    }
    h.digest128()
}

/// Splits a [`Sql::stored_chunk`] text into (user name, digest) pairs.
pub(super) fn parse_stored(text: &str) -> Result<Vec<(&str, u128)>, Error> {
    let bad = || Error::Encode(serde::ser::Error::custom("unreadable stored contact chunk"));
    let name_at = COLUMNS
        .iter()
        .position(|c| c.name == "user_name")
        .ok_or_else(bad)?;
    let mut rest = text;
    let mut out = Vec::new();
    let mut values = Vec::with_capacity(COLUMNS.len());
    while !rest.is_empty() {
        values.clear();
        let mut name = "";
        for (i, column) in COLUMNS.iter().enumerate() {
            let (len, tail) = rest.split_once(':').ok_or_else(bad)?;
            let len: usize = len.parse().map_err(|_| bad())?;
            let field = tail.get(..len).ok_or_else(bad)?;
            rest = &tail[len..];
            if i == name_at {
                name = field;
            }
            values.push(match column.ty {
                Type::Text => Value::Text(field),
                Type::Integer => Value::Integer(field.parse().map_err(|_| bad())?),
            });
        }
        out.push((name, digest(values.iter().copied())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    use super::*;
    use crate::contact::{Contact, Kind};
    use crate::store::{Plan, Source, Store};
    use crate::webwx::RawContact;

    /// The columns of `contacts` the store keeps itself, not a contact's data.
    const BOOKKEEPING: &[&str] = &[
        "first_seen_at",
        "updated_at",
        "deleted_at",
        "contact_id",
        "real_id",
        // Written by the avatar fetch alone; a sync never names them.
        "avatar_sha256",
        "avatar_fetched_at",
        "avatar_seq",
    ];

    async fn table_columns(
        conn: &mut sqlx::SqliteConnection,
        table: &str,
    ) -> Vec<(String, String)> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, type FROM pragma_table_info('{table}')"
        )))
        .fetch_all(conn)
        .await
        .unwrap()
    }

    /// `contacts` (as the migrations make it) and `stage_contacts` hold
    /// exactly the declared columns, with their types, besides the store's
    /// bookkeeping.
    #[tokio::test]
    async fn the_tables_hold_exactly_the_declared_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let mut stage = store.stage().await.unwrap();
        let mut declared: Vec<(String, String)> = COLUMNS
            .iter()
            .map(|c| (c.name.to_owned(), c.ty.as_sql().to_owned()))
            .collect();
        declared.sort();
        let mut contacts = table_columns(&mut stage.conn, "contacts").await;
        contacts.retain(|(name, _)| !BOOKKEEPING.contains(&name.as_str()));
        contacts.sort();
        let mut staged = table_columns(&mut stage.conn, "stage_contacts").await;
        staged.sort();
        assert_eq!(contacts, declared);
        assert_eq!(staged, declared);
    }

    async fn names(stage: &mut crate::store::Stage, table: &str) -> Vec<String> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT user_name FROM temp.{table}"
        )))
        .fetch_all(&mut stage.conn)
        .await
        .unwrap()
    }

    /// For each column in turn, a contact that differs from the stored row
    /// only there: the digest tells it from the stored row (and the row as
    /// stored from itself), the write stores the new value, and history
    /// records an `updated` row for it exactly when the column is recorded.
    /// A column left out of any statement, of the digest or of the staged
    /// record fails here.
    #[tokio::test]
    async fn every_column_reaches_the_digest_the_row_and_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let raw = RawContact {
            user_name: "@friend".into(),
            contact_flag: 1,
            ..RawContact::default()
        };
        let mut contact = Contact::from_raw(&raw, "@me").unwrap();
        assert_eq!(contact.kind, Kind::Friend);
        for c in COLUMNS.iter().filter(|c| c.name != "user_name") {
            contact.vary(c.name);
        }
        let plan = || Plan {
            source: Source::Increment,
            full: None,
            claim_login: None,
        };
        let mut stage = store.stage().await.unwrap();
        stage
            .contacts(std::slice::from_ref(&contact))
            .await
            .unwrap();
        stage.commit(plan()).await.unwrap();
        let select = format!(
            "SELECT {} FROM contacts WHERE user_name = '@friend'",
            list("", &[])
        );

        for column in COLUMNS.iter().filter(|c| c.name != "user_name") {
            let mut stage = store.stage().await.unwrap();
            stage.load_digests().await.unwrap();
            stage
                .contacts(std::slice::from_ref(&contact))
                .await
                .unwrap();
            assert_eq!(
                names(&mut stage, "stage_present").await,
                ["@friend"],
                "{column:?}"
            );
            contact.vary(column.name);
            stage
                .contacts(std::slice::from_ref(&contact))
                .await
                .unwrap();
            assert_eq!(
                names(&mut stage, "stage_contacts").await,
                ["@friend"],
                "{column:?}"
            );
            assert!(names(&mut stage, "stage_present").await.is_empty());
            stage.commit(plan()).await.unwrap();

            let row = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                .fetch_one(store.pool())
                .await
                .unwrap();
            for (i, (c, want)) in COLUMNS.iter().zip(contact.values()).enumerate() {
                let stored = match c.ty {
                    Type::Text => Value::Text(row.get::<&str, _>(i)),
                    Type::Integer => Value::Integer(row.get(i)),
                };
                assert_eq!(stored, want, "{} after a change of {}", c.name, column.name);
            }
            let recorded: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM contact_changes WHERE change = 'updated' AND field = ?1",
            )
            .bind(column.name)
            .fetch_one(store.pool())
            .await
            .unwrap();
            let expected = i64::from(column.history != History::NotRecorded);
            assert_eq!(recorded, expected, "history of {}", column.name);
        }
    }
}
