//! Staging: decoded records go into TEMP tables on a connection of the
//! stage's own, which takes no lock on the cache. [`Stage::commit`] then
//! prepares the exact changes (`write.rs`) and applies them in one short
//! `BEGIN IMMEDIATE` transaction. The design is in docs/storage.md.

use std::collections::HashMap;

use serde::ser::{Serialize, SerializeMap, SerializeTuple, Serializer};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};
use xxhash_rust::xxh3::Xxh3;

use super::{Error, Store, columns};
use crate::contact::{COLUMNS, Contact, Member, Value};

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

/// The TEMP tables a stage writes (and `stage_contacts`, whose columns
/// `columns.rs` writes out). `stage_groups` lists every group whose
/// member list the server described; `staged` is 0 when the list's digest
/// equals the stored one, and then no member rows were staged for it.
const SCHEMA: &[&str] = &[
    // The commit's WAL frames are copied into the database file by an
    // explicit checkpoint after the write lock is released, not by one
    // SQLite would run inside the commit.
    "PRAGMA wal_autocheckpoint = 0",
    "PRAGMA temp_store = FILE",
    CACHES,
    "CREATE TEMP TABLE stage_groups (
        group_user_name TEXT PRIMARY KEY NOT NULL, digest TEXT NOT NULL, staged INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE TEMP TABLE stage_members (
        group_user_name TEXT NOT NULL, member_user_name TEXT NOT NULL, nick_name TEXT NOT NULL,
        display_name TEXT NOT NULL, attr_status INTEGER NOT NULL,
        PRIMARY KEY (group_user_name, member_user_name)
    ) WITHOUT ROWID",
    "CREATE TEMP TABLE stage_deleted (user_name TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID",
    // Contacts the server described exactly as the cache holds them: only
    // their names are staged.
    "CREATE TEMP TABLE stage_present (user_name TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID",
];

/// The TEMP tables the commit's prepare fills (`write.rs`), and the links
/// a re-link (`relink.rs`) adds before it.
const PREPARED: &[&str] = &[
    // Re-links decided before prepare: this login's name → the cached row.
    "CREATE TEMP TABLE links (
        new_name TEXT PRIMARY KEY NOT NULL, contact_id INTEGER NOT NULL UNIQUE
    ) WITHOUT ROWID",
    // Previous-login rows left unlinked and their best candidates.
    "CREATE TEMP TABLE candidates (
        old_contact_id INTEGER NOT NULL, new_name TEXT NOT NULL, score REAL NOT NULL,
        evidence TEXT NOT NULL, PRIMARY KEY (old_contact_id, new_name)
    ) WITHOUT ROWID",
    // Every staged contact's identity; old_user_name is set for a re-link.
    "CREATE TEMP TABLE ident (
        user_name TEXT PRIMARY KEY NOT NULL, contact_id INTEGER, old_user_name TEXT,
        fresh INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID",
    "CREATE INDEX temp.ident_contact ON ident (contact_id)",
    "CREATE INDEX temp.ident_old ON ident (old_user_name) WHERE old_user_name IS NOT NULL",
    // Contacts another source changed since the full sync began fetching.
    "CREATE TEMP TABLE frozen (contact_id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE d_new (contact_id INTEGER PRIMARY KEY, user_name TEXT NOT NULL)",
    "CREATE TEMP TABLE changed_contacts (
        contact_id INTEGER PRIMARY KEY, user_name TEXT NOT NULL, restored INTEGER NOT NULL
    )",
    "CREATE TEMP TABLE d_gone (
        contact_id INTEGER PRIMARY KEY, user_name TEXT NOT NULL, is_group INTEGER NOT NULL
    )",
    // Described groups whose member list changed; `fresh` when no rows are
    // stored for it yet (its list is inserted as is, without history).
    "CREATE TEMP TABLE changed_groups (
        new_name TEXT PRIMARY KEY NOT NULL, old_name TEXT NOT NULL, contact_id INTEGER NOT NULL,
        fresh INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE INDEX temp.changed_groups_id ON changed_groups (contact_id)",
    // Member rows to remove, by their rowid.
    "CREATE TEMP TABLE members_to_remove (id INTEGER PRIMARY KEY)",
    // Each stored member row to rewrite in place: paired with a row of its
    // group's new list that differs from it (or, after a re-link, renamed
    // where its group's list was not described): its rowid, its group's
    // `contact_id`, the member as the row becomes and its `contact_id`
    // after the write. `replaced`: after a new login, the row of a member
    // who left, taken by one who joined (`left` and `joined` in the
    // history). The group's name is in `pair_groups`, once per group: in
    // each row it was half of what the pairing wrote.
    "CREATE TEMP TABLE member_pairs (
        id INTEGER PRIMARY KEY, gid INTEGER NOT NULL, m TEXT NOT NULL,
        nick_name TEXT NOT NULL, display_name TEXT NOT NULL, attr_status INTEGER NOT NULL,
        contact_id INTEGER, replaced INTEGER NOT NULL DEFAULT 0
    )",
    // The name the rows of each group in `member_pairs` take.
    "CREATE TEMP TABLE pair_groups (gid INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    // Member rows to add, whole (in `memberships` column order), so the
    // write under the lock is a plain ordered copy.
    "CREATE TEMP TABLE members_to_write (
        g TEXT NOT NULL, m TEXT NOT NULL, nick_name TEXT NOT NULL, display_name TEXT NOT NULL,
        attr_status INTEGER NOT NULL, PRIMARY KEY (g, m)
    ) WITHOUT ROWID",
    // Stored member rows whose contact came or went, and the
    // `member_contact_id` each gets.
    "CREATE TEMP TABLE member_ids (id INTEGER PRIMARY KEY, contact_id INTEGER)",
    // The live contacts as the write will leave them, worked out in the
    // prepare: the member rows written take their `member_contact_id` from
    // here, a small table, rather than from `contacts`, whose rows carry
    // `raw`, and the rows rewritten in place carry it already.
    "CREATE TEMP TABLE live_contacts (
        user_name TEXT PRIMARY KEY NOT NULL, contact_id INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE TEMP TABLE d_changes (
        seq INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL, user_name TEXT NOT NULL,
        source TEXT, change TEXT NOT NULL, field TEXT, old_value TEXT, new_value TEXT
    )",
];

/// Decoded records waiting to be written; see the module docs.
pub struct Stage {
    pub(super) conn: SqliteConnection,
    /// The store's pool, for bookkeeping written after the commit.
    pub(super) pool: SqlitePool,
    pub(super) reader: Reader,
    /// Digests of the cache's live contacts by [`name_key`], read by
    /// [`Stage::load_digests`]; a contact staged with the same digest stages
    /// only its name.
    stored: HashMap<u128, u128>,
    /// Whether [`Stage::load_digests`] reads them (see [`Stage::relinking`]).
    compare: bool,
    /// Names staged so far (by [`name_key`]), and whether the whole row was
    /// staged (`true`) or only the name (`false`).
    staged: HashMap<u128, bool>,
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
        // A rowid table: rows carry the whole contact object (`raw`), too
        // big for a WITHOUT ROWID table to hold well.
        sqlx::query(columns::sql().stage_table.as_str())
            .execute(&mut conn)
            .await?;
        for sql in PREPARED {
            sqlx::query(*sql).execute(&mut conn).await?;
        }
        Ok(Stage {
            conn,
            pool: self.pool.clone(),
            reader: Reader(self.options.clone().pragma("cache_size", READER_CACHE)),
            stored: HashMap::new(),
            compare: true,
            staged: HashMap::new(),
            digests: None,
            groups: HashMap::new(),
        })
    }
}

/// The stage's page caches: SQLite's default for `main`, 4 MiB for the
/// TEMP tables it stages into. (A re-link's matcher empties them while it
/// reads, and sets them back.)
pub(super) const CACHES: &str = "PRAGMA main.cache_size = -2000; PRAGMA temp.cache_size = -4096";

/// A reader's page cache, in KiB (negative): it scans, and reads each
/// page once, so SQLite's 2 MB default would only add to the peak.
const READER_CACHE: &str = "-256";

/// Opens second connections to the cache, for reading `main` tables on
/// another SQLite thread while the stage's connection works; they see none
/// of the stage's TEMP tables. What one reads during the prepare is outside
/// its snapshot: a commit by anyone else in between changes `data_version`,
/// and the write prepares again under the lock.
pub(super) struct Reader(SqliteConnectOptions);

impl Reader {
    pub(super) async fn open(&self) -> Result<SqliteConnection, Error> {
        Ok(self.0.connect().await?)
    }
}

impl Stage {
    /// Tells the stage that the cache holds another login's names, which
    /// this one's re-link will link ([`Stage::relink`]): no contact it
    /// stages has a stored row by that name but the few names a login keeps
    /// (`weixin`), so [`Stage::load_digests`] reads none, and those few are
    /// staged whole. At 4× the bench's account the digests were 1 MB of the
    /// fetch's peak, for nothing.
    pub fn relinking(&mut self) {
        self.compare = false;
    }

    /// Reads a digest of every live contact in the cache, so that a contact
    /// the server describes unchanged costs only its name. A full sync
    /// calls it while its first request is in flight; without it every
    /// contact is staged whole.
    pub async fn load_digests(&mut self) -> Result<(), Error> {
        if !self.compare {
            return Ok(());
        }
        // Rows come a thousand at a time as one text of length-prefixed
        // fields: a row at a time through the driver costs more than
        // hashing it.
        const CHUNK: i64 = 1000;
        let mut after = 0;
        loop {
            let chunk: Option<(i64, String)> = sqlx::query_as(columns::sql().stored_chunk.as_str())
                .bind(after)
                .bind(CHUNK)
                .fetch_optional(&mut self.conn)
                .await?;
            let Some((last, text)) = chunk else { break };
            for (name, digest) in columns::parse_stored(&text)? {
                self.stored.insert(name_key(name), digest);
            }
            after = last;
        }
        Ok(())
    }

    /// Stages contacts; a name staged again replaces the earlier record (so
    /// later sources win), within one call as across calls.
    pub async fn contacts(&mut self, contacts: &[Contact]) -> Result<(), Error> {
        let mut whole = Vec::new();
        let mut present = Vec::new();
        let (mut unstage_whole, mut unstage_present) = (Vec::new(), Vec::new());
        let last: HashMap<u128, usize> = contacts
            .iter()
            .enumerate()
            .map(|(i, c)| (name_key(&c.user_name), i))
            .collect();
        for (i, c) in contacts.iter().enumerate() {
            let key = name_key(&c.user_name);
            if last[&key] != i {
                continue;
            }
            let unchanged = self
                .stored
                .get(&key)
                .is_some_and(|d| *d == columns::digest(c.values()));
            match self.staged.insert(key, !unchanged) {
                Some(true) if unchanged => unstage_whole.push(c.user_name.as_str()),
                Some(false) if !unchanged => unstage_present.push(c.user_name.as_str()),
                _ => {}
            }
            if unchanged {
                present.push(c.user_name.as_str());
            } else {
                whole.push(StagedContact(c));
            }
        }
        // A record seen earlier in this sync (webwxinit's, say) is replaced
        // by this later one.
        self.unstage("stage_contacts", &unstage_whole).await?;
        self.unstage("stage_present", &unstage_present).await?;
        if !whole.is_empty() {
            sqlx::query(columns::sql().stage_insert.as_str())
                .bind(json_rows(whole.into_iter())?)
                .execute(&mut self.conn)
                .await?;
        }
        if !present.is_empty() {
            sqlx::query("INSERT OR IGNORE INTO temp.stage_present SELECT value FROM json_each(?1)")
                .bind(serde_json::to_string(&present).map_err(Error::Encode)?)
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    /// Keeps the cache's live rows of `names` as they are: records staged
    /// for them are dropped, and they count as seen. For groups the server
    /// would not describe, whose other records (webwxinit's, getcontact's)
    /// are partial.
    pub async fn keep(&mut self, names: &[String]) -> Result<(), Error> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.unstage("stage_contacts", &names).await?;
        sqlx::query(
            "INSERT OR IGNORE INTO temp.stage_present SELECT c.user_name
             FROM json_each(?1) j JOIN main.contacts c ON c.user_name = j.value
             WHERE c.deleted_at IS NULL",
        )
        .bind(serde_json::to_string(&names).map_err(Error::Encode)?)
        .execute(&mut self.conn)
        .await?;
        for name in names {
            self.staged.insert(name_key(name), false);
        }
        Ok(())
    }

    async fn unstage(&mut self, table: &str, names: &[&str]) -> Result<(), Error> {
        if names.is_empty() {
            return Ok(());
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM temp.{table} WHERE user_name IN (SELECT value FROM json_each(?1))"
        )))
        .bind(serde_json::to_string(names).map_err(Error::Encode)?)
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

    /// Writes the described groups to `stage_groups`, once staging is done:
    /// the commit (or a re-link before it) calls it. What staging kept to
    /// compare with goes too: a big account's re-link would otherwise hold
    /// it through its largest steps.
    pub(super) async fn flush_groups(&mut self) -> Result<(), Error> {
        self.stored = HashMap::new();
        self.staged = HashMap::new();
        self.digests = None;
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

/// A user name as a map key: a big account's names are kept once each per
/// sync, and 16 bytes are a fifth of one (distinct names colliding in 128
/// bits is not a real possibility).
pub fn name_key(user_name: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(user_name.as_bytes())
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

/// A contact as a JSON object keyed by column name, the form
/// [`columns::Sql::stage_insert`] reads.
struct StagedContact<'a>(&'a Contact);

impl Serialize for StagedContact<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(COLUMNS.len()))?;
        for (column, value) in COLUMNS.iter().zip(self.0.values()) {
            match value {
                Value::Text(t) => m.serialize_entry(column.name, t)?,
                Value::Integer(n) => m.serialize_entry(column.name, &n)?,
            }
        }
        m.end()
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
pub(super) mod tests {
    use super::*;

    fn m(u: &str, nick: &str) -> Member {
        Member {
            user_name: u.into(),
            nick_name: nick.into(),
            display_name: String::new(),
            attr_status: 0,
        }
    }

    pub(in crate::store) fn contact(user_name: &str, nick: &str) -> Contact {
        Contact {
            user_name: user_name.into(),
            kind: crate::contact::Kind::Friend,
            nick_name: nick.into(),
            remark_name: "a:b;c,d".into(),
            alias: String::new(),
            signature: "line\nbreak 😀".into(),
            province: "广东".into(),
            city: String::new(),
            head_img_url: "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=1".into(),
            sex: 2,
            verify_flag: 0,
            contact_flag: 3,
            star_friend: -1,
            member_count: 0,
            encry_chat_room_id: String::new(),
            raw: r#"{"NickName":"x:1;"}"#.into(),
        }
    }

    /// What the cache holds is read back with the digest the staged record
    /// has: an unchanged contact stages only its name, a changed one whole.
    #[tokio::test]
    async fn a_stored_contact_reads_back_with_the_digest_it_was_staged_with() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let same = contact("@same", "Zoë: the 1st;");
        let changed = contact("@changed", "old");
        let mut stage = store.stage().await.unwrap();
        stage
            .contacts(&[same.clone(), changed.clone()])
            .await
            .unwrap();
        let plan = super::super::Plan {
            source: Source::Increment,
            full: None,
            claim_login: None,
        };
        stage.commit(plan).await.unwrap();

        let mut stage = store.stage().await.unwrap();
        stage.load_digests().await.unwrap();
        assert_eq!(stage.stored.len(), 2);
        let renamed = Contact {
            nick_name: "new".into(),
            ..changed
        };
        stage.contacts(&[same, renamed]).await.unwrap();
        let whole: Vec<String> = sqlx::query_scalar("SELECT user_name FROM temp.stage_contacts")
            .fetch_all(&mut stage.conn)
            .await
            .unwrap();
        let present: Vec<String> = sqlx::query_scalar("SELECT user_name FROM temp.stage_present")
            .fetch_all(&mut stage.conn)
            .await
            .unwrap();
        assert_eq!(whole, ["@changed"]);
        assert_eq!(present, ["@same"]);
    }

    /// One reply listing a contact twice, once as the cache holds it and
    /// once changed: the later record wins, and the full sync that stages
    /// it writes (it once failed with a UNIQUE constraint, code 1555).
    #[tokio::test]
    async fn a_name_listed_twice_in_one_reply_is_staged_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let same = contact("@twice", "stored");
        let mut stage = store.stage().await.unwrap();
        stage.contacts(std::slice::from_ref(&same)).await.unwrap();
        let plan = super::super::Plan {
            source: Source::Increment,
            full: None,
            claim_login: Some("login"),
        };
        stage.commit(plan).await.unwrap();

        let changed = Contact {
            nick_name: "changed".into(),
            ..same.clone()
        };
        for twice in [[same.clone(), changed.clone()], [changed, same]] {
            let last = twice[1].nick_name.clone();
            let mut stage = store.stage().await.unwrap();
            stage.load_digests().await.unwrap();
            stage.contacts(&twice).await.unwrap();
            let run_id = store.start_run().await.unwrap();
            let stats = super::super::RunStats::default();
            let fetch_started = super::super::now();
            let plan = super::super::Plan::full_sync_for_test(run_id, &fetch_started, &stats);
            stage.commit(plan).await.unwrap();
            let nick: String =
                sqlx::query_scalar("SELECT nick_name FROM contacts WHERE user_name = '@twice'")
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            assert_eq!(nick, last);
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
