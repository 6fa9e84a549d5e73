//! Wire types and reply parsing. JSON replies are parsed straight from the
//! received bytes into typed records: [`lenient`] is the serde kit they are
//! read with, [`contact`] the contact record, [`reply`] each endpoint's
//! reply, and [`js`] the small JavaScript replies of the login and push
//! endpoints.

mod contact;
mod js;
mod lenient;
mod reply;

#[cfg(test)]
pub(crate) use contact::read_contact;
pub use contact::{RawContact, RawMember};
pub(crate) use js::{parse_login_poll, parse_qrlogin, parse_synccheck};
pub(crate) use lenient::{Record, lenient_string};
#[cfg(test)]
pub(crate) use reply::SyncPair;
pub(crate) use reply::{
    BareReply, BatchWire, ContactPageWire, InitWire, SyncKey, SyncWire, WireMsg, parse_reply, utf8,
};
