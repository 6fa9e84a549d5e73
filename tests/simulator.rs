//! The simulator driven by hand with reqwest (never the wxsync client), the
//! way a careful desktop-mode client talks to the real servers.

use std::time::{Duration, Instant};

use regex::Regex;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use wxsync::simulator::{Endpoint, Fault, SimConfig, SimKind, Simulator, UOS_EXTSPAM};

const REFERER: &str = "https://wx.qq.com/?&lang=zh_CN&target=t";

fn small() -> SimConfig {
    SimConfig {
        seed: 42,
        friends: 120,
        officials: 5,
        saved_groups: 8,
        unsaved_groups: 4,
        max_group_members: 120,
        page_size: 50,
        long_poll: Duration::from_millis(800),
        auto_confirm: true,
    }
}

async fn start(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn jar_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

struct Session {
    client: Client,
    api: String,
    skey: String,
    sid: String,
    uin: String,
    pass_ticket: String,
}

impl Session {
    fn base_request(&self) -> Value {
        json!({"Uin": self.uin.parse::<i64>().unwrap(), "Sid": self.sid, "Skey": self.skey, "DeviceID": "e123456789012345"})
    }

    async fn post(&self, cgi: &str, query: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{}{cgi}?{query}", self.api))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["content-type"],
            "text/plain",
            "JSON replies are text/plain"
        );
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    }

    async fn init(&self) -> Value {
        let q = format!("r={}&pass_ticket={}", now_ms(), self.pass_ticket);
        self.post("webwxinit", &q, json!({"BaseRequest": self.base_request()}))
            .await
    }

    async fn get_contact(&self, seq: &str) -> Value {
        let url = format!(
            "{}webwxgetcontact?r={}&seq={seq}&skey={}",
            self.api,
            now_ms(),
            self.skey
        );
        let text = self
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn batch(&self, list: Vec<Value>) -> Value {
        let q = format!("type=ex&r={}&lang=zh_CN", now_ms());
        let body = json!({"BaseRequest": self.base_request(), "Count": list.len(), "List": list});
        self.post("webwxbatchgetcontact", &q, body).await
    }

    async fn synccheck(&self, key: &Value) -> (String, String) {
        let synckey = key["List"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| format!("{}_{}", kv["Key"], kv["Val"]))
            .collect::<Vec<_>>()
            .join("|");
        let text = self
            .client
            .get(format!("{}synccheck", self.api))
            .query(&[
                ("r", now_ms().to_string()),
                ("skey", self.skey.clone()),
                ("sid", self.sid.clone()),
                ("uin", self.uin.clone()),
                ("deviceid", "e123456789012345".into()),
                ("synckey", synckey),
                ("_", now_ms().to_string()),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let re = Regex::new(r#"window.synccheck=\{retcode:"(\d+)",selector:"(\d+)"\}"#).unwrap();
        let c = re.captures(&text).expect(&text);
        (c[1].to_string(), c[2].to_string())
    }

    async fn sync(&self, key: &Value) -> Value {
        let q = format!(
            "sid={}&skey={}&pass_ticket={}",
            self.sid, self.skey, self.pass_ticket
        );
        let body = json!({"BaseRequest": self.base_request(), "SyncKey": key, "rr": -12345});
        self.post("webwxsync", &q, body).await
    }
}

async fn jslogin(client: &Client, base: &str, desktop: bool) -> String {
    let redirect = if desktop {
        "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?mod=desktop"
    } else {
        "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage"
    };
    let text = client
        .get(format!("{base}jslogin"))
        .query(&[
            ("appid", "wx782c26e4c19acffb"),
            ("fun", "new"),
            ("lang", "zh_CN"),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let re = Regex::new(r#"window.QRLogin.code = (\d+); window.QRLogin.uuid = "(\S+?)";"#).unwrap();
    let c = re.captures(&text).expect(&text);
    assert_eq!(&c[1], "200");
    c[2].to_string()
}

/// One poll: (code, redirect_uri when 200).
async fn poll(client: &Client, base: &str, uuid: &str) -> (u32, Option<String>) {
    let url = format!(
        "{base}cgi-bin/mmwebwx-bin/login?loginicon=true&uuid={uuid}&tip=1&r={}&_={}",
        now_ms(),
        now_ms()
    );
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    let code: u32 = Regex::new(r"window.code=(\d+);")
        .unwrap()
        .captures(&text)
        .expect(&text)[1]
        .parse()
        .unwrap();
    let redirect = Regex::new(r#"window.redirect_uri="(\S+)";"#)
        .unwrap()
        .captures(&text)
        .map(|c| c[1].to_string());
    (code, redirect)
}

async fn wait_for_redirect(client: &Client, base: &str, uuid: &str) -> (Vec<u32>, String) {
    let mut codes = Vec::new();
    for _ in 0..20 {
        let (code, redirect) = poll(client, base, uuid).await;
        codes.push(code);
        if code == 200 {
            return (codes, redirect.unwrap());
        }
    }
    panic!("never confirmed: {codes:?}");
}

fn xml_field(xml: &str, tag: &str) -> String {
    Regex::new(&format!("<{tag}>(.*?)</{tag}>"))
        .unwrap()
        .captures(xml)
        .map(|c| c[1].to_string())
        .unwrap_or_default()
}

/// Desktop-mode login to the point of having credentials (no init yet).
/// The desktop-mode ticket GET, with the UOS headers unless `extspam` is None.
async fn desktop_ticket(
    client: &Client,
    redirect: &str,
    extspam: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .get(format!("{redirect}&fun=new&version=v2&mod=desktop"))
        .header("client-version", "2.0.0")
        .header("referer", REFERER);
    if let Some(extspam) = extspam {
        req = req.header("extspam", extspam);
    }
    req.send().await.unwrap()
}

async fn login(sim: &Simulator) -> Session {
    let base = sim.base_url().to_string();
    let client = jar_client();
    let uuid = jslogin(&client, &base, true).await;
    let (codes, redirect) = wait_for_redirect(&client, &base, &uuid).await;
    assert!(
        codes.contains(&201),
        "scan reported before confirm: {codes:?}"
    );
    let r = desktop_ticket(&client, &redirect, Some(UOS_EXTSPAM)).await;
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert!(
        r.headers().get("location").is_none(),
        "301 without Location"
    );
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_string())
        .collect();
    for c in [
        "wxuin",
        "wxsid",
        "webwxuvid",
        "webwx_auth_ticket",
        "webwx_data_ticket",
    ] {
        assert!(cookies.iter().any(|k| k == c), "cookie {c} in {cookies:?}");
    }
    let xml = r.text().await.unwrap();
    assert_eq!(xml_field(&xml, "ret"), "0", "{xml}");
    let pass_ticket = xml_field(&xml, "pass_ticket");
    assert!(pass_ticket.contains('%'), "pass_ticket is percent-encoded");
    let api = redirect[..redirect.rfind('/').unwrap() + 1].to_string();
    Session {
        client,
        api,
        skey: xml_field(&xml, "skey"),
        sid: xml_field(&xml, "wxsid"),
        uin: xml_field(&xml, "wxuin"),
        pass_ticket,
    }
}

#[tokio::test]
async fn desktop_login_init_and_full_contact_fetch() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    assert!(s.skey.starts_with("@crypt_"));
    let init = s.init().await;
    assert_eq!(init["BaseResponse"]["Ret"], 0);
    assert_eq!(init["User"]["Uin"].to_string(), s.uin);
    assert_eq!(init["InviteStartCount"], 40);
    assert_eq!(init["SKey"], s.skey);
    let account = sim.account();
    assert_eq!(init["User"]["UserName"], account.self_user.user_name);

    // Init groups carry a partial, dirty member list.
    let init_groups: Vec<&Value> = init["ContactList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["UserName"].as_str().unwrap().starts_with("@@"))
        .collect();
    assert!(!init_groups.is_empty());
    for g in &init_groups {
        let n = g["MemberList"].as_array().unwrap().len();
        assert_eq!(g["MemberCount"], n);
        let real = account
            .groups
            .iter()
            .find(|x| x.user_name == g["UserName"])
            .unwrap();
        assert!(n < real.members.len());
    }
    assert!(init_groups.iter().any(|g| {
        g["MemberList"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["NickName"] == "")
    }));

    let notify = s
        .post(
            "webwxstatusnotify",
            &format!("lang=zh_CN&pass_ticket={}", s.pass_ticket),
            json!({"BaseRequest": s.base_request(), "Code": 3,
                   "FromUserName": account.self_user.user_name, "ToUserName": account.self_user.user_name,
                   "ClientMsgId": now_ms() as u64}),
        )
        .await;
    assert_eq!(notify["BaseResponse"]["Ret"], 0);

    // getcontact: at least 3 pages, opaque Seq tokens, 0 on the last page.
    let mut seq = "0".to_string();
    let mut pages = 0;
    let mut all = Vec::new();
    loop {
        let page = s.get_contact(&seq).await;
        assert_eq!(page["BaseResponse"]["Ret"], 0);
        let list = page["MemberList"].as_array().unwrap();
        assert_eq!(page["MemberCount"], list.len());
        all.extend(list.iter().cloned());
        pages += 1;
        let next = page["Seq"].as_u64().unwrap();
        if next == 0 {
            break;
        }
        assert!(next > 1000, "Seq is a token, not a page number: {next}");
        seq = next.to_string();
    }
    assert!(pages >= 3, "{pages} pages");
    assert!(
        all.iter()
            .any(|c| c["UserName"] == account.self_user.user_name)
    );
    assert!(all.iter().any(|c| c["UserName"] == "filehelper"));
    assert!(
        all.iter()
            .all(|c| c["HeadImgUrl"].as_str().unwrap().contains("&skey=@crypt_"))
    );
    let groups: Vec<&Value> = all
        .iter()
        .filter(|c| c["UserName"].as_str().unwrap().starts_with("@@"))
        .collect();
    assert_eq!(groups.len(), 8, "only saved groups");
    assert!(
        groups
            .iter()
            .all(|g| g["MemberCount"] == 0 && g["MemberList"] == json!([]))
    );
    assert_eq!(all.len(), 1 + account.contacts.len() + 8);

    // ChatSet names a group that neither init's ContactList nor getcontact has.
    let chat_set = init["ChatSet"].as_str().unwrap();
    let only_chat_set = account
        .groups
        .iter()
        .find(|g| !g.saved && !g.in_init && g.in_chat_set)
        .unwrap();
    assert!(chat_set.split(',').any(|n| n == only_chat_set.user_name));

    // An unknown seq token is a bad parameter.
    assert_eq!(s.get_contact("12345").await["BaseResponse"]["Ret"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn batchgetcontact_keeps_only_the_first_50_and_describes_members() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let account = sim.account();
    let friends: Vec<Value> = account
        .contacts
        .iter()
        .filter(|c| c.kind == SimKind::Friend)
        .take(60)
        .map(|c| json!({"UserName": c.user_name, "EncryChatRoomId": ""}))
        .collect();
    assert_eq!(friends.len(), 60);
    let r = s.batch(friends).await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    assert_eq!(r["ContactList"].as_array().unwrap().len(), 50);

    let big = &account.groups[0];
    let r = s
        .batch(vec![
            json!({"UserName": big.user_name, "ChatRoomId": ""}),
            json!({"UserName": "@@nosuchgroup", "ChatRoomId": ""}),
        ])
        .await;
    let list = r["ContactList"].as_array().unwrap();
    assert_eq!(list.len(), 1, "unknown names are left out");
    let g = &list[0];
    assert_eq!(g["MemberCount"], big.members.len());
    assert_eq!(g["MemberList"].as_array().unwrap().len(), big.members.len());
    assert_eq!(g["OwnerUin"], 0);
    let encry = g["EncryChatRoomId"].as_str().unwrap().to_string();
    assert!(encry.starts_with('@'));
    let m = &g["MemberList"][1];
    for k in [
        "Uin",
        "UserName",
        "NickName",
        "AttrStatus",
        "DisplayName",
        "KeyWord",
        "MemberStatus",
        "PYInitial",
        "RemarkPYQuanPin",
    ] {
        assert!(m.get(k).is_some(), "member field {k}");
    }
    assert!(m.get("HeadImgUrl").is_none());

    // Member details through the group's EncryChatRoomId (as ItChat does).
    let stranger = big
        .members
        .iter()
        .find(|m| !account.contacts.iter().any(|c| c.user_name == m.user_name))
        .unwrap();
    let r = s
        .batch(vec![
            json!({"UserName": stranger.user_name, "EncryChatRoomId": encry}),
        ])
        .await;
    assert_eq!(r["ContactList"][0]["UserName"], stranger.user_name);
    assert_eq!(r["ContactList"][0]["ContactFlag"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    // No cookies at all.
    let bare = Client::new();
    let r: Value = bare
        .post(format!("{}webwxinit?r=1", s.api))
        .body(json!({"BaseRequest": s.base_request()}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["BaseResponse"]["Ret"], 1101);
    // A forged wxsid cookie.
    let r: Value = bare
        .post(format!("{}webwxinit?r=1", s.api))
        .header(
            "cookie",
            format!("wxuin={}; wxsid=forged; webwx_auth_ticket=x", s.uin),
        )
        .body(json!({"BaseRequest": s.base_request()}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["BaseResponse"]["Ret"], 1101);
    // Right cookies, wrong Sid.
    let mut br = s.base_request();
    br["Sid"] = json!("wrongsid");
    let r = s.post("webwxinit", "r=1", json!({"BaseRequest": br})).await;
    assert_eq!(r["BaseResponse"]["Ret"], 1100);
    // Uin as a string, empty Skey and a junk pass_ticket all work in desktop mode.
    let mut br = s.base_request();
    br["Uin"] = json!(s.uin);
    br["Skey"] = json!("");
    let r = s
        .post(
            "webwxinit",
            "r=1&pass_ticket=e1234",
            json!({"BaseRequest": br}),
        )
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    // A wrong non-empty Skey does not.
    let mut br = s.base_request();
    br["Skey"] = json!("@crypt_00000000_bad");
    let r = s.post("webwxinit", "r=1", json!({"BaseRequest": br})).await;
    assert_eq!(r["BaseResponse"]["Ret"], 1100);
    // synccheck with a foreign sid.
    let mut other = login_like(&s);
    other.sid = "nope".into();
    let init = s.init().await;
    assert_eq!(other.synccheck(&init["SyncKey"]).await.0, "1101");
    sim.shutdown().await;
}

fn login_like(s: &Session) -> Session {
    Session {
        client: s.client.clone(),
        api: s.api.clone(),
        skey: s.skey.clone(),
        sid: s.sid.clone(),
        uin: s.uin.clone(),
        pass_ticket: s.pass_ticket.clone(),
    }
}

#[tokio::test]
async fn a_change_is_announced_by_synccheck_and_delivered_by_webwxsync() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let init = s.init().await;
    let key0 = init["SyncKey"].clone();

    // Nothing pending: synccheck holds for long_poll, then selector 0.
    let t = Instant::now();
    assert_eq!(s.synccheck(&key0).await, ("0".into(), "0".into()));
    assert!(t.elapsed() >= Duration::from_millis(700));

    let account = sim.account();
    let friend = account
        .contacts
        .iter()
        .find(|c| c.kind == SimKind::Friend)
        .unwrap();
    sim.rename(
        &friend.user_name,
        "新名字<span class=\"emoji emoji1f604\"></span>",
    );
    let (ret, selector) = s.synccheck(&key0).await;
    assert_eq!(ret, "0");
    assert_ne!(selector, "0");

    let r = s.sync(&key0).await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    let mods = r["ModContactList"].as_array().unwrap();
    assert_eq!(mods.len(), 1);
    assert_eq!(mods[0]["UserName"], friend.user_name);
    assert_eq!(
        mods[0]["NickName"],
        "新名字<span class=\"emoji emoji1f604\"></span>"
    );
    assert_ne!(r["SyncKey"], r["SyncCheckKey"]);
    let key1 = r["SyncKey"].clone();
    let check1 = r["SyncCheckKey"].clone();

    // Delivered once: the new keys see nothing more.
    let again = s.sync(&key1).await;
    assert_eq!(again["ModContactCount"], 0);
    assert_eq!(s.synccheck(&check1).await.1, "0");
    // Re-sending the old key replays it.
    let replay = s.sync(&key0).await;
    assert_eq!(replay["ModContactCount"], 1);

    // Group membership changes arrive as the group with its full member list.
    let group = &account.groups[1];
    let joined = sim.member_joins(&group.user_name, "新人");
    sim.remove_contact(&friend.user_name);
    let (_, selector) = s.synccheck(&check1).await;
    assert_eq!(selector, "2");
    let r = s.sync(&key1).await;
    let g = r["ModContactList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["UserName"] == group.user_name)
        .unwrap();
    assert_eq!(g["MemberCount"], group.members.len() + 1);
    assert!(
        g["MemberList"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["UserName"] == joined)
    );
    assert_eq!(
        r["DelContactList"],
        json!([{"UserName": friend.user_name, "ContactFlag": 0}])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn oplog_sets_a_remark_that_comes_back_escaped() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let account = sim.account();
    let friend = account
        .contacts
        .iter()
        .find(|c| c.kind == SimKind::Friend)
        .unwrap();
    let oplog = |user: &str, remark: &str| json!({"BaseRequest": s.base_request(), "CmdId": 2, "RemarkName": remark, "UserName": user});
    let q = format!("lang=zh_CN&pass_ticket={}", s.pass_ticket);
    let r = s
        .post("webwxoplog", &q, oplog(&friend.user_name, "Tom & Jerry 😀"))
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    let back = s
        .batch(vec![
            json!({"UserName": friend.user_name, "EncryChatRoomId": ""}),
        ])
        .await;
    assert_eq!(
        back["ContactList"][0]["RemarkName"],
        "Tom &amp; Jerry <span class=\"emoji emoji1f600\"></span>"
    );
    // Not a friend: Ret 1.
    let r = s
        .post("webwxoplog", &q, oplog(&account.groups[0].user_name, "x"))
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 1);
    // The live behaviour: Ret 0 and nothing changes.
    sim.set_oplog_ignores(true);
    let r = s
        .post("webwxoplog", &q, oplog(&friend.user_name, "ignored"))
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    assert_eq!(
        sim.account()
            .contacts
            .iter()
            .find(|c| c.user_name == friend.user_name)
            .unwrap()
            .remark_name,
        "Tom &amp; Jerry <span class=\"emoji emoji1f600\"></span>"
    );
    sim.set_oplog_ignores(false);
    // Pin without RemarkName erases the remark.
    let r = s
        .post(
            "webwxoplog",
            &q,
            json!({"BaseRequest": s.base_request(), "CmdId": 3, "OP": 1, "UserName": friend.user_name}),
        )
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    let c = sim.account();
    let c = c
        .contacts
        .iter()
        .find(|c| c.user_name == friend.user_name)
        .unwrap();
    assert_eq!(c.remark_name, "");
    assert_ne!(c.contact_flag & 2048, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults_of_every_kind() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    assert_eq!(s.init().await["BaseResponse"]["Ret"], 0);

    sim.fail(Endpoint::GetContact, Fault::Http(502), 1);
    let r = s
        .client
        .get(format!(
            "{}webwxgetcontact?r=1&seq=0&skey={}",
            s.api, s.skey
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);

    sim.fail(
        Endpoint::GetContact,
        Fault::Delay(Duration::from_millis(300)),
        1,
    );
    let t = Instant::now();
    assert_eq!(s.get_contact("0").await["BaseResponse"]["Ret"], 0);
    assert!(t.elapsed() >= Duration::from_millis(300));

    sim.fail(Endpoint::GetContact, Fault::Truncated, 1);
    let text = s
        .client
        .get(format!(
            "{}webwxgetcontact?r=1&seq=0&skey={}",
            s.api, s.skey
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());

    sim.fail(Endpoint::BatchGetContact, Fault::Ret(1205), 2);
    assert_eq!(s.batch(vec![]).await["BaseResponse"]["Ret"], 1205);
    assert_eq!(s.batch(vec![]).await["BaseResponse"]["Ret"], 1205);
    assert_eq!(s.batch(vec![]).await["BaseResponse"]["Ret"], 0);

    // Ret 1101 ends the session for every later call.
    sim.fail(Endpoint::Sync, Fault::Ret(1101), 1);
    let key = s.init().await["SyncKey"].clone();
    assert_eq!(s.sync(&key).await["BaseResponse"]["Ret"], 1101);
    assert_eq!(s.init().await["BaseResponse"]["Ret"], 1101);
    assert_eq!(s.synccheck(&key).await.0, "1101");

    let calls = sim.calls();
    let sync_call = calls.iter().find(|c| c.endpoint == Endpoint::Sync).unwrap();
    assert_eq!(sync_call.ret, Some(1101));
    assert!(sync_call.cookies.contains("wxsid="));
    assert!(
        calls
            .iter()
            .any(|c| c.endpoint == Endpoint::GetContact && c.status == 502)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn force_logout_kills_the_session() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let key = s.init().await["SyncKey"].clone();
    let sc = {
        let s2 = login_like(&s);
        let key = key.clone();
        tokio::spawn(async move { s2.synccheck(&key).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.force_logout(1102);
    assert_eq!(sc.await.unwrap(), ("1102".into(), "0".into()));
    assert_eq!(s.get_contact("0").await["BaseResponse"]["Ret"], 1102);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_barred_account_gets_ret_1203() {
    let sim = start(small()).await;
    let base = sim.base_url().to_string();

    // Desktop mode without the extspam header.
    let client = jar_client();
    let uuid = jslogin(&client, &base, true).await;
    let (_, redirect) = wait_for_redirect(&client, &base, &uuid).await;
    let r = desktop_ticket(&client, &redirect, None).await;
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert!(r.headers().get("set-cookie").is_none());
    let xml = r.text().await.unwrap();
    assert_eq!(xml_field(&xml, "ret"), "1203");
    assert!(xml_field(&xml, "message").starts_with("为了你的帐号安全"));

    // The fault, with the right headers.
    sim.fail(Endpoint::NewLoginPage, Fault::LoginRet(1203), 1);
    let uuid = jslogin(&client, &base, true).await;
    let (_, redirect) = wait_for_redirect(&client, &base, &uuid).await;
    let r = desktop_ticket(&client, &redirect, Some(UOS_EXTSPAM)).await;
    assert_eq!(xml_field(&r.text().await.unwrap(), "ret"), "1203");
    // A ticket is good once.
    let r = desktop_ticket(&client, &redirect, Some(UOS_EXTSPAM)).await;
    assert_ne!(xml_field(&r.text().await.unwrap(), "ret"), "0");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_mode_answers_200_and_checks_pass_ticket() {
    let sim = start(small()).await;
    let base = sim.base_url().to_string();
    let client = jar_client();
    let uuid = jslogin(&client, &base, false).await;
    let (_, redirect) = wait_for_redirect(&client, &base, &uuid).await;
    let r = client
        .get(format!("{redirect}&fun=new&version=v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let xml = r.text().await.unwrap();
    let s = Session {
        client,
        api: redirect[..redirect.rfind('/').unwrap() + 1].to_string(),
        skey: xml_field(&xml, "skey"),
        sid: xml_field(&xml, "wxsid"),
        uin: xml_field(&xml, "wxuin"),
        pass_ticket: xml_field(&xml, "pass_ticket"),
    };
    // Raw (already encoded) and encoded once more are both fine; junk is not.
    assert_eq!(s.init().await["BaseResponse"]["Ret"], 0);
    let twice = s.pass_ticket.replace('%', "%25");
    let r = s
        .post(
            "webwxinit",
            &format!("r=1&pass_ticket={twice}"),
            json!({"BaseRequest": s.base_request()}),
        )
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    let r = s
        .post(
            "webwxinit",
            "r=1&pass_ticket=junk",
            json!({"BaseRequest": s.base_request()}),
        )
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 1100);
    sim.shutdown().await;
}

#[tokio::test]
async fn manual_login_waits_for_the_phone_and_new_logins_rename_everyone() {
    let sim = start(SimConfig {
        auto_confirm: false,
        long_poll: Duration::from_millis(300),
        ..small()
    })
    .await;
    let base = sim.base_url().to_string();
    let client = jar_client();
    let uuid = jslogin(&client, &base, true).await;
    assert_eq!(poll(&client, &base, &uuid).await.0, 408);
    sim.scan();
    assert_eq!(poll(&client, &base, &uuid).await.0, 201);
    sim.confirm();
    let (code, redirect) = poll(&client, &base, &uuid).await;
    assert_eq!(code, 200);
    assert_eq!(poll(&client, &base, "nosuchuuid").await.0, 400);
    let r = client
        .get(format!("{}&fun=new&version=v2", redirect.unwrap()))
        .header("client-version", "2.0.0")
        .header("extspam", UOS_EXTSPAM)
        .send()
        .await
        .unwrap();
    assert_eq!(xml_field(&r.text().await.unwrap(), "ret"), "0");

    // Over the control API too.
    let before = sim.account();
    let uuid = jslogin(&client, &base, true).await;
    let r = client
        .post(format!("{base}__sim/confirm"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (_, redirect) = poll(&client, &base, &uuid).await;
    client
        .get(format!("{}&fun=new&version=v2", redirect.unwrap()))
        .header("client-version", "2.0.0")
        .header("extspam", UOS_EXTSPAM)
        .send()
        .await
        .unwrap();
    let after: Value = client
        .get(format!("{base}__sim/account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(after["self_user"]["user_name"], before.self_user.user_name);
    assert_eq!(after["self_user"]["nick_name"], before.self_user.nick_name);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_big_account_is_served_quickly() {
    let sim = start(SimConfig {
        friends: 5000,
        saved_groups: 150,
        unsaved_groups: 50,
        page_size: 1000,
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let t = Instant::now();
    s.init().await;
    let mut seq = "0".to_string();
    let mut n = 0;
    loop {
        let page = s.get_contact(&seq).await;
        n += page["MemberCount"].as_u64().unwrap();
        seq = page["Seq"].to_string();
        if seq == "0" {
            break;
        }
    }
    let groups: Vec<Value> = sim
        .account()
        .groups
        .iter()
        .map(|g| json!({"UserName": g.user_name, "ChatRoomId": ""}))
        .collect();
    for chunk in groups.chunks(50) {
        let r = s.batch(chunk.to_vec()).await;
        assert_eq!(r["ContactList"].as_array().unwrap().len(), chunk.len());
    }
    let took = t.elapsed();
    assert!(n > 5000);
    eprintln!("full sync of 5000 friends + 200 groups: {took:?}");
    // Debug build, client parsing included; release is several times faster.
    assert!(took < Duration::from_secs(10), "{took:?}");
    sim.shutdown().await;
}
