//! Contacts survive a new login: the first full sync links the previous
//! login's rows to the new user names (keeping contact_id, history and
//! memberships), queued remark edits follow their contact, look-alikes stay
//! unlinked for a person to decide, and `wxsync identity` decides.

use std::collections::HashMap;

use tokio::io::{AsyncBufReadExt, BufReader};
use wxsync::simulator::{Account, SimConfig, SimContact, SimGroup, SimKind, StatusNotify};

use crate::helpers::{TestApp, small_account};

/// `sim_id` (the simulator's true identity) of every contact and group by
/// its user name in the login `account` was taken in.
fn truth(account: &Account) -> HashMap<String, u64> {
    let people = account
        .contacts
        .iter()
        .filter(|c| c.kind != SimKind::Stranger)
        .map(|c| (c.user_name.clone(), c.sim_id));
    let groups = account
        .groups
        .iter()
        .map(|g| (g.user_name.clone(), g.sim_id));
    std::iter::once((
        account.self_user.user_name.clone(),
        account.self_user.sim_id,
    ))
    .chain(people)
    .chain(groups)
    .collect()
}

/// `contact_id` by user name, for every row (live or not).
async fn ids(app: &TestApp) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT user_name, contact_id FROM contacts")
        .fetch_all(&app.db().await)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// `first_seen_at` by contact_id.
async fn first_seen(app: &TestApp) -> HashMap<i64, String> {
    sqlx::query_as::<_, (i64, String)>("SELECT contact_id, first_seen_at FROM contacts")
        .fetch_all(&app.db().await)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Logs in again (every user name changes) and runs the sync that links.
async fn relogin_and_sync(app: &TestApp) {
    app.login().await;
    app.sync().await;
}

/// An account whose friends are each in a few mid-sized groups.
fn grouped_account() -> SimConfig {
    SimConfig {
        friends: 200,
        saved_groups: 12,
        min_group_members: 30,
        max_group_members: 120,
        status_notify: StatusNotify::Off,
        ..small_account()
    }
}

/// The saved groups the contact `sim_id` is a member of.
fn saved_groups_of(account: &Account, sim_id: u64) -> impl Iterator<Item = &SimGroup> {
    account
        .groups
        .iter()
        .filter(move |g| g.saved && g.members.iter().any(|m| m.sim_id == sim_id))
}

/// The first friend of `account` with no remark or alias for whom `pick`
/// holds: one left with little to be linked by; `what` says who is sought.
fn bare_friend<'a>(
    account: &'a Account,
    what: &str,
    pick: impl Fn(&SimContact) -> bool,
) -> &'a SimContact {
    let bare = |c: &SimContact| c.remark_name.is_empty() && c.alias.is_empty();
    let mut friends = account.contacts.iter();
    friends
        .find(|c| c.kind == SimKind::Friend && bare(c) && pick(c))
        .expect(what)
}

/// The user name the contact `sim_id` has in the simulator's login now.
fn user_name_now(app: &TestApp, sim_id: u64) -> String {
    let account = app.sim.account();
    let contact = account.contacts.iter().find(|c| c.sim_id == sim_id);
    contact.unwrap().user_name.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relogin_keeps_rows_ids_memberships_and_history() {
    let app = TestApp::spawn(SimConfig {
        friends: 120,
        saved_groups: 20,
        max_group_members: 120,
        min_group_members: 30,
        status_notify: StatusNotify::Off,
        ..small_account()
    })
    .await;
    app.login().await;
    app.sync().await;
    let before = truth(&app.sim.account());
    let id_of_sim: HashMap<u64, i64> = ids(&app)
        .await
        .into_iter()
        .filter_map(|(name, id)| before.get(&name).map(|sim| (*sim, id)))
        .collect();
    let history = app.scalar("SELECT count(*) FROM contact_changes").await;
    let seen_before = first_seen(&app).await;
    app.sim.churn(0.03, 3);

    relogin_and_sync(&app).await;

    let after = truth(&app.sim.account());
    let now = ids(&app).await;
    let (mut kept, mut renamed, mut both, mut wrong) = (0, 0, 0, Vec::new());
    for (name, sim) in &after {
        let Some(old_id) = id_of_sim.get(sim) else {
            continue; // new since the first login
        };
        both += 1;
        match now.get(name) {
            Some(id) if id == old_id => {
                kept += 1;
                // Special accounts keep their names across logins.
                renamed += usize::from(!before.contains_key(name));
            }
            Some(id) if id_of_sim.values().any(|o| o == id) => wrong.push(name.clone()),
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "rows linked to the wrong person: {wrong:?}"
    );
    assert!(
        kept * 100 >= both * 95,
        "only {kept} of {both} contacts kept their contact_id"
    );
    let relinked = app
        .scalar("SELECT count(*) FROM contact_changes WHERE change = 'relinked'")
        .await;
    assert_eq!(relinked as usize, renamed);
    assert!(
        app.scalar("SELECT count(*) FROM contact_changes").await > history,
        "history is kept and extended"
    );
    let first_seen_now = first_seen(&app).await;
    for id in id_of_sim.values() {
        if now.values().any(|n| n == id) {
            assert_eq!(
                first_seen_now[id], seen_before[id],
                "contact {id} keeps its first sight"
            );
        }
    }
    let stale = app
        .scalar(
            "SELECT count(*) FROM memberships m JOIN contacts g ON g.user_name = m.group_user_name \
             WHERE g.deleted_at IS NOT NULL",
        )
        .await;
    assert_eq!(stale, 0);
    let members = app.scalar("SELECT count(*) FROM memberships").await;
    let expected: usize = app
        .sim
        .account()
        .groups
        .iter()
        .map(|g| g.members.len())
        .sum();
    assert_eq!(
        members as usize, expected,
        "memberships are the new login's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remark_queued_before_a_relogin_reaches_the_same_person_after_it() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    let friend = app
        .sim
        .account()
        .contacts
        .into_iter()
        .find(|c| c.kind == SimKind::Friend && c.remark_name.is_empty())
        .unwrap();
    let pool = app.db().await;
    let op: i64 = sqlx::query_scalar(
        "INSERT INTO pending_ops (user_name, remark_name) VALUES (?, 'Queued before') RETURNING id",
    )
    .bind(&friend.user_name)
    .fetch_one(&pool)
    .await
    .unwrap();
    app.login().await;

    let daemon = app.start_daemon(&[]);
    app.op_settled(op).await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");

    let (status, user_name): (String, String) =
        sqlx::query_as("SELECT status, user_name FROM pending_ops WHERE id = ?")
            .bind(op)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "done", "{logs}");
    let now = app
        .sim
        .account()
        .contacts
        .into_iter()
        .find(|c| c.sim_id == friend.sim_id)
        .unwrap();
    assert_ne!(
        now.user_name, friend.user_name,
        "the login renamed everyone"
    );
    assert_eq!(
        user_name, now.user_name,
        "the queued row follows its contact"
    );
    assert_eq!(now.remark_name, "Queued before", "the same person got it");
}

/// Two look-alike pairs, no MsgType 51 map: a re-link must leave them alone.
fn with_look_alikes(status_notify: StatusNotify) -> SimConfig {
    SimConfig {
        lookalikes: 2,
        status_notify,
        ..small_account()
    }
}

/// The rows of look-alikes (by sim_id) in `account`: user name → sim_id.
fn look_alike_names(account: &Account) -> HashMap<String, u64> {
    let twins: Vec<u64> = account
        .lookalikes
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .collect();
    account
        .contacts
        .iter()
        .filter(|c| twins.contains(&c.sim_id))
        .map(|c| (c.user_name.clone(), c.sim_id))
        .collect()
}

/// An account with look-alikes, synced, logged in again and synced: what
/// the tests about them compare.
struct Relinked {
    app: TestApp,
    /// The look-alikes' names (user name → sim id) before and after.
    old: HashMap<String, u64>,
    new: HashMap<String, u64>,
    /// Every row's contact_id by user name, before and after.
    old_ids: HashMap<String, i64>,
    now: HashMap<String, i64>,
    /// The account as the second login sees it.
    account: Account,
}

async fn relinked_look_alikes(map: StatusNotify) -> Relinked {
    let app = TestApp::spawn(with_look_alikes(map)).await;
    app.login().await;
    app.sync().await;
    let old = look_alike_names(&app.sim.account());
    let old_ids = ids(&app).await;

    relogin_and_sync(&app).await;

    let account = app.sim.account();
    let new = look_alike_names(&account);
    let now = ids(&app).await;
    Relinked {
        app,
        old,
        new,
        old_ids,
        now,
        account,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn look_alikes_stay_unlinked_are_listed_and_a_person_can_link_them() {
    let Relinked {
        app,
        old,
        new,
        old_ids,
        now,
        ..
    } = relinked_look_alikes(StatusNotify::Off).await;
    for name in new.keys() {
        assert!(
            !old_ids.values().any(|id| Some(id) == now.get(name)),
            "look-alike {name} was linked to a previous row"
        );
    }
    let listed = app.wxsync(&["identity", "--json"]).await;
    assert!(listed.ok(), "{listed:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    for (name, sim) in &old {
        let twin_names: Vec<&String> = new
            .iter()
            .filter(|(_, s)| *s == sim)
            .map(|(n, _)| n)
            .collect();
        let candidates: Vec<&str> = rows
            .iter()
            .filter(|r| r["old_user_name"] == name.as_str())
            .map(|r| r["new_user_name"].as_str().unwrap())
            .collect();
        assert!(
            candidates.len() >= 2 && twin_names.iter().all(|t| candidates.contains(&t.as_str())),
            "{name} lists its look-alike candidates: {candidates:?}"
        );
    }
    // Each look-alike set is shown once, said to be tied, with what each row
    // has and how to decide; no session user name.
    let text = app.wxsync(&["identity"]).await;
    assert!(text.ok(), "{text:?}");
    let out = &text.stdout;
    assert!(!out.contains('@'), "session names listed: {out}");
    assert_eq!(
        out.matches("look alike and cannot be told apart").count(),
        2,
        "{out}"
    );
    for name in new.keys() {
        let line = format!("now     #{} ", now[name]);
        assert_eq!(out.matches(&line).count(), 1, "{name} listed once: {out}");
    }
    for what in ["first seen", "To decide", "wxsync identity link"] {
        assert!(out.contains(what), "{what}: {out}");
    }

    // A person knows which is which.
    let (old_name, sim) = old.iter().next().unwrap();
    let new_name = new.iter().find(|(_, s)| *s == sim).unwrap().0;
    // An edit queued by the new row's id before the decision still reaches
    // the person after it, under the id the link keeps.
    let queued = app.queue_edit_by_id(now[new_name], "twin").await;
    let linked = app.wxsync(&["identity", "link", old_name, new_name]).await;
    assert!(linked.ok(), "{linked:?}");
    let now = ids(&app).await;
    assert_eq!(
        now.get(new_name),
        old_ids.get(old_name),
        "the old contact_id now names the person"
    );
    let pool = app.db().await;
    let queued_for: i64 = sqlx::query_scalar("SELECT contact_id FROM pending_ops WHERE id = ?")
        .bind(queued)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        Some(&queued_for),
        old_ids.get(old_name),
        "a pending edit follows the link"
    );
    assert!(!now.contains_key(old_name));
    let manual = app
        .scalar(
            "SELECT count(*) FROM contact_changes WHERE change = 'relinked' AND source = 'manual'",
        )
        .await;
    assert_eq!(manual, 1);
    let listed = app.wxsync(&["identity", "--json"]).await;
    assert!(
        !listed.stdout.contains(old_name.as_str()),
        "decided rows leave the list"
    );
    let status = app.wxsync(&["status"]).await;
    assert!(
        status.stdout.contains(&format!(
            "{} rows of the previous login undecided",
            old.len() - 1
        )),
        "{status:?}"
    );

    // And changes their mind.
    let unlinked = app.wxsync(&["identity", "unlink", new_name]).await;
    assert!(unlinked.ok(), "{unlinked:?}");
    let now = ids(&app).await;
    assert_eq!(
        now.get(old_name),
        old_ids.get(old_name),
        "the old id is back on its old name"
    );
    assert_ne!(now.get(new_name), old_ids.get(old_name));
    let deleted = app
        .text(
            "SELECT deleted_at FROM contacts WHERE user_name = ?",
            old_name,
        )
        .await;
    assert!(deleted.is_some(), "the old row is marked deleted again");

    // Listed again, with its candidates scored again: the contact just
    // unlinked and its look-alike.
    let listed = app.wxsync(&["identity", "--json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let candidates: Vec<&str> = rows
        .iter()
        .filter(|r| r["old_user_name"] == old_name.as_str())
        .map(|r| r["new_user_name"].as_str().unwrap())
        .collect();
    let twins: Vec<&str> = new
        .iter()
        .filter(|(_, s)| *s == sim)
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        twins.iter().all(|t| candidates.contains(t)),
        "{old_name} is listed again with {twins:?}: {candidates:?}"
    );

    // A second unlink, by either side, is refused in words.
    let before = app.dump().await;
    let old_id = old_ids[old_name].to_string();
    let new_id = now[new_name].to_string();
    for (again, reason) in [
        (
            &old_id,
            format!("#{old_id} is not linked: it is marked deleted"),
        ),
        (
            new_name,
            format!("#{new_id} is not linked: it was never linked"),
        ),
    ] {
        let run = app.wxsync(&["identity", "unlink", again]).await;
        assert!(!run.ok(), "{run:?}");
        assert!(run.stderr.contains(&reason), "{reason}: {run:?}");
    }
    assert_eq!(app.dump().await, before, "a refused unlink changes nothing");
}

/// A friend who deleted the user and came back is linked by hand to their
/// earlier row; at the next login that row is carried over like any other.
/// Linking another deleted row to it would merge two contacts for good:
/// refused, with the way to do it that can be undone.
#[tokio::test(flavor = "multi_thread")]
async fn a_carried_over_contact_is_not_merged_into_a_deleted_row() {
    let app = TestApp::spawn(SimConfig {
        status_notify: StatusNotify::Off,
        ..small_account()
    })
    .await;
    app.login().await;
    app.sync().await;
    let account = app.sim.account();
    // Who comes back must share a group with the user: the server knows
    // nothing of a stranger who shares none.
    let in_a_group = |sim: u64| {
        account
            .groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.sim_id == sim))
    };
    let friends: Vec<_> = account
        .contacts
        .iter()
        .filter(|c| c.kind == SimKind::Friend)
        .collect();
    let back = *friends.iter().find(|c| in_a_group(c.sim_id)).unwrap();
    let gone = *friends.iter().find(|c| c.sim_id != back.sim_id).unwrap();
    let first_ids = ids(&app).await;
    app.sim.remove_contact(&back.user_name);
    app.sim.remove_contact(&gone.user_name);
    relogin_and_sync(&app).await;

    // This login's name of a friend or a group member.
    let name_of = |sim: u64| {
        let account = app.sim.account();
        let members = account.groups.into_iter().flat_map(|g| g.members);
        account
            .contacts
            .into_iter()
            .map(|c| (c.sim_id, c.user_name))
            .chain(members.map(|m| (m.sim_id, m.user_name)))
            .find(|(s, _)| *s == sim)
            .unwrap()
            .1
    };
    app.sim.befriend(&name_of(back.sim_id));
    app.sync().await;
    let (back_old, back_new) = (
        first_ids[&back.user_name].to_string(),
        ids(&app).await[&name_of(back.sim_id)].to_string(),
    );
    let linked = app
        .wxsync(&["identity", "link", &back_old, &back_new])
        .await;
    assert!(
        linked.ok(),
        "a contact new in this login can be linked: {linked:?}"
    );
    relogin_and_sync(&app).await;
    assert_eq!(
        ids(&app).await[&name_of(back.sim_id)].to_string(),
        back_old,
        "the row linked by hand is carried over"
    );

    let before = app.dump().await;
    let history = app.scalar("SELECT count(*) FROM contact_changes").await;
    let gone_id = first_ids[&gone.user_name].to_string();
    let run = app.wxsync(&["identity", "link", &gone_id, &back_old]).await;
    assert!(!run.ok(), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("#{back_old} was carried over"))
            && run
                .stderr
                .contains(&format!("wxsync identity unlink {back_old}")),
        "{run:?}"
    );
    assert_eq!(app.dump().await, before, "a refused link changes nothing");
    assert_eq!(
        app.scalar("SELECT count(*) FROM contact_changes").await,
        history
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_msgtype_51_map_links_even_look_alikes_and_keeps_their_real_ids() {
    let r = relinked_look_alikes(StatusNotify::Share(1.0)).await;
    for (new_name, sim) in &r.new {
        let old_name = r.old.iter().find(|(_, s)| *s == sim).unwrap().0;
        assert_eq!(r.now.get(new_name), r.old_ids.get(old_name), "{new_name}");
        let real = r
            .account
            .contacts
            .iter()
            .find(|c| c.sim_id == *sim)
            .unwrap();
        let stored = r
            .app
            .text("SELECT real_id FROM contacts WHERE user_name = ?", new_name)
            .await;
        assert_eq!(stored.as_deref(), Some(real.real_id.as_str()));
    }
    assert_eq!(
        r.app
            .scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL")
            .await,
        0,
        "with every real id known, nobody is left unlinked"
    );
}

/// `identity link` refuses rows of different kinds in plain English ("an
/// official account", never "a official").
#[tokio::test(flavor = "multi_thread")]
async fn linking_rows_of_different_kinds_is_refused_in_words() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    let sql = "SELECT user_name FROM contacts WHERE kind = ? ORDER BY contact_id LIMIT 1";
    let official = app.text(sql, "official").await.unwrap();
    let friend = app.text(sql, "friend").await.unwrap();
    // As a re-link leaves a row it could not match.
    let pool = app.db().await;
    sqlx::query("UPDATE contacts SET deleted_at = '2026-01-01T00:00:00Z' WHERE user_name = ?")
        .bind(&official)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let run = app.wxsync(&["identity", "link", &official, &friend]).await;
    assert!(!run.ok(), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{official} is an official account and {friend} a friend; only contacts of one kind"
        )),
        "{run:?}"
    );
}

/// A friend whose link is missed (a look-alike in the same groups as
/// their twin, no MsgType 51 map) stays in three groups and sets a card in
/// each, while a friend the re-link does
/// link, who goes by the same nick name, joins them with a card of their
/// own. Members are paired by
/// the contact link first, so the linked friend's new name is their join
/// and never a partner for the missed friend's stored row; then as
/// strangers, where the missed friend pairs by nick name. Their groups
/// record no `left` or `joined` for the missed friend, and three joins for
/// the linked one.
#[tokio::test(flavor = "multi_thread")]
async fn a_friend_whose_link_was_missed_is_paired_in_their_groups_after_the_linked_ones() {
    let app = TestApp::spawn(SimConfig {
        lookalikes: 1,
        status_notify: StatusNotify::Off,
        ..small_account()
    })
    .await;
    let account = app.sim.account();
    let (twin_id, other_twin) = account.lookalikes[0];
    let twin = account
        .contacts
        .iter()
        .find(|c| c.sim_id == twin_id)
        .unwrap();
    let namesake = account
        .contacts
        .iter()
        .find(|c| c.kind == SimKind::Friend && ![twin_id, other_twin].contains(&c.sim_id))
        .unwrap();
    let groups: Vec<String> = account
        .groups
        .iter()
        .filter(|g| g.saved && g.members.iter().all(|m| m.sim_id != namesake.sim_id))
        .take(3)
        .map(|g| g.user_name.clone())
        .collect();
    assert_eq!(groups.len(), 3);
    let other = account
        .contacts
        .iter()
        .find(|c| c.sim_id == other_twin)
        .unwrap();
    app.sim.rename(&namesake.user_name, &twin.nick_name);
    for g in &groups {
        // Both look-alikes, so the groups they are in cannot tell them apart.
        app.sim.contact_joins(g, &twin.user_name);
        app.sim.contact_joins(g, &other.user_name);
    }
    app.login().await;
    app.sync().await;
    let old_ids = ids(&app).await;
    let name = |account: &Account, sim_id| {
        let c = account.contacts.iter().find(|c| c.sim_id == sim_id);
        c.unwrap().user_name.clone()
    };
    let before = app.sim.account();
    let (twin_old, namesake_old) = (name(&before, twin_id), name(&before, namesake.sim_id));
    for g in before
        .groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m.sim_id == twin_id))
    {
        app.sim.contact_joins(&g.user_name, &namesake_old);
        app.sim
            .member_card(&g.user_name, &namesake_old, "the other one");
        app.sim.member_card(&g.user_name, &twin_old, "book club");
    }

    relogin_and_sync(&app).await;
    let after = app.sim.account();
    let (twin_new, namesake_new) = (name(&after, twin_id), name(&after, namesake.sim_id));
    let now = ids(&app).await;
    assert_eq!(
        now[&namesake_new], old_ids[&namesake_old],
        "the namesake is linked"
    );
    assert_ne!(
        now[&twin_new], old_ids[&twin_old],
        "the look-alike's link is missed"
    );
    let moves: Vec<(String, String)> = sqlx::query_as(
        "SELECT change, old_value FROM contact_changes WHERE change IN ('joined', 'left')",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    let of = |who: &[&String]| -> Vec<&(String, String)> {
        moves.iter().filter(|(_, m)| who.contains(&m)).collect()
    };
    assert_eq!(of(&[&twin_old, &twin_new]), Vec::<&(String, String)>::new());
    assert_eq!(
        of(&[&namesake_old, &namesake_new]),
        vec![&("joined".to_owned(), namesake_new.clone()); 3]
    );
}

/// A friend who changed both nick name and avatar between the logins, and
/// has no card in their groups, has little left to be linked by; the
/// groups they are still in carry the link (a second round, once the
/// groups are linked), so their groups record no `left` or `joined` for
/// them.
#[tokio::test(flavor = "multi_thread")]
async fn a_friend_with_a_new_nick_and_avatar_is_linked_by_the_groups_they_are_in() {
    let app = TestApp::spawn(grouped_account()).await;
    app.login().await;
    app.sync().await;
    let before = app.sim.account();
    let groups_of = |sim_id| saved_groups_of(&before, sim_id);
    let friend = bare_friend(&before, "a friend in three groups without a card", |c| {
        groups_of(c.sim_id).count() >= 3
            && groups_of(c.sim_id).all(|g| {
                g.members
                    .iter()
                    .all(|m| m.sim_id != c.sim_id || m.display_name.is_empty())
            })
    });
    let old_ids = ids(&app).await;
    app.sim.rename(&friend.user_name, "换了个名字");
    app.sim.new_avatar(&friend.user_name);

    relogin_and_sync(&app).await;
    let new_name = &user_name_now(&app, friend.sim_id);
    let evidence: String = sqlx::query_scalar(
        "SELECT printf('%.1f bits: %s', score, evidence) FROM identity_candidates
         WHERE old_contact_id = ?1 ORDER BY score DESC LIMIT 1",
    )
    .bind(old_ids[&friend.user_name])
    .fetch_optional(&app.db().await)
    .await
    .unwrap()
    .unwrap_or_default();
    assert_eq!(
        ids(&app).await[new_name],
        old_ids[&friend.user_name],
        "the friend is linked (their candidate, if any: {evidence})"
    );
    let moves: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contact_changes
         WHERE change IN ('joined', 'left') AND old_value IN (?1, ?2)",
    )
    .bind(&friend.user_name)
    .bind(new_name)
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(moves, 0, "no left or joined for the friend");
}

/// Between two logins a member left a group and a friend joined it. The
/// re-link rewrites every stored row of the group anyway, so the leaver's
/// row becomes the joiner's: every stored row is written once, and none is
/// removed or added. The history still records the one `left` and the
/// other `joined`.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_new_login_a_member_who_left_gives_their_row_to_one_who_joined() {
    let app = TestApp::spawn(grouped_account()).await;
    app.login().await;
    app.sync().await;
    let before = app.sim.account();
    let group = before
        .groups
        .iter()
        .find(|g| g.saved)
        .expect("a saved group");
    let leaver = group
        .members
        .iter()
        .find(|m| m.sim_id != before.self_user.sim_id)
        .expect("a member other than the account")
        .user_name
        .clone();
    let joiner = before
        .contacts
        .iter()
        .find(|c| c.kind == SimKind::Friend && group.members.iter().all(|m| m.sim_id != c.sim_id))
        .expect("a friend outside the group");
    app.sim.member_leaves(&group.user_name, &leaver);
    app.sim.contact_joins(&group.user_name, &joiner.user_name);
    let stored = app.scalar("SELECT count(*) FROM memberships").await;

    relogin_and_sync(&app).await;

    let written = app
        .scalar("SELECT memberships_changed FROM sync_runs ORDER BY id DESC LIMIT 1")
        .await;
    assert_eq!(written, stored, "each stored row written once");
    assert_eq!(app.scalar("SELECT count(*) FROM memberships").await, stored);
    let moves: Vec<(String, String)> = sqlx::query_as(
        "SELECT change, old_value FROM contact_changes WHERE change IN ('joined', 'left') ORDER BY id",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    assert_eq!(
        moves,
        vec![
            ("joined".to_owned(), user_name_now(&app, joiner.sim_id)),
            ("left".to_owned(), leaver)
        ]
    );
}

/// What a sync decides, without the times it was decided at: contacts,
/// memberships, history and the identity row, one line per row.
async fn decided(app: &TestApp) -> Vec<String> {
    app.rows(&[
        "SELECT contact_id, user_name, kind, nick_name, remark_name, head_img_url, member_count, \
         deleted_at IS NULL, real_id FROM contacts ORDER BY contact_id",
        "SELECT * FROM memberships ORDER BY group_user_name, member_user_name",
        "SELECT contact_id, user_name, source, change, field, old_value, new_value \
         FROM contact_changes ORDER BY id",
        "SELECT login_id, next_contact_id FROM identity",
        "SELECT old_contact_id, new_contact_id, score FROM identity_candidates ORDER BY 1, 2",
    ])
    .await
}

/// Puts the cache file back as `copy` holds it, without the WAL a killed
/// run left.
fn restore(app: &TestApp, copy: &std::path::Path) {
    for side in ["cache.db-wal", "cache.db-shm"] {
        let _ = std::fs::remove_file(app.dir.path().join(side));
    }
    std::fs::copy(copy, &app.db).unwrap();
}

/// `wxsync sync`, killed (SIGKILL) once it has logged `kill_after`
/// statements past the line that says the re-link was decided (sqlx logs
/// each statement as it completes, the write's included), or left to
/// finish. Returns how many statements it logged past that line, and
/// whether it was killed.
async fn sync_killed(app: &TestApp, kill_after: Option<usize>) -> (usize, bool) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
        .arg("--config")
        .arg(&app.config)
        .arg("sync")
        .env("RUST_LOG", "info,sqlx=debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut linked, mut statements, mut killed) = (false, 0, false);
    while let Some(line) = lines.next_line().await.unwrap() {
        if !linked {
            linked = line.contains("linked the previous login's contacts");
            continue;
        }
        statements += usize::from(line.contains(" summary=\""));
        if Some(statements) == kill_after {
            child.start_kill().unwrap();
            killed = true;
            break;
        }
    }
    while let Ok(Some(_)) = lines.next_line().await {}
    let status = child.wait().await.unwrap();
    assert!(linked, "the sync never decided its links");
    assert!(killed || status.success(), "wxsync sync failed: {status}");
    (statements, killed)
}

/// A re-link sync killed at ten points between the moment its links are
/// decided and its last statement (its write among them): every time the
/// cache holds either what it held before or the whole result, and the
/// next sync completes the link.
#[tokio::test(flavor = "multi_thread")]
async fn a_relink_sync_killed_anywhere_leaves_before_or_after_and_the_next_completes_it() {
    let app = TestApp::spawn(SimConfig {
        status_notify: StatusNotify::Off,
        ..small_account()
    })
    .await;
    app.login().await;
    app.sync().await;
    app.sim.churn(0.05, 11);
    app.login().await;
    let copy = app.dir.path().join("before-relink.db");
    let pool = app.db().await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    std::fs::copy(&app.db, &copy).unwrap();
    let before = decided(&app).await;

    let (statements, _) = sync_killed(&app, None).await;
    let after = decided(&app).await;
    assert_ne!(before, after);

    let (mut early, mut late) = (0, 0);
    for i in 0..10 {
        restore(&app, &copy);
        let (_, killed) = sync_killed(&app, Some(statements * (i + 1) / 11)).await;
        let state = decided(&app).await;
        if state == before {
            early += 1;
        } else {
            assert!(
                state == after,
                "kill {i} ({killed}) left the cache neither before nor after the re-link"
            );
            late += 1;
        }
        app.sync().await;
        assert_eq!(decided(&app).await, after, "the sync after kill {i}");
    }
    println!("re-link killed: {early} times before its commit, {late} after");
    assert!(early > 0, "some kill landed before the write committed");
}

/// A new avatar is the commonest change between two logins. A friend whose
/// only change it is, with no one else who could be them, keeps their
/// contact_id. The friends picked have no remark or alias and a nick name
/// no other contact has, so that their nick name, place and signature must
/// carry the link (a nick name alone is too little among many friends).
#[tokio::test(flavor = "multi_thread")]
async fn friends_whose_only_change_is_a_new_avatar_keep_their_contact_id() {
    let app = TestApp::spawn(SimConfig {
        friends: 300,
        status_notify: StatusNotify::Off,
        ..small_account()
    })
    .await;
    app.login().await;
    app.sync().await;
    let contacts = app.sim.account().contacts;
    let unique_nick = |nick: &str| contacts.iter().filter(|c| c.nick_name == nick).count() == 1;
    let plain: Vec<_> = contacts
        .iter()
        .filter(|c| {
            c.kind == SimKind::Friend
                && c.remark_name.is_empty()
                && c.alias.is_empty()
                && !c.province.is_empty()
                && !c.signature.is_empty()
                && unique_nick(&c.nick_name)
        })
        .collect();
    for c in &plain {
        app.sim.new_avatar(&c.user_name);
    }
    let before = ids(&app).await;

    relogin_and_sync(&app).await;

    let account = app.sim.account();
    let now = ids(&app).await;
    let missed: Vec<String> = plain
        .iter()
        .filter(|old| {
            let new = account
                .contacts
                .iter()
                .find(|c| c.sim_id == old.sim_id)
                .unwrap();
            assert_ne!(new.avatar_seq, old.avatar_seq);
            now.get(&new.user_name) != before.get(&old.user_name)
        })
        .map(|c| c.nick_name.clone())
        .collect();
    assert!(
        missed.is_empty(),
        "{} of {} not linked: {missed:?}",
        missed.len(),
        plain.len()
    );
}

/// A friend who changed both nick name and avatar between the logins, with
/// no signature or place to go by and in one group, which shows them under
/// a card, is linked by that card: the re-link reads the cards from both
/// logins' member rows. The one group in common alone would not carry the
/// link.
#[tokio::test(flavor = "multi_thread")]
async fn a_friend_with_a_new_nick_and_avatar_is_linked_by_their_group_card() {
    let app = TestApp::spawn(grouped_account()).await;
    app.login().await;
    let before = app.sim.account();
    let groups_of = |sim_id| saved_groups_of(&before, sim_id);
    let what = "a friend in one group with nothing but a nick name and avatar";
    let friend = bare_friend(&before, what, |c| {
        [&c.signature, &c.province, &c.city]
            .iter()
            .all(|f| f.is_empty())
            && groups_of(c.sim_id).count() == 1
    });
    let group = groups_of(friend.sim_id).next().unwrap();
    app.sim
        .member_card(&group.user_name, &friend.user_name, "读书会的老王");
    app.sync().await;
    let old_ids = ids(&app).await;
    app.sim.rename(&friend.user_name, "换了个名字");
    app.sim.new_avatar(&friend.user_name);

    relogin_and_sync(&app).await;
    let new_name = &user_name_now(&app, friend.sim_id);
    assert_eq!(
        ids(&app).await.get(new_name),
        Some(&old_ids[&friend.user_name]),
        "the friend is linked by their card"
    );
}
