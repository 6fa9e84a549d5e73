//! The synccheck long poll, re-issued at once, and webwxsync whenever it
//! reports anything: contact changes reach the database within seconds,
//! each webwxsync reply in its own short transaction.

use std::collections::VecDeque;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{SessionCtx, TaskError, TaskResult};
use crate::backoff::Backoff;
use crate::contact::{Contact, Member, is_group, is_unnamed};
use crate::store::{self, Plan, Source};
use crate::webwx::{self, SyncReply};

/// Runs until `token` is cancelled (`Ok`) or the server ends the session
/// (`Err`). Network errors, 5xx and 1205 back off.
pub(super) async fn run(ctx: &SessionCtx, token: &CancellationToken) -> TaskResult {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    let mut held = WaitingReplies::new();
    let mut steps: u64 = 0;
    loop {
        steps += 1;
        let outcome = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            outcome = step(ctx, &mut held, steps) => outcome,
        };
        let delay = match outcome {
            Ok(true) => {
                backoff.reset();
                continue;
            }
            Ok(false) => backoff.next_delay(),
            Err(e) if e.is_session_dead() => return Err(TaskError::SessionDead(e)),
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "keepalive failed; backing off");
                delay
            }
        };
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One synccheck, and webwxsync when it reports anything; `Ok(false)` when
/// it answered an unknown retcode (backed off from). In a `keepalive` span
/// numbered `n`, so that its requests' log lines say whose they are.
#[tracing::instrument(name = "keepalive", level = "debug", skip_all, fields(step = n))]
async fn step(ctx: &SessionCtx, held: &mut WaitingReplies, n: u64) -> Result<bool, webwx::Error> {
    if let Err(e) = release(ctx, held).await {
        warn!(error = %e, "cannot store the held contact changes; asking for a full sync");
        held.clear();
        let _ = ctx.resync.try_send(());
    }
    let check = ctx.client.sync_check().await?;
    if check.retcode != "0" {
        warn!(retcode = %check.retcode, "synccheck answered an unknown retcode");
        return Ok(false);
    }
    if let Err(e) = ctx.app.store.touch_keepalive().await {
        warn!(error = %e, "cannot record the keepalive");
    }
    if check.selector == "0" {
        return Ok(true);
    }
    debug!(selector = %check.selector, "synccheck: something changed");
    let reply = ctx.client.sync().await?;
    if let Err(e) = deliver(ctx, held, reply).await {
        // The server will not send these changes again; a full sync
        // is the only way to get them now.
        warn!(error = %e, "cannot store the changes from webwxsync; asking for a full sync");
        let _ = ctx.resync.try_send(());
    }
    ctx.persist();
    Ok(true)
}

/// Replies received while the cache still holds another login's names wait
/// here, at most this many (older ones are superseded by the full sync that
/// links the cache anyway).
const HOLD_LIMIT: usize = 256;

/// Contact changes waiting for the first full sync of this login to link the
/// cache, each with when it arrived.
pub(super) type WaitingReplies = VecDeque<(String, SyncReply)>;

/// Writes a webwxsync reply, or holds it while the cache holds another
/// login's names: written now, its new names would become new contacts
/// instead of the cached ones (docs/storage.md, "Other sources").
async fn deliver(
    ctx: &SessionCtx,
    held: &mut WaitingReplies,
    reply: SyncReply,
) -> Result<(), store::Error> {
    ctx.app.store.save_real_ids(&reply.real_ids).await?;
    if reply.modified.is_empty() && reply.deleted.is_empty() {
        return Ok(());
    }
    if !ctx.cache_linked().await? {
        if held.len() == HOLD_LIMIT {
            held.pop_front();
            warn!(
                "too many contact changes waiting for the first full sync of this login; dropping the oldest"
            );
        }
        held.push_back((store::now(), reply));
        debug!(
            held = held.len(),
            "contact changes wait until the first full sync links this login"
        );
        return Ok(());
    }
    release(ctx, held).await?;
    apply(ctx, &reply).await
}

/// Once the cache is linked, writes the held replies that arrived after the
/// newest full sync began fetching; earlier ones it has already seen.
async fn release(ctx: &SessionCtx, held: &mut WaitingReplies) -> Result<(), store::Error> {
    if held.is_empty() || !ctx.cache_linked().await? {
        return Ok(());
    }
    let since = ctx
        .app
        .store
        .last_ok_sync_started()
        .await?
        .unwrap_or_default();
    while let Some((at, reply)) = held.pop_front() {
        if at >= since {
            apply(ctx, &reply).await?;
        }
    }
    Ok(())
}

/// Writes one webwxsync reply: modified contacts replace their rows (an empty
/// RemarkName clears the remark), group member lists that come with them
/// replace the membership rows, deleted ones — and friends who are no longer
/// contacts — get `deleted_at`. One stage, one short transaction. Entries
/// without a name are skipped with one warning, and a full sync is asked
/// for: it is the only way to learn what they were.
async fn apply(ctx: &SessionCtx, reply: &SyncReply) -> Result<(), store::Error> {
    let session = ctx.client.session();
    let me = session.self_user_name();
    let mut stage = ctx.app.store.stage().await?;
    let mut contacts = Vec::new();
    let mut gone: Vec<String> = reply
        .deleted
        .iter()
        .filter(|u| !is_unnamed(u))
        .cloned()
        .collect();
    let mut unnamed = reply.deleted.len() - gone.len();
    for raw in &reply.modified {
        if is_unnamed(&raw.user_name) {
            unnamed += 1;
            continue;
        }
        match Contact::from_raw(raw, me) {
            Some(contact) => contacts.push(contact),
            None => gone.push(raw.user_name.clone()),
        }
    }
    stage.contacts(&contacts).await?;
    for raw in reply.modified.iter().filter(|c| is_group(&c.user_name)) {
        ctx.learned_groups
            .lock()
            .await
            .insert(raw.user_name.clone());
        if raw.member_list.is_empty() {
            continue;
        }
        // A list with a member without a name cannot say who left.
        match Member::list_from(&raw.member_list) {
            Some(members) => {
                stage.members(&raw.user_name, &members).await?;
            }
            None => unnamed += 1,
        }
    }
    stage.deleted(&gone).await?;
    let written = stage
        .commit(Plan {
            source: Source::Increment,
            full: None,
            claim_login: None,
        })
        .await?;
    ctx.app.store.touch_increment().await?;
    if written.inserted + written.updated > 0 {
        // A new contact or a changed one (a new avatar seq among them).
        ctx.avatar_work.notify_one();
    }
    info!(
        inserted = written.inserted,
        updated = written.updated,
        deleted = written.deleted,
        memberships_changed = written.memberships_changed,
        "applied contact changes from webwxsync"
    );
    if unnamed > 0 {
        warn!(
            entries = unnamed,
            "webwxsync sent entries without a UserName (or member lists holding one); \
             they were skipped; asking for a full sync"
        );
        let _ = ctx.resync.try_send(());
    }
    Ok(())
}
