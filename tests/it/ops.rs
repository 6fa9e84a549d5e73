use std::time::Duration;

use wxsync::simulator::{Endpoint, Fault, SimKind};

use crate::helpers::{Daemon, TestApp, small_account};

/// Logged in, daemon running, first full sync done.
async fn running() -> (TestApp, Daemon) {
    let app = TestApp::spawn(small_account()).await;
    app.configure("[ops]\npoll_interval = \"100ms\"\n");
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    (app, daemon)
}

fn of_kind(app: &TestApp, kind: SimKind) -> String {
    app.sim
        .account()
        .contacts
        .iter()
        .find(|c| c.kind == kind)
        .unwrap()
        .user_name
        .clone()
}

async fn queue(app: &TestApp, user_name: &str, remark: &str) -> i64 {
    let pool = app.db().await;
    let id = sqlx::query_scalar(
        "INSERT INTO pending_ops (user_name, remark_name) VALUES (?, ?) RETURNING id",
    )
    .bind(user_name)
    .bind(remark)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    id
}

#[derive(Debug, sqlx::FromRow)]
struct Op {
    status: String,
    attempts: i64,
    last_error: Option<String>,
    done_at: Option<String>,
}

async fn op(app: &TestApp, id: i64) -> Op {
    sqlx::query_as("SELECT status, attempts, last_error, done_at FROM pending_ops WHERE id = ?")
        .bind(id)
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

async fn settled(app: &TestApp, id: i64) -> Op {
    app.eventually("the op to settle", || async {
        op(app, id).await.status != "pending"
    })
    .await;
    op(app, id).await
}

fn oplog_calls(app: &TestApp) -> Vec<serde_json::Value> {
    app.sim
        .calls()
        .iter()
        .filter(|c| c.endpoint == Endpoint::OpLog)
        .map(|c| serde_json::from_str(&c.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remark_edit_is_applied_verified_and_stored() {
    let (app, daemon) = running().await;
    let friend = of_kind(&app, SimKind::Friend);

    let id = queue(&app, &friend, "Alice & Bob 😀").await;
    let done = settled(&app, id).await;

    assert_eq!(done.status, "done", "{done:?}");
    assert_eq!(done.attempts, 1);
    assert!(done.done_at.is_some());
    let stored = app
        .text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await;
    assert_eq!(stored.as_deref(), Some("Alice & Bob 😀"));
    let calls = oplog_calls(&app);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["CmdId"], 2);
    assert_eq!(calls[0]["UserName"], friend.as_str());
    assert_eq!(calls[0]["RemarkName"], "Alice & Bob 😀");
    let call = app
        .sim
        .calls()
        .into_iter()
        .find(|c| c.endpoint == Endpoint::OpLog)
        .unwrap();
    assert!(
        call.cookies.contains("wxsid="),
        "sent with the session cookies"
    );
    let sim_remark = app
        .sim
        .account()
        .contacts
        .into_iter()
        .find(|c| c.user_name == friend)
        .unwrap()
        .remark_name;
    assert!(sim_remark.contains("Alice &amp; Bob"), "{sim_remark}");

    let cleared = queue(&app, &friend, "").await;
    assert_eq!(settled(&app, cleared).await.status, "done");
    let stored = app
        .text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await;
    assert_eq!(stored.as_deref(), Some(""));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_that_cannot_apply_fail_with_a_reason() {
    let (app, daemon) = running().await;
    let me = app.sim.account().self_user.user_name;
    let group = app.sim.account().groups[0].user_name.clone();
    let special = of_kind(&app, SimKind::Special);

    for (who, word) in [
        ("@nobody", "change at every login"),
        (group.as_str(), "group"),
        (special.as_str(), "special"),
        (me.as_str(), "itself"),
    ] {
        let id = queue(&app, who, "x").await;
        let failed = settled(&app, id).await;
        assert_eq!(failed.status, "failed");
        assert!(
            failed.last_error.as_deref().unwrap().contains(word),
            "{failed:?}"
        );
        assert_eq!(failed.attempts, 0, "nothing was sent");
    }
    assert!(oplog_calls(&app).is_empty());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_the_server_ignores_is_not_reported_done() {
    let (app, daemon) = running().await;
    app.sim.set_oplog_ignores(true);
    let friend = of_kind(&app, SimKind::Friend);

    let id = queue(&app, &friend, "Ignored").await;
    let failed = settled(&app, id).await;

    assert_eq!(failed.status, "failed");
    assert_eq!(
        failed.last_error.as_deref(),
        Some("the server accepted the edit but the remark did not change")
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_until_done() {
    let (app, daemon) = running().await;
    app.sim.fail(Endpoint::OpLog, Fault::Http(502), 1);
    app.sim.fail(Endpoint::OpLog, Fault::Ret(1205), 1);
    let friend = of_kind(&app, SimKind::Friend);

    let id = queue(&app, &friend, "Eventually").await;
    let done = settled(&app, id).await;

    assert_eq!(done.status, "done", "{done:?}");
    assert_eq!(done.attempts, 3);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_that_keeps_failing_is_given_up_after_bounded_attempts() {
    let (app, daemon) = running().await;
    app.sim.fail(Endpoint::OpLog, Fault::Http(503), 100);
    let friend = of_kind(&app, SimKind::Friend);

    let id = queue(&app, &friend, "Never").await;
    let failed = settled(&app, id).await;

    assert_eq!(failed.status, "failed");
    assert_eq!(failed.attempts, 5);
    assert!(
        failed
            .last_error
            .unwrap()
            .contains("gave up after 5 attempts")
    );
    assert_eq!(oplog_calls(&app).len(), 5);
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "the daemon keeps running: {logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn later_edits_supersede_earlier_ones() {
    let (app, daemon) = running().await;
    let friend = of_kind(&app, SimKind::Friend);
    let pool = app.db().await;
    sqlx::query("INSERT INTO pending_ops (user_name, remark_name) VALUES (?1, 'one'), (?1, 'two'), (?1, 'three')")
        .bind(&friend)
        .execute(&pool)
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM pending_ops ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();

    assert_eq!(settled(&app, ids[2]).await.status, "done");
    assert_eq!(op(&app, ids[0]).await.status, "superseded");
    assert_eq!(op(&app, ids[1]).await.status, "superseded");
    let calls = oplog_calls(&app);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["RemarkName"], "three");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ops_wait_untouched_while_logged_out() {
    let (app, daemon) = running().await;
    app.sim.force_logout(1101);
    app.eventually("the daemon noticing the logout", || async {
        daemon.logs().contains("run `wxsync login`")
    })
    .await;
    let friend = of_kind(&app, SimKind::Friend);

    let id = queue(&app, &friend, "Later").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let waiting = op(&app, id).await;
    assert_eq!((waiting.status.as_str(), waiting.attempts), ("pending", 0));
    assert!(oplog_calls(&app).is_empty());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_call_and_the_update_completes_the_op_once_on_restart() {
    let (app, daemon) = running().await;
    let friend = of_kind(&app, SimKind::Friend);
    app.sim.fail(
        Endpoint::BatchGetContact,
        Fault::Delay(Duration::from_secs(30)),
        1,
    );

    let id = queue(&app, &friend, "Crash-proof").await;
    app.eventually("the oplog call", || async { !oplog_calls(&app).is_empty() })
        .await;
    daemon.signal("-KILL");
    let mut daemon = daemon;
    daemon.child.wait().await.unwrap();
    assert_eq!(op(&app, id).await.status, "pending");

    let daemon = app.start_daemon(&[]);
    let done = settled(&app, id).await;
    assert_eq!(done.status, "done", "{done:?}");
    assert_eq!(done.attempts, 2, "the call was repeated once");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nonsense_rows_are_refused_at_insert_with_a_readable_error() {
    let app = TestApp::spawn(small_account()).await;
    app.wxsync(&["status"]).await;
    let long = "x".repeat(65);
    for (sql, word) in [
        (
            "INSERT INTO pending_ops (user_name, remark_name) VALUES ('', 'x')".to_string(),
            "user_name must not be empty",
        ),
        (
            "INSERT INTO pending_ops (user_name) VALUES ('@a')".to_string(),
            "NOT NULL constraint failed: pending_ops.remark_name",
        ),
        (
            format!("INSERT INTO pending_ops (user_name, remark_name) VALUES ('@a', '{long}')"),
            "at most 64 characters",
        ),
        (
            "INSERT INTO pending_ops (user_name, remark_name, status) VALUES ('@a', 'x', 'later')"
                .to_string(),
            "status must be one of",
        ),
    ] {
        let out = std::process::Command::new("sqlite3")
            .arg(&app.db)
            .arg(&sql)
            .output()
            .expect("the sqlite3 CLI is installed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(word), "{sql}: {err}");
    }
    assert_eq!(app.scalar("SELECT count(*) FROM pending_ops").await, 0);
    let ok = std::process::Command::new("sqlite3")
        .arg(&app.db)
        .arg("INSERT INTO pending_ops (user_name, remark_name) VALUES ('@a', '二十个汉字的备注也可以吗')")
        .status()
        .unwrap();
    assert!(ok.success(), "a remark in Chinese is counted in characters");
}
