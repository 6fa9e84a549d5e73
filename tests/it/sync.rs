use std::collections::{BTreeMap, BTreeSet};

use wxsync::simulator::{Endpoint, Fault, SimConfig, SimKind};

use crate::helpers::{TestApp, small_account};

async fn synced(account: SimConfig) -> TestApp {
    let app = TestApp::spawn(account).await;
    app.login().await;
    app.sync().await;
    app
}

async fn rows(app: &TestApp, sql: &'static str) -> Vec<(String, String)> {
    sqlx::query_as(sql)
        .fetch_all(&app.db().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_pages_through_every_contact() {
    let app = synced(SimConfig {
        friends: 150,
        page_size: 40,
        ..small_account()
    })
    .await;

    let pages = app
        .sim
        .calls()
        .iter()
        .filter(|c| c.endpoint == Endpoint::GetContact)
        .count();
    assert!(pages >= 3, "{pages} getcontact pages");
    let account = app.sim.account();
    let expected: BTreeSet<String> = account
        .contacts
        .iter()
        .filter(|c| c.kind != SimKind::Stranger)
        .map(|c| c.user_name.clone())
        .chain(std::iter::once(account.self_user.user_name.clone()))
        .chain(account.groups.iter().map(|g| g.user_name.clone()))
        .collect();
    let stored: BTreeSet<String> = rows(
        &app,
        "SELECT user_name, kind FROM contacts WHERE deleted_at IS NULL",
    )
    .await
    .into_iter()
    .map(|(u, _)| u)
    .collect();
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_is_classified() {
    let app = synced(small_account()).await;
    let account = app.sim.account();
    let stored: BTreeMap<String, String> = rows(&app, "SELECT user_name, kind FROM contacts")
        .await
        .into_iter()
        .collect();

    assert_eq!(stored[&account.self_user.user_name], "self");
    for c in &account.contacts {
        let want = match c.kind {
            SimKind::Friend => "friend",
            SimKind::Official => "official",
            SimKind::Special => "special",
            SimKind::Group => "group",
            SimKind::Self_ => "self",
            SimKind::Stranger => {
                assert!(
                    !stored.contains_key(&c.user_name),
                    "a stranger is not a contact"
                );
                continue;
            }
        };
        assert_eq!(stored[&c.user_name], want, "{c:?}");
    }
    for g in &account.groups {
        assert_eq!(stored[&g.user_name], "group");
    }
    let kinds: BTreeSet<&str> = stored.values().map(String::as_str).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["friend", "group", "official", "self", "special"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_fifty_groups_all_get_their_members() {
    let app = synced(SimConfig {
        saved_groups: 55,
        unsaved_groups: 8,
        max_group_members: 12,
        ..small_account()
    })
    .await;

    for call in app
        .sim
        .calls()
        .iter()
        .filter(|c| c.endpoint == Endpoint::BatchGetContact)
    {
        let body: serde_json::Value = serde_json::from_str(&call.body).unwrap();
        assert!(
            body["List"].as_array().unwrap().len() <= 50,
            "a batch over 50"
        );
    }
    let account = app.sim.account();
    assert_eq!(account.groups.len(), 63);
    let pool = app.db().await;
    for g in &account.groups {
        let stored: BTreeSet<String> = sqlx::query_scalar(
            "SELECT member_user_name FROM memberships WHERE group_user_name = ?",
        )
        .bind(&g.user_name)
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let want: BTreeSet<String> = g.members.iter().map(|m| m.user_name.clone()).collect();
        assert_eq!(
            stored, want,
            "members of {} (saved: {})",
            g.user_name, g.saved
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_known_only_from_chatset_are_stored_with_members() {
    let app = synced(small_account()).await;
    let account = app.sim.account();
    let chat_set_only: Vec<_> = account
        .groups
        .iter()
        .filter(|g| !g.saved && !g.in_init && g.in_chat_set)
        .collect();
    assert!(
        !chat_set_only.is_empty(),
        "the account has ChatSet-only groups"
    );
    let pool = app.db().await;
    for g in chat_set_only {
        let members: i64 =
            sqlx::query_scalar("SELECT count(*) FROM memberships WHERE group_user_name = ?")
                .bind(&g.user_name)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(members as usize, g.members.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_stored_decoded() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    let friend = app.first_friend();
    app.sim.rename(
        &friend,
        r#"Tom &amp; Jerry <span class="emoji emoji1f604"></span><span class="emoji emoji1f1e81f1f3"></span> 小明<span class="emoji emoji1f63c"></span>"#,
    );
    app.sync().await;

    let nick: String = sqlx::query_scalar("SELECT nick_name FROM contacts WHERE user_name = ?")
        .bind(&friend)
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(nick, "Tom & Jerry 😄🇨🇳 小明😁");
    let leftovers = app
        .scalar(
            "SELECT count(*) FROM contacts WHERE nick_name LIKE '%<span%' OR nick_name LIKE '%&amp;%' \
             OR remark_name LIKE '%<span%'",
        )
        .await;
    assert_eq!(leftovers, 0);
    let member_leftovers = app
        .scalar(
            "SELECT count(*) FROM memberships WHERE nick_name LIKE '%<span%' \
             OR display_name LIKE '%<span%' OR nick_name LIKE '%&amp;%'",
        )
        .await;
    assert_eq!(member_leftovers, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_with_nothing_changed_rewrites_nothing() {
    let app = synced(small_account()).await;
    let before = app.dump().await;

    let run = app.sync().await;

    assert_eq!(app.dump().await, before);
    let (inserted, updated, deleted): (i64, i64, i64) =
        sqlx::query_as("SELECT inserted, updated, deleted FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!((inserted, updated, deleted), (0, 0, 0), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_on_the_server_reach_the_cache() {
    let app = synced(small_account()).await;
    let account = app.sim.account();
    let renamed = app.first_friend();
    let removed = account
        .contacts
        .iter()
        .filter(|c| c.kind == SimKind::Friend)
        .nth(1)
        .unwrap()
        .user_name
        .clone();
    let group = account.groups.iter().find(|g| g.members.len() > 3).unwrap();
    let leaver = group.members[1].user_name.clone();
    let before: BTreeMap<String, String> = rows(&app, "SELECT user_name, updated_at FROM contacts")
        .await
        .into_iter()
        .collect();

    app.sim.rename(&renamed, "New Name");
    app.sim.remove_contact(&removed);
    app.sim.member_leaves(&group.user_name, &leaver);
    let new_group = app.sim.add_group("Fresh group", 5, false);
    let new_friend = app.sim.add_friend("Newcomer");
    app.sync().await;

    let pool = app.db().await;
    let nick: String = sqlx::query_scalar("SELECT nick_name FROM contacts WHERE user_name = ?")
        .bind(&renamed)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(nick, "New Name");
    let deleted_at: Option<String> =
        sqlx::query_scalar("SELECT deleted_at FROM contacts WHERE user_name = ?")
            .bind(&removed)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        deleted_at.is_some(),
        "a removed friend keeps its row, marked deleted"
    );
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memberships WHERE group_user_name = ? AND member_user_name = ?",
    )
    .bind(&group.user_name)
    .bind(&leaver)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "the member who left has no membership row");
    let new_members: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE group_user_name = ?")
            .bind(&new_group)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(new_members, 5);
    let kind: String = sqlx::query_scalar("SELECT kind FROM contacts WHERE user_name = ?")
        .bind(&new_friend)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kind, "friend");

    let after: BTreeMap<String, String> = rows(&app, "SELECT user_name, updated_at FROM contacts")
        .await
        .into_iter()
        .collect();
    let moved: BTreeSet<&String> = before
        .iter()
        .filter(|(u, t)| after.get(*u) != Some(*t))
        .map(|(u, _)| u)
        .collect();
    assert!(moved.contains(&renamed) && moved.contains(&removed));
    assert!(
        moved.len() <= 3,
        "only changed rows move updated_at: {moved:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fault_in_the_middle_of_a_sync_leaves_the_cache_as_it_was() {
    let app = synced(small_account()).await;
    let before = app.dump().await;
    app.sim.rename(&app.first_friend(), "Should not land");

    for fault in [Fault::Http(502), Fault::Truncated, Fault::Ret(1205)] {
        app.sim.fail(Endpoint::BatchGetContact, fault.clone(), 1000);
        let run = app.wxsync(&["sync"]).await;
        assert!(!run.ok(), "{fault:?} must fail the sync: {run:?}");
        assert_eq!(app.dump().await, before, "{fault:?} changed the cache");
        app.sim.clear_faults_of(Endpoint::BatchGetContact);
    }
    app.sim.fail(Endpoint::GetContact, Fault::Http(500), 1000);
    assert!(!app.wxsync(&["sync"]).await.ok());
    assert_eq!(app.dump().await, before);

    let failed = app
        .scalar("SELECT count(*) FROM sync_runs WHERE status = 'failed' AND error IS NOT NULL")
        .await;
    assert_eq!(failed, 4, "every failed run is recorded with its error");
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_faults_are_retried() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sim.fail(Endpoint::BatchGetContact, Fault::Http(503), 1);
    app.sim.fail(Endpoint::GetContact, Fault::Ret(1205), 1);

    app.sync().await;

    assert!(app.scalar("SELECT count(*) FROM memberships").await > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_fails_the_sync_and_keeps_every_row() {
    let app = synced(small_account()).await;
    let before = app.dump().await;
    app.sim.force_logout(1101);

    let run = app.wxsync(&["sync"]).await;

    assert!(!run.ok());
    assert!(run.stderr.contains("1101"), "{run:?}");
    assert_eq!(app.dump().await, before);
    let status = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["session"]["state"], "logged_out", "{status:?}");
    assert!(v["session"]["reason"].as_str().unwrap().contains("1101"));
    let again = app.wxsync(&["sync"]).await;
    assert!(again.stderr.contains("wxsync login"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_database_or_the_logs() {
    let app = TestApp::spawn(small_account()).await;
    let mut output = String::new();
    let login = app.login().await;
    output.push_str(&format!("{login:?}"));
    let sync = app.sync().await;
    output.push_str(&format!("{sync:?}"));
    output.push_str(&format!("{:?}", app.wxsync(&["status", "--json"]).await));

    let secrets = app.secrets_sent();
    assert!(
        secrets.len() >= 5,
        "skey, sid, pass_ticket, cookies: {secrets:?}"
    );
    let mut db = Vec::new();
    for suffix in ["", "-wal"] {
        let mut p = app.db.clone().into_os_string();
        p.push(suffix);
        db.extend(std::fs::read(p).unwrap_or_default());
    }
    let db = String::from_utf8_lossy(&db);
    for secret in &secrets {
        assert!(!db.contains(secret.as_str()), "a secret is in the database");
        assert!(
            !output.contains(secret.as_str()),
            "a secret is in the output/logs"
        );
    }
    let head: String =
        sqlx::query_scalar("SELECT head_img_url FROM contacts WHERE head_img_url != '' LIMIT 1")
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert!(!head.contains("skey"), "{head}");
}
