//! `TestApp`: a simulator on port 0 plus a config and database in a temp
//! dir, with helpers to run `wxsync` commands and read the cache.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use tempfile::TempDir;
use wxsync::simulator::{Endpoint, SimConfig, SimKind, Simulator};

/// A small account that still exercises paging, batching and every kind.
pub fn small_account() -> SimConfig {
    SimConfig {
        seed: 42,
        friends: 60,
        officials: 4,
        saved_groups: 6,
        unsaved_groups: 3,
        max_group_members: 40,
        page_size: 30,
        long_poll: Duration::from_millis(500),
        auto_confirm: true,
        ..SimConfig::default()
    }
}

/// Logged in, daemon running, first full sync done.
pub async fn running() -> (TestApp, Daemon) {
    let app = TestApp::spawn(small_account()).await;
    app.configure("[ops]\npoll_interval = \"100ms\"\n");
    app.login().await;
    let daemon = app.start_daemon(&[]);
    app.eventually("the first full sync", || async { app.ok_runs().await == 1 })
        .await;
    (app, daemon)
}

/// The daemon fetches avatars in the background by default; tests of other
/// things turn it off, so that their rows and calls are only their own.
/// [`TestApp::fetch_avatars`] turns it on.
const AVATARS_OFF: &str = "[avatars]\nfetch = \"off\"\n";

pub struct TestApp {
    pub sim: Simulator,
    pub dir: TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl TestApp {
    pub async fn spawn(account: SimConfig) -> TestApp {
        let sim = Simulator::start(account, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cache.db");
        let config = dir.path().join("wxsync.toml");
        std::fs::write(
            &config,
            format!(
                "database = {:?}\n{AVATARS_OFF}[wechat]\nlogin_url = \"{}\"\nbatch_pause = \"5ms\"\nretry_delay = \"20ms\"\n",
                db,
                sim.base_url()
            ),
        )
        .unwrap();
        TestApp {
            sim,
            dir,
            db,
            config,
        }
    }

    pub fn session_file(&self) -> PathBuf {
        self.dir.path().join("cache.db.session")
    }

    /// The session file as JSON (secrets and all: tests look for them).
    pub fn session_json(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.session_file()).unwrap()).unwrap()
    }

    /// Runs `wxsync --config … ARGS` to completion (debug logging on, so
    /// the logs can be searched for secrets).
    pub async fn wxsync(&self, args: &[&str]) -> Run {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "debug")
            .kill_on_drop(true)
            .output()
            .await
            .expect("wxsync runs")
            .into()
    }

    pub async fn login(&self) -> Run {
        let run = self.wxsync(&["login"]).await;
        assert!(run.ok(), "login failed: {run:?}");
        run
    }

    pub async fn sync(&self) -> Run {
        let run = self.wxsync(&["sync"]).await;
        assert!(run.ok(), "sync failed: {run:?}");
        run
    }

    /// A read connection to the cache, as a user's `sqlite3` would have.
    pub async fn db(&self) -> SqlitePool {
        SqlitePool::connect_with(SqliteConnectOptions::new().filename(&self.db))
            .await
            .unwrap()
    }

    pub async fn scalar(&self, sql: &'static str) -> i64 {
        let pool = self.db().await;
        let v = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        v
    }

    /// Every contact and membership row, one line each, in a stable order:
    /// equal dumps mean the cache holds the same data.
    pub async fn dump(&self) -> Vec<String> {
        self.rows(&[
            "SELECT * FROM contacts ORDER BY user_name",
            "SELECT * FROM memberships ORDER BY group_user_name, member_user_name",
        ])
        .await
    }

    /// The rows of each query, one line each (columns joined by `|`).
    pub async fn rows(&self, queries: &[&str]) -> Vec<String> {
        let pool = self.db().await;
        let mut out = Vec::new();
        for sql in queries {
            for row in sqlx::query(sqlx::AssertSqlSafe(*sql))
                .fetch_all(&pool)
                .await
                .unwrap()
            {
                let cols: Vec<String> = (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .map(|v| format!("{v:?}"))
                            .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                            .or_else(|_| row.try_get::<Option<f64>, _>(i).map(|v| format!("{v:?}")))
                            .unwrap()
                    })
                    .collect();
                out.push(cols.join("|"));
            }
        }
        pool.close().await;
        out
    }

    /// Turns the avatar fetch on, with `pause` between requests.
    pub fn fetch_avatars(&self, pause: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        let start = text
            .find("[avatars]\n")
            .expect("the test config has [avatars]");
        let end = start + text[start..].find("[wechat]").expect("[wechat] follows it");
        let on = format!("[avatars]\nfetch = \"contacts\"\npause = \"{pause}\"\n");
        text.replace_range(start..end, &on);
        std::fs::write(&self.config, text).unwrap();
    }

    /// Writes extra config lines (appended to the test config).
    pub fn configure(&self, extra: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push_str(extra);
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn start_daemon(&self, envs: &[(&str, &str)]) -> Daemon {
        let log = self.dir.path().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("RUST_LOG", "debug")
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("daemon starts");
        Daemon { child, log }
    }

    /// Polls `check` every 100 ms until it holds; panics with `what` after
    /// 30 s (a deadline for a hung test, not a speed assertion).
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..300 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    /// Waits until queued remark edit `id` is no longer `pending`; returns
    /// the status it settled in.
    pub async fn op_settled(&self, id: i64) -> String {
        let status = || async {
            self.text(
                "SELECT status FROM pending_ops WHERE id = ?",
                &id.to_string(),
            )
            .await
            .unwrap_or_default()
        };
        self.eventually("the queued edit to settle", || async {
            status().await != "pending"
        })
        .await;
        status().await
    }

    /// Queues a remark edit, as a user's `sqlite3` would; returns its id.
    pub async fn queue_edit(&self, user_name: &str, remark: &str) -> i64 {
        let pool = self.db().await;
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

    /// Queues a remark edit by `contact_id` alone; returns its id.
    pub async fn queue_edit_by_id(&self, contact_id: i64, remark: &str) -> i64 {
        let pool = self.db().await;
        let id = sqlx::query_scalar(
            "INSERT INTO pending_ops (contact_id, remark_name) VALUES (?, ?) RETURNING id",
        )
        .bind(contact_id)
        .bind(remark)
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        id
    }

    pub async fn ok_runs(&self) -> i64 {
        self.scalar("SELECT count(*) FROM sync_runs WHERE status = 'ok'")
            .await
    }

    pub async fn text(&self, sql: &'static str, arg: &str) -> Option<String> {
        let pool = self.db().await;
        let v = sqlx::query_scalar(sql)
            .bind(arg)
            .fetch_optional(&pool)
            .await
            .unwrap()
            .flatten();
        pool.close().await;
        v
    }

    /// How many calls the simulator has received for `endpoint`.
    pub fn calls_to(&self, endpoint: Endpoint) -> usize {
        self.sim
            .calls()
            .iter()
            .filter(|c| c.endpoint == endpoint)
            .count()
    }

    /// The current user name of the account's first friend.
    pub fn first_friend(&self) -> String {
        self.sim
            .account()
            .contacts
            .into_iter()
            .find(|c| c.kind == SimKind::Friend)
            .expect("the account has friends")
            .user_name
    }

    /// The session's secrets: every credential the client sent, and the uin.
    pub fn session_secrets(&self) -> BTreeSet<String> {
        let uin = self.session_json()["uin"].to_string();
        assert!(uin.len() >= 6, "the uin is a real number: {uin}");
        let mut secrets = self.secrets_sent();
        secrets.insert(uin);
        secrets
    }

    /// Every credential the client sent: cookie values, and skey, sid and
    /// pass_ticket from query strings and BaseRequest bodies.
    pub fn secrets_sent(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for call in self.sim.calls() {
            for pair in call.cookies.split(';') {
                if let Some((_, v)) = pair.trim().split_once('=')
                    && v.len() >= 8
                {
                    out.insert(v.to_string());
                }
            }
            for pair in call.query.split('&') {
                if let Some((k, v)) = pair.split_once('=')
                    && ["skey", "sid", "pass_ticket"].contains(&k)
                    && v.len() >= 8
                {
                    out.insert(v.to_string());
                }
            }
            if let Ok(body) = serde_json::from_str::<serde_json::Value>(&call.body) {
                for k in ["Sid", "Skey"] {
                    if let Some(v) = body["BaseRequest"][k].as_str().filter(|v| v.len() >= 8) {
                        out.insert(v.to_string());
                    }
                }
            }
        }
        out
    }
}

/// A `wxsync run` child process; its stderr goes to a file in the temp dir.
pub struct Daemon {
    pub child: tokio::process::Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("daemon still running").to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, pid.as_str()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// SIGTERM, then the exit code and the whole log.
    pub async fn stop(mut self) -> (Option<i32>, String) {
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the daemon exits within a few seconds of SIGTERM")
            .unwrap();
        (status.code(), self.logs())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
