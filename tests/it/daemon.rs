use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::net::UnixDatagram;
use wxsync::simulator::{Endpoint, Fault, SimKind};

use crate::helpers::{TestApp, small_account};

async fn logged_in() -> TestApp {
    let app = TestApp::spawn(small_account()).await;
    app.configure("[ops]\npoll_interval = \"100ms\"\n");
    app.login().await;
    app
}

fn friends(app: &TestApp) -> Vec<String> {
    app.sim
        .account()
        .contacts
        .iter()
        .filter(|c| c.kind == SimKind::Friend)
        .map(|c| c.user_name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_changes_reach_the_cache_without_a_full_sync() {
    let app = logged_in().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;

    let f = friends(&app);
    let group = app
        .sim
        .account()
        .groups
        .into_iter()
        .find(|g| g.members.len() > 3)
        .unwrap();
    let leaver = group.members[2].user_name.clone();
    app.sim.rename(&f[0], "Pushed name");
    app.sim.remove_contact(&f[1]);
    app.sim.member_leaves(&group.user_name, &leaver);

    app.eventually("the rename", || async {
        app.text("SELECT nick_name FROM contacts WHERE user_name = ?", &f[0])
            .await
            .as_deref()
            == Some("Pushed name")
    })
    .await;
    app.eventually("the removal", || async {
        app.text("SELECT deleted_at FROM contacts WHERE user_name = ?", &f[1])
            .await
            .is_some()
    })
    .await;
    app.eventually("the member leaving", || async {
        app.text(
            "SELECT member_user_name FROM memberships WHERE member_user_name = ?",
            &leaver,
        )
        .await
        .is_none()
    })
    .await;
    assert_eq!(app.ok_runs().await, 1, "no full sync was needed");
    assert!(app.sim.calls().iter().any(|c| c.endpoint == Endpoint::Sync));
    let status = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(v["last_increment_at"].is_string(), "{status:?}");
    assert!(v["last_keepalive_at"].is_string(), "{status:?}");
    assert_eq!(v["session"]["state"], "active");
    assert!(v["counts"]["contacts"].as_i64().unwrap() > 0);

    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let secrets = app.secrets_sent();
    assert!(!secrets.is_empty());
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the daemon's debug log"
        );
    }
    let mode = std::fs::metadata(app.session_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the rewritten session file is still private"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_needs_no_new_login() {
    let app = logged_in().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0));
    let logins = app
        .sim
        .calls()
        .iter()
        .filter(|c| c.endpoint == Endpoint::JsLogin)
        .count();

    let daemon = app.start_daemon(&[]);
    app.eventually("a full sync after the restart", || async {
        app.ok_runs().await == 2
    })
    .await;
    let f = friends(&app);
    app.sim.rename(&f[0], "After restart");
    app.eventually("the rename after restart", || async {
        app.text("SELECT nick_name FROM contacts WHERE user_name = ?", &f[0])
            .await
            .as_deref()
            == Some("After restart")
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let after = app
        .sim
        .calls()
        .iter()
        .filter(|c| c.endpoint == Endpoint::JsLogin)
        .count();
    assert_eq!(after, logins, "no new QR login");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_logout_keeps_rows_stops_calls_and_resumes_after_login() {
    let app = logged_in().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let before = app.dump().await;

    app.sim.force_logout(1101);
    app.eventually("status says logged_out", || async {
        let run = app.wxsync(&["status", "--json"]).await;
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v["session"]["state"] == "logged_out"
    })
    .await;
    assert_eq!(app.dump().await, before, "every row kept");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = app.sim.calls().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.sim.calls().len(),
        calls,
        "no calls against a dead session"
    );

    app.login().await;
    app.eventually("a full sync under the new login", || async {
        app.ok_runs().await == 2
    })
    .await;
    let run = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["session"]["state"], "active");
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        logs.matches("run `wxsync login`").count(),
        1,
        "one clear line: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_session_the_daemon_waits_for_a_login() {
    let app = TestApp::spawn(small_account()).await;
    let daemon = app.start_daemon(&[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(app.sim.calls().is_empty(), "it never logs in by itself");

    app.login().await;
    app.eventually("a full sync once logged in", || async {
        app.ok_runs().await == 1
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(logs.matches("run `wxsync login`").count(), 1, "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_the_middle_of_a_sync_exits_cleanly_and_writes_nothing_half() {
    let app = logged_in().await;
    let before = app.dump().await;
    app.sim.fail(
        Endpoint::BatchGetContact,
        Fault::Delay(Duration::from_secs(20)),
        100,
    );
    let daemon = app.start_daemon(&[]);
    app.eventually("the sync reaching the batch calls", || async {
        app.sim
            .calls()
            .iter()
            .any(|c| c.endpoint == Endpoint::BatchGetContact)
    })
    .await;

    let (code, logs) = daemon.stop().await;

    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(app.dump().await, before);
    let status = app
        .text("SELECT status FROM sync_runs ORDER BY id DESC LIMIT ?", "1")
        .await;
    assert_eq!(
        status.as_deref(),
        Some("failed"),
        "the interrupted run is closed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_schedule_ticks_are_skipped() {
    let app = logged_in().await;
    app.configure("[sync]\nschedule = \"* * * * * *\"\n");
    app.sim.fail(
        Endpoint::BatchGetContact,
        Fault::Delay(Duration::from_millis(2500)),
        3,
    );
    let daemon = app.start_daemon(&[]);
    app.eventually("a skipped tick", || async {
        daemon.logs().contains("skipped")
    })
    .await;
    app.eventually("the slow sync finishing", || async {
        app.ok_runs().await >= 1
    })
    .await;
    let running = app
        .scalar("SELECT count(*) FROM sync_runs WHERE status = 'running'")
        .await;
    assert!(running <= 1);
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let interrupted = app
        .scalar("SELECT count(*) FROM sync_runs WHERE error LIKE 'interrupted%'")
        .await;
    assert_eq!(interrupted, 0, "no sync started while another was running");
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let app = logged_in().await;
    let socket_path = app.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let daemon = app.start_daemon(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "400000"),
    ]);

    let mut heard = String::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(heard.contains("READY=1") && heard.contains("WATCHDOG=1")) {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .expect("READY and WATCHDOG within 30 s")
            .unwrap();
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
        heard.push('\n');
    }
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    while let Ok(n) = socket.try_recv(&mut buf) {
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
        heard.push('\n');
    }
    assert!(heard.contains("STOPPING=1"), "{heard}");
    assert!(heard.contains("STATUS="), "{heard}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_login_while_running_is_picked_up_and_old_names_are_kept_as_deleted() {
    let app = logged_in().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let old_self = app.sim.account().self_user.user_name;

    app.login().await;
    app.eventually("a full sync under the new login", || async {
        app.ok_runs().await == 2
    })
    .await;

    let new_self = app.sim.account().self_user.user_name;
    assert_ne!(old_self, new_self, "user names change at every login");
    let old = app
        .text(
            "SELECT deleted_at FROM contacts WHERE user_name = ?",
            &old_self,
        )
        .await;
    assert!(old.is_some(), "the old row is kept, marked deleted");
    let new = app
        .text("SELECT kind FROM contacts WHERE user_name = ?", &new_self)
        .await;
    assert_eq!(new.as_deref(), Some("self"));
    let stale = app
        .scalar(
            "SELECT count(*) FROM memberships m JOIN contacts g ON g.user_name = m.group_user_name \
             WHERE g.deleted_at IS NOT NULL",
        )
        .await;
    assert_eq!(stale, 0, "groups marked deleted have no membership rows");
    // The new login kicks the old session (1101) and replaces the file; in
    // either order the daemon must not write "logged out" over the new login.
    let status = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["session"]["state"], "active", "{status:?}");
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_without_a_session_says_none() {
    let app = TestApp::spawn(small_account()).await;
    let run = app.wxsync(&["status", "--json"]).await;
    assert!(run.ok(), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["session"]["state"], "none");
    assert!(v["last_sync"].is_null());
    assert_eq!(v["ops"]["pending"], 0);
}
