//! The simulated account at each size, and the changes a "1 % changed" sync
//! finds.

use std::collections::HashMap;
use std::time::Duration;

use wxsync::simulator::{Account, SimConfig, SimKind, Simulator};

/// Members of every group at every size.
pub const GROUP_SIZE: usize = 500;

/// 1× is a heavy account: 5,000 friends, 125 officials, 300
/// groups (250 saved to contacts, 50 known only from webwxinit/ChatSet).
pub fn sim_config(scale: usize) -> SimConfig {
    SimConfig {
        seed: 8,
        friends: 5_000 * scale,
        officials: 125 * scale,
        saved_groups: 250 * scale,
        unsaved_groups: 50 * scale,
        min_group_members: GROUP_SIZE,
        max_group_members: GROUP_SIZE,
        page_size: 1_000,
        long_poll: Duration::from_secs(25),
        auto_confirm: true,
        ..SimConfig::default()
    }
}

/// Changes `rate` of every kind of thing the server changes between two
/// syncs (the simulator's churn: renames, avatars, remarks, signatures,
/// friends added and removed, members joining and leaving, cards, groups
/// renamed, created and removed). Returns what changed, in words.
pub fn churn(sim: &Simulator, rate: f64, seed: u64) -> String {
    let report = sim.churn(rate, seed);
    let parts: Vec<String> = report
        .counts()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    format!("{} changes ({})", report.total(), parts.join(", "))
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

/// What a re-link sync must write to `memberships`, from the simulator's
/// own identities (sim ids), which survive a login that renames everyone.
pub struct MemberTruth {
    /// Rows added or removed, or whose nick name, card or status changed.
    pub changed: usize,
    /// Rows in both lists whose group or member name the new login changed.
    pub renamed: usize,
}

/// A membership by (group, member) sim id: its (group, member) user names
/// and what the group shows of the member.
type Shown<'a> = HashMap<(u64, u64), ((&'a str, &'a str), (&'a str, &'a str, i64))>;

fn shown(a: &Account) -> Shown<'_> {
    a.groups
        .iter()
        .flat_map(|g| {
            g.members.iter().map(move |m| {
                (
                    (g.sim_id, m.sim_id),
                    (
                        (g.user_name.as_str(), m.user_name.as_str()),
                        (m.nick_name.as_str(), m.display_name.as_str(), m.attr_status),
                    ),
                )
            })
        })
        .collect()
}

/// Compares the member lists of two logins' accounts by sim id.
pub fn member_truth(before: &Account, after: &Account) -> MemberTruth {
    let (old, new) = (shown(before), shown(after));
    let mut truth = MemberTruth {
        changed: old.keys().filter(|k| !new.contains_key(k)).count(),
        renamed: 0,
    };
    for (key, (names, data)) in &new {
        match old.get(key) {
            None => truth.changed += 1,
            Some((old_names, old_data)) => {
                truth.changed += usize::from(old_data != data);
                truth.renamed += usize::from(old_names != names);
            }
        }
    }
    truth
}
