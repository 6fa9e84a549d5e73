use std::os::unix::fs::PermissionsExt;

use wxsync::simulator::{Endpoint, Fault};

use crate::helpers::{TestApp, small_account};

#[tokio::test(flavor = "multi_thread")]
async fn login_saves_a_private_session_and_stores_init_contacts() {
    let app = TestApp::spawn(small_account()).await;

    let run = app.login().await;

    assert!(run.stdout.contains("/l/"), "the QR URL is printed: {run:?}");
    assert!(
        run.stdout.contains('▀') || run.stdout.contains('▄'),
        "a text QR is drawn"
    );
    let mode = std::fs::metadata(app.session_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "session file is private");
    let me = app.sim.account().self_user.user_name;
    let stored: i64 = app
        .scalar("SELECT count(*) FROM contacts WHERE kind = 'self'")
        .await;
    assert_eq!(stored, 1);
    let name: String = sqlx::query_scalar("SELECT user_name FROM contacts WHERE kind = 'self'")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(name, me);
    assert!(
        app.scalar("SELECT count(*) FROM contacts").await > 1,
        "init's ContactList stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_speaks_desktop_mode() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;

    let calls = app.sim.calls();
    let jslogin = calls
        .iter()
        .find(|c| c.endpoint == Endpoint::JsLogin)
        .unwrap();
    assert!(jslogin.query.contains("mod%3Ddesktop"), "{}", jslogin.query);
    let ticket = calls
        .iter()
        .find(|c| c.endpoint == Endpoint::NewLoginPage)
        .unwrap();
    assert_eq!(
        ticket.status, 301,
        "desktop mode answers the ticket with a 301"
    );
    let header = |name: &str| {
        ticket
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("client-version").as_deref(), Some("2.0.0"));
    assert!(header("extspam").is_some_and(|v| v.starts_with("Go8FCIkFEokFCggwMDAwMDAw")));
    let refused: Vec<_> = calls
        .iter()
        .filter(|c| {
            c.ret
                .is_some_and(|r| r != 0 && r != 408 && r != 201 && r != 200)
        })
        .collect();
    assert!(refused.is_empty(), "refused calls: {refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_barred_account_is_told_in_words_and_nothing_is_saved() {
    let app = TestApp::spawn(small_account()).await;
    app.sim
        .fail(Endpoint::NewLoginPage, Fault::LoginRet(1203), 1);

    let run = app.wxsync(&["login"]).await;

    assert!(!run.ok());
    assert!(run.stderr.contains("1203"), "{run:?}");
    assert!(run.stderr.to_lowercase().contains("web wechat"), "{run:?}");
    assert!(!app.session_file().exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_without_a_session_says_to_log_in() {
    let app = TestApp::spawn(small_account()).await;

    let run = app.wxsync(&["sync"]).await;

    assert!(!run.ok());
    assert!(run.stderr.contains("run `wxsync login` first"), "{run:?}");
    assert_eq!(
        run.stderr
            .trim()
            .lines()
            .last()
            .unwrap()
            .matches("wxsync:")
            .count(),
        1
    );
}
