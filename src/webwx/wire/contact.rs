//! The contact record as received: [`RawContact`] and [`RawMember`], read
//! in one pass from the reply's bytes, with a contact's `raw` text built
//! from borrowed slices of the reply.

use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::super::error::Error;
use super::super::text::{has_skey_param, strip_skey_json};
use super::lenient::{
    Any, Key, LenientI64, LenientList, LenientString, Record, clean, i64_from, plain_string,
    skip_other_values, string_from,
};

/// A contact object as received (strings NOT decoded; every skey already
/// stripped).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawContact {
    pub user_name: String,
    pub nick_name: String,
    pub remark_name: String,
    pub alias: String,
    pub signature: String,
    pub province: String,
    pub city: String,
    pub head_img_url: String,
    pub encry_chat_room_id: String,
    pub key_word: String,
    pub uin: i64,
    pub sex: i64,
    pub verify_flag: i64,
    pub contact_flag: i64,
    pub star_friend: i64,
    pub member_count: i64,
    pub attr_status: i64,
    pub member_list: Vec<RawMember>,
    /// The object as JSON text: keys in sorted order (the last of a repeated
    /// key wins), skey stripped from every string, `MemberList` left out, and
    /// a non-zero `Uin`/`OwnerUin` (the account's own `wxuin`, a session
    /// credential) set to 0. The typed `uin` field keeps the value.
    pub raw: String,
}

/// One member in a group's `MemberList` (thin records: no avatar).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawMember {
    pub user_name: String,
    pub nick_name: String,
    pub display_name: String,
    pub attr_status: i64,
}

impl<'de> Record<'de> for RawMember {
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match &*key.0 {
            "UserName" => self.user_name = clean(map.next_value_seed(Any(LenientString))?),
            "NickName" => self.nick_name = clean(map.next_value_seed(Any(LenientString))?),
            "DisplayName" => self.display_name = clean(map.next_value_seed(Any(LenientString))?),
            "AttrStatus" => self.attr_status = map.next_value_seed(Any(LenientI64))?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl RawContact {
    /// Sets the typed field named `key` from its value's text. For a string
    /// field, returns the string as stored (read leniently, skey removed).
    fn set(&mut self, key: &str, text: &str) -> Option<&str> {
        let string = match key {
            "UserName" => &mut self.user_name,
            "NickName" => &mut self.nick_name,
            "RemarkName" => &mut self.remark_name,
            "Alias" => &mut self.alias,
            "Signature" => &mut self.signature,
            "Province" => &mut self.province,
            "City" => &mut self.city,
            "HeadImgUrl" => &mut self.head_img_url,
            "EncryChatRoomId" => &mut self.encry_chat_room_id,
            "KeyWord" => &mut self.key_word,
            _ => {
                let number = match key {
                    "Uin" => &mut self.uin,
                    "Sex" => &mut self.sex,
                    "VerifyFlag" => &mut self.verify_flag,
                    "ContactFlag" => &mut self.contact_flag,
                    "StarFriend" => &mut self.star_friend,
                    "MemberCount" => &mut self.member_count,
                    "AttrStatus" => &mut self.attr_status,
                    _ => return None,
                };
                *number = i64_from(text);
                return None;
            }
        };
        *string = string_from(text);
        Some(string)
    }

    /// Sets the typed fields and `raw` from the object's (key, value)
    /// slices. Keys are sorted and a repeated key keeps its last value, as
    /// serde_json's map did when `raw` was a `Value`, so stored texts stay
    /// comparable across versions; values are copied as received, except
    /// that strings lose any skey, a non-zero `Uin`/`OwnerUin` becomes 0,
    /// and the rare values whose text serde_json would write differently
    /// (escaped strings, floats, nested objects) are written as serde_json
    /// writes them. A typed string field is read and cleaned once, and
    /// `raw` writes that string.
    fn read(&mut self, mut pieces: Vec<(Key<'_>, &RawValue)>) {
        pieces.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        let size: usize = pieces
            .iter()
            .map(|(k, v)| k.0.len() + v.get().len() + 4)
            .sum();
        let mut out = String::with_capacity(size + 2);
        out.push('{');
        for (i, (key, value)) in pieces.iter().enumerate() {
            if pieces.get(i + 1).is_some_and(|next| next.0.0 == key.0) {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            push_json_string(&mut out, &key.0);
            out.push(':');
            let string = self.set(&key.0, value.get());
            push_value(&mut out, &key.0, value.get(), string);
        }
        out.push('}');
        self.raw = out;
    }
}

/// Reads one contact object in a single pass: the typed fields, the member
/// list, and the `raw` text from the slices of every other value.
pub(super) struct ContactSeed;

impl<'de> Visitor<'de> for ContactSeed {
    type Value = Option<RawContact>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a contact object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut contact = RawContact::default();
        let mut pieces: Vec<(Key<'de>, &'de RawValue)> = Vec::with_capacity(40);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "MemberList" {
                contact.member_list = map.next_value_seed(Any(LenientList::<RawMember>::new()))?;
                continue;
            }
            pieces.push((key, map.next_value()?));
        }
        contact.read(pieces);
        Ok(Some(contact))
    }

    skip_other_values!(None, [bool, i64, u64, f64, str, unit, seq]);
}

fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        // Writing a `&str` cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// Writes one value of `raw`; `string` is the typed field read from it, if
/// any.
fn push_value(out: &mut String, key: &str, text: &str, string: Option<&str>) {
    // Only the account itself has a non-zero Uin, and it equals the `wxuin`
    // credential, which must not leave the session file.
    if matches!(key, "Uin" | "OwnerUin") && i64_from(text) != 0 {
        out.push('0');
        return;
    }
    match text.as_bytes().first() {
        Some(b'"') => match string {
            // What `string_from` made of this text: written back, it is the
            // text itself unless an escape or a skey changed it.
            Some(string) => push_json_string(out, string),
            None => match plain_string(text) {
                Some(inner) if !has_skey_param(inner) => out.push_str(text),
                _ => push_json_string(out, &string_from(text)),
            },
        },
        Some(b't' | b'f' | b'n') => out.push_str(text),
        _ if is_plain_integer(text) => out.push_str(text),
        _ => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(mut v) => {
                strip_skey_json(&mut v);
                out.push_str(&v.to_string());
            }
            // Unreachable: the text is a slice the parser just accepted.
            Err(_) => out.push_str("null"),
        },
    }
}

/// An integer that serde_json writes back as the same text (no sign on 0,
/// no fraction or exponent, within 64 bits).
fn is_plain_integer(text: &str) -> bool {
    match text.strip_prefix('-') {
        Some(digits) => {
            !digits.starts_with('0')
                && digits.bytes().all(|b| b.is_ascii_digit())
                && text.parse::<i64>().is_ok()
        }
        None => text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u64>().is_ok(),
    }
}

/// A list of contacts. A null list is empty; a list that is not an array,
/// or holds an entry that is not an object, is a decode error, reported
/// only after `BaseResponse`, which may explain it.
#[derive(Debug)]
pub(crate) struct ContactList(Result<Vec<RawContact>, &'static str>);

impl Default for ContactList {
    fn default() -> Self {
        ContactList(Ok(Vec::new()))
    }
}

impl ContactList {
    pub(crate) fn into_contacts(self, endpoint: &'static str) -> Result<Vec<RawContact>, Error> {
        self.0.map_err(|detail| Error::Decode {
            endpoint,
            detail: detail.into(),
        })
    }
}

/// Reads a [`ContactList`].
struct ContactListSeed;

impl<'de> Visitor<'de> for ContactListSeed {
    type Value = ContactList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of contacts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ContactList, A::Error> {
        let mut contacts = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut all_objects = true;
        while let Some(item) = seq.next_element_seed(Any(ContactSeed))? {
            match item {
                Some(c) => contacts.push(c),
                None => all_objects = false,
            }
        }
        Ok(ContactList(if all_objects {
            Ok(contacts)
        } else {
            Err("a contact entry is not a JSON object")
        }))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<ContactList, E> {
        Ok(ContactList::default())
    }

    skip_other_values!(
        ContactList(Err("a contact list is not a JSON array")),
        [bool, i64, u64, f64, str, map]
    );
}

/// One contact object read from JSON text as a reply's lists read it;
/// `None` when it is not an object. Panics on text that is not JSON.
#[cfg(test)]
pub(crate) fn read_contact(text: &str) -> Option<RawContact> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let c = Any(ContactSeed).deserialize(&mut de).unwrap();
    de.end().unwrap();
    c
}

pub(super) fn contact_list<'de, A: MapAccess<'de>>(map: &mut A) -> Result<ContactList, A::Error> {
    map.next_value_seed(Any(ContactListSeed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webwx::text::strip_skey_json;
    use serde_json::{Value, json};

    /// What a contact became before replies were parsed straight into typed
    /// records (bytes → `Value` → strip every skey → typed fields, `raw` =
    /// the value minus `MemberList` with `Uin`/`OwnerUin` zeroed): the
    /// reference the single-pass reader must agree with.
    fn via_value(text: &str) -> RawContact {
        fn int(v: Option<&Value>) -> i64 {
            match v {
                Some(Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .unwrap_or_default(),
                Some(Value::String(s)) => s.trim().parse().unwrap_or_default(),
                Some(Value::Bool(b)) => i64::from(*b),
                _ => 0,
            }
        }
        fn string(v: Option<&Value>) -> String {
            match v {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => String::new(),
            }
        }
        let mut v: Value = serde_json::from_str(text).unwrap();
        strip_skey_json(&mut v);
        let member_list = match v.get("MemberList") {
            Some(Value::Array(items)) => items
                .iter()
                .filter(|m| m.is_object())
                .map(|m| RawMember {
                    user_name: string(m.get("UserName")),
                    nick_name: string(m.get("NickName")),
                    display_name: string(m.get("DisplayName")),
                    attr_status: int(m.get("AttrStatus")),
                })
                .collect(),
            _ => Vec::new(),
        };
        let s = |k: &str| string(v.get(k));
        let n = |k: &str| int(v.get(k));
        let mut c = RawContact {
            user_name: s("UserName"),
            nick_name: s("NickName"),
            remark_name: s("RemarkName"),
            alias: s("Alias"),
            signature: s("Signature"),
            province: s("Province"),
            city: s("City"),
            head_img_url: s("HeadImgUrl"),
            encry_chat_room_id: s("EncryChatRoomId"),
            key_word: s("KeyWord"),
            uin: n("Uin"),
            sex: n("Sex"),
            verify_flag: n("VerifyFlag"),
            contact_flag: n("ContactFlag"),
            star_friend: n("StarFriend"),
            member_count: n("MemberCount"),
            attr_status: n("AttrStatus"),
            member_list,
            raw: String::new(),
        };
        let map = v.as_object_mut().unwrap();
        map.remove("MemberList");
        for key in ["Uin", "OwnerUin"] {
            if let Some(uin) = map.get_mut(key).filter(|u| int(Some(u)) != 0) {
                *uin = Value::from(0);
            }
        }
        c.raw = v.to_string();
        c
    }

    fn assert_same(text: &str) {
        let new = read_contact(text).expect("an object");
        assert_eq!(new, via_value(text), "input: {text}");
        let raw: Value = serde_json::from_str(&new.raw).expect("raw is JSON");
        assert!(raw.get("MemberList").is_none());
    }

    #[test]
    fn numbers_and_strings_are_read_leniently_as_before() {
        assert_same(
            r#"{"UserName":"@a","Uin":"12345","Sex":2,"VerifyFlag":"8","ContactFlag":null,
                "MemberCount":3.0,"StarFriend":"x","AttrStatus":4294967296,"Alias":12345,
                "City":null,"Province":true,"Signature":1.5,"KeyWord":-7,"RemarkName":[1],
                "NickName":{"a":1},"EncryChatRoomId":" 12 "}"#,
        );
        let c = read_contact(r#"{"Sex":" 2 ","VerifyFlag":1e3,"ContactFlag":18446744073709551615,"MemberCount":-3.9}"#)
            .unwrap();
        assert_eq!(
            (c.sex, c.verify_flag, c.contact_flag, c.member_count),
            (2, 1000, i64::MAX, -3)
        );
    }

    #[test]
    fn odd_numbers_are_written_to_raw_as_serde_json_writes_them() {
        for n in [
            "0",
            "-0",
            "-0.0",
            "3.0",
            "1e3",
            "1E+2",
            "-12",
            "007e1",
            "1.5e300",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
        ] {
            let Ok(_) = serde_json::from_str::<Value>(n) else {
                continue;
            };
            assert_same(&format!(r#"{{"Statues":{n},"ChatRoomId":{n},"Sex":{n}}}"#));
        }
    }

    #[test]
    fn emoji_spans_escapes_and_unicode_survive_as_before() {
        assert_same(
            r#"{"UserName":"@f","NickName":"Tom &amp; <span class=\"emoji emoji1f604\"></span>",
                "City":"\u5317\u4eac","Signature":"line\nbreak \/ \ud83d\ude00 tab\t","Province":"广东",
                "RemarkName":"😀 &lt;3","Nick\u004eame2":"escaped key","Quote\"Key":1}"#,
        );
    }

    #[test]
    fn every_skey_is_stripped_at_any_depth_and_in_typed_fields() {
        let text = r#"{"UserName":"@@g","HeadImgUrl":"/cgi-bin/mmwebwx-bin/webwxgetheadimg?seq=9&username=@@g&skey=@crypt_s1",
            "NickName":"see /x?a=1&skey=@crypt_s2","Escaped":"/y?u=1\u0026skey=@crypt_s3",
            "Entity":"/z?u=1&amp;skey=@crypt_s4&amp;v=2","Extra":{"Deep":["/d?u=1&skey=@crypt_s5"]},
            "NotUrl":"skey=@crypt_plain","MemberList":[{"UserName":"@m","NickName":"/n?skey=@crypt_s6&k=1"}]}"#;
        assert_same(text);
        let c = read_contact(text).unwrap();
        for s in ["s1", "s2", "s3", "s4", "s5", "s6"] {
            assert!(!c.raw.contains(&format!("@crypt_{s}")), "{s}: {}", c.raw);
        }
        assert_eq!(
            c.head_img_url,
            "/cgi-bin/mmwebwx-bin/webwxgetheadimg?seq=9&username=@@g"
        );
        assert_eq!(c.nick_name, "see /x?a=1");
        assert_eq!(c.member_list[0].nick_name, "/n?k=1");
        // Only URL-like strings lose their skey.
        assert!(
            c.raw.contains(r#""NotUrl":"skey=@crypt_plain""#),
            "{}",
            c.raw
        );
    }

    #[test]
    fn a_nonzero_uin_is_zeroed_in_raw_only() {
        for uin in [
            r#""2718281828""#,
            "2718281828",
            "2718281828.0",
            "-5",
            "true",
        ] {
            let text = format!(r#"{{"UserName":"@self","Uin":{uin},"OwnerUin":{uin}}}"#);
            assert_same(&text);
            let c = read_contact(&text).unwrap();
            assert!(
                c.raw.contains(r#""Uin":0"#) && c.raw.contains(r#""OwnerUin":0"#),
                "{}",
                c.raw
            );
            assert!(!c.raw.contains("2718281828"), "{}", c.raw);
        }
        assert_eq!(
            read_contact(r#"{"Uin":"2718281828"}"#).unwrap().uin,
            2718281828
        );
        // Zero and unreadable values stay as they came.
        for uin in ["0", r#""0""#, r#""abc""#, "null", "0.5"] {
            assert_same(&format!(r#"{{"Uin":{uin},"OwnerUin":{uin}}}"#));
        }
    }

    #[test]
    fn member_lists_skip_junk_entries_as_before() {
        assert_same(
            r#"{"UserName":"@@g","MemberCount":2,"MemberList":["junk",5,null,[],
                {"UserName":"@m1","NickName":"M1","DisplayName":"","AttrStatus":"7","Uin":0,"PYQuanPin":"m"},
                {"UserName":"@m2","NickName":null,"DisplayName":"boss","AttrStatus":1.0,"KeyWord":"wxi"},
                {"UserName":"@m3","UserName":"@m3b","AttrStatus":{"x":[1]}}, {}]}"#,
        );
        let c =
            read_contact(r#"{"MemberList":[1,{"UserName":"@a"},"x",{"UserName":"@b"}]}"#).unwrap();
        let names: Vec<_> = c.member_list.iter().map(|m| m.user_name.as_str()).collect();
        assert_eq!(names, ["@a", "@b"]);
        for list in ["null", "{}", r#""x""#, "3"] {
            assert_same(&format!(r#"{{"UserName":"@@g","MemberList":{list}}}"#));
        }
    }

    #[test]
    fn repeated_keys_and_whitespace_read_as_before() {
        assert_same(
            "{ \"NickName\" : \"a\" ,\n\t\"NickName\":\"b\", \"Extra\" : { \"B\" : [ 1 , 2 ] , \"A\" : null },
               \"MemberList\": [{\"UserName\":\"@x\"}], \"MemberList\": [], \"ZZ\": 1, \"AA\": \"2\" }",
        );
        assert_same("{}");
    }

    #[test]
    fn raw_text_matches_the_old_text_byte_for_byte_on_server_style_replies() {
        let text = json!({
            "Uin": 0, "UserName": "@@0f3a", "NickName": "家人 <span class=\"emoji emoji1f600\"></span>",
            "HeadImgUrl": "/cgi-bin/mmwebwx-bin/webwxgetheadimg?seq=1&username=@@0f3a&skey=@crypt_x",
            "ContactFlag": 2, "MemberCount": 1, "RemarkName": "", "Statues": 1, "OwnerUin": 0,
            "MemberList": [{"UserName": "@m", "NickName": "M", "AttrStatus": 4229}],
            "EncryChatRoomId": "@enc", "IsOwner": 0
        })
        .to_string();
        assert_eq!(read_contact(&text).unwrap().raw, via_value(&text).raw);
    }

    #[test]
    fn a_contact_that_is_not_an_object_reads_as_none() {
        assert_eq!(read_contact(r#""x""#), None);
        assert_eq!(read_contact("[1]"), None);
        assert_eq!(read_contact("null"), None);
    }
}
