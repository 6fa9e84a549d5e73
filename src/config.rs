//! Configuration: defaults, then the TOML file (`--config`), then the command
//! line (`--database`). Every key is optional; a bad one is named in the error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::webwx::Mode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The SQLite cache users query.
    pub database: PathBuf,
    /// Where the login session is kept; `None` means the database path plus
    /// `.session`.
    pub session_file: Option<PathBuf>,
    pub wechat: WechatConfig,
    pub sync: SyncConfig,
    pub ops: OpsConfig,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WechatConfig {
    /// Where jslogin and the login poll go.
    pub login_url: Url,
    /// The synccheck host; empty derives it from the api host.
    #[serde(deserialize_with = "optional_url")]
    pub push_url: Option<Url>,
    /// `desktop` (UOS, the default) or `web`.
    pub mode: Mode,
    /// Pause between two batch calls of a full sync.
    #[serde(deserialize_with = "duration")]
    pub batch_pause: Duration,
    /// First delay before retrying a call that failed transiently (network,
    /// 5xx, Ret 1205); it doubles, with jitter, on each retry.
    #[serde(deserialize_with = "duration")]
    pub retry_delay: Duration,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Full-sync cron expression, six fields (seconds first), UTC.
    #[serde(deserialize_with = "schedule")]
    pub schedule: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// How often the pending_ops queue is checked.
    #[serde(deserialize_with = "duration")]
    pub poll_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: PathBuf::from("wxsync.db"),
            session_file: None,
            wechat: WechatConfig::default(),
            sync: SyncConfig::default(),
            ops: OpsConfig::default(),
        }
    }
}

impl Default for WechatConfig {
    fn default() -> Self {
        WechatConfig {
            login_url: Url::parse("https://login.wx.qq.com").expect("constant URL"),
            push_url: None,
            mode: Mode::Desktop,
            batch_pause: Duration::from_millis(200),
            retry_delay: Duration::from_millis(500),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            schedule: "0 */30 * * * *".into(),
        }
    }
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// Reads `path` if given, else the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error names the key and line at fault.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            let key = e.message();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}: {key}")
                }
                None => key.to_string(),
            }
        })
    }

    pub fn session_file(&self) -> PathBuf {
        self.session_file.clone().unwrap_or_else(|| {
            let mut p = self.database.clone().into_os_string();
            p.push(".session");
            PathBuf::from(p)
        })
    }
}

/// Parses a cron expression the way the scheduler will (six fields with
/// seconds; day-of-month and day-of-week both apply).
pub fn parse_schedule(s: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(s)
        .map_err(|e| format!("{e} (six fields are needed, seconds first, e.g. \"0 */30 * * * *\")"))
}

fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    parse_schedule(&s).map_err(|e| serde::de::Error::custom(format!("sync.schedule: {e}")))?;
    Ok(s)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "\"{s}\" is not a duration like \"1s\" or \"500ms\" ({e})"
        ))
    })
}

fn optional_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Ok(None);
    }
    Url::parse(&s).map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.session_file(), PathBuf::from("wxsync.db.session"));
        assert_eq!(c.ops.poll_interval, Duration::from_secs(1));
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::parse(
            r#"
            database = "/var/lib/wxsync/cache.db"
            session_file = "/var/lib/wxsync/s"
            [wechat]
            login_url = "http://127.0.0.1:9"
            push_url = ""
            mode = "web"
            batch_pause = "50ms"
            [sync]
            schedule = "0 0 * * * *"
            [ops]
            poll_interval = "250ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.session_file(), PathBuf::from("/var/lib/wxsync/s"));
        assert_eq!(c.wechat.mode, Mode::Web);
        assert_eq!(c.wechat.push_url, None);
        assert_eq!(c.wechat.batch_pause, Duration::from_millis(50));
        assert_eq!(c.ops.poll_interval, Duration::from_millis(250));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = Config::parse("[sync]\nshedule = \"0 * * * * *\"\n").unwrap_err();
        assert!(e.contains("shedule"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_five_field_schedule_is_refused_with_the_key() {
        let e = Config::parse("[sync]\nschedule = \"*/5 * * * *\"\n").unwrap_err();
        assert!(e.contains("sync.schedule"), "{e}");
    }

    #[test]
    fn a_bad_duration_is_refused() {
        let e = Config::parse("[ops]\npoll_interval = \"soon\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("soon"), "{e}");
    }

    #[test]
    fn a_bad_mode_is_refused() {
        let e = Config::parse("[wechat]\nmode = \"phone\"\n").unwrap_err();
        assert!(e.contains("phone"), "{e}");
    }
}
