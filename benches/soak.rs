//! `cargo bench --bench soak`: the daemon left alone through forced
//! logouts, with a notify hook and push login on.
//!
//! It starts the simulator in this process (the phone confirms push logins
//! by itself), logs in once with `wxsync login --qr`, and runs the release
//! daemon with `[notify] command` (a script appending each event to a file,
//! `repeat = "0s"` so every event runs it) and `[login] push_on_logout`.
//! Then, every interval, the server ends the session (`force_logout(1101)`)
//! and one remark edit is queued. The daemon must ask the phone, resume on
//! the new session, re-link the cache and apply the edit, each time.
//!
//! It samples the daemon's RSS (`VmRSS`) every second and prints, per
//! cycle, the RSS once the cycle's re-link is done and once it settled (the
//! last sample before the next logout), the cycle's peak, the requests
//! the simulator received in it and the daemon's threads and open files
//! then, and checks that
//! nothing was lost: every contact row of the first sync still live under
//! its `contact_id`, the membership count unchanged, every edit `done`, and
//! one `logged_out`, `push_login_sent` and `logged_in` per cycle.
//!
//! Environment: `WXSYNC_SOAK_CYCLES` (default 10), `WXSYNC_SOAK_INTERVAL`
//! (default `60s`).

#[path = "perf/machine.rs"]
mod machine;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;
use wxsync::simulator::{SimConfig, SimKind, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_wxsync");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cycles: usize = std::env::var("WXSYNC_SOAK_CYCLES")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(10);
    let interval = std::env::var("WXSYNC_SOAK_INTERVAL")
        .ok()
        .map(|v| humantime::parse_duration(&v))
        .transpose()?
        .unwrap_or(Duration::from_secs(60));
    println!(
        "soak: {cycles} forced logouts, one every {}; {}; load average {}",
        humantime::format_duration(interval),
        machine::cpu_model(),
        machine::load_average()
    );

    let sim = Simulator::start(
        SimConfig {
            long_poll: Duration::from_secs(25),
            ..SimConfig::default()
        },
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("soak.db");
    let events = dir.path().join("events");
    let hook = dir.path().join("hook");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$WXSYNC_EVENT\" >> {events:?}\n"),
    )?;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    let config = dir.path().join("wxsync.toml");
    std::fs::write(
        &config,
        format!(
            "database = {db:?}\n[wechat]\nlogin_url = \"{}\"\n[ops]\npoll_interval = \"200ms\"\n\
             [notify]\ncommand = {hook:?}\nrepeat = \"0s\"\n\
             [login]\npush_on_logout = true\npush_wait = \"30s\"\n",
            sim.base_url()
        ),
    )?;
    let login = tokio::process::Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "login", "--qr"])
        .output()
        .await?;
    ensure!(login.status.success(), "login failed: {login:?}");

    let log = std::fs::File::create(dir.path().join("daemon.log"))?;
    let mut daemon = tokio::process::Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let pid = daemon.id().context("daemon pid")?;
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&db)).await?;

    wait_for(&pool, FULL_SYNCS, 1, &mut daemon).await?;
    let first: BTreeSet<i64> =
        sqlx::query_scalar("SELECT contact_id FROM contacts WHERE deleted_at IS NULL")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect();
    let memberships: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships")
        .fetch_one(&pool)
        .await?;
    let started = Instant::now();
    let rss0 = rss_kb(pid)?;
    println!(
        "after the first sync: {} contacts, {memberships} memberships, RSS {:.1} MB",
        first.len(),
        mb(rss0)
    );
    println!(
        "| cycle | at | resumed in | RSS after re-link | RSS settled | peak RSS in cycle | requests | threads, open files |"
    );
    println!("|---|---|---|---|---|---|---|---|");

    let mut peaks = Vec::new();
    let mut settled_series = Vec::new();
    tokio::time::sleep_until((started + interval).into()).await;
    for cycle in 1..=cycles {
        let requests_before = sim.calls().len();
        let friend = sim
            .account()
            .contacts
            .into_iter()
            .find(|c| c.kind == SimKind::Friend)
            .context("a friend")?
            .user_name;
        let logged_out_at = Instant::now();
        sim.force_logout(1101);
        sqlx::query("INSERT INTO pending_ops (user_name, remark_name) VALUES (?, ?)")
            .bind(&friend)
            .bind(format!("soak {cycle}"))
            .execute(&pool)
            .await?;
        wait_for(&pool, RELINKS, cycle as i64, &mut daemon).await?;
        let resumed = logged_out_at.elapsed();
        let rss = rss_kb(pid)?;
        // Settled: the last sample before the next logout is due.
        let due = started + interval * (cycle as u32 + 1);
        let (mut peak, mut settled) = (rss, rss);
        while Instant::now() < due {
            settled = rss_kb(pid)?;
            peak = peak.max(settled);
            tokio::time::sleep(Duration::from_secs(1).min(due - Instant::now())).await;
        }
        peaks.push(peak);
        settled_series.push(settled);
        let (threads, fds) = handles(pid)?;
        println!(
            "| {cycle} | {:.0} s | {:.1} s | {:.1} MB | {:.1} MB | {:.1} MB | {} | {threads}, {fds} |",
            logged_out_at.duration_since(started).as_secs_f64(),
            resumed.as_secs_f64(),
            mb(rss),
            mb(settled),
            mb(peak),
            sim.calls().len() - requests_before
        );
    }
    // Let the last edit settle, then stop the daemon.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(&pool).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end_rss = rss_kb(pid)?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = daemon.wait().await?;

    let live: BTreeSet<i64> =
        sqlx::query_scalar("SELECT contact_id FROM contacts WHERE deleted_at IS NULL")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect();
    let memberships_end: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships")
        .fetch_one(&pool)
        .await?;
    let ops: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM pending_ops GROUP BY status")
            .fetch_all(&pool)
            .await?;
    let relinked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM contact_changes WHERE change = 'relinked'")
            .fetch_one(&pool)
            .await?;
    let heard = std::fs::read_to_string(&events).unwrap_or_default();
    let count = |e: &str| heard.lines().filter(|l| *l == e).count();
    let half = peaks.len() / 2;
    let first_half = peaks[..half].iter().max().copied().unwrap_or(0);
    let second_half = peaks[half..].iter().max().copied().unwrap_or(0);
    let settled_first = settled_series[..half].iter().sum::<u64>() / half.max(1) as u64;
    let settled_second =
        settled_series[half..].iter().sum::<u64>() / (settled_series.len() - half).max(1) as u64;
    println!();
    println!(
        "RSS: {:.1} MB after the first sync, {:.1} MB at the end; peak {:.1} MB in the first half of the cycles, {:.1} MB in the second; settled {:.1} MB on average in the first half, {:.1} MB in the second",
        mb(rss0),
        mb(end_rss),
        mb(first_half),
        mb(second_half),
        mb(settled_first),
        mb(settled_second)
    );
    println!(
        "rows: {} live contacts at the first sync, {} at the end, {} of the first missing; memberships {memberships} → {memberships_end}; {relinked} relinked rows",
        first.len(),
        live.len(),
        first.difference(&live).count()
    );
    println!("remark edits by status: {ops:?}");
    println!(
        "hook runs: logged_out {}, push_login_sent {}, logged_in {}, login_needed {}, other {}",
        count("logged_out"),
        count("push_login_sent"),
        count("logged_in"),
        count("login_needed"),
        heard.lines().count()
            - count("logged_out")
            - count("push_login_sent")
            - count("logged_in")
            - count("login_needed")
    );
    println!(
        "daemon exit: {status}; load average {}",
        machine::load_average()
    );
    ensure!(
        first.is_subset(&live),
        "contacts of the first sync were lost"
    );
    ensure!(memberships_end == memberships, "memberships changed");
    ensure!(
        ops == [("done".to_owned(), cycles as i64)],
        "not every edit was applied: {ops:?}"
    );
    for e in ["logged_out", "push_login_sent", "logged_in"] {
        ensure!(
            count(e) == cycles,
            "{e}: {} hook runs for {cycles} cycles",
            count(e)
        );
    }
    ensure!(status.success(), "the daemon did not stop cleanly");
    sim.shutdown().await;
    Ok(())
}

/// Successful full syncs.
const FULL_SYNCS: &str = "SELECT count(*) FROM sync_runs WHERE status = 'ok'";
/// Successful full syncs that re-linked a new login (scheduled ones do not).
const RELINKS: &str = "SELECT count(*) FROM sync_runs WHERE status = 'ok' AND relinked > 0";

/// Waits until `count` reaches `n`; fails if the daemon exits or nothing
/// happens for 5 minutes.
async fn wait_for(
    pool: &SqlitePool,
    count: &'static str,
    n: i64,
    daemon: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ok: i64 = sqlx::query_scalar(count).fetch_one(pool).await.unwrap_or(0);
        if ok >= n {
            return Ok(());
        }
        if let Some(status) = daemon.try_wait()? {
            bail!("the daemon exited: {status}");
        }
        if Instant::now() > deadline {
            bail!("`{count}` did not reach {n} within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pending(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM pending_ops WHERE status = 'pending'")
            .fetch_one(pool)
            .await?,
    )
}

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    proc_status(pid, "VmRSS:")
}

/// The daemon's threads and open file descriptors: a task, connection or
/// file left behind by each session would show here.
fn handles(pid: u32) -> anyhow::Result<(u64, usize)> {
    let fds = std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("fd"))?.count();
    Ok((proc_status(pid, "Threads:")?, fds))
}

/// A number from `/proc/PID/status`.
fn proc_status(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| field.to_owned())
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}
