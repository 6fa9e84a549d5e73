//! The synccheck long poll, re-issued at once, and webwxsync whenever it
//! reports anything: contact changes reach the database within seconds,
//! each webwxsync reply in its own short transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{SessionCtx, TaskError, TaskResult};
use crate::backoff::Backoff;
use crate::contact::{Contact, Member, is_group};
use crate::webwx::{self, SyncReply};

/// Runs until `token` is cancelled (`Ok`) or the server ends the session
/// (`Err`). Network errors, 5xx and 1205 back off.
pub(super) async fn run(ctx: &SessionCtx, token: &CancellationToken) -> TaskResult {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        let step = async {
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
            if let Err(e) = apply(ctx, &reply).await {
                // The server will not send these changes again; a full sync
                // is the only way to get them now.
                warn!(error = %e, "cannot store the changes from webwxsync; asking for a full sync");
                let _ = ctx.resync.try_send(());
            }
            ctx.persist();
            Ok::<_, webwx::Error>(true)
        };
        let outcome = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            outcome = step => outcome,
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

/// Writes one webwxsync reply: modified contacts replace their rows (an empty
/// RemarkName clears the remark), group member lists that come with them
/// replace the membership rows, deleted ones — and friends who are no longer
/// contacts — get `deleted_at`.
async fn apply(ctx: &SessionCtx, reply: &SyncReply) -> Result<(), crate::store::Error> {
    if reply.modified.is_empty() && reply.deleted.is_empty() {
        return Ok(());
    }
    let session = ctx.client.session();
    let me = session.self_user_name();
    let mut contacts = Vec::new();
    let mut members = BTreeMap::new();
    let mut gone = reply.deleted.clone();
    for raw in &reply.modified {
        match Contact::from_raw(raw, me) {
            Some(contact) => {
                if is_group(&raw.user_name) {
                    ctx.learned_groups
                        .lock()
                        .await
                        .insert(raw.user_name.clone());
                    if !raw.member_list.is_empty() {
                        members.insert(raw.user_name.clone(), Member::list_from(&raw.member_list));
                    }
                }
                contacts.push(contact);
            }
            None => gone.push(raw.user_name.clone()),
        }
    }
    let store = &ctx.app.store;
    let written = store.upsert_contacts(&contacts, &members).await?;
    let deleted = store.mark_contacts_deleted(&gone).await?;
    store.touch_increment().await?;
    info!(
        inserted = written.inserted,
        updated = written.updated,
        memberships_changed = written.memberships_changed,
        deleted,
        "applied contact changes from webwxsync"
    );
    Ok(())
}
