use std::process::ExitCode;

use clap::Parser;
use wxsync::cli::Cli;
use wxsync::telemetry::{self, LogOutput};

fn main() -> ExitCode {
    // Before the runtime's threads exist: they take the allocator's arenas,
    // and open SQLite connections.
    wxsync::memory::return_big_buffers();
    wxsync::store::uncount_memory();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("wxsync: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    wxsync::commands::exit_quietly_when_stdout_closes();
    let cli = Cli::parse();
    let output = telemetry::init();
    match wxsync::commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let line = wxsync::wording::one_line(&e);
            match output {
                // At error priority, so `journalctl -p err` shows why it stopped.
                LogOutput::Journald => tracing::error!("wxsync: {line}"),
                LogOutput::Stderr => eprintln!("wxsync: {line}"),
            }
            ExitCode::FAILURE
        }
    }
}
