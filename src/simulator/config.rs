//! Size and behaviour of a simulated account: what `SimConfig` generates,
//! and what the simulated phone and server do.

use std::time::Duration;

/// Size and behaviour of the simulated account.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Everything generated (names, groups, members) follows from this seed.
    pub seed: u64,
    /// Plain friends (`ContactFlag & 1`).
    pub friends: usize,
    /// Official accounts (VerifyFlag 8/24/56, KeyWord `gh_`).
    pub officials: usize,
    /// Groups saved to contacts: listed by webwxgetcontact with an empty MemberList.
    pub saved_groups: usize,
    /// Groups known only from webwxinit's ContactList and/or ChatSet.
    pub unsaved_groups: usize,
    /// Groups have between `min_group_members` and this many members (at
    /// most 500, the real cap); the first has exactly this many.
    pub max_group_members: usize,
    /// The smallest generated group (at least 3). Set it to
    /// `max_group_members` for groups all of one size.
    pub min_group_members: usize,
    /// Pairs of friends identical in every visible field (names, remark,
    /// alias, sex, place, signature, avatar seq, flags, group cards), who
    /// differ only in the real id that MsgType 51 could reveal.
    pub lookalikes: usize,
    /// Whom the MsgType 51 after webwxstatusnotify names.
    pub status_notify: StatusNotify,
    /// How many times that MsgType 51 set is sent (real servers repeat it, up to 3 times).
    pub status_notify_copies: u32,
    /// webwxgetcontact page size.
    pub page_size: usize,
    /// How long the login poll and synccheck hold when nothing happens.
    pub long_poll: Duration,
    /// The simulated phone scans, then confirms, by itself.
    pub auto_confirm: bool,
}

impl Default for SimConfig {
    /// A realistic mid-size account.
    fn default() -> Self {
        SimConfig {
            seed: 1,
            friends: 300,
            officials: 10,
            saved_groups: 30,
            unsaved_groups: 10,
            max_group_members: 500,
            min_group_members: 3,
            lookalikes: 0,
            status_notify: StatusNotify::Recent,
            status_notify_copies: 2,
            page_size: 200,
            long_poll: Duration::from_secs(25),
            auto_confirm: true,
        }
    }
}

/// Coverage of the MsgType 51 (StatusNotifyCode 4) message that follows
/// `webwxstatusnotify`: session UserNames in `StatusNotifyUserName`, real ids
/// in `Content`, in the same order, split over several messages when long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatusNotify {
    /// No MsgType 51 at all (reported nearly useless since 2018).
    Off,
    /// The init ContactList and the recent chats (ChatSet).
    Recent,
    /// This share (0.0–1.0) of all contacts and groups, drawn per login.
    Share(f64),
}

/// What the phone does with a push login (`webwxpushloginurl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushLogin {
    /// The uuid is issued and the phone confirms: by itself under
    /// [`SimConfig::auto_confirm`], else on [`Simulator::confirm`].
    #[default]
    Confirm,
    /// The uuid is issued but the phone never answers: the poll keeps answering 408.
    Ignore,
    /// The server refuses the call (`{"ret":"2","msg":"antispam"}`).
    Refuse,
}
