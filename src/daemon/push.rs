//! Push login after a logout (`[login] push_on_logout`, off by default).
//!
//! When the server ends the session, the daemon asks the phone of that
//! session's account to confirm a new login (`webwxpushloginurl` with the
//! saved uin), waits `login.push_wait`, and on confirmation saves the new
//! session exactly as `wxsync login` does. Unconfirmed, it fires
//! `login_needed` and may ask again after `login.push_retry`, at most
//! [`MAX_ASKS`] times per logout; a refusal from the server ends the asking
//! until a person logs in. Never a QR code, never a loop. The record of the
//! asks lives in the database ([`PushRecord`]), so a restart continues the
//! count instead of starting over.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::hook::{Event, Hook};
use crate::app::App;
use crate::store::{PushRecord, PushState};
use crate::webwx::{self, Client, LoginEvent, PushFailure, Session};

/// Asks per logout, at most.
pub const MAX_ASKS: i64 = 3;

/// What to do now about a logged-out session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Send ask number `asks + 1`.
    Ask { asks: i64 },
    /// Nothing before this time.
    WaitUntil(DateTime<Utc>),
    /// No more asks for this session: only `wxsync login` helps.
    Never,
}

/// The next step for the logged-out session `login_id`, given the record.
pub(super) fn next(record: Option<&PushRecord>, login_id: &str, now: DateTime<Utc>) -> Next {
    let Some(r) = record.filter(|r| r.login_id == login_id) else {
        return Next::Ask { asks: 0 };
    };
    match r.state {
        // An ask left `asking` was cut short by a restart: it counts.
        PushState::Asking | PushState::NotConfirmed if r.asks < MAX_ASKS => {
            match r.next_at.as_deref().and_then(time) {
                Some(t) if t > now => Next::WaitUntil(t),
                _ => Next::Ask { asks: r.asks },
            }
        }
        _ => Next::Never,
    }
}

/// The push state in words, for `wxsync status`.
pub fn describe(record: Option<&PushRecord>, enabled: bool) -> String {
    let Some(r) = record else {
        return if enabled {
            "on; nothing asked yet".to_owned()
        } else {
            "off (login.push_on_logout)".to_owned()
        };
    };
    let last = r.last_at.as_deref().unwrap_or("-");
    let detail = r.detail.as_deref().unwrap_or("no reason recorded");
    let words = match r.state {
        PushState::Asking => format!(
            "waiting for the phone (ask {} of {MAX_ASKS}, sent {last})",
            r.asks
        ),
        PushState::NotConfirmed => format!(
            "ask {} of {MAX_ASKS} not confirmed ({detail}); next ask at {}",
            r.asks,
            r.next_at.as_deref().unwrap_or("-")
        ),
        PushState::GaveUp => format!(
            "{} asks not confirmed ({detail}); no more asks: run `wxsync login`",
            r.asks
        ),
        PushState::Refused => {
            format!("refused at {last} ({detail}); no more asks: run `wxsync login`")
        }
        PushState::Confirmed => format!("confirmed at {last} ({detail})"),
    };
    if enabled {
        words
    } else {
        format!("off (login.push_on_logout); last: {words}")
    }
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Sends the asks and keeps their record.
pub(super) struct Pusher<'a> {
    app: &'a App,
    hook: &'a Hook,
    /// The stored record, read once and kept in step with every write.
    record: Option<PushRecord>,
}

impl<'a> Pusher<'a> {
    /// `None` when push login is off.
    pub async fn new(app: &'a App, hook: &'a Hook) -> Option<Pusher<'a>> {
        if !app.config.login.push_on_logout {
            return None;
        }
        let record = app.store.push_record().await.unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the push-login record; starting a new one");
            None
        });
        Some(Pusher { app, hook, record })
    }

    pub fn next(&self, previous: &Session) -> Next {
        next(self.record.as_ref(), previous.login_id(), Utc::now())
    }

    /// Sends ask number `asks + 1` for the logged-out `previous` and waits
    /// for the phone. On confirmation the new session is saved (unless a
    /// `wxsync login` replaced the file meanwhile) and its client returned.
    pub async fn ask(&mut self, previous: &Session, asks: i64) -> Option<Client> {
        let config = &self.app.config.login;
        let n = asks + 1;
        let now = Utc::now();
        let retry = chrono::Duration::from_std(config.push_retry).unwrap_or(chrono::Duration::MAX);
        let next_at = now.checked_add_signed(retry).unwrap_or(now);
        let mut record = PushRecord {
            login_id: previous.login_id().to_owned(),
            state: PushState::Asking,
            asks: n,
            last_at: Some(stamp(now)),
            next_at: Some(stamp(next_at)),
            detail: Some("waiting for the phone to confirm".into()),
        };
        self.store(&record).await;

        let mut opts = self.app.login_options();
        opts.push_wait = config.push_wait;
        let wait = humantime::format_duration(config.push_wait);
        let hook = self.hook;
        let asked = webwx::push_login_only(&opts, previous, |event| {
            if event == LoginEvent::PushSent {
                let message = format!(
                    "asked the phone to confirm a new login (ask {n} of {MAX_ASKS}); waiting up to {wait}"
                );
                info!("{message}");
                hook.fire(Event::PushLoginSent, &message);
            }
        })
        .await;
        let failure = match asked {
            Ok((client, init)) => return self.confirmed(previous, record, client, &init).await,
            Err(f) => f,
        };
        let (state, message) = match &failure {
            PushFailure::Refused(why) => (
                PushState::Refused,
                format!(
                    "push login refused: {why}; no more asks for this session: run `wxsync login`"
                ),
            ),
            _ if n >= MAX_ASKS => (
                PushState::GaveUp,
                format!(
                    "push login not confirmed: {failure}; that was ask {n} of {MAX_ASKS}, the last: run `wxsync login`"
                ),
            ),
            _ => (
                PushState::NotConfirmed,
                format!(
                    "push login not confirmed: {failure}; the phone is asked again at {} (ask {} of {MAX_ASKS}), or run `wxsync login`",
                    next_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    n + 1
                ),
            ),
        };
        warn!("{message}");
        self.hook.fire(Event::LoginNeeded, &message);
        record.state = state;
        record.detail = Some(failure.to_string());
        if state != PushState::NotConfirmed {
            record.next_at = None;
        }
        self.store(&record).await;
        None
    }

    async fn confirmed(
        &mut self,
        previous: &Session,
        mut record: PushRecord,
        client: Client,
        init: &webwx::InitReply,
    ) -> Option<Client> {
        let still_ours =
            matches!(self.app.load_session(), Ok(Some(s)) if s.login_id() == previous.login_id());
        if !still_ours {
            info!("a new login replaced the session file meanwhile; the push login is dropped");
            return None;
        }
        record.next_at = None;
        match self.app.save_login(&client, init).await {
            Ok(_) => {
                info!("the phone confirmed the push login; new session saved");
                record.state = PushState::Confirmed;
                record.detail = Some(format!(
                    "confirmed; new session logged in at {}",
                    client.session().logged_in_at()
                ));
                self.store(&record).await;
                Some(client)
            }
            Err(e) => {
                let message = format!(
                    "the phone confirmed the push login but the session cannot be saved ({}): run `wxsync login`",
                    crate::wording::one_line(&e)
                );
                warn!("{message}");
                self.hook.fire(Event::LoginNeeded, &message);
                record.state = PushState::GaveUp;
                record.detail = Some(message);
                self.store(&record).await;
                None
            }
        }
    }

    async fn store(&mut self, record: &PushRecord) {
        if let Err(e) = self.app.store.save_push_record(record).await {
            warn!(error = %e, "cannot record the push login's state");
        }
        self.record = Some(record.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: PushState, asks: i64, next_at: Option<&str>) -> PushRecord {
        PushRecord {
            login_id: "old".into(),
            state,
            asks,
            last_at: None,
            next_at: next_at.map(str::to_owned),
            detail: None,
        }
    }

    #[test]
    fn a_new_logout_is_asked_at_once_and_a_known_one_follows_its_record() {
        let now = time("2026-12-04T12:00:00Z").unwrap();
        assert_eq!(next(None, "old", now), Next::Ask { asks: 0 });
        let other = PushRecord {
            login_id: "older".into(),
            ..record(PushState::Refused, 1, None)
        };
        assert_eq!(next(Some(&other), "old", now), Next::Ask { asks: 0 });

        let later = "2026-12-04T18:00:00Z";
        let r = record(PushState::NotConfirmed, 1, Some(later));
        assert_eq!(
            next(Some(&r), "old", now),
            Next::WaitUntil(time(later).unwrap())
        );
        assert_eq!(
            next(Some(&r), "old", time(later).unwrap()),
            Next::Ask { asks: 1 }
        );
        // An ask a restart cut short counts, and waits like an unconfirmed one.
        let r = record(PushState::Asking, 2, Some(later));
        assert_eq!(
            next(Some(&r), "old", now),
            Next::WaitUntil(time(later).unwrap())
        );
    }

    #[test]
    fn no_ask_after_a_refusal_the_last_ask_or_a_confirmation() {
        let now = time("2026-12-04T12:00:00Z").unwrap();
        for r in [
            record(PushState::Refused, 1, None),
            record(PushState::GaveUp, 3, None),
            record(PushState::NotConfirmed, MAX_ASKS, None),
            record(PushState::Confirmed, 1, None),
        ] {
            assert_eq!(next(Some(&r), "old", now), Next::Never, "{r:?}");
        }
    }
}
