//! Scoring groups across two logins: mostly by who is in them.

use super::evidence::Breakdown;
use super::values::{Side, Step, Values, merge};
use super::{Group, Key, Table, Text, class_of};
use crate::contact::Kind;

/// What each signal is worth, in bits; see [`super`] for the model.
mod bits {
    use super::super::values::{Agree, Weigh};

    pub const REAL_ID: f64 = 64.0;
    /// Names repeat ("大学同学") and get changed: a hint, cheap to lose.
    /// Named on one side only is a rename too.
    pub const NAME: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 10.0,
            floor: 0.0,
        },
        differs: -2.0,
        one_sided: -2.0,
    };
    /// Group avatars are rebuilt from members' faces, so they change often.
    pub const AVATAR: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 12.0,
            floor: 2.0,
        },
        differs: -1.0,
        one_sided: 0.0,
    };
    /// Equal counts are a small hint; counts within 10 % (or 2) say nothing.
    pub const COUNT: Weigh = Weigh {
        agree: Agree::Attribute { top: 3.0 },
        differs: -1.0,
        one_sided: 0.0,
    };
    /// Members are weighed as in record linkage: a key shared by `holders`
    /// groups is in an unrelated group with probability p = (holders − 1 +
    /// `UNSEEN`) / groups (the other holders; `UNSEEN` stands for the chance
    /// that a key seen once is elsewhere unseen), and in the same group
    /// after a login with probability `KEPT`. Shared, it adds log₂(KEPT /
    /// p) bits, at most `MEMBER_TOP`; on the old side only (left, renamed,
    /// card changed), it costs log₂((1 − KEPT) / (1 − p)), about 2.3 bits.
    /// `KEPT` is set for churn up to about 20 %.
    pub const KEPT: f64 = 0.8;
    pub const UNSEEN: f64 = 0.1;
    pub const MEMBER_TOP: f64 = 10.0;
    /// The most a new member not in the old list costs: little, as a small
    /// group that grew is still itself, and a different group with a few of
    /// the same members is told apart by the members it lacks.
    pub const MEMBER_JOINED: f64 = 0.25;
}

const SIGNALS: usize = 5;
const NAMES: [&str; SIGNALS] = ["real id", "name", "avatar", "member count", "members"];
const REAL_ID: usize = 0;
const NAME: usize = 1;
const AVATAR: usize = 2;
const COUNT: usize = 3;
const MEMBERS: usize = 4;

/// A member key held by more old × new groups than this finds no
/// candidates: a group shares rarer members with its own next version
/// (strangers are mostly in one group), while a friend in dozens of groups,
/// or the account itself in all of them, would pair every group with every
/// other (at 2,000 groups a limit of 2,500 took 1.7 s, 64 takes 1.0 s, with
/// the same links).
const BLOCK_LIMIT: u64 = 64;

/// Shared members are not independent evidence: two different groups
/// drawn from one circle of friends share many of them (at 300 friends,
/// a removed group of 205 and a new one of 399 shared 101). When members
/// are all a pair has in common (no real id; name and avatar differ or
/// are missing), they count only if at least 1 in `THIN_OVERLAP` of
/// everyone in either group is in both. The same group after 20 % churn,
/// renamed with a new avatar, mostly keeps more than that; a small one
/// that grew (20 members to 35, 9 kept) is missed.
const THIN_OVERLAP: usize = 4;

/// A group with each field interned.
pub(super) struct Row {
    real_id: Option<u32>,
    name: Option<u32>,
    avatar: Option<u32>,
    count: i64,
    count_id: Option<u32>,
    /// Interned member keys, sorted.
    members: Vec<u32>,
}

/// Both logins' groups, each field's values counted.
pub(super) struct Groups {
    real_id: Values<Text>,
    name: Values<Text>,
    avatar: Values<Text>,
    count: Values<i64>,
    members: Values<u64>,
    /// Bits a member key adds when shared, and costs when only on the old
    /// side, by how many groups hold it (a table as long as the groups, not
    /// one entry per key: a big account's groups hold hundreds of
    /// thousands of keys).
    member_bits: Vec<(f64, f64)>,
    groups: usize,
    /// Old rows, new rows: indexed by [`Side`].
    sides: [Vec<Row>; 2],
}

/// What two member lists share, for the score and its explanation.
struct Overlap {
    bits: f64,
    shared: usize,
    union: usize,
}

impl Groups {
    /// Takes the groups' member lists (see [`super::link_groups`]).
    pub fn build(old: &mut [Group], new: &mut [Group]) -> Self {
        let mut t = Groups {
            real_id: Values::new(),
            name: Values::new(),
            avatar: Values::new(),
            count: Values::new(),
            members: Values::new(),
            member_bits: Vec::new(),
            groups: old.len().max(new.len()),
            sides: [Vec::with_capacity(old.len()), Vec::with_capacity(new.len())],
        };
        fn lists(groups: &mut [Group]) -> Vec<Vec<u64>> {
            groups
                .iter_mut()
                .map(|g| std::mem::take(&mut g.members))
                .collect()
        }
        let (members, [old_members, new_members]) = Values::sorted_sets([lists(old), lists(new)]);
        t.members = members;
        for (side, groups, members) in [
            (Side::Old, &*old, old_members),
            (Side::New, &*new, new_members),
        ] {
            for (g, members) in groups.iter().zip(members) {
                let row = Row {
                    real_id: g.real_id.and_then(|r| t.real_id.add_text(side, 0, r)),
                    name: t.name.add_text(side, 0, g.nick_name),
                    avatar: g.avatar_seq.and_then(|s| t.avatar.add_text(side, 0, s)),
                    count: g.member_count,
                    count_id: (g.member_count > 0).then(|| t.count.add(side, 0, g.member_count)),
                    members,
                };
                t.sides[side as usize].push(row);
            }
        }
        // Done interning (see [`Values::seal`]).
        for v in [&mut t.real_id, &mut t.name, &mut t.avatar] {
            v.seal();
        }
        t.count.seal();
        let groups = t.groups as f64;
        t.member_bits = (1..=t.groups)
            .map(|holders| {
                let others = (holders - 1) as f64 + bits::UNSEEN;
                let p = (others / groups).min(1.0);
                let shared = (bits::KEPT / p).log2().clamp(0.0, bits::MEMBER_TOP);
                let left = ((1.0 - bits::KEPT) / (1.0 - p)).log2().min(0.0);
                (shared, left)
            })
            .collect();
        t
    }

    /// [`Groups::member_bits`] of member key `k`.
    fn member_bits(&self, k: u32) -> (f64, f64) {
        self.member_bits[self.members.holders(k) as usize - 1]
    }

    fn overlap(&self, a: &[u32], b: &[u32]) -> Overlap {
        let mut o = Overlap {
            bits: 0.0,
            shared: 0,
            union: 0,
        };
        for step in merge(a, b) {
            o.union += 1;
            match step {
                Step::Old(k) => o.bits += self.member_bits(k).1,
                Step::New(k) => o.bits -= self.member_bits(k).0.min(bits::MEMBER_JOINED),
                Step::Both(k) => {
                    o.bits += self.member_bits(k).0;
                    o.shared += 1;
                }
            }
        }
        o
    }

    fn compare(&self, o: usize, n: usize) -> (Breakdown<SIGNALS>, Overlap) {
        let (a, b) = (&self.sides[0][o], &self.sides[1][n]);
        let mut s = Breakdown::new();
        if a.real_id.is_some() && a.real_id == b.real_id {
            s.bits[REAL_ID] = bits::REAL_ID;
        }
        let groups = self.groups;
        s.bits[NAME] = self.name.weigh(&bits::NAME, a.name, b.name, groups);
        s.bits[AVATAR] = self.avatar.weigh(&bits::AVATAR, a.avatar, b.avatar, groups);
        s.bits[COUNT] = self
            .count
            .weigh(&bits::COUNT, a.count_id, b.count_id, groups);
        let close = (a.count - b.count).abs() <= 2.max(a.count.max(b.count) / 10);
        if s.bits[COUNT] < 0.0 && close {
            s.bits[COUNT] = 0.0;
        }
        let overlap = self.overlap(&a.members, &b.members);
        let members_alone =
            s.bits[REAL_ID] + s.bits[NAME].max(0.0) + s.bits[AVATAR].max(0.0) == 0.0;
        s.bits[MEMBERS] = if members_alone && overlap.shared * THIN_OVERLAP < overlap.union {
            overlap.bits.min(0.0)
        } else {
            overlap.bits
        };
        (s, overlap)
    }
}

impl Table for Groups {
    type Row = Row;
    const BLOCK_LIMIT: u64 = BLOCK_LIMIT;

    fn rows(&self) -> [&[Row]; 2] {
        [&self.sides[0], &self.sides[1]]
    }

    fn real_ids(&self) -> &Values<Text> {
        &self.real_id
    }

    fn real_id(row: &Row) -> Option<u32> {
        row.real_id
    }

    fn keys(&self) -> Vec<(Key<Row>, usize)> {
        vec![
            (|r| r.name.as_slice(), self.name.len()),
            (|r| r.avatar.as_slice(), self.avatar.len()),
            (|r| &r.members, self.members.len()),
        ]
    }

    fn class(_row: &Row) -> u8 {
        class_of(Kind::Group)
    }

    fn score(&self, old: usize, new: usize) -> (f64, bool) {
        let b = self.compare(old, new).0;
        (b.score(), b.only_differs_in(AVATAR))
    }

    fn explain(&self, old: usize, new: usize) -> (f64, String) {
        let (b, overlap) = self.compare(old, new);
        let words = b.words(&NAMES, |i| {
            (i == MEMBERS && overlap.union > 0)
                .then(|| format!("members ({} shared of {})", overlap.shared, overlap.union))
        });
        (b.score(), words)
    }
}
