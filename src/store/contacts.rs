//! Writing contacts and memberships. Rows are compared with what is stored
//! and only the ones whose data changed are written, so `updated_at` means
//! what it says and a sync with nothing new writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{FromRow, SqliteConnection};

use super::{Error, RunStats, Store, now};
use crate::contact::{Contact, Kind, Member};

/// The result of a complete full sync: every contact the account has, and the
/// member lists of the groups whose lists were fetched.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub contacts: Vec<Contact>,
    /// Keyed by group `user_name`. A group without an entry keeps the
    /// membership rows it has.
    pub members: BTreeMap<String, Vec<Member>>,
}

/// Rows a write changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub memberships_changed: u64,
}

#[derive(FromRow)]
struct ContactRow {
    user_name: String,
    kind: String,
    nick_name: String,
    remark_name: String,
    alias: String,
    signature: String,
    province: String,
    city: String,
    head_img_url: String,
    sex: i64,
    verify_flag: i64,
    contact_flag: i64,
    star_friend: i64,
    member_count: i64,
    encry_chat_room_id: String,
    raw: String,
    deleted_at: Option<String>,
}

impl ContactRow {
    /// The stored contact, or `None` if its kind is one this version does not
    /// know (then it is rewritten).
    fn into_contact(self) -> (Option<Contact>, bool) {
        let deleted = self.deleted_at.is_some();
        let contact = Kind::parse(&self.kind).map(|kind| Contact {
            user_name: self.user_name,
            kind,
            nick_name: self.nick_name,
            remark_name: self.remark_name,
            alias: self.alias,
            signature: self.signature,
            province: self.province,
            city: self.city,
            head_img_url: self.head_img_url,
            sex: self.sex,
            verify_flag: self.verify_flag,
            contact_flag: self.contact_flag,
            star_friend: self.star_friend,
            member_count: self.member_count,
            encry_chat_room_id: self.encry_chat_room_id,
            raw: self.raw,
        });
        (contact, deleted)
    }
}

/// The columns [`ContactRow`] reads (a macro so it can be `concat!`ed).
macro_rules! select_contact {
    () => {
        "SELECT user_name, kind, nick_name, remark_name, alias, signature, province, city, \
         head_img_url, sex, verify_flag, contact_flag, star_friend, member_count, \
         encry_chat_room_id, raw, deleted_at FROM contacts"
    };
}

/// What is stored for one contact: its data (if readable) and whether it is
/// marked deleted.
type Stored = (Option<Contact>, bool);

impl Store {
    /// Writes a complete full sync in one transaction: upserts every contact,
    /// marks the ones no longer present as deleted, replaces the member lists
    /// that were fetched, and closes sync run `run_id` as `ok`.
    pub async fn apply_full_sync(
        &self,
        run_id: i64,
        snapshot: &Snapshot,
        stats: &RunStats,
    ) -> Result<ApplyCounts, Error> {
        let now = now();
        let mut tx = self.begin_write().await?;
        let existing: HashMap<String, Stored> = sqlx::query_as::<_, ContactRow>(select_contact!())
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| (r.user_name.clone(), r.into_contact()))
            .collect();

        let mut counts = write_contacts(&mut tx, &existing, &snapshot.contacts, &now).await?;

        let present: HashSet<&str> = snapshot
            .contacts
            .iter()
            .map(|c| c.user_name.as_str())
            .collect();
        for (user_name, (_, deleted)) in &existing {
            if !*deleted && !present.contains(user_name.as_str()) {
                counts.memberships_changed += mark_deleted(&mut tx, user_name, &now).await?;
                counts.deleted += 1;
            }
        }
        for (group, members) in &snapshot.members {
            counts.memberships_changed += replace_members(&mut tx, group, members).await?;
        }
        super::runs::finish_ok(&mut tx, run_id, stats, &counts, &now).await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// Upserts some contacts (and the member lists given for groups among
    /// them) without touching any other row: what webwxinit and webwxsync
    /// report is never the whole address book.
    pub async fn upsert_contacts(
        &self,
        contacts: &[Contact],
        members: &BTreeMap<String, Vec<Member>>,
    ) -> Result<ApplyCounts, Error> {
        let now = now();
        let mut tx = self.begin_write().await?;
        let mut existing = HashMap::new();
        for c in contacts {
            let row =
                sqlx::query_as::<_, ContactRow>(concat!(select_contact!(), " WHERE user_name = ?"))
                    .bind(&c.user_name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(row) = row {
                existing.insert(row.user_name.clone(), row.into_contact());
            }
        }
        let mut counts = write_contacts(&mut tx, &existing, contacts, &now).await?;
        for (group, list) in members {
            counts.memberships_changed += replace_members(&mut tx, group, list).await?;
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Marks contacts deleted (keeping their rows) and drops the member
    /// lists of deleted groups. Unknown names are ignored.
    pub async fn mark_contacts_deleted(&self, user_names: &[String]) -> Result<u64, Error> {
        let now = now();
        let mut tx = self.begin_write().await?;
        let mut deleted = 0;
        for user_name in user_names {
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM contacts WHERE user_name = ? AND deleted_at IS NULL",
            )
            .bind(user_name)
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_some() {
                mark_deleted(&mut tx, user_name, &now).await?;
                deleted += 1;
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

async fn write_contacts(
    tx: &mut SqliteConnection,
    existing: &HashMap<String, Stored>,
    contacts: &[Contact],
    now: &str,
) -> Result<ApplyCounts, Error> {
    let mut counts = ApplyCounts::default();
    for c in contacts {
        match existing.get(&c.user_name) {
            None => counts.inserted += 1,
            Some((stored, deleted)) if *deleted || stored.as_ref() != Some(c) => {
                counts.updated += 1
            }
            Some(_) => continue,
        }
        sqlx::query(
            "INSERT INTO contacts (user_name, kind, nick_name, remark_name, alias, signature, \
             province, city, head_img_url, sex, verify_flag, contact_flag, star_friend, \
             member_count, encry_chat_room_id, raw, first_seen_at, updated_at, contact_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17, \
             (SELECT next_contact_id FROM identity)) \
             ON CONFLICT (user_name) DO UPDATE SET kind = ?2, nick_name = ?3, remark_name = ?4, \
             alias = ?5, signature = ?6, province = ?7, city = ?8, head_img_url = ?9, sex = ?10, \
             verify_flag = ?11, contact_flag = ?12, star_friend = ?13, member_count = ?14, \
             encry_chat_room_id = ?15, raw = ?16, updated_at = ?17, deleted_at = NULL",
        )
        .bind(&c.user_name)
        .bind(c.kind.as_str())
        .bind(&c.nick_name)
        .bind(&c.remark_name)
        .bind(&c.alias)
        .bind(&c.signature)
        .bind(&c.province)
        .bind(&c.city)
        .bind(&c.head_img_url)
        .bind(c.sex)
        .bind(c.verify_flag)
        .bind(c.contact_flag)
        .bind(c.star_friend)
        .bind(c.member_count)
        .bind(&c.encry_chat_room_id)
        .bind(&c.raw)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if !existing.contains_key(&c.user_name) {
            sqlx::query("UPDATE identity SET next_contact_id = next_contact_id + 1")
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(counts)
}

/// Sets `deleted_at` and removes the contact's member list (if a group);
/// returns the membership rows removed.
async fn mark_deleted(tx: &mut SqliteConnection, user_name: &str, now: &str) -> Result<u64, Error> {
    sqlx::query("UPDATE contacts SET deleted_at = ?2, updated_at = ?2 WHERE user_name = ?1")
        .bind(user_name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let removed = sqlx::query("DELETE FROM memberships WHERE group_user_name = ?")
        .bind(user_name)
        .execute(&mut *tx)
        .await?;
    Ok(removed.rows_affected())
}

#[derive(FromRow)]
struct MemberRow {
    member_user_name: String,
    nick_name: String,
    display_name: String,
    attr_status: i64,
}

/// Makes a group's membership rows equal to `members`, writing only the rows
/// that differ; returns how many rows it inserted, updated or deleted.
async fn replace_members(
    tx: &mut SqliteConnection,
    group: &str,
    members: &[Member],
) -> Result<u64, Error> {
    let stored: HashMap<String, Member> = sqlx::query_as::<_, MemberRow>(
        "SELECT member_user_name, nick_name, display_name, attr_status FROM memberships \
         WHERE group_user_name = ?",
    )
    .bind(group)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| {
        let m = Member {
            user_name: r.member_user_name,
            nick_name: r.nick_name,
            display_name: r.display_name,
            attr_status: r.attr_status,
        };
        (m.user_name.clone(), m)
    })
    .collect();

    let mut changed = 0;
    let wanted: HashSet<&str> = members.iter().map(|m| m.user_name.as_str()).collect();
    for gone in stored.keys().filter(|u| !wanted.contains(u.as_str())) {
        sqlx::query("DELETE FROM memberships WHERE group_user_name = ? AND member_user_name = ?")
            .bind(group)
            .bind(gone)
            .execute(&mut *tx)
            .await?;
        changed += 1;
    }
    for m in members {
        if stored.get(&m.user_name) == Some(m) {
            continue;
        }
        sqlx::query(
            "INSERT INTO memberships (group_user_name, member_user_name, nick_name, \
             display_name, attr_status) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (group_user_name, member_user_name) DO UPDATE SET \
             nick_name = excluded.nick_name, display_name = excluded.display_name, \
             attr_status = excluded.attr_status",
        )
        .bind(group)
        .bind(&m.user_name)
        .bind(&m.nick_name)
        .bind(&m.display_name)
        .bind(m.attr_status)
        .execute(&mut *tx)
        .await?;
        changed += 1;
    }
    Ok(changed)
}
