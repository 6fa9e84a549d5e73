use std::process::ExitCode;

use clap::Parser;
use wxsync::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    wxsync::telemetry::init();
    match wxsync::commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxsync: {}", wxsync::commands::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
