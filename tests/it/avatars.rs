//! Avatars: fetched with the session, kept content-addressed across logins,
//! fetched again only when their `seq` changes; and the export.

use std::collections::BTreeMap;

use sqlx::Row;
use wxsync::simulator::{Endpoint, Fault, SimConfig, SimKind};

use crate::helpers::{TestApp, small_account};

fn account() -> SimConfig {
    SimConfig {
        friends: 30,
        saved_groups: 4,
        unsaved_groups: 2,
        max_group_members: 12,
        ..small_account()
    }
}

/// Logged in and synced, with the avatar fetch unpaced.
async fn synced() -> TestApp {
    let app = TestApp::spawn(account()).await;
    app.fetch_avatars("0s");
    app.login().await;
    app.sync().await;
    app
}

fn avatar_calls(app: &TestApp) -> usize {
    app.calls_to(Endpoint::GetIcon) + app.calls_to(Endpoint::GetHeadImg)
}

/// contact_id → avatar_sha256 of every live contact with an avatar URL.
async fn avatars_of(app: &TestApp) -> BTreeMap<i64, Option<String>> {
    sqlx::query_as(
        "SELECT contact_id, avatar_sha256 FROM contacts
         WHERE deleted_at IS NULL AND head_img_url != ''",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn sha_of(app: &TestApp, user_name: &str) -> Option<String> {
    app.text(
        "SELECT avatar_sha256 FROM contacts WHERE user_name = ?",
        user_name,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn wxsync_avatars_stores_every_image_once_and_a_second_run_asks_for_none() {
    let app = synced().await;
    let run = app.wxsync(&["avatars"]).await;
    assert!(run.ok(), "{run:?}");

    let avatars = avatars_of(&app).await;
    assert!(avatars.len() > 40, "{} contacts", avatars.len());
    assert!(avatars.values().all(Option::is_some), "{avatars:?}");
    assert_eq!(avatar_calls(&app), avatars.len(), "one request per contact");
    let groups = app
        .scalar("SELECT count(*) FROM contacts WHERE kind = 'group' AND deleted_at IS NULL")
        .await;
    assert_eq!(app.calls_to(Endpoint::GetHeadImg) as i64, groups);
    // Every call carried the session's cookies and skey.
    for call in app
        .sim
        .calls()
        .iter()
        .filter(|c| matches!(c.endpoint, Endpoint::GetIcon | Endpoint::GetHeadImg))
    {
        assert!(call.cookies.contains("wxsid="), "{call:?}");
        assert!(call.query.contains("skey=%40crypt_"), "{call:?}");
    }
    // Content-addressed: the name is the sha256 of the bytes, the MIME
    // type and size are the bytes'; distinct contacts, distinct images.
    let pool = app.db().await;
    let rows = sqlx::query("SELECT sha256, image, mime, bytes FROM avatars")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), avatars.len());
    for row in &rows {
        let image: Vec<u8> = row.get("image");
        let sha: String = row.get("sha256");
        use sha2::Digest;
        let want: String = sha2::Sha256::digest(&image)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, want);
        assert_eq!(row.get::<String, _>("mime"), "image/jpeg");
        assert_eq!(row.get::<i64, _>("bytes"), image.len() as i64);
    }
    assert_eq!(
        app.scalar("SELECT count(*) FROM contact_changes WHERE field = 'avatar'")
            .await,
        0,
        "a first fetch writes no history"
    );

    let before = avatar_calls(&app);
    let again = app.wxsync(&["avatars"]).await;
    assert!(again.ok(), "{again:?}");
    assert_eq!(
        avatar_calls(&app),
        before,
        "the second run asks for nothing"
    );
    assert!(again.stdout.contains("0 requests"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_avatar_is_fetched_alone_and_recorded_and_a_new_login_keeps_the_rest() {
    let app = synced().await;
    assert!(app.wxsync(&["avatars"]).await.ok());
    let friend = app.first_friend();
    let old = sha_of(&app, &friend).await.expect("fetched");
    let kept = avatars_of(&app).await;

    app.sim.new_avatar(&friend);
    // A full sync that rewrites rows keeps their images: the renamed
    // friend's, and the changed one's until its new image is fetched.
    let other = second_friend(&app);
    let others = sha_of(&app, &other).await.expect("fetched");
    app.sim.rename(&other, "Renamed");
    app.sync().await;
    assert_eq!(
        app.text("SELECT nick_name FROM contacts WHERE user_name = ?", &other)
            .await
            .as_deref(),
        Some("Renamed")
    );
    assert_eq!(sha_of(&app, &other).await, Some(others));
    assert_eq!(sha_of(&app, &friend).await, Some(old.clone()));
    let before = avatar_calls(&app);
    let run = app.wxsync(&["avatars"]).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(avatar_calls(&app), before + 1, "only the changed one");
    let new = sha_of(&app, &friend).await.expect("fetched again");
    assert_ne!(new, old);
    let history: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT source, change, old_value, new_value FROM contact_changes WHERE field = 'avatar'",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    assert_eq!(
        history,
        vec![("avatar".into(), "updated".into(), old.clone(), new.clone())]
    );
    // The old image stays while history names it.
    assert_eq!(
        app.text("SELECT sha256 FROM avatars WHERE sha256 = ?", &old)
            .await,
        Some(old.clone())
    );

    // A new login: every user name changes, the re-link keeps the rows,
    // and with them the images: nothing is fetched again.
    let changed = contact_id_of(&app, &friend).await;
    app.login().await;
    app.sync().await;
    let after_relink = avatars_of(&app).await;
    let relinked = app
        .scalar("SELECT count(*) FROM contact_changes WHERE change = 'relinked'")
        .await;
    assert!(relinked > 40, "{relinked} relinked");
    let mut compared = 0;
    for (id, sha) in kept.iter().filter(|(id, _)| **id != changed) {
        if let Some(now) = after_relink.get(id) {
            assert_eq!(now, sha, "contact {id} kept its image");
            compared += 1;
        }
    }
    assert!(compared > 40, "{compared} compared");
    let missing = after_relink.values().filter(|s| s.is_none()).count();
    let before = avatar_calls(&app);
    let run = app.wxsync(&["avatars"]).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(
        avatar_calls(&app),
        before + missing,
        "only contacts new to the cache"
    );

    // Once history no longer names the old image (retention), the next
    // full sync removes it; the current ones stay.
    let pool = app.db().await;
    sqlx::query(
        "UPDATE contact_changes SET at = '2000-01-01T00:00:00.000Z' WHERE field = 'avatar'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    app.sync().await;
    assert_eq!(
        app.text("SELECT sha256 FROM avatars WHERE sha256 = ?", &old)
            .await,
        None
    );
    assert_eq!(
        app.text("SELECT sha256 FROM avatars WHERE sha256 = ?", &new)
            .await,
        Some(new)
    );
}

fn second_friend(app: &TestApp) -> String {
    app.sim
        .account()
        .contacts
        .into_iter()
        .filter(|c| c.kind == SimKind::Friend)
        .nth(1)
        .expect("two friends")
        .user_name
}

async fn contact_id_of(app: &TestApp, user_name: &str) -> i64 {
    app.text(
        "SELECT CAST(contact_id AS TEXT) FROM contacts WHERE user_name = ?",
        user_name,
    )
    .await
    .unwrap()
    .parse()
    .unwrap()
}

/// `avatars.counts` of `wxsync status --json`.
async fn status_counts(app: &TestApp) -> serde_json::Value {
    let run = app.wxsync(&["status", "--json"]).await;
    assert!(run.ok(), "{run:?}");
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["avatars"]["fetch"], "contacts");
    status["avatars"]["counts"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_body_is_not_stored_and_is_asked_for_again() {
    let app = synced().await;
    let contacts = app
        .scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NULL AND head_img_url != ''")
        .await;
    let counts = status_counts(&app).await;
    assert_eq!(counts["never_fetched"], contacts, "{counts}");
    assert_eq!(counts["images"], 0, "{counts}");
    app.sim.fail(Endpoint::GetIcon, Fault::Empty, 2);
    let run = app.wxsync(&["avatars"]).await;
    assert!(run.ok(), "retried until stored: {run:?}");
    let avatars = avatars_of(&app).await;
    assert!(avatars.values().all(Option::is_some));
    assert_eq!(avatar_calls(&app), avatars.len() + 2);

    // Without end: the command stops, says how many are missing and why,
    // and stores nothing for them.
    app.sim.new_avatar(&app.first_friend());
    app.sync().await;
    app.sim.fail(Endpoint::GetIcon, Fault::Empty, 1000);
    let run = app.wxsync(&["avatars"]).await;
    assert!(!run.ok(), "{run:?}");
    assert!(run.stderr.contains("1 of "), "{run:?}");
    assert!(
        run.stderr
            .contains("have no current avatar (1: the server sent an empty body)"),
        "{run:?}"
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM avatars").await as usize,
        avatars.len()
    );

    // `status` counts the one whose image is out of date, and the bytes.
    let counts = status_counts(&app).await;
    let bytes = app.scalar("SELECT sum(bytes) FROM avatars").await;
    let want = serde_json::json!({
        "contacts": contacts, "current": contacts - 1, "missing": 1, "never_fetched": 0,
        "changed": 1, "images": contacts, "bytes": bytes,
    });
    assert_eq!(counts, want);
    let run = app.wxsync(&["status"]).await;
    let line = format!(
        "avatars:   {} of {contacts} contacts have their image; 1 missing (0 never fetched, \
         1 changed since); {contacts} images stored, {:.1} MB",
        contacts - 1,
        bytes as f64 / 1e6
    );
    assert!(run.stdout.contains(&line), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_session_cookies_the_server_sends_an_empty_body() {
    let app = synced().await;
    let url: String = app
        .text(
            "SELECT head_img_url FROM contacts WHERE user_name = ?",
            &app.first_friend(),
        )
        .await
        .unwrap();
    // The real skey, but no cookies.
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(app.session_file()).unwrap()).unwrap();
    let skey = session["skey"].as_str().expect("skey in the session file");
    let mut url = app.sim.base_url().join(&url).unwrap();
    url.query_pairs_mut().append_pair("skey", skey);
    let reply = reqwest::get(url).await.unwrap();
    assert_eq!(reply.status(), 200);
    let body = reply.bytes().await.unwrap();
    assert!(body.is_empty(), "{} bytes", body.len());
}

/// Live contacts with an avatar URL but no image yet.
async fn missing(app: &TestApp) -> i64 {
    app.scalar(
        "SELECT count(*) FROM contacts
         WHERE deleted_at IS NULL AND head_img_url != '' AND avatar_sha256 IS NULL",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_fetches_in_the_background_and_follows_a_pushed_avatar_change() {
    let app = TestApp::spawn(account()).await;
    app.fetch_avatars("0s");
    app.login().await;
    // One refused image: asked for again after a back-off, and logged with why.
    app.sim.fail(Endpoint::GetIcon, Fault::Empty, 1);
    let daemon = app.start_daemon(&[]);
    app.eventually("every avatar after the first full sync", || async {
        app.ok_runs().await == 1 && missing(&app).await == 0
    })
    .await;
    let contacts = avatars_of(&app).await.len();
    assert_eq!(avatar_calls(&app), contacts + 1);

    // Pushed as ModContact: an avatar change, a rename and a remark edit
    // queued at the same time all land.
    let friend = app.first_friend();
    let other = second_friend(&app);
    let old = sha_of(&app, &friend).await.unwrap();
    let others = sha_of(&app, &other).await.unwrap();
    app.sim.new_avatar(&friend);
    app.sim.rename(&other, "Pushed name");
    let pool = app.db().await;
    sqlx::query("INSERT INTO pending_ops (user_name, remark_name) VALUES (?, 'Edited')")
        .bind(&other)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    app.eventually("the new avatar", || async {
        sha_of(&app, &friend).await.is_some_and(|sha| sha != old)
    })
    .await;
    assert_eq!(app.op_settled(1).await, "done");
    assert_eq!(
        app.text("SELECT nick_name FROM contacts WHERE user_name = ?", &other)
            .await
            .as_deref(),
        Some("Pushed name")
    );
    // The increments that rewrote the other friend's row kept its image.
    assert_eq!(sha_of(&app, &other).await, Some(others));
    assert_eq!(
        app.scalar("SELECT count(*) FROM contact_changes WHERE source = 'avatar'")
            .await,
        1
    );
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("1: the server sent an empty body"), "{logs}");
    assert_eq!(
        avatar_calls(&app),
        contacts + 2,
        "only the changed one again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_the_daemon_goes_on_where_it_stopped() {
    let app = TestApp::spawn(account()).await;
    app.fetch_avatars("100ms");
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first images stored", || async {
        app.scalar("SELECT count(*) FROM avatars").await >= 5
    })
    .await;
    // A few more fetched but not yet written when the stop comes.
    let written = app.scalar("SELECT count(*) FROM avatars").await as usize;
    app.eventually("more requests", || async {
        avatar_calls(&app) >= written + 3
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let stored = app.scalar("SELECT count(*) FROM avatars").await as usize;
    let total = avatars_of(&app).await.len();
    assert!(stored < total, "{stored} of {total} before the restart");
    // Every image fetched before the stop was kept (the one in flight at
    // most was lost).
    assert!(
        avatar_calls(&app) <= stored + 1,
        "{} calls",
        avatar_calls(&app)
    );

    app.fetch_avatars("0s");
    let daemon = app.start_daemon(&[]);
    app.eventually("every avatar after the restart", || async {
        missing(&app).await == 0
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        avatar_calls(&app) <= total + 1,
        "no image fetched twice: {} calls for {total}",
        avatar_calls(&app)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_session_stops_the_fetch() {
    let app = TestApp::spawn(account()).await;
    app.fetch_avatars("50ms");
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first images stored", || async {
        app.scalar("SELECT count(*) FROM avatars").await >= 3
    })
    .await;
    let at_logout = avatar_calls(&app);
    app.sim.force_logout(1101);
    app.eventually("the daemon to see the logout", || async {
        daemon.logs().contains("the server ended the session")
    })
    .await;
    app.eventually("the session's tasks to stop", || async {
        daemon.logs().contains("waiting for a new session")
    })
    .await;
    let after = avatar_calls(&app) - at_logout;
    assert!(after <= 5, "{after} avatar requests after the logout");
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
}

fn unfold(text: &str) -> String {
    text.replace("\r\n ", "")
}

/// UID → the card's lines, unfolded.
fn cards(text: &str) -> BTreeMap<String, Vec<String>> {
    unfold(text)
        .split("BEGIN:VCARD\r\n")
        .filter(|c| !c.is_empty())
        .map(|card| {
            let lines: Vec<String> = card.split("\r\n").map(str::to_owned).collect();
            let uid = lines
                .iter()
                .find_map(|l| l.strip_prefix("UID:"))
                .expect("every card has a UID")
                .to_owned();
            (uid, lines)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_one_vcard_per_live_friend_that_a_new_login_updates_in_place() {
    let app = synced().await;
    assert!(app.wxsync(&["avatars"]).await.ok());
    let friend = app.first_friend();
    let pool = app.db().await;
    sqlx::query("UPDATE contacts SET remark_name = 'Ann; the, \\boss' WHERE user_name = ?")
        .bind(&friend)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = app.dir.path().join("book.vcf");
    let run = app
        .wxsync(&[
            "export",
            "--format",
            "vcard",
            "--output",
            out.to_str().unwrap(),
        ])
        .await;
    assert!(run.ok(), "{run:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.lines().all(|l| l.len() <= 76), "folded at 75 octets");
    let first = cards(&text);
    let friends = app
        .scalar("SELECT count(*) FROM contacts WHERE kind = 'friend' AND deleted_at IS NULL")
        .await;
    assert_eq!(first.len() as i64, friends);
    let card = first
        .values()
        .find(|lines| lines.iter().any(|l| l.starts_with("FN:Ann")))
        .expect("the card of the friend with a remark");
    assert!(
        card.contains(&"FN:Ann\\; the\\, \\\\boss".to_owned()),
        "{card:?}"
    );
    let nick = app
        .text(
            "SELECT nick_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await
        .unwrap();
    assert!(
        card.iter()
            .any(|l| l.starts_with("NICKNAME:") && l.len() > 9 && !nick.is_empty()),
        "{card:?}"
    );
    let photo = card
        .iter()
        .find_map(|l| l.strip_prefix("PHOTO:data:image/jpeg;base64,"))
        .expect("a photo");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(photo)
        .unwrap();
    let pool = app.db().await;
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT a.image FROM avatars a JOIN contacts c ON c.avatar_sha256 = a.sha256
         WHERE c.user_name = ?",
    )
    .bind(&friend)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(bytes, stored);

    // CSV and JSON, with groups.
    let groups = app
        .scalar("SELECT count(*) FROM contacts WHERE kind = 'group' AND deleted_at IS NULL")
        .await;
    let run = app.wxsync(&["export", "--format", "csv", "--groups"]).await;
    assert!(run.ok(), "{run:?}");
    assert!(
        run.stdout
            .starts_with("contact_id,kind,nick_name,remark_name,")
    );
    assert!(
        run.stdout.contains("\"Ann; the, \\boss\""),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("\r\n").count() as i64,
        1 + friends + groups
    );
    let run = app
        .wxsync(&["export", "--format", "json", "--groups"])
        .await;
    assert!(run.ok(), "{run:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows.len() as i64, friends + groups);
    assert!(rows.iter().all(|r| r["avatar_sha256"].is_string()));

    // After a new login every user name is new; the cards are the same ones.
    app.login().await;
    app.sync().await;
    assert_eq!(
        app.scalar("SELECT unlinked FROM sync_runs ORDER BY id DESC LIMIT 1")
            .await,
        0
    );
    let run = app
        .wxsync(&[
            "export",
            "--format",
            "vcard",
            "--output",
            out.to_str().unwrap(),
        ])
        .await;
    assert!(run.ok(), "{run:?}");
    let second = cards(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wxsync_avatars_stops_when_the_server_no_longer_serves_the_session() {
    let app = synced().await;
    // A session the server ended answers every avatar with an empty body.
    app.sim.force_logout(1101);
    let run = app.wxsync(&["avatars"]).await;
    assert!(!run.ok(), "{run:?}");
    assert!(
        run.stderr.contains("the server sent an empty body"),
        "{run:?}"
    );
    // Five failures in a row end it (unpaced, with four in flight, up to
    // three more requests may already be on their way).
    let calls = avatar_calls(&app);
    assert!((5..=8).contains(&calls), "{calls} requests");
    assert_eq!(app.scalar("SELECT count(*) FROM avatars").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_fetch_off_nothing_is_asked_for() {
    // The test config has `[avatars] fetch = "off"`.
    let app = TestApp::spawn(account()).await;
    app.login().await;
    let run = app.wxsync(&["avatars"]).await;
    assert!(!run.ok(), "{run:?}");
    assert!(run.stderr.contains("avatars.fetch is \"off\""), "{run:?}");
    assert_eq!(avatar_calls(&app), 0);
}
