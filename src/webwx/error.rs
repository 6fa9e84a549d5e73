//! Error types of the protocol client. No message here ever carries a
//! secret: endpoints are named, never printed as URLs, and reply bodies are
//! described, never quoted.

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

/// A failed protocol call.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The request did not complete (connect, TLS, timeout, reset).
    #[error("{endpoint}: network error: {detail}")]
    Network {
        endpoint: &'static str,
        detail: String,
    },
    /// The server answered with a non-success HTTP status.
    #[error("{endpoint}: HTTP status {status}")]
    Status { endpoint: &'static str, status: u16 },
    /// The reply body was truncated or not in the expected shape.
    #[error("{endpoint}: unreadable reply: {detail}")]
    Decode {
        endpoint: &'static str,
        detail: String,
    },
    /// The reply was larger than `ClientOptions.max_reply_bytes`; it was
    /// refused without reading past the limit.
    #[error("{endpoint}: reply refused: {}", too_large(*limit, *announced))]
    TooLarge {
        endpoint: &'static str,
        limit: u64,
        /// The reply's Content-Length, when it gave one.
        announced: Option<u64>,
    },
    /// The reply body holds a byte sequence that is not UTF-8.
    #[error(
        "{endpoint}: reply refused: it is not valid UTF-8 (invalid byte at offset {offset} of {len})"
    )]
    NotUtf8 {
        endpoint: &'static str,
        offset: usize,
        len: usize,
    },
    /// `BaseResponse.Ret` was non-zero (and not one of the codes below).
    #[error("{endpoint}: server answered Ret {code}{}", ret_message(message))]
    Ret {
        endpoint: &'static str,
        code: i64,
        message: String,
    },
    /// `Ret 1205`: the server's frequency limit.
    #[error("{endpoint}: rate limited by the server (Ret 1205)")]
    RateLimited { endpoint: &'static str },
    /// 1100/1101/1102: the server ended the session (logged out on the phone,
    /// web login elsewhere, or a ban). Only a new QR login helps.
    #[error("{endpoint}: the server ended the session (code {code})")]
    SessionDead { code: i64, endpoint: &'static str },
    /// More names than one `webwxbatchgetcontact` call can carry.
    #[error("a batch of {0} names is over the server's limit of 50 per call")]
    BatchTooLarge(usize),
    /// A `HeadImgUrl` that is not a `webwxgeticon` or `webwxgetheadimg`
    /// path on the API host; not fetched, so the skey goes nowhere else.
    #[error("the avatar URL is not a webwxgeticon or webwxgetheadimg path; not fetched")]
    NotAvatarUrl,
    /// The HTTP client or the saved session could not be set up.
    #[error("cannot set up the WeChat client: {detail}")]
    Setup { detail: String },
}

/// A byte count for people: `16777216 bytes (16.0 MiB)`.
fn bytes(n: u64) -> String {
    format!("{n} bytes ({:.1} MiB)", n as f64 / (1024.0 * 1024.0))
}

fn too_large(limit: u64, announced: Option<u64>) -> String {
    match announced {
        Some(n) => format!(
            "it announces {}, over the limit of {} (max_reply_bytes)",
            bytes(n),
            bytes(limit)
        ),
        None => format!(
            "it grew past the limit of {} while arriving (max_reply_bytes)",
            bytes(limit)
        ),
    }
}

fn ret_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

impl Error {
    /// True when the server ended the session (1100/1101/1102).
    pub fn is_session_dead(&self) -> bool {
        matches!(self, Error::SessionDead { .. })
    }

    /// True when trying again later may succeed: network errors, 5xx and
    /// 429 statuses, unreadable (e.g. truncated, or cut inside a character)
    /// replies and `Ret 1205`.
    ///
    /// Not transient: a reply over `max_reply_bytes` ([`Error::TooLarge`])
    /// and a body with an invalid UTF-8 byte inside it ([`Error::NotUtf8`]).
    /// The server sends the same data again when asked again, so a retry
    /// would only repeat the download; a caller that can ask for less (a
    /// batch split in halves) should, and one that cannot should give up
    /// rather than loop.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network { .. } | Error::Decode { .. } | Error::RateLimited { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            Error::TooLarge { .. }
            | Error::NotUtf8 { .. }
            | Error::Ret { .. }
            | Error::SessionDead { .. }
            | Error::BatchTooLarge(_)
            | Error::NotAvatarUrl
            | Error::Setup { .. } => false,
        }
    }

    /// A network error, described without the request URL (which carries
    /// secrets in its query).
    pub(crate) fn network(endpoint: &'static str, err: reqwest::Error) -> Error {
        let err = err.without_url();
        let mut detail = if err.is_timeout() {
            "timed out".to_owned()
        } else {
            err.to_string()
        };
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !detail.ends_with(&text) {
                detail.push_str(": ");
                detail.push_str(&text);
            }
            source = cause.source();
        }
        Error::Network { endpoint, detail }
    }

    /// A JSON decoding error, with any quoted value from the body redacted.
    pub(crate) fn json(endpoint: &'static str, err: &serde_json::Error) -> Error {
        Error::Decode {
            endpoint,
            detail: redact_quoted(&err.to_string()),
        }
    }
}

/// serde messages quote offending values (`invalid type: string "…"`); a
/// value may be a secret, so keep only the shape of the message.
pub(crate) fn redact_quoted(message: &str) -> String {
    static QUOTED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#""(?:[^"\\]|\\.)*""#).expect("quoted-string regex is valid"));
    QUOTED.replace_all(message, "\"…\"").into_owned()
}

/// Why a QR login did not produce a session.
#[derive(thiserror::Error, Debug)]
pub enum LoginError {
    /// The QR code expired (poll code 400) before the phone confirmed.
    #[error("the QR code expired before the login was confirmed; run the login again")]
    QrExpired,
    /// Ticket `ret` 1203: WeChat does not let this account use web WeChat.
    #[error("this WeChat account may not log in to web WeChat (ret 1203): {message}")]
    WebLoginBarred { message: String },
    /// jslogin handed out no QR code (IP blocked or protocol changed).
    #[error("the login server handed out no QR code: {detail}")]
    NoQrCode { detail: String },
    /// The login poll answered a code this client does not know.
    #[error("the login poll answered an unexpected code {code}")]
    Poll { code: String },
    /// The ticket step answered, but not with a usable login.
    #[error("the login ticket was not accepted: {detail}")]
    Ticket { detail: String },
    /// A protocol call during login failed.
    #[error("login failed: {0}")]
    Protocol(#[from] Error),
}

/// The session file could not be read or written.
#[derive(thiserror::Error, Debug)]
pub enum SessionError {
    #[error("cannot access session file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("session file {} is not a usable wxsync session: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let net = Error::Network {
            endpoint: "webwxsync",
            detail: "timed out".into(),
        };
        assert!(net.is_transient());
        assert!(
            Error::Status {
                endpoint: "x",
                status: 502
            }
            .is_transient()
        );
        assert!(
            !Error::Status {
                endpoint: "x",
                status: 404
            }
            .is_transient()
        );
        assert!(Error::RateLimited { endpoint: "x" }.is_transient());
        let dead = Error::SessionDead {
            code: 1101,
            endpoint: "synccheck",
        };
        assert!(!dead.is_transient());
        assert!(dead.is_session_dead());
        assert!(!Error::BatchTooLarge(51).is_transient());
        let big = Error::TooLarge {
            endpoint: "webwxbatchgetcontact",
            limit: 16 << 20,
            announced: None,
        };
        assert!(!big.is_transient());
    }

    #[test]
    fn too_large_replies_name_the_endpoint_and_the_limit() {
        let announced = Error::TooLarge {
            endpoint: "webwxgetcontact",
            limit: 16 << 20,
            announced: Some(200_000_000),
        };
        assert_eq!(
            announced.to_string(),
            "webwxgetcontact: reply refused: it announces 200000000 bytes (190.7 MiB), over the \
             limit of 16777216 bytes (16.0 MiB) (max_reply_bytes)"
        );
        let grew = Error::TooLarge {
            endpoint: "webwxsync",
            limit: 1024,
            announced: None,
        };
        assert_eq!(
            grew.to_string(),
            "webwxsync: reply refused: it grew past the limit of 1024 bytes (0.0 MiB) while \
             arriving (max_reply_bytes)"
        );
    }

    #[test]
    fn json_errors_do_not_quote_values() {
        let err = serde_json::from_str::<u32>(r#""@crypt_secret""#).unwrap_err();
        let e = Error::json("webwxinit", &err);
        let text = e.to_string();
        assert!(!text.contains("crypt"), "{text}");
        assert!(
            text.starts_with("webwxinit: unreadable reply: invalid type"),
            "{text}"
        );
    }

    #[test]
    fn ret_errors_read_as_one_line() {
        let e = Error::Ret {
            endpoint: "webwxoplog",
            code: 1,
            message: "param error".into(),
        };
        assert_eq!(
            e.to_string(),
            "webwxoplog: server answered Ret 1 (param error)"
        );
    }
}
