//! The small JavaScript replies of the login and push endpoints
//! (`window.QRLogin.code = 200; …`), read with regexes.

use std::sync::LazyLock;

use regex::Regex;

/// jslogin: `window.QRLogin.code = 200; window.QRLogin.uuid = "…";`.
/// Returns the code and the uuid when present.
pub(crate) fn parse_qrlogin(body: &str) -> (Option<String>, Option<String>) {
    static CODE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"window\.QRLogin\.code\s*=\s*(\d+)").expect("regex is valid"));
    static UUID: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"window\.QRLogin\.uuid\s*=\s*"([^"]*)""#).expect("regex is valid")
    });
    let code = CODE.captures(body).map(|c| c[1].to_owned());
    let uuid = UUID
        .captures(body)
        .map(|c| c[1].to_owned())
        .filter(|u| !u.is_empty());
    (code, uuid)
}

/// The login poll's `window.code=N;` and, for 200, `window.redirect_uri="…"`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PollReply {
    pub code: String,
    pub redirect_uri: Option<String>,
}

pub(crate) fn parse_login_poll(body: &str) -> Option<PollReply> {
    static CODE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"window\.code\s*=\s*(\d+)").expect("regex is valid"));
    static REDIRECT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"window\.redirect_uri\s*=\s*"([^"]*)""#).expect("regex is valid")
    });
    let code = CODE.captures(body)?[1].to_owned();
    let redirect_uri = REDIRECT.captures(body).map(|c| c[1].to_owned());
    Some(PollReply { code, redirect_uri })
}

/// synccheck: `window.synccheck={retcode:"0",selector:"2"}`, values quoted or
/// not; returned as text.
pub(crate) fn parse_synccheck(body: &str) -> Option<(String, String)> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"retcode\s*:\s*"?(-?\d+)"?\s*,\s*selector\s*:\s*"?(\d+)"?"#)
            .expect("regex is valid")
    });
    let caps = RE.captures(body)?;
    Some((caps[1].to_owned(), caps[2].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qrlogin_reply_is_parsed() {
        let (code, uuid) =
            parse_qrlogin(r#"window.QRLogin.code = 200; window.QRLogin.uuid = "gZ4x-Ab_3Q==";"#);
        assert_eq!(code.as_deref(), Some("200"));
        assert_eq!(uuid.as_deref(), Some("gZ4x-Ab_3Q=="));
        let (code, uuid) = parse_qrlogin("window.QRLogin.code = 400;");
        assert_eq!(code.as_deref(), Some("400"));
        assert_eq!(uuid, None);
        assert_eq!(parse_qrlogin("<html>blocked</html>"), (None, None));
    }

    #[test]
    fn login_poll_replies_are_parsed() {
        assert_eq!(
            parse_login_poll("window.code=408;"),
            Some(PollReply {
                code: "408".into(),
                redirect_uri: None
            })
        );
        let scanned =
            parse_login_poll("window.code=201;window.userAvatar = 'data:img/jpg;base64,AA==';");
        assert_eq!(scanned.unwrap().code, "201");
        let ok = parse_login_poll(
            "window.code=200;\nwindow.redirect_uri=\"https://wx2.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=A-b&uuid=u&lang=zh_CN&scan=1\";",
        )
        .unwrap();
        assert_eq!(ok.code, "200");
        assert_eq!(
            ok.redirect_uri.as_deref(),
            Some(
                "https://wx2.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=A-b&uuid=u&lang=zh_CN&scan=1"
            )
        );
        assert_eq!(parse_login_poll("nothing"), None);
    }

    #[test]
    fn synccheck_replies_are_parsed_as_text() {
        assert_eq!(
            parse_synccheck(r#"window.synccheck={retcode:"0",selector:"2"}"#),
            Some(("0".into(), "2".into()))
        );
        assert_eq!(
            parse_synccheck("window.synccheck={retcode:1101,selector:0}"),
            Some(("1101".into(), "0".into()))
        );
        assert_eq!(
            parse_synccheck(r#"window.synccheck={ retcode : "1102" , selector : "0" }"#),
            Some(("1102".into(), "0".into()))
        );
        assert_eq!(parse_synccheck("window.synccheck={}"), None);
    }
}
