//! Typed calls on a logged-in session. The client keeps the volatile parts
//! of the session (skey, both sync keys, cookies) current; once the server
//! ends the session it makes no further requests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{self, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use super::error::Error;
use super::jar::Jar;
use super::realid::{self, RealId};
use super::session::{Session, SessionState};
use super::wire::{
    BareReply, BatchWire, ContactPageWire, InitWire, RawContact, Record, SyncKey, SyncWire,
    parse_reply, parse_synccheck, utf8,
};
use super::{ClientOptions, Mode};

/// A desktop Chrome, as the official web app runs in.
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
/// The referer of the UOS client (itchat-uos, wechat4u).
const DESKTOP_REFERER: &str = "https://wx.qq.com/?&lang=zh_CN&target=t";
const WEB_REFERER: &str = "https://wx.qq.com/";
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// The server silently drops names past this many in one batch call.
pub const BATCH_LIMIT: usize = 50;

/// One name for `webwxbatchgetcontact`: a group with `chat_room` "", or a
/// member with `chat_room` = the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchItem {
    pub user_name: String,
    pub chat_room: String,
}

/// What webwxinit returns that wxsync uses.
#[derive(Clone, Debug)]
pub struct InitReply {
    /// The account itself.
    pub user: RawContact,
    /// Recent/top chats. Groups here carry partial, dirty member lists.
    pub contacts: Vec<RawContact>,
    /// `ChatSet` split on commas: recent conversations, unsaved groups too.
    pub chat_set: Vec<String>,
}

/// One `webwxgetcontact` page.
#[derive(Clone, Debug)]
pub struct ContactPage {
    pub contacts: Vec<RawContact>,
    /// "0" on the last page; otherwise an opaque token for the next call.
    pub seq: String,
}

/// A synccheck answer other than a dead session (those are errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncCheck {
    pub retcode: String,
    pub selector: String,
}

/// What webwxsync returns that wxsync uses.
#[derive(Clone, Debug)]
pub struct SyncReply {
    /// `ModContactList`: full records that replace the stored ones.
    pub modified: Vec<RawContact>,
    /// `DelContactList` user names.
    pub deleted: Vec<String>,
    pub continue_flag: i64,
    /// Session names paired with real ids by MsgType 51 messages
    /// (StatusNotifyCode 4) in `AddMsgList`; see [`RealId`].
    pub real_ids: Vec<RealId>,
}

/// A handle on one logged-in session; cheap to clone, all clones share state.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    jar: Arc<Jar>,
    api: Url,
    push: Url,
    synccheck_timeout: Duration,
    max_reply_bytes: u64,
    session: Mutex<Session>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.inner.api.as_str())
            .field("push", &self.inner.push.as_str())
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP client: browser headers, the shared cookie jar, and no
/// redirects (the ticket step's 301 must be read, not followed).
pub(crate) fn http_client(
    jar: Arc<Jar>,
    mode: Mode,
    timeout: Duration,
) -> Result<reqwest::Client, Error> {
    let mut headers = HeaderMap::new();
    let referer = match mode {
        Mode::Desktop => DESKTOP_REFERER,
        Mode::Web => WEB_REFERER,
    };
    headers.insert(header::REFERER, HeaderValue::from_static(referer));
    headers.insert(
        header::ACCEPT_LANGUAGE,
        HeaderValue::from_static("zh-CN,zh;q=0.9,en;q=0.8"),
    );
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .build()
        .map_err(|e| Error::Setup {
            detail: e.without_url().to_string(),
        })
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A number for each request this process sends, for its log span.
fn next_call() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(1);
    CALLS.fetch_add(1, Ordering::Relaxed)
}

/// The official client's cache-buster: `~new Date()`, the bitwise NOT of the
/// milliseconds truncated to 32 bits.
pub(crate) fn rr() -> i32 {
    cache_buster(now_ms())
}

/// JavaScript's `~ms`: the milliseconds wrapped to a signed 32-bit integer,
/// then negated bit by bit.
fn cache_buster(ms: i64) -> i32 {
    // Truncation to 32 bits is the point here.
    !(ms as i32)
}

/// A query string built by hand, because `pass_ticket` arrives already
/// percent-encoded and must not be encoded twice.
#[derive(Default)]
pub(crate) struct Query(String);

impl Query {
    fn push_key(&mut self, key: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
    }

    /// A value URL-encoded here.
    pub(crate) fn enc(mut self, key: &str, value: &str) -> Query {
        self.push_key(key);
        self.0
            .extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
        self
    }

    /// A value that is already percent-encoded: kept as is, except that a
    /// character that may not appear in a query is encoded.
    pub(crate) fn pre_encoded(mut self, key: &str, value: &str) -> Query {
        self.push_key(key);
        for c in value.chars() {
            if c.is_ascii_alphanumeric() || "%-._~".contains(c) {
                self.0.push(c);
            } else {
                let mut buf = [0u8; 4];
                self.0.extend(url::form_urlencoded::byte_serialize(
                    c.encode_utf8(&mut buf).as_bytes(),
                ));
            }
        }
        self
    }

    /// What the official client adds to every API call: `lang` and the
    /// (already encoded) `pass_ticket`.
    fn api(pass_ticket: &str) -> Query {
        Query::default()
            .enc("lang", "zh_CN")
            .pre_encoded("pass_ticket", pass_ticket)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// `{origin}/cgi-bin/mmwebwx-bin/{endpoint}?{query}`: the URL of an API or
/// synccheck call.
pub(crate) fn endpoint_url(
    origin: &Url,
    endpoint: &'static str,
    query: &Query,
) -> Result<Url, Error> {
    let mut url = origin
        .join(&format!("/cgi-bin/mmwebwx-bin/{endpoint}"))
        .map_err(|e| Error::Setup {
            detail: format!("bad URL for {endpoint}: {e}"),
        })?;
    url.set_query(Some(query.as_str()));
    Ok(url)
}

/// `scheme://host[:port]` (no trailing slash) of a URL.
pub(crate) fn origin_url(url: &Url) -> Result<Url, Error> {
    let origin = url.origin();
    if !origin.is_tuple() {
        return Err(Error::Setup {
            detail: "the URL has no host".into(),
        });
    }
    Url::parse(&origin.ascii_serialization()).map_err(|e| Error::Setup {
        detail: format!("bad origin: {e}"),
    })
}

/// The synccheck origin for an API origin when no push URL is configured:
/// the same origin for an IP address or `localhost`, else `webpush.<host>`
/// (bare `wechat.com` maps to `webpush.web.wechat.com`).
pub(crate) fn derive_push_origin(api: &Url) -> Url {
    let mut push = api.clone();
    let new_host = match api.host() {
        Some(url::Host::Domain(host)) if !host.eq_ignore_ascii_case("localhost") => {
            let host = host.to_ascii_lowercase();
            if host == "wechat.com" || host == "www.wechat.com" {
                Some("webpush.web.wechat.com".to_owned())
            } else {
                Some(format!("webpush.{host}"))
            }
        }
        _ => None,
    };
    if let Some(host) = new_host {
        // A domain host always accepts another domain host.
        let _ = push.set_host(Some(&host));
    }
    push
}

/// Reads a reply body chunk by chunk and refuses one larger than `limit`
/// without buffering past it: first by its Content-Length, then by counting.
/// The buffer is allocated once from a Content-Length within the limit;
/// without one it grows geometrically, never beyond the limit.
pub(crate) async fn read_body(
    endpoint: &'static str,
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, Error> {
    let too_large = |announced| Error::TooLarge {
        endpoint,
        limit,
        announced,
    };
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large(announced));
    }
    let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let capacity = announced.map_or(0, |n| usize::try_from(n).unwrap_or(0));
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::network(endpoint, e))?
    {
        let len = body.len() + chunk.len();
        if len > limit_len {
            return Err(too_large(None));
        }
        if len > body.capacity() {
            let target = body.capacity().saturating_mul(2).max(len).min(limit_len);
            body.reserve_exact(target - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn base_request(s: &Session) -> Value {
    json!({"Uin": s.uin, "Sid": s.sid, "Skey": s.skey, "DeviceID": s.device_id})
}

fn dead_reason(code: i64, endpoint: &str) -> String {
    let what = match code {
        1100 => "the session no longer exists (logged out on the phone?)",
        1101 => "the session is invalid (web WeChat logged in elsewhere, or logged out)",
        _ => "the server refused the session (logged out, or the account was barred)",
    };
    format!("{endpoint} answered {code}: {what}")
}

impl Client {
    /// A client for a saved or freshly created session. `opts.push_url`,
    /// when set, overrides the push origin stored in the session.
    pub fn new(session: Session, opts: &ClientOptions) -> Result<Client, Error> {
        let bad = |what: &str, e: url::ParseError| Error::Setup {
            detail: format!("the session's {what} is not a URL: {e}"),
        };
        let api = Url::parse(&session.api_origin).map_err(|e| bad("API origin", e))?;
        let push = match &opts.push_url {
            Some(url) => origin_url(url)?,
            None => Url::parse(&session.push_origin).map_err(|e| bad("push origin", e))?,
        };
        let jar = Arc::new(Jar::from_value(&session.cookies)?);
        let http = http_client(Arc::clone(&jar), session.mode, opts.request_timeout)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                jar,
                api,
                push,
                synccheck_timeout: opts.synccheck_timeout,
                max_reply_bytes: opts.max_reply_bytes,
                session: Mutex::new(session),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Session> {
        self.inner
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot to persist, with the current cookies, skey and sync keys.
    pub fn session(&self) -> Session {
        let cookies = self.inner.jar.to_value();
        let mut s = self.lock().clone();
        match cookies {
            Ok(cookies) => s.cookies = cookies,
            // Cannot happen with an in-memory jar; keep the last good copy.
            Err(e) => tracing::warn!(error = %e, "keeping the previous cookies in the session"),
        }
        s
    }

    /// The session as it is now, or `SessionDead` without any request once
    /// the server has ended it.
    fn alive(&self, endpoint: &'static str) -> Result<Session, Error> {
        let s = self.lock();
        match &s.state {
            SessionState::Active => Ok(s.clone()),
            SessionState::LoggedOut { code, .. } => Err(Error::SessionDead {
                code: *code,
                endpoint,
            }),
        }
    }

    /// Records a dead session so that no later call reaches the server.
    fn observe<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(Error::SessionDead { code, endpoint }) = &result {
            let mut s = self.lock();
            if s.state == SessionState::Active {
                tracing::warn!(endpoint, code, "the server ended the session");
                s.mark_logged_out(*code, &dead_reason(*code, endpoint));
            }
        }
        result
    }

    /// Sends a request; returns the body of a 2xx reply.
    async fn fetch(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, Error> {
        self.fetch_limited(endpoint, req, self.inner.max_reply_bytes)
            .await
    }

    /// [`Client::fetch`] with a limit of its own on the body. Every request
    /// runs in a `webwx` span that names its endpoint and numbers the call,
    /// so that `RUST_LOG=debug` tells whose a line is; the request and the
    /// session (credentials) stay out of it.
    #[tracing::instrument(
        name = "webwx",
        level = "debug",
        skip_all,
        fields(endpoint = endpoint, call = next_call())
    )]
    async fn fetch_limited(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        let started = Instant::now();
        let resp = req.send().await.map_err(|e| Error::network(endpoint, e))?;
        let status = resp.status();
        if !status.is_success() {
            tracing::debug!(endpoint, status = status.as_u16(), "request failed");
            return Err(Error::Status {
                endpoint,
                status: status.as_u16(),
            });
        }
        let body = read_body(endpoint, resp, limit).await?;
        tracing::debug!(
            endpoint,
            bytes = body.len(),
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "reply"
        );
        Ok(body)
    }

    /// Sends a request and reads its JSON reply as `T`.
    async fn call<T: for<'de> Record<'de>>(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let result = match self.fetch(endpoint, req).await {
            Ok(body) => parse_reply(&body, endpoint),
            Err(e) => Err(e),
        };
        self.observe(result)
    }

    /// A POST of `body` as JSON.
    fn post(
        &self,
        endpoint: &'static str,
        url: Url,
        body: &Value,
    ) -> Result<reqwest::RequestBuilder, Error> {
        // serde_json writes raw UTF-8 and no HTML escapes, as the server wants.
        let bytes = serde_json::to_vec(body).map_err(|e| Error::json(endpoint, &e))?;
        Ok(self
            .inner
            .http
            .post(url)
            .header(header::CONTENT_TYPE, JSON_CONTENT_TYPE)
            .body(bytes))
    }

    /// `webwxinit`: the account itself, recent chats and `ChatSet`; takes the
    /// new `SKey` from the reply, and its `SyncKey` only when the session
    /// holds none yet. A repeated webwxinit (each full sync calls it) may
    /// hand out a key older than the one webwxsync has since moved the
    /// keepalive to, so the keys held are kept.
    pub async fn init(&self) -> Result<InitReply, Error> {
        const EP: &str = "webwxinit";
        let s = self.alive(EP)?;
        let query = Query::default()
            .enc("r", &rr().to_string())
            .pre_encoded("pass_ticket", &s.pass_ticket);
        let url = endpoint_url(&self.inner.api, EP, &query)?;
        let req = self.post(EP, url, &json!({"BaseRequest": base_request(&s)}))?;
        let reply: InitWire = self.call(EP, req).await?;
        let Some(user) = reply.user.filter(|u| !u.user_name.is_empty()) else {
            return Err(Error::Decode {
                endpoint: EP,
                detail: "the reply names no User".into(),
            });
        };
        let contacts = reply.contacts.into_contacts(EP)?;
        let chat_set = reply
            .chat_set
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        let Some(sync_key) = SyncKey::from_reply(reply.sync_key) else {
            return Err(Error::Decode {
                endpoint: EP,
                detail: "the reply carries no SyncKey".into(),
            });
        };
        let skey = reply.skey;
        let mut s = self.lock();
        if !skey.is_empty() {
            s.skey = skey;
        }
        if s.sync_key.list.is_empty() {
            s.sync_key = sync_key;
        }
        s.self_user_name.clone_from(&user.user_name);
        if user.uin != 0 {
            s.uin = user.uin;
        }
        drop(s);
        Ok(InitReply {
            user,
            contacts,
            chat_set,
        })
    }

    /// `webwxstatusnotify` Code 3 (self to self), as the web app does after
    /// init; it shows "logged in on the web/desktop" on the phone.
    pub async fn status_notify(&self) -> Result<(), Error> {
        const EP: &str = "webwxstatusnotify";
        let s = self.alive(EP)?;
        let query = Query::api(&s.pass_ticket);
        let url = endpoint_url(&self.inner.api, EP, &query)?;
        let body = json!({
            "BaseRequest": base_request(&s),
            "Code": 3,
            "FromUserName": s.self_user_name,
            "ToUserName": s.self_user_name,
            "ClientMsgId": now_ms(),
        });
        let req = self.post(EP, url, &body)?;
        self.call::<BareReply>(EP, req).await.map(drop)
    }

    /// One `webwxgetcontact` page; start with `seq` "0" and pass each
    /// returned `seq` back verbatim until it is "0".
    pub async fn contact_page(&self, seq: &str) -> Result<ContactPage, Error> {
        const EP: &str = "webwxgetcontact";
        let s = self.alive(EP)?;
        let query = Query::api(&s.pass_ticket)
            .enc("r", &now_ms().to_string())
            .enc("seq", seq)
            .enc("skey", &s.skey);
        let url = endpoint_url(&self.inner.api, EP, &query)?;
        let reply: ContactPageWire = self.call(EP, self.inner.http.get(url)).await?;
        let contacts = reply.contacts.into_contacts(EP)?;
        let seq = if reply.seq.is_empty() {
            "0".to_owned()
        } else {
            reply.seq
        };
        Ok(ContactPage { contacts, seq })
    }

    /// `webwxbatchgetcontact` for at most 50 names (the server drops the
    /// rest silently, so more is an error here). Groups come back with their
    /// `MemberList`.
    pub async fn batch_get(&self, items: &[BatchItem]) -> Result<Vec<RawContact>, Error> {
        const EP: &str = "webwxbatchgetcontact";
        if items.len() > BATCH_LIMIT {
            return Err(Error::BatchTooLarge(items.len()));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.alive(EP)?;
        let query = Query::default()
            .enc("type", "ex")
            .enc("r", &now_ms().to_string())
            .enc("lang", "zh_CN")
            .pre_encoded("pass_ticket", &s.pass_ticket);
        let url = endpoint_url(&self.inner.api, EP, &query)?;
        let list: Vec<Value> = items
            .iter()
            .map(|i| json!({"UserName": i.user_name, "EncryChatRoomId": i.chat_room}))
            .collect();
        let body = json!({"BaseRequest": base_request(&s), "Count": list.len(), "List": list});
        let req = self.post(EP, url, &body)?;
        let reply: BatchWire = self.call(EP, req).await?;
        reply.contacts.into_contacts(EP)
    }

    /// `webwxoplog` CmdId 2: sets (or with "" clears) a friend's remark,
    /// sent as plain UTF-8. `Ok` only means the server answered Ret 0.
    pub async fn set_remark(&self, user_name: &str, remark: &str) -> Result<(), Error> {
        const EP: &str = "webwxoplog";
        let s = self.alive(EP)?;
        let query = Query::api(&s.pass_ticket);
        let url = endpoint_url(&self.inner.api, EP, &query)?;
        let body = json!({
            "BaseRequest": base_request(&s),
            "CmdId": 2,
            "RemarkName": remark,
            "UserName": user_name,
        });
        let req = self.post(EP, url, &body)?;
        self.call::<BareReply>(EP, req).await.map(drop)
    }

    /// The image behind a contact's `HeadImgUrl` (as stored, without its
    /// skey): `webwxgeticon` for people, `webwxgetheadimg` for groups, on
    /// the API origin with the session's cookies and skey. A body over
    /// `limit` bytes is refused ([`Error::TooLarge`]). The server answers
    /// failures with an empty or non-image body, which the caller judges;
    /// a URL that is not one of those two paths is refused unsent, so the
    /// skey never goes anywhere else.
    pub async fn avatar(&self, head_img_url: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let (path, query) = head_img_url.split_once('?').unwrap_or((head_img_url, ""));
        let endpoint = match path {
            "/cgi-bin/mmwebwx-bin/webwxgeticon" => "webwxgeticon",
            "/cgi-bin/mmwebwx-bin/webwxgetheadimg" => "webwxgetheadimg",
            _ => return Err(Error::NotAvatarUrl),
        };
        let s = self.alive(endpoint)?;
        let mut q = Query::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k != "skey" {
                q = q.enc(&k, &v);
            }
        }
        let q = q.enc("skey", &s.skey);
        let url = endpoint_url(&self.inner.api, endpoint, &q)?;
        let result = self
            .fetch_limited(endpoint, self.inner.http.get(url), limit)
            .await;
        self.observe(result)
    }

    /// The synccheck long poll on the push origin. Retcodes 1100/1101/1102
    /// are `Error::SessionDead`; any other answer is returned as text.
    pub async fn sync_check(&self) -> Result<SyncCheck, Error> {
        const EP: &str = "synccheck";
        let s = self.alive(EP)?;
        let key = s.sync_check_key.as_ref().unwrap_or(&s.sync_key);
        let now = now_ms().to_string();
        let query = Query::default()
            .enc("r", &now)
            .enc("skey", &s.skey)
            .enc("sid", &s.sid)
            .enc("uin", &s.uin.to_string())
            .enc("deviceid", &s.device_id)
            .enc("synckey", &key.to_query())
            .enc("_", &now);
        let url = endpoint_url(&self.inner.push, EP, &query)?;
        let req = self
            .inner
            .http
            .get(url)
            .timeout(self.inner.synccheck_timeout);
        let result = self.fetch(EP, req).await.and_then(|body| {
            let (retcode, selector) =
                parse_synccheck(utf8(&body, EP)?).ok_or_else(|| Error::Decode {
                    endpoint: EP,
                    detail: format!("{} bytes without window.synccheck", body.len()),
                })?;
            match retcode.as_str() {
                "1100" | "1101" | "1102" => Err(Error::SessionDead {
                    code: retcode.parse().unwrap_or_default(),
                    endpoint: EP,
                }),
                _ => Ok(SyncCheck { retcode, selector }),
            }
        });
        self.observe(result)
    }

    /// `webwxsync`: the changes since the last sync. Takes the new
    /// `SyncKey`, `SyncCheckKey` (ignoring empty ones) and `SKey`.
    pub async fn sync(&self) -> Result<SyncReply, Error> {
        const EP: &str = "webwxsync";
        let s = self.alive(EP)?;
        let query = Query::default()
            .enc("sid", &s.sid)
            .enc("skey", &s.skey)
            .enc("lang", "zh_CN")
            .pre_encoded("pass_ticket", &s.pass_ticket);
        let url = endpoint_url(&self.inner.api, EP, &query)?;
        let body = json!({"BaseRequest": base_request(&s), "SyncKey": s.sync_key, "rr": rr()});
        let req = self.post(EP, url, &body)?;
        let reply: SyncWire = self.call(EP, req).await?;
        let modified = reply.modified.into_contacts(EP)?;
        let deleted = reply
            .deleted
            .into_iter()
            .map(|d| d.user_name)
            .filter(|name| !name.is_empty())
            .collect();
        let real_ids = realid::pair(&reply.messages);
        let sync_key = SyncKey::from_reply(reply.sync_key);
        let sync_check_key = SyncKey::from_reply(reply.sync_check_key);
        let skey = reply.skey;
        let mut s = self.lock();
        if let Some(key) = sync_key {
            s.sync_key = key;
        }
        if let Some(key) = sync_check_key {
            s.sync_check_key = Some(key);
        }
        if !skey.is_empty() {
            s.skey = skey;
        }
        drop(s);
        Ok(SyncReply {
            modified,
            deleted,
            continue_flag: reply.continue_flag,
            real_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_ticket_is_not_encoded_twice_but_sid_and_skey_are_encoded() {
        let q = Query::default()
            .pre_encoded("pass_ticket", "ab%2Bcd%3D")
            .enc("sid", "a+b/c")
            .enc("skey", "@crypt_1")
            .enc("synckey", "1_2|3_4")
            .pre_encoded("raw", "a+b c");
        assert_eq!(
            q.as_str(),
            "pass_ticket=ab%2Bcd%3D&sid=a%2Bb%2Fc&skey=%40crypt_1&synckey=1_2%7C3_4&raw=a%2Bb+c"
        );
    }

    #[test]
    fn push_origin_is_derived_from_the_api_host() {
        let derive = |s: &str| derive_push_origin(&Url::parse(s).unwrap()).to_string();
        assert_eq!(derive("https://wx.qq.com"), "https://webpush.wx.qq.com/");
        assert_eq!(derive("https://wx2.qq.com"), "https://webpush.wx2.qq.com/");
        assert_eq!(
            derive("https://web.wechat.com"),
            "https://webpush.web.wechat.com/"
        );
        assert_eq!(
            derive("https://wechat.com"),
            "https://webpush.web.wechat.com/"
        );
        assert_eq!(derive("http://127.0.0.1:8080"), "http://127.0.0.1:8080/");
        assert_eq!(derive("http://[::1]:8080"), "http://[::1]:8080/");
        assert_eq!(derive("http://localhost:9"), "http://localhost:9/");
        assert_eq!(derive("http://sim.test:9"), "http://webpush.sim.test:9/");
    }

    #[test]
    fn origins_drop_path_and_query() {
        let url = Url::parse("https://wx8.qq.com/cgi-bin/x?ticket=T&uuid=u").unwrap();
        assert_eq!(origin_url(&url).unwrap().as_str(), "https://wx8.qq.com/");
        let url = Url::parse("http://127.0.0.1:4000/a?b").unwrap();
        assert_eq!(origin_url(&url).unwrap().as_str(), "http://127.0.0.1:4000/");
    }

    #[test]
    fn the_cache_buster_is_what_javascripts_bitwise_not_gives() {
        // Each pair from `node -e 'console.log(~ms)'`.
        for (ms, js) in [
            (0, -1),
            (1_700_000_000_000, 807_049_215),
            (1_764_800_000_000, 431_558_655),
        ] {
            assert_eq!(cache_buster(ms), js, "~{ms}");
        }
    }
}
