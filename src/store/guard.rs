//! The deletion guard (docs/storage.md): a full sync that would delete a
//! large part of the cache is held back; the same deletion is applied by
//! itself only when it comes back on a scheduled sync at least
//! `sync.deletion_confirm` after it was first held, never on a retry; and an
//! answer that would leave the account with no friends and no groups is
//! never applied without `wxsync sync --force`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, SqliteConnection};
use xxhash_rust::xxh3::Xxh3;

use super::plan::FullSync;
use super::{Error, Store, now};

/// Rows below this many are never held back by their share: deleting 2 of
/// 5 contacts is ordinary.
const GUARD_FLOOR: i64 = 10;

/// The first run of the unbroken line of held runs with digest `?2` before
/// run `?1`: a successful run, or a run held with another digest, breaks
/// it; runs that failed before the guard (a network error) do not.
const FIRST_HELD: &str = "SELECT min(started_at) FROM main.sync_runs
     WHERE id < ?1 AND deletion_digest = ?2
       AND id > coalesce((SELECT max(id) FROM main.sync_runs
                          WHERE id < ?1 AND (status = 'ok'
                                OR (deletion_digest IS NOT NULL AND deletion_digest != ?2))), 0)";

/// A deletion the guard holds back.
pub(super) struct HeldDeletion {
    reason: String,
    digest: String,
    contacts: i64,
    memberships: i64,
    /// From when the same deletion on a scheduled sync is applied; `None`:
    /// only `--force` applies it.
    applies_from: Option<String>,
}

impl HeldDeletion {
    pub(super) fn into_error(self) -> Error {
        Error::Held {
            reason: self.reason,
        }
    }
}

/// Whether the deletion guard holds this result back: `deleted` contacts
/// marked deleted and `members_lost` membership rows dropped.
pub(super) async fn guard(
    conn: &mut SqliteConnection,
    full: &FullSync<'_>,
    deleted: i64,
    members_lost: i64,
) -> Result<Option<HeldDeletion>, Error> {
    if full.force || (deleted == 0 && members_lost == 0) {
        return Ok(None);
    }
    // `emptied`: the cache has friends or groups, and none would be left.
    let (live_contacts, stored_memberships, emptied): (i64, i64, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM main.contacts WHERE deleted_at IS NULL),
                (SELECT count(*) FROM main.memberships),
                EXISTS (SELECT 1 FROM main.contacts
                        WHERE deleted_at IS NULL AND kind IN ('friend', 'group'))
                AND NOT EXISTS (SELECT 1 FROM temp.stage_contacts
                                WHERE kind IN ('friend', 'group'))
                AND NOT EXISTS (SELECT 1 FROM main.contacts c
                                WHERE c.deleted_at IS NULL AND c.kind IN ('friend', 'group')
                                  AND c.contact_id NOT IN (SELECT contact_id FROM temp.d_gone)
                                  AND c.user_name NOT IN (SELECT user_name
                                                          FROM temp.stage_contacts))",
    )
    .fetch_one(&mut *conn)
    .await?;
    let share = |part: i64, whole: i64| {
        if part < GUARD_FLOOR || whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let large = share(deleted, live_contacts) > full.guard
        || share(members_lost, stored_memberships) > full.guard;
    if !emptied && !large {
        return Ok(None);
    }
    let gone: Vec<i64> = sqlx::query_scalar("SELECT contact_id FROM temp.d_gone ORDER BY 1")
        .fetch_all(&mut *conn)
        .await?;
    let mut h = Xxh3::new();
    for id in &gone {
        h.update(&id.to_le_bytes());
    }
    h.update(&members_lost.to_le_bytes());
    let digest = format!("{:032x}", h.digest128());
    let what = format!(
        "held back: this sync would mark {deleted} of {live_contacts} contacts deleted and drop \
         {members_lost} of {stored_memberships} group memberships"
    );
    let held = |reason: String, applies_from: Option<String>| HeldDeletion {
        reason,
        digest: digest.clone(),
        contacts: deleted,
        memberships: members_lost,
        applies_from,
    };
    if emptied {
        let reason = format!(
            "{what}, leaving the account with no friends and no groups; the cache is unchanged. \
             Such an answer is never applied by itself: `wxsync sync --force` applies it"
        );
        return Ok(Some(held(reason, None)));
    }
    let first: Option<String> = sqlx::query_scalar(FIRST_HELD)
        .bind(full.run_id)
        .bind(&digest)
        .fetch_one(&mut *conn)
        .await?;
    let first_at = first
        .as_deref()
        .and_then(parse_time)
        .unwrap_or_else(Utc::now);
    let applies_at = chrono::Duration::from_std(full.confirm)
        .ok()
        .and_then(|c| first_at.checked_add_signed(c))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if first.is_some() && !full.retry && Utc::now() >= applies_at {
        tracing::warn!(
            deleted,
            members = members_lost,
            first_held = first.as_deref().unwrap_or_default(),
            "the same large deletion came back on a scheduled sync after `sync.deletion_confirm`; \
             applying it"
        );
        return Ok(None);
    }
    let applies_from = applies_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let reason = format!(
        "{what}, more than the {:.0} % `sync.deletion_guard` allows; the cache is unchanged. \
         A scheduled sync from {applies_from} on that gets the same answer applies it \
         (`sync.deletion_confirm`); `wxsync sync --force` applies it now",
        full.guard * 100.0
    );
    Ok(Some(held(reason, Some(applies_from))))
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Closes the run as held: `failed`, with the reason and what it would
/// have deleted.
pub(super) async fn record_held(
    conn: &mut SqliteConnection,
    run_id: i64,
    held: &HeldDeletion,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE main.sync_runs SET status = 'failed', finished_at = ?1, error = ?2,
             deletion_digest = ?3, deletion_contacts = ?4, deletion_memberships = ?5,
             deletion_applies_from = ?6
         WHERE id = ?7",
    )
    .bind(now())
    .bind(&held.reason)
    .bind(&held.digest)
    .bind(held.contacts)
    .bind(held.memberships)
    .bind(&held.applies_from)
    .bind(run_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A deletion the guard holds back and that no later sync has settled: the
/// newest full sync that reached the guard was held.
#[derive(Clone, Debug, FromRow, Serialize, PartialEq, Eq)]
pub struct WaitingDeletion {
    /// The newest run that held it.
    pub run_id: i64,
    /// When the first run of that line of held runs began.
    pub since: String,
    pub contacts: i64,
    pub memberships: i64,
    /// From when a scheduled sync that gets the same answer applies it;
    /// `None`: only `wxsync sync --force` does.
    pub applies_from: Option<String>,
    /// The held run's reason, in words.
    pub reason: String,
}

impl Store {
    /// The deletion waiting behind the guard, if any, for `wxsync status`
    /// and monitoring.
    pub async fn waiting_deletion(&self) -> Result<Option<WaitingDeletion>, Error> {
        let mut conn = self.pool.acquire().await?;
        let newest: Option<(i64, Option<String>, String)> = sqlx::query_as(
            "SELECT id, deletion_digest, started_at FROM sync_runs
             WHERE status = 'ok' OR deletion_digest IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await?;
        let Some((run_id, Some(digest), started_at)) = newest else {
            return Ok(None);
        };
        let first: Option<String> = sqlx::query_scalar(FIRST_HELD)
            .bind(run_id)
            .bind(&digest)
            .fetch_one(&mut *conn)
            .await?;
        Ok(sqlx::query_as(
            "SELECT id AS run_id, ?2 AS since, coalesce(deletion_contacts, 0) AS contacts,
                    coalesce(deletion_memberships, 0) AS memberships,
                    deletion_applies_from AS applies_from, coalesce(error, '') AS reason
             FROM sync_runs WHERE id = ?1",
        )
        .bind(run_id)
        .bind(first.unwrap_or(started_at))
        .fetch_optional(&mut *conn)
        .await?)
    }
}
