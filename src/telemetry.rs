//! Logging: tracing to stderr, filtered by `RUST_LOG`, plain lines without
//! colour when stderr is not a terminal (journald).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset: our own info lines, only warnings
/// from the noisy dependencies.
pub const DEFAULT_FILTER: &str = "info,tokio_cron_scheduler=warn,sqlx=warn,hyper=warn,reqwest=warn";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
