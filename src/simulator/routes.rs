//! Which handler answers which path and method.

use axum::http::Method;

use super::api::{
    avatar, batch_get_contact, get_contact, init, oplog, status_notify, sync, synccheck,
};
use super::calls::{Endpoint, Fault};
use super::http::{Reply, Req};
use super::login::{jslogin, login_poll, logout, push_login, ticket};
use super::state::Shared;

pub(super) fn endpoint_of(path: &str) -> Endpoint {
    match path {
        "/jslogin" => Endpoint::JsLogin,
        "/cgi-bin/mmwebwx-bin/login" => Endpoint::LoginPoll,
        "/cgi-bin/mmwebwx-bin/webwxnewloginpage" => Endpoint::NewLoginPage,
        "/cgi-bin/mmwebwx-bin/webwxinit" => Endpoint::Init,
        "/cgi-bin/mmwebwx-bin/webwxstatusnotify" => Endpoint::StatusNotify,
        "/cgi-bin/mmwebwx-bin/webwxgetcontact" => Endpoint::GetContact,
        "/cgi-bin/mmwebwx-bin/webwxbatchgetcontact" => Endpoint::BatchGetContact,
        "/cgi-bin/mmwebwx-bin/webwxoplog" => Endpoint::OpLog,
        "/cgi-bin/mmwebwx-bin/synccheck" => Endpoint::SyncCheck,
        "/cgi-bin/mmwebwx-bin/webwxsync" => Endpoint::Sync,
        "/cgi-bin/mmwebwx-bin/webwxlogout" => Endpoint::Logout,
        "/cgi-bin/mmwebwx-bin/webwxpushloginurl" => Endpoint::PushLogin,
        "/cgi-bin/mmwebwx-bin/webwxgeticon" => Endpoint::GetIcon,
        "/cgi-bin/mmwebwx-bin/webwxgetheadimg" => Endpoint::GetHeadImg,
        _ => Endpoint::Other,
    }
}

/// The normal reply; `shape` is a fault that changes what the reply holds
/// ([`Fault::EndlessSeq`], [`Fault::UnaskedGroups`], [`Fault::HugeGroup`]).
pub(super) async fn route(
    inner: &Shared,
    endpoint: Endpoint,
    req: &Req,
    shape: Option<&Fault>,
) -> Reply {
    let get = req.method == Method::GET;
    let post = req.method == Method::POST;
    match endpoint {
        Endpoint::JsLogin if get || post => jslogin(inner, req),
        Endpoint::LoginPoll if get => login_poll(inner, req).await,
        Endpoint::NewLoginPage if get => ticket(inner, req, None),
        Endpoint::Init if post => init(inner, req),
        Endpoint::StatusNotify if post => status_notify(inner, req),
        Endpoint::GetContact if get => get_contact(inner, req, shape),
        Endpoint::BatchGetContact if post => batch_get_contact(inner, req, shape),
        Endpoint::OpLog if post => oplog(inner, req),
        Endpoint::SyncCheck if get => synccheck(inner, req).await,
        Endpoint::Sync if post => sync(inner, req),
        Endpoint::Logout => logout(inner, req),
        Endpoint::PushLogin if get => push_login(inner, req),
        Endpoint::GetIcon if get => avatar(inner, req, false),
        Endpoint::GetHeadImg if get => avatar(inner, req, true),
        Endpoint::Other => {
            Reply::plain(404, "text/html", "<html><body>404 Not Found</body></html>")
        }
        _ => Reply::plain(
            405,
            "text/html",
            "<html><body>405 Method Not Allowed</body></html>",
        ),
    }
}
