//! The cookie jar of a session: one store for every host (login, API,
//! push), persisted in the session file.
//!
//! It wraps `cookie_store` directly instead of `reqwest_cookie_store`,
//! because `CookieStore::store_response_cookies` logs every non-`Secure`
//! cookie with its value at debug level, and these cookies are credentials.

use std::sync::{Mutex, MutexGuard, PoisonError};

use cookie_store::{CookieStore, RawCookie};
use reqwest::header::HeaderValue;
use serde_json::Value;
use url::Url;

use super::error::{Error, redact_quoted};

#[derive(Default)]
pub(crate) struct Jar(Mutex<CookieStore>);

impl Jar {
    fn lock(&self) -> MutexGuard<'_, CookieStore> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Restores a jar saved by [`Jar::to_value`]; null is an empty jar.
    pub(crate) fn from_value(cookies: &Value) -> Result<Jar, Error> {
        if cookies.is_null() {
            return Ok(Jar::default());
        }
        let text = cookies.to_string();
        let store =
            cookie_store::serde::json::load_all(text.as_bytes()).map_err(|e| Error::Setup {
                detail: format!(
                    "the saved cookie jar is unreadable: {}",
                    redact_quoted(&e.to_string())
                ),
            })?;
        Ok(Jar(Mutex::new(store)))
    }

    /// Every cookie (expired and session cookies too), as a JSON array.
    pub(crate) fn to_value(&self) -> Result<Value, Error> {
        let mut buf = Vec::new();
        cookie_store::serde::json::save_incl_expired_and_nonpersistent(&self.lock(), &mut buf)
            .map_err(|e| Error::Setup {
                detail: format!(
                    "cannot serialize the cookie jar: {}",
                    redact_quoted(&e.to_string())
                ),
            })?;
        serde_json::from_slice(&buf).map_err(|e| Error::json("session", &e))
    }

    /// The value of an unexpired cookie by name, on any host.
    pub(crate) fn value_of(&self, name: &str) -> Option<String> {
        self.lock()
            .iter_unexpired()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }
}

impl reqwest::cookie::CookieStore for Jar {
    fn set_cookies(&self, cookie_headers: &mut dyn Iterator<Item = &HeaderValue>, url: &Url) {
        let mut store = self.lock();
        for header in cookie_headers {
            let parsed = header.to_str().ok().and_then(|h| RawCookie::parse(h).ok());
            if let Some(cookie) = parsed {
                // A cookie the store refuses (bad domain, etc.) is dropped,
                // as a browser would.
                let _ = store.insert_raw(&cookie, url);
            }
        }
    }

    fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        let store = self.lock();
        let header = store
            .get_request_values(url)
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        if header.is_empty() {
            None
        } else {
            HeaderValue::from_str(&header).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::cookie::CookieStore as _;

    fn set(jar: &Jar, url: &str, cookies: &[&str]) {
        let values: Vec<HeaderValue> = cookies
            .iter()
            .map(|c| HeaderValue::from_str(c).unwrap())
            .collect();
        jar.set_cookies(&mut values.iter(), &Url::parse(url).unwrap());
    }

    fn header(jar: &Jar, url: &str) -> String {
        jar.cookies(&Url::parse(url).unwrap())
            .map(|h| h.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn one_jar_serves_every_host_of_the_domain() {
        let jar = Jar::default();
        set(
            &jar,
            "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage",
            &[
                "webwx_data_ticket=T; Domain=.qq.com; Path=/; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
                "wxsid=S; Domain=wx.qq.com; Path=/",
                "host_only=H; Path=/",
                "junk",
            ],
        );
        let push = header(
            &jar,
            "https://webpush.wx.qq.com/cgi-bin/mmwebwx-bin/synccheck",
        );
        assert!(
            push.contains("webwx_data_ticket=T") && push.contains("wxsid=S"),
            "{push}"
        );
        assert!(!push.contains("host_only"), "{push}");
        assert!(header(&jar, "https://wx.qq.com/").contains("host_only=H"));
        assert_eq!(header(&jar, "https://example.com/"), "");
        assert_eq!(jar.value_of("wxsid").as_deref(), Some("S"));
    }

    #[test]
    fn a_jar_survives_a_round_trip_with_session_cookies() {
        let jar = Jar::default();
        set(
            &jar,
            "http://127.0.0.1:8080/",
            &[
                "a=1; Path=/",
                "b=2; Path=/; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
            ],
        );
        let back = Jar::from_value(&jar.to_value().unwrap()).unwrap();
        let h = header(&back, "http://127.0.0.1:9999/x");
        assert!(h.contains("a=1") && h.contains("b=2"), "{h}");
        assert!(
            Jar::from_value(&Value::Null)
                .unwrap()
                .value_of("a")
                .is_none()
        );
        assert!(Jar::from_value(&serde_json::json!([{"bad": 1}])).is_err());
    }
}
