//! Push login on logout (`[login] push_on_logout`): the daemon asks the
//! phone itself and resumes on the new session; unconfirmed or refused asks
//! stop without a loop; off, it never asks.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use wxsync::simulator::{Endpoint, PushLogin};

use crate::helpers::{TestApp, small_account};

/// An app logged in, with a hook that records each event's message in
/// `heard/<event>` (appending) and push login configured by `login`.
async fn pushing_app(login: &str) -> (TestApp, PathBuf) {
    let app = TestApp::spawn(small_account()).await;
    let heard = app.dir.path().join("heard");
    std::fs::create_dir(&heard).unwrap();
    let hook = app.dir.path().join("hook");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$WXSYNC_MESSAGE\" >> {heard:?}/$WXSYNC_EVENT\n"),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    app.configure(&format!(
        "[notify]\ncommand = {hook:?}\nrepeat = \"0s\"\n[login]\n{login}"
    ));
    app.login().await;
    (app, heard)
}

fn heard(dir: &std::path::Path, event: &str) -> String {
    std::fs::read_to_string(dir.join(event)).unwrap_or_default()
}

async fn push_state(app: &TestApp) -> serde_json::Value {
    let run = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    v["push"].clone()
}

fn login_id(app: &TestApp) -> String {
    app.session_json()["login_id"].as_str().unwrap().to_owned()
}

async fn contact_ids(app: &TestApp) -> BTreeSet<i64> {
    let pool = app.db().await;
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT contact_id FROM contacts WHERE deleted_at IS NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_forced_logout_the_daemon_resumes_on_a_pushed_login_and_relinks() {
    let (app, events) = pushing_app("push_on_logout = true\npush_wait = \"10s\"\n").await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let before = contact_ids(&app).await;
    let old_login = login_id(&app);
    let qr_logins = app.calls_to(Endpoint::JsLogin);

    app.sim.force_logout(1101);
    app.eventually("a full sync on the pushed session", || async {
        app.ok_runs().await == 2
    })
    .await;

    assert_ne!(login_id(&app), old_login, "a new session was saved");
    let mode = std::fs::metadata(app.session_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(app.calls_to(Endpoint::PushLogin), 1);
    assert_eq!(
        app.calls_to(Endpoint::JsLogin),
        qr_logins,
        "never a QR code"
    );
    assert_eq!(
        contact_ids(&app).await,
        before,
        "every contact kept its row"
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL")
            .await,
        0
    );
    assert!(
        app.scalar("SELECT count(*) FROM contact_changes WHERE change = 'relinked'")
            .await
            > 0,
        "the first full sync re-linked"
    );
    let push = push_state(&app).await;
    assert_eq!(push["enabled"], true);
    assert_eq!(push["last"]["state"], "confirmed", "{push}");
    let status = app.wxsync(&["status"]).await;
    assert!(
        status.stdout.contains("push:      confirmed at"),
        "{status:?}"
    );

    app.eventually("the hook heard it all", || async {
        heard(&events, "logged_in").contains("a new session")
    })
    .await;
    assert!(heard(&events, "logged_out").contains("asking the phone"));
    assert!(heard(&events, "push_login_sent").contains("ask 1 of 3"));
    assert_eq!(heard(&events, "login_needed"), "", "nobody was needed");
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_push_login_off_a_logout_makes_no_push_login_call() {
    let (app, events) = pushing_app("push_on_logout = false\n").await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    app.sim.force_logout(1101);
    app.eventually("the daemon waiting for a login", || async {
        daemon.logs().contains("waiting for a new session")
    })
    .await;
    assert!(heard(&events, "login_needed").contains("run `wxsync login`"));
    // A QR login (no push of its own): the daemon resumes on it, and had it
    // asked the phone, it would have done so before picking it up.
    let run = app.wxsync(&["login", "--qr"]).await;
    assert!(run.ok(), "{run:?}");
    app.eventually("a full sync on the new session", || async {
        app.ok_runs().await == 2
    })
    .await;
    assert_eq!(app.calls_to(Endpoint::PushLogin), 0);
    assert_eq!(push_state(&app).await["last"], serde_json::Value::Null);
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(app.calls_to(Endpoint::PushLogin), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unconfirmed_asks_stop_after_three_and_a_refusal_after_one() {
    let (app, events) =
        pushing_app("push_on_logout = true\npush_wait = \"1s\"\npush_retry = \"1s\"\n").await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let qr_logins = app.calls_to(Endpoint::JsLogin);

    // The phone never answers: three asks, then no more.
    app.sim.set_push_login(PushLogin::Ignore);
    app.sim.force_logout(1101);
    app.eventually("the asks given up", || async {
        push_state(&app).await["last"]["state"] == "gave_up"
    })
    .await;
    assert_eq!(app.calls_to(Endpoint::PushLogin), 3);
    assert_eq!(
        app.calls_to(Endpoint::JsLogin),
        qr_logins,
        "never a QR code"
    );
    let needed = heard(&events, "login_needed");
    assert_eq!(needed.lines().count(), 3, "{needed}");
    assert!(
        needed.contains("the phone did not confirm within 1s"),
        "{needed}"
    );
    assert!(needed.contains("ask 2 of 3"), "{needed}");
    assert!(needed.contains("that was ask 3 of 3, the last"), "{needed}");
    let status = app.wxsync(&["status"]).await;
    assert!(status.stdout.contains("3 asks not confirmed"), "{status:?}");

    // A person logs in; the next logout meets a refusal: one ask only.
    let run = app.wxsync(&["login", "--qr"]).await;
    assert!(run.ok(), "{run:?}");
    app.eventually("a full sync on the new session", || async {
        app.ok_runs().await == 2
    })
    .await;
    app.sim.set_push_login(PushLogin::Refuse);
    app.sim.force_logout(1101);
    app.eventually("the refusal recorded", || async {
        push_state(&app).await["last"]["state"] == "refused"
    })
    .await;
    assert_eq!(app.calls_to(Endpoint::PushLogin), 4);
    let needed = heard(&events, "login_needed");
    assert!(
        needed
            .lines()
            .last()
            .unwrap()
            .contains("push login refused: the server refused push login (ret 2: antispam)"),
        "{needed}"
    );
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        app.calls_to(Endpoint::PushLogin),
        4,
        "no ask after the refusal"
    );
}
