//! systemd's notify protocol (`Type=notify`): READY once the store is open and
//! the session state is known, STATUS lines, WATCHDOG pings, STOPPING. Every
//! call is a no-op without `NOTIFY_SOCKET`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

#[derive(Clone, Debug)]
pub struct Notifier {
    enabled: bool,
    ready_sent: Arc<AtomicBool>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            ready_sent: Arc::new(AtomicBool::new(false)),
        }
    }

    fn send(&self, state: &[NotifyState]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(state)
        {
            debug!(error = %e, "cannot notify systemd");
        }
    }

    /// READY=1, the first time only.
    pub fn ready(&self) {
        if !self.ready_sent.swap(true, Ordering::SeqCst) {
            self.send(&[NotifyState::Ready]);
        }
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// Pings the watchdog at half its interval while `token` is live; does
    /// nothing when systemd asked for no watchdog.
    pub fn spawn_watchdog(&self, token: CancellationToken) -> JoinHandle<()> {
        let interval = sd_notify::watchdog_enabled().filter(|_| self.enabled);
        let this = self.clone();
        tokio::spawn(async move {
            let Some(interval) = interval else { return };
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => this.send(&[NotifyState::Watchdog]),
                }
            }
        })
    }
}
