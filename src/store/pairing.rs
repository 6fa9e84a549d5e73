//! Pairs each changed group's stored member rows with its new list, one
//! group at a time (docs/storage.md, "Member rows"): which stored rows are
//! rewritten in place and with what, which are removed and which new rows
//! are added. The prepare's history and the write follow from the TEMP
//! tables this fills: `member_pairs` (the rows to rewrite),
//! `members_to_remove`, `members_to_write`. The groups go through in
//! batches ([`pair_members`]); only two batches' rows are held at a time.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use futures_util::TryStreamExt;
use serde::Deserialize;
use sqlx::query_builder::Separated;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};

use tokio::task::JoinHandle;

use super::Error;
use super::stage::{Reader, name_key};

/// The stored rows of the groups in `?1` (a JSON array of `contact_id`s),
/// a row per group: its `contact_id` and its rows as one JSON array of
/// [`Stored`]s, each a flat array (a nested one took SQLite half as long
/// again to build). It reads `main` alone, so a [`Reader`] can run it
/// beside the stage's connection.
const STORED: &str = "SELECT m.group_contact_id, json_group_array(json_array(
         m.rowid, m.member_user_name, m.nick_name, m.display_name, m.attr_status))
     FROM main.memberships m
     WHERE m.group_contact_id IN (SELECT value FROM json_each(?1))
     GROUP BY m.group_contact_id";

/// The new lists of the changed groups whose `contact_id` is from `?1` to
/// `?2`, a row per group: its `contact_id` and its list as one JSON array
/// of [`Listed`]s.
const STAGED: &str = "SELECT gm.contact_id, json_group_array(json_array(
         s.member_user_name, s.nick_name, s.display_name, s.attr_status))
     FROM temp.changed_groups gm
     CROSS JOIN temp.stage_members s ON s.group_user_name = gm.new_name
     WHERE gm.fresh = 0 AND gm.contact_id BETWEEN ?1 AND ?2
     GROUP BY gm.contact_id";

/// Groups read at a time: at most 500 members each, so a few thousand rows
/// a side, and few statements.
const GROUPS_AT_ONCE: usize = 8;

/// Decided rows held before they are written to the TEMP tables.
const FLUSH_ROWS: usize = 4096;

/// Rows to one INSERT statement (up to 8 values each).
const BATCH_ROWS: usize = 1024;

/// A member as one of a group's two lists shows them (its text borrowed
/// from the JSON it was read as, where it needs no unescaping).
#[derive(Deserialize)]
pub(super) struct Listed<'a> {
    #[serde(borrow)]
    pub(super) user_name: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) nick_name: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) display_name: Cow<'a, str>,
    attr_status: i64,
    /// May be paired by what the group shows of the member (see [`pair`]).
    #[serde(skip)]
    look: bool,
    /// The user name's [`name_key`], set with `look`: hashed once per row,
    /// though the pairing looks a staged row up by it three times.
    #[serde(skip)]
    key: u128,
}

impl Listed<'_> {
    /// The nick name, or else the display name.
    fn shows(&self, nick: bool) -> &str {
        match nick {
            true => &self.nick_name,
            false => &self.display_name,
        }
    }
}

/// A stored member row of a changed group.
struct Stored<'a> {
    id: i64,
    row: Listed<'a>,
    /// The name it pairs with, by [`name_key`]: the one its contact was
    /// linked to, else its own.
    pairs_as: u128,
}

/// A [`Stored`] row as [`STORED`] gives it: rowid, then the member.
#[derive(Deserialize)]
struct StoredRow<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    i64,
);

impl<'a> StoredRow<'a> {
    /// The row as [`pair`] takes it, in a group that was `renamed` (see
    /// [`Listed`]'s `look` and [`Stored`]'s `pairs_as`).
    fn into_stored(self, renamed: bool, contacts: &Contacts) -> Stored<'a> {
        let StoredRow(id, user_name, nick_name, display_name, attr_status) = self;
        let key = name_key(&user_name);
        let linked = contacts.new_name.get(&key);
        Stored {
            id,
            row: Listed {
                user_name,
                nick_name,
                display_name,
                attr_status,
                look: renamed && linked.is_none(),
                key,
            },
            pairs_as: linked.copied().unwrap_or(key),
        }
    }
}

/// What [`pair`] decided for one group, by index into its two lists.
#[derive(Debug, Default, PartialEq)]
struct Pairing {
    /// (stored, staged, nothing differs).
    pairs: Vec<(usize, usize, bool)>,
    /// Stored rows without a partner: removed, `left`.
    removed: Vec<usize>,
    /// New members without a partner: added, `joined`.
    added: Vec<usize>,
}

/// Pairs one group's stored rows with its new list; `renamed` when the
/// group's name changed (a new login), so that no row stays as it is.
///
/// 1. By name: a stored row with the new member of the name it pairs as.
/// 2. After a new login the members who are not contacts carry new names
///    too, so the rows that `look` (strangers, and contacts whose link was
///    missed) pair by (nick name, display name), and history does not
///    record every stranger as leaving and joining. Members who look the
///    same are interchangeable in the cache: k of them on each side pair up
///    in name order, and only a difference in count is a join or a leave.
/// 3. Then a stranger who changed one of the two: by nick name alone, then
///    by a non-empty display name alone, where the value is unique among
///    the rows still unpaired on both sides.
///
/// What is left is removed (stored) or added (new).
fn pair(stored: &[Stored], staged: &[Listed], renamed: bool) -> Pairing {
    let mut free = Free {
        stored: vec![true; stored.len()],
        staged: vec![true; staged.len()],
        out: Pairing::default(),
    };

    let by_name: HashMap<u128, usize> = (0..).zip(staged).map(|(n, s)| (s.key, n)).collect();
    for (o, row) in stored.iter().enumerate() {
        if let Some(&n) = by_name.get(&row.pairs_as)
            && free.staged[n]
        {
            let (row, s) = (&row.row, &staged[n]);
            let same = !renamed
                && row.user_name == s.user_name
                && row.nick_name == s.nick_name
                && row.display_name == s.display_name
                && row.attr_status == s.attr_status;
            free.take(o, n, same);
        }
    }

    // 2: k alike on each side, in name order.
    let old_rows = || stored.iter().map(|o| &o.row);
    let olds = looking(old_rows(), &free.stored, |o| {
        (&o.nick_name, &o.display_name)
    });
    let news = looking(staged, &free.staged, |n| (&n.nick_name, &n.display_name));
    let mut alike: Vec<_> = olds.into_iter().collect();
    alike.sort_unstable();
    for (key, mut olds) in alike {
        let Some(news) = news.get(&key) else {
            continue;
        };
        let mut news = news.clone();
        olds.sort_by_key(|&o| &stored[o].row.user_name);
        news.sort_by_key(|&n| &staged[n].user_name);
        for (o, n) in olds.into_iter().zip(news) {
            free.take(o, n, false);
        }
    }

    // 3: one value unique on both sides.
    for by_nick in [true, false] {
        let olds = looking(old_rows(), &free.stored, |o| o.shows(by_nick));
        let news = looking(staged, &free.staged, |n| n.shows(by_nick));
        let mut unique: Vec<(usize, usize)> = olds
            .iter()
            .filter(|(value, _)| by_nick || !value.is_empty())
            .filter_map(
                |(value, o)| match (o.as_slice(), news.get(value)?.as_slice()) {
                    ([o], [n]) => Some((*o, *n)),
                    _ => None,
                },
            )
            .collect();
        unique.sort_unstable();
        for (o, n) in unique {
            free.take(o, n, false);
        }
    }

    let Free {
        stored: stored_free,
        staged: staged_free,
        mut out,
    } = free;
    out.removed = (0..stored.len()).filter(|&o| stored_free[o]).collect();
    out.added = (0..staged.len()).filter(|&n| staged_free[n]).collect();
    out
}

/// Which rows of a group are not paired yet, and the pairs so far.
struct Free {
    stored: Vec<bool>,
    staged: Vec<bool>,
    out: Pairing,
}

impl Free {
    fn take(&mut self, o: usize, n: usize, same: bool) {
        self.stored[o] = false;
        self.staged[n] = false;
        self.out.pairs.push((o, n, same));
    }
}

/// The rows of one side still `free` that look, by `key`, each list in row
/// order.
fn looking<'a, K: Eq + Hash>(
    rows: impl IntoIterator<Item = &'a Listed<'a>>,
    free: &[bool],
    key: impl Fn(&'a Listed<'a>) -> K,
) -> HashMap<K, Vec<usize>> {
    let mut out: HashMap<K, Vec<usize>> = HashMap::new();
    for (i, row) in rows.into_iter().enumerate() {
        if free[i] && row.look {
            out.entry(key(row)).or_default().push(i);
        }
    }
    out
}

/// Decided rows not yet written.
#[derive(Default)]
struct Decided {
    /// Stored rows to rewrite: rowid, the group's `contact_id`, the member
    /// as the row becomes, the `contact_id` its member has after the
    /// write, and whether the row becomes another member's (see
    /// [`Decided::push`]).
    rewrite: Vec<(i64, i64, NewMember, Option<i64>, bool)>,
    removed: Vec<i64>,
    added: Vec<NewRow>,
}

/// A member of a group's new list: user name, nick name, display name,
/// `AttrStatus`. A bound `Arc<str>` is handed to SQLite as it is, where a
/// `String` is boxed once more.
type NewMember = (Arc<str>, Arc<str>, Arc<str>, i64);

/// A row of a group's new list: the group's name (shared by its rows),
/// then the member.
type NewRow = (Arc<str>, NewMember);

impl Decided {
    /// Takes in one group's [`Pairing`]. After a new login (`renamed`)
    /// every stored row of the group is rewritten anyway, so a row whose
    /// member left takes, in order, a member who joined: one row rewritten
    /// instead of one removed and one added (the history still records
    /// the one `left` and the other `joined`). Without a new login the two
    /// stay a removal and an addition: a row rewritten means its member's
    /// data changed.
    fn push(
        &mut self,
        (gid, group): (i64, &str),
        (stored, staged): (&[Stored], &[Listed]),
        pairing: Pairing,
        renamed: bool,
        live: &HashMap<u128, i64>,
    ) {
        let group: Arc<str> = Arc::from(group);
        let member = |s: &Listed| {
            (
                Arc::from(s.user_name.as_ref()),
                Arc::from(s.nick_name.as_ref()),
                Arc::from(s.display_name.as_ref()),
                s.attr_status,
            )
        };
        let contact_id = |n: usize| live.get(&staged[n].key).copied();
        for (o, n, same) in pairing.pairs {
            if !same {
                self.rewrite
                    .push((stored[o].id, gid, member(&staged[n]), contact_id(n), false));
            }
        }
        let replaced = match renamed {
            true => pairing.removed.len().min(pairing.added.len()),
            false => 0,
        };
        let (removed, added) = (&pairing.removed, &pairing.added);
        for (&o, &n) in removed[..replaced].iter().zip(&added[..replaced]) {
            self.rewrite
                .push((stored[o].id, gid, member(&staged[n]), contact_id(n), true));
        }
        self.removed
            .extend(removed[replaced..].iter().map(|&o| stored[o].id));
        self.added.extend(
            added[replaced..]
                .iter()
                .map(|&n| (Arc::clone(&group), member(&staged[n]))),
        );
    }

    fn append(&mut self, mut other: Decided) {
        self.rewrite.append(&mut other.rewrite);
        self.removed.append(&mut other.removed);
        self.added.append(&mut other.added);
    }

    fn len(&self) -> usize {
        self.rewrite.len() + self.removed.len() + self.added.len()
    }

    /// Writes the rows in full batches; with `all`, the rest too.
    async fn flush(&mut self, conn: &mut SqliteConnection, all: bool) -> Result<(), Error> {
        self.rewrite.sort_unstable_by_key(|(id, ..)| *id);
        let head = "INSERT INTO temp.member_pairs (id, gid, m, nick_name, display_name, attr_status, contact_id, replaced) ";
        insert(
            conn,
            head,
            &mut self.rewrite,
            all,
            |mut b, (id, gid, member, contact_id, replaced)| {
                b.push_bind(id).push_bind(gid);
                push_member(&mut b, member);
                b.push_bind(contact_id).push_bind(replaced);
            },
        )
        .await?;
        let head = "INSERT INTO temp.members_to_remove (id) ";
        insert(conn, head, &mut self.removed, all, |mut b, id| {
            b.push_bind(id);
        })
        .await?;
        let head =
            "INSERT INTO temp.members_to_write (g, m, nick_name, display_name, attr_status) ";
        insert(
            conn,
            head,
            &mut self.added,
            all,
            |mut b, (group, member)| {
                b.push_bind(group);
                push_member(&mut b, member)
            },
        )
        .await
    }
}

fn push_member(b: &mut Separated<'_, Sqlite, &'static str>, member: NewMember) {
    let (m, nick, display, attr) = member;
    b.push_bind(m)
        .push_bind(nick)
        .push_bind(display)
        .push_bind(attr);
}

/// Inserts `rows` (taking them out) with bound values, [`BATCH_ROWS`] to a
/// statement, whose text is then always the same, so SQLite prepares it
/// once (a JSON array for `json_each` would be parsed again for every
/// value). A shorter last batch is written only with `all`; until then it
/// waits for more rows. Each statement's values are bound while SQLite
/// runs the one before.
async fn insert<T>(
    conn: &mut SqliteConnection,
    head: &'static str,
    rows: &mut Vec<T>,
    all: bool,
    mut push: impl FnMut(Separated<'_, Sqlite, &'static str>, T),
) -> Result<(), Error> {
    let mut left = match all {
        true => rows.len(),
        false => rows.len() / BATCH_ROWS * BATCH_ROWS,
    };
    let mut taken = rows.drain(..left);
    let mut statement = |left: usize| {
        (left > 0).then(|| {
            let batch = left.min(BATCH_ROWS);
            let mut q = QueryBuilder::new(head);
            q.push_values(taken.by_ref().take(batch), &mut push);
            (q, batch)
        })
    };
    let mut next = statement(left);
    while let Some((mut q, batch)) = next.take() {
        left -= batch;
        let run = q
            .build()
            .persistent(batch == BATCH_ROWS)
            .execute(&mut *conn);
        let (ran, following) = tokio::join!(biased; run, async { statement(left) });
        ran?;
        next = following;
    }
    Ok(())
}

/// A changed group with stored rows: `contact_id`, old name, new name.
type Changed = (i64, String, String);

/// What pairing needs of the contacts, every name by [`name_key`]: the
/// ones a re-link linked (new name by the previous login's name), whose
/// member rows pair by the new name and never by how they look, and every
/// contact live after the write. Keys, not names: a re-link of a big
/// account holds these for every contact while it pairs, and the names
/// took four times the memory.
struct Contacts {
    new_name: HashMap<u128, u128>,
    linked: HashSet<u128>,
    /// `contact_id` by user name (`temp.live_contacts`).
    live: HashMap<u128, i64>,
}

impl Contacts {
    /// Reads them a row at a time, keeping only each name's key.
    async fn read(conn: &mut SqliteConnection) -> Result<Contacts, Error> {
        let mut contacts = Contacts {
            new_name: HashMap::new(),
            linked: HashSet::new(),
            live: HashMap::new(),
        };
        let mut pairs = sqlx::query_as::<_, (String, String)>(
            "SELECT old_user_name, user_name FROM temp.ident WHERE old_user_name IS NOT NULL",
        )
        .fetch(&mut *conn);
        while let Some((old, new)) = pairs.try_next().await? {
            let new = name_key(&new);
            contacts.new_name.insert(name_key(&old), new);
            contacts.linked.insert(new);
        }
        drop(pairs);
        let mut live = sqlx::query_as::<_, (String, i64)>(
            "SELECT user_name, contact_id FROM temp.live_contacts",
        )
        .fetch(&mut *conn);
        while let Some((name, contact_id)) = live.try_next().await? {
            contacts.live.insert(name_key(&name), contact_id);
        }
        Ok(contacts)
    }
}

/// Pairs the member rows of every changed group that has stored rows
/// ([`pair`]), into the TEMP tables named in the module docs. The groups go
/// in batches, in a pipeline: while one batch is paired on a blocking
/// thread, the stage's connection reads the next one's new lists and writes
/// what the batch before decided, and reads its stored rows too — unless a
/// `reader` is given, which reads them at the same time on a connection of
/// its own.
pub(super) async fn pair_members(
    conn: &mut SqliteConnection,
    reader: Option<&Reader>,
) -> Result<(), Error> {
    let groups: Vec<Changed> = sqlx::query_as(
        "SELECT contact_id, old_name, new_name FROM temp.changed_groups WHERE fresh = 0
         ORDER BY contact_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    if groups.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO temp.pair_groups (gid, name)
         SELECT contact_id, new_name FROM temp.changed_groups WHERE fresh = 0",
    )
    .execute(&mut *conn)
    .await?;
    let contacts = Arc::new(Contacts::read(conn).await?);
    let mut reader = match reader {
        Some(reader) => Some(reader.open().await?),
        None => None,
    };
    let mut decided = Decided::default();
    let mut pairing: Option<JoinHandle<Result<Decided, Error>>> = None;
    let mut batches = groups.chunks(GROUPS_AT_ONCE);
    loop {
        let next = match batches.next() {
            Some(batch) => Some((read(conn, reader.as_mut(), batch).await?, batch.to_vec())),
            None => None,
        };
        if let Some(paired) = pairing.take() {
            decided.append(joined(paired.await)?);
        }
        let Some(((stored, staged), batch)) = next else {
            break;
        };
        let contacts = Arc::clone(&contacts);
        pairing = Some(tokio::task::spawn_blocking(move || {
            decide(&stored, &staged, &batch, &contacts)
        }));
        if decided.len() >= FLUSH_ROWS {
            decided.flush(conn, false).await?;
        }
    }
    if let Some(reader) = reader {
        reader.close().await?;
    }
    decided.flush(conn, true).await
}

/// A blocking task's result; its panic goes on where it is awaited.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// One group's rows as [`STORED`] and [`STAGED`] give them: its
/// `contact_id`, and the rows as one JSON text.
type GroupRows = (i64, String);

/// Reads a batch of groups: their stored rows (by `reader`, at the same
/// time, if given) and their new lists (by `conn`).
async fn read(
    conn: &mut SqliteConnection,
    reader: Option<&mut SqliteConnection>,
    batch: &[Changed],
) -> Result<(Vec<GroupRows>, Vec<GroupRows>), Error> {
    let ids: Vec<i64> = batch.iter().map(|g| g.0).collect();
    let ids = serde_json::to_string(&ids).map_err(Error::Encode)?;
    let stored = sqlx::query_as(STORED).bind(ids);
    let staged = sqlx::query_as(STAGED)
        .bind(batch[0].0)
        .bind(batch[batch.len() - 1].0);
    Ok(match reader {
        Some(reader) => tokio::try_join!(stored.fetch_all(reader), staged.fetch_all(conn))?,
        None => (
            stored.fetch_all(&mut *conn).await?,
            staged.fetch_all(conn).await?,
        ),
    })
}

/// Pairs a batch of groups from what [`read`] read.
fn decide(
    stored: &[GroupRows],
    staged: &[GroupRows],
    batch: &[Changed],
    contacts: &Contacts,
) -> Result<Decided, Error> {
    let (stored, staged) = (by_group(stored), by_group(staged));
    let mut decided = Decided::default();
    for (contact_id, old_name, new_name) in batch {
        let renamed = old_name != new_name;
        let stored: Vec<Stored> = match stored.get(contact_id) {
            Some(text) => parse::<StoredRow>(text)?
                .into_iter()
                .map(|row| row.into_stored(renamed, contacts))
                .collect(),
            None => Vec::new(),
        };
        let mut staged: Vec<Listed> = match staged.get(contact_id) {
            Some(text) => parse(text)?,
            None => Vec::new(),
        };
        for s in &mut staged {
            s.key = name_key(&s.user_name);
            s.look = renamed && !contacts.linked.contains(&s.key);
        }
        let pairing = pair(&stored, &staged, renamed);
        decided.push(
            (*contact_id, new_name),
            (&stored, &staged),
            pairing,
            renamed,
            &contacts.live,
        );
    }
    Ok(decided)
}

/// Each group's JSON text, by `contact_id`.
fn by_group(rows: &[GroupRows]) -> HashMap<i64, &str> {
    rows.iter().map(|(g, text)| (*g, text.as_str())).collect()
}

/// The rows of one group's JSON text.
pub(super) fn parse<'a, R: Deserialize<'a>>(text: &'a str) -> Result<Vec<R>, Error> {
    serde_json::from_str(text).map_err(Error::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, name: &str, pairs_as: &str, nick: &str, display: &str) -> Stored<'static> {
        Stored {
            id,
            pairs_as: name_key(pairs_as),
            row: staged(name, nick, display, name == pairs_as),
        }
    }

    fn staged(name: &str, nick: &str, display: &str, look: bool) -> Listed<'static> {
        Listed {
            user_name: name.to_owned().into(),
            nick_name: nick.to_owned().into(),
            display_name: display.to_owned().into(),
            attr_status: 0,
            look,
            key: name_key(name),
        }
    }

    /// Without a new login: by name only; a row that did not change is
    /// left alone, one that did is rewritten, the rest leave and join.
    #[test]
    fn without_a_new_login_rows_pair_by_name() {
        let mut old = vec![
            stored(1, "@a", "@a", "Ann", ""),
            stored(2, "@b", "@b", "Bob", ""),
            stored(3, "@c", "@c", "Cat", ""),
        ];
        for row in &mut old {
            row.row.look = false;
        }
        let new = vec![
            staged("@a", "Ann", "", false),
            staged("@b", "Bob", "Bobby", false),
            staged("@d", "Cat", "", false),
        ];
        let pairing = pair(&old, &new, false);
        assert_eq!(
            pairing,
            Pairing {
                pairs: vec![(0, 0, true), (1, 1, false)],
                removed: vec![2],
                added: vec![2],
            }
        );
    }

    /// After a new login: a linked contact pairs by the name it was linked
    /// to; strangers who look alike pair up in name order, and only the
    /// surplus joins; one who changed a display name pairs by nick name,
    /// one who changed a nick name by display name.
    #[test]
    fn after_a_new_login_strangers_pair_by_how_they_look() {
        let mut linked = stored(1, "@old-friend", "@new-friend", "Friend", "");
        linked.row.look = false;
        let old = vec![
            linked,
            stored(2, "@x2", "@x2", "Lee", "Lee"),
            stored(3, "@x1", "@x1", "Lee", "Lee"),
            stored(4, "@y", "@y", "Max", "old display"),
            stored(5, "@z", "@z", "old nick", "Zed"),
            stored(6, "@gone", "@gone", "Gone", ""),
        ];
        let new = vec![
            staged("@new-friend", "Friend", "", false),
            staged("@n1", "Lee", "Lee", true),
            staged("@n2", "Lee", "Lee", true),
            staged("@n3", "Lee", "Lee", true),
            staged("@n4", "Max", "new display", true),
            staged("@n5", "new nick", "Zed", true),
        ];
        let pairing = pair(&old, &new, true);
        let mut pairs = pairing.pairs.clone();
        pairs.sort_unstable();
        // @x1 (3rd stored) is first by name, so it takes @n1; @x2 takes @n2.
        assert_eq!(
            pairs,
            vec![
                (0, 0, false),
                (1, 2, false),
                (2, 1, false),
                (3, 4, false),
                (4, 5, false)
            ]
        );
        assert_eq!(pairing.removed, vec![5]);
        assert_eq!(pairing.added, vec![3]);
    }

    /// A member who keeps their name across logins (a special account) in a
    /// group whose name changed is still rewritten: the group name differs.
    #[test]
    fn a_kept_name_in_a_renamed_group_is_rewritten() {
        let mut kept = stored(1, "weixin", "weixin", "WeChat", "");
        kept.row.look = false;
        let new = vec![staged("weixin", "WeChat", "", false)];
        let pairing = pair(&[kept], &new, true);
        assert_eq!(pairing.pairs, vec![(0, 0, false)]);
    }

    /// Two strangers with the same nick name and an empty display name are
    /// not told apart by either alone, and neither pairs with a newcomer.
    #[test]
    fn a_value_shared_or_empty_pairs_nobody() {
        let old = vec![
            stored(1, "@a", "@a", "Sam", "one"),
            stored(2, "@b", "@b", "Sam", "two"),
            stored(3, "@c", "@c", "Kim", ""),
        ];
        let new = vec![
            staged("@n1", "Sam", "three", true),
            staged("@n2", "Sam", "four", true),
            staged("@n3", "Jo", "", true),
        ];
        let pairing = pair(&old, &new, true);
        assert!(pairing.pairs.is_empty(), "{pairing:?}");
        assert_eq!(pairing.removed, vec![0, 1, 2]);
        assert_eq!(pairing.added, vec![0, 1, 2]);
    }
}
