//! Fault injection: every endpoint `wxsync sync`, `wxsync run` and `wxsync
//! login` call × every way a call fails (HTTP 5xx, a reset connection, a
//! truncated body, a delay past the client's timeout, Ret 1205, Ret
//! 1100/1101), with every contact and membership row compared before and
//! after; every way the read-back of an accepted remark edit fails; replies
//! of 200 MB and a group of 100,000 members (with the child's peak memory),
//! a `Seq` that never ends, a batch reply carrying groups nobody asked for,
//! an empty contact list and invalid UTF-8; and Ret-0 answers that prove
//! nothing (entries without a name in every list, batch replies leaving out
//! groups, an empty list every time), with the cache compared to the
//! simulator's account as well.
//!
//! Each test prints its lines of the fault matrix in docs/faults.md:
//! `cargo test --test it faults:: -- --nocapture 2>/dev/null | grep '^fault'`.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use wxsync::simulator::{Endpoint, Fault, SimConfig, SimKind};

use crate::helpers::{Daemon, Run, TestApp, small_account};

/// The client's timeouts here (`wechat.request_timeout`,
/// `wechat.synccheck_timeout`): short, so that a delay past them costs a
/// second, not 20.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const SYNCCHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A daemon schedule that does not fire during a test: only the full sync
/// at start runs.
const RARELY: &str = "0 0 0 1 1 *";

/// Endpoints as the client and its error messages name them.
fn wire(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Init => "webwxinit",
        Endpoint::StatusNotify => "webwxstatusnotify",
        Endpoint::GetContact => "webwxgetcontact",
        Endpoint::BatchGetContact => "webwxbatchgetcontact",
        Endpoint::OpLog => "webwxoplog",
        Endpoint::SyncCheck => "synccheck",
        Endpoint::Sync => "webwxsync",
        Endpoint::GetIcon => "webwxgeticon",
        Endpoint::GetHeadImg => "webwxgetheadimg",
        other => panic!("{other:?} is not in the fault matrix"),
    }
}

/// The faults a retry can outlast, by their names in the matrix.
fn transient_faults(endpoint: Endpoint) -> Vec<(&'static str, Fault)> {
    let timeout = match endpoint {
        Endpoint::SyncCheck => SYNCCHECK_TIMEOUT,
        _ => REQUEST_TIMEOUT,
    };
    vec![
        ("HTTP 502", Fault::Http(502)),
        ("reset", Fault::Reset),
        ("truncated", Fault::Truncated),
        ("delay past timeout", Fault::Delay(timeout + timeout / 2)),
        ("Ret 1205", Fault::Ret(1205)),
    ]
}

/// The codes with which the server ends a session.
const DEAD_CODES: [i64; 2] = [1100, 1101];

/// A reply that is JSON but for two bytes that are not UTF-8.
fn invalid_utf8(list_key: &str) -> Fault {
    let mut body =
        format!(r#"{{"BaseResponse":{{"Ret":0}},"Seq":0,"Count":1,"{list_key}":[{{"UserName":"@x","NickName":""#)
            .into_bytes();
    body.extend_from_slice(b"\xff\xfe");
    body.extend_from_slice(br#""}]}"#);
    Fault::Custom {
        status: 200,
        content_type: "text/plain".into(),
        body,
    }
}

/// One cell of the matrix: failure messages start with it, and it counts
/// its tries and the cache rows they compared, lost and wrote.
struct Cell {
    command: &'static str,
    endpoint: Endpoint,
    fault: String,
    tried: u32,
    survived: u32,
    /// Rows of the cache compared before and after a try, over all tries.
    compared: usize,
    /// Rows held before a try and missing or changed after it.
    lost: usize,
    /// Rows after a try that were not there before it (changed ones too).
    written: usize,
    /// Whether the try in progress has lost or written a row.
    damaged: bool,
    /// A few of the rows lost and written, for the failure message.
    examples: Vec<String>,
}

impl Cell {
    fn new(command: &'static str, endpoint: Endpoint, fault: &str) -> Cell {
        Cell {
            command,
            endpoint,
            fault: fault.to_owned(),
            tried: 0,
            survived: 0,
            compared: 0,
            lost: 0,
            written: 0,
            damaged: false,
            examples: Vec::new(),
        }
    }

    /// Compares the cache's rows `before` the try with those `after` it,
    /// leaving out the rows that mention one of `exempt` (the contacts the
    /// cell changes on purpose), and counts them into the try in progress.
    /// A row lost or written does not stop the test here: the matrix
    /// prints the cell with its count and then fails the test.
    fn compare(&mut self, before: &[String], after: &[String], exempt: &[&str]) {
        let kept = |row: &&String| !exempt.iter().any(|name| row.contains(name));
        let before: BTreeSet<&String> = before.iter().filter(kept).collect();
        let after: BTreeSet<&String> = after.iter().filter(kept).collect();
        let lost: Vec<&&String> = before.difference(&after).collect();
        let written: Vec<&&String> = after.difference(&before).collect();
        self.compared += before.len();
        self.lost += lost.len();
        self.written += written.len();
        self.damaged |= !lost.is_empty() || !written.is_empty();
        let examples = lost.iter().map(|row| format!("lost: {row}"));
        let examples = examples.chain(written.iter().map(|row| format!("written: {row}")));
        let room = 4usize.saturating_sub(self.examples.len());
        self.examples.extend(examples.take(room));
    }

    /// Ends a try that passed every assertion: it survived unless one of
    /// its comparisons lost or wrote a row.
    fn end_try(&mut self) {
        self.tried += 1;
        if !std::mem::take(&mut self.damaged) {
            self.survived += 1;
        }
    }

    /// The cell's line of the fault matrix in docs/faults.md.
    fn line(&self) -> String {
        format!(
            "fault matrix | {} | {} | {} | tried {} | survived {} | rows compared {} | rows lost {} | rows written {}",
            self.command,
            wire(self.endpoint),
            self.fault,
            self.tried,
            self.survived,
            self.compared,
            self.lost,
            self.written
        )
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} × {} during `wxsync {}`",
            wire(self.endpoint),
            self.fault,
            self.command
        )
    }
}

/// The cells one test has finished.
#[derive(Default)]
struct Matrix(Vec<Cell>);

impl Matrix {
    fn add(&mut self, cell: Cell) {
        assert!(cell.tried > 0, "{cell}: no try ended");
        self.0.push(cell);
    }

    /// Prints every cell's line, then fails the test if a try lost or
    /// wrote a row (naming the cells and a few of the rows).
    fn finish(self) {
        for cell in &self.0 {
            println!("{}", cell.line());
        }
        let damaged: Vec<String> = (self.0.iter())
            .filter(|cell| cell.lost + cell.written > 0)
            .map(|cell| {
                format!(
                    "{cell}: {} of {} rows lost, {} written\n  {}",
                    cell.lost,
                    cell.compared,
                    cell.written,
                    cell.examples.join("\n  ")
                )
            })
            .collect();
        assert!(damaged.is_empty(), "{}", damaged.join("\n"));
    }
}

/// A test app whose calls time out after [`REQUEST_TIMEOUT`] and
/// [`SYNCCHECK_TIMEOUT`].
async fn fault_app(account: SimConfig) -> TestApp {
    let app = TestApp::spawn(account).await;
    // The test config ends inside its [wechat] table.
    app.configure(&format!(
        "request_timeout = \"{}ms\"\nsynccheck_timeout = \"{}ms\"\n",
        REQUEST_TIMEOUT.as_millis(),
        SYNCCHECK_TIMEOUT.as_millis()
    ));
    app
}

async fn synced() -> TestApp {
    let app = fault_app(small_account()).await;
    app.login().await;
    app.sync().await;
    app
}

/// Renames the first friend on the server (a change a complete sync must
/// bring, and a failed one must not); returns their user name.
fn rename_a_friend(app: &TestApp, nick: &str) -> String {
    let friend = app.first_friend();
    app.sim.rename(&friend, nick);
    friend
}

async fn nick_of(app: &TestApp, user_name: &str) -> Option<String> {
    app.text(
        "SELECT nick_name FROM contacts WHERE user_name = ?",
        user_name,
    )
    .await
}

/// The newest `sync_runs` row: id, status, error.
async fn last_run(app: &TestApp) -> (i64, String, Option<String>) {
    let pool = app.db().await;
    let row = sqlx::query_as("SELECT id, status, error FROM sync_runs ORDER BY id DESC LIMIT 1")
        .fetch_optional(&pool)
        .await
        .unwrap()
        .unwrap_or((0, String::new(), None));
    pool.close().await;
    row
}

/// The first `sync_runs` row after `since` that `done` accepts (status,
/// error), once there is one: its id.
async fn run_after(
    app: &TestApp,
    what: &str,
    since: i64,
    done: impl Fn(&str, Option<&str>) -> bool,
) -> i64 {
    wait_for(what, || async {
        let pool = app.db().await;
        let runs: Vec<(i64, String, Option<String>)> =
            sqlx::query_as("SELECT id, status, error FROM sync_runs WHERE id > ? ORDER BY id")
                .bind(since)
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        runs.into_iter()
            .find(|(_, status, error)| done(status, error.as_deref()))
            .map(|(id, ..)| id)
    })
    .await
}

async fn session_state(app: &TestApp) -> String {
    let run = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    v["session"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn keepalive_at(app: &TestApp) -> Option<String> {
    app.text(
        "SELECT last_keepalive_at FROM daemon_state WHERE id = ?",
        "1",
    )
    .await
}

/// Polls `f` every 50 ms until it gives a value; panics with `what` after
/// 30 s (a deadline for a hung test, not a speed assertion).
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn assert_alive(daemon: &mut Daemon, cell: &Cell) {
    let exited = daemon.child.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "{cell}: the daemon exited ({exited:?}):\n{}",
        daemon.logs()
    );
}

/// The last line of a failed command: its one-line reason.
fn reason(run: &Run) -> &str {
    run.stderr.lines().last().unwrap_or_default()
}

// ---------------------------------------------------------------- `wxsync sync`

/// Every fault at `endpoint` during `wxsync sync`, on one simulator. A fault
/// on every try fails the sync with a reason naming the endpoint, recorded
/// in `sync_runs`, and leaves every row as it was (the server's pending
/// change included); a single faulted call is retried and the sync brings
/// exactly the server's change; Ret 1100/1101 end the session and keep
/// every row.
async fn sync_matrix(endpoint: Endpoint) {
    let app = synced().await;
    let mut matrix = Matrix::default();
    for (i, (name, fault)) in transient_faults(endpoint).into_iter().enumerate() {
        let mut cell = Cell::new("sync", endpoint, name);
        let before = app.dump().await;
        let nick = format!("Renamed during fault {i}");
        let friend = rename_a_friend(&app, &nick);

        app.sim.fail(endpoint, fault.clone(), 1000);
        let run = app.wxsync(&["sync"]).await;
        app.sim.clear_faults_of(endpoint);
        assert!(!run.ok(), "{cell}: a fault on every try must fail: {run:?}");
        assert!(
            reason(&run).starts_with("wxsync: ") && reason(&run).contains(wire(endpoint)),
            "{cell}: the reason names the endpoint: {run:?}"
        );
        let (_, status, error) = last_run(&app).await;
        assert!(
            status == "failed" && error.as_deref().is_some_and(|e| e.contains(wire(endpoint))),
            "{cell}: the run is recorded failed with its reason: {status} {error:?}"
        );
        cell.compare(&before, &app.dump().await, &[]);
        cell.end_try();

        app.sim.fail(endpoint, fault, 1);
        let run = app.wxsync(&["sync"]).await;
        assert!(run.ok(), "{cell}: one faulted call is retried: {run:?}");
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains("transient error") && l.contains(wire(endpoint))),
            "{cell}: the faulted call was served and retried: {run:?}"
        );
        assert_eq!(
            nick_of(&app, &friend).await.as_deref(),
            Some(nick.as_str()),
            "{cell}: the server's change lands once the sync completes"
        );
        cell.compare(&before, &app.dump().await, &[&friend]);
        cell.end_try();
        matrix.add(cell);
    }
    for code in DEAD_CODES {
        let mut cell = Cell::new("sync", endpoint, &format!("Ret {code}"));
        let before = app.dump().await;
        app.sim.fail(endpoint, Fault::Ret(code), 1);
        let run = app.wxsync(&["sync"]).await;
        assert!(!run.ok(), "{cell}: {run:?}");
        assert!(
            reason(&run).contains(&format!("code {code}"))
                && reason(&run).contains("run `wxsync login`"),
            "{cell}: the reason says what to do: {run:?}"
        );
        assert_eq!(session_state(&app).await, "logged_out", "{cell}");
        cell.compare(&before, &app.dump().await, &[]);
        cell.end_try();
        // The next cell needs a live session.
        app.login().await;
        matrix.add(cell);
    }
    matrix.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxinit_during_sync_fails_cleanly_or_is_retried() {
    sync_matrix(Endpoint::Init).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxgetcontact_during_sync_fails_cleanly_or_is_retried() {
    sync_matrix(Endpoint::GetContact).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxbatchgetcontact_during_sync_fails_cleanly_or_is_retried() {
    sync_matrix(Endpoint::BatchGetContact).await;
}

// ----------------------------------------------------------------- `wxsync run`

/// A daemon on a logged-in account that has finished its first full sync;
/// `schedule` sets its later ones.
async fn running(schedule: &str) -> (TestApp, Daemon) {
    let app = fault_app(small_account()).await;
    app.configure(&format!(
        "[sync]\nschedule = \"{schedule}\"\n[ops]\npoll_interval = \"100ms\"\n"
    ));
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the daemon's first full sync", || async {
        app.ok_runs().await >= 1
    })
    .await;
    (app, daemon)
}

/// Stops the daemon, which must exit 0 after everything it went through.
async fn stop(daemon: Daemon, what: &str) {
    let (code, logs) = daemon.stop().await;
    assert_eq!(code, Some(0), "{what}: the daemon's exit:\n{logs}");
}

/// Ret `code` at `endpoint` while the daemon runs, once `trigger` has made
/// the daemon call it (returning how many remark edits it queued): the
/// session ends, every row stays, the edits stay pending for the next login,
/// and the daemon waits for a login, saying so, without exiting. After
/// `wxsync login` it runs the new session: synccheck is answered again and
/// a full sync runs. Returns the last run before that login.
async fn dead_session_cell(
    app: &TestApp,
    daemon: &mut Daemon,
    matrix: &mut Matrix,
    endpoint: Endpoint,
    code: i64,
    trigger: impl AsyncFnOnce() -> i64,
) -> i64 {
    let mut cell = Cell::new("run", endpoint, &format!("Ret {code}"));
    let before = app.dump().await;
    let said = |d: &Daemon| d.logs().matches("waiting for a new session").count();
    let waiting = said(daemon);
    app.sim.fail(endpoint, Fault::Ret(code), 1);
    let queued = trigger().await;
    wait_for(&format!("{cell}: the daemon waiting for a login"), || {
        let now = said(daemon);
        async move { (now > waiting).then_some(()) }
    })
    .await;
    assert_alive(daemon, &cell);
    assert_eq!(session_state(app).await, "logged_out", "{cell}");
    let pending = app
        .scalar("SELECT count(*) FROM pending_ops WHERE status = 'pending'")
        .await;
    assert_eq!(pending, queued, "{cell}: queued edits stay pending");
    cell.compare(&before, &app.dump().await, &[]);

    let answered = keepalive_at(app).await;
    let runs = last_run(app).await.0;
    app.login().await;
    wait_for(
        &format!("{cell}: synccheck answered under the new session"),
        || async { (keepalive_at(app).await != answered).then_some(()) },
    )
    .await;
    run_after(
        app,
        &format!("{cell}: a full sync under the new session"),
        runs,
        |status, _| status != "running",
    )
    .await;
    assert_alive(daemon, &cell);
    cell.end_try();
    matrix.add(cell);
    runs
}

/// Every fault at one endpoint of the full sync while the daemon runs (it
/// syncs every second): the sync fails with the reason recorded, every row
/// stays, the daemon runs on and completes a sync once the fault clears.
async fn run_matrix_full_sync(endpoint: Endpoint) {
    let (app, mut daemon) = running("* * * * * *").await;
    let mut matrix = Matrix::default();
    for (name, fault) in transient_faults(endpoint) {
        let mut cell = Cell::new("run", endpoint, name);
        let before = app.dump().await;
        let since = last_run(&app).await.0;
        app.sim.fail(endpoint, fault.clone(), 1000);
        let failed = run_after(
            &app,
            &format!("{cell}: a failed full sync"),
            since,
            |status, error| status == "failed" && error.is_some_and(|e| e.contains(wire(endpoint))),
        )
        .await;
        assert_alive(&mut daemon, &cell);
        cell.compare(&before, &app.dump().await, &[]);
        app.sim.clear_faults_of(endpoint);
        run_after(
            &app,
            &format!("{cell}: a full sync after the fault cleared"),
            failed,
            |status, _| status == "ok",
        )
        .await;
        assert_alive(&mut daemon, &cell);
        cell.compare(&before, &app.dump().await, &[]);
        cell.end_try();
        matrix.add(cell);
    }
    for code in DEAD_CODES {
        let login =
            dead_session_cell(&app, &mut daemon, &mut matrix, endpoint, code, async || 0).await;
        // The next cell starts from a cache that holds the new login's
        // names: after a full sync that is `ok`.
        run_after(&app, "a full sync of the new login", login, |status, _| {
            status == "ok"
        })
        .await;
    }
    stop(daemon, wire(endpoint)).await;
    matrix.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxinit_while_running_keeps_rows_and_the_daemon() {
    run_matrix_full_sync(Endpoint::Init).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxgetcontact_while_running_keeps_rows_and_the_daemon() {
    run_matrix_full_sync(Endpoint::GetContact).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxbatchgetcontact_while_running_keeps_rows_and_the_daemon() {
    run_matrix_full_sync(Endpoint::BatchGetContact).await;
}

/// Log lines of the keepalive giving up on a round because of `endpoint`.
fn keepalive_failures(daemon: &Daemon, endpoint: Endpoint) -> usize {
    daemon
        .logs()
        .lines()
        .filter(|l| {
            l.contains(wire(endpoint))
                && (l.contains("keepalive failed") || l.contains("unknown retcode"))
        })
        .count()
}

/// Every fault at synccheck or webwxsync while the daemon runs: a change
/// made on the server does not land while the fault lasts (and nothing else
/// moves), the daemon backs off and runs on, and the change lands once the
/// fault clears.
async fn run_matrix_keepalive(endpoint: Endpoint) {
    let (app, mut daemon) = running(RARELY).await;
    let mut matrix = Matrix::default();
    let mut faults = transient_faults(endpoint);
    if endpoint == Endpoint::Sync {
        faults.push(("invalid UTF-8", invalid_utf8("ModContactList")));
    }
    for (i, (name, fault)) in faults.into_iter().enumerate() {
        let mut cell = Cell::new("run", endpoint, name);
        let before = app.dump().await;
        let failures = |n: usize| {
            let what = format!("{cell}: {n} failed keepalive rounds");
            let from = keepalive_failures(&daemon, endpoint);
            let daemon = &daemon;
            async move {
                wait_for(&what, || {
                    let now = keepalive_failures(daemon, endpoint);
                    async move { (now >= from + n).then_some(()) }
                })
                .await
            }
        };
        app.sim.fail(endpoint, fault.clone(), 1000);
        // Two faulted rounds; a synccheck poll already in flight would
        // report a change at once, so that change waits for the first.
        let first = endpoint == Endpoint::SyncCheck;
        if first {
            failures(1).await;
        }
        let nick = format!("Pushed during fault {i}");
        let friend = rename_a_friend(&app, &nick);
        failures(if first { 1 } else { 2 }).await;
        assert_alive(&mut daemon, &cell);
        cell.compare(&before, &app.dump().await, &[]);
        app.sim.clear_faults_of(endpoint);
        wait_for(
            &format!("{cell}: the change after the fault cleared"),
            || async {
                (nick_of(&app, &friend).await.as_deref() == Some(nick.as_str())).then_some(())
            },
        )
        .await;
        assert_alive(&mut daemon, &cell);
        cell.compare(&before, &app.dump().await, &[&friend]);
        cell.end_try();
        matrix.add(cell);
    }
    for (i, code) in DEAD_CODES.into_iter().enumerate() {
        let trigger = async || {
            if endpoint == Endpoint::Sync {
                rename_a_friend(&app, &format!("Pushed to a dead session {i}"));
            }
            0
        };
        dead_session_cell(&app, &mut daemon, &mut matrix, endpoint, code, trigger).await;
    }
    stop(daemon, wire(endpoint)).await;
    matrix.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_synccheck_keeps_rows_and_the_daemon_which_recovers() {
    run_matrix_keepalive(Endpoint::SyncCheck).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxsync_keeps_rows_and_the_daemon_which_recovers() {
    run_matrix_keepalive(Endpoint::Sync).await;
}

/// A live friend in the cache, by the name the cache holds.
async fn cached_friend(app: &TestApp) -> String {
    app.text(
        "SELECT user_name FROM contacts WHERE kind = ? AND deleted_at IS NULL \
         ORDER BY user_name LIMIT 1",
        "friend",
    )
    .await
    .expect("a live friend in the cache")
}

/// Queues a remark edit as a user would; returns its id.
async fn queue_edit(app: &TestApp, user_name: &str, remark: &str) -> i64 {
    let pool = app.db().await;
    let id = sqlx::query("INSERT INTO pending_ops (user_name, remark_name) VALUES (?, ?)")
        .bind(user_name)
        .bind(remark)
        .execute(&pool)
        .await
        .unwrap()
        .last_insert_rowid();
    pool.close().await;
    id
}

/// An edit's status, attempts and last error.
async fn edit(app: &TestApp, id: i64) -> (String, i64, Option<String>) {
    let pool = app.db().await;
    let row = sqlx::query_as("SELECT status, attempts, last_error FROM pending_ops WHERE id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row
}

/// The edit once it is no longer pending.
async fn settled(app: &TestApp, what: &str, id: i64) -> (String, i64, Option<String>) {
    wait_for(what, || async {
        let e = edit(app, id).await;
        (e.0 != "pending").then_some(e)
    })
    .await
}

async fn remarks(app: &TestApp, user_name: &str) -> (Option<String>, Option<String>) {
    let cached = app
        .text(
            "SELECT remark_name FROM contacts WHERE user_name = ?",
            user_name,
        )
        .await;
    let server = app
        .sim
        .account()
        .contacts
        .into_iter()
        .find(|c| c.user_name == user_name)
        .map(|c| c.remark_name);
    (cached, server)
}

/// Every fault at webwxoplog while the daemon applies remark edits. A fault
/// on every call: the edit ends `done` if the server made it anyway (a reply
/// lost after the change), else it is given up after its attempts with the
/// reason; the cache holds what the server holds. Two faulted calls: the
/// edit is retried and applied. Either way no other row moves and the
/// daemon runs on.
#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxoplog_keeps_rows_and_the_remark_queue_going() {
    let (app, mut daemon) = running(RARELY).await;
    let mut matrix = Matrix::default();
    let endpoint = Endpoint::OpLog;
    for (i, (name, fault)) in transient_faults(endpoint).into_iter().enumerate() {
        let mut cell = Cell::new("run", endpoint, name);
        let friend = cached_friend(&app).await;
        let before = app.dump().await;

        app.sim.fail(endpoint, fault.clone(), 1000);
        let queued = format!("Given up {i}");
        let id = queue_edit(&app, &friend, &queued).await;
        let (status, _, error) = settled(&app, &format!("{cell}: the edit settled"), id).await;
        app.sim.clear_faults_of(endpoint);
        wait_for(
            &format!("{cell}: the cache holding the server's remark"),
            || async {
                let (cached, server) = remarks(&app, &friend).await;
                (cached.is_some() && cached == server).then_some(())
            },
        )
        .await;
        // A reply lost after the server made the change (cut, timed out)
        // leaves the edit made: its status must say so.
        let made = remarks(&app, &friend).await.1.as_deref() == Some(queued.as_str());
        let told = match made {
            true => status == "done",
            false => {
                status == "failed"
                    && error
                        .as_deref()
                        .is_some_and(|e| e.contains("gave up") && e.contains(wire(endpoint)))
            }
        };
        assert!(
            told,
            "{cell}: the server made the edit: {made}, but it ended {status} {error:?}"
        );
        println!(
            "fault oplog | {name} on every call | the server made the edit: {made} | edit {status}"
        );
        assert_alive(&mut daemon, &cell);
        cell.compare(&before, &app.dump().await, &[&friend]);
        cell.end_try();

        app.sim.fail(endpoint, fault, 2);
        let remark = format!("Applied {i}");
        let id = queue_edit(&app, &friend, &remark).await;
        let (status, attempts, error) =
            settled(&app, &format!("{cell}: the edit retried"), id).await;
        assert_eq!(
            (status.as_str(), attempts),
            ("done", 3),
            "{cell}: two faulted calls, then applied: {error:?}"
        );
        assert_eq!(
            remarks(&app, &friend).await,
            (Some(remark.clone()), Some(remark.clone())),
            "{cell}"
        );
        // The server announces the change too; the next cell starts once
        // that increment has landed (it rewrites the row's `raw`).
        wait_for(&format!("{cell}: the edit's increment"), || async {
            let raw = app
                .text("SELECT raw FROM contacts WHERE user_name = ?", &friend)
                .await
                .unwrap_or_default();
            raw.contains(&format!(r#""RemarkName":"{remark}""#))
                .then_some(())
        })
        .await;
        assert_alive(&mut daemon, &cell);
        cell.compare(&before, &app.dump().await, &[&friend]);
        cell.end_try();
        matrix.add(cell);
    }
    for (i, code) in DEAD_CODES.into_iter().enumerate() {
        let trigger = async || {
            let friend = cached_friend(&app).await;
            queue_edit(&app, &friend, &format!("To a dead session {i}")).await;
            1
        };
        dead_session_cell(&app, &mut daemon, &mut matrix, endpoint, code, trigger).await;
        // The next cell counts its own edit alone: wait until the edit has
        // settled and the server's increment for it has rewritten the row.
        wait_for("the edit queued to the dead session settled", || async {
            let pending = app
                .scalar("SELECT count(*) FROM pending_ops WHERE status = 'pending'")
                .await;
            (pending == 0).then_some(())
        })
        .await;
        let announced = format!(r#"%"RemarkName":"To a dead session {i}"%"#);
        wait_for("the dead-session edit's increment", || async {
            let rows = app
                .text(
                    "SELECT count(*) || '' FROM contacts WHERE raw LIKE ?",
                    &announced,
                )
                .await;
            (rows.as_deref() != Some("0")).then_some(())
        })
        .await;
    }
    stop(daemon, wire(endpoint)).await;
    matrix.finish();
}

/// The read-back faults after an accepted edit: the transient ones, and
/// replies that answer nothing about the contact.
fn read_back_faults() -> Vec<(&'static str, Fault)> {
    let reply = |content_type: &str, body: &[u8]| Fault::Custom {
        status: 200,
        content_type: content_type.into(),
        body: body.to_vec(),
    };
    let mut faults = transient_faults(Endpoint::BatchGetContact);
    faults.extend([
        (
            "empty list",
            reply(
                "text/plain",
                br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"Count":0,"ContactList":[]}"#,
            ),
        ),
        (
            "oversized",
            Fault::Huge {
                bytes: 200_000_000,
                chunked: false,
            },
        ),
        ("not JSON", reply("text/html", b"<html>busy</html>")),
    ]);
    faults
}

/// Every way the read-back (webwxbatchgetcontact) of an edit webwxoplog
/// accepted can fail. On every read-back: the edit is not sent again and
/// ends `unverified` with the reason, never `failed`. On two: the
/// read-back alone is retried and the edit is `done` at its first call.
/// Either way the cache comes to hold the server's remark and no other row
/// moves.
#[tokio::test(flavor = "multi_thread")]
async fn every_read_back_fault_after_an_accepted_edit_leaves_the_edit_unverified_or_done() {
    let (app, mut daemon) = running(RARELY).await;
    let mut matrix = Matrix::default();
    let endpoint = Endpoint::BatchGetContact;
    for (i, (name, fault)) in read_back_faults().into_iter().enumerate() {
        let mut cell = Cell::new("run", endpoint, &format!("{name} after an accepted edit"));
        let friend = cached_friend(&app).await;
        for (tries, remark, ends) in [
            (1000, format!("Unverified {i}"), "unverified"),
            (2, format!("Read back {i}"), "done"),
        ] {
            let before = app.dump().await;
            let sent = app.calls_to(Endpoint::OpLog);
            app.sim.fail(endpoint, fault.clone(), tries);
            let id = queue_edit(&app, &friend, &remark).await;
            let (status, attempts, error) =
                settled(&app, &format!("{cell}: the edit settled"), id).await;
            app.sim.clear_faults_of(endpoint);
            assert_eq!(
                (
                    status.as_str(),
                    attempts,
                    app.calls_to(Endpoint::OpLog) - sent
                ),
                (ends, 1, 1),
                "{cell}: sent once and ended {ends}: {error:?}"
            );
            if ends == "unverified" {
                let error = error.unwrap_or_default();
                assert!(
                    error.starts_with(
                        "the server accepted the edit, but reading the contact back failed 5 times"
                    ) && (error.contains(wire(endpoint))
                        || error.contains("does not hold the contact")),
                    "{cell}: the reason: {error}"
                );
                println!("fault read-back | {name} on every read-back | edit {status}: {error}");
            }
            wait_for(
                &format!("{cell}: the cache holding the server's remark"),
                || async {
                    let (cached, server) = remarks(&app, &friend).await;
                    (cached.as_deref() == Some(remark.as_str()) && cached == server).then_some(())
                },
            )
            .await;
            assert_alive(&mut daemon, &cell);
            cell.compare(&before, &app.dump().await, &[&friend]);
            cell.end_try();
        }
        matrix.add(cell);
    }
    stop(daemon, "read-back faults").await;
    matrix.finish();
}

// --------------------------------------------------------------- `wxsync login`

/// webwxstatusnotify is called only by a login: a fault there loses nothing.
/// The login goes on without it (only the phone's banner needs it), and
/// Ret 1100/1101 fail the login, after which the next one works.
#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_webwxstatusnotify_during_login_leaves_the_cache_alone() {
    let app = synced().await;
    let mut matrix = Matrix::default();
    let endpoint = Endpoint::StatusNotify;
    let dead = DEAD_CODES.map(|code| (code, Fault::Ret(code)));
    let faults = transient_faults(endpoint)
        .into_iter()
        .map(|(name, fault)| (name.to_owned(), fault, false))
        .chain(dead.map(|(code, fault)| (format!("Ret {code}"), fault, true)));
    for (name, fault, ends_session) in faults {
        let mut cell = Cell::new("login", endpoint, &name);
        let before = app.dump().await;
        app.sim.fail(endpoint, fault, 1);
        let run = app.wxsync(&["login"]).await;
        if ends_session {
            assert!(!run.ok(), "{cell}: {run:?}");
            assert!(reason(&run).contains(wire(endpoint)), "{cell}: {run:?}");
            app.login().await;
        } else {
            assert!(run.ok(), "{cell}: the login goes on: {run:?}");
            assert!(
                run.stderr.lines().any(|l| l.contains("status notification failed")
                    && l.contains(wire(endpoint))),
                "{cell}: the fault was served and said: {run:?}"
            );
        }
        cell.compare(&before, &app.dump().await, &[]);
        cell.end_try();
        matrix.add(cell);
    }
    matrix.finish();
}

// ------------------------------------------------ big, endless and odd replies

/// Runs `wxsync ARGS` to completion; returns how it ended and its peak
/// resident memory in bytes: `VmHWM` (the high-water mark of the program's
/// own address space) read from /proc every millisecond until it exits, so
/// the last reading is taken just before the exit. (The `ru_maxrss` a
/// parent gets from `wait4` is no use here: Linux folds the address space a
/// child had before `execve`, a copy of this big test process, into it.)
async fn wxsync_measured(app: &TestApp, args: &[&str]) -> (Run, u64) {
    let out = app.dir.path().join("measured.stdout");
    let err = app.dir.path().join("measured.stderr");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
        .arg("--config")
        .arg(&app.config)
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("wxsync runs");
    let status = format!("/proc/{}/status", child.id().unwrap());
    let mut peak_kib = 0;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        // Gone from the file once the process has released its memory.
        let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        peak_kib = peak_kib.max(hwm.unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let run = Run {
        code: exit.code(),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    };
    assert!(peak_kib > 0, "no VmHWM read for `wxsync {args:?}`: {run:?}");
    (run, peak_kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// 200 MB replies (with a Content-Length, and chunked without one) and a
/// group of 100,000 members are refused with a reason that names the
/// endpoint and the limit, the cache is untouched, and the `wxsync sync`
/// child's peak memory stays far under the reply's size.
#[tokio::test(flavor = "multi_thread")]
async fn huge_replies_are_refused_in_bounded_memory_and_change_nothing() {
    const BYTES: u64 = 200_000_000;
    /// `ClientOptions::max_reply_bytes`.
    const LIMIT: u64 = 16 << 20;
    // The default 20 s timeout: the size limit, not the clock, must stop it.
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    let (run, first_sync) = wxsync_measured(&app, &["sync"]).await;
    assert!(run.ok(), "{run:?}");
    println!(
        "fault big reply | first full sync, no fault | peak {:.1} MiB",
        mib(first_sync)
    );
    let mut matrix = Matrix::default();
    let huge = |chunked| Fault::Huge {
        bytes: BYTES,
        chunked,
    };
    for (endpoint, name, fault) in [
        (Endpoint::Init, "200 MB, chunked", huge(true)),
        (Endpoint::GetContact, "200 MB, Content-Length", huge(false)),
        (Endpoint::GetContact, "200 MB, chunked", huge(true)),
        (
            Endpoint::BatchGetContact,
            "200 MB, Content-Length",
            huge(false),
        ),
        (Endpoint::BatchGetContact, "200 MB, chunked", huge(true)),
        (
            Endpoint::BatchGetContact,
            "a group of 100,000 members",
            Fault::HugeGroup(100_000),
        ),
    ] {
        let mut cell = Cell::new("sync", endpoint, name);
        let before = app.dump().await;
        app.sim.fail(endpoint, fault.clone(), 1000);
        let (run, peak) = wxsync_measured(&app, &["sync"]).await;
        app.sim.clear_faults_of(endpoint);
        let why = reason(&run);
        assert!(!run.ok(), "{cell}: {run:?}");
        assert!(
            why.contains(wire(endpoint))
                && why.contains("reply refused")
                && why.contains("max_reply_bytes"),
            "{cell}: the reason names the endpoint and the limit: {run:?}"
        );
        let (_, status, error) = last_run(&app).await;
        assert!(
            status == "failed"
                && error
                    .as_deref()
                    .is_some_and(|e| e.contains("reply refused")),
            "{cell}: recorded failed with the reason: {status} {error:?}"
        );
        cell.compare(&before, &app.dump().await, &[]);
        // What the reply was (or announced) against what the child held at most.
        let size = match why.split("announces ").nth(1) {
            Some(rest) => rest.split(' ').next().unwrap().parse::<u64>().unwrap(),
            None => BYTES,
        };
        // Bounded by the limit, not by the reply: at most the limit's
        // buffer (twice, while it grows) over what a whole sync takes.
        assert!(
            peak < first_sync + 2 * LIMIT && (size < BYTES || peak < size / 4),
            "{cell}: peak memory {:.1} MiB for a reply of {:.1} MiB (a sync alone: {:.1} MiB)",
            mib(peak),
            mib(size),
            mib(first_sync)
        );
        println!(
            "fault big reply | {} | {name} | reply {:.1} MiB | peak {:.1} MiB | {why}",
            wire(endpoint),
            mib(size),
            mib(peak)
        );
        cell.end_try();
        matrix.add(cell);
    }
    matrix.finish();
}

/// A webwxgetcontact that hands out a fresh `Seq` on every page, forever:
/// the sync stops with a reason and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_seq_that_never_ends_stops_the_sync_with_a_reason() {
    let app = synced().await;
    let mut cell = Cell::new("sync", Endpoint::GetContact, "a Seq that never ends");
    let before = app.dump().await;
    let pages_before = app.calls_to(Endpoint::GetContact);
    app.sim
        .fail(Endpoint::GetContact, Fault::EndlessSeq, 10_000);
    let run = app.wxsync(&["sync"]).await;
    app.sim.clear_faults_of(Endpoint::GetContact);
    assert!(!run.ok(), "{cell}: {run:?}");
    assert!(
        reason(&run).contains(wire(Endpoint::GetContact)) && reason(&run).contains("page"),
        "{cell}: {run:?}"
    );
    let (_, status, error) = last_run(&app).await;
    assert!(
        status == "failed" && error.is_some_and(|e| e.contains("page")),
        "{cell}"
    );
    cell.compare(&before, &app.dump().await, &[]);
    let pages = app.calls_to(Endpoint::GetContact) - pages_before;
    println!(
        "fault endless Seq | stopped after {pages} pages | {}",
        reason(&run)
    );
    cell.end_try();
    let mut matrix = Matrix::default();
    matrix.add(cell);
    matrix.finish();
}

/// A batch reply that also describes groups nobody asked for: they are
/// ignored. The group here is created on the server after the sync's
/// webwxinit (while its webwxgetcontact is held), so only the unasked copy
/// in the batch reply could bring it.
#[tokio::test(flavor = "multi_thread")]
async fn groups_a_batch_reply_adds_unasked_are_ignored() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    let mut cell = Cell::new("sync", Endpoint::BatchGetContact, "unasked groups");
    let before = app.dump().await;
    let pages = app.calls_to(Endpoint::GetContact);
    app.sim.fail(
        Endpoint::GetContact,
        Fault::Delay(Duration::from_millis(1500)),
        1,
    );
    let sync = tokio::spawn({
        let config = app.config.clone();
        async move {
            Run::from(
                tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
                    .arg("--config")
                    .arg(config)
                    .arg("sync")
                    .env("RUST_LOG", "debug")
                    .output()
                    .await
                    .unwrap(),
            )
        }
    });
    app.eventually("the sync's webwxgetcontact held by the delay", || async {
        app.calls_to(Endpoint::GetContact) > pages
    })
    .await;
    let late = app.sim.add_group("Created after webwxinit", 5, false);
    app.sim
        .fail(Endpoint::BatchGetContact, Fault::UnaskedGroups(5), 1000);
    let run = sync.await.unwrap();
    app.sim.clear_faults_of(Endpoint::BatchGetContact);

    assert!(run.ok(), "{cell}: {run:?}");
    let asked = app
        .sim
        .calls()
        .iter()
        .filter(|c| c.endpoint == Endpoint::BatchGetContact)
        .any(|c| c.body.contains(&late));
    assert!(!asked, "{cell}: the client cannot have asked for {late}");
    cell.compare(&before, &app.dump().await, &[]);
    let landed = app
        .scalar("SELECT count(*) FROM contacts WHERE nick_name = 'Created after webwxinit'")
        .await;
    assert_eq!(landed, 0, "{cell}: nothing unasked lands");

    // The next sync learns of the group from webwxinit and stores it.
    app.sync().await;
    let pool = app.db().await;
    let members: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memberships WHERE group_user_name = ?")
            .bind(&late)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(members, 5, "{cell}: the group is real");
    cell.end_try();
    let mut matrix = Matrix::default();
    matrix.add(cell);
    matrix.finish();
}

/// The webwxgetcontact reply that once marked 484 of 500 contacts deleted.
pub fn empty_contact_list() -> Fault {
    Fault::Custom {
        status: 200,
        content_type: "text/plain".into(),
        body: br#"{"BaseResponse":{"Ret":0},"Seq":0,"MemberList":[]}"#.to_vec(),
    }
}

async fn marked_deleted(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NOT NULL")
        .await
}

// ------------------------------------------------- answers that prove nothing

/// The server's account as rows: each live contact, and each membership.
fn truth(app: &TestApp) -> Vec<String> {
    let a = app.sim.account();
    let people = a.contacts.iter().filter(|c| c.kind != SimKind::Stranger);
    let names = people
        .map(|c| &c.user_name)
        .chain([&a.self_user.user_name])
        .chain(a.groups.iter().map(|g| &g.user_name));
    let members = a.groups.iter().flat_map(|g| {
        g.members
            .iter()
            .map(move |m| format!("member {} {}", g.user_name, m.user_name))
    });
    names
        .map(|n| format!("contact {n}"))
        .chain(members)
        .collect()
}

/// The cache's rows in the shape of [`truth`]: a contact row whose
/// `user_name` is empty or NULL shows as `contact ` and never matches.
async fn cache_rows(app: &TestApp) -> Vec<String> {
    let pool = app.db().await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT 'contact ' || coalesce(user_name, '') FROM contacts WHERE deleted_at IS NULL \
         UNION ALL SELECT 'member ' || coalesce(group_user_name, '') || ' ' || \
         coalesce(member_user_name, '') FROM memberships",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// Compares the cache with the server's account into the try in progress:
/// a row of the account missing from the cache is lost, a cache row the
/// server does not hold is written.
async fn compare_truth(cell: &mut Cell, app: &TestApp) {
    cell.compare(&truth(app), &cache_rows(app).await, &[]);
}

/// The faults of replies that say less than they seem to, at `endpoint`.
fn incomplete_faults(endpoint: Endpoint) -> Vec<(&'static str, Fault)> {
    match endpoint {
        Endpoint::Init => vec![("entries without a name", Fault::Unnamed(2))],
        Endpoint::GetContact => vec![
            ("entries without a name", Fault::Unnamed(3)),
            ("an empty list, every time", Fault::EmptyList),
        ],
        Endpoint::BatchGetContact => vec![
            ("entries without a name", Fault::Unnamed(1)),
            ("groups left out", Fault::LeftOut(2)),
            ("every group left out", Fault::LeftOut(usize::MAX)),
        ],
        Endpoint::Sync => vec![("entries without a name", Fault::Unnamed(1))],
        other => panic!("{other:?} has no incomplete answers here"),
    }
}

/// [`incomplete_faults`] at every endpoint of a full sync.
fn full_sync_incomplete_faults() -> Vec<(Endpoint, &'static str, Fault)> {
    [
        Endpoint::Init,
        Endpoint::GetContact,
        Endpoint::BatchGetContact,
    ]
    .into_iter()
    .flat_map(|e| {
        incomplete_faults(e)
            .into_iter()
            .map(move |(n, f)| (e, n, f))
    })
    .collect()
}

/// Whether a run ended the way an answer that proves nothing must: `ok`
/// with notes saying what it could not read, or held by the guard.
fn proves_nothing(status: &str, error: Option<&str>) -> bool {
    status == "ok" || error.is_some_and(|e| e.contains("held back"))
}

/// The notes of run `id`.
async fn notes_of(app: &TestApp, id: i64) -> Option<String> {
    app.text("SELECT notes FROM sync_runs WHERE id = ?", &id.to_string())
        .await
}

/// Every incomplete answer during `wxsync sync`, on every call, twice in a
/// row: the sync writes what it could read, marks nothing deleted, writes
/// no row without a name, says what it could not read (or is held back by
/// the guard), and the cache equals the server's account; after the fault
/// clears, a sync is complete again.
#[tokio::test(flavor = "multi_thread")]
async fn incomplete_answers_during_sync_delete_nothing() {
    let app = synced().await;
    let mut matrix = Matrix::default();
    for (endpoint, name, fault) in full_sync_incomplete_faults() {
        let mut cell = Cell::new("sync", endpoint, name);
        app.sim.fail(endpoint, fault, 1000);
        for _ in 0..2 {
            let before = app.dump().await;
            let run = app.wxsync(&["sync"]).await;
            let (id, status, error) = last_run(&app).await;
            assert!(
                proves_nothing(&status, error.as_deref()),
                "{cell}: {status} {error:?} {run:?}"
            );
            assert!(
                run.ok() == (status == "ok") && notes_of(&app, id).await.is_some() == run.ok(),
                "{cell}: an ok run says what it could not read: {run:?}"
            );
            cell.compare(&before, &app.dump().await, &[]);
            compare_truth(&mut cell, &app).await;
            cell.end_try();
        }
        app.sim.clear_faults_of(endpoint);
        app.sync().await;
        let id = last_run(&app).await.0;
        assert_eq!(notes_of(&app, id).await, None, "{cell}: complete again");
        compare_truth(&mut cell, &app).await;
        cell.end_try();
        matrix.add(cell);
    }
    matrix.finish();
}

/// Every incomplete answer while the daemon runs (a full sync every second,
/// so each answer comes back again and again, and the sync after a failed
/// one retries): no run deletes anything, the cache equals the server's
/// account, and once the fault clears a complete sync runs. An increment
/// entry without a name is skipped with one warning and the full sync it
/// asks for brings what it held.
#[tokio::test(flavor = "multi_thread")]
async fn incomplete_answers_while_running_delete_nothing() {
    let (app, mut daemon) = running("* * * * * *").await;
    let mut matrix = Matrix::default();
    for (endpoint, name, fault) in full_sync_incomplete_faults() {
        let mut cell = Cell::new("run", endpoint, name);
        let before = app.dump().await;
        let mut since = last_run(&app).await.0;
        app.sim.fail(endpoint, fault, 100_000);
        for _ in 0..3 {
            since = run_after(&app, &format!("{cell}: a run"), since, |status, _| {
                status != "running"
            })
            .await;
        }
        let (_, status, error) = last_run(&app).await;
        assert!(
            proves_nothing(&status, error.as_deref()),
            "{cell}: {status} {error:?}"
        );
        assert_alive(&mut daemon, &cell);
        cell.compare(&before, &app.dump().await, &[]);
        compare_truth(&mut cell, &app).await;
        cell.end_try();
        app.sim.clear_faults_of(endpoint);
        let cleared = last_run(&app).await.0;
        // The first run after the clear may have begun under the fault.
        let mut complete = None;
        while complete.is_none() {
            since = run_after(
                &app,
                &format!("{cell}: a run after"),
                since.max(cleared),
                |status, _| status == "ok",
            )
            .await;
            if notes_of(&app, since).await.is_none() {
                complete = Some(since);
            }
        }
        compare_truth(&mut cell, &app).await;
        cell.end_try();
        matrix.add(cell);
    }
    stop(daemon, "incomplete answers").await;

    let (app, daemon) = running(RARELY).await;
    let endpoint = Endpoint::Sync;
    for (name, fault) in incomplete_faults(endpoint) {
        let mut cell = Cell::new("run", endpoint, name);
        let before = app.dump().await;
        app.sim.fail(endpoint, fault, 100_000);
        let nick = "Renamed in a nameless entry";
        let friend = rename_a_friend(&app, nick);
        wait_for(
            &format!("{cell}: the full sync brings the change"),
            || async { (nick_of(&app, &friend).await.as_deref() == Some(nick)).then_some(()) },
        )
        .await;
        app.sim.clear_faults_of(endpoint);
        let warned = daemon
            .logs()
            .matches("webwxsync sent entries without a UserName")
            .count();
        assert!(warned >= 1, "{cell}: {}", daemon.logs());
        cell.compare(&before, &app.dump().await, &[&friend]);
        compare_truth(&mut cell, &app).await;
        cell.end_try();
        matrix.add(cell);
    }
    stop(daemon, "webwxsync").await;
    matrix.finish();
}

/// `wxsync status --json`'s `deletion_waiting`.
async fn deletion_waiting(app: &TestApp) -> serde_json::Value {
    let run = app.wxsync(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    v["deletion_waiting"].clone()
}

/// An empty contact list, every time, on a cache of a few hundred contacts.
/// Held: the run is `failed` with the reason, nothing is marked deleted and
/// `status` says a deletion is waiting. The same answer again at once is
/// held again (a repeat is no confirmation); a sync that gets it once
/// `sync.deletion_confirm` has passed since it was first held applies it;
/// after a normal sync has restored the rows, `--force` applies it at once.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_contact_list_is_held_until_confirmed_or_forced() {
    let app = fault_app(SimConfig {
        friends: 300,
        saved_groups: 20,
        max_group_members: 20,
        page_size: 100,
        ..small_account()
    })
    .await;
    app.configure("[sync]\ndeletion_confirm = \"2s\"\n");
    app.login().await;
    app.sync().await;
    let mut cell = Cell::new("sync", Endpoint::GetContact, "empty contact list");
    let live = app
        .scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NULL")
        .await;
    assert!(live >= 300, "a cache of a few hundred contacts: {live}");

    app.sim
        .fail(Endpoint::GetContact, Fault::EmptyList, 100_000);
    let mut error = String::new();
    for _ in 0..2 {
        let before = app.dump().await;
        let run = app.wxsync(&["sync"]).await;
        assert!(!run.ok(), "{cell}: {run:?}");
        assert!(reason(&run).contains("held back"), "{cell}: {run:?}");
        let (_, status, e) = last_run(&app).await;
        error = e.unwrap_or_default();
        assert!(
            status == "failed" && error.contains("held back"),
            "{cell}: {status} {error}"
        );
        assert_eq!(
            marked_deleted(&app).await,
            0,
            "{cell}: nothing marked deleted"
        );
        cell.compare(&before, &app.dump().await, &[]);
        compare_truth(&mut cell, &app).await;
        cell.end_try();
    }
    // "this sync would mark N of M contacts deleted"
    let would: i64 = error
        .split("would mark ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{cell}: the reason names the count: {error}"));
    assert!(would > live / 2, "{cell}: {error}");
    let waiting = deletion_waiting(&app).await;
    assert_eq!(waiting["contacts"], would, "{cell}: {waiting}");
    let status = app.wxsync(&["status"]).await.stdout;
    assert!(
        status.contains("deletion:  waiting since"),
        "{cell}: {status}"
    );
    let applies_from: chrono::DateTime<chrono::Utc> =
        waiting["applies_from"].as_str().unwrap().parse().unwrap();

    // The clock passes `sync.deletion_confirm` since the first held run.
    while chrono::Utc::now() <= applies_from {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A sync that retries a failed one (as the daemon's do) never applies it.
    let before = app.dump().await;
    let retried = retried_sync(&app).await;
    assert!(
        retried.as_ref().is_err_and(|e| e.is_held()),
        "{cell}: a retry: {retried:?}"
    );
    cell.compare(&before, &app.dump().await, &[]);
    compare_truth(&mut cell, &app).await;
    cell.end_try();
    let run = app.wxsync(&["sync"]).await;
    assert!(
        run.ok(),
        "{cell}: confirmed after deletion_confirm: {run:?}"
    );
    assert_eq!(marked_deleted(&app).await, would, "{cell}");
    assert!(deletion_waiting(&app).await.is_null(), "{cell}");

    app.sim.clear_faults_of(Endpoint::GetContact);
    app.sync().await;
    assert_eq!(
        marked_deleted(&app).await,
        0,
        "{cell}: a normal sync restores them"
    );
    app.sim.fail(Endpoint::GetContact, Fault::EmptyList, 1);
    let run = app.wxsync(&["sync", "--force"]).await;
    assert!(run.ok(), "{cell}: --force applies it at once: {run:?}");
    assert_eq!(marked_deleted(&app).await, would, "{cell}");
    println!(
        "fault empty list | {live} live contacts | {error} | held again at once, applied once \
         sync.deletion_confirm had passed, and at once with --force ({would} marked deleted)"
    );
    let mut matrix = Matrix::default();
    matrix.add(cell);
    matrix.finish();
}

/// One full sync through the library, as the daemon runs one that retries
/// a failed sync.
async fn retried_sync(app: &TestApp) -> Result<wxsync::sync::SyncReport, wxsync::sync::SyncError> {
    let mut config = wxsync::config::Config::load(Some(&app.config)).unwrap();
    config.database = app.db.clone();
    let lib = wxsync::app::App::open(config).await.unwrap();
    let client = lib.client(lib.active_session().unwrap()).unwrap();
    let opts = wxsync::sync::SyncOptions {
        retry: true,
        ..lib.sync_options()
    };
    let never = tokio_util::sync::CancellationToken::new();
    wxsync::sync::full_sync(&client, &lib.store, &opts, &[], &never).await
}

/// An answer that would leave the account with no friends and no groups
/// (every list empty, ChatSet too) is held however often it comes and
/// however long after; only `--force` applies it.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_leaving_no_friends_and_no_groups_needs_force() {
    let app = fault_app(small_account()).await;
    app.configure("[sync]\ndeletion_confirm = \"0s\"\n");
    app.login().await;
    app.sync().await;
    let mut cell = Cell::new("sync", Endpoint::Init, "every list empty");
    app.sim.fail(Endpoint::Init, Fault::EmptyList, 100_000);
    app.sim
        .fail(Endpoint::GetContact, Fault::EmptyList, 100_000);
    for _ in 0..3 {
        let before = app.dump().await;
        let run = app.wxsync(&["sync"]).await;
        assert!(
            !run.ok() && reason(&run).contains("no friends and no groups"),
            "{cell}: {run:?}"
        );
        cell.compare(&before, &app.dump().await, &[]);
        compare_truth(&mut cell, &app).await;
        cell.end_try();
    }
    let waiting = deletion_waiting(&app).await;
    assert!(waiting["applies_from"].is_null(), "{cell}: {waiting}");
    let status = app.wxsync(&["status"]).await.stdout;
    assert!(
        status.contains("never applied by itself"),
        "{cell}: {status}"
    );
    let run = app.wxsync(&["sync", "--force"]).await;
    assert!(run.ok(), "{cell}: {run:?}");
    let left = app
        .scalar(
            "SELECT count(*) FROM contacts WHERE deleted_at IS NULL AND kind IN ('friend', 'group')",
        )
        .await;
    assert_eq!(left, 0, "{cell}: --force applies it");
    let mut matrix = Matrix::default();
    matrix.add(cell);
    matrix.finish();
}

/// A reply with bytes that are not UTF-8 is refused with a reason naming
/// the endpoint, and the cache is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_that_is_not_utf8_is_refused_with_a_reason() {
    let app = synced().await;
    let mut matrix = Matrix::default();
    for (endpoint, list_key) in [
        (Endpoint::Init, "ContactList"),
        (Endpoint::GetContact, "MemberList"),
        (Endpoint::BatchGetContact, "ContactList"),
    ] {
        let mut cell = Cell::new("sync", endpoint, "invalid UTF-8");
        let before = app.dump().await;
        app.sim.fail(endpoint, invalid_utf8(list_key), 1000);
        let run = app.wxsync(&["sync"]).await;
        app.sim.clear_faults_of(endpoint);
        assert!(!run.ok(), "{cell}: {run:?}");
        assert!(
            reason(&run).contains(wire(endpoint)) && reason(&run).contains("not valid UTF-8"),
            "{cell}: {run:?}"
        );
        let (_, status, error) = last_run(&app).await;
        assert!(
            status == "failed" && error.is_some_and(|e| e.contains("not valid UTF-8")),
            "{cell}"
        );
        cell.compare(&before, &app.dump().await, &[]);
        println!("fault invalid UTF-8 | {}", reason(&run));
        cell.end_try();
        matrix.add(cell);
    }
    matrix.finish();
}

/// A body the avatar endpoints might send instead of an image.
fn avatar_body(content_type: &str, body: Vec<u8>) -> Fault {
    Fault::Custom {
        status: 200,
        content_type: content_type.into(),
        body,
    }
}

/// Every bad avatar body (and a failed call) at both avatar endpoints during
/// `wxsync avatars`: nothing is stored for the contact, every row stays,
/// the command says what is missing and why; once the server sends the
/// image again, the next run stores it.
#[tokio::test(flavor = "multi_thread")]
async fn bad_avatar_bodies_are_not_stored_and_change_nothing() {
    let app = fault_app(small_account()).await;
    app.fetch_avatars("0s");
    app.login().await;
    app.sync().await;
    assert!(app.wxsync(&["avatars"]).await.ok());
    let group = app.sim.account().groups[0].user_name.clone();
    // A JPEG over 1 MiB: its signature and end marker are right.
    let mut oversized = vec![0xff, 0xd8, 0xff, 0xe0];
    oversized.resize(1024 * 1024 + 1, b'a');
    oversized.extend_from_slice(&[0xff, 0xd9]);
    let mut matrix = Matrix::default();
    for endpoint in [Endpoint::GetIcon, Endpoint::GetHeadImg] {
        for (name, fault, why) in [
            ("empty", Fault::Empty, "the server sent an empty body"),
            ("truncated", Fault::Truncated, "incomplete image/jpeg"),
            (
                "not an image",
                avatar_body("text/html", b"<html><body>404</body></html>".to_vec()),
                "not an image",
            ),
            (
                "over 1 MiB",
                avatar_body("image/jpeg", oversized.clone()),
                "an image over 1 MiB",
            ),
            ("HTTP 502", Fault::Http(502), "HTTP status 502"),
            ("reset", Fault::Reset, "network error"),
        ] {
            let mut cell = Cell::new("avatars", endpoint, name);
            let who = match endpoint {
                Endpoint::GetIcon => app.first_friend(),
                _ => group.clone(),
            };
            // A new avatar on the server: the one image the run fetches.
            app.sim.new_avatar(&who);
            app.sync().await;
            let before = app.dump().await;
            let images = app.scalar("SELECT count(*) FROM avatars").await;
            app.sim.fail(endpoint, fault, 1000);
            let run = app.wxsync(&["avatars"]).await;
            app.sim.clear_faults_of(endpoint);
            assert!(!run.ok(), "{cell}: {run:?}");
            assert!(
                reason(&run).contains("1 of ") && reason(&run).contains(why),
                "{cell}: {run:?}"
            );
            assert_eq!(
                app.scalar("SELECT count(*) FROM avatars").await,
                images,
                "{cell}"
            );
            cell.compare(&before, &app.dump().await, &[]);
            println!("fault avatars {name} | {}", reason(&run));
            let run = app.wxsync(&["avatars"]).await;
            assert!(run.ok(), "{cell}: the next run: {run:?}");
            assert_eq!(
                app.scalar("SELECT count(*) FROM avatars").await,
                images + 1,
                "{cell}"
            );
            cell.end_try();
            matrix.add(cell);
        }
    }
    matrix.finish();
}
