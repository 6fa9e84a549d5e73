//! What every command shares: the configuration, the open store, and the
//! session file with its rules: one login per file, written back only while
//! it still holds that login.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tracing::warn;

use crate::avatars::AvatarOptions;
use crate::config::Config;
use crate::contact::Contact;
use crate::store::{Plan, Source, Store};
use crate::sync::SyncOptions;
use crate::webwx::{Client, ClientOptions, InitReply, LoginOptions, Session, SessionState};

/// What [`App::save_login`] did with webwxinit's contacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitContacts {
    /// Stored this many into an empty cache.
    Stored(usize),
    /// The cache holds a previous login's contacts: left for the next full
    /// sync to link to this login's names.
    KeptPrevious,
}

pub struct App {
    pub config: Config,
    pub store: Store,
}

impl App {
    pub async fn open(config: Config) -> anyhow::Result<App> {
        let store = Store::open(&config.database).await?;
        Ok(App { config, store })
    }

    pub fn session_path(&self) -> PathBuf {
        self.config.session_file()
    }

    pub fn load_session(&self) -> anyhow::Result<Option<Session>> {
        load_session_file(&self.session_path())
    }

    /// The saved session, or an error that says what to do.
    pub fn active_session(&self) -> anyhow::Result<Session> {
        let path = self.session_path();
        let Some(session) = self.load_session()? else {
            bail!("no session in {}: run `wxsync login` first", path.display());
        };
        if let SessionState::LoggedOut { code, reason, .. } = session.state() {
            bail!("the session was logged out ({reason}, code {code}): run `wxsync login`");
        }
        Ok(session)
    }

    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            mode: self.config.wechat.mode,
            push_url: self.config.wechat.push_url.clone(),
            request_timeout: self.config.wechat.request_timeout,
            synccheck_timeout: self.config.wechat.synccheck_timeout,
            ..ClientOptions::default()
        }
    }

    pub fn login_options(&self) -> LoginOptions {
        LoginOptions {
            login_url: self.config.wechat.login_url.clone(),
            client: self.client_options(),
            poll_timeout: Duration::from_secs(35),
            push_wait: LoginOptions::DEFAULT_PUSH_WAIT,
        }
    }

    /// A client for `session`. A saved session the client cannot be built
    /// from is as unusable as an unreadable file: both need a new login.
    pub fn client(&self, session: Session) -> anyhow::Result<Client> {
        Client::new(session, &self.client_options()).context("cannot set up the HTTP client")
    }

    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            batch_pause: self.config.wechat.batch_pause,
            retry_base: self.config.wechat.retry_delay,
            deletion_guard: self.config.sync.deletion_guard,
            deletion_confirm: self.config.sync.deletion_confirm,
            history_retention: self.config.history.retention,
            ..SyncOptions::default()
        }
    }

    pub fn avatar_options(&self) -> AvatarOptions {
        AvatarOptions {
            fetch: self.config.avatars.fetch,
            pause: self.config.avatars.pause,
            // A refused image is asked for again less eagerly than a call.
            retry_base: self.config.wechat.retry_delay * 10,
        }
    }

    /// Saves a new login — `wxsync login`'s, or the daemon's push login:
    /// the session file (atomically, mode 0600), then webwxinit's contacts
    /// if the cache is empty. A cache that holds a previous login's contacts
    /// keeps them untouched: the next full sync links them to this login's
    /// names (user names change at every login), which webwxinit's handful
    /// of contacts could not do safely.
    pub async fn save_login(
        &self,
        client: &Client,
        init: &InitReply,
    ) -> anyhow::Result<InitContacts> {
        let session = client.session();
        let path = self.session_path();
        with_session_lock(&path, || Ok(session.save(&path)?))?;
        if !self.store.is_empty().await? {
            return Ok(InitContacts::KeptPrevious);
        }
        let me = session.self_user_name();
        let contacts: Vec<Contact> = std::iter::once(&init.user)
            .chain(&init.contacts)
            .filter_map(|c| Contact::from_raw(c, me))
            .collect();
        let mut stage = self.store.stage().await?;
        stage.contacts(&contacts).await?;
        stage
            .commit(Plan {
                source: Source::Login,
                full: None,
                claim_login: Some(session.login_id()),
            })
            .await
            .context("cannot store webwxinit's contacts")?;
        Ok(InitContacts::Stored(contacts.len()))
    }

    /// Writes `session` back (newer keys, logged-out state) only while the
    /// file still holds that same login, so a fresh `wxsync login` is never
    /// overwritten. Returns whether it wrote.
    pub fn save_session_if_current(&self, session: &Session) -> anyhow::Result<bool> {
        save_session_file_if_current(&self.session_path(), session)
    }
}

/// [`App::save_session_if_current`] for the file at `path`: the check and
/// the write hold the file's lock, so a new login saved meanwhile (which
/// takes it too) is seen, never written over.
fn save_session_file_if_current(path: &Path, session: &Session) -> anyhow::Result<bool> {
    with_session_lock(path, || match load_session_file(path)? {
        Some(on_disk) if on_disk.login_id() == session.login_id() => {
            session.save(path)?;
            Ok(true)
        }
        _ => Ok(false),
    })
}

/// Runs `f` holding the session file's lock: an exclusive `flock` on
/// `<session file>.lock` (mode 0600, left in place), released when `f`
/// returns. Every write of the session file takes it, so a process
/// writing its own login back and `wxsync login` saving a new one take
/// turns. It is held for a file read and a write, milliseconds.
fn with_session_lock<T>(path: &Path, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("cannot open the session lock {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    f()
}

/// Reads a session file (`None` when there is none). The file holds login
/// secrets: if group or others may read it, it is made private first and
/// that is said loudly — or, if it cannot be, refused, as ssh refuses a key
/// others can read.
pub fn load_session_file(path: &Path) -> anyhow::Result<Option<Session>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            let mode = meta.permissions().mode() & 0o777;
            let private = std::fs::Permissions::from_mode(mode & 0o700);
            if let Err(e) = std::fs::set_permissions(path, private) {
                bail!(
                    "session file {} is readable by group or others (mode {mode:04o}) and \
                     cannot be made private ({e}): it holds login secrets; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
            warn!(
                file = %path.display(),
                "the session file was readable by group or others (mode {mode:04o}); \
                 it holds login secrets, so wxsync made it {:04o}",
                mode & 0o700
            );
        }
        _ => {}
    }
    Ok(Session::load(path)?)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::webwx::sample_session as sample;

    /// A process writes its session back while `wxsync login` saves a new
    /// one: the login holds the lock while it writes, so the write-back
    /// waits, then finds the new login and leaves it.
    #[test]
    fn a_login_saved_meanwhile_is_not_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wxsync.session");
        let (old, new) = (sample(), sample());
        let new_id = new.login_id().to_owned();
        old.save(&path).unwrap();
        let (started, start) = mpsc::channel();
        let (fresh, held) = mpsc::channel();
        let login = {
            let path = path.clone();
            std::thread::spawn(move || {
                with_session_lock(&path, || {
                    started.send(()).unwrap();
                    held.recv().unwrap();
                    Ok(new.save(&path)?)
                })
            })
        };
        start.recv().unwrap();
        let back = {
            let path = path.clone();
            std::thread::spawn(move || save_session_file_if_current(&path, &old))
        };
        fresh.send(()).unwrap();
        login.join().unwrap().unwrap();
        assert!(
            !back.join().unwrap().unwrap(),
            "the old login was written back"
        );
        let on_disk = load_session_file(&path).unwrap().unwrap();
        assert_eq!(on_disk.login_id(), new_id);
    }
}
