//! Replies that prove nothing change nothing: contact lists holding entries
//! without a `UserName`, and batch replies that leave out groups they were
//! asked for. Each test compares the cache with the simulator's account.

use std::collections::BTreeSet;

use wxsync::simulator::{Endpoint, Fault, SimKind};

use crate::helpers::{TestApp, small_account};

/// The live contacts and the membership rows, by user name.
#[derive(Debug, PartialEq, Eq)]
struct Book {
    contacts: BTreeSet<String>,
    memberships: BTreeSet<(String, String)>,
}

/// What the server holds.
fn truth(app: &TestApp) -> Book {
    let a = app.sim.account();
    Book {
        contacts: a
            .contacts
            .iter()
            .filter(|c| c.kind != SimKind::Stranger)
            .map(|c| c.user_name.clone())
            .chain([a.self_user.user_name.clone()])
            .chain(a.groups.iter().map(|g| g.user_name.clone()))
            .collect(),
        memberships: a
            .groups
            .iter()
            .flat_map(|g| {
                g.members
                    .iter()
                    .map(|m| (g.user_name.clone(), m.user_name.clone()))
            })
            .collect(),
    }
}

/// What the cache holds.
async fn cached(app: &TestApp) -> Book {
    let pool = app.db().await;
    let contacts = sqlx::query_scalar("SELECT user_name FROM contacts WHERE deleted_at IS NULL")
        .fetch_all(&pool)
        .await
        .unwrap();
    let memberships = sqlx::query_as("SELECT group_user_name, member_user_name FROM memberships")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    Book {
        contacts: contacts.into_iter().collect(),
        memberships: memberships.into_iter().collect(),
    }
}

/// Asserts the cache holds the server's account, saying what differs.
async fn assert_truth(app: &TestApp, what: &str) {
    let (want, have) = (truth(app), cached(app).await);
    let lost: Vec<_> = want.contacts.difference(&have.contacts).collect();
    let odd: Vec<_> = have.contacts.difference(&want.contacts).collect();
    let lost_m = want.memberships.difference(&have.memberships).count();
    let odd_m = have.memberships.difference(&want.memberships).count();
    assert!(
        lost.is_empty() && odd.is_empty() && lost_m == 0 && odd_m == 0,
        "{what}: contacts lost {lost:?}, not on the server {odd:?}; \
         memberships lost {lost_m}, not on the server {odd_m}"
    );
    let empty = app
        .scalar(
            "SELECT (SELECT count(*) FROM contacts WHERE trim(coalesce(user_name, '')) = '') + \
                    (SELECT count(*) FROM memberships \
                     WHERE trim(coalesce(member_user_name, '')) = '' \
                        OR trim(coalesce(group_user_name, '')) = '')",
        )
        .await;
    assert_eq!(empty, 0, "{what}: rows with an empty user_name");
}

/// The newest run's status and notes.
async fn last_run(app: &TestApp) -> (String, String) {
    let pool = app.db().await;
    let row: (String, Option<String>) =
        sqlx::query_as("SELECT status, notes FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    (row.0, row.1.unwrap_or_default())
}

async fn synced() -> TestApp {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    app
}

/// webwxinit's and every getcontact page's first entries come without a
/// name: the sync writes what it could read, marks nothing deleted, and
/// stores no row without a name; the next clean sync is complete again.
#[tokio::test(flavor = "multi_thread")]
async fn contact_list_entries_without_a_name_mark_nobody_deleted() {
    let app = synced().await;
    assert_truth(&app, "before").await;
    app.sim.fail(Endpoint::Init, Fault::Unnamed(2), 1000);
    app.sim.fail(Endpoint::GetContact, Fault::Unnamed(3), 1000);
    let run = app.sync().await;
    assert!(run.stderr.contains("without a UserName"), "{run:?}");
    assert!(
        run.stdout.contains("The answer was incomplete (")
            && run.stdout.contains("nothing was marked deleted"),
        "{run:?}"
    );
    assert_truth(&app, "entries without a name").await;
    let (status, notes) = last_run(&app).await;
    assert_eq!(status, "ok");
    assert!(notes.contains("without a UserName skipped"), "{notes}");
    assert_eq!(
        app.scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL")
            .await,
        0
    );

    // A contact really gone while the lists are unreadable is not marked
    // deleted yet; the first complete sync does it.
    let friend = app.first_friend();
    app.sim.remove_contact(&friend);
    app.sync().await;
    let gone = "SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL";
    assert_eq!(
        app.scalar(gone).await,
        0,
        "an incomplete sync deletes nothing"
    );
    app.sim.clear_faults();
    app.sync().await;
    assert_eq!(app.scalar(gone).await, 1, "a complete one does");
    assert_truth(&app, "after a clean sync").await;
}

/// Batch replies whose first group, and each group's first member, come
/// without a name: those member lists are not taken (the groups keep their
/// rows), the nameless group is asked for alone and, still nameless, kept as
/// it was; nothing is written without a name.
#[tokio::test(flavor = "multi_thread")]
async fn member_lists_with_a_nameless_member_keep_the_stored_members() {
    let app = synced().await;
    app.sim
        .fail(Endpoint::BatchGetContact, Fault::Unnamed(1), 1000);
    let run = app.sync().await;
    assert_truth(&app, "nameless groups and members").await;
    let (status, notes) = last_run(&app).await;
    assert_eq!(status, "ok");
    assert!(
        notes.contains("members without a UserName listed"),
        "{notes}"
    );
    assert!(
        notes.contains("not described by webwxbatchgetcontact"),
        "{notes}"
    );
    assert!(run.stderr.contains("asking for them again"), "{run:?}");
}

/// After a new login, groups whose new lists hold a nameless member keep
/// their stored members, and those rows follow the group to its new name,
/// and each member who is a contact to theirs.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_new_login_stored_members_kept_take_the_new_names() {
    let app = synced().await;
    let rows = "SELECT count(*) FROM memberships";
    let before = app.scalar(rows).await;
    app.sim
        .fail(Endpoint::BatchGetContact, Fault::Unnamed(1), 1000);
    app.login().await;
    let run = app.sync().await;
    assert!(run.stderr.contains("linked the previous login"), "{run:?}");
    assert_eq!(app.scalar(rows).await, before, "every stored row kept");
    let group_named_anew = "SELECT count(*) FROM memberships m
         JOIN contacts c ON c.contact_id = m.group_contact_id
         WHERE m.group_user_name = c.user_name AND c.deleted_at IS NULL";
    assert_eq!(
        app.scalar(group_named_anew).await,
        before,
        "each row under its group's new name"
    );
    let member_named_anew = "SELECT count(*) FROM memberships m
         JOIN contacts c ON c.contact_id = m.member_contact_id
         WHERE m.member_user_name <> c.user_name";
    assert_eq!(app.scalar(member_named_anew).await, 0, "members' new names");
    let members_who_are_contacts =
        "SELECT count(*) FROM memberships WHERE member_contact_id IS NOT NULL";
    assert!(app.scalar(members_who_are_contacts).await > 0);
}

/// Batch replies that leave out groups: once, the groups left out are asked
/// for again and the sync is whole; on every call, they are asked for down
/// to alone, then kept as they were, and the run names them.
#[tokio::test(flavor = "multi_thread")]
async fn groups_a_batch_reply_leaves_out_are_asked_again_then_kept() {
    let app = synced().await;
    let batches = app.calls_to(Endpoint::BatchGetContact);
    app.sim
        .fail(Endpoint::BatchGetContact, Fault::LeftOut(2), 1);
    // A change in each group, which only a described group brings.
    let groups = app.sim.account().groups;
    for g in &groups {
        app.sim.member_joins(&g.user_name, "Newcomer");
    }
    app.sync().await;
    assert_truth(&app, "two groups left out once").await;
    assert_eq!(last_run(&app).await.1, "", "a whole answer");
    let asked_again = app.calls_to(Endpoint::BatchGetContact) - batches;
    assert_eq!(asked_again, 2, "the first batch, then the two left out");

    app.sim
        .fail(Endpoint::BatchGetContact, Fault::LeftOut(2), 1000);
    let run = app.sync().await;
    assert_truth(&app, "two groups left out of every reply").await;
    let (status, notes) = last_run(&app).await;
    assert_eq!(status, "ok");
    assert!(
        notes.starts_with("not described by webwxbatchgetcontact, kept as they were: ")
            && groups.iter().any(|g| notes.contains(&g.user_name)),
        "{notes}"
    );
    assert!(run.stderr.contains("even asked alone"), "{run:?}");

    // What changes on the server meanwhile in a group left out lands once
    // the server describes it again.
    let left_out: Vec<&str> = groups
        .iter()
        .map(|g| g.user_name.as_str())
        .filter(|g| notes.contains(g))
        .collect();
    assert!(!left_out.is_empty());
    app.sim.member_joins(left_out[0], "Late");
    app.sync().await;
    let late = "SELECT count(*) FROM memberships WHERE nick_name = 'Late'";
    assert_eq!(app.scalar(late).await, 0, "not described: kept as it was");
    app.sim.clear_faults();
    app.sync().await;
    assert_eq!(app.scalar(late).await, 1);
    assert_truth(&app, "after a clean sync").await;
}

/// An increment whose ModContactList entry comes without a name: skipped
/// with one warning, nothing written without a name, and a full sync is
/// asked for, which brings the change the entry held.
#[tokio::test(flavor = "multi_thread")]
async fn an_increment_entry_without_a_name_is_skipped_and_a_full_sync_brings_it() {
    let app = TestApp::spawn(small_account()).await;
    app.configure("[sync]\nschedule = \"0 0 0 1 1 *\"\n");
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await >= 1 })
        .await;
    // Every webwxsync reply: the rename's own included, whichever call
    // carries it.
    app.sim.fail(Endpoint::Sync, Fault::Unnamed(1), 1000);
    let friend = app.first_friend();
    app.sim.rename(&friend, "Renamed without a name");
    app.eventually("the full sync the skipped entry asked for", || async {
        app.ok_runs().await >= 2
    })
    .await;
    let nick = app
        .text(
            "SELECT nick_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await;
    assert_eq!(nick.as_deref(), Some("Renamed without a name"));
    assert_truth(&app, "an increment entry without a name").await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let warned = logs
        .lines()
        .filter(|l| l.contains("webwxsync sent entries without a UserName"))
        .count();
    assert_eq!(warned, 1, "{logs}");
}
