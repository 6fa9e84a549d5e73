//! The bench binary, re-run as a small launcher for each measured command.
//!
//! A process's `ru_maxrss` cannot be read from its parent when the parent is
//! big: at `execve` Linux folds the outgoing address space's high-water mark
//! into the new program's, and a child spawned by the bench starts from the
//! bench's (simulator and its account included, hundreds of MB). The
//! launcher is a fresh exec of this binary, a few MB, so the command it
//! spawns starts from that and `wait4` reports the command's own peak. The
//! launcher writes `STATUS MAXRSS_KIB CPU_US WALL_US STARTED_UNIX_US` to the file named by
//! [`REPORT_ENV`] and passes SIGTERM on to the command.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set on the launcher: where to write its report. Its presence makes the
/// bench binary a launcher.
pub const REPORT_ENV: &str = "WXSYNC_BENCH_REPORT_TO";

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and touches no memory of ours.
        unsafe { libc::kill(pid, signal) };
    }
}

/// What the launcher reports about the command it ran.
pub struct Usage {
    /// The raw wait status.
    pub status: libc::c_int,
    pub max_rss_kib: u64,
    pub cpu: Duration,
    pub wall: Duration,
    /// When the command was spawned.
    pub started: SystemTime,
}

impl Usage {
    pub fn read(path: &Path) -> anyhow::Result<Usage> {
        let text = std::fs::read_to_string(path)?;
        let n: Vec<i64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [status, rss, cpu, wall, started] = n[..] else {
            anyhow::bail!("the launcher's report {text:?} is not five numbers");
        };
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Usage {
            status: status as libc::c_int,
            max_rss_kib: u64::try_from(rss).unwrap_or(0),
            cpu: us(cpu),
            wall: us(wall),
            started: UNIX_EPOCH + us(started),
        })
    }

    pub fn succeeded(&self) -> bool {
        let exited_ok = libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0;
        let stopped =
            libc::WIFSIGNALED(self.status) && libc::WTERMSIG(self.status) == libc::SIGTERM;
        exited_ok || stopped
    }
}

/// Runs the command in this process's arguments and reports on it; returns
/// the exit code for the launcher.
pub fn run(report: &Path) -> i32 {
    match launch(report) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench launcher: {e:#}");
            1
        }
    }
}

fn launch(report: &Path) -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let program = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("no command to run"))?;
    // SAFETY: `forward` only loads an atomic and calls kill.
    unsafe { libc::signal(libc::SIGTERM, forward as *const () as libc::sighandler_t) };
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let clock = Instant::now();
    let child = Command::new(&program)
        .args(args)
        .env_remove(REPORT_ENV)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    CHILD.store(pid, Ordering::Relaxed);
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes; the pid is our
        // own child, which std's `Child` (dropped unwaited) never reaps.
        if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
    let wall = clock.elapsed();
    let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    std::fs::write(
        report,
        format!(
            "{status} {} {} {} {}\n",
            usage.ru_maxrss,
            us(usage.ru_utime) + us(usage.ru_stime),
            wall.as_micros(),
            started.as_micros()
        ),
    )?;
    Ok(())
}
