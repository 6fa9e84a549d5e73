//! End-to-end tests of the client against the simulator on loopback: what
//! docs/protocol.md says the server sees (read back from the simulator's
//! call log), and what the client makes of the replies, including the
//! faults the simulator injects on demand (refusals, oversized, endless and
//! non-UTF-8 replies).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::simulator::{Call, Endpoint, Fault, PushLogin, SimConfig, SimKind, Simulator};

/// A small account that logs in by itself within a fraction of a second.
async fn simulator() -> Simulator {
    let cfg = SimConfig {
        seed: 3,
        friends: 20,
        officials: 2,
        saved_groups: 4,
        unsaved_groups: 2,
        max_group_members: 8,
        page_size: 10,
        long_poll: Duration::from_millis(400),
        ..SimConfig::default()
    };
    Simulator::start(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("the simulator starts")
}

fn options(sim: &Simulator, mode: Mode) -> LoginOptions {
    LoginOptions {
        login_url: sim.base_url(),
        client: ClientOptions {
            mode,
            push_url: None,
            request_timeout: Duration::from_secs(5),
            synccheck_timeout: Duration::from_secs(5),
            max_reply_bytes: 1 << 20,
        },
        poll_timeout: Duration::from_secs(5),
        push_wait: Duration::from_secs(10),
    }
}

/// The calls the simulator received at `endpoint`, in order.
fn calls(sim: &Simulator, endpoint: Endpoint) -> Vec<Call> {
    sim.calls()
        .into_iter()
        .filter(|c| c.endpoint == endpoint)
        .collect()
}

fn header<'a>(call: &'a Call, name: &str) -> Option<&'a str> {
    call.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn body(call: &Call) -> Value {
    serde_json::from_str(&call.body).expect("a JSON body")
}

/// `name`'s value in a query string, still percent-encoded.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// A query value, percent-decoded.
fn decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("x={value}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Every secret the client has sent: cookie values, sid, skey and
/// pass_ticket, as sent and decoded.
fn secrets(sim: &Simulator) -> Vec<String> {
    let mut found = Vec::new();
    for c in sim.calls() {
        for kv in c.cookies.split(';') {
            if let Some((k, v)) = kv.trim().split_once('=')
                && ["wxsid", "webwx_data_ticket", "webwx_auth_ticket"].contains(&k)
            {
                found.push(v.to_string());
            }
        }
        for name in ["skey", "sid", "pass_ticket"] {
            if let Some(v) = param(&c.query, name).filter(|v| !v.is_empty()) {
                found.push(v.to_string());
                found.push(decode(v));
            }
        }
        if let Ok(b) = serde_json::from_str::<Value>(&c.body) {
            for k in ["Sid", "Skey"] {
                if let Some(v) = b["BaseRequest"][k].as_str().filter(|v| !v.is_empty()) {
                    found.push(v.to_string());
                }
            }
        }
    }
    found.sort();
    found.dedup();
    assert!(found.len() >= 5, "too few secrets seen: {}", found.len());
    found
}

fn assert_no_secret(sim: &Simulator, text: &str) {
    for secret in secrets(sim) {
        assert!(!text.contains(&secret), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn a_desktop_login_then_every_call_speaks_the_protocol() {
    let sim = simulator().await;
    // The server hands out a new skey at webwxinit: the client must take it.
    sim.fail(Endpoint::Init, Fault::NewSkey, 1);
    let mut events = Vec::new();
    let (client, init) = login(&options(&sim, Mode::Desktop), |e| events.push(e))
        .await
        .unwrap();
    let account = sim.account();
    let me = &account.self_user;
    let [
        LoginEvent::Qr { url },
        LoginEvent::Scanned,
        LoginEvent::Confirmed,
    ] = &events[..]
    else {
        panic!("{events:?}");
    };
    let uuid = url
        .strip_prefix("https://login.weixin.qq.com/l/")
        .expect("the QR code's URL");

    // jslogin asks for the desktop page.
    let js = &calls(&sim, Endpoint::JsLogin)[0];
    assert!(
        js.query.contains("appid=wx782c26e4c19acffb"),
        "{}",
        js.query
    );
    assert!(js.query.contains("redirect_uri=https%3A%2F%2Fwx.qq.com%2Fcgi-bin%2Fmmwebwx-bin%2Fwebwxnewloginpage%3Fmod%3Ddesktop"), "{}", js.query);
    assert_eq!(
        header(js, "referer"),
        Some("https://wx.qq.com/?&lang=zh_CN&target=t")
    );
    assert!(header(js, "user-agent").is_some_and(|ua| ua.starts_with("Mozilla/5.0")));
    // The poll names the uuid; tip=1 until the scan, then 0.
    let polls = calls(&sim, Endpoint::LoginPoll);
    let scanned = polls
        .iter()
        .position(|c| c.ret == Some(201))
        .expect("a 201");
    assert!(
        polls
            .iter()
            .all(|c| param(&c.query, "uuid").map(decode).as_deref() == Some(uuid))
    );
    assert!(polls[..=scanned].iter().all(|c| c.query.contains("tip=1")));
    assert!(
        polls.len() > scanned + 1
            && polls[scanned + 1..]
                .iter()
                .all(|c| c.query.contains("tip=0"))
    );
    // The ticket: version 2, desktop, the UOS headers; its 301 was not followed.
    let tickets = calls(&sim, Endpoint::NewLoginPage);
    let t = &tickets[0];
    assert_eq!((tickets.len(), t.status, t.ret), (1, 301, Some(0)));
    assert!(
        t.query.ends_with("&fun=new&version=v2&mod=desktop"),
        "{}",
        t.query
    );
    assert_eq!(header(t, "client-version"), Some("2.0.0"));
    assert_eq!(header(t, "extspam").map(str::len), Some(880));

    // webwxinit: pass_ticket, cookies and BaseRequest accepted (Ret 0),
    // JSON, a numeric Uin.
    let c = &calls(&sim, Endpoint::Init)[0];
    assert_eq!(c.ret, Some(0));
    assert!(
        param(&c.query, "pass_ticket").is_some_and(|p| !p.is_empty()),
        "{}",
        c.query
    );
    assert_eq!(
        header(c, "content-type"),
        Some("application/json; charset=utf-8")
    );
    let base = &body(c)["BaseRequest"];
    assert_eq!(base["Uin"], json!(me.uin));
    assert!(
        base["Skey"]
            .as_str()
            .is_some_and(|k| k.starts_with("@crypt_"))
    );
    let device = base["DeviceID"].as_str().unwrap();
    assert!(device.len() == 16 && device.starts_with('e'));

    // The init reply: skey stripped, members kept out of raw, ChatSet split.
    assert_eq!(init.user.user_name, me.user_name);
    assert_eq!(init.user.uin, me.uin);
    assert!(!init.user.raw.to_string().contains(&me.uin.to_string()));
    let group = init
        .contacts
        .iter()
        .find(|c| !c.member_list.is_empty())
        .expect("a group with members in init");
    assert!(!group.raw.contains("MemberList"));
    assert_eq!(init.chat_set, account.chat_set);
    assert_no_secret(&sim, &format!("{init:?}"));

    // statusnotify: self to self, Code 3, with the skey init handed out.
    let session = client.session();
    assert_ne!(session.skey, base["Skey"].as_str().unwrap(), "the new skey");
    let c = &calls(&sim, Endpoint::StatusNotify)[0];
    let b = body(c);
    assert_eq!((c.ret, b["Code"].as_i64()), (Some(0), Some(3)));
    assert_eq!(
        (b["FromUserName"].as_str(), b["ToUserName"].as_str()),
        (Some(me.user_name.as_str()), Some(me.user_name.as_str()))
    );
    assert_eq!(b["BaseRequest"]["Skey"], session.skey);

    // The session snapshot: all cookies, the same origin for push.
    assert_eq!(session.self_user_name(), me.user_name);
    assert_eq!(
        format!("{}/", session.api_origin()),
        sim.base_url().to_string()
    );
    assert_eq!(session.push_origin, session.api_origin);
    assert!(session.cookies.to_string().contains("webwx_data_ticket="));
    assert_no_secret(&sim, &format!("{session:?} {client:?}"));

    // Contact pages: Seq echoed verbatim until "0", every listed contact once.
    let mut seqs = vec!["0".to_string()];
    let mut listed = Vec::new();
    loop {
        let page = client.contact_page(seqs.last().unwrap()).await.unwrap();
        listed.extend(page.contacts.into_iter().map(|c| (c.user_name, c.sex)));
        if page.seq == "0" {
            break;
        }
        seqs.push(page.seq);
    }
    let pages = calls(&sim, Endpoint::GetContact);
    assert!(pages.len() > 2, "{} pages", pages.len());
    let echoed: Vec<&str> = pages
        .iter()
        .filter_map(|c| param(&c.query, "seq"))
        .collect();
    assert_eq!(echoed, seqs);
    let skey = url::form_urlencoded::byte_serialize(session.skey.as_bytes()).collect::<String>();
    assert!(
        pages
            .iter()
            .all(|c| param(&c.query, "skey") == Some(skey.as_str()))
    );
    // webwxgetcontact lists the self user too.
    let mut expected: Vec<(String, i64)> = std::iter::once(me)
        .chain(&account.contacts)
        .map(|c| (c.user_name.clone(), c.sex))
        .chain(
            account
                .groups
                .iter()
                .filter(|g| g.saved)
                .map(|g| (g.user_name.clone(), 0)),
        )
        .collect();
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);

    // Batches: 50 at most, checked before any request.
    let before = sim.calls().len();
    let too_many: Vec<BatchItem> = (0..51)
        .map(|i| BatchItem {
            user_name: format!("@@{i}"),
            chat_room: String::new(),
        })
        .collect();
    assert!(matches!(
        client.batch_get(&too_many).await,
        Err(Error::BatchTooLarge(51))
    ));
    assert_eq!(sim.calls().len(), before);
    let g = &account.groups[0];
    let m = &g.members[1];
    sim.member_card(&g.user_name, &m.user_name, "two");
    let got = client
        .batch_get(&[
            BatchItem {
                user_name: g.user_name.clone(),
                chat_room: String::new(),
            },
            BatchItem {
                user_name: m.user_name.clone(),
                chat_room: g.user_name.clone(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].encry_chat_room_id, g.encry_chat_room_id);
    assert_eq!(got[0].member_list.len(), g.members.len());
    let card = got[0]
        .member_list
        .iter()
        .find(|x| x.user_name == m.user_name)
        .unwrap();
    assert_eq!(card.display_name, "two");
    assert!(!got[0].head_img_url.contains("skey"));
    assert_eq!(got[1].user_name, m.user_name);
    let c = &calls(&sim, Endpoint::BatchGetContact)[0];
    assert!(c.query.contains("type=ex"), "{}", c.query);
    let b = body(c);
    assert_eq!(b["Count"], 2);
    assert_eq!(
        b["List"][1],
        json!({"UserName": m.user_name, "EncryChatRoomId": g.user_name})
    );

    // Remarks go out as raw UTF-8.
    let friend = account
        .contacts
        .iter()
        .find(|c| c.kind == SimKind::Friend)
        .unwrap();
    client
        .set_remark(&friend.user_name, "Zoë <3 😀")
        .await
        .unwrap();
    let c = &calls(&sim, Endpoint::OpLog)[0];
    assert_eq!(c.ret, Some(0));
    assert!(c.body.contains(r#""RemarkName":"Zoë <3 😀""#), "{}", c.body);
    assert!(
        c.body.contains(r#""CmdId":2"#)
            && c.body
                .contains(&format!(r#""UserName":"{}""#, friend.user_name))
    );

    // synccheck uses SyncKey until webwxsync hands out a SyncCheckKey.
    let init_key = client.session().sync_key.to_query();
    let check = client.sync_check().await.unwrap();
    assert_eq!(
        check,
        SyncCheck {
            retcode: "0".into(),
            selector: "2".into()
        }
    );
    let c = &calls(&sim, Endpoint::SyncCheck)[0];
    let encoded_key = init_key.replace('|', "%7C");
    assert_eq!(param(&c.query, "synckey"), Some(encoded_key.as_str()));
    assert_eq!(param(&c.query, "uin"), Some(me.uin.to_string().as_str()));
    let sid = url::form_urlencoded::byte_serialize(session.sid.as_bytes()).collect::<String>();
    assert_eq!(param(&c.query, "sid"), Some(sid.as_str()));
    assert!(sid.contains("%2B") || sid.contains("%2F"), "{sid}");

    // webwxsync: a rename, a removal, the MsgType 51 map; and a new skey.
    let gone = &account
        .contacts
        .iter()
        .filter(|c| c.kind == SimKind::Friend)
        .nth(1)
        .unwrap()
        .user_name;
    sim.rename(&friend.user_name, "A2");
    sim.remove_contact(gone);
    sim.fail(Endpoint::Sync, Fault::NewSkey, 1);
    let reply = client.sync().await.unwrap();
    let renamed = reply
        .modified
        .iter()
        .find(|c| c.user_name == friend.user_name)
        .expect("the renamed friend");
    assert_eq!(renamed.nick_name, "A2");
    assert!(
        reply
            .modified
            .iter()
            .all(|c| !c.head_img_url.contains("skey"))
    );
    assert_eq!(reply.deleted, vec![gone.clone()]);
    assert!(!reply.real_ids.is_empty());
    for pair in &reply.real_ids {
        let real = account
            .contacts
            .iter()
            .map(|c| (&c.user_name, &c.real_id))
            .chain(account.groups.iter().map(|g| (&g.user_name, &g.real_id)))
            .find(|(u, _)| **u == pair.user_name)
            .map(|(_, r)| r);
        assert_eq!(real, Some(&pair.real_id), "{pair:?}");
    }
    let c = &calls(&sim, Endpoint::Sync)[0];
    assert_eq!(c.ret, Some(0));
    assert!(
        param(&c.query, "sid").is_some() && param(&c.query, "pass_ticket").is_some(),
        "{}",
        c.query
    );
    let b = body(c);
    assert_eq!(
        serde_json::to_string(&b["SyncKey"]).unwrap(),
        serde_json::to_string(&session.sync_key).unwrap()
    );
    assert!(b["rr"].is_i64());
    let after = client.session();
    assert_ne!(after.skey, session.skey, "the skey webwxsync handed out");

    client.sync_check().await.unwrap();
    let c = &calls(&sim, Endpoint::SyncCheck)[1];
    assert_eq!(c.ret, Some(0), "the new skey is accepted");
    let check_key = after
        .sync_check_key
        .as_ref()
        .expect("a SyncCheckKey")
        .to_query();
    assert_ne!(check_key, after.sync_key.to_query());
    assert_eq!(
        param(&c.query, "synckey"),
        Some(check_key.replace('|', "%7C").as_str())
    );
    let new_skey = url::form_urlencoded::byte_serialize(after.skey.as_bytes()).collect::<String>();
    assert_eq!(param(&c.query, "skey"), Some(new_skey.as_str()));

    // A saved session resumes with its cookies.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxsync.session");
    client.session().save(&path).unwrap();
    let resumed = Client::new(
        Session::load(&path).unwrap().unwrap(),
        &ClientOptions::default(),
    )
    .unwrap();
    resumed.contact_page("0").await.unwrap();
    assert_eq!(
        calls(&sim, Endpoint::GetContact).last().unwrap().ret,
        Some(0)
    );

    // 1101 ends the session: recorded, and no further request is made.
    sim.force_logout(1101);
    let err = client.sync_check().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::SessionDead {
                code: 1101,
                endpoint: "synccheck"
            }
        ),
        "{err:?}"
    );
    let SessionState::LoggedOut {
        code: 1101, reason, ..
    } = client.session().state().clone()
    else {
        panic!("not logged out");
    };
    assert!(reason.contains("1101"), "{reason}");
    let before = sim.calls().len();
    assert!(client.sync().await.unwrap_err().is_session_dead());
    assert!(
        client
            .contact_page("0")
            .await
            .unwrap_err()
            .is_session_dead()
    );
    assert_eq!(sim.calls().len(), before);
}

#[tokio::test]
async fn a_barred_account_gets_a_plain_reason_in_web_mode() {
    let sim = simulator().await;
    sim.fail(Endpoint::NewLoginPage, Fault::LoginRet(1203), 1);
    let err = login(&options(&sim, Mode::Web), |_| {}).await.unwrap_err();
    assert!(matches!(err, LoginError::WebLoginBarred { .. }), "{err:?}");
    assert!(err.to_string().contains("may not log in to web WeChat"));
    // Web mode: no desktop markers anywhere.
    let js = &calls(&sim, Endpoint::JsLogin)[0];
    assert!(!js.query.contains("mod%3Ddesktop"), "{}", js.query);
    assert_eq!(header(js, "referer"), Some("https://wx.qq.com/"));
    let t = &calls(&sim, Endpoint::NewLoginPage)[0];
    assert_eq!((t.status, t.ret), (200, Some(1203)));
    assert!(t.query.ends_with("fun=new&version=v2"), "{}", t.query);
    assert!(header(t, "extspam").is_none() && header(t, "client-version").is_none());
    assert!(calls(&sim, Endpoint::Init).is_empty());
}

#[tokio::test]
async fn an_expired_qr_code_ends_the_attempt() {
    let sim = simulator().await;
    sim.fail(Endpoint::LoginPoll, Fault::Ret(400), 1);
    let mut events = Vec::new();
    let err = login(&options(&sim, Mode::Desktop), |e| events.push(e))
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::QrExpired), "{err:?}");
    assert_eq!(events.len(), 1);
    assert_eq!(calls(&sim, Endpoint::LoginPoll).len(), 1);
}

#[tokio::test]
async fn network_and_session_errors_carry_no_secret() {
    let sim = simulator().await;
    let (client, _) = login(&options(&sim, Mode::Desktop), |_| {}).await.unwrap();
    let mut session = client.session();
    // Nothing listens on port 9 of loopback.
    session.api_origin = "http://127.0.0.1:9".into();
    session.push_origin = "http://127.0.0.1:9".into();
    let dead_end = Client::new(session, &ClientOptions::default()).unwrap();
    for err in [
        dead_end.contact_page("0").await.unwrap_err(),
        dead_end.sync_check().await.unwrap_err(),
        dead_end.sync().await.unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::Network { .. }) && err.is_transient(),
            "{err:?}"
        );
        assert_no_secret(&sim, &format!("{err} {err:?}"));
    }
}

/// A finished QR login against `sim`, for its session.
async fn previous_session(sim: &Simulator) -> Session {
    let (client, _) = login(&options(sim, Mode::Desktop), |_| {}).await.unwrap();
    client.session()
}

/// The login polls between the push request and the next QR code (or the end).
fn push_polls(sim: &Simulator) -> Vec<Call> {
    let all = sim.calls();
    let push = all
        .iter()
        .rposition(|c| c.endpoint == Endpoint::PushLogin)
        .expect("a push request");
    all[push + 1..]
        .iter()
        .take_while(|c| c.endpoint != Endpoint::JsLogin)
        .filter(|c| c.endpoint == Endpoint::LoginPoll)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_push_login_needs_no_scan_even_after_a_logout() {
    let sim = simulator().await;
    let mut previous = previous_session(&sim).await;
    previous.mark_logged_out(1101, "web login elsewhere");
    let jslogins = calls(&sim, Endpoint::JsLogin).len();

    let mut events = Vec::new();
    let (client, init) = push_login(&options(&sim, Mode::Desktop), &previous, |e| {
        events.push(e);
    })
    .await
    .unwrap();

    assert_eq!(events, vec![LoginEvent::PushSent, LoginEvent::Confirmed]);
    assert_eq!(calls(&sim, Endpoint::JsLogin).len(), jslogins, "no QR code");
    let push = &calls(&sim, Endpoint::PushLogin)[0];
    assert_eq!(push.ret, Some(0));
    let uin = sim.account().self_user.uin;
    assert_eq!(push.query, format!("uin={uin}&mod=desktop"));
    assert!(
        push.cookies.contains("webwx_data_ticket="),
        "{}",
        push.cookies
    );
    let polls = push_polls(&sim);
    assert!(!polls.is_empty() && polls.iter().all(|c| c.query.contains("tip=1")));
    assert_eq!(polls.last().unwrap().ret, Some(200));
    // Then exactly a QR login's steps: the ticket, init, statusnotify.
    let t = calls(&sim, Endpoint::NewLoginPage).pop().unwrap();
    assert_eq!(t.ret, Some(0));
    assert!(t.query.ends_with("mod=desktop"), "{}", t.query);
    assert_eq!(header(&t, "extspam").map(str::len), Some(880));
    assert_eq!(init.user.user_name, sim.account().self_user.user_name);
    assert_eq!(calls(&sim, Endpoint::StatusNotify).len(), 2);
    let session = client.session();
    assert_eq!(session.state(), &SessionState::Active);
    assert_ne!(session.login_id(), previous.login_id());
}

/// A push login that must fall back; returns the events and the reason.
async fn fallback(
    sim: &Simulator,
    previous: &Session,
    push_wait: Duration,
) -> (Vec<LoginEvent>, String) {
    let mut opts = options(sim, Mode::Desktop);
    opts.push_wait = push_wait;
    let mut events = Vec::new();
    push_login(&opts, previous, |e| events.push(e))
        .await
        .expect("the QR code logs in");
    let failed = events
        .iter()
        .position(|e| matches!(e, LoginEvent::PushFailed { .. }))
        .unwrap_or_else(|| panic!("no fallback: {events:?}"));
    let LoginEvent::PushFailed { reason } = events[failed].clone() else {
        unreachable!("found above");
    };
    assert!(
        matches!(events.get(failed + 1), Some(LoginEvent::Qr { .. })),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&LoginEvent::Confirmed));
    assert_no_secret(sim, &format!("{events:?}"));
    assert!(!reason.contains('\n'), "{reason}");
    (events, reason)
}

#[tokio::test]
async fn a_refused_push_falls_back_to_the_qr_code() {
    let sim = simulator().await;
    let previous = previous_session(&sim).await;
    sim.set_push_login(PushLogin::Refuse);
    let (events, reason) = fallback(&sim, &previous, Duration::from_secs(10)).await;
    assert_eq!(reason, "the server refused push login (ret 2: antispam)");
    assert!(!events.contains(&LoginEvent::PushSent));
    assert!(push_polls(&sim).is_empty(), "no uuid to poll");
}

#[tokio::test]
async fn an_unanswered_push_falls_back_after_push_wait() {
    let sim = simulator().await;
    let previous = previous_session(&sim).await;
    sim.set_push_login(PushLogin::Ignore);
    let (events, reason) = fallback(&sim, &previous, Duration::from_millis(1500)).await;
    assert_eq!(reason, "the phone did not confirm within 1s 500ms");
    assert_eq!(events[0], LoginEvent::PushSent);
    let polls = push_polls(&sim);
    assert!(
        !polls.is_empty() && polls.iter().all(|c| c.ret == Some(408)),
        "the phone was waited for: {polls:?}"
    );
}

#[tokio::test]
async fn unreadable_or_unreachable_push_replies_fall_back_too() {
    let sim = simulator().await;
    let mut previous = previous_session(&sim).await;
    sim.fail(
        Endpoint::PushLogin,
        Fault::Custom {
            status: 200,
            content_type: "text/html".into(),
            body: b"<html>busy</html>".to_vec(),
        },
        1,
    );
    let (_, reason) = fallback(&sim, &previous, Duration::from_secs(10)).await;
    assert_eq!(
        reason,
        "webwxpushloginurl: unreadable reply: 17 bytes are not the expected JSON"
    );
    // Nothing listens on port 9 of loopback.
    previous.api_origin = "http://127.0.0.1:9".into();
    let (_, reason) = fallback(&sim, &previous, Duration::from_secs(10)).await;
    assert!(
        reason.starts_with("webwxpushloginurl: network error"),
        "{reason}"
    );
    assert_no_secret(&sim, &reason);
    assert!(!reason.contains(&previous.uin.to_string()), "{reason}");
}

/// A logged-in client that refuses replies over `limit` bytes, and the
/// simulator it talks to, whose next webwxgetcontact gets `fault`.
async fn client_with(limit: u64, fault: Fault) -> (Simulator, Client) {
    let sim = simulator().await;
    let (client, _) = login(&options(&sim, Mode::Desktop), |_| {}).await.unwrap();
    let opts = ClientOptions {
        request_timeout: Duration::from_secs(5),
        max_reply_bytes: limit,
        ..ClientOptions::default()
    };
    sim.fail(Endpoint::GetContact, fault, 1);
    (sim, Client::new(client.session(), &opts).unwrap())
}

#[tokio::test]
async fn a_reply_announcing_more_than_the_limit_is_refused_before_its_body() {
    // 1 GiB, announced: only the header can end this call in time.
    let (_sim, client) = client_with(
        64 * 1024,
        Fault::Huge {
            bytes: 1 << 30,
            chunked: false,
        },
    )
    .await;
    let err = client.contact_page("0").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                endpoint: "webwxgetcontact",
                limit: 65536,
                announced: Some(1_073_741_824)
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.starts_with("webwxgetcontact: reply refused: it announces 1073741824 bytes"),
        "{text}"
    );
    assert!(text.contains("limit of 65536 bytes"), "{text}");
}

#[tokio::test]
async fn an_endless_reply_without_length_is_refused_at_the_limit() {
    let (_sim, client) = client_with(
        64 * 1024,
        Fault::Huge {
            bytes: 1 << 30,
            chunked: true,
        },
    )
    .await;
    let err = client.contact_page("0").await.unwrap_err();
    let expected = Error::TooLarge {
        endpoint: "webwxgetcontact",
        limit: 65536,
        announced: None,
    };
    assert_eq!(err.to_string(), expected.to_string());
    assert!(err.to_string().contains("while arriving"), "{err}");
}

#[tokio::test]
async fn replies_up_to_the_limit_are_read_whole_with_or_without_length() {
    const LIMIT: u64 = 100_000;
    for (bytes, fits) in [(LIMIT, true), (LIMIT + 1, false)] {
        for chunked in [false, true] {
            let (_sim, client) = client_with(LIMIT, Fault::Huge { bytes, chunked }).await;
            match client.contact_page("0").await {
                Ok(page) => assert!(
                    fits && page.seq == "0" && !page.contacts.is_empty(),
                    "{bytes} bytes read"
                ),
                Err(e) => assert!(
                    !fits && matches!(e, Error::TooLarge { .. }),
                    "{bytes}: {e:?}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn a_reply_that_is_not_utf8_is_refused_with_where() {
    let mut body =
        br#"{"BaseResponse":{"Ret":0},"Seq":0,"MemberList":[{"UserName":"@a","NickName":"caf"#
            .to_vec();
    // Latin-1 é: a lead byte without its continuation.
    let bad = body.len();
    body.extend_from_slice(&[0xE9, b'"', b'}', b']', b'}']);
    let (_sim, client) = client_with(
        1 << 20,
        Fault::Custom {
            status: 200,
            content_type: "text/plain".into(),
            body,
        },
    )
    .await;
    let err = client.contact_page("0").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotUtf8 {
                endpoint: "webwxgetcontact",
                offset,
                len,
            } if offset == bad && len == bad + 5
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}
