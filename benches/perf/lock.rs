//! Watching SQLite's write lock from outside, without taking it.
//!
//! In WAL mode a writer holds an exclusive POSIX lock on one byte of the
//! `-shm` file (`WAL_WRITE_LOCK`, byte 120: SQLite's `UNIX_SHM_BASE`) for as
//! long as its write transaction lasts; it is exactly what makes a user's
//! `sqlite3 … "INSERT …"` wait or fail with "database is locked". `F_GETLK`
//! asks the kernel whether another process holds it, so probing changes
//! nothing for the writer (a probing `BEGIN IMMEDIATE` would make wxsync's own
//! writes wait).
//!
//! POSIX locks belong to the process: closing *any* descriptor of the file
//! drops every lock this process holds on it, including those of the bench's
//! own SQLite connection. So the probe is opened once, after that connection
//! (which keeps the `-shm` file alive between wxsync runs), and dropped only
//! after the connection is closed.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

/// `WAL_WRITE_LOCK`'s byte in the `-shm` file.
const WRITE_LOCK_BYTE: libc::off_t = 120;
/// How often the lock is looked at; also the figure's resolution.
const PERIOD: Duration = Duration::from_millis(1);

pub struct ShmProbe {
    shm: Arc<File>,
}

/// A running watch; [`Watch::stop`] returns the longest stretch the lock was
/// seen held.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<Duration>>,
}

impl ShmProbe {
    /// `database`'s `-shm` file must exist (a connection has it open).
    pub fn open(database: &Path) -> anyhow::Result<ShmProbe> {
        let path = crate::with_suffix(database, "-shm");
        let shm = File::open(&path).with_context(|| format!("cannot open {path:?}"))?;
        Ok(ShmProbe { shm: Arc::new(shm) })
    }

    /// Whether another process holds the write lock now.
    fn held(file: &File) -> std::io::Result<bool> {
        // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = WRITE_LOCK_BYTE;
        fl.l_len = 1;
        // SAFETY: the descriptor is open for the life of `file`, and `fl` is
        // a valid `flock` that F_GETLK only reads and overwrites.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
        if r == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }

    pub fn watch(&self) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let (shm, done) = (self.shm.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut longest = Duration::ZERO;
            let mut since: Option<Instant> = None;
            while !done.load(Ordering::Relaxed) {
                let now = Instant::now();
                match (Self::held(&shm)?, since) {
                    (true, None) => since = Some(now),
                    (true, Some(t)) => longest = longest.max(now - t),
                    (false, Some(_)) => since = None,
                    (false, None) => {}
                }
                std::thread::sleep(PERIOD);
            }
            Ok(longest)
        });
        Watch { stop, thread }
    }
}

impl Watch {
    pub fn stop(self) -> anyhow::Result<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let longest = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the lock probe panicked"))??;
        Ok(longest)
    }
}
