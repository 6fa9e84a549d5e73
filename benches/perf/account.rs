//! The simulated account at each size, and the changes a "1 % changed" sync
//! finds.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use wxsync::simulator::{Account, SimConfig, SimKind, Simulator};

/// Members of every group at every size.
pub const GROUP_SIZE: usize = 500;

/// 1× is the heavy account of issue 8: 5,000 friends, 125 officials, 300
/// groups (250 saved to contacts, 50 known only from webwxinit/ChatSet).
pub fn sim_config(scale: usize) -> SimConfig {
    SimConfig {
        seed: 8,
        friends: 5_000 * scale,
        officials: 125 * scale,
        saved_groups: 250 * scale,
        unsaved_groups: 50 * scale,
        max_group_members: GROUP_SIZE,
        page_size: 1_000,
        long_poll: Duration::from_secs(25),
        auto_confirm: true,
    }
}

/// Brings every group up to [`GROUP_SIZE`] members with the simulator's own
/// `member_joins`: the simulator draws group sizes between 3 and the maximum
/// and has no minimum yet. The newcomers reuse the nick names it generated,
/// so the replies keep their mix of scripts, emoji spans and entities.
/// Returns how many members were added.
pub fn fill_groups(sim: &Simulator) -> usize {
    let account = sim.account();
    let nicks: Vec<&str> = account
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.nick_name.as_str()))
        .collect();
    let mut added = 0;
    for g in &account.groups {
        for _ in g.members.len()..GROUP_SIZE {
            sim.member_joins(&g.user_name, nicks[added % nicks.len()]);
            added += 1;
        }
    }
    added
}

/// What [`churn`] did, in words.
pub struct Churned {
    pub summary: String,
}

/// Changes `rate` of the account with the simulator's mutators, as the
/// server would between two syncs: friends renamed or given a remark
/// elsewhere, officials and groups renamed, members leaving and joining,
/// and strangers in groups renaming themselves (which changes their row in
/// every group they share).
pub fn churn(sim: &Simulator, rate: f64, seed: u64) -> Churned {
    let account = sim.account();
    let mut rng = StdRng::seed_from_u64(seed);
    let share = |n: usize| ((n as f64 * rate).round() as usize).max(1);

    let of_kind = |kind: SimKind| -> Vec<&str> {
        account
            .contacts
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.user_name.as_str())
            .collect()
    };
    let friends = of_kind(SimKind::Friend);
    let officials = of_kind(SimKind::Official);
    let picked_friends = pick(&mut rng, &friends, share(friends.len()));
    for (i, f) in picked_friends.iter().enumerate() {
        if i % 2 == 0 {
            sim.rename(f, &format!("改名{i}"));
        } else {
            sim.set_remark(f, &format!("备注{i}"));
        }
    }
    let picked_officials = pick(&mut rng, &officials, share(officials.len()));
    for (i, o) in picked_officials.iter().enumerate() {
        sim.rename(o, &format!("公众号改名{i}"));
    }
    let groups: Vec<&str> = account
        .groups
        .iter()
        .map(|g| g.user_name.as_str())
        .collect();
    let picked_groups = pick(&mut rng, &groups, share(groups.len()));
    for (i, g) in picked_groups.iter().enumerate() {
        sim.rename(g, &format!("群改名{i}"));
    }

    let memberships: usize = account.groups.iter().map(|g| g.members.len()).sum();
    let member_changes = share(memberships);
    let (leaves, joins) = (member_changes / 3, member_changes / 3);
    let renames = member_changes - leaves - joins;
    let contacts: HashSet<&str> = account
        .contacts
        .iter()
        .map(|c| c.user_name.as_str())
        .chain([account.self_user.user_name.as_str()])
        .collect();
    let mut seats: Vec<(&str, &str)> = account
        .groups
        .iter()
        .flat_map(|g| {
            g.members
                .iter()
                .map(move |m| (g.user_name.as_str(), m.user_name.as_str()))
        })
        .filter(|(_, m)| *m != account.self_user.user_name)
        .collect();
    seats.shuffle(&mut rng);
    let (leaving, staying) = seats.split_at(leaves.min(seats.len()));
    let leavers: HashSet<&str> = leaving.iter().map(|(_, m)| *m).collect();
    let mut strangers: Vec<&str> = staying
        .iter()
        .map(|(_, m)| *m)
        .filter(|m| !contacts.contains(m) && !leavers.contains(m))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    strangers.sort_unstable();
    for (group, member) in leaving {
        sim.member_leaves(group, member);
    }
    for i in 0..joins {
        let g = groups[rng.random_range(0..groups.len())];
        sim.member_joins(g, &format!("新成员{i}"));
    }
    let renamed = pick(&mut rng, &strangers, renames);
    for (i, s) in renamed.iter().enumerate() {
        sim.rename(s, &format!("群友改名{i}"));
    }
    Churned {
        summary: format!(
            "friends renamed or given a remark: {}; officials renamed: {}; groups renamed: {}; \
             members left: {leaves}, joined: {joins}; strangers renamed: {}",
            picked_friends.len(),
            picked_officials.len(),
            picked_groups.len(),
            renamed.len()
        ),
    }
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str], n: usize) -> Vec<&'a str> {
    from.choose_multiple(rng, n.min(from.len()))
        .copied()
        .collect()
}

/// Friends, officials, groups and memberships the simulator holds.
pub fn describe(account: &Account) -> String {
    let count = |k: SimKind| account.contacts.iter().filter(|c| c.kind == k).count();
    let memberships: usize = account.groups.iter().map(|g| g.members.len()).sum();
    format!(
        "{} friends, {} officials, {} groups, {} memberships",
        count(SimKind::Friend),
        count(SimKind::Official),
        account.groups.len(),
        memberships
    )
}
