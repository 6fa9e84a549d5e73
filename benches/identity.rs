//! `cargo bench --bench identity`: how well the contacts of a previous login
//! are linked to a new login's (precision and recall, per kind).
//!
//! Each run starts the simulator in this process, logs in with
//! `webwx::login` over loopback HTTP, runs `sync::full_sync` into a new
//! SQLite cache, churns the account (`Simulator::churn`), logs in again
//! (every UserName re-issued) and runs the full sync that re-links. It
//! scores what the cache then holds against the simulator's truth: the
//! `Account` snapshots taken before and after the new login map each user
//! name to its `sim_id`, and a link is the old name's `contact_id` carried
//! by a new name (each one also a `relinked` row in `contact_changes`).
//!
//! It prints one table over every seed, per churn rate × MsgType 51 map ×
//! kind (with how many of those whose only change was a new avatar were
//! linked); with `WXSYNC_IDBENCH_MISSES=1`, every miss with the matcher's
//! candidates (`identity_candidates`) and what churn changed about it.
//!
//! Environment: `WXSYNC_IDBENCH_SEEDS` (how many seeds, default 6),
//! `WXSYNC_IDBENCH_RATES` (churn in percent, default `1,5,20`),
//! `WXSYNC_IDBENCH_MISSES=1`.

#[path = "perf/machine.rs"]
mod machine;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use wxsync::simulator::{Account, ChurnReport, SimConfig, SimKind, Simulator, StatusNotify};
use wxsync::store::Store;
use wxsync::sync::{self, SyncOptions};
use wxsync::webwx::{self, Client, ClientOptions, InitReply, LoginOptions};

/// The account of every run, but for its seed and map.
fn account(seed: u64, map: StatusNotify) -> SimConfig {
    SimConfig {
        seed,
        friends: 800,
        officials: 40,
        saved_groups: 64,
        unsaved_groups: 16,
        max_group_members: 500,
        min_group_members: 3,
        lookalikes: 4,
        status_notify: map,
        page_size: 200,
        long_poll: Duration::from_millis(500),
        ..SimConfig::default()
    }
}

const MAPS: [StatusNotify; 2] = [StatusNotify::Off, StatusNotify::Recent];

/// Issue 7's targets at 5 % churn, without the map, for friends and groups.
const TARGET_RATE: f64 = 0.05;
const PRECISION_TARGET: f64 = 0.999;
const RECALL_TARGET: f64 = 0.97;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Friends,
    Groups,
    Officials,
}

const KINDS: [Kind; 3] = [Kind::Friends, Kind::Groups, Kind::Officials];

impl Kind {
    fn of(kind: SimKind) -> Option<Kind> {
        match kind {
            SimKind::Friend => Some(Kind::Friends),
            SimKind::Official => Some(Kind::Officials),
            SimKind::Group => Some(Kind::Groups),
            SimKind::Special | SimKind::Self_ | SimKind::Stranger => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Friends => "friends",
            Kind::Groups => "groups",
            Kind::Officials => "officials",
        }
    }
}

struct Settings {
    seeds: Vec<u64>,
    rates: Vec<f64>,
    misses: bool,
}

fn settings() -> anyhow::Result<Settings> {
    let seeds: u64 = match std::env::var("WXSYNC_IDBENCH_SEEDS") {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("WXSYNC_IDBENCH_SEEDS={v:?} is not a count"))?,
        Err(_) => 6,
    };
    let rates = std::env::var("WXSYNC_IDBENCH_RATES").unwrap_or_else(|_| "1,5,20".into());
    let rates = rates
        .split(',')
        .map(|r| match r.trim().trim_end_matches('%').parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
            _ => bail!("WXSYNC_IDBENCH_RATES: {r:?} is not a percentage"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Settings {
        seeds: (1..=seeds).collect(),
        rates,
        misses: std::env::var("WXSYNC_IDBENCH_MISSES").is_ok_and(|v| v == "1"),
    })
}

/// A user name's true identity in one login.
#[derive(Clone, Copy)]
struct Truth {
    sim_id: u64,
    kind: Kind,
}

/// Friends, officials and groups of one login, by user name.
fn truth(account: &Account) -> HashMap<String, Truth> {
    let people = account.contacts.iter().filter_map(|c| {
        Kind::of(c.kind).map(|kind| {
            let t = Truth {
                sim_id: c.sim_id,
                kind,
            };
            (c.user_name.clone(), t)
        })
    });
    let groups = account.groups.iter().map(|g| {
        let t = Truth {
            sim_id: g.sim_id,
            kind: Kind::Groups,
        };
        (g.user_name.clone(), t)
    });
    people.chain(groups).collect()
}

/// What wxsync did, read from the cache.
struct Cache {
    /// Live rows before the new login: user name → contact_id.
    before: HashMap<String, i64>,
    /// Every row after the re-linking sync: user name → contact_id.
    after: HashMap<String, i64>,
    /// `relinked` history rows: old user name → new user name.
    relinked: HashMap<String, String>,
    /// `identity_candidates`: old contact_id → (new user name, score, evidence).
    candidates: HashMap<i64, Vec<(String, f64, String)>>,
    /// Names whose row holds a real id after the sync.
    with_real_id: HashSet<String>,
}

async fn live_ids(store: &Store) -> anyhow::Result<HashMap<String, i64>> {
    Ok(sqlx::query_as::<_, (String, i64)>(
        "SELECT user_name, contact_id FROM contacts WHERE deleted_at IS NULL",
    )
    .fetch_all(store.pool())
    .await?
    .into_iter()
    .collect())
}

async fn read_after(store: &Store, before: HashMap<String, i64>) -> anyhow::Result<Cache> {
    let pool = store.pool();
    let after: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT user_name, contact_id FROM contacts")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let relinked = sqlx::query_as::<_, (String, String)>(
        "SELECT old_value, new_value FROM contact_changes WHERE change = 'relinked'",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut candidates: HashMap<i64, Vec<(String, f64, String)>> = HashMap::new();
    let rows = sqlx::query_as::<_, (i64, String, f64, String)>(
        "SELECT i.old_contact_id, c.user_name, i.score, i.evidence
         FROM identity_candidates i JOIN contacts c ON c.contact_id = i.new_contact_id
         ORDER BY i.old_contact_id, i.score DESC",
    )
    .fetch_all(pool)
    .await?;
    for (old, new, score, evidence) in rows {
        candidates
            .entry(old)
            .or_default()
            .push((new, score, evidence));
    }
    let with_real_id =
        sqlx::query_scalar("SELECT user_name FROM contacts WHERE real_id IS NOT NULL")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    Ok(Cache {
        before,
        after,
        relinked,
        candidates,
        with_real_id,
    })
}

async fn login(sim: &Simulator) -> anyhow::Result<(Client, InitReply)> {
    let opts = LoginOptions {
        login_url: sim.base_url(),
        client: ClientOptions::default(),
        poll_timeout: Duration::from_secs(35),
        push_wait: LoginOptions::DEFAULT_PUSH_WAIT,
    };
    Ok(webwx::login(&opts, |_| {}).await?)
}

/// One full sync as the daemon runs it, but with no pause between batch
/// calls. A result the deletion guard holds back (20 % churn deletes a
/// fifth of the account by design) is applied by a forced sync, as a
/// user's `wxsync sync --force` would: returns how many were held.
async fn full_sync(client: &Client, store: &Store) -> anyhow::Result<u32> {
    let mut opts = SyncOptions {
        batch_pause: Duration::ZERO,
        ..SyncOptions::default()
    };
    let cancel = CancellationToken::new();
    let mut held = 0;
    loop {
        match sync::full_sync(client, store, &opts, &[], &cancel).await {
            Ok(_) => return Ok(held),
            Err(e) if e.is_held() && held == 0 => {
                held += 1;
                opts.force = true;
            }
            Err(e) => return Err(anyhow::Error::from(e).context("full sync")),
        }
    }
}

/// One re-login, scored.
struct Run {
    seed: u64,
    rate: f64,
    map: StatusNotify,
    score: Score,
    /// Syncs the deletion guard held back.
    held: u32,
    /// The account's own row kept its contact_id.
    self_kept: bool,
    took: Duration,
}

impl Run {
    fn label(&self) -> String {
        format!(
            "seed {} at {:.0} %, map {}",
            self.seed,
            self.rate * 100.0,
            map_name(self.map)
        )
    }
}

/// What a re-login got right and wrong.
struct Score {
    tallies: BTreeMap<Kind, Tally>,
    misses: Vec<Miss>,
    /// Links the cache shows by contact_id but not as a `relinked` row, or
    /// the other way round.
    inconsistent: Vec<String>,
    /// Contacts the map named whose row holds no real id after the sync.
    without_real_id: Vec<String>,
}

#[derive(Clone, Copy, Default)]
struct Tally {
    /// Present in both sessions (and cached before the new login).
    both: usize,
    links: usize,
    correct: usize,
    wrong_lookalike: usize,
    /// Of `both`: named by the new login's MsgType 51 map.
    named: usize,
    named_linked: usize,
    /// Of `both`: whose only change was a new avatar.
    new_face: usize,
    new_face_linked: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.both += o.both;
        self.links += o.links;
        self.correct += o.correct;
        self.wrong_lookalike += o.wrong_lookalike;
        self.named += o.named;
        self.named_linked += o.named_linked;
        self.new_face += o.new_face;
        self.new_face_linked += o.new_face_linked;
    }

    fn precision(&self) -> Option<f64> {
        (self.links > 0).then(|| self.correct as f64 / self.links as f64)
    }

    fn recall(&self) -> Option<f64> {
        (self.both > 0).then(|| self.correct as f64 / self.both as f64)
    }
}

/// Someone present in both sessions who did not end up linked to themself.
struct Miss {
    kind: Kind,
    lookalike: bool,
    named: bool,
    /// Nick name (wire text) and sim id.
    who: String,
    /// Where the old row went instead, if it was linked to someone else.
    linked_to: Option<String>,
    /// The true new name's score among the candidates, if listed.
    true_candidate: Option<f64>,
    candidates: Vec<String>,
    churned: Vec<&'static str>,
    /// A group's members in both logins' lists, of all in either (by sim id).
    members_kept: Option<(usize, usize)>,
}

async fn relogin(seed: u64, rate: f64, map: StatusNotify) -> anyhow::Result<Run> {
    let started = Instant::now();
    let sim = Simulator::start(
        account(seed, map),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("cache.db")).await?;

    let (client, _) = login(&sim).await.context("first login")?;
    let mut held = full_sync(&client, &store).await?;
    let before = sim.account();
    let ids_before = live_ids(&store).await?;
    let churn = sim.churn(rate, seed.wrapping_mul(1_000) + (rate * 100.0) as u64);

    let (client, init) = login(&sim).await.context("second login")?;
    let after = sim.account();
    held += full_sync(&client, &store).await?;
    let cache = read_after(&store, ids_before).await?;
    sim.shutdown().await;

    let named: HashSet<String> = match map {
        StatusNotify::Off => HashSet::new(),
        // The simulator's "recent" map: webwxinit's ContactList and ChatSet.
        StatusNotify::Recent => init
            .contacts
            .iter()
            .map(|c| c.user_name.clone())
            .chain(init.chat_set.iter().cloned())
            .collect(),
        StatusNotify::Share(_) => bail!("a share map names people at random: whom is not known"),
    };
    Ok(Run {
        seed,
        rate,
        map,
        score: score(&before, &after, &churn, &cache, &named),
        held,
        self_kept: cache.before.get(&before.self_user.user_name)
            == cache.after.get(&after.self_user.user_name),
        took: started.elapsed(),
    })
}

fn score(
    before: &Account,
    after: &Account,
    churn: &ChurnReport,
    cache: &Cache,
    named: &HashSet<String>,
) -> Score {
    let old = truth(before);
    let new = truth(after);
    let lookalikes: HashSet<u64> = after
        .lookalikes
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .collect();
    let name_of_id: HashMap<i64, &str> = cache
        .before
        .iter()
        .map(|(name, id)| (*id, name.as_str()))
        .collect();
    let mut tallies: BTreeMap<Kind, Tally> = KINDS.iter().map(|k| (*k, Tally::default())).collect();
    let mut inconsistent = Vec::new();
    // Links by contact_id: a new name carrying an id an old name had.
    let mut links: HashMap<&str, &str> = HashMap::new();
    for (name, id) in &cache.after {
        if let Some(old_name) = name_of_id.get(id)
            && old_name != name
        {
            links.insert(old_name, name);
        }
    }
    for (old_name, new_name) in &cache.relinked {
        if links.get(old_name.as_str()) != Some(&new_name.as_str()) {
            inconsistent.push(format!(
                "relinked {old_name} → {new_name} but the contact_id is not there"
            ));
        }
    }
    for (old_name, new_name) in &links {
        if cache.relinked.get(*old_name).map(String::as_str) != Some(new_name) {
            inconsistent.push(format!(
                "{old_name} → {new_name} share a contact_id without a relinked row"
            ));
        }
        let Some(o) = old.get(*old_name) else {
            continue; // the account itself
        };
        let t = tallies.get_mut(&o.kind).expect("every kind");
        t.links += 1;
        let right = new.get(*new_name).is_some_and(|n| n.sim_id == o.sim_id);
        t.correct += usize::from(right);
        let twin = lookalikes.contains(&o.sim_id)
            || new
                .get(*new_name)
                .is_some_and(|n| lookalikes.contains(&n.sim_id));
        t.wrong_lookalike += usize::from(twin && !right);
    }

    let new_by_sim: HashMap<(u64, Kind), &str> = new
        .iter()
        .map(|(name, t)| ((t.sim_id, t.kind), name.as_str()))
        .collect();
    let sim_of_new: HashMap<&str, u64> = new.iter().map(|(n, t)| (n.as_str(), t.sim_id)).collect();
    let changed = churned_by_sim(churn);
    let nick: HashMap<&str, &str> = before
        .contacts
        .iter()
        .map(|c| (c.user_name.as_str(), c.nick_name.as_str()))
        .chain(
            before
                .groups
                .iter()
                .map(|g| (g.user_name.as_str(), g.nick_name.as_str())),
        )
        .collect();
    let mut misses = Vec::new();
    for (old_name, o) in &old {
        let Some(new_name) = new_by_sim.get(&(o.sim_id, o.kind)) else {
            continue; // gone, or no longer of this kind
        };
        let Some(old_id) = cache.before.get(old_name) else {
            inconsistent.push(format!("{old_name} was never cached"));
            continue;
        };
        let t = tallies.get_mut(&o.kind).expect("every kind");
        t.both += 1;
        let is_named = named.contains(*new_name);
        t.named += usize::from(is_named);
        let linked = links.get(old_name.as_str()) == Some(new_name);
        t.named_linked += usize::from(is_named && linked);
        let new_face = changed.get(&o.sim_id).is_some_and(|c| c == &["new avatar"]);
        t.new_face += usize::from(new_face);
        t.new_face_linked += usize::from(new_face && linked);
        if linked {
            continue;
        }
        let listed = cache.candidates.get(old_id).cloned().unwrap_or_default();
        misses.push(Miss {
            kind: o.kind,
            lookalike: lookalikes.contains(&o.sim_id),
            named: is_named,
            who: format!(
                "{:?} (sim id {})",
                nick.get(old_name.as_str()).copied().unwrap_or_default(),
                o.sim_id
            ),
            linked_to: links.get(old_name.as_str()).map(|n| n.to_string()),
            true_candidate: listed
                .iter()
                .find(|(n, _, _)| n == new_name)
                .map(|(_, s, _)| *s),
            candidates: listed
                .iter()
                .map(|(n, s, e)| {
                    let who = match sim_of_new.get(n.as_str()) {
                        Some(sim) if *sim == o.sim_id => "the same one",
                        Some(_) => "someone else",
                        None => "not in the new login",
                    };
                    format!("{s:.1} bits ({who}): {e}")
                })
                .collect(),
            churned: changed.get(&o.sim_id).cloned().unwrap_or_default(),
            members_kept: members_kept(before, after, o.sim_id),
        });
    }
    Score {
        tallies,
        misses,
        inconsistent,
        without_real_id: named
            .iter()
            .filter(|n| cache.after.contains_key(*n) && !cache.with_real_id.contains(*n))
            .cloned()
            .collect(),
    }
}

/// How many of a group's members (by sim id) are in both logins' lists,
/// and in either.
fn members_kept(before: &Account, after: &Account, group: u64) -> Option<(usize, usize)> {
    let members = |a: &Account| -> Option<HashSet<u64>> {
        a.groups
            .iter()
            .find(|g| g.sim_id == group)
            .map(|g| g.members.iter().map(|m| m.sim_id).collect())
    };
    let (old, new) = (members(before)?, members(after)?);
    Some((old.intersection(&new).count(), old.union(&new).count()))
}

/// What churn did to each sim id (for a group: to it or its member list).
fn churned_by_sim(c: &ChurnReport) -> HashMap<u64, Vec<&'static str>> {
    let mut out: HashMap<u64, Vec<&'static str>> = HashMap::new();
    let lists = [
        ("renamed", &c.renamed),
        ("new avatar", &c.new_avatar),
        ("remark set", &c.remark_set),
        ("remark changed", &c.remark_changed),
        ("remark cleared", &c.remark_cleared),
        ("signature changed", &c.signature_changed),
        ("friend added", &c.friends_added),
        ("friend removed", &c.friends_removed),
        ("group renamed", &c.groups_renamed),
    ];
    for (what, ids) in lists {
        for id in ids {
            out.entry(*id).or_default().push(what);
        }
    }
    let pairs = [
        ("a member joined", "joined a group", &c.members_joined),
        ("a member left", "left a group", &c.members_left),
        (
            "a member's card changed",
            "card changed",
            &c.display_name_changed,
        ),
    ];
    for (group_what, member_what, list) in pairs {
        for (g, m) in list {
            let g = out.entry(*g).or_default();
            if !g.contains(&group_what) {
                g.push(group_what);
            }
            let m = out.entry(*m).or_default();
            if !m.contains(&member_what) {
                m.push(member_what);
            }
        }
    }
    out
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{}, {cores} cores, load average {}",
        machine::cpu_model(),
        machine::load_average()
    )
}

fn map_name(map: StatusNotify) -> &'static str {
    match map {
        StatusNotify::Off => "off",
        StatusNotify::Recent => "recent",
        StatusNotify::Share(_) => "share",
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |x| format!("{:.2} %", x * 100.0))
}

fn render(settings: &Settings, runs: &[Run], took: Duration) -> String {
    let mut out = String::new();
    let a = account(0, StatusNotify::Off);
    let _ = writeln!(
        out,
        "\nIdentity across a re-login, {}, {}, {:.0} s",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Account: {} friends + {} look-alike pairs, {} officials, {} groups ({} saved) of {}–{} \
         members; seeds {:?}; the MsgType 51 map off or \"recent\" (webwxinit's contacts and \
         ChatSet)\n",
        a.friends,
        a.lookalikes,
        a.officials,
        a.saved_groups + a.unsaved_groups,
        a.saved_groups,
        a.min_group_members,
        a.max_group_members,
        settings.seeds
    );
    let _ = writeln!(
        out,
        "| churn | 51 map | kind | in both | links | precision | recall | worst seed's recall \
         | wrong links among look-alikes | named by the map: linked | only a new avatar: linked |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for rate in &settings.rates {
        for map in MAPS {
            let cell: Vec<&Run> = runs
                .iter()
                .filter(|r| r.rate == *rate && r.map == map)
                .collect();
            for kind in KINDS {
                let mut sum = Tally::default();
                for r in &cell {
                    sum.add(&r.score.tallies[&kind]);
                }
                let worst = cell
                    .iter()
                    .filter_map(|r| r.score.tallies[&kind].recall())
                    .min_by(f64::total_cmp);
                let named = match map {
                    StatusNotify::Off => "–".to_owned(),
                    _ => format!("{} / {}", sum.named_linked, sum.named),
                };
                let _ = writeln!(
                    out,
                    "| {:.0} % | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                    rate * 100.0,
                    map_name(map),
                    kind.name(),
                    sum.both,
                    sum.links,
                    pct(sum.precision()),
                    pct(sum.recall()),
                    pct(worst),
                    sum.wrong_lookalike,
                    named,
                    sum.new_face_linked,
                    sum.new_face
                );
                if sum.wrong_lookalike > 0 {
                    verdicts.push(format!(
                        "✗ {} wrong links among look-alike {} at {:.0} % churn, map {}",
                        sum.wrong_lookalike,
                        kind.name(),
                        rate * 100.0,
                        map_name(map)
                    ));
                }
                if map != StatusNotify::Off && sum.named_linked < sum.named {
                    verdicts.push(format!(
                        "✗ {} of {} {} named by the map left unlinked at {:.0} % churn",
                        sum.named - sum.named_linked,
                        sum.named,
                        kind.name(),
                        rate * 100.0
                    ));
                }
                if *rate == TARGET_RATE && map == StatusNotify::Off && kind != Kind::Officials {
                    let p = sum.precision().unwrap_or(0.0);
                    let r = sum.recall().unwrap_or(0.0);
                    let ok = |b: bool| if b { "✓" } else { "✗" };
                    verdicts.push(format!(
                        "{} {} at 5 % churn without the map: precision {} (≥ 99.9 %), recall {} \
                         (≥ 97 %)",
                        ok(p >= PRECISION_TARGET && r >= RECALL_TARGET),
                        kind.name(),
                        pct(Some(p)),
                        pct(Some(r))
                    ));
                }
            }
        }
    }
    let _ = writeln!(out);
    for v in verdicts {
        let _ = writeln!(out, "{v}");
    }
    let lookalike_wrong: usize = runs
        .iter()
        .flat_map(|r| r.score.tallies.values())
        .map(|t| t.wrong_lookalike)
        .sum();
    if lookalike_wrong == 0 {
        let _ = writeln!(out, "✓ no wrong link among look-alikes in any run");
    }
    let mut mapped = Tally::default();
    for r in runs.iter().filter(|r| r.map != StatusNotify::Off) {
        r.score.tallies.values().for_each(|t| mapped.add(t));
    }
    if mapped.named > 0 && mapped.named_linked == mapped.named {
        let _ = writeln!(
            out,
            "✓ everyone the map named was linked ({} in all runs)",
            mapped.named
        );
    }
    let _ = writeln!(out);
    let held: u32 = runs.iter().map(|r| r.held).sum();
    let self_kept = runs.iter().filter(|r| r.self_kept).count();
    let _ = writeln!(
        out,
        "Notes: {} runs ({:.1} s each on average); the account's own row kept its contact_id in \
         {self_kept}; {held} syncs were held back by the deletion guard and applied by a \
         forced sync.",
        runs.len(),
        runs.iter().map(|r| r.took.as_secs_f64()).sum::<f64>() / runs.len().max(1) as f64,
    );
    for r in runs.iter().filter(|r| !r.score.without_real_id.is_empty()) {
        let _ = writeln!(
            out,
            "{}: contacts the map named stored without their real id: {}",
            r.label(),
            r.score.without_real_id.join(", ")
        );
    }
    for r in runs {
        for i in &r.score.inconsistent {
            let _ = writeln!(out, "{}: {i}", r.label());
        }
    }
    let _ = writeln!(out, "{}", misses(settings, runs));
    out
}

/// Why people were missed: a count by cause, and each miss with
/// `WXSYNC_IDBENCH_MISSES=1`.
fn misses(settings: &Settings, runs: &[Run]) -> String {
    let mut out = String::new();
    let mut causes: BTreeMap<(String, Kind, &'static str), usize> = BTreeMap::new();
    for r in runs {
        for m in &r.score.misses {
            let cause = match (&m.linked_to, m.true_candidate) {
                (Some(_), _) => "linked to someone else",
                (None, _) if m.lookalike => "look-alike, left for a person",
                (None, Some(_)) => "listed as a candidate, not linked",
                (None, None) if m.candidates.is_empty() => "no candidate",
                (None, None) => "other candidates listed, not this one",
            };
            let key = format!("{:>2.0} % {:<6}", r.rate * 100.0, map_name(r.map));
            *causes.entry((key, m.kind, cause)).or_default() += 1;
        }
    }
    let _ = writeln!(out, "Misses by cause (all seeds):");
    for ((cell, kind, cause), n) in &causes {
        let _ = writeln!(out, "  {cell} {:<9} {cause}: {n}", kind.name());
    }
    if !settings.misses {
        let _ = write!(out, "(WXSYNC_IDBENCH_MISSES=1 lists each miss)");
        return out;
    }
    for r in runs {
        for m in &r.score.misses {
            let _ = writeln!(
                out,
                "\n{}: {} {}{}{}; churn: {}",
                r.label(),
                m.kind.name(),
                m.who,
                if m.lookalike { " (look-alike)" } else { "" },
                if m.named { " (named by the map)" } else { "" },
                if m.churned.is_empty() {
                    "nothing".to_owned()
                } else {
                    m.churned.join(", ")
                }
            );
            if let Some((kept, all)) = m.members_kept {
                let _ = writeln!(out, "    members in both lists: {kept} of {all}");
            }
            if let Some(to) = &m.linked_to {
                let _ = writeln!(out, "    linked to {to} instead");
            }
            for c in &m.candidates {
                let _ = writeln!(out, "    {c}");
            }
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut runs = Vec::new();
    for rate in &settings.rates {
        for map in MAPS {
            for seed in &settings.seeds {
                let run = runtime
                    .block_on(relogin(*seed, *rate, map))
                    .with_context(|| {
                        format!(
                            "seed {seed}, {:.0} % churn, map {}",
                            rate * 100.0,
                            map_name(map)
                        )
                    })?;
                eprintln!(
                    "{}: {} misses, {:.1} s",
                    run.label(),
                    run.score.misses.len(),
                    run.took.as_secs_f64()
                );
                runs.push(run);
            }
        }
    }
    println!("{}", render(&settings, &runs, started.elapsed()));
    Ok(())
}
