//! The daemon's avatar fetch: a round after each full sync and after each
//! increment that wrote contacts, and again when a refused image is due for
//! a retry. Requests wait while a full sync runs, and each batch of images
//! takes the write lock for milliseconds, so syncs, increments and remark
//! edits are never held up. After a restart, the first full sync's round
//! picks up whatever is still missing.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{SessionCtx, TaskError, TaskResult};
use crate::avatars::{FetchError, Fetcher};

/// Runs until `token` is cancelled (`Ok`) or the server ends the session.
pub(super) async fn run(ctx: &SessionCtx, token: &CancellationToken) -> TaskResult {
    let opts = ctx.app.avatar_options();
    let store_retry = opts.retry_base;
    let mut fetcher = Fetcher::new(opts, Some(ctx.sync_running.clone()), None);
    let mut retry_at: Option<Instant> = None;
    loop {
        let due = async {
            match retry_at {
                Some(at) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = ctx.avatar_work.notified() => {}
                },
                None => ctx.avatar_work.notified().await,
            }
        };
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = due => {}
        }
        match ctx.cache_linked().await {
            Ok(true) => {}
            // Under the previous login's names every URL is dead; the full
            // sync that links the cache starts the next round.
            Ok(false) => {
                retry_at = None;
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cannot read the cache; avatars wait");
                retry_at = Some(Instant::now() + store_retry);
                continue;
            }
        }
        match fetcher
            .round(&ctx.client, &ctx.app.store, token, &mut |_| {})
            .await
        {
            Ok(round) => {
                retry_at = fetcher.next_retry();
                if round.requests == 0 {
                    debug!(missing = round.wanted, "no avatar due");
                    continue;
                }
                let why = crate::avatars::describe_reasons(&fetcher.failure_reasons());
                info!(
                    requests = round.requests,
                    stored = round.stored,
                    failed = round.failed,
                    why = (round.failed > 0).then_some(why),
                    stalled = round.stalled,
                    longest_write_ms = round.longest_write.as_millis() as u64,
                    retry_in_s =
                        retry_at.map(|at| at.saturating_duration_since(Instant::now()).as_secs()),
                    "avatar round done"
                );
            }
            Err(FetchError::Cancelled) => return Ok(()),
            Err(FetchError::Session(e)) => return Err(TaskError::SessionDead(e)),
            Err(FetchError::Store(e)) => {
                warn!(error = %e, "cannot store avatars; trying again later");
                retry_at = Some(Instant::now() + store_retry.max(Duration::from_secs(1)));
            }
        }
    }
}
