use std::process::ExitCode;

use clap::Parser;
use wxsync::cli::Cli;
use wxsync::telemetry::{self, Sink};

#[tokio::main]
async fn main() -> ExitCode {
    wxsync::memory::return_big_buffers();
    wxsync::commands::exit_quietly_when_stdout_closes();
    let cli = Cli::parse();
    let sink = telemetry::init();
    match wxsync::commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let line = wxsync::commands::one_line(&e);
            match sink {
                // At error priority, so `journalctl -p err` shows why it stopped.
                Sink::Journald => tracing::error!("wxsync: {line}"),
                Sink::Stderr => eprintln!("wxsync: {line}"),
            }
            ExitCode::FAILURE
        }
    }
}
