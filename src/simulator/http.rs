//! A request as the handlers read it and a reply as they build it, and
//! how a reply goes on the wire.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll as TaskPoll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::ReaderStream;

/// A parsed request.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) query: String,
    pub(super) params: HashMap<String, String>,
    pub(super) headers: HeaderMap,
    pub(super) cookies: HashMap<String, String>,
    pub(super) body: Bytes,
}

impl Req {
    pub(super) fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
    pub(super) fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    /// The body as JSON, whatever the Content-Type says.
    pub(super) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) content_type: Cow<'static, str>,
    pub(super) body: Vec<u8>,
    /// Sent instead of `body` when set: a body produced while it is sent.
    pub(super) stream: Option<Streamed>,
    pub(super) cookies: Vec<String>,
    pub(super) ret: Option<i64>,
}

pub(super) struct Streamed {
    pub(super) reader: Box<dyn AsyncRead + Send + Unpin>,
    /// Announced as Content-Length; None sends it chunked.
    pub(super) length: Option<u64>,
}

impl Reply {
    pub(super) fn json(v: &impl Serialize, ret: i64) -> Reply {
        Reply {
            status: 200,
            content_type: Cow::Borrowed("text/plain"),
            body: serde_json::to_vec(v).unwrap_or_default(),
            stream: None,
            cookies: Vec::new(),
            ret: Some(ret),
        }
    }
    pub(super) fn base(ret: i64) -> Reply {
        Reply::json(&json!({"BaseResponse": {"Ret": ret, "ErrMsg": ""}}), ret)
    }
    pub(super) fn js(text: String, ret: i64) -> Reply {
        Reply {
            status: 200,
            content_type: Cow::Borrowed("text/javascript"),
            body: text.into_bytes(),
            stream: None,
            cookies: Vec::new(),
            ret: Some(ret),
        }
    }
    pub(super) fn synccheck(retcode: i64, selector: u8) -> Reply {
        Reply::js(
            format!("window.synccheck={{retcode:\"{retcode}\",selector:\"{selector}\"}}"),
            retcode,
        )
    }
    pub(super) fn plain(status: u16, content_type: &'static str, body: &str) -> Reply {
        Reply::bytes(
            status,
            Cow::Borrowed(content_type),
            body.as_bytes().to_vec(),
        )
    }
    pub(super) fn bytes(status: u16, content_type: Cow<'static, str>, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            stream: None,
            cookies: Vec::new(),
            ret: None,
        }
    }
    /// The connection closes before a byte of the reply is sent.
    pub(super) fn reset() -> Reply {
        let mut r = Reply::bytes(200, Cow::Borrowed("text/plain"), Vec::new());
        r.status = 0;
        r.stream = Some(Streamed {
            reader: Box::new(FailingReader),
            length: None,
        });
        r
    }
    pub(super) fn ticket_xml(status: u16, ret: i64, message: &str) -> Reply {
        let mut r = Reply::plain(
            status,
            "text/plain",
            &format!("<error><ret>{ret}</ret><message>{message}</message></error>"),
        );
        r.ret = Some(ret);
        r
    }
}

pub(super) fn respond(r: Reply) -> Response {
    // Status 0 marks a reset in the call log; the connection dies before any status is sent.
    let status = if r.status == 0 { 200 } else { r.status };
    let mut b = Response::builder()
        .status(status)
        .header("content-type", r.content_type.as_ref());
    for c in &r.cookies {
        b = b.header("set-cookie", c);
    }
    let body = match r.stream {
        Some(Streamed { reader, length }) => {
            if let Some(n) = length {
                b = b.header("content-length", n);
            }
            Body::from_stream(ReaderStream::new(reader))
        }
        None => Body::from(r.body),
    };
    b.body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A body that fails at once: the server drops the connection with nothing sent.
pub(super) struct FailingReader;

impl AsyncRead for FailingReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> TaskPoll<io::Result<()>> {
        TaskPoll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
    }
}
