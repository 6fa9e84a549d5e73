//! The session file: everything needed to resume talking to the server
//! without a new QR scan. It holds secrets, so it is written with mode 0600,
//! atomically, and its `Debug` output redacts them.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Mode;
use super::error::SessionError;
use super::wire::SyncKey;

/// The on-disk format version; a file with another version is refused
/// rather than misread.
const FORMAT: u32 = 1;

/// Whether the server still accepts this session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionState {
    Active,
    /// The server ended the session (`code` 1100/1101/1102) at `at` (UTC,
    /// RFC 3339). Only a new `wxsync login` replaces it.
    LoggedOut {
        code: i64,
        reason: String,
        at: String,
    },
}

/// Everything to resume a login. Fields are private; the client updates the
/// volatile ones (skey, sync keys, cookies) and [`super::Client::session`]
/// returns a fresh snapshot to persist.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub(crate) format: u32,
    /// Random id naming this login, so a daemon can tell whether the file
    /// still holds the session it is using.
    pub(crate) login_id: String,
    pub(crate) logged_in_at: String,
    pub(crate) mode: Mode,
    /// `scheme://host[:port]` of the API (the redirect_uri's origin).
    pub(crate) api_origin: String,
    /// `scheme://host[:port]` of synccheck.
    pub(crate) push_origin: String,
    pub(crate) uin: i64,
    pub(crate) sid: String,
    pub(crate) skey: String,
    /// Already percent-encoded, as the server sent it.
    pub(crate) pass_ticket: String,
    pub(crate) device_id: String,
    /// The cookie jar for all hosts, as `cookie_store` serializes it.
    pub(crate) cookies: serde_json::Value,
    pub(crate) sync_key: SyncKey,
    /// `None` until the first webwxsync returns one; synccheck then uses
    /// `sync_key`.
    pub(crate) sync_check_key: Option<SyncKey>,
    pub(crate) self_user_name: String,
    pub(crate) state: SessionState,
}

/// What the ticket step yields; the rest of a [`Session`] is generated.
pub(crate) struct Credentials {
    pub mode: Mode,
    pub api_origin: String,
    pub push_origin: String,
    pub uin: i64,
    pub sid: String,
    pub skey: String,
    pub pass_ticket: String,
    pub cookies: serde_json::Value,
}

impl Session {
    /// A fresh session right after the ticket step, with a new device id
    /// and login id. The sync key and self user name come from webwxinit.
    pub(crate) fn new(c: Credentials) -> Session {
        let mut rng = rand::rng();
        let device_id: String = std::iter::once('e')
            .chain((0..15).map(|_| char::from(b'0' + rng.random_range(0..10u8))))
            .collect();
        let login_id = format!("{:032x}", rng.random::<u128>());
        Session {
            format: FORMAT,
            login_id,
            logged_in_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            mode: c.mode,
            api_origin: c.api_origin,
            push_origin: c.push_origin,
            uin: c.uin,
            sid: c.sid,
            skey: c.skey,
            pass_ticket: c.pass_ticket,
            device_id,
            cookies: c.cookies,
            sync_key: SyncKey::default(),
            sync_check_key: None,
            self_user_name: String::new(),
            state: SessionState::Active,
        }
    }

    /// Reads a session file; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Session>, SessionError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SessionError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let corrupt = |detail: String| SessionError::Corrupt {
            path: path.to_owned(),
            detail,
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(super::error::redact_quoted(&e.to_string())))?;
        let format = value.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT)) {
            return Err(corrupt(format!(
                "format {} is not the supported format {FORMAT}",
                format.map_or_else(|| "(missing)".to_owned(), |f| f.to_string())
            )));
        }
        let session = Session::deserialize(&value)
            .map_err(|e| corrupt(super::error::redact_quoted(&e.to_string())))?;
        Ok(Some(session))
    }

    /// Writes the session atomically: a temporary file (mode 0600) in the
    /// same directory, flushed to disk, then renamed over `path`. Readers see
    /// either the old file or the new one, never a partial one.
    pub fn save(&self, path: &Path) -> Result<(), SessionError> {
        let io_err = |source: io::Error| SessionError::Io {
            path: path.to_owned(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| SessionError::Corrupt {
            path: path.to_owned(),
            detail: super::error::redact_quoted(&e.to_string()),
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| io_err(io::Error::other("the path names no file")))?;
        let tmp = dir.join(format!(
            ".{}.{}.{:08x}.tmp",
            file_name.to_string_lossy(),
            std::process::id(),
            rand::random::<u32>()
        ));
        let written = write_private(&tmp, &json).and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            // Best effort: the temporary file is useless now.
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        // Make the rename itself durable; not every filesystem allows it.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Random id of this login (changes with every QR login).
    pub fn login_id(&self) -> &str {
        &self.login_id
    }

    /// The account's own `UserName` in this login (empty before webwxinit).
    pub fn self_user_name(&self) -> &str {
        &self.self_user_name
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// When the QR login happened (UTC, RFC 3339).
    pub fn logged_in_at(&self) -> &str {
        &self.logged_in_at
    }

    /// `scheme://host[:port]` of the API host chosen at login.
    pub fn api_origin(&self) -> &str {
        &self.api_origin
    }

    /// Records that the server ended the session; the time is now.
    pub fn mark_logged_out(&mut self, code: i64, reason: &str) {
        self.state = SessionState::LoggedOut {
            code,
            reason: reason.to_owned(),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HIDDEN: &str = "<redacted>";
        let cookie_count = self.cookies.as_array().map_or(0, Vec::len);
        f.debug_struct("Session")
            .field("login_id", &self.login_id)
            .field("logged_in_at", &self.logged_in_at)
            .field("mode", &self.mode)
            .field("api_origin", &self.api_origin)
            .field("push_origin", &self.push_origin)
            .field("self_user_name", &self.self_user_name)
            .field("state", &self.state)
            .field("uin", &HIDDEN)
            .field("sid", &HIDDEN)
            .field("skey", &HIDDEN)
            .field("pass_ticket", &HIDDEN)
            .field("device_id", &HIDDEN)
            .field("cookies", &format_args!("<{cookie_count} redacted>"))
            .field(
                "sync_key",
                &format_args!("<{} keys redacted>", self.sync_key.list.len()),
            )
            .field(
                "sync_check_key",
                &format_args!(
                    "<{} keys redacted>",
                    self.sync_check_key.as_ref().map_or(0, |k| k.list.len())
                ),
            )
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::webwx::wire::SyncPair;
    use serde_json::json;

    pub(crate) fn sample() -> Session {
        let mut s = Session::new(Credentials {
            mode: Mode::Desktop,
            api_origin: "https://wx.qq.com".into(),
            push_origin: "https://webpush.wx.qq.com".into(),
            uin: 2_718_281_828,
            sid: "SIDsecret+/x".into(),
            skey: "@crypt_SKEYsecret".into(),
            pass_ticket: "PTsecret%2B%3D".into(),
            cookies: json!([{"raw_cookie": "webwx_data_ticket=COOKIEsecret; Path=/",
                             "path": ["/", true], "domain": {"HostOnly": "wx.qq.com"},
                             "expires": "SessionEnd"}]),
        });
        s.sync_key = SyncKey {
            count: 1,
            list: vec![SyncPair {
                key: 1,
                val: 777_000_111,
            }],
        };
        s.sync_check_key = Some(SyncKey {
            count: 1,
            list: vec![SyncPair {
                key: 1,
                val: 777_000_222,
            }],
        });
        s.self_user_name = "@self".into();
        s
    }

    #[test]
    fn device_and_login_ids_are_fresh_and_well_formed() {
        let a = sample();
        let b = sample();
        assert_eq!(a.device_id.len(), 16);
        assert!(a.device_id.starts_with('e'));
        assert!(a.device_id[1..].bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a.login_id, b.login_id);
        assert_ne!(a.device_id, b.device_id);
    }

    #[test]
    fn save_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wxsync.session");
        let mut s = sample();
        s.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = Session::load(&path).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&s).unwrap()
        );

        s.mark_logged_out(1101, "web login elsewhere");
        s.save(&path).unwrap();
        let back = Session::load(&path).unwrap().unwrap();
        assert!(matches!(
            back.state(),
            SessionState::LoggedOut { code: 1101, .. }
        ));
        assert_eq!(back.login_id(), s.login_id());
    }

    #[test]
    fn save_replaces_by_rename_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, "old").unwrap();
        #[cfg(unix)]
        let old_inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());
        sample().save(&path).unwrap();
        #[cfg(unix)]
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
            old_inode,
            "a new file was renamed into place, not the old one rewritten"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("s.json")]);
    }

    #[test]
    fn a_failed_save_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        // A name that fits in a directory entry while the temporary file's
        // longer name does not: the save fails after the old file exists.
        let path = dir.path().join("s".repeat(240));
        fs::write(&path, "old").unwrap();
        let err = sample().save(&path).unwrap_err();
        assert!(matches!(err, SessionError::Io { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn load_reports_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none");
        assert!(Session::load(&path).unwrap().is_none());
        fs::write(&path, "{\"format\":1,\"sid\":\"SIDsecret\"").unwrap();
        let err = Session::load(&path).unwrap_err();
        assert!(matches!(err, SessionError::Corrupt { .. }));
        fs::write(&path, "{\"format\":99}").unwrap();
        let err = Session::load(&path).unwrap_err();
        assert!(err.to_string().contains("format 99"), "{err}");
        fs::write(&path, "{\"format\":1,\"sid\":\"SIDsecret\"}").unwrap();
        let err = Session::load(&path).unwrap_err();
        assert!(!err.to_string().contains("SIDsecret"), "{err}");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let s = sample();
        let text = format!("{s:?}");
        for secret in [
            "2718281828",
            "SIDsecret",
            "SKEYsecret",
            "PTsecret",
            "COOKIEsecret",
            "777000111",
            "777000222",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(!text.contains(&s.device_id[1..]));
        assert!(text.contains("@self") && text.contains("wx.qq.com"));
    }
}
