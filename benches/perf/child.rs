//! Running the release `wxsync` binary as a child process, the way a user
//! does, and measuring that process alone: its wall time, CPU time and own
//! peak RSS (through the [`launcher`](crate::launcher), so neither the bench
//! nor the simulator in it counts), and how long it held the cache's write
//! lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use crate::launcher::{self, Usage};
use crate::lock::{ShmProbe, Watch};

/// wxsync's own info lines, plus the protocol client's debug line per reply
/// (bytes and milliseconds), which the phase breakdown reads.
const LOG_FILTER: &str = "info,wxsync::webwx::client=debug,sqlx=warn,hyper=warn,reqwest=warn";

/// Where a child's config lives and its output goes.
pub struct Work {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub database: PathBuf,
    /// `perf record` each `wxsync sync` into this directory (profile mode).
    pub perf: Option<PathBuf>,
}

/// A finished child.
pub struct Finished {
    pub started: SystemTime,
    pub wall: Duration,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Longest stretch the write lock was seen held (zero without a probe).
    pub lock: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// A child still running (the daemon).
pub struct Running {
    /// The launcher's pid.
    pid: libc::pid_t,
    label: String,
    watch: Option<Watch>,
    stdout: PathBuf,
    stderr: PathBuf,
    report: PathBuf,
}

/// Where the config at `config` keeps the login session.
pub fn session_file(config: &Path) -> anyhow::Result<PathBuf> {
    Ok(wxsync::config::Config::load(Some(config))?.session_file())
}

impl Work {
    /// `wxsync --config … ARGS`; under `perf record` in profile mode.
    fn wxsync(&self, label: &str, args: &[&str]) -> Command {
        let bin = env!("CARGO_BIN_EXE_wxsync");
        let perf = self.perf.as_ref().filter(|_| args.first() == Some(&"sync"));
        let mut cmd = match perf {
            Some(dir) => {
                let mut c = Command::new("perf");
                c.args(crate::profile::RECORD)
                    .arg("-o")
                    .arg(dir.join(format!("{label}.perf.data")))
                    .arg("--")
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--config").arg(&self.config).args(args);
        // `wxsync avatars` has no phase breakdown: it logs as a user's does
        // (a debug line per image request would only slow it down).
        if args.first() == Some(&"avatars") {
            cmd.env_remove("RUST_LOG");
        } else {
            cmd.env("RUST_LOG", LOG_FILTER);
        }
        cmd
    }

    /// Starts `cmd` through the launcher, its output into `label`.out/.err
    /// in the work directory.
    fn start(
        &self,
        label: &str,
        cmd: Command,
        probe: Option<&ShmProbe>,
    ) -> anyhow::Result<Running> {
        let stdout = self.dir.join(format!("{label}.out"));
        let stderr = self.dir.join(format!("{label}.err"));
        let report = self.dir.join(format!("{label}.usage"));
        let mut launch = Command::new(std::env::current_exe()?);
        launch
            .env(launcher::REPORT_ENV, &report)
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => launch.env(k, v),
                None => launch.env_remove(k),
            };
        }
        let watch = probe.map(ShmProbe::watch);
        let child = launch
            .spawn()
            .with_context(|| format!("cannot start {label}"))?;
        Ok(Running {
            pid: child.id() as libc::pid_t,
            label: label.to_string(),
            watch,
            stdout,
            stderr,
            report,
        })
    }

    /// The same work on a copy of the cache at `database`, in a config of
    /// its own, with a copy of the session (the same login, and the same
    /// sync key, so the server answers the same).
    pub fn on_copy(&self, database: &Path) -> anyhow::Result<Work> {
        let config = database.with_extension("toml");
        let text = std::fs::read_to_string(&self.config)?;
        // `write_config` puts the database on the first line.
        let (_, rest) = text
            .split_once('\n')
            .context("the config has one line only")?;
        std::fs::write(
            &config,
            format!("database = \"{}\"\n{rest}", database.display()),
        )?;
        std::fs::copy(session_file(&self.config)?, session_file(&config)?)?;
        Ok(Work {
            dir: self.dir.clone(),
            config,
            database: database.to_owned(),
            perf: None,
        })
    }

    /// Starts `wxsync ARGS` (the daemon) and leaves it running.
    pub fn spawn(&self, label: &str, args: &[&str]) -> anyhow::Result<Running> {
        self.start(label, self.wxsync(label, args), None)
    }

    /// Runs `wxsync ARGS` to its end; fails if it exits non-zero.
    pub async fn run(
        &self,
        label: &str,
        args: &[&str],
        probe: Option<&ShmProbe>,
    ) -> anyhow::Result<Finished> {
        let running = self.start(label, self.wxsync(label, args), probe)?;
        // On a blocking thread: the simulator keeps serving on the runtime.
        tokio::task::spawn_blocking(move || running.wait()).await?
    }

    /// Runs any other command to its end, the same way.
    pub async fn run_command(&self, label: &str, cmd: Command) -> anyhow::Result<Finished> {
        let running = self.start(label, cmd, None)?;
        tokio::task::spawn_blocking(move || running.wait()).await?
    }
}

impl Running {
    /// Asks the child to stop, as systemd does.
    pub fn terminate(&self) -> anyhow::Result<()> {
        // SAFETY: kill has no memory effects; the pid is our unreaped child.
        if unsafe { libc::kill(self.pid, libc::SIGTERM) } == -1 {
            return Err(std::io::Error::last_os_error()).context("cannot signal the daemon");
        }
        Ok(())
    }

    /// The resident set of the command the launcher started, now, in KiB.
    pub fn command_rss_kib(&self) -> anyhow::Result<u64> {
        let children = format!("/proc/{0}/task/{0}/children", self.pid);
        let text = std::fs::read_to_string(&children).with_context(|| children.clone())?;
        let pid = text
            .split_whitespace()
            .next()
            .with_context(|| format!("{} has no command running", self.label))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS for {}", self.label))
    }

    /// Whether the child has ended (without reaping it).
    pub fn has_exited(&self) -> bool {
        // SAFETY: an all-zero `siginfo_t` is a valid value of this C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child
        // unreaped for `wait`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (si_pid stays 0 while it runs).
        r == 0 && unsafe { info.si_pid() } != 0
    }

    /// Reaps the launcher and reads its report on the command.
    pub fn wait(self) -> anyhow::Result<Finished> {
        let mut status = 0;
        loop {
            // SAFETY: `status` is valid for writes; the pid is our own child,
            // which std's `Child` (dropped unwaited) never reaps.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).with_context(|| format!("cannot wait for {}", self.label));
            }
        }
        let lock = match self.watch {
            Some(w) => w.stop()?,
            None => Duration::ZERO,
        };
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let usage = Usage::read(&self.report);
        let usage = match usage {
            Ok(u) if u.succeeded() => u,
            Ok(u) => bail!(
                "{} failed (wait status {}); its stderr ends:\n{}",
                self.label,
                u.status,
                tail(&stderr, 20)
            ),
            Err(e) => bail!(
                "{}: no report from the launcher ({e}); stderr ends:\n{}",
                self.label,
                tail(&stderr, 20)
            ),
        };
        Ok(Finished {
            started: usage.started,
            wall: usage.wall,
            max_rss_kib: usage.max_rss_kib,
            cpu: usage.cpu,
            lock,
            stdout,
            stderr,
        })
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Writes the config every child reads: the cache in `dir`, the simulator's
/// URL, and no pause between batch calls.
pub fn write_config(dir: &Path, login_url: &url::Url) -> anyhow::Result<Work> {
    let database = dir.join("cache.db");
    let config = dir.join("wxsync.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"{}\"\n\n[wechat]\nlogin_url = \"{login_url}\"\nbatch_pause = \"0s\"\n",
            database.display()
        ),
    )?;
    Ok(Work {
        dir: dir.to_owned(),
        config,
        database,
        perf: None,
    })
}
