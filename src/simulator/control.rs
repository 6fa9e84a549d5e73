//! The control API under `/__sim/`: the account, the call log, and the
//! phone's scan and confirm, for scripts driving `wxsync simulate`.

use std::borrow::Cow;

use super::address_book::AddressBook;
use super::http::{Reply, Req};
use super::state::Shared;

pub(super) fn control_api(inner: &Shared, path: &str, req: &Req) -> Reply {
    let ok = || Reply::plain(200, "application/json", "{\"ok\":true}");
    match (req.method.as_str(), path) {
        ("GET", "account") => {
            let mut r = Reply::json(&inner.with_book(AddressBook::snapshot), 0);
            r.content_type = Cow::Borrowed("application/json");
            r.ret = None;
            r
        }
        ("GET", "calls") => {
            let mut r = Reply::json(&inner.calls(), 0);
            r.content_type = Cow::Borrowed("application/json");
            r.ret = None;
            r
        }
        ("POST", "scan") => {
            inner.phone(false);
            ok()
        }
        ("POST", "confirm") => {
            inner.phone(true);
            ok()
        }
        _ => Reply::plain(404, "text/plain", "unknown control path"),
    }
}
