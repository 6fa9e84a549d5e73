//! Precision and recall on generated address books: two logins of one
//! account with churn in between, scored against the truth the generator
//! keeps. The accounts, their look-alike pairs and the churn are the
//! simulator's own ([`Generator`]), run without a server: the same
//! generator the integration tests and `cargo bench --bench identity`
//! use, so the matcher is scored on one kind of address book everywhere.

use std::collections::HashMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::simulator::{Account, Generator, SimConfig, SimKind};

/// An account of `friends` friends and `groups` groups (a fifth of them
/// known only from webwxinit) of at most `max_members` members, with
/// `lookalikes` pairs of friends identical in every visible field.
fn account(
    seed: u64,
    friends: usize,
    groups: usize,
    max_members: usize,
    lookalikes: usize,
) -> SimConfig {
    SimConfig {
        seed,
        friends,
        officials: (friends / 30).max(3),
        saved_groups: groups - groups / 5,
        unsaved_groups: groups / 5,
        max_group_members: max_members,
        min_group_members: 3,
        lookalikes,
        ..SimConfig::default()
    }
}

/// A group as a login shows it: name, avatar seq, members as (sim id,
/// nick name, card).
type RoomView = (String, Option<String>, Vec<(u64, String, String)>);

/// What one login shows the matcher, with the sim id behind each row.
struct Login {
    people: Vec<Person>,
    /// The sim id behind each people row.
    ids: Vec<u64>,
    /// The real id (what a MsgType 51 map would reveal) of each people row.
    real: Vec<String>,
    /// The sim id behind each group.
    rooms: Vec<u64>,
    groups: Vec<RoomView>,
}

impl Login {
    /// The rows a sync of `account` hands the matcher.
    fn of(account: &Account) -> Login {
        let mut cards: HashMap<u64, Vec<u64>> = HashMap::new();
        for g in &account.groups {
            for m in g.members.iter().filter(|m| !m.display_name.is_empty()) {
                cards
                    .entry(m.sim_id)
                    .or_default()
                    .push(card_key(&g.nick_name, &m.display_name));
            }
        }
        let contacts: Vec<_> = std::iter::once(&account.self_user)
            .chain(&account.contacts)
            .collect();
        let people = contacts
            .iter()
            .map(|c| {
                let mut cards = cards.remove(&c.sim_id).unwrap_or_default();
                cards.sort_unstable();
                Person {
                    kind: match c.kind {
                        SimKind::Self_ => Kind::SelfUser,
                        SimKind::Official => Kind::Official,
                        SimKind::Special => Kind::Special,
                        SimKind::Friend | SimKind::Group | SimKind::Stranger => Kind::Friend,
                    },
                    real_id: None,
                    nick_name: c.nick_name.as_str().into(),
                    remark_name: c.remark_name.as_str().into(),
                    alias: c.alias.as_str().into(),
                    signature: c.signature.as_str().into(),
                    province: c.province.as_str().into(),
                    city: c.city.as_str().into(),
                    sex: c.sex,
                    avatar_seq: Some(c.avatar_seq.to_string().into()),
                    cards,
                }
            })
            .collect();
        Login {
            people,
            ids: contacts.iter().map(|c| c.sim_id).collect(),
            real: contacts.iter().map(|c| c.real_id.clone()).collect(),
            rooms: account.groups.iter().map(|g| g.sim_id).collect(),
            groups: account
                .groups
                .iter()
                .map(|g| {
                    let members = g
                        .members
                        .iter()
                        .map(|m| (m.sim_id, m.nick_name.clone(), m.display_name.clone()))
                        .collect();
                    (g.nick_name.clone(), Some(g.avatar_seq.to_string()), members)
                })
                .collect(),
        }
    }

    /// Groups with member keys as a re-link builds them: a person linked
    /// across the logins by the contact id `linked` gives them (the old
    /// row's index), everyone else by what the group shows of them.
    fn groups(&self, linked: &[Option<i64>]) -> Vec<Group> {
        let row_of: HashMap<u64, usize> =
            self.ids.iter().enumerate().map(|(r, b)| (*b, r)).collect();
        self.groups
            .iter()
            .map(|(nick, seq, members)| {
                let mut keys: Vec<u64> = members
                    .iter()
                    .map(
                        |(b, nick, card)| match row_of.get(b).and_then(|r| linked[*r]) {
                            Some(id) => contact_member_key(id),
                            None => stranger_member_key(nick, card),
                        },
                    )
                    .collect();
                keys.sort_unstable();
                Group {
                    real_id: None,
                    nick_name: nick.as_str().into(),
                    member_count: keys.len() as i64,
                    avatar_seq: seq.as_deref().map(Text::from),
                    members: keys,
                }
            })
            .collect()
    }
}

/// The groups of both logins, as a re-link hands them to the matcher after
/// `people` linked the people.
fn both_groups(before: &Login, after: &Login, people: &Outcome) -> (Vec<Group>, Vec<Group>) {
    let mut old = vec![None; before.ids.len()];
    let mut new = vec![None; after.ids.len()];
    for l in &people.links {
        old[l.old] = Some(l.old as i64);
        new[l.new] = Some(l.old as i64);
    }
    (before.groups(&old), after.groups(&new))
}

/// [`People::relink`] as a re-link runs it: each person gets the key of
/// every linked group they are in.
fn second_round(
    logins: [&Login; 2],
    listed: [&[bool]; 2],
    table: People,
    people: &Outcome,
    linked: &Outcome,
) -> Outcome {
    let keys = group_keys(linked, listed);
    let groups = [0, 1].map(|side| {
        let login = logins[side];
        let row_of: &HashMap<u64, usize> =
            &login.ids.iter().enumerate().map(|(r, b)| (*b, r)).collect();
        let memberships = (0..).zip(&login.groups).flat_map(|(g, (_, _, members))| {
            members
                .iter()
                .filter_map(move |(b, _, _)| row_of.get(b).map(|r| (*r, g)))
        });
        groups_of(login.people.len(), memberships, &keys[side])
    });
    table.relink(groups, &people.pairs())
}

/// Two logins of the account `cfg` generates, with churn `rate` between
/// them; and the look-alikes' sim ids.
fn relogin(cfg: &SimConfig, rate: f64) -> (Login, Login, Vec<u64>) {
    let mut generator = Generator::new(cfg);
    let before = generator.account();
    // Not the account's own seed: the churn would replay the generator's
    // random stream and could add a copy of a person it removes, identical
    // down to the avatar (at 1,000 friends, seed 2, 5 % churn it did).
    generator.churn(rate, cfg.seed.wrapping_mul(1_000) + (rate * 100.0) as u64);
    generator.next_login();
    let after = generator.account();
    let twins = before
        .lookalikes
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .collect();
    (Login::of(&before), Login::of(&after), twins)
}

/// Correct and wrong links, and how many could have been linked.
#[derive(Default, Clone, Copy)]
struct Score {
    correct: usize,
    wrong: usize,
    present: usize,
}

impl Score {
    fn add(&mut self, o: Score) {
        self.correct += o.correct;
        self.wrong += o.wrong;
        self.present += o.present;
    }

    fn precision(&self) -> f64 {
        self.correct as f64 / (self.correct + self.wrong).max(1) as f64
    }

    fn recall(&self) -> f64 {
        self.correct as f64 / self.present.max(1) as f64
    }
}

/// Links among the old rows `keep` accepts, against the sim ids behind the
/// rows; `present` counts those rows whose sim id is in the new login too.
fn score(out: &Outcome, old: &[u64], new: &[u64], keep: impl Fn(usize) -> bool) -> Score {
    let mut s = Score::default();
    for l in out.links.iter().filter(|l| keep(l.old)) {
        if old[l.old] == new[l.new] {
            s.correct += 1;
        } else {
            s.wrong += 1;
        }
    }
    let mut new_sorted = new.to_vec();
    new_sorted.sort_unstable();
    s.present = (0..old.len())
        .filter(|r| keep(*r) && new_sorted.binary_search(&old[*r]).is_ok())
        .count();
    s
}

/// One re-login: what the matcher did, by kind.
struct Trial {
    friends: Score,
    officials: Score,
    groups: Score,
    /// Links that touch a look-alike row (old side).
    twin_links: usize,
    people_time: f64,
    groups_time: f64,
}

fn trial(cfg: &SimConfig, rate: f64) -> Trial {
    let (before, after, twins) = relogin(cfg, rate);
    let started = Instant::now();
    let table = People::build(&before.people, &after.people);
    let people = table.link();
    let people_time = started.elapsed().as_secs_f64();
    let (mut old_groups, mut new_groups) = both_groups(&before, &after, &people);
    let listed = [&old_groups, &new_groups]
        .map(|gs| gs.iter().map(|g| !g.members.is_empty()).collect::<Vec<_>>());
    let started = Instant::now();
    let groups = link_groups(&mut old_groups, &mut new_groups);
    let groups_time = started.elapsed().as_secs_f64();
    let people = second_round(
        [&before, &after],
        [&listed[0], &listed[1]],
        table,
        &people,
        &groups,
    );
    let kind = |row: usize| before.people[row].kind;
    let twin = |row: usize| twins.contains(&before.ids[row]);
    Trial {
        friends: score(&people, &before.ids, &after.ids, |r| {
            kind(r) == Kind::Friend && !twin(r)
        }),
        officials: score(&people, &before.ids, &after.ids, |r| {
            kind(r) == Kind::Official
        }),
        groups: score(&groups, &before.rooms, &after.rooms, |_| true),
        twin_links: people.links.iter().filter(|l| twin(l.old)).count(),
        people_time,
        groups_time,
    }
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

/// Precision and recall over `seeds` re-logins of accounts shaped like
/// `shape` (seeds 1..=seeds), by churn rate; asserts that no look-alike
/// ever links.
fn measure(shape: &SimConfig, seeds: u64) -> Vec<(f64, Score, Score, Score)> {
    [0.01, 0.05, 0.20]
        .into_iter()
        .map(|rate| {
            let (mut f, mut o, mut g) = (Score::default(), Score::default(), Score::default());
            for seed in 1..=seeds {
                let t = trial(&SimConfig { seed, ..shape.clone() }, rate);
                assert_eq!(t.twin_links, 0, "seed {seed}, churn {rate}: a look-alike linked");
                f.add(t.friends);
                o.add(t.officials);
                g.add(t.groups);
            }
            println!(
                "{} friends, {} groups, churn {:>6}: friends precision {} recall {} ({} wrong, {} present); officials {} / {}; groups precision {} recall {} ({} wrong, {} present)",
                shape.friends,
                shape.saved_groups + shape.unsaved_groups,
                pct(rate),
                pct(f.precision()),
                pct(f.recall()),
                f.wrong,
                f.present,
                pct(o.precision()),
                pct(o.recall()),
                pct(g.precision()),
                pct(g.recall()),
                g.wrong,
                g.present,
            );
            (rate, f, o, g)
        })
        .collect()
}

#[test]
fn generated_relogins_link_precisely_and_never_link_look_alikes() {
    let shapes = [
        (account(0, 300, 40, 500, 3), 8),
        (account(0, 1000, 120, 300, 10), 2),
    ];
    for (shape, seeds) in shapes {
        for (rate, f, _, g) in measure(&shape, seeds) {
            assert_eq!(f.wrong, 0, "friends at {rate}: {} wrong", f.wrong);
            assert_eq!(g.wrong, 0, "groups at {rate}: {} wrong", g.wrong);
        }
    }
}

/// Timings at the sizes the matcher must handle; prints, asserts nothing
/// about time. `cargo test --release --lib identity::synthetic::timings --
/// --ignored --nocapture`
#[test]
#[ignore = "a measurement: run with --release"]
fn timings() {
    for friends in [5_000, 20_000] {
        let t = trial(&account(7, friends, friends / 10, 500, friends / 100), 0.05);
        assert_eq!(t.twin_links, 0);
        println!(
            "{friends} friends at 5 % churn: link_people {:.3} s, link_groups {:.3} s; friends precision {} recall {}; groups precision {} recall {}",
            t.people_time,
            t.groups_time,
            pct(t.friends.precision()),
            pct(t.friends.recall()),
            pct(t.groups.precision()),
            pct(t.groups.recall()),
        );
    }
}

/// `items` reordered by a random permutation, and where each item went.
fn shuffled<T: Clone>(rng: &mut StdRng, items: &[T]) -> (Vec<T>, Vec<usize>) {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.shuffle(rng);
    let mut to = vec![0; items.len()];
    for (pos, i) in order.iter().enumerate() {
        to[*i] = pos;
    }
    (order.iter().map(|i| items[*i].clone()).collect(), to)
}

/// Links as (old, new) pairs of the original slices, sorted.
fn pairs_through(out: &Outcome, old_from: &[usize], new_from: &[usize]) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = out
        .links
        .iter()
        .map(|l| (old_from[l.old], new_from[l.new]))
        .collect();
    pairs.sort_unstable();
    pairs
}

fn inverse(to: &[usize]) -> Vec<usize> {
    let mut from = vec![0; to.len()];
    for (i, pos) in to.iter().enumerate() {
        from[*pos] = i;
    }
    from
}

fn assert_one_to_one(out: &Outcome) {
    let mut olds: Vec<usize> = out.links.iter().map(|l| l.old).collect();
    let mut news: Vec<usize> = out.links.iter().map(|l| l.new).collect();
    olds.sort_unstable();
    news.sort_unstable();
    let n = olds.len();
    olds.dedup();
    news.dedup();
    assert_eq!((olds.len(), news.len()), (n, n), "a row linked twice");
}

/// On random re-logins, some rows carrying real ids from a MsgType 51 map:
/// links are one-to-one, a row never links to a different known real id,
/// every real id known on both sides links its two rows, look-alikes
/// without real ids never link, and the outcome is the same for the same
/// input and does not depend on the order of the rows.
#[test]
fn matching_properties_hold_on_random_relogins() {
    let mut rng = StdRng::seed_from_u64(51);
    for case in 0..24 {
        let groups = rng.random_range(3..15);
        let cfg = SimConfig {
            max_group_members: rng.random_range(3..80),
            ..account(1000 + case, rng.random_range(20..120), groups, 3, 2)
        };
        let (mut before, mut after, twins) = relogin(&cfg, rng.random_range(0.0..0.3));
        let named = rng.random_range(0.0..0.6);
        for login in [&mut before, &mut after] {
            for (p, real) in login.people.iter_mut().zip(&login.real) {
                if rng.random_bool(named) {
                    p.real_id = Some(real.as_str().into());
                }
            }
        }

        let out = link_people(&before.people, &after.people);
        assert_one_to_one(&out);
        assert_eq!(link_people(&before.people, &after.people), out);
        for l in &out.links {
            let (a, b) = (&before.people[l.old].real_id, &after.people[l.new].real_id);
            assert!(
                a.is_none() || b.is_none() || a == b,
                "linked across real ids"
            );
        }
        for (o, p) in before.people.iter().enumerate() {
            let Some(id) = &p.real_id else { continue };
            if let Some(n) = after
                .people
                .iter()
                .position(|q| q.real_id.as_ref() == Some(id))
            {
                assert!(
                    out.links.iter().any(|l| (l.old, l.new) == (o, n)),
                    "{id:?} not linked"
                );
            }
        }
        for pair in twins.chunks(2) {
            let unnamed = |x: &u64| {
                let row = before.ids.iter().position(|i| i == x);
                row.is_some_and(|r| before.people[r].real_id.is_none())
            };
            if pair.iter().all(unnamed) {
                let twin_rows: Vec<usize> = (0..before.ids.len())
                    .filter(|r| pair.contains(&before.ids[*r]))
                    .collect();
                assert!(
                    out.links.iter().all(|l| !twin_rows.contains(&l.old)),
                    "case {case}: a look-alike linked"
                );
            }
        }
        let (old_p, old_to) = shuffled(&mut rng, &before.people);
        let (new_p, new_to) = shuffled(&mut rng, &after.people);
        let reordered = link_people(&old_p, &new_p);
        let identity: Vec<usize> = (0..before.people.len().max(after.people.len())).collect();
        assert_eq!(
            pairs_through(&reordered, &inverse(&old_to), &inverse(&new_to)),
            pairs_through(&out, &identity, &identity),
            "case {case}: the order of the rows changed the links"
        );

        let (old_groups, new_groups) = both_groups(&before, &after, &out);
        let groups = link_groups(&mut old_groups.clone(), &mut new_groups.clone());
        assert_one_to_one(&groups);
        assert_eq!(
            link_groups(&mut old_groups.clone(), &mut new_groups.clone()),
            groups
        );
        let (mut old_g, old_to) = shuffled(&mut rng, &old_groups);
        let (mut new_g, new_to) = shuffled(&mut rng, &new_groups);
        let identity: Vec<usize> = (0..old_groups.len().max(new_groups.len())).collect();
        assert_eq!(
            pairs_through(
                &link_groups(&mut old_g, &mut new_g),
                &inverse(&old_to),
                &inverse(&new_to)
            ),
            pairs_through(&groups, &identity, &identity),
            "case {case}: the order of the groups changed the links"
        );
    }
}
