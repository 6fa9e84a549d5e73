//! The daemon's push-login record (`[login] push_on_logout`): which
//! logged-out session it asked the phone about, how often, and how that
//! went — kept in the database so that a restart neither forgets the asks
//! already sent nor shows `wxsync status` nothing.

use serde::Serialize;
use sqlx::FromRow;

use super::{Error, Store};

/// Where the asks for one logged-out session stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// An ask is out; the phone has not answered yet.
    Asking,
    /// The last ask went unconfirmed; another may go out at `next_at`.
    NotConfirmed,
    /// Every ask allowed went unconfirmed: only `wxsync login` helps.
    GaveUp,
    /// The server refused: no more asks for this session.
    Refused,
    /// The phone confirmed; the new session was saved.
    Confirmed,
}

impl PushState {
    fn as_str(self) -> &'static str {
        match self {
            PushState::Asking => "asking",
            PushState::NotConfirmed => "not_confirmed",
            PushState::GaveUp => "gave_up",
            PushState::Refused => "refused",
            PushState::Confirmed => "confirmed",
        }
    }

    fn parse(s: &str) -> Option<PushState> {
        [
            PushState::Asking,
            PushState::NotConfirmed,
            PushState::GaveUp,
            PushState::Refused,
            PushState::Confirmed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// The record, as `wxsync status --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushRecord {
    /// wxsync's own id of the logged-out session (not a credential).
    #[serde(skip)]
    pub login_id: String,
    pub state: PushState,
    /// Asks sent for that session.
    pub asks: i64,
    pub last_at: Option<String>,
    pub next_at: Option<String>,
    /// Why, in words.
    pub detail: Option<String>,
}

#[derive(FromRow)]
struct Row {
    push_login_id: Option<String>,
    push_state: Option<String>,
    push_asks: i64,
    push_last_at: Option<String>,
    push_next_at: Option<String>,
    push_detail: Option<String>,
}

impl Store {
    /// The push-login record, if the daemon ever asked.
    pub async fn push_record(&self) -> Result<Option<PushRecord>, Error> {
        let row = sqlx::query_as::<_, Row>(
            "SELECT push_login_id, push_state, push_asks, push_last_at, push_next_at, push_detail \
             FROM daemon_state WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| {
            Some(PushRecord {
                login_id: r.push_login_id?,
                state: PushState::parse(r.push_state.as_deref()?)?,
                asks: r.push_asks,
                last_at: r.push_last_at,
                next_at: r.push_next_at,
                detail: r.push_detail,
            })
        }))
    }

    pub async fn save_push_record(&self, r: &PushRecord) -> Result<(), Error> {
        sqlx::query(
            "UPDATE daemon_state SET push_login_id = ?, push_state = ?, push_asks = ?, \
             push_last_at = ?, push_next_at = ?, push_detail = ? WHERE id = 1",
        )
        .bind(&r.login_id)
        .bind(r.state.as_str())
        .bind(r.asks)
        .bind(&r.last_at)
        .bind(&r.next_at)
        .bind(&r.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_record_round_trips_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        assert_eq!(store.push_record().await.unwrap(), None);
        let record = PushRecord {
            login_id: "abc".into(),
            state: PushState::NotConfirmed,
            asks: 2,
            last_at: Some("2026-12-04T15:00:00.000Z".into()),
            next_at: Some("2026-12-04T21:00:00.000Z".into()),
            detail: Some("the phone did not confirm within 2m".into()),
        };
        store.save_push_record(&record).await.unwrap();
        assert_eq!(store.push_record().await.unwrap(), Some(record));
    }
}
