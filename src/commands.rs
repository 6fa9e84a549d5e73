//! One function per command of CONTRACT.md; `main` calls [`run`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::cli::{AccountArgs, Cli, Command, LoginArgs, SimulateArgs, SyncArgs};
use crate::config::Config;
use crate::contact::Contact;
use crate::daemon;
use crate::simulator::Simulator;
use crate::sync;
use crate::webwx::{self, LoginEvent, SessionState};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Simulate(args) = &cli.command {
        return simulate(args).await;
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if let Command::Demo(_) = &cli.command {
        // The demo never touches the real cache or session unless told to.
        config.database = cli
            .database
            .clone()
            .unwrap_or_else(|| "wxsync-demo.db".into());
        config.session_file = None;
    } else if let Some(db) = cli.database {
        config.database = db;
    }
    match cli.command {
        Command::Login(args) => login(&App::open(config).await?, &args).await,
        Command::Sync(args) => sync_once(&App::open(config).await?, &args).await,
        Command::Run => daemon::run(App::open(config).await?, shutdown_on_signal()).await,
        Command::Status { json } => status(&App::open(config).await?, json).await,
        Command::Demo(account) => demo(config, &account).await,
        Command::Simulate(_) => unreachable!("handled above"),
    }
}

/// An error and its causes on one line, each cause once: error types that
/// already quote their source in their message do not repeat it.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

/// A token cancelled by the first SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        daemon::signal().await;
        cancel.cancel();
    });
    token
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
    let session = client.session();
    let path = app.session_path();
    session.save(&path)?;

    let me = session.self_user_name();
    let contacts: Vec<Contact> = std::iter::once(&init.user)
        .chain(&init.contacts)
        .filter_map(|c| Contact::from_raw(c, me))
        .collect();
    app.store
        .upsert_contacts(&contacts, &BTreeMap::new())
        .await
        .context("cannot store webwxinit's contacts")?;
    println!(
        "Logged in. Session saved to {} (mode 0600); {} contacts from webwxinit stored in {}.",
        path.display(),
        contacts.len(),
        app.config.database.display()
    );
    println!("Next: `wxsync sync` for everything, or `wxsync run` to keep it fresh.");
    Ok(())
}

async fn sync_once(app: &App, args: &SyncArgs) -> anyhow::Result<()> {
    let client = app.client(app.active_session()?)?;
    let stop = shutdown_on_signal();
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
    let result = sync::full_sync(&client, &app.store, &app.sync_options(), &[], &stop).await;
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
            "last_keepalive_at": activity.last_keepalive_at,
            "last_increment_at": activity.last_increment_at,
            "counts": counts,
            "ops": ops,
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
    println!(
        "keepalive: last answered {}; last contact change stored {}",
        activity.last_keepalive_at.as_deref().unwrap_or("never"),
        activity.last_increment_at.as_deref().unwrap_or("never")
    );
    println!(
        "cache:     {} contacts ({} friends, {} groups), {} memberships, {} marked deleted",
        counts.contacts, counts.friends, counts.groups, counts.memberships, counts.deleted
    );
    println!("ops:       {} pending, {} failed", ops.pending, ops.failed);
    Ok(())
}

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
    daemon::signal().await;
    sim.shutdown().await;
    Ok(())
}

/// The demo: a simulator on a free loopback port, a login against it, and the
/// daemon into `./wxsync-demo.db` (or `--database`) until Ctrl-C.
async fn demo(mut config: Config, account: &AccountArgs) -> anyhow::Result<()> {
    let sim = Simulator::start(
        account.sim_config(Duration::from_secs(25), true),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
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
        "SELECT c.nick_name, count(*) AS members FROM memberships m JOIN contacts c ON c.user_name = m.group_user_name GROUP BY 1 ORDER BY 2 DESC LIMIT 5;",
        "SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1;",
    ] {
        println!("  sqlite3 {db} \"{q}\"");
    }
    println!("Stop with Ctrl-C.");
    println!();
    let result = daemon::run(app, shutdown_on_signal()).await;
    sim.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_names_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::new(crate::config::ConfigError::Read {
            path: "x.toml".into(),
            source: io,
        })
        .context("starting");
        assert_eq!(
            one_line(&e),
            "starting: cannot read config file x.toml: disk full"
        );
    }
}
