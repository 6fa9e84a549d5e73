use std::time::Duration;

use regex::Regex;
use wxsync::simulator::{Endpoint, Fault, SimConfig, SimKind, StatusNotify};

use crate::helpers::{Daemon, TestApp, running, small_account};

/// Stops the daemon; it must have stopped cleanly. Returns its log.
async fn stop_ok(daemon: Daemon) -> String {
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "the daemon stops cleanly: {logs}");
    logs
}

fn of_kind(app: &TestApp, kind: SimKind) -> String {
    all_of_kind(app, kind).swap_remove(0)
}

fn all_of_kind(app: &TestApp, kind: SimKind) -> Vec<String> {
    app.sim
        .account()
        .contacts
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.user_name.clone())
        .collect()
}

async fn contact_id(app: &TestApp, user_name: &str) -> i64 {
    sqlx::query_scalar("SELECT contact_id FROM contacts WHERE user_name = ?")
        .bind(user_name)
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// `contact_changes` rows: (contact_id, user_name, source, change, field,
/// old_value, new_value), oldest first.
type Change = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn changes(app: &TestApp) -> Vec<Change> {
    sqlx::query_as(
        "SELECT contact_id, user_name, source, change, field, old_value, new_value \
         FROM contact_changes WHERE source = 'remark' ORDER BY id",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap()
}

async fn queue(app: &TestApp, user_name: &str, remark: &str) -> i64 {
    app.queue_edit(user_name, remark).await
}

/// How an op names its contact once wxsync has looked at it.
async fn named(app: &TestApp, id: i64) -> (Option<String>, Option<i64>) {
    sqlx::query_as("SELECT user_name, contact_id FROM pending_ops WHERE id = ?")
        .bind(id)
        .fetch_one(&app.db().await)
        .await
        .unwrap()
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
    app.op_settled(id).await;
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
    let again = queue(&app, &friend, "").await;
    assert_eq!(settled(&app, again).await.status, "done");

    let id = contact_id(&app, &friend).await;
    let row = |old: &str, new: &str| {
        (
            id,
            friend.clone(),
            "remark".to_string(),
            "updated".to_string(),
            Some("remark_name".to_string()),
            Some(old.to_string()),
            Some(new.to_string()),
        )
    };
    assert_eq!(
        changes(&app).await,
        [row("", "Alice & Bob 😀"), row("Alice & Bob 😀", "")],
        "one history row per change of the remark; none for an edit that changed nothing"
    );
    stop_ok(daemon).await;
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
    stop_ok(daemon).await;
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
    stop_ok(daemon).await;
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
    stop_ok(daemon).await;
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
    stop_ok(daemon).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_edit_gives_up_the_next_starts_with_a_fresh_back_off() {
    let (app, daemon) = running().await;
    // Five failures give the first edit up; the second edit's first call
    // fails too, and its retry must wait the first delay (retry_delay,
    // 20 ms in the test config), not the sixth.
    app.sim.fail(Endpoint::OpLog, Fault::Http(503), 6);
    let friends = all_of_kind(&app, SimKind::Friend);
    let pool = app.db().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO pending_ops (user_name, remark_name) VALUES (?, 'Never'), (?, 'Later') \
         RETURNING id",
    )
    .bind(&friends[0])
    .bind(&friends[1])
    .fetch_all(&pool)
    .await
    .unwrap();

    assert_eq!(settled(&app, ids[0]).await.status, "failed");
    let second = settled(&app, ids[1]).await;
    assert_eq!((second.status.as_str(), second.attempts), ("done", 2));

    let logs = stop_ok(daemon).await;
    let retry = Regex::new(r"remark edit will be retried op=(\d+) .*retry_in_ms=(\d+)").unwrap();
    let delays: Vec<u64> = logs
        .lines()
        .filter_map(|l| retry.captures(l))
        .filter(|c| c[1] == ids[1].to_string())
        .map(|c| c[2].parse().unwrap())
        .collect();
    assert_eq!(delays.len(), 1, "{logs}");
    assert!(
        delays[0] <= 20,
        "the second edit's back-off started over: {delays:?}"
    );
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
    stop_ok(daemon).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_queued_under_an_earlier_name_reaches_the_contact_under_its_current_name() {
    let (app, daemon) = running().await;
    let friend = of_kind(&app, SimKind::Friend);
    let id = contact_id(&app, &friend).await;
    let pool = app.db().await;
    // What a re-link after a new login leaves behind: the history row from
    // the contact's name in the earlier login to its name now.
    sqlx::query(
        "INSERT INTO contact_changes (at, contact_id, user_name, source, change, old_value, \
         new_value) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1, ?2, 'manual', \
         'relinked', '@earlier-login-name', ?2)",
    )
    .bind(id)
    .bind(&friend)
    .execute(&pool)
    .await
    .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO pending_ops (user_name, remark_name) VALUES \
         ('@earlier-login-name', 'one'), (?1, 'two'), ('@earlier-login-name', 'three') \
         RETURNING id",
    )
    .bind(&friend)
    .fetch_all(&pool)
    .await
    .unwrap();

    let done = settled(&app, ids[2]).await;
    assert_eq!(done.status, "done", "{done:?}");
    for superseded in &ids[..2] {
        let o = op(&app, *superseded).await;
        assert_eq!(o.status, "superseded", "both names are one contact: {o:?}");
    }
    let calls = oplog_calls(&app);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0]["UserName"],
        friend.as_str(),
        "sent under the current name"
    );
    assert_eq!(calls[0]["RemarkName"], "three");
    let stored = app
        .text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await;
    assert_eq!(stored.as_deref(), Some("three"));
    let history = changes(&app).await;
    let last = history.last().unwrap();
    assert_eq!(
        (last.0, last.1.as_str(), last.3.as_str()),
        (id, friend.as_str(), "updated")
    );
    stop_ok(daemon).await;
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

    app.login().await;
    // The new login's sync may find the friend under a new name; whatever
    // the op's outcome, it settles only once there is a session again.
    let settled = settled(&app, id).await;
    assert!(settled.attempts <= 1, "{settled:?}");
    let calls = app.sim.calls();
    let relogin = calls
        .iter()
        .rposition(|c| c.endpoint == Endpoint::JsLogin)
        .unwrap();
    let first_oplog = calls.iter().position(|c| c.endpoint == Endpoint::OpLog);
    assert!(
        first_oplog.is_none_or(|i| i > relogin),
        "no remark call while logged out"
    );
    stop_ok(daemon).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_that_is_not_utf8_fails_with_a_reason_and_the_rows_after_it_apply() {
    let (app, daemon) = running().await;
    let friends = all_of_kind(&app, SimKind::Friend);
    let pool = app.db().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO pending_ops (user_name, remark_name) VALUES \
         (?1, 'kept'), (?1, CAST(x'ff' AS TEXT)), (CAST(x'40ff' AS TEXT), 'x'), (?2, 'after') \
         RETURNING id",
    )
    .bind(&friends[0])
    .bind(&friends[1])
    .fetch_all(&pool)
    .await
    .unwrap();

    let bad_remark = settled(&app, ids[1]).await;
    assert_eq!(bad_remark.status, "failed");
    assert_eq!(
        bad_remark.last_error.as_deref(),
        Some("remark_name is not valid UTF-8 (hex ff)")
    );
    let bad_name = settled(&app, ids[2]).await;
    assert_eq!(bad_name.status, "failed");
    assert_eq!(
        bad_name.last_error.as_deref(),
        Some("user_name is not valid UTF-8 (hex 40ff)")
    );
    assert_eq!((bad_remark.attempts, bad_name.attempts), (0, 0));
    let kept = settled(&app, ids[0]).await;
    assert_eq!(
        kept.status, "done",
        "a broken later row supersedes nothing: {kept:?}"
    );
    assert_eq!(settled(&app, ids[3]).await.status, "done");
    let sent: Vec<_> = oplog_calls(&app)
        .into_iter()
        .map(|c| c["RemarkName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["kept", "after"]);
    stop_ok(daemon).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_name_cannot_forge_a_log_line() {
    let (app, daemon) = running().await;
    let evil = "@nobody\nERROR forged: every contact was deleted\x1b[31m";
    let id = queue(&app, evil, "x").await;
    let failed = settled(&app, id).await;
    assert_eq!(failed.status, "failed");
    assert!(
        failed.last_error.unwrap().contains(evil),
        "the row keeps the name as given"
    );

    let logs = stop_ok(daemon).await;
    assert!(
        !logs.lines().any(|l| l.starts_with("ERROR forged")),
        "{logs}"
    );
    assert!(
        logs.contains("@nobody\\nERROR forged: every contact was deleted\\u{1b}[31m"),
        "the name is logged escaped: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_during_a_remark_call_or_its_read_back_leaves_the_op_pending() {
    for endpoint in [Endpoint::OpLog, Endpoint::BatchGetContact] {
        let (app, daemon) = running().await;
        let friend = of_kind(&app, SimKind::Friend);
        let before = app.sim.calls().len();
        // Well inside the client's timeout: a daemon that does not honour
        // shutdown waits for the answer and finishes the op.
        app.sim
            .fail(endpoint, Fault::Delay(Duration::from_secs(8)), 1);

        let id = queue(&app, &friend, "Interrupted").await;
        app.eventually("the delayed call", || async {
            app.sim.calls()[before..]
                .iter()
                .any(|c| c.endpoint == endpoint)
        })
        .await;
        let logs = stop_ok(daemon).await;

        let o = op(&app, id).await;
        assert_eq!(
            (o.status.as_str(), o.attempts),
            ("pending", 1),
            "{endpoint:?}: {o:?}"
        );
        assert!(logs.contains("interrupted by shutdown"), "{logs}");
    }
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
    stop_ok(daemon).await;
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
        (
            "INSERT INTO pending_ops (user_name, remark_name) VALUES (x'40ff', 'x')".to_string(),
            "user_name must be text",
        ),
        (
            "INSERT INTO pending_ops (user_name, remark_name) VALUES ('@a', x'00ff')".to_string(),
            "remark_name must be text",
        ),
        (
            "INSERT INTO pending_ops (remark_name) VALUES ('x')".to_string(),
            "user_name or contact_id must be given",
        ),
        (
            "INSERT INTO pending_ops (contact_id, remark_name) VALUES ('forty-two', 'x')"
                .to_string(),
            "contact_id must be an integer",
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

/// An edit may name its contact by `contact_id`, by `user_name` or by both;
/// wxsync fills in the one not given, and refuses a pair that disagrees or
/// an id no contact has.
#[tokio::test(flavor = "multi_thread")]
async fn an_edit_may_name_its_contact_by_contact_id_and_wxsync_fills_in_the_other() {
    let (app, daemon) = running().await;
    let friends = all_of_kind(&app, SimKind::Friend);
    let (a, b) = (&friends[0], &friends[1]);
    let (a_id, b_id) = (contact_id(&app, a).await, contact_id(&app, b).await);

    let by_id = app.queue_edit_by_id(a_id, "By id").await;
    assert_eq!(settled(&app, by_id).await.status, "done");
    assert_eq!(named(&app, by_id).await, (Some(a.clone()), Some(a_id)));
    assert_eq!(oplog_calls(&app)[0]["UserName"], a.as_str());
    let stored = app
        .text("SELECT remark_name FROM contacts WHERE user_name = ?", a)
        .await;
    assert_eq!(stored.as_deref(), Some("By id"));

    let by_name = queue(&app, b, "By name").await;
    assert_eq!(settled(&app, by_name).await.status, "done");
    assert_eq!(named(&app, by_name).await, (Some(b.clone()), Some(b_id)));

    let pool = app.db().await;
    let both: i64 = sqlx::query_scalar(
        "INSERT INTO pending_ops (user_name, contact_id, remark_name) VALUES (?, ?, 'x') \
         RETURNING id",
    )
    .bind(a)
    .bind(b_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let failed = settled(&app, both).await;
    assert_eq!(failed.status, "failed");
    assert_eq!(
        failed.last_error.as_deref(),
        Some(
            format!(
                "user_name {a} names contact_id {a_id}, not the contact_id {b_id} given with it"
            )
            .as_str()
        )
    );

    let unknown = app.queue_edit_by_id(999_999, "x").await;
    let failed = settled(&app, unknown).await;
    assert_eq!(
        (failed.status.as_str(), failed.last_error.as_deref()),
        (
            "failed",
            Some("no contact with contact_id 999999 in the cache")
        )
    );
    assert_eq!(
        oplog_calls(&app).len(),
        2,
        "nothing sent for the refused rows"
    );
    stop_ok(daemon).await;
}

/// A person whose link a new login missed (look-alikes the re-link cannot
/// tell apart) is still a friend under a new row: an edit queued by the old
/// row's `contact_id` says so and how to link them, where a contact that
/// really left is "no longer a contact".
#[tokio::test(flavor = "multi_thread")]
async fn an_edit_for_a_missed_link_fails_with_that_reason() {
    let app = TestApp::spawn(SimConfig {
        lookalikes: 1,
        status_notify: StatusNotify::Off,
        ..small_account()
    })
    .await;
    app.configure("[ops]\npoll_interval = \"100ms\"\n");
    app.login().await;
    app.sync().await;
    let (twin, _) = app.sim.account().lookalikes[0];
    let twin = (app.sim.account().contacts.into_iter())
        .find(|c| c.sim_id == twin)
        .unwrap()
        .user_name;
    let missed = contact_id(&app, &twin).await;
    let twin_old_name = twin.clone();
    app.login().await;
    app.sync().await;
    // A friend who really leaves afterwards.
    let gone = all_of_kind(&app, SimKind::Friend).swap_remove(0);
    let gone_id = contact_id(&app, &gone).await;
    app.sim.remove_contact(&gone);
    app.sync().await;
    let deleted = app
        .text(
            "SELECT deleted_at FROM contacts WHERE contact_id = ?",
            &missed.to_string(),
        )
        .await;
    assert!(
        deleted.is_some(),
        "the look-alike's old row was left unlinked"
    );

    let daemon = app.start_daemon(&[]);
    let id = app.queue_edit_by_id(missed, "Still a friend").await;
    let failed = settled(&app, id).await;
    let reason = failed.last_error.unwrap_or_default();
    assert_eq!(failed.status, "failed");
    assert!(
        reason.starts_with(&format!(
            "{twin_old_name} (contact_id {missed}) is a row of an earlier login"
        )) && reason.contains("could be the same person")
            && reason.contains(&format!("wxsync identity link {missed} NEW"))
            && !reason.contains("no longer a contact"),
        "{reason}"
    );
    // By the name it had then, the same.
    let id = queue(&app, &twin_old_name, "Still a friend").await;
    let reason = settled(&app, id).await.last_error.unwrap_or_default();
    assert!(reason.contains("could be the same person"), "{reason}");
    let id = app.queue_edit_by_id(gone_id, "Left").await;
    let failed = settled(&app, id).await;
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.ends_with("is marked deleted: it is no longer a contact")),
        "{failed:?}"
    );
    assert!(oplog_calls(&app).is_empty());
    stop_ok(daemon).await;
}

/// The server announces an edit (ModContact, stored as an increment) before
/// the read-back confirms it: the history row is still the edit's, with
/// source `remark`, and there is one.
#[tokio::test(flavor = "multi_thread")]
async fn an_edit_the_increment_stored_first_is_recorded_as_a_remark() {
    let app = TestApp::spawn(small_account()).await;
    // Read-backs retried over seconds, so the increment lands in between.
    let config = std::fs::read_to_string(&app.config).unwrap();
    std::fs::write(
        &app.config,
        config.replace("retry_delay = \"20ms\"", "retry_delay = \"1s\""),
    )
    .unwrap();
    app.configure("[ops]\npoll_interval = \"100ms\"\n");
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let friend = of_kind(&app, SimKind::Friend);
    let contact = contact_id(&app, &friend).await;
    app.sim
        .fail(Endpoint::BatchGetContact, Fault::Http(502), 1000);

    let id = queue(&app, &friend, "Announced first").await;
    app.eventually("the increment storing the new remark", || async {
        app.text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await
        .as_deref()
            == Some("Announced first")
    })
    .await;
    assert_eq!(op(&app, id).await.status, "pending", "not read back yet");
    app.sim.clear_faults_of(Endpoint::BatchGetContact);
    let done = settled(&app, id).await;
    assert_eq!(
        (done.status.as_str(), done.attempts),
        ("done", 1),
        "{done:?}"
    );

    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT source, old_value, new_value FROM contact_changes \
         WHERE contact_id = ? AND field = 'remark_name' ORDER BY id",
    )
    .bind(contact)
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [(
            "remark".to_string(),
            Some(String::new()),
            Some("Announced first".to_string())
        )]
    );
    stop_ok(daemon).await;
}
