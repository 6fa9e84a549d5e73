//! The HTTP server: one fallback handler takes every path, records the
//! call, applies a queued fault or routes it to its handler.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::calls::Call;
use super::config::SimConfig;
use super::control::control_api;
use super::faults;
use super::http::{Req, respond};
use super::routes::{endpoint_of, route};
use super::state::Shared;

pub(super) struct ServerTask {
    pub(super) stop: oneshot::Sender<()>,
    pub(super) handle: JoinHandle<()>,
}

impl ServerTask {
    pub async fn stop(self, inner: &Shared) {
        inner.stop_polls();
        let _ = self.stop.send(());
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

pub(super) async fn start(
    cfg: SimConfig,
    listen: SocketAddr,
) -> std::io::Result<(Arc<Shared>, ServerTask)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    let base = url::Url::parse(&format!("http://{host}:{}/", addr.port()))
        .map_err(std::io::Error::other)?;
    let inner = Arc::new(Shared::new(cfg, base));
    let router = Router::new()
        .fallback(dispatch)
        .with_state(Arc::clone(&inner));
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let handle = tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "simulator server stopped");
        }
    });
    tracing::info!(url = %inner.base, "simulator listening");
    Ok((inner, ServerTask { stop, handle }))
}

pub(super) async fn dispatch(
    AxumState(inner): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if method == Method::POST && !body.starts_with(b"{") {
        for (k, v) in url::form_urlencoded::parse(&body) {
            params.entry(k.into_owned()).or_insert(v.into_owned());
        }
    }
    let raw_cookies = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let cookies = raw_cookies
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = Req {
        method,
        query,
        params,
        headers,
        cookies,
        body,
    };
    if let Some(control) = path.strip_prefix("/__sim/") {
        return respond(control_api(&inner, control, &req));
    }
    let endpoint = endpoint_of(&path);
    let index = inner.record(Call {
        endpoint,
        method: req.method.to_string(),
        query: req.query.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        cookies: raw_cookies,
        headers: req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        status: 0,
        ret: None,
    });
    let reply = match inner.take_fault(endpoint) {
        None => route(&inner, endpoint, &req, None).await,
        Some(fault) => faults::apply(&inner, endpoint, &req, fault).await,
    };
    inner.answered(index, reply.status, reply.ret);
    tracing::debug!(?endpoint, method = %req.method, status = reply.status, ret = ?reply.ret, "simulator call");
    respond(reply)
}
