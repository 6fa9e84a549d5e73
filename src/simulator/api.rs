//! The API handlers of a logged-in session: webwxinit, statusnotify,
//! getcontact pages, batchgetcontact, oplog, avatars, synccheck and
//! webwxsync, answered the way the real servers do (`text/plain` JSON).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};

use super::account::SimKind;
use super::address_book::{self, AddressBook, Change, ContactRecord, Id, ModContactRecord};
use super::calls::Fault;
use super::http::{Reply, Req};
use super::login::{Creds, authenticate, session};
use super::state::{Hold, Shared, State};
use super::text;

/// The real servers cap batchgetcontact silently at this many names.
const BATCH_CAP: usize = 50;

/// At most this many log entries per webwxsync; more sets ContinueFlag.
const SYNC_CHUNK: usize = 100;

/// A MsgType 51 names at most this many chats; longer lists take several messages.
const STATUS_CHUNK: usize = 50;

const APP_ID_CLIENT_VERSION: i64 = 1_661_011_297;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BaseReply {
    ret: i64,
    err_msg: &'static str,
}

const OK: BaseReply = BaseReply {
    ret: 0,
    err_msg: "",
};

pub(super) fn init(inner: &Shared, req: &Req) -> Reply {
    let body = req.json();
    let st = &mut *inner.lock();
    if let Err(ret) = authenticate(st, req, Creds::Body(body.as_ref())) {
        return Reply::base(ret);
    }
    let now = st.book.changes.len();
    let position = *session(st).init_position.get_or_insert(now);
    let s = st.session.as_ref().expect("authenticated");
    let w = &st.book;
    let list: Vec<ContactRecord<'_>> = w
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

pub(super) fn status_notify(inner: &Shared, req: &Req) -> Reply {
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
            let State { book, rng, .. } = st;
            let ids = book.status_notify_ids(inner.cfg.status_notify, rng);
            for _ in 0..inner.cfg.status_notify_copies {
                for chunk in ids.chunks(STATUS_CHUNK) {
                    let id: u64 =
                        rng.random_range(1_000_000_000_000_000_000..9_000_000_000_000_000_000);
                    let msg = status_msg(book, chunk, id);
                    book.changes.push(Change::Msg { session, msg });
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
fn status_msg(w: &AddressBook, ids: &[Id], msg_id: u64) -> Value {
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
struct GetContactReply<'a> {
    base_response: BaseReply,
    member_count: usize,
    member_list: Vec<ContactRecord<'a>>,
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
pub(super) fn get_contact(inner: &Shared, req: &Req, shape: Option<&Fault>) -> Reply {
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
    let listing = st.book.contact_listing();
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
    let w = &st.book;
    let list: Vec<ContactRecord<'_>> = listing[start..end]
        .iter()
        .map(|id| w.contact_json(*id, &s.skey, None, false))
        .collect();
    Reply::json(
        &GetContactReply {
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
struct BatchGetContactReply<'a> {
    base_response: BaseReply,
    count: usize,
    contact_list: Vec<ContactRecord<'a>>,
}

/// A webwxbatchgetcontact reply, shaped by [`Fault::UnaskedGroups`] or
/// [`Fault::HugeGroup`].
pub(super) fn batch_get_contact(inner: &Shared, req: &Req, shape: Option<&Fault>) -> Reply {
    let body = req.json();
    let st = &mut *inner.lock();
    let s = match authenticate(st, req, Creds::Body(body.as_ref())) {
        Ok(s) => s,
        Err(ret) => return Reply::base(ret),
    };
    let w = &st.book;
    let empty = Vec::new();
    let items = body
        .as_ref()
        .and_then(|b| b.get("List"))
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let filler = match shape {
        Some(Fault::HugeGroup(n)) => address_book::filler_members(*n),
        _ => Vec::new(),
    };
    let mut inflated = false;
    let mut list: Vec<ContactRecord<'_>> = Vec::new();
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
        let asked: Vec<&str> = list.iter().map(ContactRecord::user_name).collect();
        let extra: Vec<Id> = w
            .live_groups()
            .filter(|g| !asked.contains(&w.name(*g)))
            .take(*n)
            .collect();
        list.extend(extra.into_iter().map(|g| w.group_json(g, &s.skey)));
    }
    Reply::json(
        &BatchGetContactReply {
            base_response: OK,
            count: list.len(),
            contact_list: list,
        },
        0,
    )
}

pub(super) fn oplog(inner: &Shared, req: &Req) -> Reply {
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
            .and_then(|n| st.book.lookup(n));
        let w = &mut st.book;
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
pub(super) fn avatar(inner: &Shared, req: &Req, group: bool) -> Reply {
    let st = inner.lock();
    let image = authenticate(&st, req, Creds::Query { sid_uin: false })
        .ok()
        .filter(|_| req.param("skey").is_some_and(|k| !k.is_empty()))
        .and_then(|_| st.book.avatar_image(req.param("username")?, group));
    Reply::bytes(200, Cow::Borrowed("image/jpeg"), image.unwrap_or_default())
}

fn relevant(change: &Change, session: u64) -> bool {
    match change {
        Change::Msg { session: s, .. } => *s == session,
        Change::Mod(_) | Change::Del(_) => true,
    }
}

pub(super) async fn synccheck(inner: &Shared, req: &Req) -> Reply {
    let key2 = key2_of_query(req.param("synckey").unwrap_or(""));
    inner
        .hold(
            |st, _| {
                if st.stopping {
                    return Hold::Done(Reply::synccheck(0, 0));
                }
                let s = match authenticate(st, req, Creds::Query { sid_uin: true }) {
                    Ok(s) => s,
                    Err(code) => {
                        let code = if st.session.as_ref().and_then(|s| s.dead).is_some() {
                            code
                        } else {
                            1101
                        };
                        return Hold::Done(Reply::synccheck(code, 0));
                    }
                };
                let v = st.book.changes.len();
                let p = s.position(key2, v);
                if st.book.changes[p..].iter().any(|c| relevant(c, s.id)) {
                    Hold::Done(Reply::synccheck(0, 2))
                } else {
                    Hold::Until(None)
                }
            },
            || Reply::synccheck(0, 0),
        )
        .await
}

pub(super) fn sync(inner: &Shared, req: &Req) -> Reply {
    let body = req.json();
    let st = &mut *inner.lock();
    let s = match authenticate(st, req, Creds::Body(body.as_ref())) {
        Ok(s) => s,
        Err(ret) => return Reply::base(ret),
    };
    let w = &st.book;
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
        &WebwxSyncReply {
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
struct WebwxSyncReply<'a> {
    base_response: BaseReply,
    add_msg_count: usize,
    add_msg_list: Vec<&'a Value>,
    mod_contact_count: usize,
    mod_contact_list: Vec<ModContactRecord<'a>>,
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
