//! `cargo bench --bench sync`: a big account against the simulator, in
//! process, with the default pacing. Prints how long a full sync takes (cold
//! and with nothing changed), the process's peak memory, and how long a
//! queued remark edit takes from the user's INSERT to `done` under the
//! daemon with the default `ops.poll_interval`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wxsync::app::App;
use wxsync::config::Config;
use wxsync::simulator::{SimConfig, SimKind, Simulator};
use wxsync::{daemon, sync, webwx};

const EDITS: usize = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let account = SimConfig {
        seed: 11,
        friends: 5_000,
        officials: 50,
        saved_groups: 150,
        unsaved_groups: 50,
        max_group_members: 500,
        page_size: 1_000,
        long_poll: Duration::from_secs(25),
        auto_confirm: true,
        ..SimConfig::default()
    };
    println!(
        "account: {} friends, {} officials, {} saved + {} unsaved groups of up to {} members",
        account.friends,
        account.officials,
        account.saved_groups,
        account.unsaved_groups,
        account.max_group_members
    );
    let sim = Simulator::start(account, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        database: dir.path().join("bench.db"),
        ..Config::default()
    };
    config.wechat.login_url = sim.base_url();
    let app = App::open(config).await?;

    let (client, _) = webwx::login(&app.login_options(), |_| {}).await?;
    client.session().save(&app.session_path())?;
    let never = CancellationToken::new();
    for label in [
        "first full sync (all rows new)",
        "second full sync (nothing changed)",
    ] {
        let t = Instant::now();
        let report = sync::full_sync(&client, &app.store, &app.sync_options(), &[], &never).await?;
        println!(
            "{label}: {:.2} s — {} contacts, {} groups, {} memberships; {} inserted, {} updated",
            t.elapsed().as_secs_f64(),
            report.stats.contacts,
            report.stats.groups,
            report.stats.memberships,
            report.counts.inserted,
            report.counts.updated
        );
    }
    println!(
        "  (batch_pause {:?} between the {} batch calls is included)",
        app.config.wechat.batch_pause,
        200_usize.div_ceil(50)
    );

    let friends: Vec<String> = sim
        .account()
        .contacts
        .into_iter()
        .filter(|c| c.kind == SimKind::Friend)
        .map(|c| c.user_name)
        .take(EDITS)
        .collect();
    let db = app.config.database.clone();
    let poll = app.config.ops.poll_interval;
    let stop = CancellationToken::new();
    let running = tokio::spawn(daemon::run(app, stop.clone()));
    let user =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
            .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut latencies = Vec::new();
    for (i, friend) in friends.iter().enumerate() {
        let t = Instant::now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO pending_ops (user_name, remark_name) VALUES (?, ?) RETURNING id",
        )
        .bind(friend)
        .bind(format!("bench remark {i}"))
        .fetch_one(&user)
        .await?;
        loop {
            let status: String = sqlx::query_scalar("SELECT status FROM pending_ops WHERE id = ?")
                .bind(id)
                .fetch_one(&user)
                .await?;
            if status != "pending" {
                anyhow::ensure!(status == "done", "op {id} ended {status}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(137)).await;
    }
    latencies.sort();
    println!(
        "remark edit, INSERT → verified done (poll_interval {poll:?}, {EDITS} edits): median {:.0} ms, max {:.0} ms",
        latencies[EDITS / 2].as_secs_f64() * 1e3,
        latencies[EDITS - 1].as_secs_f64() * 1e3
    );
    stop.cancel();
    running.await??;
    println!(
        "peak resident memory of this process (daemon + simulator + account): {}",
        peak_rss()
    );
    sim.shutdown().await;
    Ok(())
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
