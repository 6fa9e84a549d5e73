//! The avatar figures: right after the cold full sync, `wxsync avatars` at
//! `pause = "0s"` fetches every contact's image (its wall time against the
//! sync's, its peak RSS, the longest write lock seen from outside), then a
//! second run, which should make no request.

use std::time::Duration;

use wxsync::simulator::{Endpoint, Simulator};

use crate::cache::Cache;
use crate::child::Work;
use crate::lock::ShmProbe;

pub struct Avatars {
    pub wall: Duration,
    pub rss_kib: u64,
    /// Longest stretch the write lock was seen held during the first run.
    pub lock: Duration,
    pub requests: usize,
    pub stored: i64,
    /// Live contacts with an avatar URL.
    pub contacts: i64,
    /// Requests the second run made.
    pub again: usize,
    pub again_wall: Duration,
}

fn avatar_calls(sim: &Simulator) -> usize {
    sim.calls()
        .iter()
        .filter(|c| matches!(c.endpoint, Endpoint::GetIcon | Endpoint::GetHeadImg))
        .count()
}

/// The same work with `[avatars] pause = "0s"` in a config of its own.
fn unpaced(work: &Work) -> anyhow::Result<Work> {
    let config = work.dir.join("wxsync-avatars.toml");
    let mut text = std::fs::read_to_string(&work.config)?;
    text.push_str("\n[avatars]\npause = \"0s\"\n");
    std::fs::write(&config, text)?;
    Ok(Work {
        dir: work.dir.clone(),
        config,
        database: work.database.clone(),
        perf: None,
    })
}

pub async fn measure(
    work: &Work,
    cache: &mut Cache,
    probe: &ShmProbe,
    sim: &Simulator,
) -> anyhow::Result<Avatars> {
    let work = unpaced(work)?;
    let before = avatar_calls(sim);
    let first = work.run("avatars", &["avatars"], Some(probe)).await?;
    let requests = avatar_calls(sim) - before;
    let again = work.run("avatars-again", &["avatars"], Some(probe)).await?;
    let (stored, contacts) = counts(cache).await?;
    Ok(Avatars {
        wall: first.wall,
        rss_kib: first.max_rss_kib,
        lock: first.lock,
        requests,
        stored,
        contacts,
        again: avatar_calls(sim) - before - requests,
        again_wall: again.wall,
    })
}

async fn counts(cache: &mut Cache) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM avatars),
                (SELECT count(*) FROM contacts WHERE deleted_at IS NULL AND head_img_url != '')",
    )
    .fetch_one(cache.conn())
    .await?)
}
