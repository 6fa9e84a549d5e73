//! The remark applier: takes `pending_ops` rows in `id` order, sends each
//! through webwxoplog, reads the contact back, and records the truth.
//!
//! Live servers have been seen answering Ret 0 without changing anything, so
//! an op is `done` only when the read-back shows the new remark. An op may
//! name its contact by a name from an earlier login; the call and the
//! read-back use the contact's current name.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Event, SessionCtx, TaskError, TaskResult};
use crate::backoff::Backoff;
use crate::contact::Kind;
use crate::store::{PendingOp, Target};
use crate::telemetry::escape;
use crate::webwx::{self, BatchItem, text};

/// Calls per op before it is given up as `failed`.
pub const MAX_ATTEMPTS: i64 = 5;

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

fn record(result: Result<(), crate::store::Error>) {
    if let Err(e) = result {
        warn!(error = %e, "cannot record a remark edit's state");
    }
}

/// Why an op cannot be sent at all, in words, or `None` if it can.
fn refusal(op: &PendingOp, target: Option<&Target>) -> Option<String> {
    let who = &op.user_name;
    let Some(target) = target else {
        return Some(format!(
            "no contact {who} in the cache; user names change at every login, \
             so look the contact up again in the contacts table"
        ));
    };
    if target.deleted {
        return Some(format!(
            "{who} is marked deleted: it is no longer a contact"
        ));
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
async fn apply(
    ctx: &SessionCtx,
    op: &PendingOp,
    token: &CancellationToken,
) -> Result<(), webwx::Error> {
    let store = &ctx.app.store;
    let target = match store.op_target(&op.user_name).await {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "cannot look up a remark edit's contact");
            return Ok(());
        }
    };
    if let Some(reason) = refusal(op, target.as_ref()) {
        info!(op = op.id, reason = %escape(&reason), "remark edit refused");
        failed(ctx, op.id, &reason).await;
        return Ok(());
    }
    let Some(target) = target else {
        return Ok(());
    };
    // Committed before the call: a crash after it repeats the call at worst.
    record(store.op_attempt(op.id).await);
    let sent = tokio::select! {
        sent = ctx.client.set_remark(&target.user_name, &op.remark_name) => sent,
        _ = token.cancelled() => return interrupted(op),
    };
    let lost_reply = match sent {
        Ok(()) => None,
        // A call that timed out or lost its reply may still have made the
        // change: before the edit is given up, the read-back tells.
        Err(e) if e.is_transient() && last_attempt(op) => Some(e),
        Err(e) if e.is_session_dead() || e.is_transient() => return Err(e),
        Err(e) => {
            let reason = format!("the server refused the edit: {e}");
            failed(ctx, op.id, &reason).await;
            return Ok(());
        }
    };
    let item = BatchItem {
        user_name: target.user_name.clone(),
        chat_room: String::new(),
    };
    let back = tokio::select! {
        back = ctx.client.batch_get(std::slice::from_ref(&item)) => back,
        _ = token.cancelled() => return interrupted(op),
    };
    // A read-back that fails too (but for a logout) gives the edit up for
    // the call's own error.
    let back = match back {
        Ok(back) => back,
        Err(e) => {
            return Err(match lost_reply {
                Some(lost) if !e.is_session_dead() => lost,
                _ => e,
            });
        }
    };
    let now = back
        .iter()
        .find(|c| c.user_name == target.user_name)
        .map(|c| text::decode_text(&c.remark_name));
    if now.as_deref() == Some(op.remark_name.as_str()) {
        info!(op = op.id, "remark edit applied and verified");
        record(store.op_done(op, target.contact_id).await);
    } else if let Some(e) = lost_reply {
        return Err(e);
    } else {
        let reason = "the server accepted the edit but the remark did not change";
        warn!(op = op.id, reason, "remark edit not verified");
        failed(ctx, op.id, reason).await;
    }
    Ok(())
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
            user_name: "@x".into(),
            remark_name: "r".into(),
            attempts: 0,
        }
    }

    fn target(kind: Kind, deleted: bool) -> Target {
        Target {
            contact_id: 1,
            user_name: "@x".into(),
            kind,
            deleted,
        }
    }

    #[test]
    fn only_live_friends_take_a_remark() {
        assert_eq!(refusal(&op(), Some(&target(Kind::Friend, false))), None);
        for (kind, word) in [
            (Kind::Official, "official"),
            (Kind::Group, "group"),
            (Kind::Special, "special"),
            (Kind::SelfUser, "itself"),
        ] {
            assert!(
                refusal(&op(), Some(&target(kind, false)))
                    .unwrap()
                    .contains(word)
            );
        }
        assert!(
            refusal(&op(), Some(&target(Kind::Friend, true)))
                .unwrap()
                .contains("deleted")
        );
        assert!(
            refusal(&op(), None)
                .unwrap()
                .contains("change at every login")
        );
    }
}
