//! A snapshot of the simulated account (`Simulator::account`): every
//! contact, group and member with its sim id, real id and current UserName,
//! so tests can score a matcher against the truth.

use serde::Serialize;

/// Snapshot of the simulated account, with the current login's UserNames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub self_user: SimContact,
    /// Everything webwxgetcontact lists except the self user and groups.
    pub contacts: Vec<SimContact>,
    /// Every group that exists, saved or not.
    pub groups: Vec<SimGroup>,
    /// The ChatSet UserNames, in order.
    pub chat_set: Vec<String>,
    /// The look-alike friends, as pairs of sim ids.
    pub lookalikes: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SimKind {
    Friend,
    Official,
    Special,
    Self_,
    Group,
    /// A group member who is not a contact.
    Stranger,
}

/// A contact as the server holds it; text fields are wire text (emoji spans, entities).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimContact {
    /// The simulator's id of this person: the same in every login.
    pub sim_id: u64,
    /// The permanent id (`wxid_…`, a custom id, `gh_…`, `filehelper`).
    pub real_id: String,
    pub user_name: String,
    pub nick_name: String,
    pub remark_name: String,
    pub kind: SimKind,
    pub verify_flag: i64,
    pub contact_flag: i64,
    pub sex: i64,
    pub star_friend: i64,
    pub province: String,
    pub city: String,
    pub signature: String,
    pub alias: String,
    /// wxuin for the self user, 0 for everyone else.
    pub uin: i64,
    /// The `seq` in HeadImgUrl; changes only with the avatar.
    pub avatar_seq: u64,
    pub attr_status: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimGroup {
    pub sim_id: u64,
    /// `NNN@chatroom`.
    pub real_id: String,
    pub user_name: String,
    /// Issued anew at every login, like the UserName.
    pub encry_chat_room_id: String,
    pub nick_name: String,
    pub avatar_seq: u64,
    /// Saved to contacts: listed by webwxgetcontact.
    pub saved: bool,
    /// In webwxinit's ContactList.
    pub in_init: bool,
    /// In webwxinit's ChatSet.
    pub in_chat_set: bool,
    pub members: Vec<SimMember>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimMember {
    /// The person's sim id (the same as their [`SimContact::sim_id`] when a contact).
    pub sim_id: u64,
    pub real_id: String,
    pub user_name: String,
    pub nick_name: String,
    pub display_name: String,
    pub attr_status: i64,
}
