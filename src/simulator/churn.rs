//! What happens to an address book between two logins: people rename
//! themselves and change avatars and signatures, the user edits remarks,
//! friends come and go, members join and leave groups, groups are renamed,
//! created and left. [`AddressBook::churn`] applies each kind to about `rate` of
//! the entities it can apply to, queues the changes as the other mutators
//! do, and reports what it changed by sim id.

use std::collections::{BTreeMap, HashSet};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::account::SimKind;
use super::address_book::{self, AddressBook, Change, GROUP_CAP, GroupMember, Id};
use super::text;

/// What one [`Simulator::churn`](super::Simulator::churn) changed, by sim id
/// (`(group, member)` for membership changes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChurnReport {
    /// NickName changed (friends, strangers in groups, officials). The self
    /// user's own edits travel in webwxsync's Profile, which is not modelled.
    pub renamed: Vec<u64>,
    /// A new avatar: the `seq` in HeadImgUrl changed (people and groups).
    pub new_avatar: Vec<u64>,
    pub remark_set: Vec<u64>,
    pub remark_changed: Vec<u64>,
    pub remark_cleared: Vec<u64>,
    pub signature_changed: Vec<u64>,
    /// New friends: group strangers who became friends, and people new to the account.
    pub friends_added: Vec<u64>,
    /// Friends who deleted the user; they stay in their groups as strangers.
    pub friends_removed: Vec<u64>,
    pub members_joined: Vec<(u64, u64)>,
    pub members_left: Vec<(u64, u64)>,
    /// A member's group card (DisplayName) set, changed or cleared.
    pub display_name_changed: Vec<(u64, u64)>,
    pub groups_renamed: Vec<u64>,
    pub groups_created: Vec<u64>,
    /// Groups the user left or that were dissolved.
    pub groups_removed: Vec<u64>,
}

impl ChurnReport {
    /// How many changes of each kind, by field name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("renamed", self.renamed.len()),
            ("new_avatar", self.new_avatar.len()),
            ("remark_set", self.remark_set.len()),
            ("remark_changed", self.remark_changed.len()),
            ("remark_cleared", self.remark_cleared.len()),
            ("signature_changed", self.signature_changed.len()),
            ("friends_added", self.friends_added.len()),
            ("friends_removed", self.friends_removed.len()),
            ("members_joined", self.members_joined.len()),
            ("members_left", self.members_left.len()),
            ("display_name_changed", self.display_name_changed.len()),
            ("groups_renamed", self.groups_renamed.len()),
            ("groups_created", self.groups_created.len()),
            ("groups_removed", self.groups_removed.len()),
        ])
    }

    pub fn total(&self) -> usize {
        self.counts().values().sum()
    }
}

/// `rate × n` rounded at random (so small pools still churn now and then).
fn how_many(rng: &mut StdRng, rate: f64, n: usize) -> usize {
    let exact = rate * n as f64;
    let whole = exact.floor();
    let k = whole as usize + usize::from(rng.random_bool((exact - whole).clamp(0.0, 1.0)));
    k.min(n)
}

fn pick<T: Copy>(rng: &mut StdRng, rate: f64, pool: &[T]) -> Vec<T> {
    let k = how_many(rng, rate, pool.len());
    pool.choose_multiple(rng, k).copied().collect()
}

impl AddressBook {
    /// Applies one round of churn; see the module doc.
    pub fn churn(&mut self, rate: f64, seed: u64) -> (Vec<Change>, ChurnReport) {
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut report = ChurnReport::default();
        let mut changes = Vec::new();
        let sim = |id: Id| id as u64;

        // Removals first, so every later change applies to something that stays.
        let groups: Vec<Id> = self.live_groups().collect();
        for g in pick(&mut rng, rate, &groups) {
            changes.push(self.remove(g));
            report.groups_removed.push(sim(g));
        }
        let friends = self.of_kind(SimKind::Friend);
        for f in pick(&mut rng, rate, &friends) {
            changes.push(self.remove(f));
            report.friends_removed.push(sim(f));
        }
        let memberships = self.memberships();
        for (g, m) in pick(&mut rng, rate, &memberships) {
            changes.push(self.leave(g, m).expect("group"));
            report.members_left.push((sim(g), sim(m)));
        }

        // Edits of what exists now.
        let index = self.member_index();
        let in_a_group = |id: &Id| index.contains_key(id);
        let mut people = self.of_kind(SimKind::Friend);
        people.extend(self.of_kind(SimKind::Official));
        people.extend(
            self.of_kind(SimKind::Stranger)
                .into_iter()
                .filter(in_a_group),
        );
        for id in pick(&mut rng, rate, &people) {
            self.rename_person(&mut rng, id);
            changes.extend(self.touched_indexed(id, &index));
            report.renamed.push(sim(id));
        }
        let groups: Vec<Id> = self.live_groups().collect();
        let mut faces = people.clone();
        faces.extend(&groups);
        for id in pick(&mut rng, rate, &faces) {
            self.new_avatar(id, &mut rng);
            changes.extend(self.touched_indexed(id, &index));
            report.new_avatar.push(sim(id));
        }
        let friends = self.of_kind(SimKind::Friend);
        for id in pick(&mut rng, rate, &friends) {
            let e = &mut self.entities[id];
            if e.remark.is_empty() {
                e.remark = address_book::remark_name(&mut rng);
                report.remark_set.push(sim(id));
            } else if rng.random_bool(0.5) {
                let old = std::mem::take(&mut e.remark);
                while e.remark.is_empty() || e.remark == old {
                    e.remark = address_book::remark_name(&mut rng);
                }
                report.remark_changed.push(sim(id));
            } else {
                e.remark.clear();
                report.remark_cleared.push(sim(id));
            }
            changes.push(Change::Mod(id));
        }
        let talkers: Vec<Id> = people
            .iter()
            .copied()
            .filter(|id| self.entities[*id].kind != SimKind::Official)
            .collect();
        for id in pick(&mut rng, rate, &talkers) {
            let e = &mut self.entities[id];
            let old = e.signature;
            while e.signature == old {
                e.signature = text::SIGNATURES.choose(&mut rng).expect("non-empty");
            }
            changes.extend(self.touched_indexed(id, &index));
            report.signature_changed.push(sim(id));
        }
        let mut with_self = self.memberships();
        with_self.extend(groups.iter().map(|g| (*g, self.self_id)));
        for (g, m) in pick(&mut rng, rate, &with_self) {
            let data = self.entities[g].group.as_mut().expect("group");
            let Some(member) = data.members.iter_mut().find(|x| x.id == m) else {
                continue;
            };
            let old = std::mem::take(&mut member.display_name);
            if old.is_empty() || rng.random_bool(0.5) {
                while member.display_name.is_empty() || member.display_name == old {
                    member.display_name = address_book::card_name(&mut rng);
                }
            }
            changes.push(Change::Mod(g));
            report.display_name_changed.push((sim(g), sim(m)));
        }
        for g in pick(&mut rng, rate, &groups) {
            let e = &mut self.entities[g];
            let old = std::mem::take(&mut e.nick);
            while e.nick.is_empty() || e.nick == old {
                e.nick = address_book::group_name(rng.random_range(0..60));
                if rng.random_bool(0.3) {
                    e.nick
                        .push_str(text::EMOJI_SPANS.choose(&mut rng).expect("non-empty"));
                }
            }
            changes.push(Change::Mod(g));
            report.groups_renamed.push(sim(g));
        }

        // Additions.
        let joins = how_many(&mut rng, rate, self.memberships().len());
        let friends = self.of_kind(SimKind::Friend);
        for _ in 0..joins {
            let Some(&g) = groups.choose(&mut rng) else {
                break;
            };
            if self.entities[g]
                .group
                .as_ref()
                .expect("group")
                .members
                .len()
                >= GROUP_CAP
            {
                continue;
            }
            let id = match friends.choose(&mut rng) {
                Some(f) if rng.random_bool(0.3) && !self.is_member(g, *f) => *f,
                _ => {
                    let e = address_book::person(&mut rng, SimKind::Stranger);
                    self.add_person(e, &mut rng)
                }
            };
            let data = self.entities[g].group.as_mut().expect("group");
            data.members.push(GroupMember {
                id,
                display_name: String::new(),
            });
            changes.push(Change::Mod(g));
            report.members_joined.push((sim(g), sim(id)));
        }
        let index = self.member_index();
        // Someone who just deleted the user does not come straight back.
        let gone: HashSet<u64> = report.friends_removed.iter().copied().collect();
        let strangers: Vec<Id> = self
            .of_kind(SimKind::Stranger)
            .into_iter()
            .filter(|id| index.contains_key(id) && !gone.contains(&sim(*id)))
            .collect();
        for _ in 0..how_many(&mut rng, rate, friends.len()) {
            let id = match strangers.choose(&mut rng) {
                Some(s) if rng.random_bool(0.5) && self.entities[*s].kind == SimKind::Stranger => {
                    self.befriend(*s);
                    *s
                }
                _ => {
                    let mut e = address_book::person(&mut rng, SimKind::Friend);
                    e.remark.clear();
                    self.add_person(e, &mut rng)
                }
            };
            changes.push(Change::Mod(id));
            report.friends_added.push(sim(id));
        }
        for _ in 0..how_many(&mut rng, rate, groups.len()) {
            let size = rng.random_range(self.min_members..=self.max_members);
            let nick = address_book::group_name(rng.random_range(0..60));
            let saved = rng.random_bool(0.7);
            let g = self.new_group_with(&mut rng, &nick, size, saved);
            changes.push(Change::Mod(g));
            report.groups_created.push(sim(g));
        }
        (changes, report)
    }

    fn of_kind(&self, kind: SimKind) -> Vec<Id> {
        (0..self.entities.len())
            .filter(|id| {
                let e = &self.entities[*id];
                e.kind == kind && !e.removed
            })
            .collect()
    }

    /// Every (group, member) pair of the live groups, the self user left out.
    fn memberships(&self) -> Vec<(Id, Id)> {
        self.live_groups()
            .flat_map(|g| {
                self.entities[g]
                    .group
                    .as_ref()
                    .expect("group")
                    .members
                    .iter()
                    .filter(|m| m.id != self.self_id)
                    .map(move |m| (g, m.id))
            })
            .collect()
    }

    /// A new nickname: a different name altogether, or the old one with an
    /// emoji added or dropped (the commonest rename).
    fn rename_person(&mut self, rng: &mut StdRng, id: Id) {
        let e = &mut self.entities[id];
        let old = e.nick.clone();
        if e.kind != SimKind::Official && rng.random_bool(0.5) {
            let name = text::person_name(rng);
            e.nick = name.wire;
            e.py_initial = name.py_initial;
            e.py_quan_pin = name.py_quan_pin;
        } else if let Some(cut) = e.nick.find("<span") {
            e.nick.truncate(cut);
        } else {
            e.nick
                .push_str(text::EMOJI_SPANS.choose(rng).expect("non-empty"));
        }
        if e.nick == old || e.nick.is_empty() {
            e.nick = format!("{old}{}", text::EMOJI_SPANS[0]);
        }
    }
}
