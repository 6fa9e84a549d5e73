//! Who is who across two logins.
//!
//! WeChat Web gives every contact and group a new `UserName` at each login.
//! The first full sync after a new login links the previous login's cached
//! rows to the new session's contacts: the people first ([`People::link`]),
//! then — with group member keys built from those links — [`link_groups`],
//! then the people again ([`People::relink`]). Each is a pure function of
//! its input: the same rows give the same links, in any process.
//!
//! # Scoring
//!
//! Values are only ever compared for equality, so rows carry each field as
//! a [`Text`], a 64-bit key of its text, and never the text itself.
//!
//! A candidate pair scores the sum of what each signal says, in bits (log₂
//! of how much likelier the observation is for the same person than for two
//! different ones):
//!
//! - **Real ids decide.** Equal known real ids (`wxid_…`, `…@chatroom`,
//!   `gh_…`, from a MsgType 51 map) link whatever else differs; two
//!   different known real ids never link.
//! - **Identifier-like values** (remark, alias, avatar `seq`, nick name,
//!   group cards, group name) are worth a fixed number of bits when one row
//!   holds the value, one bit less each time the number of holders doubles
//!   (a remark three people share says about 1.6 bits less than a unique
//!   one). Holders are counted per kind, on the side where the value is
//!   more common.
//! - **Attributes** (sex, province + city, signature, member count) are
//!   worth the bits of their frequency, capped.
//! - **Disagreement costs**: a different value on both sides subtracts a
//!   fixed amount, sized by how often the field really changes between
//!   logins (an alias almost never, an avatar or nick name now and then).
//!   An empty side says nothing, except for a remark (set or cleared).
//! - **Members** (groups): a member key in both lists adds log₂(0.8 / p)
//!   bits, p being the chance that an unrelated group holds it (from how
//!   many groups do), so the account itself, in every group, adds nothing;
//!   an old member missing from the new list costs about 2.3 bits, a new
//!   member a quarter bit. When members are all a pair has in common (name
//!   and avatar differ or are missing), they count only if at least a
//!   quarter of everyone in either list is in both (`THIN_OVERLAP`).
//!
//! The weights are in `people.rs` and `groups.rs` with the reason for each.
//!
//! # Deciding
//!
//! Candidates come from blocks of shared values (real id, remark, alias,
//! avatar, nick name, group cards; group name, avatar, members), never from
//! all pairs, and must be of the same kind. A pair links when it scores at
//! least `LINK_ODDS_BITS` + log₂(rows of its kind), each side is the
//! other's best remaining candidate, and on both sides it leads the
//! runner-up by at least `MARGIN_BITS`; linked rows leave the pool and
//! the rounds repeat. A pair that agrees on everything but a changed
//! avatar, and has the same fields set on both sides, needs
//! `NEW_FACE_BITS` less when neither row has any other candidate scoring
//! above zero. Two rows that score the
//! same against everything — look-alikes identical in every field — tie on
//! every side and so never link: a wrong link is worse than a missed one.
//! Unlinked old rows list their best remaining candidates with the evidence
//! in words, for a person to decide.
//!
//! # A second round for people
//!
//! Once the groups are linked, [`People::relink`] weighs the people still
//! unlinked again, with the linked groups each is in as one more signal
//! (`people.rs`, "groups in common"). The first round's links stand, and
//! the odds against a pair are counted among the rows of its kind still
//! unlinked on the larger side, not among all of them: the rest are
//! accounted for. Real look-alikes are in the same groups too, so they
//! still tie.

mod assign;
mod evidence;
mod groups;
mod keys;
mod people;
mod values;

pub use keys::{
    Nick, Text, avatar_seq, card_key, contact_member_key, head_img_seq, stranger_member_key,
};
pub use people::People;

use crate::contact::Kind;
use assign::{Pair, Rule, assign, held};
use values::{Holders, Values};

/// A contact who is not a group: friend, official, special or self. Its
/// fields are [`Text`]s: which value, not the text.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub kind: Kind,
    /// `wxid_…` / `gh_…` once learned from a MsgType 51 map.
    pub real_id: Option<Text>,
    pub nick_name: Nick,
    pub remark_name: Text,
    pub alias: Text,
    pub signature: Text,
    pub province: Text,
    pub city: Text,
    /// 0 unknown, 1 male, 2 female.
    pub sex: i64,
    /// `seq=` of HeadImgUrl (see [`avatar_seq`]).
    pub avatar_seq: Option<Text>,
    /// [`card_key`]`(group nick, display name)` for each group they are in
    /// with a non-empty DisplayName, sorted.
    pub cards: Vec<u64>,
}

/// A group.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// `NNN@chatroom` once learned.
    pub real_id: Option<Text>,
    pub nick_name: Text,
    pub member_count: i64,
    pub avatar_seq: Option<Text>,
    /// Member keys, sorted: [`contact_member_key`] for a member who is a
    /// linked contact, [`stranger_member_key`] for anyone else.
    pub members: Vec<u64>,
}

/// A confident match: `old` and `new` index the input slices.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub old: usize,
    pub new: usize,
    /// Bits of evidence (see the module documentation).
    pub score: f64,
    /// In words: "real id", "remark, avatar, nick name; differs: signature".
    pub evidence: String,
}

/// An old row left unlinked that has candidates worth a person's look
/// (scoring at least `MARGIN_BITS`, not linked to another row).
#[derive(Clone, Debug, PartialEq)]
pub struct Unresolved {
    pub old: usize,
    /// The best few, best first.
    pub candidates: Vec<Candidate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub new: usize,
    pub score: f64,
    pub evidence: String,
}

/// Links in old-row order; old rows not linked and not listed in
/// `unresolved` had no candidate worth listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub links: Vec<Link>,
    pub unresolved: Vec<Unresolved>,
}

impl Outcome {
    /// The links' `(old, new)` rows.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        self.links.iter().map(|l| (l.old, l.new)).collect()
    }
}

/// How much likelier a link must be than not, in bits, once the odds
/// against any one pair are counted: among n rows of a kind (in a second
/// round, n still unlinked) a given pair is the right one with odds of
/// about 1 : n, so a link needs a score of at least `LINK_ODDS_BITS + log₂ n` (14 bits among 300 friends, 20 among
/// 20,000, 11 among 40 groups, 9 among 10 officials). A unique avatar (16
/// bits) or remark (14) alone, less the cost of a changed nick name or
/// avatar, is therefore not enough among a few hundred friends: it needs
/// one more signal behind it.
const LINK_ODDS_BITS: f64 = 6.0;

/// How much less a pair needs when it agrees on everything but the avatar,
/// the avatar changed, and neither row has any other candidate scoring above
/// zero: a new avatar is the commonest change between logins, and with no
/// one else in sight its cost is not held against the pair.
const NEW_FACE_BITS: f64 = 3.0;

/// How far a link must lead the runner-up on both sides, in bits (64 times
/// likelier).
const MARGIN_BITS: f64 = 6.0;

/// How many candidates an unresolved row lists.
const LISTED: usize = 3;

/// Links the previous login's people (`old`) to this login's (`new`):
/// [`People::link`] when there is no second round.
pub fn link_people(old: &[Person], new: &[Person]) -> Outcome {
    People::build(old, new).link()
}

/// For [`People::relink`]: the key each side's groups give their members,
/// one per group link and the same on both sides; `None` for a group not
/// linked, or whose member list one side did not read (everyone in it
/// would count as gone). `listed[side][i]` tells whether that side's group
/// `i` had a member list.
pub fn group_keys(linked: &Outcome, listed: [&[bool]; 2]) -> [Vec<Option<u64>>; 2] {
    let mut keys = listed.map(|l| vec![None; l.len()]);
    for l in &linked.links {
        if listed[0][l.old] && listed[1][l.new] {
            keys[0][l.old] = Some(l.old as u64);
            keys[1][l.new] = Some(l.old as u64);
        }
    }
    keys
}

/// For [`People::relink`]: the keys of the groups each of one side's
/// `people` is in, sorted; `memberships` are (person, group) indices,
/// `keys` that side's [`group_keys`].
pub fn groups_of(
    people: usize,
    memberships: impl IntoIterator<Item = (usize, usize)>,
    keys: &[Option<u64>],
) -> Vec<Vec<u64>> {
    let mut groups = vec![Vec::new(); people];
    for (person, group) in memberships {
        if let Some(k) = keys[group] {
            groups[person].push(k);
        }
    }
    for g in &mut groups {
        g.sort_unstable();
    }
    groups
}

/// Links the previous login's groups to this login's. Call it after
/// [`People::link`]: member keys of linked contacts must use the old row's
/// `contact_id` on both sides. It takes each group's member list (leaving
/// it empty) as it is interned: on a big account the lists are most of
/// what the matcher holds.
pub fn link_groups(old: &mut [Group], new: &mut [Group]) -> Outcome {
    solve(&groups::Groups::build(old, new), &[])
}

/// How many kinds [`class_of`] tells apart.
const CLASSES: usize = 5;

/// Values are counted per kind: a kind's small number.
fn class_of(kind: Kind) -> u8 {
    match kind {
        Kind::SelfUser => 0,
        Kind::Friend => 1,
        Kind::Group => 2,
        Kind::Official => 3,
        Kind::Special => 4,
    }
}

/// A field that finds candidates: a row's interned values of it.
type Key<R> = fn(&R) -> &[u32];

/// Old and new rows side by side, interned, as `people.rs` and `groups.rs`
/// build them.
trait Table {
    type Row;
    /// Old rows, new rows.
    fn rows(&self) -> [&[Self::Row]; 2];
    fn real_ids(&self) -> &Values<Text>;
    fn real_id(row: &Self::Row) -> Option<u32>;
    /// The fields that find candidates, with how many values each has.
    fn keys(&self) -> Vec<(Key<Self::Row>, usize)>;
    /// How many old × new rows sharing one value are too many to enumerate.
    const BLOCK_LIMIT: u64;
    /// The row's kind ([`class_of`]): a row links only to one of its kind.
    fn class(row: &Self::Row) -> u8;
    /// The pair's score, and whether it agrees on everything but the
    /// avatar, which changed (see `NEW_FACE_BITS`).
    fn score(&self, old: usize, new: usize) -> (f64, bool);
    fn explain(&self, old: usize, new: usize) -> (f64, String);
}

/// Real ids and `settled` links first, then candidates from shared values,
/// then the assignment.
fn solve<T: Table>(t: &T, settled: &[(usize, usize)]) -> Outcome {
    let rows = t.rows();
    let (n_old, n_new) = (rows[0].len(), rows[1].len());
    let ids = |side: &[T::Row]| side.iter().map(T::real_id).collect::<Vec<_>>();
    let (old_ids, new_ids) = (ids(rows[0]), ids(rows[1]));
    let mut forced = t.real_ids().one_to_one(&old_ids, &new_ids);
    forced.extend_from_slice(settled);
    forced.sort_unstable();
    forced.dedup();
    let held = held(n_old, n_new, &forced);
    let keys = t.keys();
    let holders: Vec<Holders> = keys
        .iter()
        .map(|(key, values)| {
            let side = |i: usize| rows[i].iter().map(key);
            Holders::new(*values, [side(0), side(1)], [&held[0], &held[1]])
        })
        .collect();
    // One old row at a time: its candidates are the new rows sharing a
    // value with it, scored at once. A pair scoring zero or less is left
    // out: it can neither link nor be listed, and it changes no row's lead
    // (a runner-up below zero counts as zero), so only the pairs that may
    // matter are ever held.
    let mut pairs = Vec::new();
    let mut news = Vec::new();
    for o in (0..n_old).filter(|o| !held[0][*o]) {
        news.clear();
        for ((key, _), h) in keys.iter().zip(&holders) {
            for v in key(&rows[0][o]) {
                news.extend_from_slice(h.sharing(*v, T::BLOCK_LIMIT));
            }
        }
        news.sort_unstable();
        news.dedup();
        for &n in &news {
            let (a, b) = (old_ids[o], new_ids[n as usize]);
            if a.is_some() && b.is_some() && a != b {
                continue;
            }
            let (score, new_face) = t.score(o, n as usize);
            if score > 0.0 {
                pairs.push(Pair {
                    old: o as u32,
                    new: n,
                    score,
                    new_face,
                });
            }
        }
    }
    // How many rows an old row could be: those of its kind on the side with
    // more of them; in a second round, those the first left unlinked.
    let mut pool = [[0usize; 2]; CLASSES];
    for side in 0..2 {
        for (i, row) in rows[side].iter().enumerate() {
            if settled.is_empty() || !held[side][i] {
                pool[T::class(row) as usize][side] += 1;
            }
        }
    }
    let needs: Vec<f64> = rows[0]
        .iter()
        .map(|row| {
            let [o, n] = pool[T::class(row) as usize];
            LINK_ODDS_BITS + (o.max(n).max(2) as f64).log2()
        })
        .collect();
    let rule = Rule {
        new_face_needs: needs.iter().map(|n| n - NEW_FACE_BITS).collect(),
        needs,
        margin: MARGIN_BITS,
        listed: MARGIN_BITS,
        listed_max: LISTED,
    };
    let a = assign(n_old, n_new, &forced, pairs, rule);
    let links = a
        .links
        .into_iter()
        .map(|(old, new)| {
            let (score, evidence) = t.explain(old, new);
            Link {
                old,
                new,
                score,
                evidence,
            }
        })
        .collect();
    let unresolved = a
        .unresolved
        .into_iter()
        .map(|(old, listed)| Unresolved {
            old,
            candidates: listed
                .into_iter()
                .map(|(new, _)| {
                    let (score, evidence) = t.explain(old, new);
                    Candidate {
                        new,
                        score,
                        evidence,
                    }
                })
                .collect(),
        })
        .collect();
    Outcome { links, unresolved }
}

#[cfg(all(test, feature = "simulator"))]
mod synthetic;
#[cfg(test)]
mod tests;
