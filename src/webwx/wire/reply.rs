//! The JSON replies: each endpoint's fields next to its `BaseResponse`,
//! whose `Ret` is checked (and mapped to the session-ending and rate-limit
//! errors) before anything else of the reply counts.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess};
use serde::{Deserialize, Serialize};

use super::super::error::{Error, redact_quoted};
use super::contact::{ContactList, ContactSeed, RawContact, contact_list};
use super::lenient::{
    Any, Key, Lenient, LenientI64, LenientList, LenientString, Record, lenient_i64,
};

/// `BaseResponse`: `Ret` and `ErrMsg`.
#[derive(Debug, Default)]
struct BaseResponse {
    ret: i64,
    err_msg: String,
}

impl<'de> Record<'de> for BaseResponse {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "Ret" => self.ret = map.next_value_seed(Any(LenientI64))?,
            "ErrMsg" => self.err_msg = map.next_value_seed(Any(LenientString))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A reply's `BaseResponse` next to the fields of one endpoint.
#[derive(Default)]
struct Envelope<T> {
    base: Option<BaseResponse>,
    body: T,
}

impl<'de, T: Record<'de>> Record<'de> for Envelope<T> {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        if key.0 == "BaseResponse" {
            // A BaseResponse that is not an object counts as Ret 0.
            let base = map.next_value_seed(Any(Lenient::<BaseResponse>::new()))?;
            self.base = Some(base.unwrap_or_default());
            Ok(())
        } else {
            self.body.field(key, map)
        }
    }
}

/// Reads a JSON reply (which must be UTF-8) into `T` and checks its
/// `BaseResponse.Ret`, mapping the session-ending and rate-limit codes.
pub(crate) fn parse_reply<'de, T: Record<'de>>(
    body: &'de [u8],
    endpoint: &'static str,
) -> Result<T, Error> {
    let text = utf8(body, endpoint)?;
    let not_json = |e: serde_json::Error| Error::Decode {
        endpoint,
        detail: format!(
            "{} bytes are not JSON ({})",
            body.len(),
            redact_quoted(&e.to_string())
        ),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let reply = Any(Lenient::<Envelope<T>>::new())
        .deserialize(&mut de)
        .map_err(not_json)?;
    de.end().map_err(not_json)?;
    let Some(Envelope {
        base: Some(base),
        body,
    }) = reply
    else {
        return Err(Error::Decode {
            endpoint,
            detail: "no BaseResponse in the reply".into(),
        });
    };
    match base.ret {
        0 => Ok(body),
        code @ 1100..=1102 => Err(Error::SessionDead { code, endpoint }),
        1205 => Err(Error::RateLimited { endpoint }),
        code => Err(Error::Ret {
            endpoint,
            code,
            message: base.err_msg,
        }),
    }
}

/// A reply body as text. A body cut inside a character is a truncated
/// reply (transient, like any cut body); an invalid byte elsewhere is
/// refused as [`Error::NotUtf8`].
pub(crate) fn utf8<'a>(body: &'a [u8], endpoint: &'static str) -> Result<&'a str, Error> {
    std::str::from_utf8(body).map_err(|e| match e.error_len() {
        None => Error::Decode {
            endpoint,
            detail: format!(
                "the reply ends inside a UTF-8 character after {} bytes (truncated?)",
                body.len()
            ),
        },
        Some(_) => Error::NotUtf8 {
            endpoint,
            offset: e.valid_up_to(),
            len: body.len(),
        },
    })
}

/// A reply whose only field of interest is `BaseResponse`
/// (`webwxstatusnotify`, `webwxoplog`).
#[derive(Default)]
pub(crate) struct BareReply;

impl<'de> Record<'de> for BareReply {
    fn field<A: MapAccess<'de>>(&mut self, _: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        map.next_value::<IgnoredAny>().map(drop)
    }
}

/// `webwxinit`'s reply.
#[derive(Default)]
pub(crate) struct InitWire {
    /// `None` when `User` is missing or not an object.
    pub user: Option<RawContact>,
    pub contacts: ContactList,
    pub chat_set: String,
    pub sync_key: Option<SyncKey>,
    pub skey: String,
}

impl<'de> Record<'de> for InitWire {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "User" => self.user = map.next_value_seed(Any(ContactSeed))?,
            "ContactList" => self.contacts = contact_list(map)?,
            "ChatSet" => self.chat_set = map.next_value_seed(Any(LenientString))?,
            "SyncKey" => self.sync_key = map.next_value_seed(Any(Lenient::<SyncKey>::new()))?,
            "SKey" => self.skey = map.next_value_seed(Any(LenientString))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// One `webwxgetcontact` page.
#[derive(Default)]
pub(crate) struct ContactPageWire {
    pub contacts: ContactList,
    /// "" when missing.
    pub seq: String,
}

impl<'de> Record<'de> for ContactPageWire {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "MemberList" => self.contacts = contact_list(map)?,
            "Seq" => self.seq = map.next_value_seed(Any(LenientString))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `webwxbatchgetcontact`'s reply.
#[derive(Default)]
pub(crate) struct BatchWire {
    pub contacts: ContactList,
}

impl<'de> Record<'de> for BatchWire {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        if key.0 == "ContactList" {
            self.contacts = contact_list(map)?;
        } else {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// `webwxsync`'s reply.
#[derive(Default)]
pub(crate) struct SyncWire {
    pub modified: ContactList,
    pub deleted: Vec<DelEntry>,
    pub messages: Vec<WireMsg>,
    pub continue_flag: i64,
    pub sync_key: Option<SyncKey>,
    pub sync_check_key: Option<SyncKey>,
    pub skey: String,
}

impl<'de> Record<'de> for SyncWire {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "ModContactList" => self.modified = contact_list(map)?,
            "DelContactList" => self.deleted = map.next_value_seed(Any(LenientList::new()))?,
            "AddMsgList" => self.messages = map.next_value_seed(Any(LenientList::new()))?,
            "ContinueFlag" => self.continue_flag = map.next_value_seed(Any(LenientI64))?,
            "SyncKey" => self.sync_key = map.next_value_seed(Any(Lenient::<SyncKey>::new()))?,
            "SyncCheckKey" => {
                self.sync_check_key = map.next_value_seed(Any(Lenient::<SyncKey>::new()))?;
            }
            "SKey" => self.skey = map.next_value_seed(Any(LenientString))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A `DelContactList` entry.
#[derive(Default)]
pub(crate) struct DelEntry {
    pub user_name: String,
}

impl<'de> Record<'de> for DelEntry {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        if key.0 == "UserName" {
            self.user_name = map.next_value_seed(Any(LenientString))?;
        } else {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// The fields of an `AddMsgList` message that the MsgType 51 map needs.
#[derive(Debug, Default)]
pub(crate) struct WireMsg {
    pub msg_type: i64,
    pub status_notify_code: i64,
    pub status_notify_user_name: String,
    pub content: String,
}

impl<'de> Record<'de> for WireMsg {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "MsgType" => self.msg_type = map.next_value_seed(Any(LenientI64))?,
            "StatusNotifyCode" => self.status_notify_code = map.next_value_seed(Any(LenientI64))?,
            "StatusNotifyUserName" => {
                self.status_notify_user_name = map.next_value_seed(Any(LenientString))?;
            }
            "Content" => self.content = map.next_value_seed(Any(LenientString))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SyncPair {
    pub key: i64,
    pub val: i64,
}

fn lenient_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SyncPair>, D::Error> {
    Any(LenientList::new()).deserialize(d)
}

impl<'de> Record<'de> for SyncPair {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "Key" => self.key = map.next_value_seed(Any(LenientI64))?,
            "Val" => self.val = map.next_value_seed(Any(LenientI64))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> Record<'de> for SyncKey {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "Count" => self.count = map.next_value_seed(Any(LenientI64))?,
            "List" => self.list = map.next_value_seed(Any(LenientList::new()))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl SyncKey {
    /// A key from a reply; `None` when absent or empty (`Count` 0), which
    /// callers must ignore rather than store.
    pub(crate) fn from_reply(key: Option<SyncKey>) -> Option<SyncKey> {
        key.filter(|k| k.count != 0 && !k.list.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(body: &str) -> Result<Vec<RawContact>, Error> {
        parse_reply::<BatchWire>(body.as_bytes(), "webwxbatchgetcontact")?
            .contacts
            .into_contacts("webwxbatchgetcontact")
    }

    #[test]
    fn contact_lists_are_checked_after_the_base_response() {
        let ok =
            r#"{"BaseResponse":{"Ret":0},"ContactList":[{"UserName":"@@a"},{"UserName":"@@b"}]}"#;
        assert_eq!(batch(ok).unwrap().len(), 2);
        assert!(
            batch(r#"{"BaseResponse":{"Ret":0},"ContactList":null}"#)
                .unwrap()
                .is_empty()
        );
        assert!(batch(r#"{"BaseResponse":{"Ret":0}}"#).unwrap().is_empty());
        for bad in [r#"[{"UserName":"@@a"},"junk"]"#, "{}", r#""x""#] {
            let body = format!(r#"{{"BaseResponse":{{"Ret":0}},"ContactList":{bad}}}"#);
            let err = batch(&body).unwrap_err();
            assert!(matches!(err, Error::Decode { .. }), "{bad}: {err:?}");
            // A logout explains a strange body: it wins.
            let body = format!(r#"{{"ContactList":{bad},"BaseResponse":{{"Ret":1101}}}}"#);
            assert!(batch(&body).unwrap_err().is_session_dead(), "{bad}");
        }
    }

    #[test]
    fn base_response_codes_map_to_errors() {
        let bare = |body: &[u8], ep| parse_reply::<BareReply>(body, ep).map(drop);
        bare(br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"X":1}"#, "e").unwrap();
        for code in ["1100", "1101", "1102"] {
            let body = format!(r#"{{"BaseResponse":{{"Ret":{code}}}}}"#);
            let err = bare(body.as_bytes(), "webwxsync").unwrap_err();
            assert!(err.is_session_dead(), "{code}");
        }
        let err = bare(br#"{"BaseResponse":{"Ret":"1205"}}"#, "webwxoplog").unwrap_err();
        assert!(matches!(
            err,
            Error::RateLimited {
                endpoint: "webwxoplog"
            }
        ));
        let err = bare(br#"{"BaseResponse":{"Ret":1,"ErrMsg":"bad"}}"#, "e").unwrap_err();
        assert!(matches!(err, Error::Ret { code: 1, ref message, .. } if message == "bad"));
        let err = bare(br#"{"BaseResponse":{"Ret":0},"Trunc"#, "e").unwrap_err();
        assert!(matches!(err, Error::Decode { .. }) && err.is_transient());
        let err = bare(br#"{"BaseResponse":{"Ret":0}} trailing"#, "e").unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        for no_base in [&br#"{"Other":1}"#[..], b"[1,2]", b"\"x\""] {
            let err = bare(no_base, "e").unwrap_err();
            assert!(
                matches!(&err, Error::Decode { detail, .. } if detail.contains("no BaseResponse")),
                "{err:?}"
            );
        }
        // A BaseResponse that is not an object reads as Ret 0, as before.
        bare(br#"{"BaseResponse":null}"#, "e").unwrap();
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_with_where() {
        let mut body = br#"{"BaseResponse":{"Ret":0},"NickName":"caf"#.to_vec();
        let bad = body.len() + 2;
        body.extend_from_slice(&[0xC3, 0xA9, 0xFF]);
        body.extend_from_slice(br#""}"#);
        let err = parse_reply::<BareReply>(&body, "webwxsync")
            .map(drop)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotUtf8 {
                    endpoint: "webwxsync",
                    offset,
                    len: 46
                } if offset == bad
            ),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "webwxsync: reply refused: it is not valid UTF-8 (invalid byte at offset 43 of 46)"
        );
        // Cut inside a character: a truncated reply, worth another try.
        let cut = &"{\"NickName\":\"é".as_bytes()[..14];
        let err = parse_reply::<BareReply>(cut, "webwxsync")
            .map(drop)
            .unwrap_err();
        assert!(
            matches!(err, Error::Decode { .. }) && err.is_transient(),
            "{err:?}"
        );
    }

    #[test]
    fn sync_keys_with_count_zero_are_ignored() {
        let key = |v: &str| {
            let body = format!(r#"{{"BaseResponse":{{"Ret":0}},"SyncKey":{v}}}"#);
            SyncKey::from_reply(
                parse_reply::<SyncWire>(body.as_bytes(), "e")
                    .unwrap()
                    .sync_key,
            )
        };
        assert_eq!(key(r#"{"Count": 0, "List": []}"#), None);
        assert_eq!(key("null"), None);
        assert_eq!(key(r#""junk""#), None);
        let k = key(
            r#"{"Count": 2, "List": [{"Key": 1, "Val": 650}, "junk", {"Key": "2", "Val": "651"}]}"#,
        )
        .unwrap();
        assert_eq!(k.to_query(), "1_650|2_651");
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            json!({"Count": 2, "List": [{"Key": 1, "Val": 650}, {"Key": 2, "Val": 651}]})
        );
        // The session file reads its keys back through the same lenient fields.
        let back: SyncKey = serde_json::from_value(serde_json::to_value(&k).unwrap()).unwrap();
        assert_eq!(back, k);
    }

    #[test]
    fn sync_replies_carry_deletions_and_messages() {
        let body = br#"{"BaseResponse":{"Ret":0},"DelContactList":[{"UserName":"@gone"},{"UserName":""},"x",{"Other":1}],
            "AddMsgList":[{"MsgType":"51","StatusNotifyCode":4,"StatusNotifyUserName":"@a","Content":"c","Extra":[1]},7],
            "ContinueFlag":"1","SKey":"@crypt_new"}"#;
        let r = parse_reply::<SyncWire>(body, "webwxsync").unwrap();
        let deleted: Vec<_> = r.deleted.iter().map(|d| d.user_name.as_str()).collect();
        assert_eq!(deleted, ["@gone", "", ""]);
        assert_eq!(r.messages.len(), 1);
        assert_eq!(
            (r.messages[0].msg_type, r.messages[0].status_notify_code),
            (51, 4)
        );
        assert_eq!(r.continue_flag, 1);
        assert_eq!(r.skey, "@crypt_new");
    }
}
