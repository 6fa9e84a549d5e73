//! Wire types and reply parsing: JSON objects as the server sends them (with
//! lenient numbers and strings, since peers and servers disagree on both) and
//! the small JavaScript replies of the login and push endpoints.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::Error;
use super::text::strip_skey_json;

/// A number that may arrive as a JSON number, a numeric string, or null.
/// Anything unusable reads as 0 rather than failing the whole reply.
pub(crate) fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(value_to_i64(&Value::deserialize(d)?))
}

pub(crate) fn value_to_i64(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
            // Saturating float-to-int conversion is what we want here.
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or_default(),
        Value::String(s) => s.trim().parse().unwrap_or_default(),
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

/// A string that may arrive as a string, a number, or null.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?))
}

pub(crate) fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// A list that may be missing or null; items that are not objects are skipped.
fn lenient_members<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawMember>, D::Error> {
    let items = match Value::deserialize(d)? {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    Ok(items
        .iter()
        .filter(|v| v.is_object())
        .filter_map(|v| RawMember::deserialize(v).ok())
        .collect())
}

/// A contact object as received (strings NOT decoded; skey already stripped
/// from URLs).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RawContact {
    #[serde(deserialize_with = "lenient_string")]
    pub user_name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub nick_name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub remark_name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub alias: String,
    #[serde(deserialize_with = "lenient_string")]
    pub signature: String,
    #[serde(deserialize_with = "lenient_string")]
    pub province: String,
    #[serde(deserialize_with = "lenient_string")]
    pub city: String,
    #[serde(deserialize_with = "lenient_string")]
    pub head_img_url: String,
    #[serde(deserialize_with = "lenient_string")]
    pub encry_chat_room_id: String,
    #[serde(deserialize_with = "lenient_string")]
    pub key_word: String,
    #[serde(deserialize_with = "lenient_i64")]
    pub uin: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub sex: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub verify_flag: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub contact_flag: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub star_friend: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub member_count: i64,
    #[serde(deserialize_with = "lenient_i64")]
    pub attr_status: i64,
    #[serde(deserialize_with = "lenient_members")]
    pub member_list: Vec<RawMember>,
    /// The whole object as received, skey stripped, `MemberList` removed,
    /// and a non-zero `Uin`/`OwnerUin` (the account's own `wxuin`, a session
    /// credential) set to 0. The typed `uin` field keeps the value.
    #[serde(skip)]
    pub raw: Value,
}

/// One member in a group's `MemberList` (thin records: no avatar).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RawMember {
    #[serde(deserialize_with = "lenient_string")]
    pub user_name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub nick_name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: String,
    #[serde(deserialize_with = "lenient_i64")]
    pub attr_status: i64,
}

impl RawContact {
    /// Builds a contact from one JSON object of a reply: strips every skey,
    /// reads the typed fields, and keeps the rest (minus `MemberList`) in `raw`.
    pub(crate) fn from_value(mut v: Value, endpoint: &'static str) -> Result<RawContact, Error> {
        if !v.is_object() {
            return Err(Error::Decode {
                endpoint,
                detail: "a contact entry is not a JSON object".into(),
            });
        }
        strip_skey_json(&mut v);
        let mut contact = RawContact::deserialize(&v).map_err(|e| Error::json(endpoint, &e))?;
        if let Value::Object(map) = &mut v {
            map.remove("MemberList");
            // Only the account itself has a non-zero Uin, and it equals the
            // `wxuin` credential, which must not leave the session file.
            for key in ["Uin", "OwnerUin"] {
                if let Some(uin) = map.get_mut(key).filter(|u| value_to_i64(u) != 0) {
                    *uin = Value::from(0);
                }
            }
        }
        contact.raw = v;
        Ok(contact)
    }
}

/// Reads a list of contacts (e.g. `ContactList`, `MemberList`); a missing or
/// null list is empty.
pub(crate) fn contacts_from(
    v: Option<Value>,
    endpoint: &'static str,
) -> Result<Vec<RawContact>, Error> {
    match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| RawContact::from_value(item, endpoint))
            .collect(),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err(Error::Decode {
            endpoint,
            detail: "a contact list is not a JSON array".into(),
        }),
    }
}

/// `SyncKey` / `SyncCheckKey`: `{Count, List:[{Key, Val}]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SyncKey {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub count: i64,
    #[serde(default, deserialize_with = "lenient_pairs")]
    pub list: Vec<SyncPair>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SyncPair {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub key: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub val: i64,
}

fn lenient_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SyncPair>, D::Error> {
    let items = match Value::deserialize(d)? {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    Ok(items
        .iter()
        .filter_map(|v| SyncPair::deserialize(v).ok())
        .collect())
}

impl SyncKey {
    /// Reads a key from a reply field; `None` when absent or empty
    /// (`Count` 0), which callers must ignore rather than store.
    pub(crate) fn from_reply(v: Option<&Value>) -> Option<SyncKey> {
        let key = SyncKey::deserialize(v?).ok()?;
        (key.count != 0 && !key.list.is_empty()).then_some(key)
    }

    /// The `synckey` query value of synccheck: `k_v|k_v|…`.
    pub(crate) fn to_query(&self) -> String {
        self.list
            .iter()
            .map(|p| format!("{}_{}", p.key, p.val))
            .collect::<Vec<_>>()
            .join("|")
    }
}

/// Parses a JSON reply (UTF-8, decoded lossily) and checks its
/// `BaseResponse.Ret`, mapping the session-ending and rate-limit codes.
pub(crate) fn parse_reply(body: &[u8], endpoint: &'static str) -> Result<Value, Error> {
    let text = String::from_utf8_lossy(body);
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::Decode {
        endpoint,
        detail: format!(
            "{} bytes are not JSON ({})",
            body.len(),
            super::error::redact_quoted(&e.to_string())
        ),
    })?;
    let Some(base) = v.get("BaseResponse") else {
        return Err(Error::Decode {
            endpoint,
            detail: "no BaseResponse in the reply".into(),
        });
    };
    let code = base.get("Ret").map(value_to_i64).unwrap_or_default();
    match code {
        0 => Ok(v),
        1100..=1102 => Err(Error::SessionDead { code, endpoint }),
        1205 => Err(Error::RateLimited { endpoint }),
        _ => Err(Error::Ret {
            endpoint,
            code,
            message: base.get("ErrMsg").map(value_to_string).unwrap_or_default(),
        }),
    }
}

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
    use serde_json::json;

    #[test]
    fn numbers_are_read_from_numbers_strings_and_null() {
        let c = RawContact::from_value(
            json!({"UserName": "@a", "Uin": "12345", "Sex": 2, "VerifyFlag": "8",
                   "ContactFlag": null, "MemberCount": 3.0, "StarFriend": "x",
                   "AttrStatus": 4294967296u64}),
            "test",
        )
        .unwrap();
        assert_eq!(c.uin, 12345);
        assert_eq!(c.sex, 2);
        assert_eq!(c.verify_flag, 8);
        assert_eq!(c.contact_flag, 0);
        assert_eq!(c.member_count, 3);
        assert_eq!(c.star_friend, 0);
        assert_eq!(c.attr_status, 4294967296);
    }

    #[test]
    fn strings_are_read_from_strings_numbers_and_null() {
        let c = RawContact::from_value(
            json!({"UserName": "@a", "Alias": 12345, "City": null}),
            "test",
        )
        .unwrap();
        assert_eq!(c.alias, "12345");
        assert_eq!(c.city, "");
        assert_eq!(c.nick_name, "");
    }

    #[test]
    fn a_contact_keeps_its_members_but_raw_drops_them_and_the_skey() {
        let c = RawContact::from_value(
            json!({
                "UserName": "@@g", "NickName": "&lt;team&gt;", "MemberCount": 2,
                "HeadImgUrl": "/cgi-bin/mmwebwx-bin/webwxgetheadimg?seq=9&username=@@g&skey=@crypt_s",
                "MemberList": [
                    {"UserName": "@m1", "NickName": "M1", "DisplayName": "", "AttrStatus": "7"},
                    {"UserName": "@m2", "NickName": "M2", "DisplayName": "boss", "AttrStatus": 1},
                    "junk"
                ],
                "Extra": {"Deep": 1},
                "Uin": "2718281828", "OwnerUin": 0
            }),
            "test",
        )
        .unwrap();
        assert_eq!(c.nick_name, "&lt;team&gt;", "strings stay as received");
        assert_eq!(
            c.head_img_url,
            "/cgi-bin/mmwebwx-bin/webwxgetheadimg?seq=9&username=@@g"
        );
        assert_eq!(c.member_list.len(), 2);
        assert_eq!(c.member_list[0].attr_status, 7);
        assert_eq!(c.member_list[1].display_name, "boss");
        assert!(c.raw.get("MemberList").is_none());
        assert_eq!(c.raw["Extra"], json!({"Deep": 1}));
        assert!(!c.raw.to_string().contains("crypt"));
        assert_eq!(c.uin, 2718281828);
        assert_eq!((&c.raw["Uin"], &c.raw["OwnerUin"]), (&json!(0), &json!(0)));
    }

    #[test]
    fn a_non_object_contact_is_a_decode_error() {
        let err = RawContact::from_value(json!("x"), "webwxinit").unwrap_err();
        assert!(matches!(
            err,
            Error::Decode {
                endpoint: "webwxinit",
                ..
            }
        ));
        assert!(contacts_from(None, "t").unwrap().is_empty());
        assert!(contacts_from(Some(Value::Null), "t").unwrap().is_empty());
        assert!(contacts_from(Some(json!({})), "t").is_err());
    }

    #[test]
    fn sync_keys_with_count_zero_are_ignored() {
        assert_eq!(
            SyncKey::from_reply(Some(&json!({"Count": 0, "List": []}))),
            None
        );
        assert_eq!(SyncKey::from_reply(None), None);
        let key = SyncKey::from_reply(Some(&json!({
            "Count": 2, "List": [{"Key": 1, "Val": 650}, {"Key": "2", "Val": "651"}]
        })))
        .unwrap();
        assert_eq!(key.to_query(), "1_650|2_651");
        assert_eq!(
            serde_json::to_value(&key).unwrap(),
            json!({"Count": 2, "List": [{"Key": 1, "Val": 650}, {"Key": 2, "Val": 651}]})
        );
    }

    #[test]
    fn base_response_codes_map_to_errors() {
        let ok = parse_reply(br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"X":1}"#, "e").unwrap();
        assert_eq!(ok["X"], 1);
        for code in ["1100", "1101", "1102"] {
            let body = format!(r#"{{"BaseResponse":{{"Ret":{code}}}}}"#);
            let err = parse_reply(body.as_bytes(), "webwxsync").unwrap_err();
            assert!(err.is_session_dead(), "{code}");
        }
        let err = parse_reply(br#"{"BaseResponse":{"Ret":"1205"}}"#, "webwxoplog").unwrap_err();
        assert!(matches!(
            err,
            Error::RateLimited {
                endpoint: "webwxoplog"
            }
        ));
        let err = parse_reply(br#"{"BaseResponse":{"Ret":1,"ErrMsg":"bad"}}"#, "e").unwrap_err();
        assert!(matches!(err, Error::Ret { code: 1, ref message, .. } if message == "bad"));
        let err = parse_reply(br#"{"BaseResponse":{"Ret":0},"Trunc"#, "e").unwrap_err();
        assert!(matches!(err, Error::Decode { .. }) && err.is_transient());
        let err = parse_reply(br#"{"Other":1}"#, "e").unwrap_err();
        assert!(matches!(err, Error::Decode { .. }));
    }

    #[test]
    fn bodies_are_utf8_decoded_lossily() {
        let mut body = br#"{"BaseResponse":{"Ret":0},"NickName":"caf"#.to_vec();
        body.extend_from_slice(&[0xC3, 0xA9, 0xFF]);
        body.extend_from_slice(br#""}"#);
        let v = parse_reply(&body, "e").unwrap();
        assert_eq!(v["NickName"], "café\u{FFFD}");
    }

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
