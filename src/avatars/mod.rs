//! Avatars kept in the cache. An avatar URL works only with the session's
//! cookies and dies with the session, so wxsync fetches the images while it
//! holds one and keeps them, content-addressed (`avatars`), across logins.
//!
//! A [`Fetcher`] round asks the store which live contacts lack their image
//! or hold one fetched for another `seq` (a re-link keeps the image: the
//! seq survives logins), fetches those one at a time with
//! `[avatars] pause` between requests (at pause 0, a few in flight), and
//! stores them in small batches, each holding the write lock for well under
//! a millisecond of SQLite's work ([`AvatarWriter`]).
//! A body that is empty, not an image, cut short or over 1 MiB is not
//! stored; that contact is tried again later with back-off. Several
//! failures in a row end the round early (a session the server no longer
//! serves answers every request with an empty body), and a dead session
//! ends it at once. The daemon runs rounds in the background; `wxsync
//! avatars` in the foreground.

pub mod image;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::store::{self, AvatarImage, AvatarWanted, AvatarWriter, Store};
use crate::webwx::{self, Client};
use image::Refusal;

/// Which avatars are fetched (`[avatars] fetch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FetchMode {
    /// Every live contact's (friends, groups, official and special accounts,
    /// the account itself).
    #[default]
    Contacts,
    /// None: the daemon fetches nothing and `wxsync avatars` refuses.
    Off,
}

impl FetchMode {
    /// The value of `[avatars] fetch`.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchMode::Contacts => "contacts",
            FetchMode::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<FetchMode> {
        [FetchMode::Contacts, FetchMode::Off]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// How avatars are fetched.
#[derive(Clone, Debug)]
pub struct AvatarOptions {
    pub fetch: FetchMode,
    /// Between two avatar requests.
    pub pause: Duration,
    /// First delay before a contact whose image was refused is tried again;
    /// it doubles, with jitter, up to an hour.
    pub retry_base: Duration,
}

impl Default for AvatarOptions {
    fn default() -> Self {
        AvatarOptions {
            fetch: FetchMode::Contacts,
            pause: Duration::from_millis(500),
            retry_base: Duration::from_secs(5),
        }
    }
}

/// Fetched images are written once this many are waiting, or once the
/// oldest has waited [`FLUSH_AFTER`]. Each image costs the write about
/// 50 µs of lock (its pages and two index entries), and a batch's fixed
/// cost is small, so larger batches would lengthen the lock, not shorten
/// the fetch.
const BATCH: usize = 8;
/// Requests in flight at `pause = "0s"`: the live server takes a few at
/// once, and they keep both the network and the write busy.
const UNPACED_IN_FLIGHT: usize = 4;
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// A round ends after this many failures in a row.
const STALL: u32 = 5;
const RETRY_CAP: Duration = Duration::from_secs(3600);

/// Why a contact has no image (yet).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The server answered, but not with a storable image.
    Refused(Refusal),
    /// The call failed (network, HTTP status), in words.
    Call(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Refused(r) => r.fmt(f),
            Reason::Call(e) => f.write_str(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server ended the session: nothing more is fetched.
    #[error(transparent)]
    Session(webwx::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cancelled")]
    Cancelled,
}

struct Failure {
    reason: Reason,
    backoff: Backoff,
    next_try: Instant,
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Contacts whose image was missing or out of date when it began.
    pub wanted: usize,
    /// Requests it made.
    pub requests: usize,
    /// Images written (one whose contact's URL changed meanwhile is not).
    pub stored: usize,
    pub failed: usize,
    /// It ended early after [`STALL`] failures in a row.
    pub stalled: bool,
    /// The longest write of its batches (the write lock, and the wait for
    /// SQLite's thread around it).
    pub longest_write: Duration,
}

/// Progress of a round, for a progress bar.
pub enum Progress {
    /// A round begins with this many requests to make.
    Begin(usize),
    /// One request done.
    Step,
}

/// Fetches avatars round by round, remembering which contacts failed and
/// when each may be tried again.
pub struct Fetcher {
    opts: AvatarOptions,
    /// The daemon's "a full sync is running" flag: requests wait while it is
    /// set, so avatars never slow a sync down.
    yield_to: Option<Arc<AtomicBool>>,
    /// Contacts are not tried more often than this (`wxsync avatars`).
    max_attempts: Option<u32>,
    failures: HashMap<i64, Failure>,
}

impl Fetcher {
    pub fn new(
        opts: AvatarOptions,
        yield_to: Option<Arc<AtomicBool>>,
        max_attempts: Option<u32>,
    ) -> Fetcher {
        Fetcher {
            opts,
            yield_to,
            max_attempts,
            failures: HashMap::new(),
        }
    }

    /// When the earliest failed contact may be tried again (`None`: no
    /// contact is waiting for a retry).
    pub fn next_retry(&self) -> Option<Instant> {
        self.failures
            .values()
            .filter(|f| self.may_retry(f))
            .map(|f| f.next_try)
            .min()
    }

    fn may_retry(&self, f: &Failure) -> bool {
        self.max_attempts
            .is_none_or(|max| f.backoff.attempts() < max)
    }

    /// Why each of these contacts has no image, as far as this fetcher
    /// knows; counts by reason.
    pub fn reasons(&self, contacts: &[AvatarWanted]) -> Vec<(String, usize)> {
        tally(contacts.iter().map(|w| {
            self.failures
                .get(&w.contact_id)
                .map_or_else(|| "not fetched yet".to_owned(), |f| f.reason.to_string())
        }))
    }

    /// Why the contacts whose image was refused or not reached have none;
    /// counts by reason.
    pub fn failure_reasons(&self) -> Vec<(String, usize)> {
        tally(self.failures.values().map(|f| f.reason.to_string()))
    }

    /// One round: every wanted contact that is not waiting for a retry.
    pub async fn round(
        &mut self,
        client: &Client,
        store: &Store,
        token: &CancellationToken,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Round, FetchError> {
        let wanted = store.avatars_wanted().await?;
        let ids: std::collections::HashSet<i64> = wanted.iter().map(|w| w.contact_id).collect();
        self.failures.retain(|id, _| ids.contains(id));
        drop(ids);
        let mut round = Round {
            wanted: wanted.len(),
            ..Round::default()
        };
        // The round can last hours (a new avatar for most of a big account,
        // one a pause apart): only the due ones are held.
        let now = Instant::now();
        let due: Vec<AvatarWanted> = wanted
            .into_iter()
            .filter(|w| {
                self.failures
                    .get(&w.contact_id)
                    .is_none_or(|f| self.may_retry(f) && f.next_try <= now)
            })
            .collect();
        progress(Progress::Begin(due.len()));
        let mut writer = store.avatar_writer();
        let mut batch: Vec<AvatarImage> = Vec::new();
        let mut oldest: Option<Instant> = None;
        let mut in_a_row = 0;
        let pause = self.opts.pause;
        let yield_to = self.yield_to.clone();
        let yield_to = yield_to.as_deref();
        // Unpaced, the next requests are in flight while a reply is checked
        // and stored; paced, one at a time with the pause between them.
        let in_flight = if pause.is_zero() {
            UNPACED_IN_FLIGHT
        } else {
            1
        };
        let mut replies = stream::iter(due.into_iter().enumerate())
            .map(|(i, w)| async move {
                if i > 0 {
                    wait(pause, token).await?;
                }
                wait_for_sync(yield_to, token).await?;
                let outcome = fetch(client, &w).await?;
                Ok::<_, FetchError>((w, outcome))
            })
            .buffered(in_flight);
        let result = async {
            loop {
                let next = tokio::select! {
                    _ = token.cancelled() => return Err(FetchError::Cancelled),
                    next = replies.next() => next,
                };
                let Some(next) = next else { break };
                let (w, outcome) = next?;
                round.requests += 1;
                progress(Progress::Step);
                match outcome {
                    Ok(image) => {
                        self.failures.remove(&w.contact_id);
                        in_a_row = 0;
                        batch.push(image);
                        oldest.get_or_insert_with(Instant::now);
                    }
                    Err(reason) => {
                        round.failed += 1;
                        in_a_row += 1;
                        self.fail(w.contact_id, reason);
                    }
                }
                if batch.len() >= BATCH || oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER) {
                    round.stored +=
                        flush(&mut writer, &mut batch, &mut round.longest_write).await?;
                    oldest = None;
                }
                if in_a_row >= STALL {
                    round.stalled = true;
                    break;
                }
            }
            Ok(())
        }
        .await;
        // What was fetched is kept, also when the round was cut short.
        round.stored += flush(&mut writer, &mut batch, &mut round.longest_write).await?;
        writer.finish().await?;
        result.map(|()| round)
    }

    fn fail(&mut self, contact_id: i64, reason: Reason) {
        let failure = self.failures.entry(contact_id).or_insert_with(|| Failure {
            reason: reason.clone(),
            backoff: Backoff::new(self.opts.retry_base, RETRY_CAP),
            next_try: Instant::now(),
        });
        failure.reason = reason;
        failure.next_try = Instant::now() + failure.backoff.next_delay();
    }
}

/// Counts by reason, the most frequent first.
fn tally(reasons: impl Iterator<Item = String>) -> Vec<(String, usize)> {
    let mut by: HashMap<String, usize> = HashMap::new();
    for reason in reasons {
        *by.entry(reason).or_default() += 1;
    }
    let mut by: Vec<_> = by.into_iter().collect();
    by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by
}

/// "3: the server sent an empty body; 1: …".
pub fn describe_reasons(reasons: &[(String, usize)]) -> String {
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n}: {r}")).collect();
    parts.join("; ")
}

async fn wait(d: Duration, token: &CancellationToken) -> Result<(), FetchError> {
    if d.is_zero() {
        return Ok(());
    }
    tokio::select! {
        _ = token.cancelled() => Err(FetchError::Cancelled),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}

/// Waits while the daemon runs a full sync (`running` set).
async fn wait_for_sync(
    running: Option<&AtomicBool>,
    token: &CancellationToken,
) -> Result<(), FetchError> {
    while running.is_some_and(|r| r.load(Ordering::SeqCst)) {
        wait(Duration::from_millis(100), token).await?;
    }
    Ok(())
}

/// Fetches and checks one image. `Err` only for a dead session.
async fn fetch(
    client: &Client,
    w: &AvatarWanted,
) -> Result<Result<AvatarImage, Reason>, FetchError> {
    let bytes = match client.avatar(&w.head_img_url, image::MAX_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_session_dead() => return Err(FetchError::Session(e)),
        Err(webwx::Error::TooLarge { .. }) => return Ok(Err(Reason::Refused(Refusal::TooLarge))),
        Err(e) => return Ok(Err(Reason::Call(e.to_string()))),
    };
    Ok(match image::check(&bytes) {
        Ok(mime) => Ok(AvatarImage {
            contact_id: w.contact_id,
            head_img_url: w.head_img_url.clone(),
            seq: w.seq.clone(),
            sha256: image::sha256_hex(&bytes),
            mime,
            image: bytes,
        }),
        Err(refusal) => Err(Reason::Refused(refusal)),
    })
}

async fn flush(
    writer: &mut AvatarWriter,
    batch: &mut Vec<AvatarImage>,
    longest: &mut Duration,
) -> Result<usize, FetchError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let (written, took) = writer.save(batch).await?;
    tracing::debug!(
        images = written,
        write_us = took.as_micros() as u64,
        "avatars stored"
    );
    *longest = (*longest).max(took);
    batch.clear();
    Ok(written)
}
