//! What every command prints, as a script reading it sees it.

use std::process::{Command, Stdio};

use crate::helpers::{Run, TestApp, small_account};

/// Runs `wxsync ARGS` with a standard output whose reader has gone away
/// before the first line (as `| head -0` would leave it).
fn with_reader_gone(app: &TestApp, args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_wxsync"))
        .arg("--config")
        .arg(&app.config)
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("wxsync runs")
        .into()
}

/// `wxsync identity | head -1` and the like: every printing command stops
/// quietly, exit code 0, nothing on stderr about it.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_whose_reader_goes_away_exits_quietly() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sync().await;
    for args in [
        &["identity"][..],
        &["identity", "--json"],
        &["status"],
        &["status", "--json"],
        &["sync"],
    ] {
        let run = with_reader_gone(&app, args);
        assert!(
            run.ok() && !run.stderr.contains("panicked") && !run.stderr.contains("Broken pipe"),
            "wxsync {args:?}: {run:?}"
        );
    }
}
