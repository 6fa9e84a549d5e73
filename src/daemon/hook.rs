//! The notify hook (`[notify] command`): a program the daemon runs on the
//! events an operator must hear about — the session ended, a sync failed,
//! a remark edit failed, the daemon is about to die.
//!
//! Firing never waits: events go to a small queue that one worker drains,
//! one run at a time, each killed (with its process group) after
//! `notify.timeout`. The same event fires at most once per `notify.repeat`.
//! A hook that fails, hangs or is missing costs a log line, nothing more.
//! The hook's environment carries the event, a one-line message, the
//! database path and the account's nick name — never a credential.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::NotifyConfig;
use crate::store::Store;
use crate::telemetry::escape;

/// Events waiting for the worker; more are dropped (with a log line).
const QUEUE: usize = 32;

/// What the hook is told about, as `WXSYNC_EVENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The server ended the session.
    LoggedOut,
    /// The daemon picked up a new session.
    LoggedIn,
    /// Only a person running `wxsync login` can bring the session back.
    LoginNeeded,
    /// The daemon asked the phone to confirm a new login.
    PushLoginSent,
    /// A full sync failed and so did its retries: the daemon gave up
    /// until the next scheduled one.
    SyncFailed,
    /// The deletion guard held a full sync back.
    SyncHeld,
    /// A remark edit ended `failed`, or `unverified` (the message says
    /// which).
    OpFailed,
    /// A task of the daemon died; the daemon exits non-zero.
    TaskDied,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::LoggedOut => "logged_out",
            Event::LoggedIn => "logged_in",
            Event::LoginNeeded => "login_needed",
            Event::PushLoginSent => "push_login_sent",
            Event::SyncFailed => "sync_failed",
            Event::SyncHeld => "sync_held",
            Event::OpFailed => "op_failed",
            Event::TaskDied => "task_died",
        }
    }
}

struct Job {
    event: Event,
    message: String,
    /// Told when the run is over (for [`Hook::fire_and_wait`]).
    done: Option<oneshot::Sender<()>>,
}

/// A handle that fires events; cheap to clone. Without a configured
/// command it does nothing.
#[derive(Clone)]
pub struct Hook {
    queue: Option<mpsc::Sender<Job>>,
    /// When each event last went to the queue.
    last: Arc<Mutex<HashMap<Event, Instant>>>,
    repeat: Duration,
    timeout: Duration,
}

impl Hook {
    /// Starts the worker if a command is configured.
    pub fn start(config: &NotifyConfig, store: Store, database: PathBuf) -> Hook {
        let queue = config.command.clone().map(|command| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let runner = Runner {
                command,
                timeout: config.timeout,
                store,
                database: std::path::absolute(&database).unwrap_or(database),
            };
            tokio::spawn(runner.work(rx));
            tx
        });
        Hook {
            queue,
            last: Arc::default(),
            repeat: config.repeat,
            timeout: config.timeout,
        }
    }

    /// Queues `event` unless it fired within `notify.repeat`; never waits.
    pub fn fire(&self, event: Event, message: &str) {
        self.queue_job(event, message, None);
    }

    /// Fires `event` and waits for its run to end (at most the timeout and
    /// a little): for the last word before the daemon exits.
    pub async fn fire_and_wait(&self, event: Event, message: &str) {
        let (tx, rx) = oneshot::channel();
        if self.queue_job(event, message, Some(tx)) {
            // Runs queued before this one may each take the timeout too.
            let _ = tokio::time::timeout(self.timeout * 2 + Duration::from_secs(1), rx).await;
        }
    }

    fn queue_job(&self, event: Event, message: &str, done: Option<oneshot::Sender<()>>) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        let now = Instant::now();
        {
            let mut last = self.last.lock().expect("hook bookkeeping");
            if let Some(at) = last.get(&event)
                && now.duration_since(*at) < self.repeat
            {
                debug!(
                    event = event.name(),
                    "notify hook not run: the same event ran it within notify.repeat"
                );
                return false;
            }
            last.insert(event, now);
        }
        let job = Job {
            event,
            message: escape(message).into_owned(),
            done,
        };
        match queue.try_send(job) {
            Ok(()) => true,
            Err(_) => {
                warn!(
                    event = event.name(),
                    "notify hook not run: {QUEUE} events are already waiting for it"
                );
                false
            }
        }
    }
}

/// The worker's side: runs one job at a time.
struct Runner {
    command: Vec<String>,
    timeout: Duration,
    store: Store,
    database: PathBuf,
}

impl Runner {
    async fn work(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            self.run(&job).await;
            if let Some(done) = job.done {
                let _ = done.send(());
            }
        }
    }

    async fn run(&self, job: &Job) {
        let event = job.event.name();
        let program = &self.command[0];
        let account = self.store.own_nick_name().await.unwrap_or_else(|e| {
            debug!(error = %e, "cannot read the account's nick name for the notify hook");
            String::new()
        });
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.command[1..])
            .env("WXSYNC_EVENT", event)
            .env("WXSYNC_MESSAGE", &job.message)
            .env("WXSYNC_DATABASE", &self.database)
            .env("WXSYNC_ACCOUNT", &account)
            // systemd's sockets are the daemon's, not the hook's.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout kills what it started.
            .process_group(0)
            .kill_on_drop(true);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                warn!(event, hook = %escape(program), error = %e, "the notify hook cannot run");
                return;
            }
        };
        let group = child.id();
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {
                info!(event, "notify hook ran");
            }
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let said = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                warn!(event, hook = %escape(program), status = %out.status, stderr = %escape(said), "the notify hook failed");
            }
            Ok(Err(e)) => {
                warn!(event, hook = %escape(program), error = %e, "the notify hook failed");
            }
            Err(_) => {
                if let Some(pid) = group.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: killpg has no memory effects; the group is the
                    // hook's own (process_group(0) above).
                    unsafe { libc::killpg(pid, libc::SIGKILL) };
                }
                warn!(
                    event,
                    hook = %escape(program),
                    timeout_s = self.timeout.as_secs(),
                    "the notify hook did not finish within notify.timeout; killed"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(repeat: Duration) -> (Hook, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let hook = Hook {
            queue: Some(tx),
            last: Arc::default(),
            repeat,
            timeout: Duration::from_secs(30),
        };
        (hook, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_event_fires_once_per_repeat_and_others_are_not_held_back() {
        let (hook, mut rx) = hook(Duration::from_secs(3600));
        hook.fire(Event::LoggedOut, "first");
        hook.fire(Event::LoggedOut, "second");
        hook.fire(Event::LoggedIn, "in");
        tokio::time::advance(Duration::from_secs(3600)).await;
        hook.fire(Event::LoggedOut, "an hour later");
        let mut got = Vec::new();
        while let Ok(job) = rx.try_recv() {
            got.push((job.event, job.message));
        }
        assert_eq!(
            got,
            [
                (Event::LoggedOut, "first".to_owned()),
                (Event::LoggedIn, "in".to_owned()),
                (Event::LoggedOut, "an hour later".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn the_last_word_waits_for_its_run_and_names_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cache.db");
        let store = Store::open(&db).await.unwrap();
        let out = dir.path().join("heard");
        let config = NotifyConfig {
            command: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo \"$WXSYNC_EVENT|$WXSYNC_MESSAGE|$WXSYNC_DATABASE\" > {out:?}"),
            ]),
            ..NotifyConfig::default()
        };
        let hook = Hook::start(&config, store, db.clone());
        hook.fire_and_wait(Event::TaskDied, "the keepalive task stopped")
            .await;
        let heard = std::fs::read_to_string(&out).expect("the hook ran before the wait ended");
        assert_eq!(
            heard.trim_end(),
            format!("task_died|the keepalive task stopped|{}", db.display())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_instead_of_waiting_and_messages_are_one_line() {
        let (hook, mut rx) = hook(Duration::ZERO);
        for _ in 0..QUEUE + 5 {
            hook.fire(Event::OpFailed, "line one\nline two");
        }
        let mut n = 0;
        while let Ok(job) = rx.try_recv() {
            assert_eq!(job.message, "line one\\nline two");
            n += 1;
        }
        assert_eq!(n, QUEUE);
    }
}
