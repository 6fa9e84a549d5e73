//! The re-link lab (`WXSYNC_BENCH_LAB=DIR`): one account, synced cold and
//! again after 1 % changed, as the benchmark does, then changed again and
//! logged in anew — and the cache copied aside just before the first sync
//! of that login, which re-links it (or, with [`Step::OnePercent`], just
//! before the 1 % sync). As in the benchmark, a re-link after more than
//! 1 % changed follows one after 1 %. The simulator then keeps serving
//! until Ctrl-C, so that sync can be run again from the same copy as often
//! as needed: with each build, under `perf`, with the statement log.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use wxsync::simulator::Simulator;

use crate::{CHURN_RATE, RELINK_RATES, account, child, relink_seed};

/// Files of the cache and its session, copied into `DIR/before`.
const FILES: [&str; 4] = [
    "cache.db",
    "cache.db-wal",
    "cache.db-shm",
    "cache.db.session",
];

/// The sync the lab's copy is taken before.
#[derive(Clone, Copy)]
pub enum Step {
    /// The 1 % sync after the cold one.
    OnePercent,
    /// The first sync after the new login.
    Relink,
}

pub async fn run(dir: &Path, scale: usize, rate: f64, step: Step) -> anyhow::Result<()> {
    let sim = Simulator::start(
        account::sim_config(scale),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    std::fs::create_dir_all(dir)?;
    let work = child::write_config(dir, &sim.base_url())?;
    for (label, args) in [("login", &["login"][..]), ("cold", &["sync"])] {
        work.run(label, args, None).await?;
    }
    let churned = account::churn(&sim, CHURN_RATE, 100 + scale as u64);
    let ready = match step {
        Step::OnePercent => format!("1 % lab ready at {scale}× ({churned} since the last sync)"),
        Step::Relink => {
            work.run("one-percent", &["sync"], None).await?;
            // As in the benchmark: a re-link after 1 % changed comes first,
            // and the one after more changed follows it.
            let mut seed = relink_seed(scale, 0);
            if rate > RELINK_RATES[0] {
                account::churn(&sim, RELINK_RATES[0], seed);
                work.run("login-first", &["login"], None).await?;
                work.run("relink-first", &["sync"], None).await?;
                seed = relink_seed(scale, 1);
            }
            let churned = account::churn(&sim, rate, seed);
            work.run("login-again", &["login"], None).await?;
            format!("re-link lab ready at {scale}× ({churned} since the last sync)")
        }
    };
    keep(dir, &work.config, &ready)?;
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}

/// Copies the cache and its session into `DIR/before` and says how to run
/// the sync from that copy.
fn keep(dir: &Path, config: &Path, ready: &str) -> anyhow::Result<()> {
    let before = dir.join("before");
    std::fs::create_dir_all(&before)?;
    for file in FILES {
        let from = dir.join(file);
        if from.exists() {
            std::fs::copy(&from, before.join(file))?;
        }
    }
    let (dir, config) = (dir.display(), config.display());
    eprintln!(
        "{ready}. Each run:\n  \
         cp {dir}/before/* {dir}/ && wxsync --config {config} sync\n\
         Ctrl-C stops the simulator."
    );
    Ok(())
}
