//! Configuration: defaults, then the TOML file (`--config`), then the command
//! line (`--database`). Every key is optional; a bad one is named in the error,
//! and every value is checked when the file is loaded, so a daemon never starts
//! with a setting that would stop one of its tasks later.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::avatars::{AvatarOptions, FetchMode};
use crate::sync::SyncOptions;
use crate::webwx::{ClientOptions, Mode};

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
    pub history: HistoryConfig,
    pub check: CheckConfig,
    pub notify: NotifyConfig,
    pub avatars: AvatarsConfig,
    pub login: LoginConfig,
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
    /// How long one call may take before it is abandoned as a network error.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// The same for the synccheck long poll, which the server holds about
    /// 25 s when nothing happens.
    #[serde(deserialize_with = "duration")]
    pub synccheck_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Full-sync cron expression, six fields (seconds first), UTC.
    #[serde(deserialize_with = "schedule")]
    pub schedule: String,
    /// The share (0 < x ≤ 1) of live contacts a full sync may mark deleted,
    /// or of membership rows it may drop, before it is held back. Written
    /// as a percentage: `"20%"`.
    #[serde(deserialize_with = "share")]
    pub deletion_guard: f64,
    /// A deletion the guard held back is applied by itself only when the
    /// same deletion comes back on a scheduled sync at least this long
    /// after it was first held (never on a retry).
    #[serde(deserialize_with = "duration")]
    pub deletion_confirm: Duration,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// How often the pending_ops queue is checked.
    #[serde(deserialize_with = "duration")]
    pub poll_interval: Duration,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// How long `contact_changes` rows are kept.
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
}

/// The thresholds of `wxsync status --check`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    /// CRITICAL when the keepalive has not been answered for this long while
    /// the session is active (no daemon running, or one stuck).
    #[serde(deserialize_with = "duration")]
    pub keepalive_silence: Duration,
    /// CRITICAL when this many scheduled full syncs in a row passed without a
    /// successful one…
    pub sync_missed: u32,
    /// …each given this long after its scheduled time to finish.
    #[serde(deserialize_with = "duration")]
    pub sync_grace: Duration,
    /// WARNING when a remark edit failed within this window.
    #[serde(deserialize_with = "duration")]
    pub failed_ops_window: Duration,
}

/// The hook run on daemon events (`[notify]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// The program and its arguments (no shell); `None`: no hook. Written as
    /// one string split at whitespace, or as an array of strings.
    #[serde(deserialize_with = "command")]
    pub command: Option<Vec<String>>,
    /// A run still going after this is killed.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// The same event runs the hook at most once per this.
    #[serde(deserialize_with = "duration")]
    pub repeat: Duration,
}

/// `[avatars]`: the avatar fetch.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvatarsConfig {
    /// `contacts` (every live contact's image) or `off`.
    #[serde(deserialize_with = "fetch_mode")]
    pub fetch: FetchMode,
    /// Between two avatar requests.
    #[serde(deserialize_with = "duration")]
    pub pause: Duration,
}

/// What the daemon does when the server ends the session (`[login]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Ask the phone to confirm a new login (push login) instead of only
    /// waiting for `wxsync login`.
    pub push_on_logout: bool,
    /// How long one ask waits for the phone.
    #[serde(deserialize_with = "duration")]
    pub push_wait: Duration,
    /// How long after an unconfirmed ask the next one may go out.
    #[serde(deserialize_with = "duration")]
    pub push_retry: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: PathBuf::from("wxsync.db"),
            session_file: None,
            wechat: WechatConfig::default(),
            sync: SyncConfig::default(),
            ops: OpsConfig::default(),
            history: HistoryConfig::default(),
            check: CheckConfig::default(),
            notify: NotifyConfig::default(),
            avatars: AvatarsConfig::default(),
            login: LoginConfig::default(),
        }
    }
}

impl Default for WechatConfig {
    fn default() -> Self {
        WechatConfig {
            login_url: Url::parse("https://login.wx.qq.com").expect("constant URL"),
            push_url: None,
            mode: Mode::Desktop,
            batch_pause: SyncOptions::default().batch_pause,
            retry_delay: SyncOptions::default().retry_base,
            request_timeout: ClientOptions::default().request_timeout,
            synccheck_timeout: ClientOptions::default().synccheck_timeout,
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            schedule: "0 */30 * * * *".into(),
            deletion_guard: SyncOptions::default().deletion_guard,
            deletion_confirm: SyncOptions::default().deletion_confirm,
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

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: SyncOptions::default().history_retention,
        }
    }
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            keepalive_silence: Duration::from_secs(5 * MINUTE),
            sync_missed: 2,
            sync_grace: Duration::from_secs(5 * MINUTE),
            failed_ops_window: Duration::from_secs(DAY),
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            command: None,
            timeout: Duration::from_secs(30),
            repeat: Duration::from_secs(HOUR),
        }
    }
}

impl Default for AvatarsConfig {
    fn default() -> Self {
        let opts = AvatarOptions::default();
        AvatarsConfig {
            fetch: opts.fetch,
            pause: opts.pause,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            push_on_logout: false,
            push_wait: Duration::from_secs(2 * MINUTE),
            push_retry: Duration::from_secs(6 * HOUR),
        }
    }
}

const SECOND: u64 = 1;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The sensible range of each duration key: zero would spin a loop or stop
/// a task (a zero pause between batch calls only drops the politeness), and
/// the upper bounds catch a unit typed wrong ("500h" for "500ms").
const DURATION_BOUNDS: [(&str, Duration, Duration); 15] = [
    (
        "wechat.batch_pause",
        Duration::ZERO,
        Duration::from_secs(MINUTE),
    ),
    (
        "wechat.retry_delay",
        Duration::from_millis(10),
        Duration::from_secs(10 * MINUTE),
    ),
    (
        "wechat.request_timeout",
        Duration::from_secs(1),
        Duration::from_secs(10 * MINUTE),
    ),
    (
        "wechat.synccheck_timeout",
        Duration::from_secs(1),
        Duration::from_secs(10 * MINUTE),
    ),
    (
        "sync.deletion_confirm",
        Duration::ZERO,
        Duration::from_secs(30 * DAY),
    ),
    (
        "ops.poll_interval",
        Duration::from_millis(10),
        Duration::from_secs(HOUR),
    ),
    (
        "history.retention",
        Duration::from_secs(DAY),
        Duration::from_secs(100 * 365 * DAY),
    ),
    (
        "check.keepalive_silence",
        Duration::from_secs(MINUTE),
        Duration::from_secs(DAY),
    ),
    ("check.sync_grace", Duration::ZERO, Duration::from_secs(DAY)),
    (
        "check.failed_ops_window",
        Duration::from_secs(HOUR),
        Duration::from_secs(30 * DAY),
    ),
    (
        "notify.timeout",
        Duration::from_secs(1),
        Duration::from_secs(10 * MINUTE),
    ),
    (
        "notify.repeat",
        Duration::ZERO,
        Duration::from_secs(7 * DAY),
    ),
    ("avatars.pause", Duration::ZERO, Duration::from_secs(MINUTE)),
    (
        "login.push_wait",
        Duration::from_secs(1),
        Duration::from_secs(10 * MINUTE),
    ),
    (
        "login.push_retry",
        Duration::from_secs(1),
        Duration::from_secs(7 * DAY),
    ),
];

/// The range of `check.sync_missed`.
const SYNC_MISSED_BOUNDS: (u32, u32) = (1, 100);

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

    /// Parses TOML text and checks every value; the error names the key at
    /// fault (and the line, for a value that does not parse).
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let key = e.message();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}: {key}")
                }
                None => key.to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that parse but make no sense: durations out of
    /// range, URLs that are not http(s) with a host.
    fn validate(&self) -> Result<(), String> {
        let durations = [
            self.wechat.batch_pause,
            self.wechat.retry_delay,
            self.wechat.request_timeout,
            self.wechat.synccheck_timeout,
            self.sync.deletion_confirm,
            self.ops.poll_interval,
            self.history.retention,
            self.check.keepalive_silence,
            self.check.sync_grace,
            self.check.failed_ops_window,
            self.notify.timeout,
            self.notify.repeat,
            self.avatars.pause,
            self.login.push_wait,
            self.login.push_retry,
        ];
        for ((key, min, max), value) in DURATION_BOUNDS.iter().zip(durations) {
            if value < *min || value > *max {
                return Err(format!(
                    "{key} = \"{}\" is out of range: it must be between {} and {}",
                    humantime::format_duration(value),
                    humantime::format_duration(*min),
                    humantime::format_duration(*max)
                ));
            }
        }
        let (min, max) = SYNC_MISSED_BOUNDS;
        if !(min..=max).contains(&self.check.sync_missed) {
            return Err(format!(
                "check.sync_missed = {} is out of range: it must be between {min} and {max}",
                self.check.sync_missed
            ));
        }
        check_web_url("wechat.login_url", &self.wechat.login_url)?;
        if let Some(url) = &self.wechat.push_url {
            check_web_url("wechat.push_url", url)?;
        }
        Ok(())
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

/// `notify.command`: `"prog arg …"` (split at whitespace) or
/// `["prog", "arg with spaces", …]`; an empty string means no hook.
fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Line(String),
        Words(Vec<String>),
    }
    let words = match Written::deserialize(d).map_err(|_| {
        serde::de::Error::custom("notify.command: give a string or an array of strings")
    })? {
        Written::Line(line) if line.trim().is_empty() => return Ok(None),
        Written::Line(line) => line.split_whitespace().map(str::to_owned).collect(),
        Written::Words(words) => words,
    };
    if words.first().is_none_or(|p| p.trim().is_empty()) {
        return Err(serde::de::Error::custom(
            "notify.command: the first word must name the program",
        ));
    }
    Ok(Some(words))
}

/// Only http(s) URLs with a host can reach a WeChat server (or the simulator).
fn check_web_url(key: &str, url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{key} = \"{url}\": the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{key} = \"{url}\": the URL names no host"));
    }
    Ok(())
}

fn fetch_mode<'de, D: Deserializer<'de>>(d: D) -> Result<FetchMode, D::Error> {
    let s = String::deserialize(d)?;
    FetchMode::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "avatars.fetch: \"{s}\" is neither \"contacts\" nor \"off\""
        ))
    })
}

/// `"N%"` with 0 < N ≤ 100, as a fraction.
fn share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let s = String::deserialize(d)?;
    let percent = s
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|n| *n > 0.0 && *n <= 100.0)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "sync.deletion_guard: \"{s}\" is not a share like \"20%\" (more than 0%, at most 100%)"
            ))
        })?;
    Ok(percent / 100.0)
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
            retry_delay = "1s"
            request_timeout = "5s"
            synccheck_timeout = "40s"
            [sync]
            schedule = "0 0 * * * *"
            deletion_guard = "5.5%"
            deletion_confirm = "12h"
            [ops]
            poll_interval = "250ms"
            [history]
            retention = "90d"
            [check]
            keepalive_silence = "10m"
            sync_missed = 3
            sync_grace = "0s"
            failed_ops_window = "2d"
            [notify]
            command = "/usr/local/bin/wx-alert --to ops"
            timeout = "5s"
            repeat = "0s"
            [avatars]
            fetch = "off"
            pause = "0s"
            [login]
            push_on_logout = true
            push_wait = "30s"
            push_retry = "1h"
            "#,
        )
        .unwrap();
        assert_eq!(c.session_file(), PathBuf::from("/var/lib/wxsync/s"));
        assert_eq!(c.wechat.mode, Mode::Web);
        assert_eq!(c.wechat.push_url, None);
        assert_eq!(c.wechat.batch_pause, Duration::from_millis(50));
        assert_eq!(c.wechat.retry_delay, Duration::from_secs(1));
        assert_eq!(c.wechat.request_timeout, Duration::from_secs(5));
        assert_eq!(c.wechat.synccheck_timeout, Duration::from_secs(40));
        assert_eq!(c.ops.poll_interval, Duration::from_millis(250));
        assert!((c.sync.deletion_guard - 0.055).abs() < 1e-12);
        assert_eq!(c.sync.deletion_confirm, Duration::from_secs(12 * HOUR));
        assert_eq!(c.history.retention, Duration::from_secs(90 * DAY));
        assert_eq!(c.check.keepalive_silence, Duration::from_secs(10 * MINUTE));
        assert_eq!(c.check.sync_missed, 3);
        assert_eq!(c.check.sync_grace, Duration::ZERO);
        assert_eq!(c.check.failed_ops_window, Duration::from_secs(2 * DAY));
        assert_eq!(
            c.notify.command.unwrap(),
            ["/usr/local/bin/wx-alert", "--to", "ops"]
        );
        assert_eq!(c.notify.timeout, Duration::from_secs(5));
        assert_eq!(c.notify.repeat, Duration::ZERO);
        assert_eq!(c.avatars.fetch, FetchMode::Off);
        assert_eq!(c.avatars.pause, Duration::ZERO);
        assert!(c.login.push_on_logout);
        assert_eq!(c.login.push_wait, Duration::from_secs(30));
        assert_eq!(c.login.push_retry, Duration::from_secs(HOUR));
    }

    #[test]
    fn a_notify_command_is_a_line_or_an_array_and_names_a_program() {
        let c = Config::parse("[notify]\ncommand = [\"/opt/my hook\", \"a b\"]\n").unwrap();
        assert_eq!(c.notify.command.unwrap(), ["/opt/my hook", "a b"]);
        assert_eq!(
            Config::parse("[notify]\ncommand = \" \"\n")
                .unwrap()
                .notify
                .command,
            None
        );
        for bad in ["[]", "[\"\"]", "3", "[1, 2]"] {
            let e = Config::parse(&format!("[notify]\ncommand = {bad}\n")).unwrap_err();
            assert!(e.contains("notify.command"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_defaults_are_documented_values() {
        let c = Config::default();
        assert_eq!(c.sync.deletion_guard, 0.2);
        assert_eq!(c.sync.deletion_confirm, Duration::from_secs(6 * HOUR));
        assert_eq!(c.history.retention, Duration::from_secs(730 * DAY));
        assert_eq!(c.wechat.request_timeout, Duration::from_secs(20));
        assert_eq!(c.wechat.synccheck_timeout, Duration::from_secs(35));
        assert_eq!(c.notify.command, None);
        assert_eq!(c.notify.timeout, Duration::from_secs(30));
        assert_eq!(c.notify.repeat, Duration::from_secs(HOUR));
        assert_eq!(c.avatars.fetch, FetchMode::Contacts);
        assert_eq!(c.avatars.pause, Duration::from_millis(500));
        assert!(!c.login.push_on_logout);
        assert_eq!(c.login.push_wait, Duration::from_secs(2 * MINUTE));
        assert_eq!(c.login.push_retry, Duration::from_secs(6 * HOUR));
        c.validate().unwrap();
    }

    #[test]
    fn a_zero_or_absurd_duration_is_refused_with_its_key() {
        for (text, key) in [
            ("[ops]\npoll_interval = \"0s\"\n", "ops.poll_interval"),
            ("[ops]\npoll_interval = \"2h\"\n", "ops.poll_interval"),
            ("[wechat]\nbatch_pause = \"2m\"\n", "wechat.batch_pause"),
            (
                "[sync]\ndeletion_confirm = \"31d\"\n",
                "sync.deletion_confirm",
            ),
            ("[wechat]\nretry_delay = \"0s\"\n", "wechat.retry_delay"),
            ("[wechat]\nretry_delay = \"500h\"\n", "wechat.retry_delay"),
            (
                "[wechat]\nrequest_timeout = \"20ms\"\n",
                "wechat.request_timeout",
            ),
            (
                "[wechat]\nsynccheck_timeout = \"0s\"\n",
                "wechat.synccheck_timeout",
            ),
            ("[history]\nretention = \"0s\"\n", "history.retention"),
            ("[history]\nretention = \"1h\"\n", "history.retention"),
            (
                "[check]\nkeepalive_silence = \"30s\"\n",
                "check.keepalive_silence",
            ),
            ("[check]\nsync_grace = \"2d\"\n", "check.sync_grace"),
            (
                "[check]\nfailed_ops_window = \"10m\"\n",
                "check.failed_ops_window",
            ),
            ("[check]\nsync_missed = 0\n", "check.sync_missed"),
            ("[notify]\ntimeout = \"0s\"\n", "notify.timeout"),
            ("[notify]\nrepeat = \"30d\"\n", "notify.repeat"),
            ("[login]\npush_wait = \"0s\"\n", "login.push_wait"),
            ("[login]\npush_retry = \"30d\"\n", "login.push_retry"),
            ("[check]\nsync_missed = 101\n", "check.sync_missed"),
            ("[avatars]\npause = \"2m\"\n", "avatars.pause"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(
                e.starts_with(key) && e.contains("out of range"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn a_deletion_guard_must_be_a_share_above_zero_and_at_most_all() {
        assert_eq!(
            Config::parse("[sync]\ndeletion_guard = \"100%\"\n")
                .unwrap()
                .sync
                .deletion_guard,
            1.0
        );
        for bad in ["0%", "-5%", "101%", "20", "twenty%", "NaN%", ""] {
            let e = Config::parse(&format!("[sync]\ndeletion_guard = \"{bad}\"\n")).unwrap_err();
            assert!(
                e.contains("sync.deletion_guard") && e.contains("line 2"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        for (text, key) in [
            ("[wechat]\nlogin_url = \"htp:/nope\"\n", "wechat.login_url"),
            (
                "[wechat]\nlogin_url = \"ftp://login.wx.qq.com\"\n",
                "wechat.login_url",
            ),
            (
                "[wechat]\npush_url = \"file:///tmp/x\"\n",
                "wechat.push_url",
            ),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(e.starts_with(key), "{text}: {e}");
        }
        let c = Config::parse("[wechat]\npush_url = \"https://webpush.wx2.qq.com\"\n").unwrap();
        assert_eq!(
            c.wechat.push_url.unwrap().host_str(),
            Some("webpush.wx2.qq.com")
        );
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
    fn an_unknown_avatar_fetch_is_refused_with_the_line() {
        let e = Config::parse("[avatars]\nfetch = \"all\"\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("avatars.fetch") && e.contains("\"all\""),
            "{e}"
        );
    }

    #[test]
    fn a_bad_mode_is_refused() {
        let e = Config::parse("[wechat]\nmode = \"phone\"\n").unwrap_err();
        assert!(e.contains("phone"), "{e}");
    }
}
