//! The WeChat Web protocol client: QR and push login (desktop/UOS mode by
//! default), the session file, typed calls for every endpoint wxsync uses,
//! and text decoding.
//!
//! It follows docs/protocol.md. Secrets (cookies, skey, sid, pass_ticket, uin,
//! device id, sync keys) never appear in an error message or a log line:
//! endpoints are logged by name, never by URL.

mod client;
mod error;
mod jar;
mod login;
mod realid;
mod session;
pub mod text;
mod wire;

#[cfg(all(test, feature = "simulator"))]
mod client_tests;

use std::time::Duration;

pub use client::{BATCH_LIMIT, BatchItem, Client, ContactPage, InitReply, SyncCheck, SyncReply};
pub use error::{Error, LoginError, SessionError};
pub use login::{
    LoginEvent, LoginOptions, PushFailure, UOS_EXTSPAM, login, push_login, push_login_only,
    render_qr,
};
pub use realid::RealId;
#[cfg(test)]
pub(crate) use session::tests::sample as sample_session;
pub use session::{Session, SessionState};
#[cfg(test)]
pub(crate) use wire::read_contact;
pub use wire::{RawContact, RawMember};

/// Which client the server should see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The deepin/UOS desktop client: `mod=desktop` plus the `extspam`
    /// headers on the ticket step. Accounts barred from web WeChat may still
    /// log in this way.
    #[default]
    Desktop,
    /// The plain web client at wx.qq.com.
    Web,
}

/// How the client talks to the server.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub mode: Mode,
    /// The synccheck origin (config `wechat.push_url`); `None` derives it
    /// from the API host: `webpush.<host>`, or the API origin itself for an
    /// IP address or `localhost` (simulator, tests).
    pub push_url: Option<url::Url>,
    /// Client timeout of ordinary calls.
    pub request_timeout: Duration,
    /// Client timeout of the synccheck long poll (the server holds ~25 s).
    pub synccheck_timeout: Duration,
    /// Replies larger than this are refused ([`Error::TooLarge`]) without
    /// being read whole. A batch of 50 groups of 500 members is under 10 MB.
    pub max_reply_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            mode: Mode::Desktop,
            push_url: None,
            request_timeout: Duration::from_secs(20),
            synccheck_timeout: Duration::from_secs(35),
            max_reply_bytes: 16 * 1024 * 1024,
        }
    }
}
