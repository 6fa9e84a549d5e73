//! The MsgType 51 map: after `webwxstatusnotify` the server may send a
//! message (StatusNotifyCode 4) listing recent chats twice in the same
//! order: their session names in `StatusNotifyUserName`, and their real,
//! permanent ids (`wxid_…`, `…@chatroom`, `gh_…`, or an old custom id) in the
//! HTML-escaped XML of `Content`. It is the only stable id web WeChat shows.
//!
//! Real ids identify people across logins, so they are logged at debug
//! level at most, and only counted otherwise.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::wire::WireMsg;

/// A session `UserName` and the real id the server paired it with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RealId {
    pub user_name: String,
    pub real_id: String,
}

const MSG_TYPE_STATUS_NOTIFY: i64 = 51;
const CODE_SYNC_CONVERSATIONS: i64 = 4;

/// The pairs of every MsgType 51 / code 4 message, in order. A message
/// whose two lists differ in length pairs nothing (a wrong pair is worse
/// than none); a position whose real id is not plausible is skipped. The
/// server repeats the message, so a pair seen twice is kept once; a name or
/// a real id paired two different ways is dropped.
pub(crate) fn pair(messages: &[WireMsg]) -> Vec<RealId> {
    let mut pairs: Vec<RealId> = Vec::new();
    let mut seen = HashSet::new();
    for msg in messages.iter().filter(|m| {
        m.msg_type == MSG_TYPE_STATUS_NOTIFY && m.status_notify_code == CODE_SYNC_CONVERSATIONS
    }) {
        let Some(ids) = ids_in_content(&msg.content) else {
            tracing::warn!("a MsgType 51 message has no readable <username> list; ignored");
            continue;
        };
        let names = split_list(&msg.status_notify_user_name);
        let ids = split_list(&ids);
        if names.len() != ids.len() {
            tracing::warn!(
                names = names.len(),
                real_ids = ids.len(),
                "a MsgType 51 message lists different numbers of names and real ids; none paired"
            );
            continue;
        }
        for (name, id) in names.into_iter().zip(ids) {
            if name.is_empty() || !is_real_id(id) {
                continue;
            }
            let pair = RealId {
                user_name: name.to_owned(),
                real_id: id.to_owned(),
            };
            if seen.insert(pair.clone()) {
                pairs.push(pair);
            }
        }
    }
    let mut per_name: HashMap<&str, usize> = HashMap::new();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for p in &pairs {
        *per_name.entry(&p.user_name).or_default() += 1;
        *per_id.entry(&p.real_id).or_default() += 1;
    }
    let unique =
        |p: &RealId| per_name[p.user_name.as_str()] == 1 && per_id[p.real_id.as_str()] == 1;
    let conflicting = pairs.iter().filter(|p| !unique(p)).count();
    if conflicting > 0 {
        tracing::warn!(
            pairs = conflicting,
            "MsgType 51 messages disagree about some names; those are not paired"
        );
    }
    let kept: Vec<RealId> = pairs.iter().filter(|p| unique(p)).cloned().collect();
    if !kept.is_empty() {
        tracing::debug!(pairs = kept.len(), "MsgType 51 map received");
    }
    kept
}

/// The text of `<msg><op><username>` in a message's `Content`, which
/// arrives HTML-escaped with `<br/>` between the lines.
fn ids_in_content(content: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Msg {
        op: Op,
    }
    #[derive(Deserialize)]
    struct Op {
        username: String,
    }
    let xml = html_escape::decode_html_entities(&content.replace("<br/>", "\n")).into_owned();
    quick_xml::de::from_str::<Msg>(xml.trim())
        .ok()
        .map(|m| m.op.username)
}

/// A comma-separated list; one trailing comma is not an entry.
fn split_list(list: &str) -> Vec<&str> {
    let list = list.trim();
    let list = list.strip_suffix(',').unwrap_or(list);
    list.split(',').map(str::trim).collect()
}

/// Real ids are printable ASCII; a session name (`@…`) or an empty entry
/// means the lists are not what this map expects.
fn is_real_id(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('@') && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(ids: &str) -> String {
        format!(
            "&lt;msg&gt;<br/>&lt;op id='4'&gt;<br/>&lt;username&gt;{ids}&lt;/username&gt;<br/>\
             &lt;unreadchatlist&gt;<br/>&lt;chat&gt;<br/>&lt;username&gt;wxid_other&lt;/username&gt;<br/>\
             &lt;lastreadtime&gt;1700000000&lt;/lastreadtime&gt;<br/>&lt;/chat&gt;<br/>\
             &lt;/unreadchatlist&gt;<br/>&lt;unreadfunctionlist&gt;<br/>&lt;/unreadfunctionlist&gt;<br/>\
             &lt;/op&gt;<br/>&lt;/msg&gt;"
        )
    }

    fn msg(names: &str, ids: &str) -> WireMsg {
        WireMsg {
            msg_type: 51,
            status_notify_code: 4,
            status_notify_user_name: names.into(),
            content: content(ids),
        }
    }

    fn pairs(messages: &[WireMsg]) -> Vec<(String, String)> {
        pair(messages)
            .into_iter()
            .map(|p| (p.user_name, p.real_id))
            .collect()
    }

    fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn names_and_ids_are_paired_in_order() {
        let got = pairs(&[msg(
            "@aa,@@gg,@oo,filehelper,",
            "wxid_a,123@chatroom,gh_x,filehelper",
        )]);
        assert_eq!(
            got,
            owned(&[
                ("@aa", "wxid_a"),
                ("@@gg", "123@chatroom"),
                ("@oo", "gh_x"),
                ("filehelper", "filehelper")
            ])
        );
    }

    #[test]
    fn lists_of_different_lengths_pair_nothing() {
        assert!(pairs(&[msg("@aa,@bb", "wxid_a")]).is_empty());
        assert!(pairs(&[msg("@aa", "wxid_a,wxid_b")]).is_empty());
        // Another message in the same reply still counts.
        assert_eq!(
            pairs(&[msg("@aa,@bb", "wxid_a"), msg("@cc", "wxid_c")]),
            owned(&[("@cc", "wxid_c")])
        );
    }

    #[test]
    fn implausible_real_ids_are_skipped_in_place() {
        assert_eq!(
            pairs(&[msg("@aa,@bb,@cc,@dd,", "@bb,,wxid_c,bad id")]),
            owned(&[("@cc", "wxid_c")])
        );
    }

    #[test]
    fn repeated_messages_pair_once_and_contradictions_pair_nothing() {
        let m = msg("@aa,@bb", "wxid_a,wxid_b");
        assert_eq!(
            pairs(&[m, msg("@aa,@bb", "wxid_a,wxid_b")]),
            owned(&[("@aa", "wxid_a"), ("@bb", "wxid_b")])
        );
        assert_eq!(
            pairs(&[
                msg("@aa,@bb", "wxid_a,wxid_b"),
                msg("@aa,@cc", "wxid_x,wxid_b")
            ]),
            Vec::<(String, String)>::new()
        );
    }

    #[test]
    fn other_messages_and_unreadable_content_pair_nothing() {
        let mut other = msg("@aa", "wxid_a");
        other.status_notify_code = 2;
        let mut text = msg("@aa", "wxid_a");
        text.msg_type = 1;
        let mut garbage = msg("@aa", "wxid_a");
        garbage.content = "&lt;msg&gt;&lt;op".into();
        let mut plain = msg("@aa", "wxid_a");
        plain.content = "wxid_a".into();
        assert!(pairs(&[other, text, garbage, plain]).is_empty());
    }

    #[test]
    fn content_is_unescaped_before_parsing() {
        assert_eq!(
            ids_in_content(&content("wxid_a,123@chatroom,gh_x")).as_deref(),
            Some("wxid_a,123@chatroom,gh_x")
        );
    }
}
