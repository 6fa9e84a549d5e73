//! `wxsync status --check`: the daemon's health in one line, with the
//! monitoring-plugins exit codes (OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3),
//! for Nagios/Icinga, systemd timers, cron mail or any script.
//!
//! The verdict is a pure function of [`Facts`] (read from the session file
//! and the cache) and the `[check]` thresholds, so that every condition is
//! unit-tested without waiting for a clock.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::config::{CheckConfig, Config, parse_schedule};
use crate::store::{Counts, SyncRun, WaitingDeletion};
use crate::telemetry::escape;
use crate::webwx::SessionState;
use crate::wording::{one_line, plural};

/// A monitoring-plugins state; the discriminant is the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

/// The one line and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub level: Level,
    /// What follows `WXSYNC <STATE> - `.
    pub text: String,
}

impl Verdict {
    fn unknown(text: String) -> Verdict {
        Verdict {
            level: Level::Unknown,
            text,
        }
    }

    pub fn line(&self) -> String {
        format!("WXSYNC {} - {}", self.level.word(), escape(&self.text))
    }
}

/// The session as the check sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionFacts {
    None,
    /// The file exists but cannot be read or used, in words.
    Unusable(String),
    Active {
        logged_in_at: Option<DateTime<Utc>>,
    },
    LoggedOut {
        code: i64,
        reason: String,
        at: String,
    },
}

/// Everything the verdict depends on.
#[derive(Clone, Debug)]
pub struct Facts {
    pub now: DateTime<Utc>,
    pub session: SessionFacts,
    /// The newest `sync_runs` row.
    pub last_run: Option<SyncRun>,
    /// The deletion the guard holds back, as `wxsync status` shows it.
    pub waiting: Option<WaitingDeletion>,
    /// When the newest successful full sync started.
    pub last_ok_started: Option<DateTime<Utc>>,
    pub last_keepalive: Option<DateTime<Utc>>,
    /// Remark edits that failed within `check.failed_ops_window`.
    pub failed_ops: i64,
    /// Remark edits the server accepted but no read-back confirmed, within
    /// the same window.
    pub unverified_ops: i64,
    pub pending_ops: i64,
    /// Rows of the previous login a re-link left undecided.
    pub undecided: i64,
    pub counts: Counts,
}

/// Runs the check and prints its line; any error on the way (a bad config,
/// an unreadable database) is UNKNOWN.
pub async fn check(config: Option<&Path>, database: Option<PathBuf>) -> ExitCode {
    let verdict = match verdict(config, database).await {
        Ok(v) => v,
        Err(e) => Verdict::unknown(one_line(&e)),
    };
    println!("{}", verdict.line());
    ExitCode::from(verdict.level as u8)
}

async fn verdict(config: Option<&Path>, database: Option<PathBuf>) -> anyhow::Result<Verdict> {
    let mut config = Config::load(config)?;
    if let Some(db) = database {
        config.database = db;
    }
    // A check must not create the cache it is asked about.
    if !config.database.exists() {
        anyhow::bail!("no database at {}", config.database.display());
    }
    let schedule = parse_schedule(&config.sync.schedule).map_err(anyhow::Error::msg)?;
    let app = App::open(config).await?;
    let facts = facts(&app).await?;
    Ok(judge(&facts, &app.config.check, &schedule))
}

async fn facts(app: &App) -> anyhow::Result<Facts> {
    let now = Utc::now();
    let session = match app.load_session() {
        Err(e) => SessionFacts::Unusable(one_line(&e)),
        Ok(None) => SessionFacts::None,
        Ok(Some(s)) => match s.state() {
            SessionState::Active => SessionFacts::Active {
                logged_in_at: time(s.logged_in_at()),
            },
            SessionState::LoggedOut { code, reason, at } => SessionFacts::LoggedOut {
                code: *code,
                reason: reason.clone(),
                at: at.clone(),
            },
        },
    };
    let store = &app.store;
    let window = chrono::Duration::from_std(app.config.check.failed_ops_window)?;
    let since = (now - window).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (failed_ops, unverified_ops) = store.ops_ended_badly_since(&since).await?;
    Ok(Facts {
        now,
        session,
        last_run: store.last_run().await?,
        waiting: store.waiting_deletion().await?,
        last_ok_started: store
            .last_ok_sync_started()
            .await?
            .as_deref()
            .and_then(time),
        last_keepalive: store
            .activity()
            .await?
            .last_keepalive_at
            .as_deref()
            .and_then(time),
        failed_ops,
        unverified_ops,
        pending_ops: store.op_counts().await?.pending,
        undecided: store.undecided().await?,
        counts: store.counts().await?,
    })
}

/// Reads a timestamp as stored (RFC 3339, UTC).
fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The worst condition decides the state; the line names every condition
/// found, worst first, then a summary and the perfdata.
pub fn judge(f: &Facts, c: &CheckConfig, schedule: &croner::Cron) -> Verdict {
    let mut found: Vec<(Level, String)> = Vec::new();
    match &f.session {
        SessionFacts::None => {
            found.push((Level::Critical, "no session: run `wxsync login`".into()));
        }
        SessionFacts::Unusable(why) => found.push((
            Level::Critical,
            format!("the session file is unusable ({why}): run `wxsync login`"),
        )),
        SessionFacts::LoggedOut { code, reason, at } => found.push((
            Level::Critical,
            format!("logged out at {at} ({reason}, code {code}): run `wxsync login`"),
        )),
        SessionFacts::Active { logged_in_at } => {
            found.extend(keepalive_silent(f, c, *logged_in_at));
            found.extend(sync_missed(f, c, schedule, *logged_in_at));
        }
    }
    if let Some(w) = &f.waiting {
        found.push((
            Level::Warning,
            format!(
                "a deletion is held back by the deletion guard (run #{}, waiting since {}): {}",
                w.run_id, w.since, w.reason
            ),
        ));
    }
    // A held run is the waiting deletion above; any other failure is news.
    if let Some(run) = f
        .last_run
        .as_ref()
        .filter(|r| r.status == "failed" && r.deletion_digest.is_none())
    {
        let error = run.error.as_deref().unwrap_or("no reason recorded");
        found.push((
            Level::Warning,
            format!("the last full sync (#{}) failed: {error}", run.id),
        ));
    }
    if f.failed_ops > 0 {
        found.push((
            Level::Warning,
            format!(
                "{} failed in the last {} (pending_ops.last_error says why)",
                plural(f.failed_ops, "remark edit"),
                age(chrono::Duration::from_std(c.failed_ops_window).unwrap_or_default())
            ),
        ));
    }
    if f.unverified_ops > 0 {
        found.push((
            Level::Warning,
            format!(
                "{} unverified in the last {} (accepted by the server, not confirmed by a \
                 read-back; pending_ops.last_error says why)",
                plural(f.unverified_ops, "remark edit"),
                age(chrono::Duration::from_std(c.failed_ops_window).unwrap_or_default())
            ),
        ));
    }
    if f.undecided > 0 {
        found.push((
            Level::Warning,
            format!(
                "{} of the previous login undecided (`wxsync identity`)",
                plural(f.undecided, "row")
            ),
        ));
    }
    found.sort_by_key(|(level, _)| std::cmp::Reverse(*level));
    let level = found.first().map_or(Level::Ok, |(l, _)| *l);
    let mut parts: Vec<String> = found.into_iter().map(|(_, text)| text).collect();
    if level == Level::Ok {
        parts.push(summary(f));
    }
    let n = &f.counts;
    let perf = format!(
        "contacts={} groups={} memberships={} pending_ops={} failed_ops={}",
        n.contacts, n.groups, n.memberships, f.pending_ops, f.failed_ops
    );
    Verdict {
        level,
        text: format!("{} | {perf}", parts.join("; ")),
    }
}

/// CRITICAL when neither a keepalive nor the login happened within
/// `keepalive_silence`: no daemon runs, or it is stuck.
fn keepalive_silent(
    f: &Facts,
    c: &CheckConfig,
    logged_in_at: Option<DateTime<Utc>>,
) -> Option<(Level, String)> {
    let since = f.last_keepalive.max(logged_in_at)?;
    let silent = f.now - since;
    if silent.to_std().is_ok_and(|s| s <= c.keepalive_silence) {
        return None;
    }
    let text = if f.last_keepalive.is_some_and(|k| Some(k) >= logged_in_at) {
        format!(
            "the keepalive has been silent for {} (last answered at {}): is `wxsync run` running?",
            age(silent),
            stamp(since)
        )
    } else {
        format!(
            "no keepalive since the login at {} ({} ago): is `wxsync run` running?",
            stamp(since),
            age(silent)
        )
    };
    Some((Level::Critical, text))
}

/// CRITICAL when `sync_missed` scheduled full syncs in a row have passed
/// (each given `sync_grace`) since the last successful one, or since the
/// login if that came later.
fn sync_missed(
    f: &Facts,
    c: &CheckConfig,
    schedule: &croner::Cron,
    logged_in_at: Option<DateTime<Utc>>,
) -> Option<(Level, String)> {
    let since = f.last_ok_started.max(logged_in_at)?;
    let nth = usize::try_from(c.sync_missed).ok()?.checked_sub(1)?;
    let due = schedule.iter_after(since).nth(nth)?;
    let grace = chrono::Duration::from_std(c.sync_grace).ok()?;
    if f.now <= due + grace {
        return None;
    }
    let text = match f.last_ok_started {
        Some(ok) if Some(ok) >= logged_in_at => format!(
            "no successful full sync since {} ({} ago; {} missed)",
            stamp(ok),
            age(f.now - ok),
            plural(i64::from(c.sync_missed), "scheduled sync")
        ),
        _ => format!(
            "no successful full sync since the login at {} ({} ago; {} missed)",
            stamp(since),
            age(f.now - since),
            plural(i64::from(c.sync_missed), "scheduled sync")
        ),
    };
    Some((Level::Critical, text))
}

/// The OK line's body.
fn summary(f: &Facts) -> String {
    let sync = match &f.last_ok_started {
        Some(t) => format!("last full sync ok {} ago", age(f.now - *t)),
        None => "no full sync yet".to_owned(),
    };
    let keepalive = match &f.last_keepalive {
        Some(t) => format!("keepalive answered {} ago", age(f.now - *t)),
        None => "no keepalive yet".to_owned(),
    };
    format!(
        "session active; {sync}; {keepalive}; {} contacts, {} groups",
        f.counts.contacts, f.counts.groups
    )
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A rough age: "45s", "12m", "5h", "3d".
fn age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        time(s).unwrap()
    }

    fn run(status: &str, error: Option<&str>, held: bool) -> SyncRun {
        SyncRun {
            id: 7,
            started_at: "2026-12-01T09:00:00.000Z".into(),
            finished_at: Some("2026-12-01T09:00:01.000Z".into()),
            status: status.into(),
            contacts: 360,
            groups: 40,
            memberships: 5243,
            inserted: 0,
            updated: 0,
            deleted: 0,
            member_count_mismatches: 0,
            notes: None,
            error: error.map(str::to_owned),
            relinked: 0,
            unlinked: 0,
            memberships_changed: 0,
            write_lock_ms: Some(1),
            deletion_digest: held.then(|| "d".to_owned()),
            deletion_contacts: held.then_some(305),
            deletion_memberships: held.then_some(0),
            deletion_applies_from: None,
        }
    }

    /// A healthy daemon at 10:00:30 on a half-hourly schedule.
    fn healthy() -> Facts {
        Facts {
            now: at("2026-12-01T10:00:30Z"),
            session: SessionFacts::Active {
                logged_in_at: Some(at("2026-11-30T08:00:00Z")),
            },
            last_run: Some(run("ok", None, false)),
            waiting: None,
            last_ok_started: Some(at("2026-12-01T10:00:00Z")),
            last_keepalive: Some(at("2026-12-01T10:00:20Z")),
            failed_ops: 0,
            unverified_ops: 0,
            pending_ops: 2,
            undecided: 0,
            counts: Counts {
                contacts: 360,
                friends: 303,
                groups: 40,
                memberships: 5243,
                deleted: 24,
            },
        }
    }

    fn judged(f: &Facts) -> Verdict {
        let schedule = parse_schedule("0 */30 * * * *").unwrap();
        judge(f, &CheckConfig::default(), &schedule)
    }

    #[test]
    fn a_healthy_daemon_is_ok_with_a_summary_and_perfdata() {
        let v = judged(&healthy());
        assert_eq!(v.level, Level::Ok);
        assert_eq!(
            v.line(),
            "WXSYNC OK - session active; last full sync ok 30s ago; keepalive answered 10s ago; \
             360 contacts, 40 groups | contacts=360 groups=40 memberships=5243 pending_ops=2 failed_ops=0"
        );
    }

    #[test]
    fn no_session_or_a_logout_is_critical_and_says_to_log_in() {
        let mut f = healthy();
        f.session = SessionFacts::None;
        let v = judged(&f);
        assert_eq!(v.level, Level::Critical);
        assert!(
            v.text.starts_with("no session: run `wxsync login`"),
            "{v:?}"
        );
        f.session = SessionFacts::LoggedOut {
            code: 1101,
            reason: "logged in elsewhere".into(),
            at: "2026-12-01T09:59:00Z".into(),
        };
        let v = judged(&f);
        assert_eq!(v.level, Level::Critical);
        assert!(
            v.text.starts_with(
                "logged out at 2026-12-01T09:59:00Z (logged in elsewhere, code 1101): run `wxsync login`"
            ),
            "{v:?}"
        );
    }

    #[test]
    fn a_silent_keepalive_is_critical_only_past_the_threshold() {
        let mut f = healthy();
        f.last_keepalive = Some(at("2026-12-01T09:55:30Z"));
        assert_eq!(judged(&f).level, Level::Ok, "exactly 5 minutes is not yet");
        f.last_keepalive = Some(at("2026-12-01T09:55:29Z"));
        let v = judged(&f);
        assert_eq!(v.level, Level::Critical);
        assert!(
            v.text.starts_with(
                "the keepalive has been silent for 5m (last answered at 2026-12-01T09:55:29Z)"
            ),
            "{v:?}"
        );
        // A login newer than the last keepalive restarts the clock.
        f.session = SessionFacts::Active {
            logged_in_at: Some(at("2026-12-01T10:00:00Z")),
        };
        assert_eq!(judged(&f).level, Level::Ok);
        f.now = at("2026-12-01T10:06:00Z");
        let v = judged(&f);
        assert!(
            v.text
                .starts_with("no keepalive since the login at 2026-12-01T10:00:00Z (6m ago)"),
            "{v:?}"
        );
    }

    #[test]
    fn two_scheduled_syncs_missed_is_critical_after_the_grace() {
        let mut f = healthy();
        f.last_keepalive = None;
        f.session = SessionFacts::Active { logged_in_at: None };
        // Last ok at 10:00; 10:30 and 11:00 missed; 11:05 is the deadline.
        f.now = at("2026-12-01T11:05:00Z");
        assert!(judged(&f).level == Level::Ok, "{:?}", judged(&f));
        f.now = at("2026-12-01T11:05:01Z");
        let v = judged(&f);
        assert_eq!(v.level, Level::Critical);
        assert!(
            v.text.starts_with(
                "no successful full sync since 2026-12-01T10:00:00Z (65m ago; 2 scheduled syncs missed)"
            ),
            "{v:?}"
        );
        let c = CheckConfig {
            sync_missed: 3,
            ..CheckConfig::default()
        };
        let schedule = parse_schedule("0 */30 * * * *").unwrap();
        assert_eq!(judge(&f, &c, &schedule).level, Level::Ok);
    }

    #[test]
    fn a_failed_or_held_sync_failed_edits_and_undecided_rows_warn() {
        let mut f = healthy();
        f.last_run = Some(run("failed", Some("webwxgetcontact: HTTP 502"), false));
        let v = judged(&f);
        assert_eq!(v.level, Level::Warning);
        assert!(
            v.text
                .starts_with("the last full sync (#7) failed: webwxgetcontact: HTTP 502 |"),
            "{v:?}"
        );
        // Held back: the waiting deletion speaks for the run, once.
        f.last_run = Some(run("failed", Some("would mark 305 deleted"), true));
        f.waiting = Some(WaitingDeletion {
            run_id: 7,
            since: "2026-12-01T08:30:00.000Z".into(),
            contacts: 305,
            memberships: 0,
            applies_from: None,
            reason: "would mark 305 deleted".into(),
        });
        let v = judged(&f);
        assert_eq!(v.level, Level::Warning);
        assert!(
            v.text.starts_with(
                "a deletion is held back by the deletion guard (run #7, waiting since \
                 2026-12-01T08:30:00.000Z): would mark 305 deleted |"
            ),
            "{v:?}"
        );
        // A later sync that failed otherwise does not hide it.
        f.last_run = Some(run("failed", Some("webwxgetcontact: HTTP 502"), false));
        let v = judged(&f);
        assert!(
            v.text.contains("waiting since") && v.text.contains("failed: webwxgetcontact"),
            "{v:?}"
        );
        f.waiting = None;
        f.last_run = Some(run("ok", None, false));
        f.failed_ops = 2;
        f.undecided = 1;
        let v = judged(&f);
        assert_eq!(v.level, Level::Warning);
        assert!(
            v.text.starts_with(
                "2 remark edits failed in the last 24h (pending_ops.last_error says why); \
                 1 row of the previous login undecided (`wxsync identity`) |"
            ),
            "{v:?}"
        );
    }

    #[test]
    fn an_unverified_edit_warns_apart_from_failed_ones() {
        let mut f = healthy();
        f.unverified_ops = 1;
        let v = judged(&f);
        assert_eq!(v.level, Level::Warning);
        assert!(
            v.text.starts_with(
                "1 remark edit unverified in the last 24h (accepted by the server, not \
                 confirmed by a read-back; pending_ops.last_error says why) |"
            ),
            "{v:?}"
        );
    }

    #[test]
    fn the_worst_condition_comes_first_and_decides() {
        let mut f = healthy();
        f.failed_ops = 1;
        f.session = SessionFacts::None;
        let v = judged(&f);
        assert_eq!(v.level, Level::Critical);
        assert!(
            v.text
                .starts_with("no session: run `wxsync login`; 1 remark edit failed"),
            "{v:?}"
        );
        assert_eq!(ExitCode::from(v.level as u8), ExitCode::from(2));
    }

    #[test]
    fn control_characters_cannot_break_the_line() {
        let mut f = healthy();
        f.last_run = Some(run("failed", Some("bad\nWXSYNC OK - forged"), false));
        assert!(!judged(&f).line().contains('\n'));
    }
}
