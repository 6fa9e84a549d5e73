//! The simulated account: who exists (generated from a seed), the session
//! names they carry in the current login, the log of changes that
//! `webwxsync` hands out, and the JSON records of every shape the server
//! sends.

use std::collections::HashMap;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;

use super::account::{Account, SimContact, SimGroup, SimKind, SimMember};
use super::config::{SimConfig, StatusNotify};
use super::text::{self, GenName};

pub(crate) type Id = usize;

/// Special accounts that `webwxgetcontact` lists, with their fixed names.
const SPECIALS: &[(&str, &str, i64, &str)] = &[
    ("filehelper", "文件传输助手", 0, "fil"),
    ("weixin", "微信团队", 56, "wei"),
    ("fmessage", "朋友推荐消息", 0, "fme"),
    ("newsapp", "腾讯新闻", 0, "new"),
    ("medianote", "语音记事本", 0, "med"),
    ("floatbottle", "漂流瓶", 0, "flo"),
];

#[derive(Clone)]
pub(crate) struct Entity {
    pub kind: SimKind,
    /// Specials keep one name for ever (`filehelper`).
    pub fixed_name: Option<&'static str>,
    /// `@` + 64 hex when true, `@` + 32 hex otherwise (people only).
    long_name: bool,
    pub nick: String,
    pub remark: String,
    pub py_initial: String,
    pub py_quan_pin: String,
    pub sex: i64,
    pub province: &'static str,
    pub city: &'static str,
    pub signature: &'static str,
    pub alias: String,
    pub verify_flag: i64,
    pub contact_flag: i64,
    key_word: &'static str,
    /// The avatar's `seq` in HeadImgUrl: survives logins, changes with the avatar.
    pub head_seq: u64,
    pub attr_status: i64,
    sns_flag: i64,
    /// The permanent id (`wxid_…`, `…@chatroom`, `gh_…`) that MsgType 51 reveals.
    pub wxid: String,
    pub removed: bool,
    pub group: Option<GroupData>,
}

#[derive(Clone)]
pub(crate) struct GroupData {
    pub members: Vec<GroupMember>,
    pub saved: bool,
    pub in_init: bool,
    pub in_chat_set: bool,
    owner: Id,
    statues: i64,
}

#[derive(Clone)]
pub(crate) struct GroupMember {
    pub id: Id,
    pub display_name: String,
}

/// One entry of the change log; position `n` in the log is synckey value `n+1`.
pub(crate) enum Change {
    Mod(Id),
    Del(Id),
    /// A message for one session (MsgType 51 after statusnotify).
    Msg {
        session: u64,
        msg: serde_json::Value,
    },
}

/// The real servers cap a group at this many members.
pub(crate) const GROUP_CAP: usize = 500;

pub(crate) struct AddressBook {
    seed: u64,
    rng: StdRng,
    pub entities: Vec<Entity>,
    /// `webwxgetcontact` order (a shuffle, then additions at the end).
    pub listing: Vec<Id>,
    pub self_id: Id,
    pub uin: i64,
    /// The first few init ContactList members and the ChatSet, in order.
    init_people: Vec<Id>,
    chat_set: Vec<Id>,
    /// Friends generated identical in every visible field, in pairs.
    lookalikes: Vec<(Id, Id)>,
    pub min_members: usize,
    pub max_members: usize,
    names: Vec<String>,
    encry: Vec<String>,
    by_name: HashMap<String, Id>,
    by_encry: HashMap<String, Id>,
    pub generation: u64,
    pub changes: Vec<Change>,
}

/// `n` random lowercase hex digits, 16 per draw.
fn hex(rng: &mut StdRng, n: usize) -> String {
    let mut s = String::with_capacity(n + 16);
    while s.len() < n {
        let _ = write!(s, "{:016x}", rng.random::<u64>());
    }
    s.truncate(n);
    s
}

/// A person's permanent id: `wxid_` + 14 characters, or for some old
/// accounts a custom id without the prefix.
fn person_id(rng: &mut StdRng, py_quan_pin: &str) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    if rng.random_bool(0.08) {
        let stem: String = py_quan_pin.chars().take(12).collect();
        let stem = if stem.is_empty() { "user".into() } else { stem };
        return format!("{stem}{}", rng.random_range(1960..2010));
    }
    format!("wxid_{}", random_string(rng, ALNUM, 14))
}

/// `n` characters drawn from `alphabet`, one draw each.
/// A 1×1 JPEG from its SOI marker on; [`avatar_jpeg`] puts a comment
/// segment after the SOI.
const TINY_JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x01, 0x00, 0x48,
    0x00, 0x48, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00,
    0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0xff, 0xc4, 0x00,
    0x14, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x2a, 0x9f, 0xff,
    0xd9,
];

/// Bytes of the comment segment in a simulated avatar: about the size of a
/// real 132×132 one.
const AVATAR_COMMENT: usize = 4000;

/// A valid JPEG for `(wxid, seq)`: the 1×1 image with a comment segment of
/// letters drawn from them (never `0xFF`, so a cut-off copy never ends in
/// an EOI marker).
pub(crate) fn avatar_jpeg(wxid: &str, seq: u64) -> Vec<u8> {
    let mut rng =
        StdRng::seed_from_u64(xxhash_rust::xxh3::xxh3_64(wxid.as_bytes()) ^ seq.rotate_left(17));
    let mut comment = format!("wxsync simulator avatar {wxid} {seq} ").into_bytes();
    // Random bytes in one call, folded onto the letters: a few microseconds,
    // not one draw per letter, since the bench asks for thousands.
    let mut letters = vec![0u8; AVATAR_COMMENT.saturating_sub(comment.len())];
    rng.fill_bytes(&mut letters);
    comment.extend(letters.iter().map(|b| b'a' + b % 26));
    let len = u16::try_from(comment.len() + 2).expect("comment fits a segment");
    let mut jpeg = Vec::with_capacity(TINY_JPEG.len() + comment.len() + 4);
    jpeg.extend_from_slice(&TINY_JPEG[..2]);
    jpeg.extend_from_slice(&[0xff, 0xfe]);
    jpeg.extend_from_slice(&len.to_be_bytes());
    jpeg.extend_from_slice(&comment);
    jpeg.extend_from_slice(&TINY_JPEG[2..]);
    jpeg
}

pub(crate) fn random_string(rng: &mut StdRng, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

impl AddressBook {
    pub fn generate(cfg: &SimConfig) -> AddressBook {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let max_members = cfg.max_group_members.clamp(3, GROUP_CAP);
        let mut w = AddressBook {
            seed: cfg.seed,
            rng: StdRng::seed_from_u64(cfg.seed ^ 0x005e_ed0f_c4a9),
            entities: Vec::new(),
            listing: Vec::new(),
            self_id: 0,
            uin: rng.random_range(1_000_000_000..4_000_000_000),
            init_people: Vec::new(),
            chat_set: Vec::new(),
            lookalikes: Vec::new(),
            min_members: cfg.min_group_members.clamp(3, max_members),
            max_members,
            names: Vec::new(),
            encry: Vec::new(),
            by_name: HashMap::new(),
            by_encry: HashMap::new(),
            generation: 0,
            changes: Vec::new(),
        };
        let me = person(&mut rng, SimKind::Self_);
        w.self_id = w.push(me);
        let mut listed = vec![w.self_id];
        for (name, nick, verify, kw) in SPECIALS {
            let mut e = blank(SimKind::Special, nick.to_string());
            e.fixed_name = Some(name);
            e.verify_flag = *verify;
            e.key_word = kw;
            e.contact_flag = 3;
            e.wxid = name.to_string();
            listed.push(w.push(e));
        }
        for i in 0..cfg.officials {
            let base = text::OFFICIALS[i % text::OFFICIALS.len()];
            let nick = if i < text::OFFICIALS.len() {
                base.to_string()
            } else {
                format!("{base}{}", i / text::OFFICIALS.len() + 1)
            };
            let mut e = blank(SimKind::Official, nick);
            e.verify_flag = [24, 8, 56, 24][i % 4];
            e.key_word = "gh_";
            e.contact_flag = 3;
            e.long_name = false;
            e.signature = "提供资讯与服务";
            e.province = "广东";
            e.city = "深圳";
            e.head_seq = rng.random_range(600_000_000..700_000_000);
            e.attr_status = *text::ATTR_STATUS.choose(&mut rng).expect("non-empty");
            e.wxid = format!("gh_{}", hex(&mut rng, 12));
            listed.push(w.push(e));
        }
        let mut friends = Vec::with_capacity(cfg.friends);
        for _ in 0..cfg.friends {
            let e = person(&mut rng, SimKind::Friend);
            let id = w.push(e);
            friends.push(id);
            listed.push(id);
        }
        let total_groups = cfg.saved_groups + cfg.unsaved_groups;
        let (min, max) = (w.min_members, w.max_members);
        let mut groups = Vec::with_capacity(total_groups);
        let mut strangers = Vec::new();
        for g in 0..total_groups {
            let saved = g < cfg.saved_groups;
            let n = if g == 0 {
                max
            } else {
                let u: f64 = rng.random();
                min + ((max - min) as f64 * u * u) as usize
            };
            let id = w.generate_group(&mut rng, g, n, saved, &friends, &mut strangers);
            if saved {
                listed.push(id);
            } else {
                // Unsaved groups: init ContactList and ChatSet, ChatSet only, or init only.
                let grp = w.entities[id].group.as_mut().expect("group");
                grp.in_init = g % 3 != 1;
                grp.in_chat_set = g % 3 != 2;
            }
            groups.push(id);
        }
        for (i, id) in groups.iter().take(cfg.saved_groups.min(3)).enumerate() {
            let grp = w.entities[*id].group.as_mut().expect("group");
            grp.in_init = true;
            grp.in_chat_set = i != 2;
        }
        for i in 0..cfg.lookalikes {
            let (a, b) = w.generate_lookalikes(&mut rng, i % 2 == 1, &groups);
            listed.extend([a, b]);
        }
        listed.shuffle(&mut rng);
        w.listing = listed;
        w.init_people = friends.iter().take(4).copied().collect();
        // ChatSet: filehelper, recent friends and groups, the WeChat team.
        w.chat_set.push(1);
        w.chat_set.extend(friends.iter().take(6));
        w.chat_set.extend(
            groups
                .iter()
                .filter(|g| w.entities[**g].group.as_ref().expect("group").in_chat_set),
        );
        w.chat_set.push(2);
        w.assign_names();
        w
    }

    /// Two friends alike in every field a client sees (names, remark, alias,
    /// sex, place, signature, avatar seq, flags); only their permanent ids
    /// differ. With `in_groups`, both sit in the same groups under the same
    /// card; otherwise in none.
    fn generate_lookalikes(
        &mut self,
        rng: &mut StdRng,
        in_groups: bool,
        groups: &[Id],
    ) -> (Id, Id) {
        let first = person(rng, SimKind::Friend);
        let mut twin = first.clone();
        while twin.wxid == first.wxid {
            twin.wxid = person_id(rng, &twin.py_quan_pin);
        }
        let (a, b) = (self.push(first), self.push(twin));
        self.lookalikes.push((a, b));
        if in_groups {
            let card = if rng.random_bool(0.5) {
                text::person_name(rng).wire
            } else {
                String::new()
            };
            let roomy: Vec<Id> = groups
                .iter()
                .copied()
                .filter(|g| {
                    self.entities[*g]
                        .group
                        .as_ref()
                        .is_some_and(|d| d.members.len() + 2 <= self.max_members)
                })
                .collect();
            for g in roomy.choose_multiple(rng, 2) {
                let data = self.entities[*g].group.as_mut().expect("group");
                for id in [a, b] {
                    data.members.push(GroupMember {
                        id,
                        display_name: card.clone(),
                    });
                }
            }
        }
        (a, b)
    }

    /// A group of `n` members: the self user, about 2/5 friends, the rest
    /// strangers, some of whom (from `strangers`) already sit in other groups.
    fn generate_group(
        &mut self,
        rng: &mut StdRng,
        index: usize,
        n: usize,
        saved: bool,
        friends: &[Id],
        strangers: &mut Vec<Id>,
    ) -> Id {
        let nick = if index == 4 {
            // A group nobody named: clients show its members instead.
            String::new()
        } else {
            group_name(index)
        };
        let mut members = vec![GroupMember {
            id: self.self_id,
            display_name: String::new(),
        }];
        let want_friends = ((n - 1) * 2 / 5).min(friends.len());
        for f in friends.choose_multiple(rng, want_friends) {
            members.push(GroupMember {
                id: *f,
                display_name: String::new(),
            });
        }
        while members.len() < n {
            let id = match strangers.choose(rng) {
                Some(s) if rng.random_bool(0.1) => *s,
                _ => {
                    let id = self.push(person(rng, SimKind::Stranger));
                    strangers.push(id);
                    id
                }
            };
            if !members.iter().any(|m| m.id == id) {
                members.push(GroupMember {
                    id,
                    display_name: String::new(),
                });
            }
        }
        members[1..].shuffle(rng);
        for m in members.iter_mut() {
            if rng.random_bool(0.2) {
                m.display_name = card_name(rng);
            }
        }
        let owner = members[rng.random_range(0..members.len())].id;
        let mut e = blank(SimKind::Group, nick);
        e.contact_flag = if saved {
            [3, 7][index % 2]
        } else {
            [2, 6][index % 2]
        };
        e.long_name = true;
        e.head_seq = rng.random_range(600_000_000..700_000_000);
        e.wxid = format!(
            "{}@chatroom",
            rng.random_range(10_000_000_000u64..30_000_000_000)
        );
        e.group = Some(GroupData {
            members,
            saved,
            in_init: false,
            in_chat_set: true,
            owner,
            statues: if index % 5 == 3 { 0 } else { 1 },
        });
        self.push(e)
    }

    fn push(&mut self, e: Entity) -> Id {
        self.entities.push(e);
        self.entities.len() - 1
    }

    /// Gives everyone a fresh session name (and every group a fresh
    /// EncryChatRoomId), as a new login does. Deterministic per generation.
    pub fn assign_names(&mut self) {
        let mut rng = StdRng::seed_from_u64(self.seed.rotate_left(17) ^ self.generation);
        self.names.clear();
        self.encry.clear();
        self.by_name.clear();
        self.by_encry.clear();
        for id in 0..self.entities.len() {
            self.name_entity(&mut rng, id);
        }
    }

    fn name_entity(&mut self, rng: &mut StdRng, id: Id) {
        let e = &self.entities[id];
        let name = match (e.fixed_name, e.kind) {
            (Some(fixed), _) => fixed.to_string(),
            (None, SimKind::Group) => format!("@@{}", hex(rng, 64)),
            (None, _) if e.long_name => format!("@{}", hex(rng, 64)),
            (None, _) => format!("@{}", hex(rng, 32)),
        };
        let encry = if e.kind == SimKind::Group {
            format!("@{}", hex(rng, 32))
        } else {
            String::new()
        };
        self.by_name.insert(name.clone(), id);
        if !encry.is_empty() {
            self.by_encry.insert(encry.clone(), id);
        }
        self.names.push(name);
        self.encry.push(encry);
    }

    pub fn next_generation(&mut self) {
        self.generation += 1;
        self.assign_names();
    }

    pub fn name(&self, id: Id) -> &str {
        &self.names[id]
    }

    pub fn lookup(&self, name: &str) -> Option<Id> {
        self.by_name.get(name).copied()
    }

    /// A group by its `@@` name or by its EncryChatRoomId.
    pub fn lookup_group(&self, key: &str) -> Option<Id> {
        self.lookup(key)
            .or_else(|| self.by_encry.get(key).copied())
            .filter(|id| self.is_live_group(*id))
    }

    pub fn is_live_group(&self, id: Id) -> bool {
        let e = &self.entities[id];
        e.group.is_some() && !e.removed
    }

    pub fn live_groups(&self) -> impl Iterator<Item = Id> + '_ {
        (0..self.entities.len()).filter(|id| self.is_live_group(*id))
    }

    /// Listed by `webwxgetcontact` right now.
    pub fn in_contact_list(&self, id: Id) -> bool {
        let e = &self.entities[id];
        !e.removed
            && match e.kind {
                SimKind::Group => e.group.as_ref().is_some_and(|g| g.saved),
                SimKind::Stranger => false,
                _ => true,
            }
    }

    pub fn contact_listing(&self) -> Vec<Id> {
        self.listing
            .iter()
            .copied()
            .filter(|id| self.in_contact_list(*id))
            .collect()
    }

    /// A person the server will describe: a contact, or someone who shares a live group.
    pub fn is_known_person(&self, id: Id) -> bool {
        let e = &self.entities[id];
        if e.group.is_some() || e.removed {
            return false;
        }
        e.kind != SimKind::Stranger || self.groups_of(id).next().is_some()
    }

    pub fn groups_of(&self, person: Id) -> impl Iterator<Item = Id> + '_ {
        self.live_groups()
            .filter(move |g| self.is_member(*g, person))
    }

    /// Every live group each person sits in, in one pass.
    pub fn member_index(&self) -> HashMap<Id, Vec<Id>> {
        let mut index: HashMap<Id, Vec<Id>> = HashMap::new();
        for g in self.live_groups() {
            for m in &self.entities[g].group.as_ref().expect("group").members {
                index.entry(m.id).or_default().push(g);
            }
        }
        index
    }

    pub fn is_member(&self, group: Id, person: Id) -> bool {
        self.entities[group]
            .group
            .as_ref()
            .is_some_and(|g| g.members.iter().any(|m| m.id == person))
    }

    /// What a change to `id` queues: its own record, or for a stranger
    /// (who has none) the groups that list them.
    pub fn touched(&self, id: Id) -> Vec<Change> {
        self.touched_among(id, self.groups_of(id))
    }

    /// [`AddressBook::touched`] with the stranger's groups read from a
    /// [`AddressBook::member_index`] built beforehand (for many changes in a row).
    pub fn touched_indexed(&self, id: Id, index: &HashMap<Id, Vec<Id>>) -> Vec<Change> {
        self.touched_among(id, index.get(&id).into_iter().flatten().copied())
    }

    fn touched_among(&self, id: Id, groups: impl Iterator<Item = Id>) -> Vec<Change> {
        if self.entities[id].kind == SimKind::Stranger {
            groups.map(Change::Mod).collect()
        } else {
            vec![Change::Mod(id)]
        }
    }

    /// A new avatar: only the `seq` in HeadImgUrl changes.
    pub fn new_avatar(&mut self, id: Id, rng: &mut StdRng) {
        let e = &mut self.entities[id];
        let old = e.head_seq;
        while e.head_seq == old {
            e.head_seq = rng.random_range(600_000_000..700_000_000);
        }
    }

    /// A friend deletes the user, or a group is removed: gone from
    /// webwxgetcontact, listed in DelContactList. A removed friend stays in
    /// their groups as a stranger.
    pub fn remove(&mut self, id: Id) -> Change {
        let e = &mut self.entities[id];
        if e.group.is_some() || e.kind != SimKind::Friend {
            e.removed = true;
        } else {
            e.kind = SimKind::Stranger;
            e.contact_flag = 0;
            e.remark.clear();
        }
        Change::Del(id)
    }

    /// A stranger (a group member, say) becomes a friend: listed from now
    /// on, and their record queued.
    pub fn befriend(&mut self, id: Id) -> Change {
        let e = &mut self.entities[id];
        e.kind = SimKind::Friend;
        e.contact_flag = 3;
        if !self.listing.contains(&id) {
            self.listing.push(id);
        }
        Change::Mod(id)
    }

    /// `member` leaves `group`: the group's record is queued (nothing, if
    /// `group` is not a group).
    pub fn leave(&mut self, group: Id, member: Id) -> Option<Change> {
        let g = self.entities[group].group.as_mut()?;
        g.members.retain(|m| m.id != member);
        Some(Change::Mod(group))
    }

    pub fn chat_set_names(&self) -> Vec<String> {
        self.chat_set_ids()
            .into_iter()
            .map(|id| self.names[id].clone())
            .collect()
    }

    fn chat_set_ids(&self) -> Vec<Id> {
        self.chat_set
            .iter()
            .copied()
            .filter(|id| {
                let e = &self.entities[*id];
                !e.removed && e.group.as_ref().is_none_or(|g| g.in_chat_set)
            })
            .collect()
    }

    pub fn init_contact_ids(&self) -> Vec<Id> {
        let mut ids = vec![1];
        ids.extend(self.init_people.iter().filter(|id| {
            let e = &self.entities[**id];
            !e.removed && e.kind != SimKind::Stranger
        }));
        ids.extend(
            self.live_groups()
                .filter(|id| self.entities[*id].group.as_ref().is_some_and(|g| g.in_init)),
        );
        ids
    }

    /// Whom the MsgType 51 after statusnotify names, in order.
    pub fn status_notify_ids(&self, coverage: StatusNotify, rng: &mut StdRng) -> Vec<Id> {
        match coverage {
            StatusNotify::Off => Vec::new(),
            StatusNotify::Recent => {
                let mut ids = self.init_contact_ids();
                for id in self.chat_set_ids() {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                ids
            }
            StatusNotify::Share(share) => {
                let mut all: Vec<Id> = self
                    .contact_listing()
                    .into_iter()
                    .filter(|id| *id != self.self_id && self.entities[*id].group.is_none())
                    .collect();
                all.extend(self.live_groups());
                let k =
                    ((share.clamp(0.0, 1.0) * all.len() as f64).round() as usize).min(all.len());
                let mut picked: Vec<Id> = all.choose_multiple(rng, k).copied().collect();
                picked.shuffle(rng);
                picked
            }
        }
    }

    // ---- mutations (each returns what to queue) ----

    /// Adds a person and names them for the current login.
    pub fn add_person(&mut self, e: Entity, rng: &mut StdRng) -> Id {
        let kind = e.kind;
        let id = self.push(e);
        self.name_entity(rng, id);
        if kind != SimKind::Stranger {
            self.listing.push(id);
        }
        id
    }

    pub fn new_person(&mut self, kind: SimKind, nick: &str) -> Id {
        let mut e = person(&mut self.rng, kind);
        e.nick = nick.to_string();
        e.remark.clear();
        let mut rng = self.fork_rng();
        self.add_person(e, &mut rng)
    }

    /// A generator of its own, seeded from the address book's, for a mutation that
    /// borrows the address book mutably.
    pub fn fork_rng(&mut self) -> StdRng {
        StdRng::seed_from_u64(self.rng.random())
    }

    pub fn new_group(&mut self, nick: &str, members: usize, saved: bool) -> Id {
        let mut rng = self.fork_rng();
        self.new_group_with(&mut rng, nick, members, saved)
    }

    pub fn new_group_with(
        &mut self,
        rng: &mut StdRng,
        nick: &str,
        members: usize,
        saved: bool,
    ) -> Id {
        let friends: Vec<Id> = (0..self.entities.len())
            .filter(|id| self.entities[*id].kind == SimKind::Friend && !self.entities[*id].removed)
            .collect();
        let first_new = self.entities.len();
        let index = rng.random_range(5..1000);
        let id = self.generate_group(
            rng,
            index,
            members.clamp(3, GROUP_CAP),
            saved,
            &friends,
            &mut Vec::new(),
        );
        self.entities[id].nick = nick.to_string();
        for new in first_new..self.entities.len() {
            self.name_entity(rng, new);
        }
        self.listing.push(id);
        self.chat_set.insert(1, id);
        id
    }

    pub fn snapshot(&self) -> Account {
        let contact = |id: Id| {
            let e = &self.entities[id];
            SimContact {
                sim_id: id as u64,
                real_id: e.wxid.clone(),
                user_name: self.names[id].clone(),
                nick_name: e.nick.clone(),
                remark_name: e.remark.clone(),
                kind: e.kind,
                verify_flag: e.verify_flag,
                contact_flag: e.contact_flag,
                sex: e.sex,
                star_friend: i64::from(e.contact_flag & 64 != 0),
                province: e.province.to_string(),
                city: e.city.to_string(),
                signature: e.signature.to_string(),
                alias: e.alias.clone(),
                uin: if id == self.self_id { self.uin } else { 0 },
                avatar_seq: e.head_seq,
                attr_status: e.attr_status,
            }
        };
        let contacts = self
            .contact_listing()
            .into_iter()
            .filter(|id| *id != self.self_id && self.entities[*id].group.is_none())
            .map(contact)
            .collect();
        let groups = self
            .live_groups()
            .map(|id| {
                let e = &self.entities[id];
                let g = e.group.as_ref().expect("group");
                SimGroup {
                    sim_id: id as u64,
                    real_id: e.wxid.clone(),
                    user_name: self.names[id].clone(),
                    encry_chat_room_id: self.encry[id].clone(),
                    nick_name: e.nick.clone(),
                    avatar_seq: e.head_seq,
                    saved: g.saved,
                    in_init: g.in_init,
                    in_chat_set: g.in_chat_set,
                    members: g
                        .members
                        .iter()
                        .map(|m| SimMember {
                            sim_id: m.id as u64,
                            real_id: self.entities[m.id].wxid.clone(),
                            user_name: self.names[m.id].clone(),
                            nick_name: self.entities[m.id].nick.clone(),
                            display_name: m.display_name.clone(),
                            attr_status: self.entities[m.id].attr_status,
                        })
                        .collect(),
                }
            })
            .collect();
        Account {
            self_user: contact(self.self_id),
            contacts,
            groups,
            chat_set: self.chat_set_names(),
            lookalikes: self
                .lookalikes
                .iter()
                .map(|(a, b)| (*a as u64, *b as u64))
                .collect(),
        }
    }

    /// The avatar `webwxgeticon` (people) or `webwxgetheadimg` (groups)
    /// serves for the current login's `user_name`: a JPEG of its own, whose
    /// bytes follow from the entity and its `seq`, so they change with the
    /// avatar and nowhere else. `None` for a name the server does not serve
    /// an avatar for on that endpoint (unknown, removed, or the wrong kind).
    pub fn avatar_image(&self, user_name: &str, group: bool) -> Option<Vec<u8>> {
        let id = self.lookup(user_name)?;
        let e = &self.entities[id];
        if e.removed || e.group.is_some() != group {
            return None;
        }
        Some(avatar_jpeg(&e.wxid, e.head_seq))
    }

    // ---- wire records ----

    fn head_img_url(&self, id: Id, skey: &str) -> String {
        let e = &self.entities[id];
        let cgi = if e.group.is_some() {
            "webwxgetheadimg"
        } else {
            "webwxgeticon"
        };
        format!(
            "/cgi-bin/mmwebwx-bin/{cgi}?seq={}&username={}&skey={skey}",
            e.head_seq, self.names[id]
        )
    }

    pub fn thin_member<'a>(&'a self, m: &'a GroupMember) -> MemberJson<'a> {
        let e = &self.entities[m.id];
        MemberJson {
            uin: 0,
            user_name: &self.names[m.id],
            nick_name: &e.nick,
            attr_status: e.attr_status,
            py_initial: &e.py_initial,
            py_quan_pin: &e.py_quan_pin,
            remark_py_initial: "",
            remark_py_quan_pin: "",
            member_status: 0,
            display_name: &m.display_name,
            key_word: e.wxid.get(..3).unwrap_or(""),
        }
    }

    /// A full contact record. `members`: None = empty list and MemberCount 0
    /// (getcontact), Some(list) = that list with its length as MemberCount.
    pub fn contact_json<'a>(
        &'a self,
        id: Id,
        skey: &str,
        members: Option<Vec<MemberJson<'a>>>,
        with_encry: bool,
    ) -> ContactRecord<'a> {
        let e = &self.entities[id];
        let (remark_py_initial, remark_py_quan_pin) = text::remark_py(&e.remark);
        let members = members.unwrap_or_default();
        let is_owner = e
            .group
            .as_ref()
            .map_or(0, |g| i64::from(g.owner == self.self_id));
        ContactRecord {
            uin: if id == self.self_id { self.uin } else { 0 },
            user_name: &self.names[id],
            nick_name: &e.nick,
            head_img_url: self.head_img_url(id, skey),
            contact_flag: e.contact_flag,
            member_count: members.len(),
            member_list: members,
            remark_name: &e.remark,
            hide_input_bar_flag: 0,
            sex: e.sex,
            signature: e.signature,
            verify_flag: e.verify_flag,
            owner_uin: 0,
            py_initial: &e.py_initial,
            py_quan_pin: &e.py_quan_pin,
            remark_py_initial,
            remark_py_quan_pin,
            star_friend: i64::from(e.contact_flag & 64 != 0),
            app_account_flag: 0,
            statues: e.group.as_ref().map_or(0, |g| g.statues),
            attr_status: e.attr_status,
            province: e.province,
            city: e.city,
            alias: &e.alias,
            sns_flag: e.sns_flag,
            uni_friend: 0,
            display_name: "",
            chat_room_id: 0,
            key_word: e.key_word,
            encry_chat_room_id: if with_encry { &self.encry[id] } else { "" },
            is_owner,
        }
    }

    /// A group with its full member list, as batchgetcontact and webwxsync send it.
    pub fn group_json<'a>(&'a self, id: Id, skey: &str) -> ContactRecord<'a> {
        let members = self.entities[id]
            .group
            .as_ref()
            .map(|g| g.members.iter().map(|m| self.thin_member(m)).collect())
            .unwrap_or_default();
        self.contact_json(id, skey, Some(members), true)
    }

    /// A ModContactList record.
    pub fn mod_json<'a>(&'a self, id: Id, skey: &str) -> ModContactRecord<'a> {
        let e = &self.entities[id];
        let members: Vec<MemberJson<'a>> = e
            .group
            .as_ref()
            .map(|g| g.members.iter().map(|m| self.thin_member(m)).collect())
            .unwrap_or_default();
        ModContactRecord {
            user_name: &self.names[id],
            nick_name: &e.nick,
            sex: e.sex,
            head_img_update_flag: 1,
            contact_type: 0,
            alias: &e.alias,
            chat_room_owner: e.group.as_ref().map_or("", |g| &self.names[g.owner]),
            head_img_url: self.head_img_url(id, skey),
            contact_flag: e.contact_flag,
            member_count: members.len(),
            member_list: members,
            signature: e.signature,
            verify_flag: e.verify_flag,
            remark_name: &e.remark,
            statues: e.group.as_ref().map_or(0, |g| g.statues),
            attr_status: e.attr_status,
            province: e.province,
            city: e.city,
            sns_flag: e.sns_flag,
            key_word: e.key_word,
        }
    }

    /// The init `User` object.
    pub fn user_json(&self, skey: &str) -> serde_json::Value {
        let e = &self.entities[self.self_id];
        serde_json::json!({
            "Uin": self.uin,
            "UserName": self.names[self.self_id],
            "NickName": e.nick,
            "HeadImgUrl": self.head_img_url(self.self_id, skey),
            "RemarkName": "",
            "PYInitial": "",
            "PYQuanPin": "",
            "RemarkPYInitial": "",
            "RemarkPYQuanPin": "",
            "HideInputBarFlag": 0,
            "StarFriend": 0,
            "Sex": e.sex,
            "Signature": e.signature,
            "AppAccountFlag": 0,
            "VerifyFlag": 0,
            "ContactFlag": 0,
            "WebWxPluginSwitch": 0,
            "HeadImgFlag": 1,
            "SnsFlag": e.sns_flag,
        })
    }

    /// Init's ContactList entry: groups carry a partial, dirty member list.
    pub fn init_json(&self, id: Id, skey: &str) -> ContactRecord<'_> {
        match &self.entities[id].group {
            Some(g) => {
                let k = (g.members.len() - 1).min(2 + id % 5);
                let members = g.members[..k]
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let mut j = self.thin_member(m);
                        if i % 2 == 1 {
                            j.nick_name = "";
                        }
                        j
                    })
                    .collect();
                self.contact_json(id, skey, Some(members), false)
            }
            None => self.contact_json(id, skey, None, false),
        }
    }
}

fn blank(kind: SimKind, nick: String) -> Entity {
    Entity {
        kind,
        fixed_name: None,
        long_name: true,
        nick,
        remark: String::new(),
        py_initial: String::new(),
        py_quan_pin: String::new(),
        sex: 0,
        province: "",
        city: "",
        signature: "",
        alias: String::new(),
        verify_flag: 0,
        contact_flag: 0,
        key_word: "",
        head_seq: 0,
        attr_status: 0,
        sns_flag: 0,
        wxid: String::new(),
        removed: false,
        group: None,
    }
}

pub(crate) fn person(rng: &mut StdRng, kind: SimKind) -> Entity {
    let GenName {
        wire,
        py_initial,
        py_quan_pin,
    } = text::person_name(rng);
    let mut e = blank(kind, wire);
    e.py_initial = py_initial;
    e.py_quan_pin = py_quan_pin;
    e.long_name = rng.random_bool(0.8);
    e.sex = rng.random_range(0..3);
    let (prov, cities) = text::PROVINCES.choose(rng).expect("non-empty");
    e.province = prov;
    e.city = cities.choose(rng).expect("non-empty");
    e.signature = text::SIGNATURES.choose(rng).expect("non-empty");
    e.head_seq = rng.random_range(600_000_000..700_000_000);
    e.attr_status = *text::ATTR_STATUS.choose(rng).expect("non-empty");
    e.sns_flag = [0, 1, 17, 49][rng.random_range(0..4)];
    e.wxid = person_id(rng, &e.py_quan_pin);
    if rng.random_bool(0.15) {
        e.alias = format!("{}{}", &e.py_quan_pin, rng.random_range(10..9999));
    }
    if kind == SimKind::Friend {
        e.contact_flag = 3;
        let r: f64 = rng.random();
        if r < 0.05 {
            e.contact_flag |= 64; // starred
        } else if r < 0.08 {
            e.contact_flag |= 2048; // pinned
        } else if r < 0.12 {
            e.contact_flag |= 512; // muted
        } else if r < 0.13 {
            e.contact_flag |= 65536;
        }
        if rng.random_bool(0.3) {
            e.remark = remark_name(rng);
        }
    }
    e
}

/// Made-up members (UserName, NickName) for a group past the real cap,
/// numbered so each is distinct.
pub(crate) fn filler_members(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let mix = (i as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            (format!("@{mix:016x}{i:048x}"), format!("成员{i}"))
        })
        .collect()
}

/// A remark as people write them: a name, sometimes with where they know them from.
pub(crate) fn remark_name(rng: &mut StdRng) -> String {
    let mut remark = text::person_name(rng).wire;
    if rng.random_bool(0.3) {
        remark.push_str(" (同事)");
    }
    remark
}

/// A group card (DisplayName).
pub(crate) fn card_name(rng: &mut StdRng) -> String {
    let mut name = text::person_name(rng).wire;
    if rng.random_bool(0.3) {
        name.push_str("-项目组");
    }
    name
}

/// The generator's group names: the table, then numbered repeats.
pub(crate) fn group_name(index: usize) -> String {
    let base = text::GROUP_NAMES[index % text::GROUP_NAMES.len()];
    if index < text::GROUP_NAMES.len() {
        base.to_string()
    } else {
        format!("{base}{}", index / text::GROUP_NAMES.len() + 1)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MemberJson<'a> {
    uin: i64,
    user_name: &'a str,
    nick_name: &'a str,
    attr_status: i64,
    #[serde(rename = "PYInitial")]
    py_initial: &'a str,
    #[serde(rename = "PYQuanPin")]
    py_quan_pin: &'a str,
    #[serde(rename = "RemarkPYInitial")]
    remark_py_initial: &'a str,
    #[serde(rename = "RemarkPYQuanPin")]
    remark_py_quan_pin: &'a str,
    member_status: i64,
    display_name: &'a str,
    key_word: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContactRecord<'a> {
    uin: i64,
    user_name: &'a str,
    nick_name: &'a str,
    head_img_url: String,
    contact_flag: i64,
    member_count: usize,
    member_list: Vec<MemberJson<'a>>,
    remark_name: &'a str,
    hide_input_bar_flag: i64,
    sex: i64,
    signature: &'a str,
    verify_flag: i64,
    owner_uin: i64,
    #[serde(rename = "PYInitial")]
    py_initial: &'a str,
    #[serde(rename = "PYQuanPin")]
    py_quan_pin: &'a str,
    #[serde(rename = "RemarkPYInitial")]
    remark_py_initial: String,
    #[serde(rename = "RemarkPYQuanPin")]
    remark_py_quan_pin: String,
    star_friend: i64,
    app_account_flag: i64,
    statues: i64,
    attr_status: i64,
    province: &'a str,
    city: &'a str,
    alias: &'a str,
    sns_flag: i64,
    uni_friend: i64,
    display_name: &'a str,
    chat_room_id: i64,
    key_word: &'a str,
    encry_chat_room_id: &'a str,
    is_owner: i64,
}

impl<'a> ContactRecord<'a> {
    pub fn user_name(&self) -> &'a str {
        self.user_name
    }

    /// Grows the member list to `n` with made-up members from `filler`.
    pub fn pad_members(&mut self, filler: &'a [(String, String)], n: usize) {
        let missing = n.saturating_sub(self.member_list.len());
        self.member_list
            .extend(
                filler
                    .iter()
                    .take(missing)
                    .map(|(user_name, nick_name)| MemberJson {
                        uin: 0,
                        user_name,
                        nick_name,
                        attr_status: 0,
                        py_initial: "",
                        py_quan_pin: "",
                        remark_py_initial: "",
                        remark_py_quan_pin: "",
                        member_status: 0,
                        display_name: "",
                        key_word: "",
                    }),
            );
        self.member_count = self.member_list.len();
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ModContactRecord<'a> {
    user_name: &'a str,
    nick_name: &'a str,
    sex: i64,
    head_img_update_flag: i64,
    contact_type: i64,
    alias: &'a str,
    chat_room_owner: &'a str,
    head_img_url: String,
    contact_flag: i64,
    member_count: usize,
    member_list: Vec<MemberJson<'a>>,
    signature: &'a str,
    verify_flag: i64,
    remark_name: &'a str,
    statues: i64,
    attr_status: i64,
    province: &'a str,
    city: &'a str,
    sns_flag: i64,
    key_word: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig {
            seed: 7,
            friends: 40,
            officials: 5,
            saved_groups: 6,
            unsaved_groups: 4,
            max_group_members: 80,
            page_size: 20,
            ..SimConfig::default()
        }
    }

    #[test]
    fn same_seed_gives_the_same_account() {
        let a = AddressBook::generate(&small()).snapshot();
        let b = AddressBook::generate(&small()).snapshot();
        assert_eq!(a, b);
        let c = AddressBook::generate(&SimConfig { seed: 8, ..small() }).snapshot();
        assert_ne!(a, c);
    }

    #[test]
    fn sizes_and_shapes_follow_the_config() {
        let a = AddressBook::generate(&small()).snapshot();
        let count = |k| a.contacts.iter().filter(|c| c.kind == k).count();
        assert_eq!(count(SimKind::Friend), 40);
        assert_eq!(count(SimKind::Official), 5);
        assert_eq!(a.groups.len(), 10);
        assert_eq!(a.groups.iter().filter(|g| g.saved).count(), 6);
        assert!(a.groups.iter().all(|g| (3..=80).contains(&g.members.len())));
        assert_eq!(a.groups[0].members.len(), 80);
        assert!(a.groups.iter().all(|g| g.user_name.len() == 66));
        assert!(a.self_user.uin > 0 && a.self_user.kind == SimKind::Self_);
        // Some unsaved group is known from ChatSet alone.
        assert!(
            a.groups
                .iter()
                .any(|g| !g.saved && !g.in_init && a.chat_set.contains(&g.user_name))
        );
    }

    #[test]
    fn a_new_login_renames_everyone_but_specials() {
        let mut w = AddressBook::generate(&small());
        let before = w.snapshot();
        w.next_generation();
        let after = w.snapshot();
        assert_ne!(before.self_user.user_name, after.self_user.user_name);
        assert_eq!(before.self_user.nick_name, after.self_user.nick_name);
        assert!(after.contacts.iter().any(|c| c.user_name == "filehelper"));
        assert_ne!(before.groups[0].user_name, after.groups[0].user_name);
    }

    #[test]
    fn simulated_avatars_differ_by_contact_and_by_seq() {
        assert_eq!(avatar_jpeg("wxid_a", 1), avatar_jpeg("wxid_a", 1));
        assert_ne!(avatar_jpeg("wxid_a", 1), avatar_jpeg("wxid_a", 2));
        assert_ne!(avatar_jpeg("wxid_a", 1), avatar_jpeg("wxid_b", 1));
    }
}
