//! `wxsync status --check`: each state, with its exit code and line.

use wxsync::simulator::{Endpoint, Fault};

use crate::faults::empty_contact_list;
use crate::helpers::{Run, TestApp, small_account};

async fn check(app: &TestApp) -> Run {
    app.wxsync(&["status", "--check"]).await
}

fn says(run: &Run, code: i32, start: &str, words: &str) {
    assert_eq!(run.code, Some(code), "{run:?}");
    assert!(run.stdout.starts_with(start), "{run:?}");
    assert!(run.stdout.contains(words), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one line: {run:?}");
}

/// Moves the session's login time back, as if it were hours old.
fn backdate_login(app: &TestApp) {
    let mut v = app.session_json();
    v["logged_in_at"] = "2026-01-01T00:00:00Z".into();
    std::fs::write(app.session_file(), serde_json::to_vec(&v).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn status_check_gives_each_state_its_exit_code() {
    let app = TestApp::spawn(small_account()).await;

    // UNKNOWN: no database, then one that is not a database.
    says(&check(&app).await, 3, "WXSYNC UNKNOWN - ", "no database at");
    assert!(!app.db.exists(), "the check created no database");
    std::fs::write(&app.db, b"this is not an SQLite file, not at all").unwrap();
    says(&check(&app).await, 3, "WXSYNC UNKNOWN - ", "database");
    std::fs::remove_file(&app.db).unwrap();

    // OK: logged in and synced a moment ago.
    app.login().await;
    app.sync().await;
    says(
        &check(&app).await,
        0,
        "WXSYNC OK - session active; last full sync ok",
        "| contacts=",
    );

    // WARNING: an edit the server accepted but nobody confirmed, just now.
    let db = app.db().await;
    sqlx::query(
        "INSERT INTO pending_ops (contact_id, remark_name, status, last_error, done_at)
         VALUES (1, 'x', 'unverified', 'reading the contact back failed', strftime('%Y-%m-%dT%H:%M:%fZ'))",
    )
    .execute(&db)
    .await
    .unwrap();
    says(
        &check(&app).await,
        1,
        "WXSYNC WARNING - 1 remark edit unverified in the last 24h (accepted by the server",
        "pending_ops.last_error says why",
    );
    sqlx::query("DELETE FROM pending_ops")
        .execute(&db)
        .await
        .unwrap();

    // WARNING: the last full sync failed.
    app.sim
        .fail(Endpoint::GetContact, Fault::Http(502), u32::MAX);
    assert!(!app.wxsync(&["sync"]).await.ok());
    app.sim.clear_faults();
    says(
        &check(&app).await,
        1,
        "WXSYNC WARNING - the last full sync (#2) failed: ",
        "502",
    );
    app.sync().await;

    // CRITICAL: an old login and no keepalive since (no daemon runs)…
    backdate_login(&app);
    says(
        &check(&app).await,
        2,
        "WXSYNC CRITICAL - no keepalive since the login at 2026-01-01T00:00:00Z",
        "is `wxsync run` running?",
    );
    // …which a running daemon's keepalive mends.
    let daemon = app.start_daemon(&[]);
    app.eventually("the daemon's keepalive", || async {
        check(&app).await.code == Some(0)
    })
    .await;

    // CRITICAL: logged out, saying what to do.
    app.sim.force_logout(1101);
    app.eventually("the logout to be recorded", || async {
        check(&app).await.code == Some(2)
    })
    .await;
    says(
        &check(&app).await,
        2,
        "WXSYNC CRITICAL - logged out at ",
        "code 1101): run `wxsync login`",
    );
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");

    // CRITICAL: no session at all.
    std::fs::remove_file(app.session_file()).unwrap();
    says(
        &check(&app).await,
        2,
        "WXSYNC CRITICAL - no session: run `wxsync login`",
        "",
    );

    // `status` and `status --json` are unchanged by all this.
    assert!(app.wxsync(&["status"]).await.ok());
    assert!(app.wxsync(&["status", "--json"]).await.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_check_threshold_is_named() {
    let app = TestApp::spawn(small_account()).await;
    app.configure("[check]\nkeepalive_silence = \"5s\"\n");
    let run = app.wxsync(&["status"]).await;
    assert!(!run.ok());
    assert!(run.stderr.contains("check.keepalive_silence"), "{run:?}");
    says(
        &check(&app).await,
        3,
        "WXSYNC UNKNOWN - ",
        "check.keepalive_silence",
    );
}

/// `status` and `status --check` read the deletion guard's state through
/// one query: held back, both name the same run and counts, and a full
/// sync that fails otherwise after it hides it from neither.
#[tokio::test(flavor = "multi_thread")]
async fn status_and_the_check_agree_on_a_held_deletion() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    app.sim.fail(Endpoint::GetContact, empty_contact_list(), 1);
    assert!(!app.wxsync(&["sync"]).await.ok(), "held back");
    for then in ["held", "a network failure after it"] {
        let status = app.wxsync(&["status", "--json"]).await;
        let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        let w = &v["deletion_waiting"];
        assert!(w.is_object(), "{then}: {v}");
        says(
            &check(&app).await,
            1,
            "WXSYNC WARNING - a deletion is held back by the deletion guard",
            &format!(
                "(run #{}, waiting since {}): held back: this sync would mark {} of",
                w["run_id"],
                w["since"].as_str().unwrap(),
                w["contacts"]
            ),
        );
        app.sim
            .fail(Endpoint::GetContact, Fault::Http(502), u32::MAX);
        assert!(!app.wxsync(&["sync"]).await.ok());
        app.sim.clear_faults();
    }
    assert!(
        check(&app)
            .await
            .stdout
            .contains("the last full sync (#4) failed"),
        "the failure is named too"
    );
}
