//! What every command shares: the configuration, the open store, and the
//! session file with its rules (CONTRACT.md "Session lifecycle").

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::store::Store;
use crate::sync::SyncOptions;
use crate::webwx::{Client, ClientOptions, LoginOptions, Session, SessionState};

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
        Ok(Session::load(&self.session_path())?)
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

    pub fn client(&self, session: Session) -> anyhow::Result<Client> {
        Client::new(session, &self.client_options()).context("cannot set up the HTTP client")
    }

    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            batch_pause: self.config.wechat.batch_pause,
            retry_base: self.config.wechat.retry_delay,
            ..SyncOptions::default()
        }
    }

    /// Writes `session` back (newer keys, logged-out state) only while the
    /// file still holds that same login, so a fresh `wxsync login` is never
    /// overwritten. Returns whether it wrote.
    pub fn save_session_if_current(&self, session: &Session) -> anyhow::Result<bool> {
        let path = self.session_path();
        match Session::load(&path)? {
            Some(on_disk) if on_disk.login_id() == session.login_id() => {
                session.save(&path)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
