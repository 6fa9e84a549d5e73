//! Which login's user names the cache holds, and the MsgType 51 map of real
//! ids (docs/storage.md, "Identity").

use super::{Error, Store, now};

impl Store {
    /// The login whose user names the cache holds, if any has been linked.
    pub async fn linked_login(&self) -> Result<Option<String>, Error> {
        Ok(
            sqlx::query_scalar("SELECT login_id FROM identity WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// True when the cache holds no live contact: a first login may store
    /// its contacts without linking anything.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM contacts WHERE deleted_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(live == 0)
    }

    /// Records `(session user name, real id)` pairs from a MsgType 51 map,
    /// and the real id of every cached contact they name.
    pub async fn save_real_ids(&self, pairs: &[(String, String)]) -> Result<(), Error> {
        if pairs.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_string(pairs).map_err(Error::Encode)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT OR REPLACE INTO real_ids (user_name, real_id, seen_at) \
             SELECT value->>0, value->>1, ?2 FROM json_each(?1)",
        )
        .bind(&json)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE contacts SET real_id = r.real_id FROM real_ids r \
             WHERE contacts.user_name = r.user_name AND contacts.real_id IS NOT r.real_id",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
