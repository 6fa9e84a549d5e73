//! `memberships.member_contact_id`: the member's live contact's stable id,
//! kept right by full syncs, increments and re-links.

use std::collections::HashMap;

use wxsync::simulator::{SimConfig, SimKind, StatusNotify};

use crate::helpers::{TestApp, running, small_account};

/// Member rows whose `member_contact_id` is not what a join on the live
/// contacts by user name gives.
async fn wrong_ids(app: &TestApp) -> i64 {
    app.scalar(
        "SELECT count(*) FROM memberships m
         LEFT JOIN contacts c ON c.user_name = m.member_user_name AND c.deleted_at IS NULL
         WHERE m.member_contact_id IS NOT c.contact_id",
    )
    .await
}

/// Rows per member sim id: (group sim id, member_contact_id), sorted, for
/// every member the simulator counts as a contact in its current login.
async fn member_ids_by_person(app: &TestApp) -> HashMap<u64, Vec<(u64, Option<i64>)>> {
    let account = app.sim.account();
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT group_user_name, member_user_name, member_contact_id FROM memberships",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    let group_sim: HashMap<&str, u64> = account
        .groups
        .iter()
        .map(|g| (g.user_name.as_str(), g.sim_id))
        .collect();
    let person_sim: HashMap<&str, u64> = account
        .contacts
        .iter()
        .map(|c| (c.user_name.as_str(), c.sim_id))
        .chain([(
            account.self_user.user_name.as_str(),
            account.self_user.sim_id,
        )])
        .collect();
    let mut out: HashMap<u64, Vec<(u64, Option<i64>)>> = HashMap::new();
    for (group, member, id) in rows {
        if let (Some(g), Some(p)) = (
            group_sim.get(group.as_str()),
            person_sim.get(member.as_str()),
        ) {
            out.entry(*p).or_default().push((*g, id));
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_sync_stores_each_members_contact_id() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    assert!(app.sync().await.ok());

    assert_eq!(wrong_ids(&app).await, 0);
    // Members who are contacts (friends in groups, the account itself) have
    // their id; strangers have none.
    let account = app.sim.account();
    let is_contact: HashMap<&str, bool> = account
        .contacts
        .iter()
        .map(|c| (c.user_name.as_str(), c.kind != SimKind::Stranger))
        .chain([(account.self_user.user_name.as_str(), true)])
        .collect();
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT member_user_name, member_contact_id FROM memberships")
            .fetch_all(&app.db().await)
            .await
            .unwrap();
    let with_id = rows.iter().filter(|(_, id)| id.is_some()).count();
    assert!(
        with_id > 0 && with_id < rows.len(),
        "{with_id} of {}",
        rows.len()
    );
    for (member, id) in &rows {
        let contact = is_contact.get(member.as_str()).copied().unwrap_or(false);
        assert_eq!(id.is_some(), contact, "{member}");
    }
}

/// A group member who becomes a friend gets their id on every group row,
/// and a friend who deletes the user loses it, by increments alone (the
/// groups' member lists did not change).
#[tokio::test(flavor = "multi_thread")]
async fn increments_give_and_take_member_contact_ids() {
    let (app, daemon) = running().await;
    let account = app.sim.account();
    let kind: HashMap<&str, SimKind> = account
        .contacts
        .iter()
        .map(|c| (c.user_name.as_str(), c.kind))
        .collect();
    let members = || account.groups.iter().flat_map(|g| &g.members);
    let stranger = members()
        .find(|m| {
            m.user_name != account.self_user.user_name
                && kind
                    .get(m.user_name.as_str())
                    .is_none_or(|k| *k == SimKind::Stranger)
        })
        .expect("a stranger in a group")
        .user_name
        .clone();
    let friend = members()
        .find(|m| kind.get(m.user_name.as_str()) == Some(&SimKind::Friend))
        .expect("a friend in a group")
        .user_name
        .clone();
    let id_rows = |name: String| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT member_contact_id FROM memberships WHERE member_user_name = ?",
            )
            .bind(name)
            .fetch_all(&app.db().await)
            .await
            .unwrap()
        }
    };
    assert!(id_rows(stranger.clone()).await.iter().all(Option::is_none));
    assert!(id_rows(friend.clone()).await.iter().all(Option::is_some));

    app.sim.befriend(&stranger);
    app.sim.remove_contact(&friend);
    app.eventually("the new friend and the removal", || async {
        app.text(
            "SELECT CAST(contact_id AS TEXT) FROM contacts WHERE user_name = ? AND deleted_at IS NULL",
            &stranger,
        )
        .await
        .is_some()
            && app
                .text("SELECT deleted_at FROM contacts WHERE user_name = ?", &friend)
                .await
                .is_some()
    })
    .await;

    assert_eq!(app.ok_runs().await, 1, "no full sync was needed");
    let new_id: i64 = app
        .text(
            "SELECT CAST(contact_id AS TEXT) FROM contacts WHERE user_name = ?",
            &stranger,
        )
        .await
        .unwrap()
        .parse()
        .unwrap();
    let rows = id_rows(stranger).await;
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|id| *id == Some(new_id)), "{rows:?}");
    let rows = id_rows(friend).await;
    assert!(!rows.is_empty());
    assert!(rows.iter().all(Option::is_none), "{rows:?}");
    assert_eq!(wrong_ids(&app).await, 0);
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
}

/// A re-link keeps `contact_id`s, so a member who is a contact keeps the
/// same `member_contact_id` in every group under the new names.
#[tokio::test(flavor = "multi_thread")]
async fn a_relogin_keeps_member_contact_ids() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    let before = member_ids_by_person(&app).await;

    app.login().await;
    assert!(app.sync().await.ok());

    assert_eq!(wrong_ids(&app).await, 0);
    let after = member_ids_by_person(&app).await;
    let contacts: Vec<&u64> = before
        .iter()
        .filter(|(_, rows)| rows.iter().any(|(_, id)| id.is_some()))
        .map(|(person, _)| person)
        .collect();
    assert!(!contacts.is_empty());
    for person in contacts {
        assert_eq!(after.get(person), before.get(person), "person {person}");
    }
}

/// A re-link after friends were added and removed, members joined, left
/// and changed, and groups came and went, then a sync of that login after
/// more of the same: every member row still names the live contact of its
/// member name, or none. (The write works out who will be live before it
/// takes the lock, and the rows it rewrites in place carry that already.)
#[tokio::test(flavor = "multi_thread")]
async fn churned_syncs_give_every_row_its_member_contact_id() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    app.sim.churn(0.2, 5);

    app.login().await;
    // So many changes on a small account are past the deletion guard.
    let run = app.wxsync(&["sync", "--force"]).await;
    assert!(run.ok(), "{run:?}");

    let (rows, with_id): (i64, i64) = (
        app.scalar("SELECT count(*) FROM memberships").await,
        app.scalar("SELECT count(member_contact_id) FROM memberships")
            .await,
    );
    assert!(0 < with_id && with_id < rows, "{with_id} of {rows}");
    assert_eq!(wrong_ids(&app).await, 0);

    // And a sync of the same login after more of it.
    app.sim.churn(0.5, 6);
    let run = app.wxsync(&["sync", "--force"]).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(wrong_ids(&app).await, 0);
}

/// `wxsync identity link` and `unlink` move a member's rows to the id that
/// names the person after the decision.
#[tokio::test(flavor = "multi_thread")]
async fn a_manual_link_and_unlink_move_member_contact_ids() {
    let app = TestApp::spawn(SimConfig {
        lookalikes: 2,
        status_notify: StatusNotify::Off,
        ..small_account()
    })
    .await;
    app.login().await;
    app.sync().await;
    let name_of = |sim: u64| {
        app.sim
            .account()
            .contacts
            .into_iter()
            .find(|c| c.sim_id == sim)
            .unwrap()
            .user_name
    };
    let account = app.sim.account();
    let in_groups = |sim: u64| {
        account
            .groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.sim_id == sim))
    };
    let (sim, _) = *account
        .lookalikes
        .iter()
        .find(|(a, _)| in_groups(*a))
        .expect("a look-alike pair in groups");
    let old_name = name_of(sim);
    let id_of = |name: String| {
        let app = &app;
        async move {
            app.text(
                "SELECT CAST(contact_id AS TEXT) FROM contacts WHERE user_name = ?",
                &name,
            )
            .await
            .unwrap()
            .parse::<i64>()
            .unwrap()
        }
    };
    let old_id = id_of(old_name.clone()).await;
    app.login().await;
    app.sync().await;
    let new_name = name_of(sim);
    let member_ids = || async {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT member_contact_id FROM memberships WHERE member_user_name = ?",
        )
        .bind(name_of(sim))
        .fetch_all(&app.db().await)
        .await
        .unwrap()
    };
    let unlinked_id = id_of(new_name.clone()).await;
    assert_ne!(unlinked_id, old_id, "look-alikes are left for a person");
    assert!(!member_ids().await.is_empty());

    assert!(
        app.wxsync(&["identity", "link", &old_name, &new_name])
            .await
            .ok()
    );
    assert!(member_ids().await.iter().all(|id| *id == Some(old_id)));
    assert_eq!(wrong_ids(&app).await, 0);

    assert!(app.wxsync(&["identity", "unlink", &new_name]).await.ok());
    let fresh = id_of(new_name).await;
    assert_ne!(fresh, old_id);
    assert!(member_ids().await.iter().all(|id| *id == Some(fresh)));
    assert_eq!(wrong_ids(&app).await, 0);
}
