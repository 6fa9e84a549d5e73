//! One login attempt: jslogin → QR → poll → ticket → session → webwxinit
//! → webwxstatusnotify, or first a push login that asks the phone of the
//! previous session to confirm. Never retried automatically: a person runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use serde::Deserialize;
use url::Url;

use super::client::{
    Client, InitReply, Query, derive_push_origin, endpoint_url, http_client, now_ms, origin_url,
    read_body, rr,
};
use super::error::{Error, LoginError};
use super::jar::Jar;
use super::session::{Credentials, Session};
use super::wire::{lenient_string, parse_login_poll, parse_qrlogin, utf8};
use super::{ClientOptions, Mode};

const APP_ID: &str = "wx782c26e4c19acffb";
/// What the jslogin call names as the page to return to after the scan.
const NEW_LOGIN_PAGE: &str = "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage";
/// The phone scans this URL + uuid.
const QR_PREFIX: &str = "https://login.weixin.qq.com/l/";
const CLIENT_VERSION: &str = "2.0.0";
/// The UOS client's `extspam` header, byte-identical in openwechat
/// `global.go`, itchat-uos `config.py`, wechat4u and puppet-wechat
/// (880 chars, sha256 11e2f840f986…369795e0).
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
/// Polls closer together than this are spaced out, in case a server answers
/// 408 at once instead of holding the long poll.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Client-side timeouts of the long poll in a row before giving up.
const MAX_POLL_TIMEOUTS: u32 = 3;
/// The QR code expires server-side within minutes; never wait longer.
const MAX_LOGIN_WAIT: Duration = Duration::from_secs(10 * 60);

/// Where and how to log in.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    /// Origin of jslogin and the login poll (config `wechat.login_url`).
    pub login_url: Url,
    pub client: ClientOptions,
    /// Client timeout of one login poll (the server holds it ~25 s).
    pub poll_timeout: Duration,
    /// How long a push login waits for the phone before the QR code is
    /// shown instead.
    pub push_wait: Duration,
}

impl LoginOptions {
    /// About one long-poll cycle of the login server.
    pub const DEFAULT_PUSH_WAIT: Duration = Duration::from_secs(30);
}

/// Progress of a login, for the person holding the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginEvent {
    /// Push login: the phone was asked to confirm; there is nothing to scan.
    PushSent,
    /// Push login did not work, for `reason` (one line); a QR code follows.
    PushFailed { reason: String },
    /// Show this URL as a QR code (see [`render_qr`]).
    Qr { url: String },
    /// The phone scanned the code; waiting for the confirmation.
    Scanned,
    /// The phone confirmed; the session is being set up.
    Confirmed,
}

/// One login attempt: jslogin → QR → poll until confirmed → ticket (the 301
/// is read, not followed) → session → webwxinit → webwxstatusnotify.
pub async fn login(
    opts: &LoginOptions,
    mut on_event: impl FnMut(LoginEvent),
) -> Result<(Client, InitReply), LoginError> {
    let mode = opts.client.mode;
    let jar = Arc::new(Jar::default());
    let http = http_client(Arc::clone(&jar), mode, opts.client.request_timeout)?;

    let uuid = request_uuid(&http, opts).await?;
    on_event(LoginEvent::Qr {
        url: format!("{QR_PREFIX}{uuid}"),
    });
    let redirect_uri = wait_for_confirmation(&http, opts, &uuid, &mut on_event).await?;
    on_event(LoginEvent::Confirmed);
    finish(opts, &http, &jar, &redirect_uri).await
}

/// A login that first asks the phone of `previous`'s account to confirm
/// (push login: `webwxpushloginurl` with the previous session's `wxuin`
/// and cookies, then the login poll with the uuid it hands out). If the
/// server refuses, or the phone does not confirm within `opts.push_wait`,
/// it reports why ([`LoginEvent::PushFailed`]) and goes on as [`login`]
/// with a QR code. `previous` may be logged out: only its `wxuin` and
/// cookies are used.
pub async fn push_login(
    opts: &LoginOptions,
    previous: &Session,
    mut on_event: impl FnMut(LoginEvent),
) -> Result<(Client, InitReply), LoginError> {
    match ask_phone(opts, previous, &mut on_event).await {
        Ok((http, jar, redirect_uri)) => {
            on_event(LoginEvent::Confirmed);
            finish(opts, &http, &jar, &redirect_uri).await
        }
        Err(failure) => {
            let reason = failure.to_string();
            tracing::info!(%reason, "push login did not work; falling back to the QR code");
            on_event(LoginEvent::PushFailed { reason });
            login(opts, on_event).await
        }
    }
}

/// Why a push login did not log in, in one line each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushFailure {
    /// The server refused the request (its `ret`), or the previous session
    /// cannot be pushed at all: asking again will not help.
    #[error("{0}")]
    Refused(String),
    /// The phone did not confirm in time, or the request expired.
    #[error("{0}")]
    NotConfirmed(String),
    /// Anything else (network, an unreadable reply, a failed session setup).
    #[error("{0}")]
    Failed(String),
}

/// A push login and nothing else — never a QR code: for the daemon, which
/// has no one to show it to.
pub async fn push_login_only(
    opts: &LoginOptions,
    previous: &Session,
    mut on_event: impl FnMut(LoginEvent),
) -> Result<(Client, InitReply), PushFailure> {
    let (http, jar, redirect_uri) = ask_phone(opts, previous, &mut on_event).await?;
    on_event(LoginEvent::Confirmed);
    finish(opts, &http, &jar, &redirect_uri)
        .await
        .map_err(|e| PushFailure::Failed(e.to_string()))
}

/// The push request and the wait for the phone.
async fn ask_phone(
    opts: &LoginOptions,
    previous: &Session,
    on_event: &mut impl FnMut(LoginEvent),
) -> Result<(reqwest::Client, Arc<Jar>, String), PushFailure> {
    if previous.uin == 0 {
        return Err(PushFailure::Refused(
            "the previous session has no wxuin".into(),
        ));
    }
    let setup = |e: Error| PushFailure::Failed(e.to_string());
    let jar = Arc::new(Jar::from_value(&previous.cookies).map_err(setup)?);
    let http = http_client(
        Arc::clone(&jar),
        opts.client.mode,
        opts.client.request_timeout,
    )
    .map_err(setup)?;
    let uuid = request_push(&http, opts, previous).await?;
    on_event(LoginEvent::PushSent);
    let confirmed = tokio::time::timeout(
        opts.push_wait,
        wait_for_confirmation(&http, opts, &uuid, on_event),
    )
    .await;
    match confirmed {
        Ok(Ok(redirect_uri)) => Ok((http, jar, redirect_uri)),
        Ok(Err(LoginError::QrExpired)) => Err(PushFailure::NotConfirmed(
            "the login request expired on the server".into(),
        )),
        Ok(Err(e)) => Err(PushFailure::Failed(e.to_string())),
        Err(_) => Err(PushFailure::NotConfirmed(format!(
            "the phone did not confirm within {}",
            humantime::format_duration(opts.push_wait)
        ))),
    }
}

/// The push-login reply: `{"ret":"0","msg":"all ok","uuid":"…"}`. A
/// refusal may come in the API's usual envelope instead
/// (`{"BaseResponse":{"Ret":1,"ErrMsg":"…"}}`), which is read too.
#[derive(Deserialize)]
struct PushReply {
    #[serde(default, alias = "Ret", deserialize_with = "lenient_string")]
    ret: String,
    #[serde(default, alias = "Msg", deserialize_with = "lenient_string")]
    msg: String,
    #[serde(default, alias = "Uuid", deserialize_with = "lenient_string")]
    uuid: String,
    #[serde(default, rename = "BaseResponse")]
    base: Option<PushBase>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PushBase {
    #[serde(default, deserialize_with = "lenient_string")]
    ret: String,
    #[serde(default, deserialize_with = "lenient_string")]
    err_msg: String,
}

impl PushReply {
    /// The uuid of an accepted push login, or why it was refused, in words
    /// that always say the server's code (or that it sent none).
    fn uuid(self) -> Result<String, PushFailure> {
        let base = self.base.unwrap_or_default();
        let pick = |top: String, base: String| match top.trim() {
            "" => base.trim().to_owned(),
            top => top.to_owned(),
        };
        let (ret, msg) = (pick(self.ret, base.ret), pick(self.msg, base.err_msg));
        if ret != "0" {
            let code = match ret.as_str() {
                "" => "its reply carries no ret code".to_owned(),
                ret => format!("ret {ret}"),
            };
            return Err(PushFailure::Refused(match msg.as_str() {
                "" => format!("the server refused push login ({code})"),
                msg => format!("the server refused push login ({code}: {msg})"),
            }));
        }
        match self.uuid.trim() {
            "" => Err(PushFailure::Failed(
                "webwxpushloginurl: the reply carries no uuid".into(),
            )),
            uuid => Ok(uuid.to_owned()),
        }
    }
}

/// `GET {previous api}/cgi-bin/mmwebwx-bin/webwxpushloginurl?uin=…[&mod=desktop]`
/// with the previous cookies; returns the uuid to poll for.
async fn request_push(
    http: &reqwest::Client,
    opts: &LoginOptions,
    previous: &Session,
) -> Result<String, PushFailure> {
    let failed = |e: String| PushFailure::Failed(e);
    const EP: &str = "webwxpushloginurl";
    let mut query = Query::default().enc("uin", &previous.uin.to_string());
    if opts.client.mode == Mode::Desktop {
        query = query.enc("mod", "desktop");
    }
    let api = parse_url(previous.api_origin()).map_err(|e| failed(e.to_string()))?;
    let url = endpoint_url(&api, EP, &query).map_err(|e| failed(e.to_string()))?;
    let body = get_text(EP, http.get(url), opts.client.max_reply_bytes)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let reply: PushReply = serde_json::from_str(&body).map_err(|_| {
        failed(format!(
            "{EP}: unreadable reply: {} bytes are not the expected JSON",
            body.len()
        ))
    })?;
    reply.uuid()
}

/// Everything after the phone confirmed: ticket (the 301 is read, not
/// followed) → session → webwxinit → webwxstatusnotify.
async fn finish(
    opts: &LoginOptions,
    http: &reqwest::Client,
    jar: &Jar,
    redirect_uri: &str,
) -> Result<(Client, InitReply), LoginError> {
    let mode = opts.client.mode;
    let redirect = Url::parse(redirect_uri).map_err(|_| LoginError::Ticket {
        detail: "the login poll's redirect_uri is not a URL".into(),
    })?;
    let xml = fetch_ticket(http, redirect_uri, opts).await?;
    let ticket = resolve_ticket(xml, jar.value_of("wxsid"), jar.value_of("wxuin"))?;

    let api = origin_url(&redirect)?;
    let push = match &opts.client.push_url {
        Some(url) => origin_url(url)?,
        None => derive_push_origin(&api),
    };
    let session = Session::new(Credentials {
        mode,
        api_origin: api.as_str().trim_end_matches('/').to_owned(),
        push_origin: push.as_str().trim_end_matches('/').to_owned(),
        uin: ticket.uin,
        sid: ticket.sid,
        skey: ticket.skey,
        pass_ticket: ticket.pass_ticket,
        cookies: jar.to_value()?,
    });
    let client = Client::new(session, &opts.client)?;
    let init = client.init().await?;
    match client.status_notify().await {
        Ok(()) => {}
        Err(e) if e.is_session_dead() => return Err(e.into()),
        // Only the phone's "logged in" banner depends on it.
        Err(e) => tracing::warn!(error = %e, "status notification failed; continuing"),
    }
    tracing::info!(mode = ?mode, "logged in");
    Ok((client, init))
}

/// Terminal text for a QR code: two rows per line (Dense1x2) with the quiet
/// zone. Colours are inverted so that the code scans on a dark terminal:
/// dark modules are blank, light ones are drawn.
pub fn render_qr(content: &str) -> String {
    match QrCode::new(content.as_bytes()) {
        Ok(code) => code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(cannot draw this text as a QR code: {e})"),
    }
}

/// The login server's origin without a trailing slash.
fn login_base(opts: &LoginOptions) -> &str {
    opts.login_url.as_str().trim_end_matches('/')
}

async fn request_uuid(http: &reqwest::Client, opts: &LoginOptions) -> Result<String, LoginError> {
    const EP: &str = "jslogin";
    let redirect = match opts.client.mode {
        Mode::Desktop => format!("{NEW_LOGIN_PAGE}?mod=desktop"),
        Mode::Web => NEW_LOGIN_PAGE.to_owned(),
    };
    let query = Query::default()
        .enc("appid", APP_ID)
        .enc("fun", "new")
        .enc("lang", "zh_CN")
        .enc("redirect_uri", &redirect)
        .enc("_", &now_ms().to_string());
    let url = parse_url(&format!("{}/{EP}?{}", login_base(opts), query.as_str()))?;
    let body = get_text(EP, http.get(url), opts.client.max_reply_bytes).await?;
    match parse_qrlogin(&body) {
        (Some(code), Some(uuid)) if code == "200" => Ok(uuid),
        (Some(code), _) => Err(LoginError::NoQrCode {
            detail: format!("jslogin answered code {code}"),
        }),
        (None, _) => Err(LoginError::NoQrCode {
            detail: "jslogin's reply has no QRLogin code (IP blocked or protocol changed?)".into(),
        }),
    }
}

/// Polls until the phone confirms; returns the redirect_uri.
async fn wait_for_confirmation(
    http: &reqwest::Client,
    opts: &LoginOptions,
    uuid: &str,
    on_event: &mut impl FnMut(LoginEvent),
) -> Result<String, LoginError> {
    const EP: &str = "login";
    let started = Instant::now();
    let mut scanned = false;
    let mut timeouts = 0;
    loop {
        if started.elapsed() > MAX_LOGIN_WAIT {
            return Err(LoginError::QrExpired);
        }
        let poll_started = Instant::now();
        let query = Query::default()
            .enc("loginicon", "true")
            .enc("uuid", uuid)
            // 1 until the scan, then 0, as the official web app does.
            .enc("tip", if scanned { "0" } else { "1" })
            .enc("r", &rr().to_string())
            .enc("_", &now_ms().to_string());
        let url = parse_url(&format!(
            "{}/cgi-bin/mmwebwx-bin/{EP}?{}",
            login_base(opts),
            query.as_str()
        ))?;
        let req = http.get(url).timeout(opts.poll_timeout);
        let body = match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                let bytes = read_body(EP, resp, opts.client.max_reply_bytes).await?;
                utf8(&bytes, EP)?.to_owned()
            }
            Ok(resp) => {
                return Err(Error::Status {
                    endpoint: EP,
                    status: resp.status().as_u16(),
                }
                .into());
            }
            Err(e) if e.is_timeout() && timeouts < MAX_POLL_TIMEOUTS => {
                timeouts += 1;
                tracing::debug!(
                    endpoint = EP,
                    timeouts,
                    "login poll timed out; polling again"
                );
                continue;
            }
            Err(e) => return Err(Error::network(EP, e).into()),
        };
        timeouts = 0;
        let reply = parse_login_poll(&body).ok_or_else(|| Error::Decode {
            endpoint: EP,
            detail: format!("{} bytes without window.code", body.len()),
        })?;
        match reply.code.as_str() {
            "200" => {
                return reply.redirect_uri.filter(|u| !u.is_empty()).ok_or_else(|| {
                    LoginError::Ticket {
                        detail: "the confirmation carried no redirect_uri".into(),
                    }
                });
            }
            "201" => {
                if !scanned {
                    scanned = true;
                    on_event(LoginEvent::Scanned);
                }
            }
            "408" => {}
            "400" => return Err(LoginError::QrExpired),
            _ => return Err(LoginError::Poll { code: reply.code }),
        }
        let elapsed = poll_started.elapsed();
        if elapsed < MIN_POLL_INTERVAL {
            tokio::time::sleep(MIN_POLL_INTERVAL - elapsed).await;
        }
    }
}

/// The ticket reply's XML (root `<error>`); every field optional so that a
/// missing one can be reported by name.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct TicketXml {
    ret: Option<String>,
    message: String,
    skey: Option<String>,
    wxsid: Option<String>,
    wxuin: Option<String>,
    pass_ticket: Option<String>,
}

pub(crate) struct Ticket {
    uin: i64,
    sid: String,
    skey: String,
    pass_ticket: String,
}

/// Every field of a ticket is a secret.
impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket { <redacted> }")
    }
}

/// GET redirect_uri + `fun=new&version=v2` (+ `mod=desktop` and the UOS
/// headers in desktop mode). Desktop mode answers 301 with the XML body and
/// no Location, web mode 200: both bodies are read.
async fn fetch_ticket(
    http: &reqwest::Client,
    redirect_uri: &str,
    opts: &LoginOptions,
) -> Result<TicketXml, LoginError> {
    const EP: &str = "webwxnewloginpage";
    let mode = opts.client.mode;
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut target = format!("{redirect_uri}{separator}fun=new&version=v2");
    if mode == Mode::Desktop && !redirect_uri.contains("mod=desktop") {
        target.push_str("&mod=desktop");
    }
    let mut req = http.get(parse_url(&target)?);
    if mode == Mode::Desktop {
        req = req
            .header("client-version", CLIENT_VERSION)
            .header("extspam", UOS_EXTSPAM);
    }
    let resp = req.send().await.map_err(|e| Error::network(EP, e))?;
    let status = resp.status().as_u16();
    if !matches!(status, 200 | 301 | 302) {
        return Err(Error::Status {
            endpoint: EP,
            status,
        }
        .into());
    }
    let bytes = read_body(EP, resp, opts.client.max_reply_bytes).await?;
    parse_ticket_xml(utf8(&bytes, EP)?)
}

pub(crate) fn parse_ticket_xml(body: &str) -> Result<TicketXml, LoginError> {
    quick_xml::de::from_str(body.trim()).map_err(|_| LoginError::Ticket {
        detail: format!(
            "the reply ({} bytes) is not the expected <error> XML",
            body.len()
        ),
    })
}

/// Checks `ret` and the four fields. `wxsid`/`wxuin` may come from the
/// cookies instead (itchat-uos reads them there).
pub(crate) fn resolve_ticket(
    xml: TicketXml,
    cookie_sid: Option<String>,
    cookie_uin: Option<String>,
) -> Result<Ticket, LoginError> {
    let message = xml.message.trim().to_owned();
    if let Some(ret) = xml.ret.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        match ret.parse::<i64>() {
            Ok(0) => {}
            Ok(1203) => {
                return Err(LoginError::WebLoginBarred {
                    message: if message.is_empty() {
                        "WeChat gave no reason".into()
                    } else {
                        message
                    },
                });
            }
            _ => {
                return Err(LoginError::Ticket {
                    detail: format!("ret {ret}: {message}"),
                });
            }
        }
    }
    let present = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let skey = present(xml.skey);
    let sid = present(xml.wxsid).or_else(|| present(cookie_sid));
    let uin = present(xml.wxuin).or_else(|| present(cookie_uin));
    let pass_ticket = present(xml.pass_ticket);
    let missing: Vec<&str> = [
        ("skey", skey.is_none()),
        ("wxsid", sid.is_none()),
        ("wxuin", uin.is_none()),
        ("pass_ticket", pass_ticket.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    let (Some(skey), Some(sid), Some(uin), Some(pass_ticket)) = (skey, sid, uin, pass_ticket)
    else {
        return Err(LoginError::Ticket {
            detail: format!(
                "the reply lacks {}; the account is probably limited and got no web session",
                missing.join(", ")
            ),
        });
    };
    let uin = uin.parse().map_err(|_| LoginError::Ticket {
        detail: "wxuin is not a number".into(),
    })?;
    Ok(Ticket {
        uin,
        sid,
        skey,
        pass_ticket,
    })
}

fn parse_url(s: &str) -> Result<Url, LoginError> {
    Url::parse(s).map_err(|e| {
        LoginError::Protocol(Error::Setup {
            detail: format!("bad login URL: {e}"),
        })
    })
}

async fn get_text(
    endpoint: &'static str,
    req: reqwest::RequestBuilder,
    limit: u64,
) -> Result<String, Error> {
    let resp = req.send().await.map_err(|e| Error::network(endpoint, e))?;
    if !resp.status().is_success() {
        return Err(Error::Status {
            endpoint,
            status: resp.status().as_u16(),
        });
    }
    let bytes = read_body(endpoint, resp, limit).await?;
    Ok(utf8(&bytes, endpoint)?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_XML: &str = "<error><ret>0</ret><message></message>\
        <skey>@crypt_2c3b_feed</skey><wxsid>ab+c/d=</wxsid><wxuin>2718281828</wxuin>\
        <pass_ticket>p%2Bq%3D</pass_ticket><isgrayscale>1</isgrayscale></error>";

    #[test]
    fn a_refused_push_login_always_says_the_code_or_that_there_was_none() {
        let uuid = |body: &str| serde_json::from_str::<PushReply>(body).unwrap().uuid();
        for (body, said) in [
            (r#"{"ret":"1","msg":"args error"}"#, "(ret 1: args error)"),
            (r#"{"ret":2}"#, "(ret 2)"),
            (
                r#"{"Ret":"3","Msg":"device authinfo invalid"}"#,
                "(ret 3: device authinfo invalid)",
            ),
            (r#"{"BaseResponse":{"Ret":1100,"ErrMsg":""}}"#, "(ret 1100)"),
            (
                r#"{"BaseResponse":{"Ret":1,"ErrMsg":"busy"},"ret":""}"#,
                "(ret 1: busy)",
            ),
            (
                r#"{"msg":"try later"}"#,
                "(its reply carries no ret code: try later)",
            ),
            (
                r#"{"ret":null,"uuid":"u"}"#,
                "(its reply carries no ret code)",
            ),
        ] {
            assert_eq!(
                uuid(body),
                Err(PushFailure::Refused(format!(
                    "the server refused push login {said}"
                ))),
                "{body}"
            );
        }
        assert_eq!(
            uuid(r#"{"ret":"0","msg":"all ok","uuid":" u1 "}"#),
            Ok("u1".into())
        );
        assert_eq!(
            uuid(r#"{"ret":0,"uuid":""}"#),
            Err(PushFailure::Failed(
                "webwxpushloginurl: the reply carries no uuid".into()
            ))
        );
    }

    #[test]
    fn the_extspam_constant_is_the_published_one() {
        assert_eq!(UOS_EXTSPAM.len(), 880);
        assert!(UOS_EXTSPAM.starts_with("Go8FCIkFEokFCggwMDAwMDAw"));
        assert!(UOS_EXTSPAM.ends_with("KAUwAA=="));
    }

    #[test]
    fn an_ok_ticket_yields_all_four_fields() {
        let t = resolve_ticket(parse_ticket_xml(OK_XML).unwrap(), None, None).unwrap();
        assert_eq!(t.skey, "@crypt_2c3b_feed");
        assert_eq!(t.sid, "ab+c/d=");
        assert_eq!(t.uin, 2_718_281_828);
        assert_eq!(t.pass_ticket, "p%2Bq%3D", "kept percent-encoded");
    }

    #[test]
    fn ret_1203_means_the_account_is_barred_from_web_login() {
        let xml = "<error><ret>1203</ret><message>为了你的帐号安全，此微信号不能登录网页微信。\
                   你可以使用Windows微信或Mac微信在电脑端登录。</message></error>";
        let err = resolve_ticket(parse_ticket_xml(xml).unwrap(), None, None).unwrap_err();
        let LoginError::WebLoginBarred { message } = &err else {
            panic!("{err:?}");
        };
        assert!(message.starts_with("为了你的帐号安全"));
        assert!(
            err.to_string()
                .starts_with("this WeChat account may not log in to web WeChat")
        );
    }

    #[test]
    fn other_nonzero_rets_are_ticket_errors_with_the_message() {
        let xml = "<error><ret>-14</ret><message>ticket error</message></error>";
        let err = resolve_ticket(parse_ticket_xml(xml).unwrap(), None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the login ticket was not accepted: ret -14: ticket error"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let xml = "<error><ret>0</ret><message/><skey>@crypt_x</skey></error>";
        let err = resolve_ticket(parse_ticket_xml(xml).unwrap(), None, None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lacks wxsid, wxuin, pass_ticket"), "{text}");
        assert!(text.contains("limited"), "{text}");
        assert!(!text.contains("crypt"), "{text}");
    }

    #[test]
    fn sid_and_uin_may_come_from_cookies() {
        let xml = "<error><ret>0</ret><skey>@crypt_x</skey><pass_ticket>pt</pass_ticket></error>";
        let t = resolve_ticket(
            parse_ticket_xml(xml).unwrap(),
            Some("cookiesid".into()),
            Some("42".into()),
        )
        .unwrap();
        assert_eq!((t.sid.as_str(), t.uin), ("cookiesid", 42));
    }

    #[test]
    fn a_non_numeric_uin_and_non_xml_bodies_are_ticket_errors() {
        let xml = OK_XML.replace("2718281828", "abc");
        let err = resolve_ticket(parse_ticket_xml(&xml).unwrap(), None, None).unwrap_err();
        assert!(matches!(err, LoginError::Ticket { .. }));
        assert!(matches!(
            parse_ticket_xml("<html><body>oops"),
            Err(LoginError::Ticket { .. })
        ));
    }

    #[test]
    fn the_qr_is_drawn_with_blocks_and_a_quiet_zone() {
        let text = render_qr("https://login.weixin.qq.com/l/gZ4x-Ab_3Q==");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 10);
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // The quiet zone is light, which is drawn as full blocks.
        assert!(lines[0].chars().all(|c| c == '\u{2588}'));
        assert!(text.contains(' '));
    }
}
