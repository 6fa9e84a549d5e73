//! The avatar cache: which contacts need their image fetched, storing the
//! images (one row per distinct image), and removing the ones nothing
//! refers to any more.

use std::time::{Duration, Instant};

use super::{Error, Store, now};

/// A live contact whose image is missing or out of date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvatarWanted {
    pub contact_id: i64,
    /// `HeadImgUrl` as stored (no skey).
    pub head_img_url: String,
    /// Its `seq` ("" when it has none).
    pub seq: String,
}

/// A fetched, checked image for one contact.
#[derive(Clone, Debug)]
pub struct AvatarImage {
    pub contact_id: i64,
    /// The URL it was fetched from: written only while the contact still has it.
    pub head_img_url: String,
    pub seq: String,
    pub sha256: String,
    pub mime: &'static str,
    pub image: Vec<u8>,
}

/// The `seq` query parameter of a `HeadImgUrl` ("" when it has none): it
/// changes with the avatar, and unlike the URL it survives a new login.
pub fn avatar_seq(head_img_url: &str) -> String {
    let query = head_img_url.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "seq")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl Store {
    /// Live contacts with an avatar URL whose image is not cached, or was
    /// fetched for another `seq`. A re-linked contact keeps its image: its
    /// seq survives the new login.
    pub async fn avatars_wanted(&self) -> Result<Vec<AvatarWanted>, Error> {
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT contact_id, head_img_url, avatar_sha256, avatar_seq FROM contacts
             WHERE deleted_at IS NULL AND head_img_url != '' ORDER BY contact_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(contact_id, head_img_url, sha, fetched_seq)| {
                let seq = avatar_seq(&head_img_url);
                let fresh = sha.is_some() && fetched_seq.as_deref() == Some(seq.as_str());
                (!fresh).then_some(AvatarWanted {
                    contact_id,
                    head_img_url,
                    seq,
                })
            })
            .collect())
    }

    /// Live contacts that have an avatar URL (those an image is fetched for).
    pub async fn avatar_contacts(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM contacts WHERE deleted_at IS NULL AND head_img_url != ''",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Stores images and points their contacts at them, in one short
    /// transaction; returns how many it wrote and how long it held the
    /// write lock. A contact
    /// whose URL changed since the fetch (a newer avatar, a new login) is
    /// left alone: its newer image is fetched next. A different image than
    /// the stored one writes an `updated` history row, field `avatar`; the
    /// first one writes none. The same bytes are kept once.
    pub async fn save_avatars(&self, images: &[AvatarImage]) -> Result<(usize, Duration), Error> {
        let now = now();
        let mut tx = self.begin_write().await?;
        let locked = Instant::now();
        let mut written = 0;
        for a in images {
            let current: Option<Option<String>> = sqlx::query_scalar(
                "SELECT avatar_sha256 FROM contacts WHERE contact_id = ?1 AND head_img_url = ?2",
            )
            .bind(a.contact_id)
            .bind(&a.head_img_url)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(old) = current else { continue };
            written += 1;
            sqlx::query(
                "INSERT INTO avatars (sha256, image, mime, bytes, first_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&a.sha256)
            .bind(&a.image)
            .bind(a.mime)
            .bind(a.image.len() as i64)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            if old.as_ref().is_some_and(|old| *old != a.sha256) {
                sqlx::query(
                    "INSERT INTO contact_changes (at, contact_id, user_name, source, change, field,
                         old_value, new_value)
                     SELECT ?1, contact_id, user_name, 'avatar', 'updated', 'avatar', ?2, ?3
                     FROM contacts WHERE contact_id = ?4",
                )
                .bind(&now)
                .bind(old.as_deref())
                .bind(&a.sha256)
                .bind(a.contact_id)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE contacts SET avatar_sha256 = ?1, avatar_seq = ?2, avatar_fetched_at = ?3
                 WHERE contact_id = ?4",
            )
            .bind(&a.sha256)
            .bind(&a.seq)
            .bind(&now)
            .bind(a.contact_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((written, locked.elapsed()))
    }

    /// Removes the images no contact refers to and no `contact_changes` row
    /// names (history older than the retention is pruned first, so an image
    /// replaced longer ago than that goes with its last mention).
    pub async fn prune_avatars(&self) -> Result<u64, Error> {
        // Usually none: looked for without a lock first.
        let orphans: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM avatars
             WHERE sha256 NOT IN (SELECT avatar_sha256 FROM contacts WHERE avatar_sha256 IS NOT NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        if orphans == 0 {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM avatars
             WHERE sha256 NOT IN (SELECT avatar_sha256 FROM contacts WHERE avatar_sha256 IS NOT NULL)
               AND sha256 NOT IN (SELECT old_value FROM contact_changes
                                  WHERE field = 'avatar' AND old_value IS NOT NULL
                                  UNION ALL
                                  SELECT new_value FROM contact_changes
                                  WHERE field = 'avatar' AND new_value IS NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seq_is_read_from_the_query() {
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgeticon?seq=620&username=@ab"),
            "620"
        );
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgetheadimg?username=@@ab&seq=7"),
            "7"
        );
        assert_eq!(
            avatar_seq("/cgi-bin/mmwebwx-bin/webwxgeticon?username=@ab"),
            ""
        );
        assert_eq!(avatar_seq(""), "");
    }
}
