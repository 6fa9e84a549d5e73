//! Wire types and reply parsing. JSON replies are parsed straight from the
//! received bytes into typed records, with lenient numbers and strings
//! (peers and servers disagree on both); a contact's `raw` text is built from
//! borrowed slices of the reply. The small JavaScript replies of the login
//! and push endpoints are read with regexes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use regex::Regex;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::{Error, redact_quoted};
use super::text::{has_skey_param, strip_skey, strip_skey_json};

/// Visitor methods for every JSON value a lenient reader does not want:
/// scalars read as `$default`, objects and arrays are skipped whole.
macro_rules! skip_other_values {
    ($default:expr, [$($skip:ident),*]) => {
        $(skip_other_values!(@one $skip, $default);)*
    };
    (@one bool, $default:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one i64, $default:expr) => {
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one u64, $default:expr) => {
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one f64, $default:expr) => {
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one str, $default:expr) => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one unit, $default:expr) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one map, $default:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_map(map).map(|_| $default)
        }
    };
    (@one seq, $default:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_seq(seq).map(|_| $default)
        }
    };
}

/// Reads one JSON value, whatever its type, with the visitor `V`: the seed
/// of every lenient reader here.
struct Any<V>(V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Any<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        d.deserialize_any(self.0)
    }
}

/// A number that may arrive as a JSON number, a numeric string, or null.
/// Anything unusable reads as 0 rather than failing the whole reply.
struct LenientI64;

impl<'de> Visitor<'de> for LenientI64 {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        Ok(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        // Saturating float-to-int conversion is what we want here.
        Ok(v as i64)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
        Ok(v.trim().parse().unwrap_or_default())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<i64, E> {
        Ok(i64::from(v))
    }

    skip_other_values!(0, [unit, map, seq]);
}

/// A string that may arrive as a string, a number, or null.
struct LenientString;

impl<'de> Visitor<'de> for LenientString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        // As serde_json writes a float (`3.0`, `100000.0`).
        Ok(serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string()))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    skip_other_values!(String::new(), [unit, map, seq]);
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Any(LenientI64).deserialize(d)
}

pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Any(LenientString).deserialize(d)
}

/// A string with any `skey` parameter removed: what every string of a
/// contact or member becomes before anything reads it.
fn clean(s: String) -> String {
    if has_skey_param(&s) {
        strip_skey(&s)
    } else {
        s
    }
}

/// A lenient string read from one JSON value's text, skey removed.
fn string_from(text: &str) -> String {
    match plain_string(text) {
        Some(inner) => clean(inner.to_owned()),
        None => {
            clean(lenient_string(&mut serde_json::Deserializer::from_str(text)).unwrap_or_default())
        }
    }
}

/// A lenient number read from one JSON value's text.
fn i64_from(text: &str) -> i64 {
    lenient_i64(&mut serde_json::Deserializer::from_str(text)).unwrap_or_default()
}

/// The content of a JSON string literal without escapes, which is exactly
/// its text between the quotes.
fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// An object key, borrowed from the reply when it holds no escapes.
pub(crate) struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// An object read field by field. Unknown keys are skipped, a key given
/// twice keeps its last value, and every field is lenient, so that the
/// content of a record never fails a reply.
pub(crate) trait Record<'de>: Default {
    /// Reads the value of `key` from `map` (or skips it).
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error>;
}

/// Reads a [`Record`] from an object; any other value is skipped and reads
/// as `None`.
struct Lenient<T>(PhantomData<T>);

impl<T> Lenient<T> {
    fn new() -> Self {
        Lenient(PhantomData)
    }
}

impl<'de, T: Record<'de>> Visitor<'de> for Lenient<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut record = T::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            record.field(key, &mut map)?;
        }
        Ok(Some(record))
    }

    skip_other_values!(None, [bool, i64, u64, f64, str, unit, seq]);
}

/// An array of [`Record`]s: entries that are not objects are skipped, and a
/// missing, null or non-array list reads as empty.
struct LenientList<T>(PhantomData<T>);

impl<T> LenientList<T> {
    fn new() -> Self {
        LenientList(PhantomData)
    }
}

impl<'de, T: Record<'de>> Visitor<'de> for LenientList<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Any(Lenient::<T>::new()))? {
            out.extend(item);
        }
        Ok(out)
    }

    skip_other_values!(Vec::new(), [bool, i64, u64, f64, str, unit, map]);
}

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
struct ContactSeed;

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

fn contact_list<'de, A: MapAccess<'de>>(map: &mut A) -> Result<ContactList, A::Error> {
    map.next_value_seed(Any(ContactListSeed))
}

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

    fn contact(text: &str) -> Option<RawContact> {
        let mut de = serde_json::Deserializer::from_str(text);
        let c = Any(ContactSeed).deserialize(&mut de).unwrap();
        de.end().unwrap();
        c
    }

    fn assert_same(text: &str) {
        let new = contact(text).expect("an object");
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
        let c = contact(r#"{"Sex":" 2 ","VerifyFlag":1e3,"ContactFlag":18446744073709551615,"MemberCount":-3.9}"#)
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
        let c = contact(text).unwrap();
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
            let c = contact(&text).unwrap();
            assert!(
                c.raw.contains(r#""Uin":0"#) && c.raw.contains(r#""OwnerUin":0"#),
                "{}",
                c.raw
            );
            assert!(!c.raw.contains("2718281828"), "{}", c.raw);
        }
        assert_eq!(contact(r#"{"Uin":"2718281828"}"#).unwrap().uin, 2718281828);
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
        let c = contact(r#"{"MemberList":[1,{"UserName":"@a"},"x",{"UserName":"@b"}]}"#).unwrap();
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
        assert_eq!(contact(&text).unwrap().raw, via_value(&text).raw);
    }

    #[test]
    fn a_contact_that_is_not_an_object_reads_as_none() {
        assert_eq!(contact(r#""x""#), None);
        assert_eq!(contact("[1]"), None);
        assert_eq!(contact("null"), None);
    }

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

    /// Every contact column with a wire key is read from that key: a field
    /// missing from the record's setter fails here.
    #[test]
    fn every_contact_column_is_read_from_its_wire_key() {
        use crate::contact::{COLUMNS, Contact, Type, Value as Column};
        let mut object = serde_json::Map::new();
        for (i, c) in COLUMNS.iter().enumerate() {
            let Some(key) = c.wire else { continue };
            let value = match c.ty {
                // Bit 0 set and bit 3 clear: a friend, not an official account.
                Type::Integer => json!(i * 16 + 1),
                Type::Text => json!(format!("@{}", c.name)),
            };
            object.insert(key.to_owned(), value);
        }
        let raw = contact(&Value::Object(object).to_string()).unwrap();
        let decoded = Contact::from_raw(&raw, "@me").expect("a friend");
        for (i, (c, value)) in COLUMNS.iter().zip(decoded.values()).enumerate() {
            if c.wire.is_none() {
                continue;
            }
            let text = format!("@{}", c.name);
            let want = match c.ty {
                Type::Integer => Column::Integer(i as i64 * 16 + 1),
                Type::Text => Column::Text(&text),
            };
            assert_eq!(value, want, "{}", c.name);
        }
    }
}
