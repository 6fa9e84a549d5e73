//! Precision and recall on generated address books: two logins of one
//! account with churn in between, scored against the truth the generator
//! keeps. The distributions follow what real address books (and the
//! simulator) look like: nick names from a small pool, so many repeat; 30 %
//! of friends with a remark, 15 % with an alias; an avatar `seq` per person;
//! a few provinces and signatures; groups of 3–500 where about 2/5 of the
//! members are friends and one in five has a card; look-alike pairs
//! identical in every field, half of them in the same groups under the same
//! card.

use std::collections::HashMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::*;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "欧阳",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "小龙", "思远",
];
const LATIN_FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kevin",
    "Lily", "Mia", "Nick", "Olivia", "Peter", "Queenie", "Ryan", "Sophie", "Tom", "Uma", "Victor",
    "Wendy", "Xavier", "Yuki", "Zoe",
];
const LATIN_LAST: &[&str] = &[
    "Smith", "Chan", "Wong", "Lee", "Müller", "García", "O'Brien", "Nguyen", "Kim", "Tanaka",
];
const EMOJI: &[&str] = &["☀", "❤", "😄", "😀", "🎉", "🇨🇳", "😸", "🌟"];
const PLACES: &[(&str, &[&str])] = &[
    ("广东", &["深圳", "广州", "佛山", "东莞"]),
    ("北京", &["海淀", "朝阳", "东城"]),
    ("上海", &["浦东新区", "徐汇", "静安"]),
    ("浙江", &["杭州", "宁波", "温州"]),
    ("四川", &["成都", "绵阳"]),
    ("江苏", &["南京", "苏州", "无锡"]),
    ("湖北", &["武汉", "宜昌"]),
    ("", &[""]),
];
const SIGNATURES: &[&str] = &[
    "",
    "",
    "",
    "生活不止眼前的苟且",
    "Stay hungry, stay foolish",
    "在路上🚗",
    "Tom & Jerry forever",
    "<3 coffee",
    "保持热爱，奔赴山海",
    "busy",
];
const GROUP_NAMES: &[&str] = &[
    "相亲相爱一家人",
    "大学同学",
    "Rust 中文社区 & 朋友",
    "周末羽毛球🏸",
    "项目组",
    "小区业主群",
    "Hiking <Sunday>",
    "公司年会筹备",
    "高中同学🇨🇳",
    "吃货联盟😸",
    "Book club",
    "宝妈交流群",
    "篮球队",
    "技术分享",
    "旅行✈计划",
];
const OFFICIALS: &[&str] = &[
    "腾讯新闻",
    "人民日报",
    "招商银行信用卡",
    "中国移动10086",
    "丁香医生",
    "GitHub",
    "The Economist",
    "得到",
    "顺丰速运",
    "12306",
];

fn person_name(rng: &mut StdRng) -> String {
    let mut name = if rng.random_bool(0.6) {
        let mut s = SURNAMES.choose(rng).expect("names").to_string();
        for _ in 0..rng.random_range(1..=2) {
            s.push_str(GIVEN.choose(rng).expect("names"));
        }
        s
    } else {
        let mut s = LATIN_FIRST.choose(rng).expect("names").to_string();
        if rng.random_bool(0.4) {
            s.push(' ');
            s.push_str(LATIN_LAST.choose(rng).expect("names"));
        }
        s
    };
    if rng.random_bool(0.2) {
        name.push_str(EMOJI.choose(rng).expect("emoji"));
    }
    name
}

fn seq(rng: &mut StdRng) -> Option<String> {
    Some(rng.random_range(600_000_000u64..700_000_000).to_string())
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    Me,
    Friend,
    Official,
    Stranger,
}

#[derive(Clone)]
struct Being {
    role: Role,
    nick: String,
    remark: String,
    alias: String,
    sex: i64,
    province: &'static str,
    city: &'static str,
    signature: &'static str,
    seq: Option<String>,
}

struct Room {
    nick: String,
    seq: Option<String>,
    members: Vec<(usize, String)>,
    gone: bool,
}

struct World {
    rng: StdRng,
    beings: Vec<Being>,
    rooms: Vec<Room>,
    twins: Vec<(usize, usize)>,
    max_members: usize,
}

/// The size of an account.
#[derive(Clone, Copy)]
struct Shape {
    friends: usize,
    groups: usize,
    max_members: usize,
}

/// The simulator's default account.
const SIM_DEFAULT: Shape = Shape {
    friends: 300,
    groups: 40,
    max_members: 500,
};

/// How many of `n` a rate gives, rounded at random.
fn how_many(rng: &mut StdRng, rate: f64, n: usize) -> usize {
    let exact = rate * n as f64;
    let whole = exact.floor();
    (whole as usize + usize::from(rng.random_bool(exact - whole))).min(n)
}

fn pick<T: Copy>(rng: &mut StdRng, rate: f64, pool: &[T]) -> Vec<T> {
    let k = how_many(rng, rate, pool.len());
    pool.choose_multiple(rng, k).copied().collect()
}

impl World {
    fn being(&mut self, role: Role) -> usize {
        let rng = &mut self.rng;
        let (province, cities) = *PLACES.choose(rng).expect("places");
        let mut b = Being {
            role,
            nick: person_name(rng),
            remark: String::new(),
            alias: String::new(),
            sex: rng.random_range(0..3),
            province,
            city: cities.choose(rng).expect("cities"),
            signature: SIGNATURES.choose(rng).expect("signatures"),
            seq: seq(rng),
        };
        if rng.random_bool(0.15) {
            b.alias = format!("wx{:x}", rng.random::<u32>());
        }
        if role == Role::Friend && rng.random_bool(0.3) {
            b.remark = remark(rng);
        }
        self.beings.push(b);
        self.beings.len() - 1
    }

    fn of(&self, role: Role) -> Vec<usize> {
        (0..self.beings.len())
            .filter(|i| self.beings[*i].role == role)
            .collect()
    }

    fn live_rooms(&self) -> Vec<usize> {
        (0..self.rooms.len())
            .filter(|g| !self.rooms[*g].gone)
            .collect()
    }

    /// A group of 3 to `max_members` members, most of them small.
    fn new_room(&mut self, index: usize) {
        let u: f64 = self.rng.random();
        let n = 3 + ((self.max_members - 3) as f64 * u * u) as usize;
        self.room(index, n);
    }

    fn room(&mut self, index: usize, n: usize) {
        let friends = self.of(Role::Friend);
        let strangers = self.of(Role::Stranger);
        let mut members = vec![0];
        let want = ((n - 1) * 2 / 5).min(friends.len());
        members.extend(friends.choose_multiple(&mut self.rng, want));
        while members.len() < n {
            let reuse = self.rng.random_bool(0.3);
            let id = match strangers.choose(&mut self.rng) {
                Some(s) if reuse && !members.contains(s) => *s,
                _ => self.being(Role::Stranger),
            };
            members.push(id);
        }
        let members = members
            .into_iter()
            .map(|m| {
                let card = if self.rng.random_bool(0.2) {
                    card(&mut self.rng)
                } else {
                    String::new()
                };
                (m, card)
            })
            .collect();
        self.rooms.push(Room {
            nick: group_name(index),
            seq: None,
            members,
            gone: false,
        });
    }

    fn generate(seed: u64, shape: Shape) -> World {
        let Shape {
            friends,
            groups,
            max_members,
        } = shape;
        let mut w = World {
            rng: StdRng::seed_from_u64(seed),
            beings: Vec::new(),
            rooms: Vec::new(),
            twins: Vec::new(),
            max_members: 3,
        };
        w.being(Role::Me);
        for i in 0..(friends / 30).max(3) {
            let o = w.being(Role::Official);
            let b = &mut w.beings[o];
            b.nick = format!("{}{}", OFFICIALS[i % OFFICIALS.len()], i / OFFICIALS.len());
            (b.sex, b.province, b.city, b.signature) = (0, "广东", "深圳", "提供资讯与服务");
        }
        for _ in 0..friends {
            w.being(Role::Friend);
        }
        w.max_members = max_members;
        for i in 0..groups {
            w.new_room(i);
        }
        for i in 0..(friends / 100).max(2) {
            let a = w.being(Role::Friend);
            let twin = w.beings[a].clone();
            w.beings.push(twin);
            let b = w.beings.len() - 1;
            w.twins.push((a, b));
            if i % 2 == 0 {
                let c = card(&mut w.rng);
                let rooms = w.live_rooms();
                for g in rooms
                    .choose_multiple(&mut w.rng, 2)
                    .copied()
                    .collect::<Vec<_>>()
                {
                    w.rooms[g].members.push((a, c.clone()));
                    w.rooms[g].members.push((b, c.clone()));
                }
            }
        }
        w
    }

    fn memberships(&self) -> Vec<(usize, usize)> {
        self.live_rooms()
            .into_iter()
            .flat_map(|g| {
                self.rooms[g]
                    .members
                    .iter()
                    .filter(|(m, _)| *m != 0)
                    .map(move |(m, _)| (g, *m))
            })
            .collect()
    }

    /// One round of churn, each kind applied to about `rate` of what it can
    /// apply to (the simulator's list).
    fn churn(&mut self, rate: f64) {
        let rooms = self.live_rooms();
        for g in pick(&mut self.rng, rate, &rooms) {
            self.rooms[g].gone = true;
        }
        let friends = self.of(Role::Friend);
        for f in pick(&mut self.rng, rate, &friends) {
            self.beings[f].role = Role::Stranger;
            self.beings[f].remark.clear();
        }
        let memberships = self.memberships();
        for (g, m) in pick(&mut self.rng, rate, &memberships) {
            self.rooms[g].members.retain(|(x, _)| *x != m);
        }
        let mut in_rooms: Vec<usize> = self.memberships().into_iter().map(|(_, m)| m).collect();
        in_rooms.sort_unstable();
        in_rooms.dedup();
        let strangers: Vec<usize> = self
            .of(Role::Stranger)
            .into_iter()
            .filter(|s| in_rooms.binary_search(s).is_ok())
            .collect();
        let mut people = self.of(Role::Friend);
        people.extend(self.of(Role::Official));
        people.extend(&strangers);
        for id in pick(&mut self.rng, rate, &people) {
            let (b, rng) = (&mut self.beings[id], &mut self.rng);
            let old = b.nick.clone();
            if b.role != Role::Official && rng.random_bool(0.5) {
                b.nick = person_name(rng);
            } else if let Some(e) = EMOJI.iter().find(|e| b.nick.ends_with(**e)) {
                b.nick.truncate(b.nick.len() - e.len());
            } else {
                b.nick.push_str(EMOJI.choose(rng).expect("emoji"));
            }
            if b.nick == old || b.nick.is_empty() {
                b.nick = format!("{old}{}", EMOJI[0]);
            }
        }
        for id in pick(&mut self.rng, rate, &people) {
            self.beings[id].seq = seq(&mut self.rng);
        }
        let rooms = self.live_rooms();
        for g in pick(&mut self.rng, rate, &rooms) {
            self.rooms[g].seq = seq(&mut self.rng);
        }
        let friends = self.of(Role::Friend);
        for id in pick(&mut self.rng, rate, &friends) {
            let (b, rng) = (&mut self.beings[id], &mut self.rng);
            if b.remark.is_empty() || rng.random_bool(0.5) {
                let old = std::mem::take(&mut b.remark);
                while b.remark.is_empty() || b.remark == old {
                    b.remark = remark(rng);
                }
            } else {
                b.remark.clear();
            }
        }
        let talkers: Vec<usize> = people
            .iter()
            .copied()
            .filter(|i| self.beings[*i].role != Role::Official)
            .collect();
        for id in pick(&mut self.rng, rate, &talkers) {
            let (b, rng) = (&mut self.beings[id], &mut self.rng);
            let old = b.signature;
            while b.signature == old {
                b.signature = SIGNATURES.choose(rng).expect("signatures");
            }
        }
        let mut cards = self.memberships();
        cards.extend(rooms.iter().map(|g| (*g, 0)));
        for (g, m) in pick(&mut self.rng, rate, &cards) {
            let rng = &mut self.rng;
            if let Some((_, c)) = self.rooms[g].members.iter_mut().find(|(x, _)| *x == m) {
                let old = std::mem::take(c);
                if old.is_empty() || rng.random_bool(0.5) {
                    while c.is_empty() || *c == old {
                        *c = card(rng);
                    }
                }
            }
        }
        for g in pick(&mut self.rng, rate, &rooms) {
            let (r, rng) = (&mut self.rooms[g], &mut self.rng);
            let old = std::mem::take(&mut r.nick);
            while r.nick.is_empty() || r.nick == old {
                r.nick = group_name(rng.random_range(0..60));
            }
        }
        let joins = self.memberships().len();
        for _ in 0..how_many(&mut self.rng, rate, joins) {
            let Some(&g) = rooms.choose(&mut self.rng) else {
                break;
            };
            let id = match friends.choose(&mut self.rng) {
                Some(f)
                    if self.rng.random_bool(0.3)
                        && !self.rooms[g].members.iter().any(|m| m.0 == *f) =>
                {
                    *f
                }
                _ => self.being(Role::Stranger),
            };
            self.rooms[g].members.push((id, String::new()));
        }
        for _ in 0..how_many(&mut self.rng, rate, friends.len()) {
            match strangers.choose(&mut self.rng) {
                Some(s) if self.rng.random_bool(0.5) && self.beings[*s].role == Role::Stranger => {
                    self.beings[*s].role = Role::Friend;
                }
                _ => {
                    let f = self.being(Role::Friend);
                    self.beings[f].remark.clear();
                }
            }
        }
        for _ in 0..how_many(&mut self.rng, rate, rooms.len()) {
            let index = self.rng.random_range(0..60);
            self.new_room(index);
        }
    }

    /// What a login shows: contact rows and their beings, live rooms.
    fn login(&self) -> Login {
        let ids: Vec<usize> = (0..self.beings.len())
            .filter(|i| self.beings[*i].role != Role::Stranger)
            .collect();
        let rooms = self.live_rooms();
        let mut cards: HashMap<usize, Vec<u64>> = HashMap::new();
        for g in &rooms {
            for (m, c) in &self.rooms[*g].members {
                if !c.is_empty() {
                    cards
                        .entry(*m)
                        .or_default()
                        .push(card_key(&self.rooms[*g].nick, c));
                }
            }
        }
        let people = ids
            .iter()
            .map(|i| {
                let b = &self.beings[*i];
                let mut cards = cards.remove(i).unwrap_or_default();
                cards.sort_unstable();
                Person {
                    kind: match b.role {
                        Role::Me => Kind::SelfUser,
                        Role::Official => Kind::Official,
                        _ => Kind::Friend,
                    },
                    real_id: None,
                    nick_name: b.nick.clone(),
                    remark_name: b.remark.clone(),
                    alias: b.alias.clone(),
                    signature: b.signature.into(),
                    province: b.province.into(),
                    city: b.city.into(),
                    sex: b.sex,
                    avatar_seq: b.seq.clone(),
                    cards,
                }
            })
            .collect();
        let groups = rooms
            .iter()
            .map(|g| {
                let r = &self.rooms[*g];
                let members = r
                    .members
                    .iter()
                    .map(|(m, c)| (*m, self.beings[*m].nick.clone(), c.clone()))
                    .collect();
                (r.nick.clone(), r.seq.clone(), members)
            })
            .collect();
        Login {
            people,
            ids,
            rooms,
            groups,
        }
    }
}

fn remark(rng: &mut StdRng) -> String {
    let mut r = person_name(rng);
    if rng.random_bool(0.3) {
        r.push_str(" (同事)");
    }
    r
}

fn card(rng: &mut StdRng) -> String {
    let mut c = person_name(rng);
    if rng.random_bool(0.3) {
        c.push_str("-项目组");
    }
    c
}

fn group_name(index: usize) -> String {
    if index % 25 == 4 {
        return String::new();
    }
    let base = GROUP_NAMES[index % GROUP_NAMES.len()];
    match index / GROUP_NAMES.len() {
        0 => base.to_string(),
        k => format!("{base}{}", k + 1),
    }
}

/// (name, seq, members as (being, nick at the time, card)).
type RoomView = (String, Option<String>, Vec<(usize, String, String)>);

struct Login {
    people: Vec<Person>,
    /// The being behind each people row.
    ids: Vec<usize>,
    /// The room behind each group.
    rooms: Vec<usize>,
    groups: Vec<RoomView>,
}

impl Login {
    /// Groups with member keys: contacts by `contact_id(row)`, others by
    /// what the group shows.
    fn groups(&self, contact_id: impl Fn(usize) -> i64) -> Vec<Group> {
        let row_of: HashMap<usize, usize> =
            self.ids.iter().enumerate().map(|(r, b)| (*b, r)).collect();
        self.groups
            .iter()
            .map(|(nick, seq, members)| {
                let mut keys: Vec<u64> = members
                    .iter()
                    .map(|(b, nick, card)| match row_of.get(b) {
                        Some(row) => contact_member_key(contact_id(*row)),
                        None => stranger_member_key(nick, card),
                    })
                    .collect();
                keys.sort_unstable();
                Group {
                    real_id: None,
                    nick_name: nick.clone(),
                    member_count: keys.len() as i64,
                    avatar_seq: seq.clone(),
                    members: keys,
                }
            })
            .collect()
    }
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

fn score(out: &Outcome, old: &[usize], new: &[usize], keep: impl Fn(usize) -> bool) -> Score {
    let mut s = Score::default();
    for l in out.links.iter().filter(|l| keep(old[l.old])) {
        if old[l.old] == new[l.new] {
            s.correct += 1;
        } else {
            s.wrong += 1;
        }
    }
    let mut new_sorted = new.to_vec();
    new_sorted.sort_unstable();
    s.present = old
        .iter()
        .filter(|b| keep(**b) && new_sorted.binary_search(b).is_ok())
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

fn trial(seed: u64, shape: Shape, rate: f64) -> Trial {
    let mut w = World::generate(seed, shape);
    let before = w.login();
    w.churn(rate);
    let after = w.login();
    let started = Instant::now();
    let people = link_people(&before.people, &after.people);
    let people_time = started.elapsed().as_secs_f64();
    let link_of: HashMap<usize, usize> = people.links.iter().map(|l| (l.new, l.old)).collect();
    let old_groups = before.groups(|row| row as i64);
    let new_groups = after.groups(|row| match link_of.get(&row) {
        Some(old) => *old as i64,
        None => 1_000_000 + row as i64,
    });
    let started = Instant::now();
    let groups = link_groups(&old_groups, &new_groups);
    let groups_time = started.elapsed().as_secs_f64();
    let role = |b: usize| w.beings[b].role;
    let twins: Vec<usize> = w.twins.iter().flat_map(|(a, b)| [*a, *b]).collect();
    Trial {
        friends: score(&people, &before.ids, &after.ids, |b| {
            matches!(role(b), Role::Friend | Role::Stranger) && !twins.contains(&b)
        }),
        officials: score(&people, &before.ids, &after.ids, |b| {
            role(b) == Role::Official
        }),
        groups: score(&groups, &before.rooms, &after.rooms, |_| true),
        twin_links: people
            .links
            .iter()
            .filter(|l| twins.contains(&before.ids[l.old]))
            .count(),
        people_time,
        groups_time,
    }
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

/// Precision and recall over `seeds` re-logins of accounts of `shape`, by
/// churn rate; asserts that no look-alike ever links.
fn measure(shape: Shape, seeds: u64) -> Vec<(f64, Score, Score, Score)> {
    [0.01, 0.05, 0.20]
        .into_iter()
        .map(|rate| {
            let (mut f, mut o, mut g) = (Score::default(), Score::default(), Score::default());
            for seed in 1..=seeds {
                let t = trial(seed, shape, rate);
                assert_eq!(t.twin_links, 0, "seed {seed}, churn {rate}: a look-alike linked");
                f.add(t.friends);
                o.add(t.officials);
                g.add(t.groups);
            }
            println!(
                "{} friends, {} groups, churn {:>6}: friends precision {} recall {} ({} wrong, {} present); officials {} / {}; groups precision {} recall {} ({} wrong, {} present)",
                shape.friends,
                shape.groups,
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
        (SIM_DEFAULT, 8),
        (
            Shape {
                friends: 1000,
                groups: 120,
                max_members: 300,
            },
            2,
        ),
    ];
    for (shape, seeds) in shapes {
        for (rate, f, _, g) in measure(shape, seeds) {
            assert!(
                f.precision() >= 0.99,
                "friends at {rate}: {}",
                f.precision()
            );
            assert!(g.precision() >= 0.99, "groups at {rate}: {}", g.precision());
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
        let shape = Shape {
            friends,
            groups: friends / 10,
            max_members: 500,
        };
        let t = trial(7, shape, 0.05);
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
        let shape = Shape {
            friends: rng.random_range(20..120),
            groups: rng.random_range(3..15),
            max_members: rng.random_range(3..80),
        };
        let mut w = World::generate(1000 + case, shape);
        let mut before = w.login();
        w.churn(rng.random_range(0.0..0.3));
        let mut after = w.login();
        let named = rng.random_range(0.0..0.6);
        for login in [&mut before, &mut after] {
            for (p, b) in login.people.iter_mut().zip(&login.ids) {
                if rng.random_bool(named) {
                    p.real_id = Some(format!("wxid_{b}"));
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
                    "{id} not linked"
                );
            }
        }
        for (a, b) in &w.twins {
            let unnamed = |x: &usize| {
                let row = before.ids.iter().position(|i| i == x);
                row.is_some_and(|r| before.people[r].real_id.is_none())
            };
            if unnamed(a) && unnamed(b) {
                let twin_rows: Vec<usize> = (0..before.ids.len())
                    .filter(|r| before.ids[*r] == *a || before.ids[*r] == *b)
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

        let link_of: HashMap<usize, usize> = out.links.iter().map(|l| (l.new, l.old)).collect();
        let old_groups = before.groups(|row| row as i64);
        let new_groups = after.groups(|row| {
            link_of
                .get(&row)
                .map_or(1_000_000 + row as i64, |o| *o as i64)
        });
        let groups = link_groups(&old_groups, &new_groups);
        assert_one_to_one(&groups);
        assert_eq!(link_groups(&old_groups, &new_groups), groups);
        let (old_g, old_to) = shuffled(&mut rng, &old_groups);
        let (new_g, new_to) = shuffled(&mut rng, &new_groups);
        let identity: Vec<usize> = (0..old_groups.len().max(new_groups.len())).collect();
        assert_eq!(
            pairs_through(
                &link_groups(&old_g, &new_g),
                &inverse(&old_to),
                &inverse(&new_to)
            ),
            pairs_through(&groups, &identity, &identity),
            "case {case}: the order of the groups changed the links"
        );
    }
}
