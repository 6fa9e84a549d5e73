//! The change history and the rules of the staged write: one row per
//! changed field, joined/left on the group, nothing for a sync that changed
//! nothing, the deletion guard, and newer data winning over a sync's older
//! copy.

use tokio_util::sync::CancellationToken;
use wxsync::app::App;
use wxsync::config::Config;
use wxsync::simulator::{Endpoint, Fault, SimGroup, SimKind};
use wxsync::store::{Plan, Source};
use wxsync::sync::{self, SyncOptions};

use crate::helpers::{TestApp, small_account};

async fn synced() -> TestApp {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    app
}

/// `(change, field, old_value, new_value)` rows about one user name (as it
/// was when the change was written), in order.
async fn history(
    app: &TestApp,
    user_name: &str,
) -> Vec<(String, Option<String>, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT change, field, old_value, new_value FROM contact_changes \
         WHERE user_name = ? ORDER BY id",
    )
    .bind(user_name)
    .fetch_all(&app.db().await)
    .await
    .unwrap()
}

fn a_group_of_more_than_five(app: &TestApp) -> SimGroup {
    app.sim
        .account()
        .groups
        .into_iter()
        .find(|g| g.members.len() > 5)
        .unwrap()
}

fn friends(app: &TestApp) -> Vec<String> {
    app.sim
        .account()
        .contacts
        .into_iter()
        .filter(|c| c.kind == SimKind::Friend)
        .map(|c| c.user_name)
        .collect()
}

fn some<T: Into<String>>(v: T) -> Option<String> {
    Some(v.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_sync_records_each_contact_added_once() {
    let app = synced().await;

    let contacts = app.scalar("SELECT count(*) FROM contacts").await;
    let added = app
        .scalar("SELECT count(DISTINCT contact_id) FROM contact_changes WHERE change = 'added'")
        .await;
    assert_eq!(added, contacts);
    let joined = app
        .scalar("SELECT count(*) FROM contact_changes WHERE change IN ('joined', 'left')")
        .await;
    assert_eq!(joined, 0, "a new group's first member list is not a join");
    let ids = app
        .scalar("SELECT count(DISTINCT contact_id) FROM contacts")
        .await;
    assert_eq!(ids, contacts, "every contact has its own contact_id");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_writes_one_history_row_per_changed_field() {
    let app = synced().await;
    let friend = friends(&app)[0].clone();
    let old_nick = app
        .text(
            "SELECT nick_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await
        .unwrap();
    let old_remark = app
        .text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await
        .unwrap();

    app.sim.rename(&friend, "Renamed &amp; happy");
    app.sim.set_remark(&friend, "Work friend");
    app.sync().await;

    assert_eq!(
        history(&app, &friend).await[1..],
        [
            (
                "updated".into(),
                some("nick_name"),
                some(old_nick),
                some("Renamed & happy")
            ),
            (
                "updated".into(),
                some("remark_name"),
                some(old_remark),
                some("Work friend")
            ),
        ],
        "the first row is 'added'; then one row per field, decoded"
    );
    let (updated, memberships_changed): (i64, i64) = sqlx::query_as(
        "SELECT updated, memberships_changed FROM sync_runs ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(updated, 1, "rows rewritten = rows changed");
    // Member lists name the friend's nick name; groups they are in changed.
    let groups_of_friend = app
        .scalar("SELECT count(*) FROM memberships WHERE member_user_name IN (SELECT user_name FROM contacts WHERE nick_name = 'Renamed & happy')")
        .await;
    assert_eq!(memberships_changed, groups_of_friend);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_changed_writes_no_row_and_no_history() {
    let app = synced().await;
    let before = app.dump().await;
    let changes = app.scalar("SELECT count(*) FROM contact_changes").await;

    app.sync().await;

    assert_eq!(app.dump().await, before);
    assert_eq!(
        app.scalar("SELECT count(*) FROM contact_changes").await,
        changes
    );
    let written = app
        .scalar("SELECT inserted + updated + deleted + memberships_changed FROM sync_runs ORDER BY id DESC LIMIT 1")
        .await;
    assert_eq!(written, 0);
    let status = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let last = &v["last_sync"];
    assert_eq!(last["memberships_changed"], 0, "{status:?}");
    assert!(last["write_lock_ms"].is_u64(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn members_joining_and_leaving_are_recorded_on_the_group() {
    let app = synced().await;
    let group = a_group_of_more_than_five(&app);
    let leaver = &group.members[2];
    let leaver_name = if leaver.display_name.is_empty() {
        leaver.nick_name.clone()
    } else {
        leaver.display_name.clone()
    };

    app.sim.member_leaves(&group.user_name, &leaver.user_name);
    let joiner = app.sim.member_joins(&group.user_name, "New member");
    app.sync().await;

    let rows = history(&app, &group.user_name).await;
    let rows: Vec<_> = rows.into_iter().filter(|r| r.0 != "added").collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.contains(&(
        "left".into(),
        None,
        some(leaver.user_name.clone()),
        some(wxsync::webwx::text::decode_text(&leaver_name))
    )));
    assert!(rows.contains(&("joined".into(), None, some(joiner), some("New member"))));
    assert!(rows.iter().any(|r| r.1.as_deref() == Some("member_count")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_who_changes_their_card_is_updated_not_joined_or_left() {
    let app = synced().await;
    let group = a_group_of_more_than_five(&app);
    let member = group.members[3].user_name.clone();

    app.sim.member_card(&group.user_name, &member, "A new card");
    app.sync().await;

    let card: String = sqlx::query_scalar(
        "SELECT display_name FROM memberships \
         WHERE group_user_name = ? AND member_user_name = ?",
    )
    .bind(&group.user_name)
    .bind(&member)
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(card, "A new card");
    let rows = history(&app, &group.user_name).await;
    let moves: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "joined" || r.0 == "left")
        .collect();
    assert!(moves.is_empty(), "{moves:?}");
}

/// A mass deletion is held, held again when it comes straight back (a
/// repeat is no confirmation), and applied by a sync that gets it once
/// `sync.deletion_confirm` has passed since it was first held (0s here).
#[tokio::test(flavor = "multi_thread")]
async fn a_mass_deletion_is_held_until_confirmed() {
    let app = synced().await;
    let gone: Vec<String> = friends(&app).into_iter().take(25).collect();
    for f in &gone {
        app.sim.remove_contact(f);
    }
    let before = app.dump().await;

    let run = app.wxsync(&["sync"]).await;

    assert!(!run.ok(), "{run:?}");
    assert!(
        run.stderr.contains("held back") && run.stderr.contains("--force"),
        "{run:?}"
    );
    assert_eq!(app.dump().await, before, "a held sync writes nothing");
    let digest = app
        .text(
            "SELECT deletion_digest FROM sync_runs WHERE status = ? ORDER BY id DESC LIMIT 1",
            "failed",
        )
        .await;
    assert!(digest.is_some());

    let run = app.wxsync(&["sync"]).await;
    assert!(!run.ok(), "the same answer at once is held again: {run:?}");
    assert_eq!(app.dump().await, before, "a held sync writes nothing");

    app.configure("[sync]\ndeletion_confirm = \"0s\"\n");
    app.sync().await;

    let deleted = app
        .scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL")
        .await;
    assert_eq!(
        deleted, 25,
        "the same answer after deletion_confirm is applied"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn force_applies_a_mass_deletion_at_once() {
    let app = synced().await;
    for f in friends(&app).into_iter().take(25) {
        app.sim.remove_contact(&f);
    }

    let run = app.wxsync(&["sync", "--force"]).await;

    assert!(run.ok(), "{run:?}");
    let deleted = app
        .scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL")
        .await;
    assert_eq!(deleted, 25);
}

/// A full sync fetches the old remark, an increment then writes a newer one
/// before the sync commits: the cache must end with the newer one.
#[tokio::test(flavor = "multi_thread")]
async fn a_sync_that_fetched_before_a_change_does_not_undo_it() {
    let app = synced().await;
    let friend = friends(&app)[0].clone();
    let mut config = Config {
        database: app.db.clone(),
        ..Config::default()
    };
    config.wechat.login_url = app.sim.base_url();
    let lib = App::open(config).await.unwrap();
    let client = lib.client(lib.active_session().unwrap()).unwrap();
    // The batch calls come after every contact page: hold the first one.
    app.sim.fail(
        Endpoint::BatchGetContact,
        Fault::Delay(std::time::Duration::from_secs(2)),
        1,
    );
    let opts = SyncOptions {
        batch_pause: std::time::Duration::ZERO,
        ..SyncOptions::default()
    };
    let never = CancellationToken::new();
    let syncing = sync::full_sync(&client, &lib.store, &opts, &[], &never);
    let increment = async {
        app.eventually("the sync reaches its batch calls", || async {
            app.sim
                .calls()
                .iter()
                .any(|c| c.endpoint == Endpoint::BatchGetContact)
        })
        .await;
        let mut contact = wxsync::contact::Contact::from_raw(
            &wxsync::webwx::RawContact {
                user_name: friend.clone(),
                contact_flag: 3,
                remark_name: "Newer".into(),
                ..Default::default()
            },
            "@me",
        )
        .unwrap();
        contact.nick_name = "Newer nick".into();
        let mut stage = lib.store.stage().await.unwrap();
        stage.contacts(&[contact]).await.unwrap();
        stage
            .commit(Plan {
                source: Source::Increment,
                full: None,
                claim_login: None,
            })
            .await
            .unwrap();
    };
    let (report, ()) = tokio::join!(syncing, increment);
    report.unwrap();

    let remark = app
        .text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await;
    assert_eq!(remark.as_deref(), Some("Newer"));
}

/// A remark edit applied while a full sync is between its fetch and its
/// write: the sync's copy of the contact is older and must not be written
/// back over the edit (the cache must end with what the server holds).
#[tokio::test(flavor = "multi_thread")]
async fn a_remark_edit_applied_during_a_full_sync_is_not_undone_by_it() {
    let app = synced().await;
    let friend = friends(&app)[0].clone();
    // A change the sync will fetch: its copy of the friend differs from the
    // cache's, so it is staged whole.
    app.sim.rename(&friend, "Renamed before");
    let syncs_before = app.ok_runs().await;
    let calls_before = app.sim.calls().len();
    // The daemon's first full sync (and the edit's read-back) wait in
    // webwxbatchgetcontact, after every contact page has been read.
    app.sim.fail(
        Endpoint::BatchGetContact,
        Fault::Delay(std::time::Duration::from_millis(2500)),
        2,
    );
    let daemon = app.start_daemon(&[]);
    app.eventually(
        "the daemon's full sync waiting in its batch call",
        || async {
            app.sim.calls()[calls_before..]
                .iter()
                .any(|c| c.endpoint == Endpoint::BatchGetContact)
        },
    )
    .await;

    let pool = app.db().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO pending_ops (user_name, remark_name) VALUES (?, 'Edited meanwhile') RETURNING id",
    )
    .bind(&friend)
    .fetch_one(&pool)
    .await
    .unwrap();
    app.eventually("the edit to reach the server", || async {
        app.sim
            .calls()
            .iter()
            .any(|c| c.endpoint == Endpoint::OpLog)
    })
    .await;
    app.eventually("the full sync that fetched before it to finish", || async {
        app.ok_runs().await > syncs_before
    })
    .await;
    assert_eq!(app.op_settled(id).await, "done");
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");

    let reverted = app
        .scalar(
            "SELECT count(*) FROM contact_changes \
             WHERE source = 'full_sync' AND field = 'remark_name' AND old_value = 'Edited meanwhile'",
        )
        .await;
    assert_eq!(reverted, 0, "the sync wrote its older copy over the edit");
    let cached = app
        .text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await;
    assert_eq!(cached.as_deref(), Some("Edited meanwhile"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_from_the_command_line_drops_history_past_its_retention() {
    let app = synced().await;
    app.configure("[history]\nretention = \"30d\"\n");
    let pool = app.db().await;
    for at in ["2000-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z"] {
        sqlx::query(
            "INSERT INTO contact_changes (at, contact_id, user_name, source, change) \
             VALUES (?, 1, '@x', 'full_sync', 'added')",
        )
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }

    app.sync().await;

    let left: Vec<String> =
        sqlx::query_scalar("SELECT at FROM contact_changes WHERE user_name = '@x'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, ["2999-01-01T00:00:00.000Z"], "only the old row goes");
}
