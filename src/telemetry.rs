//! Logging: tracing, filtered by `RUST_LOG`. Under systemd (stderr is the
//! journal stream named by `JOURNAL_STREAM`) events go to journald with their
//! level as the priority and their fields kept as journal fields, so
//! `journalctl -u wxsync -p warning` works; anywhere else, plain lines on
//! stderr (colour only on a terminal).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter when `RUST_LOG` is unset: our own info lines, only warnings
/// from the noisy dependencies.
pub const DEFAULT_FILTER: &str = "info,tokio_cron_scheduler=warn,sqlx=warn,hyper=warn,reqwest=warn";

/// Where log events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutput {
    Journald,
    Stderr,
}

impl LogOutput {
    /// Journald when `journal_stream` (the value of `JOURNAL_STREAM`,
    /// `DEVICE:INODE`) names the file stderr is (`stderr_id`): systemd sets
    /// it for the service's own stderr only, so a child whose stderr was
    /// redirected elsewhere keeps plain lines.
    pub fn choose(journal_stream: Option<&OsStr>, stderr_id: Option<(u64, u64)>) -> LogOutput {
        let named = journal_stream
            .and_then(OsStr::to_str)
            .and_then(|v| v.split_once(':'))
            .and_then(|(dev, ino)| Some((dev.parse().ok()?, ino.parse().ok()?)));
        match (named, stderr_id) {
            (Some(named), Some(actual)) if named == actual => LogOutput::Journald,
            _ => LogOutput::Stderr,
        }
    }

    fn from_env() -> LogOutput {
        LogOutput::choose(std::env::var_os("JOURNAL_STREAM").as_deref(), stderr_id())
    }
}

/// The device and inode of stderr.
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Sets up logging; returns where events go.
pub fn init() -> LogOutput {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let fallback = match LogOutput::from_env() {
        LogOutput::Journald => match tracing_journald::layer() {
            Ok(journald) => {
                let _ = registry
                    .with(journald.with_syslog_identifier("wxsync".into()))
                    .try_init();
                return LogOutput::Journald;
            }
            Err(e) => Some(e),
        },
        LogOutput::Stderr => None,
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = registry.with(stderr).try_init();
    if let Some(e) = fallback {
        tracing::warn!(error = %e, "journald is not reachable; logging to stderr");
    }
    LogOutput::Stderr
}

/// A string from outside (a user's `pending_ops` row, a WeChat name) made
/// safe for one log line: control characters are written as escapes, so a
/// newline or an escape code in a name cannot start a forged line.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_is_chosen_only_when_stderr_is_the_journal_stream() {
        let stream = Some(OsStr::new("64769:1234567"));
        assert_eq!(
            LogOutput::choose(stream, Some((64769, 1234567))),
            LogOutput::Journald
        );
        assert_eq!(
            LogOutput::choose(stream, Some((64769, 7))),
            LogOutput::Stderr
        );
        assert_eq!(
            LogOutput::choose(None, Some((64769, 1234567))),
            LogOutput::Stderr
        );
        assert_eq!(LogOutput::choose(stream, None), LogOutput::Stderr);
        assert_eq!(
            LogOutput::choose(Some(OsStr::new("garbage")), Some((0, 0))),
            LogOutput::Stderr
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("@abc 张三 😀"), "@abc 张三 😀");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("@x\nERROR forged\r\x1b[31m\t"),
            "@x\\nERROR forged\\r\\u{1b}[31m\\t"
        );
    }
}
