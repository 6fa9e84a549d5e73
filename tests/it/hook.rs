//! The notify hook (`[notify] command`): every daemon event reaches it with
//! no secret; a hook that hangs is killed while the daemon goes on; a
//! missing one costs one log line.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wxsync::simulator::{Endpoint, Fault};

use crate::faults::empty_contact_list;
use crate::helpers::{TestApp, small_account};

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

#[tokio::test(flavor = "multi_thread")]
async fn every_daemon_event_reaches_the_hook_with_no_secret() {
    let app = TestApp::spawn(small_account()).await;
    let out = app.dir.path().join("heard");
    std::fs::create_dir(&out).unwrap();
    let hook = script(
        &app,
        "record-hook",
        &format!(
            "env > {out:?}/$WXSYNC_EVENT.tmp && mv {out:?}/$WXSYNC_EVENT.tmp {out:?}/$WXSYNC_EVENT.env"
        ),
    );
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
    let uin = app.session_json()["uin"].to_string();

    // sync_failed: the daemon's first sync meets a broken server.
    app.sim
        .fail(Endpoint::GetContact, Fault::Http(502), u32::MAX);
    let daemon = app.start_daemon(&[]);
    app.eventually("sync_failed", || async {
        heard(&out, "sync_failed").is_some()
    })
    .await;
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

    let mut secrets = app.secrets_sent();
    secrets.insert(uin.clone());
    assert!(uin.len() >= 6, "the uin is a real number: {uin}");
    for (event, words) in [
        ("sync_failed", "a full sync failed"),
        ("sync_held", "held back by the deletion guard"),
        ("op_failed", "@nobody"),
        ("logged_out", "code 1101"),
        ("login_needed", "run `wxsync login`"),
        ("logged_in", "a new session"),
    ] {
        let env = heard(&out, event).unwrap();
        assert_eq!(env["WXSYNC_EVENT"], event);
        assert!(env["WXSYNC_MESSAGE"].contains(words), "{event}: {env:?}");
        assert_eq!(env["WXSYNC_DATABASE"], app.db.to_str().unwrap());
        assert_eq!(env["WXSYNC_ACCOUNT"], own_nick);
        let all = std::fs::read_to_string(out.join(format!("{event}.env"))).unwrap();
        assert!(
            !all.contains('\r') && env["WXSYNC_MESSAGE"].lines().count() == 1,
            "{event}: one line"
        );
        for secret in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{event}: a secret in the hook's environment"
            );
        }
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
