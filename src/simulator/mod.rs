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
//!
//! Layout: `address_book` generates the account and logs its
//! changes (`churn` changes it between logins); `serve` takes every
//! request, records it and hands it to a queued fault (`faults`) or to its
//! handler (`routes`): the login state machine (`login`) or the API of a
//! logged-in session (`api`); `control` answers `/__sim/`. `state` is what
//! they share, `http` the request and reply types.

mod account;
mod address_book;
mod api;
mod calls;
mod churn;
mod config;
mod control;
mod faults;
mod http;
mod login;
mod routes;
mod serve;
mod state;
mod text;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use account::{Account, SimContact, SimGroup, SimKind, SimMember};
use address_book::{AddressBook, Change, GroupMember, Id};
pub use calls::{Call, Endpoint, Fault};
pub use churn::ChurnReport;
pub use config::{PushLogin, SimConfig, StatusNotify};
pub use login::{BARRED_MESSAGE, UOS_EXTSPAM};
use state::Shared;

/// Handle on a running simulator; clones share it.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Shared>,
    task: Arc<Mutex<Option<serve::ServerTask>>>,
}

impl Simulator {
    /// Generates the account, binds `listen` (port 0 allowed) and serves in a spawned task.
    pub async fn start(cfg: SimConfig, listen: SocketAddr) -> std::io::Result<Simulator> {
        let (inner, task) = serve::start(cfg, listen).await?;
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
        self.inner.with_book(|w| w.snapshot())
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
        self.inner.with_book_mut(|w| {
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
        self.inner.with_book_mut(|w| {
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

    /// Someone the account already knows (a friend, say) joins a group.
    pub fn contact_joins(&self, group: &str, member: &str) {
        self.mutate(group, |w, gid| {
            let Some(mid) = w.lookup(member).filter(|m| !w.is_member(gid, *m)) else {
                tracing::warn!(
                    member,
                    "simulator: unknown member, or one already in the group"
                );
                return Vec::new();
            };
            let Some(g) = w.entities[gid].group.as_mut() else {
                return Vec::new();
            };
            g.members.push(GroupMember {
                id: mid,
                display_name: String::new(),
            });
            vec![Change::Mod(gid)]
        });
    }

    /// A stranger joins a group; returns the member's UserName.
    pub fn member_joins(&self, group: &str, nick_name: &str) -> String {
        self.inner.with_book_mut(|w| {
            let Some(gid) = w.lookup(group).filter(|g| w.is_live_group(*g)) else {
                tracing::warn!(group, "simulator: unknown group");
                return (Vec::new(), String::new());
            };
            let id = w.new_person(SimKind::Stranger, nick_name);
            if let Some(g) = w.entities[gid].group.as_mut() {
                g.members.push(GroupMember {
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
    /// seed on the same address book churns the same way.
    pub fn churn(&self, rate: f64, seed: u64) -> ChurnReport {
        self.inner.with_book_mut(|w| w.churn(rate, seed))
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

    fn mutate(&self, user_name: &str, f: impl FnOnce(&mut AddressBook, Id) -> Vec<Change>) {
        self.inner.with_book_mut(|w| match w.lookup(user_name) {
            Some(id) => (f(w, id), ()),
            None => {
                tracing::warn!(user_name, "simulator: unknown UserName");
                (Vec::new(), ())
            }
        });
    }
}

/// The account generator without a server: the same address book,
/// look-alikes and churn as a [`Simulator`]'s, for unit tests that score
/// the identity matcher on many accounts.
#[cfg(test)]
pub(crate) struct Generator(AddressBook);

#[cfg(test)]
impl Generator {
    pub fn new(cfg: &SimConfig) -> Generator {
        Generator(AddressBook::generate(cfg))
    }

    /// What the current login sees.
    pub fn account(&self) -> Account {
        self.0.snapshot()
    }

    /// [`Simulator::churn`].
    pub fn churn(&mut self, rate: f64, seed: u64) -> ChurnReport {
        self.0.churn(rate, seed).1
    }

    /// A new login: every UserName but the specials' is issued anew.
    pub fn next_login(&mut self) {
        self.0.next_generation();
    }
}
