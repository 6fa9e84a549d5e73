//! What the server holds between requests: the address book, the QR codes
//! and the login they lead to, queued faults, the call log; and the tick
//! that wakes long polls when any of it changes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::address_book::{AddressBook, Change};
use super::calls::{Call, Endpoint, Fault};
use super::config::{PushLogin, SimConfig};

pub(super) struct Shared {
    pub(super) cfg: SimConfig,
    pub(super) base: url::Url,
    pub(super) state: Mutex<State>,
    /// Bumped on every change of the address book, a login or the session: long polls wake on it.
    pub(super) tick: watch::Sender<u64>,
}

pub(super) struct State {
    pub(super) book: AddressBook,
    pub(super) rng: StdRng,
    pub(super) qr: HashMap<String, Qr>,
    pub(super) newest_qr: Option<String>,
    pub(super) session: Option<LoginSession>,
    pub(super) sessions_made: u64,
    /// The newest `webwx_auth_ticket` issued: what a push login must present.
    /// It outlives its session (a logged-out client may push-login with it).
    pub(super) auth_ticket: Option<String>,
    pub(super) push_login: PushLogin,
    /// Per endpoint: faults still to serve, each with its remaining count.
    pub(super) faults: HashMap<Endpoint, VecDeque<(Fault, u32)>>,
    pub(super) calls: Vec<Call>,
    pub(super) oplog_ignores: bool,
    pub(super) stopping: bool,
}

pub(super) struct Qr {
    pub(super) created: Instant,
    pub(super) desktop: bool,
    pub(super) ticket: String,
    pub(super) scanned: bool,
    pub(super) confirmed: bool,
    /// auto_confirm: when the phone scans and confirms by itself.
    pub(super) auto: Option<(Instant, Instant)>,
    pub(super) told_scan: bool,
    pub(super) used: bool,
    /// A push login the phone does not answer ([`PushLogin::Ignore`]).
    pub(super) ignored: bool,
}

impl Qr {
    pub(super) fn scanned(&self, now: Instant) -> bool {
        self.scanned || self.auto.is_some_and(|(s, _)| s <= now)
    }
    pub(super) fn confirmed(&self, now: Instant) -> bool {
        self.confirmed || self.auto.is_some_and(|(_, c)| c <= now)
    }
}

pub(super) struct LoginSession {
    pub(super) id: u64,
    pub(super) sid: String,
    pub(super) skey: String,
    /// As sent in the XML: already percent-encoded.
    pub(super) pass_ticket: String,
    pub(super) auth_ticket: String,
    pub(super) desktop: bool,
    pub(super) dead: Option<i64>,
    pub(super) key_base: i64,
    pub(super) started: i64,
    pub(super) seq_tokens: HashMap<String, usize>,
    /// The change-log position of this login's first webwxinit: every later
    /// webwxinit hands out that same key again, stale by then, as a real
    /// server may; only webwxsync moves a client's key on.
    pub(super) init_position: Option<usize>,
}

impl LoginSession {
    pub(super) fn sync_key(&self, v: usize, check: bool) -> Value {
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
    pub(super) fn position(&self, key2: Option<i64>, v: usize) -> usize {
        key2.and_then(|val| usize::try_from(val - self.key_base - 10_000).ok())
            .filter(|p| *p <= v)
            .unwrap_or(v)
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn bump(&self) {
        self.tick.send_modify(|t| *t += 1);
    }

    pub fn with_book<R>(&self, f: impl FnOnce(&AddressBook) -> R) -> R {
        f(&self.lock().book)
    }

    pub fn with_book_mut<R>(&self, f: impl FnOnce(&mut AddressBook) -> (Vec<Change>, R)) -> R {
        let r = {
            let mut st = self.lock();
            let (changes, r) = f(&mut st.book);
            st.book.changes.extend(changes);
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
    pub(super) fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
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

/// One look at the state by a long poll: done with this answer, or wait
/// until this instant (or the next tick, or the poll's end).
pub(super) enum Hold<R> {
    Done(R),
    Until(Option<Instant>),
}

impl Shared {
    /// A fresh server's state for `cfg`, reachable at `base`.
    pub fn new(cfg: SimConfig, base: url::Url) -> Shared {
        Shared {
            state: Mutex::new(State {
                book: AddressBook::generate(&cfg),
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
        }
    }

    /// Holds until `check` is done, the state ticks past it, or
    /// `cfg.long_poll` runs out (then answers `timeout()`).
    pub async fn hold<R>(
        &self,
        mut check: impl FnMut(&mut State, Instant) -> Hold<R>,
        timeout: impl FnOnce() -> R,
    ) -> R {
        let deadline = Instant::now() + self.cfg.long_poll;
        let mut rx = self.tick.subscribe();
        loop {
            let now = Instant::now();
            let wake = match check(&mut self.lock(), now) {
                Hold::Done(r) => return r,
                Hold::Until(w) => w.map_or(deadline, |w| w.min(deadline)),
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

    /// Adds a call to the log; returns its index for [`Shared::answered`].
    pub fn record(&self, call: Call) -> usize {
        let mut st = self.lock();
        st.calls.push(call);
        st.calls.len() - 1
    }

    /// Records how call `index` was answered.
    pub fn answered(&self, index: usize, status: u16, ret: Option<i64>) {
        if let Some(c) = self.lock().calls.get_mut(index) {
            c.status = status;
            c.ret = ret;
        }
    }

    /// Long polls answer at once from now on (the server is shutting down).
    pub fn stop_polls(&self) {
        self.lock().stopping = true;
        self.bump();
    }
}
