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

pub fn is_special(user_name: &str) -> bool {
    SPECIAL_ACCOUNTS.contains(&user_name) || user_name.ends_with("@qqim")
}

/// Classifies a contact; `None` for someone who is not in the address book
/// (a stranger seen in a recent chat or as a group member).
pub fn classify(c: &RawContact, self_user_name: &str) -> Option<Kind> {
    if is_group(&c.user_name) {
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

/// A contact as stored in `contacts` (without the bookkeeping timestamps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub user_name: String,
    pub kind: Kind,
    pub nick_name: String,
    pub remark_name: String,
    pub alias: String,
    pub signature: String,
    pub province: String,
    pub city: String,
    pub head_img_url: String,
    pub sex: i64,
    pub verify_flag: i64,
    pub contact_flag: i64,
    pub star_friend: i64,
    pub member_count: i64,
    pub encry_chat_room_id: String,
    /// The wire object as JSON, skey stripped and MemberList left out.
    pub raw: String,
}

impl Contact {
    /// Decodes a wire contact; `None` when [`classify`] leaves it out.
    pub fn from_raw(c: &RawContact, self_user_name: &str) -> Option<Contact> {
        let kind = classify(c, self_user_name)?;
        Some(Contact {
            user_name: c.user_name.clone(),
            kind,
            nick_name: text::decode_text(&c.nick_name),
            remark_name: text::decode_text(&c.remark_name),
            alias: text::decode_text(&c.alias),
            signature: text::decode_text(&c.signature),
            province: text::decode_text(&c.province),
            city: text::decode_text(&c.city),
            head_img_url: text::strip_skey(&c.head_img_url),
            sex: c.sex,
            verify_flag: c.verify_flag,
            contact_flag: c.contact_flag,
            star_friend: c.star_friend,
            member_count: c.member_count,
            encry_chat_room_id: c.encry_chat_room_id.clone(),
            raw: c.raw.clone(),
        })
    }
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
    pub fn list_from(raw: &[RawMember]) -> Vec<Member> {
        let mut seen = std::collections::HashSet::new();
        raw.iter()
            .filter(|m| seen.insert(m.user_name.as_str()))
            .map(Member::from_raw)
            .collect()
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
    fn verify_flag_without_bit_8_is_not_official() {
        assert_eq!(classify(&raw("@p", 16, 3), "@me"), Some(Kind::Friend));
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
}
