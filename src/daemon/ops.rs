//! The remark applier: takes `pending_ops` rows in `id` order, sends each
//! through webwxoplog, reads the contact back, and records the truth.
//!
//! Live servers have been seen answering Ret 0 without changing anything, so
//! an op is `done` only when the read-back shows the new remark. An edit the
//! server accepted is never sent again: only the read-back is retried, and
//! if it keeps failing the op ends `unverified`. An op may name its contact
//! by `contact_id` or by a name from an earlier login; the call and the
//! read-back use the contact's current name.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Event, SessionCtx, TaskError, TaskResult};
use crate::backoff::Backoff;
use crate::contact::Kind;
use crate::store::{self, Deletion, PendingOp, Store, Target};
use crate::telemetry::escape;
use crate::webwx::{self, BatchItem, text};

/// Calls per op before it is given up as `failed`.
pub const MAX_ATTEMPTS: i64 = 5;

/// Read-backs of an edit the server accepted before it is left
/// `unverified`.
pub const READ_BACKS: u32 = 5;

/// Runs until `token` is cancelled (`Ok`) or the server ends the session
/// (`Err`); ops then stay pending, untouched, for the next login.
pub(super) async fn run(ctx: &SessionCtx, token: &CancellationToken) -> TaskResult {
    let store = &ctx.app.store;
    let mut watch = store
        .queue_watch()
        .await
        .context("cannot watch the remark queue")
        .map_err(TaskError::Failed)?;
    let mut tick = tokio::time::interval(ctx.app.config.ops.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut backoff = Backoff::new(ctx.app.config.wechat.retry_delay, Duration::from_secs(300));
    let result = loop {
        tokio::select! {
            _ = token.cancelled() => break Ok(()),
            _ = tick.tick() => {}
        }
        match watch.changed().await {
            Ok(false) if backoff.attempts() == 0 => continue,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "cannot check the remark queue");
                continue;
            }
        }
        // The commit that links the cache changes data_version, so a
        // skipped round is tried again as soon as that lands.
        match ctx.cache_linked().await {
            Ok(true) => {}
            Ok(false) => {
                debug!("remark edits wait until this login's first full sync links the cache");
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cannot tell whose names the cache holds");
                continue;
            }
        }
        match drain(ctx, token, &mut backoff).await {
            Ok(()) => {}
            Err(e) if e.is_session_dead() => break Err(TaskError::SessionDead(e)),
            Err(e) => warn!(error = %e, "remark queue stopped for now"),
        }
    };
    watch.close().await;
    result
}

/// Applies pending ops until none is left, one fails transiently (it is
/// retried on a later tick, after a back-off), or `token` is cancelled.
/// Each op starts with a fresh back-off: one op's outage is not the next's.
async fn drain(
    ctx: &SessionCtx,
    token: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), webwx::Error> {
    let store = &ctx.app.store;
    loop {
        if token.is_cancelled() {
            return Ok(());
        }
        let next = match store.next_op().await {
            Ok(next) => next,
            Err(e) => {
                warn!(error = %e, "cannot read the remark queue");
                return Ok(());
            }
        };
        for bad in &next.malformed {
            warn!(op = bad.id, reason = %escape(&bad.reason), "remark edit failed: not a usable row");
            announce_failed(ctx, bad.id, &bad.reason);
        }
        if next.superseded > 0 {
            info!(
                superseded = next.superseded,
                "older remark edits replaced by later ones"
            );
        }
        let Some(op) = next.op else {
            return Ok(());
        };
        match apply(ctx, &op, token).await {
            Ok(()) => backoff.reset(),
            Err(e) if e.is_session_dead() => return Err(e),
            Err(e) => {
                let delay = backoff.next_delay();
                let reason = format!("{e}; will retry");
                if last_attempt(&op) {
                    let reason = format!("gave up after {MAX_ATTEMPTS} attempts: {e}");
                    warn!(op = op.id, %reason, "remark edit failed");
                    failed(ctx, op.id, &reason).await;
                    backoff.reset();
                } else {
                    warn!(op = op.id, error = %e, retry_in_ms = delay.as_millis() as u64, "remark edit will be retried");
                    record(store.op_retry(op.id, &reason).await);
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// Marks op `id` failed for `reason` and tells the notify hook.
async fn failed(ctx: &SessionCtx, id: i64, reason: &str) {
    record(ctx.app.store.op_failed(id, reason).await);
    announce_failed(ctx, id, reason);
}

fn announce_failed(ctx: &SessionCtx, id: i64, reason: &str) {
    ctx.hook.fire(
        Event::OpFailed,
        &format!("remark edit {id} (pending_ops.id) failed: {reason}"),
    );
}

/// Marks op `id` unverified for `reason`. The hook hears it as `op_failed`
/// (there is no event of its own), in words that say the server accepted
/// the edit: whether the remark changed is not known.
async fn left_unverified(ctx: &SessionCtx, id: i64, reason: &str) {
    record(ctx.app.store.op_unverified(id, reason).await);
    ctx.hook.fire(
        Event::OpFailed,
        &format!("remark edit {id} (pending_ops.id) is unverified, not sent again: {reason}"),
    );
}

fn record(result: Result<(), crate::store::Error>) {
    if let Err(e) = result {
        warn!(error = %e, "cannot record a remark edit's state");
    }
}

/// The contact an op names, or why it names none, in words: by
/// `contact_id` when given (a `user_name` given too must name the same
/// contact), else by `user_name`.
async fn resolve(store: &Store, op: &PendingOp) -> Result<Result<Target, String>, store::Error> {
    let named = match &op.user_name {
        Some(name) => store.op_target_named(name).await?,
        None => None,
    };
    let Some(id) = op.contact_id else {
        return Ok(named.ok_or_else(|| {
            format!(
                "no contact {} in the cache; user names change at every login, \
                 so look the contact up again in the contacts table (or queue it by contact_id)",
                op.who()
            )
        }));
    };
    if let Some(other) = named.filter(|t| t.contact_id != id) {
        return Ok(Err(format!(
            "user_name {} names contact_id {}, not the contact_id {id} given with it",
            op.who(),
            other.contact_id
        )));
    }
    Ok(store
        .op_target_id(id)
        .await?
        .ok_or_else(|| format!("no contact with contact_id {id} in the cache")))
}

/// Why an op cannot be sent to `target`, in words, or `None` if it can.
fn refusal(op: &PendingOp, target: &Target) -> Option<String> {
    let who = op.who();
    let id = target.contact_id;
    match &target.deleted {
        None => {}
        Some(Deletion::Gone) => {
            return Some(format!(
                "{who} is marked deleted: it is no longer a contact"
            ));
        }
        Some(Deletion::Unlinked { at, candidates }) => {
            let row = format!(
                "{} (contact_id {id}) is a row of an earlier login that the re-link at {at} \
                 could not link to a contact of this login",
                target.user_name
            );
            let next = format!(
                "link the rows with `wxsync identity link {id} NEW`, then queue the edit again"
            );
            return Some(match candidates {
                0 => format!(
                    "{row}: the person left, or changed too much to be recognised; \
                     if they are still a friend, {next}"
                ),
                n => format!(
                    "{row}: {n} rows of this login could be the same person, so it was left for you to \
                     decide (`wxsync identity` lists them); the person is probably still a \
                     friend: {next}"
                ),
            });
        }
    }
    match target.kind {
        Kind::Friend => None,
        Kind::Official => Some(format!(
            "{who} is an official account; only friends take a remark"
        )),
        Kind::Group => Some(format!("{who} is a group; only friends take a remark")),
        Kind::Special => Some(format!(
            "{who} is a special account; only friends take a remark"
        )),
        Kind::SelfUser => Some(format!("{who} is this account itself; it takes no remark")),
    }
}

/// One op: resolve, validate, count the attempt, call, verify. Transient and
/// logout errors are returned for the caller to handle; every other outcome
/// is recorded here. On shutdown the call is abandoned where it is: the op
/// stays pending with the attempt counted, and is sent again next time.
/// In a `remark` span naming the op.
#[tracing::instrument(name = "remark", level = "debug", skip_all, fields(op = op.id))]
async fn apply(
    ctx: &SessionCtx,
    op: &PendingOp,
    token: &CancellationToken,
) -> Result<(), webwx::Error> {
    let store = &ctx.app.store;
    let target = match resolve(store, op).await {
        Ok(Ok(target)) => target,
        Ok(Err(reason)) => {
            info!(op = op.id, reason = %escape(&reason), "remark edit refused");
            failed(ctx, op.id, &reason).await;
            return Ok(());
        }
        Err(e) => {
            warn!(error = %e, "cannot look up a remark edit's contact");
            return Ok(());
        }
    };
    record(store.op_named(op.id, &target).await);
    if let Some(reason) = refusal(op, &target) {
        info!(op = op.id, reason = %escape(&reason), "remark edit refused");
        failed(ctx, op.id, &reason).await;
        return Ok(());
    }
    // Committed before the call: a crash after it repeats the call at worst.
    record(store.op_attempt(op.id).await);
    let sent_at = store::now();
    let sent = tokio::select! {
        sent = ctx.client.set_remark(&target.user_name, &op.remark_name) => sent,
        _ = token.cancelled() => return interrupted(op),
    };
    match sent {
        Ok(()) => verify(ctx, op, &target, &sent_at, token).await,
        // A call that timed out or lost its reply may still have made the
        // change: before the edit is given up, one read-back tells.
        Err(lost) if lost.is_transient() && last_attempt(op) => {
            let back = tokio::select! {
                back = read_back(ctx, &target) => back,
                _ = token.cancelled() => return interrupted(op),
            };
            match back {
                Ok(Some(remark)) if remark == op.remark_name => {
                    info!(op = op.id, "remark edit applied and verified");
                    record(store.op_done(op, target.contact_id, &sent_at).await);
                    Ok(())
                }
                Err(e) if e.is_session_dead() => Err(e),
                _ => Err(lost),
            }
        }
        Err(e) if e.is_session_dead() || e.is_transient() => Err(e),
        Err(e) => {
            let reason = format!("the server refused the edit: {e}");
            failed(ctx, op.id, &reason).await;
            Ok(())
        }
    }
}

/// After the server accepted the edit: reads the contact back until it
/// answers, up to [`READ_BACKS`] times with back-off, and records what the
/// answer shows. The edit itself is not sent again (the user may have set
/// another remark on the phone since); when no read-back answers, or the
/// session ends first, the op ends `unverified`. A daemon stopping in
/// between leaves it pending, as a crash would: the next start sends it
/// again and reads it back.
async fn verify(
    ctx: &SessionCtx,
    op: &PendingOp,
    target: &Target,
    sent_at: &str,
    token: &CancellationToken,
) -> Result<(), webwx::Error> {
    let store = &ctx.app.store;
    let mut backoff = Backoff::new(ctx.app.config.wechat.retry_delay, Duration::from_secs(60));
    let unverified = |why: &str| {
        format!(
            "the server accepted the edit, but {why}; whether the remark changed is not \
             known (the next full sync shows it)"
        )
    };
    let mut last = String::new();
    for round in 1..=READ_BACKS {
        let back = tokio::select! {
            back = read_back(ctx, target) => back,
            _ = token.cancelled() => return interrupted(op),
        };
        match back {
            Ok(Some(remark)) if remark == op.remark_name => {
                info!(op = op.id, "remark edit applied and verified");
                record(store.op_done(op, target.contact_id, sent_at).await);
                return Ok(());
            }
            Ok(Some(_)) => {
                let reason = "the server accepted the edit but the remark did not change";
                warn!(op = op.id, reason, "remark edit not verified");
                failed(ctx, op.id, reason).await;
                return Ok(());
            }
            Ok(None) => last = "webwxbatchgetcontact: the reply does not hold the contact".into(),
            Err(e) if e.is_session_dead() => {
                let reason = unverified(&format!(
                    "the session ended before it could be read back ({e})"
                ));
                left_unverified(ctx, op.id, &reason).await;
                return Err(e);
            }
            Err(e) => last = e.to_string(),
        }
        if round < READ_BACKS {
            let delay = backoff.next_delay();
            warn!(op = op.id, error = %last, retry_in_ms = delay.as_millis() as u64, "remark edit read-back failed; reading it back again");
            record(
                store
                    .op_retry(
                        op.id,
                        &format!("read-back failed: {last}; reading it back again"),
                    )
                    .await,
            );
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
    let reason = unverified(&format!(
        "reading the contact back failed {READ_BACKS} times (last: {last})"
    ));
    warn!(op = op.id, %reason, "remark edit unverified");
    left_unverified(ctx, op.id, &reason).await;
    Ok(())
}

/// The contact's remark as the server holds it now (decoded), or `None`
/// when the reply leaves the contact out: that is no answer.
async fn read_back(ctx: &SessionCtx, target: &Target) -> Result<Option<String>, webwx::Error> {
    let item = BatchItem {
        user_name: target.user_name.clone(),
        chat_room: String::new(),
    };
    let back = ctx.client.batch_get(std::slice::from_ref(&item)).await?;
    Ok(back
        .iter()
        .find(|c| c.user_name == target.user_name)
        .map(|c| text::decode_text(&c.remark_name)))
}

/// Whether this attempt is the op's last before it is given up.
fn last_attempt(op: &PendingOp) -> bool {
    op.attempts + 1 >= MAX_ATTEMPTS
}

fn interrupted(op: &PendingOp) -> Result<(), webwx::Error> {
    info!(
        op = op.id,
        "remark edit interrupted by shutdown; it stays pending and is sent again next time"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> PendingOp {
        PendingOp {
            id: 1,
            user_name: Some("@x".into()),
            contact_id: None,
            remark_name: "r".into(),
            attempts: 0,
        }
    }

    fn target(kind: Kind, deleted: Option<Deletion>) -> Target {
        Target {
            contact_id: 1,
            user_name: "@x".into(),
            kind,
            deleted,
        }
    }

    #[test]
    fn only_live_friends_take_a_remark() {
        assert_eq!(refusal(&op(), &target(Kind::Friend, None)), None);
        for (kind, word) in [
            (Kind::Official, "official"),
            (Kind::Group, "group"),
            (Kind::Special, "special"),
            (Kind::SelfUser, "itself"),
        ] {
            assert!(refusal(&op(), &target(kind, None)).unwrap().contains(word));
        }
        let gone = refusal(&op(), &target(Kind::Friend, Some(Deletion::Gone)));
        assert!(gone.unwrap().contains("no longer a contact"));
        for candidates in [0, 2] {
            let unlinked = Deletion::Unlinked {
                at: "2026-12-01T10:00:00.000Z".into(),
                candidates,
            };
            let reason = refusal(&op(), &target(Kind::Friend, Some(unlinked))).unwrap();
            assert!(
                reason.contains("could not link") && reason.contains("wxsync identity link 1 NEW"),
                "{reason}"
            );
            assert!(!reason.contains("no longer a contact"), "{reason}");
        }
    }
}
