//! One full sync: fetch the whole address book, merge, classify, and write it
//! in one transaction — or, if any call fails, write nothing but the failed
//! `sync_runs` row.
//!
//! The contact set is webwxinit's `ContactList` ∪ every `webwxgetcontact`
//! page ∪ the groups in `ChatSet` (and any the caller learned elsewhere);
//! every group's member list comes from `webwxbatchgetcontact`, because the
//! lists init carries are partial and getcontact's are empty.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::contact::{Contact, Member, is_group};
use crate::store::{self, ApplyCounts, RunStats, Snapshot, Store};
use crate::webwx::{self, BATCH_LIMIT, BatchItem, Client, RawContact};

/// The official client follows at most 16 extra pages; allow more, but stop
/// a server that never says "last page".
const MAX_PAGES: usize = 64;

#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Pause between two batch calls.
    pub batch_pause: Duration,
    /// Tries per call before a batch is split (or the sync given up).
    pub attempts: u32,
    /// First retry delay; doubles on each retry.
    pub retry_base: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            batch_pause: Duration::from_millis(200),
            attempts: 3,
            retry_base: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Protocol(#[from] webwx::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("webwxgetcontact sent page token {0} twice; the contact list would never end")]
    RepeatedSeq(String),
    #[error("webwxgetcontact sent more than {MAX_PAGES} pages")]
    TooManyPages,
    #[error("cancelled: wxsync is shutting down")]
    Cancelled,
}

impl SyncError {
    pub fn is_session_dead(&self) -> bool {
        matches!(self, SyncError::Protocol(e) if e.is_session_dead())
    }
}

/// What a successful full sync did.
#[derive(Clone, Debug)]
pub struct SyncReport {
    pub run_id: i64,
    pub stats: RunStats,
    pub counts: ApplyCounts,
    pub elapsed: Duration,
}

/// Runs one full sync and records it in `sync_runs`. `extra_groups` are group
/// names learned since login (from webwxsync) that init may not list.
/// Cancelling `cancel` abandons the fetch; once writing has begun, the
/// transaction is allowed to commit.
#[tracing::instrument(name = "full_sync", skip_all, fields(run_id))]
pub async fn full_sync(
    client: &Client,
    store: &Store,
    opts: &SyncOptions,
    extra_groups: &[String],
    cancel: &CancellationToken,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let run_id = store.start_run().await?;
    tracing::Span::current().record("run_id", run_id);

    let result = async {
        let fetched = tokio::select! {
            fetched = fetch(client, opts, extra_groups) => fetched?,
            _ = cancel.cancelled() => return Err(SyncError::Cancelled),
        };
        let self_user_name = client.session().self_user_name().to_owned();
        let (snapshot, stats) = build_snapshot(&fetched, &self_user_name);
        let counts = store.apply_full_sync(run_id, &snapshot, &stats).await?;
        Ok::<_, SyncError>((stats, counts))
    }
    .await;

    match result {
        Ok((stats, counts)) => {
            let elapsed = started.elapsed();
            info!(
                contacts = stats.contacts,
                groups = stats.groups,
                memberships = stats.memberships,
                inserted = counts.inserted,
                updated = counts.updated,
                deleted = counts.deleted,
                mismatches = stats.member_count_mismatches,
                elapsed_ms = elapsed.as_millis() as u64,
                "full sync complete"
            );
            Ok(SyncReport {
                run_id,
                stats,
                counts,
                elapsed,
            })
        }
        Err(e) => {
            warn!(error = %e, "full sync failed; the cache is unchanged");
            store.fail_run(run_id, &e.to_string()).await?;
            Err(e)
        }
    }
}

/// Fetches and decodes what [`full_sync`] would, and writes nothing: the
/// floor a full sync's time is measured against.
pub async fn fetch_only(
    client: &Client,
    opts: &SyncOptions,
    cancel: &CancellationToken,
) -> Result<RunStats, SyncError> {
    let fetched = tokio::select! {
        fetched = fetch(client, opts, &[]) => fetched?,
        _ = cancel.cancelled() => return Err(SyncError::Cancelled),
    };
    let self_user_name = client.session().self_user_name().to_owned();
    Ok(build_snapshot(&fetched, &self_user_name).1)
}

/// Everything the server said during one sync, before any decoding.
#[derive(Debug, Default)]
struct Fetched {
    /// Merged by UserName; later sources win (getcontact over init, batch
    /// replies over both for groups).
    contacts: BTreeMap<String, RawContact>,
    /// Groups whose member lists the server described.
    described_groups: BTreeSet<String>,
}

async fn fetch(
    client: &Client,
    opts: &SyncOptions,
    extra_groups: &[String],
) -> Result<Fetched, SyncError> {
    let mut fetched = Fetched::default();

    let init = retrying(opts, || client.init()).await?;
    let mut group_names: BTreeSet<String> = init
        .chat_set
        .iter()
        .chain(extra_groups)
        .filter(|u| is_group(u))
        .cloned()
        .collect();
    fetched
        .contacts
        .insert(init.user.user_name.clone(), init.user);
    for c in init.contacts {
        fetched.contacts.insert(c.user_name.clone(), c);
    }

    let mut seq = String::from("0");
    let mut seen = HashSet::new();
    for page in 0.. {
        if page == MAX_PAGES {
            return Err(SyncError::TooManyPages);
        }
        let reply = retrying(opts, || client.contact_page(&seq)).await?;
        for c in reply.contacts {
            fetched.contacts.insert(c.user_name.clone(), c);
        }
        if reply.seq == "0" || reply.seq.is_empty() {
            break;
        }
        if !seen.insert(reply.seq.clone()) {
            return Err(SyncError::RepeatedSeq(reply.seq));
        }
        seq = reply.seq;
    }

    group_names.extend(fetched.contacts.keys().filter(|u| is_group(u)).cloned());
    let groups: Vec<String> = group_names.into_iter().collect();
    for (i, chunk) in groups.chunks(BATCH_LIMIT).enumerate() {
        if i > 0 {
            tokio::time::sleep(opts.batch_pause).await;
        }
        for g in fetch_groups(client, opts, chunk).await? {
            fetched.described_groups.insert(g.user_name.clone());
            fetched.contacts.insert(g.user_name.clone(), g);
        }
    }
    let missing = groups.len() - fetched.described_groups.len();
    if missing > 0 {
        warn!(
            missing,
            "the server did not describe some groups; their member lists are kept as they were"
        );
    }
    Ok(fetched)
}

/// Fetches up to [`BATCH_LIMIT`] groups. A chunk the server refuses (a Ret
/// that is neither transient nor a logout) is split in halves, so one bad
/// name cannot hide its neighbours; a group refused on its own, or a chunk
/// still failing transiently after its retries, fails the sync (it could not
/// be complete without it, and hammering an unwell server helps no one).
async fn fetch_groups(
    client: &Client,
    opts: &SyncOptions,
    names: &[String],
) -> Result<Vec<RawContact>, SyncError> {
    let items: Vec<BatchItem> = names
        .iter()
        .map(|g| BatchItem {
            user_name: g.clone(),
            chat_room: String::new(),
        })
        .collect();
    match retrying(opts, || client.batch_get(&items)).await {
        Ok(reply) => {
            let asked: HashSet<&str> = names.iter().map(String::as_str).collect();
            Ok(reply
                .into_iter()
                .filter(|c| asked.contains(c.user_name.as_str()))
                .collect())
        }
        Err(e) if e.is_session_dead() || e.is_transient() || names.len() == 1 => Err(e.into()),
        Err(e) => {
            warn!(groups = names.len(), error = %e, "batch refused; splitting it");
            let (left, right) = names.split_at(names.len() / 2);
            let mut out = Box::pin(fetch_groups(client, opts, left)).await?;
            tokio::time::sleep(opts.batch_pause).await;
            out.extend(Box::pin(fetch_groups(client, opts, right)).await?);
            Ok(out)
        }
    }
}

/// Calls `f` until it succeeds, the error is not transient, or the attempts
/// run out, backing off with jitter in between.
async fn retrying<T, F, Fut>(opts: &SyncOptions, mut f: F) -> Result<T, webwx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, webwx::Error>>,
{
    let mut backoff = Backoff::new(opts.retry_base, opts.retry_base * 16);
    loop {
        match f().await {
            Err(e) if e.is_transient() && backoff.attempts() + 1 < opts.attempts => {
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "transient error");
                tokio::time::sleep(delay).await;
            }
            result => return result,
        }
    }
}

/// Decodes and classifies what was fetched.
fn build_snapshot(fetched: &Fetched, self_user_name: &str) -> (Snapshot, RunStats) {
    let mut snapshot = Snapshot::default();
    let mut stats = RunStats::default();
    let mut notes = Vec::new();
    for raw in fetched.contacts.values() {
        let Some(contact) = Contact::from_raw(raw, self_user_name) else {
            continue;
        };
        if fetched.described_groups.contains(&raw.user_name) {
            let members = Member::list_from(&raw.member_list);
            if raw.member_count != members.len() as i64 {
                stats.member_count_mismatches += 1;
                notes.push(format!(
                    "{} ({}): MemberCount {} but {} members listed",
                    contact.nick_name,
                    contact.user_name,
                    raw.member_count,
                    members.len()
                ));
            }
            stats.memberships += members.len() as u64;
            snapshot.members.insert(raw.user_name.clone(), members);
        }
        if is_group(&contact.user_name) {
            stats.groups += 1;
        }
        stats.contacts += 1;
        snapshot.contacts.push(contact);
    }
    if !notes.is_empty() {
        warn!(
            groups = notes.len(),
            "MemberCount differs from the member list received"
        );
        stats.notes = Some(notes.join("; "));
    }
    (snapshot, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webwx::RawMember;

    fn member(u: &str) -> RawMember {
        RawMember {
            user_name: u.into(),
            ..RawMember::default()
        }
    }

    #[test]
    fn snapshot_keeps_contacts_drops_strangers_and_counts_mismatches() {
        let mut f = Fetched::default();
        let people = [("@me", 0), ("@friend", 3), ("@stranger", 0)];
        for (u, flag) in people {
            f.contacts.insert(
                u.into(),
                RawContact {
                    user_name: u.into(),
                    contact_flag: flag,
                    ..RawContact::default()
                },
            );
        }
        f.contacts.insert(
            "@@g".into(),
            RawContact {
                user_name: "@@g".into(),
                member_count: 3,
                member_list: vec![member("@a"), member("@b"), member("@a")],
                ..RawContact::default()
            },
        );
        f.contacts.insert(
            "@@undescribed".into(),
            RawContact {
                user_name: "@@undescribed".into(),
                ..RawContact::default()
            },
        );
        f.described_groups.insert("@@g".into());

        let (snap, stats) = build_snapshot(&f, "@me");
        let names: Vec<&str> = snap.contacts.iter().map(|c| c.user_name.as_str()).collect();
        assert_eq!(names, ["@@g", "@@undescribed", "@friend", "@me"]);
        assert_eq!(
            snap.members.len(),
            1,
            "only described groups get member lists"
        );
        assert_eq!(snap.members["@@g"].len(), 2, "duplicate members collapse");
        assert_eq!(stats.member_count_mismatches, 1);
        assert!(stats.notes.unwrap().contains("MemberCount 3 but 2"));
        assert_eq!((stats.contacts, stats.groups, stats.memberships), (4, 2, 2));
    }
}
