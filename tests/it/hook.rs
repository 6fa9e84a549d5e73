//! The notify hook (`[notify] command`): every daemon event reaches it with
//! no secret; a hook that hangs is killed while the daemon goes on; a
//! missing one costs one log line.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wxsync::simulator::{Endpoint, Fault};

use crate::faults::empty_contact_list;
use crate::helpers::{Daemon, TestApp, small_account};

/// Writes an executable `/bin/sh` script into the test's directory.
fn script(app: &TestApp, name: &str, body: &str) -> PathBuf {
    let path = app.dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The environment a run of the recording hook saw for `event`, if any.
fn heard(dir: &Path, event: &str) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join(format!("{event}.env"))).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// A hook that writes the environment of each run to `heard/EVENT.env`;
/// returns the hook and that directory.
fn recording_hook(app: &TestApp) -> (PathBuf, PathBuf) {
    let out = app.dir.path().join("heard");
    std::fs::create_dir(&out).unwrap();
    let hook = script(
        app,
        "record-hook",
        &format!(
            "env > {out:?}/$WXSYNC_EVENT.tmp && mv {out:?}/$WXSYNC_EVENT.tmp {out:?}/$WXSYNC_EVENT.env"
        ),
    );
    (hook, out)
}

/// Asserts that the run for `event` heard it with `words` in a one-line
/// message, the database's path, and none of `secrets`; returns what it
/// heard.
fn heard_cleanly(
    app: &TestApp,
    out: &Path,
    event: &str,
    words: &str,
    secrets: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let env = heard(out, event).unwrap_or_else(|| panic!("{event} did not reach the hook"));
    assert_eq!(env["WXSYNC_EVENT"], event);
    assert!(env["WXSYNC_MESSAGE"].contains(words), "{event}: {env:?}");
    assert_eq!(env["WXSYNC_DATABASE"], app.db.to_str().unwrap());
    let all = std::fs::read_to_string(out.join(format!("{event}.env"))).unwrap();
    assert!(
        !all.contains('\r') && env["WXSYNC_MESSAGE"].lines().count() == 1,
        "{event}: one line"
    );
    for secret in secrets {
        assert!(
            !all.contains(secret.as_str()),
            "{event}: a secret in the hook's environment"
        );
    }
    env
}

/// Starts the daemon against a server whose contact list always fails,
/// and waits until the hook heard `sync_failed`.
async fn start_to_sync_failed(app: &TestApp, out: &Path) -> Daemon {
    app.sim
        .fail(Endpoint::GetContact, Fault::Http(502), u32::MAX);
    let daemon = app.start_daemon(&[]);
    app.eventually("sync_failed", || async {
        heard(out, "sync_failed").is_some()
    })
    .await;
    daemon
}

#[tokio::test(flavor = "multi_thread")]
async fn every_daemon_event_reaches_the_hook_with_no_secret() {
    let app = TestApp::spawn(small_account()).await;
    let (hook, out) = recording_hook(&app);
    app.configure(&format!(
        "[ops]\npoll_interval = \"100ms\"\n[sync]\nschedule = \"*/2 * * * * *\"\n\
         [notify]\ncommand = [{hook:?}, \"--to\", \"ops\"]\n"
    ));
    app.login().await;
    app.sync().await;
    let own_nick = app
        .text(
            "SELECT nick_name FROM contacts WHERE kind = 'self' AND user_name LIKE ?",
            "%",
        )
        .await
        .unwrap();

    // sync_failed: the daemon's first sync meets a broken server.
    let daemon = start_to_sync_failed(&app, &out).await;
    app.sim.clear_faults();
    app.eventually("a sync that works again", || async {
        app.ok_runs().await == 2
    })
    .await;

    // sync_held: one answer that would delete most of the cache.
    app.sim.fail(Endpoint::GetContact, empty_contact_list(), 1);
    app.eventually("sync_held", || async { heard(&out, "sync_held").is_some() })
        .await;

    // op_failed: an edit for nobody.
    app.queue_edit("@nobody", "x").await;
    app.eventually("op_failed", || async { heard(&out, "op_failed").is_some() })
        .await;

    // logged_out and login_needed: the server ends the session.
    app.sim.force_logout(1101);
    app.eventually("logged_out and login_needed", || async {
        heard(&out, "logged_out").is_some() && heard(&out, "login_needed").is_some()
    })
    .await;

    // logged_in: a new login is picked up.
    app.login().await;
    app.eventually("logged_in", || async { heard(&out, "logged_in").is_some() })
        .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");

    let secrets = app.session_secrets();
    for (event, words) in [
        (
            "sync_failed",
            "a full sync failed, and so did its 4 retries",
        ),
        ("sync_held", "held back by the deletion guard"),
        ("op_failed", "@nobody"),
        ("logged_out", "code 1101"),
        ("login_needed", "run `wxsync login`"),
        ("logged_in", "a new session"),
    ] {
        let env = heard_cleanly(&app, &out, event, words, &secrets);
        assert_eq!(env["WXSYNC_ACCOUNT"], own_nick);
    }
    assert_eq!(
        logs.matches("notify hook ran").count(),
        std::fs::read_dir(&out).unwrap().count(),
        "each event ran the hook once (notify.repeat): {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_hook_is_killed_at_the_timeout_while_syncs_and_edits_go_on() {
    let app = TestApp::spawn(small_account()).await;
    let pids = app.dir.path().join("pids");
    let hook = script(
        &app,
        "hanging-hook",
        &format!("sleep 1000 &\necho \"$$ $!\" > {pids:?}.tmp && mv {pids:?}.tmp {pids:?}\nwait"),
    );
    app.configure(&format!(
        "[ops]\npoll_interval = \"100ms\"\n[sync]\nschedule = \"* * * * * *\"\n\
         [notify]\ncommand = {hook:?}\ntimeout = \"8s\"\nrepeat = \"0s\"\n"
    ));
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await >= 1 })
        .await;

    app.queue_edit("@nobody", "x").await;
    app.eventually("the hook running", || async { pids.exists() })
        .await;
    let running: Vec<String> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let alive = |pid: &str| {
        std::process::Command::new("kill")
            .args(["-0", pid])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };

    // While it hangs, a remark edit is applied and full syncs go on.
    let syncs = app.ok_runs().await;
    let friend = app.first_friend();
    let id = app.queue_edit(&friend, "Edited while the hook hangs").await;
    assert_eq!(app.op_settled(id).await, "done");
    app.eventually("another full sync", || async {
        app.ok_runs().await > syncs
    })
    .await;
    assert!(
        running.iter().all(|p| alive(p)),
        "the hook was still running meanwhile"
    );

    app.eventually("the hook killed at the timeout", || async {
        daemon
            .logs()
            .contains("the notify hook did not finish within notify.timeout; killed")
    })
    .await;
    app.eventually("the hook and its child gone", || async {
        running.iter().all(|p| !alive(p))
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_hook_logs_one_line_and_changes_nothing_else() {
    let app = TestApp::spawn(small_account()).await;
    let missing = app.dir.path().join("no-such-hook");
    app.configure(&format!(
        "[ops]\npoll_interval = \"100ms\"\n[notify]\ncommand = {missing:?}\n"
    ));
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await >= 1 })
        .await;
    app.queue_edit("@nobody", "x").await;
    app.eventually("the failed hook's line", || async {
        daemon.logs().contains("the notify hook cannot run")
    })
    .await;
    let friend = app.first_friend();
    let id = app.queue_edit(&friend, "Still applied").await;
    assert_eq!(app.op_settled(id).await, "done");
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("notify hook")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("no-such-hook"), "{lines:?}");
}

/// A task that dies for good — here the database watch, when the cache
/// file is removed under the running daemon — is told to the hook as
/// `task_died`, in words, before the daemon exits non-zero.
#[tokio::test(flavor = "multi_thread")]
async fn a_removed_database_is_told_as_task_died_before_a_non_zero_exit() {
    let app = TestApp::spawn(small_account()).await;
    let (hook, out) = recording_hook(&app);
    app.configure(&format!("[notify]\ncommand = {hook:?}\n"));
    app.login().await;
    let mut daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await >= 1 })
        .await;
    let secrets = app.session_secrets();

    std::fs::remove_file(&app.db).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), daemon.child.wait())
        .await
        .expect("the daemon exits by itself")
        .unwrap();
    let logs = daemon.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    heard_cleanly(
        &app,
        &out,
        "task_died",
        &format!(
            "the database watch task stopped: the database {} was removed while the daemon ran",
            app.db.display()
        ),
        &secrets,
    );
    assert!(
        heard(&out, "task_died").unwrap()["WXSYNC_MESSAGE"]
            .ends_with("the daemon exits to be restarted"),
        "{logs}"
    );
}

/// `sync_failed` is told once the retries of a failed full sync gave up
/// (the first try and 4 retries failed), not at each failed try — even
/// with `notify.repeat` letting every run through.
#[tokio::test(flavor = "multi_thread")]
async fn sync_failed_is_told_once_when_the_retries_give_up() {
    let app = TestApp::spawn(small_account()).await;
    let (hook, out) = recording_hook(&app);
    app.configure(&format!("[notify]\ncommand = {hook:?}\nrepeat = \"0s\"\n"));
    app.login().await;
    let daemon = start_to_sync_failed(&app, &out).await;
    let failed = app
        .scalar("SELECT count(*) FROM sync_runs WHERE status = 'failed'")
        .await;
    assert_eq!(failed, 5, "told after the fifth failed try, not before");
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let runs = logs
        .lines()
        .filter(|l| l.contains("notify hook ran") && l.contains("sync_failed"))
        .count();
    assert_eq!(runs, 1, "{logs}");
}

/// An edit the server accepted but no read-back confirmed ends
/// `unverified`; the hook hears it as `op_failed`, in words that say so.
#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_edit_is_told_as_op_failed_saying_it_was_accepted() {
    let app = TestApp::spawn(small_account()).await;
    let (hook, out) = recording_hook(&app);
    app.configure(&format!(
        "[ops]\npoll_interval = \"100ms\"\n[notify]\ncommand = {hook:?}\n"
    ));
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await >= 1 })
        .await;
    app.sim
        .fail(Endpoint::BatchGetContact, Fault::Http(502), u32::MAX);
    let friend = app.first_friend();
    let id = app.queue_edit(&friend, "Accepted, never read back").await;
    assert_eq!(app.op_settled(id).await, "unverified");
    app.eventually("op_failed", || async { heard(&out, "op_failed").is_some() })
        .await;
    let message = &heard(&out, "op_failed").unwrap()["WXSYNC_MESSAGE"];
    assert!(
        message.starts_with(&format!(
            "remark edit {id} (pending_ops.id) is unverified, not sent again: \
             the server accepted the edit, but reading the contact back failed"
        )),
        "{message}"
    );
    app.sim.clear_faults();
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
}
