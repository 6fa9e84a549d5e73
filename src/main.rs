use std::process::ExitCode;

use clap::Parser;
use wxsync::cli::Cli;
use wxsync::telemetry::{self, LogOutput};

#[tokio::main]
async fn main() -> ExitCode {
    wxsync::memory::return_big_buffers();
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
