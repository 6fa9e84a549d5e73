//! `wxsync run`: the daemon.
//!
//! It waits for a usable session (never logging in by itself), then runs one
//! *session*: scheduled full syncs, the synccheck keepalive with increments,
//! and watches on the session file and the database file. A session ends when the server kills it
//! (the state is recorded and the daemon waits for a new `wxsync login`),
//! when `wxsync login` replaces the file (the daemon switches over), or on
//! shutdown. Every task stops through one cancellation token, and shutdown
//! waits for them at most [`STOP_GRACE`], well inside the unit's
//! `TimeoutStopSec`.
//!
//! A task that ends any other way — an error it cannot handle, a panic, or
//! returning while it was not told to stop — ends the daemon with an error
//! (a non-zero exit), so that systemd (`Restart=on-failure`) starts it again:
//! the daemon never runs on without one of its tasks while looking healthy.

mod avatars;
mod database;
mod hook;
mod keepalive;
mod notify;
mod ops;
mod push;
mod schedule;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::app::{self, App};
use crate::avatars::FetchMode;
use crate::backoff::Backoff;
use crate::memory;
use crate::sync::{self, SyncError};
use crate::webwx::{self, Client, Session, SessionState};
use crate::wording::one_line;

use hook::{Event, Hook};
use notify::Notifier;
pub use push::describe as describe_push;
use push::{Next, Pusher};

/// How often the session file is looked at (its mtime; it is read only when
/// that changed).
const SESSION_POLL: Duration = Duration::from_secs(1);

/// Retries of a failed full sync (5 s, 10 s, 20 s, 40 s by default, each
/// drawn between half and all of that) before the daemon gives up until the
/// next scheduled one.
const SYNC_RETRIES: u32 = 4;

/// How long shutdown waits for the session's tasks once they are told to
/// stop; the unit gives the whole process `TimeoutStopSec=20`.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(app: App, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = Arc::new(app);
    let db_file = Arc::new(database::DatabaseFile::identify(&app.config.database)?);
    let notifier = Notifier::from_env();
    let hook = Hook::start(
        &app.config.notify,
        app.store.clone(),
        app.config.database.clone(),
    );
    let (tick_tx, tick_rx) = mpsc::channel(1);
    let sync_running = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut scheduler = schedule::start(
        &app.config.sync.schedule,
        tick_tx.clone(),
        sync_running.clone(),
    )
    .await?;
    let ticks = Arc::new(Mutex::new(tick_rx));

    let watchdog = notifier.spawn_watchdog(shutdown.clone());
    let mut announced: Option<String> = None;
    let mut starting = true;
    let result = loop {
        let Some((client, at_once)) =
            wait_for_session(&app, &shutdown, &mut announced, &notifier, &hook).await
        else {
            break Ok(());
        };
        // The session found at start is not news; any later one is.
        if !(starting && at_once) {
            hook.fire(
                Event::LoggedIn,
                &format!(
                    "a new session (logged in at {}) was picked up; the next full sync links the cache to its names",
                    client.session().logged_in_at()
                ),
            );
        }
        starting = false;
        notifier.status("session active; syncing");
        let ctx = SessionCtx {
            app: app.clone(),
            client,
            ticks: ticks.clone(),
            resync: tick_tx.clone(),
            sync_running: sync_running.clone(),
            learned_groups: Arc::new(Mutex::new(BTreeSet::new())),
            notifier: notifier.clone(),
            hook: hook.clone(),
            avatar_work: Arc::new(Notify::new()),
            database: db_file.clone(),
        };
        match ctx.run(&shutdown).await {
            Ok(End::Shutdown) => break Ok(()),
            Ok(End::LoggedOut) => announced = None,
            Ok(End::Replaced) => info!("a new login replaced the session file; switching to it"),
            Err(e) => break Err(e),
        }
    };
    notifier.stopping();
    match tokio::time::timeout(Duration::from_secs(2), scheduler.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "scheduler did not stop cleanly"),
        Err(_) => warn!("scheduler did not stop within 2 s; leaving it"),
    }
    watchdog.abort();
    if let Err(e) = &result {
        hook.fire_and_wait(
            Event::TaskDied,
            &format!("{}; the daemon exits to be restarted", one_line(e)),
        )
        .await;
    }
    result
}

/// Returns a client for the first active session in the session file (and
/// whether it was there at the first look), or `None` on shutdown. Says
/// once (per state) why it is waiting — no file, a logged-out session, or a
/// file that cannot be read or used (its client cannot be built) — in the
/// log and as a `login_needed` event: each waits for the next
/// `wxsync login`. systemd hears READY as soon as the state is known,
/// whatever it is.
async fn wait_for_session(
    app: &App,
    shutdown: &CancellationToken,
    announced: &mut Option<String>,
    notifier: &Notifier,
    hook: &Hook,
) -> Option<(Client, bool)> {
    let mut file = FileWatch::new(app.session_path());
    let mut pusher = Pusher::new(app, hook).await;
    let mut logged_out: Option<Session> = None;
    let mut at_once = true;
    loop {
        if file.changed() {
            logged_out = None;
            let why = match file.load() {
                Ok(Some(s)) => match s.state().clone() {
                    SessionState::Active => match app.client(s) {
                        Ok(client) => {
                            notifier.ready();
                            return Some((client, at_once));
                        }
                        Err(e) => format!("the session file is unusable ({})", one_line(&e)),
                    },
                    SessionState::LoggedOut { reason, .. } => {
                        logged_out = Some(s);
                        format!("the session was logged out ({reason})")
                    }
                },
                Ok(None) => format!("no session in {}", file.path.display()),
                Err(e) => format!("the session file is unusable ({})", one_line(&e)),
            };
            let pushing = match (&pusher, &logged_out) {
                (Some(p), Some(s)) => p.next(s) != Next::Never,
                _ => false,
            };
            if announced.as_deref() != Some(why.as_str()) {
                if pushing {
                    info!("{why}; asking the phone to confirm a new login (login.push_on_logout)");
                    notifier.status(&format!(
                        "waiting: {why}; asking the phone to confirm a new login"
                    ));
                } else {
                    warn!("{why}: run `wxsync login`; waiting for a new session");
                    notifier.status(&format!("waiting: {why}; run `wxsync login`"));
                    hook.fire(
                        Event::LoginNeeded,
                        &format!("{why}: run `wxsync login`; the daemon waits for a new session"),
                    );
                }
                *announced = Some(why);
            }
            notifier.ready();
        }
        at_once = false;
        if let (Some(p), Some(previous)) = (pusher.as_mut(), &logged_out)
            && let Next::Ask { asks } = p.next(previous)
        {
            // A `wxsync login` meanwhile wins: the ask is dropped and the
            // loop picks the new session up.
            let mut watch = FileWatch::new(app.session_path());
            let replaced = async {
                loop {
                    tokio::time::sleep(SESSION_POLL).await;
                    if watch.replaced(previous.login_id()) {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = replaced => {}
                client = p.ask(previous, asks) => {
                    if let Some(client) = client {
                        return Some((client, false));
                    }
                }
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(SESSION_POLL) => {}
        }
    }
}

/// Why a session stopped.
enum End {
    Shutdown,
    LoggedOut,
    Replaced,
}

/// Everything the tasks of one session share.
#[derive(Clone)]
struct SessionCtx {
    app: Arc<App>,
    client: Client,
    /// Full-sync requests from the scheduler (capacity 1).
    ticks: Arc<Mutex<mpsc::Receiver<()>>>,
    /// Asks for a full sync outside the schedule.
    resync: mpsc::Sender<()>,
    sync_running: Arc<std::sync::atomic::AtomicBool>,
    /// Groups webwxsync told us about since login, for the next full sync.
    learned_groups: Arc<Mutex<BTreeSet<String>>>,
    notifier: Notifier,
    hook: Hook,
    /// Told after a write that may have left avatars to fetch.
    avatar_work: Arc<Notify>,
    /// The cache file opened at start, which must stay at its path.
    database: Arc<database::DatabaseFile>,
}

impl SessionCtx {
    async fn run(&self, shutdown: &CancellationToken) -> anyhow::Result<End> {
        let mut tasks = Tasks::new(shutdown.child_token());
        let (ctx, t) = (self.clone(), tasks.token());
        tasks.spawn("full sync", async move { ctx.sync_loop(&t).await });
        let (ctx, t) = (self.clone(), tasks.token());
        tasks.spawn("keepalive", async move { keepalive::run(&ctx, &t).await });
        let (ctx, t) = (self.clone(), tasks.token());
        tasks.spawn("remark queue", async move { ops::run(&ctx, &t).await });
        let (ctx, t) = (self.clone(), tasks.token());
        tasks.spawn(
            "database watch",
            async move { database::run(&ctx, &t).await },
        );
        if self.app.config.avatars.fetch != FetchMode::Off {
            let (ctx, t) = (self.clone(), tasks.token());
            tasks.spawn("avatars", async move { avatars::run(&ctx, &t).await });
        }

        let login_id = self.client.session().login_id().to_owned();
        let mut file = FileWatch::new(self.app.session_path());
        let end = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok(End::Shutdown),
                exit = tasks.exited() => match exit {
                    Exit::LoggedOut(e) => {
                        // The client has recorded the logged-out state in its
                        // session; write it out so `status` can tell.
                        self.persist();
                        error!(error = %e, "the server ended the session; every row is kept");
                        let message = match self.client.session().state() {
                            SessionState::LoggedOut { code, reason, .. } => format!(
                                "the server ended the session (code {code}: {reason}); every row is kept{}",
                                if self.app.config.login.push_on_logout {
                                    "; asking the phone to confirm a new login"
                                } else {
                                    ""
                                }
                            ),
                            SessionState::Active => format!("{e}; every row is kept"),
                        };
                        self.hook.fire(Event::LoggedOut, &message);
                        break Ok(End::LoggedOut);
                    }
                    Exit::Died(e) => {
                        error!(
                            error = %one_line(&e),
                            "a task of the daemon stopped; exiting so that it is restarted"
                        );
                        break Err(e);
                    }
                },
                _ = tokio::time::sleep(SESSION_POLL) => {
                    if file.replaced(&login_id) {
                        break Ok(End::Replaced);
                    }
                }
            }
        };
        let stuck = tasks.stop(STOP_GRACE).await;
        if !stuck.is_empty() {
            warn!(
                tasks = ?stuck,
                grace_s = STOP_GRACE.as_secs(),
                "tasks did not stop in time; abandoned (a write in progress is rolled back)"
            );
        }
        if !matches!(end, Ok(End::LoggedOut | End::Replaced)) {
            self.persist();
        }
        end
    }

    /// Writes the newest keys back to the session file (if it is still ours).
    fn persist(&self) {
        if let Err(e) = self.app.save_session_if_current(&self.client.session()) {
            warn!(error = %e, "cannot write the session file");
        }
    }

    /// One full sync at start, then one per scheduler tick. A failed sync
    /// is retried with back-off, up to [`SYNC_RETRIES`] times; when those
    /// fail too, the daemon gives up until the next tick and tells the hook
    /// (`sync_failed`, once per give-up).
    async fn sync_loop(&self, token: &CancellationToken) -> TaskResult {
        use std::sync::atomic::Ordering;
        // A whole sync is retried less eagerly than one call: 5 s by default.
        let first_retry = self.app.config.wechat.retry_delay * 10;
        let mut backoff = Backoff::new(first_retry, Duration::from_secs(600));
        let mut retry_in: Option<Duration> = Some(Duration::ZERO);
        // Whether the next sync retries a failed one: a retry never applies
        // a deletion the guard held back.
        let mut retry = false;
        loop {
            let wait = async {
                match retry_in {
                    Some(d) => tokio::time::sleep(d).await,
                    None => {
                        self.ticks.lock().await.recv().await;
                    }
                }
            };
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = wait => {}
            }
            // This sync serves every request made before it starts: a tick
            // that fired while there was no session, or a resync asked for
            // during the back-off, must not run a second sync right after.
            let mut stale = 0;
            while self.ticks.lock().await.try_recv().is_ok() {
                stale += 1;
            }
            if stale > 0 {
                debug!(
                    requests = stale,
                    "earlier full-sync requests served by this sync"
                );
            }
            self.sync_running.store(true, Ordering::SeqCst);
            let extra: Vec<String> = self.learned_groups.lock().await.iter().cloned().collect();
            let opts = sync::SyncOptions {
                retry,
                ..self.app.sync_options()
            };
            let result = sync::full_sync(&self.client, &self.app.store, &opts, &extra, token).await;
            memory::give_back();
            self.sync_running.store(false, Ordering::SeqCst);
            retry = false;
            match result {
                Ok(report) => {
                    backoff.reset();
                    retry_in = None;
                    self.persist();
                    self.avatar_work.notify_one();
                    self.notifier.status(&format!(
                        "synced {} contacts, {} groups, {} memberships",
                        report.stats.contacts, report.stats.groups, report.stats.memberships
                    ));
                }
                Err(SyncError::Cancelled) => return Ok(()),
                Err(SyncError::Protocol(e)) if e.is_session_dead() => {
                    return Err(TaskError::SessionDead(e));
                }
                // Asking again at once proves nothing: the next scheduled
                // sync is the second opinion, and only one at least
                // `sync.deletion_confirm` later can apply it.
                Err(e) if e.is_held() => {
                    warn!(error = %e, "full sync held back until the next scheduled one");
                    self.hook.fire(
                        Event::SyncHeld,
                        &format!("a full sync was held back by the deletion guard: {e}"),
                    );
                    retry_in = None;
                }
                Err(e) if backoff.attempts() < SYNC_RETRIES => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in_s = delay.as_secs(), "full sync failed; will retry");
                    retry_in = Some(delay);
                    retry = true;
                }
                // The retries gave up: the schedule is the next try, and
                // the one moment the operator hears of it.
                Err(e) => {
                    error!(error = %e, retries = SYNC_RETRIES, "full sync failed and so did its retries; waiting for the next scheduled one");
                    self.hook.fire(
                        Event::SyncFailed,
                        &format!(
                            "a full sync failed, and so did its {SYNC_RETRIES} retries: {e}; \
                             the next try is the next scheduled sync"
                        ),
                    );
                    backoff.reset();
                    retry_in = None;
                }
            }
        }
    }
}

impl SessionCtx {
    /// Whether the cache holds this login's user names. Until the first full
    /// sync of a new login has linked it, contact changes and remark edits
    /// wait: under the old names they would reach the wrong rows.
    async fn cache_linked(&self) -> Result<bool, crate::store::Error> {
        let login = self.client.session().login_id().to_owned();
        self.app.store.holds_login(&login).await
    }
}

/// Why a session task ended before it was told to stop.
#[derive(Debug)]
enum TaskError {
    /// The server ended the session: wait for a new login.
    SessionDead(webwx::Error),
    /// Anything else: the task cannot go on.
    Failed(anyhow::Error),
}

/// What every session task returns: `Ok` once it was told to stop.
type TaskResult = Result<(), TaskError>;

/// How a session's tasks ended before they were told to.
#[derive(Debug)]
enum Exit {
    LoggedOut(webwx::Error),
    /// The error names the task.
    Died(anyhow::Error),
}

/// The tasks of one session, each named for the log, sharing one
/// cancellation token.
struct Tasks {
    set: JoinSet<TaskResult>,
    names: HashMap<tokio::task::Id, &'static str>,
    token: CancellationToken,
}

impl Tasks {
    fn new(token: CancellationToken) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            names: HashMap::new(),
            token,
        }
    }

    fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = TaskResult> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    fn name(&self, id: tokio::task::Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("unnamed")
    }

    /// Waits for the first task to end while not told to stop, and says
    /// how; never returns if none does. Cancel-safe.
    async fn exited(&mut self) -> Exit {
        loop {
            let Some(joined) = self.set.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (name, outcome) = match joined {
                Ok((id, outcome)) => (self.names.remove(&id), outcome),
                Err(e) => (
                    self.names.remove(&e.id()),
                    Err(TaskError::Failed(join_failure(e))),
                ),
            };
            let name = name.unwrap_or("unnamed");
            return match outcome {
                Err(TaskError::SessionDead(e)) => Exit::LoggedOut(e),
                Err(TaskError::Failed(e)) => {
                    Exit::Died(e.context(format!("the {name} task stopped")))
                }
                // Told to stop (shutdown reached it first): not a death.
                Ok(()) if self.token.is_cancelled() => continue,
                Ok(()) => Exit::Died(anyhow!("the {name} task stopped by itself")),
            };
        }
    }

    /// Tells every task to stop and waits for them, at most `grace`; the
    /// ones still running then are aborted, and their names returned.
    async fn stop(mut self, grace: Duration) -> Vec<&'static str> {
        self.token.cancel();
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = self.set.join_next_with_id().await {
                let id = match joined {
                    Ok((id, _)) => id,
                    Err(e) => {
                        let id = e.id();
                        warn!(
                            task = self.name(id),
                            error = %join_failure(e),
                            "a task failed while stopping"
                        );
                        id
                    }
                };
                self.names.remove(&id);
            }
        })
        .await;
        if drained.is_ok() {
            return Vec::new();
        }
        self.set.abort_all();
        let mut stuck: Vec<_> = self.names.into_values().collect();
        stuck.sort_unstable();
        stuck
    }
}

/// A task that panicked (or was aborted), in words.
fn join_failure(e: tokio::task::JoinError) -> anyhow::Error {
    if !e.is_panic() {
        return anyhow!("it was aborted");
    }
    let panic = e.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    anyhow!("it panicked: {message}")
}

/// Tells when the session file may have changed, so that it is read only
/// then: by its inode (every write renames a new file into place) and its
/// mtime. The mtime alone missed a `wxsync login` landing within the same
/// clock tick as the daemon's own write of the logged-out state: the
/// kernel stamps files from a coarse clock.
struct FileWatch {
    path: PathBuf,
    /// `None` before the first look; `Some(None)` while there is no file.
    seen: Option<Option<(u64, SystemTime)>>,
}

impl FileWatch {
    fn new(path: PathBuf) -> FileWatch {
        FileWatch { path, seen: None }
    }

    /// True on the first call and whenever the file moved since the last.
    fn changed(&mut self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::metadata(&self.path)
            .and_then(|m| Ok((m.ino(), m.modified()?)))
            .ok();
        self.seen.replace(now) != Some(now)
    }

    fn load(&self) -> anyhow::Result<Option<Session>> {
        app::load_session_file(&self.path)
    }

    /// Whether the file changed to hold another login than `login_id`.
    fn replaced(&mut self, login_id: &str) -> bool {
        self.changed() && matches!(self.load(), Ok(Some(s)) if s.login_id() != login_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_file_replaced_within_one_clock_tick_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session");
        std::fs::write(&path, "logged out").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut watch = FileWatch::new(path.clone());
        assert!(watch.changed(), "the first look is news");
        assert!(!watch.changed());
        // A new login renamed into place, stamped with the same time.
        let next = dir.path().join("next");
        std::fs::write(&next, "active").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&next)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
    }

    fn tasks() -> Tasks {
        Tasks::new(CancellationToken::new())
    }

    /// `exited`, or a panic if no task ends (time is paused: no wall clock).
    async fn exited(t: &mut Tasks) -> Exit {
        tokio::time::timeout(Duration::from_secs(3600), t.exited())
            .await
            .expect("a task ended")
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_reported_by_name() {
        let mut t = tasks();
        let token = t.token();
        t.spawn("patient", async move {
            token.cancelled().await;
            Ok(())
        });
        t.spawn("remark queue", async { panic!("interval of zero") });
        let Exit::Died(e) = exited(&mut t).await else {
            panic!("not a death");
        };
        let text = one_line(&e);
        assert!(text.contains("the remark queue task stopped"), "{text}");
        assert!(text.contains("panicked: interval of zero"), "{text}");
        assert!(t.stop(STOP_GRACE).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_unasked_or_fails_is_a_death_and_a_dead_session_a_logout() {
        let mut t = tasks();
        t.spawn("keepalive", async { Ok(()) });
        let Exit::Died(e) = exited(&mut t).await else {
            panic!("not a death");
        };
        assert_eq!(one_line(&e), "the keepalive task stopped by itself");

        t.spawn("full sync", async {
            Err(TaskError::Failed(anyhow!("cannot watch the queue")))
        });
        let Exit::Died(e) = exited(&mut t).await else {
            panic!("not a death");
        };
        assert_eq!(
            one_line(&e),
            "the full sync task stopped: cannot watch the queue"
        );

        t.spawn("keepalive", async {
            Err(TaskError::SessionDead(webwx::Error::SessionDead {
                code: 1101,
                endpoint: "synccheck",
            }))
        });
        assert!(matches!(exited(&mut t).await, Exit::LoggedOut(e) if e.is_session_dead()));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_the_grace_then_abandons_a_task_that_ignores_it() {
        let mut t = tasks();
        let token = t.token();
        t.spawn("obedient", async move {
            token.cancelled().await;
            Ok(())
        });
        t.spawn("stubborn", async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        let started = tokio::time::Instant::now();
        assert_eq!(t.stop(STOP_GRACE).await, vec!["stubborn"]);
        assert_eq!(
            started.elapsed(),
            STOP_GRACE,
            "paused time: exactly the grace"
        );
    }
}
