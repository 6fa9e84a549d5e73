use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::{Connection, Executor};
use tokio::net::UnixDatagram;
use wxsync::simulator::{Call, Endpoint, Fault, SimKind};

use crate::helpers::{Run, TestApp, small_account};

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

/// The log position a keepalive call carried (its sync key's key 2, which
/// the simulator counts up with every change it hands out), by arrival.
fn keys_sent(app: &TestApp) -> Vec<(Endpoint, i64)> {
    app.sim
        .calls()
        .iter()
        .filter_map(|call| {
            let pairs: Vec<(i64, i64)> = match call.endpoint {
                Endpoint::SyncCheck => {
                    let query = url::form_urlencoded::parse(call.query.as_bytes());
                    let (_, keys) = query.into_iter().find(|(k, _)| k == "synckey")?;
                    (keys.split('|'))
                        .filter_map(|kv| {
                            let (k, v) = kv.split_once('_')?;
                            Some((k.parse().ok()?, v.parse().ok()?))
                        })
                        .collect()
                }
                Endpoint::Sync => {
                    let body: serde_json::Value = serde_json::from_str(&call.body).ok()?;
                    (body["SyncKey"]["List"].as_array()?.iter())
                        .filter_map(|kv| Some((kv["Key"].as_i64()?, kv["Val"].as_i64()?)))
                        .collect()
                }
                _ => return None,
            };
            let (_, position) = pairs.into_iter().find(|(k, _)| *k == 2)?;
            Some((call.endpoint, position))
        })
        .collect()
}

/// A full sync while the keepalive runs calls webwxinit again, whose key
/// the server does not keep current (the simulator hands out the login's
/// first key again): the keepalive's newer key must stay, so no synccheck
/// or webwxsync ever goes back to an older key.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_sync_does_not_move_the_keepalives_sync_keys_back() {
    let app = logged_in().await;
    app.configure("[sync]\nschedule = \"* * * * * *\"\n");
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await >= 1 })
        .await;
    let f = friends(&app);
    app.sim.rename(&f[0], "Moved the key on");
    app.eventually("the rename, through the keepalive's webwxsync", || async {
        app.text("SELECT nick_name FROM contacts WHERE user_name = ?", &f[0])
            .await
            .as_deref()
            == Some("Moved the key on")
    })
    .await;
    let calls = app.sim.calls().len();
    let synced = app.ok_runs().await;
    app.eventually(
        "a full sync, then a synccheck after its webwxinit",
        || async {
            let calls = &app.sim.calls()[calls..];
            let init = calls.iter().rposition(|c| c.endpoint == Endpoint::Init);
            app.ok_runs().await > synced
                && init
                    .is_some_and(|i| calls[i..].iter().any(|c| c.endpoint == Endpoint::SyncCheck))
        },
    )
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let sent = keys_sent(&app);
    let back = sent.windows(2).find(|w| w[1].1 < w[0].1);
    assert!(
        back.is_none(),
        "a call went back to an older key: {back:?} in {sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_logout_keeps_rows_stops_calls_and_resumes_after_login() {
    let app = logged_in().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let before = app.dump().await;

    let killed_at = app.sim.calls().len();
    app.sim.force_logout(1101);
    app.eventually("status says logged_out", || async {
        let run = app.wxsync(&["status", "--json"]).await;
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v["session"]["state"] == "logged_out"
    })
    .await;
    assert_eq!(app.dump().await, before, "every row kept");
    let old_sid = session_value(&app, "sid");

    app.login().await;
    app.eventually("a full sync under the new login", || async {
        app.ok_runs().await == 2
    })
    .await;
    // From the logout to the new login, the dead session got at most the
    // one call per task that found it dead, each answered 1101.
    let calls = app.sim.calls();
    // `wxsync login` asks the phone first (push login), then shows a QR.
    let relogin = killed_at
        + calls[killed_at..]
            .iter()
            .position(|c| matches!(c.endpoint, Endpoint::PushLogin | Endpoint::JsLogin))
            .unwrap();
    let between = &calls[killed_at..relogin];
    assert!(
        between.len() <= 3
            && between
                .iter()
                .all(|c| c.ret == Some(1101) && carries(c, &old_sid)),
        "no calls against a dead session: {between:?}"
    );
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
    app.eventually("the daemon saying it waits", || async {
        daemon.logs().contains("no session in")
    })
    .await;
    assert!(app.sim.calls().is_empty(), "it never logs in by itself");

    app.login().await;
    assert_eq!(
        app.sim.calls()[0].endpoint,
        Endpoint::JsLogin,
        "the first call is the login's"
    );
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
    app.eventually("a tick skipped because a sync is running", || async {
        daemon
            .logs()
            .contains("scheduled full sync skipped: the previous one is still running")
    })
    .await;
    app.eventually("the slow sync finishing", || async {
        app.ok_runs().await >= 1
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let pool = app.db().await;
    let runs: Vec<(String, String)> =
        sqlx::query_as("SELECT started_at, finished_at FROM sync_runs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "a sync started while another was running: {runs:?}"
        );
    }
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
async fn a_new_login_while_running_is_picked_up_and_the_cache_relinked() {
    let app = logged_in().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let old_self = app.sim.account().self_user.user_name;
    let self_id = app
        .scalar("SELECT contact_id FROM contacts WHERE kind = 'self'")
        .await;
    let contacts = app.scalar("SELECT count(*) FROM contacts").await;

    app.login().await;
    app.eventually("a full sync under the new login", || async {
        app.ok_runs().await == 2
    })
    .await;

    let new_self = app.sim.account().self_user.user_name;
    assert_ne!(old_self, new_self, "user names change at every login");
    let now_named: Option<i64> =
        sqlx::query_scalar("SELECT contact_id FROM contacts WHERE user_name = ?")
            .bind(&new_self)
            .fetch_optional(&app.db().await)
            .await
            .unwrap();
    assert_eq!(
        now_named,
        Some(self_id),
        "the account's own row keeps its contact_id under its new name"
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM contacts").await,
        contacts,
        "no row was added for a contact the cache already had"
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL")
            .await,
        0
    );
    let stale = app
        .scalar(
            "SELECT count(*) FROM memberships m \
             WHERE NOT EXISTS (SELECT 1 FROM contacts g \
                               WHERE g.user_name = m.group_user_name AND g.deleted_at IS NULL)",
        )
        .await;
    assert_eq!(
        stale, 0,
        "every membership names a live group by its new name"
    );
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

/// A value of the saved session (as JSON text).
fn session_value(app: &TestApp, key: &str) -> String {
    let text = std::fs::read_to_string(app.session_file()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[key].as_str().unwrap().to_owned()
}

/// Whether a call carried this session id (query, BaseRequest or cookie).
fn carries(call: &Call, sid: &str) -> bool {
    let encoded: String = url::form_urlencoded::byte_serialize(sid.as_bytes()).collect();
    call.query.contains(&format!("sid={encoded}"))
        || call.body.contains(&format!("\"Sid\":\"{sid}\""))
        || call.cookies.contains(&format!("wxsid={sid}"))
}

/// Runs `wxsync --config … ARGS` with its stderr in a file (returned), so a
/// test can follow the log while it runs.
fn spawn_wxsync(
    app: &TestApp,
    args: &[&str],
    envs: &[(&str, String)],
) -> (tokio::process::Child, PathBuf) {
    let log = app.dir.path().join(format!("{}.log", args.join("-")));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
        .arg("--config")
        .arg(&app.config)
        .args(args)
        .env("RUST_LOG", "debug")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("wxsync runs");
    (child, log)
}

/// Waits for a child to exit: a deadline for a hung test, not a speed limit.
async fn exit_code(child: &mut tokio::process::Child) -> Option<i32> {
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("wxsync exits")
        .unwrap()
        .code()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_poll_interval_is_refused_at_start_with_its_key() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.configure("[ops]\npoll_interval = \"0s\"\n");
    let calls = app.sim.calls().len();
    let (mut child, log) = spawn_wxsync(&app, &["run"], &[]);
    let code = exit_code(&mut child).await;
    let stderr = std::fs::read_to_string(log).unwrap();
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("ops.poll_interval"), "{stderr}");
    assert_eq!(app.sim.calls().len(), calls, "nothing ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tick_that_fires_without_a_session_does_not_run_a_second_sync() {
    let app = TestApp::spawn(small_account()).await;
    // One tick, a few seconds from now (UTC), while there is no session yet.
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    app.configure(&format!(
        "[sync]\nschedule = \"{} * * * * *\"\n",
        at.format("%S")
    ));
    let daemon = app.start_daemon(&[]);
    app.eventually("the scheduled tick", || async {
        daemon.logs().contains("scheduled full sync requested")
    })
    .await;

    app.login().await;
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    // Something the daemon does after its first sync: a pushed change lands.
    let friend = app
        .sim
        .account()
        .contacts
        .into_iter()
        .find(|c| c.kind == SimKind::Friend)
        .unwrap()
        .user_name;
    app.sim.rename(&friend, "After the first sync");
    app.eventually("the pushed rename", || async {
        app.text(
            "SELECT nick_name FROM contacts WHERE user_name = ?",
            &friend,
        )
        .await
        .as_deref()
            == Some("After the first sync")
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let runs = app.scalar("SELECT count(*) FROM sync_runs").await;
    assert_eq!(
        runs, 1,
        "the stale tick was served by the first sync: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_the_client_cannot_use_is_waited_out_like_an_unreadable_file() {
    let app = logged_in().await;
    let path = app.session_file();
    let mut session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    session["api_origin"] = "not a URL".into();
    std::fs::write(&path, serde_json::to_vec(&session).unwrap()).unwrap();

    let daemon = app.start_daemon(&[]);
    app.eventually("the daemon saying why it waits", || async {
        daemon.logs().contains("the session file is unusable")
    })
    .await;
    app.login().await;
    app.eventually("a full sync once logged in again", || async {
        app.ok_runs().await == 1
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    let waiting: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("run `wxsync login`"))
        .collect();
    assert_eq!(waiting.len(), 1, "said once: {logs}");
    assert!(waiting[0].contains("API origin is not a URL"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_its_wal_and_a_directory_wxsync_creates_are_private() {
    let app = TestApp::spawn(small_account()).await;
    let db = app.dir.path().join("new").join("dir").join("cache.db");
    // Under a permissive umask, as a login shell has.
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" --config \"$1\" --database \"$2\" status")
        .arg(env!("CARGO_BIN_EXE_wxsync"))
        .arg(&app.config)
        .arg(&db)
        .output()
        .await
        .unwrap();
    let run = Run::from(run);
    assert!(run.ok(), "{run:?}");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    assert_eq!(mode(db.parent().unwrap().parent().unwrap()), 0o700);

    // SQLite gives -wal and -shm the database's mode.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    conn.execute("INSERT INTO pending_ops (user_name, remark_name) VALUES ('@a', 'b')")
        .await
        .unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut side = db.clone().into_os_string();
        side.push(suffix);
        assert_eq!(mode(Path::new(&side)), 0o600, "{suffix}");
    }
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_file_others_can_read_is_made_private_loudly() {
    let app = logged_in().await;
    let path = app.session_file();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let run = app.wxsync(&["status"]).await;

    assert!(run.ok(), "{run:?}");
    assert!(
        run.stderr.contains("readable by group or others"),
        "{run:?}"
    );
    assert_eq!(mode(&path), 0o600);
    assert!(run.stdout.contains("session:   active"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_of_another_application_is_refused_untouched() {
    let app = TestApp::spawn(small_account()).await;
    let db = app.dir.path().join("notes.db");
    let made = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE contacts (who TEXT); INSERT INTO contacts VALUES ('mine');")
        .status()
        .expect("the sqlite3 CLI is installed");
    assert!(made.success());
    let before = std::fs::read(&db).unwrap();

    let run = app
        .wxsync(&["--database", db.to_str().unwrap(), "status"])
        .await;

    assert!(!run.ok(), "{run:?}");
    assert!(run.stderr.contains("is not a wxsync database"), "{run:?}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "not one byte changed");
    let names: Vec<_> = std::fs::read_dir(app.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("notes.db"))
        .collect();
    assert_eq!(names, ["notes.db"], "no -wal or -shm left beside it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_that_gives_up_on_a_held_lock_closes_its_run_failed() {
    let app = logged_in().await;
    app.sim.fail(
        Endpoint::BatchGetContact,
        Fault::Delay(Duration::from_secs(2)),
        1,
    );
    let (mut child, log) = spawn_wxsync(&app, &["sync"], &[]);
    app.eventually("the run row", || async {
        app.scalar("SELECT count(*) FROM sync_runs WHERE status = 'running'")
            .await
            == 1
    })
    .await;
    // A user's sqlite3 holding the write lock past the sync's patience.
    let mut user = sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db.display()))
        .await
        .unwrap();
    user.execute("BEGIN IMMEDIATE").await.unwrap();
    app.eventually("the sync waiting to record its failure", || async {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("waiting for it to record the failed sync")
    })
    .await;
    user.execute("ROLLBACK").await.unwrap();
    user.close().await.unwrap();

    let code = exit_code(&mut child).await;
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_ne!(code, Some(0), "{stderr}");
    let status = app
        .text("SELECT status FROM sync_runs ORDER BY id DESC LIMIT ?", "1")
        .await;
    assert_eq!(status.as_deref(), Some("failed"), "{stderr}");
    let error = app
        .text("SELECT error FROM sync_runs ORDER BY id DESC LIMIT ?", "1")
        .await
        .unwrap();
    assert!(error.contains("locked"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_after_a_logout_says_to_run_login() {
    let app = logged_in().await;
    app.sim.force_logout(1101);

    let run = app.wxsync(&["sync"]).await;
    assert!(!run.ok(), "{run:?}");
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("wxsync: ") && last.contains("run `wxsync login`"),
        "{run:?}"
    );

    let again = app.wxsync(&["sync"]).await;
    assert!(again.stderr.contains("run `wxsync login`"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn old_history_is_pruned_after_a_full_sync() {
    let app = logged_in().await;
    app.configure("[history]\nretention = \"30d\"\n");
    let pool = app.db().await;
    sqlx::query(
        "INSERT INTO contact_changes (at, contact_id, user_name, source, change) VALUES \
         ('2020-01-01T00:00:00.000Z', 1, '@old', 'full_sync', 'added'), \
         (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 1, '@recent', 'full_sync', 'added')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let daemon = app.start_daemon(&[]);
    app.eventually("the old row gone", || async {
        app.scalar("SELECT count(*) FROM contact_changes WHERE user_name = '@old'")
            .await
            == 0
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        app.scalar("SELECT count(*) FROM contact_changes WHERE user_name = '@recent'")
            .await,
        1
    );
    assert!(app.ok_runs().await >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn under_systemd_the_journal_is_chosen_and_stderr_kept_without_it() {
    let app = TestApp::spawn(small_account()).await;
    let journald = Path::new("/run/systemd/journal/socket").exists();
    for (matching, expect_journal) in [(true, true), (false, false)] {
        // systemd names the journal stream in JOURNAL_STREAM as DEV:INODE;
        // here the "stream" is the file stderr goes to.
        let log = app.dir.path().join(format!("journal-{matching}.log"));
        std::fs::write(&log, "").unwrap();
        let meta = std::fs::metadata(&log).unwrap();
        let ino = if matching { meta.ino() } else { meta.ino() + 1 };
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
            .arg("--config")
            .arg(&app.config)
            .arg("status")
            .env("RUST_LOG", "debug")
            .env("JOURNAL_STREAM", format!("{}:{ino}", meta.dev()))
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
            .status()
            .await
            .unwrap();
        assert!(run.success());
        let stderr = std::fs::read_to_string(&log).unwrap();
        let fell_back = stderr.contains("journald is not reachable; logging to stderr");
        // Here journald may not run: then the journal is chosen and the
        // daemon says it falls back; where it runs, nothing reaches stderr.
        match (expect_journal, journald) {
            (true, false) => assert!(fell_back, "{stderr}"),
            (true, true) => assert!(!stderr.contains("DEBUG"), "{stderr}"),
            (false, _) => assert!(!fell_back && stderr.contains("DEBUG"), "{stderr}"),
        }
    }
}

/// The keepalive's bookkeeping meets a write lock held past the busy
/// timeout (a user's open transaction; a long re-linking write): the record
/// waits for the lock, like every other write, and lands once it is free.
#[tokio::test(flavor = "multi_thread")]
async fn the_keepalive_record_waits_for_a_held_lock_and_lands() {
    let app = logged_in().await;
    app.configure("[sync]\nschedule = \"0 0 0 1 1 *\"\n");
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await >= 1 })
        .await;
    let keepalive = || {
        app.text(
            "SELECT last_keepalive_at FROM daemon_state WHERE id = ?",
            "1",
        )
    };
    app.eventually("a keepalive recorded", || async {
        keepalive().await.is_some()
    })
    .await;
    let before = keepalive().await;
    let mut user = sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db.display()))
        .await
        .unwrap();
    user.execute("BEGIN IMMEDIATE").await.unwrap();
    app.eventually("the keepalive waiting for the lock", || async {
        daemon
            .logs()
            .contains("waiting for it to record the keepalive")
    })
    .await;
    // From here on synccheck answers nothing: only the record made while
    // the lock was held can land.
    app.sim.fail(Endpoint::SyncCheck, Fault::Http(502), 100_000);
    user.execute("ROLLBACK").await.unwrap();
    user.close().await.unwrap();
    app.eventually("the record made under the lock", || async {
        keepalive().await > before
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(!logs.contains("cannot record the keepalive"), "{logs}");
}

/// With `RUST_LOG=debug`, a request's lines carry the spans of what sent it
/// (the full sync's run id, the keepalive step, the remark edit's op id, the
/// commit's source) and its endpoint; no credential is among their fields.
#[tokio::test(flavor = "multi_thread")]
async fn debug_lines_say_which_sync_edit_and_request_they_belong_to() {
    let app = logged_in().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    let f = friends(&app);
    let op = app.queue_edit(&f[0], "Spanned").await;
    assert_eq!(app.op_settled(op).await, "done");
    app.sim.rename(&f[1], "Pushed name");
    app.eventually("the pushed rename", || async {
        app.text("SELECT nick_name FROM contacts WHERE user_name = ?", &f[1])
            .await
            .as_deref()
            == Some("Pushed name")
    })
    .await;
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{logs}");

    // `outer{…}:inner{…}: message`: the request inside what sent it.
    let remark = format!("remark{{op={op}}}");
    for [outer, inner, message] in [
        [
            "full_sync{run_id=1}",
            "webwx{endpoint=\"webwxinit\" call=",
            "reply",
        ],
        [
            "full_sync{run_id=1}",
            "stage_commit{source=\"full_sync\"}",
            "cache written",
        ],
        [
            "keepalive{step=",
            "webwx{endpoint=\"synccheck\" call=",
            "reply",
        ],
        [
            "keepalive{step=",
            "stage_commit{source=\"increment\"}",
            "cache written",
        ],
        [&remark, "webwx{endpoint=\"webwxoplog\" call=", "reply"],
    ] {
        let found = logs.lines().any(|l| {
            l.split_once(outer)
                .and_then(|(_, rest)| rest.split_once(inner))
                .is_some_and(|(_, rest)| rest.contains(message))
        });
        assert!(found, "no {message:?} line in {outer}…{inner}:\n{logs}");
    }
    for secret in &app.session_secrets() {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the debug log"
        );
    }
}
