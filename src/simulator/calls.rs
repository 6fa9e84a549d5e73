//! The protocol's endpoints, the faults a test can queue for them, and the
//! record of each call the server received.

use std::time::Duration;

use serde::Serialize;

/// The endpoints of the protocol, as recorded in [`Call`] and targeted by [`Simulator::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Endpoint {
    JsLogin,
    LoginPoll,
    NewLoginPage,
    Init,
    StatusNotify,
    GetContact,
    BatchGetContact,
    OpLog,
    SyncCheck,
    Sync,
    /// `webwxlogout`.
    Logout,
    /// `webwxpushloginurl`: a login confirmed on the phone without a QR code.
    PushLogin,
    /// `webwxgeticon`: a person's avatar.
    GetIcon,
    /// `webwxgetheadimg`: a group's avatar.
    GetHeadImg,
    /// Any other path (answered 404).
    Other,
}

/// A fault injected into the next calls of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Plain HTML error page with this status.
    Http(u16),
    /// Wait, then answer normally.
    Delay(Duration),
    /// The normal body cut in half.
    Truncated,
    /// The normal status and headers with no body at all (what the live
    /// avatar endpoints send now and then).
    Empty,
    /// BaseResponse.Ret (synccheck retcode, login `window.code`); 1100/1101/1102 also end the session.
    Ret(i64),
    /// The ticket step's XML `ret` (e.g. 1203); elsewhere the same as [`Fault::Ret`].
    LoginRet(i64),
    /// The connection is closed without a reply.
    Reset,
    /// This reply instead of the normal one, byte for byte (any status,
    /// content type and body, invalid UTF-8 included).
    Custom {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// A well-formed JSON reply of exactly `bytes` bytes, its list padded with
    /// copies of one record, generated while it is sent (never held whole).
    /// With `chunked` there is no Content-Length.
    Huge { bytes: u64, chunked: bool },
    /// webwxgetcontact: the reply's `Seq` is a fresh token that goes on (from
    /// the top of the list once it runs out) instead of 0.
    EndlessSeq,
    /// webwxbatchgetcontact: the reply also carries this many live groups
    /// that were not asked for.
    UnaskedGroups(usize),
    /// webwxbatchgetcontact: the first group asked for comes back with this
    /// many members (made up for the reply, beyond the real cap of 500).
    HugeGroup(usize),
    /// Ret 0, but in every list the reply carries (`ContactList`,
    /// `MemberList`, `ModContactList`, `DelContactList`, and each entry's
    /// own `MemberList`) the first this many entries have `"UserName": null`
    /// and `"NickName": null`.
    Unnamed(usize),
    /// Ret 0, but the first this many entries of each list are left out:
    /// on webwxbatchgetcontact, groups it was asked for (all of them: an
    /// empty `ContactList`).
    LeftOut(usize),
    /// Ret 0 with every contact list of the reply empty (`Seq` 0, an empty
    /// `ChatSet`): the webwxgetcontact answer that once marked nearly
    /// everyone deleted.
    EmptyList,
    /// webwxinit and webwxsync: the reply's `SKey` is a new skey, which
    /// replaces the session's (the old one answers Ret 1100 from then on).
    NewSkey,
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub endpoint: Endpoint,
    pub method: String,
    pub query: String,
    pub body: String,
    /// The raw `Cookie` header ('' when none).
    pub cookies: String,
    pub headers: Vec<(String, String)>,
    /// HTTP status of the reply (0 while a long poll is still held, or when
    /// the connection was reset).
    pub status: u16,
    /// BaseResponse.Ret, synccheck retcode, login code or the ticket XML ret.
    pub ret: Option<i64>,
}
