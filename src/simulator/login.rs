//! The login state machine: jslogin's uuid, the long-polled scan and
//! confirmation, the ticket step that opens a session, push login, the
//! credentials every later call must carry, and logout.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::address_book::random_string;
use super::config::PushLogin;
use super::http::{Reply, Req};
use super::state::{Hold, LoginSession, Qr, Shared, State};

/// The UOS desktop client's public `extspam` blob that desktop-mode ticket
/// steps must carry (880 chars, `Go8FCIkF…`). The simulator keeps its own
/// copy of it, as the server does, so a wrong constant in a client is caught.
pub const UOS_EXTSPAM: &str = concat!(
    "Go8FCIkFEokFCggwMDAwMDAwMRAGGvAESySibk50w5Wb3uTl2c2h64jVVrV7gNs06GFlWplHQbY/5FfiO++1yH4ykC",
    "yNPWKXmco+wfQzK5R98D3so7rJ5LmGFvBLjGceleySrc3SOf2Pc1gVehzJgODeS0lDL3/I/0S2SSE98YgKleq6Uqx6ndTy9yaL9qFxJL7eiA/R",
    "3SEfTaW1SBoSITIu+EEkXff+Pv8NHOk7N57rcGk1w0ZzRrQDkXTOXFN2iHYIzAAZPIOY45Lsh+A4slpgnDiaOvRtlQYCt97nmPLuTipOJ8Qc5p",
    "M7ZsOsAPPrCQL7nK0I7aPrFDF0q4ziUUKettzW8MrAaiVfmbD1/VkmLNVqqZVvBCtRblXb5FHmtS8FxnqCzYP4WFvz3T0TcrOqwLX1M/DQvcHa",
    "GGw0B0y4bZMs7lVScGBFxMj3vbFi2SRKbKhaitxHfYHAOAa0X7/MSS0RNAjdwoyGHeOepXOKY+h3iHeqCvgOH6LOifdHf/1aaZNwSkGotYnYSc",
    "W8Yx63LnSwba7+hESrtPa/huRmB9KWvMCKbDThL/nne14hnL277EDCSocPu3rOSYjuB9gKSOdVmWsj9Dxb/iZIe+S6AiG29Esm+/eUacSba0k8",
    "wn5HhHg9d4tIcixrxveflc8vi2/wNQGVFNsGO6tB5WF0xf/plngOvQ1/ivGV/C1Qpdhzznh0ExAVJ6dwzNg7qIEBaw+BzTJTUuRcPk92Sn6QDn",
    "2Pu3mpONaEumacjW4w6ipPnPw+g2TfywJjeEcpSZaP4Q3YV5HG8D6UjWA4GSkBKculWpdCMadx0usMomsSS/74QgpYqcPkmamB4nVv1JxczYIT",
    "IqItIKjD35IGKAUwAA==",
);

/// The `client-version` header the desktop-mode ticket step requires.
const UOS_CLIENT_VERSION: &str = "2.0.0";

/// The ticket step's message for ret 1203 (account barred from Web WeChat).
pub const BARRED_MESSAGE: &str = "为了你的帐号安全，此微信号不能登录网页微信。你可以使用Windows微信或Mac微信在电脑端登录。Windows微信下载地址：https://pc.weixin.qq.com  Mac微信下载地址：https://mac.weixin.qq.com";

/// A QR code is valid this long, then the poll answers 400.
const UUID_TTL: Duration = Duration::from_secs(300);

const AVATAR: &str = "data:img/jpg;base64,/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==";

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const HEX: &[u8] = b"0123456789abcdef";

/// Issues a login uuid. A push login's has no scan step (the phone was
/// asked directly); an ignored one never becomes the phone's newest.
fn new_uuid(st: &mut State, desktop: bool, push: Option<PushLogin>) -> String {
    let uuid = format!(
        "{}==",
        random_string(
            &mut st.rng,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            10
        )
    );
    let ticket = format!("A{}@qrticket_0", random_string(&mut st.rng, ALNUM, 31));
    let ignored = push == Some(PushLogin::Ignore);
    st.qr.insert(
        uuid.clone(),
        Qr {
            created: Instant::now(),
            desktop,
            ticket,
            scanned: push.is_some(),
            confirmed: false,
            auto: None,
            told_scan: push.is_some(),
            used: false,
            ignored,
        },
    );
    if !ignored {
        st.newest_qr = Some(uuid.clone());
    }
    uuid
}

pub(super) fn jslogin(inner: &Shared, req: &Req) -> Reply {
    let desktop = req
        .param("redirect_uri")
        .is_some_and(|r| r.contains("mod=desktop"));
    let uuid = new_uuid(&mut inner.lock(), desktop, None);
    Reply::js(
        format!("window.QRLogin.code = 200; window.QRLogin.uuid = \"{uuid}\";"),
        200,
    )
}

/// `{"ret":"N","msg":…}`: the push-login shape, ret as a quoted number.
pub(super) fn push_refusal(ret: i64, msg: &str) -> Reply {
    Reply::json(&json!({"ret": ret.to_string(), "msg": msg}), ret)
}

/// `webwxpushloginurl?uin=…`: with the `wxuin` and newest `webwx_auth_ticket`
/// cookies of this account, asks the phone to confirm a new login and
/// answers its uuid; the client then polls that uuid as after a QR code.
pub(super) fn push_login(inner: &Shared, req: &Req) -> Reply {
    let reply = {
        let st = &mut *inner.lock();
        let uin = st.book.uin.to_string();
        let cookie_uin = req.cookies.get("wxuin");
        let ticket = req.cookies.get("webwx_auth_ticket");
        if ticket.is_none() || cookie_uin != Some(&uin) || req.param("uin") != Some(&uin) {
            return push_refusal(1, "args error");
        }
        if ticket != st.auth_ticket.as_ref() {
            return push_refusal(3, "device authinfo invalid");
        }
        if st.push_login == PushLogin::Refuse {
            return push_refusal(2, "antispam");
        }
        let desktop = req.param("mod") == Some("desktop");
        let mode = st.push_login;
        let uuid = new_uuid(st, desktop, Some(mode));
        Reply::json(&json!({"ret": "0", "msg": "all ok", "uuid": uuid}), 0)
    };
    inner.bump();
    reply
}

pub(super) async fn login_poll(inner: &Shared, req: &Req) -> Reply {
    let uuid = req.param("uuid").unwrap_or("").to_string();
    let step = (inner.cfg.long_poll / 4).min(Duration::from_millis(500));
    let auto = inner.cfg.auto_confirm;
    let base = inner.base.clone();
    inner.hold(
        |st, now| {
            if st.stopping {
                return Hold::Done(Reply::js("window.code=408;".into(), 408));
            }
            let Some(q) = st.qr.get_mut(&uuid) else {
                return Hold::Done(Reply::js("window.code=400;".into(), 400));
            };
            if q.used || now.duration_since(q.created) > UUID_TTL {
                return Hold::Done(Reply::js("window.code=400;".into(), 400));
            }
            if auto && q.auto.is_none() && !q.ignored {
                q.auto = Some((now + step, now + 2 * step));
            }
            if q.confirmed(now) {
                let scan = chrono::Utc::now().timestamp();
                return Hold::Done(Reply::js(
                    format!(
                        "window.code=200;\nwindow.redirect_uri=\"{base}cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket={}&uuid={uuid}&lang=zh_CN&scan={scan}\";",
                        q.ticket
                    ),
                    200,
                ));
            }
            if q.scanned(now) && !q.told_scan {
                q.told_scan = true;
                return Hold::Done(Reply::js(
                    format!("window.code=201;window.userAvatar='{AVATAR}';"),
                    201,
                ));
            }
            Hold::Until(q.auto.map(|(s, c)| if s > now { s } else { c }).filter(|t| *t > now))
        },
        || Reply::js("window.code=408;".into(), 408),
    )
    .await
}

fn percent_encode_ticket(raw: &str) -> String {
    raw.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

pub(super) fn ticket(inner: &Shared, req: &Req, login_ret: Option<i64>) -> Reply {
    let now = Instant::now();
    let mut st = inner.lock();
    let uuid = req.param("uuid").unwrap_or("");
    let ticket = req.param("ticket").unwrap_or("");
    let q = st
        .qr
        .get_mut(uuid)
        .filter(|q| q.confirmed(now) && !q.used && q.ticket == ticket);
    let desktop = q.as_ref().is_some_and(|q| q.desktop) || req.param("mod") == Some("desktop");
    // Desktop mode answers 301 with the body and cookies and no Location.
    let status = if desktop { 301 } else { 200 };
    let Some(q) = q else {
        return Reply::ticket_xml(status, -14, "ticket error");
    };
    q.used = true;
    if let Some(n) = login_ret {
        let msg = if n == 1203 { BARRED_MESSAGE } else { "" };
        return Reply::ticket_xml(status, n, msg);
    }
    if desktop
        && (req.header("client-version") != Some(UOS_CLIENT_VERSION)
            || req.header("extspam") != Some(UOS_EXTSPAM))
    {
        return Reply::ticket_xml(status, 1203, BARRED_MESSAGE);
    }
    if st.sessions_made > 0 {
        st.book.next_generation();
    }
    st.sessions_made += 1;
    let rng = &mut st.rng;
    let mut sid = random_string(rng, B64, 16);
    sid.replace_range(5..6, "+");
    sid.replace_range(11..12, "/");
    let skey = new_skey(rng);
    let mut raw_ticket = random_string(rng, B64, 62);
    raw_ticket.replace_range(7..8, "+");
    raw_ticket.push_str("==");
    let pass_ticket = percent_encode_ticket(&raw_ticket);
    let auth_ticket = random_string(rng, B64, 120);
    let data_ticket = random_string(rng, B64, 64);
    let uvid = random_string(rng, HEX, 32);
    let key_base = rng.random_range(600_000_000..700_000_000);
    let started = chrono::Utc::now().timestamp();
    let uin = st.book.uin;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(12))
        .format("%a, %d-%b-%Y %H:%M:%S GMT")
        .to_string();
    let cookie = |k: &str, v: &str| format!("{k}={v}; Path=/; Expires={expires}");
    let cookies = vec![
        cookie("wxuin", &uin.to_string()),
        cookie("wxsid", &sid),
        cookie("wxloadtime", &format!("{started}_expired")),
        cookie("mm_lang", "zh_CN"),
        cookie("webwx_data_ticket", &data_ticket),
        cookie("webwxuvid", &uvid),
        cookie("webwx_auth_ticket", &auth_ticket),
    ];
    let body = format!(
        "<error><ret>0</ret><message></message><skey>{skey}</skey><wxsid>{sid}</wxsid><wxuin>{uin}</wxuin><pass_ticket>{pass_ticket}</pass_ticket><isgrayscale>1</isgrayscale></error>"
    );
    st.auth_ticket = Some(auth_ticket.clone());
    st.session = Some(LoginSession {
        id: st.sessions_made,
        sid,
        skey,
        pass_ticket,
        auth_ticket,
        desktop,
        dead: None,
        key_base,
        started,
        seq_tokens: HashMap::new(),
        init_position: None,
    });
    drop(st);
    inner.bump();
    let mut r = Reply::plain(status, "text/plain", &body);
    r.cookies = cookies;
    r.ret = Some(0);
    r
}

/// A fresh `@crypt_…` skey.
pub(super) fn new_skey(rng: &mut StdRng) -> String {
    format!(
        "@crypt_{}_{}",
        random_string(rng, HEX, 8),
        random_string(rng, HEX, 32)
    )
}

/// Where a request carries its credentials.
pub(super) enum Creds<'a> {
    /// POST: `BaseRequest` in the JSON body.
    Body(Option<&'a Value>),
    /// GET: `sid`/`uin` (synccheck) and `skey` in the query.
    Query { sid_uin: bool },
}

/// Checks cookies, BaseRequest or query credentials and pass_ticket.
/// Err carries the Ret: 1101 for missing/foreign cookies, 1100 for a wrong
/// Sid/Uin/Skey/pass_ticket, or the code the session died with.
/// Checks a call's credentials against the live session and returns it, or
/// the Ret the server answers.
pub(super) fn authenticate<'a>(
    st: &'a State,
    req: &Req,
    creds: Creds<'_>,
) -> Result<&'a LoginSession, i64> {
    let Some(s) = st.session.as_ref() else {
        return Err(1101);
    };
    if let Some(code) = s.dead {
        return Err(code);
    }
    let uin = st.book.uin.to_string();
    let cookie = |k: &str| req.cookies.get(k).map(String::as_str);
    if cookie("wxuin") != Some(&uin)
        || cookie("wxsid") != Some(&s.sid)
        || cookie("webwx_auth_ticket") != Some(&s.auth_ticket)
    {
        return Err(1101);
    }
    let skey_ok = |k: Option<&str>| k.is_none_or(|k| k.is_empty() || k == s.skey);
    match creds {
        Creds::Body(body) => {
            let br = body.and_then(|b| b.get("BaseRequest")).ok_or(1100)?;
            let uin_ok = match br.get("Uin") {
                Some(Value::Number(n)) => n.to_string() == uin,
                Some(Value::String(t)) => *t == uin,
                _ => false,
            };
            if !uin_ok
                || br.get("Sid").and_then(Value::as_str) != Some(s.sid.as_str())
                || !skey_ok(br.get("Skey").and_then(Value::as_str))
            {
                return Err(1100);
            }
        }
        Creds::Query { sid_uin } => {
            // A raw `+` in the query decodes to a space; accept either spelling.
            let sid = req.param("sid").map(|v| v.replace(' ', "+"));
            if sid_uin && (sid.as_deref() != Some(&s.sid) || req.param("uin") != Some(&uin)) {
                return Err(1100);
            }
            if !skey_ok(req.param("skey")) {
                return Err(1100);
            }
        }
    }
    if !s.desktop
        && let Some(pt) = req.param("pass_ticket")
    {
        // Raw (`%2B` in the URL, decoded once here) or encoded once more (`%252B`).
        let decoded = pt
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        if pt != s.pass_ticket
            && decoded
                != s.pass_ticket
                    .replace("%2B", "+")
                    .replace("%2F", "/")
                    .replace("%3D", "=")
        {
            return Err(1100);
        }
    }
    Ok(s)
}

pub(super) fn session(st: &mut State) -> &mut LoginSession {
    st.session.as_mut().expect("authenticated")
}

pub(super) fn logout(inner: &Shared, req: &Req) -> Reply {
    {
        let mut st = inner.lock();
        if let Some(s) = st.session.as_mut()
            && req.cookies.get("wxsid") == Some(&s.sid)
        {
            s.dead = Some(1101);
        }
    }
    inner.bump();
    Reply::plain(200, "text/html", "")
}
