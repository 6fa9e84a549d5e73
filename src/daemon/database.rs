//! The database watch. The daemon keeps writing to the file it opened; if
//! that file is removed, or another file takes its path (an `rm`, a backup
//! restored over it), every later write goes where nobody reads it, and a
//! `wxsync status` meanwhile creates an empty cache at the path. The watch
//! notices within a second and ends the daemon with an error
//! (`task_died`, a non-zero exit), so that a restart opens what is at the
//! path now.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{SessionCtx, TaskError, TaskResult};

/// How often the path is looked at (one `stat`).
const POLL: Duration = Duration::from_secs(1);

/// The database file the daemon opened, by device and inode.
#[derive(Clone, Debug)]
pub(super) struct DatabaseFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl DatabaseFile {
    pub(super) fn identify(path: &Path) -> anyhow::Result<DatabaseFile> {
        let m = std::fs::metadata(path)
            .with_context(|| format!("cannot look at the database {}", path.display()))?;
        Ok(DatabaseFile {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Why the file at the path is no longer the one opened, in words.
    fn lost(&self) -> Option<String> {
        let path = self.path.display();
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == (self.dev, self.ino) => None,
            Ok(_) => Some(format!(
                "the database {path} was replaced by another file while the daemon ran"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "the database {path} was removed while the daemon ran"
            )),
            // Cannot tell (a permission changed on the way): not proof.
            Err(e) => {
                debug!(error = %e, "cannot look at the database file");
                None
            }
        }
    }
}

/// Runs until `token` is cancelled (`Ok`) or the file is lost (`Err`).
pub(super) async fn run(ctx: &SessionCtx, token: &CancellationToken) -> TaskResult {
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
        if let Some(why) = ctx.database.lost() {
            return Err(TaskError::Failed(anyhow!(
                "{why}; the daemon's writes no longer reach it"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_or_replaced_file_is_lost_and_the_same_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        std::fs::write(&path, b"x").unwrap();
        let file = DatabaseFile::identify(&path).unwrap();
        std::fs::write(&path, b"written in place").unwrap();
        assert_eq!(file.lost(), None);

        let other = dir.path().join("restored.db");
        std::fs::write(&other, b"y").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(
            file.lost()
                .unwrap()
                .contains("was replaced by another file")
        );

        std::fs::remove_file(&path).unwrap();
        assert!(file.lost().unwrap().contains("was removed"));
    }
}
