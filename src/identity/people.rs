//! Scoring people (friends, officials, specials, self) across two logins.

use std::hash::Hash;

use super::evidence::Breakdown;
use super::values::{Side, Step, Values, identifier, merge};
use super::{Key, Outcome, Person, Table, Text, class_of, solve};
use crate::contact::Kind;

/// What each signal is worth, in bits; see [`super`] for the model.
mod bits {
    use super::super::values::{Agree, Weigh};

    /// A known real id on both sides (equal ones link whatever else says).
    pub const REAL_ID: f64 = 64.0;
    /// The user's own label for a person; unique when meant to identify. Set
    /// or cleared between logins costs less than changed.
    pub const REMARK: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 14.0,
            floor: 2.0,
        },
        differs: -4.0,
        one_sided: -2.0,
    };
    /// The WeChat ID: unique per account and changed at most yearly. The
    /// server often leaves it empty even when set, so empty says nothing.
    pub const ALIAS: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 18.0,
            floor: 4.0,
        },
        differs: -8.0,
        one_sided: 0.0,
    };
    /// A number per uploaded avatar; a new avatar is common churn.
    pub const AVATAR: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 16.0,
            floor: 2.0,
        },
        differs: -3.0,
        one_sided: 0.0,
    };
    /// Chosen by its owner, often common ("Alice", "王伟").
    pub const NICK: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 10.0,
            floor: 1.0,
        },
        differs: -3.0,
        one_sided: 0.0,
    };
    /// An official account's name is its registered brand: unique, and
    /// renamed a few times a year at most.
    pub const BRAND: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 18.0,
            floor: 1.0,
        },
        differs: -3.0,
        one_sided: 0.0,
    };
    /// The same nick with emoji or symbols added or dropped: worth a little
    /// less, and no cost for the change.
    pub const NICK_CORE: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 8.0,
            floor: 0.0,
        },
        differs: 0.0,
        one_sided: 0.0,
    };
    pub const BRAND_CORE: Weigh = Weigh {
        agree: Agree::Identifier {
            top: 16.0,
            floor: 0.0,
        },
        differs: 0.0,
        one_sided: 0.0,
    };
    /// People rarely change their sex or place; signatures more often.
    pub const SEX: Weigh = Weigh {
        agree: Agree::Attribute { top: 2.0 },
        differs: -6.0,
        one_sided: 0.0,
    };
    pub const PLACE: Weigh = Weigh {
        agree: Agree::Attribute { top: 6.0 },
        differs: -4.0,
        one_sided: 0.0,
    };
    pub const SIGNATURE: Weigh = Weigh {
        agree: Agree::Attribute { top: 6.0 },
        differs: -2.0,
        one_sided: 0.0,
    };
    /// One shared group card (group name, DisplayName), and the most all of
    /// a pair's shared cards add up to.
    pub const CARD_TOP: f64 = 10.0;
    pub const CARD_FLOOR: f64 = 1.0;
    pub const CARDS_MAX: f64 = 24.0;
    /// Groups in common, once the groups are linked (a second round, see
    /// [`super::super::People::relink`]). A linked group both rows are in
    /// holds an unrelated person of the kind with probability p (its
    /// members of the kind ÷ rows of the kind) and the same person after a
    /// login with probability `GROUP_KEPT`: it adds log₂(`GROUP_KEPT` / p)
    /// bits, at most `GROUP_TOP`. One the old row was in and the new row is
    /// not costs log₂((1 − `GROUP_KEPT`) / (1 − p)), about 2.3 bits; one only
    /// the new row is in, a quarter bit. The sum is at most `GROUPS_MAX`.
    pub const GROUP_KEPT: f64 = 0.8;
    pub const GROUP_TOP: f64 = 8.0;
    pub const GROUP_JOINED: f64 = 0.25;
    pub const GROUPS_MAX: f64 = 16.0;
}

const SIGNALS: usize = 11;
const NAMES: [&str; SIGNALS] = [
    "real id",
    "remark",
    "alias",
    "avatar",
    "nick name",
    "nick name without emoji",
    "sex",
    "place",
    "signature",
    "group cards",
    "groups in common",
];
const REAL_ID: usize = 0;
const REMARK: usize = 1;
const ALIAS: usize = 2;
const AVATAR: usize = 3;
const NICK: usize = 4;
const NICK_CORE: usize = 5;
const SEX: usize = 6;
const PLACE: usize = 7;
const SIGNATURE: usize = 8;
const CARDS: usize = 9;
const GROUPS: usize = 10;

/// Groups in common are not independent evidence: people of one circle
/// share several. They count for a pair only if at least 1 in
/// `THIN_GROUPS` of the linked groups either row is in holds both.
const THIN_GROUPS: usize = 2;

/// Old × new rows sharing one value beyond which the value finds no
/// candidates ("Alice" shared by 200 × 200 rows is worth about 2 bits).
const BLOCK_LIMIT: u64 = 40_000;

/// A person with each field interned. A big account's re-link holds one
/// for each person of both logins while it reads every member list, so
/// the fields take 4 bytes each.
pub(super) struct Row {
    class: u8,
    /// The value of each field from real id to signature (indexed by its
    /// signal), or [`NONE`].
    fields: [u32; FIELDS],
    cards: Box<[u32]>,
    groups: Box<[u32]>,
}

/// The fields a [`Row`] holds one value of.
const FIELDS: usize = SIGNATURE + 1;

/// No value.
const NONE: u32 = u32::MAX;

impl Row {
    /// A row of `p`'s class with no field interned yet.
    fn blank(p: &Person) -> Row {
        Row {
            class: class_of(p.kind),
            fields: [NONE; FIELDS],
            cards: Box::default(),
            groups: Box::default(),
        }
    }

    fn get(&self, field: usize) -> Option<u32> {
        Some(self.fields[field]).filter(|v| *v != NONE)
    }

    fn set(&mut self, field: usize, value: Option<u32>) {
        self.fields[field] = value.unwrap_or(NONE);
    }

    /// A field's value as candidates are found by it: none or one.
    fn values(&self, field: usize) -> &[u32] {
        match &self.fields[field] {
            &NONE => &[],
            v => std::slice::from_ref(v),
        }
    }

    /// Both rows have the same fields set: a field set on one side only
    /// (a signature where there was none) is a change too, which a
    /// `new_face` pair must not have.
    fn set_alike(&self, other: &Row) -> bool {
        let set =
            |r: &Row| [REMARK, ALIAS, NICK, SEX, PLACE, SIGNATURE].map(|f| r.get(f).is_some());
        set(self) == set(other)
    }
}

/// Both logins' people, each field's values counted: built once, linked
/// by their own fields ([`People::link`]), and once the groups are linked,
/// again with the groups they are in ([`People::relink`]).
pub struct People {
    real_id: Values<Text>,
    remark: Values<Text>,
    alias: Values<Text>,
    avatar: Values<Text>,
    nick: Values<Text>,
    nick_core: Values<Text>,
    sex: Values<i64>,
    place: Values<(Text, Text)>,
    signature: Values<Text>,
    cards: Values<u64>,
    groups: Values<u64>,
    /// Rows of each class, by side.
    rows: [[usize; 2]; 5],
    /// Old rows, new rows: indexed by [`Side`].
    sides: [Vec<Row>; 2],
}

impl People {
    /// Interns one field at a time, each field's map of values sealed
    /// before the next is built: all of them at once were the largest
    /// thing a re-link of a big account held (at 4× the bench's account,
    /// nine maps of up to 40,000 values each).
    pub fn build(old: &[Person], new: &[Person]) -> Self {
        let people = [old, new];
        let mut sides = people.map(|side| side.iter().map(Row::blank).collect::<Vec<_>>());
        let mut rows = [[0; 2]; 5];
        for (side, rs) in sides.iter().enumerate() {
            for r in rs {
                rows[r.class as usize][side] += 1;
            }
        }
        let s = &mut sides;
        People {
            real_id: intern(people, s, |v, side, p, r| {
                r.set(REAL_ID, p.real_id.and_then(|t| v.add_text(side, 0, t)));
            }),
            remark: intern(people, s, |v, side, p, r| {
                r.set(REMARK, v.add_text(side, r.class, p.remark_name));
            }),
            alias: intern(people, s, |v, side, p, r| {
                r.set(ALIAS, v.add_text(side, r.class, p.alias));
            }),
            avatar: intern(people, s, |v, side, p, r| {
                r.set(
                    AVATAR,
                    p.avatar_seq.and_then(|t| v.add_text(side, r.class, t)),
                );
            }),
            nick: intern(people, s, |v, side, p, r| {
                r.set(NICK, v.add_text(side, r.class, p.nick_name.text));
            }),
            nick_core: intern(people, s, |v, side, p, r| {
                r.set(NICK_CORE, v.add_text(side, r.class, p.nick_name.core));
            }),
            sex: intern(people, s, |v, side, p, r| {
                r.set(SEX, (p.sex != 0).then(|| v.add(side, r.class, p.sex)));
            }),
            place: intern(people, s, |v, side, p, r| {
                let place = !p.province.is_empty() || !p.city.is_empty();
                r.set(
                    PLACE,
                    place.then(|| v.add(side, r.class, (p.province, p.city))),
                );
            }),
            signature: intern(people, s, |v, side, p, r| {
                r.set(SIGNATURE, v.add_text(side, r.class, p.signature));
            }),
            cards: intern(people, s, |v, side, p, r| {
                r.cards = v.add_set(side, r.class, &p.cards).into();
            }),
            groups: Values::new(),
            rows,
            sides,
        }
    }

    /// Links the previous login's people to this login's by their own
    /// fields: the first round.
    pub fn link(&self) -> Outcome {
        solve(self, &[])
    }

    /// The second round, once the groups are linked: `settled` (the first
    /// round's links, [`Outcome::pairs`]) stands, and the people it left
    /// unlinked are weighed again with the groups they are in as one more
    /// signal: `groups[side][row]` are that row's [`super::groups_of`]. A
    /// friend whose nick name and avatar both changed is often still in
    /// the same groups.
    pub fn relink(mut self, groups: [Vec<Vec<u64>>; 2], settled: &[(usize, usize)]) -> Outcome {
        let [old, new] = &groups;
        self.groups = intern([old, new], &mut self.sides, |v, side, g, r| {
            r.groups = v.add_set(side, r.class, g).into();
        });
        solve(&self, settled)
    }

    /// Rows of a class on the side with more of them.
    fn class_rows(&self, class: u8) -> usize {
        let [o, n] = self.rows[class as usize];
        o.max(n)
    }

    fn compare(&self, o: usize, n: usize) -> Breakdown<SIGNALS> {
        let (a, b) = (&self.sides[0][o], &self.sides[1][n]);
        let rows = self.class_rows(a.class);
        let mut s = Breakdown::new();
        if a.get(REAL_ID).is_some() && a.get(REAL_ID) == b.get(REAL_ID) {
            s.bits[REAL_ID] = bits::REAL_ID;
        }
        s.bits[REMARK] = self
            .remark
            .weigh(&bits::REMARK, a.get(REMARK), b.get(REMARK), rows);
        s.bits[ALIAS] = self
            .alias
            .weigh(&bits::ALIAS, a.get(ALIAS), b.get(ALIAS), rows);
        s.bits[AVATAR] = self
            .avatar
            .weigh(&bits::AVATAR, a.get(AVATAR), b.get(AVATAR), rows);
        let (nick, core) = if a.class == class_of(Kind::Official) {
            (&bits::BRAND, &bits::BRAND_CORE)
        } else {
            (&bits::NICK, &bits::NICK_CORE)
        };
        s.bits[NICK] = self.nick.weigh(nick, a.get(NICK), b.get(NICK), rows);
        if s.bits[NICK] < 0.0 && a.get(NICK_CORE).is_some() && a.get(NICK_CORE) == b.get(NICK_CORE)
        {
            s.bits[NICK] = 0.0;
            s.bits[NICK_CORE] =
                self.nick_core
                    .weigh(core, a.get(NICK_CORE), b.get(NICK_CORE), rows);
        }
        s.bits[SEX] = self.sex.weigh(&bits::SEX, a.get(SEX), b.get(SEX), rows);
        s.bits[PLACE] = self
            .place
            .weigh(&bits::PLACE, a.get(PLACE), b.get(PLACE), rows);
        s.bits[SIGNATURE] =
            self.signature
                .weigh(&bits::SIGNATURE, a.get(SIGNATURE), b.get(SIGNATURE), rows);
        s.bits[CARDS] = a
            .cards
            .iter()
            .filter(|c| b.cards.binary_search(c).is_ok())
            .map(|c| identifier(bits::CARD_TOP, bits::CARD_FLOOR, self.cards.holders(*c)))
            .sum::<f64>()
            .min(bits::CARDS_MAX);
        s.bits[GROUPS] = self.groups_in_common(&a.groups, &b.groups, rows);
        s
    }

    /// What two rows' linked groups say (see `bits::GROUP_KEPT`); `rows`
    /// of the pair's class.
    fn groups_in_common(&self, a: &[u32], b: &[u32], rows: usize) -> f64 {
        let p = |g: u32| (f64::from(self.groups.holders(g)) / rows.max(1) as f64).min(1.0);
        let (mut bits, mut shared, mut union) = (0.0, 0, 0);
        for step in merge(a, b) {
            union += 1;
            match step {
                Step::Old(g) => bits += ((1.0 - bits::GROUP_KEPT) / (1.0 - p(g))).log2().min(0.0),
                Step::New(_) => bits -= bits::GROUP_JOINED,
                Step::Both(g) => {
                    bits += (bits::GROUP_KEPT / p(g)).log2().clamp(0.0, bits::GROUP_TOP);
                    shared += 1;
                }
            }
        }
        if shared * THIN_GROUPS < union {
            bits.min(0.0)
        } else {
            bits.min(bits::GROUPS_MAX)
        }
    }
}

/// Interns one field of both sides' rows from `people` (one item a row: a
/// person, or in the second round the groups it is in): `add` interns the
/// item's value(s) into the field's values and sets their ids in the row.
/// Sealed once both sides are in.
fn intern<K: Hash + Eq, P>(
    people: [&[P]; 2],
    sides: &mut [Vec<Row>; 2],
    add: impl Fn(&mut Values<K>, Side, &P, &mut Row),
) -> Values<K> {
    let mut values = Values::new();
    for (side, (people, rows)) in [Side::Old, Side::New]
        .into_iter()
        .zip(people.iter().zip(sides))
    {
        for (p, row) in people.iter().zip(rows) {
            add(&mut values, side, p, row);
        }
    }
    values.seal();
    values
}

impl Table for People {
    type Row = Row;
    const BLOCK_LIMIT: u64 = BLOCK_LIMIT;

    fn rows(&self) -> [&[Row]; 2] {
        [&self.sides[0], &self.sides[1]]
    }

    fn real_ids(&self) -> &Values<Text> {
        &self.real_id
    }

    fn real_id(row: &Row) -> Option<u32> {
        row.get(REAL_ID)
    }

    /// Values are interned per class, so rows sharing one are of one kind.
    fn keys(&self) -> Vec<(Key<Row>, usize)> {
        vec![
            (|r| r.values(REMARK), self.remark.len()),
            (|r| r.values(ALIAS), self.alias.len()),
            (|r| r.values(AVATAR), self.avatar.len()),
            (|r| r.values(NICK), self.nick.len()),
            (|r| r.values(NICK_CORE), self.nick_core.len()),
            (|r| &r.cards, self.cards.len()),
            (|r| &r.groups, self.groups.len()),
        ]
    }

    fn class(row: &Row) -> u8 {
        row.class
    }

    fn score(&self, old: usize, new: usize) -> (f64, bool) {
        let b = self.compare(old, new);
        let (a, n) = (&self.sides[0][old], &self.sides[1][new]);
        (b.score(), b.only_differs_in(AVATAR) && a.set_alike(n))
    }

    fn explain(&self, old: usize, new: usize) -> (f64, String) {
        let b = self.compare(old, new);
        (b.score(), b.words(&NAMES, |_| None))
    }
}
