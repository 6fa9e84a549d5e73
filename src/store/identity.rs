//! Which login's user names the cache holds, and the MsgType 51 map of real
//! ids (docs/storage.md, "Identity").

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;
use sqlx::{FromRow, SqliteConnection};

use super::{CONTACT_LOOKUP, ContactLookup, Error, Store, columns, now};
use crate::webwx::RealId;

/// `wxsync identity link`: the new row's (`?2`) data onto the old row
/// (`?1`), marked live and updated at `?3`; the real id and the avatar come
/// along.
static MOVE_DATA: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE contacts SET ({}, real_id, avatar_sha256, avatar_fetched_at, avatar_seq) =
           (SELECT {}, coalesce(n.real_id, contacts.real_id), n.avatar_sha256,
                   n.avatar_fetched_at, n.avatar_seq
            FROM contacts n WHERE n.contact_id = ?2),
           deleted_at = NULL, updated_at = ?3
         WHERE contact_id = ?1",
        columns::list("", &["user_name"]),
        columns::list("n", &["user_name"]),
    )
});

/// `wxsync identity unlink`: a copy of the live row (`?2`) under its
/// earlier name `?4` and its old id `?1`, marked deleted at `?5`.
static RESTORE_OLD: LazyLock<String> = LazyLock::new(|| {
    let data = columns::list("", &["user_name"]);
    format!(
        "INSERT INTO contacts (user_name, {data}, first_seen_at, updated_at, deleted_at,
             contact_id, real_id)
         SELECT ?4, {data}, first_seen_at, ?5, ?5, ?1, NULL
         FROM contacts WHERE contact_id = ?2"
    )
});

impl Store {
    /// Whether the cache holds this login's user names (a new login's first
    /// full sync links them).
    pub async fn holds_login(&self, login_id: &str) -> Result<bool, Error> {
        let linked: Option<Option<String>> =
            sqlx::query_scalar("SELECT login_id FROM identity WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(linked.flatten().as_deref() == Some(login_id))
    }

    /// True when the cache holds no live contact: a first login may store
    /// its contacts without linking anything.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(live == 0)
    }

    /// Records a MsgType 51 map (session user name → real id). The cached
    /// rows it names get their `real_id` in the next write of contacts (a
    /// full sync or an increment), in the same transaction as their data.
    pub async fn save_real_ids(&self, ids: &[RealId]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(&str, &str)> = ids
            .iter()
            .map(|r| (r.user_name.as_str(), r.real_id.as_str()))
            .collect();
        sqlx::query(
            "INSERT OR REPLACE INTO real_ids (user_name, real_id, seen_at) \
             SELECT value->>0, value->>1, ?2 FROM json_each(?1)",
        )
        .bind(serde_json::to_string(&pairs).map_err(Error::Encode)?)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A previous-login row the last re-link could not tell apart, and one of
/// its candidates.
#[derive(Clone, Debug, FromRow, Serialize, PartialEq)]
pub struct Unlinked {
    pub old_contact_id: i64,
    pub old_user_name: String,
    pub old_nick_name: String,
    pub old_remark_name: String,
    pub kind: String,
    pub new_contact_id: i64,
    pub new_user_name: String,
    pub new_nick_name: String,
    pub new_remark_name: String,
    pub score: f64,
    pub evidence: String,
}

/// A row as `wxsync identity` shows it: what a person can check.
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct Shown {
    pub contact_id: i64,
    pub nick_name: String,
    pub remark_name: String,
    pub alias: String,
    pub first_seen_at: String,
    pub deleted_at: Option<String>,
    /// The names of the groups it is a member of now, sorted.
    #[sqlx(skip)]
    pub groups: Vec<String>,
}

/// A previous-login row awaiting a decision, with its candidates best
/// first: `(row, score, evidence)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Undecided {
    pub kind: String,
    pub old: Shown,
    pub candidates: Vec<(Shown, f64, String)>,
}

/// Why a manual link or unlink was refused, in words.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no contact {0} in the cache (give a contact_id or a user_name)")]
    Unknown(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for IdentityError {
    fn from(e: sqlx::Error) -> Self {
        IdentityError::Store(e.into())
    }
}

/// What a manual link or unlink did, for telling the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The live contact's `contact_id` now.
    pub contact_id: i64,
    /// The other row's: merged into the live one (link), or given back its
    /// earlier id and name, marked deleted (unlink).
    pub other_contact_id: i64,
}

impl Store {
    /// How many previous-login rows await a person's decision
    /// (`wxsync identity`).
    pub async fn undecided(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar(
            "SELECT count(DISTINCT c.old_contact_id) FROM identity_candidates c
             JOIN contacts o ON o.contact_id = c.old_contact_id
             JOIN contacts n ON n.contact_id = c.new_contact_id
             WHERE o.deleted_at IS NOT NULL AND n.deleted_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The rows the last re-link left unlinked, each with its candidates,
    /// best first.
    pub async fn unlinked(&self) -> Result<Vec<Unlinked>, Error> {
        Ok(sqlx::query_as::<_, Unlinked>(
            "SELECT o.contact_id AS old_contact_id, o.user_name AS old_user_name,
                    o.nick_name AS old_nick_name, o.remark_name AS old_remark_name, o.kind,
                    n.contact_id AS new_contact_id, n.user_name AS new_user_name,
                    n.nick_name AS new_nick_name, n.remark_name AS new_remark_name,
                    c.score, c.evidence
             FROM identity_candidates c
             JOIN contacts o ON o.contact_id = c.old_contact_id
             JOIN contacts n ON n.contact_id = c.new_contact_id
             WHERE o.deleted_at IS NOT NULL AND n.deleted_at IS NULL
             ORDER BY o.contact_id, c.score DESC, n.contact_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// [`Store::unlinked`] with what each row has, for a person to decide.
    pub async fn undecided_rows(&self) -> Result<Vec<Undecided>, Error> {
        let pairs = self.unlinked().await?;
        let mut ids: Vec<i64> = pairs
            .iter()
            .flat_map(|p| [p.old_contact_id, p.new_contact_id])
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let ids = serde_json::to_string(&ids).map_err(Error::Encode)?;
        let mut shown: HashMap<i64, Shown> = sqlx::query_as::<_, Shown>(
            "SELECT contact_id, nick_name, remark_name, alias, first_seen_at, deleted_at
             FROM contacts WHERE contact_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|s| (s.contact_id, s))
        .collect();
        let groups: Vec<(i64, String)> = sqlx::query_as(
            "SELECT c.contact_id, g.nick_name FROM contacts c
             JOIN memberships m ON m.member_user_name = c.user_name
             JOIN contacts g ON g.contact_id = m.group_contact_id
             WHERE c.contact_id IN (SELECT value FROM json_each(?1))
             ORDER BY g.nick_name",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for (id, group) in groups {
            if let Some(s) = shown.get_mut(&id) {
                s.groups.push(group);
            }
        }
        let mut out: Vec<Undecided> = Vec::new();
        for p in pairs {
            let (Some(old), Some(new)) =
                (shown.get(&p.old_contact_id), shown.get(&p.new_contact_id))
            else {
                continue;
            };
            let candidate = (new.clone(), p.score, p.evidence);
            match out.last_mut() {
                Some(u) if u.old.contact_id == old.contact_id => u.candidates.push(candidate),
                _ => out.push(Undecided {
                    kind: p.kind,
                    old: old.clone(),
                    candidates: vec![candidate],
                }),
            }
        }
        Ok(out)
    }

    /// A person's decision that `old` (a row of a previous login, marked
    /// deleted) and `new` (a live row) are the same contact: the old row
    /// takes the new one's name and data and keeps its `contact_id`,
    /// `first_seen_at` and history; the new row's history moves to it and
    /// the new row goes.
    pub async fn link(&self, old: &str, new: &str) -> Result<Decision, IdentityError> {
        let mut tx = self.begin_write().await?;
        let o = find(&mut tx, old).await?;
        let n = find(&mut tx, new).await?;
        if o.contact_id == n.contact_id {
            return Err(IdentityError::Refused(format!(
                "{old} and {new} are the same row"
            )));
        }
        if o.deleted_at.is_none() {
            return Err(IdentityError::Refused(format!(
                "{} (contact_id {}) is a live contact; the old side must be a row a re-link \
                 left unlinked (marked deleted)",
                o.user_name, o.contact_id
            )));
        }
        if n.deleted_at.is_some() {
            return Err(IdentityError::Refused(format!(
                "{} (contact_id {}) is marked deleted; the new side must be a live contact",
                n.user_name, n.contact_id
            )));
        }
        if o.kind != n.kind {
            return Err(IdentityError::Refused(format!(
                "{} is {} and {} {}; only contacts of one kind can be the same",
                o.user_name,
                kind_in_words(&o.kind),
                n.user_name,
                kind_in_words(&n.kind)
            )));
        }
        let carried: Option<String> = sqlx::query_scalar(
            "SELECT c.first_seen_at FROM contacts c, identity i
             WHERE c.contact_id = ?1 AND i.id = 1 AND c.first_seen_at < i.linked_at",
        )
        .bind(n.contact_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(since) = carried {
            // Merging two contacts that each have an id and a history of
            // their own could not be taken apart again by `unlink`.
            return Err(IdentityError::Refused(format!(
                "#{new_id} was carried over from an earlier login (contact_id {new_id} since \
                 {since}, with its own history): linking #{old_id} to it would merge two \
                 contacts for good. If the re-link took the wrong earlier row for it, run \
                 `wxsync identity unlink {new_id}` first (that gives contact_id {new_id} back to \
                 its earlier row and this contact a new one), then link #{old_id} to the new id",
                new_id = n.contact_id,
                old_id = o.contact_id,
            )));
        }
        let now = now();
        let steps = [
            "UPDATE contact_changes SET contact_id = ?1 WHERE contact_id = ?2",
            "DELETE FROM identity_candidates WHERE old_contact_id = ?1 OR new_contact_id = ?2",
            // The new row's data, under the old row's id.
            MOVE_DATA.as_str(),
            "DELETE FROM contacts WHERE contact_id = ?2",
            "UPDATE contacts SET user_name = ?4 WHERE contact_id = ?1",
            "UPDATE memberships SET member_contact_id = ?1 WHERE member_contact_id = ?2",
            // Edits queued by the new row's id are for the person it now is.
            "UPDATE pending_ops SET contact_id = ?1 WHERE contact_id = ?2 AND status = 'pending'",
            "INSERT INTO contact_changes (at, contact_id, user_name, source, change, old_value,
                 new_value)
             VALUES (?3, ?1, ?4, 'manual', 'relinked', ?5, ?4)",
        ];
        for sql in steps {
            sqlx::query(sql)
                .bind(o.contact_id)
                .bind(n.contact_id)
                .bind(&now)
                .bind(&n.user_name)
                .bind(&o.user_name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Decision {
            contact_id: o.contact_id,
            other_contact_id: n.contact_id,
        })
    }

    /// Undoes a link (made by a re-link or by [`Store::link`]): the live row
    /// keeps its name and data under a new `contact_id`, with the history
    /// written since the link; the old `contact_id` goes back to a row
    /// marked deleted under its previous name.
    pub async fn unlink(&self, contact: &str) -> Result<Decision, IdentityError> {
        let mut tx = self.begin_write().await?;
        let c = find(&mut tx, contact).await?;
        let link: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, old_value FROM contact_changes
             WHERE contact_id = ?1 AND change = 'relinked' ORDER BY id DESC LIMIT 1",
        )
        .bind(c.contact_id)
        .fetch_optional(&mut *tx)
        .await?;
        let not_linked =
            |why: &str| IdentityError::Refused(format!("#{} is not linked: {why}", c.contact_id));
        if c.deleted_at.is_some() {
            return Err(not_linked(
                "it is marked deleted, and only the live row of a link can be unlinked",
            ));
        }
        let Some((link_id, old_name)) = link else {
            return Err(not_linked("it was never linked to an earlier row"));
        };
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT contact_id FROM contacts WHERE user_name = ?1")
                .bind(&old_name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(other) = taken {
            return Err(not_linked(&format!("its earlier name is held by #{other}")));
        }
        let fresh: i64 = sqlx::query_scalar(
            "UPDATE identity SET next_contact_id = next_contact_id + 1 RETURNING next_contact_id - 1",
        )
        .fetch_one(&mut *tx)
        .await?;
        let now = now();
        let steps = [
            "UPDATE contacts SET contact_id = ?2 WHERE contact_id = ?1",
            "UPDATE memberships SET member_contact_id = ?2 WHERE member_contact_id = ?1",
            "UPDATE contact_changes SET contact_id = ?2 WHERE contact_id = ?1 AND id > ?3",
            RESTORE_OLD.as_str(),
            // The live row was first seen when the link took it for the old one.
            "UPDATE contacts SET updated_at = ?5,
                 first_seen_at = (SELECT at FROM contact_changes WHERE id = ?3)
             WHERE contact_id = ?2",
            "INSERT INTO contact_changes (at, contact_id, user_name, source, change, old_value)
             SELECT ?5, ?1, ?4, 'manual', 'removed', nick_name FROM contacts WHERE contact_id = ?2",
            "INSERT INTO contact_changes (at, contact_id, user_name, source, change, new_value)
             SELECT ?5, ?2, user_name, 'manual', 'added', nick_name FROM contacts
             WHERE contact_id = ?2",
        ];
        for sql in steps {
            sqlx::query(sql)
                .bind(c.contact_id)
                .bind(fresh)
                .bind(link_id)
                .bind(&old_name)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        rebuild_candidates(&mut tx, c.contact_id, &now).await?;
        tx.commit().await?;
        Ok(Decision {
            contact_id: fresh,
            other_contact_id: c.contact_id,
        })
    }
}

/// Scores again the old rows awaiting a decision, `unlinked` among them
/// (a row just given back its earlier id), against the live rows a person
/// may link them to, and replaces their candidates.
async fn rebuild_candidates(
    tx: &mut SqliteConnection,
    unlinked: i64,
    now: &str,
) -> Result<(), Error> {
    let mut old: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT c.old_contact_id FROM identity_candidates c
         JOIN contacts o ON o.contact_id = c.old_contact_id
         WHERE o.deleted_at IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    old.push(unlinked);
    let scored = super::relink::candidates(tx, &old).await?;
    let ids = serde_json::to_string(&old).map_err(Error::Encode)?;
    sqlx::query(
        "DELETE FROM identity_candidates
         WHERE old_contact_id IN (SELECT value FROM json_each(?1))",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT OR REPLACE INTO identity_candidates
             (old_contact_id, new_contact_id, score, evidence, found_at)
         SELECT value->>0, value->>1, value->>2, value->>3, ?2 FROM json_each(?1)",
    )
    .bind(serde_json::to_string(&scored).map_err(Error::Encode)?)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A contact by `contact_id` (digits) or `user_name`.
async fn find(tx: &mut SqliteConnection, key: &str) -> Result<ContactLookup, IdentityError> {
    let id = key.parse::<i64>().ok();
    let column = if id.is_some() {
        "contact_id"
    } else {
        "user_name"
    };
    let query = sqlx::query_as::<_, ContactLookup>(sqlx::AssertSqlSafe(format!(
        "{CONTACT_LOOKUP} WHERE {column} = ?"
    )));
    let query = match id {
        Some(id) => query.bind(id),
        None => query.bind(key),
    };
    let found = query.fetch_optional(&mut *tx).await?;
    found.ok_or_else(|| IdentityError::Unknown(key.to_owned()))
}

/// A `contacts.kind` in words, with its article: "an official account".
fn kind_in_words(kind: &str) -> &str {
    match kind {
        "self" => "the account itself",
        "friend" => "a friend",
        "group" => "a group",
        "official" => "an official account",
        "special" => "a special account",
        other => other,
    }
}
