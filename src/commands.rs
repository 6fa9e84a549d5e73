//! One function per command (the README lists them); `main` calls [`run`].

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use crate::app::{App, InitContacts};
use crate::avatars::{FetchError, FetchMode, Fetcher, Progress};
#[cfg(feature = "simulator")]
use crate::cli::{AccountArgs, SimulateArgs};
use crate::cli::{Cli, Command, ExportArgs, IdentityAction, IdentityArgs, LoginArgs, SyncArgs};
use crate::config::Config;
use crate::daemon;
use crate::health;
use crate::shutdown;
#[cfg(feature = "simulator")]
use crate::simulator::Simulator;
use crate::sync::{self, SyncOptions};
use crate::undecided;
use crate::webwx::{self, LoginEvent, SessionState};
use crate::wording::{one_line, plural};

/// Runs the command; only `status --check` has exit codes of its own.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Status { check: true, .. } = &cli.command {
        return Ok(health::check(cli.config.as_deref(), cli.database).await);
    }
    run_command(cli).await.map(|()| ExitCode::SUCCESS)
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    #[cfg(feature = "simulator")]
    if let Command::Simulate(args) = &cli.command {
        return simulate(args).await;
    }
    let mut config = Config::load(cli.config.as_deref())?;
    #[cfg(feature = "simulator")]
    if let Command::Demo(_) = &cli.command {
        // The demo never touches the real cache or session unless told to.
        config.database = "wxsync-demo.db".into();
        config.session_file = None;
    }
    if let Some(db) = cli.database {
        config.database = db;
    }
    match cli.command {
        Command::Login(args) => login(&App::open(config).await?, &args).await,
        Command::Sync(args) => sync_once(&App::open(config).await?, &args)
            .await
            .map_err(login_hint),
        Command::Run => daemon::run(App::open(config).await?, shutdown::on_signal()).await,
        Command::Status { json, .. } => status(&App::open(config).await?, json).await,
        Command::Identity(args) => identity(&App::open(config).await?, &args).await,
        Command::Avatars => avatars(&App::open(config).await?).await.map_err(login_hint),
        Command::Export(args) => export(&App::open(config).await?, &args).await,
        #[cfg(feature = "simulator")]
        Command::Demo(account) => demo(config, &account).await,
        #[cfg(feature = "simulator")]
        Command::Simulate(_) => unreachable!("handled above"),
    }
}

/// Makes every command whose reader goes away (`wxsync identity | head -1`)
/// stop at once, quietly and with exit code 0, as `head` asked. `println!`
/// panics when standard output is a closed pipe, wherever it is called, so
/// that panic is caught here, once, and any other panic is reported as
/// before.
pub fn exit_quietly_when_stdout_closes() {
    let closed = format!(
        "failed printing to stdout: {}",
        std::io::Error::from_raw_os_error(libc::EPIPE)
    );
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload_as_str() == Some(closed.as_str()) {
            std::process::exit(0);
        }
        report(info);
    }));
}

/// An error that comes from the server ending the session, with what a
/// person at the terminal must do next.
fn login_hint(e: anyhow::Error) -> anyhow::Error {
    let dead = e.chain().any(|cause| {
        cause
            .downcast_ref::<sync::SyncError>()
            .is_some_and(sync::SyncError::is_session_dead)
            || cause
                .downcast_ref::<webwx::Error>()
                .is_some_and(webwx::Error::is_session_dead)
    });
    let line = one_line(&e);
    if dead && !line.contains("wxsync login") {
        anyhow::anyhow!("{line}: run `wxsync login` to log in again")
    } else {
        e
    }
}

/// `wxsync login`. Unless `--qr`, a previous session file (in any state)
/// lets the phone confirm without a scan (push login) before the QR code.
async fn login(app: &App, args: &LoginArgs) -> anyhow::Result<()> {
    let on_event = |event| match event {
        LoginEvent::PushSent => {
            println!("Asked WeChat on your phone to confirm this login; confirm it there.");
        }
        LoginEvent::PushFailed { reason } => {
            println!("Push login did not work: {reason}. Showing a QR code instead.");
        }
        LoginEvent::Qr { url } => {
            println!("{}", webwx::render_qr(&url));
            println!("Scan this QR code with WeChat on your phone: {url}");
        }
        LoginEvent::Scanned => println!("Scanned. Confirm the login on your phone."),
        LoginEvent::Confirmed => println!("Confirmed."),
    };
    let mut opts = app.login_options();
    if let Some(wait) = args.push_wait {
        opts.push_wait = wait;
    }
    let previous = if args.qr {
        None
    } else {
        // An unreadable file only costs the push: the QR code still works.
        app.load_session().unwrap_or_else(|e| {
            println!(
                "Cannot read the previous session ({}); using a QR code.",
                one_line(&e)
            );
            None
        })
    };
    let (client, init) = match &previous {
        Some(previous) => webwx::push_login(&opts, previous, on_event).await?,
        None => webwx::login(&opts, on_event).await?,
    };
    let path = app.session_path();
    let stored = app.save_login(&client, &init).await?;
    println!(
        "Logged in. Session saved to {} (mode 0600).",
        path.display()
    );
    let db = app.config.database.display();
    match stored {
        InitContacts::Stored(n) => println!("{n} contacts from webwxinit stored in {db}."),
        InitContacts::KeptPrevious => println!(
            "{db} holds a previous login's contacts: the next sync (`wxsync sync`, or the \
             running daemon) links them to this login's names."
        ),
    }
    println!("Next: `wxsync sync` for everything, or `wxsync run` to keep it fresh.");
    Ok(())
}

async fn sync_once(app: &App, args: &SyncArgs) -> anyhow::Result<()> {
    let client = app.client(app.active_session()?)?;
    let stop = shutdown::on_signal();
    if args.fetch_only {
        let stats = sync::fetch_only(&client, &app.sync_options(), &stop).await;
        app.save_session_if_current(&client.session())?;
        let stats = stats?;
        println!(
            "Fetched {} contacts ({} groups, {} memberships); nothing written.",
            stats.contacts, stats.groups, stats.memberships
        );
        return Ok(());
    }
    let opts = SyncOptions {
        force: args.force,
        ..app.sync_options()
    };
    let result = sync::full_sync(&client, &app.store, &opts, &[], &stop).await;
    // Newer keys, or the logged-out state the client recorded.
    app.save_session_if_current(&client.session())?;
    let report = result?;
    println!(
        "Synced {} contacts ({} groups, {} memberships): {} new, {} changed, {} gone, in {:.1}s.",
        report.stats.contacts,
        report.stats.groups,
        report.stats.memberships,
        report.counts.inserted,
        report.counts.updated,
        report.counts.deleted,
        report.elapsed.as_secs_f64()
    );
    if report.counts.relinked > 0 {
        println!(
            "{} contacts of the previous login were linked to this login's names.",
            report.counts.relinked
        );
    }
    if !report.stats.complete() {
        println!(
            "The answer was incomplete ({} list entries without a UserName, {} groups the server \
             would not describe): nothing was marked deleted (see sync_runs.notes).",
            report.stats.unnamed, report.stats.unread_groups
        );
    }
    if report.stats.member_count_mismatches > 0 {
        println!(
            "{} groups list fewer or more members than their MemberCount (see sync_runs.notes).",
            report.stats.member_count_mismatches
        );
    }
    Ok(())
}

async fn status(app: &App, as_json: bool) -> anyhow::Result<()> {
    let session = app.load_session()?;
    let logged_in_at = session.as_ref().map(|s| s.logged_in_at().to_owned());
    let (state, reason) = match session.as_ref().map(|s| s.state()) {
        None => ("none", None),
        Some(SessionState::Active) => ("active", None),
        Some(SessionState::LoggedOut { reason, code, at }) => (
            "logged_out",
            Some(format!("{reason} (code {code}, at {at})")),
        ),
    };
    let last = app.store.last_run().await?;
    let counts = app.store.counts().await?;
    let ops = app.store.op_counts().await?;
    let activity = app.store.activity().await?;
    // Whether the cache holds the saved login's user names (a new login's
    // first full sync links them), and what a re-link left to decide.
    let linked = match &session {
        Some(s) => app.store.holds_login(s.login_id()).await?,
        None => false,
    };
    let undecided = app.store.undecided().await?;
    let waiting = app.store.waiting_deletion().await?;
    let push = app.store.push_record().await?;
    let push_on = app.config.login.push_on_logout;
    let avatars = app.store.avatar_counts().await?;
    let fetch = app.config.avatars.fetch;
    if as_json {
        let out = json!({
            "session": {
                "state": state,
                "reason": reason,
                "logged_in_at": logged_in_at,
                "file": app.session_path(),
            },
            "database": app.config.database,
            "last_sync": last,
            "deletion_waiting": waiting,
            "last_keepalive_at": activity.last_keepalive_at,
            "last_increment_at": activity.last_increment_at,
            "counts": counts,
            "ops": ops,
            "identity": {"linked": linked, "undecided": undecided},
            "push": {"enabled": push_on, "last": push},
            "avatars": {"fetch": fetch.as_str(), "counts": avatars},
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "session:   {state}{}{} ({})",
        reason.map(|r| format!(": {r}")).unwrap_or_default(),
        logged_in_at
            .map(|t| format!("; logged in at {t}"))
            .unwrap_or_default(),
        app.session_path().display()
    );
    match last {
        None => println!("last sync: never"),
        Some(r) => {
            print!(
                "last sync: #{} {} started {} finished {}",
                r.id,
                r.status,
                r.started_at,
                r.finished_at.as_deref().unwrap_or("-")
            );
            match r.error {
                Some(e) => println!(": {e}"),
                None => println!(
                    ": {} contacts, {} groups, {} memberships; {} new, {} changed, {} gone",
                    r.contacts, r.groups, r.memberships, r.inserted, r.updated, r.deleted
                ),
            }
        }
    }
    if let Some(w) = waiting {
        let applies = match &w.applies_from {
            Some(at) => {
                format!("a scheduled sync from {at} on that gets the same answer applies it")
            }
            None => "it is never applied by itself".to_owned(),
        };
        println!(
            "deletion:  waiting since {}: {} contacts and {} memberships held back (run #{}); \
             {applies}; `wxsync sync --force` applies it now",
            w.since, w.contacts, w.memberships, w.run_id
        );
    }
    println!(
        "keepalive: last answered {}; last contact change stored {}",
        activity.last_keepalive_at.as_deref().unwrap_or("never"),
        activity.last_increment_at.as_deref().unwrap_or("never")
    );
    println!(
        "cache:     {} contacts ({} friends, {} groups), {} memberships, {} marked deleted",
        counts.contacts, counts.friends, counts.groups, counts.memberships, counts.deleted
    );
    println!(
        "ops:       {} pending, {} failed, {} unverified",
        ops.pending, ops.failed, ops.unverified
    );
    println!(
        "push:      {}",
        daemon::describe_push(push.as_ref(), push_on)
    );
    println!("avatars:   {}", describe_avatars(&avatars, fetch));
    let names = match (session.is_some(), linked) {
        (false, _) => "no login yet",
        (true, true) => "the cache holds this login's user names",
        (true, false) => "waiting for this login's first full sync to link the cache",
    };
    match undecided {
        0 => println!("identity:  {names}"),
        n => println!(
            "identity:  {names}; {} of the previous login undecided (`wxsync identity`)",
            plural(n, "row")
        ),
    }
    Ok(())
}

/// The avatars line of `wxsync status`.
fn describe_avatars(a: &crate::store::AvatarCounts, fetch: FetchMode) -> String {
    let mut line = format!("{} of {} contacts have their image", a.current, a.contacts);
    if a.missing > 0 {
        line.push_str(&format!(
            "; {} missing ({} never fetched, {} changed since)",
            a.missing, a.never_fetched, a.changed
        ));
    }
    line.push_str(&format!(
        "; {} stored, {:.1} MB",
        plural(a.images, "image"),
        a.bytes as f64 / 1e6
    ));
    if fetch == FetchMode::Off {
        line.push_str("; fetch off (avatars.fetch)");
    }
    line
}

/// `wxsync identity`: list what the last re-link left to a person, or
/// link / unlink by hand.
async fn identity(app: &App, args: &IdentityArgs) -> anyhow::Result<()> {
    let store = &app.store;
    match &args.action {
        Some(IdentityAction::Link { old, new }) => {
            let d = store.link(old, new).await?;
            println!(
                "Linked: #{kept} and #{merged} are one contact now, under contact_id {kept}; \
                 #{merged}'s history and the edits queued for it moved to #{kept}.",
                kept = d.contact_id,
                merged = d.other_contact_id
            );
        }
        Some(IdentityAction::Unlink { contact }) => {
            let d = store.unlink(contact).await?;
            println!(
                "Unlinked: the live contact is now #{fresh}, with the history since the link; \
                 #{earlier} is back on its earlier row, marked deleted, with the history from \
                 before it.",
                fresh = d.contact_id,
                earlier = d.other_contact_id
            );
        }
        None if args.json => println!("{}", serde_json::to_string(&store.unlinked().await?)?),
        None => print!("{}", undecided::render(&store.undecided_rows().await?)),
    }
    Ok(())
}

#[cfg(feature = "simulator")]
async fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let sim = Simulator::start(
        args.account
            .sim_config(args.long_poll, !args.manual_confirm),
        args.listen,
    )
    .await
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("WeChat Web simulator on {}", sim.base_url());
    println!(
        "Point wxsync at it with:  [wechat] login_url = \"{}\"",
        sim.base_url()
    );
    shutdown::signal().await;
    sim.shutdown().await;
    Ok(())
}

/// The demo: a simulator on a free loopback port, a login against it, and the
/// daemon into `./wxsync-demo.db` (or `--database`) until Ctrl-C.
#[cfg(feature = "simulator")]
async fn demo(mut config: Config, account: &AccountArgs) -> anyhow::Result<()> {
    let sim = Simulator::start(
        account.sim_config(std::time::Duration::from_secs(25), true),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .context("cannot start the simulator")?;
    config.wechat.login_url = sim.base_url();
    config.wechat.push_url = None;
    println!("Simulator listening on {}", sim.base_url());

    let app = App::open(config).await?;
    // A fresh simulator knows no earlier session.
    let qr = LoginArgs {
        qr: true,
        push_wait: None,
    };
    login(&app, &qr).await?;
    let db = app.config.database.display().to_string();
    println!();
    println!("The daemon now syncs into {db}. Try, in another terminal:");
    for q in [
        "SELECT kind, count(*) FROM contacts WHERE deleted_at IS NULL GROUP BY kind;",
        "SELECT nick_name, remark_name FROM contacts WHERE kind = 'friend' LIMIT 10;",
        "SELECT c.nick_name, count(*) AS members FROM memberships m JOIN contacts c ON c.contact_id = m.group_contact_id GROUP BY 1 ORDER BY 2 DESC LIMIT 5;",
        "SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1;",
    ] {
        println!("  sqlite3 {db} \"{q}\"");
    }
    println!("Stop with Ctrl-C.");
    println!();
    let result = daemon::run(app, shutdown::on_signal()).await;
    sim.shutdown().await;
    result
}

/// Tries per contact before `wxsync avatars` gives up on it.
const AVATAR_TRIES: u32 = 3;

/// `wxsync avatars`: every missing or changed avatar, now, in the
/// foreground; a refused image is asked for again (after
/// `wechat.retry_delay`, doubling) up to [`AVATAR_TRIES`] times.
async fn avatars(app: &App) -> anyhow::Result<()> {
    if app.config.avatars.fetch == FetchMode::Off {
        anyhow::bail!("avatars.fetch is \"off\" in the configuration: no avatar is fetched");
    }
    let client = app.client(app.active_session()?)?;
    if !app.store.holds_login(client.session().login_id()).await? {
        anyhow::bail!(
            "the cache still holds a previous login's names, whose avatar URLs are dead: \
             run `wxsync sync` first"
        );
    }
    let opts = crate::avatars::AvatarOptions {
        retry_base: app.config.wechat.retry_delay,
        ..app.avatar_options()
    };
    let mut fetcher = Fetcher::new(opts, None, Some(AVATAR_TRIES));
    let stop = shutdown::on_signal();
    // Drawn on stderr, and only when it is a terminal.
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("avatars {bar:40} {pos}/{len} ({eta} left)")
            .context("progress bar template")?,
    );
    let (mut requests, mut stored) = (0, 0);
    let outcome = loop {
        let round = fetcher
            .round(&client, &app.store, &stop, &mut |p| match p {
                Progress::Begin(n) => {
                    bar.set_length(n as u64);
                    bar.set_position(0);
                }
                Progress::Step => bar.inc(1),
            })
            .await;
        let round = match round {
            Ok(round) => round,
            Err(e) => break Err(e),
        };
        requests += round.requests;
        stored += round.stored;
        // Failures in a row with nothing stored: the server is not serving
        // images now; asking on would only repeat that.
        if round.stalled && round.stored == 0 {
            break Ok(());
        }
        let Some(at) = fetcher.next_retry() else {
            break Ok(());
        };
        tokio::select! {
            _ = stop.cancelled() => break Err(FetchError::Cancelled),
            _ = tokio::time::sleep_until(at) => {}
        }
    };
    bar.finish_and_clear();
    // The logged-out state, if the server ended the session.
    app.save_session_if_current(&client.session())?;
    match outcome {
        Err(FetchError::Session(e)) => return Err(e.into()),
        Err(FetchError::Cancelled) => anyhow::bail!(
            "interrupted after {requests} requests ({stored} images stored); \
             `wxsync avatars` goes on from there"
        ),
        Err(FetchError::Store(e)) => return Err(e.into()),
        Ok(()) => {}
    }
    let missing = app.store.avatars_wanted().await?;
    let total = app.store.avatar_contacts().await?;
    if missing.is_empty() {
        println!(
            "Every contact has its avatar ({total} contacts): {stored} stored now, {requests} requests."
        );
        return Ok(());
    }
    anyhow::bail!(
        "{} of {total} contacts have no current avatar ({}); {stored} stored now, {requests} \
         requests. Run `wxsync avatars` again later",
        missing.len(),
        crate::avatars::describe_reasons(&fetcher.reasons(&missing))
    )
}

/// `wxsync export`: to standard output, or to a file replaced only once
/// the export is complete.
async fn export(app: &App, args: &ExportArgs) -> anyhow::Result<()> {
    let Some(path) = &args.output else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        crate::export::export(&app.store, args.format, args.groups, &mut out).await?;
        return Ok(());
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut out = std::io::BufWriter::new(tmp);
    let n = crate::export::export(&app.store, args.format, args.groups, &mut out).await?;
    out.into_inner()
        .map_err(|e| e.into_error())?
        .persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("{n} contacts written to {}.", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_session_error_says_to_log_in_and_others_do_not() {
        let dead = anyhow::Error::new(sync::SyncError::Protocol(webwx::Error::SessionDead {
            code: 1101,
            endpoint: "webwxinit",
        }));
        assert_eq!(
            one_line(&login_hint(dead)),
            "webwxinit: the server ended the session (code 1101): run `wxsync login` to log in again"
        );
        let other = anyhow::Error::new(webwx::Error::RateLimited {
            endpoint: "webwxinit",
        });
        assert!(!one_line(&login_hint(other)).contains("wxsync login"));
    }
}
