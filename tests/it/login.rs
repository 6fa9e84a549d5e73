use std::os::unix::fs::PermissionsExt;

use wxsync::simulator::{Endpoint, Fault, PushLogin};

use crate::helpers::{Run, TestApp, small_account};

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

/// The saved session's login id (changes with every login).
fn login_id(app: &TestApp) -> String {
    let text = std::fs::read_to_string(app.session_file()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["login_id"].as_str().unwrap().to_owned()
}

fn qr_codes_served(app: &TestApp) -> usize {
    app.calls_to(Endpoint::JsLogin)
}

/// A login's output holds none of the credentials the client sent.
fn assert_no_secret(app: &TestApp, run: &Run) {
    let output = format!("{run:?}");
    for secret in app.secrets_sent() {
        assert!(!output.contains(&secret), "{secret} leaked: {output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relogin_after_a_logout_is_confirmed_on_the_phone_without_a_qr_code() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    let first = login_id(&app);
    app.sim.force_logout(1101);
    assert!(!app.wxsync(&["sync"]).await.ok(), "the session is dead");
    app.sim.set_push_login(PushLogin::Confirm);

    let run = app.wxsync(&["login"]).await;

    assert!(run.ok(), "{run:?}");
    assert!(run.stdout.contains("confirm it there"), "{run:?}");
    assert!(!run.stdout.contains("/l/"), "no QR code: {run:?}");
    assert_eq!(qr_codes_served(&app), 1, "only the first login showed one");
    assert_eq!(app.calls_to(Endpoint::PushLogin), 1);
    assert_ne!(login_id(&app), first, "a new session was saved");
    assert!(app.wxsync(&["sync"]).await.ok(), "the new session works");
    assert_no_secret(&app, &run);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_push_login_falls_back_to_the_qr_code() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    let first = login_id(&app);
    app.sim.set_push_login(PushLogin::Refuse);

    let run = app.wxsync(&["login"]).await;

    assert!(run.ok(), "{run:?}");
    assert!(
        run.stdout
            .contains("Push login did not work: the server refused push login"),
        "{run:?}"
    );
    assert!(run.stdout.contains("/l/"), "a QR code follows: {run:?}");
    assert_eq!(qr_codes_served(&app), 2);
    assert_ne!(login_id(&app), first);
    assert_no_secret(&app, &run);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_push_login_falls_back_after_push_wait() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    app.sim.set_push_login(PushLogin::Ignore);

    let run = app.wxsync(&["login", "--push-wait", "2s"]).await;

    assert!(run.ok(), "{run:?}");
    assert!(
        run.stdout
            .contains("Push login did not work: the phone did not confirm within 2s"),
        "{run:?}"
    );
    let asked = run
        .stdout
        .find("confirm it there")
        .expect("the phone was asked");
    let qr = run.stdout.find("/l/").expect("a QR code follows");
    assert!(asked < qr, "{run:?}");
    assert_eq!(qr_codes_served(&app), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_with_qr_does_not_ask_the_phone() {
    let app = TestApp::spawn(small_account()).await;
    app.login().await;
    let first = login_id(&app);

    let run = app.wxsync(&["login", "--qr"]).await;

    assert!(run.ok(), "{run:?}");
    assert!(!run.stdout.contains("confirm it there"), "{run:?}");
    assert!(!run.stdout.contains("Push login"), "{run:?}");
    assert_eq!(app.calls_to(Endpoint::PushLogin), 0);
    assert!(run.stdout.contains("/l/"), "{run:?}");
    assert_eq!(qr_codes_served(&app), 2);
    assert_ne!(login_id(&app), first);
}
