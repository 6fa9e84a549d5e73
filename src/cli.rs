//! The command line (the README's "Commands" section is what users rely on).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::export::Format;
#[cfg(feature = "simulator")]
use crate::simulator::{SimConfig, StatusNotify};

/// Keeps a WeChat account's address book in a local SQLite file.
///
/// Log in once with `wxsync login`, then run `wxsync run` (e.g. under
/// systemd): contacts, groups and group members land in the database, which
/// you read with plain `sqlite3`. Remarks are changed by inserting rows into
/// the `pending_ops` table.
#[derive(Debug, Parser)]
#[command(name = "wxsync", version)]
pub struct Cli {
    /// TOML configuration file (every key optional).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The SQLite cache (overrides `database` in the config).
    #[arg(long, global = true, value_name = "PATH")]
    pub database: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in, save the session, store webwxinit's contacts. With a previous
    /// session, the phone is first asked to confirm (push login); the QR
    /// code follows if it does not.
    Login(LoginArgs),
    /// One full sync now (contacts and group members), then exit.
    Sync(SyncArgs),
    /// The daemon: scheduled full syncs, keepalive, increments, remark queue.
    Run,
    /// Session state, last sync, row counts, queued remark edits.
    Status {
        /// Print one JSON object, for scripts.
        #[arg(long)]
        json: bool,
        /// Print one line `WXSYNC OK - …` (WARNING, CRITICAL, UNKNOWN) and
        /// exit 0, 1, 2 or 3, for monitoring (thresholds: `[check]`).
        #[arg(long, conflicts_with = "json")]
        check: bool,
    },
    /// Contacts a new login's sync could not tell apart from the previous
    /// login's, with their candidates; `link` and `unlink` decide by hand.
    Identity(IdentityArgs),
    /// Fetch every missing or changed avatar now (a progress bar on a
    /// terminal); exits non-zero with what is still missing and why.
    Avatars,
    /// The live friends (with --groups, and groups) as vCard 4.0, CSV or JSON.
    Export(ExportArgs),
    /// Start the built-in simulator, log in against it, and run the daemon
    /// into ./wxsync-demo.db until Ctrl-C.
    #[cfg(feature = "simulator")]
    Demo(AccountArgs),
    /// Run the WeChat Web simulator alone, for manual tests and benchmarks.
    #[cfg(feature = "simulator")]
    Simulate(SimulateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Show the QR code at once, without asking the phone first.
    #[arg(long)]
    pub qr: bool,
    /// How long to wait for the phone to confirm a push login before
    /// showing the QR code [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub push_wait: Option<Duration>,
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// Apply the result even if it would mark more of the cache deleted than
    /// `sync.deletion_guard` allows (after checking that the account really
    /// lost those contacts).
    #[arg(long)]
    pub force: bool,
    /// Fetch and decode everything a full sync fetches, then write nothing
    /// (the benchmark's floor).
    #[arg(long, hide = true)]
    pub fetch_only: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// vcard (one vCard 4.0 per contact, with its photo), csv or json.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write here instead of to standard output (replaced whole, or left
    /// as it was if the export fails).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Groups too.
    #[arg(long)]
    pub groups: bool,
}

#[derive(Debug, Clone, Args)]
pub struct IdentityArgs {
    #[command(subcommand)]
    pub action: Option<IdentityAction>,
    /// Print the unlinked rows as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum IdentityAction {
    /// OLD (a row a re-link left unlinked, marked deleted) and NEW (a live
    /// contact first seen in this login) are the same: OLD keeps its
    /// contact_id, history and first sight, and takes NEW's name and data.
    /// Each is a contact_id or a user_name.
    Link { old: String, new: String },
    /// Undo a link: CONTACT keeps its name and data under a new contact_id;
    /// its earlier contact_id goes back to a row marked deleted.
    Unlink { contact: String },
}

/// The simulated account's shape.
#[cfg(feature = "simulator")]
#[derive(Debug, Clone, Args)]
pub struct AccountArgs {
    /// Seed of the generated account (same seed, same account).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 300)]
    pub friends: usize,
    #[arg(long, default_value_t = 10)]
    pub officials: usize,
    /// Groups saved to contacts (listed by webwxgetcontact).
    #[arg(long, default_value_t = 30)]
    pub saved_groups: usize,
    /// Groups known only from webwxinit's ContactList / ChatSet.
    #[arg(long, default_value_t = 10)]
    pub unsaved_groups: usize,
    #[arg(long, default_value_t = 500)]
    pub max_group_members: usize,
    /// The smallest group (equal to --max-group-members for groups of one size).
    #[arg(long, default_value_t = 3)]
    pub min_group_members: usize,
    /// Pairs of friends who look the same in every field a client sees.
    #[arg(long, default_value_t = 0)]
    pub lookalikes: usize,
    /// Whom the MsgType 51 after webwxstatusnotify names: `off`, `recent`
    /// (init contacts and recent chats) or a share of all contacts and
    /// groups between 0 and 1 (e.g. `0.3`).
    #[arg(long, default_value = "recent", value_parser = parse_status_notify)]
    pub status_notify: StatusNotify,
    /// How many times that MsgType 51 set is sent.
    #[arg(long, default_value_t = 2)]
    pub status_notify_copies: u32,
    /// Contacts per webwxgetcontact page.
    #[arg(long, default_value_t = 200)]
    pub page_size: usize,
}

#[cfg(feature = "simulator")]
fn parse_status_notify(s: &str) -> Result<StatusNotify, String> {
    match s {
        "off" => Ok(StatusNotify::Off),
        "recent" => Ok(StatusNotify::Recent),
        share => match share.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(StatusNotify::Share(x)),
            _ => Err(format!(
                "`{s}` is neither `off`, `recent` nor a share between 0 and 1"
            )),
        },
    }
}

#[cfg(feature = "simulator")]
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8780")]
    pub listen: std::net::SocketAddr,
    /// How long the login poll and synccheck hold when nothing happens.
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub long_poll: Duration,
    /// Wait for POST /__sim/confirm instead of confirming logins by itself.
    #[arg(long)]
    pub manual_confirm: bool,
    #[command(flatten)]
    pub account: AccountArgs,
}

#[cfg(feature = "simulator")]
impl AccountArgs {
    pub fn sim_config(&self, long_poll: Duration, auto_confirm: bool) -> SimConfig {
        SimConfig {
            seed: self.seed,
            friends: self.friends,
            officials: self.officials,
            saved_groups: self.saved_groups,
            unsaved_groups: self.unsaved_groups,
            max_group_members: self.max_group_members,
            min_group_members: self.min_group_members,
            lookalikes: self.lookalikes,
            status_notify: self.status_notify,
            status_notify_copies: self.status_notify_copies,
            page_size: self.page_size,
            long_poll,
            auto_confirm,
        }
    }
}
