//! A loopback WeChat Web server with the real servers' quirks
//! (docs/protocol.md), for tests, benchmarks, `wxsync demo` and
//! `wxsync simulate`.
//!
//! Everything is served on one origin: jslogin, the login poll, the ticket
//! step, the API and synccheck. The account is generated from
//! [`SimConfig::seed`]; the simulated phone can confirm the login by itself
//! ([`SimConfig::auto_confirm`]) or wait for [`Simulator::scan`] and
//! [`Simulator::confirm`]. Mutations queue changes that synccheck announces
//! and `webwxsync` delivers; [`Simulator::fail`] injects faults.
//!
//! A small control API lives under `/__sim/`: `GET /__sim/account`,
//! `GET /__sim/calls`, `POST /__sim/scan`, `POST /__sim/confirm`.
//!
//! Every entity has a sim id that outlives logins and a real id (`wxid_…`,
//! `…@chatroom`, `gh_…`) that only MsgType 51 reveals; [`Account`] carries
//! both next to the current UserNames, so tests can score a matcher.

mod churn;
mod server;
mod text;
mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use churn::ChurnReport;
use server::Inner;
use world::{Change, Id};

/// The UOS desktop client's public `extspam` blob that desktop-mode ticket
/// steps must carry (880 chars, `Go8FCIkF…`). The simulator keeps its own
/// copy of it, as the server does, so a wrong constant in a client is caught.
pub const UOS_EXTSPAM: &str = concat!(
    "Go8FCIkFEokFCggwMDAwMDAwMRAGGvAESySibk50w5Wb3uTl2c2h64jVVrV7gNs06GFlWplHQbY/5FfiO++1yH4ykC",
    "yNPWKXmco+wfQzK5R98D3so7rJ5LmGFvBLjGceleySrc3SOf2Pc1gVehzJgODeS0lDL3/I/0S2SSE98YgKleq6Uqx6ndTy9yaL9qFxJL7eiA/R",
    "3SEfTaW1SBoSITIu+EEkXff+Pv8NHOk7N57rcGk1w0ZzRrQDkXTOXFN2iHYIzAAZPIOY45Lsh+A4slpgnDiaOvRtlQYCt97nmPLuTipOJ8Qc5p",
    "M7ZsOsAPPrCQL7nK0I7aPrFDF0q4ziUUKettzW8MrAaiVfmbD1/VkmLNVqqZVvBCtRblXb5FHmtS8FxnqCzYP4WFvz3T0TcrOqwLX1M/DQvcHa",
    "GGw0B0y4bZMs7lVScGBFxMj3vbFi2SRKbKhaitxHfYHAOAa0X7/MSS0RNAjdwoyGHeOepXOKY+h3iHeqCvgOH6LOifdHf/1aaZNwSkGotYnYSc",
    "W8Yx63LnSwba7+hESrtPa/huRmB9KWvMCKbDThL/nne14hnL277EDCSocPu3rOSYjuB9gKSOdVmWsj9Dxb/iZIe+S6AiG29Esm+/eUacSba0k8",
    "wn5HhHg9d4tIcixrxveflc8vi2/wNQGVFNsGO6tB5WF0xf/plngOvQ1/ivGV/C1Qpdhzznh0ExAVJ6dwzNg7qIEBaw+BzTJTUuRcPk92Sn6QDn",
    "2Pu3mpONaEumacjW4w6ipPnPw+g2TfywJjeEcpSZaP4Q3YV5HG8D6UjWA4GSkBKculWpdCMadx0usMomsSS/74QgpYqcPkmamB4nVv1JxczYIT",
    "IqItIKjD35IGKAUwAA==",
);

/// The `client-version` header the desktop-mode ticket step requires.
const UOS_CLIENT_VERSION: &str = "2.0.0";

/// The ticket step's message for ret 1203 (account barred from Web WeChat).
pub const BARRED_MESSAGE: &str = "为了你的帐号安全，此微信号不能登录网页微信。你可以使用Windows微信或Mac微信在电脑端登录。Windows微信下载地址：https://pc.weixin.qq.com  Mac微信下载地址：https://mac.weixin.qq.com";

/// Size and behaviour of the simulated account.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Everything generated (names, groups, members) follows from this seed.
    pub seed: u64,
    /// Plain friends (`ContactFlag & 1`).
    pub friends: usize,
    /// Official accounts (VerifyFlag 8/24/56, KeyWord `gh_`).
    pub officials: usize,
    /// Groups saved to contacts: listed by webwxgetcontact with an empty MemberList.
    pub saved_groups: usize,
    /// Groups known only from webwxinit's ContactList and/or ChatSet.
    pub unsaved_groups: usize,
    /// Groups have between `min_group_members` and this many members (at
    /// most 500, the real cap); the first has exactly this many.
    pub max_group_members: usize,
    /// The smallest generated group (at least 3). Set it to
    /// `max_group_members` for groups all of one size.
    pub min_group_members: usize,
    /// Pairs of friends identical in every visible field (names, remark,
    /// alias, sex, place, signature, avatar seq, flags, group cards), who
    /// differ only in the real id that MsgType 51 could reveal.
    pub lookalikes: usize,
    /// Whom the MsgType 51 after webwxstatusnotify names.
    pub status_notify: StatusNotify,
    /// How many times that MsgType 51 set is sent (real servers repeat it, up to 3 times).
    pub status_notify_copies: u32,
    /// webwxgetcontact page size.
    pub page_size: usize,
    /// How long the login poll and synccheck hold when nothing happens.
    pub long_poll: Duration,
    /// The simulated phone scans, then confirms, by itself.
    pub auto_confirm: bool,
}

impl Default for SimConfig {
    /// A realistic mid-size account.
    fn default() -> Self {
        SimConfig {
            seed: 1,
            friends: 300,
            officials: 10,
            saved_groups: 30,
            unsaved_groups: 10,
            max_group_members: 500,
            min_group_members: 3,
            lookalikes: 0,
            status_notify: StatusNotify::Recent,
            status_notify_copies: 2,
            page_size: 200,
            long_poll: Duration::from_secs(25),
            auto_confirm: true,
        }
    }
}

/// Coverage of the MsgType 51 (StatusNotifyCode 4) message that follows
/// `webwxstatusnotify`: session UserNames in `StatusNotifyUserName`, real ids
/// in `Content`, in the same order, split over several messages when long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatusNotify {
    /// No MsgType 51 at all (reported nearly useless since 2018).
    Off,
    /// The init ContactList and the recent chats (ChatSet).
    Recent,
    /// This share (0.0–1.0) of all contacts and groups, drawn per login.
    Share(f64),
}

/// What the phone does with a push login (`webwxpushloginurl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushLogin {
    /// The uuid is issued and the phone confirms: by itself under
    /// [`SimConfig::auto_confirm`], else on [`Simulator::confirm`].
    #[default]
    Confirm,
    /// The uuid is issued but the phone never answers: the poll keeps answering 408.
    Ignore,
    /// The server refuses the call (`{"ret":"2","msg":"antispam"}`).
    Refuse,
}

/// The endpoints of the protocol, as recorded in [`Call`] and targeted by [`Simulator::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Endpoint {
    JsLogin,
    LoginPoll,
    NewLoginPage,
    Init,
    StatusNotify,
    GetContact,
    BatchGetContact,
    OpLog,
    SyncCheck,
    Sync,
    /// `webwxlogout`.
    Logout,
    /// `webwxpushloginurl`: a login confirmed on the phone without a QR code.
    PushLogin,
    /// `webwxgeticon`: a person's avatar.
    GetIcon,
    /// `webwxgetheadimg`: a group's avatar.
    GetHeadImg,
    /// Any other path (answered 404).
    Other,
}

/// A fault injected into the next calls of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Plain HTML error page with this status.
    Http(u16),
    /// Wait, then answer normally.
    Delay(Duration),
    /// The normal body cut in half.
    Truncated,
    /// The normal status and headers with no body at all (what the live
    /// avatar endpoints send now and then).
    Empty,
    /// BaseResponse.Ret (synccheck retcode, login `window.code`); 1100/1101/1102 also end the session.
    Ret(i64),
    /// The ticket step's XML `ret` (e.g. 1203); elsewhere the same as [`Fault::Ret`].
    LoginRet(i64),
    /// The connection is closed without a reply.
    Reset,
    /// This reply instead of the normal one, byte for byte (any status,
    /// content type and body, invalid UTF-8 included).
    Custom {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// A well-formed JSON reply of exactly `bytes` bytes, its list padded with
    /// copies of one record, generated while it is sent (never held whole).
    /// With `chunked` there is no Content-Length.
    Huge { bytes: u64, chunked: bool },
    /// webwxgetcontact: the reply's `Seq` is a fresh token that goes on (from
    /// the top of the list once it runs out) instead of 0.
    EndlessSeq,
    /// webwxbatchgetcontact: the reply also carries this many live groups
    /// that were not asked for.
    UnaskedGroups(usize),
    /// webwxbatchgetcontact: the first group asked for comes back with this
    /// many members (made up for the reply, beyond the real cap of 500).
    HugeGroup(usize),
    /// Ret 0, but in every list the reply carries (`ContactList`,
    /// `MemberList`, `ModContactList`, `DelContactList`, and each entry's
    /// own `MemberList`) the first this many entries have `"UserName": null`
    /// and `"NickName": null`.
    Unnamed(usize),
    /// Ret 0, but the first this many entries of each list are left out:
    /// on webwxbatchgetcontact, groups it was asked for (all of them: an
    /// empty `ContactList`).
    LeftOut(usize),
    /// Ret 0 with every contact list of the reply empty (`Seq` 0, an empty
    /// `ChatSet`): the webwxgetcontact answer that once marked nearly
    /// everyone deleted.
    EmptyList,
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub endpoint: Endpoint,
    pub method: String,
    pub query: String,
    pub body: String,
    /// The raw `Cookie` header ('' when none).
    pub cookies: String,
    pub headers: Vec<(String, String)>,
    /// HTTP status of the reply (0 while a long poll is still held, or when
    /// the connection was reset).
    pub status: u16,
    /// BaseResponse.Ret, synccheck retcode, login code or the ticket XML ret.
    pub ret: Option<i64>,
}

/// Snapshot of the simulated world, with the current login's UserNames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub self_user: SimContact,
    /// Everything webwxgetcontact lists except the self user and groups.
    pub contacts: Vec<SimContact>,
    /// Every group that exists, saved or not.
    pub groups: Vec<SimGroup>,
    /// The ChatSet UserNames, in order.
    pub chat_set: Vec<String>,
    /// The look-alike friends, as pairs of sim ids.
    pub lookalikes: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SimKind {
    Friend,
    Official,
    Special,
    Self_,
    Group,
    /// A group member who is not a contact.
    Stranger,
}

/// A contact as the server holds it; text fields are wire text (emoji spans, entities).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimContact {
    /// The simulator's id of this person: the same in every login.
    pub sim_id: u64,
    /// The permanent id (`wxid_…`, a custom id, `gh_…`, `filehelper`).
    pub real_id: String,
    pub user_name: String,
    pub nick_name: String,
    pub remark_name: String,
    pub kind: SimKind,
    pub verify_flag: i64,
    pub contact_flag: i64,
    pub sex: i64,
    pub star_friend: i64,
    pub province: String,
    pub city: String,
    pub signature: String,
    pub alias: String,
    /// wxuin for the self user, 0 for everyone else.
    pub uin: i64,
    /// The `seq` in HeadImgUrl; changes only with the avatar.
    pub avatar_seq: u64,
    pub attr_status: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimGroup {
    pub sim_id: u64,
    /// `NNN@chatroom`.
    pub real_id: String,
    pub user_name: String,
    /// Issued anew at every login, like the UserName.
    pub encry_chat_room_id: String,
    pub nick_name: String,
    pub avatar_seq: u64,
    /// Saved to contacts: listed by webwxgetcontact.
    pub saved: bool,
    /// In webwxinit's ContactList.
    pub in_init: bool,
    /// In webwxinit's ChatSet.
    pub in_chat_set: bool,
    pub members: Vec<SimMember>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimMember {
    /// The person's sim id (the same as their [`SimContact::sim_id`] when a contact).
    pub sim_id: u64,
    pub real_id: String,
    pub user_name: String,
    pub nick_name: String,
    pub display_name: String,
    pub attr_status: i64,
}

/// Handle on a running simulator; clones share it.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
    task: Arc<Mutex<Option<server::ServerTask>>>,
}

impl Simulator {
    /// Generates the account, binds `listen` (port 0 allowed) and serves in a spawned task.
    pub async fn start(cfg: SimConfig, listen: SocketAddr) -> std::io::Result<Simulator> {
        let (inner, task) = server::start(cfg, listen).await?;
        Ok(Simulator {
            inner,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// `http://127.0.0.1:PORT/`: the login URL and the API host.
    pub fn base_url(&self) -> url::Url {
        self.inner.base.clone()
    }

    /// Stops serving; held long polls are answered first.
    pub async fn shutdown(self) {
        let task = self.task.lock().expect("task lock").take();
        if let Some(task) = task {
            task.stop(&self.inner).await;
        }
    }

    /// Manual login: the phone scans the newest QR code.
    pub fn scan(&self) {
        self.inner.phone(false);
    }

    /// Manual login: the phone confirms the newest QR code (scanning it first if needed).
    pub fn confirm(&self) {
        self.inner.phone(true);
    }

    pub fn account(&self) -> Account {
        self.inner.with_world(|w| w.snapshot())
    }

    /// Someone changes their nickname (`nick_name` is raw wire text).
    /// A contact's record is queued; for a stranger, the groups they are in.
    pub fn rename(&self, user_name: &str, nick_name: &str) {
        self.mutate(user_name, |w, id| {
            w.entities[id].nick = nick_name.to_string();
            w.touched(id)
        });
    }

    /// The user changed a remark elsewhere (raw wire text).
    pub fn set_remark(&self, user_name: &str, remark: &str) {
        self.mutate(user_name, |w, id| {
            w.entities[id].remark = remark.to_string();
            vec![Change::Mod(id)]
        });
    }

    /// A friend deletes you, or a group is removed: gone from webwxgetcontact,
    /// listed in DelContactList. A removed friend stays in their groups as a stranger.
    pub fn remove_contact(&self, user_name: &str) {
        self.mutate(user_name, |w, id| vec![w.remove(id)]);
    }

    /// A new friend; returns their UserName.
    pub fn add_friend(&self, nick_name: &str) -> String {
        self.inner.with_world_mut(|w| {
            let id = w.new_person(SimKind::Friend, nick_name);
            (vec![Change::Mod(id)], w.name(id).to_string())
        })
    }

    /// A stranger (a group member, say) becomes a friend.
    pub fn befriend(&self, user_name: &str) {
        self.mutate(user_name, |w, id| vec![w.befriend(id)]);
    }

    /// A new group (also put first in ChatSet); returns its UserName.
    pub fn add_group(&self, nick_name: &str, members: usize, saved: bool) -> String {
        self.inner.with_world_mut(|w| {
            let id = w.new_group(nick_name, members, saved);
            (vec![Change::Mod(id)], w.name(id).to_string())
        })
    }

    pub fn member_leaves(&self, group: &str, member: &str) {
        self.mutate(group, |w, gid| {
            let Some(mid) = w.lookup(member) else {
                tracing::warn!(member, "simulator: unknown member");
                return Vec::new();
            };
            w.leave(gid, mid).into_iter().collect()
        });
    }

    /// A member sets their card (display name) in a group.
    pub fn member_card(&self, group: &str, member: &str, card: &str) {
        self.mutate(group, |w, gid| {
            let Some(mid) = w.lookup(member) else {
                tracing::warn!(member, "simulator: unknown member");
                return Vec::new();
            };
            let Some(g) = w.entities[gid].group.as_mut() else {
                return Vec::new();
            };
            for m in g.members.iter_mut().filter(|m| m.id == mid) {
                m.display_name = card.to_string();
            }
            vec![Change::Mod(gid)]
        });
    }

    /// A stranger joins a group; returns the member's UserName.
    pub fn member_joins(&self, group: &str, nick_name: &str) -> String {
        self.inner.with_world_mut(|w| {
            let Some(gid) = w.lookup(group).filter(|g| w.is_live_group(*g)) else {
                tracing::warn!(group, "simulator: unknown group");
                return (Vec::new(), String::new());
            };
            let id = w.new_person(SimKind::Stranger, nick_name);
            if let Some(g) = w.entities[gid].group.as_mut() {
                g.members.push(world::Member {
                    id,
                    display_name: String::new(),
                });
            }
            (vec![Change::Mod(gid)], w.name(id).to_string())
        })
    }

    /// Someone sets a new avatar: the `seq` in their HeadImgUrl changes,
    /// the image served for them changes, and their record is queued
    /// (ModContact).
    pub fn new_avatar(&self, user_name: &str) {
        self.mutate(user_name, |w, id| {
            w.entities[id].head_seq += 1;
            w.touched(id)
        });
    }

    /// Between two logins: about `rate` (0.0–1.0) of each kind of entity
    /// changes in each of the ways real address books change (see
    /// [`ChurnReport`]). Changes are queued for a live session's webwxsync,
    /// like the other mutators, and every later login sees them. The same
    /// seed on the same world churns the same way.
    pub fn churn(&self, rate: f64, seed: u64) -> ChurnReport {
        self.inner.with_world_mut(|w| w.churn(rate, seed))
    }

    /// The next `times` calls to `endpoint` get `fault` (after any faults
    /// already queued for it); `times` 0 clears the endpoint's queue instead,
    /// as [`Simulator::clear_faults_of`] does.
    pub fn fail(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.inner.add_fault(endpoint, fault, times);
    }

    /// Drops the faults queued for `endpoint`.
    pub fn clear_faults_of(&self, endpoint: Endpoint) {
        self.inner.clear_faults_of(endpoint);
    }

    /// Drops every queued fault of every endpoint.
    pub fn clear_faults(&self) {
        self.inner.clear_faults();
    }

    /// What the phone does with the next push logins.
    pub fn set_push_login(&self, mode: PushLogin) {
        self.inner.set_push_login(mode);
    }

    /// The session dies: later API calls answer Ret `code`, synccheck retcode `code`.
    pub fn force_logout(&self, code: i64) {
        self.inner.kill_session(code);
    }

    /// Live behaviour since ~2023: webwxoplog answers Ret 0 and changes nothing.
    pub fn set_oplog_ignores(&self, on: bool) {
        self.inner.set_oplog_ignores(on);
    }

    /// Every request received, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls()
    }

    fn mutate(&self, user_name: &str, f: impl FnOnce(&mut world::World, Id) -> Vec<Change>) {
        self.inner.with_world_mut(|w| match w.lookup(user_name) {
            Some(id) => (f(w, id), ()),
            None => {
                tracing::warn!(user_name, "simulator: unknown UserName");
                (Vec::new(), ())
            }
        });
    }
}
