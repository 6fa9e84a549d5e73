//! The simulator driven by hand with reqwest (never the wxsync client), the
//! way a careful desktop-mode client talks to the real servers.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use regex::Regex;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use wxsync::simulator::{
    Account, Call, ChurnReport, Endpoint, Fault, PushLogin, SimConfig, SimKind, Simulator,
    StatusNotify, UOS_EXTSPAM,
};

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
        ..SimConfig::default()
    }
}

/// A phone that waits to be told to scan and confirm; short holds.
fn manual() -> SimConfig {
    SimConfig {
        auto_confirm: false,
        long_poll: Duration::from_millis(300),
        ..small()
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

    /// webwxsync from `key` until ContinueFlag is 0: every AddMsg, ModContact
    /// and DelContact record pending, in order.
    async fn drain(&self, key: &Value) -> Drained {
        let mut key = key.clone();
        let mut out = Drained::default();
        loop {
            let r = self.sync(&key).await;
            assert_eq!(r["BaseResponse"]["Ret"], 0);
            for (list, into) in [
                ("AddMsgList", &mut out.msgs),
                ("ModContactList", &mut out.mods),
                ("DelContactList", &mut out.dels),
            ] {
                into.extend(r[list].as_array().unwrap().iter().cloned());
            }
            key = r["SyncKey"].clone();
            if r["ContinueFlag"] == 0 {
                return out;
            }
        }
    }

    /// Every webwxgetcontact page, concatenated.
    async fn all_contacts(&self) -> Vec<Value> {
        let mut seq = "0".to_string();
        let mut all = Vec::new();
        loop {
            let page = self.get_contact(&seq).await;
            assert_eq!(page["BaseResponse"]["Ret"], 0);
            all.extend(page["MemberList"].as_array().unwrap().iter().cloned());
            seq = page["Seq"].to_string();
            if seq == "0" {
                return all;
            }
        }
    }

    /// These groups with their members, by batchgetcontact in chunks of 50.
    async fn groups(&self, names: &[String]) -> Vec<Value> {
        let mut out = Vec::new();
        for chunk in names.chunks(50) {
            let list = chunk
                .iter()
                .map(|n| json!({"UserName": n, "EncryChatRoomId": ""}))
                .collect();
            let r = self.batch(list).await;
            out.extend(r["ContactList"].as_array().unwrap().iter().cloned());
        }
        out
    }

    /// webwxstatusnotify Code 3, as clients send it after init.
    async fn status_notify(&self, me: &str) -> Value {
        self.post(
            "webwxstatusnotify",
            &format!("lang=zh_CN&pass_ticket={}", self.pass_ticket),
            json!({"BaseRequest": self.base_request(), "Code": 3, "FromUserName": me,
                   "ToUserName": me, "ClientMsgId": now_ms() as u64}),
        )
        .await
    }
}

#[derive(Default)]
struct Drained {
    msgs: Vec<Value>,
    mods: Vec<Value>,
    dels: Vec<Value>,
}

/// Polls the simulator's call log until the `n`th call (from 0) to `endpoint` is in it.
async fn wait_for_call(sim: &Simulator, endpoint: Endpoint, n: usize) -> Call {
    for _ in 0..1000 {
        let call = sim
            .calls()
            .into_iter()
            .filter(|c| c.endpoint == endpoint)
            .nth(n);
        if let Some(call) = call {
            return call;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no call {n} to {endpoint:?}: {:?}", sim.calls());
}

fn count_calls(sim: &Simulator, endpoint: Endpoint) -> usize {
    sim.calls()
        .iter()
        .filter(|c| c.endpoint == endpoint)
        .count()
}

/// The `seq` of a HeadImgUrl.
fn avatar_seq(head_img_url: &Value) -> u64 {
    let url = head_img_url.as_str().unwrap();
    Regex::new(r"[?&]seq=(\d+)")
        .unwrap()
        .captures(url)
        .expect(url)[1]
        .parse()
        .unwrap()
}

fn group_names(a: &Account) -> Vec<String> {
    a.groups.iter().map(|g| g.user_name.clone()).collect()
}

/// Every UserName of an account (self, contacts, groups, members) by sim id.
fn names_by_sim_id(a: &Account) -> HashMap<u64, String> {
    let mut names = HashMap::new();
    names.insert(a.self_user.sim_id, a.self_user.user_name.clone());
    for c in &a.contacts {
        names.insert(c.sim_id, c.user_name.clone());
    }
    for g in &a.groups {
        names.insert(g.sim_id, g.user_name.clone());
        for m in &g.members {
            names.insert(m.sim_id, m.user_name.clone());
        }
    }
    names
}

/// Real id by UserName, for everyone in the account.
fn real_ids(a: &Account) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    ids.insert(a.self_user.user_name.clone(), a.self_user.real_id.clone());
    for c in &a.contacts {
        ids.insert(c.user_name.clone(), c.real_id.clone());
    }
    for g in &a.groups {
        ids.insert(g.user_name.clone(), g.real_id.clone());
        for m in &g.members {
            ids.insert(m.user_name.clone(), m.real_id.clone());
        }
    }
    ids
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
    ticket_session(client, &redirect).await
}

/// The desktop-mode ticket step on a confirmed redirect, checked, as a session.
async fn ticket_session(client: Client, redirect: &str) -> Session {
    let r = desktop_ticket(&client, redirect, Some(UOS_EXTSPAM)).await;
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

/// Starts a synccheck on `key` and returns once the simulator holds it
/// (its call is logged and still unanswered).
async fn held_synccheck(
    sim: &Simulator,
    s: &Session,
    key: &Value,
) -> tokio::task::JoinHandle<(String, String)> {
    let before = count_calls(sim, Endpoint::SyncCheck);
    let poll = {
        let s = login_like(s);
        let key = key.clone();
        tokio::spawn(async move { s.synccheck(&key).await })
    };
    let held = wait_for_call(sim, Endpoint::SyncCheck, before).await;
    assert_eq!(held.status, 0, "synccheck answered at once: {held:?}");
    poll
}

#[tokio::test]
async fn synccheck_answers_selector_0_when_its_hold_runs_out() {
    let sim = start(SimConfig {
        long_poll: Duration::from_millis(200),
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let key = s.init().await["SyncKey"].clone();
    assert_eq!(s.synccheck(&key).await, ("0".into(), "0".into()));
    let call = sim
        .calls()
        .into_iter()
        .find(|c| c.endpoint == Endpoint::SyncCheck)
        .unwrap();
    assert_eq!((call.status, call.ret), (200, Some(0)));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_change_is_announced_by_synccheck_and_delivered_by_webwxsync() {
    // A hold far longer than the test: a synccheck answers only because of a change.
    let sim = start(SimConfig {
        long_poll: Duration::from_secs(60),
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let init = s.init().await;
    let key0 = init["SyncKey"].clone();

    // Nothing pending: synccheck holds until something changes.
    let held = held_synccheck(&sim, &s, &key0).await;
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
    let (ret, selector) = held.await.unwrap();
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

    // Delivered once: the new keys see nothing more (synccheck holds again).
    let again = s.sync(&key1).await;
    assert_eq!(again["ModContactCount"], 0);
    let held = held_synccheck(&sim, &s, &check1).await;
    // Re-sending the old key replays it.
    let replay = s.sync(&key0).await;
    assert_eq!(replay["ModContactCount"], 1);

    // Group membership changes arrive as the group with its full member list.
    let group = &account.groups[1];
    let joined = sim.member_joins(&group.user_name, "新人");
    sim.remove_contact(&friend.user_name);
    let (_, selector) = held.await.unwrap();
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
async fn status_delay_truncation_and_ret_faults() {
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

    // A delay past the client's timeout; the call after it is answered.
    sim.fail(
        Endpoint::GetContact,
        Fault::Delay(Duration::from_secs(2)),
        1,
    );
    let late = s
        .client
        .get(format!(
            "{}webwxgetcontact?r=1&seq=0&skey={}",
            s.api, s.skey
        ))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(late.unwrap_err().is_timeout());
    assert_eq!(s.get_contact("0").await["BaseResponse"]["Ret"], 0);

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
    let sim = start(SimConfig {
        long_poll: Duration::from_secs(60),
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let key = s.init().await["SyncKey"].clone();
    let sc = held_synccheck(&sim, &s, &key).await;
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
async fn manual_login_waits_for_the_phone_or_the_control_api() {
    let sim = start(manual()).await;
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

    // Over the control API too: a second login, so the self user has a new name.
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
async fn a_big_account_is_served_whole() {
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
    let listed = s.all_contacts().await;
    let account = sim.account();
    let names = group_names(&account);
    let groups = s.groups(&names).await;
    eprintln!(
        "full fetch of 5000 friends + 200 groups (debug build, parsing included): {:?}",
        t.elapsed()
    );
    assert_eq!(listed.len(), 1 + account.contacts.len() + 150);
    assert_eq!(groups.len(), 200);
    for (g, want) in groups.iter().zip(&account.groups) {
        assert_eq!(g["UserName"], want.user_name);
        assert_eq!(g["MemberCount"], want.members.len());
        assert_eq!(
            g["MemberList"].as_array().unwrap().len(),
            want.members.len()
        );
    }
    sim.shutdown().await;
}

// ---- identity across logins ----

#[tokio::test]
async fn a_new_login_reissues_every_name_and_room_id_but_keeps_avatar_seqs() {
    let sim = start(small()).await;
    let s1 = login(&sim).await;
    s1.init().await;
    let before = sim.account();
    let seqs1: HashMap<String, u64> = s1
        .all_contacts()
        .await
        .iter()
        .map(|c| {
            (
                c["UserName"].as_str().unwrap().to_string(),
                avatar_seq(&c["HeadImgUrl"]),
            )
        })
        .collect();
    let groups1 = s1.groups(&group_names(&before)).await;
    let strangers1 = member_seqs(&s1, &before, &groups1[0]).await;

    let s2 = login(&sim).await;
    let init2 = s2.init().await;
    let after = sim.account();

    // Every UserName is new, self and group members included; specials keep theirs.
    let (old, new) = (names_by_sim_id(&before), names_by_sim_id(&after));
    assert_eq!(old.len(), new.len());
    let specials: HashSet<u64> = after
        .contacts
        .iter()
        .filter(|c| c.kind == SimKind::Special)
        .map(|c| c.sim_id)
        .collect();
    assert!(!specials.is_empty());
    for (id, name) in &old {
        if specials.contains(id) {
            assert_eq!(&new[id], name);
        } else {
            assert_ne!(&new[id], name, "sim id {id} kept {name}");
        }
    }
    assert_eq!(init2["User"]["UserName"], after.self_user.user_name);
    assert!(
        after
            .groups
            .iter()
            .all(|g| g.members.iter().any(|m| m.sim_id == after.self_user.sim_id))
    );

    // Every group has a new EncryChatRoomId; the wire has the new names everywhere.
    let groups2 = s2.groups(&group_names(&after)).await;
    assert_eq!(groups1.len(), before.groups.len());
    for ((g1, g2), truth) in groups1.iter().zip(&groups2).zip(&after.groups) {
        assert_ne!(g1["EncryChatRoomId"], g2["EncryChatRoomId"]);
        assert_eq!(g2["EncryChatRoomId"], truth.encry_chat_room_id);
        let wire: Vec<&Value> = g2["MemberList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["UserName"])
            .collect();
        let want: Vec<&String> = truth.members.iter().map(|m| &m.user_name).collect();
        assert_eq!(wire, want);
    }

    // The avatar seq stays with the person, not with the name.
    let by_old_name: HashMap<&String, u64> = old.iter().map(|(id, n)| (n, *id)).collect();
    let seq_of_sim_id: HashMap<u64, u64> = seqs1
        .iter()
        .map(|(name, seq)| (by_old_name[name], *seq))
        .collect();
    let listed2 = s2.all_contacts().await;
    assert_eq!(listed2.len(), seqs1.len());
    let by_new_name: HashMap<&String, u64> = new.iter().map(|(id, n)| (n, *id)).collect();
    for c in &listed2 {
        let id = by_new_name[&c["UserName"].as_str().unwrap().to_string()];
        assert_eq!(avatar_seq(&c["HeadImgUrl"]), seq_of_sim_id[&id]);
    }
    for c in after.contacts.iter().chain([&after.self_user]) {
        let was = before
            .contacts
            .iter()
            .chain([&before.self_user])
            .find(|b| b.sim_id == c.sim_id)
            .unwrap();
        assert_eq!((c.avatar_seq, &c.real_id), (was.avatar_seq, &was.real_id));
    }
    for (g1, g2) in groups1.iter().zip(&groups2) {
        assert_eq!(avatar_seq(&g1["HeadImgUrl"]), avatar_seq(&g2["HeadImgUrl"]));
    }
    // Members who are not contacts, described through their group.
    let strangers2 = member_seqs(&s2, &after, &groups2[0]).await;
    assert!(strangers1.len() > 10);
    assert_eq!(strangers1, strangers2);

    // Names from the first login mean nothing to the second.
    let friend = before
        .contacts
        .iter()
        .find(|c| c.kind == SimKind::Friend)
        .unwrap();
    let r = s2
        .batch(vec![
            json!({"UserName": friend.user_name, "EncryChatRoomId": ""}),
        ])
        .await;
    assert_eq!(r["Count"], 0);
    sim.shutdown().await;
}

/// Avatar seq by sim id of the first 50 members of wire group `g` who are
/// not contacts, described through the group (member details).
async fn member_seqs(s: &Session, a: &Account, g: &Value) -> HashMap<u64, u64> {
    let list = g["MemberList"]
        .as_array()
        .unwrap()
        .iter()
        .take(50)
        .map(|m| json!({"UserName": m["UserName"], "EncryChatRoomId": g["EncryChatRoomId"]}))
        .collect();
    let by_name: HashMap<String, u64> = names_by_sim_id(a)
        .into_iter()
        .map(|(id, n)| (n, id))
        .collect();
    s.batch(list).await["ContactList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ContactFlag"] == 0)
        .map(|c| {
            (
                by_name[c["UserName"].as_str().unwrap()],
                avatar_seq(&c["HeadImgUrl"]),
            )
        })
        .collect()
}

/// A person's visible state in an account: contact record or, for a
/// stranger, their nick in the first group that lists them.
fn nick_of(a: &Account, id: u64) -> Option<String> {
    a.contacts
        .iter()
        .chain([&a.self_user])
        .find(|c| c.sim_id == id)
        .map(|c| c.nick_name.clone())
        .or_else(|| {
            a.groups
                .iter()
                .flat_map(|g| &g.members)
                .find(|m| m.sim_id == id)
                .map(|m| m.nick_name.clone())
        })
}

fn member_of(a: &Account, group: u64, member: u64) -> Option<&wxsync::simulator::SimMember> {
    a.groups
        .iter()
        .find(|g| g.sim_id == group)?
        .members
        .iter()
        .find(|m| m.sim_id == member)
}

#[tokio::test]
async fn churn_changes_every_kind_and_a_live_session_sees_it() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let key = s.init().await["SyncKey"].clone();
    let before = sim.account();
    let report = sim.churn(0.2, 5);
    for (kind, n) in report.counts() {
        assert!(n > 0, "no {kind} at 20 % churn: {report:?}");
    }
    let after = sim.account();
    let contact = |a: &Account, id: u64| a.contacts.iter().find(|c| c.sim_id == id).cloned();
    let group = |a: &Account, id: u64| a.groups.iter().find(|g| g.sim_id == id).cloned();

    for id in &report.renamed {
        assert_ne!(nick_of(&before, *id), nick_of(&after, *id), "renamed {id}");
        assert!(nick_of(&after, *id).is_some());
    }
    let mut faces = 0;
    for id in &report.new_avatar {
        let seqs = match (contact(&before, *id), contact(&after, *id)) {
            (Some(b), Some(a)) => Some((b.avatar_seq, a.avatar_seq)),
            _ => group(&before, *id)
                .zip(group(&after, *id))
                .map(|(b, a)| (b.avatar_seq, a.avatar_seq)),
        };
        if let Some((b, a)) = seqs {
            assert_ne!(b, a, "new avatar {id}");
            faces += 1;
        }
    }
    assert!(faces > 0);
    for id in &report.remark_set {
        assert_eq!(contact(&before, *id).unwrap().remark_name, "");
        assert_ne!(contact(&after, *id).unwrap().remark_name, "");
    }
    for id in &report.remark_changed {
        let (b, a) = (
            contact(&before, *id).unwrap(),
            contact(&after, *id).unwrap(),
        );
        assert!(!b.remark_name.is_empty() && !a.remark_name.is_empty());
        assert_ne!(b.remark_name, a.remark_name);
    }
    for id in &report.remark_cleared {
        assert_ne!(contact(&before, *id).unwrap().remark_name, "");
        assert_eq!(contact(&after, *id).unwrap().remark_name, "");
    }
    for id in &report.friends_added {
        assert_eq!(contact(&after, *id).unwrap().kind, SimKind::Friend);
        assert!(contact(&before, *id).is_none_or(|c| c.kind != SimKind::Friend));
    }
    for id in &report.friends_removed {
        assert_eq!(contact(&before, *id).unwrap().kind, SimKind::Friend);
        assert!(contact(&after, *id).is_none());
    }
    // A removed friend stays in their groups, as a stranger.
    assert!(report.friends_removed.iter().any(|id| {
        after
            .groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.sim_id == *id))
    }));
    for (g, m) in &report.members_joined {
        assert!(member_of(&before, *g, *m).is_none());
        assert!(member_of(&after, *g, *m).is_some());
    }
    for (g, m) in &report.members_left {
        assert!(member_of(&before, *g, *m).is_some());
        assert!(member_of(&after, *g, *m).is_none(), "{g}/{m} still there");
    }
    for (g, m) in &report.display_name_changed {
        let (b, a) = (
            member_of(&before, *g, *m).unwrap(),
            member_of(&after, *g, *m).unwrap(),
        );
        assert_ne!(b.display_name, a.display_name);
    }
    for id in &report.groups_renamed {
        assert_ne!(
            group(&before, *id).unwrap().nick_name,
            group(&after, *id).unwrap().nick_name
        );
    }
    for id in &report.groups_created {
        assert!(group(&before, *id).is_none() && group(&after, *id).is_some());
    }
    for id in &report.groups_removed {
        assert!(group(&before, *id).is_some() && group(&after, *id).is_none());
    }

    // The live session gets it all through webwxsync.
    assert!(check_delivery(&report, &before, &after, &s.drain(&key).await) > 50);

    // And the next login starts from the churned world.
    let s2 = login(&sim).await;
    let next = sim.account();
    let listed: HashSet<String> = s2
        .all_contacts()
        .await
        .iter()
        .map(|c| c["UserName"].as_str().unwrap().to_string())
        .collect();
    let now = names_by_sim_id(&next);
    for id in &report.friends_added {
        assert!(listed.contains(&now[id]));
    }
    for id in &report.friends_removed {
        assert!(now.get(id).is_none_or(|n| !listed.contains(n)));
    }
    sim.shutdown().await;
}

/// Checks that webwxsync delivered a churn: a Del for each removed friend
/// and group, and for each changed contact or group a last Mod record that
/// is what the account now holds. Returns how many records it checked.
fn check_delivery(report: &ChurnReport, before: &Account, after: &Account, got: &Drained) -> usize {
    let contact = |a: &Account, id: u64| a.contacts.iter().find(|c| c.sim_id == id).cloned();
    let group = |a: &Account, id: u64| a.groups.iter().find(|g| g.sim_id == id).cloned();
    let mut last: HashMap<&str, &Value> = HashMap::new();
    for m in &got.mods {
        last.insert(m["UserName"].as_str().unwrap(), m);
    }
    let deleted: HashSet<&str> = got
        .dels
        .iter()
        .map(|m| m["UserName"].as_str().unwrap())
        .collect();
    let name = |id: &u64| {
        names_by_sim_id(after)
            .get(id)
            .cloned()
            .or_else(|| names_by_sim_id(before).get(id).cloned())
            .unwrap()
    };
    for id in report.friends_removed.iter().chain(&report.groups_removed) {
        assert!(deleted.contains(name(id).as_str()), "Del for {id}");
    }
    let people = report
        .renamed
        .iter()
        .chain(&report.new_avatar)
        .chain(&report.remark_set)
        .chain(&report.remark_changed)
        .chain(&report.remark_cleared)
        .chain(&report.signature_changed)
        .chain(&report.friends_added);
    let mut checked = 0;
    for c in people.filter_map(|id| contact(after, *id)) {
        let rec = last
            .get(c.user_name.as_str())
            .unwrap_or_else(|| panic!("no Mod for {}", c.sim_id));
        assert_eq!(rec["NickName"], c.nick_name);
        assert_eq!(rec["RemarkName"], c.remark_name);
        assert_eq!(rec["Signature"], c.signature);
        assert_eq!(avatar_seq(&rec["HeadImgUrl"]), c.avatar_seq);
        checked += 1;
    }
    let touched_groups = report
        .groups_renamed
        .iter()
        .chain(&report.groups_created)
        .chain(&report.new_avatar)
        .copied()
        .chain(report.members_joined.iter().map(|(g, _)| *g))
        .chain(report.members_left.iter().map(|(g, _)| *g))
        .chain(report.display_name_changed.iter().map(|(g, _)| *g));
    for g in touched_groups.filter_map(|id| group(after, id)) {
        let rec = last
            .get(g.user_name.as_str())
            .unwrap_or_else(|| panic!("no Mod for group {}", g.sim_id));
        assert_eq!(rec["NickName"], g.nick_name);
        assert_eq!(avatar_seq(&rec["HeadImgUrl"]), g.avatar_seq);
        let wire: Vec<(&Value, &Value, &Value)> = rec["MemberList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (&m["UserName"], &m["NickName"], &m["DisplayName"]))
            .collect();
        let want: Vec<(Value, Value, Value)> = g
            .members
            .iter()
            .map(|m| {
                (
                    json!(m.user_name),
                    json!(m.nick_name),
                    json!(m.display_name),
                )
            })
            .collect();
        assert_eq!(
            wire,
            want.iter().map(|(a, b, c)| (a, b, c)).collect::<Vec<_>>()
        );
        checked += 1;
    }
    // A renamed stranger shows in every group that lists them.
    for id in &report.renamed {
        if contact(after, *id).is_none() {
            for g in after
                .groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m.sim_id == *id))
            {
                let rec = last
                    .get(g.user_name.as_str())
                    .unwrap_or_else(|| panic!("no Mod for group {}", g.sim_id));
                let nick = nick_of(after, *id).unwrap();
                assert!(
                    rec["MemberList"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|m| m["UserName"] == name(id) && m["NickName"] == nick)
                );
                checked += 1;
            }
        }
    }
    checked
}

#[tokio::test]
async fn churn_at_a_low_rate_delivers_each_change() {
    // Many groups, few changes: most changed groups and strangers are touched
    // by one change only, so each kind must queue its own record.
    let sim = start(SimConfig {
        friends: 400,
        saved_groups: 150,
        unsaved_groups: 50,
        max_group_members: 60,
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let key = s.init().await["SyncKey"].clone();
    let before = sim.account();
    let report = sim.churn(0.01, 21);
    let after = sim.account();
    assert!(check_delivery(&report, &before, &after, &s.drain(&key).await) > 100);
    sim.shutdown().await;
}

#[tokio::test]
async fn churn_is_the_same_for_the_same_seed() {
    let (a, b) = (start(small()).await, start(small()).await);
    let (ra, rb) = (a.churn(0.05, 77), b.churn(0.05, 77));
    assert_eq!(ra, rb);
    assert!(ra.total() > 0);
    assert_eq!(a.account(), b.account());
    assert_ne!(a.churn(0.05, 78), b.churn(0.05, 79));
    // Rate 0 changes nothing.
    let before = a.account();
    assert_eq!(a.churn(0.0, 1).total(), 0);
    assert_eq!(a.account(), before);
    a.shutdown().await;
    b.shutdown().await;
}

/// A wire record without what differs between two people by construction:
/// the session name (also inside HeadImgUrl).
fn without_name(record: &Value) -> Value {
    let mut r = record.clone();
    let name = r["UserName"].as_str().unwrap().to_string();
    r["UserName"] = json!("");
    if let Some(url) = r.get("HeadImgUrl").and_then(Value::as_str) {
        r["HeadImgUrl"] = json!(url.replace(&name, ""));
    }
    r
}

#[tokio::test]
async fn lookalike_friends_differ_only_in_their_real_id() {
    let sim = start(SimConfig {
        lookalikes: 4,
        ..small()
    })
    .await;
    let s = login(&sim).await;
    s.init().await;
    let account = sim.account();
    assert_eq!(account.lookalikes.len(), 4);
    let listed: HashMap<String, Value> = s
        .all_contacts()
        .await
        .into_iter()
        .map(|c| (c["UserName"].as_str().unwrap().to_string(), c))
        .collect();
    let names = group_names(&account);
    let groups = s.groups(&names).await;
    let mut shared_groups = 0;
    for (a, b) in &account.lookalikes {
        let find = |id: &u64| account.contacts.iter().find(|c| c.sim_id == *id).unwrap();
        let (ca, cb) = (find(a), find(b));
        assert_eq!(ca.kind, SimKind::Friend);
        assert_ne!(ca.real_id, cb.real_id);
        assert_ne!(ca.user_name, cb.user_name);
        assert_eq!(ca.user_name.len(), cb.user_name.len());
        // getcontact and batchgetcontact describe them identically.
        assert_eq!(
            without_name(&listed[&ca.user_name]),
            without_name(&listed[&cb.user_name])
        );
        let r = s
            .batch(vec![
                json!({"UserName": ca.user_name, "EncryChatRoomId": ""}),
                json!({"UserName": cb.user_name, "EncryChatRoomId": ""}),
            ])
            .await;
        assert_eq!(
            without_name(&r["ContactList"][0]),
            without_name(&r["ContactList"][1])
        );
        // In the same groups, under the same card, or in none.
        for g in &groups {
            let member = |n: &str| {
                g["MemberList"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["UserName"] == n)
                    .map(without_name)
            };
            let (ma, mb) = (member(&ca.user_name), member(&cb.user_name));
            assert_eq!(ma, mb, "group {}", g["UserName"]);
            shared_groups += usize::from(ma.is_some());
        }
    }
    assert!(shared_groups > 0, "some pair shares its groups");
    sim.shutdown().await;
}

// ---- MsgType 51 ----

/// (session names, real ids) of each MsgType 51 message, checked for shape.
fn status_pairs(msgs: &[Value]) -> Vec<(Vec<String>, Vec<String>)> {
    let ids = Regex::new(r"&lt;username&gt;(.*?)&lt;/username&gt;").unwrap();
    msgs.iter()
        .filter(|m| m["MsgType"] == 51)
        .map(|m| {
            assert_eq!(m["StatusNotifyCode"], 4);
            let content = m["Content"].as_str().unwrap();
            let split = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
            (
                split(m["StatusNotifyUserName"].as_str().unwrap()),
                split(&ids.captures(content).expect(content)[1]),
            )
        })
        .collect()
}

#[tokio::test]
async fn status_notify_pairs_session_names_with_real_ids() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let init = s.init().await;
    let account = sim.account();
    assert_eq!(
        s.status_notify(&account.self_user.user_name).await["BaseResponse"]["Ret"],
        0
    );
    let got = s.drain(&init["SyncKey"]).await;
    let pairs = status_pairs(&got.msgs);
    assert!(!pairs.is_empty());
    let truth = real_ids(&account);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (names, ids) in &pairs {
        assert_eq!(names.len(), ids.len());
        assert!(names.len() <= 50);
        for (name, id) in names.iter().zip(ids) {
            assert_eq!(&truth[name], id, "{name}");
            *seen.entry(name.clone()).or_default() += 1;
        }
    }
    // The init ContactList and the recent chats, each sent twice.
    let init_names = init["ContactList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["UserName"].as_str().unwrap().to_string());
    let chat_set = account.chat_set.iter().cloned();
    let want: HashSet<String> = init_names.chain(chat_set).collect();
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), want);
    assert!(seen.values().all(|n| *n == 2), "{seen:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn real_ids_have_the_real_shapes() {
    let sim = start(small()).await;
    let account = sim.account();
    let custom = Regex::new(r"^[a-z]+\d{4}$").unwrap();
    let mut old_style = 0;
    for c in &account.contacts {
        match c.kind {
            SimKind::Official => assert!(c.real_id.starts_with("gh_"), "{}", c.real_id),
            SimKind::Friend if !c.real_id.starts_with("wxid_") => {
                assert!(custom.is_match(&c.real_id), "{}", c.real_id);
                old_style += 1;
            }
            _ => {}
        }
    }
    assert!(old_style > 0, "some old accounts have custom ids");
    let group_id = Regex::new(r"^\d+@chatroom$").unwrap();
    assert!(account.groups.iter().all(|g| group_id.is_match(&g.real_id)));
    let ids: HashSet<&String> = account.contacts.iter().map(|c| &c.real_id).collect();
    assert_eq!(ids.len(), account.contacts.len(), "real ids are unique");
    sim.shutdown().await;
}

#[tokio::test]
async fn status_notify_with_a_share_covers_that_share_in_several_messages() {
    let sim = start(SimConfig {
        status_notify: StatusNotify::Share(1.0),
        status_notify_copies: 1,
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let init = s.init().await;
    let account = sim.account();
    s.status_notify(&account.self_user.user_name).await;
    let pairs = status_pairs(&s.drain(&init["SyncKey"]).await.msgs);
    assert!(pairs.len() > 1, "long lists are split");
    let named: Vec<&String> = pairs.iter().flat_map(|(n, _)| n).collect();
    let want: HashSet<&String> = account
        .contacts
        .iter()
        .map(|c| &c.user_name)
        .chain(account.groups.iter().map(|g| &g.user_name))
        .collect();
    assert_eq!(named.len(), want.len(), "each once");
    assert_eq!(named.into_iter().collect::<HashSet<_>>(), want);
    sim.shutdown().await;

    let sim = start(SimConfig {
        status_notify: StatusNotify::Share(0.25),
        status_notify_copies: 1,
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let init = s.init().await;
    s.status_notify(&sim.account().self_user.user_name).await;
    let pairs = status_pairs(&s.drain(&init["SyncKey"]).await.msgs);
    let named: usize = pairs.iter().map(|(n, _)| n.len()).sum();
    assert_eq!(named, (0.25 * want.len() as f64).round() as usize);
    sim.shutdown().await;
}

#[tokio::test]
async fn status_notify_off_sends_no_msgtype_51() {
    let sim = start(SimConfig {
        status_notify: StatusNotify::Off,
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let init = s.init().await;
    let r = s.status_notify(&sim.account().self_user.user_name).await;
    assert_eq!(r["BaseResponse"]["Ret"], 0);
    // The reply comes after the server queued whatever it sends.
    let got = s.drain(&init["SyncKey"]).await;
    assert!(got.msgs.is_empty(), "{:?}", got.msgs);
    sim.shutdown().await;
}

// ---- push login ----

async fn push_login(client: &Client, api: &str, uin: &str) -> Value {
    let r = client
        .get(format!("{api}webwxpushloginurl?uin={uin}&mod=desktop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain");
    r.json().await.unwrap()
}

#[tokio::test]
async fn push_login_with_the_last_cookies_needs_no_scan_and_renames_everyone() {
    let sim = start(small()).await;
    let base = sim.base_url().to_string();
    let s = login(&sim).await;
    s.init().await;
    let before = sim.account();
    // Logged out; the cookies stay in the jar, as clients keep them.
    s.client
        .get(format!(
            "{}webwxlogout?redirect=1&type=0&skey={}",
            s.api, s.skey
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(s.init().await["BaseResponse"]["Ret"], 1101);

    let r = push_login(&s.client, &s.api, &s.uin).await;
    assert_eq!((&r["ret"], &r["msg"]), (&json!("0"), &json!("all ok")));
    let uuid = r["uuid"].as_str().unwrap();
    let (codes, redirect) = wait_for_redirect(&s.client, &base, uuid).await;
    assert!(!codes.contains(&201), "no scan step: {codes:?}");
    let s2 = ticket_session(s.client.clone(), &redirect).await;
    assert_eq!(s2.uin, s.uin);
    assert_ne!(s2.sid, s.sid);
    let init = s2.init().await;
    assert_eq!(init["BaseResponse"]["Ret"], 0);
    let after = sim.account();
    assert_eq!(init["User"]["UserName"], after.self_user.user_name);
    assert_ne!(after.self_user.user_name, before.self_user.user_name);
    let (old, new) = (names_by_sim_id(&before), names_by_sim_id(&after));
    let friend = before
        .contacts
        .iter()
        .find(|c| c.kind == SimKind::Friend)
        .unwrap();
    assert_ne!(old[&friend.sim_id], new[&friend.sim_id]);
    let call = wait_for_call(&sim, Endpoint::PushLogin, 0).await;
    assert_eq!((call.status, call.ret), (200, Some(0)));
    assert!(call.query.contains("mod=desktop"));
    sim.shutdown().await;
}

#[tokio::test]
async fn push_login_is_refused_without_this_accounts_latest_cookies() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let refused = |r: &Value, ret: &str| {
        assert_eq!(r["ret"], ret, "{r}");
        assert!(r.get("uuid").is_none());
    };
    // No cookies; a ticket this server never issued.
    refused(&push_login(&Client::new(), &s.api, &s.uin).await, "1");
    let forged = Client::new()
        .get(format!("{}webwxpushloginurl?uin={}", s.api, s.uin))
        .header(
            "cookie",
            format!("wxuin={}; webwx_auth_ticket=forged", s.uin),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    refused(&forged, "3");
    // Another account's uin.
    refused(&push_login(&s.client, &s.api, "12345").await, "1");
    // The phone (or the server) says no.
    sim.set_push_login(PushLogin::Refuse);
    refused(&push_login(&s.client, &s.api, &s.uin).await, "2");
    sim.set_push_login(PushLogin::Confirm);
    assert_eq!(push_login(&s.client, &s.api, &s.uin).await["ret"], "0");
    // A newer login's ticket supersedes this one.
    let newer = login(&sim).await;
    refused(&push_login(&s.client, &s.api, &s.uin).await, "3");
    assert_eq!(
        push_login(&newer.client, &newer.api, &newer.uin).await["ret"],
        "0"
    );
    let rets: Vec<Option<i64>> = sim
        .calls()
        .iter()
        .filter(|c| c.endpoint == Endpoint::PushLogin)
        .map(|c| c.ret)
        .collect();
    assert_eq!(rets, [1, 3, 1, 2, 0, 3, 0].map(Some));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_ignored_push_login_is_never_confirmed() {
    let sim = start(manual()).await;
    let base = sim.base_url().to_string();
    let client = jar_client();
    let uuid = jslogin(&client, &base, true).await;
    sim.confirm();
    let (code, redirect) = poll(&client, &base, &uuid).await;
    assert_eq!(code, 200);
    let s = ticket_session(client, &redirect.unwrap()).await;

    sim.set_push_login(PushLogin::Ignore);
    let r = push_login(&s.client, &s.api, &s.uin).await;
    let ignored = r["uuid"].as_str().unwrap().to_string();
    assert_eq!(poll(&s.client, &base, &ignored).await.0, 408);
    sim.confirm();
    assert_eq!(poll(&s.client, &base, &ignored).await.0, 408);

    // Without auto_confirm, a push login waits for the phone like a QR code.
    sim.set_push_login(PushLogin::Confirm);
    let r = push_login(&s.client, &s.api, &s.uin).await;
    let pushed = r["uuid"].as_str().unwrap().to_string();
    assert_eq!(poll(&s.client, &base, &pushed).await.0, 408);
    sim.confirm();
    assert_eq!(poll(&s.client, &base, &pushed).await.0, 200);
    assert_eq!(poll(&s.client, &base, &ignored).await.0, 408);
    sim.shutdown().await;

    // A phone that confirms QR logins by itself ignores the push all the same.
    let sim = start(SimConfig {
        long_poll: Duration::from_millis(300),
        ..small()
    })
    .await;
    let s = login(&sim).await;
    sim.set_push_login(PushLogin::Ignore);
    let r = push_login(&s.client, &s.api, &s.uin).await;
    let ignored = r["uuid"].as_str().unwrap().to_string();
    let base = sim.base_url().to_string();
    assert_eq!(poll(&s.client, &base, &ignored).await.0, 408);
    assert_eq!(poll(&s.client, &base, &ignored).await.0, 408);
    sim.shutdown().await;
}

// ---- shape ----

#[tokio::test]
async fn groups_have_between_min_and_max_members() {
    let sim = start(SimConfig {
        min_group_members: 30,
        max_group_members: 30,
        ..small()
    })
    .await;
    let s = login(&sim).await;
    let account = sim.account();
    let names = group_names(&account);
    for g in s.groups(&names).await {
        assert_eq!(g["MemberCount"], 30);
    }
    sim.shutdown().await;
    let sim = start(SimConfig {
        min_group_members: 10,
        max_group_members: 20,
        ..small()
    })
    .await;
    let sizes: Vec<usize> = sim
        .account()
        .groups
        .iter()
        .map(|g| g.members.len())
        .collect();
    assert!(sizes.iter().all(|n| (10..=20).contains(n)), "{sizes:?}");
    assert!(sizes.iter().any(|n| *n < 20), "{sizes:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn attr_status_is_shared_between_contacts() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for c in s.all_contacts().await {
        if c["VerifyFlag"] == 0 && c["ContactFlag"].as_i64().unwrap() & 1 == 1 && c["KeyWord"] == ""
        {
            *counts.entry(c["AttrStatus"].as_i64().unwrap()).or_default() += 1;
        }
    }
    let friends: usize = counts.values().sum();
    assert!(friends >= 100);
    assert!(counts.len() <= 10, "{counts:?}");
    assert!(
        counts.values().all(|n| *n > 1),
        "no value singles anyone out: {counts:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn simulate_flags_shape_the_account() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--friends",
            "40",
            "--saved-groups",
            "4",
            "--unsaved-groups",
            "2",
            "--min-group-members",
            "12",
            "--max-group-members",
            "12",
            "--lookalikes",
            "3",
            "--status-notify",
            "0.5",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first.rsplit(' ').next().unwrap().to_string();
    let account: Value = reqwest::get(format!("{url}__sim/account"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["lookalikes"].as_array().unwrap().len(), 3);
    let groups = account["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 6);
    assert!(
        groups
            .iter()
            .all(|g| g["members"].as_array().unwrap().len() == 12)
    );
    child.kill().await.unwrap();

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_wxsync"))
        .args(["simulate", "--status-notify", "most"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither `off`, `recent` nor a share"));
}

// ---- faults ----

fn contact_url(s: &Session) -> String {
    format!("{}webwxgetcontact?r=1&seq=0&skey={}", s.api, s.skey)
}

/// A batchgetcontact with an empty body: what comes back is the fault alone.
async fn raw_batch(s: &Session) -> reqwest::Response {
    s.client
        .post(format!("{}webwxbatchgetcontact?type=ex", s.api))
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reset_closes_the_connection_without_a_reply() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    sim.fail(Endpoint::GetContact, Fault::Reset, 1);
    let err = s.client.get(contact_url(&s)).send().await.unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    let call = wait_for_call(&sim, Endpoint::GetContact, 0).await;
    assert_eq!(call.status, 0);
    assert_eq!(s.get_contact("0").await["BaseResponse"]["Ret"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_custom_reply_is_sent_byte_for_byte() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let empty = br#"{"BaseResponse":{"Ret":0},"Seq":0,"MemberList":[]}"#.to_vec();
    sim.fail(
        Endpoint::GetContact,
        Fault::Custom {
            status: 200,
            content_type: "text/plain".into(),
            body: empty.clone(),
        },
        1,
    );
    let r = s.client.get(contact_url(&s)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), empty);
    let invalid = b"{\"BaseResponse\":{\"Ret\":0},\"NickName\":\"\xff\xfe\"}".to_vec();
    sim.fail(
        Endpoint::BatchGetContact,
        Fault::Custom {
            status: 503,
            content_type: "application/octet-stream".into(),
            body: invalid.clone(),
        },
        1,
    );
    let r = raw_batch(&s).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let body = r.bytes().await.unwrap();
    assert_eq!(body, invalid);
    assert!(std::str::from_utf8(&body).is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_huge_reply_is_exactly_that_big_and_valid_json() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    // Small enough to parse here, chunked.
    sim.fail(
        Endpoint::GetContact,
        Fault::Huge {
            bytes: 3_000_000,
            chunked: true,
        },
        1,
    );
    let r = s.client.get(contact_url(&s)).send().await.unwrap();
    assert!(r.headers().get("content-length").is_none());
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 3_000_000);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["MemberCount"], v["MemberList"].as_array().unwrap().len());
    assert_eq!(v["Seq"], 0);
    // 120 MB with its Content-Length, read and counted piece by piece.
    let size = 120_000_000u64;
    sim.fail(
        Endpoint::BatchGetContact,
        Fault::Huge {
            bytes: size,
            chunked: false,
        },
        1,
    );
    let mut r = raw_batch(&s).await;
    assert_eq!(r.content_length(), Some(size));
    let (mut n, mut head, mut tail) = (0u64, Vec::new(), Vec::new());
    while let Some(chunk) = r.chunk().await.unwrap() {
        if head.len() < 64 {
            head.extend_from_slice(&chunk[..chunk.len().min(64)]);
        }
        tail = chunk.to_vec();
        n += chunk.len() as u64;
    }
    assert_eq!(n, size);
    assert!(head.starts_with(br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"Count":"#));
    assert!(tail.ends_with(b"]}"));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_endless_seq_never_comes_back_0() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let listed = s.all_contacts().await.len();
    sim.fail(Endpoint::GetContact, Fault::EndlessSeq, u32::MAX);
    let (mut seq, mut seen, mut tokens) = ("0".to_string(), 0, HashSet::new());
    for _ in 0..10 {
        let page = s.get_contact(&seq).await;
        assert_eq!(page["BaseResponse"]["Ret"], 0);
        seen += page["MemberList"].as_array().unwrap().len();
        seq = page["Seq"].to_string();
        assert_ne!(seq, "0");
        assert!(tokens.insert(seq.clone()), "a fresh token each time");
    }
    assert!(seen > listed, "it wraps around: {seen} of {listed}");
    // Cleared, the same walk ends.
    sim.clear_faults_of(Endpoint::GetContact);
    assert_eq!(s.all_contacts().await.len(), listed);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_batch_reply_can_carry_groups_nobody_asked_for() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let account = sim.account();
    let asked = &account.groups[2];
    sim.fail(Endpoint::BatchGetContact, Fault::UnaskedGroups(3), 1);
    let r = s.groups(std::slice::from_ref(&asked.user_name)).await;
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["UserName"], asked.user_name);
    let known: HashSet<&String> = account.groups.iter().map(|g| &g.user_name).collect();
    for g in &r[1..] {
        assert_ne!(g["UserName"], asked.user_name);
        assert!(known.contains(&g["UserName"].as_str().unwrap().to_string()));
        assert!(!g["MemberList"].as_array().unwrap().is_empty());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_group_can_come_back_with_100000_members() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let account = sim.account();
    let names = [
        account.groups[1].user_name.clone(),
        account.groups[2].user_name.clone(),
    ];
    sim.fail(Endpoint::BatchGetContact, Fault::HugeGroup(100_000), 1);
    let r = s.groups(&names).await;
    assert_eq!(r[0]["MemberCount"], 100_000);
    let members = r[0]["MemberList"].as_array().unwrap();
    assert_eq!(members.len(), 100_000);
    let distinct: HashSet<&str> = members
        .iter()
        .map(|m| m["UserName"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 100_000);
    assert_eq!(
        r[1]["MemberCount"],
        account.groups[2].members.len(),
        "only the first group"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn fail_with_zero_times_and_clear_faults_drop_queued_faults() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    sim.fail(Endpoint::GetContact, Fault::Http(502), 5);
    sim.fail(Endpoint::GetContact, Fault::Ret(1205), 5);
    sim.fail(Endpoint::BatchGetContact, Fault::Http(503), 5);
    sim.fail(Endpoint::GetContact, Fault::Http(502), 0);
    assert_eq!(s.get_contact("0").await["BaseResponse"]["Ret"], 0);
    // Other endpoints keep theirs until clear_faults.
    let r = raw_batch(&s).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    sim.clear_faults();
    assert_eq!(s.batch(vec![]).await["BaseResponse"]["Ret"], 0);
    // Counts are kept per fault, in order.
    sim.fail(Endpoint::GetContact, Fault::Ret(1205), 2);
    sim.fail(Endpoint::GetContact, Fault::Ret(1), 1);
    let rets: Vec<Value> = [
        s.get_contact("0").await,
        s.get_contact("0").await,
        s.get_contact("0").await,
        s.get_contact("0").await,
    ]
    .iter()
    .map(|r| r["BaseResponse"]["Ret"].clone())
    .collect();
    assert_eq!(rets, [json!(1205), json!(1205), json!(1), json!(0)]);
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_can_come_with_entries_without_a_name() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let account = sim.account();
    let group = &account.groups[0];
    sim.fail(Endpoint::GetContact, Fault::Unnamed(2), 1);
    sim.fail(Endpoint::Init, Fault::Unnamed(1), 1);
    sim.fail(Endpoint::BatchGetContact, Fault::Unnamed(1), 1);
    let page = s.get_contact("0").await;
    let list = page["MemberList"].as_array().unwrap();
    assert_eq!(page["BaseResponse"]["Ret"], 0);
    assert!(
        list[..2]
            .iter()
            .all(|c| c["UserName"].is_null() && c["NickName"].is_null())
    );
    assert!(list[2..].iter().all(|c| c["UserName"].is_string()));
    let init = s.init().await;
    assert!(init["ContactList"][0]["UserName"].is_null());
    assert!(init["User"]["UserName"].is_string(), "only lists");
    // A batch reply: the entry itself and the first of its members.
    let r = s.groups(std::slice::from_ref(&group.user_name)).await;
    assert!(r[0]["UserName"].is_null());
    assert!(r[0]["MemberList"][0]["UserName"].is_null());
    assert!(r[0]["MemberList"][1]["UserName"].is_string());
    // The fault is in the reply only.
    assert_eq!(sim.account(), account);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_batch_reply_can_leave_out_groups_and_a_contact_list_can_be_empty() {
    let sim = start(small()).await;
    let s = login(&sim).await;
    let account = sim.account();
    let names: Vec<String> = account.groups[..3]
        .iter()
        .map(|g| g.user_name.clone())
        .collect();
    sim.fail(Endpoint::BatchGetContact, Fault::LeftOut(2), 1);
    sim.fail(Endpoint::BatchGetContact, Fault::LeftOut(10), 1);
    let r = s.groups(&names).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["UserName"], names[2]);
    assert!(s.groups(&names).await.is_empty());
    assert_eq!(
        s.groups(&names).await.len(),
        3,
        "only while the fault lasts"
    );

    sim.fail(Endpoint::GetContact, Fault::EmptyList, 2);
    for _ in 0..2 {
        let page = s.get_contact("0").await;
        assert_eq!(page["BaseResponse"]["Ret"], 0);
        assert_eq!(page["MemberList"], json!([]));
        assert_eq!((&page["MemberCount"], &page["Seq"]), (&json!(0), &json!(0)));
    }
    assert!(
        !s.get_contact("0").await["MemberList"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    sim.shutdown().await;
}
