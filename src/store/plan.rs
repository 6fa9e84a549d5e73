//! What a caller asks of a commit: the source of the rows and, for a
//! complete full sync, what the deletion guard and the history need. Both
//! the write (src/store/write.rs) and the guard (src/store/guard.rs) read it.

use super::RunStats;
use super::stage::Source;

/// What a commit is for.
pub struct Plan<'a> {
    pub source: Source,
    /// Set for a complete full sync; `None` for increments and other partial
    /// writes, which never mark an absent contact deleted.
    pub full: Option<FullSync<'a>>,
    /// A partial write into an empty cache (a first login) may say whose
    /// names it holds, so later increments of that login apply at once.
    pub claim_login: Option<&'a str>,
}

/// The parts of a plan only a complete full sync has.
pub struct FullSync<'a> {
    pub run_id: i64,
    /// When fetching began (same format as every timestamp column): a
    /// contact another source changed since then keeps what it has.
    pub fetch_started: &'a str,
    /// The login whose user names the staged records carry.
    pub login_id: &'a str,
    /// Share (0..=1] of live contacts or membership rows above which a
    /// deletion is held back.
    pub guard: f64,
    /// Apply even a deletion the guard would hold.
    pub force: bool,
    /// A held deletion that comes back at least this long after it was
    /// first held is applied (`sync.deletion_confirm`)…
    pub confirm: std::time::Duration,
    /// …unless this sync retries a failed one.
    pub retry: bool,
    pub stats: &'a RunStats,
    /// Previous-login rows a re-link left unlinked.
    pub unlinked: u64,
}

#[cfg(test)]
impl<'a> Plan<'a> {
    /// A complete full sync of login "login" with the default guard, as
    /// the store's unit tests commit it.
    pub(super) fn full_sync_for_test(
        run_id: i64,
        fetch_started: &'a str,
        stats: &'a RunStats,
    ) -> Plan<'a> {
        Plan {
            source: Source::FullSync,
            full: Some(FullSync {
                run_id,
                fetch_started,
                login_id: "login",
                guard: 0.2,
                force: false,
                confirm: std::time::Duration::ZERO,
                retry: false,
                stats,
                unlinked: 0,
            }),
            claim_login: None,
        }
    }
}
