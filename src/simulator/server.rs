//! The HTTP side: one fallback handler routes every path, applies injected
//! faults, records the call, and answers the way the real servers do (JS for
//! the login steps, XML for the ticket, `text/plain` JSON for the API).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::task::{Context, Poll as TaskPoll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use super::world::{self, Change, ContactJson, Id, ModContactJson, World, random_string};
use super::{
    BARRED_MESSAGE, Call, Endpoint, Fault, PushLogin, SimConfig, SimKind, UOS_CLIENT_VERSION,
    UOS_EXTSPAM, text,
};

/// A QR code is valid this long, then the poll answers 400.
const UUID_TTL: Duration = Duration::from_secs(300);
/// The real servers cap batchgetcontact silently at this many names.
const BATCH_CAP: usize = 50;
/// At most this many log entries per webwxsync; more sets ContinueFlag.
const SYNC_CHUNK: usize = 100;
/// A MsgType 51 names at most this many chats; longer lists take several messages.
const STATUS_CHUNK: usize = 50;
const APP_ID_CLIENT_VERSION: i64 = 1_661_011_297;
const AVATAR: &str = "data:img/jpg;base64,/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==";

pub(crate) struct Inner {
    pub cfg: SimConfig,
    pub base: url::Url,
    state: Mutex<State>,
    /// Bumped on every change of world, login or session: long polls wake on it.
    tick: watch::Sender<u64>,
}

struct State {
    world: World,
    rng: StdRng,
    qr: HashMap<String, Qr>,
    newest_qr: Option<String>,
    session: Option<Session>,
    sessions_made: u64,
    /// The newest `webwx_auth_ticket` issued: what a push login must present.
    /// It outlives its session (a logged-out client may push-login with it).
    auth_ticket: Option<String>,
    push_login: PushLogin,
    /// Per endpoint: faults still to serve, each with its remaining count.
    faults: HashMap<Endpoint, VecDeque<(Fault, u32)>>,
    calls: Vec<Call>,
    oplog_ignores: bool,
    stopping: bool,
}

struct Qr {
    created: Instant,
    desktop: bool,
    ticket: String,
    scanned: bool,
    confirmed: bool,
    /// auto_confirm: when the phone scans and confirms by itself.
    auto: Option<(Instant, Instant)>,
    told_scan: bool,
    used: bool,
    /// A push login the phone does not answer ([`PushLogin::Ignore`]).
    ignored: bool,
}

impl Qr {
    fn scanned(&self, now: Instant) -> bool {
        self.scanned || self.auto.is_some_and(|(s, _)| s <= now)
    }
    fn confirmed(&self, now: Instant) -> bool {
        self.confirmed || self.auto.is_some_and(|(_, c)| c <= now)
    }
}

struct Session {
    id: u64,
    sid: String,
    skey: String,
    /// As sent in the XML: already percent-encoded.
    pass_ticket: String,
    auth_ticket: String,
    desktop: bool,
    dead: Option<i64>,
    key_base: i64,
    started: i64,
    seq_tokens: HashMap<String, usize>,
    /// The change-log position of this login's first webwxinit: every later
    /// webwxinit hands out that same key again, stale by then, as a real
    /// server may; only webwxsync moves a client's key on.
    init_position: Option<usize>,
}

impl Session {
    fn sync_key(&self, v: usize, check: bool) -> Value {
        let v = v as i64;
        let mut list = vec![
            (1, self.key_base + v),
            (2, self.key_base + 10_000 + v),
            (3, self.key_base + 20_000 + v),
        ];
        if check {
            list.push((11, self.key_base + 30_000 + v));
            list.push((201, self.started + v));
        }
        list.push((1000, self.started));
        json!({
            "Count": list.len(),
            "List": list.iter().map(|(k, v)| json!({"Key": k, "Val": v})).collect::<Vec<_>>(),
        })
    }

    /// The log position a key stands for (key 2), if it belongs to this session.
    fn position(&self, key2: Option<i64>, v: usize) -> usize {
        key2.and_then(|val| usize::try_from(val - self.key_base - 10_000).ok())
            .filter(|p| *p <= v)
            .unwrap_or(v)
    }
}

pub(crate) struct ServerTask {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

impl ServerTask {
    pub async fn stop(self, inner: &Inner) {
        inner.lock().stopping = true;
        inner.bump();
        let _ = self.stop.send(());
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

pub(crate) async fn start(
    cfg: SimConfig,
    listen: SocketAddr,
) -> std::io::Result<(Arc<Inner>, ServerTask)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    let base = url::Url::parse(&format!("http://{host}:{}/", addr.port()))
        .map_err(std::io::Error::other)?;
    let world = World::generate(&cfg);
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            world,
            rng: StdRng::seed_from_u64(cfg.seed ^ 0x7ea1_5e55),
            qr: HashMap::new(),
            newest_qr: None,
            session: None,
            sessions_made: 0,
            auth_ticket: None,
            push_login: PushLogin::default(),
            faults: HashMap::new(),
            calls: Vec::new(),
            oplog_ignores: false,
            stopping: false,
        }),
        cfg,
        base,
        tick: watch::Sender::new(0),
    });
    let router = Router::new()
        .fallback(dispatch)
        .with_state(Arc::clone(&inner));
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let handle = tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "simulator server stopped");
        }
    });
    tracing::info!(url = %inner.base, "simulator listening");
    Ok((inner, ServerTask { stop, handle }))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.tick.send_modify(|t| *t += 1);
    }

    pub fn with_world<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.lock().world)
    }

    pub fn with_world_mut<R>(&self, f: impl FnOnce(&mut World) -> (Vec<Change>, R)) -> R {
        let r = {
            let mut st = self.lock();
            let (changes, r) = f(&mut st.world);
            st.world.changes.extend(changes);
            r
        };
        self.bump();
        r
    }

    pub fn phone(&self, confirm: bool) {
        {
            let mut st = self.lock();
            let Some(uuid) = st.newest_qr.clone() else {
                tracing::warn!("simulator: no QR code to scan");
                return;
            };
            if let Some(q) = st.qr.get_mut(&uuid) {
                q.scanned = true;
                q.confirmed |= confirm;
            }
        }
        self.bump();
    }

    pub fn add_fault(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times == 0 {
            return self.clear_faults_of(endpoint);
        }
        self.lock()
            .faults
            .entry(endpoint)
            .or_default()
            .push_back((fault, times));
    }

    pub fn clear_faults_of(&self, endpoint: Endpoint) {
        self.lock().faults.remove(&endpoint);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The fault the next call to `endpoint` gets, if any.
    fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut st = self.lock();
        let queue = st.faults.get_mut(&endpoint)?;
        let (fault, left) = queue.front_mut()?;
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    pub fn set_push_login(&self, mode: PushLogin) {
        self.lock().push_login = mode;
    }

    pub fn kill_session(&self, code: i64) {
        if let Some(s) = self.lock().session.as_mut() {
            s.dead = Some(code);
        }
        self.bump();
    }

    pub fn set_oplog_ignores(&self, on: bool) {
        self.lock().oplog_ignores = on;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }
}

/// A parsed request.
struct Req {
    method: Method,
    query: String,
    params: HashMap<String, String>,
    headers: HeaderMap,
    cookies: HashMap<String, String>,
    body: Bytes,
}

impl Req {
    fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    /// The body as JSON, whatever the Content-Type says.
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct Reply {
    status: u16,
    content_type: Cow<'static, str>,
    body: Vec<u8>,
    /// Sent instead of `body` when set: a body produced while it is sent.
    stream: Option<Streamed>,
    cookies: Vec<String>,
    ret: Option<i64>,
}

struct Streamed {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    /// Announced as Content-Length; None sends it chunked.
    length: Option<u64>,
}

impl Reply {
    fn json(v: &impl Serialize, ret: i64) -> Reply {
        Reply {
            status: 200,
            content_type: Cow::Borrowed("text/plain"),
            body: serde_json::to_vec(v).unwrap_or_default(),
            stream: None,
            cookies: Vec::new(),
            ret: Some(ret),
        }
    }
    fn base(ret: i64) -> Reply {
        Reply::json(&json!({"BaseResponse": {"Ret": ret, "ErrMsg": ""}}), ret)
    }
    fn js(text: String, ret: i64) -> Reply {
        Reply {
            status: 200,
            content_type: Cow::Borrowed("text/javascript"),
            body: text.into_bytes(),
            stream: None,
            cookies: Vec::new(),
            ret: Some(ret),
        }
    }
    fn synccheck(retcode: i64, selector: u8) -> Reply {
        Reply::js(
            format!("window.synccheck={{retcode:\"{retcode}\",selector:\"{selector}\"}}"),
            retcode,
        )
    }
    fn plain(status: u16, content_type: &'static str, body: &str) -> Reply {
        Reply::bytes(
            status,
            Cow::Borrowed(content_type),
            body.as_bytes().to_vec(),
        )
    }
    fn bytes(status: u16, content_type: Cow<'static, str>, body: Vec<u8>) -> Reply {
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
    fn reset() -> Reply {
        let mut r = Reply::bytes(200, Cow::Borrowed("text/plain"), Vec::new());
        r.status = 0;
        r.stream = Some(Streamed {
            reader: Box::new(FailingReader),
            length: None,
        });
        r
    }
    fn ticket_xml(status: u16, ret: i64, message: &str) -> Reply {
        let mut r = Reply::plain(
            status,
            "text/plain",
            &format!("<error><ret>{ret}</ret><message>{message}</message></error>"),
        );
        r.ret = Some(ret);
        r
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BaseResponse {
    ret: i64,
    err_msg: &'static str,
}

const OK: BaseResponse = BaseResponse {
    ret: 0,
    err_msg: "",
};

fn endpoint_of(path: &str) -> Endpoint {
    match path {
        "/jslogin" => Endpoint::JsLogin,
        "/cgi-bin/mmwebwx-bin/login" => Endpoint::LoginPoll,
        "/cgi-bin/mmwebwx-bin/webwxnewloginpage" => Endpoint::NewLoginPage,
        "/cgi-bin/mmwebwx-bin/webwxinit" => Endpoint::Init,
        "/cgi-bin/mmwebwx-bin/webwxstatusnotify" => Endpoint::StatusNotify,
        "/cgi-bin/mmwebwx-bin/webwxgetcontact" => Endpoint::GetContact,
        "/cgi-bin/mmwebwx-bin/webwxbatchgetcontact" => Endpoint::BatchGetContact,
        "/cgi-bin/mmwebwx-bin/webwxoplog" => Endpoint::OpLog,
        "/cgi-bin/mmwebwx-bin/synccheck" => Endpoint::SyncCheck,
        "/cgi-bin/mmwebwx-bin/webwxsync" => Endpoint::Sync,
        "/cgi-bin/mmwebwx-bin/webwxlogout" => Endpoint::Logout,
        "/cgi-bin/mmwebwx-bin/webwxpushloginurl" => Endpoint::PushLogin,
        "/cgi-bin/mmwebwx-bin/webwxgeticon" => Endpoint::GetIcon,
        "/cgi-bin/mmwebwx-bin/webwxgetheadimg" => Endpoint::GetHeadImg,
        _ => Endpoint::Other,
    }
}

async fn dispatch(
    AxumState(inner): AxumState<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if method == Method::POST && !body.starts_with(b"{") {
        for (k, v) in url::form_urlencoded::parse(&body) {
            params.entry(k.into_owned()).or_insert(v.into_owned());
        }
    }
    let raw_cookies = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let cookies = raw_cookies
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = Req {
        method,
        query,
        params,
        headers,
        cookies,
        body,
    };
    if let Some(control) = path.strip_prefix("/__sim/") {
        return respond(control_api(&inner, control, &req));
    }
    let endpoint = endpoint_of(&path);
    let index = {
        let mut st = inner.lock();
        st.calls.push(Call {
            endpoint,
            method: req.method.to_string(),
            query: req.query.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            cookies: raw_cookies,
            headers: req
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            status: 0,
            ret: None,
        });
        st.calls.len() - 1
    };
    let reply = match inner.take_fault(endpoint) {
        None => handle(&inner, endpoint, &req, None).await,
        Some(Fault::Http(code)) => Reply::plain(
            code,
            "text/html",
            &format!(
                "<html><head><title>{code} Error</title></head><body><center><h1>{code} Error</h1></center><hr><center>nginx</center></body></html>"
            ),
        ),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            handle(&inner, endpoint, &req, None).await
        }
        Some(Fault::Truncated) => {
            let mut r = handle(&inner, endpoint, &req, None).await;
            r.body.truncate(r.body.len() / 2);
            r
        }
        Some(Fault::Empty) => {
            let mut r = handle(&inner, endpoint, &req, None).await;
            r.body.clear();
            r
        }
        Some(Fault::LoginRet(n)) if endpoint == Endpoint::NewLoginPage => {
            ticket(&inner, &req, Some(n))
        }
        Some(Fault::Ret(n) | Fault::LoginRet(n)) => fault_ret(&inner, endpoint, n),
        Some(Fault::Reset) => Reply::reset(),
        Some(Fault::Custom {
            status,
            content_type,
            body,
        }) => Reply::bytes(status, Cow::Owned(content_type), body),
        Some(Fault::Huge { bytes, chunked }) => huge_reply(endpoint, bytes, chunked),
        // Faults that shape one endpoint's reply; the others ignore them.
        Some(shape @ (Fault::EndlessSeq | Fault::UnaskedGroups(_) | Fault::HugeGroup(_))) => {
            handle(&inner, endpoint, &req, Some(&shape)).await
        }
        // Faults that rewrite the lists of any JSON reply.
        Some(shape @ (Fault::Unnamed(_) | Fault::LeftOut(_) | Fault::EmptyList)) => {
            let mut r = handle(&inner, endpoint, &req, None).await;
            if r.ret == Some(0) {
                reshape_lists(&mut r.body, &shape);
            }
            r
        }
    };
    {
        let mut st = inner.lock();
        if let Some(c) = st.calls.get_mut(index) {
            c.status = reply.status;
            c.ret = reply.ret;
        }
    }
    tracing::debug!(?endpoint, method = %req.method, status = reply.status, ret = ?reply.ret, "simulator call");
    respond(reply)
}

fn respond(r: Reply) -> Response {
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
struct FailingReader;

impl AsyncRead for FailingReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> TaskPoll<io::Result<()>> {
        TaskPoll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
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
fn fault_ret(inner: &Inner, endpoint: Endpoint, n: i64) -> Reply {
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

/// The normal reply; `shape` is a fault that changes what the reply holds
/// ([`Fault::EndlessSeq`], [`Fault::UnaskedGroups`], [`Fault::HugeGroup`]).
async fn handle(inner: &Inner, endpoint: Endpoint, req: &Req, shape: Option<&Fault>) -> Reply {
    let get = req.method == Method::GET;
    let post = req.method == Method::POST;
    match endpoint {
        Endpoint::JsLogin if get || post => jslogin(inner, req),
        Endpoint::LoginPoll if get => login_poll(inner, req).await,
        Endpoint::NewLoginPage if get => ticket(inner, req, None),
        Endpoint::Init if post => init(inner, req),
        Endpoint::StatusNotify if post => status_notify(inner, req),
        Endpoint::GetContact if get => get_contact(inner, req, shape),
        Endpoint::BatchGetContact if post => batch_get_contact(inner, req, shape),
        Endpoint::OpLog if post => oplog(inner, req),
        Endpoint::SyncCheck if get => synccheck(inner, req).await,
        Endpoint::Sync if post => sync(inner, req),
        Endpoint::Logout => logout(inner, req),
        Endpoint::PushLogin if get => push_login(inner, req),
        Endpoint::GetIcon if get => avatar(inner, req, false),
        Endpoint::GetHeadImg if get => avatar(inner, req, true),
        Endpoint::Other => {
            Reply::plain(404, "text/html", "<html><body>404 Not Found</body></html>")
        }
        _ => Reply::plain(
            405,
            "text/html",
            "<html><body>405 Method Not Allowed</body></html>",
        ),
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";

/// Issues a login uuid. A push login's has no scan step (the phone was
/// asked directly); an ignored one never becomes the phone's newest.
fn new_uuid(st: &mut State, desktop: bool, push: Option<PushLogin>) -> String {
    let uuid = format!(
        "{}==",
        random_string(
            &mut st.rng,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            10
        )
    );
    let ticket = format!("A{}@qrticket_0", random_string(&mut st.rng, ALNUM, 31));
    let ignored = push == Some(PushLogin::Ignore);
    st.qr.insert(
        uuid.clone(),
        Qr {
            created: Instant::now(),
            desktop,
            ticket,
            scanned: push.is_some(),
            confirmed: false,
            auto: None,
            told_scan: push.is_some(),
            used: false,
            ignored,
        },
    );
    if !ignored {
        st.newest_qr = Some(uuid.clone());
    }
    uuid
}

fn jslogin(inner: &Inner, req: &Req) -> Reply {
    let desktop = req
        .param("redirect_uri")
        .is_some_and(|r| r.contains("mod=desktop"));
    let uuid = new_uuid(&mut inner.lock(), desktop, None);
    Reply::js(
        format!("window.QRLogin.code = 200; window.QRLogin.uuid = \"{uuid}\";"),
        200,
    )
}

/// `{"ret":"N","msg":…}`: the push-login shape, ret as a quoted number.
fn push_refusal(ret: i64, msg: &str) -> Reply {
    Reply::json(&json!({"ret": ret.to_string(), "msg": msg}), ret)
}

/// `webwxpushloginurl?uin=…`: with the `wxuin` and newest `webwx_auth_ticket`
/// cookies of this account, asks the phone to confirm a new login and
/// answers its uuid; the client then polls that uuid as after a QR code.
fn push_login(inner: &Inner, req: &Req) -> Reply {
    let reply = {
        let st = &mut *inner.lock();
        let uin = st.world.uin.to_string();
        let cookie_uin = req.cookies.get("wxuin");
        let ticket = req.cookies.get("webwx_auth_ticket");
        if ticket.is_none() || cookie_uin != Some(&uin) || req.param("uin") != Some(&uin) {
            return push_refusal(1, "args error");
        }
        if ticket != st.auth_ticket.as_ref() {
            return push_refusal(3, "device authinfo invalid");
        }
        if st.push_login == PushLogin::Refuse {
            return push_refusal(2, "antispam");
        }
        let desktop = req.param("mod") == Some("desktop");
        let mode = st.push_login;
        let uuid = new_uuid(st, desktop, Some(mode));
        Reply::json(&json!({"ret": "0", "msg": "all ok", "uuid": uuid}), 0)
    };
    inner.bump();
    reply
}

enum Poll {
    Ready(Reply),
    Wait(Option<Instant>),
}

/// Holds until `check` is ready, the world ticks past it, or `long_poll` runs out.
async fn long_poll(
    inner: &Inner,
    mut check: impl FnMut(&mut State, Instant) -> Poll,
    timeout: impl FnOnce() -> Reply,
) -> Reply {
    let deadline = Instant::now() + inner.cfg.long_poll;
    let mut rx = inner.tick.subscribe();
    loop {
        let now = Instant::now();
        let wake = match check(&mut inner.lock(), now) {
            Poll::Ready(r) => return r,
            Poll::Wait(w) => w.map_or(deadline, |w| w.min(deadline)),
        };
        if now >= deadline {
            return timeout();
        }
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

async fn login_poll(inner: &Inner, req: &Req) -> Reply {
    let uuid = req.param("uuid").unwrap_or("").to_string();
    let step = (inner.cfg.long_poll / 4).min(Duration::from_millis(500));
    let auto = inner.cfg.auto_confirm;
    let base = inner.base.clone();
    long_poll(
        inner,
        |st, now| {
            if st.stopping {
                return Poll::Ready(Reply::js("window.code=408;".into(), 408));
            }
            let Some(q) = st.qr.get_mut(&uuid) else {
                return Poll::Ready(Reply::js("window.code=400;".into(), 400));
            };
            if q.used || now.duration_since(q.created) > UUID_TTL {
                return Poll::Ready(Reply::js("window.code=400;".into(), 400));
            }
            if auto && q.auto.is_none() && !q.ignored {
                q.auto = Some((now + step, now + 2 * step));
            }
            if q.confirmed(now) {
                let scan = chrono::Utc::now().timestamp();
                return Poll::Ready(Reply::js(
                    format!(
                        "window.code=200;\nwindow.redirect_uri=\"{base}cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket={}&uuid={uuid}&lang=zh_CN&scan={scan}\";",
                        q.ticket
                    ),
                    200,
                ));
            }
            if q.scanned(now) && !q.told_scan {
                q.told_scan = true;
                return Poll::Ready(Reply::js(
                    format!("window.code=201;window.userAvatar='{AVATAR}';"),
                    201,
                ));
            }
            Poll::Wait(q.auto.map(|(s, c)| if s > now { s } else { c }).filter(|t| *t > now))
        },
        || Reply::js("window.code=408;".into(), 408),
    )
    .await
}

fn percent_encode_ticket(raw: &str) -> String {
    raw.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn ticket(inner: &Inner, req: &Req, login_ret: Option<i64>) -> Reply {
    let now = Instant::now();
    let mut st = inner.lock();
    let uuid = req.param("uuid").unwrap_or("");
    let ticket = req.param("ticket").unwrap_or("");
    let q = st
        .qr
        .get_mut(uuid)
        .filter(|q| q.confirmed(now) && !q.used && q.ticket == ticket);
    let desktop = q.as_ref().is_some_and(|q| q.desktop) || req.param("mod") == Some("desktop");
    // Desktop mode answers 301 with the body and cookies and no Location.
    let status = if desktop { 301 } else { 200 };
    let Some(q) = q else {
        return Reply::ticket_xml(status, -14, "ticket error");
    };
    q.used = true;
    if let Some(n) = login_ret {
        let msg = if n == 1203 { BARRED_MESSAGE } else { "" };
        return Reply::ticket_xml(status, n, msg);
    }
    if desktop
        && (req.header("client-version") != Some(UOS_CLIENT_VERSION)
            || req.header("extspam") != Some(UOS_EXTSPAM))
    {
        return Reply::ticket_xml(status, 1203, BARRED_MESSAGE);
    }
    if st.sessions_made > 0 {
        st.world.next_generation();
    }
    st.sessions_made += 1;
    let rng = &mut st.rng;
    let mut sid = random_string(rng, B64, 16);
    sid.replace_range(5..6, "+");
    sid.replace_range(11..12, "/");
    let skey = format!(
        "@crypt_{}_{}",
        random_string(rng, HEX, 8),
        random_string(rng, HEX, 32)
    );
    let mut raw_ticket = random_string(rng, B64, 62);
    raw_ticket.replace_range(7..8, "+");
    raw_ticket.push_str("==");
    let pass_ticket = percent_encode_ticket(&raw_ticket);
    let auth_ticket = random_string(rng, B64, 120);
    let data_ticket = random_string(rng, B64, 64);
    let uvid = random_string(rng, HEX, 32);
    let key_base = rng.random_range(600_000_000..700_000_000);
    let started = chrono::Utc::now().timestamp();
    let uin = st.world.uin;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(12))
        .format("%a, %d-%b-%Y %H:%M:%S GMT")
        .to_string();
    let cookie = |k: &str, v: &str| format!("{k}={v}; Path=/; Expires={expires}");
    let cookies = vec![
        cookie("wxuin", &uin.to_string()),
        cookie("wxsid", &sid),
        cookie("wxloadtime", &format!("{started}_expired")),
        cookie("mm_lang", "zh_CN"),
        cookie("webwx_data_ticket", &data_ticket),
        cookie("webwxuvid", &uvid),
        cookie("webwx_auth_ticket", &auth_ticket),
    ];
    let body = format!(
        "<error><ret>0</ret><message></message><skey>{skey}</skey><wxsid>{sid}</wxsid><wxuin>{uin}</wxuin><pass_ticket>{pass_ticket}</pass_ticket><isgrayscale>1</isgrayscale></error>"
    );
    st.auth_ticket = Some(auth_ticket.clone());
    st.session = Some(Session {
        id: st.sessions_made,
        sid,
        skey,
        pass_ticket,
        auth_ticket,
        desktop,
        dead: None,
        key_base,
        started,
        seq_tokens: HashMap::new(),
        init_position: None,
    });
    drop(st);
    inner.bump();
    let mut r = Reply::plain(status, "text/plain", &body);
    r.cookies = cookies;
    r.ret = Some(0);
    r
}

/// Where a request carries its credentials.
enum Creds<'a> {
    /// POST: `BaseRequest` in the JSON body.
    Body(Option<&'a Value>),
    /// GET: `sid`/`uin` (synccheck) and `skey` in the query.
    Query { sid_uin: bool },
}

/// Checks cookies, BaseRequest or query credentials and pass_ticket.
/// Err carries the Ret: 1101 for missing/foreign cookies, 1100 for a wrong
/// Sid/Uin/Skey/pass_ticket, or the code the session died with.
/// Checks a call's credentials against the live session and returns it, or
/// the Ret the server answers.
fn authenticate<'a>(st: &'a State, req: &Req, creds: Creds<'_>) -> Result<&'a Session, i64> {
    let Some(s) = st.session.as_ref() else {
        return Err(1101);
    };
    if let Some(code) = s.dead {
        return Err(code);
    }
    let uin = st.world.uin.to_string();
    let cookie = |k: &str| req.cookies.get(k).map(String::as_str);
    if cookie("wxuin") != Some(&uin)
        || cookie("wxsid") != Some(&s.sid)
        || cookie("webwx_auth_ticket") != Some(&s.auth_ticket)
    {
        return Err(1101);
    }
    let skey_ok = |k: Option<&str>| k.is_none_or(|k| k.is_empty() || k == s.skey);
    match creds {
        Creds::Body(body) => {
            let br = body.and_then(|b| b.get("BaseRequest")).ok_or(1100)?;
            let uin_ok = match br.get("Uin") {
                Some(Value::Number(n)) => n.to_string() == uin,
                Some(Value::String(t)) => *t == uin,
                _ => false,
            };
            if !uin_ok
                || br.get("Sid").and_then(Value::as_str) != Some(s.sid.as_str())
                || !skey_ok(br.get("Skey").and_then(Value::as_str))
            {
                return Err(1100);
            }
        }
        Creds::Query { sid_uin } => {
            // A raw `+` in the query decodes to a space; accept either spelling.
            let sid = req.param("sid").map(|v| v.replace(' ', "+"));
            if sid_uin && (sid.as_deref() != Some(&s.sid) || req.param("uin") != Some(&uin)) {
                return Err(1100);
            }
            if !skey_ok(req.param("skey")) {
                return Err(1100);
            }
        }
    }
    if !s.desktop
        && let Some(pt) = req.param("pass_ticket")
    {
        // Raw (`%2B` in the URL, decoded once here) or encoded once more (`%252B`).
        let decoded = pt
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        if pt != s.pass_ticket
            && decoded
                != s.pass_ticket
                    .replace("%2B", "+")
                    .replace("%2F", "/")
                    .replace("%3D", "=")
        {
            return Err(1100);
        }
    }
    Ok(s)
}

fn session(st: &mut State) -> &mut Session {
    st.session.as_mut().expect("authenticated")
}

fn init(inner: &Inner, req: &Req) -> Reply {
    let body = req.json();
    let st = &mut *inner.lock();
    if let Err(ret) = authenticate(st, req, Creds::Body(body.as_ref())) {
        return Reply::base(ret);
    }
    let now = st.world.changes.len();
    let position = *session(st).init_position.get_or_insert(now);
    let s = st.session.as_ref().expect("authenticated");
    let w = &st.world;
    let list: Vec<ContactJson<'_>> = w
        .init_contact_ids()
        .into_iter()
        .map(|id| w.init_json(id, &s.skey))
        .collect();
    let mut chat_set = w.chat_set_names().join(",");
    chat_set.push(',');
    Reply::json(
        &json!({
            "BaseResponse": OK,
            "Count": list.len(),
            "ContactList": list,
            "SyncKey": s.sync_key(position, false),
            "User": w.user_json(&s.skey),
            "ChatSet": chat_set,
            "SKey": s.skey,
            "ClientVersion": APP_ID_CLIENT_VERSION,
            "SystemTime": chrono::Utc::now().timestamp(),
            "GrayScale": 1,
            "InviteStartCount": 40,
            "MPSubscribeMsgCount": 0,
            "MPSubscribeMsgList": [],
            "ClickReportInterval": 600000,
        }),
        0,
    )
}

fn status_notify(inner: &Inner, req: &Req) -> Reply {
    let body = req.json();
    let msg_id = {
        let st = &mut *inner.lock();
        if let Err(ret) = authenticate(st, req, Creds::Body(body.as_ref())) {
            return Reply::base(ret);
        }
        let msg_id: u64 = st
            .rng
            .random_range(1_000_000_000_000_000_000..9_000_000_000_000_000_000);
        let code = body
            .as_ref()
            .and_then(|b| b.get("Code"))
            .and_then(Value::as_i64);
        if code == Some(3) {
            let session = session(st).id;
            let State { world, rng, .. } = st;
            let ids = world.status_notify_ids(inner.cfg.status_notify, rng);
            for _ in 0..inner.cfg.status_notify_copies {
                for chunk in ids.chunks(STATUS_CHUNK) {
                    let id: u64 =
                        rng.random_range(1_000_000_000_000_000_000..9_000_000_000_000_000_000);
                    let msg = status_msg(world, chunk, id);
                    world.changes.push(Change::Msg { session, msg });
                }
            }
        }
        msg_id
    };
    inner.bump();
    Reply::json(&json!({"BaseResponse": OK, "MsgID": msg_id.to_string()}), 0)
}

/// A MsgType 51 (StatusNotifyCode 4) message that follows statusnotify:
/// session names in StatusNotifyUserName, permanent ids in Content.
fn status_msg(w: &World, ids: &[Id], msg_id: u64) -> Value {
    let names: Vec<&str> = ids.iter().map(|id| w.name(*id)).collect();
    let wxids: Vec<&str> = ids.iter().map(|id| w.entities[*id].wxid.as_str()).collect();
    let me = w.name(w.self_id);
    json!({
        "MsgId": msg_id.to_string(),
        "FromUserName": me,
        "ToUserName": me,
        "MsgType": 51,
        "Content": format!("&lt;msg&gt;<br/>&lt;op id='4'&gt;<br/>&lt;username&gt;{}&lt;/username&gt;<br/>&lt;/op&gt;<br/>&lt;/msg&gt;", wxids.join(",")),
        "Status": 3,
        "ImgStatus": 1,
        "CreateTime": chrono::Utc::now().timestamp(),
        "VoiceLength": 0,
        "PlayLength": 0,
        "FileName": "",
        "FileSize": "",
        "MediaId": "",
        "Url": "",
        "AppMsgType": 0,
        "StatusNotifyCode": 4,
        "StatusNotifyUserName": names.join(","),
        "RecommendInfo": {"UserName": "", "NickName": "", "QQNum": 0, "Province": "", "City": "", "Content": "", "Signature": "", "Alias": "", "Scene": 0, "VerifyFlag": 0, "AttrStatus": 0, "Sex": 0, "Ticket": "", "OpCode": 0},
        "ForwardFlag": 0,
        "AppInfo": {"AppID": "", "Type": 0},
        "HasProductId": 0,
        "Ticket": "",
        "ImgHeight": 0,
        "ImgWidth": 0,
        "SubMsgType": 0,
        "NewMsgId": msg_id,
        "OriContent": "",
        "EncryFileName": "",
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContactPage<'a> {
    base_response: BaseResponse,
    member_count: usize,
    member_list: Vec<ContactJson<'a>>,
    seq: u64,
}

/// An opaque continuation token derived from the page's last entry.
fn seq_token(session: u64, last: Id, next: usize) -> u64 {
    let mut x = (session << 40) ^ ((last as u64) << 20) ^ next as u64 ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    1_000_000_000 + x % 3_000_000_000
}

/// A webwxgetcontact page. With [`Fault::EndlessSeq`] the page's Seq is never
/// 0 (past the end it points at the top of the list again, under a new token).
fn get_contact(inner: &Inner, req: &Req, shape: Option<&Fault>) -> Reply {
    let endless = matches!(shape, Some(Fault::EndlessSeq));
    let st = &mut *inner.lock();
    if let Err(ret) = authenticate(st, req, Creds::Query { sid_uin: false }) {
        return Reply::base(ret);
    }
    let page_size = inner.cfg.page_size.max(1);
    let seq = req.param("seq").unwrap_or("0");
    let s = st.session.as_mut().expect("authenticated");
    // An unknown token (not from this session) is a bad parameter: Ret 1.
    let start = match seq {
        "" | "0" => 0,
        t => match s.seq_tokens.get(t) {
            Some(start) => *start,
            None => {
                return Reply::json(
                    &json!({"BaseResponse": {"Ret": 1, "ErrMsg": ""}, "MemberCount": 0, "MemberList": [], "Seq": 0}),
                    1,
                );
            }
        },
    };
    let listing = st.world.contact_listing();
    let start = start.min(listing.len());
    let end = (start + page_size).min(listing.len());
    let next = if end < listing.len() || endless {
        let issued = s.seq_tokens.len();
        let last = end.checked_sub(1).map_or(0, |i| listing[i]);
        let t = seq_token(s.id, last, end + issued * listing.len().max(1));
        s.seq_tokens
            .insert(t.to_string(), if end < listing.len() { end } else { 0 });
        t
    } else {
        0
    };
    let s = st.session.as_ref().expect("authenticated");
    let w = &st.world;
    let list: Vec<ContactJson<'_>> = listing[start..end]
        .iter()
        .map(|id| w.contact_json(*id, &s.skey, None, false))
        .collect();
    Reply::json(
        &ContactPage {
            base_response: OK,
            member_count: list.len(),
            member_list: list,
            seq: next,
        },
        0,
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchReply<'a> {
    base_response: BaseResponse,
    count: usize,
    contact_list: Vec<ContactJson<'a>>,
}

/// A webwxbatchgetcontact reply, shaped by [`Fault::UnaskedGroups`] or
/// [`Fault::HugeGroup`].
fn batch_get_contact(inner: &Inner, req: &Req, shape: Option<&Fault>) -> Reply {
    let body = req.json();
    let st = &mut *inner.lock();
    let s = match authenticate(st, req, Creds::Body(body.as_ref())) {
        Ok(s) => s,
        Err(ret) => return Reply::base(ret),
    };
    let w = &st.world;
    let empty = Vec::new();
    let items = body
        .as_ref()
        .and_then(|b| b.get("List"))
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let filler = match shape {
        Some(Fault::HugeGroup(n)) => world::filler_members(*n),
        _ => Vec::new(),
    };
    let mut inflated = false;
    let mut list: Vec<ContactJson<'_>> = Vec::new();
    for item in items.iter().take(BATCH_CAP) {
        let name = item.get("UserName").and_then(Value::as_str).unwrap_or("");
        let room = ["EncryChatRoomId", "ChatRoomId"]
            .iter()
            .filter_map(|k| item.get(*k).and_then(Value::as_str))
            .find(|v| !v.is_empty());
        if name.starts_with("@@") {
            if let Some(g) = w.lookup_group(name) {
                let mut json = w.group_json(g, &s.skey);
                if !inflated && let Some(Fault::HugeGroup(n)) = shape {
                    json.pad_members(&filler, *n);
                    inflated = true;
                }
                list.push(json);
            }
            continue;
        }
        let Some(id) = w.lookup(name) else { continue };
        let known = match room {
            Some(room) => {
                w.entities[id].group.is_none()
                    && w.lookup_group(room).is_some_and(|g| w.is_member(g, id))
            }
            None => w.is_known_person(id),
        };
        if known {
            list.push(w.contact_json(id, &s.skey, None, false));
        }
    }
    if let Some(Fault::UnaskedGroups(n)) = shape {
        let asked: Vec<&str> = list.iter().map(ContactJson::user_name).collect();
        let extra: Vec<Id> = w
            .live_groups()
            .filter(|g| !asked.contains(&w.name(*g)))
            .take(*n)
            .collect();
        list.extend(extra.into_iter().map(|g| w.group_json(g, &s.skey)));
    }
    Reply::json(
        &BatchReply {
            base_response: OK,
            count: list.len(),
            contact_list: list,
        },
        0,
    )
}

fn oplog(inner: &Inner, req: &Req) -> Reply {
    let body = req.json();
    let ret = {
        let st = &mut *inner.lock();
        if let Err(ret) = authenticate(st, req, Creds::Body(body.as_ref())) {
            return Reply::base(ret);
        }
        if st.oplog_ignores {
            return Reply::base(0);
        }
        let body = body.unwrap_or_default();
        let cmd = body.get("CmdId").and_then(Value::as_i64);
        let remark = body.get("RemarkName").and_then(Value::as_str);
        let target = body
            .get("UserName")
            .and_then(Value::as_str)
            .and_then(|n| st.world.lookup(n));
        let w = &mut st.world;
        match (cmd, target) {
            (Some(2), Some(id))
                if w.entities[id].kind == SimKind::Friend && !w.entities[id].removed =>
            {
                w.entities[id].remark = text::encode_wire(remark.unwrap_or(""));
                w.changes.push(Change::Mod(id));
                0
            }
            (Some(3), Some(id))
                if w.entities[id].kind != SimKind::Stranger && !w.entities[id].removed =>
            {
                let e = &mut w.entities[id];
                match body.get("OP").and_then(Value::as_i64) {
                    Some(1) => e.contact_flag |= 2048,
                    _ => e.contact_flag &= !2048,
                }
                // Omitting RemarkName erases the remark, as on the real servers.
                e.remark = text::encode_wire(remark.unwrap_or(""));
                w.changes.push(Change::Mod(id));
                0
            }
            _ => 1,
        }
    };
    inner.bump();
    Reply::base(ret)
}

fn key2_of_query(synckey: &str) -> Option<i64> {
    synckey
        .split('|')
        .filter_map(|kv| kv.split_once('_'))
        .find(|(k, _)| *k == "2")
        .and_then(|(_, v)| v.parse().ok())
}

fn key2_of_body(body: Option<&Value>) -> Option<i64> {
    body?
        .get("SyncKey")?
        .get("List")?
        .as_array()?
        .iter()
        .find(|kv| kv.get("Key").and_then(Value::as_i64) == Some(2))?
        .get("Val")?
        .as_i64()
}

/// `webwxgeticon` (people) and `webwxgetheadimg` (groups): the image of
/// `username`, as `image/jpeg`. Without the session's cookies and skey, for
/// a dead session or a name it does not know, the live server answers 200
/// with an empty body, and so does this.
fn avatar(inner: &Inner, req: &Req, group: bool) -> Reply {
    let st = inner.lock();
    let image = authenticate(&st, req, Creds::Query { sid_uin: false })
        .ok()
        .filter(|_| req.param("skey").is_some_and(|k| !k.is_empty()))
        .and_then(|_| st.world.avatar_image(req.param("username")?, group));
    Reply::bytes(200, Cow::Borrowed("image/jpeg"), image.unwrap_or_default())
}

fn relevant(change: &Change, session: u64) -> bool {
    match change {
        Change::Msg { session: s, .. } => *s == session,
        Change::Mod(_) | Change::Del(_) => true,
    }
}

async fn synccheck(inner: &Inner, req: &Req) -> Reply {
    let key2 = key2_of_query(req.param("synckey").unwrap_or(""));
    long_poll(
        inner,
        |st, _| {
            if st.stopping {
                return Poll::Ready(Reply::synccheck(0, 0));
            }
            let s = match authenticate(st, req, Creds::Query { sid_uin: true }) {
                Ok(s) => s,
                Err(code) => {
                    let code = if st.session.as_ref().and_then(|s| s.dead).is_some() {
                        code
                    } else {
                        1101
                    };
                    return Poll::Ready(Reply::synccheck(code, 0));
                }
            };
            let v = st.world.changes.len();
            let p = s.position(key2, v);
            if st.world.changes[p..].iter().any(|c| relevant(c, s.id)) {
                Poll::Ready(Reply::synccheck(0, 2))
            } else {
                Poll::Wait(None)
            }
        },
        || Reply::synccheck(0, 0),
    )
    .await
}

fn sync(inner: &Inner, req: &Req) -> Reply {
    let body = req.json();
    let st = &mut *inner.lock();
    let s = match authenticate(st, req, Creds::Body(body.as_ref())) {
        Ok(s) => s,
        Err(ret) => return Reply::base(ret),
    };
    let w = &st.world;
    let v = w.changes.len();
    let p = s.position(key2_of_body(body.as_ref()), v);
    let end = (p + SYNC_CHUNK).min(v);
    // The last change per contact in the range wins; messages are this session's.
    let mut order: Vec<Id> = Vec::new();
    let mut last: HashMap<Id, bool> = HashMap::new();
    let mut msgs = Vec::new();
    for c in &w.changes[p..end] {
        match c {
            Change::Mod(id) | Change::Del(id) => {
                if last.insert(*id, matches!(c, Change::Del(_))).is_none() {
                    order.push(*id);
                }
            }
            Change::Msg { session, msg } if *session == s.id => msgs.push(msg),
            Change::Msg { .. } => {}
        }
    }
    let mut mods = Vec::new();
    let mut dels = Vec::new();
    for id in order {
        let e = &w.entities[id];
        let gone = last[&id] || e.removed || (e.kind == SimKind::Stranger && e.group.is_none());
        if gone && last[&id] {
            dels.push(DelContact {
                user_name: w.name(id),
                contact_flag: 0,
            });
        } else if !gone {
            mods.push(w.mod_json(id, &s.skey));
        }
    }
    Reply::json(
        &SyncReply {
            base_response: OK,
            add_msg_count: msgs.len(),
            add_msg_list: msgs,
            mod_contact_count: mods.len(),
            mod_contact_list: mods,
            del_contact_count: dels.len(),
            del_contact_list: dels,
            mod_chat_room_member_count: 0,
            mod_chat_room_member_list: Vec::new(),
            profile: &PROFILE,
            continue_flag: i64::from(end < v),
            sync_key: s.sync_key(end, false),
            s_key: &s.skey,
            sync_check_key: s.sync_key(end, true),
        },
        0,
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DelContact<'a> {
    user_name: &'a str,
    contact_flag: i64,
}

/// webwxsync's Profile: the self user's own edits, which are not modelled,
/// so always the same empty record.
static PROFILE: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "BitFlag": 0, "UserName": {"Buff": ""}, "NickName": {"Buff": ""}, "BindUin": 0,
        "BindEmail": {"Buff": ""}, "BindMobile": {"Buff": ""}, "Status": 0, "Sex": 0,
        "PersonalCard": 0, "Alias": "", "HeadImgUpdateFlag": 0, "HeadImgUrl": "", "Signature": ""
    })
});

/// The webwxsync reply, serialized straight from borrowed records (a chunk
/// of group changes can carry tens of thousands of members).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SyncReply<'a> {
    base_response: BaseResponse,
    add_msg_count: usize,
    add_msg_list: Vec<&'a Value>,
    mod_contact_count: usize,
    mod_contact_list: Vec<ModContactJson<'a>>,
    del_contact_count: usize,
    del_contact_list: Vec<DelContact<'a>>,
    mod_chat_room_member_count: usize,
    mod_chat_room_member_list: Vec<Value>,
    profile: &'static Value,
    continue_flag: i64,
    sync_key: Value,
    #[serde(rename = "SKey")]
    s_key: &'a str,
    sync_check_key: Value,
}

fn logout(inner: &Inner, req: &Req) -> Reply {
    {
        let mut st = inner.lock();
        if let Some(s) = st.session.as_mut()
            && req.cookies.get("wxsid") == Some(&s.sid)
        {
            s.dead = Some(1101);
        }
    }
    inner.bump();
    Reply::plain(200, "text/html", "")
}

fn control_api(inner: &Inner, path: &str, req: &Req) -> Reply {
    let ok = || Reply::plain(200, "application/json", "{\"ok\":true}");
    match (req.method.as_str(), path) {
        ("GET", "account") => {
            let mut r = Reply::json(&inner.with_world(World::snapshot), 0);
            r.content_type = Cow::Borrowed("application/json");
            r.ret = None;
            r
        }
        ("GET", "calls") => {
            let mut r = Reply::json(&inner.calls(), 0);
            r.content_type = Cow::Borrowed("application/json");
            r.ret = None;
            r
        }
        ("POST", "scan") => {
            inner.phone(false);
            ok()
        }
        ("POST", "confirm") => {
            inner.phone(true);
            ok()
        }
        _ => Reply::plain(404, "text/plain", "unknown control path"),
    }
}
