//! One full sync: fetch the whole address book, decode and classify each
//! reply as it arrives, stage it, and write it in one short transaction — or,
//! if any call fails, write nothing but the failed `sync_runs` row.
//!
//! The contact set is webwxinit's `ContactList` ∪ every `webwxgetcontact`
//! page ∪ the groups in `ChatSet` (and any the caller learned elsewhere);
//! every group's member list comes from `webwxbatchgetcontact`, because the
//! lists init carries are partial and getcontact's are empty. How the staged
//! result is written is in docs/storage.md.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::contact::{Contact, Member, is_group, is_unnamed};
use crate::store::{self, ApplyCounts, FullSync, Plan, RunStats, Source, Stage, Store};
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
    /// Share of live contacts (or membership rows) a sync may delete before
    /// it is held back.
    pub deletion_guard: f64,
    /// Apply a deletion the guard would hold back.
    pub force: bool,
    /// A held deletion that comes back this long after it was first held
    /// is applied (see [`SyncOptions::retry`]).
    pub deletion_confirm: Duration,
    /// This sync retries one that failed: it never applies a held deletion.
    pub retry: bool,
    /// History rows older than this are removed after each successful sync.
    pub history_retention: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            batch_pause: Duration::from_millis(200),
            attempts: 3,
            retry_base: Duration::from_millis(500),
            deletion_guard: 0.2,
            force: false,
            deletion_confirm: Duration::from_secs(6 * 3600),
            retry: false,
            history_retention: Duration::from_secs(730 * 24 * 3600),
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

    /// The deletion guard held the result back: nothing was written, and
    /// retrying at once would only ask the same question again.
    pub fn is_held(&self) -> bool {
        matches!(self, SyncError::Store(store::Error::Held { .. }))
    }
}

/// What a successful full sync did.
#[derive(Clone, Debug)]
pub struct SyncReport {
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
    // Taken before the run opens: changes other sources write after this
    // are newer than anything this sync fetches.
    let fetch_started = store::now();
    let run_id = store.start_run().await?;
    tracing::Span::current().record("run_id", run_id);

    let result = async {
        let login_id = client.session().login_id().to_owned();
        let relink = !store.holds_login(&login_id).await?;
        let (learned, stage) = tokio::join!(learn_real_ids(client, store), store.stage());
        learned?;
        let mut stage = stage?;
        if relink {
            stage.relinking();
        }
        let stats = tokio::select! {
            stats = fetch(client, opts, extra_groups, &mut stage) => stats?,
            _ = cancel.cancelled() => return Err(SyncError::Cancelled),
        };
        let unlinked = match relink {
            true => stage.relink().await?.unlinked,
            false => 0,
        };
        let plan = Plan {
            source: Source::FullSync,
            full: Some(FullSync {
                run_id,
                fetch_started: &fetch_started,
                login_id: &login_id,
                guard: opts.deletion_guard,
                force: opts.force,
                confirm: opts.deletion_confirm,
                retry: opts.retry,
                stats: &stats,
                unlinked,
            }),
            claim_login: None,
        };
        let counts = stage.commit(plan).await?;
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
                relinked = counts.relinked,
                memberships_changed = counts.memberships_changed,
                mismatches = stats.member_count_mismatches,
                write_lock_ms = counts.write_lock_ms,
                elapsed_ms = elapsed.as_millis() as u64,
                "full sync complete"
            );
            match store.prune_history(opts.history_retention).await {
                Ok(0) => {}
                Ok(pruned) => info!(
                    pruned,
                    "old contact_changes rows removed (history.retention)"
                ),
                Err(e) => warn!(error = %e, "cannot remove old contact_changes rows"),
            }
            match store.prune_avatars().await {
                Ok(0) => {}
                Ok(pruned) => info!(pruned, "avatars no contact or history row names removed"),
                Err(e) => warn!(error = %e, "cannot remove unused avatars"),
            }
            Ok(SyncReport {
                stats,
                counts,
                elapsed,
            })
        }
        // The guard recorded its own reason with the run.
        Err(e) if e.is_held() => {
            warn!(error = %e, "full sync held back; the cache is unchanged");
            Err(e)
        }
        Err(e) => {
            warn!(error = %e, "full sync failed; the cache is unchanged");
            store.fail_run(run_id, &e.to_string()).await?;
            Err(e)
        }
    }
}

/// After a login the server names the real ids of recent contacts in a
/// MsgType 51 message, delivered through webwxsync; a full sync reads what
/// is pending first, so the re-link has the pairs. The replies' contact
/// changes are older than what the fetch then reads, so only the ids are
/// kept.
async fn learn_real_ids(client: &Client, store: &Store) -> Result<(), SyncError> {
    /// The map comes in a few messages; a server that keeps saying "more"
    /// is not waited for.
    const ROUNDS: usize = 3;
    for _ in 0..ROUNDS {
        let reply = match client.sync().await {
            Ok(reply) => reply,
            Err(e) if e.is_session_dead() => return Err(e.into()),
            Err(e) => {
                warn!(error = %e, "cannot read this login's real ids; linking without them");
                return Ok(());
            }
        };
        store.save_real_ids(&reply.real_ids).await?;
        if reply.continue_flag == 0 {
            break;
        }
    }
    Ok(())
}

/// Fetches and decodes what [`full_sync`] would, and writes nothing: the
/// floor a full sync's time is measured against.
pub async fn fetch_only(
    client: &Client,
    opts: &SyncOptions,
    cancel: &CancellationToken,
) -> Result<RunStats, SyncError> {
    let mut discard = Discard;
    tokio::select! {
        stats = fetch(client, opts, &[], &mut discard) => stats,
        _ = cancel.cancelled() => Err(SyncError::Cancelled),
    }
}

/// Where decoded records go as they arrive.
trait RecordSink {
    /// Runs while the first request is in flight.
    async fn prepare(&mut self) -> Result<(), store::Error> {
        Ok(())
    }
    async fn contacts(&mut self, contacts: &[Contact]) -> Result<(), store::Error>;
    async fn members(&mut self, group: &str, members: &[Member]) -> Result<(), store::Error>;
    /// Keeps what the cache holds of these contacts, whatever was staged.
    async fn keep(&mut self, _names: &[String]) -> Result<(), store::Error> {
        Ok(())
    }
}

impl RecordSink for Stage {
    async fn prepare(&mut self) -> Result<(), store::Error> {
        self.load_digests().await
    }
    async fn contacts(&mut self, contacts: &[Contact]) -> Result<(), store::Error> {
        Stage::contacts(self, contacts).await
    }
    async fn members(&mut self, group: &str, members: &[Member]) -> Result<(), store::Error> {
        Stage::members(self, group, members).await.map(drop)
    }
    async fn keep(&mut self, names: &[String]) -> Result<(), store::Error> {
        Stage::keep(self, names).await
    }
}

/// `--fetch-only`: decode everything, keep nothing.
struct Discard;

impl RecordSink for Discard {
    async fn contacts(&mut self, _: &[Contact]) -> Result<(), store::Error> {
        Ok(())
    }
    async fn members(&mut self, _: &str, _: &[Member]) -> Result<(), store::Error> {
        Ok(())
    }
}

/// What was fetched so far, for the run's statistics.
#[derive(Default)]
struct Tally {
    /// Contacts seen, by [`store::name_key`].
    contacts: HashSet<u128>,
    stats: RunStats,
    notes: Vec<String>,
    /// Groups' nick names as the lists named them, for the notes on groups
    /// the server would not describe.
    group_nicks: HashMap<String, String>,
    /// Entries of init's and getcontact's lists without a name.
    unnamed: u64,
}

impl Tally {
    /// Decodes and stages one reply's contacts (strangers, and entries
    /// without a name, are left out; the latter are counted).
    async fn contacts(
        &mut self,
        sink: &mut impl RecordSink,
        raw: &[RawContact],
        me: &str,
    ) -> Result<(), SyncError> {
        self.unnamed += raw.iter().filter(|c| is_unnamed(&c.user_name)).count() as u64;
        let decoded: Vec<Contact> = raw
            .iter()
            .filter_map(|c| Contact::from_raw(c, me))
            .collect();
        for c in &decoded {
            if self.contacts.insert(store::name_key(&c.user_name)) {
                self.stats.contacts += 1;
                if is_group(&c.user_name) {
                    self.stats.groups += 1;
                }
            }
            if is_group(&c.user_name) && !c.nick_name.is_empty() {
                self.group_nicks
                    .insert(c.user_name.clone(), c.nick_name.clone());
            }
        }
        sink.contacts(&decoded).await?;
        Ok(())
    }

    /// Stages one batch reply: the groups' records and their member lists.
    /// A list with a member without a name is not staged: the group keeps
    /// the members it has.
    async fn groups(
        &mut self,
        sink: &mut impl RecordSink,
        groups: Vec<RawContact>,
        me: &str,
    ) -> Result<(), SyncError> {
        self.contacts(sink, &groups, me).await?;
        for g in &groups {
            let name = webwx::text::decode_text(&g.nick_name);
            let Some(members) = Member::list_from(&g.member_list) else {
                warn!(
                    group = %g.user_name,
                    "a member list holds members without a UserName; the group keeps its stored members"
                );
                self.notes.push(format!(
                    "{name} ({}): members without a UserName listed; stored members kept",
                    g.user_name
                ));
                continue;
            };
            if g.member_count != members.len() as i64 {
                self.stats.member_count_mismatches += 1;
                self.notes.push(format!(
                    "{name} ({}): MemberCount {} but {} members listed",
                    g.user_name,
                    g.member_count,
                    members.len()
                ));
            }
            self.stats.memberships += members.len() as u64;
            sink.members(&g.user_name, &members).await?;
        }
        Ok(())
    }

    /// Groups asked for that no reply described, even alone: they keep
    /// their rows as the cache holds them (the records init and getcontact
    /// gave are partial) and their members.
    async fn unread(
        &mut self,
        sink: &mut impl RecordSink,
        groups: &[String],
    ) -> Result<(), SyncError> {
        if groups.is_empty() {
            return Ok(());
        }
        sink.keep(groups).await?;
        let named: Vec<String> = groups
            .iter()
            .map(|g| match self.group_nicks.get(g) {
                Some(nick) => format!("{nick} ({g})"),
                None => g.clone(),
            })
            .collect();
        warn!(
            groups = %named.join(", "),
            "webwxbatchgetcontact did not describe these groups, even asked alone; \
             they keep their rows and members, and this sync marks nothing deleted"
        );
        self.stats.unread_groups = groups.len() as u64;
        self.notes.push(format!(
            "not described by webwxbatchgetcontact, kept as they were: {}",
            named.join(", ")
        ));
        Ok(())
    }

    fn finish(mut self) -> RunStats {
        if self.unnamed > 0 {
            warn!(
                entries = self.unnamed,
                "contact lists held entries without a UserName; they were skipped, \
                 and this sync marks nothing deleted"
            );
            self.notes.push(format!(
                "{} contact list entries without a UserName skipped",
                self.unnamed
            ));
            self.stats.unnamed = self.unnamed;
        }
        if self.stats.member_count_mismatches > 0 {
            warn!(
                groups = self.stats.member_count_mismatches,
                "MemberCount differs from the member list received"
            );
        }
        if !self.notes.is_empty() {
            self.stats.notes = Some(self.notes.join("; "));
        }
        self.stats
    }
}

async fn fetch(
    client: &Client,
    opts: &SyncOptions,
    extra_groups: &[String],
    sink: &mut impl RecordSink,
) -> Result<RunStats, SyncError> {
    let mut tally = Tally::default();

    // The sink gets ready while webwxinit and the first page are fetched.
    let first = async {
        let init = retrying(opts, || client.init()).await?;
        let page = retrying(opts, || client.contact_page("0")).await?;
        Ok::<_, webwx::Error>((init, page))
    };
    let (first, prepared) = tokio::join!(first, sink.prepare());
    prepared?;
    let (init, first_page) = first?;
    let me = init.user.user_name.clone();
    let mut group_names: BTreeSet<String> = init
        .chat_set
        .iter()
        .chain(extra_groups)
        .filter(|u| is_group(u))
        .cloned()
        .collect();
    group_names.extend(
        init.contacts
            .iter()
            .map(|c| &c.user_name)
            .filter(|u| is_group(u))
            .cloned(),
    );
    let mut first = init.contacts;
    first.push(init.user);
    tally.contacts(sink, &first, &me).await?;
    drop(first);

    // Each page is staged while the next one is being fetched.
    let mut reply = first_page;
    let mut seen = HashSet::new();
    for page in 1.. {
        group_names.extend(
            reply
                .contacts
                .iter()
                .map(|c| &c.user_name)
                .filter(|u| is_group(u))
                .cloned(),
        );
        if reply.seq == "0" || reply.seq.is_empty() {
            break;
        }
        if !seen.insert(reply.seq.clone()) {
            return Err(SyncError::RepeatedSeq(reply.seq));
        }
        if page == MAX_PAGES {
            return Err(SyncError::TooManyPages);
        }
        let (next, staged) = tokio::join!(
            retrying(opts, || client.contact_page(&reply.seq)),
            tally.contacts(sink, &reply.contacts, &me)
        );
        staged?;
        reply = next?;
    }
    tally.contacts(sink, &reply.contacts, &me).await?;
    drop(reply);

    // Each chunk's reply is staged while the next chunk is being fetched.
    let groups: Vec<String> = group_names.into_iter().collect();
    let mut unread = Vec::new();
    let mut previous = None;
    for (i, chunk) in groups.chunks(BATCH_LIMIT).enumerate() {
        let next = async {
            if i > 0 {
                tokio::time::sleep(opts.batch_pause).await;
            }
            fetch_groups(client, opts, chunk).await
        };
        let stage_previous = async {
            match previous.take() {
                Some(reply) => tally.groups(sink, reply, &me).await,
                None => Ok(()),
            }
        };
        let (fetched, staged) = tokio::join!(next, stage_previous);
        staged?;
        let fetched = fetched?;
        unread.extend(fetched.unread);
        previous = Some(fetched.groups);
    }
    if let Some(reply) = previous {
        tally.groups(sink, reply, &me).await?;
    }
    tally.unread(sink, &unread).await?;
    Ok(tally.finish())
}

/// A batch of groups as the server described it.
#[derive(Default)]
struct Described {
    groups: Vec<RawContact>,
    /// Asked for and never described, not even alone.
    unread: Vec<String>,
}

impl Described {
    fn extend(&mut self, other: Described) {
        self.groups.extend(other.groups);
        self.unread.extend(other.unread);
    }
}

/// Fetches up to [`BATCH_LIMIT`] groups. A chunk the server refuses (a Ret
/// that is neither transient nor a logout) is split in halves, so one bad
/// name cannot hide its neighbours; a group refused on its own, or a chunk
/// still failing transiently after its retries, fails the sync (it could not
/// be complete without it, and hammering an unwell server helps no one).
/// Groups a Ret-0 reply leaves out are asked for again in a smaller batch,
/// down to alone; one left out even then is `unread`. Groups the server
/// describes but nobody asked for are dropped.
async fn fetch_groups(
    client: &Client,
    opts: &SyncOptions,
    names: &[String],
) -> Result<Described, SyncError> {
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
            let mut seen = HashSet::new();
            let groups: Vec<RawContact> = reply
                .into_iter()
                .filter(|c| {
                    asked.contains(c.user_name.as_str()) && seen.insert(c.user_name.clone())
                })
                .collect();
            let missing: Vec<String> = names
                .iter()
                .filter(|g| !seen.contains(*g))
                .cloned()
                .collect();
            let mut out = Described {
                groups,
                unread: Vec::new(),
            };
            if missing.is_empty() {
                return Ok(out);
            }
            if names.len() == 1 {
                out.unread = missing;
                return Ok(out);
            }
            warn!(
                asked = names.len(),
                missing = missing.len(),
                "the batch reply left out groups it was asked for; asking for them again"
            );
            tokio::time::sleep(opts.batch_pause).await;
            // A smaller batch: the ones left out, or half of them when the
            // reply described none.
            out.extend(match missing.len() < names.len() {
                true => Box::pin(fetch_groups(client, opts, &missing)).await?,
                false => Box::pin(fetch_halves(client, opts, &missing)).await?,
            });
            Ok(out)
        }
        Err(e) if e.is_session_dead() || e.is_transient() || names.len() == 1 => Err(e.into()),
        Err(e) => {
            warn!(groups = names.len(), error = %e, "batch refused; splitting it");
            Box::pin(fetch_halves(client, opts, names)).await
        }
    }
}

/// [`fetch_groups`] on each half of `names` (at least two).
async fn fetch_halves(
    client: &Client,
    opts: &SyncOptions,
    names: &[String],
) -> Result<Described, SyncError> {
    let (left, right) = names.split_at(names.len() / 2);
    let mut out = fetch_groups(client, opts, left).await?;
    tokio::time::sleep(opts.batch_pause).await;
    out.extend(fetch_groups(client, opts, right).await?);
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webwx::RawMember;

    /// Records what would be staged.
    #[derive(Default)]
    struct Recorder {
        contacts: Vec<String>,
        members: Vec<(String, usize)>,
    }

    impl RecordSink for Recorder {
        async fn contacts(&mut self, contacts: &[Contact]) -> Result<(), store::Error> {
            self.contacts
                .extend(contacts.iter().map(|c| c.user_name.clone()));
            Ok(())
        }
        async fn members(&mut self, group: &str, members: &[Member]) -> Result<(), store::Error> {
            self.members.push((group.to_owned(), members.len()));
            Ok(())
        }
    }

    fn member(u: &str) -> RawMember {
        RawMember {
            user_name: u.into(),
            ..RawMember::default()
        }
    }

    fn raw(u: &str, flag: i64) -> RawContact {
        RawContact {
            user_name: u.into(),
            contact_flag: flag,
            ..RawContact::default()
        }
    }

    #[tokio::test]
    async fn the_tally_keeps_contacts_drops_strangers_and_counts_mismatches() {
        let mut tally = Tally::default();
        let mut sink = Recorder::default();
        let people = [raw("@me", 0), raw("@friend", 3), raw("@stranger", 0)];
        tally.contacts(&mut sink, &people, "@me").await.unwrap();
        // The friend again (a later page): counted once.
        tally
            .contacts(&mut sink, &people[1..2], "@me")
            .await
            .unwrap();
        let group = RawContact {
            member_count: 3,
            member_list: vec![member("@a"), member("@b"), member("@a")],
            ..raw("@@g", 0)
        };
        tally.groups(&mut sink, vec![group], "@me").await.unwrap();
        let stats = tally.finish();

        assert_eq!(sink.contacts, ["@me", "@friend", "@friend", "@@g"]);
        assert_eq!(
            sink.members,
            [("@@g".to_owned(), 2)],
            "duplicate members collapse"
        );
        assert_eq!(stats.member_count_mismatches, 1);
        assert!(stats.notes.unwrap().contains("MemberCount 3 but 2"));
        assert_eq!((stats.contacts, stats.groups, stats.memberships), (3, 1, 2));
    }
}
