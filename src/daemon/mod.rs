//! `wxsync run`: the daemon.
//!
//! It waits for a usable session (never logging in by itself), then runs one
//! *session*: scheduled full syncs, the synccheck keepalive with increments,
//! and a watch on the session file. A session ends when the server kills it
//! (the state is recorded and the daemon waits for a new `wxsync login`),
//! when `wxsync login` replaces the file (the daemon switches over), or on
//! shutdown. Every task stops through one cancellation token.

mod keepalive;
mod notify;
mod ops;
mod schedule;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::app::App;
use crate::backoff::Backoff;
use crate::sync::{self, SyncError};
use crate::webwx::{self, Client, Session, SessionState};

pub use notify::Notifier;

/// How often the session file is looked at (its mtime; it is read only when
/// that changed).
const SESSION_POLL: Duration = Duration::from_secs(1);

/// Waits for SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; stopping"),
        _ = int.recv() => info!("SIGINT received; stopping"),
    }
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(app: App, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = Arc::new(app);
    let notifier = Notifier::from_env();
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
    let result = loop {
        let Some(session) = wait_for_session(&app, &shutdown, &mut announced, &notifier).await
        else {
            break Ok(());
        };
        notifier.status("session active; syncing");
        let ctx = SessionCtx {
            app: app.clone(),
            client: app.client(session)?,
            ticks: ticks.clone(),
            resync: tick_tx.clone(),
            sync_running: sync_running.clone(),
            learned_groups: Arc::new(Mutex::new(BTreeSet::new())),
            notifier: notifier.clone(),
        };
        match ctx.run(&shutdown).await {
            Ok(End::Shutdown) => break Ok(()),
            Ok(End::LoggedOut) => announced = None,
            Ok(End::Replaced) => info!("a new login replaced the session file; switching to it"),
            Err(e) => break Err(e),
        }
    };
    notifier.stopping();
    if let Err(e) = scheduler.shutdown().await {
        warn!(error = %e, "scheduler did not stop cleanly");
    }
    watchdog.abort();
    result
}

/// Returns the first active session in the session file, or `None` on
/// shutdown. Says once (per state) why it is waiting. systemd hears READY as
/// soon as the state is known, whatever it is.
async fn wait_for_session(
    app: &App,
    shutdown: &CancellationToken,
    announced: &mut Option<String>,
    notifier: &Notifier,
) -> Option<Session> {
    let mut file = FileWatch::new(app.session_path());
    loop {
        if file.changed() {
            let why = match file.load() {
                Ok(Some(s)) => match s.state() {
                    SessionState::Active => {
                        notifier.ready();
                        return Some(s);
                    }
                    SessionState::LoggedOut { reason, .. } => {
                        format!("the session was logged out ({reason})")
                    }
                },
                Ok(None) => format!("no session in {}", file.path.display()),
                Err(e) => format!("the session file is unusable ({e})"),
            };
            if announced.as_deref() != Some(why.as_str()) {
                warn!("{why}: run `wxsync login`; waiting for a new session");
                notifier.status(&format!("waiting: {why}; run `wxsync login`"));
                *announced = Some(why);
            }
            notifier.ready();
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
}

impl SessionCtx {
    async fn run(&self, shutdown: &CancellationToken) -> anyhow::Result<End> {
        let token = shutdown.child_token();
        let (dead_tx, mut dead_rx) = mpsc::channel::<webwx::Error>(4);
        let tasks = TaskTracker::new();
        let (ctx, t) = (self.clone(), token.clone());
        tasks.spawn(report_death(dead_tx.clone(), async move {
            ctx.sync_loop(&t).await
        }));
        let (ctx, t) = (self.clone(), token.clone());
        tasks.spawn(report_death(dead_tx.clone(), async move {
            keepalive::run(&ctx, &t).await
        }));
        let (ctx, t) = (self.clone(), token.clone());
        tasks.spawn(report_death(
            dead_tx,
            async move { ops::run(&ctx, &t).await },
        ));
        tasks.close();

        let login_id = self.client.session().login_id().to_owned();
        let mut file = FileWatch::new(self.app.session_path());
        let end = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break End::Shutdown,
                Some(e) = dead_rx.recv() => {
                    // The client has recorded the logged-out state in its
                    // session; write it out so `status` can tell.
                    self.persist();
                    error!(error = %e, "the server ended the session; every row is kept");
                    break End::LoggedOut;
                }
                _ = tokio::time::sleep(SESSION_POLL) => {
                    let replaced = file.changed()
                        && matches!(file.load(), Ok(Some(s)) if s.login_id() != login_id);
                    if replaced {
                        break End::Replaced;
                    }
                }
            }
        };
        token.cancel();
        tasks.wait().await;
        if matches!(end, End::Shutdown) {
            self.persist();
        }
        Ok(end)
    }

    /// Writes the newest keys back to the session file (if it is still ours).
    fn persist(&self) {
        if let Err(e) = self.app.save_session_if_current(&self.client.session()) {
            warn!(error = %e, "cannot write the session file");
        }
    }

    /// One full sync at start, then one per scheduler tick; on a transient
    /// failure, retries with back-off instead of waiting for the next tick.
    async fn sync_loop(&self, token: &CancellationToken) -> Result<(), webwx::Error> {
        use std::sync::atomic::Ordering;
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(600));
        let mut retry_in: Option<Duration> = Some(Duration::ZERO);
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
            self.sync_running.store(true, Ordering::SeqCst);
            let extra: Vec<String> = self.learned_groups.lock().await.iter().cloned().collect();
            let result = sync::full_sync(
                &self.client,
                &self.app.store,
                &self.app.sync_options(),
                &extra,
                token,
            )
            .await;
            self.sync_running.store(false, Ordering::SeqCst);
            match result {
                Ok(report) => {
                    backoff.reset();
                    retry_in = None;
                    self.persist();
                    self.notifier.status(&format!(
                        "synced {} contacts, {} groups, {} memberships",
                        report.stats.contacts, report.stats.groups, report.stats.memberships
                    ));
                }
                Err(SyncError::Cancelled) => return Ok(()),
                Err(SyncError::Protocol(e)) if e.is_session_dead() => return Err(e),
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in_s = delay.as_secs(), "full sync failed; will retry");
                    retry_in = Some(delay);
                }
            }
        }
    }
}

/// Runs one of a session's tasks; a dead session it ends with is passed on.
async fn report_death(
    dead: mpsc::Sender<webwx::Error>,
    task: impl Future<Output = Result<(), webwx::Error>>,
) {
    if let Err(e) = task.await {
        let _ = dead.send(e).await;
    }
}

/// Tells when the session file may have changed (its mtime), so that it is
/// read only then.
struct FileWatch {
    path: PathBuf,
    /// `None` before the first look; `Some(None)` while there is no file.
    mtime: Option<Option<SystemTime>>,
}

impl FileWatch {
    fn new(path: PathBuf) -> FileWatch {
        FileWatch { path, mtime: None }
    }

    /// True on the first call and whenever the mtime moved since the last.
    fn changed(&mut self) -> bool {
        let now = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        self.mtime.replace(now) != Some(now)
    }

    fn load(&self) -> Result<Option<Session>, webwx::SessionError> {
        Session::load(&self.path)
    }
}
