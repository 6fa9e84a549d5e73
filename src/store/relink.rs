//! Re-linking: after a new login, the staged contacts carry new user names.
//! This step reads the previous login's live rows and the staged ones, asks
//! the matcher (`crate::identity`) who is who, and records the answer in the
//! stage's `links` and `candidates` tables for the commit (docs/storage.md,
//! "Prepare").

use std::borrow::Cow;
use std::collections::HashMap;
use std::mem;
use std::sync::LazyLock;

use serde::{Deserialize, Deserializer};
use sqlx::{Connection, SqliteConnection};

use super::Error;
use super::pairing::{Listed, parse};
use super::stage::{self, Stage, name_key};
use crate::contact::Kind;
use crate::identity::{
    self, Group, Outcome, People, Person, Text, avatar_seq, card_key, contact_member_key,
    stranger_member_key,
};

/// What a re-link decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relinked {
    /// Previous-login rows linked to a new name.
    pub linked: u64,
    /// Previous-login rows left unlinked (they will be marked deleted).
    pub unlinked: u64,
}

/// One side's row as the matcher needs it, read from a JSON array of
/// [`ROW_COLUMNS`].
#[derive(Deserialize)]
struct Row<'a> {
    /// The cache's `contact_id`, or the stage's rowid for a staged row.
    id: i64,
    #[serde(borrow)]
    user_name: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    nick_name: Cow<'a, str>,
    #[serde(borrow)]
    remark_name: Cow<'a, str>,
    #[serde(borrow)]
    alias: Cow<'a, str>,
    #[serde(borrow)]
    signature: Cow<'a, str>,
    #[serde(borrow)]
    province: Cow<'a, str>,
    #[serde(borrow)]
    city: Cow<'a, str>,
    sex: i64,
    #[serde(borrow)]
    head_img_url: Cow<'a, str>,
    member_count: i64,
    #[serde(borrow)]
    real_id: Option<Cow<'a, str>>,
}

/// The contact columns of a [`Row`], in its fields' order (between `id`
/// and `real_id`).
const ROW_COLUMNS: [&str; 11] = [
    "user_name",
    "kind",
    "nick_name",
    "remark_name",
    "alias",
    "signature",
    "province",
    "city",
    "sex",
    "head_img_url",
    "member_count",
];

/// Rows of a [`Row`] query read at a time: a page's JSON text is some
/// 400 KB (the whole of one side's, at 4× the bench's account, was 9 MB,
/// held twice while handed over). The unit tests turn every page.
#[cfg(not(test))]
const ROWS_PAGE: i64 = 1024;
#[cfg(test)]
const ROWS_PAGE: i64 = 2;

/// What a query of [`Row`]s is ordered and paged by.
#[derive(Clone, Copy)]
enum Order {
    Id,
    UserName,
}

/// The rows of `from` (a FROM clause and a WHERE clause, where `c` is the
/// contacts table and `id` and `real_id` are taken from the expressions
/// given) by `order`, a page at a time ([`Rows::read`]), each as one JSON
/// array of [`Row`]s: one value to hand over instead of a row at a time,
/// which took ten times SQLite's reading. With the array come its rows'
/// count and where the next page starts: the highest id and user name
/// (`?2` and `?3` of the next page; the order's key is the one used).
/// `?1` is the query's own parameter, if any.
fn rows_query(id: &str, real_id: &str, from: &str, order: Order) -> String {
    let columns = ROW_COLUMNS.join(", ");
    let selected: Vec<String> = ROW_COLUMNS.iter().map(|c| format!("c.{c}")).collect();
    let (key, expr, after) = match order {
        Order::Id => ("id", id, "?2"),
        Order::UserName => ("user_name", "c.user_name", "?3"),
    };
    format!(
        "SELECT json_group_array(json_array(id, {columns}, real_id) ORDER BY {key}),
                count(*), max(id), max(user_name)
         FROM (SELECT {id} AS id, {}, {real_id} AS real_id
               {from} AND {expr} > {after} ORDER BY {expr} LIMIT ?4)",
        selected.join(", ")
    )
}

/// One side's rows as the matcher takes them, read one at a time: its
/// people and groups (member lists and cards to be added), with each one's
/// id, by which its outcome is recorded, and index by user name, by which
/// member rows name it.
struct Rows {
    people: Vec<Person>,
    people_ids: Vec<i64>,
    person_at: At,
    groups: Vec<Group>,
    group_ids: Vec<i64>,
    group_at: At,
}

/// Indices by user name, by [`name_key`]: a big account's re-link holds
/// them for every contact of both logins until the member lists are read,
/// and the names themselves took three times the memory.
type At = HashMap<u128, u32>;

impl Rows {
    /// Reads the rows of `sql`, a [`rows_query`] (`ids`, if given, binds
    /// `?1`).
    async fn read(
        conn: &mut SqliteConnection,
        sql: &'static str,
        ids: Option<String>,
    ) -> Result<Rows, Error> {
        let mut out = Rows {
            people: Vec::new(),
            people_ids: Vec::new(),
            person_at: At::new(),
            groups: Vec::new(),
            group_ids: Vec::new(),
            group_at: At::new(),
        };
        let (mut after_id, mut after_name) = (-1, String::new());
        loop {
            let (text, read, last_id, last_name): (String, i64, Option<i64>, Option<String>) =
                sqlx::query_as(sql)
                    .bind(ids.as_deref())
                    .bind(after_id)
                    .bind(&after_name)
                    .bind(ROWS_PAGE)
                    .fetch_one(&mut *conn)
                    .await?;
            serde_json::Deserializer::from_str(&text)
                .deserialize_seq(&mut out)
                .map_err(Error::Decode)?;
            match (last_id, last_name) {
                (Some(id), Some(name)) if read == ROWS_PAGE => (after_id, after_name) = (id, name),
                _ => break,
            }
        }
        out.people.shrink_to_fit();
        out.people_ids.shrink_to_fit();
        Ok(out)
    }

    fn is_empty(&self) -> bool {
        self.people.is_empty() && self.groups.is_empty()
    }

    fn add(&mut self, r: Row) {
        let avatar_seq = avatar_seq(&r.head_img_url).map(Text::from);
        let real_id = r.real_id.as_deref().map(Text::from);
        match Kind::parse(&r.kind).unwrap_or(Kind::Friend) {
            Kind::Group => {
                self.groups.push(Group {
                    real_id,
                    nick_name: r.nick_name.as_ref().into(),
                    member_count: r.member_count,
                    avatar_seq,
                    members: Vec::new(),
                });
                self.group_at
                    .insert(name_key(&r.user_name), self.group_ids.len() as u32);
                self.group_ids.push(r.id);
            }
            kind => {
                self.people.push(Person {
                    kind,
                    real_id,
                    nick_name: r.nick_name.as_ref().into(),
                    remark_name: r.remark_name.as_ref().into(),
                    alias: r.alias.as_ref().into(),
                    signature: r.signature.as_ref().into(),
                    province: r.province.as_ref().into(),
                    city: r.city.as_ref().into(),
                    sex: r.sex,
                    avatar_seq,
                    cards: Vec::new(),
                });
                self.person_at
                    .insert(name_key(&r.user_name), self.people_ids.len() as u32);
                self.people_ids.push(r.id);
            }
        }
    }
}

/// Takes a page of [`Row`]s (a JSON array) one at a time, without holding
/// them.
impl<'de> serde::de::Visitor<'de> for &mut Rows {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of contact rows")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<Row>()? {
            self.add(row);
        }
        Ok(())
    }
}

/// The previous login's live rows that this login did not list by name, and
/// this login's staged rows the cache does not know by name.
static OLD_ROWS: LazyLock<String> = LazyLock::new(|| {
    rows_query(
        "c.contact_id",
        "c.real_id",
        "FROM main.contacts c
         WHERE c.deleted_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM temp.stage_contacts s WHERE s.user_name = c.user_name)
           AND NOT EXISTS (SELECT 1 FROM temp.stage_present p WHERE p.user_name = c.user_name)",
        Order::Id,
    )
});
static NEW_ROWS: LazyLock<String> = LazyLock::new(|| {
    rows_query(
        "c.rowid",
        "r.real_id",
        "FROM temp.stage_contacts c LEFT JOIN main.real_ids r ON r.user_name = c.user_name
         WHERE NOT EXISTS (SELECT 1 FROM main.contacts o WHERE o.user_name = c.user_name)",
        Order::UserName,
    )
});

/// Where one side's member lists are read from.
#[derive(Clone, Copy)]
enum Side {
    /// `memberships` and `contacts`: the previous login's, or the live rows.
    Cache,
    /// `stage_members` and `stage_contacts`: this login's.
    Stage,
}

impl Side {
    /// Each group with member rows, as a JSON value [`Side::members`]
    /// takes (its `contact_id` in the cache, its name in the stage), its
    /// user name and nick name; the cache's with one seek each.
    fn groups(self) -> &'static str {
        match self {
            Side::Cache => concat!(
                stored_groups!(),
                " SELECT json_quote(c.contact_id), c.user_name, c.nick_name
                 FROM stored CROSS JOIN main.contacts c ON c.contact_id = stored.g"
            ),
            Side::Stage => {
                "SELECT json_quote(c.user_name), c.user_name, c.nick_name
                 FROM temp.stage_groups g CROSS JOIN temp.stage_contacts c
                   ON c.user_name = g.group_user_name
                 WHERE g.staged = 1"
            }
        }
    }

    /// The member rows of the groups in `?1` (a JSON array of what
    /// [`Side::groups`] gives), a row per group: its key as [`Side::groups`]
    /// gives it, and its members as one JSON array of [`Listed`]s (one value
    /// to hand over instead of hundreds of rows, which cost more than
    /// reading them, and the group named once, not in each member's row:
    /// that took SQLite and serde half as long again). With `?2` true, only
    /// the members with a display name ([`Read::Cards`]).
    fn members(self) -> &'static str {
        match self {
            Side::Cache => {
                "SELECT json_quote(group_contact_id), json_group_array(json_array(
                           member_user_name, nick_name, display_name, attr_status))
                 FROM main.memberships
                 WHERE group_contact_id IN (SELECT value FROM json_each(?1))
                   AND (NOT ?2 OR display_name <> '')
                 GROUP BY group_contact_id"
            }
            Side::Stage => {
                "SELECT json_quote(group_user_name), json_group_array(json_array(
                           member_user_name, nick_name, display_name, attr_status))
                 FROM temp.stage_members
                 WHERE group_user_name IN (SELECT value FROM json_each(?1))
                   AND (NOT ?2 OR display_name <> '')
                 GROUP BY group_user_name"
            }
        }
    }
}

/// What a pass over one side's member rows is for.
#[derive(Clone, Copy, PartialEq)]
enum Read {
    /// The people's group cards, before the people are linked.
    Cards,
    /// The groups' member keys, once they are.
    Members,
}

/// The stage's page caches while the matcher reads (after it, the stage's
/// own: [`stage::CACHES`]).
const MATCHER_CACHES: &str = "PRAGMA main.cache_size = -256; PRAGMA temp.cache_size = -256";

/// Groups whose member rows are read at a time (at most 500 rows each):
/// two batches of each side are in memory at once, as SQLite's text and
/// as ours (at 4× the bench's account, eight at a time peaked 10 MB
/// higher, and were no faster).
const GROUPS_AT_ONCE: usize = 2;

/// One group's member rows as [`Side::members`] reads them: the group's
/// key, and its members as one JSON array.
type GroupRows = (String, String);

/// One side's group member lists as the matcher needs them, read once the
/// people are linked.
struct Lists {
    /// By index into the side's groups: member keys, sorted.
    members: Vec<Vec<u64>>,
    /// By index into the side's groups: the side's people among its
    /// members (indices), for the people's second round.
    people: Vec<Vec<u32>>,
}

impl Stage {
    /// Links the previous login's rows to this login's staged ones; call it
    /// after staging everything and before [`Stage::commit`], when the cache
    /// holds another login's names.
    pub async fn relink(&mut self) -> Result<Relinked, Error> {
        self.flush_groups().await?;
        let conn = &mut self.conn;
        // The matcher reads each table once, in order: the page caches
        // staging filled are emptied (until it is done), and given back with
        // what staging freed (every reply's body, decoded) before it reads.
        sqlx::query(MATCHER_CACHES).execute(&mut *conn).await?;
        crate::memory::give_back();
        let mut old = Rows::read(conn, OLD_ROWS.as_str(), None).await?;
        if old.is_empty() {
            sqlx::query(stage::CACHES).execute(&mut *conn).await?;
            return Ok(Relinked::default());
        }
        let mut new = Rows::read(conn, NEW_ROWS.as_str(), None).await?;
        // Each side is read on a connection of its own: two SQLite threads.
        // The people are linked by their cards before the member lists are
        // read, so the two are never held at once.
        let mut reader = self.reader.open().await?;
        let (old_rows, new_rows) = tokio::try_join!(
            MemberRows::list(&mut reader, Side::Cache),
            MemberRows::list(conn, Side::Stage),
        )?;
        tokio::try_join!(
            old_rows.cards(&mut reader, &mut old.people, &old.person_at),
            new_rows.cards(conn, &mut new.people, &new.person_at),
        )?;
        // The table holds what both rounds weigh: the rows go once it is
        // built. Here and after each step below, what the step freed goes
        // back: the allocator would keep it, and the next step's peak would
        // stand on it (at 4× the bench's account, the write's on 25 MB).
        crate::memory::give_back();
        let table = People::build(&mem::take(&mut old.people), &mem::take(&mut new.people));
        crate::memory::give_back();
        let first = table.link();
        // With everyone linked, the first round is the outcome. Otherwise a
        // second one decides again, and meanwhile only the first's links
        // are kept (not each one's evidence in words).
        let settled = first.pairs();
        let first = (settled.len() == old.people_ids.len()).then_some(first);
        crate::memory::give_back();
        let (old_lists, new_lists) = {
            // A member who is a linked contact is keyed by the cached row's
            // id on both sides; anyone else by what the group shows of them.
            let mut linked_old = vec![None; old.people_ids.len()];
            let mut linked_new = vec![None; new.people_ids.len()];
            for &(o, n) in &settled {
                let id = old.people_ids[o];
                linked_old[o] = Some(id);
                linked_new[n] = Some(id);
            }
            tokio::try_join!(
                old_rows.lists(&mut reader, &old, &linked_old),
                new_rows.lists(conn, &new, &linked_new),
            )?
        };
        reader.close().await?;
        // The indices by name have served: outcomes are recorded by id.
        drop((old_rows, new_rows));
        for rows in [&mut old, &mut new] {
            rows.person_at = At::new();
            rows.group_at = At::new();
        }
        crate::memory::give_back();
        // Each group takes its list; whether it had one is kept for the
        // second round, as `link_groups` takes the lists.
        let has_list = [
            (&mut old.groups, old_lists.members),
            (&mut new.groups, new_lists.members),
        ]
        .map(|(groups, lists)| {
            groups
                .iter_mut()
                .zip(lists)
                .map(|(g, members)| {
                    g.members = members;
                    !g.members.is_empty()
                })
                .collect::<Vec<_>>()
        });
        let groups = identity::link_groups(&mut old.groups, &mut new.groups);
        crate::memory::give_back();
        // The people left unlinked get a second look, with the linked
        // groups they are in as evidence.
        let people = match first {
            Some(first) => first,
            None => {
                let keys = identity::group_keys(&groups, [&has_list[0], &has_list[1]]);
                let [old_groups, new_groups] = [
                    (&old.people_ids, old_lists.people, &keys[0]),
                    (&new.people_ids, new_lists.people, &keys[1]),
                ]
                .map(|(ids, in_groups, keys)| {
                    let memberships = (0..).zip(&in_groups).flat_map(|(group, people)| {
                        people.iter().map(move |p| (*p as usize, group))
                    });
                    identity::groups_of(ids.len(), memberships, keys)
                });
                table.relink([old_groups, new_groups], &settled)
            }
        };
        crate::memory::give_back();

        let mut result = Relinked::default();
        for (outcome, old, new) in [
            (&people, &old.people_ids, &new.people_ids),
            (&groups, &old.group_ids, &new.group_ids),
        ] {
            let counts = record(conn, outcome, old, new).await?;
            result.linked += counts.linked;
            result.unlinked += counts.unlinked;
        }
        sqlx::query(stage::CACHES).execute(&mut *conn).await?;
        tracing::info!(
            linked = result.linked,
            unlinked = result.unlinked,
            "linked the previous login's contacts to this login's names"
        );
        Ok(result)
    }
}

/// One side's member rows as the matcher reads them, in two passes (the
/// people's cards, then the groups' lists): the groups listed, found once.
struct MemberRows {
    side: Side,
    /// Each group with member rows: its key for [`Side::members`], user
    /// name and nick name.
    listed: Vec<(String, String, String)>,
}

impl MemberRows {
    async fn list(conn: &mut SqliteConnection, side: Side) -> Result<Self, Error> {
        Ok(MemberRows {
            side,
            listed: sqlx::query_as(side.groups()).fetch_all(conn).await?,
        })
    }

    /// Each group's user name and nick name, by its key.
    fn by_key(&self) -> HashMap<&str, (&str, &str)> {
        self.listed
            .iter()
            .map(|(key, name, nick)| (key.as_str(), (name.as_str(), nick.as_str())))
            .collect()
    }

    /// Reads the rows (`pass`) a few groups at a time, and hands each
    /// batch's groups to `take_in` while SQLite reads the next.
    async fn each_batch(
        &self,
        conn: &mut SqliteConnection,
        pass: Read,
        mut take_in: impl FnMut(&[GroupRows]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let batches = self.listed.chunks(GROUPS_AT_ONCE).map(|batch| {
            let keys: Vec<&str> = batch.iter().map(|(key, ..)| key.as_str()).collect();
            format!("[{}]", keys.join(","))
        });
        let mut read: Option<Vec<GroupRows>> = None;
        for next in batches.map(Some).chain([None]) {
            let fetch = async {
                match next {
                    Some(keys) => sqlx::query_as(self.side.members())
                        .bind(keys)
                        .bind(pass == Read::Cards)
                        .fetch_all(&mut *conn)
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            };
            let taken = async {
                match read.take() {
                    Some(groups) => take_in(&groups),
                    None => Ok(()),
                }
            };
            let (fetched, taken) = tokio::join!(biased; fetch, taken);
            taken?;
            read = fetched?;
        }
        Ok(())
    }

    /// Gives each of the side's `people` (indexed by `person_at`) a card for
    /// each group with member rows that shows them under a display name
    /// (sorted, in `cards`).
    async fn cards(
        &self,
        conn: &mut SqliteConnection,
        people: &mut [Person],
        person_at: &At,
    ) -> Result<(), Error> {
        let groups = self.by_key();
        self.each_batch(conn, Read::Cards, |read| {
            for (key, text) in read {
                let Some(&(_, group_nick)) = groups.get(key.as_str()) else {
                    continue;
                };
                for m in parse::<Listed>(text)? {
                    if let Some(&p) = person_at.get(&name_key(&m.user_name)) {
                        people[p as usize]
                            .cards
                            .push(card_key(group_nick, &m.display_name));
                    }
                }
            }
            Ok(())
        })
        .await?;
        for p in people {
            p.cards.sort_unstable();
            p.cards.shrink_to_fit();
        }
        Ok(())
    }

    /// Reads the member lists of the side's groups (in `rows`); `linked` is
    /// the cached `contact_id` of each of the side's people who was linked.
    async fn lists(
        &self,
        conn: &mut SqliteConnection,
        rows: &Rows,
        linked: &[Option<i64>],
    ) -> Result<Lists, Error> {
        let groups = rows.group_ids.len();
        let mut out = Lists {
            members: vec![Vec::new(); groups],
            people: vec![Vec::new(); groups],
        };
        let groups = self.by_key();
        self.each_batch(conn, Read::Members, |read| {
            for (key, text) in read {
                if let Some(&(group_name, _)) = groups.get(key.as_str()) {
                    add_rows(
                        group_name,
                        text,
                        &mut out,
                        &rows.person_at,
                        &rows.group_at,
                        linked,
                    )?;
                }
            }
            Ok(())
        })
        .await?;
        for keys in &mut out.members {
            keys.sort_unstable();
        }
        Ok(out)
    }
}

/// Takes in one group's member rows ([`GroupRows`]): a member who is a
/// linked contact is keyed by the cached row's id on both sides, anyone
/// else by what the group shows of them.
fn add_rows(
    group_name: &str,
    text: &str,
    out: &mut Lists,
    person_at: &At,
    group_at: &At,
    linked: &[Option<i64>],
) -> Result<(), Error> {
    let Some(&group) = group_at.get(&name_key(group_name)) else {
        return Ok(());
    };
    let rows: Vec<Listed> = parse(text)?;
    let found: Vec<Option<u32>> = rows
        .iter()
        .map(|m| person_at.get(&name_key(&m.user_name)).copied())
        .collect();
    out.people[group as usize] = found.iter().flatten().copied().collect();
    out.members[group as usize] = rows
        .iter()
        .zip(found)
        .map(
            |(m, person)| match person.and_then(|p| linked[p as usize]) {
                Some(id) => contact_member_key(id),
                None => stranger_member_key(&m.nick_name, &m.display_name),
            },
        )
        .collect();
    Ok(())
}

/// Writes one matcher outcome into the stage's `links` and `candidates`:
/// `old` are the cached rows' `contact_id`s, `new` the staged rows' rowids.
async fn record(
    conn: &mut SqliteConnection,
    outcome: &Outcome,
    old: &[i64],
    new: &[i64],
) -> Result<Relinked, Error> {
    let links: Vec<(i64, i64)> = outcome
        .links
        .iter()
        .map(|l| (new[l.new], old[l.old]))
        .collect();
    let candidates: Vec<(i64, i64, f64, &str)> = outcome
        .unresolved
        .iter()
        .flat_map(|u| {
            u.candidates
                .iter()
                .map(move |c| (old[u.old], new[c.new], c.score, c.evidence.as_str()))
        })
        .collect();
    for l in &outcome.links {
        tracing::debug!(
            contact_id = old[l.old],
            score = l.score,
            evidence = %l.evidence,
            "re-linked"
        );
    }
    sqlx::query(
        "INSERT INTO temp.links (new_name, contact_id)
         SELECT s.user_name, j.value->>1
         FROM json_each(?1) j JOIN temp.stage_contacts s ON s.rowid = j.value->>0",
    )
    .bind(serde_json::to_string(&links).map_err(Error::Encode)?)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT OR REPLACE INTO temp.candidates (old_contact_id, new_name, score, evidence)
         SELECT j.value->>0, s.user_name, j.value->>2, j.value->>3
         FROM json_each(?1) j JOIN temp.stage_contacts s ON s.rowid = j.value->>1",
    )
    .bind(serde_json::to_string(&candidates).map_err(Error::Encode)?)
    .execute(&mut *conn)
    .await?;
    Ok(Relinked {
        linked: links.len() as u64,
        unlinked: (old.len() - links.len()) as u64,
    })
}

/// Cached rows as the matcher reads them, by `contact_id` (`?1`, a JSON
/// array): the old side of a rebuild ([`candidates`]).
static CACHED_ROWS: LazyLock<String> = LazyLock::new(|| {
    rows_query(
        "c.contact_id",
        "c.real_id",
        "FROM main.contacts c WHERE c.contact_id IN (SELECT value FROM json_each(?1))",
        Order::Id,
    )
});

/// The live rows a person may still link an old row to: those first seen
/// since the cache took this login's names (see [`super::Store::link`]).
static UNCLAIMED_ROWS: LazyLock<String> = LazyLock::new(|| {
    rows_query(
        "c.contact_id",
        "c.real_id",
        "FROM main.contacts c, main.identity i
         WHERE i.id = 1 AND c.deleted_at IS NULL AND c.first_seen_at >= i.linked_at",
        Order::Id,
    )
});

/// A candidate as `identity_candidates` holds it: old and new `contact_id`,
/// score, evidence.
pub(super) type Scored = (i64, i64, f64, String);

/// The candidates of the old rows `old_ids` among the live rows a person may
/// still link them to, scored as a re-link scores them; a pair the matcher
/// would link is its row's only candidate. An old group's member list is
/// gone with it, so groups are compared without members.
pub(super) async fn candidates(
    conn: &mut SqliteConnection,
    old_ids: &[i64],
) -> Result<Vec<Scored>, Error> {
    let ids = serde_json::to_string(old_ids).map_err(Error::Encode)?;
    let mut old = Rows::read(conn, CACHED_ROWS.as_str(), Some(ids)).await?;
    let mut new = Rows::read(conn, UNCLAIMED_ROWS.as_str(), None).await?;
    for rows in [&mut old, &mut new] {
        let member_rows = MemberRows::list(conn, Side::Cache).await?;
        member_rows
            .cards(conn, &mut rows.people, &rows.person_at)
            .await?;
    }
    let people = identity::link_people(&old.people, &new.people);
    let groups = identity::link_groups(&mut old.groups, &mut new.groups);
    let mut out = Vec::new();
    for (outcome, old, new) in [
        (&people, &old.people_ids, &new.people_ids),
        (&groups, &old.group_ids, &new.group_ids),
    ] {
        for l in &outcome.links {
            out.push((old[l.old], new[l.new], l.score, l.evidence.clone()));
        }
        for u in &outcome.unresolved {
            for c in &u.candidates {
                out.push((old[u.old], new[c.new], c.score, c.evidence.clone()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;
    use crate::identity::Nick;
    use crate::store::stage::tests::contact;
    use crate::store::{Plan, Source, Store};

    /// Rows come a page at a time, each page starting after the last one's
    /// last row: every row once, in the query's order, whether the pages
    /// come out even (six old rows) or not (three new ones).
    #[tokio::test]
    async fn the_matchers_rows_are_read_whole_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let mut old: Vec<_> = ["@a3", "@a1", "@a4", "@a0", "@a2"]
            .map(|u| contact(u, u))
            .into();
        old.push(Contact {
            kind: Kind::Group,
            ..contact("@@g", "group")
        });
        let mut stage = store.stage().await.unwrap();
        stage.contacts(&old).await.unwrap();
        let plan = Plan {
            source: Source::Increment,
            full: None,
            claim_login: None,
        };
        stage.commit(plan).await.unwrap();

        let mut stage = store.stage().await.unwrap();
        let new = ["@b2", "@b0", "@b1"].map(|u| contact(u, u));
        stage.contacts(&new).await.unwrap();
        let by_id: Vec<(i64, String)> =
            sqlx::query_as("SELECT contact_id, user_name FROM main.contacts ORDER BY contact_id")
                .fetch_all(&mut stage.conn)
                .await
                .unwrap();
        let rows = Rows::read(&mut stage.conn, OLD_ROWS.as_str(), None)
            .await
            .unwrap();
        let people: Vec<_> = by_id.iter().filter(|(_, u)| u != "@@g").collect();
        assert_eq!(
            rows.people_ids,
            people.iter().map(|(i, _)| *i).collect::<Vec<_>>()
        );
        assert_eq!(
            rows.person_at,
            at(&people.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>())
        );
        assert_eq!(rows.group_at, at(&["@@g"]));
        assert_eq!(rows.people[0].nick_name, Nick::from(people[0].1.as_str()));

        let rows = Rows::read(&mut stage.conn, NEW_ROWS.as_str(), None)
            .await
            .unwrap();
        assert_eq!(rows.person_at, at(&["@b0", "@b1", "@b2"]));
        assert!(rows.groups.is_empty());
    }

    /// Each of `names` at its index.
    fn at(names: &[&str]) -> At {
        (0..).zip(names).map(|(i, n)| (name_key(n), i)).collect()
    }

    #[test]
    fn members_are_keyed_by_the_link_or_by_what_the_group_shows() {
        let (person_at, group_at) = (at(&["@linked", "@unlinked"]), at(&["@@a", "@@b"]));
        let mut out = Lists {
            members: vec![Vec::new(); 2],
            people: vec![Vec::new(); 2],
        };
        let groups = [
            (
                "@@a",
                r#"[["@stranger", "Ann", "", 0], ["@linked", "Bo", "Bobby", 0],
                    ["@unlinked", "Cy", "C.", 0]]"#,
            ),
            ("@@b", r#"[["@unlinked", "Cy", "", 0]]"#),
            ("@@other", r#"[["@linked", "Bo", "", 0]]"#),
        ];
        // Person 0 was linked to the cached row 7; person 1 was not.
        for (group, text) in groups {
            add_rows(
                group,
                text,
                &mut out,
                &person_at,
                &group_at,
                &[Some(7), None],
            )
            .unwrap();
        }
        assert_eq!(
            out.members,
            vec![
                vec![
                    stranger_member_key("Ann", ""),
                    contact_member_key(7),
                    stranger_member_key("Cy", "C."),
                ],
                vec![stranger_member_key("Cy", "")],
            ]
        );
        // Rows of a group that is not the side's are left out; every row of
        // one of the side's people is kept for the second round.
        assert_eq!(out.people, vec![vec![0, 1], vec![1]]);
    }
}
