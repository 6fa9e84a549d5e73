//! One old row ↔ at most one new row, from scored candidate pairs.
//!
//! Iterated mutual best with a margin: a pair links when each is the
//! other's best remaining candidate, its score reaches the threshold, and it
//! beats the runner-up on *both* sides by the margin. Linked rows leave the
//! pool and the rounds repeat until one links nothing. A tie never passes
//! the margin, so two rows that score the same against everything (look-alikes)
//! never link; they can only stop competing when one of them links, which a
//! tie forbids.
//!
//! One exception to the threshold: a pair that agrees on everything but a
//! changed avatar (`new_face`) links at a lower one when neither row has
//! any other candidate scoring above zero.

/// A scored candidate pair (indices into the old and new slices).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Pair {
    pub old: u32,
    pub new: u32,
    pub score: f64,
    /// The pair agrees on everything but the avatar, which changed.
    pub new_face: bool,
}

/// When a pair is confident enough to link.
#[derive(Clone, Debug)]
pub(super) struct Rule {
    /// The least score a link of each old row needs.
    pub needs: Vec<f64>,
    /// The least score a `new_face` pair needs when neither row has any
    /// other candidate scoring above zero (see [`assign`]).
    pub new_face_needs: Vec<f64>,
    /// How far the best must lead the runner-up, on both sides.
    pub margin: f64,
    /// The least score a candidate needs to be listed for a person to decide.
    pub listed: f64,
    /// How many candidates an unlinked old row lists.
    pub listed_max: usize,
}

/// What the assignment decided.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Assigned {
    /// `(old, new)`, in old order.
    pub links: Vec<(usize, usize)>,
    /// Unlinked old rows with their best unlinked candidates `(new, score)`,
    /// best first; rows without a listable candidate are left out.
    pub unresolved: Vec<(usize, Vec<(usize, f64)>)>,
}

/// Candidate pairs indexed by old row and by new row.
struct Adjacency {
    pairs: Vec<Pair>,
    /// `pairs[by_old[o]..by_old[o + 1]]` are old row `o`'s candidates.
    by_old: Vec<usize>,
    /// Indices into `pairs`, grouped by new row.
    new_pairs: Vec<u32>,
    by_new: Vec<usize>,
}

fn offsets(n: usize, keys: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut start = vec![0usize; n + 1];
    for k in keys {
        start[k + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    start
}

impl Adjacency {
    fn new(n_old: usize, n_new: usize, mut pairs: Vec<Pair>) -> Self {
        pairs.sort_by_key(|p| (p.old, p.new));
        pairs.dedup_by_key(|p| (p.old, p.new));
        let by_old = offsets(n_old, pairs.iter().map(|p| p.old as usize));
        let mut new_pairs: Vec<u32> = (0..pairs.len() as u32).collect();
        new_pairs.sort_by_key(|i| (pairs[*i as usize].new, pairs[*i as usize].old));
        let by_new = offsets(n_new, pairs.iter().map(|p| p.new as usize));
        Adjacency {
            pairs,
            by_old,
            new_pairs,
            by_new,
        }
    }

    fn of_old(&self, o: usize) -> &[Pair] {
        &self.pairs[self.by_old[o]..self.by_old[o + 1]]
    }

    fn of_new(&self, n: usize) -> impl Iterator<Item = &Pair> {
        self.new_pairs[self.by_new[n]..self.by_new[n + 1]]
            .iter()
            .map(|i| &self.pairs[*i as usize])
    }
}

/// The best and second-best score among a row's remaining candidates.
#[derive(Clone, Copy)]
struct Best {
    other: usize,
    best: f64,
    second: f64,
    /// Whether the best pair is a `new_face` one.
    new_face: bool,
}

impl Best {
    const NONE: Best = Best {
        other: usize::MAX,
        best: f64::NEG_INFINITY,
        second: f64::NEG_INFINITY,
        new_face: false,
    };

    fn offer(&mut self, other: usize, p: &Pair) {
        if p.score > self.best {
            self.second = self.best;
            self.best = p.score;
            self.other = other;
            self.new_face = p.new_face;
        } else if p.score > self.second {
            self.second = p.score;
        }
    }

    /// How far the best leads; a runner-up below zero counts as zero (anyone
    /// not among the candidates scores about that).
    fn lead(&self) -> f64 {
        self.best - self.second.max(0.0)
    }

    /// No other candidate scores above zero.
    fn alone(&self) -> bool {
        self.second <= 0.0
    }
}

/// Which rows of each side the `forced` pairs hold.
pub(super) fn held(n_old: usize, n_new: usize, forced: &[(usize, usize)]) -> [Vec<bool>; 2] {
    let mut held = [vec![false; n_old], vec![false; n_new]];
    for (o, n) in forced {
        held[0][*o] = true;
        held[1][*n] = true;
    }
    held
}

/// Links `forced` pairs first (real ids), then assigns the rest of `pairs`.
pub(super) fn assign(
    n_old: usize,
    n_new: usize,
    forced: &[(usize, usize)],
    pairs: Vec<Pair>,
    rule: Rule,
) -> Assigned {
    let adj = Adjacency::new(n_old, n_new, pairs);
    let mut old_link: Vec<Option<usize>> = vec![None; n_old];
    let mut new_link: Vec<Option<usize>> = vec![None; n_new];
    for &(o, n) in forced {
        old_link[o] = Some(n);
        new_link[n] = Some(o);
    }
    loop {
        let new_best: Vec<Best> = (0..n_new)
            .map(|n| {
                let mut b = Best::NONE;
                if new_link[n].is_none() {
                    for p in adj.of_new(n) {
                        if old_link[p.old as usize].is_none() {
                            b.offer(p.old as usize, p);
                        }
                    }
                }
                b
            })
            .collect();
        let mut made = Vec::new();
        for (o, link) in old_link.iter().enumerate() {
            if link.is_some() {
                continue;
            }
            let mut b = Best::NONE;
            for p in adj.of_old(o) {
                if new_link[p.new as usize].is_none() {
                    b.offer(p.new as usize, p);
                }
            }
            if b.other == usize::MAX {
                continue;
            }
            let theirs = new_best[b.other];
            if theirs.other != o {
                continue;
            }
            let confident =
                b.best >= rule.needs[o] && b.lead() >= rule.margin && theirs.lead() >= rule.margin;
            let new_face =
                b.new_face && b.best >= rule.new_face_needs[o] && b.alone() && theirs.alone();
            if confident || new_face {
                made.push((o, b.other));
            }
        }
        if made.is_empty() {
            break;
        }
        for (o, n) in made {
            old_link[o] = Some(n);
            new_link[n] = Some(o);
        }
    }

    let links = old_link
        .iter()
        .enumerate()
        .filter_map(|(o, n)| n.map(|n| (o, n)))
        .collect();
    let unresolved = (0..n_old)
        .filter(|o| old_link[*o].is_none())
        .filter_map(|o| {
            let mut listed: Vec<(usize, f64)> = adj
                .of_old(o)
                .iter()
                .filter(|p| new_link[p.new as usize].is_none() && p.score >= rule.listed)
                .map(|p| (p.new as usize, p.score))
                .collect();
            listed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            listed.truncate(rule.listed_max);
            (!listed.is_empty()).then_some((o, listed))
        })
        .collect();
    Assigned { links, unresolved }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(n_old: usize) -> Rule {
        Rule {
            needs: vec![10.0; n_old],
            new_face_needs: vec![7.0; n_old],
            margin: 4.0,
            listed: 5.0,
            listed_max: 2,
        }
    }

    fn p(old: u32, new: u32, score: f64) -> Pair {
        Pair {
            old,
            new,
            score,
            new_face: false,
        }
    }

    #[test]
    fn mutual_best_with_a_lead_links() {
        let a = assign(
            2,
            2,
            &[],
            vec![p(0, 0, 20.0), p(0, 1, 3.0), p(1, 1, 18.0)],
            rule(2),
        );
        assert_eq!(a.links, vec![(0, 0), (1, 1)]);
        assert!(a.unresolved.is_empty());
    }

    #[test]
    fn a_tie_on_either_side_links_nothing() {
        // Two old rows equally good for one new row.
        let a = assign(2, 1, &[], vec![p(0, 0, 20.0), p(1, 0, 20.0)], rule(2));
        assert!(a.links.is_empty());
        assert_eq!(
            a.unresolved,
            vec![(0, vec![(0, 20.0)]), (1, vec![(0, 20.0)])]
        );
        // One old row equally good for two new rows.
        let a = assign(1, 2, &[], vec![p(0, 0, 20.0), p(0, 1, 20.0)], rule(1));
        assert!(a.links.is_empty());
        assert_eq!(a.unresolved, vec![(0, vec![(0, 20.0), (1, 20.0)])]);
    }

    #[test]
    fn a_lead_smaller_than_the_margin_links_nothing() {
        let a = assign(1, 2, &[], vec![p(0, 0, 20.0), p(0, 1, 17.0)], rule(1));
        assert!(a.links.is_empty());
        let a = assign(2, 1, &[], vec![p(0, 0, 20.0), p(1, 0, 17.0)], rule(2));
        assert!(a.links.is_empty());
    }

    #[test]
    fn below_the_threshold_links_nothing() {
        let a = assign(1, 1, &[], vec![p(0, 0, 9.0)], rule(1));
        assert!(a.links.is_empty());
        assert_eq!(a.unresolved, vec![(0, vec![(0, 9.0)])]);
    }

    #[test]
    fn a_confident_link_frees_its_rival() {
        // Old 1 is torn between new 0 and new 1 until old 0 takes new 0.
        let pairs = vec![p(0, 0, 40.0), p(1, 0, 20.0), p(1, 1, 19.0)];
        let a = assign(2, 2, &[], pairs, rule(2));
        assert_eq!(a.links, vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn forced_links_come_first_and_leave_the_pool() {
        let pairs = vec![p(0, 0, 30.0), p(1, 0, 29.0), p(1, 1, 12.0)];
        let a = assign(2, 2, &[(0, 1)], pairs, rule(2));
        // Old 0 is held by its forced link, so old 1 gets new 0.
        assert_eq!(a.links, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn a_new_face_with_no_rival_links_below_the_threshold() {
        let face = |old, new, score| Pair {
            new_face: true,
            ..p(old, new, score)
        };
        let a = assign(1, 1, &[], vec![face(0, 0, 8.0)], rule(1));
        assert_eq!(a.links, vec![(0, 0)]);
        // A rival above zero on either side stops it.
        let a = assign(1, 2, &[], vec![face(0, 0, 8.0), p(0, 1, 0.5)], rule(1));
        assert!(a.links.is_empty());
        let a = assign(2, 1, &[], vec![face(0, 0, 8.0), p(1, 0, 0.5)], rule(2));
        assert!(a.links.is_empty());
        // Not a new face, or under a new face's threshold.
        assert!(
            assign(1, 1, &[], vec![p(0, 0, 8.0)], rule(1))
                .links
                .is_empty()
        );
        assert!(
            assign(1, 1, &[], vec![face(0, 0, 6.0)], rule(1))
                .links
                .is_empty()
        );
    }

    #[test]
    fn candidates_are_listed_best_first_and_capped() {
        let pairs = vec![p(0, 0, 8.0), p(0, 1, 9.0), p(0, 2, 9.0), p(0, 3, 2.0)];
        let a = assign(1, 4, &[], pairs, rule(1));
        assert_eq!(a.unresolved, vec![(0, vec![(1, 9.0), (2, 9.0)])]);
    }
}
