//! `cargo bench --bench perf`: the performance benchmark. For each account size
//! (1× = 5,000 friends, 125 officials, 300 groups × 500 members) it starts
//! the simulator in this process and runs the release `wxsync` binary
//! against it as a user would: a cold full sync, fetch-only runs (the
//! floor), `wxsync avatars` at no pause (twice), no-change syncs, a sync
//! after 1 % changed, the first syncs after a new login (re-links, after
//! 1 % and 5 % changed), and the daemon while remark edits are queued (its
//! first sync a re-link too); then wechat4u 0.7.14's own fetch against the
//! same simulator as the peer figure. It prints one table with each
//! measure's target. See benches/README.md for what each figure means and
//! how it is taken.
//!
//! Environment: `WXSYNC_BENCH_SIZES` (default `1,2,4`), `WXSYNC_BENCH_REPEAT`
//! (runs of each timed measure, the cold and re-link syncs included,
//! default 3; the median is shown),
//! `WXSYNC_BENCH_OPS` (remark edits, default 1000), `WXSYNC_BENCH_PROFILE=1`
//! (`perf record` the first size's syncs), `WXSYNC_BENCH_KEEP=1` (keep the
//! work directories), `WXSYNC_BENCH_LAB=DIR` (no benchmark: the re-link lab
//! of `lab.rs` in `DIR`, at the first size, `WXSYNC_BENCH_LAB_CHANGED` of the
//! account changed, default 0.05; `WXSYNC_BENCH_LAB_SYNC=one-percent` for a
//! copy taken before the 1 % sync instead).

mod account;
mod avatars;
mod cache;
mod child;
mod lab;
mod launcher;
mod lock;
mod machine;
mod peer;
mod phases;
mod profile;
mod remark;
mod report;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wxsync::simulator::Simulator;
use wxsync::store::SyncRun;

use cache::Cache;
use child::Work;
use lock::ShmProbe;
use phases::Phases;

/// How much of the account the "1 % changed" sync finds changed.
const CHURN_RATE: f64 = 0.01;
/// How much changed between the logins of the re-link syncs.
const RELINK_RATES: [f64; 2] = [0.01, 0.05];

/// The churn seed of the `i`th re-link ([`RELINK_RATES`]) at `scale`: the
/// lab (`lab.rs`) takes the same steps with the same seeds.
fn relink_seed(scale: usize, i: usize) -> u64 {
    200 + 10 * scale as u64 + i as u64
}

struct Options {
    sizes: Vec<usize>,
    repeat: usize,
    ops: usize,
    profile: bool,
    keep: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn options() -> anyhow::Result<Options> {
    let sizes = std::env::var("WXSYNC_BENCH_SIZES").unwrap_or_else(|_| "1,2,4".into());
    let sizes = sizes
        .split(',')
        .map(
            |s| match s.trim().trim_end_matches(['x', '×']).parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("WXSYNC_BENCH_SIZES: {s:?} is not a size like 1, 2 or 4"),
            },
        )
        .collect::<anyhow::Result<Vec<_>>>()?;
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    Ok(Options {
        sizes,
        repeat: env_or("WXSYNC_BENCH_REPEAT", 3_usize)?.max(1),
        ops: env_or("WXSYNC_BENCH_OPS", 1000_usize)?.max(1),
        profile: flag("WXSYNC_BENCH_PROFILE"),
        keep: flag("WXSYNC_BENCH_KEEP"),
    })
}

/// One measured `wxsync` run.
pub struct Sample {
    pub phases: Phases,
    pub rss_kib: u64,
    /// The `sync_runs` row it recorded (not for fetch-only).
    pub run: Option<SyncRun>,
    /// Rows of `contacts` and `memberships` it wrote (counted by triggers).
    pub rewritten: Option<i64>,
    /// Of those, rows of `memberships`.
    pub member_writes: Option<i64>,
    /// Rows it added to `contact_changes`.
    pub history: Option<i64>,
}

pub struct PeerFigures {
    /// `--every-group` runs.
    pub every: Vec<peer::Fetch>,
    /// wechat4u as shipped, once.
    pub stock: peer::Fetch,
}

/// The first sync after a new login, `rate` of the account changed since
/// the previous one.
pub struct Relink {
    pub rate: f64,
    pub churned: String,
    /// The timed runs (see [`timed`]); the first, on the cache, also counted.
    pub samples: Vec<Sample>,
    pub truth: account::MemberTruth,
}

pub struct SizeResult {
    pub scale: usize,
    pub shape: String,
    pub peer: Result<PeerFigures, String>,
    /// The timed runs (see [`timed`]); the first on the cache.
    pub cold: Vec<Sample>,
    pub avatars: avatars::Avatars,
    pub fetch: Vec<Sample>,
    pub no_change: Vec<Sample>,
    pub churned: String,
    pub one_percent: Sample,
    pub changed: i64,
    pub relinks: Vec<Relink>,
    /// The daemon's resident set after its first sync (a re-link) and the
    /// remark edits.
    pub daemon_rss_kib: u64,
    pub remark: remark::Latency,
    /// Full syncs the daemon started while the edits were measured.
    pub remark_syncs: i64,
    pub profiles: Vec<(String, String)>,
}

fn main() -> anyhow::Result<()> {
    if let Some(report) = std::env::var_os(launcher::REPORT_ENV) {
        std::process::exit(launcher::run(Path::new(&report)));
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let opts = options()?;
    if let Some(dir) = std::env::var_os("WXSYNC_BENCH_LAB") {
        let rate = env_or("WXSYNC_BENCH_LAB_CHANGED", RELINK_RATES[1])?;
        let step = match std::env::var("WXSYNC_BENCH_LAB_SYNC").as_deref() {
            Err(_) | Ok("re-link") => lab::Step::Relink,
            Ok("one-percent") => lab::Step::OnePercent,
            Ok(other) => {
                bail!("WXSYNC_BENCH_LAB_SYNC: {other:?} is neither re-link nor one-percent")
            }
        };
        return lab::run(Path::new(&dir), opts.sizes[0], rate, step).await;
    }
    let machine = report::Machine::now();
    let peer = peer::install();
    if let Err(why) = &peer {
        eprintln!("wechat4u skipped: {why}");
    }
    let perf_dir = match (opts.profile, profile::available()) {
        (false, _) => None,
        (true, Ok(())) => {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-profile");
            std::fs::create_dir_all(&dir)?;
            Some(dir)
        }
        (true, Err(why)) => bail!("WXSYNC_BENCH_PROFILE=1 but {why}"),
    };
    let started = Instant::now();
    let mut results = Vec::new();
    for (i, &scale) in opts.sizes.iter().enumerate() {
        let perf = perf_dir.clone().filter(|_| i == 0);
        let result = run_size(scale, &opts, peer.as_deref().map_err(String::as_str), perf)
            .await
            .with_context(|| format!("at size {scale}×"))?;
        results.push(result);
    }
    let machine = machine.finish(started.elapsed());
    println!("{}", report::render(&machine, &opts, &results));
    if let Some(dir) = perf_dir {
        println!(
            "perf data: {} (perf report -i FILE --no-children --sort sym)",
            dir.display()
        );
    }
    Ok(())
}

fn progress(scale: usize, what: &str) {
    eprintln!("[{scale}×] {what}");
}

async fn run_size(
    scale: usize,
    opts: &Options,
    peer: Result<&Path, &str>,
    perf: Option<PathBuf>,
) -> anyhow::Result<SizeResult> {
    progress(scale, "generating the account");
    let sim = Simulator::start(
        account::sim_config(scale),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    let shape = account::describe(&sim.account());
    let dir = tempfile::Builder::new()
        .prefix(&format!("bench-{scale}x-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let mut work = child::write_config(dir.path(), &sim.base_url())?;
    work.perf = perf.clone();

    // The peer goes first: every login re-issues all user names and ends
    // the previous session, and wxsync's must stay the live one.
    let peer = match peer {
        Ok(modules) => {
            progress(scale, "wechat4u");
            peer_figures(&work, modules, &sim, opts.repeat)
                .await
                .map_err(|e| format!("wechat4u failed: {e:#}"))
        }
        Err(why) => Err(why.to_string()),
    };

    progress(scale, "wxsync login");
    work.run("login", &["login"], None).await?;
    let mut cache = Cache::open(&work.database).await?;
    let probe = ShmProbe::open(&work.database)?;

    progress(scale, "cold full sync");
    let cold = timed(&work, &mut cache, &probe, "cold", opts.repeat, false).await?;
    progress(scale, "avatars");
    let avatars = avatars::measure(&work, &mut cache, &probe, &sim).await?;
    let mut fetch = Vec::new();
    for i in 1..=opts.repeat {
        progress(scale, &format!("fetch only {i}/{}", opts.repeat));
        let label = format!("fetch-only-{i}");
        fetch.push(
            sync(
                &work,
                &mut cache,
                &probe,
                &label,
                &["sync", "--fetch-only"],
                false,
            )
            .await?,
        );
    }
    let mut no_change = Vec::new();
    for i in 1..=opts.repeat {
        progress(scale, &format!("no-change sync {i}/{}", opts.repeat));
        let label = format!("no-change-{i}");
        no_change.push(sync(&work, &mut cache, &probe, &label, &["sync"], true).await?);
    }

    progress(scale, "1 % changed");
    cache.snapshot().await?;
    let churned = account::churn(&sim, CHURN_RATE, 100 + scale as u64);
    let one_percent = sync(&work, &mut cache, &probe, "one-percent", &["sync"], true).await?;
    let changed = cache.rows_changed().await?;

    let mut relinks = Vec::new();
    for (i, rate) in RELINK_RATES.into_iter().enumerate() {
        progress(
            scale,
            &format!("re-link after {:.0} % changed", rate * 100.0),
        );
        let seed = relink_seed(scale, i);
        relinks.push(relink(&sim, &work, &mut cache, &probe, rate, seed, opts.repeat).await?);
    }

    progress(scale, "remark edits under the daemon, after a new login");
    work.run("login-daemon", &["login"], None).await?;
    let (remark, remark_syncs, daemon_rss_kib) =
        remark_latency(&work, &mut cache, opts.ops).await?;

    let mut profiles = Vec::new();
    if let Some(perf) = &perf {
        for label in ["cold", "fetch-only-1", "no-change-1", "one-percent"] {
            let summary = profile::summarize(&perf.join(format!("{label}.perf.data")))?;
            profiles.push((format!("{label}, {scale}×"), summary));
        }
    }

    cache.close().await?;
    // Only now: closing the probe's descriptor drops this process's locks
    // on the -shm file, which the bench's connection needed.
    drop(probe);
    sim.shutdown().await;
    if opts.keep {
        eprintln!("kept {}", dir.keep().display());
    }
    Ok(SizeResult {
        scale,
        shape,
        peer,
        cold,
        avatars,
        fetch,
        no_change,
        churned,
        one_percent,
        changed,
        relinks,
        daemon_rss_kib,
        remark,
        remark_syncs,
        profiles,
    })
}

async fn peer_figures(
    work: &Work,
    modules: &Path,
    sim: &Simulator,
    repeat: usize,
) -> anyhow::Result<PeerFigures> {
    let mut every = Vec::new();
    for _ in 0..repeat {
        every.push(peer::fetch(work, modules, &sim.base_url(), true).await?);
    }
    let stock = peer::fetch(work, modules, &sim.base_url(), false).await?;
    Ok(PeerFigures { every, stock })
}

/// Changes `rate` of the account, logs in again (every user name changes)
/// and measures the sync that links the cache to the new names.
async fn relink(
    sim: &Simulator,
    work: &Work,
    cache: &mut Cache,
    probe: &ShmProbe,
    rate: f64,
    seed: u64,
    repeat: usize,
) -> anyhow::Result<Relink> {
    let label = format!("relink-{:.0}", rate * 100.0);
    let before = sim.account();
    let churned = account::churn(sim, rate, seed);
    work.run(&format!("login-{label}"), &["login"], None)
        .await?;
    let truth = account::member_truth(&before, &sim.account());
    let samples = timed(work, cache, probe, &label, repeat, true).await?;
    if samples[0].run.as_ref().is_none_or(|r| r.relinked == 0) {
        bail!("{label}: the sync after a new login linked nothing");
    }
    Ok(Relink {
        rate,
        churned,
        samples,
        truth,
    })
}

/// A sync that changes the cache, timed `repeat` times: once on the cache
/// (with `count`, its writes counted as [`sync`] does), then again on byte
/// copies of the cache and its session as they were before it, each with
/// the lock watched the same way. A single run of the same sync varied by
/// up to 15 % between bench runs at the same code; the table shows the
/// median. Every run must do the same work as the first.
async fn timed(
    work: &Work,
    cache: &mut Cache,
    probe: &ShmProbe,
    label: &str,
    repeat: usize,
    count: bool,
) -> anyhow::Result<Vec<Sample>> {
    let before = work.dir.join("before.db");
    // Byte copies, not `VACUUM INTO`: a defragmented copy syncs faster
    // than the cache would. The bench's own connection is idle meanwhile.
    copy_files(&work.database, &before)?;
    let session = before.with_extension("session");
    std::fs::copy(child::session_file(&work.config)?, &session)?;
    let mut samples = vec![sync(work, cache, probe, label, &["sync"], count).await?];
    let first = samples[0].run.clone().context("a sync records its run")?;
    let copy = work.dir.join("again.db");
    for i in 2..=repeat {
        copy_files(&before, &copy)?;
        let again = work.on_copy(&copy)?;
        std::fs::copy(&session, child::session_file(&again.config)?)?;
        // The probe needs the copy's `-shm`, which a connection creates.
        let mut on_copy = Cache::open(&copy).await?;
        let copy_probe = ShmProbe::open(&copy)?;
        let done = again
            .run(&format!("{label}-{i}"), &["sync"], Some(&copy_probe))
            .await?;
        let run = on_copy.last_run().await?;
        on_copy.close().await?;
        drop(copy_probe);
        same_work(&format!("{label}: run {i} on a copy"), &run, &first)?;
        remove_copy(&again)?;
        samples.push(Sample {
            phases: phases::of(&done),
            rss_kib: done.max_rss_kib,
            run: Some(run),
            rewritten: None,
            member_writes: None,
            history: None,
        });
    }
    remove_files(&before);
    let _ = std::fs::remove_file(&session);
    Ok(samples)
}

/// Fails unless `run` (`which`, in words) reported the same work as the
/// timed `first`: two runs of the same sync from the same cache must.
fn same_work(which: &str, run: &SyncRun, first: &SyncRun) -> anyhow::Result<()> {
    let work_done = |r: &SyncRun| {
        (
            r.status.clone(),
            cache::reported_writes(r),
            r.relinked,
            r.memberships,
        )
    };
    if work_done(run) != work_done(first) {
        bail!(
            "{which} did other work than the timed one ({:?} against {:?})",
            work_done(run),
            work_done(first)
        );
    }
    Ok(())
}

/// Removes a copy [`Work::on_copy`] made: its config, session and database.
fn remove_copy(copy: &Work) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(child::session_file(&copy.config)?);
    let _ = std::fs::remove_file(&copy.config);
    remove_files(&copy.database);
    Ok(())
}

/// `path` with `suffix` appended (a database's `-wal` or `-shm`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut file = path.as_os_str().to_owned();
    file.push(suffix);
    file.into()
}

/// Copies a database and its WAL (if any) as they are.
fn copy_files(from: &Path, to: &Path) -> anyhow::Result<()> {
    remove_files(to);
    for suffix in ["", "-wal"] {
        let source = with_suffix(from, suffix);
        if source.exists() {
            std::fs::copy(&source, with_suffix(to, suffix))?;
        }
    }
    Ok(())
}

fn remove_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(path, suffix));
    }
}

/// One `wxsync sync` (or `--fetch-only`) with its lock watched; for a real
/// sync, checks the run it recorded, and with `count` the rows it wrote:
/// the same sync run again, afterwards, on a copy of the cache as it was
/// before, which triggers count on (the timed run pays for no trigger).
async fn sync(
    work: &Work,
    cache: &mut Cache,
    probe: &ShmProbe,
    label: &str,
    args: &[&str],
    count: bool,
) -> anyhow::Result<Sample> {
    let fetch_only = args.contains(&"--fetch-only");
    let copy = work.dir.join("counted.db");
    if count {
        cache.copy_to(&copy).await?;
    }
    let history_before = cache.history_rows().await?;
    let done = work.run(label, args, Some(probe)).await?;
    let run = if fetch_only {
        None
    } else {
        let run = cache.last_run().await?;
        if run.status != "ok" {
            bail!(
                "{label}: sync run {} ended {}: {}",
                run.id,
                run.status,
                run.error.as_deref().unwrap_or("")
            );
        }
        Some(run)
    };
    let (rewritten, member_writes) = match (&run, count) {
        (Some(run), true) => {
            let (all, members) = count_writes(work, &copy, label, args, run).await?;
            (Some(all), Some(members))
        }
        _ => (None, None),
    };
    Ok(Sample {
        phases: phases::of(&done),
        rss_kib: done.max_rss_kib,
        run,
        rewritten,
        member_writes,
        history: Some(cache.history_rows().await? - history_before),
    })
}

/// Runs the sync `timed` recorded again on `copy` (the cache before it),
/// with triggers counting the rows it writes; it must report the same
/// work. Returns the rows written on both tables and on `memberships`.
async fn count_writes(
    work: &Work,
    copy: &Path,
    label: &str,
    args: &[&str],
    timed: &SyncRun,
) -> anyhow::Result<(i64, i64)> {
    let counted = cache::Counted::open(copy).await?;
    let on_copy = work.on_copy(copy)?;
    on_copy.run(&format!("{label}-counted"), args, None).await?;
    let (writes, run) = counted.finish().await?;
    same_work(&format!("{label}: the counted run on a copy"), &run, timed)?;
    remove_copy(&on_copy)?;
    Ok(writes)
}

/// Starts the daemon, waits for its first full sync to end, measures the
/// queued edits, and stops it, whatever happened. Also returns how many full
/// syncs the daemon started during the measurement (its schedule may fire)
/// and its resident set after the edits.
async fn remark_latency(
    work: &Work,
    cache: &mut Cache,
    ops: usize,
) -> anyhow::Result<(remark::Latency, i64, u64)> {
    let before = cache.last_run().await?.id;
    let daemon = work.spawn("daemon", &["run"])?;
    let measured = measure_under(cache, &daemon, before, ops).await;
    daemon.terminate()?;
    // A daemon that failed says why in its stderr, which `wait` reports.
    tokio::task::spawn_blocking(move || daemon.wait()).await??;
    measured
}

async fn measure_under(
    cache: &mut Cache,
    daemon: &child::Running,
    before: i64,
    ops: usize,
) -> anyhow::Result<(remark::Latency, i64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let first = loop {
        let run = cache.last_run().await?;
        if run.id > before && run.status != "running" {
            break run;
        }
        if daemon.has_exited() {
            bail!("the daemon stopped before its first full sync ended");
        }
        if Instant::now() > deadline {
            bail!("the daemon's first full sync did not end within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if first.status != "ok" {
        bail!(
            "the daemon's first full sync ended {}: {}",
            first.status,
            first.error.unwrap_or_default()
        );
    }
    // Names of this login: the first sync linked the cache to them.
    let friends = cache.friends(ops).await?;
    let latency = remark::measure(cache, &friends).await?;
    let syncs = cache.last_run().await?.id - first.id;
    // After the edits: the sync has by then returned and let go of what
    // it held (its run row closes inside its write, before that).
    let rss = daemon.command_rss_kib()?;
    Ok((latency, syncs, rss))
}
