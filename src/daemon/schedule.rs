//! Full-sync ticks from tokio-cron-scheduler. The scheduler spawns every
//! activation and never skips one that overlaps, so a job only
//! asks the sync loop for a run, and a tick that finds a sync running is
//! dropped with a log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{debug, info};

/// Starts the scheduler; each tick sends on `ticks` unless a sync is running
/// or one is already queued.
pub(super) async fn start(
    schedule: &str,
    ticks: mpsc::Sender<()>,
    running: Arc<AtomicBool>,
) -> anyhow::Result<JobScheduler> {
    crate::config::parse_schedule(schedule)
        .map_err(|e| anyhow::anyhow!("sync.schedule {schedule:?}: {e}"))?;
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async(schedule, move |_, _| {
        let ticks = ticks.clone();
        let running = running.clone();
        Box::pin(async move {
            if running.load(Ordering::SeqCst) {
                info!("scheduled full sync skipped: the previous one is still running");
            } else if ticks.try_send(()).is_err() {
                info!("scheduled full sync skipped: one is already waiting to start");
            } else {
                debug!("scheduled full sync requested");
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
