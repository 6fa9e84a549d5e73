//! Field values interned to small ids, with how many old and how many new
//! rows hold each: the counts behind every rarity weight.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use super::Text;

/// Which login a row comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Old = 0,
    New = 1,
}

/// One field's values. Values are scoped by a class (the row's kind), so a
/// value held by officials does not count against friends who hold it too.
pub(super) struct Values<K> {
    ids: HashMap<(u8, K), u32>,
    holders: Vec<[u32; 2]>,
}

impl Values<Text> {
    /// Interns a text value; empty text is no value.
    pub fn add_text(&mut self, side: Side, class: u8, text: Text) -> Option<u32> {
        (!text.is_empty()).then(|| self.add(side, class, text))
    }
}

impl<K: Hash + Eq> Values<K> {
    pub fn new() -> Self {
        Values {
            ids: HashMap::new(),
            holders: Vec::new(),
        }
    }

    /// Interns a value and counts one more holder of it on `side`.
    pub fn add(&mut self, side: Side, class: u8, value: K) -> u32 {
        let next = self.holders.len() as u32;
        let id = *self.ids.entry((class, value)).or_insert(next);
        if id == next {
            self.holders.push([0, 0]);
        }
        self.holders[id as usize][side as usize] += 1;
        id
    }

    /// Forgets the values, keeping their ids and holder counts: once both
    /// sides are interned, only those are read, and the map of values is
    /// most of a table's memory (at 4× the bench's account, a group member
    /// map of some 400,000 keys).
    pub fn seal(&mut self) {
        self.ids = HashMap::new();
    }

    /// Interns a set of values one row holds (each counted once), as
    /// sorted ids.
    pub fn add_set(&mut self, side: Side, class: u8, values: &[K]) -> Vec<u32>
    where
        K: Copy + Ord,
    {
        let mut values = values.to_vec();
        values.sort_unstable();
        values.dedup();
        let mut ids: Vec<u32> = values
            .into_iter()
            .map(|v| self.add(side, class, v))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How many rows hold the value: the larger side's count, so a value
    /// that became common in the new login is weighed as common.
    pub fn holders(&self, id: u32) -> u32 {
        let [old, new] = self.holders[id as usize];
        old.max(new)
    }

    /// `(old, new)` row pairs holding a value that exactly one row holds on
    /// each side, in old order; `old[i]`/`new[i]` are row `i`'s value.
    pub fn one_to_one(&self, old: &[Option<u32>], new: &[Option<u32>]) -> Vec<(usize, usize)> {
        let mut holder: Vec<[usize; 2]> = vec![[usize::MAX; 2]; self.holders.len()];
        for (side, ids) in [(Side::Old, old), (Side::New, new)] {
            for (row, id) in ids.iter().enumerate() {
                if let Some(id) = id {
                    holder[*id as usize][side as usize] = row;
                }
            }
        }
        let mut pairs: Vec<(usize, usize)> = holder
            .iter()
            .zip(&self.holders)
            .filter(|(_, counts)| **counts == [1, 1])
            .map(|(rows, _)| (rows[0], rows[1]))
            .collect();
        pairs.sort_unstable();
        pairs
    }

    pub fn len(&self) -> usize {
        self.holders.len()
    }

    /// What a pair's values of this field say, in bits; `rows` is how many
    /// rows of the pair's class there are.
    pub fn weigh(&self, w: &Weigh, a: Option<u32>, b: Option<u32>, rows: usize) -> f64 {
        match (a, b) {
            (Some(x), Some(y)) if x == y => match w.agree {
                Agree::Identifier { top, floor } => identifier(top, floor, self.holders(x)),
                Agree::Attribute { top } => attribute(top, self.holders(x), rows),
            },
            (Some(_), Some(_)) => w.differs,
            (None, None) => 0.0,
            _ => w.one_sided,
        }
    }
}

impl Values<u64> {
    /// Interns every row's set of keys on both sides at once (`sets[side]`,
    /// one sorted list a row), sealed (see [`Values::seal`]), with each
    /// row's ids, sorted. Ids follow key order, and each key is replaced by
    /// its id where it lies as the lists are merged, so neither a map nor a
    /// list of the keys is ever built: the groups of a large account hold
    /// hundreds of thousands of member keys, and either took more memory
    /// than everything else the groups' table holds.
    pub fn sorted_sets(sets: [Vec<Vec<u64>>; 2]) -> (Self, [Vec<Vec<u32>>; 2]) {
        let [mut old, mut new] = sets;
        let olds = old.len();
        let mut holders: Vec<[u32; 2]> = Vec::new();
        {
            let mut lists: Vec<&mut [u64]> = old
                .iter_mut()
                .chain(&mut new)
                .map(|l| l.as_mut_slice())
                .collect();
            let mut next = vec![0usize; lists.len()];
            let mut heap: BinaryHeap<Reverse<(u64, usize)>> = (0..)
                .zip(&lists)
                .filter_map(|(i, l)| l.first().map(|k| Reverse((*k, i))))
                .collect();
            let mut last = None;
            while let Some(Reverse((k, i))) = heap.pop() {
                if last != Some(k) {
                    holders.push([0, 0]);
                    last = Some(k);
                }
                let id = (holders.len() - 1) as u64;
                let (list, at) = (&mut lists[i], next[i]);
                // A key twice in one list is held once: the one before it,
                // already replaced, has this id only if it was this key.
                if at == 0 || list[at - 1] != id {
                    let side = if i < olds { Side::Old } else { Side::New };
                    holders[id as usize][side as usize] += 1;
                }
                list[at] = id;
                next[i] += 1;
                if let Some(k) = list.get(next[i]) {
                    heap.push(Reverse((*k, i)));
                }
            }
        }
        let ids = [old, new].map(|sets| {
            sets.into_iter()
                .map(|set| {
                    let mut ids: Vec<u32> = set.iter().map(|id| *id as u32).collect();
                    ids.dedup();
                    ids
                })
                .collect()
        });
        let values = Values {
            ids: HashMap::new(),
            holders,
        };
        (values, ids)
    }
}

/// How a field's agreement is valued.
pub(super) enum Agree {
    /// See [`identifier`].
    Identifier { top: f64, floor: f64 },
    /// See [`attribute`].
    Attribute { top: f64 },
}

/// How one field weighs: agreeing, differing, and empty on one side only.
pub(super) struct Weigh {
    pub agree: Agree,
    pub differs: f64,
    pub one_sided: f64,
}

/// Who holds each value of one field, for finding candidates: the new rows
/// holding it and how many old rows do, `held` rows left out.
pub(super) struct Holders {
    /// Old rows holding each value.
    olds: Vec<u32>,
    /// `news[start[v]..start[v + 1]]` are the new rows holding value `v`.
    start: Vec<u32>,
    news: Vec<u32>,
}

impl Holders {
    /// `rows[side][i]` lists row `i`'s interned values, of `values` in all.
    pub fn new<'r>(
        values: usize,
        rows: [impl Iterator<Item = &'r [u32]>; 2],
        held: [&[bool]; 2],
    ) -> Self {
        let [old, new] = rows;
        let mut olds = vec![0u32; values];
        for (vs, _) in old.zip(held[0]).filter(|(_, held)| !**held) {
            for v in vs {
                olds[*v as usize] += 1;
            }
        }
        let new: Vec<(u32, &[u32])> = (0u32..)
            .zip(new)
            .filter(|(i, _)| !held[1][*i as usize])
            .collect();
        let mut start = vec![0u32; values + 1];
        for v in new.iter().flat_map(|(_, vs)| vs.iter()) {
            start[*v as usize + 1] += 1;
        }
        for v in 0..values {
            start[v + 1] += start[v];
        }
        let mut next = start.clone();
        let mut news = vec![0u32; start[values] as usize];
        for (i, vs) in new {
            for v in vs {
                news[next[*v as usize] as usize] = i;
                next[*v as usize] += 1;
            }
        }
        Holders { olds, start, news }
    }

    /// The new rows an old row holding value `v` shares it with, or none if
    /// more than `limit` old × new pairs share it: such a value is worth too
    /// few bits to carry a link, and enumerating it would make the matcher
    /// quadratic.
    pub fn sharing(&self, v: u32, limit: u64) -> &[u32] {
        let v = v as usize;
        let news = &self.news[self.start[v] as usize..self.start[v + 1] as usize];
        match u64::from(self.olds[v]) * news.len() as u64 <= limit {
            true => news,
            false => &[],
        }
    }
}

/// Where an id stands when two sorted, deduplicated id lists are walked
/// together ([`merge`]).
pub(super) enum Step {
    /// In the old row's list only.
    Old(u32),
    /// In the new row's list only.
    New(u32),
    Both(u32),
}

/// Walks two sorted, deduplicated id lists together, in id order: a group's
/// members, a person's groups.
pub(super) fn merge<'a>(old: &'a [u32], new: &'a [u32]) -> impl Iterator<Item = Step> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        if i < old.len() && (j == new.len() || old[i] < new[j]) {
            i += 1;
            Some(Step::Old(old[i - 1]))
        } else if j < new.len() && (i == old.len() || new[j] < old[i]) {
            j += 1;
            Some(Step::New(new[j - 1]))
        } else if i < old.len() {
            i += 1;
            j += 1;
            Some(Step::Both(old[i - 1]))
        } else {
            None
        }
    })
}

/// Agreement on an identifier-like value (remark, alias, avatar, nick name,
/// card, group name): worth `top` bits when one row holds it, one bit less
/// each time the number of holders doubles, never less than `floor`.
pub(super) fn identifier(top: f64, floor: f64, holders: u32) -> f64 {
    (top - f64::from(holders.max(1)).log2()).max(floor)
}

/// Agreement on a categorical attribute (sex, place, signature, member
/// count): the bits of its frequency among `rows` rows, at most `top`.
fn attribute(top: f64, holders: u32, rows: usize) -> f64 {
    let rows = rows.max(1) as f64;
    (rows / f64::from(holders.max(1))).log2().clamp(0.0, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_counted_per_side_and_class() {
        let mut v = Values::new();
        let a = v.add(Side::Old, 0, "x");
        assert_eq!(v.add(Side::Old, 0, "x"), a);
        assert_eq!(v.add(Side::New, 0, "x"), a);
        let other_class = v.add(Side::New, 1, "x");
        assert_ne!(other_class, a);
        assert_eq!(v.holders(a), 2);
        assert_eq!(v.holders(other_class), 1);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn one_to_one_pairs_only_unshared_values() {
        let mut v = Values::new();
        let old = [
            Some(v.add(Side::Old, 0, "a")),
            None,
            Some(v.add(Side::Old, 0, "b")),
        ];
        let new = [
            Some(v.add(Side::New, 0, "b")),
            Some(v.add(Side::New, 0, "a")),
            Some(v.add(Side::New, 0, "a")),
        ];
        // "a" is held twice on the new side: no pair for it.
        assert_eq!(v.one_to_one(&old, &new), vec![(2, 0)]);
    }

    #[test]
    fn holders_list_unheld_new_rows_within_the_limit() {
        // Value 0: old rows 0 and 1, new rows 0 and 2; value 1: old row 1,
        // new row 1 (held).
        let old: [&[u32]; 2] = [&[0], &[0, 1]];
        let new: [&[u32]; 3] = [&[0], &[1], &[0]];
        let held = [&[false, false][..], &[false, true, false][..]];
        let h = Holders::new(2, [old.iter().copied(), new.iter().copied()], held);
        assert_eq!(h.sharing(0, 4), &[0, 2]);
        assert_eq!(h.sharing(1, 4), &[] as &[u32]);
        // 2 old × 2 new pairs share value 0: over a limit of 3.
        assert_eq!(h.sharing(0, 3), &[] as &[u32]);
        // A held old row does not count.
        let held = [&[true, false][..], &[false, true, false][..]];
        let h = Holders::new(2, [old.iter().copied(), new.iter().copied()], held);
        assert_eq!(h.sharing(0, 3), &[0, 2]);
    }

    #[test]
    fn sorted_sets_are_interned_as_add_set_would_count_them() {
        let old: [&[u64]; 2] = [&[5, 9, 9], &[1, 9]];
        let new: [&[u64]; 3] = [&[9], &[], &[1, 7]];
        let owned = |sets: &[&[u64]]| sets.iter().map(|s| s.to_vec()).collect();
        let (v, [old_ids, new_ids]) = Values::sorted_sets([owned(&old), owned(&new)]);
        // Keys 1, 5, 7, 9 get ids 0..4 in key order; 9 is held twice per row
        // of old row 0 but counted once.
        assert_eq!(v.len(), 4);
        assert_eq!(old_ids, vec![vec![1, 3], vec![0, 3]]);
        assert_eq!(new_ids, vec![vec![3], vec![], vec![0, 2]]);
        let counts: Vec<[u32; 2]> = (0..4).map(|id| v.holders[id]).collect();
        assert_eq!(counts, vec![[1, 1], [1, 0], [0, 1], [2, 1]]);
        assert_eq!(v.holders(3), 2);
    }

    #[test]
    fn merge_walks_both_lists_in_id_order() {
        let steps: Vec<(char, u32)> = merge(&[1, 3, 5], &[2, 3, 6, 7])
            .map(|s| match s {
                Step::Old(k) => ('o', k),
                Step::New(k) => ('n', k),
                Step::Both(k) => ('b', k),
            })
            .collect();
        let want = [('o', 1), ('n', 2), ('b', 3), ('o', 5), ('n', 6), ('n', 7)];
        assert_eq!(steps, want);
        assert_eq!(merge(&[], &[]).count(), 0);
    }

    #[test]
    fn a_shared_value_weighs_less() {
        assert_eq!(identifier(16.0, 2.0, 1), 16.0);
        assert_eq!(identifier(16.0, 2.0, 4), 14.0);
        assert_eq!(identifier(16.0, 2.0, 1 << 20), 2.0);
        assert_eq!(attribute(6.0, 100, 400), 2.0);
        assert_eq!(attribute(6.0, 1, 400), 6.0);
        assert_eq!(attribute(6.0, 400, 400), 0.0);
    }
}
