//! Keys the caller derives from rows before matching: the avatar `seq`, the
//! 64-bit keys of group members and group cards, and the [`Text`] that
//! stands for a field's value.
//!
//! The keys are FNV-1a 64 (the `fnv` crate) over a one-byte tag followed by
//! each part's UTF-8 bytes and a `0xFF` byte after each part. `0xFF` never
//! occurs in UTF-8, so no two different part lists hash the same input, and
//! the tag keeps the three kinds of key apart. FNV-1a is fixed by its
//! specification, so a key computed today equals one computed by another
//! build or another run (std's `DefaultHasher` is seeded per process).

use std::hash::Hasher;

use fnv::FnvHasher;

const CONTACT: u8 = b'c';
const STRANGER: u8 = b's';
const CARD: u8 = b'd';
const TEXT: u8 = b't';

fn key(tag: u8, parts: &[&[u8]]) -> u64 {
    let mut h = FnvHasher::default();
    h.write_u8(tag);
    for part in parts {
        h.write(part);
        h.write_u8(0xFF);
    }
    h.finish()
}

/// A group member who is a linked contact: keyed by the cache's
/// `contact_id`, so the key survives a rename.
pub fn contact_member_key(contact_id: i64) -> u64 {
    key(CONTACT, &[&contact_id.to_le_bytes()])
}

/// Any other member: keyed by what the group shows of them.
pub fn stranger_member_key(nick_name: &str, display_name: &str) -> u64 {
    key(STRANGER, &[nick_name.as_bytes(), display_name.as_bytes()])
}

/// A person's card in one group: the group's name and their DisplayName there.
pub fn card_key(group_nick: &str, display_name: &str) -> u64 {
    key(CARD, &[group_nick.as_bytes(), display_name.as_bytes()])
}

/// A field's value as the matcher weighs it: whether it is set and which
/// text it is (its 64-bit key), not the text itself. Rows are only ever
/// compared for equal values, and a re-link holds every contact of two
/// logins at once, whose text would take several times the memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(u64);

impl Text {
    /// No value: the empty text.
    pub const EMPTY: Text = Text(0);

    pub fn new(text: &str) -> Text {
        match text.is_empty() {
            true => Text::EMPTY,
            false => Text(key(TEXT, &[text.as_bytes()]).max(1)),
        }
    }

    pub fn is_empty(self) -> bool {
        self == Text::EMPTY
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text::new(text)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::new(&text)
    }
}

/// A nick name as the matcher weighs it: its [`Text`], and that of the
/// same name without decoration (see [`name_core`]; empty when nothing is
/// left).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nick {
    pub text: Text,
    pub core: Text,
}

impl From<&str> for Nick {
    fn from(name: &str) -> Nick {
        Nick {
            text: Text::new(name),
            core: name_core(name).map_or(Text::EMPTY, Text::from),
        }
    }
}

impl From<String> for Nick {
    fn from(name: String) -> Nick {
        Nick::from(name.as_str())
    }
}

/// The `seq` query parameter of a HeadImgUrl, as given (`None` when it has
/// none): it stays across logins and changes with the avatar.
pub fn head_img_seq(head_img_url: &str) -> Option<String> {
    let (_, query) = head_img_url.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "seq")
        .map(|(_, v)| v.into_owned())
}

/// The `seq` of a HeadImgUrl as identity evidence: `None` when absent,
/// empty or `0` (the real servers give groups `seq=0`, which names no
/// avatar).
pub fn avatar_seq(head_img_url: &str) -> Option<String> {
    head_img_seq(head_img_url).filter(|v| !v.is_empty() && v != "0")
}

/// A nick name without what people add and drop around it: emoji, symbols,
/// spaces and letter case. `None` when nothing is left.
fn name_core(name: &str) -> Option<String> {
    let core: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    (!core.is_empty()).then_some(core)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_read_from_the_query() {
        let url = "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=620371234&username=@ab&skey=";
        assert_eq!(avatar_seq(url).as_deref(), Some("620371234"));
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgeticon?username=@ab&seq=7").as_deref(),
            Some("7")
        );
    }

    #[test]
    fn no_seq_or_seq_zero_is_no_avatar_id() {
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgetheadimg?seq=0&username=@@x"),
            None
        );
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgeticon?username=@ab"),
            None
        );
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgeticon?seq=&username=@ab"),
            None
        );
        assert_eq!(avatar_seq(""), None);
    }

    #[test]
    fn keys_are_fixed_values() {
        // FNV-1a 64 of the documented input, so a change of hash shows here.
        assert_eq!(key(b'x', &[]), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            h ^= u64::from(b'x');
            h.wrapping_mul(0x0000_0100_0000_01b3)
        });
        assert_eq!(contact_member_key(42), contact_member_key(42));
        assert_ne!(contact_member_key(42), contact_member_key(43));
    }

    #[test]
    fn parts_and_kinds_do_not_run_together() {
        assert_ne!(
            stranger_member_key("ab", "c"),
            stranger_member_key("a", "bc")
        );
        assert_ne!(stranger_member_key("Tom", ""), card_key("Tom", ""));
        assert_ne!(card_key("家", "Tom"), card_key("家", "Tim"));
    }

    #[test]
    fn text_tells_values_apart_and_empty_is_no_value() {
        assert_eq!(Text::new("Tom"), Text::from(String::from("Tom")));
        assert_ne!(Text::new("Tom"), Text::new("Tim"));
        assert!(Text::new("").is_empty());
        assert!(!Text::new("Tom").is_empty());
        let nick = Nick::from("Tom 😄");
        assert_eq!(nick.core, Nick::from("tom").core);
        assert_ne!(nick.text, Nick::from("tom").text);
        assert!(Nick::from("🎉").core.is_empty());
    }

    #[test]
    fn name_core_drops_decoration() {
        assert_eq!(name_core("Tom 😄").as_deref(), Some("tom"));
        assert_eq!(name_core("王伟🌞"), name_core("王伟"));
        assert_eq!(name_core("🎉"), None);
    }
}
