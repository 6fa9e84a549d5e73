//! Preparing and applying a stage (docs/storage.md, steps 2 and 3).
//!
//! `prepare` computes, into TEMP tables and under a read snapshot, exactly
//! which rows to insert, update, mark deleted and rename, which membership
//! rows to add and remove, and the history rows that describe it all.
//! `apply` copies that into the cache with set-wise statements. Both are
//! plain SQL over the stage's connection, so nothing scales with the account
//! in memory.

use std::time::Instant;

use sqlx::{Connection, SqliteConnection};

use super::guard::{guard, record_held};
use super::plan::{FullSync, Plan};
use super::stage::{Reader, Stage};
use super::{ApplyCounts, Error, now};
use super::{columns, pairing};

/// Prepare, in order. `?1` is the full sync's fetch start (frozen rows).
const PREPARE_IDENTITY: &[&str] = &[
    "DELETE FROM temp.ident",
    "DELETE FROM temp.frozen",
    "DELETE FROM temp.d_new",
    "DELETE FROM temp.changed_contacts",
    "DELETE FROM temp.d_gone",
    "DELETE FROM temp.changed_groups",
    "DELETE FROM temp.members_to_remove",
    "DELETE FROM temp.member_pairs",
    "DELETE FROM temp.pair_groups",
    "DELETE FROM temp.members_to_write",
    "DELETE FROM temp.d_changes",
    "DELETE FROM temp.member_ids",
    // A staged name already cached is that contact; a re-link names the
    // cached row of a previous login.
    "INSERT INTO temp.ident (user_name, contact_id, old_user_name)
     SELECT s.user_name, coalesce(c.contact_id, l.contact_id),
            CASE WHEN c.contact_id IS NULL THEN o.user_name END
     FROM temp.stage_contacts s
     LEFT JOIN main.contacts c ON c.user_name = s.user_name
     LEFT JOIN temp.links l ON l.new_name = s.user_name
     LEFT JOIN main.contacts o ON o.contact_id = l.contact_id",
    "INSERT INTO temp.ident (user_name, contact_id)
     SELECT p.user_name, c.contact_id
     FROM temp.stage_present p JOIN main.contacts c ON c.user_name = p.user_name",
    // Everything else is new, numbered from the never-reused counter.
    "UPDATE temp.ident SET contact_id = n.id, fresh = 1
     FROM (SELECT user_name,
                  (SELECT next_contact_id FROM main.identity)
                      + row_number() OVER (ORDER BY user_name) - 1 AS id
           FROM temp.ident WHERE contact_id IS NULL) n
     WHERE ident.user_name = n.user_name",
    "INSERT INTO temp.d_new SELECT contact_id, user_name FROM temp.ident WHERE fresh = 1",
];

/// Full syncs only: what another source changed since fetching began. A
/// new avatar image touches no column a sync writes, so it freezes nothing.
const PREPARE_FROZEN: &str = "INSERT OR IGNORE INTO temp.frozen
     SELECT contact_id FROM main.contact_changes
     WHERE at >= ?1 AND source NOT IN ('full_sync', 'avatar')";

/// Full syncs: every live contact the server no longer lists.
const PREPARE_GONE_FULL: &str = "INSERT INTO temp.d_gone
     SELECT c.contact_id, c.user_name, c.kind = 'group' FROM main.contacts c
     WHERE c.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM temp.ident i WHERE i.contact_id = c.contact_id)
       AND c.contact_id NOT IN (SELECT contact_id FROM temp.frozen)";

/// Partial writes: what `DelContactList` named.
const PREPARE_GONE_PARTIAL: &str = "INSERT OR IGNORE INTO temp.d_gone
     SELECT c.contact_id, c.user_name, c.kind = 'group'
     FROM temp.stage_deleted d JOIN main.contacts c ON c.user_name = d.user_name
     WHERE c.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM temp.ident i WHERE i.contact_id = c.contact_id)";

const PREPARE_GROUPS: &str = "INSERT INTO temp.changed_groups
     SELECT g.group_user_name, coalesce(i.old_user_name, g.group_user_name), i.contact_id,
            i.fresh OR NOT EXISTS (SELECT 1 FROM main.memberships m
                                   WHERE m.group_contact_id = i.contact_id)
     FROM temp.stage_groups g JOIN temp.ident i ON i.user_name = g.group_user_name
     WHERE g.staged = 1
       AND (i.old_user_name IS NOT NULL OR i.contact_id NOT IN (SELECT contact_id FROM temp.frozen))";

/// The history of the member rows [`pairing`] decided: a new member
/// without a stored partner `joined`, a stored row without a new one `left`
/// — whether the row is added and removed or, after a new login, one
/// rewritten as the other (`replaced`). Not sorted: at 4× the bench's
/// account a sort of the rows kept 7 MB more resident until the end.
const PREPARE_MEMBERS_HISTORY: &[&str] = &[
    "INSERT INTO temp.d_changes (contact_id, user_name, change, old_value, new_value)
     SELECT gm.contact_id, gm.new_name, 'joined', d.m,
            coalesce(nullif(d.display_name, ''), d.nick_name)
     FROM temp.members_to_write d CROSS JOIN temp.changed_groups gm ON gm.new_name = d.g
     UNION ALL
     SELECT gm.contact_id, gm.new_name, 'joined', p.m,
            coalesce(nullif(p.display_name, ''), p.nick_name)
     FROM temp.member_pairs p CROSS JOIN temp.changed_groups gm ON gm.contact_id = p.gid
     WHERE p.replaced",
    "INSERT INTO temp.d_changes (contact_id, user_name, change, old_value, new_value)
     SELECT gm.contact_id, gm.new_name, 'left', m.member_user_name,
            coalesce(nullif(m.display_name, ''), m.nick_name)
     FROM (SELECT id FROM temp.members_to_remove
           UNION ALL
           SELECT id FROM temp.member_pairs WHERE replaced) d
     CROSS JOIN main.memberships m ON m.rowid = d.id
     CROSS JOIN temp.changed_groups gm ON gm.contact_id = m.group_contact_id",
];

/// After a re-link, the stored rows of every other group follow a
/// re-linked group or member to its new name: the groups with stored rows
/// (one seek each) that are neither described with a changed list nor gone,
/// each with the name its group's contact will have (`pair_groups`), then
/// their rows.
const PREPARE_MEMBERS_OTHER_GROUPS: &[&str] = &[
    concat!(
        stored_groups!(),
        " INSERT INTO temp.pair_groups (gid, name)
         SELECT stored.g, coalesce(ig.user_name, c.user_name)
         FROM stored CROSS JOIN main.contacts c ON c.contact_id = stored.g
         LEFT JOIN temp.ident ig ON ig.old_user_name = c.user_name
         WHERE stored.g NOT IN (SELECT gid FROM temp.pair_groups)
           AND stored.g NOT IN (SELECT contact_id FROM temp.d_gone WHERE is_group)"
    ),
    OTHER_GROUPS_ROWS,
];
const OTHER_GROUPS_ROWS: &str = concat!(
    stored_groups!(),
    " INSERT INTO temp.member_pairs (id, gid, m, nick_name, display_name, attr_status, contact_id)
     SELECT m.rowid, m.group_contact_id,
            coalesce(im.user_name, m.member_user_name), m.nick_name, m.display_name,
            m.attr_status, l.contact_id
     FROM stored CROSS JOIN main.memberships m ON m.group_contact_id = stored.g
     LEFT JOIN temp.ident ig ON ig.old_user_name = m.group_user_name
     LEFT JOIN temp.ident im ON im.old_user_name = m.member_user_name
     LEFT JOIN temp.live_contacts l ON l.user_name = coalesce(im.user_name, m.member_user_name)
     WHERE stored.g IS NOT NULL
       AND stored.g NOT IN (SELECT contact_id FROM temp.changed_groups WHERE fresh = 0)
       AND stored.g NOT IN (SELECT contact_id FROM temp.d_gone WHERE is_group)
       AND (ig.user_name IS NOT NULL OR im.user_name IS NOT NULL)"
);

/// The history rows of contacts (members: [`PREPARE_MEMBERS_HISTORY`]); `source`
/// NULL means the commit's own source.
const PREPARE_HISTORY: &[&str] = &[
    "INSERT INTO temp.d_changes (contact_id, user_name, source, change, old_value, new_value)
     SELECT i.contact_id, i.user_name, 'login', 'relinked', i.old_user_name, i.user_name
     FROM temp.ident i WHERE i.old_user_name IS NOT NULL",
    "INSERT INTO temp.d_changes (contact_id, user_name, change, new_value)
     SELECT d.contact_id, d.user_name, 'added', s.nick_name
     FROM temp.d_new d JOIN temp.stage_contacts s ON s.user_name = d.user_name",
    "INSERT INTO temp.d_changes (contact_id, user_name, change)
     SELECT contact_id, user_name, 'restored' FROM temp.changed_contacts WHERE restored",
];

/// After the `updated` rows ([`columns::Sql::updated_history`]).
const PREPARE_REMOVED: &str =
    "INSERT INTO temp.d_changes (contact_id, user_name, change, old_value)
     SELECT g.contact_id, g.user_name, 'removed', c.nick_name
     FROM temp.d_gone g JOIN main.contacts c ON c.contact_id = g.contact_id";

/// Re-links, applied first: queued remark edits and digests follow their
/// contact to its new name (the contact row itself is renamed by
/// [`columns::Sql::update`], member rows by `member_pairs` in [`APPLY`]).
const APPLY_RELINKS: &[&str] = &[
    "UPDATE main.pending_ops SET user_name = i.user_name
     FROM temp.ident i WHERE pending_ops.status = 'pending' AND pending_ops.user_name = i.old_user_name",
    "DELETE FROM main.membership_digests
     WHERE group_user_name IN (SELECT old_user_name FROM temp.ident WHERE old_user_name IS NOT NULL)",
];

/// Inserts member rows, each with its group's `contact_id` and its
/// `member_contact_id` (from [`APPLY_LIVE_CONTACTS`]).
macro_rules! insert_members {
    ($select:literal) => {
        concat!(
            "INSERT INTO main.memberships (group_user_name, member_user_name, nick_name,
                 display_name, attr_status, member_contact_id, group_contact_id) ",
            $select
        )
    };
}

/// Apply, in order, inside `BEGIN IMMEDIATE`, after the contacts' inserts
/// and updates ([`columns::Sql::insert`], [`columns::Sql::update`]): the
/// contacts gone and the member rows removed. `?1` is now.
const APPLY_REMOVALS: &[&str] = &[
    "UPDATE main.contacts SET deleted_at = ?1, updated_at = ?1
     WHERE contact_id IN (SELECT contact_id FROM temp.d_gone)",
    "DELETE FROM main.memberships
     WHERE group_contact_id IN (SELECT contact_id FROM temp.d_gone WHERE is_group)",
    "DELETE FROM main.membership_digests
     WHERE group_user_name IN (SELECT user_name FROM temp.d_gone WHERE is_group)",
    "DELETE FROM main.memberships WHERE rowid IN (SELECT id FROM temp.members_to_remove)",
];

/// When member rows may be written or set: who will be a live contact once
/// the write has applied the contacts, by the name they will have — a contact
/// this write describes unless it stays deleted (neither new nor changed:
/// another source deleted it meanwhile), and every other live contact it
/// does not mark deleted.
const PREPARE_LIVE_CONTACTS: &[&str] = &[
    "DELETE FROM temp.live_contacts",
    "INSERT INTO temp.live_contacts
     SELECT i.user_name, i.contact_id FROM temp.ident i
     WHERE i.fresh = 1
        OR i.contact_id IN (SELECT contact_id FROM temp.changed_contacts)
        OR EXISTS (SELECT 1 FROM main.contacts c
                   WHERE c.contact_id = i.contact_id AND c.deleted_at IS NULL)
     UNION ALL
     SELECT c.user_name, c.contact_id FROM main.contacts c
     WHERE c.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM temp.ident i WHERE i.contact_id = c.contact_id)
       AND c.contact_id NOT IN (SELECT contact_id FROM temp.d_gone)",
];

/// When contacts were added, marked deleted or restored: the stored member
/// rows of those names follow, with the `contact_id` their name has after
/// the write (from `live_contacts`; NULL once gone). Found in the prepare (`memberships` has no
/// index by member, so this scans it, outside the lock), and only then —
/// but for the rows the write rewrites, which take their value as they are
/// rewritten, and the rows it removes, so no row is written twice. `$rows`
/// are the member rows `m` to look through.
macro_rules! member_ids {
    ($rows:literal) => {
        concat!(
            "INSERT INTO temp.member_ids (id, contact_id)
             SELECT m.rowid, l.contact_id
             FROM ",
            $rows,
            " LEFT JOIN temp.live_contacts l ON l.user_name = m.member_user_name
             WHERE m.member_user_name IN (SELECT user_name FROM temp.d_new
                                          UNION SELECT user_name FROM temp.d_gone
                                          UNION SELECT user_name FROM temp.changed_contacts
                                                WHERE restored)
               AND NOT EXISTS (SELECT 1 FROM temp.member_pairs p WHERE p.id = m.rowid)
               AND NOT EXISTS (SELECT 1 FROM temp.members_to_remove r WHERE r.id = m.rowid)
               AND m.group_contact_id NOT IN (SELECT contact_id FROM temp.d_gone WHERE is_group)"
        )
    };
}
const PREPARE_MEMBER_CONTACT_IDS: &str = member_ids!("main.memberships m");

/// The same after a re-link, which rewrites or removes every row of a
/// renamed group it paired: only the other groups' rows are looked
/// through, found by group (one seek each).
const PREPARE_MEMBER_CONTACT_IDS_RELINKED: &str = concat!(
    stored_groups!(),
    ", other (g) AS (
         SELECT g FROM stored
         WHERE g NOT IN (SELECT contact_id FROM temp.changed_groups
                         WHERE fresh = 0 AND old_name != new_name)) ",
    member_ids!("other CROSS JOIN main.memberships m ON m.group_contact_id = other.g")
);

/// Under the lock: the rows [`PREPARE_MEMBER_CONTACT_IDS`] found, by rowid
/// (`+u.id`: see [`APPLY`]'s first statement).
const APPLY_MEMBER_CONTACT_IDS: &str =
    "UPDATE main.memberships SET member_contact_id = u.contact_id
     FROM temp.member_ids u WHERE memberships.rowid = +u.id";

/// The rest, in order. `?1` is now, `?2` the source, `?3` the login a
/// partial write claims (or NULL).
const APPLY: &[&str] = &[
    // The paired rows that differ, rewritten in place, before the rows to
    // add: `member_pairs` is read in rowid order (the stored rows' order),
    // and each row it names is sought and rewritten once. No key moves: a
    // new login renames no rowid. `+r.id` keeps SQLite from the other
    // order, which it picks without statistics: every row of
    // `memberships` walked and looked up in `member_pairs` (at 1× the 1 %
    // sync's rewrite took 41 ms that way instead of 21, the re-link's
    // 217 ms instead of 184).
    "UPDATE main.memberships
     SET group_user_name = coalesce(pg.name, memberships.group_user_name),
         member_user_name = r.m, nick_name = r.nick_name,
         display_name = r.display_name, attr_status = r.attr_status,
         member_contact_id = r.contact_id
     FROM temp.member_pairs r LEFT JOIN temp.pair_groups pg ON pg.gid = r.gid
     WHERE memberships.rowid = +r.id",
    insert_members!(
        "SELECT d.g, d.m, d.nick_name, d.display_name, d.attr_status, l.contact_id, gm.contact_id
         FROM temp.members_to_write d CROSS JOIN temp.changed_groups gm ON gm.new_name = d.g
         LEFT JOIN temp.live_contacts l ON l.user_name = d.m"
    ),
    // The member lists of groups with no stored rows, inserted as they are.
    insert_members!(
        "SELECT s.group_user_name, s.member_user_name, s.nick_name, s.display_name,
                s.attr_status, l.contact_id, gm.contact_id
         FROM temp.changed_groups gm CROSS JOIN temp.stage_members s ON s.group_user_name = gm.new_name
         LEFT JOIN temp.live_contacts l ON l.user_name = s.member_user_name
         WHERE gm.fresh = 1"
    ),
    "INSERT OR REPLACE INTO main.membership_digests
     SELECT g.group_user_name, g.digest
     FROM temp.stage_groups g JOIN temp.changed_groups gm ON gm.new_name = g.group_user_name",
    "INSERT INTO main.contact_changes (at, contact_id, user_name, source, change, field,
         old_value, new_value)
     SELECT ?1, contact_id, user_name, coalesce(source, ?2), change, field, old_value, new_value
     FROM temp.d_changes ORDER BY seq",
    "UPDATE main.identity SET next_contact_id = next_contact_id + (SELECT count(*) FROM temp.d_new)",
    "UPDATE main.identity SET login_id = ?3, linked_at = ?1 WHERE ?3 IS NOT NULL",
    "UPDATE main.contacts SET real_id = r.real_id
     FROM main.real_ids r
     WHERE contacts.user_name = r.user_name AND contacts.real_id IS NOT r.real_id",
];

/// Counts of a prepared write, read before it is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
struct Prepared {
    inserted: i64,
    updated: i64,
    /// Of those updated, the rows marked deleted until now.
    restored: i64,
    deleted: i64,
    relinked: i64,
    /// Member rows of changed groups to remove.
    member_rows_deleted: i64,
    /// Stored member rows rewritten in place (new names after a re-link,
    /// or new data).
    member_rows_rewritten: i64,
    /// The member rows of groups that are gone.
    gone_member_rows: i64,
    /// New member rows of groups with stored rows.
    member_rows_added: i64,
    fresh_member_rows: i64,
    /// Members who left (not rows merely renamed by a new login).
    members_left: i64,
    /// Stored member rows whose `member_contact_id` changes alone.
    member_ids: i64,
}

impl Prepared {
    /// What the guard weighs: members who left, and the rows of groups gone.
    fn members_lost(&self) -> i64 {
        self.members_left + self.gone_member_rows
    }

    fn memberships_changed(&self) -> i64 {
        self.member_rows_deleted
            + self.member_rows_rewritten
            + self.gone_member_rows
            + self.member_rows_added
            + self.fresh_member_rows
    }
}

impl Stage {
    /// Prepares and applies the stage; see the module docs. A full sync whose
    /// result the deletion guard holds back records its run `failed` and
    /// returns [`Error::Held`], writing nothing else.
    #[tracing::instrument(
        name = "stage_commit",
        level = "debug",
        skip_all,
        fields(source = plan.source.as_str())
    )]
    pub async fn commit(mut self, plan: Plan<'_>) -> Result<ApplyCounts, Error> {
        self.flush_groups().await?;
        let conn = &mut self.conn;
        let version = data_version(conn).await?;
        let mut snapshot = conn.begin().await?;
        let mut prepared = prepare(&mut snapshot, &self.reader, &plan).await?;
        snapshot.commit().await?;
        let held = match &plan.full {
            Some(full) => guard(conn, full, prepared.deleted, prepared.members_lost()).await?,
            None => None,
        };
        if let (Some(held), Some(full)) = (held, &plan.full) {
            record_held(conn, full.run_id, &held).await?;
            return Err(held.into_error());
        }

        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let locked = Instant::now();
        if data_version(&mut tx).await? != version {
            // Someone committed since the snapshot: prepare again, now
            // that nobody else can.
            prepared = prepare(&mut tx, &self.reader, &plan).await?;
            if let Some(full) = &plan.full
                && let Some(held) =
                    guard(&mut tx, full, prepared.deleted, prepared.members_lost()).await?
            {
                tx.rollback().await?;
                record_held(conn, full.run_id, &held).await?;
                return Err(held.into_error());
            }
        }
        let now = now();
        let relinks = match prepared.relinked {
            0 => &[][..],
            _ => APPLY_RELINKS,
        };
        let contacts = [columns::sql().insert.as_str(), &columns::sql().update];
        let mut member_ids_set = 0;
        for sql in relinks.iter().chain(&contacts).chain(APPLY_REMOVALS) {
            apply(&mut tx, sql, &now, &plan).await?;
        }
        if prepared.member_ids > 0 {
            member_ids_set = apply(&mut tx, APPLY_MEMBER_CONTACT_IDS, &now, &plan).await?;
        }
        for sql in APPLY {
            apply(&mut tx, sql, &now, &plan).await?;
        }
        let counts = ApplyCounts {
            inserted: prepared.inserted as u64,
            updated: prepared.updated as u64,
            deleted: prepared.deleted as u64,
            relinked: prepared.relinked as u64,
            memberships_changed: prepared.memberships_changed() as u64 + member_ids_set,
            write_lock_ms: 0,
        };
        if let Some(full) = &plan.full {
            finish_full(&mut tx, full, &counts, &now).await?;
        }
        tx.commit().await?;
        let write_lock_ms = u64::try_from(locked.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(full) = &plan.full {
            // A full sync's write can be tens of megabytes of WAL; it is
            // copied back now, outside the lock. (What readers are in the
            // way of, the next checkpoint finishes; small writes leave it
            // to SQLite's usual threshold on the other connections.)
            sqlx::query("PRAGMA main.wal_checkpoint(PASSIVE)")
                .execute(&mut *conn)
                .await?;
            // The sync is written: a lock held elsewhere delays this
            // bookkeeping, it must not turn the run into a failure.
            super::runs::patiently("the write lock time", || {
                sqlx::query("UPDATE sync_runs SET write_lock_ms = ?1 WHERE id = ?2")
                    .bind(write_lock_ms as i64)
                    .bind(full.run_id)
                    .execute(&self.pool)
            })
            .await?;
        }
        tracing::debug!(
            write_lock_ms,
            source = plan.source.as_str(),
            "cache written"
        );
        // Closed here, not dropped: a dropped connection is closed later on
        // its own thread, and what its page cache held would be freed after
        // the daemon has given the sync's memory back (docs/storage.md). The
        // cache is written: a failed close changes nothing of it.
        let _ = self.conn.close().await;
        Ok(ApplyCounts {
            write_lock_ms,
            ..counts
        })
    }
}

/// Runs one apply statement (binding now, the source and the claimed login;
/// see [`APPLY`]); returns the rows it changed.
async fn apply(
    tx: &mut SqliteConnection,
    sql: &'static str,
    now: &str,
    plan: &Plan<'_>,
) -> Result<u64, Error> {
    Ok(sqlx::query(sql)
        .bind(now)
        .bind(plan.source.as_str())
        .bind(plan.claim_login)
        .execute(tx)
        .await?
        .rows_affected())
}

/// The page cache of `main` once a prepare compares stored member lists:
/// room for a heavy account's (12 MB for 150,000 rows). Until then it is
/// SQLite's 2 MB default, which a first sync (no stored lists) keeps.
const MEMBERS_CACHE: &str = "PRAGMA main.cache_size = -16384";

async fn data_version(conn: &mut SqliteConnection) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("PRAGMA main.data_version")
        .fetch_one(conn)
        .await?)
}

async fn prepare(
    conn: &mut SqliteConnection,
    reader: &Reader,
    plan: &Plan<'_>,
) -> Result<Prepared, Error> {
    let fetch_started = plan.full.as_ref().map(|f| f.fetch_started);
    for sql in PREPARE_IDENTITY {
        sqlx::query(*sql).execute(&mut *conn).await?;
    }
    if let Some(started) = fetch_started {
        sqlx::query(PREPARE_FROZEN)
            .bind(started)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(columns::sql().prepare_updated.as_str())
        .execute(&mut *conn)
        .await?;
    // An incomplete full sync marks nothing deleted (RunStats::complete).
    let gone = match &plan.full {
        Some(full) if full.stats.complete() => Some(PREPARE_GONE_FULL),
        Some(_) => None,
        None => Some(PREPARE_GONE_PARTIAL),
    };
    if let Some(gone) = gone {
        sqlx::query(gone).execute(&mut *conn).await?;
    }
    sqlx::query(PREPARE_GROUPS).execute(&mut *conn).await?;
    let relinked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM temp.ident WHERE old_user_name IS NOT NULL)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let updated = columns::sql().updated_history.as_str();
    for sql in PREPARE_HISTORY.iter().copied().chain([updated]) {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    sqlx::query(PREPARE_REMOVED).execute(&mut *conn).await?;
    let (any_groups, changed_groups, came_or_went): (bool, bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM temp.changed_groups),
                EXISTS (SELECT 1 FROM temp.changed_groups WHERE fresh = 0),
                EXISTS (SELECT 1 FROM temp.d_new) OR EXISTS (SELECT 1 FROM temp.d_gone)
                  OR EXISTS (SELECT 1 FROM temp.changed_contacts WHERE restored)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if any_groups || relinked || came_or_went {
        for sql in PREPARE_LIVE_CONTACTS {
            sqlx::query(*sql).execute(&mut *conn).await?;
        }
    }
    if changed_groups && !relinked {
        // Room for the changed groups' stored members read below, so the
        // write under the lock finds them in memory. Not after a re-link:
        // it reads and rewrites every member row, so the cache would fill
        // up to its size and add that much to the re-link's peak.
        sqlx::query(MEMBERS_CACHE).execute(&mut *conn).await?;
    }
    // After a re-link every stored member row is read and rewritten: a
    // second connection reads them beside the stage's. Otherwise the
    // stage's reads them, and its page cache keeps them for the write.
    let reader = match relinked {
        true => Some(reader),
        false => None,
    };
    pairing::pair_members(&mut *conn, reader).await?;
    // What a re-link's pairing freed goes back: at 4× the bench's account
    // the SQL below and the write under the lock otherwise ran on top of
    // it. Not after every commit: this prepare also runs for each
    // increment, and again under the lock when another commit came first.
    if relinked {
        crate::memory::give_back();
    }
    let other_groups = match relinked {
        true => PREPARE_MEMBERS_OTHER_GROUPS,
        false => &[],
    };
    for sql in PREPARE_MEMBERS_HISTORY.iter().chain(other_groups).copied() {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    if came_or_went {
        let sql = match relinked {
            true => PREPARE_MEMBER_CONTACT_IDS_RELINKED,
            false => PREPARE_MEMBER_CONTACT_IDS,
        };
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(sqlx::query_as::<_, Prepared>(
        "SELECT (SELECT count(*) FROM temp.d_new) AS inserted,
                (SELECT count(*) FROM temp.changed_contacts) AS updated,
                (SELECT count(*) FROM temp.changed_contacts WHERE restored) AS restored,
                (SELECT count(*) FROM temp.d_gone) AS deleted,
                (SELECT count(*) FROM temp.ident WHERE old_user_name IS NOT NULL) AS relinked,
                (SELECT count(*) FROM temp.members_to_remove) AS member_rows_deleted,
                (SELECT count(*) FROM temp.member_pairs) AS member_rows_rewritten,
                (SELECT count(*) FROM main.memberships
                 WHERE group_contact_id IN (SELECT contact_id FROM temp.d_gone WHERE is_group))
                  AS gone_member_rows,
                (SELECT count(*) FROM temp.members_to_write) AS member_rows_added,
                (SELECT count(*) FROM temp.changed_groups gm CROSS JOIN temp.stage_members s
                 ON s.group_user_name = gm.new_name WHERE gm.fresh = 1)
                  AS fresh_member_rows,
                (SELECT count(*) FROM temp.d_changes WHERE change = 'left') AS members_left,
                (SELECT count(*) FROM temp.member_ids) AS member_ids",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// The parts of a full sync's write that only it does: the login the cache
/// now names, the candidates a re-link left, the run row.
async fn finish_full(
    tx: &mut SqliteConnection,
    full: &FullSync<'_>,
    counts: &ApplyCounts,
    now: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE main.identity SET login_id = ?1, linked_at = ?2
         WHERE login_id IS NOT ?1",
    )
    .bind(full.login_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if counts.relinked > 0 || full.unlinked > 0 {
        // Real ids of a previous login's names are of no further use.
        sqlx::query(
            "DELETE FROM main.real_ids
             WHERE user_name NOT IN (SELECT user_name FROM temp.stage_contacts)",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM main.identity_candidates")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO main.identity_candidates
             SELECT c.old_contact_id, i.contact_id, c.score, c.evidence, ?1
             FROM temp.candidates c JOIN temp.ident i ON i.user_name = c.new_name",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let stats = full.stats;
    sqlx::query(
        "UPDATE main.sync_runs SET status = 'ok', finished_at = ?1, contacts = ?2, groups = ?3,
             memberships = ?4, inserted = ?5, updated = ?6, deleted = ?7,
             member_count_mismatches = ?8, notes = ?9, relinked = ?10, unlinked = ?11,
             memberships_changed = ?12
         WHERE id = ?13",
    )
    .bind(now)
    .bind(stats.contacts as i64)
    .bind(stats.groups as i64)
    .bind(stats.memberships as i64)
    .bind(counts.inserted as i64)
    .bind(counts.updated as i64)
    .bind(counts.deleted as i64)
    .bind(stats.member_count_mismatches as i64)
    .bind(&stats.notes)
    .bind(counts.relinked as i64)
    .bind(full.unlinked as i64)
    .bind(counts.memberships_changed as i64)
    .bind(full.run_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::{Connection, SqliteConnection};

    use super::*;
    use crate::contact::{Contact, Kind};
    use crate::store::stage::Source;
    use crate::store::{RunStats, Store};

    fn friend(remark: &str) -> Contact {
        Contact {
            user_name: "@friend".into(),
            kind: Kind::Friend,
            nick_name: "Friend".into(),
            remark_name: remark.into(),
            alias: String::new(),
            signature: String::new(),
            province: String::new(),
            city: String::new(),
            head_img_url: String::new(),
            sex: 0,
            verify_flag: 0,
            contact_flag: 3,
            star_friend: 0,
            member_count: 0,
            encry_chat_room_id: String::new(),
            raw: "{}".into(),
        }
    }

    /// A full sync prepares its write, then waits for the lock a user's
    /// connection holds; that connection commits a newer remark (as an
    /// increment would). The sync must prepare again under the lock and
    /// keep the newer remark, not apply the plan it made before.
    #[tokio::test]
    async fn a_commit_between_prepare_and_write_is_seen_by_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = Store::open(&path).await.unwrap();
        let mut stage = store.stage().await.unwrap();
        stage.contacts(&[friend("old")]).await.unwrap();
        let partial = Plan {
            source: Source::Increment,
            full: None,
            claim_login: Some("login"),
        };
        stage.commit(partial).await.unwrap();

        let fetch_started = now();
        let run_id = store.start_run().await.unwrap();
        let mut stage = store.stage().await.unwrap();
        stage.contacts(&[friend("from the sync")]).await.unwrap();
        let mut user = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let mut held = user.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let stats = RunStats::default();
        let sync = tokio::spawn(async move {
            stage
                .commit(Plan::full_sync_for_test(run_id, &fetch_started, &stats))
                .await
        });
        // Time for the sync to prepare (milliseconds) and block on the held
        // lock. Were it slower, it would prepare after the commit below and
        // the assertion would still hold, through the plain path.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for sql in [
            "UPDATE contacts SET remark_name = 'newer' WHERE user_name = '@friend'",
            "INSERT INTO contact_changes (at, contact_id, user_name, source, change, field, \
             old_value, new_value) SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), contact_id, \
             user_name, 'increment', 'updated', 'remark_name', 'old', 'newer' FROM contacts",
        ] {
            sqlx::query(sql).execute(&mut *held).await.unwrap();
        }
        held.commit().await.unwrap();
        sync.await.unwrap().unwrap();

        let remark: String =
            sqlx::query_scalar("SELECT remark_name FROM contacts WHERE user_name = '@friend'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(remark, "newer");
    }
}
