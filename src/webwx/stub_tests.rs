//! End-to-end tests of the client against a tiny stub of the WeChat Web
//! endpoints on loopback. The stub checks what docs/protocol.md says the
//! server sees; the real simulator tests live with the lead. Replies too
//! large or not UTF-8 come from a raw TCP server that writes bytes exactly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::*;

/// How the stub behaves in one test.
#[derive(Clone, Copy, Default)]
struct Script {
    /// The ticket step answers ret 1203.
    barred: bool,
    /// The login poll answers 400.
    expire: bool,
    /// What the phone does with a push login.
    push: Push,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Push {
    /// The phone confirms after one empty poll.
    #[default]
    Confirm,
    /// The server refuses the push request.
    Refuse,
    /// The phone never answers: the poll says 408 forever.
    Ignore,
    /// The push request answers with an HTML page.
    Garbage,
}

/// The uuid the stub hands out for a push login.
const PUSH_UUID: &str = "push-uu";

struct Seen {
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
}

struct Stub {
    addr: SocketAddr,
    script: Script,
    seen: Mutex<Vec<Seen>>,
    polls: AtomicUsize,
    push_polls: AtomicUsize,
    sync_checks: AtomicUsize,
}

impl Stub {
    fn requests(&self, path_end: &str) -> Vec<(String, HeaderMap, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.ends_with(path_end))
            .map(|s| (s.query.clone(), s.headers.clone(), s.body.clone()))
            .collect()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

const SKEY1: &str = "@crypt_SKEY1secret";
const SKEY2: &str = "@crypt_SKEY2secret";
const SKEY3: &str = "@crypt_SKEY3secret";
const PASS_TICKET: &str = "PT%2Bsecret%3D";
const SID: &str = "SID+secret/1";

fn text(body: impl Into<Body>) -> Response {
    Response::builder()
        .header("content-type", "text/plain")
        .body(body.into())
        .unwrap()
}

fn ok(mut v: Value) -> Response {
    v["BaseResponse"] = json!({"Ret": 0, "ErrMsg": ""});
    text(v.to_string())
}

async fn handle(
    State(stub): State<Arc<Stub>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let body = String::from_utf8(body.to_vec()).expect("the client sends UTF-8");
    stub.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query: query.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let name = path.rsplit('/').next().unwrap_or_default();
    let has_cookie = headers
        .get("cookie")
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.contains("webwx_data_ticket=DATAsecret"));
    if name.starts_with("webwx") && name != "webwxnewloginpage" && !has_cookie {
        return text(r#"{"BaseResponse":{"Ret":1101,"ErrMsg":"no cookie"}}"#);
    }
    match name {
        "jslogin" => text(r#"window.QRLogin.code = 200; window.QRLogin.uuid = "uu-1==";"#),
        "webwxpushloginurl" => match stub.script.push {
            Push::Confirm | Push::Ignore => text(format!(
                r#"{{"ret":"0","msg":"all ok","uuid":"{PUSH_UUID}"}}"#
            )),
            Push::Refuse => text(r#"{"ret":"1","msg":"push login disabled"}"#),
            Push::Garbage => text("<html>busy</html>"),
        },
        "login" if query.contains(&format!("uuid={PUSH_UUID}")) => {
            let first = stub.push_polls.fetch_add(1, Ordering::SeqCst) == 0;
            if stub.script.push == Push::Ignore || first {
                text("window.code=408;")
            } else {
                text(format!(
                    "window.code=200;\nwindow.redirect_uri=\"http://{}/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T2&uuid={PUSH_UUID}&lang=zh_CN\";",
                    stub.addr
                ))
            }
        }
        "login" => {
            if stub.script.expire {
                return text("window.code=400;");
            }
            match stub.polls.fetch_add(1, Ordering::SeqCst) {
                0 => text("window.code=408;"),
                1 => text("window.code=201;window.userAvatar = 'data:img/jpg;base64,AA==';"),
                _ => text(format!(
                    "window.code=200;\nwindow.redirect_uri=\"http://{}/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T1&uuid=uu-1==&lang=zh_CN&scan=1\";",
                    stub.addr
                )),
            }
        }
        "webwxnewloginpage" => {
            let xml = if stub.script.barred {
                "<error><ret>1203</ret><message>为了你的帐号安全，此微信号不能登录网页微信。</message></error>"
                    .to_owned()
            } else {
                format!(
                    "<error><ret>0</ret><message></message><skey>{SKEY1}</skey><wxsid>{SID}</wxsid>\
                     <wxuin>2718281828</wxuin><pass_ticket>{PASS_TICKET}</pass_ticket>\
                     <isgrayscale>1</isgrayscale></error>"
                )
            };
            Response::builder()
                .status(if stub.script.barred { 200 } else { 301 })
                .header(
                    "set-cookie",
                    "wxuin=2718281828; Path=/; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
                )
                .header("set-cookie", "wxsid=SIDcookie; Path=/")
                .header(
                    "set-cookie",
                    "webwx_data_ticket=DATAsecret; Path=/; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
                )
                .body(Body::from(xml))
                .unwrap()
        }
        "webwxinit" => ok(json!({
            "User": {"UserName": "@self", "NickName": "Me", "Uin": 2718281828u64,
                     "HeadImgUrl": format!("/cgi-bin/mmwebwx-bin/webwxgeticon?seq=1&username=@self&skey={SKEY1}")},
            "ContactList": [
                {"UserName": "@@g1", "NickName": "Group", "MemberCount": 1,
                 "MemberList": [{"UserName": "@m", "NickName": ""}],
                 "HeadImgUrl": format!("/cgi-bin/mmwebwx-bin/webwxgetheadimg?seq=2&username=@@g1&skey={SKEY1}")},
                {"UserName": "filehelper", "NickName": "File Transfer", "Uin": "0"}
            ],
            "ChatSet": "filehelper,@@g1,@@g2,",
            "SyncKey": {"Count": 2, "List": [{"Key": 1, "Val": 100}, {"Key": 2, "Val": 200}]},
            "SKey": SKEY2,
        })),
        "webwxstatusnotify" => ok(json!({"MsgID": "1"})),
        "webwxgetcontact" => {
            if query.contains("seq=0") {
                ok(
                    json!({"MemberCount": 1, "MemberList": [{"UserName": "@a", "NickName": "A", "Sex": "1"}], "Seq": "tok-1"}),
                )
            } else {
                ok(
                    json!({"MemberCount": 1, "MemberList": [{"UserName": "@b", "NickName": "B"}], "Seq": 0}),
                )
            }
        }
        "webwxbatchgetcontact" => {
            let req: Value = serde_json::from_str(&body).unwrap();
            let list: Vec<Value> = req["List"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| json!({
                    "UserName": i["UserName"], "NickName": "G", "Uin": "0", "MemberCount": 2,
                    "EncryChatRoomId": "@enc",
                    "HeadImgUrl": format!("/cgi-bin/mmwebwx-bin/webwxgetheadimg?username=x&skey={SKEY2}"),
                    "MemberList": [{"UserName": "@m1", "NickName": "M1"}, {"UserName": "@m2", "DisplayName": "two"}]
                }))
                .collect();
            ok(json!({"Count": list.len(), "ContactList": list}))
        }
        "webwxoplog" => ok(json!({})),
        "synccheck" => match stub.sync_checks.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => text(r#"window.synccheck={retcode:"0",selector:"2"}"#),
            _ => text(r#"window.synccheck={retcode:"1101",selector:"0"}"#),
        },
        "webwxsync" => ok(json!({
            "AddMsgCount": 2, "AddMsgList": [
                {"MsgType": 51, "StatusNotifyCode": 4, "StatusNotifyUserName": "@a,@@g1,filehelper",
                 "Content": "&lt;msg&gt;<br/>&lt;op id='4'&gt;<br/>&lt;username&gt;wxid_real_a,4242@chatroom,filehelper&lt;/username&gt;<br/>&lt;/op&gt;<br/>&lt;/msg&gt;"},
                {"MsgType": 1, "Content": "hello", "StatusNotifyUserName": "@x"}
            ],
            "ModContactCount": 1,
            "ModContactList": [{"UserName": "@a", "NickName": "A2", "RemarkName": "",
                                "HeadImgUrl": format!("/i?u=@a&skey={SKEY2}")}],
            "DelContactCount": 1, "DelContactList": [{"UserName": "@gone", "ContactFlag": 0}],
            "SyncKey": {"Count": 1, "List": [{"Key": 1, "Val": 300}]},
            "SyncCheckKey": {"Count": 1, "List": [{"Key": 1, "Val": 400}]},
            "SKey": SKEY3,
            "ContinueFlag": 0
        })),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .unwrap(),
    }
}

async fn start(script: Script) -> Arc<Stub> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub = Arc::new(Stub {
        addr: listener.local_addr().unwrap(),
        script,
        seen: Mutex::new(Vec::new()),
        polls: AtomicUsize::new(0),
        push_polls: AtomicUsize::new(0),
        sync_checks: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&stub));
    tokio::spawn(async move { axum::serve(listener, app).await });
    stub
}

fn options(stub: &Stub, mode: Mode) -> LoginOptions {
    LoginOptions {
        login_url: format!("http://{}", stub.addr).parse().unwrap(),
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

fn assert_no_secret(text: &str) {
    for secret in [
        "SKEY1secret",
        "SKEY2secret",
        "SKEY3secret",
        "PT%2Bsecret",
        "SID+secret",
        "DATAsecret",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn a_desktop_login_then_every_call_speaks_the_protocol() {
    let stub = start(Script::default()).await;
    let mut events = Vec::new();
    let (client, init) = login(&options(&stub, Mode::Desktop), |e| events.push(e))
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![
            LoginEvent::Qr {
                url: "https://login.weixin.qq.com/l/uu-1==".into()
            },
            LoginEvent::Scanned,
            LoginEvent::Confirmed
        ]
    );

    // jslogin asks for the desktop page.
    let (q, h, _) = &stub.requests("/jslogin")[0];
    assert!(q.contains("appid=wx782c26e4c19acffb"), "{q}");
    assert!(q.contains("redirect_uri=https%3A%2F%2Fwx.qq.com%2Fcgi-bin%2Fmmwebwx-bin%2Fwebwxnewloginpage%3Fmod%3Ddesktop"), "{q}");
    assert_eq!(h["referer"], "https://wx.qq.com/?&lang=zh_CN&target=t");
    assert!(h["user-agent"].to_str().unwrap().starts_with("Mozilla/5.0"));
    // tip=1 until the scan, then 0.
    let polls = stub.requests("/login");
    assert_eq!(polls.len(), 3);
    assert!(polls[0].0.contains("tip=1") && polls[2].0.contains("tip=0"));
    // The ticket: version 2, desktop, the UOS headers; its 301 was not followed.
    let (q, h, _) = &stub.requests("/webwxnewloginpage")[0];
    assert!(q.ends_with("scan=1&fun=new&version=v2&mod=desktop"), "{q}");
    assert_eq!(h["client-version"], "2.0.0");
    assert_eq!(h["extspam"].len(), 880);

    // webwxinit: pass_ticket as received, BaseRequest with a numeric Uin.
    let (q, h, body) = &stub.requests("/webwxinit")[0];
    assert!(q.contains(&format!("pass_ticket={PASS_TICKET}")), "{q}");
    assert_eq!(h["content-type"], "application/json; charset=utf-8");
    let body: Value = serde_json::from_str(body).unwrap();
    let base = &body["BaseRequest"];
    assert_eq!(base["Uin"], json!(2718281828u64));
    assert_eq!(
        (base["Sid"].as_str(), base["Skey"].as_str()),
        (Some(SID), Some(SKEY1))
    );
    let device = base["DeviceID"].as_str().unwrap();
    assert!(device.len() == 16 && device.starts_with('e'));

    // The init reply: skey stripped, members kept out of raw, ChatSet split.
    assert_eq!(init.user.user_name, "@self");
    assert_eq!(init.user.uin, 2718281828);
    assert!(!init.user.raw.to_string().contains("2718281828"));
    assert_eq!(init.contacts.len(), 2);
    assert_eq!(init.contacts[0].member_list.len(), 1);
    assert!(!init.contacts[0].raw.contains("MemberList"));
    assert_eq!(init.chat_set, vec!["filehelper", "@@g1", "@@g2"]);
    assert_no_secret(&format!("{init:?}"));

    // statusnotify: self to self, Code 3, with the skey from init.
    let (_, _, body) = &stub.requests("/webwxstatusnotify")[0];
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (body["Code"].as_i64(), body["FromUserName"].as_str()),
        (Some(3), Some("@self"))
    );
    assert_eq!(body["ToUserName"], "@self");
    assert_eq!(body["BaseRequest"]["Skey"], SKEY2);

    // The session snapshot: new skey, all cookies, same origin for push.
    let session = client.session();
    assert_eq!(session.self_user_name(), "@self");
    assert_eq!(session.skey, SKEY2);
    assert_eq!(session.api_origin(), format!("http://{}", stub.addr));
    assert_eq!(session.push_origin, session.api_origin);
    assert!(
        session
            .cookies
            .to_string()
            .contains("webwx_data_ticket=DATAsecret")
    );
    assert_no_secret(&format!("{session:?} {client:?}"));

    // Contact pages: Seq echoed verbatim until "0".
    let page = client.contact_page("0").await.unwrap();
    assert_eq!((page.contacts[0].sex, page.seq.as_str()), (1, "tok-1"));
    let page = client.contact_page(&page.seq).await.unwrap();
    assert_eq!(
        (page.contacts[0].user_name.as_str(), page.seq.as_str()),
        ("@b", "0")
    );
    let (q, _, _) = &stub.requests("/webwxgetcontact")[1];
    assert!(
        q.contains("seq=tok-1") && q.contains("skey=%40crypt_SKEY2secret"),
        "{q}"
    );

    // Batches: 50 at most, checked before any request.
    let before = stub.count();
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
    assert_eq!(stub.count(), before);
    let groups = client
        .batch_get(&[
            BatchItem {
                user_name: "@@g1".into(),
                chat_room: String::new(),
            },
            BatchItem {
                user_name: "@m1".into(),
                chat_room: "@@g1".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].member_list[1].display_name, "two");
    assert_eq!(groups[0].encry_chat_room_id, "@enc");
    assert!(!groups[0].head_img_url.contains("skey"));
    let (q, _, body) = &stub.requests("/webwxbatchgetcontact")[0];
    assert!(q.contains("type=ex"), "{q}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["Count"], 2);
    assert_eq!(
        body["List"][1],
        json!({"UserName": "@m1", "EncryChatRoomId": "@@g1"})
    );

    // Remarks go out as raw UTF-8.
    client.set_remark("@a", "Zoë <3 😀").await.unwrap();
    let (_, _, body) = &stub.requests("/webwxoplog")[0];
    assert!(body.contains(r#""RemarkName":"Zoë <3 😀""#), "{body}");
    assert!(body.contains(r#""CmdId":2"#) && body.contains(r#""UserName":"@a""#));

    // synccheck uses SyncKey until webwxsync hands out a SyncCheckKey.
    let check = client.sync_check().await.unwrap();
    assert_eq!(
        check,
        SyncCheck {
            retcode: "0".into(),
            selector: "2".into()
        }
    );
    let (q, _, _) = &stub.requests("/synccheck")[0];
    assert!(
        q.contains("synckey=1_100%7C2_200") && q.contains("uin=2718281828"),
        "{q}"
    );
    assert!(q.contains("sid=SID%2Bsecret%2F1"), "{q}");

    let reply = client.sync().await.unwrap();
    assert_eq!(reply.modified[0].nick_name, "A2");
    assert!(!reply.modified[0].head_img_url.contains("skey"));
    assert_eq!(reply.deleted, vec!["@gone"]);
    let pairs: Vec<(&str, &str)> = reply
        .real_ids
        .iter()
        .map(|p| (p.user_name.as_str(), p.real_id.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("@a", "wxid_real_a"),
            ("@@g1", "4242@chatroom"),
            ("filehelper", "filehelper")
        ]
    );
    let (q, _, body) = &stub.requests("/webwxsync")[0];
    assert!(
        q.contains("sid=") && q.contains(&format!("pass_ticket={PASS_TICKET}")),
        "{q}"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body["SyncKey"],
        json!({"Count": 2, "List": [{"Key": 1, "Val": 100}, {"Key": 2, "Val": 200}]})
    );
    assert!(body["rr"].is_i64());

    client.sync_check().await.unwrap();
    let (q, _, _) = &stub.requests("/synccheck")[1];
    assert!(
        q.contains("synckey=1_400") && q.contains("skey=%40crypt_SKEY3secret"),
        "{q}"
    );
    assert_eq!(client.session().sync_key.to_query(), "1_300");

    // A saved session resumes with its cookies.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxsync.session");
    client.session().save(&path).unwrap();
    let resumed = Client::new(
        Session::load(&path).unwrap().unwrap(),
        &ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(resumed.contact_page("0").await.unwrap().seq, "tok-1");

    // 1101 ends the session: recorded, and no further request is made.
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
    let before = stub.count();
    assert!(client.sync().await.unwrap_err().is_session_dead());
    assert!(
        client
            .contact_page("0")
            .await
            .unwrap_err()
            .is_session_dead()
    );
    assert_eq!(stub.count(), before);
}

#[tokio::test]
async fn a_barred_account_gets_a_plain_reason_in_web_mode() {
    let stub = start(Script {
        barred: true,
        ..Script::default()
    })
    .await;
    let err = login(&options(&stub, Mode::Web), |_| {}).await.unwrap_err();
    assert!(matches!(err, LoginError::WebLoginBarred { .. }), "{err:?}");
    assert!(err.to_string().contains("may not log in to web WeChat"));
    // Web mode: no desktop markers anywhere.
    let (q, h, _) = &stub.requests("/jslogin")[0];
    assert!(!q.contains("mod%3Ddesktop"), "{q}");
    assert_eq!(h["referer"], "https://wx.qq.com/");
    let (q, h, _) = &stub.requests("/webwxnewloginpage")[0];
    assert!(q.ends_with("fun=new&version=v2"), "{q}");
    assert!(h.get("extspam").is_none() && h.get("client-version").is_none());
    assert!(stub.requests("/webwxinit").is_empty());
}

#[tokio::test]
async fn an_expired_qr_code_ends_the_attempt() {
    let stub = start(Script {
        expire: true,
        ..Script::default()
    })
    .await;
    let mut events = Vec::new();
    let err = login(&options(&stub, Mode::Desktop), |e| events.push(e))
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::QrExpired), "{err:?}");
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn network_and_session_errors_carry_no_secret() {
    let stub = start(Script::default()).await;
    let (client, _) = login(&options(&stub, Mode::Desktop), |_| {}).await.unwrap();
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
        assert_no_secret(&format!("{err} {err:?}"));
    }
}

/// A finished QR login against `stub`, for its session.
async fn previous_session(stub: &Stub) -> Session {
    let (client, _) = login(&options(stub, Mode::Desktop), |_| {}).await.unwrap();
    client.session()
}

#[tokio::test]
async fn a_push_login_needs_no_scan_even_after_a_logout() {
    let stub = start(Script::default()).await;
    let mut previous = previous_session(&stub).await;
    previous.mark_logged_out(1101, "web login elsewhere");
    let jslogins = stub.requests("/jslogin").len();

    let mut events = Vec::new();
    let (client, init) = push_login(&options(&stub, Mode::Desktop), &previous, |e| {
        events.push(e);
    })
    .await
    .unwrap();

    assert_eq!(events, vec![LoginEvent::PushSent, LoginEvent::Confirmed]);
    assert_eq!(stub.requests("/jslogin").len(), jslogins, "no QR code");
    let (q, h, _) = &stub.requests("/webwxpushloginurl")[0];
    assert_eq!(q, "uin=2718281828&mod=desktop");
    let cookies = h["cookie"].to_str().unwrap();
    assert!(
        cookies.contains("webwx_data_ticket=DATAsecret"),
        "{cookies}"
    );
    let polls: Vec<String> = stub
        .requests("/login")
        .into_iter()
        .map(|(q, _, _)| q)
        .filter(|q| q.contains(PUSH_UUID))
        .collect();
    assert_eq!(polls.len(), 2);
    assert!(polls.iter().all(|q| q.contains("tip=1")), "{polls:?}");
    // Then exactly a QR login's steps: the ticket, init, statusnotify.
    let (q, h, _) = stub.requests("/webwxnewloginpage").pop().unwrap();
    assert!(q.contains("ticket=T2") && q.ends_with("mod=desktop"), "{q}");
    assert_eq!(h["extspam"].len(), 880);
    assert_eq!(init.user.user_name, "@self");
    assert_eq!(stub.requests("/webwxstatusnotify").len(), 2);
    let session = client.session();
    assert_eq!(session.state(), &SessionState::Active);
    assert_ne!(session.login_id(), previous.login_id());
}

/// A push login that must fall back; returns the events and the reason.
async fn fallback(
    stub: &Stub,
    previous: &Session,
    push_wait: Duration,
) -> (Vec<LoginEvent>, String) {
    let mut opts = options(stub, Mode::Desktop);
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
    assert_no_secret(&format!("{events:?}"));
    assert!(!reason.contains('\n'), "{reason}");
    (events, reason)
}

#[tokio::test]
async fn a_refused_push_falls_back_to_the_qr_code() {
    let stub = start(Script {
        push: Push::Refuse,
        ..Script::default()
    })
    .await;
    let previous = previous_session(&stub).await;
    let (events, reason) = fallback(&stub, &previous, Duration::from_secs(10)).await;
    assert_eq!(
        reason,
        "the server refused push login (ret 1: push login disabled)"
    );
    assert!(!events.contains(&LoginEvent::PushSent));
    assert!(
        stub.requests("/login")
            .iter()
            .all(|(q, _, _)| !q.contains(PUSH_UUID))
    );
}

#[tokio::test]
async fn an_unanswered_push_falls_back_after_push_wait() {
    let stub = start(Script {
        push: Push::Ignore,
        ..Script::default()
    })
    .await;
    let previous = previous_session(&stub).await;
    let (events, reason) = fallback(&stub, &previous, Duration::from_millis(1500)).await;
    assert_eq!(reason, "the phone did not confirm within 1s 500ms");
    assert_eq!(events[0], LoginEvent::PushSent);
    assert!(
        stub.requests("/login")
            .iter()
            .any(|(q, _, _)| q.contains(PUSH_UUID)),
        "the phone was waited for"
    );
}

#[tokio::test]
async fn unreadable_or_unreachable_push_replies_fall_back_too() {
    let stub = start(Script {
        push: Push::Garbage,
        ..Script::default()
    })
    .await;
    let mut previous = previous_session(&stub).await;
    let (_, reason) = fallback(&stub, &previous, Duration::from_secs(10)).await;
    assert_eq!(
        reason,
        "webwxpushloginurl: unreadable reply: 17 bytes are not the expected JSON"
    );
    // Nothing listens on port 9 of loopback.
    previous.api_origin = "http://127.0.0.1:9".into();
    let (_, reason) = fallback(&stub, &previous, Duration::from_secs(10)).await;
    assert!(
        reason.starts_with("webwxpushloginurl: network error"),
        "{reason}"
    );
    assert_no_secret(&reason);
    assert!(!reason.contains("2718281828"), "{reason}");
}

/// A server that answers every connection with `head` and then `body`,
/// written as is; with `endless`, the body is chunk-encoded and goes on
/// until the client hangs up. Connections close after one reply.
async fn raw_server(head: impl Into<String>, body: Vec<u8>, endless: bool) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (head, body) = (Arc::new(head.into()), Arc::new(body));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (head, body) = (Arc::clone(&head), Arc::clone(&body));
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                if endless {
                    let chunk = [
                        format!("{:x}\r\n", body.len()).into_bytes(),
                        body.to_vec(),
                        b"\r\n".to_vec(),
                    ]
                    .concat();
                    while socket.write_all(&chunk).await.is_ok() {}
                } else if socket.write_all(&body).await.is_ok() {
                    // Hold the connection until the client is done with it.
                    let _ = socket.read(&mut buf).await;
                }
            });
        }
    });
    addr
}

/// One `webwxgetcontact` call, refusing replies over `limit` bytes, against
/// a [`raw_server`] of `head`, `body` and `endless`.
async fn page_from(
    head: impl Into<String>,
    body: Vec<u8>,
    endless: bool,
    limit: u64,
) -> Result<ContactPage, Error> {
    let addr = raw_server(head, body, endless).await;
    let mut session = super::session::tests::sample();
    session.api_origin = format!("http://{addr}");
    session.push_origin = session.api_origin.clone();
    let opts = ClientOptions {
        request_timeout: Duration::from_secs(5),
        max_reply_bytes: limit,
        ..ClientOptions::default()
    };
    Client::new(session, &opts).unwrap().contact_page("0").await
}

/// A webwxgetcontact page of exactly `len` bytes.
fn page_of(len: usize) -> Vec<u8> {
    let head = r#"{"BaseResponse":{"Ret":0},"Seq":0,"MemberList":[],"Pad":""#;
    let tail = r#""}"#;
    let mut body = head.as_bytes().to_vec();
    body.resize(len - tail.len(), b'x');
    body.extend_from_slice(tail.as_bytes());
    body
}

#[tokio::test]
async fn a_reply_announcing_more_than_the_limit_is_refused_before_its_body() {
    // The body never completes: only the header can end this call.
    let err = page_from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1073741824\r\n\r\n",
        b"{\"BaseResponse\":".to_vec(),
        false,
        64 * 1024,
    )
    .await
    .unwrap_err();
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
    let err = page_from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        vec![b' '; 8192],
        true,
        64 * 1024,
    )
    .await
    .unwrap_err();
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
    const LIMIT: usize = 100_000;
    for (len, fits) in [(LIMIT, true), (LIMIT + 1, false)] {
        let body = page_of(len);
        let with_length = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        let chunked = {
            // One chunk per 1000 bytes, then the last chunk.
            let mut b = Vec::new();
            for part in body.chunks(1000) {
                b.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                b.extend_from_slice(part);
                b.extend_from_slice(b"\r\n");
            }
            b.extend_from_slice(b"0\r\n\r\n");
            b
        };
        let chunked_head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                            Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        for (head, body) in [(with_length.as_str(), body), (chunked_head, chunked)] {
            match page_from(head, body, false, LIMIT as u64).await {
                Ok(page) => assert!(fits && page.seq == "0", "{len} bytes read"),
                Err(e) => assert!(!fits && matches!(e, Error::TooLarge { .. }), "{len}: {e:?}"),
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
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let err = page_from(head, body, false, 1 << 20).await.unwrap_err();
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
