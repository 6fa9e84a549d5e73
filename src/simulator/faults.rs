//! Injected faults: how each [`Fault`] turns into the reply a misbehaving
//! server sends.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll as TaskPoll};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};

use super::calls::{Endpoint, Fault};
use super::http::{Reply, Req, Streamed};
use super::login::{new_skey, push_refusal, ticket};
use super::routes::route;
use super::state::{Shared, State};

/// The reply a call gets under `fault`: an error of the fault's own shape,
/// or the normal reply ([`route`]) delayed, cut, emptied or reshaped.
pub(super) async fn apply(inner: &Shared, endpoint: Endpoint, req: &Req, fault: Fault) -> Reply {
    match fault {
        Fault::Http(code) => Reply::plain(
            code,
            "text/html",
            &format!(
                "<html><head><title>{code} Error</title></head><body><center><h1>{code} Error</h1></center><hr><center>nginx</center></body></html>"
            ),
        ),
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            route(inner, endpoint, req, None).await
        }
        Fault::Truncated => {
            let mut r = route(inner, endpoint, req, None).await;
            r.body.truncate(r.body.len() / 2);
            r
        }
        Fault::Empty => {
            let mut r = route(inner, endpoint, req, None).await;
            r.body.clear();
            r
        }
        Fault::LoginRet(n) if endpoint == Endpoint::NewLoginPage => ticket(inner, req, Some(n)),
        Fault::Ret(n) | Fault::LoginRet(n) => fault_ret(inner, endpoint, n),
        Fault::Reset => Reply::reset(),
        Fault::Custom {
            status,
            content_type,
            body,
        } => Reply::bytes(status, Cow::Owned(content_type), body),
        Fault::Huge { bytes, chunked } => huge_reply(endpoint, bytes, chunked),
        // Faults that shape one endpoint's reply; the others ignore them.
        shape @ (Fault::EndlessSeq | Fault::UnaskedGroups(_) | Fault::HugeGroup(_)) => {
            route(inner, endpoint, req, Some(&shape)).await
        }
        // Faults that rewrite the lists of any JSON reply.
        Fault::NewSkey => {
            let mut r = route(inner, endpoint, req, None).await;
            if r.ret == Some(0) {
                hand_out_new_skey(inner, &mut r.body);
            }
            r
        }
        shape @ (Fault::Unnamed(_) | Fault::LeftOut(_) | Fault::EmptyList) => {
            let mut r = route(inner, endpoint, req, None).await;
            if r.ret == Some(0) {
                reshape_lists(&mut r.body, &shape);
            }
            r
        }
    }
}

/// A [`HugeBody`]'s padding, lent out piece by piece.
static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];

/// `prefix`, then `copies` copies of `record` separated by commas, then
/// `pad` spaces and `suffix`: a JSON reply of any size, produced as it is read.
struct HugeBody {
    prefix: Vec<u8>,
    record: Vec<u8>,
    copies: u64,
    pad: u64,
    suffix: Vec<u8>,
    pos: u64,
}

impl HugeBody {
    fn len(&self) -> u64 {
        let r = self.record.len() as u64;
        self.prefix.len() as u64 + self.copies * (r + 1) - 1 + self.pad + self.suffix.len() as u64
    }

    /// The bytes at `pos`, up to the end of the piece they belong to (the
    /// padding comes at most [`SPACES`] at a time).
    fn piece(&self, pos: u64) -> &[u8] {
        let p = self.prefix.len() as u64;
        let r = self.record.len() as u64;
        let list = self.copies * (r + 1) - 1;
        if pos < p {
            return &self.prefix[pos as usize..];
        }
        let q = pos - p;
        if q < list {
            // Copy i occupies [i*(r+1), i*(r+1)+r), followed by a comma.
            let at = q % (r + 1);
            return if at == r {
                b","
            } else {
                &self.record[at as usize..]
            };
        }
        let q = q - list;
        if q < self.pad {
            return &SPACES[..(self.pad - q).min(SPACES.len() as u64) as usize];
        }
        &self.suffix[(q - self.pad) as usize..]
    }
}

impl AsyncRead for HugeBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> TaskPoll<io::Result<()>> {
        let total = self.len();
        while buf.remaining() > 0 && self.pos < total {
            let piece = self.piece(self.pos);
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            self.pos += n as u64;
        }
        TaskPoll::Ready(Ok(()))
    }
}

/// The endpoint's usual JSON shape with its list padded to `bytes` bytes.
fn huge_reply(endpoint: Endpoint, bytes: u64, chunked: bool) -> Reply {
    let (count_key, list_key, tail) = match endpoint {
        Endpoint::GetContact => ("MemberCount", "MemberList", r#","Seq":0}"#),
        Endpoint::Sync => ("ModContactCount", "ModContactList", "}"),
        _ => ("Count", "ContactList", "}"),
    };
    let record = serde_json::to_vec(&json!({
        "Uin": 0, "UserName": format!("@{}", "5a".repeat(32)), "NickName": "填充",
        "HeadImgUrl": "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=600000000&username=@5a&skey=",
        "ContactFlag": 3, "MemberCount": 0, "MemberList": [], "RemarkName": "", "Sex": 0,
        "Signature": "", "VerifyFlag": 0, "PYInitial": "TC", "PYQuanPin": "tianchong",
        "AttrStatus": 102945, "Province": "", "City": "", "Alias": "", "KeyWord": "",
    }))
    .unwrap_or_default();
    let head_len = |copies: u64| {
        format!(r#"{{"BaseResponse":{{"Ret":0,"ErrMsg":""}},"{count_key}":{copies},"{list_key}":["#)
            .len() as u64
    };
    let fixed = head_len(0) + 20 + tail.len() as u64 + 1;
    let copies = (bytes.saturating_sub(fixed) / (record.len() as u64 + 1)).max(1);
    let prefix = format!(
        r#"{{"BaseResponse":{{"Ret":0,"ErrMsg":""}},"{count_key}":{copies},"{list_key}":["#
    );
    let mut body = HugeBody {
        prefix: prefix.into_bytes(),
        record,
        copies,
        pad: 0,
        suffix: format!("]{tail}").into_bytes(),
        pos: 0,
    };
    body.pad = bytes.saturating_sub(body.len());
    let length = body.len();
    let mut r = Reply::bytes(200, Cow::Borrowed("text/plain"), Vec::new());
    r.ret = Some(0);
    r.stream = Some(Streamed {
        reader: Box::new(body),
        length: (!chunked).then_some(length),
    });
    r
}

/// The contact lists a reply may carry, each with the count beside it.
const LISTS: [(&str, &str); 4] = [
    ("ContactList", "Count"),
    ("MemberList", "MemberCount"),
    ("ModContactList", "ModContactCount"),
    ("DelContactList", "DelContactCount"),
];

/// [`Fault::NewSkey`]: a reply that carries `SKey` gets a new one, and the
/// session takes it.
fn hand_out_new_skey(inner: &Shared, body: &mut Vec<u8>) {
    let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if !reply.contains_key("SKey") {
        return;
    }
    let mut st = inner.lock();
    let State { rng, session, .. } = &mut *st;
    let Some(session) = session.as_mut() else {
        return;
    };
    session.skey = new_skey(rng);
    reply.insert("SKey".into(), session.skey.clone().into());
    *body = serde_json::to_vec(&reply).unwrap_or_default();
}

/// Applies [`Fault::Unnamed`], [`Fault::LeftOut`] or [`Fault::EmptyList`]
/// to a JSON reply's lists; a body that is not a JSON object is left alone.
fn reshape_lists(body: &mut Vec<u8>, fault: &Fault) {
    fn unname(entries: &mut [Value], n: usize) {
        for entry in entries.iter_mut().take(n) {
            if let Some(o) = entry.as_object_mut() {
                o.insert("UserName".into(), Value::Null);
                o.insert("NickName".into(), Value::Null);
            }
        }
    }
    let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    for (list, count) in LISTS {
        let Some(Value::Array(entries)) = reply.get_mut(list) else {
            continue;
        };
        match fault {
            Fault::Unnamed(n) => {
                for entry in entries.iter_mut() {
                    if let Some(Value::Array(members)) = entry.get_mut("MemberList") {
                        unname(members, *n);
                    }
                }
                unname(entries, *n);
            }
            Fault::LeftOut(n) => drop(entries.drain(..(*n).min(entries.len()))),
            Fault::EmptyList => entries.clear(),
            _ => {}
        }
        let len = entries.len();
        if reply.contains_key(count) {
            reply.insert(count.into(), len.into());
        }
    }
    if matches!(fault, Fault::EmptyList) {
        for (key, empty) in [("Seq", json!(0)), ("ChatSet", json!(""))] {
            if reply.contains_key(key) {
                reply.insert(key.into(), empty);
            }
        }
    }
    *body = serde_json::to_vec(&reply).unwrap_or_default();
}

/// A `Fault::Ret`: the endpoint's own error shape; 1100-1102 end the session.
fn fault_ret(inner: &Shared, endpoint: Endpoint, n: i64) -> Reply {
    let is_api = !matches!(
        endpoint,
        Endpoint::JsLogin | Endpoint::LoginPoll | Endpoint::NewLoginPage
    );
    if is_api && (1100..=1102).contains(&n) {
        inner.kill_session(n);
    }
    match endpoint {
        Endpoint::JsLogin => Reply::js(format!("window.QRLogin.code = {n};"), n),
        Endpoint::LoginPoll => Reply::js(format!("window.code={n};"), n),
        Endpoint::NewLoginPage => Reply::ticket_xml(200, n, ""),
        Endpoint::SyncCheck => Reply::synccheck(n, 0),
        Endpoint::PushLogin => push_refusal(n, ""),
        _ => Reply::base(n),
    }
}
