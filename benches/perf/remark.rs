//! Remark op latency: `wxsync run` with default settings, while the bench
//! INSERTs rows into `pending_ops` at a steady rate from its own connection
//! (as a user's `sqlite3` would, without `.timeout`), and watches each row
//! from its commit until it reads `done`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cache::Cache;

/// The rate the rows are queued at: a script feeding edits, fast enough
/// that the queue is rarely empty for a whole poll interval, slow enough to
/// be a user's.
pub const RATE_PER_SEC: u32 = 20;
/// How often the bench looks for rows that finished: the figures' resolution.
const WATCH: Duration = Duration::from_millis(10);
/// Give up waiting for the queue after this long past the last INSERT.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

pub struct Latency {
    pub p50: Duration,
    pub p95: Duration,
    pub max: Duration,
    pub queued: usize,
    /// Rows that ended other than `done`, or never ended.
    pub not_done: usize,
    /// INSERTs refused with "database is locked" (each was retried).
    pub locked: usize,
}

/// Queues `friends.len()` remark edits and measures them; the daemon must be
/// running and past its first full sync.
pub async fn measure(cache: &mut Cache, friends: &[String]) -> anyhow::Result<Latency> {
    let interval = Duration::from_secs(1) / RATE_PER_SEC;
    let start = Instant::now();
    let mut committed: BTreeMap<i64, Instant> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(friends.len());
    let mut not_done = 0;
    let mut locked = 0;
    let mut next = 0;
    let mut last_insert = start;
    loop {
        let now = Instant::now();
        if next < friends.len() && now >= start + interval * next as u32 {
            let result = sqlx::query_scalar::<_, i64>(
                "INSERT INTO pending_ops (user_name, remark_name) VALUES (?, ?) RETURNING id",
            )
            .bind(&friends[next])
            .bind(format!("bench remark {next}"))
            .fetch_one(cache.conn())
            .await;
            match result {
                Ok(id) => {
                    last_insert = Instant::now();
                    committed.insert(id, last_insert);
                    next += 1;
                }
                Err(sqlx::Error::Database(e)) if e.message().contains("locked") => locked += 1,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some((&oldest, _)) = committed.first_key_value() {
            let finished: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, status FROM pending_ops WHERE id >= ? AND status != 'pending'",
            )
            .bind(oldest)
            .fetch_all(cache.conn())
            .await?;
            let seen = Instant::now();
            for (id, status) in finished {
                if let Some(at) = committed.remove(&id) {
                    if status == "done" {
                        latencies.push(seen - at);
                    } else {
                        not_done += 1;
                    }
                }
            }
        }
        if next == friends.len() && (committed.is_empty() || last_insert.elapsed() > DRAIN_LIMIT) {
            not_done += committed.len();
            break;
        }
        tokio::time::sleep(WATCH).await;
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Ok(Latency {
        p50: at(0.50),
        p95: at(0.95),
        max: latencies.last().copied().unwrap_or_default(),
        queued: friends.len(),
        not_done,
        locked,
    })
}
