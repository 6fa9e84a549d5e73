//! Decoded address-book records: what a wire contact becomes before it is a
//! row. Names are decoded here (emoji spans, then HTML entities) and each
//! contact gets its [`Kind`] (docs/protocol.md, Classification).

use crate::webwx::{RawContact, RawMember, text};

/// Accounts WeChat itself runs (official web client's `_SpUsersList` plus the
/// ones wechat4u and WeixinBot add). Matched on `UserName`.
const SPECIAL_ACCOUNTS: &[&str] = &[
    "weibo",
    "qqmail",
    "fmessage",
    "tmessage",
    "qmessage",
    "qqsync",
    "floatbottle",
    "lbsapp",
    "shakeapp",
    "medianote",
    "qqfriend",
    "readerapp",
    "blogapp",
    "facebookapp",
    "masssendapp",
    "meishiapp",
    "feedsapp",
    "voip",
    "blogappweixin",
    "weixin",
    "brandsessionholder",
    "weixinreminder",
    "wxid_novlwrv3lqwv11",
    "gh_22b87fa7cb3c",
    "officialaccounts",
    "notification_messages",
    "filehelper",
    "newsapp",
    "wxitil",
    "userexperience_alarm",
];

/// What a contact is to the account, stored in `contacts.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    SelfUser,
    Friend,
    Group,
    Official,
    Special,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SelfUser => "self",
            Kind::Friend => "friend",
            Kind::Group => "group",
            Kind::Official => "official",
            Kind::Special => "special",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "self" => Kind::SelfUser,
            "friend" => Kind::Friend,
            "group" => Kind::Group,
            "official" => Kind::Official,
            "special" => Kind::Special,
            _ => return None,
        })
    }
}

pub fn is_group(user_name: &str) -> bool {
    user_name.starts_with("@@")
}

/// Whether a wire record leaves its contact unnamed: a `UserName` that is
/// missing, null or blank. Such an entry cannot be told from any other, is
/// never stored, and a list that holds one does not show who is gone.
pub fn is_unnamed(user_name: &str) -> bool {
    user_name.trim().is_empty()
}

pub fn is_special(user_name: &str) -> bool {
    SPECIAL_ACCOUNTS.contains(&user_name) || user_name.ends_with("@qqim")
}

/// Classifies a contact; `None` for someone who is not in the address book
/// (a stranger seen in a recent chat or as a group member) and for an entry
/// without a name ([`is_unnamed`]).
pub fn classify(c: &RawContact, self_user_name: &str) -> Option<Kind> {
    if is_unnamed(&c.user_name) {
        None
    } else if is_group(&c.user_name) {
        Some(Kind::Group)
    } else if c.user_name == self_user_name {
        Some(Kind::SelfUser)
    } else if is_special(&c.user_name) {
        Some(Kind::Special)
    } else if c.verify_flag & 8 != 0 {
        Some(Kind::Official)
    } else if c.contact_flag & 1 != 0 {
        Some(Kind::Friend)
    } else {
        None
    }
}

/// Whether a change of a column's value is written to `contact_changes`
/// as an `updated` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum History {
    Recorded,
    /// Recorded when the value changed in more than the contact's user name
    /// inside it (the avatar URL names the session's user name; its `seq`
    /// is what marks a new image).
    RecordedApartFromUserName,
    /// Not recorded: a change of user name is a re-link; `raw` and
    /// `encry_chat_room_id` change at every login.
    NotRecorded,
}

/// A column's SQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Text,
    Integer,
}

impl Type {
    pub fn as_sql(self) -> &'static str {
        match self {
            Type::Text => "TEXT",
            Type::Integer => "INTEGER",
        }
    }
}

/// One column of `contacts` that holds a contact's data (the bookkeeping
/// columns, such as `contact_id` and the timestamps, are the store's).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The SQL name, which is also the [`Contact`] field's.
    pub name: &'static str,
    /// The wire object's key the value is read from; `None` for what wxsync
    /// derives (`kind`) or the object itself (`raw`).
    pub wire: Option<&'static str>,
    pub ty: Type,
    pub history: History,
}

/// A column's value in a [`Contact`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Text(&'a str),
    Integer(i64),
}

/// A Rust type a column holds.
trait Stored: Sized {
    const TYPE: Type;
    fn value(&self) -> Value<'_>;
    /// The Rust value of a stored one; `None` for a value of another type.
    fn from_value(v: Value<'_>) -> Option<Self>;
    /// Changes the value to another valid one (tests of every column).
    #[cfg(test)]
    fn vary(&mut self);
}

impl Stored for String {
    const TYPE: Type = Type::Text;
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
    fn from_value(v: Value<'_>) -> Option<Self> {
        match v {
            Value::Text(t) => Some(t.to_owned()),
            Value::Integer(_) => None,
        }
    }
    #[cfg(test)]
    fn vary(&mut self) {
        self.push('~');
    }
}

impl Stored for i64 {
    const TYPE: Type = Type::Integer;
    fn value(&self) -> Value<'_> {
        Value::Integer(*self)
    }
    fn from_value(v: Value<'_>) -> Option<Self> {
        match v {
            Value::Integer(i) => Some(i),
            Value::Text(_) => None,
        }
    }
    #[cfg(test)]
    fn vary(&mut self) {
        *self += 1;
    }
}

impl Stored for Kind {
    const TYPE: Type = Type::Text;
    fn value(&self) -> Value<'_> {
        Value::Text(self.as_str())
    }
    fn from_value(v: Value<'_>) -> Option<Self> {
        match v {
            Value::Text(t) => Kind::parse(t),
            Value::Integer(_) => None,
        }
    }
    #[cfg(test)]
    fn vary(&mut self) {
        *self = match self {
            Kind::Official => Kind::Friend,
            _ => Kind::Official,
        };
    }
}

/// Declares the contact columns once: the [`Contact`] fields, how each is
/// made from the wire record (`|record, kind| value`), and [`COLUMNS`], from
/// which the store writes every statement that names them. A column added
/// here (with its migration) reaches the stage, the digest, the write and
/// the history without another edit.
macro_rules! contact_columns {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty, wire $wire:expr, |$c:pat_param, $k:pat_param| $from:expr,
        $history:ident;
    )*) => {
        /// A contact as stored in `contacts` (without the bookkeeping columns).
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Contact {
            $($(#[doc = $doc])* pub $name: $ty,)*
        }

        /// Every column of [`Contact`], in declaration order (the order of
        /// [`Contact::values`] and of `updated` history rows).
        pub const COLUMNS: &[Column] = &[$(Column {
            name: stringify!($name),
            wire: $wire,
            ty: <$ty as Stored>::TYPE,
            history: History::$history,
        },)*];

        impl Contact {
            /// Decodes a wire contact; `None` when [`classify`] leaves it out.
            pub fn from_raw(c: &RawContact, self_user_name: &str) -> Option<Contact> {
                let kind = classify(c, self_user_name)?;
                Some(Contact {
                    $($name: {
                        let $c: &RawContact = c;
                        let $k: Kind = kind;
                        $from
                    },)*
                })
            }

            /// The values in [`COLUMNS`] order.
            pub fn values(&self) -> [Value<'_>; COLUMNS.len()] {
                [$(self.$name.value(),)*]
            }

            /// A contact from its stored values: `read` gives each column's
            /// (in [`COLUMNS`] order); `invalid` is the error for a value
            /// that is not the column's type (or not a kind).
            pub fn from_values<'v, E>(
                mut read: impl FnMut(&Column) -> Result<Value<'v>, E>,
                invalid: impl Fn(&Column) -> E,
            ) -> Result<Contact, E> {
                let mut columns = COLUMNS.iter();
                Ok(Contact {
                    $($name: {
                        let column = columns.next().expect("one column per field");
                        <$ty as Stored>::from_value(read(column)?).ok_or_else(|| invalid(column))?
                    },)*
                })
            }

            /// Changes the value of the column `name` to another valid one.
            #[cfg(test)]
            pub(crate) fn vary(&mut self, name: &str) {
                match name {
                    $(stringify!($name) => self.$name.vary(),)*
                    _ => panic!("no contact column {name}"),
                }
            }
        }
    };
}

contact_columns! {
    /// The protocol's `UserName` (`@…` user, `@@…` group): the row's key.
    user_name: String, wire Some("UserName"), |c, _| c.user_name.clone(), NotRecorded;
    kind: Kind, wire None, |_, kind| kind, Recorded;
    nick_name: String, wire Some("NickName"), |c, _| text::decode_text(&c.nick_name), Recorded;
    remark_name: String, wire Some("RemarkName"), |c, _| text::decode_text(&c.remark_name),
        Recorded;
    alias: String, wire Some("Alias"), |c, _| text::decode_text(&c.alias), Recorded;
    signature: String, wire Some("Signature"), |c, _| text::decode_text(&c.signature), Recorded;
    province: String, wire Some("Province"), |c, _| text::decode_text(&c.province), Recorded;
    city: String, wire Some("City"), |c, _| text::decode_text(&c.city), Recorded;
    sex: i64, wire Some("Sex"), |c, _| c.sex, Recorded;
    verify_flag: i64, wire Some("VerifyFlag"), |c, _| c.verify_flag, Recorded;
    contact_flag: i64, wire Some("ContactFlag"), |c, _| c.contact_flag, Recorded;
    star_friend: i64, wire Some("StarFriend"), |c, _| c.star_friend, Recorded;
    member_count: i64, wire Some("MemberCount"), |c, _| c.member_count, Recorded;
    head_img_url: String, wire Some("HeadImgUrl"), |c, _| text::strip_skey(&c.head_img_url),
        RecordedApartFromUserName;
    encry_chat_room_id: String, wire Some("EncryChatRoomId"), |c, _| c.encry_chat_room_id.clone(),
        NotRecorded;
    /// The wire object as JSON, skey stripped and MemberList left out.
    raw: String, wire None, |c, _| c.raw.clone(), NotRecorded;
}

/// One row of `memberships`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user_name: String,
    pub nick_name: String,
    pub display_name: String,
    pub attr_status: i64,
}

impl Member {
    pub fn from_raw(m: &RawMember) -> Member {
        Member {
            user_name: m.user_name.clone(),
            nick_name: text::decode_text(&m.nick_name),
            display_name: text::decode_text(&m.display_name),
            attr_status: m.attr_status,
        }
    }

    /// Decodes a group's member list; a name listed twice is kept once.
    /// `None` when a member has no name: such a list cannot say who left,
    /// so it must not replace the stored one.
    pub fn list_from(raw: &[RawMember]) -> Option<Vec<Member>> {
        if raw.iter().any(|m| is_unnamed(&m.user_name)) {
            return None;
        }
        let mut seen = std::collections::HashSet::new();
        Some(
            raw.iter()
                .filter(|m| seen.insert(m.user_name.as_str()))
                .map(Member::from_raw)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(user_name: &str, verify_flag: i64, contact_flag: i64) -> RawContact {
        RawContact {
            user_name: user_name.into(),
            verify_flag,
            contact_flag,
            ..RawContact::default()
        }
    }

    #[test]
    fn every_kind_is_recognised() {
        let me = "@me";
        assert_eq!(classify(&raw("@@room", 0, 0), me), Some(Kind::Group));
        assert_eq!(classify(&raw("@me", 0, 0), me), Some(Kind::SelfUser));
        assert_eq!(classify(&raw("filehelper", 0, 0), me), Some(Kind::Special));
        assert_eq!(classify(&raw("weixin", 56, 3), me), Some(Kind::Special));
        assert_eq!(classify(&raw("12345@qqim", 0, 1), me), Some(Kind::Special));
        for flag in [8, 24, 56] {
            assert_eq!(classify(&raw("@mp", flag, 3), me), Some(Kind::Official));
        }
        assert_eq!(classify(&raw("@friend", 0, 3), me), Some(Kind::Friend));
        assert_eq!(classify(&raw("@starred", 0, 67), me), Some(Kind::Friend));
    }

    #[test]
    fn strangers_are_not_contacts() {
        assert_eq!(classify(&raw("@stranger", 0, 0), "@me"), None);
        assert_eq!(classify(&raw("@chat_only", 0, 2), "@me"), None);
    }

    #[test]
    fn an_entry_without_a_name_is_nothing_and_spoils_its_member_list() {
        for blank in ["", " "] {
            assert_eq!(classify(&raw(blank, 0, 3), ""), None);
            assert_eq!(classify(&raw(blank, 0, 3), "@me"), None);
        }
        let member = |u: &str| RawMember {
            user_name: u.into(),
            ..RawMember::default()
        };
        assert_eq!(
            Member::list_from(&[member("@a"), member("@a")]).map(|l| l.len()),
            Some(1)
        );
        assert_eq!(Member::list_from(&[member("@a"), member("")]), None);
    }

    #[test]
    fn verify_flag_without_bit_8_is_not_official() {
        assert_eq!(classify(&raw("@p", 16, 3), "@me"), Some(Kind::Friend));
    }

    #[test]
    fn a_contact_is_read_back_from_its_values_and_a_wrong_type_is_named() {
        let c = Contact::from_raw(&raw("@f", 0, 3), "@me").unwrap();
        let values = c.values();
        let mut i = 0;
        let read = Contact::from_values(
            |_| {
                i += 1;
                Ok::<_, String>(values[i - 1])
            },
            |col| col.name.to_owned(),
        );
        assert_eq!(read.as_ref(), Ok(&c));
        let mut i = 0;
        let wrong = Contact::from_values(
            |col| {
                i += 1;
                Ok::<_, String>(if col.name == "sex" {
                    Value::Text("2")
                } else {
                    values[i - 1]
                })
            },
            |col| col.name.to_owned(),
        );
        assert_eq!(wrong, Err("sex".to_owned()));
    }

    #[test]
    fn kind_round_trips_through_text() {
        for k in [
            Kind::SelfUser,
            Kind::Friend,
            Kind::Group,
            Kind::Official,
            Kind::Special,
        ] {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn names_are_decoded_and_skey_dropped() {
        let c = RawContact {
            user_name: "@f".into(),
            contact_flag: 3,
            nick_name: r#"Tom &amp; <span class="emoji emoji1f604"></span>"#.into(),
            head_img_url: "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=1&username=@f&skey=@crypt_x"
                .into(),
            ..RawContact::default()
        };
        let d = Contact::from_raw(&c, "@me").unwrap();
        assert_eq!(d.nick_name, "Tom & 😄");
        assert!(!d.head_img_url.contains("skey"));
        assert!(d.head_img_url.contains("seq=1"));
    }

    /// Every contact column with a wire key is read from that key: a field
    /// missing from the record's setter fails here.
    #[test]
    fn every_contact_column_is_read_from_its_wire_key() {
        use super::Value as Column;
        use crate::webwx::read_contact;
        use serde_json::{Value, json};
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
        let raw = read_contact(&Value::Object(object).to_string()).unwrap();
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
