//! Staging: decoded records go into TEMP tables on a connection of the
//! stage's own, which takes no lock on the cache. [`Stage::commit`] then
//! prepares the exact changes (`write.rs`) and applies them in one short
//! `BEGIN IMMEDIATE` transaction. The design is in docs/storage.md.

use std::collections::HashMap;

use serde::ser::{Serialize, SerializeTuple, Serializer};
use sqlx::SqliteConnection;
use xxhash_rust::xxh3::Xxh3;

use super::{Error, Store};
use crate::contact::{Contact, Member};

/// Who made a change, as recorded in `contact_changes.source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    FullSync,
    Increment,
    Remark,
    /// A new login: the contacts `wxsync login` stores, and re-links.
    Login,
    /// A person's decision (`wxsync identity link` / `unlink`).
    Manual,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::FullSync => "full_sync",
            Source::Increment => "increment",
            Source::Remark => "remark",
            Source::Login => "login",
            Source::Manual => "manual",
        }
    }
}

/// The TEMP tables a stage writes. `stage_groups` lists every group whose
/// member list the server described; `staged` is 0 when the list's digest
/// equals the stored one, and then no member rows were staged for it.
const SCHEMA: &[&str] = &[
    "PRAGMA temp_store = FILE",
    "PRAGMA temp.cache_size = -4096",
    "CREATE TEMP TABLE stage_contacts (
        user_name TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, nick_name TEXT NOT NULL,
        remark_name TEXT NOT NULL, alias TEXT NOT NULL, signature TEXT NOT NULL,
        province TEXT NOT NULL, city TEXT NOT NULL, head_img_url TEXT NOT NULL,
        sex INTEGER NOT NULL, verify_flag INTEGER NOT NULL, contact_flag INTEGER NOT NULL,
        star_friend INTEGER NOT NULL, member_count INTEGER NOT NULL,
        encry_chat_room_id TEXT NOT NULL, raw TEXT NOT NULL
    ) WITHOUT ROWID",
    "CREATE TEMP TABLE stage_groups (
        group_user_name TEXT PRIMARY KEY NOT NULL, digest TEXT NOT NULL, staged INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE TEMP TABLE stage_members (
        group_user_name TEXT NOT NULL, member_user_name TEXT NOT NULL, nick_name TEXT NOT NULL,
        display_name TEXT NOT NULL, attr_status INTEGER NOT NULL,
        PRIMARY KEY (group_user_name, member_user_name)
    ) WITHOUT ROWID",
    "CREATE TEMP TABLE stage_deleted (user_name TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID",
];

/// Decoded records waiting to be written; see the module docs.
pub struct Stage {
    pub(super) conn: SqliteConnection,
    /// Stored member-list digests by group, read when the first group is
    /// staged.
    digests: Option<HashMap<String, String>>,
    /// Groups described so far: name → (digest, whether rows were staged).
    /// Written to `stage_groups` in one statement before the commit.
    groups: HashMap<String, (String, bool)>,
}

impl Store {
    /// Opens a stage: a connection of its own with empty TEMP tables.
    pub async fn stage(&self) -> Result<Stage, Error> {
        let mut conn = self.connect().await?;
        for sql in SCHEMA {
            sqlx::query(*sql).execute(&mut conn).await?;
        }
        super::write::create_temp_tables(&mut conn).await?;
        Ok(Stage {
            conn,
            digests: None,
            groups: HashMap::new(),
        })
    }
}

impl Stage {
    /// Stages contacts; a name staged again replaces the earlier record (so
    /// later sources win).
    pub async fn contacts(&mut self, contacts: &[Contact]) -> Result<(), Error> {
        if contacts.is_empty() {
            return Ok(());
        }
        let rows = json_rows(contacts.iter().map(ContactRow))?;
        sqlx::query(
            "INSERT OR REPLACE INTO temp.stage_contacts \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, \
                    value->>6, value->>7, value->>8, value->>9, value->>10, value->>11, \
                    value->>12, value->>13, value->>14, value->>15 \
             FROM json_each(?1)",
        )
        .bind(rows)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// Stages a group's complete member list (the group's own record goes
    /// through [`Stage::contacts`]). Returns whether the list differs from
    /// the stored one; an unchanged list stages no rows.
    pub async fn members(&mut self, group: &str, members: &[Member]) -> Result<bool, Error> {
        if self.digests.is_none() {
            let stored: Vec<(String, String)> =
                sqlx::query_as("SELECT group_user_name, digest FROM main.membership_digests")
                    .fetch_all(&mut self.conn)
                    .await?;
            self.digests = Some(stored.into_iter().collect());
        }
        let digest = digest(members);
        let changed = self
            .digests
            .as_ref()
            .and_then(|d| d.get(group))
            .is_none_or(|stored| *stored != digest);
        if self
            .groups
            .insert(group.to_owned(), (digest, changed))
            .is_some()
        {
            // Described twice: the later list replaces the earlier one.
            sqlx::query("DELETE FROM temp.stage_members WHERE group_user_name = ?1")
                .bind(group)
                .execute(&mut self.conn)
                .await?;
        }
        if changed && !members.is_empty() {
            sqlx::query(
                "INSERT OR REPLACE INTO temp.stage_members \
                 SELECT ?1, value->>0, value->>1, value->>2, value->>3 FROM json_each(?2)",
            )
            .bind(group)
            .bind(json_rows(members.iter().map(MemberRow))?)
            .execute(&mut self.conn)
            .await?;
        }
        Ok(changed)
    }

    /// Writes the described groups to `stage_groups`; the commit calls it.
    pub(super) async fn flush_groups(&mut self) -> Result<(), Error> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&String, &String, bool)> = self
            .groups
            .iter()
            .map(|(g, (digest, staged))| (g, digest, *staged))
            .collect();
        sqlx::query(
            "INSERT OR REPLACE INTO temp.stage_groups \
             SELECT value->>0, value->>1, value->>2 FROM json_each(?1)",
        )
        .bind(serde_json::to_string(&rows).map_err(Error::Encode)?)
        .execute(&mut self.conn)
        .await?;
        self.groups.clear();
        Ok(())
    }

    /// Stages names the server says are gone (`DelContactList`); only a
    /// partial commit reads them (a full sync's absentees are gone anyway).
    pub async fn deleted(&mut self, user_names: &[String]) -> Result<(), Error> {
        if user_names.is_empty() {
            return Ok(());
        }
        sqlx::query("INSERT OR IGNORE INTO temp.stage_deleted SELECT value FROM json_each(?1)")
            .bind(serde_json::to_string(user_names).map_err(Error::Encode)?)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }
}

/// A digest of a member list as `memberships` stores it, independent of the
/// order the server listed the members in.
fn digest(members: &[Member]) -> String {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_unstable_by(|a, b| a.user_name.cmp(&b.user_name));
    let mut h = Xxh3::new();
    for m in sorted {
        for field in [&m.user_name, &m.nick_name, &m.display_name] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        h.update(&m.attr_status.to_le_bytes());
    }
    format!("{:032x}", h.digest128())
}

/// Rows as one JSON array of arrays, the parameter `json_each` reads.
fn json_rows<T: Serialize>(rows: impl Iterator<Item = T>) -> Result<String, Error> {
    let rows: Vec<T> = rows.collect();
    serde_json::to_string(&rows).map_err(Error::Encode)
}

/// A contact as a JSON array in `stage_contacts` column order.
struct ContactRow<'a>(&'a Contact);

impl Serialize for ContactRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut t = s.serialize_tuple(16)?;
        t.serialize_element(&c.user_name)?;
        t.serialize_element(c.kind.as_str())?;
        t.serialize_element(&c.nick_name)?;
        t.serialize_element(&c.remark_name)?;
        t.serialize_element(&c.alias)?;
        t.serialize_element(&c.signature)?;
        t.serialize_element(&c.province)?;
        t.serialize_element(&c.city)?;
        t.serialize_element(&c.head_img_url)?;
        t.serialize_element(&c.sex)?;
        t.serialize_element(&c.verify_flag)?;
        t.serialize_element(&c.contact_flag)?;
        t.serialize_element(&c.star_friend)?;
        t.serialize_element(&c.member_count)?;
        t.serialize_element(&c.encry_chat_room_id)?;
        t.serialize_element(&c.raw)?;
        t.end()
    }
}

/// A member as a JSON array in `stage_members` column order (after the group).
struct MemberRow<'a>(&'a Member);

impl Serialize for MemberRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&m.user_name)?;
        t.serialize_element(&m.nick_name)?;
        t.serialize_element(&m.display_name)?;
        t.serialize_element(&m.attr_status)?;
        t.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(u: &str, nick: &str) -> Member {
        Member {
            user_name: u.into(),
            nick_name: nick.into(),
            display_name: String::new(),
            attr_status: 0,
        }
    }

    #[test]
    fn a_digest_ignores_order_and_sees_every_field() {
        let a = digest(&[m("@1", "x"), m("@2", "y")]);
        assert_eq!(a, digest(&[m("@2", "y"), m("@1", "x")]));
        assert_ne!(a, digest(&[m("@1", "x"), m("@2", "z")]));
        assert_ne!(a, digest(&[m("@1", "x")]));
        let mut other = m("@2", "y");
        other.attr_status = 1;
        assert_ne!(a, digest(&[m("@1", "x"), other]));
        // Field boundaries count: ("ab","c") is not ("a","bc").
        assert_ne!(digest(&[m("@1", "ab")]), digest(&[m("@1a", "b")]));
    }
}
